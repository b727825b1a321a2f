//! Logical edits by an insider who holds the database key: the append-only triggers dropped,
//! then rows of events, checkpoints, projections and meta changed, deleted, duplicated,
//! reordered or truncated, and re-hashed where the forger knows the hash construction.
//! `verify_ledger` must refuse every one; a consistent tail truncation, which leaves a shorter
//! but valid history, is caught by an auditor's kept checkpoint (`verify_export` with
//! `after`). Prints `tamper-insider: class=… tried=… detected=… first=…` per class.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::path::Path;

use rusqlite::params;
use serde_json::json;

use super::chain::{body_hash, event_hash, Hash};
use super::event::{Actor, Kind, NewEvent, Timestamp};
use super::store::{Genesis, Ledger};
use super::verify::{verify_export, verify_ledger};
use super::{export, ExportFilter, ExportFormat, KdfParams, OfficerName, Passphrase, Projections};
use zeroize::Zeroizing;

fn officers() -> Vec<(OfficerName, Passphrase)> {
    ["alice", "bob"]
        .iter()
        .map(|n| {
            (
                OfficerName::parse(n).expect("name"),
                Passphrase::for_unseal(Zeroizing::new(format!("{n}-passphrase-1"))).expect("pass"),
            )
        })
        .collect()
}

fn ev(kind: &str, body: serde_json::Value) -> NewEvent {
    NewEvent::new(
        Actor::parse("officer-a").expect("actor"),
        Kind::parse(kind).expect("kind"),
        &body,
    )
    .expect("body")
}

fn master(dir: &Path) -> u64 {
    let officers = officers();
    let genesis = Genesis {
        officers: &officers,
        threshold: 2,
        kdf: KdfParams::insecure_for_tests(NonZeroU32::new(1000).unwrap_or(NonZeroU32::MIN)),
    };
    let mut l = Ledger::create(dir, &genesis, Projections::ledger_only()).expect("create");
    for i in 0..6 {
        l.append(ev(
            "request.created",
            json!({"account": "123456789012", "request": i, "reason": "rotate \"keys\""}),
        ))
        .expect("append");
        if i % 2 == 1 {
            l.checkpoint().expect("checkpoint");
        }
    }
    l.append(ev("request.approved", json!({"request": 5})))
        .expect("append");
    l.head().expect("head").expect("events").seq
}

fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for f in std::fs::read_dir(from).expect("read dir") {
        let f = f.expect("entry");
        std::fs::copy(f.path(), to.join(f.file_name())).expect("copy");
    }
}

fn open(dir: &Path) -> Ledger {
    Ledger::open(dir, &officers(), Projections::ledger_only()).expect("open")
}

/// The whole ledger as JSON Lines, ending with a checkpoint signed now.
fn export_all(l: &mut Ledger) -> Vec<u8> {
    let mut out = Vec::new();
    export(
        l,
        &ExportFilter::default(),
        ExportFormat::JsonLines,
        &mut out,
    )
    .expect("export");
    out
}

fn unlock(l: &Ledger) {
    l.conn()
        .execute_batch(
            "DROP TRIGGER events_no_update; DROP TRIGGER events_no_delete;
             DROP TRIGGER checkpoints_no_update; DROP TRIGGER checkpoints_no_delete;",
        )
        .expect("drop triggers");
}

/// Re-hashes and re-links every event from `from` on, as a forger who knows the chain's hash
/// construction would.
fn rechain(l: &Ledger, from: u64) {
    type Row = (u64, i64, String, String, Vec<u8>, Vec<u8>);
    let rows: Vec<Row> = {
        let mut s = l
            .conn()
            .prepare("SELECT seq, time, actor, kind, body, prev_hash FROM events ORDER BY seq")
            .expect("prepare");
        let rows = s
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })
            .expect("query")
            .collect::<Result<Vec<Row>, _>>()
            .expect("rows");
        rows
    };
    let mut prev: Option<Hash> = None;
    for (seq, time, actor, kind, body, stored_prev) in rows {
        let p = prev.unwrap_or_else(|| Hash::from_slice(&stored_prev).expect("hash"));
        let bh = body_hash(&body);
        let h = event_hash(
            seq,
            &p,
            Timestamp(time),
            &Actor::parse(&actor).expect("actor"),
            &Kind::parse(&kind).expect("kind"),
            &bh,
        );
        if seq >= from {
            l.conn()
                .execute(
                    "UPDATE events SET body_hash = ?1, prev_hash = ?2, hash = ?3 WHERE seq = ?4",
                    params![bh.0.to_vec(), p.0.to_vec(), h.0.to_vec(), seq],
                )
                .expect("rehash");
            prev = Some(h);
        } else {
            let stored: Vec<u8> = l
                .conn()
                .query_row("SELECT hash FROM events WHERE seq = ?1", [seq], |r| {
                    r.get(0)
                })
                .expect("hash");
            prev = Hash::from_slice(&stored);
        }
    }
}

fn name(e: &impl std::fmt::Debug) -> String {
    let s = format!("{e:?}");
    let n = s
        .split(|c: char| !c.is_alphanumeric() && c != '_')
        .next()
        .unwrap_or("")
        .to_owned();
    // A chain problem names its own kind.
    match s.find("problem: ") {
        Some(i) if n == "Chain" => {
            let rest = &s[i + 9..];
            let p: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            format!("Chain.{p}")
        }
        _ => n,
    }
}

#[test]
fn insider_edits_with_the_key_are_all_detected() {
    let tmp = tempfile::tempdir().expect("tmp");
    let m = tmp.path().join("master");
    let head = master(&m);
    // What an auditor kept from an earlier export: a checkpoint over the current head.
    let kept = {
        let dir = tmp.path().join("kept");
        copy(&m, &dir);
        let kept = open(&dir).checkpoint().expect("checkpoint");
        std::fs::remove_dir_all(&dir).expect("cleanup");
        kept
    };
    let last_checkpoint = open(&m)
        .checkpoints()
        .expect("checkpoints")
        .iter()
        .map(|c| c.checkpoint.seq)
        .max()
        .expect("a checkpoint");
    let mut tally: BTreeMap<&str, (u64, u64, BTreeMap<String, u64>)> = BTreeMap::new();
    let mut n = 0;
    let mut run = |class: &'static str, what: String, edit: &dyn Fn(&Ledger)| {
        n += 1;
        let dir = tmp.path().join(format!("c{n}"));
        copy(&m, &dir);
        let l = open(&dir);
        unlock(&l);
        edit(&l);
        drop(l);
        let t = tally.entry(class).or_default();
        t.0 += 1;
        // The edited file is opened afresh, as the daemon would at its next unseal.
        let mut l = match Ledger::open(&dir, &officers(), Projections::ledger_only()) {
            Ok(l) => l,
            Err(e) => {
                t.1 += 1;
                *t.2.entry(format!("open: {}", name(&e))).or_default() += 1;
                std::fs::remove_dir_all(&dir).expect("cleanup");
                return;
            }
        };
        let found = match verify_ledger(&l) {
            Err(e) => name(&e),
            // Consistent after the last stored checkpoint: only a checkpoint kept outside
            // the file can tell, through an export of the edited ledger.
            Ok(r) => match verify_export(&export_all(&mut l)[..], &l.public_key(), Some(&kept)) {
                Ok(_) => panic!("{class}: {what} undetected ({} events)", r.events),
                Err(e) => format!("kept checkpoint: {}", name(&e.problem)),
            },
        };
        t.1 += 1;
        *t.2.entry(found).or_default() += 1;
        drop(l);
        std::fs::remove_dir_all(&dir).expect("cleanup");
    };
    let columns = [
        ("time", "time + 1"),
        ("actor", "'mallory'"),
        ("kind", "'request.denied'"),
        ("body", "CAST('{\"request\":99}' AS BLOB)"),
        ("body_hash", "randomblob(32)"),
        ("prev_hash", "randomblob(32)"),
        ("hash", "randomblob(32)"),
        ("seq", "seq + 1000"),
    ];
    for seq in 1..=head {
        for (col, value) in columns {
            run("event_column", format!("{col} of {seq}"), &|l| {
                l.conn()
                    .execute(
                        &format!("UPDATE events SET {col} = {value} WHERE seq = ?1"),
                        [seq],
                    )
                    .expect("edit");
            });
        }
        // The body edited, then the whole chain re-hashed from there.
        if seq > 1 {
            let class = if seq > last_checkpoint {
                "rechained_body_after_last_checkpoint"
            } else {
                "rechained_body"
            };
            run(class, format!("body of {seq}"), &|l| {
                l.conn()
                    .execute(
                        "UPDATE events SET body = CAST('{\"request\":99}' AS BLOB) WHERE seq = ?1",
                        [seq],
                    )
                    .expect("edit");
                rechain(l, seq);
            });
        }
        if seq < head {
            run("deletion", format!("event {seq}"), &|l| {
                l.conn()
                    .execute("DELETE FROM events WHERE seq = ?1", [seq])
                    .expect("delete");
            });
            run(
                "reordering",
                format!("events {seq} and {}", seq + 1),
                &|l| {
                    l.conn()
                        .execute_batch(&format!(
                            "UPDATE events SET seq = -1 WHERE seq = {seq};
                         UPDATE events SET seq = {seq} WHERE seq = {};
                         UPDATE events SET seq = {} WHERE seq = -1;",
                            seq + 1,
                            seq + 1
                        ))
                        .expect("swap");
                },
            );
        }
        run("duplication", format!("event {seq} appended again"), &|l| {
            l.conn()
                .execute(
                    "INSERT INTO events SELECT ?2, time, actor, kind, body, body_hash, prev_hash, hash
                     FROM events WHERE seq = ?1",
                    params![seq, head + 1],
                )
                .expect("duplicate");
        });
    }
    for (col, value) in [
        ("head", "randomblob(32)"),
        ("signature", "randomblob(64)"),
        ("seq", "seq + 1"),
        ("seq", "seq + 100"),
    ] {
        run("checkpoint", format!("{col} = {value}"), &|l| {
            l.conn()
                .execute(
                    &format!("UPDATE checkpoints SET {col} = {value} WHERE rowid = 1"),
                    [],
                )
                .expect("edit");
        });
    }
    run("checkpoint", "a forged row".into(), &|l| {
        l.conn()
            .execute(
                "INSERT INTO checkpoints SELECT seq + 1, time, head, signature FROM checkpoints LIMIT 1",
                [],
            )
            .expect("insert");
    });
    for sql in [
        "UPDATE users SET active = 1 - active",
        "DELETE FROM users WHERE rowid = 1",
        "INSERT INTO users SELECT 'mallory', roles, active, since_seq FROM users LIMIT 1",
        "UPDATE meta SET value = 'ffffffffffffffffffffffffffffffff' WHERE key = 'ledger_id'",
    ] {
        run("projection_or_meta", sql.to_owned(), &|l| {
            l.conn().execute(sql, []).expect(sql);
        });
    }

    // A consistent tail truncation (events after the last checkpoint and that checkpoint's
    // successors removed) leaves a valid, shorter history: the file alone cannot tell. The
    // auditor's kept checkpoint does.
    let dir = tmp.path().join("truncated");
    copy(&m, &dir);
    let kept = {
        let mut l = open(&dir);
        let kept = l.checkpoint().expect("checkpoint at the head");
        unlock(&l);
        l.conn()
            .execute("DELETE FROM events WHERE seq > ?1", [head - 2])
            .expect("truncate");
        l.conn()
            .execute("DELETE FROM checkpoints WHERE seq > ?1", [head - 2])
            .expect("truncate");
        kept
    };
    let mut l = open(&dir);
    let out = export_all(&mut l);
    let t = tally.entry("tail_truncation").or_default();
    t.0 += 1;
    match verify_export(&out[..], &l.public_key(), Some(&kept)) {
        Ok(_) => panic!("a truncated history passed the kept checkpoint"),
        Err(e) => {
            t.1 += 1;
            *t.2.entry(name(&e.problem)).or_default() += 1;
        }
    }

    let (mut tried, mut detected) = (0, 0);
    for (class, (t, d, first)) in &tally {
        tried += t;
        detected += d;
        let first: Vec<String> = first.iter().map(|(k, v)| format!("{k}:{v}")).collect();
        println!(
            "tamper-insider: class={class} tried={t} detected={d} first={}",
            first.join(",")
        );
    }
    println!("tamper-insider: total tried={tried} detected={detected}");
    assert_eq!(tried, detected);
}

#[test]
fn a_time_set_back_and_rehashed_is_refused_live_and_offline() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("l");
    let head = master(&dir);
    let mut l = open(&dir);
    let previous = l.event(head - 1).expect("read").expect("event").header.time;
    // The newest event (after the last checkpoint) moved a second before its predecessor, and
    // re-hashed: every hash and link holds.
    unlock(&l);
    l.conn()
        .execute(
            "UPDATE events SET time = ?1 WHERE seq = ?2",
            params![previous.0 - 1000, head],
        )
        .expect("edit");
    rechain(&l, head);
    match verify_ledger(&l) {
        Err(super::LedgerError::Chain {
            seq,
            problem: super::ChainProblem::TimeWentBackwards { time, previous: p },
        }) => {
            assert_eq!(seq, head);
            assert_eq!((time.0, p), (previous.0 - 1000, previous));
        }
        other => panic!("unexpected {other:?}"),
    }
    // An export of it carries a valid checkpoint over the edited head; the times still tell.
    let failure =
        verify_export(&export_all(&mut l)[..], &l.public_key(), None).expect_err("refused");
    assert_eq!(failure.seq, Some(head));
    assert!(
        matches!(
            failure.problem,
            super::ExportProblem::TimeWentBackwards { .. }
        ),
        "{failure}"
    );
    assert!(failure.to_string().contains("before the previous event's"));
}
