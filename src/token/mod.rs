//! The token layer: everything mfa-custody says to a YubiKey, as APDUs.
//!
//! - [`apdu`] and [`tlv`]: the codecs, pure and I/O-free.
//! - [`transport`]: the [`transport::CardTransport`] seam and command/response chaining.
//! - [`error`]: transport failures and card refusals, kept apart.
//! - [`oath`]: the YKOATH client: typed messages and a session with states as types.

pub mod apdu;
pub mod error;
pub mod oath;
pub mod tlv;
pub mod transport;

pub use error::TokenError;
pub use transport::{CardTransport, TransportError};
