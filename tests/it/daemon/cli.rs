//! `custody` against a real `custodyd` on a temporary directory: genesis with `custody init`,
//! the daemon started sealed, two officers unsealing, export through the daemon, offline
//! verification, seal, and the exit statuses when the daemon refuses or is gone.

use std::path::Path;
use std::process::Command;

use crate::support::cli::{self, Custody};
use crate::support::clock::{host_step, totp};
use crate::support::custodyd::{config, spawn_listening, Process};

const ALICE: &str = "alice-Unseal-Phrase-1";
const BOB: &str = "bob-Unseal-Phrase-22";

fn custody(args: &[&str], stdin: &str) -> (i32, String, String) {
    Custody::new(args).stdin(stdin).run().parts()
}

/// Runs `custody` with `stdin` and with `fd3` readable on file descriptor 3.
fn custody_fd3(args: &[&str], stdin: &str, fd3: &str, tmp: &Path) -> (i32, String, String) {
    Custody::new(args)
        .stdin(stdin)
        .fd3(fd3)
        .files_in(tmp)
        .run()
        .parts()
}

fn start(dir: &Path, ledger: &Path, socket: &Path) -> Process {
    let config = config(dir, ledger, socket, "watch_readers = false\n");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_custodyd"));
    cmd.args(["--config", &config.to_string_lossy()]);
    Process(spawn_listening(cmd, socket, &dir.join("custodyd.log")))
}

#[test]
fn cli_status_unseal_export_verify_seal_against_custodyd() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ledger = dir.path().join("ledger");
    let socket = dir.path().join("custodyd.sock");
    let s = socket.to_string_lossy().into_owned();
    let init = cli::init(&ledger, &[("alice", ALICE), ("bob", BOB)]);
    let pubkey = init["public_key"].as_str().expect("key").to_owned();

    let mut daemon = start(dir.path(), &ledger, &socket);
    let (code, out, _) = custody(&["--socket", &s, "status"], "");
    assert_eq!(code, 6, "sealed has a status of its own: {out}");
    assert!(out.contains("SEALED"), "{out}");
    let (code, out, err) = custody(
        &[
            "--socket",
            &s,
            "export",
            "--out",
            "/nonexistent/x",
            "--as",
            "alice",
            "--no-totp",
            "--passphrase-fd",
            "0",
        ],
        "not-yet-a-user\n",
    );
    assert_eq!(code, 4, "sealed → ledger status: {out}{err}");

    let (code, out, err) = custody(
        &[
            "--socket",
            &s,
            "unseal",
            "--officer",
            "alice",
            "--passphrase-fd",
            "0",
        ],
        &format!("{ALICE}\n"),
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("1 of 2"), "{out}");
    let (code, out, _) = custody(&["--socket", &s, "--json", "status"], "");
    assert_eq!(code, 6, "still sealed: {out}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["ok"], true, "an answer, not an error: {v}");
    assert_eq!(v["status"]["unseal_given"], serde_json::json!(["alice"]));
    let (code, out, err) = custody(
        &[
            "--socket",
            &s,
            "--json",
            "unseal",
            "--officer",
            "bob",
            "--passphrase-fd",
            "0",
        ],
        &format!("{BOB}\n"),
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["unseal"]["unsealed"], true);

    // Reads need a person: nobody is a custody user yet.
    let (code, _, err) = custody(&["--socket", &s, "export", "--out", "/nonexistent/x"], "");
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("run custody login first, or pass --as USER"),
        "{err}"
    );

    // Bootstrap: the unseal passphrase, then the new custody passphrase twice.
    const ALICE_USER: &str = "alice-User-Phrase-9";
    let bootstrap = |lines: &str| {
        custody(
            &[
                "--socket",
                &s,
                "user",
                "bootstrap",
                "alice",
                "--passphrase-fd",
                "0",
            ],
            lines,
        )
    };
    let mut shown = String::new();
    let (code, out, err) = bootstrap(&format!("{BOB}\n{ALICE_USER}\n{ALICE_USER}\n"));
    assert_eq!(
        code, 1,
        "bob's keyring passphrase does not make alice: {out}{err}"
    );
    assert!(err.contains("keyring passphrase"), "{err}");
    shown.push_str(&(out + &err));
    let (code, out, err) = bootstrap(&format!("{ALICE}\n{ALICE_USER}\nalice-User-Phrase-8\n"));
    assert_eq!(code, 2, "the two new passphrases differ: {out}{err}");
    assert!(err.contains("differ"), "{err}");
    shown.push_str(&(out + &err));
    let (code, out, err) = bootstrap(&format!("{ALICE}\n{ALICE_USER}\n"));
    assert_eq!(code, 2, "a missing line is named: {out}{err}");
    assert!(err.contains("again"), "{err}");
    shown.push_str(&(out + &err));
    for secret in [ALICE, BOB, ALICE_USER, "alice-User-Phrase-8"] {
        assert!(!shown.contains(secret), "{secret} shown: {shown}");
    }
    let (code, out, err) = custody(
        &[
            "--socket",
            &s,
            "--json",
            "user",
            "bootstrap",
            "alice",
            "--passphrase-fd",
            "0",
        ],
        &format!("{ALICE}\n{ALICE_USER}\n{ALICE_USER}\n"),
    );
    assert_eq!(code, 0, "{out}{err}");
    let seed = serde_json::from_str::<serde_json::Value>(&out).expect("json")["factor"]["base32"]
        .as_str()
        .expect("seed")
        .to_owned();
    // alice logs in (with the previous step's code, so the current one stays for the seal) and
    // exports in her session.
    let (code, out, err) = custody_fd3(
        &[
            "--socket",
            &s,
            "login",
            "--as",
            "alice",
            "--passphrase-fd",
            "0",
            "--totp-fd",
            "3",
        ],
        &format!("{ALICE_USER}\n"),
        &format!("{}\n", totp(&seed, host_step() - 1)),
        dir.path(),
    );
    assert_eq!(code, 0, "{out}{err}");
    let export = dir.path().join("export.jsonl");
    let e = export.to_string_lossy().into_owned();
    let (code, out, err) = custody(&["--socket", &s, "--json", "export", "--out", &e], "");
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["public_key"], pubkey.as_str());
    let (code, out, err) = custody(&["audit", "verify", &e, "--pubkey", &pubkey], "");
    assert_eq!(code, 0, "{out}{err}");
    let text = std::fs::read_to_string(&export).expect("export");
    assert!(text.contains("daemon.unsealed"));
    for secret in [ALICE, BOB] {
        assert!(!text.contains(secret));
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&export)
        .expect("export")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "exports are private");
    let (code, out, err) = bootstrap(&format!("{ALICE}\n{ALICE_USER}\n{ALICE_USER}\n"));
    assert_eq!(code, 1, "only once: {out}{err}");
    assert!(err.contains("already exists"), "{err}");
    // The refusal is in the ledger.
    let export2 = dir.path().join("export2.jsonl");
    let e2 = export2.to_string_lossy().into_owned();
    let (code, _, err) = custody(&["--socket", &s, "export", "--out", &e2], "");
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(&export2).expect("export");
    assert!(
        text.lines().any(|l| l.contains("custody.refused")
            && l.contains("wrong_keyring_passphrase")
            && l.contains("bootstrap_officer")),
        "{text}"
    );
    for secret in [ALICE, BOB, ALICE_USER] {
        assert!(!text.contains(secret));
    }

    // Seal: refused without valid officer credentials, and the daemon stays unsealed.
    let seal = |pass: &str, code: &str| {
        custody_fd3(
            &[
                "--socket",
                &s,
                "seal",
                "--as",
                "alice",
                "--passphrase-fd",
                "0",
                "--totp-fd",
                "3",
            ],
            &format!("{pass}\n"),
            &format!("{code}\n"),
            dir.path(),
        )
    };
    let (code, out, err) = seal("Wrong-Alice-Phrase-1", &totp(&seed, host_step()));
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("authentication failed"), "{err}");
    assert!(!err.contains("Wrong-Alice-Phrase-1") && !out.contains("Wrong-Alice-Phrase-1"));
    let (code, out, _) = custody(&["--socket", &s, "status"], "");
    assert_eq!(code, 0);
    assert!(out.contains("UNSEALED"), "still unsealed: {out}");
    let (code, out, err) = seal(ALICE_USER, &totp(&seed, host_step()));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Sealed"), "{out}");
    let (code, _, err) = seal(ALICE_USER, &totp(&seed, host_step()));
    assert_eq!(code, 4, "already sealed: {err}");

    let _ = daemon.0.kill();
    let _ = daemon.0.wait();
    let (code, _, err) = custody(&["--socket", &s, "status"], "");
    assert_eq!(code, 5, "no daemon → I/O status: {err}");
    assert!(err.contains("cannot connect"), "{err}");
}
