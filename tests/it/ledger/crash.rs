//! Crash safety: a writer process is killed with SIGKILL at random points, many times; after
//! each kill the ledger opens, verifies, and holds every event whose append had returned.
//!
//! The writer is this test binary re-executed with `MFA_CUSTODY_CRASH_WRITER` set: the
//! `crash_writer_child` test then appends forever, printing `ACK <seq> <hash>` after each append
//! returns. Without the variable that test does nothing.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mfa_custody::ledger::{verify_ledger, Actor, Kind, Ledger, NewEvent, Projections};
use serde_json::json;

use crate::support::ledger::{create, officers};
use crate::support::rng::Rng;

const WRITER_ENV: &str = "MFA_CUSTODY_CRASH_WRITER";
const KILLS: usize = 30;

#[test]
fn crash_writer_child() {
    let Some(dir) = std::env::var_os(WRITER_ENV) else {
        return;
    };
    let mut ledger = Ledger::open(Path::new(&dir), &officers(), Projections::ledger_only())
        .expect("writer opens the ledger");
    let stdout = std::io::stdout();
    let actor = Actor::parse("crash-writer").expect("actor");
    let kind = Kind::parse("test.crash").expect("kind");
    for i in 0u64.. {
        let filler = "x".repeat((i % 7) as usize * 300);
        let body = json!({"i": i, "filler": filler, "account": "123456789012"});
        let events: Vec<NewEvent> = (0..1 + i % 3)
            .map(|_| NewEvent::new(actor.clone(), kind.clone(), &body).expect("event"))
            .collect();
        let stored = ledger.append_batch(events).expect("append");
        let mut out = stdout.lock();
        for ev in stored {
            writeln!(out, "ACK {} {}", ev.header.seq, ev.header.hash).expect("ack");
        }
        out.flush().expect("flush");
    }
}

#[test]
fn sigkill_never_loses_an_acknowledged_event() {
    let _alone = crate::support::alone();
    if std::env::var_os(WRITER_ENV).is_some() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("ledger");
    drop(create(&dir));
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64 | 1)
        .unwrap_or(0x9e37_79b9_7f4a_7c15);
    eprintln!("crash test seed {seed}");
    let mut rng = Rng::new(seed);
    let exe = std::env::current_exe().expect("test binary");
    let writer = crate::support::test_in(module_path!(), "crash_writer_child");
    let started = Instant::now();
    let mut acked: Vec<(u64, String)> = Vec::new();
    for round in 0..KILLS {
        let mut child = Command::new(&exe)
            .args(["--exact", &writer, "--nocapture", "--test-threads=1"])
            .env(WRITER_ENV, &dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn writer");
        let stdout = child.stdout.take().expect("pipe");
        let want = 1 + rng.below(25);
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let mut seen = 0;
        while seen < want {
            line.clear();
            if reader.read_line(&mut line).expect("read ack") == 0 {
                panic!("round {round}: writer exited early");
            }
            if let Some(rest) = line.trim_end().strip_prefix("ACK ") {
                let (seq, hash) = rest.split_once(' ').expect("ack format");
                acked.push((seq.parse().expect("seq"), hash.to_owned()));
                seen += 1;
            }
        }
        // Land the kill at a random point of the next appends.
        std::thread::sleep(Duration::from_micros(rng.below(8000)));
        child.kill().expect("SIGKILL");
        // Acknowledgements already in the pipe were printed after their append returned.
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut reader, &mut rest);
        for l in rest.lines() {
            if let Some(r) = l.strip_prefix("ACK ") {
                if let Some((seq, hash)) = r.split_once(' ') {
                    if let Ok(seq) = seq.parse() {
                        acked.push((seq, hash.to_owned()));
                    }
                }
            }
        }
        child.wait().expect("reap");

        let ledger = Ledger::open(&dir, &officers(), Projections::ledger_only())
            .unwrap_or_else(|e| panic!("round {round}: ledger does not open after SIGKILL: {e}"));
        let report = verify_ledger(&ledger)
            .unwrap_or_else(|e| panic!("round {round}: ledger does not verify after SIGKILL: {e}"));
        let head = report.head.map(|(s, _)| s).unwrap_or(0);
        for (seq, hash) in &acked {
            assert!(
                *seq <= head,
                "round {round}: acknowledged seq {seq} lost (head {head})"
            );
            let ev = ledger.event(*seq).expect("read").expect("present");
            assert_eq!(
                &ev.header.hash.to_hex(),
                hash,
                "round {round}: seq {seq} changed"
            );
        }
    }
    eprintln!(
        "{KILLS} kills, {} acknowledged events, {:?}",
        acked.len(),
        started.elapsed()
    );
}
