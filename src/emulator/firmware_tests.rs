//! What depends on the firmware a device claims, checked at each version boundary (just below
//! and at it) through the APDU path the vpcd bridge uses ([`CardTransport::transmit`]).

use std::path::Path;

use super::image::{DeviceImage, Firmware, ImageError};
use super::oath::{firmware_capacity, AutoTouch, OathState};
use super::*;
use crate::token::apdu::LengthForm;
use crate::token::oath::{self as wire, CredentialName, OathSecret, PutRequest};
use crate::token::TokenError;

/// The last version before 5.7.0 in version order.
const BELOW_5_7_0: [u8; 3] = [5, 6, 255];

fn blank_key(firmware: [u8; 3]) -> SoftKey {
    let image = DeviceImage::blank(10_000_000, Firmware(firmware));
    SoftKey::from_image(&image, Path::new("blank"), None, Box::new(AutoTouch))
        .expect("a blank image loads on every firmware")
}

fn send(k: &mut SoftKey, cmd: &Command) -> u16 {
    let bytes = cmd.to_bytes(LengthForm::Auto).expect("encodable");
    let r = k.transmit(&bytes).expect("in-process");
    match r.as_slice() {
        [.., a, b] => u16::from_be_bytes([*a, *b]),
        _ => panic!("response shorter than a status word"),
    }
}

fn put(k: &mut SoftKey, name: &str) -> u16 {
    let name = CredentialName::parse(name).expect("valid name");
    let secret = OathSecret::from_hex("3132333435363738393031323334353637383930").expect("hex");
    send(k, &PutRequest::totp(name, secret).command())
}

/// Fills the applet with `n` credentials, each PUT answered `9000`.
fn fill(k: &mut SoftKey, n: usize) {
    assert_eq!(send(k, &wire::select()), 0x9000);
    for i in 0..n {
        assert_eq!(put(k, &format!("Example:user-{i:02}")), 0x9000, "PUT {i}");
    }
}

#[test]
fn oath_holds_32_credentials_below_5_7_0_and_answers_6a84_beyond() {
    assert_eq!(firmware_capacity(BELOW_5_7_0), 32);
    let mut k = blank_key(BELOW_5_7_0);
    fill(&mut k, 32);
    assert_eq!(put(&mut k, "Example:one-too-many"), 0x6A84);
    // Overwriting a stored credential needs no new room.
    assert_eq!(put(&mut k, "Example:user-00"), 0x9000);
    // Nothing was added by the refused PUT.
    assert_eq!(k.oath_state().credentials().len(), 32);
    // Deleting one makes room for one.
    let gone = CredentialName::parse("Example:user-07").expect("valid");
    assert_eq!(send(&mut k, &wire::delete(&gone)), 0x9000);
    assert_eq!(put(&mut k, "Example:one-too-many"), 0x9000);
    assert_eq!(put(&mut k, "Example:two-too-many"), 0x6A84);
}

#[test]
fn oath_holds_64_credentials_from_5_7_0_and_answers_6a84_beyond() {
    assert_eq!(firmware_capacity([5, 7, 0]), 64);
    let mut k = blank_key([5, 7, 0]);
    fill(&mut k, 64);
    assert_eq!(put(&mut k, "Example:one-too-many"), 0x6A84);
    assert_eq!(k.oath_state().credentials().len(), 64);
}

#[test]
fn an_image_capacity_below_the_firmware_limit_is_the_applet_limit() {
    let text = "serial = 1\nfirmware = \"5.7.0\"\n[oath]\ncapacity = 2\n";
    let image = DeviceImage::parse(text, Path::new("x.toml")).expect("valid");
    let mut k = SoftKey::from_image(&image, Path::new("x.toml"), None, Box::new(AutoTouch))
        .expect("2 fit on 5.7.0");
    fill(&mut k, 2);
    assert_eq!(put(&mut k, "Example:third"), 0x6A84);
}

fn image_error(text: &str) -> String {
    let path = Path::new("x.toml");
    let image = DeviceImage::parse(text, path).expect("valid TOML");
    match image.oath_state(path) {
        Err(e @ ImageError::Oath { .. }) => e.to_string(),
        Err(e) => panic!("expected an [oath] error, got {e}"),
        Ok(_) => panic!("expected {text:?} to be refused"),
    }
}

#[test]
fn fail_an_image_capacity_beyond_what_its_firmware_holds() {
    let e = image_error("serial = 1\nfirmware = \"5.6.255\"\n[oath]\ncapacity = 33\n");
    assert!(
        e.contains("oath.capacity = 33") && e.contains("5.6.255") && e.contains("at most 32"),
        "{e}"
    );
    let e = image_error("serial = 1\nfirmware = \"5.7.0\"\n[oath]\ncapacity = 65\n");
    assert!(
        e.contains("oath.capacity = 65") && e.contains("at most 64"),
        "{e}"
    );
    // At the limit, both load.
    for text in [
        "serial = 1\nfirmware = \"5.6.255\"\n[oath]\ncapacity = 32\n",
        "serial = 1\nfirmware = \"5.7.0\"\n[oath]\ncapacity = 64\n",
    ] {
        let image = DeviceImage::parse(text, Path::new("x.toml")).expect("valid");
        image.oath_state(Path::new("x.toml")).expect(text);
    }
}

fn image_with_credentials(firmware: &str, n: usize) -> String {
    let mut text = format!("serial = 1\nfirmware = \"{firmware}\"\n[oath]\n");
    for i in 0..n {
        text.push_str(&format!(
            "[[oath.credentials]]\nname = \"c{i}\"\nsecret_hex = \"00112233\"\n"
        ));
    }
    text
}

#[test]
fn fail_an_image_with_more_credentials_than_its_firmware_holds() {
    let e = image_error(&image_with_credentials("5.6.255", 33));
    assert!(
        e.contains("33 credentials do not fit a capacity of 32"),
        "{e}"
    );
    let path = Path::new("x.toml");
    let text = image_with_credentials("5.7.0", 33);
    let image = DeviceImage::parse(&text, path).expect("valid");
    let state = image.oath_state(path).expect("33 fit on 5.7.0");
    assert_eq!(state.credentials().len(), 33);
    let e = image_error(&image_with_credentials("5.7.0", 65));
    assert!(
        e.contains("65 credentials do not fit a capacity of 64"),
        "{e}"
    );
}

#[test]
fn fail_a_saved_state_the_image_firmware_cannot_hold() {
    let path = Path::new("x.toml");
    let image = DeviceImage::blank(1, Firmware(BELOW_5_7_0));
    let saved = OathState::with_credentials([0; 8], None, Vec::new(), 64);
    let e = SoftKey::from_image(&image, path, Some(saved), Box::new(AutoTouch))
        .expect_err("64 is beyond 5.6.255");
    assert!(e.to_string().contains("at most 32"), "{e}");
    let saved = OathState::with_credentials([0; 8], None, Vec::new(), 32);
    SoftKey::from_image(&image, path, Some(saved), Box::new(AutoTouch)).expect("32 fit");
}

fn rename(k: &mut SoftKey, old: &str, new: &str) -> u16 {
    let old = CredentialName::parse(old).expect("valid");
    let new = CredentialName::parse(new).expect("valid");
    send(k, &wire::rename(&old, &new))
}

fn names(k: &SoftKey) -> Vec<&str> {
    k.oath_state()
        .credentials()
        .iter()
        .map(|c| c.name.as_str())
        .collect()
}

#[test]
fn rename_is_6d00_below_5_3_1() {
    let mut k = blank_key([5, 3, 0]);
    fill(&mut k, 1);
    assert_eq!(rename(&mut k, "Example:user-00", "Example:renamed"), 0x6D00);
    assert_eq!(names(&k), ["Example:user-00"]);
}

#[test]
fn rename_works_from_5_3_1() {
    let mut k = blank_key([5, 3, 1]);
    fill(&mut k, 2);
    assert_eq!(rename(&mut k, "Example:user-00", "Example:renamed"), 0x9000);
    assert_eq!(names(&k), ["Example:renamed", "Example:user-01"]);
    // The applet's own refusals stay: an unknown name, a name already taken.
    assert_eq!(rename(&mut k, "Example:gone", "Example:x"), 0x6984);
    assert_eq!(rename(&mut k, "Example:renamed", "Example:user-01"), 0x6A80);
}

/// READ CONFIG through the management applet: the answer's data (length byte and TLVs).
fn read_config(k: &mut SoftKey) -> Vec<u8> {
    let select = Command::new(0, 0xA4, 0x04, 0).with_data(crate::token::management::AID.to_vec());
    assert_eq!(send(k, &select), 0x9000);
    let bytes = Command::new(0, crate::token::management::INS_READ_CONFIG, 0, 0)
        .to_bytes(LengthForm::Auto)
        .expect("encodable");
    let r = k.transmit(&bytes).expect("in-process");
    let (data, sw) = r.split_at(r.len() - 2);
    assert_eq!(sw, [0x90, 0x00]);
    data.to_vec()
}

fn config_tags(firmware: [u8; 3]) -> Vec<u8> {
    let answer = read_config(&mut blank_key(firmware));
    let body = answer.get(1..).expect("length byte");
    assert_eq!(answer.first().map(|l| usize::from(*l)), Some(body.len()));
    crate::token::tlv::parse(body)
        .expect("TLVs")
        .iter()
        .map(|t| t.tag)
        .collect()
}

#[test]
fn read_config_reports_usb_enabled_from_5_0_0() {
    assert_eq!(config_tags([4, 255, 255]), [0x01, 0x02, 0x04, 0x05]);
    assert_eq!(config_tags([5, 0, 0]), [0x01, 0x02, 0x03, 0x04, 0x05]);
}

#[test]
fn read_config_reports_pin_complexity_from_5_7_0() {
    assert_eq!(config_tags(BELOW_5_7_0), [0x01, 0x02, 0x03, 0x04, 0x05]);
    assert_eq!(config_tags([5, 7, 0]), [0x01, 0x02, 0x03, 0x04, 0x05, 0x16]);
    let answer = read_config(&mut blank_key([5, 7, 0]));
    // PIN complexity off: `16 01 00`, the last tag.
    assert_eq!(
        answer.get(answer.len() - 3..),
        Some(&[0x16, 0x01, 0x00][..])
    );
}

#[test]
fn read_config_claims_only_the_applets_the_emulator_answers() {
    use crate::token::management::{capability, DeviceConfig};
    for firmware in [[5, 0, 0], BELOW_5_7_0, [5, 7, 0]] {
        let c = DeviceConfig::parse(&read_config(&mut blank_key(firmware))).expect("valid");
        let caps = capability::OTP | capability::PIV | capability::OATH;
        assert_eq!(c.usb_supported, Some(caps));
        assert_eq!(c.usb_enabled, Some(caps));
        assert_eq!(capability::names(caps), ["otp", "piv", "oath"]);
    }
    // The applets it does not claim are not there: FIDO (U2F and FIDO2), OpenPGP, YubiHSM Auth.
    let mut k = blank_key([5, 7, 0]);
    for aid in [
        &[0xA0, 0x00, 0x00, 0x06, 0x47, 0x2F, 0x00, 0x01][..],
        &[0xD2, 0x76, 0x00, 0x01, 0x24, 0x01][..],
        &[0xA0, 0x00, 0x00, 0x05, 0x27, 0x21, 0x07, 0x01][..],
    ] {
        let select = Command::new(0, 0xA4, 0x04, 0).with_data(aid.to_vec());
        assert_eq!(send(&mut k, &select), 0x6A82, "{aid:02X?}");
    }
}

#[test]
fn the_token_layer_identifies_the_key_on_every_firmware() {
    use crate::token::identity::{glimpse, identify};
    for firmware in [[4, 255, 255], [5, 0, 0], [5, 4, 3], BELOW_5_7_0, [5, 7, 0]] {
        let mut k = blank_key(firmware);
        let g = glimpse(&mut k).expect("glimpse");
        assert_eq!(g.serial, Some(10_000_000));
        let [a, b, c] = firmware;
        assert_eq!(g.firmware, Some(format!("{a}.{b}.{c}")));
        assert!(g.oath_device_id.is_some());
        let id = identify(&mut k, None).expect("identify");
        assert_eq!(id.serial, Some(10_000_000));
        let expected: &[&str] = if firmware >= [5, 0, 0] {
            &["otp", "piv", "oath"]
        } else {
            // Firmware 4 reports no enabled capabilities (tag 03 is 5.0.0 and later).
            &[]
        };
        assert_eq!(id.capabilities, expected, "{firmware:?}");
    }
}

/// GENERATE, then ATTEST and the F9 certificate, on a blank key of `firmware`: the status
/// words of the last two.
fn attest_after_generate(
    firmware: [u8; 3],
) -> (Result<Vec<u8>, TokenError>, Result<Vec<u8>, TokenError>) {
    use crate::token::piv::{
        ManagementAlgorithm, ManagementKey, PinPolicy, PivSession, TouchPolicy, SLOT_CUSTODY,
    };
    let mut k = blank_key(firmware);
    let mut s = PivSession::select(&mut k).expect("PIV on every firmware");
    let factory = ManagementKey::factory_default(ManagementAlgorithm::TripleDes).expect("factory");
    s.authenticate(&factory)
        .expect("the factory management key");
    s.generate_p256(SLOT_CUSTODY, PinPolicy::Never, TouchPolicy::Never)
        .expect("P-256 keys on every YubiKey 4 and 5");
    (s.attest(SLOT_CUSTODY), s.attestation_certificate())
}

fn refused_with(r: &Result<Vec<u8>, TokenError>) -> Option<u16> {
    match r {
        Err(TokenError::Refused { sw, .. }) => Some(sw.to_u16()),
        _ => None,
    }
}

/// PIV attestation arrived with firmware 4.3 (YubiKey .NET SDK user's manual, "PIV
/// attestation statements": "Attestation was added as a feature in version 4.3 of the
/// YubiKey, so will not be available on earlier models"; `PivSlot.Attestation`: "only
/// available on YubiKey version 4.3 and later"): before it ATTEST is an unknown instruction
/// and there is no F9 certificate.
#[test]
fn attest_is_6d00_and_the_f9_certificate_absent_below_4_3_0() {
    let (attest, f9) = attest_after_generate([4, 2, 255]);
    assert_eq!(refused_with(&attest), Some(0x6D00), "{attest:?}");
    assert_eq!(refused_with(&f9), Some(0x6A82), "{f9:?}");
}

#[test]
fn attest_and_the_f9_certificate_answer_from_4_3_0() {
    for firmware in [[4, 3, 0], [5, 4, 3]] {
        let (attest, f9) = attest_after_generate(firmware);
        assert!(attest.is_ok_and(|c| c.len() > 100), "{firmware:?}");
        assert!(f9.is_ok_and(|c| c.len() > 100), "{firmware:?}");
    }
}
