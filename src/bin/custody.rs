//! `custody`: the mfa-custody command line.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    // Passphrases, second-factor codes, seeds and released codes pass through this process's
    // memory: no core dump may hold them, and no other process of the same user may attach.
    if let Err(e) =
        rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
    {
        eprintln!("custody: warning: cannot disable core dumps (PR_SET_DUMPABLE): {e}");
    }
    match mfa_custody::cli::parse(std::env::args_os()) {
        Ok(cli) => mfa_custody::cli::run(cli),
        Err(status) => status,
    }
}
