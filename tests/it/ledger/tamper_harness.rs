//! Randomised tamper harness over a real custody ledger: a `custodyd` scenario (officers,
//! users, an account, requests approved, denied and cancelled, a checkpoint) is exported over
//! the socket, then the export is mutated at random, class by class, and every mutation must
//! fail `verify_export`; the first check that caught it is counted per class. Raw byte flips
//! of the SQLCipher file must fail to open or to verify. Logical edits by an insider who holds
//! the database key are in `src/ledger/insider_tamper.rs`; the exhaustive per-field and
//! per-line cases are in `tests/it/ledger/tamper.rs`.
//!
//! Figures, one line per class then a total:
//! `tamper: class=CLASS tried=N detected=N first=Problem:count,...` and
//! `tamper: total tried=N detected=N`. `CUSTODY_TAMPER_ROUNDS` (default 40) sets the rounds
//! per class; `make soak` runs many more.

use crate::support;

use std::collections::BTreeMap;
use std::path::Path;

use mfa_custody::ledger::chain::{body_hash, event_hash};
use mfa_custody::ledger::export::{parse_export_line, ExportLine};
use mfa_custody::ledger::{
    verify_export, verify_ledger, Actor, CheckpointPublicKey, Hash, Kind, Ledger, LedgerError,
    OfficerName, Passphrase, Projections, Timestamp,
};
use serde_json::{json, Value};
use support::custodyd::{outcome, unseal_pass, user_pass, Custodyd};
use support::ledger::{canonical, join};
use support::rng::Rng;
use zeroize::Zeroizing;

fn rounds() -> usize {
    std::env::var("CUSTODY_TAMPER_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40)
}

/// Runs the scenario and returns (export lines, public key, ledger dir copy, a second
/// export signed by the same key over a shorter history).
fn scenario(dir: &Path) -> (Vec<Vec<u8>>, CheckpointPublicKey, Vec<Vec<u8>>) {
    let d = Custodyd::start(dir, &["alice", "bob", "carol"], "info", "");
    let mut c = d.connect();
    let mut f = d.factors();
    d.unseal_and_bootstrap(&mut c, &mut f, &[]);
    let by = f.auth("alice");
    let r = c.call(json!({"user_add": {"by": [by], "name": "oscar", "roles": ["operator"], "passphrase": user_pass("oscar")}}));
    assert_eq!(outcome(&r), "ok", "{r}");
    let by = f.auth("bob");
    let r = c.call(json!({"account_add": {"by": by, "provider": "aws", "account": "123456789012", "alias": "prod", "root_email": "root@example.test", "credential": "AWS:root@example.test"}}));
    assert_eq!(outcome(&r), "ok", "{r}");
    // The exports and the checkpoint are read in an officer's login session.
    let session = c.login(f.auth("carol"));
    let early = c.call_as(json!("export"), &session);
    let mut ids = Vec::new();
    let mut shown = Vec::new();
    for _ in 0..3 {
        let by = f.auth("oscar");
        let r = c.call(json!({"request_code": {"by": by, "account": "123456789012", "task": "change-root-password", "ticket": "SEC-7", "reason": "rotate the root password after the audit \"finding\""}}));
        ids.push(
            r["result"]["ok"]["request"]["id"]
                .as_str()
                .expect("id")
                .to_owned(),
        );
        shown.push(support::custodyd::seen(&r["result"]["ok"]["request"]));
    }
    for o in ["alice", "carol"] {
        let by = f.auth(o);
        let seen = &shown[0];
        let r = c.call(json!({"approve": {"by": by, "request": ids[0], "seen": seen}}));
        assert_eq!(outcome(&r), "ok", "{r}");
    }
    let by = f.auth("bob");
    assert_eq!(
        outcome(&c.call(json!({"deny": {"by": by, "request": ids[1], "note": "no ticket"}}))),
        "ok"
    );
    let by = f.auth("oscar");
    assert_eq!(
        outcome(&c.call(json!({"cancel": {"by": by, "request": ids[2]}}))),
        "ok"
    );
    assert_eq!(outcome(&c.call_as(json!("checkpoint"), &session)), "ok");
    let r = c.call_as(json!("export"), &session);
    let key = CheckpointPublicKey::parse(
        r["result"]["ok"]["export"]["public_key"]
            .as_str()
            .expect("key"),
    )
    .expect("key");
    let lines = split(
        r["result"]["ok"]["export"]["content"]
            .as_str()
            .expect("content"),
    );
    let early = split(
        early["result"]["ok"]["export"]["content"]
            .as_str()
            .expect("content"),
    );
    d.stop();
    (lines, key, early)
}

fn split(s: &str) -> Vec<Vec<u8>> {
    s.lines().map(|l| l.as_bytes().to_vec()).collect()
}

/// Every path to a scalar or container inside a JSON value.
fn paths(v: &Value, at: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    if !at.is_empty() {
        out.push(at.clone());
    }
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                at.push(k.clone());
                paths(x, at, out);
                at.pop();
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                at.push(format!("#{i}"));
                paths(x, at, out);
                at.pop();
            }
        }
        _ => {}
    }
}

fn get_mut<'a>(v: &'a mut Value, path: &[String]) -> &'a mut Value {
    path.iter().fold(v, |v, k| match k.strip_prefix('#') {
        Some(i) => &mut v[i.parse::<usize>().expect("index")],
        None => &mut v[k.as_str()],
    })
}

/// A change of a value that keeps it valid JSON and makes it differ.
fn mutate_value(v: &Value, rng: &mut Rng) -> Value {
    match v {
        Value::String(s) if !s.is_empty() => {
            let mut chars: Vec<char> = s.chars().collect();
            let i = rng.index(chars.len());
            chars[i] = match chars[i] {
                '0' => '1',
                'a' => 'b',
                c if c.is_ascii_hexdigit() => '0',
                _ => 'x',
            };
            if rng.index(4) == 0 {
                chars.push('!');
            }
            Value::String(chars.into_iter().collect())
        }
        Value::String(_) => json!("x"),
        Value::Number(n) => match rng.index(3) {
            0 => json!(n.as_i64().unwrap_or(0).wrapping_add(1)),
            1 => json!(n.as_i64().unwrap_or(0).wrapping_sub(1)),
            _ => json!(n.to_string()),
        },
        Value::Bool(b) => json!(!b),
        Value::Null => json!(0),
        Value::Array(a) => {
            let mut a = a.clone();
            if a.is_empty() || rng.index(2) == 0 {
                a.push(json!("injected"));
            } else {
                a.remove(rng.index(a.len()));
            }
            Value::Array(a)
        }
        Value::Object(m) => {
            let mut m = m.clone();
            if m.is_empty() || rng.index(2) == 0 {
                m.insert("injected".into(), json!(1));
            } else {
                let k = m.keys().nth(rng.index(m.len())).expect("key").clone();
                m.remove(&k);
            }
            Value::Object(m)
        }
    }
}

/// Re-links every event from `from` (0-based line) on, so that hashes and prev links are
/// all consistent again: what a forger who knows the hash construction would do.
fn rechain(lines: &mut [Vec<u8>], from: usize) {
    let mut prev: Option<Hash> = None;
    for line in lines.iter_mut() {
        let mut v: Value = serde_json::from_slice(line).expect("json");
        if v["type"] != "event" && v["type"] != "stub" {
            continue;
        }
        let seq = v["seq"].as_u64().expect("seq");
        if let Some(p) = prev {
            v["prev"] = json!(p.to_hex());
        }
        if usize::try_from(seq).expect("fits") >= from {
            let bh = if v["type"] == "event" {
                body_hash(&canonical(&v["body"]))
            } else {
                Hash::from_hex(v["body_hash"].as_str().expect("bh")).expect("hex")
            };
            let h = event_hash(
                seq,
                &Hash::from_hex(v["prev"].as_str().expect("prev")).expect("hex"),
                Timestamp(v["time"].as_i64().expect("time")),
                &Actor::parse(v["actor"].as_str().expect("actor")).expect("actor"),
                &Kind::parse(v["kind"].as_str().expect("kind")).expect("kind"),
                &bh,
            );
            v["body_hash"] = json!(bh.to_hex());
            v["hash"] = json!(h.to_hex());
            *line = canonical(&v);
        }
        prev = Some(Hash::from_hex(v["hash"].as_str().expect("hash")).expect("hex"));
    }
}

fn problem_name(p: &impl std::fmt::Debug) -> String {
    let s = format!("{p:?}");
    s.split(|c: char| !c.is_alphanumeric() && c != '_')
        .next()
        .unwrap_or("")
        .to_owned()
}

#[derive(Default)]
struct Tally {
    tried: u64,
    detected: u64,
    first: BTreeMap<String, u64>,
}

#[test]
fn tamper_random_mutations_of_exports_and_database_are_all_detected() {
    let seed = std::env::var("CUSTODY_TAMPER_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_1234_abcd_9876u64);
    println!("tamper: seed={seed}");
    let mut rng = Rng::new(seed);
    let tmp = tempfile::tempdir().expect("tmp");
    let (lines, key, early) = scenario(tmp.path());
    verify_export(&join(&lines)[..], &key, None).expect("the untouched export verifies");
    let n = lines.len();
    let last = n - 1;
    let last_line = lines[last].clone();
    let mut tallies: BTreeMap<&str, Tally> = BTreeMap::new();
    // The auditor keeps the checkpoint of the last export they verified.
    let kept = match parse_export_line(&last_line).expect("checkpoint line") {
        ExportLine::Checkpoint { checkpoint, .. } => checkpoint,
        _ => panic!("the last line is the checkpoint"),
    };
    let mut check = |class: &'static str, tampered: Vec<u8>, what: String| {
        let t = tallies.entry(class).or_default();
        t.tried += 1;
        // Verified as an auditor does who pinned the key and kept the last checkpoint: an
        // older export, genuine but shorter, is refused too.
        match verify_export(&tampered[..], &key, Some(&kept)) {
            Ok(_) => panic!("undetected {class} mutation: {what}"),
            Err(e) => {
                t.detected += 1;
                *t.first.entry(problem_name(&e.problem)).or_default() += 1;
            }
        }
    };
    for _ in 0..rounds() {
        // A field anywhere in any line, bodies and headers included.
        let i = rng.index(n);
        let mut v: Value = serde_json::from_slice(&lines[i]).expect("json");
        let mut ps = Vec::new();
        paths(&v, &mut Vec::new(), &mut ps);
        let p = ps[rng.index(ps.len())].clone();
        let target = get_mut(&mut v, &p);
        let new = mutate_value(target, &mut rng);
        *target = new;
        let mut t = lines.clone();
        t[i] = canonical(&v);
        if t[i] != lines[i] {
            check("field", join(&t), format!("line {} at {p:?}", i + 1));
        }

        // The same edit, re-hashed and re-linked by a forger; only the signed checkpoint
        // (or the signed header) can tell.
        if v["type"] == "event" && p.first().map(String::as_str) == Some("body") {
            let seq = usize::try_from(v["seq"].as_u64().expect("seq")).expect("fits");
            rechain(&mut t, seq);
            check("rechained", join(&t), format!("line {} at {p:?}", i + 1));
        }

        let k = rng.index(n);
        let mut t = lines.clone();
        t.remove(k);
        check("deletion", join(&t), format!("line {}", k + 1));

        let (k, at) = (rng.index(n), rng.index(n + 1));
        let mut t = lines.clone();
        t.insert(at, lines[k].clone());
        check(
            "duplication",
            join(&t),
            format!("line {} at {}", k + 1, at + 1),
        );

        let (a, b) = (rng.index(n), rng.index(n));
        if lines[a] != lines[b] {
            let mut t = lines.clone();
            t.swap(a, b);
            check(
                "reordering",
                join(&t),
                format!("lines {} and {}", a + 1, b + 1),
            );
        }

        let all = join(&lines);
        let cut = rng.index(all.len() - 1);
        check("truncation", all[..cut].to_vec(), format!("at byte {cut}"));
        let keep = rng.index(n);
        let mut t = lines[..keep].to_vec();
        if rng.index(2) == 0 {
            // A genuine checkpoint, but of an earlier moment of the same ledger.
            t.push(early[early.len() - 1].clone());
        }
        check("truncation", join(&t), format!("first {keep} lines"));

        // Forged checkpoints: the head moved to a rechained history, the signature flipped,
        // an earlier genuine checkpoint, a checkpoint claiming another seq.
        let mut cp: Value = serde_json::from_slice(&lines[last]).expect("json");
        let mut t = lines.clone();
        match rng.index(4) {
            0 => {
                let j = 1 + rng.index(n - 2);
                let mut ev: Value = serde_json::from_slice(&t[j]).expect("json");
                ev["time"] = json!(ev["time"].as_i64().unwrap_or(0) + 1);
                t[j] = canonical(&ev);
                rechain(&mut t, j);
                let head: Value = serde_json::from_slice(&t[last - 1]).expect("json");
                cp["head"] = head["hash"].clone();
            }
            1 => {
                let mut sig: Vec<char> = cp["signature"].as_str().expect("sig").chars().collect();
                let s = rng.index(sig.len());
                sig[s] = if sig[s] == '0' { '1' } else { '0' };
                cp["signature"] = json!(sig.into_iter().collect::<String>());
            }
            2 => cp = serde_json::from_slice(&early[early.len() - 1]).expect("json"),
            _ => cp["seq"] = json!(cp["seq"].as_u64().unwrap_or(0) + 1),
        }
        t[last] = canonical(&cp);
        check("forged_checkpoint", join(&t), format!("checkpoint {cp}"));
    }

    // Raw byte flips of the database file (and of the keyring): open or verify must fail.
    let ledger = tmp.path().join("ledger");
    let officers: Vec<(OfficerName, Passphrase)> = ["alice", "bob"]
        .iter()
        .map(|n| {
            (
                OfficerName::parse(n).expect("name"),
                Passphrase::for_unseal(Zeroizing::new(unseal_pass(n))).expect("pass"),
            )
        })
        .collect();
    let db = std::fs::read(ledger.join("ledger.db")).expect("db");
    let keyring = std::fs::read(ledger.join("keyring.json")).expect("keyring");
    for _ in 0..rounds() {
        for file in ["ledger.db", "keyring.json"] {
            let dir = tmp.path().join("flip");
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir(&dir).expect("mkdir");
            let mut bytes = if file == "ledger.db" {
                db.clone()
            } else {
                keyring.clone()
            };
            let flips = 1 + rng.index(3);
            let mut at = Vec::new();
            for _ in 0..flips {
                let off = rng.index(bytes.len());
                bytes[off] ^= u8::try_from(1 + rng.index(255)).expect("byte");
                at.push(off);
            }
            std::fs::write(
                dir.join("ledger.db"),
                if file == "ledger.db" { &bytes } else { &db },
            )
            .expect("db");
            std::fs::write(
                dir.join("keyring.json"),
                if file == "keyring.json" {
                    &bytes
                } else {
                    &keyring
                },
            )
            .expect("keyring");
            let class = if file == "ledger.db" {
                "db_bytes"
            } else {
                "keyring_bytes"
            };
            // JSON whitespace turned into other JSON whitespace (a space into a newline) leaves
            // the keyring's content, which its MAC covers, as it was: no edit at all.
            if file == "keyring.json"
                && at
                    .iter()
                    .all(|&o| is_json_space(keyring[o]) && is_json_space(bytes[o]))
            {
                continue;
            }
            let t = tallies.entry(class).or_default();
            t.tried += 1;
            let result = Ledger::open(&dir, &officers, Projections::ledger_only())
                .and_then(|l| verify_ledger(&l).map(|_| ()));
            match result {
                Ok(()) => {
                    // A flip in a byte nothing reads (JSON whitespace cannot change; a
                    // keyring field's unused bits are signed) must still not pass.
                    panic!("{file}: flips at {at:?} went undetected")
                }
                Err(e) => {
                    t.detected += 1;
                    *t.first.entry(ledger_error_name(&e)).or_default() += 1;
                }
            }
        }
    }

    // One flip in the middle of every page: pages that opening and replaying never read
    // (free pages, unused index pages) must fail verification too.
    let page = 4096;
    for p in 0..db.len() / page {
        let dir = tmp.path().join("page");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).expect("mkdir");
        let mut bytes = db.clone();
        bytes[p * page + page / 2] ^= 0x01;
        std::fs::write(dir.join("ledger.db"), &bytes).expect("db");
        std::fs::write(dir.join("keyring.json"), &keyring).expect("keyring");
        let t = tallies.entry("db_pages").or_default();
        t.tried += 1;
        match Ledger::open(&dir, &officers, Projections::ledger_only())
            .and_then(|l| verify_ledger(&l).map(|_| ()))
        {
            Ok(()) => panic!("a flip in page {} went undetected", p + 1),
            Err(e) => {
                t.detected += 1;
                *t.first.entry(ledger_error_name(&e)).or_default() += 1;
            }
        }
    }

    let (mut tried, mut detected) = (0, 0);
    for (class, t) in &tallies {
        tried += t.tried;
        detected += t.detected;
        let first: Vec<String> = t.first.iter().map(|(k, v)| format!("{k}:{v}")).collect();
        println!(
            "tamper: class={class} tried={} detected={} first={}",
            t.tried,
            t.detected,
            first.join(",")
        );
    }
    println!("tamper: total tried={tried} detected={detected}");
    assert_eq!(tried, detected);
    assert!(tallies.len() >= 10, "every class ran: {:?}", tallies.keys());
}

fn ledger_error_name(e: &LedgerError) -> String {
    problem_name(e)
}

/// JSON's insignificant whitespace (RFC 8259, section 2).
fn is_json_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}
