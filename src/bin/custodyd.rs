//! `custodyd`: the mfa-custody daemon. Starts sealed; officers unseal it over its socket.
//!
//! ```text
//! custodyd --config /etc/custody/custody.toml
//! ```
//!
//! It reads the time from the host's clock only, and refuses to start when asked for a test
//! clock (exit status 2). Exit statuses are listed in docs/daemon.md.
#![forbid(unsafe_code)]

#[path = "custodyd/serve.rs"]
mod serve;

fn main() -> std::process::ExitCode {
    serve::main(None)
}
