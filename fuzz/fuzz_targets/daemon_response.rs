//! The CLI's parser of custodyd's answer lines (answers, refusals with their continuation,
//! progress lines) on arbitrary bytes: never panics, and what parses re-encodes to a line that
//! parses to the same kind of outcome.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mfa_custody::daemon::protocol::{parse_response, Outcome};

fn kind(o: &Outcome) -> &'static str {
    match o {
        Outcome::Ok(_) => "ok",
        Outcome::Err(_) => "err",
        Outcome::Progress(_) => "progress",
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(resp) = parse_response(data) {
        let again = parse_response(&resp.to_line()).expect("re-encoded answers parse");
        assert_eq!(again.id, resp.id);
        assert_eq!(kind(&again.result), kind(&resp.result));
    }
});
