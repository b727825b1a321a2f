//! A real `custodyd` on a temporary directory, for the reliability harnesses
//! (tests/it/daemon/crash.rs, tests/it/daemon/load.rs): genesis with `custody init`, the daemon
//! started sealed, officers unsealing and enrolling as custody users, a JSON-lines client, a
//! pool of officers' second factors (each officer's code is accepted once per 30-second step),
//! offline verification and the daemon's memory figures.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use super::cli::{init, ledger_verify};
use super::clock::totp;
use super::custodyd::{append_log, config};
pub use super::rng::Rng;

/// Genesis officers (keyring names and custody user names).
pub const NAMES: [&str; 10] = [
    "amy", "ben", "cat", "dan", "eve", "fay", "gus", "hal", "ivy", "joe",
];
/// The operator every harness uses (bound to the test's uid).
pub const OPERATOR: &str = "opa";
pub const OPERATOR_PASS: &str = "opa-Operator-Phrase-1";
/// The device serials of the harnesses that release codes (pcscd + two custody-emu).
pub const PRIMARY: u32 = 10_000_001;
pub const BACKUP: u32 = 10_000_002;
/// The account enrolled on those devices.
pub const DEVICE_ACCOUNT: &str = "100000000001";

/// An auditor, whose login session serves the harnesses' reads and exports.
pub const AUDITOR: &str = "audra";
/// The auditor's passphrase.
pub const AUDITOR_PASS: &str = "audra-User-Phrase-22";

/// The auditor's session token by socket, set at each unseal: every request a [`Conn`] sends
/// carries it (reads need a session; operations with their own `by` are unaffected).
static SESSIONS: std::sync::Mutex<std::collections::BTreeMap<std::path::PathBuf, String>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

/// One JSON-lines connection to custodyd.
pub struct Conn {
    r: BufReader<UnixStream>,
    w: UnixStream,
    next: u64,
    socket: std::path::PathBuf,
}

impl Conn {
    pub fn connect(socket: &Path) -> std::io::Result<Conn> {
        let s = UnixStream::connect(socket)?;
        // A release may wait for the next TOTP step (30 s) while holding the daemon.
        s.set_read_timeout(Some(Duration::from_secs(120)))?;
        Ok(Conn {
            r: BufReader::new(s.try_clone()?),
            w: s,
            next: 1,
            socket: socket.to_path_buf(),
        })
    }

    /// The digest of request `id` as an approving officer is shown it (`request_show`), which
    /// an approval carries as `seen`.
    pub fn seen(&mut self, id: &str) -> std::io::Result<String> {
        let r = self.call(json!({"request_show": {"request": id}}))?;
        let rec: mfa_custody::custody::RequestRecord =
            serde_json::from_value(r["result"]["ok"]["request"].clone()).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("request_show {id}: {e}: {r}"),
                )
            })?;
        Ok(rec.approval_digest())
    }

    /// Sends one request and reads its answer. An I/O error or EOF means the daemon is gone.
    pub fn call(&mut self, op: Value) -> std::io::Result<Value> {
        let id = self.next;
        self.next += 1;
        let mut req = json!({"v": 1, "id": id, "op": op});
        let token = SESSIONS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&self.socket)
            .cloned();
        if let Some(t) = token {
            req["session"] = json!(t);
        }
        let mut line = serde_json::to_vec(&req)?;
        line.push(b'\n');
        self.w.write_all(&line)?;
        let mut answer = String::new();
        if self.r.read_line(&mut answer)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let v: Value = serde_json::from_str(&answer)?;
        if v["id"] != json!(id) && v["id"] != json!(0) {
            return Err(std::io::Error::other(format!("answer to another id: {v}")));
        }
        Ok(v)
    }
}

/// The success body of an answer.
pub fn ok(r: &Value) -> Option<&Value> {
    r["result"].get("ok")
}

/// Sends `op`; while the daemon answers that another authentication of the same person from
/// the same uid is still being checked (`busy`, `throttled`: one attempt in flight per person
/// and uid), tries again after a few milliseconds, as a person would, at most `tries` times.
/// Returns the last answer and how many times it tried again.
pub fn call_past_in_flight(c: &mut Conn, op: &Value, tries: u64) -> (std::io::Result<Value>, u64) {
    let started = Instant::now();
    let mut r = c.call(op.clone());
    for i in 0..tries {
        let in_flight = r.as_ref().is_ok_and(|r| {
            r["result"]["err"]["code"] == "busy" && refusal(r).as_deref() == Some("throttled")
        });
        if !in_flight {
            return (r, i);
        }
        std::thread::sleep(Duration::from_millis(
            2 + (u64::from(started.elapsed().subsec_nanos()) + i) % 9,
        ));
        r = c.call(op.clone());
    }
    (r, tries)
}

/// What a harness client makes of one answer to operation `name`: the reply body on success;
/// a refusal listed in `expected` is counted in `refusals` (as `name:reason`); anything else,
/// and a broken connection, is an error.
pub fn judge(
    name: &str,
    answer: std::io::Result<Value>,
    expected: &[&str],
    refusals: &mut std::collections::BTreeMap<String, u64>,
    errors: &mut Vec<String>,
) -> Option<Value> {
    match answer {
        Err(e) => {
            errors.push(format!("{name}: connection: {e}"));
            None
        }
        Ok(r) => match ok(&r) {
            Some(v) => Some(v.clone()),
            None => {
                let why = refusal(&r).unwrap_or_else(|| "?".into());
                if expected.contains(&why.as_str()) {
                    *refusals.entry(format!("{name}:{why}")).or_default() += 1;
                } else {
                    errors.push(format!("{name}: {r}"));
                }
                None
            }
        },
    }
}

/// The error code of an answer (`reason` of the domain when present, else the wire code).
pub fn refusal(r: &Value) -> Option<String> {
    let e = r["result"].get("err")?;
    Some(
        e["reason"]
            .as_str()
            .or_else(|| e["code"].as_str())
            .unwrap_or("?")
            .to_owned(),
    )
}

/// One officer and their second factor.
pub struct Officer {
    pub name: String,
    pub keyring_pass: String,
    pub user_pass: String,
    pub seed: String,
    /// The newest TOTP step this harness ever sent for them (sent steps are spent).
    pub last_step: Option<u64>,
    /// Lent to one client of a concurrent harness.
    pub busy: bool,
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64
}

pub fn operator_auth() -> Value {
    json!({"user": OPERATOR, "passphrase": OPERATOR_PASS})
}

/// Runs `custody ARGS` with `stdin`; (status, stdout, stderr).
pub fn custody_cli(args: &[&str], stdin: &str) -> (i32, String, String) {
    super::custody_stdin(args, stdin)
}

/// Credentials of one of `officers` (not in `skip`) with a code for a step never sent before,
/// if one is free now: the current step, or the one before while the daemon still accepts it.
pub fn officer_auth(officers: &mut [Officer], skip: &[&str]) -> Option<Value> {
    let now = now_secs();
    let (step, into) = (now / 30, now % 30);
    for o in officers {
        if o.seed.is_empty() || skip.contains(&o.name.as_str()) {
            continue;
        }
        let mut candidates = Vec::new();
        if into < 20 {
            candidates.push(step - 1);
        }
        if into < 28 {
            candidates.push(step);
        }
        if let Some(s) = candidates
            .into_iter()
            .find(|s| o.last_step.map_or(true, |l| *s > l))
        {
            o.last_step = Some(s);
            return Some(json!({"user": o.name, "passphrase": o.user_pass,
                               "factor": totp(&o.seed, s)}));
        }
    }
    None
}

/// Lends one officer of `pool` (not busy, not in `skip`) with a code for a fresh step, if one
/// is free now; the officer is kept from other clients until [`return_officer`]. An officer's
/// codes must reach the daemon in the order of their steps (an older step is refused once a
/// newer one was accepted), which concurrent clients sharing an officer would not guarantee.
pub fn lend_officer(pool: &std::sync::Mutex<Vec<Officer>>, skip: &[String]) -> Option<Value> {
    let mut officers = pool.lock().expect("officers");
    let busy: Vec<String> = officers
        .iter()
        .filter(|o| o.busy || skip.contains(&o.name))
        .map(|o| o.name.clone())
        .collect();
    let skip: Vec<&str> = busy.iter().map(String::as_str).collect();
    let a = officer_auth(&mut officers, &skip)?;
    let who = Rig::who(&a);
    if let Some(o) = officers.iter_mut().find(|o| o.name == who) {
        o.busy = true;
    }
    Some(a)
}

/// One client's approval of pending request `id` by an officer of `officers` who has not
/// approved it yet (see [`lend_officer`]), recorded in `approvers`; an approval that completes
/// the request takes it out of `pending`. With no officer's code free in this step, the
/// request is looked up instead. `call` sends an operation by name and answers the reply
/// body, or none when it was refused.
pub fn approve_with_a_lent_officer(
    officers: &std::sync::Mutex<Vec<Officer>>,
    approvers: &std::sync::Mutex<std::collections::BTreeMap<String, Vec<String>>>,
    pending: &std::sync::Mutex<Vec<String>>,
    c: &mut Conn,
    id: &str,
    mut call: impl FnMut(&mut Conn, &'static str, Value) -> Option<Value>,
) {
    let done = approvers
        .lock()
        .expect("approvers")
        .get(id)
        .cloned()
        .unwrap_or_default();
    let Some(by) = lend_officer(officers, &done) else {
        call(c, "request_show", json!({"request_show": {"request": id}}));
        return;
    };
    let officer = Rig::who(&by);
    let Ok(seen) = c.seen(id) else {
        return_officer(officers, &officer);
        return;
    };
    let r = call(
        c,
        "approve",
        json!({"approve": {"by": by, "request": id, "seen": seen}}),
    );
    if r.is_some() {
        approvers
            .lock()
            .expect("approvers")
            .entry(id.to_owned())
            .or_default()
            .push(officer.clone());
    }
    return_officer(officers, &officer);
    if r.is_some_and(|v| v["request"]["status"] == "approved") {
        pending.lock().expect("pending").retain(|x| x != id);
    }
}

/// The operator's request for a code of `account` to change its root password, on a ticket
/// at random, as the harnesses send it.
pub fn request_code_op(account: &str, rng: &mut Rng) -> Value {
    json!({"request_code": {"by": operator_auth(), "account": account,
        "task": "change-root-password", "ticket": format!("SEC-{}", rng.below(9999)),
        "reason": "rotate the root password after the audit finding"}})
}

/// Keeps the request a `request_code` reply body `v` acknowledged: in `acked`, and in
/// `pending` until it is approved.
pub fn acknowledged(
    v: &Value,
    acked: &std::sync::Mutex<Vec<String>>,
    pending: &std::sync::Mutex<Vec<String>>,
) {
    let id = v["request"]["id"].as_str().unwrap_or_default().to_owned();
    acked.lock().expect("acked").push(id.clone());
    pending.lock().expect("pending").push(id);
}

/// A request id of `list` at random, left in it.
pub fn pick(list: &std::sync::Mutex<Vec<String>>, rng: &mut Rng) -> Option<String> {
    let l = list.lock().expect("list");
    (!l.is_empty()).then(|| l[rng.index(l.len())].clone())
}

/// A request id of `list` at random, taken out of it.
pub fn take(list: &std::sync::Mutex<Vec<String>>, rng: &mut Rng) -> Option<String> {
    let mut l = list.lock().expect("list");
    (!l.is_empty()).then(|| {
        let i = rng.index(l.len());
        l.swap_remove(i)
    })
}

/// Gives back an officer lent by [`lend_officer`].
pub fn return_officer(pool: &std::sync::Mutex<Vec<Officer>>, who: &str) {
    if let Some(o) = pool
        .lock()
        .expect("officers")
        .iter_mut()
        .find(|o| o.name == who)
    {
        o.busy = false;
    }
}

/// A ledger directory, its custodyd (when running) and its officers.
pub struct Rig {
    pub dir: tempfile::TempDir,
    pub ledger: PathBuf,
    pub socket: PathBuf,
    pub config: PathBuf,
    pub log: PathBuf,
    pub pubkey: String,
    pub child: Option<Child>,
    pub officers: Vec<Officer>,
}

impl Rig {
    /// Genesis, custodyd started sealed, unsealed by two officers, and every genesis officer
    /// enrolled as a custody user with a second factor; then the operator `opa` (bound to this
    /// process's uid) added by one officer. The one place that knows how a ledger comes to
    /// life: the harnesses only use what it returns. `max_connections_per_uid` is as high as
    /// `max_connections`: every client of a harness is this process's uid, standing for many
    /// people.
    pub fn setup(officers: usize, max_connections: usize) -> (Rig, Conn) {
        Self::setup_with(officers, max_connections, "")
    }

    /// As [`Rig::setup`], with `extra` lines added to the top level of custodyd's
    /// configuration (`touch_timeout_secs = 20`, say).
    pub fn setup_with(officers: usize, max_connections: usize, extra: &str) -> (Rig, Conn) {
        assert!((2..=NAMES.len()).contains(&officers));
        let dir = tempfile::tempdir().expect("tempdir");
        let ledger = dir.path().join("ledger");
        let socket = dir.path().join("custodyd.sock");
        let log = dir.path().join("custodyd.log");
        let mut list: Vec<Officer> = NAMES[..officers]
            .iter()
            .map(|n| Officer {
                name: (*n).to_owned(),
                keyring_pass: format!("{n}-Keyring-Phrase-1"),
                user_pass: format!("{n}-User-Phrase-22"),
                seed: String::new(),
                last_step: None,
                busy: false,
            })
            .collect();
        let keyring: Vec<(&str, &str)> = list
            .iter()
            .map(|o| (o.name.as_str(), o.keyring_pass.as_str()))
            .collect();
        let init = init(&ledger, &keyring);
        let pubkey = init["public_key"].as_str().expect("public key").to_owned();
        let config = config(
            dir.path(),
            &ledger,
            &socket,
            &format!(
                "watch_readers = false\nmax_connections = {max_connections}\n\
                 max_connections_per_uid = {max_connections}\n{extra}\n\
                 [policy]\npassphrase_kdf_iterations = 1000\n"
            ),
        );
        let mut rig = Rig {
            dir,
            ledger,
            socket,
            config,
            log,
            pubkey,
            child: None,
            officers: Vec::new(),
        };
        rig.start();
        let mut c = rig.connect();
        rig.officers = std::mem::take(&mut list);
        rig.unseal(&mut c);
        for i in 0..rig.officers.len() {
            let o = &rig.officers[i];
            let r = c
                .call(json!({"bootstrap_officer": {"user": o.name,
                    "keyring_passphrase": o.keyring_pass, "passphrase": o.user_pass}}))
                .expect("bootstrap");
            let seed = ok(&r)
                .and_then(|v| v["factor"]["base32"].as_str())
                .unwrap_or_else(|| panic!("bootstrap of {}: {r}", o.name))
                .to_owned();
            rig.officers[i].seed = seed;
        }
        let by = rig.officer_auth_wait();
        let uid = rustix::process::geteuid().as_raw();
        let r = c
            .call(
                json!({"user_add": {"by": [by], "name": OPERATOR, "roles": ["operator"],
                                      "uid": uid, "passphrase": OPERATOR_PASS}}),
            )
            .expect("user add");
        assert!(ok(&r).is_some(), "operator: {r}");
        let by = rig.officer_auth_wait();
        let r = c
            .call(
                json!({"user_add": {"by": [by], "name": AUDITOR, "roles": ["auditor"],
                                      "passphrase": AUDITOR_PASS}}),
            )
            .expect("user add");
        assert!(ok(&r).is_some(), "auditor: {r}");
        rig.login_auditor(&mut c).expect("auditor login");
        (rig, c)
    }

    /// Starts custodyd (sealed) and waits until it listens.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "custodyd already running");
        let mut child = Command::new(env!("CARGO_BIN_EXE_custodyd"))
            .args(["--config", &self.config.to_string_lossy()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(append_log(&self.log))
            .spawn()
            .expect("start custodyd");
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(mut c) = Conn::connect(&self.socket) {
                if c.call(json!("status")).is_ok() {
                    break;
                }
            }
            if let Some(st) = child.try_wait().expect("wait") {
                panic!("custodyd exited at start ({st}): {}", self.log_tail());
            }
            assert!(
                Instant::now() < deadline,
                "custodyd never listened: {}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        self.child = Some(child);
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("custodyd running").id()
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn connect(&self) -> Conn {
        Conn::connect(&self.socket).expect("connect to custodyd")
    }

    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Two officers offer their keyring passphrases.
    pub fn unseal(&self, c: &mut Conn) {
        self.try_unseal(c).expect("unseal");
    }

    /// As [`Rig::unseal`]; an I/O error means the daemon went away meanwhile.
    pub fn try_unseal(&self, c: &mut Conn) -> std::io::Result<()> {
        for o in &self.officers[..2] {
            let r = c.call(json!({"unseal": {"officer": o.name, "passphrase": o.keyring_pass}}))?;
            assert!(ok(&r).is_some(), "unseal by {}: {r}", o.name);
        }
        let r = c.call(json!("status"))?;
        assert_eq!(ok(&r).map(|v| &v["status"]["sealed"]), Some(&json!(false)));
        // Sessions end at every seal and restart: the auditor logs in again (once they exist).
        self.login_auditor(c)
    }

    /// Logs the auditor in for this daemon's reads; nothing when there is no auditor yet.
    pub fn login_auditor(&self, c: &mut Conn) -> std::io::Result<()> {
        SESSIONS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.socket);
        let r = c.call(json!({"login": {"by": {"user": AUDITOR, "passphrase": AUDITOR_PASS}}}))?;
        if let Some(t) = ok(&r).and_then(|v| v["session"]["token"].as_str()) {
            SESSIONS
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(self.socket.clone(), t.to_owned());
        }
        Ok(())
    }

    /// An officer's credentials with a code for a step never sent before, if one is free now
    /// (the current step, or the one before while it is still young enough to be accepted).
    pub fn officer_auth(&mut self) -> Option<Value> {
        self.officer_auth_except(&[])
    }

    /// As [`Rig::officer_auth`], skipping some officers (self-approval, a second approval).
    pub fn officer_auth_except(&mut self, skip: &[&str]) -> Option<Value> {
        officer_auth(&mut self.officers, skip)
    }

    /// The name in an auth value.
    pub fn who(auth: &Value) -> String {
        auth["user"].as_str().unwrap_or("").to_owned()
    }

    /// Waits (up to a step) for an officer's code.
    pub fn officer_auth_wait(&mut self) -> Value {
        self.officer_auth_wait_except(&[])
    }

    pub fn officer_auth_wait_except(&mut self, skip: &[&str]) -> Value {
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            if let Some(a) = self.officer_auth_except(skip) {
                return a;
            }
            assert!(Instant::now() < deadline, "no officer code free in 40 s");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `custody ledger verify` on the directory (custodyd stopped): every hash, link,
    /// checkpoint and the projections against a replay.
    pub fn verify_offline(&self) -> Result<String, String> {
        let [a, b] = [&self.officers[0], &self.officers[1]];
        let r = ledger_verify(
            &self.ledger,
            [
                (a.name.as_str(), a.keyring_pass.as_str()),
                (b.name.as_str(), b.keyring_pass.as_str()),
            ],
        );
        if r.code == 0 {
            Ok(r.out)
        } else {
            Err(format!(
                "custody ledger verify exited {}: {}{}",
                r.code, r.out, r.err
            ))
        }
    }

    /// An export through custodyd, verified offline with `custody audit verify` against the
    /// genesis key; answers its event lines.
    pub fn export_verified(&self, c: &mut Conn) -> Result<Vec<Value>, String> {
        let r = c
            .call(json!("export"))
            .map_err(|e| format!("export: {e}"))?;
        self.verify_export(&r)
    }

    /// Verifies the answer to an export (see [`Rig::export_verified`]).
    pub fn verify_export(&self, r: &Value) -> Result<Vec<Value>, String> {
        let content = ok(r)
            .and_then(|v| v["export"]["content"].as_str())
            .ok_or_else(|| format!("export refused: {r}"))?
            .to_owned();
        let file = self.dir.path().join("export.jsonl");
        std::fs::write(&file, &content).map_err(|e| e.to_string())?;
        let f = file.to_string_lossy().into_owned();
        let (code, out, err) = custody_cli(
            &["--json", "audit", "verify", &f, "--pubkey", &self.pubkey],
            "",
        );
        if code != 0 {
            return Err(format!("custody audit verify exited {code}: {out}{err}"));
        }
        content
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).map_err(|e| e.to_string()))
            .filter(|v| {
                v.as_ref()
                    .map_or(true, |v| v["type"] == "event" || v["type"] == "redacted")
            })
            .collect()
    }

    /// Registers the two emulated keys, enrols [`DEVICE_ACCOUNT`] on them and seals both into
    /// the safe (bags `BAG-1` and `BAG-2`). Needs pcscd with the keys present; the enrolment
    /// waits for the next TOTP step.
    pub fn enrol_devices(&mut self, c: &mut Conn) {
        let by = self.officer_auth_wait();
        let r = c
            .call(
                json!({"account_add": {"by": by, "provider": "aws", "account": DEVICE_ACCOUNT,
                "alias": "devices-root", "root_email": "root@devices.test",
                "credential": "AWS:devices-root"}}),
            )
            .expect("account add");
        assert!(ok(&r).is_some(), "{r}");
        for (serial, role) in [(PRIMARY, "primary"), (BACKUP, "backup")] {
            let by = self.officer_auth_wait();
            let r = c
                .call(json!({"device_register": {"by": by, "serial": serial, "role": role}}))
                .expect("register");
            assert!(ok(&r).is_some(), "register {serial}: {r}");
        }
        let a = self.officer_auth_wait();
        let b = self.officer_auth_wait_except(&[&Self::who(&a)]);
        let r = c
            .call(
                json!({"enrol": {"by": [a, b], "account": DEVICE_ACCOUNT, "primary": PRIMARY,
                "backup": BACKUP, "seed": "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"}}),
            )
            .expect("enrol");
        assert!(ok(&r).is_some(), "enrol: {r}");
        for (serial, seal) in [(PRIMARY, "BAG-1"), (BACKUP, "BAG-2")] {
            let by = self.officer_auth_wait();
            let r = c
                .call(json!({"checkin": {"by": by, "serial": serial, "seal": seal,
                                         "location": "safe A"}}))
                .expect("checkin");
            assert!(ok(&r).is_some(), "checkin {serial}: {r}");
        }
    }

    /// Registers an account without devices (one officer).
    pub fn add_account(&mut self, c: &mut Conn, account: &str) {
        let by = self.officer_auth_wait();
        let r = c
            .call(
                json!({"account_add": {"by": by, "provider": "aws", "account": account,
                "alias": format!("acct-{account}"), "root_email": format!("root@{account}.test"),
                "credential": format!("AWS:{account}")}}),
            )
            .expect("account add");
        assert!(ok(&r).is_some(), "{r}");
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `VmRSS` and `VmHWM` of a process, in KiB.
pub fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} missing in /proc/{pid}/status"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The `p` quantile (0.0 to 1.0) of sorted latencies, in milliseconds (nearest rank).
pub fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// The host's 1-, 5- and 15-minute load averages (`/proc/loadavg`), as printed there.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join("/"))
        .unwrap_or_else(|_| "?".into())
}
