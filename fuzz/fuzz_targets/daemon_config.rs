//! Fuzz custodyd's configuration parser: `mfa_custody::daemon::config::Config::parse`, the code
//! behind `custodyd --config` and `--check-config`. Any text is answered with a configuration or
//! a list of problems, never a panic; a refused file always has at least one problem.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mfa_custody::daemon::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = Config::parse(text, std::path::Path::new("fuzz.toml")) {
        assert!(!e.problems().is_empty());
    }
});
