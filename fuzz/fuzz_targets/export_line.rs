//! Fuzz the export line parser: `mfa_custody::ledger::parse_export_line(&[u8])`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = mfa_custody::ledger::parse_export_line(data);
});
