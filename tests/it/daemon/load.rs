//! Load harness: 200 concurrent clients, each on its own connection, against one real
//! `custodyd` for a bounded time: status, listings (users, accounts, devices, requests, one
//! request), code requests on several accounts, approvals by officers (each officer's code is
//! accepted once per 30-second step, so approvals are as many as the officers' steps allow)
//! and cancellations. Every answer must be a success or an expected refusal (a race between
//! clients on the same request); latency percentiles per operation and the daemon's memory
//! (VmRSS before and after, VmHWM) are reported. Afterwards the export must verify offline,
//! every acknowledged request must be in it, and no request may have two `code.released`.
//!
//! Fast variant (in `cargo test`): 3 s, no devices, so no code is released.
//! Long variant (`make soak`, `#[ignore]`): inside a private pcscd with two emulated keys; one
//! client runs the sign-in ceremony over and over, and at each release 8 clients race for the
//! same request's code (exactly one may get it). `CUSTODY_LOAD_SECS` and
//! `CUSTODY_LOAD_CLIENTS` change the size. Each variant prints one line starting with `load:`.

use crate::support;
use crate::support::rig;

use std::collections::BTreeMap;
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use rig::{
    acknowledged, approve_with_a_lent_officer, judge, memory_kib, officer_auth, operator_auth,
    percentile, pick, request_code_op, take, Conn, Officer, Rig, Rng, DEVICE_ACCOUNT, PRIMARY,
};
use serde_json::{json, Value};

const ACCOUNTS: [&str; 3] = ["300000000001", "300000000002", "300000000003"];

/// Refusals that concurrent clients explain: two approvals racing to be the last, an approval
/// or cancellation racing a cancellation, clients racing for one code.
/// How many times a client asks again while one of its person's authentications is checked.
const IN_FLIGHT_RETRIES: u64 = 2000;

const EXPECTED: &[&str] = &[
    "request_already_approved",
    "request_closed",
    "already_released",
];

struct Shared {
    socket: std::path::PathBuf,
    /// The officers who approve the clients' requests.
    officers: Mutex<Vec<Officer>>,
    /// The officers of the sign-in ceremonies (long variant).
    ceremony: Mutex<Vec<Officer>>,
    pending: Mutex<Vec<String>>,
    /// Who approved which request (an officer approves a request once).
    approvers: Mutex<BTreeMap<String, Vec<String>>>,
    acked: Mutex<Vec<String>>,
    deadline: Instant,
}

#[derive(Default)]
struct Tally {
    latencies: BTreeMap<&'static str, Vec<Duration>>,
    refusals: BTreeMap<String, u64>,
    errors: Vec<String>,
    releases: u64,
    double_releases: u64,
    /// Answers "another authentication of this person is being checked", tried again.
    retries: u64,
}

impl Tally {
    fn merge(&mut self, o: Tally) {
        for (k, mut v) in o.latencies {
            self.latencies.entry(k).or_default().append(&mut v);
        }
        for (k, n) in o.refusals {
            *self.refusals.entry(k).or_default() += n;
        }
        self.errors.extend(o.errors);
        self.releases += o.releases;
        self.double_releases += o.double_releases;
        self.retries += o.retries;
    }

    /// Calls `op`, times it, and sorts the answer: Some(body) on success. Clients share a few
    /// operators and one uid, and one person's authentications are judged one at a time: an
    /// answer that another one is still being checked is tried again, as a person would, and
    /// the whole operation's time counts.
    fn call(&mut self, c: &mut Conn, name: &'static str, op: Value) -> Option<Value> {
        let t = Instant::now();
        let (r, retried) = rig::call_past_in_flight(c, &op, IN_FLIGHT_RETRIES);
        self.retries += retried;
        self.latencies.entry(name).or_default().push(t.elapsed());
        judge(name, r, EXPECTED, &mut self.refusals, &mut self.errors)
    }
}

fn connect(socket: &std::path::Path) -> Conn {
    Conn::connect(socket).expect("connect")
}

fn client(shared: &Shared, seed: u64) -> Tally {
    let mut t = Tally::default();
    let mut rng = Rng::new(seed);
    let mut c = connect(&shared.socket);
    while Instant::now() < shared.deadline {
        match rng.below(20) {
            0..=4 => {
                t.call(&mut c, "status", json!("status"));
            }
            5..=9 => {
                let (name, op) = match rng.below(4) {
                    0 => ("users", json!("users")),
                    1 => ("accounts", json!("accounts")),
                    2 => ("devices", json!("devices")),
                    _ => ("requests", json!("requests")),
                };
                t.call(&mut c, name, op);
            }
            10..=13 => {
                let account = ACCOUNTS[rng.below(ACCOUNTS.len() as u64) as usize];
                let op = request_code_op(account, &mut rng);
                if let Some(v) = t.call(&mut c, "request_code", op) {
                    acknowledged(&v, &shared.acked, &shared.pending);
                }
            }
            14..=16 => {
                let Some(id) = pick(&shared.pending, &mut rng) else {
                    continue;
                };
                approve_with_a_lent_officer(
                    &shared.officers,
                    &shared.approvers,
                    &shared.pending,
                    &mut c,
                    &id,
                    |c, name, op| t.call(c, name, op),
                );
            }
            _ => {
                let Some(id) = take(&shared.pending, &mut rng) else {
                    continue;
                };
                t.call(
                    &mut c,
                    "cancel",
                    json!({"cancel": {"by": operator_auth(), "request": id}}),
                );
            }
        }
    }
    t
}

/// The ceremony's own officers (a single client, so their codes arrive in order).
fn officer_wait(shared: &Shared, skip: &[&str]) -> Option<Value> {
    while Instant::now() < shared.deadline {
        if let Some(a) = officer_auth(&mut shared.ceremony.lock().expect("officers"), skip) {
            return Some(a);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// The sign-in ceremony on the device account, repeated until the deadline; at each release,
/// `racers` clients ask for the same request's code at once.
fn ceremonies(shared: &Shared, racers: usize) -> Tally {
    let mut t = Tally::default();
    let mut c = connect(&shared.socket);
    let mut last_step = 0u64;
    let mut bag = 100u64;
    while Instant::now() < shared.deadline {
        let Some(v) = t.call(
            &mut c,
            "request_code",
            json!({"request_code": {"by": operator_auth(), "account": DEVICE_ACCOUNT,
                "task": "change-root-password", "ticket": "SEC-1",
                "reason": "rotate the root password after the audit finding"}}),
        ) else {
            return t;
        };
        let id = v["request"]["id"].as_str().unwrap_or_default().to_owned();
        shared.acked.lock().expect("acked").push(id.clone());
        let mut approvers: Vec<String> = Vec::new();
        while approvers.len() < 2 {
            let skip: Vec<&str> = approvers.iter().map(String::as_str).collect();
            let Some(by) = officer_wait(shared, &skip) else {
                return t;
            };
            approvers.push(Rig::who(&by));
            let seen = c.seen(&id).expect("request_show of the ceremony's request");
            t.call(
                &mut c,
                "approve",
                json!({"approve": {"by": by, "request": id, "seen": seen}}),
            )
            .expect("approval of the ceremony's request");
        }
        let Some(d) = t.call(
            &mut c,
            "device_show",
            json!({"device_show": {"serial": PRIMARY}}),
        ) else {
            return t;
        };
        let seal = d["device"]["state"]["seal"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let Some(by) = officer_wait(shared, &[]) else {
            return t;
        };
        t.call(
            &mut c,
            "checkout",
            json!({"checkout": {"by": by, "serial": PRIMARY, "seal": seal, "request": id}}),
        )
        .expect("checkout");
        // One code per credential per step: ask once the next step has begun, so the daemon
        // never waits inside the release.
        while rig::now_secs() / 30 <= last_step {
            std::thread::sleep(Duration::from_millis(100));
        }
        let barrier = Arc::new(Barrier::new(racers));
        let answers: Vec<Tally> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..racers)
                .map(|_| {
                    let (b, id) = (barrier.clone(), id.clone());
                    s.spawn(move || {
                        let mut t = Tally::default();
                        let mut c = connect(&shared.socket);
                        b.wait();
                        if let Some(v) = t.call(
                            &mut c,
                            "code",
                            json!({"code": {"by": operator_auth(), "request": id}}),
                        ) {
                            if v["code"]["code"].as_str().is_some_and(|c| c.len() == 6) {
                                t.releases += 1;
                            } else {
                                t.errors.push(format!("malformed code answer: {v}"));
                            }
                        }
                        t
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().expect("racer")).collect()
        });
        let got: u64 = answers.iter().map(|a| a.releases).sum();
        for a in answers {
            t.merge(a);
        }
        if got != 1 {
            t.double_releases += got.saturating_sub(1);
            t.errors
                .push(format!("{id}: {got} clients received a code"));
        }
        last_step = rig::now_secs() / 30;
        let Some(by) = officer_wait(shared, &[]) else {
            return t;
        };
        bag += 1;
        t.call(
            &mut c,
            "checkin",
            json!({"checkin": {"by": by, "serial": PRIMARY, "seal": format!("BAG-{bag}"),
                               "location": "safe A"}}),
        )
        .expect("checkin");
    }
    t
}

fn env_or(var: &str, default: u64) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn load(clients: usize, secs: u64, devices: bool) {
    let seed = Rng::seed_from_env("CUSTODY_LOAD_SEED");
    let (mut rig, mut c) = Rig::setup(10, clients + 56);
    for a in ACCOUNTS {
        rig.add_account(&mut c, a);
    }
    if devices {
        rig.enrol_devices(&mut c);
    }
    drop(c);
    let pid = rig.pid();
    let (rss_before, _) = memory_kib(pid);
    let mut officers = std::mem::take(&mut rig.officers);
    let ceremony = if devices {
        officers.split_off(officers.len() - 4)
    } else {
        Vec::new()
    };
    let shared = Shared {
        socket: rig.socket.clone(),
        officers: Mutex::new(officers),
        ceremony: Mutex::new(ceremony),
        pending: Mutex::new(Vec::new()),
        approvers: Mutex::new(BTreeMap::new()),
        acked: Mutex::new(Vec::new()),
        deadline: Instant::now() + Duration::from_secs(secs),
    };
    let started = Instant::now();
    let mut total = Tally::default();
    std::thread::scope(|s| {
        let mut hs: Vec<_> = (0..clients)
            .map(|i| {
                let shared = &shared;
                let seed = seed.wrapping_add(i as u64 * 0x9E37_79B9);
                std::thread::Builder::new()
                    .stack_size(256 * 1024)
                    .spawn_scoped(s, move || client(shared, seed))
                    .expect("client thread")
            })
            .collect();
        if devices {
            let shared = &shared;
            hs.push(s.spawn(move || ceremonies(shared, 8)));
        }
        for h in hs {
            total.merge(h.join().expect("client"));
        }
    });
    let elapsed = started.elapsed().as_secs_f64();
    let (rss_after, hwm) = memory_kib(pid);
    rig.officers = shared.officers.into_inner().expect("officers");
    rig.officers
        .extend(shared.ceremony.into_inner().expect("officers"));
    // The setup connection has been idle longer than the daemon's idle timeout.
    let mut c = rig.connect();
    let events = rig.export_verified(&mut c).expect("export verifies");
    let mut released: BTreeMap<&str, u32> = BTreeMap::new();
    let mut created = std::collections::BTreeSet::new();
    for e in &events {
        let req = e["body"]["request"].as_str().unwrap_or("");
        match e["kind"].as_str() {
            Some("code.released") => *released.entry(req).or_default() += 1,
            Some("request.created") => {
                created.insert(req.to_owned());
            }
            _ => {}
        }
    }
    let ledger_double = released.values().filter(|n| **n > 1).count();
    let acked = shared.acked.into_inner().expect("acked");
    let missing = acked.iter().filter(|id| !created.contains(*id)).count();
    let ops: usize = total.latencies.values().map(Vec::len).sum();
    let mut per_op = Vec::new();
    for (name, v) in &mut total.latencies {
        v.sort();
        per_op.push(format!(
            "{name}={}:{:.1}/{:.1}",
            v.len(),
            percentile(v, 0.5),
            percentile(v, 0.99)
        ));
    }
    let line = format!(
        "load: clients={clients} secs={elapsed:.1} ops={ops} ops_per_sec={:.0} errors={} \
         expected_refusals={} in_flight_retries={} releases={} double_releases={} \
         missing_requests={missing} \
         rss_kib={rss_before}->{rss_after} hwm_kib={hwm} devices={devices} seed={seed} \
         op=n:p50ms/p99ms {}",
        ops as f64 / elapsed,
        total.errors.len(),
        total.refusals.values().sum::<u64>(),
        total.retries,
        total.releases,
        total.double_releases + ledger_double as u64,
        per_op.join(" ")
    );
    println!("{line}");
    assert!(
        total.errors.is_empty(),
        "unexpected answers ({}), first: {:?}",
        total.errors.len(),
        &total.errors[..total.errors.len().min(5)]
    );
    assert_eq!(total.double_releases + ledger_double as u64, 0, "{line}");
    assert_eq!(
        missing, 0,
        "acknowledged requests missing from the ledger: {line}"
    );
    assert!(
        total
            .latencies
            .get("request_code")
            .is_some_and(|v| !v.is_empty())
            && total.latencies.get("status").is_some_and(|v| !v.is_empty()),
        "the load did too little: {line}"
    );
    if devices {
        assert!(total.releases > 0, "no code was released: {line}");
    }
}

#[test]
fn load_200_clients_for_3_seconds() {
    let _alone = crate::support::alone();
    load(
        env_or("CUSTODY_LOAD_CLIENTS", 200) as usize,
        env_or("CUSTODY_LOAD_SECS", 3),
        false,
    );
}

#[test]
#[ignore = "long: make soak"]
fn load_soak_with_code_releases() {
    let _alone = crate::support::alone();
    if !support::in_harness("load_soak_with_code_releases", 41320, 1) {
        return;
    }
    let _keys = support::two_keys(
        &["--serial", &rig::PRIMARY.to_string()],
        &["--serial", &rig::BACKUP.to_string()],
    );
    load(
        env_or("CUSTODY_LOAD_CLIENTS", 200) as usize,
        env_or("CUSTODY_LOAD_SECS", 300),
        true,
    );
}
