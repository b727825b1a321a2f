//! The real `custody` binary, passphrases over a file descriptor (standard input).

use std::path::Path;

use crate::support::cli::{self, describe as text, output as custody};

const PASSES: &str = "alice-Passphrase-1\nbob-Passphrase-22\n";

fn init(dir: &Path) -> serde_json::Value {
    cli::init(
        dir,
        &[
            ("alice", "alice-Passphrase-1"),
            ("bob", "bob-Passphrase-22"),
        ],
    )
}

fn unseal_args(d: &str) -> [&str; 8] {
    cli::opened_by_alice_and_bob(d)
}

#[test]
fn init_export_verify_checkpoint_after() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("ledger");
    let d = dir.to_str().expect("utf8");
    let info = init(&dir);
    let key = info["public_key"].as_str().expect("key").to_owned();
    assert_eq!(info["threshold"], 2);
    assert_eq!(info["fingerprint"].as_str().expect("fp").len(), 39);

    // A checkpoint the auditor keeps.
    let mut args = vec!["audit", "checkpoint"];
    args.extend(unseal_args(d));
    let o = custody(&args, PASSES);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let kept = tmp.path().join("kept.jsonl");
    std::fs::write(&kept, &o.stdout).expect("keep checkpoint");

    // Export to a file.
    let export = tmp.path().join("export.jsonl");
    let e = export.to_str().expect("utf8");
    let mut args = vec!["audit", "export", "--out", e];
    args.extend(unseal_args(d));
    let o = custody(&args, PASSES);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    // Valid.
    let o = custody(&["audit", "verify", e, "--pubkey", &key], "");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).starts_with("valid:"),
        "{}",
        text(&o)
    );
    // Valid and extends the kept checkpoint.
    let k = kept.to_str().expect("utf8");
    let o = custody(
        &[
            "--json", "audit", "verify", e, "--pubkey", &key, "--after", k,
        ],
        "",
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["valid"], true);
    assert_eq!(v["after_seq"], 1);

    // Tampered: the genesis actor edited on line 2 (seq 1).
    let original = std::fs::read_to_string(&export).expect("read");
    let tampered = tmp.path().join("tampered.jsonl");
    std::fs::write(&tampered, original.replacen("alice+bob", "alice+eve", 1)).expect("write");
    let t = tampered.to_str().expect("utf8");
    let o = custody(&["audit", "verify", t, "--pubkey", &key], "");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("line 2 (seq 1)"), "{}", text(&o));
    let o = custody(&["--json", "audit", "verify", t, "--pubkey", &key], "");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    // The common error shape: the verification's line and seq inside `error`.
    assert_eq!(
        (
            v["ok"].clone(),
            v["status"].clone(),
            v["error"]["line"].clone(),
            v["error"]["seq"].clone()
        ),
        (false.into(), 1.into(), 2.into(), 1.into()),
        "{v}"
    );

    // Truncated: the checkpoint line removed.
    let truncated = tmp.path().join("truncated.jsonl");
    let lines: Vec<&str> = original.lines().collect();
    std::fs::write(&truncated, lines[..lines.len() - 1].join("\n") + "\n").expect("write");
    let o = custody(
        &[
            "audit",
            "verify",
            truncated.to_str().expect("utf8"),
            "--pubkey",
            &key,
        ],
        "",
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("truncated"),
        "{}",
        text(&o)
    );

    // Another key.
    let other = init(&tmp.path().join("other"));
    let o = custody(
        &[
            "audit",
            "verify",
            e,
            "--pubkey",
            other["public_key_base64"].as_str().expect("b64"),
        ],
        "",
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));

    // The live ledger verifies.
    let mut args = vec!["--json", "ledger", "verify"];
    args.extend(unseal_args(d));
    let o = custody(&args, PASSES);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["checkpoints"], 2);

    // CSV export to standard output.
    let mut args = vec!["audit", "export", "--format", "csv"];
    args.extend(unseal_args(d));
    let o = custody(&args, PASSES);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let csv = String::from_utf8_lossy(&o.stdout);
    assert!(csv.starts_with("record,seq,time,actor,kind,body,body_hash,prev,hash,signature"));
    let note = csv.lines().nth(1).expect("a second row");
    assert!(
        note.starts_with("note,,,,,\"This CSV is for reading only and proves nothing"),
        "{note}"
    );
    assert!(note.contains("custody audit verify"), "{note}");
}

#[test]
fn wrong_passphrase_fails_and_is_recorded() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("ledger");
    let d = dir.to_str().expect("utf8");
    init(&dir);
    let mut args = vec!["ledger", "verify"];
    args.extend(unseal_args(d));
    let o = custody(&args, "alice-Passphrase-1\nnot-bobs-passphrase\n");
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("wrong passphrase for officer(s) bob"),
        "{}",
        text(&o)
    );
    // One officer alone is not enough.
    let o = custody(
        &[
            "ledger",
            "verify",
            "--ledger",
            d,
            "--officer",
            "alice",
            "--passphrase-fd",
            "0",
        ],
        PASSES,
    );
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    // The next successful unseal records both failures as an event.
    let export = tmp.path().join("e.jsonl");
    let mut args = vec![
        "audit",
        "export",
        "--kind",
        "ledger.unseal_failed",
        "--out",
        export.to_str().expect("utf8"),
    ];
    args.extend(unseal_args(d));
    let o = custody(&args, PASSES);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let exported = std::fs::read_to_string(&export).expect("read");
    assert!(exported.contains("\"attempts\":2"), "{exported}");
    assert!(!dir.join("unseal-failures.log").exists());
}

#[test]
fn weak_or_missing_passphrases_are_usage_errors() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path().join("l");
    let d = d.to_str().expect("utf8");
    let base = [
        &["init"][..],
        &unseal_args(d),
        &["--insecure-test-kdf-iterations", "1000"],
    ]
    .concat();
    let o = custody(&base, "short\nbob-Passphrase-22\n");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("officer alice"),
        "{}",
        text(&o)
    );
    let o = custody(&base, "alllowercaseletters\nbob-Passphrase-22\n");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let o = custody(&base, "alice-Passphrase-1\n");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let o = custody(
        &[
            "init",
            "--ledger",
            d,
            "--officer",
            "alice",
            "--officer",
            "bob",
            "--threshold",
            "1",
            "--passphrase-fd",
            "0",
        ],
        PASSES,
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(!Path::new(d).join("ledger.db").exists());
}

#[test]
fn reshare_adds_and_removes_officers() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("ledger");
    let d = dir.to_str().expect("utf8");
    init(&dir);
    // alice and bob approve; carol joins, bob leaves.
    let mut args = vec![
        "--json",
        "ledger",
        "reshare",
        "--new-officer",
        "alice",
        "--new-officer",
        "carol",
        "--threshold",
        "2",
    ];
    args.extend(unseal_args(d));
    let o = custody(
        &args,
        "alice-Passphrase-1\nbob-Passphrase-22\ncarol-Passphrase-333\n",
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // bob can no longer take part.
    let o = custody(
        &[&["ledger", "verify"][..], &unseal_args(d)].concat(),
        PASSES,
    );
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    // alice and carol can.
    let o = custody(
        &[
            "--json",
            "ledger",
            "verify",
            "--ledger",
            d,
            "--officer",
            "carol",
            "--officer",
            "alice",
            "--passphrase-fd",
            "0",
        ],
        "carol-Passphrase-333\nalice-Passphrase-1\n",
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}
