//! Bytes from the vpcd driver: frame splitting and message parsing never panic, and every
//! frame that splits re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mfa_custody::emulator::vpcd::{encode_frame, split_frame, Message};

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while let Ok(Some((payload, used))) = split_frame(rest) {
        let _ = Message::parse(payload);
        let again = encode_frame(payload).expect("a split payload fits a frame");
        assert_eq!(again.as_slice(), &rest[..used]);
        rest = &rest[used..];
    }
});
