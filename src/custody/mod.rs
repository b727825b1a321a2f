//! The custody domain: users and authentication, accounts, devices and seals, dual-control
//! requests and approvals, code release, and the ceremonies, all decided here and recorded in
//! the ledger. It looks only down: it uses [`crate::ledger`] and [`crate::token`].
//!
//! - [`service`]: [`Custody`], the facade the daemon calls, and its input/output types;
//!   construction, the ledger, and how decisions and refusals are recorded.
//! - What each `impl Custody` block does, one file each: `authentication`, `user_admin`,
//!   `accounts`, `devices`, `device_lock`, `incidents`, `code_requests`, `code_release`, `enrolment`,
//!   `inventory_audit`, `custody_release`, and `queries` (reads of the current state).
//! - [`ids`], [`secret`]: parsed newtypes and secret carriers.
//! - [`records`]: current-state records (users, accounts, devices, requests, incidents).
//! - [`requests`]: the request state machine as types.
//! - [`users`]: passphrase verifiers, the officer second factor and how they are sealed.
//! - [`device_attest`]: giving a device an attested PIV custody key (two officers), its PIV
//!   management key stored sealed.
//! - [`device_keys`]: devices' OATH access keys, stored sealed, and the VALIDATE every use
//!   of a locked device starts with.
//! - [`reconcile`](mod@reconcile): ledger view against device report.
//! - [`cloudtrail`]: the provider's CloudTrail record against a verified export.
//! - [`access`]: the clock, time witness and device-access seams.
//! - [`store`]: event kinds and the projection.
//! - [`host`]: what is recorded of the host: unseal, seal, cards in the readers.
//! - [`policy`]: thresholds, lifetimes, catalogue.

pub mod access;
mod accounts;
pub mod approval_keys;
pub mod approval_proofs;
mod authentication;
pub mod cloudtrail;
mod code_release;
mod code_requests;
mod custody_release;
pub mod device_attest;
pub mod device_keys;
mod device_lock;
mod devices;
mod enrolment;
pub mod error;
pub mod host;
pub mod ids;
mod incidents;
mod inventory_audit;
mod key_clearing;
pub mod policy;
pub mod presence;
mod queries;
pub mod reconcile;
pub mod records;
pub mod refusals;
pub mod report;
pub mod requests;
pub mod root_password;
mod sealed;
pub mod secret;
pub mod service;
pub mod store;
mod user_admin;
pub mod users;

pub use access::{Clock, DeviceAccess, DeviceAccessError, SystemClock, TimeWitness};
pub use approval_keys::{ApprovalChallenge, KeyEvidence, OfficerKey, SignedProof};
pub use authentication::{AuthCheck, AuthVerdict, Authenticated, PassphraseProven};
pub use code_release::{compute_code, CardReading, Issuing, IssuingTicket, ReleasePlan};
pub use code_requests::FRESH_AUTH_MS;
pub use custody_release::CustodyReleasePlan;
pub use device_attest::AttestPlan;
pub use device_keys::OathLock;
pub use device_lock::LockPlan;
pub use devices::{identify_device, DeviceCheck, TerminalPlan};
pub use enrolment::{EnrolmentPlan, EnrolmentReading};
pub use error::CustodyError;
pub use ids::{
    check_display_safe, escape_unsafe, is_display_safe, AccountId, Alias, Email, IncidentId,
    Location, Note, Provider, Reason, RequestId, SealNumber, Serial, TicketPattern, TicketRef,
    UserName,
};
pub use inventory_audit::InventoryPlan;
pub use key_clearing::KeyClearing;
pub use policy::{ApprovalProof, LedgerPolicy, PassphraseKdf, Policy, RootTask, Threshold};
pub use presence::{OperationIntent, PresenceChallenge};
pub use reconcile::{reconcile, Mismatch, Observed, Reconciliation};
pub use records::{
    AccountRecord, AccountStatus, Approval, DeviceRecord, DeviceRole, DeviceState, IncidentKind,
    IncidentRecord, RequestRecord, RequestStatus, Role, UserRecord,
};
pub use root_password::RootPassword;
pub use secret::{FactorCode, FactorEnrolment, ProviderSeed, UserPassphrase};
pub use service::{
    AuditReport, Credentials, Custody, Enrolment, EnrolmentCodes, NewAccount, NewRequest, NewUser,
    Presented, ReleasedCode, Session, Terminal,
};
pub use user_admin::{bootstrap_check, PreparedCredential};

#[cfg(test)]
mod tests;
