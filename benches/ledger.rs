//! Ledger benchmarks: durable appends per second (SQLCipher vs plain SQLite with the same
//! durability), and verify/export throughput on a large ledger.
//!
//! `LEDGER_BENCH_EVENTS` sets the size of the large ledger (default 1,000,000); it is built
//! once and kept in `target/ledger-bench/events-N/`. Beside verify and export runs the
//! reference they are measured against: the same rows read through SQLCipher as SQLite's JSON,
//! hashed with SHA-256 ([`sqlite_json_sha256`]); and the whole-file reads verify is made of
//! ([`whole_file_reads`]), which set how fast it can be.
//!
//! The large-ledger groups time whole runs, one per sample, and end with a summary: the median
//! wall and CPU time per run, each beside the reference's, and the load average during the
//! runs (the host is shared: compare within one run only). `LEDGER_BENCH_SECONDS` sets the
//! measurement time of each (default 60; criterion still takes ten samples). One group alone:
//! `cargo bench --features bench --bench ledger -- large_ledger/`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use mfa_custody::ledger::chain::{body_hash, event_hash};
use mfa_custody::ledger::{
    export, verify_ledger, Actor, ExportFilter, ExportFormat, Hash, Kind, Ledger, NewEvent,
    Timestamp,
};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde_json::json;

#[path = "../tests/it/support/ledger.rs"]
mod ledger_support;
use ledger_support::{create, open};

fn sample_event(i: u64) -> NewEvent {
    let body = json!({
        "account": format!("{:012}", 100_000_000_000 + i % 50),
        "device": format!("YK-{}", 1_000_000 + i % 20),
        "request": i,
        "ticket": format!("CHG-{i}"),
        "reason": "rotate root access keys after the quarterly review",
    });
    NewEvent::new(
        Actor::parse("alice").expect("actor"),
        Kind::parse("request.approved").expect("kind"),
        &body,
    )
    .expect("event")
}

fn appends(c: &mut Criterion) {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut group = c.benchmark_group("durable_append");
    group
        .sample_size(30)
        .measurement_time(Duration::from_secs(15));
    group.throughput(Throughput::Elements(1));

    let mut ledger = create(&tmp.path().join("cipher"));
    let mut i = 0u64;
    group.bench_function("sqlcipher_ledger", |b| {
        b.iter(|| {
            i += 1;
            black_box(ledger.append(sample_event(i)).expect("append"));
        })
    });

    // The reference: the same rows, hash chain and durability (WAL, synchronous=FULL,
    // one IMMEDIATE transaction per append) in plain SQLite without encryption.
    let conn = Connection::open(tmp.path().join("plain.db")).expect("open plain");
    conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0))
        .expect("wal");
    conn.execute_batch(
        "PRAGMA synchronous = FULL;
         CREATE TABLE events (seq INTEGER PRIMARY KEY NOT NULL, time INTEGER NOT NULL,
           actor TEXT NOT NULL, kind TEXT NOT NULL, body BLOB NOT NULL, body_hash BLOB NOT NULL,
           prev_hash BLOB NOT NULL, hash BLOB NOT NULL) STRICT;",
    )
    .expect("schema");
    let mut conn = conn;
    let mut j = 0u64;
    group.bench_function("plain_sqlite_reference", |b| {
        b.iter(|| {
            j += 1;
            let ev = sample_event(j);
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .expect("begin");
            let head: Option<(u64, Vec<u8>)> = tx
                .query_row(
                    "SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .expect("head");
            let (seq, prev) = head
                .map(|(s, h)| (s + 1, Hash::from_slice(&h).expect("hash")))
                .unwrap_or((1, Hash::ZERO));
            let time = Timestamp::now();
            let bh = body_hash(ev.body.as_bytes());
            let hash = event_hash(seq, &prev, time, &ev.actor, &ev.kind, &bh);
            tx.prepare_cached("INSERT INTO events VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")
                .expect("prepare")
                .execute(params![
                    seq,
                    time.0,
                    ev.actor.as_str(),
                    ev.kind.as_str(),
                    ev.body.as_bytes(),
                    &bh.0[..],
                    &prev.0[..],
                    &hash.0[..]
                ])
                .expect("insert");
            tx.commit().expect("commit");
        })
    });
    group.finish();
}

/// The large ledger of `n` events, built once and kept under `target/ledger-bench/` so that
/// reruns open it instead of rebuilding it (built in a scratch directory, then renamed, so an
/// interrupted build is never reused).
fn large_ledger(n: u64) -> Ledger {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ledger-bench");
    let dir = root.join(format!("events-{n}"));
    if dir.exists() {
        let ledger = open(&dir);
        let head = ledger.head().expect("head").map(|h| h.seq);
        assert_eq!(
            head,
            Some(n + 1),
            "{} is not a ledger of {n} events (and genesis): delete it to rebuild it",
            dir.display()
        );
        eprintln!("reusing the ledger of {n} events in {}", dir.display());
        return ledger;
    }
    std::fs::create_dir_all(&root).expect("create target/ledger-bench");
    let scratch = root.join(format!("building-{n}"));
    if scratch.exists() {
        std::fs::remove_dir_all(&scratch).expect("remove an interrupted build");
    }
    std::fs::create_dir(&scratch).expect("scratch dir");
    let mut ledger = create(&scratch);
    let started = std::time::Instant::now();
    let mut i = 0u64;
    while i < n {
        let chunk = 20_000.min(n - i);
        ledger
            .append_batch((i..i + chunk).map(sample_event))
            .expect("batch");
        i += chunk;
    }
    eprintln!("built a ledger of {n} events in {:?}", started.elapsed());
    drop(ledger);
    std::fs::rename(&scratch, &dir).expect("keep the built ledger");
    open(&dir)
}

/// The reference for verify and export: reading the same rows through SQLCipher, on the
/// ledger's own connection (same key, same pragmas), as SQLite's own JSON (one `json_object`
/// per row: seq, time, actor, kind, the body as text, the three hashes as hex, as
/// `sqlite3 -json` prints them), then SHA-256 (ring) over every row's JSON and a newline.
/// That is `sqlite3 -json ledger.db 'SELECT … FROM events' | sha256sum`, in process.
fn sqlite_json_sha256(ledger: &Ledger) -> (u64, [u8; 32]) {
    ledger
        .query(|conn| {
            let mut stmt = conn.prepare(
                "SELECT json_object('seq', seq, 'time', time, 'actor', actor, 'kind', kind,
                   'body', CAST(body AS TEXT), 'body_hash', hex(body_hash),
                   'prev_hash', hex(prev_hash), 'hash', hex(hash))
                 FROM events ORDER BY seq",
            )?;
            let mut rows = stmt.query([])?;
            let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
            let mut n = 0u64;
            while let Some(row) = rows.next()? {
                let json = row.get_ref(0)?.as_str()?;
                ctx.update(json.as_bytes());
                ctx.update(b"\n");
                n += 1;
            }
            let mut out = [0u8; 32];
            out.copy_from_slice(ctx.finish().as_ref());
            Ok((n, out))
        })
        .expect("reference read")
}

/// A pragma's rows, counted (the page checks verify runs).
fn pragma_rows(ledger: &Ledger, pragma: &str) -> usize {
    ledger
        .query(|conn| {
            let mut stmt = conn.prepare(pragma)?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            Ok(rows.count())
        })
        .expect("pragma")
}

/// Every event row read through SQLCipher, every column, nothing else done with it.
fn read_rows(ledger: &Ledger) -> usize {
    ledger
        .query(|conn| {
            let mut stmt = conn.prepare(
                "SELECT seq, time, actor, kind, body, body_hash, prev_hash, hash
                 FROM events ORDER BY seq",
            )?;
            let mut rows = stmt.query([])?;
            let mut bytes = 0usize;
            while let Some(row) = rows.next()? {
                bytes += row.get_ref(4)?.as_blob()?.len();
            }
            Ok(bytes)
        })
        .expect("read rows")
}

/// The reads `verify_ledger` is made of, each alone on one thread: `cipher_integrity_check`
/// (every page's HMAC), `integrity_check` (every b-tree page decrypted, then every row again
/// for its constraints), and one pass over the event rows (what the walk reads). Run it alone
/// with `-- large_ledger_reads/`.
fn whole_file_reads(c: &mut Criterion, ledger: &Ledger, n: u64) {
    let mut hmac = Runs::new("cipher_integrity_check");
    let mut btree = Runs::new("integrity_check");
    let mut rows = Runs::new("read_rows");
    let mut group = c.benchmark_group("large_ledger_reads");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(bench_seconds()));
    group.throughput(Throughput::Elements(n + 1));
    group.bench_function(format!("cipher_integrity_check_{n}"), |b| {
        b.iter_custom(|iters| {
            hmac.time(iters, || {
                pragma_rows(ledger, "PRAGMA cipher_integrity_check")
            })
        })
    });
    group.bench_function(format!("integrity_check_{n}"), |b| {
        b.iter_custom(|iters| btree.time(iters, || pragma_rows(ledger, "PRAGMA integrity_check")))
    });
    group.bench_function(format!("read_rows_{n}"), |b| {
        b.iter_custom(|iters| rows.time(iters, || read_rows(ledger)))
    });
    group.finish();
    summary("large_ledger_reads", n + 1, &[&hmac, &btree, &rows]);
}

/// Seconds of measurement per large-ledger benchmark (`LEDGER_BENCH_SECONDS`, default 60);
/// criterion still takes its ten samples when they do not fit, so a small value gives eleven
/// runs of each (one warm-up) in the least time.
fn bench_seconds() -> u64 {
    std::env::var("LEDGER_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|s| *s > 0)
        .unwrap_or(60)
}

/// CPU time of this process so far, every thread (live or ended) and the kernel's share:
/// `utime + stime` of `/proc/self/stat`, in seconds (Linux counts them in ticks of 1/100 s).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("read /proc/self/stat");
    // The command name (field 2) may hold spaces; the fields after its `)` are plain.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // After the name: state is field 3, so utime (14) and stime (15) are at 11 and 12.
    (ticks(11) + ticks(12)) as f64 / 100.0
}

/// The one-minute load average (`/proc/loadavg`).
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|f| f.parse().ok()))
        .unwrap_or(f64::NAN)
}

/// One timed run: wall and CPU seconds per iteration, and the load average as it ended.
#[derive(Clone, Copy)]
struct Run {
    wall: f64,
    cpu: f64,
    load: f64,
}

/// The runs of one large-ledger benchmark, kept beside criterion's own figures so that the
/// summary can put CPU time and the load beside the wall time.
struct Runs {
    name: &'static str,
    runs: Vec<Run>,
}

impl Runs {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            runs: Vec::new(),
        }
    }

    /// Times `iters` calls of `f` for criterion (wall time) and keeps wall and CPU time.
    fn time<T>(&mut self, iters: u64, mut f: impl FnMut() -> T) -> Duration {
        let cpu = cpu_seconds();
        let started = std::time::Instant::now();
        for _ in 0..iters {
            black_box(f());
        }
        let elapsed = started.elapsed();
        let per = iters.max(1) as f64;
        self.runs.push(Run {
            wall: elapsed.as_secs_f64() / per,
            cpu: (cpu_seconds() - cpu) / per,
            load: load_average(),
        });
        elapsed
    }

    fn median(&self, pick: impl Fn(&Run) -> f64) -> f64 {
        let mut v: Vec<f64> = self.runs.iter().map(pick).collect();
        v.sort_by(f64::total_cmp);
        match v.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        }
    }
}

/// Prints, for every benchmark of the group that ran, the median wall and CPU time per run
/// (warm-up included), each as a multiple of the reference's, and the load average.
fn summary(group: &str, events: u64, all: &[&Runs]) {
    let ran: Vec<&&Runs> = all.iter().filter(|r| !r.runs.is_empty()).collect();
    if ran.is_empty() {
        return;
    }
    let reference = ran.iter().find(|r| r.name.starts_with("reference"));
    let loads = ran.iter().flat_map(|r| r.runs.iter().map(|x| x.load));
    let (lo, hi) = loads.fold((f64::INFINITY, 0f64), |(lo, hi), l| (lo.min(l), hi.max(l)));
    eprintln!(
        "\n{group} on {events} events: medians per run, load average (1 min) {lo:.2} to {hi:.2}"
    );
    for r in &ran {
        let (wall, cpu) = (r.median(|x| x.wall), r.median(|x| x.cpu));
        let ratio = |mine: f64, pick: fn(&Run) -> f64| {
            reference
                .filter(|re| re.name != r.name)
                .map(|re| format!(" ({:.2} x reference)", mine / re.median(pick)))
                .unwrap_or_default()
        };
        eprintln!(
            "  {:<36} wall {wall:7.3} s{:<22} CPU {cpu:7.3} s{} ({} runs)",
            r.name,
            ratio(wall, |x| x.wall),
            ratio(cpu, |x| x.cpu),
            r.runs.len()
        );
    }
}

/// The large-ledger group: the reference, verify and the exports, each run as a whole, one
/// run per sample (`LEDGER_BENCH_SECONDS` of measurement each), with a summary of wall and
/// CPU medians and the load average beside the reference. Run it alone with
/// `cargo bench --features bench --bench ledger -- large_ledger/`.
fn large(c: &mut Criterion) {
    let n: u64 = std::env::var("LEDGER_BENCH_EVENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let mut ledger = large_ledger(n);
    let mut reference = Runs::new("reference_sqlite_json_sha256");
    let mut verify = Runs::new("verify");
    let mut export_all = Runs::new("export_jsonl");
    let mut export_filtered = Runs::new("export_jsonl_filtered");

    let mut group = c.benchmark_group("large_ledger");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(bench_seconds()));
    group.throughput(Throughput::Elements(n + 1));
    group.bench_function(format!("reference_sqlite_json_sha256_{n}"), |b| {
        b.iter_custom(|iters| reference.time(iters, || sqlite_json_sha256(&ledger)))
    });
    group.bench_function(format!("verify_{n}"), |b| {
        b.iter_custom(|iters| verify.time(iters, || verify_ledger(&ledger).expect("verify")))
    });
    group.bench_function(format!("export_jsonl_{n}"), |b| {
        b.iter_custom(|iters| {
            export_all.time(iters, || {
                let mut sink = std::io::sink();
                export(
                    &mut ledger,
                    &ExportFilter::default(),
                    ExportFormat::JsonLines,
                    &mut sink,
                )
                .expect("export")
            })
        })
    });
    group.bench_function(format!("export_jsonl_filtered_{n}"), |b| {
        let filter = ExportFilter {
            account: Some("100000000007".into()),
            ..ExportFilter::default()
        };
        b.iter_custom(|iters| {
            export_filtered.time(iters, || {
                let mut sink = std::io::sink();
                export(&mut ledger, &filter, ExportFormat::JsonLines, &mut sink).expect("export")
            })
        })
    });
    group.finish();
    summary(
        "large_ledger",
        n + 1,
        &[&reference, &verify, &export_all, &export_filtered],
    );
    whole_file_reads(c, &ledger, n);
}

criterion_group!(benches, appends, large);
criterion_main!(benches);
