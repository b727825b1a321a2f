//! TLV parsing of card answers and OATH PUT commands: never panics, and what parses re-encodes
//! to the same bytes when every length uses its shortest form.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mfa_custody::token::tlv;

fuzz_target!(|data: &[u8]| {
    if let Ok(items) = tlv::parse(data) {
        let mut out = Vec::new();
        for t in &items {
            tlv::write(&mut out, t.tag, t.value).expect("parsed values fit");
        }
        let again = tlv::parse(&out).expect("re-encoded TLVs parse");
        assert_eq!(again, items);
    }
    let _ = tlv::parse_with_bare(data, &[0x78]);
});
