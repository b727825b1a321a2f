//! A PIV client over the project's own [`CardTransport`](super::CardTransport): what custodyd
//! says to a custody YubiKey's PIV applet to give it an attested key and to challenge that key.
//!
//! The `yubikey` crate is not used here: it opens its own PC/SC connection, outside the
//! per-device lock and the card session custodyd already holds, and it cannot run over the
//! in-process software YubiKey ([`crate::emulator::SoftKey`]) the unit tests drive. It stays the
//! independent cross-check in the pcscd tests.
//!
//! - [`codec`]: command builders and answer parsers, pure, with typed errors ([`PivError`]).
//! - [`key`]: the management key (3DES or AES), zeroized and never in `Debug`.
//! - [`pin`]: the PIV PIN ([`Pin`]), zeroized and never in `Debug`.
//! - [`session`]: [`PivSession`], the instructions over a transport.
//! - [`signing`]: an officer's approval key in `9C` (generate, evidence, sign after VERIFY).
//! - [`custody`]: [`provision`] (an attested custody key) and [`challenge`] (a fresh nonce
//!   signed by it, verified with `ring` against the recorded key).
//!
//! Sources: NIST SP 800-73-4 part 2 (SELECT, GENERAL AUTHENTICATE, GENERATE, GET DATA), Yubico's
//! "PIV extensions" (developers.yubico.com/PIV/Introduction/Yubico_extensions.html: SET
//! MANAGEMENT KEY, ATTEST, GET METADATA, the policy tags) and the YubiKey .NET SDK manual.
//!
//! # The custody slot
//! A custody key lives in slot [`SLOT_CUSTODY`] (`9E`, card authentication), generated as P-256
//! with PIN policy never and touch policy never so the daemon can challenge it unattended. `9E`
//! rather than a retired slot (`82`-`95`): the YubiKey .NET SDK's `PivSlot.Attestation` names
//! `9A`, `9C`, `9D` and `9E` as the slots the F9 key attests, and `9E` is the one whose default
//! PIN policy is already "never" (Yubico, "PIV PIN and touch policies").

pub mod codec;
pub mod custody;
pub mod key;
pub mod pin;
pub mod session;
pub mod signing;

#[cfg(test)]
mod tests;

pub use codec::*;
pub use custody::{challenge, provision, provision_with, Challenge, ProvisionError, Provisioned};
pub use key::{ManagementAlgorithm, ManagementKey};
pub use pin::{Pin, PinError};
pub use session::PivSession;
