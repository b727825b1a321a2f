//! In-process tests of the card frame.

use proptest::prelude::*;

use super::image::{DeviceImage, Firmware};
use super::oath::{AutoTouch, OathImage, OathState};
use super::*;
use crate::token::management::DeviceConfig;

const SELECT_OATH: &[u8] = &[
    0x00, 0xA4, 0x04, 0x00, 0x07, 0xA0, 0x00, 0x00, 0x05, 0x27, 0x21, 0x01,
];
const SELECT_MGMT: &[u8] = &[
    0x00, 0xA4, 0x04, 0x00, 0x08, 0xA0, 0x00, 0x00, 0x05, 0x27, 0x47, 0x11, 0x17,
];
const SELECT_PIV: &[u8] = &[
    0x00, 0xA4, 0x04, 0x00, 0x0B, 0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00,
];

fn key() -> SoftKey {
    let state = OathState::fresh();
    SoftKey::new(
        12_345_678,
        [5, 4, 3],
        FormFactor::UsbCNano,
        state,
        Box::new(AutoTouch),
    )
}

fn fixture(name: &str) -> SoftKey {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("hsm-fixtures")
        .join(name);
    let image = DeviceImage::load(&path).expect("fixture");
    SoftKey::from_image(&image, &path, None, Box::new(AutoTouch)).expect("fixture")
}

fn sw(r: &[u8]) -> u16 {
    match r {
        [.., a, b] => u16::from_be_bytes([*a, *b]),
        _ => panic!("response shorter than a status word"),
    }
}

fn data(r: &[u8]) -> &[u8] {
    &r[..r.len() - 2]
}

#[test]
fn atr_is_the_yubikey5_atr() {
    assert_eq!(
        crate::token::apdu::hex(key().atr()),
        crate::token::apdu::hex(&[
            0x3B, 0xFD, 0x13, 0x00, 0x00, 0x81, 0x31, 0xFE, 0x15, 0x80, 0x73, 0xC0, 0x21, 0xC0,
            0x57, 0x59, 0x75, 0x62, 0x69, 0x4B, 0x65, 0x79, 0x40
        ])
    );
}

#[test]
fn aid_dispatch_by_prefix() {
    let mut k = key();
    let r = k.process(SELECT_OATH);
    assert_eq!(sw(&r), 0x9000);
    assert_eq!(&data(&r)[..5], &[0x79, 0x03, 5, 4, 3]);
    assert_eq!(k.selected(), Some(Applet::Oath));

    let r = k.process(SELECT_MGMT);
    assert_eq!(sw(&r), 0x9000);
    assert_eq!(data(&r), b"Virtual mgr - FW version 5.4.3");
    assert_eq!(k.selected(), Some(Applet::Management));

    let r = k.process(SELECT_PIV);
    assert_eq!(sw(&r), 0x9000);
    assert_eq!(k.selected(), Some(Applet::Piv));

    // The OTP AID in its 8-byte form.
    let r = k.process(&[
        0x00, 0xA4, 0x04, 0x00, 0x08, 0xA0, 0, 0, 5, 0x27, 0x20, 1, 1,
    ]);
    assert_eq!(sw(&r), 0x9000);
    assert_eq!(k.selected(), Some(Applet::Otp));
}

#[test]
fn unknown_aid_is_6a82() {
    let mut k = key();
    // FIDO is not emulated.
    let r = k.process(&[
        0x00, 0xA4, 0x04, 0x00, 0x08, 0xA0, 0, 0, 6, 0x47, 0x2F, 0, 1,
    ]);
    assert_eq!(sw(&r), 0x6A82);
    // A prefix of a known AID is not that AID.
    let r = k.process(&[0x00, 0xA4, 0x04, 0x00, 0x03, 0xA0, 0, 0]);
    assert_eq!(sw(&r), 0x6A82);
    let r = k.process(&[0x00, 0xA4, 0x04, 0x00]);
    assert_eq!(sw(&r), 0x6A82);
}

#[test]
fn a4_with_p1_00_goes_to_oath_as_calculate_all() {
    let mut k = fixture("primary.toml");
    assert_eq!(sw(&k.process(SELECT_OATH)), 0x9000);
    let r = k.process(&[
        0x00, 0xA4, 0x00, 0x01, 0x0A, 0x74, 0x08, 0, 0, 0, 0, 0, 0, 0, 1,
    ]);
    assert_eq!(sw(&r), 0x9000);
    // 71 <name> 7C 01 06: touch required, not calculated.
    assert!(data(&r).ends_with(&[0x7C, 0x01, 0x06]));
}

#[test]
fn malformed_apdus_are_6700() {
    let mut k = key();
    assert_eq!(sw(&k.process(&[0x00, 0xA4])), 0x6700);
    assert_eq!(
        sw(&k.process(&[0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0])),
        0x6700
    );
    assert_eq!(sw(&k.process(&[])), 0x6700);
}

#[test]
fn no_applet_selected_is_6d00() {
    let mut k = key();
    assert_eq!(sw(&k.process(&[0x00, 0xFD, 0x00, 0x00])), 0x6D00);
}

#[test]
fn command_chaining_is_reassembled() {
    let mut k = key();
    // SELECT management in two parts: 9000 to the first, the applet's answer to the last.
    let r = k.process(&[0x10, 0xA4, 0x04, 0x00, 0x04, 0xA0, 0x00, 0x00, 0x05]);
    assert_eq!(r.as_slice(), &[0x90, 0x00]);
    assert_eq!(k.selected(), None);
    let r = k.process(&[0x00, 0xA4, 0x04, 0x00, 0x04, 0x27, 0x47, 0x11, 0x17]);
    assert_eq!(sw(&r), 0x9000);
    assert_eq!(k.selected(), Some(Applet::Management));
}

#[test]
fn chain_abandoned_by_another_command() {
    let mut k = key();
    k.process(&[0x10, 0xA4, 0x04, 0x00, 0x02, 0xA0, 0x00]);
    // A different command stands alone; the half chain is gone.
    assert_eq!(sw(&k.process(&[0x00, 0xFD, 0x00, 0x00])), 0x6D00);
    assert_eq!(
        sw(&k.process(&[0x00, 0xA4, 0x04, 0x00, 0x06, 0x00, 0x05, 0x27, 0x47, 0x11, 0x17])),
        0x6A82
    );
}

fn long_oath_key(n: usize) -> SoftKey {
    let mut image = OathImage {
        capacity: Some(32),
        ..OathImage::default()
    };
    for i in 0..n {
        image.credentials.push(super::oath::ImageCredential {
            name: format!("Example-issuer-{i:02}:a-rather-long-account-name@example.test"),
            oath_type: crate::token::oath::OathType::Totp,
            algorithm: crate::token::oath::HashAlgorithm::Sha1,
            digits: 6,
            secret_hex: Some(super::oath::SecretText::new(
                "3132333435363738393031323334353637383930",
            )),
            secret_base32: None,
            touch: true,
            increasing: false,
            counter: 0,
        });
    }
    let state = image.to_state().expect("valid");
    SoftKey::new(
        1,
        [5, 4, 3],
        FormFactor::UsbAKeychain,
        state,
        Box::new(AutoTouch),
    )
}

#[test]
fn long_oath_answers_chunk_with_61xx_and_a5() {
    let mut k = long_oath_key(12);
    k.process(SELECT_OATH);
    let mut r = k.process(&[0x00, 0xA1, 0x00, 0x00]);
    let mut all = Vec::new();
    let mut rounds = 0;
    while sw(&r) >> 8 == 0x61 {
        assert_eq!(data(&r).len(), 256);
        all.extend_from_slice(data(&r));
        // SEND REMAINING continues an OATH answer.
        r = k.process(&[0x00, 0xA5, 0x00, 0x00]);
        rounds += 1;
    }
    assert!(rounds >= 2);
    assert_eq!(sw(&r), 0x9000);
    all.extend_from_slice(data(&r));
    let entries = crate::token::tlv::parse(&all).expect("whole LIST");
    assert_eq!(entries.len(), 12);
}

#[test]
fn oath_does_not_continue_with_c0() {
    let mut k = long_oath_key(12);
    k.process(SELECT_OATH);
    let r = k.process(&[0x00, 0xA1, 0x00, 0x00]);
    assert_eq!(sw(&r) >> 8, 0x61);
    // C0 is not OATH's continuation: the applet sees it (and does not know it).
    assert_eq!(sw(&k.process(&[0x00, 0xC0, 0x00, 0x00])), 0x6D00);
}

#[test]
fn the_frame_chunks_other_applets_with_c0() {
    // The frame picks the continuation by applet; exercise it directly with a long answer.
    let mut k = key();
    k.process(SELECT_PIV);
    let long = Response::new(vec![0xAB; 600], StatusWord::Success);
    let first = k.chunk(long, Some(Applet::Piv));
    assert_eq!(first.sw, StatusWord::MoreData(0));
    assert_eq!(first.data.len(), 256);
    let r = k.process(&[0x00, 0xC0, 0x00, 0x00]);
    assert_eq!(sw(&r), 0x6158);
    assert_eq!(data(&r).len(), 256);
    let r = k.process(&[0x00, 0xC0, 0x00, 0x00, 0x58]);
    assert_eq!(sw(&r), 0x9000);
    assert_eq!(data(&r).len(), 88);
}

#[test]
fn power_cycle_and_reset_clear_volatile_state() {
    for clear in [SoftKey::power_off, SoftKey::power_on, SoftKey::reset] {
        let mut k = long_oath_key(12);
        k.process(SELECT_OATH);
        k.process(&[0x10, 0xA4, 0x04, 0x00, 0x02, 0xA0, 0x00]);
        clear(&mut k);
        assert_eq!(k.selected(), None);
        assert_eq!(sw(&k.process(&[0x00, 0xA1, 0x00, 0x00])), 0x6D00);

        let mut k = long_oath_key(12);
        k.process(SELECT_OATH);
        assert_eq!(sw(&k.process(&[0x00, 0xA1, 0x00, 0x00])) >> 8, 0x61);
        clear(&mut k);
        assert_eq!(sw(&k.process(&[0x00, 0xA5, 0x00, 0x00])), 0x6D00);
    }
}

#[test]
fn management_read_config_tlvs() {
    let mut k = key();
    k.process(SELECT_MGMT);
    let r = k.process(&[0x00, 0x1D, 0x00, 0x00, 0x00]);
    assert_eq!(sw(&r), 0x9000);
    let c = DeviceConfig::parse(data(&r)).expect("valid config");
    assert_eq!(c.serial, Some(12_345_678));
    assert_eq!(c.version, Some([5, 4, 3]));
    assert_eq!(c.form_factor, Some(FormFactor::UsbCNano));
    assert_eq!(c.usb_supported, Some(super::management::CAPABILITIES));
    // Length byte, then exactly the tags 01 02 03 04 05 of firmware 5.4.3; no FIPS tags.
    let tags: Vec<u8> = crate::token::tlv::parse(&data(&r)[1..])
        .expect("tlvs")
        .iter()
        .map(|t| t.tag)
        .collect();
    assert_eq!(tags, [1, 2, 3, 4, 5]);
}

#[test]
fn piv_get_version_and_serial() {
    let mut k = key();
    k.process(SELECT_PIV);
    let r = k.process(&[0x00, 0xFD, 0x00, 0x00, 0x00]);
    assert_eq!(r.as_slice(), &[5, 4, 3, 0x90, 0x00]);
    let r = k.process(&[0x00, 0xF8, 0x00, 0x00, 0x00]);
    assert_eq!(r.as_slice(), &[0x00, 0xBC, 0x61, 0x4E, 0x90, 0x00]);
}

#[test]
fn firmware4_serial_through_the_otp_applet() {
    let image = DeviceImage::blank(4_000_001, Firmware([4, 3, 7]));
    let path = std::path::Path::new("blank");
    let mut k = SoftKey::from_image(&image, path, None, Box::new(AutoTouch)).expect("valid");
    k.process(SELECT_PIV);
    assert_eq!(sw(&k.process(&[0x00, 0xF8, 0x00, 0x00, 0x00])), 0x6D00);
    k.process(&[0x00, 0xA4, 0x04, 0x00, 0x07, 0xA0, 0, 0, 5, 0x27, 0x20, 1]);
    let r = k.process(&[0x00, 0x01, 0x10, 0x00, 0x00]);
    assert_eq!(data(&r), 4_000_001u32.to_be_bytes());
}

#[test]
fn transport_reports_the_reader() {
    let mut k = key().with_reader_name("Yubico YubiKey OTP+FIDO+CCID 00 00");
    assert_eq!(
        CardTransport::reader(&k),
        "Yubico YubiKey OTP+FIDO+CCID 00 00"
    );
    let r = k.transmit(SELECT_PIV).expect("in-process");
    assert_eq!(sw(&r), 0x9000);
}

proptest! {
    #[test]
    fn never_panics_on_arbitrary_bytes(apdus in proptest::collection::vec(
        proptest::collection::vec(any::<u8>(), 0..300), 0..12)) {
        let mut k = long_oath_key(3);
        for a in &apdus {
            let r = k.process(a);
            prop_assert!(r.len() >= 2);
        }
    }

    #[test]
    fn never_panics_after_select(apdus in proptest::collection::vec(
        (any::<u8>(), any::<u8>(), any::<u8>(), proptest::collection::vec(any::<u8>(), 0..40)),
        0..12), which in 0usize..3) {
        let mut k = long_oath_key(3);
        k.process([SELECT_OATH, SELECT_MGMT, SELECT_PIV][which]);
        for (cla, ins, p1, body) in &apdus {
            let mut a = vec![*cla & 0x10, *ins, *p1, 0];
            a.extend_from_slice(body);
            let r = k.process(&a);
            prop_assert!(r.len() >= 2);
        }
    }
}

#[test]
fn power_cycle_clears_oath_authentication() {
    use crate::token::oath::{AccessKey, OathSession, Password, Selected};
    let mut k = fixture("locked.toml");
    let locked = match OathSession::select(&mut k).expect("select") {
        Selected::Locked(s) => s,
        Selected::Ready(_) => panic!("the locked fixture has a password"),
    };
    let key = AccessKey::derive(&Password::from("test-only-password"), &locked.info().salt);
    let mut s = locked.validate(&key).expect("validate");
    assert_eq!(s.list().expect("list after VALIDATE").len(), 1);
    let _ = s.into_transport();
    k.power_off();
    k.power_on();
    assert_eq!(sw(&k.process(&[0x00, 0xA1, 0x00, 0x00])), 0x6D00);
    assert_eq!(sw(&k.process(SELECT_OATH)), 0x9000);
    assert_eq!(sw(&k.process(&[0x00, 0xA1, 0x00, 0x00])), 0x6982);
}

#[test]
fn debug_output_holds_no_secret() {
    let k = fixture("primary.toml");
    let dbg = format!("{k:?}");
    assert!(!dbg.contains("12345678901234567890"));
    assert!(!dbg
        .to_lowercase()
        .contains("3132333435363738393031323334353637383930"));
    let k = fixture("locked.toml");
    assert!(!format!("{k:?}").contains("test-only-password"));
}
