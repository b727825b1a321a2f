//! Arbitrary APDU sequences to the software YubiKey with the PIV applet selected. The input is
//! split into APDUs at each `0xFF 0xFF` pair; the leading byte picks what is done first, so the
//! fuzzer reaches the states behind the checks: bit 0 authenticates with the factory management
//! key, bit 1 verifies the factory PIN, bit 2 starts with keys in slots 9A (P-256), 9C (P-256,
//! touch always) and 9D (P-384), bit 3 interleaves warm resets. The keys are generated once per
//! process (through the applet) and copied into each run's state: the coverage instrumentation
//! makes every elliptic-curve operation costly.
#![no_main]

mod apdu_stream;

use libfuzzer_sys::fuzz_target;
use mfa_custody::emulator::oath::{AutoTouch, OathState};
use mfa_custody::emulator::piv::keys::management_encrypt;
use mfa_custody::emulator::piv::state::{PivState, DEFAULT_MANAGEMENT_KEY};
use mfa_custody::emulator::SoftKey;
use mfa_custody::token::management::FormFactor;

const SELECT_PIV: &[u8] = &[0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0, 0x00, 0x00, 0x03, 0x08];

fn ok(answer: &[u8]) -> bool {
    answer.ends_with(&[0x90, 0x00])
}

/// Single authentication: the card's challenge, encrypted with the factory key.
fn authenticate(key: &mut SoftKey) {
    let r = key.process(&[0x00, 0x87, 0x03, 0x9B, 0x04, 0x7C, 0x02, 0x81, 0x00]);
    assert!(ok(&r), "the card answers a challenge");
    let challenge: [u8; 8] = r[4..12].try_into().expect("8 bytes");
    let response = management_encrypt(0x03, &DEFAULT_MANAGEMENT_KEY, &challenge).expect("3DES");
    let mut apdu = vec![0x00, 0x87, 0x03, 0x9B, 0x0C, 0x7C, 0x0A, 0x82, 0x08];
    apdu.extend_from_slice(&response);
    assert!(ok(&key.process(&apdu)), "the factory key authenticates");
}

fn blank() -> SoftKey {
    SoftKey::new(
        1,
        [5, 4, 3],
        FormFactor::UsbAKeychain,
        OathState::blank([0; 8]),
        Box::new(AutoTouch),
    )
}

/// A PIV state with keys in 9A, 9C and 9D, generated through the applet.
fn with_keys() -> PivState {
    let mut key = blank();
    assert!(ok(&key.process(SELECT_PIV)));
    authenticate(&mut key);
    for generate in [
        &[0x00, 0x47, 0x00, 0x9A, 0x05, 0xAC, 0x03, 0x80, 0x01, 0x11][..],
        &[
            0x00, 0x47, 0x00, 0x9C, 0x08, 0xAC, 0x06, 0x80, 0x01, 0x11, 0xAB, 0x01, 0x02,
        ],
        &[0x00, 0x47, 0x00, 0x9D, 0x05, 0xAC, 0x03, 0x80, 0x01, 0x14],
    ] {
        assert!(ok(&key.process(generate)), "GENERATE {generate:02X?}");
    }
    key.piv_state().clone()
}

static KEYS: std::sync::OnceLock<PivState> = std::sync::OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let Some((first, rest)) = data.split_first() else {
        return;
    };
    let mut key = blank();
    if first & 4 != 0 {
        key = key.with_piv_state(KEYS.get_or_init(with_keys).clone());
    }
    assert!(ok(&key.process(SELECT_PIV)));
    if first & 1 != 0 {
        authenticate(&mut key);
    }
    if first & 2 != 0 {
        let verify = [
            0x00, 0x20, 0x00, 0x80, 0x08, b'1', b'2', b'3', b'4', b'5', b'6', 0xFF, 0xFF,
        ];
        assert!(ok(&key.process(&verify)), "the factory PIN verifies");
    }
    let resets = first & 8 != 0;
    for (n, apdu) in apdu_stream::apdus(rest).enumerate() {
        apdu_stream::check_answer(&key.process(apdu));
        if resets && n % 7 == 6 {
            key.reset();
            key.process(SELECT_PIV);
        }
        let _ = key.piv_state_changed();
    }
});
