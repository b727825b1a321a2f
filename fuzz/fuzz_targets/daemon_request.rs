//! The daemon's request parser on arbitrary bytes: never panics, and what parses re-encodes to
//! a line that parses to the same operation.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mfa_custody::daemon::protocol::{encode_request, parse_request};

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = parse_request(data) {
        let line = encode_request(&req);
        let again = parse_request(&line).expect("re-encoded requests parse");
        assert_eq!(again.id, req.id);
        assert_eq!(again.op.name(), req.op.name());
    }
});
