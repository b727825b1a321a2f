//! AWS CloudTrail held against a verified ledger export, offline: every root sign-in and root
//! call the provider recorded is explained by a code release (request, approvers, task) or is
//! a finding.
//!
//! - [`record`]: the records as CloudTrail writes them (`{"Records": [...]}` log files, gzipped
//!   or not, and JSON Lines), read as a stream with bounded memory.
//! - [`tasks`]: which catalogue task a root call belongs to.
//! - [`reconcile`](mod@reconcile): the matching rules; pure, time comes from the records and
//!   the export.

pub mod reconcile;
pub mod record;
pub mod tasks;

pub use reconcile::{
    reconcile, Explained, Finding, FindingKind, Held, HeldAccount, Reconciler, Reconciliation,
    RecordProblem, Release, Windows,
};
pub use record::{read_records, CloudTrailError, ReadError, Record, MAX_RECORD_BYTES};
