//! Outside bytes into the token codecs: command APDUs (what a card parses), response APDUs
//! (what a client parses) and TLVs with the bare PUT property tag. Round trips must hold.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mfa_custody::token::apdu::{Command, LengthForm, Response};
use mfa_custody::token::management::DeviceConfig;
use mfa_custody::token::tlv;

fuzz_target!(|data: &[u8]| {
    if let Ok(cmd) = Command::parse(data) {
        // Whatever parsed encodes, and the encoding parses back to the same command.
        if let Ok(bytes) = cmd.to_bytes(LengthForm::Auto) {
            let again = Command::parse(&bytes).expect("re-parse of an encoded command");
            assert_eq!(
                (again.cla, again.ins, again.p1, again.p2),
                (cmd.cla, cmd.ins, cmd.p1, cmd.p2)
            );
            assert_eq!(*again.data, *cmd.data);
        }
        let _ = cmd.chain();
    }
    if let Ok(resp) = Response::parse(data) {
        assert_eq!(resp.to_bytes().as_slice(), data);
    }
    let _ = tlv::parse_with_bare(data, &[0x78]);
    let _ = tlv::parse(data);
    let _ = DeviceConfig::parse(data);
});
