//! Arbitrary APDU sequences into the software YubiKey's card frame (chaining, chunking, AID
//! dispatch, every applet). The input is split into APDUs at each `0xFF 0xFF` pair; a leading
//! byte picks an applet to select first and whether power events interleave.
#![no_main]

mod apdu_stream;

use libfuzzer_sys::fuzz_target;
use mfa_custody::emulator::oath::{AutoTouch, OathState};
use mfa_custody::emulator::SoftKey;
use mfa_custody::token::management::FormFactor;

const SELECTS: [&[u8]; 4] = [
    &[
        0x00, 0xA4, 0x04, 0x00, 0x07, 0xA0, 0x00, 0x00, 0x05, 0x27, 0x21, 0x01,
    ],
    &[
        0x00, 0xA4, 0x04, 0x00, 0x08, 0xA0, 0x00, 0x00, 0x05, 0x27, 0x47, 0x11, 0x17,
    ],
    &[0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0, 0x00, 0x00, 0x03, 0x08],
    &[
        0x00, 0xA4, 0x04, 0x00, 0x07, 0xA0, 0x00, 0x00, 0x05, 0x27, 0x20, 0x01,
    ],
];

fuzz_target!(|data: &[u8]| {
    let Some((first, rest)) = data.split_first() else {
        return;
    };
    let mut key = SoftKey::new(
        1,
        [5, 4, 3],
        FormFactor::UsbAKeychain,
        OathState::blank([0; 8]),
        Box::new(AutoTouch),
    );
    key.process(SELECTS[usize::from(first & 3)]);
    let power = first & 4 != 0;
    for (n, apdu) in apdu_stream::apdus(rest).enumerate() {
        apdu_stream::check_answer(&key.process(apdu));
        if power && n % 5 == 4 {
            key.reset();
        }
        let _ = key.oath_state_changed();
    }
});
