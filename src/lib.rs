//! mfa-custody: dual-control custody of the YubiKeys that hold cloud root users' MFA seeds.
//!
//! Layers, each looking only down:
//! - [`token`]: APDU/TLV codec, the YKOATH client, device identity and the PC/SC transport.
//! - [`emulator`]: a software YubiKey speaking the same APDUs (tests and demos only; never part
//!   of a trust decision).
//! - [`ledger`]: the encrypted, append-only, hash-chained SQLCipher ledger with quorum unseal,
//!   signed checkpoints, export and offline verification.
//! - [`daemon`]: `custodyd`, the socket server that holds the unsealed ledger.
//! - [`cli`]: the `custody` command line.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![deny(clippy::unwrap_used)]

pub mod cli;
pub mod daemon;
pub mod emulator;
pub mod ledger;
pub mod token;
