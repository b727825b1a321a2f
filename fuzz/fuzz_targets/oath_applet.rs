//! Arbitrary command APDUs to the emulator's OATH applet (through the in-process card, so
//! parsing, chaining and SEND REMAINING are exercised too). The input is split into commands at
//! each `0xFF 0xFF` pair; the applet is first selected, and locked with a known key when the
//! first byte is odd.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mfa_custody::emulator::oath::{AutoTouch, OathApplet, OathCard, OathState};
use mfa_custody::token::apdu::{Command, LengthForm};
use mfa_custody::token::oath::{self, AccessKey};

fuzz_target!(|data: &[u8]| {
    let locked = data.first().is_some_and(|b| b & 1 == 1);
    let key = AccessKey::from_bytes([7; 16]);
    let state = OathState::with_credentials([0; 8], locked.then_some(&key), Vec::new(), 4);
    let mut card = OathCard::new(
        OathApplet::new(state, [5, 4, 3], Box::new(AutoTouch)),
        "fuzz",
    );
    if let Ok(select) = oath::select().to_bytes(LengthForm::Auto) {
        card.answer(&select);
    }
    let mut rest = data.get(1..).unwrap_or_default();
    while !rest.is_empty() {
        let end = rest
            .windows(2)
            .position(|w| w == [0xFF, 0xFF])
            .unwrap_or(rest.len());
        let (command, tail) = rest.split_at(end);
        let _ = card.answer(command);
        // The same bytes straight to the applet, when they parse as a command.
        if let Ok(cmd) = Command::parse(command) {
            let _ = card.applet_mut().process(&cmd);
        }
        let _ = card.applet_mut().state_changed();
        rest = tail.get(2..).unwrap_or_default();
    }
});
