//! The token layer: everything mfa-custody says to a YubiKey, as APDUs.
//!
//! - [`apdu`] and [`tlv`]: the codecs, pure and I/O-free.
//! - [`transport`]: the [`transport::CardTransport`] seam and command/response chaining.
//! - [`error`]: transport failures and card refusals, kept apart.
//! - [`oath`]: the YKOATH client: typed messages and a session with states as types.
//! - [`piv`]: the PIV client: management key, GENERATE, ATTEST and signing for custody keys.
//! - [`pcsc`]: readers, T=1 connections, transactions and hot-plug events through pcscd.
//! - [`management`]: the management applet's device information codec.
//! - [`identity`]: serial, firmware, form factor, OATH device id and credential summaries.
//! - [`attestation`]: PIV attestations verified offline against Yubico's published roots.

pub mod apdu;
pub mod attestation;
pub mod error;
pub mod identity;
pub mod management;
pub mod oath;
pub mod pcsc;
pub mod piv;
pub mod tlv;
pub mod transport;

pub use error::TokenError;
pub use transport::{CardTransport, TransportError};
