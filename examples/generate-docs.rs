//! Prints `docs/cli.md` (Markdown): the fixed prose of `src/cli/cli_header.md`, then every
//! command's reference, from the same clap definitions as `custody --help`. `make docs` runs it;
//! `tests/it/cli/generate.rs` checks that docs/cli.md is what it prints. It is not a command of
//! `custody`, so completions and manual pages list no hidden command.
#![forbid(unsafe_code)]

use std::io::Write;

fn main() -> std::process::ExitCode {
    let text = mfa_custody::cli::generate::cli_markdown();
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("generate-docs: writing docs/cli.md: {e}");
            std::process::ExitCode::from(5)
        }
    }
}
