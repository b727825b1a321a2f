//! Fuzz offline export verification over whole inputs:
//! `mfa_custody::ledger::verify_export(reader, &key, None)`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mfa_custody::ledger::{verify_export, CheckpointPublicKey};

fuzz_target!(|data: &[u8]| {
    let key = CheckpointPublicKey([0x42; 32]);
    let _ = verify_export(data, &key, None);
});
