//! Fuzz the keyring file parser: `mfa_custody::ledger::Keyring::parse(&[u8])`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = mfa_custody::ledger::Keyring::parse(data);
});
