//! Arbitrary bytes as the software YubiKey's state file (`custody-emu --state`): the parser
//! refuses or accepts, never panics, and a key built from an accepted state answers the PIV and
//! OATH commands below with a status word (signing and attestation are piv_apdus' part: the
//! instrumented curve arithmetic would make this target crawl).
//!
//! An input whose first byte is odd is read as patches to a valid state file (a P-256 key, an
//! object), so the fuzzer reaches the checks behind the JSON syntax: each 3 bytes
//! set the byte at offset `u16` (modulo the length) to the third. An even first byte: the rest
//! is the file.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use mfa_custody::emulator::oath::{AutoTouch, OathState, SecretBytes};
use mfa_custody::emulator::piv::keys;
use mfa_custody::emulator::piv::state::{PivState, SlotKey};
use mfa_custody::emulator::{state, SoftKey};
use mfa_custody::token::management::FormFactor;

/// A valid state file with a P-256 key in 9A and a CHUID.
fn template() -> Vec<u8> {
    let mut piv = PivState::factory();
    for (slot, algorithm) in [(0x9A, 0x11)] {
        piv.put_key(SlotKey {
            slot,
            algorithm,
            pin_policy: 2,
            touch_policy: 1,
            origin: 1,
            secret: SecretBytes::new(keys::generate(algorithm).expect("a key")),
        });
    }
    piv.put_object(0x5F_C102, &[0x30, 0x00]);
    state::encode(
        &OathState::blank([0; 8]),
        Some(&piv),
        Path::new("fuzz.state"),
    )
    .expect("encodes")
    .to_vec()
}

static TEMPLATE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let Some((first, rest)) = data.split_first() else {
        return;
    };
    let patched;
    let file = if first & 1 == 1 {
        let mut doc = TEMPLATE.get_or_init(template).clone();
        for patch in rest.chunks_exact(3) {
            let at = usize::from(u16::from_be_bytes([patch[0], patch[1]])) % doc.len();
            doc[at] = patch[2];
        }
        patched = doc;
        &patched[..]
    } else {
        rest
    };
    let Ok(saved) = state::parse(file, Path::new("fuzz.state")) else {
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
    for slot in [0x80, 0x81, 0x9B] {
        apdus.push(vec![0x00, 0xF7, 0x00, slot]);
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
