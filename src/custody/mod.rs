//! The custody domain: users and authentication, accounts, devices and seals, dual-control
//! requests and approvals, code release, and the ceremonies, all decided here and recorded in
//! the ledger. It looks only down: it uses [`crate::ledger`] and [`crate::token`].
//!
//! - [`service`]: [`Custody`], the facade the daemon calls, and its input/output types.
//! - [`ids`], [`secret`]: parsed newtypes and secret carriers.
//! - [`records`]: current-state records (users, accounts, devices, requests, incidents).
//! - [`requests`]: the request state machine as types.
//! - [`users`]: passphrase verifiers, the officer second factor and how they are sealed.
//! - [`reconcile`]: ledger view against device report.
//! - [`access`]: the clock, time witness and device-access seams.
//! - [`store`]: event kinds and the projection.
//! - [`policy`]: thresholds, lifetimes, catalogue.

pub mod access;
mod auth;
mod ceremony;
pub mod error;
pub mod ids;
mod inventory;
pub mod policy;
pub mod reconcile;
pub mod records;
pub mod refusals;
mod release;
pub mod report;
pub mod requests;
pub mod secret;
pub mod service;
pub mod store;
pub mod users;

pub use access::{Clock, DeviceAccess, DeviceAccessError, SystemClock, TimeWitness};
pub use auth::{bootstrap_check, AuthCheck, AuthVerdict, PreparedCredential};
pub use ceremony::{EnrolmentPlan, InventoryPlan};
pub use error::CustodyError;
pub use ids::{
    check_display_safe, escape_unsafe, is_display_safe, AccountId, Alias, Email, IncidentId,
    Location, Note, Provider, Reason, RequestId, SealNumber, Serial, TicketPattern, TicketRef,
    UserName,
};
pub use inventory::{identify_device, DeviceCheck};
pub use policy::{PassphraseKdf, Policy, RootTask, Threshold};
pub use reconcile::{reconcile, Mismatch, Observed, Reconciliation};
pub use records::{
    AccountRecord, AccountStatus, Approval, DeviceRecord, DeviceRole, DeviceState, IncidentKind,
    IncidentRecord, RequestRecord, RequestStatus, Role, UserRecord,
};
pub use release::{compute_code, CardReading, Issuing, IssuingTicket, ReleasePlan, FRESH_AUTH_MS};
pub use secret::{FactorCode, FactorEnrolment, ProviderSeed, UserPassphrase};
pub use service::{
    AuditReport, Credentials, Custody, Enrolment, EnrolmentCodes, NewAccount, NewRequest, NewUser,
    Presented, ReleasedCode, Session, Terminal,
};

#[cfg(test)]
mod tests;
