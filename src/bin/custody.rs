//! `custody`: the mfa-custody command line.
#![forbid(unsafe_code)]

use clap::Parser;

fn main() -> std::process::ExitCode {
    // Passphrases, second-factor codes, seeds and released codes pass through this process's
    // memory: no core dump may hold them, and no other process of the same user may attach.
    if let Err(e) =
        rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
    {
        eprintln!("custody: warning: cannot disable core dumps (PR_SET_DUMPABLE): {e}");
    }
    mfa_custody::cli::run(mfa_custody::cli::Cli::parse())
}
