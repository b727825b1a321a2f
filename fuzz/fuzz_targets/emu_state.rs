//! Arbitrary bytes as the software YubiKey's state file (`custody-emu --state`): the parser
//! refuses or accepts, never panics, and a key built from an accepted state answers every PIV
//! and OATH command below with a status word.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use mfa_custody::emulator::oath::AutoTouch;
use mfa_custody::emulator::{state, SoftKey};
use mfa_custody::token::management::FormFactor;

fuzz_target!(|data: &[u8]| {
    let Ok(saved) = state::parse(data, Path::new("fuzz.state")) else {
        return;
    };
    let mut key = SoftKey::new(
        1,
        [5, 7, 0],
        FormFactor::UsbAKeychain,
        saved.oath,
        Box::new(AutoTouch),
    );
    if let Some(piv) = saved.piv {
        key = key.with_piv_state(piv);
    }
    let mut apdus: Vec<Vec<u8>> = vec![
        vec![0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0, 0x00, 0x00, 0x03, 0x08],
        vec![0x00, 0x20, 0x00, 0x80],
        vec![
            0x00, 0x20, 0x00, 0x80, 0x08, b'1', b'2', b'3', b'4', b'5', b'6', 0xFF, 0xFF,
        ],
        vec![0x00, 0x87, 0x03, 0x9B, 0x04, 0x7C, 0x02, 0x80, 0x00],
        vec![0x00, 0x87, 0x0C, 0x9B, 0x04, 0x7C, 0x02, 0x81, 0x00],
        vec![0x00, 0xCB, 0x3F, 0xFF, 0x05, 0x5C, 0x03, 0x5F, 0xFF, 0x01],
        vec![0x00, 0xCB, 0x3F, 0xFF, 0x05, 0x5C, 0x03, 0x5F, 0xC1, 0x05],
    ];
    for slot in [0x80, 0x81, 0x9B, 0x9A, 0x9C, 0x9D, 0x9E, 0x82, 0xF9] {
        apdus.push(vec![0x00, 0xF7, 0x00, slot]);
        apdus.push(vec![0x00, 0xF9, slot, 0x00]);
        for alg in [0x11, 0x14] {
            let mut sign = vec![
                0x00, 0x87, alg, slot, 0x26, 0x7C, 0x24, 0x82, 0x00, 0x81, 0x20,
            ];
            sign.extend_from_slice(&[0x5A; 32]);
            apdus.push(sign);
        }
    }
    apdus.push(vec![
        0x00, 0xA4, 0x04, 0x00, 0x07, 0xA0, 0x00, 0x00, 0x05, 0x27, 0x21, 0x01,
    ]);
    apdus.push(vec![0x00, 0xA1, 0x00, 0x00]);
    for apdu in &apdus {
        let answer = key.process(apdu);
        assert!(answer.len() >= 2, "every answer ends with a status word");
    }
});
