//! An officer's approval key in `9C`: generated with PIN once and touch always, attested, and
//! signing only after VERIFY; the PIN never reaches `Debug`, a command's `Debug` or an error.

use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1};
use zeroize::Zeroizing;

use super::*;
use crate::emulator::oath::DenyTouch;
use crate::emulator::piv::attest::TEST_CA_CERT_PEM;
use crate::token::attestation::{verify_attestation, Evidence, Expected, PivSlot, TrustAnchors};
use crate::token::piv::signing;

const PIN: &[u8] = b"123456";

fn pin(bytes: &[u8]) -> Pin {
    Pin::new(Zeroizing::new(bytes.to_vec())).unwrap()
}

fn factory(piv: &mut PivSession<&mut SoftKey>) -> ManagementKey {
    let algorithm = piv.management_algorithm().unwrap();
    ManagementKey::factory_default(algorithm).unwrap()
}

#[test]
fn approval_key_is_attested_with_pin_once_and_touch_always_and_signs_after_verify() {
    let mut key = softkey(SERIAL, [5, 4, 3]);
    let mut piv = PivSession::select(&mut key).unwrap();
    let management = factory(&mut piv);
    let point = signing::generate(&mut piv, &management).unwrap();
    let evidence = signing::evidence(&mut piv).unwrap();
    assert_eq!(evidence.firmware, [5, 4, 3]);

    let anchors = TrustAnchors::from_pem(TEST_CA_CERT_PEM).unwrap();
    let attested = verify_attestation(
        &Evidence {
            slot_cert: &evidence.slot_cert,
            device_cert: &evidence.device_cert,
            extra_intermediates: &[],
        },
        &Expected {
            slot: PivSlot::SIGNATURE,
            serial: SERIAL,
        },
        &anchors,
        jiff::Timestamp::now(),
    )
    .unwrap();
    assert_eq!(attested.pin_policy, PinPolicy::Once);
    assert_eq!(attested.touch_policy, TouchPolicy::Always);
    assert!(attested.public_key_spki.ends_with(&point));

    let digest = sha256(b"an approval message");
    // Without VERIFY the card refuses to sign.
    match piv.sign_p256(SLOT_SIGNATURE, &digest) {
        Err(TokenError::Refused { sw, .. }) => {
            assert_eq!(sw, StatusWord::SecurityStatusNotSatisfied)
        }
        other => panic!("signed without the PIN: {other:?}"),
    }
    let signature = signing::sign(&mut piv, &pin(PIN), &digest).unwrap();
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, point)
        .verify(b"an approval message", &signature)
        .unwrap();
}

#[test]
fn a_wrong_pin_is_refused_with_the_tries_left_and_never_shows_the_pin() {
    let mut key = softkey(SERIAL, [5, 4, 3]);
    let mut piv = PivSession::select(&mut key).unwrap();
    let management = factory(&mut piv);
    signing::generate(&mut piv, &management).unwrap();
    let wrong = pin(b"654321");
    let err = signing::sign(&mut piv, &wrong, &[7; 32]).unwrap_err();
    match &err {
        TokenError::Refused { sw, ins, .. } => {
            assert_eq!(*sw, StatusWord::TriesLeft(2));
            assert_eq!(*ins, codec::ins::VERIFY);
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    for shown in [format!("{err}"), format!("{err:?}")] {
        assert!(!shown.contains("654321"), "{shown}");
    }
}

#[test]
fn a_refused_touch_signs_nothing() {
    let mut key = SoftKey::new(
        SERIAL,
        [5, 4, 3],
        crate::token::management::FormFactor::UsbAKeychain,
        crate::emulator::oath::OathState::fresh(),
        Box::new(DenyTouch {
            timeout: std::time::Duration::ZERO,
        }),
    );
    let mut piv = PivSession::select(&mut key).unwrap();
    let management = factory(&mut piv);
    // GENERATE itself needs no touch.
    signing::generate(&mut piv, &management).unwrap();
    assert!(matches!(
        signing::sign(&mut piv, &pin(PIN), &[1; 32]),
        Err(TokenError::Refused { .. })
    ));
}

#[test]
fn pins_check_their_length_and_never_print() {
    for bad in [&b"12345"[..], b"123456789", b""] {
        let err = Pin::new(Zeroizing::new(bad.to_vec())).unwrap_err();
        assert_eq!(err, PinError::Length { got: bad.len() });
        assert!(err.to_string().contains("6 to 8"), "{err}");
    }
    assert_eq!(
        Pin::new(Zeroizing::new(b"1234\n67".to_vec())).unwrap_err(),
        PinError::Unprintable
    );
    let secret = pin(b"s3cr3tPN");
    let debug = format!("{secret:?}");
    assert!(!debug.contains("s3cr3tPN"), "{debug}");
    assert!(debug.contains("redacted"));
    let command = codec::verify_pin(&secret);
    let debug = format!("{command:?}");
    assert!(!debug.contains("s3cr3tPN"), "{debug}");
    let hex: String = b"s3cr3tPN".iter().map(|b| format!("{b:02X}")).collect();
    assert!(!debug.contains(&hex), "{debug}");
    assert!(debug.contains("redacted"), "{debug}");
    // On the wire: `00 20 00 80 08` and the PIN padded with FF.
    let short = codec::verify_pin(&pin(PIN));
    let bytes = short
        .to_bytes(crate::token::apdu::LengthForm::Auto)
        .unwrap();
    assert_eq!(
        bytes.as_slice(),
        [0x00, 0x20, 0x00, 0x80, 0x08, b'1', b'2', b'3', b'4', b'5', b'6', 0xFF, 0xFF]
    );
}
