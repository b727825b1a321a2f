//! The integration tests, one binary: a module per feature, all sharing [`support`] (the
//! custodyd, pcscd and emulator rigs, the CLI runner, genesis with officers, the test clock and
//! the second-factor codes).
//!
//! Every test runs on its own thread of this one process, so no test changes process-wide
//! state (environment, current directory) and each works in its own temporary directory.
//! The tests that need a private pcscd (`pcscd::`, and the few elsewhere that call
//! [`support::in_harness`]) re-run themselves inside `scripts/with-pcscd.sh`; filter by module
//! path to run one feature: `cargo test --features test-clock --test it -- pcscd::`.

mod support;

mod layers;
mod runbooks;

mod cli {
    mod audit_approvals;
    mod audit_cloudtrail;
    mod audit_report;
    mod ceremony_tty;
    mod core_dump;
    mod expiry;
    mod generate;
    mod golden;
    mod json_shape;
    mod records;
    mod second_factor;
    mod stdout;
    mod strings;
    mod unlock;
}

mod daemon {
    mod admin;
    mod authz;
    mod bench;
    mod cli;
    mod crash;
    mod load;
    mod memlock;
    mod peers;
    mod reader_events;
    mod readers;
    mod sessions;
    mod socket;
    mod strangers;
    mod two_rounds;
}

mod ledger {
    mod cli;
    mod confidentiality;
    mod crash;
    mod projection;
    mod tamper;
    mod tamper_harness;
}

mod oath {
    mod props;
    mod session;
    mod vectors;
}

mod packaging {
    mod deb;
    mod unit;
}

mod pcscd {
    mod attest;
    mod ceremony;
    mod e2e;
    mod faults;
    mod firmware;
    mod harness;
    mod lock;
    mod piv;
    mod piv_client;
    mod piv_tools;
    mod presence;
    mod signed;
    mod signed_ceremony;
    mod signin;
}

mod secrets {
    mod debug;
    mod hygiene;
}
