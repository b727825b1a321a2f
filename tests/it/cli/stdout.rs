//! A command whose standard output is closed before it writes its answer (`custody ... | head
//! -0`) ends quietly with status 141 (128 + SIGPIPE): never a panic, and never 0, so that a
//! verification whose answer nobody read does not look valid to the script that ran it.

use std::process::Command;

use crate::support::cli::with_stdout_closed;

/// Runs `custody ARGS` with its standard output already closed; returns (status, stderr).
fn closed(args: &[&str]) -> (Option<i32>, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_custody"));
    cmd.args(args);
    with_stdout_closed(cmd)
}

#[test]
fn an_answer_nobody_reads_ends_with_141_and_no_panic() {
    let tmp = tempfile::tempdir().expect("tmp");
    let export = tmp.path().join("export.jsonl");
    std::fs::write(&export, "{\"not\":\"an export line\"}\n").expect("write");
    let key = "0".repeat(64);
    // The same verification with its answer read: status 1, "invalid: ..." on stdout.
    let read = Command::new(env!("CARGO_BIN_EXE_custody"))
        .args(["audit", "verify", "--pubkey", &key])
        .arg(&export)
        .output()
        .expect("run custody");
    assert_eq!(read.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&read.stdout).starts_with("invalid: "));

    let export = export.to_string_lossy();
    for args in [
        vec!["audit", "verify", "--pubkey", &key, &export],
        vec!["man"],
    ] {
        let (status, stderr) = closed(&args);
        assert_eq!(status, Some(141), "custody {args:?}: {stderr}");
        assert!(stderr.is_empty(), "custody {args:?} wrote: {stderr}");
    }
}
