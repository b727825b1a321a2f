//! Crash harness: custody operations and ceremonies run through a real `custodyd` while it is
//! killed with SIGKILL at random moments; after each kill the ledger must verify offline
//! (`custody ledger verify`), custodyd must restart and unseal, its export must verify
//! (`custody audit verify`), and the client's record of what was acknowledged must hold:
//!
//! - every acknowledged request, approval, cancellation, denial and check-out is in the ledger;
//! - every acknowledged checkpoint's head is still the hash of the event at its sequence number
//!   (so no acknowledged event was lost or rewritten);
//! - no `code.released` without an earlier `code.issuing` of the same request, and never two;
//! - every code a client received has its committed `code.released` (same request and step).
//!
//! Fast variant (in `cargo test`): no devices, so no code is released; at least 20 kills.
//! Long variant (`make soak`, `#[ignore]`): inside a private pcscd with two emulated keys, the
//! sign-in ceremony (request, two approvals, check-out, code, check-in) runs too; 1,000 kills.
//! `CUSTODY_CRASH_KILLS` changes the number of kills; `CUSTODY_CRASH_SEED` repeats a run.
//! Each variant prints one line starting with `crash:`.

use crate::support;
use crate::support::rig;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use rig::{ok, operator_auth, refusal, Conn, Rig, Rng, DEVICE_ACCOUNT, PRIMARY};
use serde_json::{json, Value};

/// What the client was told, per request.
#[derive(Default, Debug)]
struct Acked {
    approvals: BTreeSet<String>,
    approved: bool,
    closed: Option<&'static str>,
    code_step: Option<u64>,
    device_account: bool,
}

#[derive(Default)]
struct Books {
    requests: BTreeMap<String, Acked>,
    checkpoints: Vec<(u64, String)>,
    checkouts: BTreeSet<(u32, String)>,
    checkins: BTreeSet<String>,
    /// Requests whose approvals expired before their code was released.
    stale: BTreeSet<String>,
    /// Acknowledged operations that appended at least one event.
    acked_writes: u64,
    releases: u64,
    violations: Vec<String>,
    unexpected: BTreeMap<String, u64>,
}

/// Refusals a crash can explain: the client's view lags the ledger by at most the
/// unacknowledged operation (an approval or close that committed without its answer).
const EXPLAINED: &[&str] = &[
    "request_already_approved",
    "request_closed",
    "already_released",
    "request_not_approved",
    "already_approved",
    "device_not_checked_out",
    "device_state",
    // A long run outlives the policy's lifetimes: approvals last 15 minutes, requests an hour.
    "approval_expired",
    "request_expired",
];

fn note_refusal(books: &mut Books, op: &str, r: &Value) {
    let why = refusal(r).unwrap_or_else(|| "?".into());
    if !EXPLAINED.contains(&why.as_str()) {
        *books.unexpected.entry(format!("{op}:{why}")).or_default() += 1;
    }
}

const ACCOUNTS: [&str; 2] = ["200000000001", "200000000002"];

/// One operation against the running daemon; Err when the connection broke (the kill).
fn step(
    rig: &mut Rig,
    c: &mut Conn,
    rng: &mut Rng,
    books: &mut Books,
    devices: bool,
) -> std::io::Result<()> {
    let pending: Vec<String> = books
        .requests
        .iter()
        .filter(|(_, a)| a.closed.is_none() && !a.approved)
        .map(|(k, _)| k.clone())
        .collect();
    match rng.below(10) {
        0..=2 => {
            let account = if devices && rng.below(2) == 0 {
                DEVICE_ACCOUNT
            } else {
                ACCOUNTS[rng.below(2) as usize]
            };
            let r = c.call(rig::request_code_op(account, rng))?;
            match ok(&r) {
                Some(v) => {
                    let id = v["request"]["id"].as_str().unwrap_or_default().to_owned();
                    books.requests.insert(
                        id,
                        Acked {
                            device_account: account == DEVICE_ACCOUNT,
                            ..Acked::default()
                        },
                    );
                    books.acked_writes += 1;
                }
                None => note_refusal(books, "request_code", &r),
            }
        }
        3..=5 if !pending.is_empty() => {
            // Finish what is started (a request with one approval), then the device account's
            // requests, so that approvals add up to approved requests and releases.
            let started = |id: &&String| !books.requests[*id].approvals.is_empty();
            let device = |id: &&String| books.requests[*id].device_account;
            let id = pending
                .iter()
                .find(started)
                .or_else(|| pending.iter().find(device))
                .unwrap_or(&pending[rng.below(pending.len() as u64) as usize])
                .clone();
            let done: Vec<String> = books.requests[&id].approvals.iter().cloned().collect();
            let skip: Vec<&str> = done.iter().map(String::as_str).collect();
            let Some(by) = rig.officer_auth_except(&skip) else {
                return Ok(());
            };
            let officer = Rig::who(&by);
            let seen = c.seen(&id)?;
            let r = c.call(json!({"approve": {"by": by, "request": id, "seen": seen}}))?;
            match ok(&r) {
                Some(v) => {
                    let a = books.requests.get_mut(&id).expect("known");
                    a.approvals.insert(officer);
                    a.approved = v["request"]["status"] == "approved";
                    books.acked_writes += 1;
                }
                None => {
                    if refusal(&r).as_deref() == Some("request_already_approved") {
                        // An approval that committed without its answer: the daemon knows.
                        books.requests.get_mut(&id).expect("known").approved = true;
                    }
                    note_refusal(books, "approve", &r)
                }
            }
        }
        6 if !pending.is_empty() => {
            let id = pending[rng.below(pending.len() as u64) as usize].clone();
            let deny = rng.below(3) == 0;
            let (op, kind) = if deny {
                let Some(by) = rig.officer_auth() else {
                    return Ok(());
                };
                (
                    json!({"deny": {"by": by, "request": id, "note": "not this week"}}),
                    "denied",
                )
            } else {
                (
                    json!({"cancel": {"by": operator_auth(), "request": id}}),
                    "cancelled",
                )
            };
            let r = c.call(op)?;
            match ok(&r) {
                Some(_) => {
                    books.requests.get_mut(&id).expect("known").closed = Some(kind);
                    books.acked_writes += 1;
                }
                None => note_refusal(books, kind, &r),
            }
        }
        7 => {
            let r = c.call(json!("checkpoint"))?;
            match ok(&r) {
                Some(v) => books.checkpoints.push((
                    v["checkpoint"]["seq"].as_u64().unwrap_or(0),
                    v["checkpoint"]["head"].as_str().unwrap_or("").to_owned(),
                )),
                None => note_refusal(books, "checkpoint", &r),
            }
        }
        8 if devices => ceremony(rig, c, books)?,
        _ => {
            let op = ["status", "requests", "users", "accounts", "devices"][rng.below(5) as usize];
            let r = c.call(json!(op))?;
            if ok(&r).is_none() {
                note_refusal(books, op, &r);
            }
        }
    }
    Ok(())
}

/// The next move of the sign-in ceremony on the device account, read from the daemon's own
/// state (so it resumes wherever a kill left it): check the primary key out for an approved
/// request, release its code, check the key back in.
fn ceremony(rig: &mut Rig, c: &mut Conn, books: &mut Books) -> std::io::Result<()> {
    let r = c.call(json!({"device_show": {"serial": PRIMARY}}))?;
    let Some(d) = ok(&r).map(|v| v["device"]["state"].clone()) else {
        note_refusal(books, "device_show", &r);
        return Ok(());
    };
    let requests = c.call(json!("requests"))?;
    let list = ok(&requests)
        .and_then(|v| v["requests"].as_array().cloned())
        .unwrap_or_default();
    match d["state"].as_str() {
        Some("in_safe") => {
            // The most recently approved request, whose approvals are still fresh.
            let approved_at = |q: &&Value| {
                q["approvals"]
                    .as_array()
                    .and_then(|a| a.iter().filter_map(|x| x["at_ms"].as_i64()).min())
                    .unwrap_or(0)
            };
            let Some(req) = list
                .iter()
                .filter(|q| q["account"] == DEVICE_ACCOUNT && q["status"] == "approved")
                .filter(|q| !books.stale.contains(q["id"].as_str().unwrap_or("")))
                .max_by_key(approved_at)
            else {
                return Ok(());
            };
            let id = req["id"].as_str().unwrap_or_default().to_owned();
            let Some(by) = rig.officer_auth() else {
                return Ok(());
            };
            let seal = d["seal"].as_str().unwrap_or_default().to_owned();
            let r = c.call(
                json!({"checkout": {"by": by, "serial": PRIMARY, "seal": seal,
                                               "request": id}}),
            )?;
            match ok(&r) {
                Some(_) => {
                    books.checkouts.insert((PRIMARY, id));
                    books.acked_writes += 1;
                }
                None => note_refusal(books, "checkout", &r),
            }
        }
        Some("checked_out") => {
            let id = d["request"].as_str().unwrap_or_default().to_owned();
            let status = list
                .iter()
                .find(|q| q["id"] == id.as_str())
                .and_then(|q| q["status"].as_str())
                .unwrap_or("");
            if status == "approved" && !books.stale.contains(&id) {
                let r = c.call(json!({"code": {"by": operator_auth(), "request": id}}))?;
                match ok(&r) {
                    Some(v) => {
                        let step = v["code"]["step"].as_u64();
                        let code = v["code"]["code"].as_str().unwrap_or("");
                        if code.len() != 6 || !code.chars().all(|ch| ch.is_ascii_digit()) {
                            books
                                .violations
                                .push(format!("{id}: malformed code answer"));
                        }
                        if let Some(a) = books.requests.get_mut(&id) {
                            a.code_step = step;
                        } else {
                            books.requests.insert(
                                id.clone(),
                                Acked {
                                    code_step: step,
                                    ..Acked::default()
                                },
                            );
                        }
                        books.releases += 1;
                        books.acked_writes += 1;
                    }
                    None => {
                        // Its approvals or the request expired: check the key back in.
                        if matches!(
                            refusal(&r).as_deref(),
                            Some("approval_expired" | "request_expired")
                        ) {
                            books.stale.insert(id);
                        }
                        note_refusal(books, "code", &r)
                    }
                }
            } else {
                let Some(by) = rig.officer_auth() else {
                    return Ok(());
                };
                let seal = format!("BAG-{}", rig::now_secs() * 1000 + books.acked_writes);
                let r = c.call(
                    json!({"checkin": {"by": by, "serial": PRIMARY, "seal": seal,
                                                  "location": "safe A"}}),
                )?;
                match ok(&r) {
                    Some(_) => {
                        books.checkins.insert(seal);
                        books.acked_writes += 1;
                    }
                    None => note_refusal(books, "checkin", &r),
                }
            }
        }
        other => books
            .violations
            .push(format!("primary key in an unexpected state {other:?}: {d}")),
    }
    Ok(())
}

/// Everything acknowledged must be in the ledger, and the release invariants must hold.
fn check(events: &[Value], books: &mut Books) {
    let mut by_seq: BTreeMap<u64, &Value> = BTreeMap::new();
    let mut created = BTreeSet::new();
    let mut approved: BTreeSet<(String, String)> = BTreeSet::new();
    let mut closed: BTreeMap<String, &str> = BTreeMap::new();
    let mut issuing: BTreeSet<String> = BTreeSet::new();
    let mut released: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut checkouts = BTreeSet::new();
    let mut checkins = BTreeSet::new();
    for e in events {
        let seq = e["seq"].as_u64().unwrap_or(0);
        by_seq.insert(seq, e);
        let b = &e["body"];
        let req = b["request"].as_str().unwrap_or("").to_owned();
        match e["kind"].as_str().unwrap_or("") {
            "request.created" => {
                created.insert(req);
            }
            "request.approved" => {
                approved.insert((req, b["officer"].as_str().unwrap_or("").to_owned()));
            }
            "request.cancelled" => {
                closed.insert(req, "cancelled");
            }
            "request.denied" => {
                closed.insert(req, "denied");
            }
            "code.issuing" => {
                issuing.insert(req);
            }
            "code.released" => {
                if !issuing.contains(&req) {
                    books.violations.push(format!(
                        "code.released at seq {seq} without code.issuing for {req}"
                    ));
                }
                released
                    .entry(req)
                    .or_default()
                    .push(b["step"].as_u64().unwrap_or(0));
            }
            "device.checked_out" => {
                checkouts.insert((
                    b["device"]
                        .as_str()
                        .unwrap_or("")
                        .parse::<u32>()
                        .unwrap_or(0),
                    req,
                ));
            }
            "device.checked_in" => {
                checkins.insert(b["seal"].as_str().unwrap_or("").to_owned());
            }
            _ => {}
        }
    }
    let n = events.len() as u64;
    if by_seq.keys().copied().ne(1..=n) {
        books
            .violations
            .push("event sequence numbers are not 1..n".into());
    }
    for (req, steps) in &released {
        if steps.len() > 1 {
            books
                .violations
                .push(format!("{req} released {} codes", steps.len()));
        }
    }
    for (id, a) in &books.requests {
        if a.code_step.is_none() && !created.contains(id) {
            books
                .violations
                .push(format!("acknowledged request {id} missing"));
        }
        for o in &a.approvals {
            if !approved.contains(&(id.clone(), o.clone())) {
                books
                    .violations
                    .push(format!("acknowledged approval of {id} by {o} missing"));
            }
        }
        if let Some(k) = a.closed {
            if closed.get(id) != Some(&k) {
                books
                    .violations
                    .push(format!("acknowledged {k} of {id} missing"));
            }
        }
        if let Some(step) = a.code_step {
            if released.get(id).map(Vec::as_slice) != Some(&[step][..]) {
                books.violations.push(format!(
                    "a code for {id} (step {step}) reached the client without its code.released"
                ));
            }
        }
    }
    for (seq, head) in &books.checkpoints {
        match by_seq.get(seq) {
            Some(e) if e["hash"].as_str() == Some(head.as_str()) => {}
            other => books.violations.push(format!(
                "acknowledged checkpoint at seq {seq} (head {head}) no longer matches: {other:?}"
            )),
        }
    }
    for co in &books.checkouts {
        if !checkouts.contains(co) {
            books
                .violations
                .push(format!("acknowledged check-out {co:?} missing"));
        }
    }
    for s in &books.checkins {
        if !checkins.contains(s) {
            books
                .violations
                .push(format!("acknowledged check-in under {s} missing"));
        }
    }
}

fn crash_loop(kills: usize, devices: bool) {
    let seed = Rng::seed_from_env("CUSTODY_CRASH_SEED");
    let mut rng = Rng::new(seed);
    let started = Instant::now();
    let (mut rig, mut c) = Rig::setup(8, 32);
    for a in ACCOUNTS {
        rig.add_account(&mut c, a);
    }
    if devices {
        rig.enrol_devices(&mut c);
    }
    drop(c);
    rig.kill();
    let mut books = Books::default();
    let mut events = 0usize;
    let mut restarts = 0usize;
    for round in 0..=kills {
        if let Err(e) = rig.verify_offline() {
            books
                .violations
                .push(format!("after kill {round}: ledger does not verify: {e}"));
            break;
        }
        rig.start();
        let pid = rustix::process::Pid::from_raw(rig.pid() as i32).expect("pid");
        // Most kills land while the client operates; one in four while custodyd is being
        // unsealed or exporting.
        let early = round < kills && rng.below(4) == 0;
        let delay = if early {
            Duration::from_millis(rng.below(60))
        } else {
            Duration::from_millis(20 + rng.below(400))
        };
        let arm = || {
            // The child is reaped only after this thread returns: its pid cannot be reused.
            Some(std::thread::spawn(move || {
                std::thread::sleep(delay);
                rustix::process::kill_process(pid, rustix::process::Signal::KILL).expect("SIGKILL");
            }))
        };
        let mut killer = if early { arm() } else { None };
        let mut c = match Conn::connect(&rig.socket) {
            Ok(c) => c,
            Err(_) if early => {
                if let Some(k) = killer {
                    k.join().expect("killer");
                }
                rig.kill();
                continue;
            }
            Err(e) => panic!("connect to custodyd: {e}"),
        };
        let export = rig
            .try_unseal(&mut c)
            .and_then(|()| c.call(json!("export")));
        match export {
            Ok(r) => {
                match rig.verify_export(&r) {
                    Ok(ev) => {
                        events = ev.len();
                        check(&ev, &mut books);
                    }
                    Err(e) => books
                        .violations
                        .push(format!("after kill {round}: export: {e}")),
                }
                restarts += 1;
            }
            Err(_) if early => {}
            Err(e) => books
                .violations
                .push(format!("after kill {round}: custodyd went away: {e}")),
        }
        assert!(
            books.violations.is_empty(),
            "seed {seed}, kill {round}: {:#?}\n{}",
            books.violations,
            rig.log_tail()
        );
        if round == kills {
            break;
        }
        if round > 0 && round % 100 == 0 {
            // A long run stopped by a time limit still reports how far it got.
            println!(
                "crash: progress kills={round} verified_restarts={restarts} acked_writes={} \
                 releases={} events={events} violations=0 secs={:.1}",
                books.acked_writes,
                books.releases,
                started.elapsed().as_secs_f64()
            );
        }
        if !early {
            killer = arm();
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        while step(&mut rig, &mut c, &mut rng, &mut books, devices).is_ok() {
            assert!(Instant::now() < deadline, "custodyd survived its SIGKILL");
        }
        if let Some(k) = killer {
            k.join().expect("killer");
        }
        rig.kill();
    }
    let line = format!(
        "crash: kills={kills} verified_restarts={restarts} acked_writes={} acked_requests={} checkpoints={} releases={} \
         events={events} violations={} unexpected_refusals={} devices={devices} seed={seed} secs={:.1}",
        books.acked_writes,
        books.requests.len(),
        books.checkpoints.len(),
        books.releases,
        books.violations.len(),
        books.unexpected.values().sum::<u64>(),
        started.elapsed().as_secs_f64()
    );
    println!("{line}");
    assert!(
        books.violations.is_empty(),
        "seed {seed}: {:#?}\n{}",
        books.violations,
        rig.log_tail()
    );
    assert!(
        books.unexpected.is_empty(),
        "refusals no crash explains: {:?}",
        books.unexpected
    );
    assert!(
        books.acked_writes > kills as u64,
        "the loop did too little: {line}"
    );
    if devices {
        assert!(books.releases > 0, "no code was released: {line}");
    }
}

fn kills(default: usize) -> usize {
    std::env::var("CUSTODY_CRASH_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

#[test]
fn crash_sigkill_loop_keeps_every_acknowledged_event() {
    let _alone = crate::support::alone();
    crash_loop(kills(20), false);
}

#[test]
#[ignore = "long: make soak"]
fn crash_sigkill_soak_with_code_releases() {
    let _alone = crate::support::alone();
    if !support::in_harness("crash_sigkill_soak_with_code_releases", 41300, 1) {
        return;
    }
    let _keys = support::two_keys(
        &["--serial", &rig::PRIMARY.to_string()],
        &["--serial", &rig::BACKUP.to_string()],
    );
    crash_loop(kills(1000), true);
}
