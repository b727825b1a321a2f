//! `custodyd`: the daemon that holds the unsealed ledger and serves the `custody` CLI over a
//! Unix socket (JSON Lines).
//!
//! - [`protocol`]: request/response types, size limits, the pure request parser.
//! - [`server`]: [`server::run`], given its listener, shutdown flag and [`ServerLimits`]; bounded
//!   connections, per peer uid too, and request lines bounded in size and time.
//! - [`peer`]: SO_PEERCRED of each connection.
//! - [`state`]: sealed/unsealed state and the handling of each operation.
//! - [`ops`]: the custody domain's operations, from protocol values to the [`crate::custody`] facade.
//! - [`authz`]: who may read what; [`session`]: login sessions and their tokens;
//!   [`continuation`]: the second round of an authentication, for the second-factor code.
//! - [`config`]: the TOML configuration file.
//! - [`access`]: devices through PC/SC, by serial, in allowed readers only.

pub mod access;
pub mod authz;
pub mod config;
pub mod continuation;
pub mod intent;
pub mod ops;
pub mod peer;
pub mod protocol;
pub mod server;
pub mod session;
pub mod state;
pub mod throttle;

pub use protocol::{parse_request, ErrorCode, Op, Reply, Request, Response, Secret};
pub use server::{run, ServerLimits};
pub use state::{Daemon, DaemonOptions};
