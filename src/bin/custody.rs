//! `custody`: the mfa-custody command line.
#![forbid(unsafe_code)]

use clap::Parser;

fn main() -> std::process::ExitCode {
    mfa_custody::cli::run(mfa_custody::cli::Cli::parse())
}
