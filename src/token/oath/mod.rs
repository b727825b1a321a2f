//! YKOATH, the YubiKey OATH applet's protocol, as typed messages.
//!
//! - [`wire`]: the AID, instruction bytes, TLV tags and limits.
//! - [`values`]: credential type, hash algorithm, digits, version, time step.
//! - [`name`]: credential names, parsed once.
//! - [`secret`]: keys, the access password and key, codes; zeroized, never in `Debug`.
//! - [`otp`]: HOTP and TOTP computation, shared with the software YubiKey.
//! - [`codec`]: every instruction's command builder and answer parser, and the encoders and
//!   request decoders the software YubiKey in [`crate::emulator`] uses, so both sides share one
//!   definition of the wire format. Pure: nothing there does I/O.
//! - [`session`]: a thin session over any [`CardTransport`](super::CardTransport), with its
//!   states as types: operations that need authentication exist only on [`OathSession`].
//! - [`error`]: [`OathError`], why bytes or values could not be encoded or decoded.
//!
//! Every item is re-exported here, so callers name them `oath::Item`. Commands that carry
//! secrets are built with [`Command::with_secret_data`](super::apdu::Command::with_secret_data).

pub mod codec;
pub mod error;
pub mod name;
pub mod otp;
pub mod secret;
pub mod session;
pub mod values;
pub mod wire;

pub use codec::*;
pub use error::OathError;
pub use name::{CredentialName, NameParts};
pub use otp::{dynamic_truncate, hmac_digest, hotp, totp, truncate};
pub use secret::{AccessKey, Code, FullResponse, OathSecret, Password, ACCESS_KEY_ITERATIONS};
pub use session::{transact, LockedOathSession, OathSession, Selected};
pub use values::{type_byte, Digits, HashAlgorithm, OathType, TimeStep, Version};
pub use wire::{ins, property, tag, AID, DEFAULT_PERIOD, MAX_NAME_LEN, MIN_KEY_LEN};

#[cfg(test)]
mod tests;
