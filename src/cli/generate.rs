//! `custody completions SHELL` and `custody man`: shell completions and the manual page,
//! generated from the same clap definitions as `--help`, so they never drift from the CLI.

use std::io::Write;
use std::process::ExitCode;

use clap::CommandFactory;
use serde_json::json;

use super::{exit, Cli};

/// Prints the completion script of `custody` for `shell`.
pub fn completions(json: bool, shell: clap_complete::Shell) -> ExitCode {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "custody", &mut out);
    emit(
        json,
        &out,
        |content| json!({"ok": true, "shell": shell.to_string(), "content": content}),
    )
}

/// Prints the manual page of `custody` (roff, section 1).
pub fn man(json: bool) -> ExitCode {
    let mut out = Vec::new();
    if let Err(e) = clap_mangen::Man::new(Cli::command()).render(&mut out) {
        eprintln!("custody: rendering the manual page: {e}");
        return ExitCode::from(exit::IO);
    }
    emit(
        json,
        &out,
        |content| json!({"ok": true, "name": "custody.1", "content": content}),
    )
}

/// Writes the generated text, or a JSON object carrying it. A closed pipe (`| head`) is not an
/// error.
fn emit(json: bool, text: &[u8], wrap: impl FnOnce(&str) -> serde_json::Value) -> ExitCode {
    let body = if json {
        let mut line = wrap(&String::from_utf8_lossy(text))
            .to_string()
            .into_bytes();
        line.push(b'\n');
        line
    } else {
        text.to_vec()
    };
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(&body).and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::from(exit::OK),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::from(exit::OK),
        Err(e) => {
            eprintln!("custody: writing to standard output: {e}");
            ExitCode::from(exit::IO)
        }
    }
}
