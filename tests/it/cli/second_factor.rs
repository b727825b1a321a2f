//! Nobody is asked for a second factor they lack: `custody login --as NAME` at a real terminal
//! (a pseudo-terminal, its controlling terminal) against a real `custodyd`, with no flag. An
//! operator types a passphrase and is logged in, never asked for a code; an officer is asked
//! for the code only after custodyd has found the passphrase right, and that question counts
//! nothing against them; a mistyped passphrase is refused before any code is asked for.

use crate::support;

use std::ffi::OsStr;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use support::daemon::{user_pass, world, World};
use support::tty::Terminal;

/// `custody login --as WHO` on a new terminal, keeping its session in a runtime directory of
/// its own (the world's keeps the reader's session for the test's reads).
fn login_at_a_terminal(w: &World, who: &str, runtime: &Path) -> (Terminal, std::process::Child) {
    Terminal::spawn(
        env!("CARGO_BIN_EXE_custody"),
        &[
            OsStr::new("--socket"),
            w.socket.as_os_str(),
            OsStr::new("login"),
            OsStr::new("--as"),
            OsStr::new(who),
        ],
        &[("XDG_RUNTIME_DIR", runtime.as_os_str())],
    )
}

fn runtime(w: &World, name: &str) -> PathBuf {
    let d = w.dir.path().join(name);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&d)
        .expect("a runtime directory");
    d
}

/// `failed_attempts` of `who`, read with the world's reader session.
fn failed_attempts(w: &World, who: &str) -> u64 {
    let r = w.ok(&["--json", "user", "list"], "");
    let users = r.json()["users"].clone();
    users
        .as_array()
        .unwrap_or_else(|| panic!("users: {}", r.out))
        .iter()
        .find(|u| u["name"] == who)
        .and_then(|u| u["failed_attempts"].as_u64())
        .unwrap_or_else(|| panic!("{who} in {}", r.out))
}

#[test]
fn an_operator_logs_in_with_no_flag_and_is_never_asked_for_a_code() {
    let w = world();
    let run = runtime(&w, "dave-run");
    let (mut t, mut child) = login_at_a_terminal(&w, "dave", &run);
    t.expect("Passphrase of dave: ");
    t.type_line(&user_pass("dave"));
    t.expect("Logged in as dave (operator)");
    assert_eq!(child.wait().expect("login").code(), Some(0), "{}", t.all());
    assert!(
        !t.all().contains("Second-factor"),
        "an operator was asked for a code: {}",
        t.all()
    );
}

#[test]
fn an_officer_is_asked_for_the_code_only_after_a_right_passphrase_uncounted() {
    let mut w = world();
    let run = runtime(&w, "alice-run");
    // A typo: refused at once, before any code is asked for, and counted.
    let (mut t, mut child) = login_at_a_terminal(&w, "alice", &run);
    t.expect("Passphrase of alice: ");
    t.type_line("alice-Mistyped-Phrase-7");
    t.expect("refused (authentication_failed)");
    assert_eq!(child.wait().expect("login").code(), Some(1), "{}", t.all());
    assert!(!t.all().contains("Second-factor"), "{}", t.all());
    assert!(!t.all().contains("factor_code_required"), "{}", t.all());
    assert_eq!(failed_attempts(&w, "alice"), 1);

    // The right passphrase: now the code is asked for, and asking counted nothing.
    let (mut t, mut child) = login_at_a_terminal(&w, "alice", &run);
    t.expect("Passphrase of alice: ");
    t.type_line(&user_pass("alice"));
    t.expect("Second-factor code of alice: ");
    assert_eq!(
        failed_attempts(&w, "alice"),
        1,
        "the question for the code did not count"
    );
    let code = w.code("alice");
    t.type_line(&code);
    t.expect("Logged in as alice (officer)");
    assert_eq!(child.wait().expect("login").code(), Some(0), "{}", t.all());
    assert!(!t.all().contains(&code), "the code was echoed: {}", t.all());
    assert_eq!(failed_attempts(&w, "alice"), 0, "a login clears the count");
}
