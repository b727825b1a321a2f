//! mfa-custody: dual-control custody of the YubiKeys that hold cloud root users' MFA seeds.
//!
//! Layers, each looking only down:
//! - [`token`]: APDU/TLV codec, the YKOATH client, device identity and the PC/SC transport.
//! - [`emulator`]: a software YubiKey speaking the same APDUs (tests and demos only; never part
//!   of a trust decision).
//! - [`ledger`]: the encrypted, append-only, hash-chained SQLCipher ledger with quorum unseal,
//!   signed checkpoints, export and offline verification.
//! - [`custody`]: the domain: users, accounts, devices, dual-control requests, code release and
//!   ceremonies, decided here and recorded in the ledger.
//! - [`daemon`]: `custodyd`, the socket server that holds the unsealed custody service.
//! - [`cli`]: the `custody` command line.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![deny(clippy::unwrap_used)]

pub mod cli;
pub mod custody;
pub mod daemon;
pub mod emulator;
pub mod ledger;
pub mod token;

/// What `custody --version` and `custodyd --version` print after the program's name: the
/// package version, the commit it was built from (`unknown` outside a git checkout) and the
/// build date (UTC; `SOURCE_DATE_EPOCH`'s when set). Stamped by `build.rs`.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("CUSTODY_BUILD_COMMIT"),
    ", built ",
    env!("CUSTODY_BUILD_DATE"),
    ")"
);
