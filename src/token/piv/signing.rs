//! An officer's approval key, on the officer's own YubiKey: a P-256 key in
//! [`SLOT_SIGNATURE`] (`9C`, digital signature) generated with PIN policy once and touch policy
//! always, so every approval it signs needs the officer's PIN (once per session) and a touch.
//! [`generate`] makes one, [`evidence`] reads what registration sends (ATTEST of `9C` and the
//! F9 certificate), [`sign`] signs an approval digest after VERIFY.
//!
//! The host only moves bytes: the daemon verifies the attestation chain, the policies and,
//! at every approval, the signature against the registered key.

use super::codec::{PinPolicy, TouchPolicy, P256_POINT_LEN, SLOT_SIGNATURE};
use super::key::ManagementKey;
use super::pin::Pin;
use super::session::PivSession;
use crate::token::{CardTransport, TokenError};

/// The PIN policy an approval key is generated with.
pub const APPROVAL_PIN_POLICY: PinPolicy = PinPolicy::Once;
/// The touch policy an approval key is generated with (and the daemon requires).
pub const APPROVAL_TOUCH_POLICY: TouchPolicy = TouchPolicy::Always;

/// What a YubiKey shows of its approval key for registration.
#[derive(Debug, Clone)]
pub struct Evidence {
    /// The firmware the applet reports.
    pub firmware: [u8; 3],
    /// ATTEST's certificate for slot `9C` (DER).
    pub slot_cert: Vec<u8>,
    /// The device's F9 attestation certificate (DER).
    pub device_cert: Vec<u8>,
}

/// Authenticates with `management_key` and GENERATEs a new approval key in `9C` (replacing
/// whatever was there); returns its uncompressed public point.
pub fn generate<T: CardTransport>(
    session: &mut PivSession<T>,
    management_key: &ManagementKey,
) -> Result<[u8; P256_POINT_LEN], TokenError> {
    session.authenticate(management_key)?;
    session.generate_p256(SLOT_SIGNATURE, APPROVAL_PIN_POLICY, APPROVAL_TOUCH_POLICY)
}

/// ATTESTs the key in `9C` and reads the F9 certificate. A slot with no generated key is a
/// card refusal (ATTEST answers `6A80` or `6A88`).
pub fn evidence<T: CardTransport>(session: &mut PivSession<T>) -> Result<Evidence, TokenError> {
    let slot_cert = session.attest(SLOT_SIGNATURE)?;
    let device_cert = session.attestation_certificate()?;
    Ok(Evidence {
        firmware: session.version(),
        slot_cert,
        device_cert,
    })
}

/// VERIFYs `pin` and signs the 32-byte approval `digest` with the key in `9C` (the card waits
/// for a touch); the DER ECDSA signature.
pub fn sign<T: CardTransport>(
    session: &mut PivSession<T>,
    pin: &Pin,
    digest: &[u8; 32],
) -> Result<Vec<u8>, TokenError> {
    sign_when_verified(session, pin, digest, || {})
}

/// [`sign`], calling `verified` once the card has accepted the PIN and before it is asked to
/// sign (and so to wait for the touch): the moment to tell its holder to touch it.
pub fn sign_when_verified<T: CardTransport>(
    session: &mut PivSession<T>,
    pin: &Pin,
    digest: &[u8; 32],
    verified: impl FnOnce(),
) -> Result<Vec<u8>, TokenError> {
    session.verify_pin(pin)?;
    verified();
    session.sign_p256(SLOT_SIGNATURE, digest)
}
