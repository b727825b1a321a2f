//! The PIV client against the in-process software YubiKey (the same applet custody-emu puts
//! behind pcscd), its parsers against answers that must fail, and the redaction of the
//! management key. The host side of each check is independent code: `ring` verifies the
//! signatures, [`crate::token::attestation`] the attestation chain to the emulator's test CA.

#![allow(clippy::unwrap_used)]
use ring::digest::{digest, SHA256};
use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1};
use zeroize::Zeroizing;

use super::*;
use crate::emulator::oath::{AutoTouch, OathState};
use crate::emulator::piv::attest::TEST_CA_CERT_PEM;
use crate::emulator::SoftKey;
use crate::token::apdu::StatusWord;
use crate::token::attestation::{verify_attestation, Evidence, Expected, PivSlot, TrustAnchors};
use crate::token::management::FormFactor;
use crate::token::TokenError;

const SERIAL: u32 = 10_000_077;

fn softkey(serial: u32, firmware: [u8; 3]) -> SoftKey {
    SoftKey::new(
        serial,
        firmware,
        FormFactor::UsbAKeychain,
        OathState::fresh(),
        Box::new(AutoTouch),
    )
}

fn sha256(message: &[u8]) -> [u8; 32] {
    digest(&SHA256, message).as_ref().try_into().unwrap()
}

/// What registration does: factory key, a random one set, a custody key generated and attested.
fn by_hand(key: &mut SoftKey) -> (ManagementKey, [u8; P256_POINT_LEN], Vec<u8>, Vec<u8>) {
    let mut piv = PivSession::select(&mut *key).unwrap();
    let algorithm = piv.management_algorithm().unwrap();
    piv.authenticate(&ManagementKey::factory_default(algorithm).unwrap())
        .unwrap();
    let fresh = ManagementKey::random(ManagementAlgorithm::for_firmware(piv.version())).unwrap();
    piv.set_management_key(&fresh).unwrap();
    let point = piv
        .generate_p256(SLOT_CUSTODY, PinPolicy::Never, TouchPolicy::Never)
        .unwrap();
    let slot_cert = piv.attest(SLOT_CUSTODY).unwrap();
    let device_cert = piv.attestation_certificate().unwrap();
    (fresh, point, slot_cert, device_cert)
}

#[test]
fn provisions_attests_and_signs_on_5_4() {
    let mut key = softkey(SERIAL, [5, 4, 3]);
    let (management, point, slot_cert, device_cert) = by_hand(&mut key);
    assert_eq!(management.algorithm(), ManagementAlgorithm::Aes192);

    let anchors = TrustAnchors::from_pem(TEST_CA_CERT_PEM).unwrap();
    let evidence = Evidence {
        slot_cert: &slot_cert,
        device_cert: &device_cert,
        extra_intermediates: &[],
    };
    let expected = Expected {
        slot: PivSlot::CARD_AUTHENTICATION,
        serial: SERIAL,
    };
    let attested =
        verify_attestation(&evidence, &expected, &anchors, jiff::Timestamp::now()).unwrap();
    assert_eq!(attested.serial, SERIAL);
    assert_eq!(attested.pin_policy, PinPolicy::Never);
    assert_eq!(attested.touch_policy, TouchPolicy::Never);
    assert!(
        attested.public_key_spki.ends_with(&point),
        "the SPKI holds the generated point"
    );
    // Yubico's roots do not trust the test CA.
    assert!(verify_attestation(
        &evidence,
        &expected,
        &TrustAnchors::yubico(),
        jiff::Timestamp::now()
    )
    .is_err());

    // The key answers a challenge unattended, and the signature verifies against the point.
    let mut piv = PivSession::select(&mut key).unwrap();
    let nonce = b"nonce: 5f0c2a...";
    let sig = piv.sign_p256(SLOT_CUSTODY, &sha256(nonce)).unwrap();
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &point)
        .verify(nonce, &sig)
        .unwrap();
    assert!(UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &point)
        .verify(b"another nonce", &sig)
        .is_err());

    // The new management key authenticates; the factory default no longer does.
    piv.authenticate(&management).unwrap();
    let default = ManagementKey::factory_default(ManagementAlgorithm::Aes192).unwrap();
    let err = piv.authenticate(&default).unwrap_err();
    assert!(
        matches!(
            err,
            TokenError::Refused {
                ins: 0x87,
                sw: StatusWord::SecurityStatusNotSatisfied,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn a_copy_with_the_same_serial_cannot_answer_for_the_key() {
    let mut original = softkey(SERIAL, [5, 7, 1]);
    let (_, point, _, _) = by_hand(&mut original);
    let mut copy = softkey(SERIAL, [5, 7, 1]);
    by_hand(&mut copy);
    let nonce = b"fresh nonce";
    let sig = PivSession::select(&mut copy)
        .unwrap()
        .sign_p256(SLOT_CUSTODY, &sha256(nonce))
        .unwrap();
    assert!(UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &point)
        .verify(nonce, &sig)
        .is_err());
}

#[test]
fn firmware_before_5_4_gets_3des() {
    let mut key = softkey(SERIAL, [5, 2, 7]);
    let (management, _, _, _) = by_hand(&mut key);
    assert_eq!(management.algorithm(), ManagementAlgorithm::TripleDes);
    // AES is refused there, as on a real 5.2 (Yubico, "PIV extensions": AES from 5.4).
    let mut piv = PivSession::select(&mut key).unwrap();
    piv.authenticate(&management).unwrap();
    let aes = ManagementKey::random(ManagementAlgorithm::Aes192).unwrap();
    let err = piv.set_management_key(&aes).unwrap_err();
    assert!(
        matches!(
            err,
            TokenError::Refused {
                sw: StatusWord::WrongData,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn an_empty_custody_slot_is_a_refusal_not_a_signature() {
    let mut key = softkey(SERIAL, [5, 4, 3]);
    let mut piv = PivSession::select(&mut key).unwrap();
    let err = piv.sign_p256(SLOT_CUSTODY, &[0; 32]).unwrap_err();
    assert!(
        matches!(err, TokenError::Refused { ins: 0x87, .. }),
        "{err}"
    );
    let err = piv.attest(SLOT_CUSTODY).unwrap_err();
    assert!(
        matches!(err, TokenError::Refused { ins: 0xF9, .. }),
        "{err}"
    );
}

#[test]
fn generate_needs_the_management_key() {
    let mut key = softkey(SERIAL, [5, 4, 3]);
    let mut piv = PivSession::select(&mut key).unwrap();
    let err = piv
        .generate_p256(SLOT_CUSTODY, PinPolicy::Never, TouchPolicy::Never)
        .unwrap_err();
    assert!(
        matches!(
            err,
            TokenError::Refused {
                ins: 0x47,
                sw: StatusWord::SecurityStatusNotSatisfied,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn management_keys_check_their_length_and_never_print() {
    let key =
        ManagementKey::new(ManagementAlgorithm::Aes256, Zeroizing::new(vec![0xA7; 32])).unwrap();
    let shown = format!("{key:?}");
    assert!(!shown.to_lowercase().contains("a7"), "{shown}");
    assert!(shown.contains("redacted"));
    let command = format!("{:?}", codec::set_management_key(0x0C, key.expose()));
    assert!(!command.to_lowercase().contains("a7a7"), "{command}");
    let response = format!(
        "{:?}",
        codec::authenticate_response(0x0C, &[0xA7; 16], &[1; 16])
    );
    assert!(!response.to_lowercase().contains("a7a7"), "{response}");
    assert!(matches!(
        ManagementKey::new(ManagementAlgorithm::TripleDes, Zeroizing::new(vec![0; 16])),
        Err(key::KeyError::Length {
            expected: 24,
            got: 16,
            ..
        })
    ));
}

#[test]
fn known_block_vectors() {
    // FIPS-197 appendix C.2 (AES-192) and the 3DES key with three equal halves, which is
    // single DES: FIPS 81 / NBS test vector 0123456789ABCDEF / "Now is t".
    let aes = ManagementKey::new(
        ManagementAlgorithm::Aes192,
        Zeroizing::new((0u8..24).collect()),
    )
    .unwrap();
    let plain: Vec<u8> = (0u8..16).map(|i| i * 0x11).collect();
    let sealed = aes.encrypt(&plain);
    assert_eq!(
        crate::token::apdu::hex(&sealed).to_lowercase(),
        "dda97ca4864cdfe06eaf70a0ec0d7191"
    );
    assert_eq!(aes.decrypt(&sealed).as_slice(), plain.as_slice());
    let k = [0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF];
    let des = ManagementKey::new(
        ManagementAlgorithm::TripleDes,
        Zeroizing::new([k, k, k].concat()),
    )
    .unwrap();
    let sealed = des.encrypt(b"Now is t");
    assert_eq!(
        crate::token::apdu::hex(&sealed).to_lowercase(),
        "3fa40e8a984d4815"
    );
    assert_eq!(des.decrypt(&sealed).as_slice(), b"Now is t");
}

#[test]
fn fail_malformed_answers() {
    assert!(matches!(
        parse_generated_p256(&[0x49, 0x02, 0x86, 0x00]),
        Err(PivError::MissingTag { tag: 0x7F, .. })
    ));
    assert!(matches!(
        parse_generated_p256(&[0x7F, 0x49, 0x03, 0x86, 0x01, 0x04]),
        Err(PivError::Length {
            tag: 0x86,
            expected: 65,
            got: 1,
            ..
        })
    ));
    let mut compressed = vec![0x7F, 0x49, 0x43, 0x86, 0x41, 0x02];
    compressed.extend([0u8; 64]);
    assert_eq!(
        parse_generated_p256(&compressed),
        Err(PivError::NotUncompressed)
    );
    assert!(matches!(
        parse_witness(&[0x7C, 0x04, 0x80, 0x02, 0, 0], 8),
        Err(PivError::Length {
            tag: 0x80,
            expected: 8,
            got: 2,
            ..
        })
    ));
    assert!(matches!(
        parse_signature(&[0x7C, 0x02, 0x82, 0x00]),
        Err(PivError::Length { tag: 0x82, .. })
    ));
    assert!(matches!(
        parse_certificate_object(&[0x53, 0x03, 0x71, 0x01, 0x00]),
        Err(PivError::MissingTag { tag: 0x70, .. })
    ));
    assert!(matches!(
        parse_certificate_object(&[0x53, 0x05, 0x70]),
        Err(PivError::Tlv { .. })
    ));
    assert_eq!(
        parse_metadata_algorithm(&[0x01, 0x01, 0x0B]).and_then(ManagementAlgorithm::from_byte),
        Err(PivError::UnknownAlgorithm(0x0B))
    );
    assert!(matches!(
        parse_version(&[5, 4]),
        Err(PivError::Length {
            expected: 3,
            got: 2,
            ..
        })
    ));
}

fn test_ca() -> TrustAnchors {
    TrustAnchors::from_pem(TEST_CA_CERT_PEM).unwrap()
}

#[test]
fn provision_verifies_then_challenge_tells_the_original_from_a_copy() {
    let mut original = softkey(SERIAL, [5, 7, 1]);
    let now = jiff::Timestamp::now();
    let p = provision(
        &mut PivSession::select(&mut original).unwrap(),
        SERIAL,
        &test_ca(),
        now,
    )
    .unwrap();
    assert_eq!(p.attested.serial, SERIAL);
    assert_eq!(p.management_key.algorithm(), ManagementAlgorithm::Aes192);
    let spki = p.attested.public_key_spki.clone();

    let nonce = [0x5A; 32];
    let mut piv = PivSession::select(&mut original).unwrap();
    assert_eq!(
        challenge(&mut piv, SERIAL, &spki, &nonce).unwrap(),
        Challenge::Proven
    );
    // The same signature is no answer for another device's serial: the message binds it.
    let sig = piv
        .sign_p256(
            SLOT_CUSTODY,
            &sha256(&custody::challenge_message(SERIAL, &nonce)),
        )
        .unwrap();
    let point = &spki[spki.len() - P256_POINT_LEN..];
    assert!(UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, point)
        .verify(&custody::challenge_message(SERIAL + 1, &nonce), &sig)
        .is_err());

    // A copy: same serial, its own (also attested) key; and a copy with no custody key.
    let mut copy = softkey(SERIAL, [5, 7, 1]);
    provision(
        &mut PivSession::select(&mut copy).unwrap(),
        SERIAL,
        &test_ca(),
        now,
    )
    .unwrap();
    let mut piv = PivSession::select(&mut copy).unwrap();
    assert_eq!(
        challenge(&mut piv, SERIAL, &spki, &nonce).unwrap(),
        Challenge::NotProven
    );
    let mut blank = softkey(SERIAL, [5, 7, 1]);
    let mut piv = PivSession::select(&mut blank).unwrap();
    assert_eq!(
        challenge(&mut piv, SERIAL, &spki, &nonce).unwrap(),
        Challenge::NotProven
    );
    // Garbage recorded as the key proves nothing either.
    let mut piv = PivSession::select(&mut original).unwrap();
    assert_eq!(
        challenge(&mut piv, SERIAL, b"not der", &nonce).unwrap(),
        Challenge::NotProven
    );
}

#[test]
fn provision_refuses_an_untrusted_chain_and_a_serial_mismatch_and_keeps_the_factory_key() {
    let now = jiff::Timestamp::now();
    let mut key = softkey(SERIAL, [5, 4, 3]);
    let err = provision(
        &mut PivSession::select(&mut key).unwrap(),
        SERIAL,
        &TrustAnchors::yubico(),
        now,
    )
    .unwrap_err();
    assert!(matches!(err, ProvisionError::Attestation(_)), "{err}");
    let err = provision(
        &mut PivSession::select(&mut key).unwrap(),
        SERIAL + 1,
        &test_ca(),
        now,
    )
    .unwrap_err();
    assert!(matches!(err, ProvisionError::Attestation(_)), "{err}");
    assert!(
        err.to_string().contains("serial") || format!("{err:?}").contains("Serial"),
        "{err} / {err:?}"
    );
    // Neither changed the management key: the factory default still authenticates.
    let mut piv = PivSession::select(&mut key).unwrap();
    piv.authenticate(&ManagementKey::factory_default(ManagementAlgorithm::TripleDes).unwrap())
        .unwrap();
}

mod approval_key;
