//! Tamper evidence: every edit of an export is detected and named; raw byte flips in the
//! database file and wrong keys give the single "corrupted or wrong key" error, never a panic.

use std::path::Path;

use mfa_custody::ledger::{
    export, verify_export, verify_ledger, CheckpointPublicKey, ExportFilter, ExportFormat,
    ExportProblem, Ledger, LedgerError, Projections,
};
use serde_json::{json, Value};

use crate::support::ledger::{canonical, create, ev, join, officers};

fn sample_ledger(dir: &Path) -> Ledger {
    let mut l = create(dir);
    l.append(ev(
        "alice",
        "account.enrolled",
        json!({"account": "123456789012", "email": "root@example.com"}),
    ))
    .expect("append");
    l.append(ev(
        "bob",
        "device.registered",
        json!({"device": "YK-1234567", "model": "5C NFC"}),
    ))
    .expect("append");
    l.append(ev(
        "op1",
        "request.created",
        json!({"account": "123456789012", "ticket": "CHG-1", "reason": "rotate \"keys\""}),
    ))
    .expect("append");
    l.append(ev(
        "alice",
        "request.approved",
        json!({"account": "123456789012", "request": 1}),
    ))
    .expect("append");
    l
}

fn export_lines(l: &mut Ledger, filter: &ExportFilter) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    export(l, filter, ExportFormat::JsonLines, &mut out).expect("export");
    out.split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

fn verify(
    lines: &[Vec<u8>],
    key: &CheckpointPublicKey,
) -> Result<(), mfa_custody::ledger::ExportFailure> {
    verify_export(&join(lines)[..], key, None).map(|_| ())
}

fn mutate(v: &Value) -> Value {
    match v {
        Value::String(s) => {
            let mut chars: Vec<char> = s.chars().collect();
            match chars.first_mut() {
                Some(c) => *c = if *c == '0' { '1' } else { '0' },
                None => chars.push('x'),
            }
            Value::String(chars.into_iter().collect())
        }
        Value::Number(n) => json!(n.as_i64().unwrap_or(0) + 1),
        Value::Object(m) => {
            let mut m = m.clone();
            m.insert("injected".into(), json!(1));
            Value::Object(m)
        }
        other => json!([other.clone()]),
    }
}

#[test]
fn every_field_edit_is_detected_at_its_line() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut l = sample_ledger(&tmp.path().join("l"));
    let key = l.public_key();
    for filter in [
        ExportFilter::default(),
        ExportFilter {
            account: Some("123456789012".into()),
            ..ExportFilter::default()
        },
    ] {
        let lines = export_lines(&mut l, &filter);
        verify(&lines, &key).expect("untouched export verifies");
        for (i, line) in lines.iter().enumerate() {
            let value: Value = serde_json::from_slice(line).expect("json");
            let Value::Object(map) = &value else {
                panic!("object")
            };
            for field in map.keys() {
                let mut edited = map.clone();
                edited.insert(field.clone(), mutate(&map[field]));
                let mut tampered = lines.clone();
                tampered[i] = canonical(&Value::Object(edited));
                let err = verify(&tampered, &key)
                    .expect_err(&format!("edit of {field} on line {} undetected", i + 1));
                assert_eq!(
                    err.line,
                    i as u64 + 1,
                    "edit of {field} on line {}: {err}",
                    i + 1
                );
            }
            // An edit that only breaks canonical form is refused too.
            let mut spaced = lines.clone();
            spaced[i] = serde_json::to_vec_pretty(&value).expect("json");
            assert!(verify(&spaced, &key).is_err());
        }
    }
}

#[test]
fn deletion_duplication_reordering_truncation_are_detected() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut l = sample_ledger(&tmp.path().join("l"));
    let key = l.public_key();
    let lines = export_lines(&mut l, &ExportFilter::default());
    let n = lines.len(); // header, 5 events, checkpoint
    assert_eq!(n, 7);

    for k in 0..n {
        let mut del = lines.clone();
        del.remove(k);
        let err = verify(&del, &key).expect_err("deletion undetected");
        let expected_problem = match k {
            0 => matches!(err.problem, ExportProblem::MissingHeader),
            k if k == n - 1 => matches!(err.problem, ExportProblem::MissingCheckpoint),
            k if k == n - 2 => matches!(err.problem, ExportProblem::CheckpointMismatch { .. }),
            _ => matches!(err.problem, ExportProblem::SeqOutOfOrder { .. }),
        };
        assert!(expected_problem, "delete line {}: {err}", k + 1);

        let mut dup = lines.clone();
        dup.insert(k, lines[k].clone());
        let err = verify(&dup, &key).expect_err("duplication undetected");
        assert_eq!(err.line, k as u64 + 2, "duplicate line {}: {err}", k + 1);
        let named = match k {
            0 => matches!(err.problem, ExportProblem::UnexpectedHeader),
            k if k == n - 1 => matches!(err.problem, ExportProblem::LineAfterCheckpoint),
            _ => matches!(err.problem, ExportProblem::SeqOutOfOrder { .. }),
        };
        assert!(named, "duplicate line {}: {err}", k + 1);
    }
    for k in 1..n - 2 {
        let mut swapped = lines.clone();
        swapped.swap(k, k + 1);
        let err = verify(&swapped, &key).expect_err("reorder undetected");
        assert_eq!(err.line, k as u64 + 1);
        assert!(
            matches!(err.problem, ExportProblem::SeqOutOfOrder { .. }),
            "{err}"
        );
        assert_eq!(err.seq, Some(k as u64 + 1));
    }
    for keep in 0..n {
        let err = verify(&lines[..keep], &key).expect_err("truncation undetected");
        assert!(
            matches!(
                err.problem,
                ExportProblem::MissingCheckpoint | ExportProblem::Empty
            ),
            "{err}"
        );
    }
    // Cut in the middle of the last line.
    let mut bytes = join(&lines);
    bytes.truncate(bytes.len() - 20);
    let err = verify_export(&bytes[..], &key, None).expect_err("cut undetected");
    assert_eq!(err.line, n as u64);
}

#[test]
fn swapped_key_and_edited_checkpoint_are_detected() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut l = sample_ledger(&tmp.path().join("l"));
    let mut other = create(&tmp.path().join("other"));
    let key = l.public_key();
    let lines = export_lines(&mut l, &ExportFilter::default());

    // The auditor pins another ledger's key.
    let err = verify(&lines, &other.public_key()).expect_err("wrong key accepted");
    assert!(
        matches!(err.problem, ExportProblem::BadHeaderSignature),
        "{err}"
    );

    // The exporter re-signs nothing but claims the other key on the checkpoint line.
    let last = lines.len() - 1;
    let mut cp: Value = serde_json::from_slice(&lines[last]).expect("json");
    cp["key_fingerprint"] = json!(other.public_key().fingerprint());
    let mut t = lines.clone();
    t[last] = canonical(&cp);
    let err = verify(&t, &key).expect_err("fingerprint swap accepted");
    assert!(
        matches!(err.problem, ExportProblem::WrongKey { .. }),
        "{err}"
    );

    // A checkpoint from another ledger spliced in.
    let foreign = export_lines(&mut other, &ExportFilter::default());
    let mut t = lines.clone();
    t[last] = foreign.last().expect("line").clone();
    assert!(verify(&t, &key).is_err());

    // An older, genuinely signed checkpoint of the same ledger does not cover the new events.
    let before = export_lines(&mut l, &ExportFilter::default());
    l.append(ev(
        "bob",
        "request.approved",
        json!({"account": "123456789012", "request": 1}),
    ))
    .expect("append");
    let after = export_lines(&mut l, &ExportFilter::default());
    let mut t = after.clone();
    let last = t.len() - 1;
    t[last] = before.last().expect("line").clone();
    let err = verify(&t, &key).expect_err("stale checkpoint accepted");
    assert!(
        matches!(err.problem, ExportProblem::CheckpointMismatch { .. }),
        "{err}"
    );
}

#[test]
fn after_checkpoint_must_be_extended() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut l = sample_ledger(&tmp.path().join("l"));
    let key = l.public_key();
    let kept = l.checkpoint().expect("checkpoint");
    l.append(ev(
        "alice",
        "device.checked_out",
        json!({"device": "YK-1234567"}),
    ))
    .expect("append");
    let lines = export_lines(&mut l, &ExportFilter::default());
    verify_export(&join(&lines)[..], &key, Some(&kept)).expect("extends");

    // An edited kept checkpoint fails its signature.
    let mut forged = kept;
    forged.checkpoint.head.0[0] ^= 1;
    let err = verify_export(&join(&lines)[..], &key, Some(&forged)).expect_err("forged accepted");
    assert!(matches!(err.problem, ExportProblem::AfterBadSignature));

    // A checkpoint of another ledger's history (same key impossible): a later checkpoint than
    // the export reaches.
    l.append(ev(
        "alice",
        "device.checked_in",
        json!({"device": "YK-1234567"}),
    ))
    .expect("append");
    let newer = l.checkpoint().expect("checkpoint");
    let err = verify_export(&join(&lines)[..], &key, Some(&newer)).expect_err("beyond accepted");
    assert!(
        matches!(err.problem, ExportProblem::AfterBeyondExport { .. }),
        "{err}"
    );
}

#[test]
fn live_ledger_verifies_and_counts() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut l = sample_ledger(&tmp.path().join("l"));
    l.checkpoint().expect("checkpoint");
    let report = verify_ledger(&l).expect("verify");
    assert_eq!(report.events, 5);
    assert_eq!(report.checkpoints, 1);
}

fn flip(path: &Path, offset: u64) {
    use std::io::{Read, Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .expect("open");
    let mut b = [0u8; 1];
    f.seek(SeekFrom::Start(offset)).expect("seek");
    f.read_exact(&mut b).expect("read");
    b[0] ^= 0x5a;
    f.seek(SeekFrom::Start(offset)).expect("seek");
    f.write_all(&b).expect("write");
}

#[test]
fn byte_flips_in_the_database_give_corrupted_or_wrong_key() {
    let tmp = tempfile::tempdir().expect("tmp");
    let master = tmp.path().join("master");
    drop(sample_ledger(&master));
    let db_len = std::fs::metadata(master.join("ledger.db"))
        .expect("stat")
        .len();
    let mut detected = 0;
    // Every 97th byte across the whole file, plus the first page's edges.
    let mut offsets: Vec<u64> = (0..db_len).step_by(97).collect();
    offsets.extend([0, 15, 16, 17, 100, 4095, 4096, db_len - 1]);
    for (i, off) in offsets.iter().enumerate() {
        let dir = tmp.path().join(format!("c{i}"));
        std::fs::create_dir(&dir).expect("mkdir");
        for f in ["ledger.db", "keyring.json"] {
            std::fs::copy(master.join(f), dir.join(f)).expect("copy");
        }
        flip(&dir.join("ledger.db"), *off);
        let result = Ledger::open(&dir, &officers(), Projections::ledger_only())
            .and_then(|l| verify_ledger(&l).map(|_| ()));
        match result {
            Err(LedgerError::CorruptedOrWrongKey { .. }) => detected += 1,
            Ok(()) => panic!("flip at offset {off} of {db_len} went undetected"),
            Err(other) => panic!(
                "flip at offset {off}: expected the corrupted-or-wrong-key error, got {other:?}"
            ),
        }
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
    assert_eq!(detected, offsets.len());
}

#[test]
fn another_ledgers_keyring_gives_corrupted_or_wrong_key() {
    let tmp = tempfile::tempdir().expect("tmp");
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    drop(sample_ledger(&a));
    drop(create(&b));
    std::fs::copy(b.join("keyring.json"), a.join("keyring.json")).expect("copy");
    let err = Ledger::open(&a, &officers(), Projections::ledger_only()).expect_err("opened");
    assert!(
        matches!(err, LedgerError::CorruptedOrWrongKey { .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "ledger file {} corrupted or wrong key",
            a.join("ledger.db").display()
        )
    );
}
