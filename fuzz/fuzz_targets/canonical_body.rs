//! Fuzz the stored-body check: `mfa_custody::ledger::CanonicalJson::parse(&[u8])` accepts only
//! bytes that re-encode to themselves (whichever of its passes accepted them), and never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mfa_custody::ledger::CanonicalJson;

fuzz_target!(|data: &[u8]| {
    if let Ok(body) = CanonicalJson::parse(data) {
        assert_eq!(body.as_bytes(), data);
        let again = CanonicalJson::from_value(&body.to_value()).expect("a canonical object");
        assert_eq!(again.as_bytes(), data, "accepted bytes that are not canonical");
    }
});
