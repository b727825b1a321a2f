//! The ledger layer: an encrypted (SQLCipher), append-only, hash-chained event store with quorum
//! unseal, current-state projections, signed checkpoints, streaming export and offline
//! verification. It records; it never decides. It imports nothing from the layers above it.
//!
//! - [`event`]: events and canonical JSON bodies.
//! - [`chain`]: the hash chain and signed checkpoints.
//! - [`seal`]: master secret, derived keys, passphrase-wrapped Shamir shares (the keyring).
//! - [`reshare`]: keyring generations, and re-shares that a crash cannot leave half done.
//! - [`store`]: the SQLCipher store ([`Ledger`]): open/unseal, append, query, checkpoint.
//! - [`projection`]: current-state tables and their registry.
//! - [`export`]: JSON Lines and CSV export, and the export line parser.
//! - [`verify`]: verification of an export (offline) and of the live ledger.

pub mod chain;
pub mod error;
pub mod event;
pub mod export;
#[cfg(test)]
pub(crate) mod fault;
#[cfg(test)]
mod insider_tamper;
pub mod projection;
pub mod reshare;
pub mod seal;
pub mod store;
pub mod verify;

pub use chain::{Checkpoint, CheckpointPublicKey, Hash, LedgerId, SignedCheckpoint};
pub use error::{ChainProblem, LedgerError};
pub use event::{Actor, CanonicalJson, EventHeader, Kind, NewEvent, StoredEvent, Timestamp};
pub use export::{
    export, export_redacted, parse_export_line, redact_body, ExportFilter, ExportFormat,
    ExportLine, ExportSummary,
};
pub use projection::{ApplyError, LedgerProjection, Projection, Projections};
pub use seal::{KdfParams, Keyring, OfficerName, Passphrase};
pub use store::{Genesis, Ledger};
pub use verify::{
    verify_export, verify_export_observed, verify_ledger, verify_ledger_observed, ExportFailure,
    ExportProblem, LedgerReport, VerifiedExport,
};
