//! The two things custody does with a device's PIV applet: [`provision`] gives it an attested
//! custody key at registration, and [`challenge`] has that key sign a fresh nonce at every later
//! reconciliation. A copy of the device (same serial, same OATH device id) has no way to the
//! private key, which never leaves the original's secure element, so it cannot answer.

use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1};

use super::codec::{PinPolicy, TouchPolicy, SLOT_CUSTODY};
use super::key::{KeyError, ManagementAlgorithm, ManagementKey};
use super::session::PivSession;
use crate::token::attestation::{
    verify_attestation, AttestationError, Attested, Evidence, Expected, KeyAlgorithm, PivSlot,
    TrustAnchors,
};
use crate::token::{CardTransport, TokenError};

/// The domain-separation prefix of a challenge: the card signs SHA-256 of this, the device's
/// serial (4 bytes, big-endian) and the nonce, so a signature made for anything else (another
/// device, another protocol) is never a valid answer.
pub const CHALLENGE_CONTEXT: &[u8] = b"mfa-custody/device-challenge/v1\0";

/// A provisioned custody key: what registration records (the management key only sealed).
#[derive(Debug)]
pub struct Provisioned {
    /// The new random management key, now the card's.
    pub management_key: ManagementKey,
    /// What the verified attestation proves.
    pub attested: Attested,
    /// ATTEST's certificate for the custody slot (DER), for auditors to re-verify.
    pub slot_cert: Vec<u8>,
    /// The device's F9 certificate (DER).
    pub device_cert: Vec<u8>,
}

/// Why a device could not be given an attested custody key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProvisionError {
    /// The card refused or the reader failed.
    #[error("PIV applet: {0}")]
    Card(#[from] TokenError),
    /// The attestation does not verify (untrusted chain, serial, slot, ...).
    #[error("the custody key's attestation does not verify: {0}")]
    Attestation(#[from] AttestationError),
    /// No random management key could be made.
    #[error("management key: {0}")]
    Key(#[from] KeyError),
    /// The attested key is not P-256, which custody challenges.
    #[error("the attested custody key is {0:?}, not P-256")]
    NotP256(KeyAlgorithm),
    /// The management key to set is not of the algorithm this firmware takes.
    #[error("the new management key is {given:?}, but this firmware takes {wanted:?}")]
    WrongAlgorithm {
        /// The algorithm of the key given.
        given: ManagementAlgorithm,
        /// The algorithm the firmware takes.
        wanted: ManagementAlgorithm,
    },
}

/// Gives the device a custody key with a random management key of the algorithm its firmware
/// takes ([`ManagementAlgorithm::for_firmware`]); see [`provision_with`].
pub fn provision<T: CardTransport>(
    session: &mut PivSession<T>,
    serial: u32,
    anchors: &TrustAnchors,
    now: jiff::Timestamp,
) -> Result<Provisioned, ProvisionError> {
    let key = ManagementKey::random(ManagementAlgorithm::for_firmware(session.version()))?;
    provision_with(session, serial, anchors, now, key)
}

/// Gives the device a custody key: authenticates with the factory management key, GENERATEs a
/// P-256 key in [`SLOT_CUSTODY`] (PIN policy never, touch policy never, so the daemon can
/// challenge it unattended), ATTESTs it, reads the F9 certificate and verifies the chain against
/// `anchors` for `serial` (the management applet's serial). Only then is `management_key` (the
/// caller's, so that it can be recorded before the card is touched) set: a device whose
/// attestation fails keeps its factory management key. A card that refuses the factory key is
/// authenticated with `management_key` instead: it took that key in an earlier provisioning
/// that stopped before its outcome was recorded. A key of another algorithm than the
/// firmware takes is refused before anything reaches the card.
pub fn provision_with<T: CardTransport>(
    session: &mut PivSession<T>,
    serial: u32,
    anchors: &TrustAnchors,
    now: jiff::Timestamp,
    management_key: ManagementKey,
) -> Result<Provisioned, ProvisionError> {
    let wanted = ManagementAlgorithm::for_firmware(session.version());
    if management_key.algorithm() != wanted {
        return Err(ProvisionError::WrongAlgorithm {
            given: management_key.algorithm(),
            wanted,
        });
    }
    let factory = ManagementKey::factory_default(session.management_algorithm()?)?;
    match session.authenticate(&factory) {
        Ok(()) => {}
        // A card that took `management_key` in an earlier provisioning that stopped before it
        // was recorded: the caller held the key first, so it opens the card.
        Err(TokenError::Refused { .. }) => session.authenticate(&management_key)?,
        Err(e) => return Err(e.into()),
    }
    session.generate_p256(SLOT_CUSTODY, PinPolicy::Never, TouchPolicy::Never)?;
    let slot_cert = session.attest(SLOT_CUSTODY)?;
    let device_cert = session.attestation_certificate()?;
    let attested = verify_attestation(
        &Evidence {
            slot_cert: &slot_cert,
            device_cert: &device_cert,
            extra_intermediates: &[],
        },
        &Expected {
            slot: PivSlot::CARD_AUTHENTICATION,
            serial,
        },
        anchors,
        now,
    )?;
    if attested.key_algorithm != KeyAlgorithm::EcP256 {
        return Err(ProvisionError::NotP256(attested.key_algorithm));
    }
    session.set_management_key(&management_key)?;
    Ok(Provisioned {
        management_key,
        attested,
        slot_cert,
        device_cert,
    })
}

/// What a challenge showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Challenge {
    /// The card signed the nonce with the recorded key.
    Proven,
    /// It did not: a signature that does not verify, an empty slot, or a key that asks for a
    /// PIN or a touch the custody key never asks for.
    NotProven,
}

/// The bytes the custody key signs (SHA-256 of them) for `nonce` on device `serial`.
pub fn challenge_message(serial: u32, nonce: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(CHALLENGE_CONTEXT.len() + 4 + nonce.len());
    m.extend_from_slice(CHALLENGE_CONTEXT);
    m.extend_from_slice(&serial.to_be_bytes());
    m.extend_from_slice(nonce);
    m
}

/// Has the key in [`SLOT_CUSTODY`] sign `nonce` (fresh, from the caller) and verifies the
/// signature with `ring` against the recorded `spki` (DER SubjectPublicKeyInfo). A card that
/// refuses to sign is [`Challenge::NotProven`]; only a failing path (reader gone, malformed
/// answer) is an error.
pub fn challenge<T: CardTransport>(
    session: &mut PivSession<T>,
    serial: u32,
    spki: &[u8],
    nonce: &[u8],
) -> Result<Challenge, TokenError> {
    let message = challenge_message(serial, nonce);
    let digest = ring::digest::digest(&ring::digest::SHA256, &message);
    let mut d = [0u8; 32];
    d.copy_from_slice(digest.as_ref());
    let signature = match session.sign_p256(SLOT_CUSTODY, &d) {
        Ok(s) => s,
        Err(TokenError::Refused { .. }) => return Ok(Challenge::NotProven),
        Err(e) => return Err(e),
    };
    let Some(point) = spki_point(spki) else {
        return Ok(Challenge::NotProven);
    };
    Ok(
        match UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, point).verify(&message, &signature) {
            Ok(()) => Challenge::Proven,
            Err(_) => Challenge::NotProven,
        },
    )
}

/// The public point of a DER SubjectPublicKeyInfo (its BIT STRING), when it parses.
pub fn spki_point(spki: &[u8]) -> Option<&[u8]> {
    use der::Decode;
    let info = spki::SubjectPublicKeyInfoRef::from_der(spki).ok()?;
    info.subject_public_key.as_bytes()
}
