//! A real `custodyd` binary on a temporary ledger, spoken to over its socket with raw JSON
//! lines, and the officers' second factors computed as their authenticators would. The daemon
//! is `custodyd-testclock` on the ledger's test clock ([`Custodyd::clock`]): where an officer
//! would wait for a fresh second-factor step, the clock moves to it.
//!
//! Everything a scenario needs to bring a daemon to an unsealed state with custody users is in
//! [`Custodyd::start`] and [`Custodyd::unseal_and_bootstrap`]; adapt those two when the
//! protocol's genesis operations change.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::clock::{custodyd_testclock, totp, TestClock};
use super::ledger::{genesis, keyring_of};
use mfa_custody::ledger::Projections;
use serde_json::{json, Value};

/// The keyring (unseal) passphrase of a genesis officer.
pub fn unseal_pass(officer: &str) -> String {
    format!("{officer}-Unseal-Phrase-1")
}

/// The custody (user) passphrase of a person.
pub fn user_pass(user: &str) -> String {
    format!("{user}-User-Phrase-9")
}

/// Writes custodyd's configuration file in `dir`: the ledger directory, the socket, then the
/// lines `rest` (settings, tables).
pub fn config(dir: &Path, ledger: &Path, socket: &Path, rest: &str) -> PathBuf {
    let config = dir.join("custody.toml");
    std::fs::write(
        &config,
        format!("ledger_dir = {ledger:?}\nsocket = {socket:?}\n{rest}"),
    )
    .expect("custodyd's configuration");
    config
}

/// Starts `cmd` (custodyd, or a wrapper that execs it, with its arguments) with no input, its
/// log (standard error) appended to `log`, and waits up to 10 s for it to listen on `socket`.
pub fn spawn_listening(mut cmd: Command, socket: &Path, log: &Path) -> Child {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(append_log(log))
        .spawn()
        .expect("start custodyd");
    let deadline = Instant::now() + Duration::from_secs(10);
    while UnixStream::connect(socket).is_err() {
        assert!(Instant::now() < deadline, "custodyd never listened");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

/// custodyd's log file, opened to append (a restarted daemon goes on writing it).
pub fn append_log(log: &Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("custodyd's log")
}

/// A daemon process, killed and reaped on drop.
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running `custodyd`, killed on drop.
pub struct Custodyd {
    child: Child,
    /// Its socket.
    pub socket: PathBuf,
    /// Its configuration file.
    pub config: PathBuf,
    /// Its standard error (the log).
    pub log: PathBuf,
    /// The ledger directory.
    pub ledger: PathBuf,
    /// The keyring officers.
    pub officers: Vec<String>,
    /// The daemon's time.
    pub clock: TestClock,
}

impl Custodyd {
    /// Creates a ledger in `dir` whose keyring holds `officers` (threshold 2, test KDF) and
    /// starts `custodyd` on it with `log_level` and the extra configuration lines `extra`.
    pub fn start(dir: &Path, officers: &[&str], log_level: &str, extra: &str) -> Self {
        Self::start_wrapped(dir, officers, log_level, extra, &[])
    }

    /// [`Custodyd::start`] through a wrapper command (`prlimit ... --`) that execs custodyd.
    pub fn start_wrapped(
        dir: &Path,
        officers: &[&str],
        log_level: &str,
        extra: &str,
        wrapper: &[&str],
    ) -> Self {
        let ledger = dir.join("ledger");
        genesis(
            &ledger,
            &keyring_of(officers, unseal_pass),
            Projections::ledger_only(),
        );
        let socket = dir.join("custodyd.sock");
        let config = config(
            dir,
            &ledger,
            &socket,
            &format!(
                "watch_readers = false\n{extra}\n[policy]\npassphrase_kdf_iterations = 1000\n"
            ),
        );
        let log = dir.join("custodyd.log");
        let clock = TestClock::create(dir);
        let custodyd = custodyd_testclock();
        let custodyd = custodyd.to_str().expect("a UTF-8 path");
        let (program, before) = match wrapper.split_first() {
            Some((p, rest)) => (*p, [rest, &[custodyd]].concat()),
            None => (custodyd, Vec::new()),
        };
        let mut cmd = Command::new(program);
        cmd.args(before)
            .args([
                "--config",
                &config.to_string_lossy(),
                "--log-level",
                log_level,
            ])
            .args(clock.args())
            .env("RUST_LOG", log_level);
        let child = spawn_listening(cmd, &socket, &log);
        Self {
            child,
            socket,
            config,
            log,
            ledger,
            officers: officers.iter().map(|s| (*s).to_owned()).collect(),
            clock,
        }
    }

    /// The officers' second factors, at this daemon's time (none known yet).
    pub fn factors(&self) -> Factors {
        Factors {
            clock: self.clock.clone(),
            seeds: BTreeMap::new(),
            spent: BTreeMap::new(),
            issued: Vec::new(),
        }
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A new connection.
    pub fn connect(&self) -> Conn {
        Conn::new(UnixStream::connect(&self.socket).expect("connect"))
    }

    /// A new connection from another uid (see [`stream_as`]).
    pub fn connect_as(&self, uid: u32) -> Conn {
        Conn::new(stream_as(&self.socket, uid))
    }

    /// Unseals with the first two keyring officers.
    pub fn unseal(&self, c: &mut Conn) {
        for o in self.officers.iter().take(2) {
            let r = c.call(json!({"unseal": {"officer": o, "passphrase": unseal_pass(o)}}));
            assert_eq!(outcome(&r), "ok", "unseal by {o}: {r}");
        }
    }

    /// Unseals, then enrols every keyring officer but those in `keep` as a custody officer,
    /// recording their second-factor seeds in `factors`.
    pub fn unseal_and_bootstrap(&self, c: &mut Conn, factors: &mut Factors, keep: &[&str]) {
        self.unseal(c);
        self.bootstrap(c, factors, keep);
    }

    /// Enrols every keyring officer but those in `keep` as a custody officer (the daemon is
    /// unsealed), recording their second-factor seeds in `factors`.
    pub fn bootstrap(&self, c: &mut Conn, factors: &mut Factors, keep: &[&str]) {
        for o in &self.officers {
            if keep.contains(&o.as_str()) {
                continue;
            }
            let r = c.call(json!({"bootstrap_officer": {"user": o, "keyring_passphrase": unseal_pass(o), "passphrase": user_pass(o)}}));
            let seed = r["result"]["ok"]["factor"]["base32"]
                .as_str()
                .unwrap_or_else(|| panic!("bootstrap {o}: {r}"))
                .to_owned();
            factors.seeds.insert(o.clone(), seed);
        }
    }

    /// Stops the daemon (SIGTERM) and waits for it.
    pub fn stop(mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Custodyd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The uid (and gid) of `nobody`: the stranger of the socket tests.
pub const NOBODY: u32 = 65534;

/// A temporary directory another uid may search, so a socket in it (group [`NOBODY`] with
/// `socket_group = "65534"`, mode 0660) is reachable by a connection from [`NOBODY`].
pub fn tmp_open_to_nobody() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().expect("tmp");
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o711)).expect("chmod");
    tmp
}

/// A `custodyd` whose socket a connection from [`NOBODY`] reaches (its directory searchable,
/// `socket_group` [`NOBODY`]), on a ledger whose keyring holds `officers`. The tests that
/// connect as [`NOBODY`] need root, as CI runs them: refused loudly otherwise.
pub fn start_open_to_nobody(officers: &[&str]) -> (tempfile::TempDir, Custodyd) {
    assert!(
        rustix::process::geteuid().is_root(),
        "these tests connect as another uid and need root, as CI runs them"
    );
    let tmp = tmp_open_to_nobody();
    let d = Custodyd::start(
        tmp.path(),
        officers,
        "info",
        &format!("socket_group = \"{NOBODY}\"\n"),
    );
    (tmp, d)
}

/// A connection from uid and gid `uid`, made by a thread that takes them for itself alone
/// (`setresuid` on that thread, no setuid program): the kernel records the connecting
/// thread's credentials as the connection's SO_PEERCRED, which is all the daemon looks at.
/// The tests run as root, as CI runs them.
pub fn stream_as(socket: &Path, uid: u32) -> UnixStream {
    let path = socket.to_path_buf();
    std::thread::spawn(move || {
        let gid = rustix::process::Gid::from_raw(uid);
        rustix::thread::set_thread_res_gid(gid, gid, gid).expect("setresgid on this thread");
        let u = rustix::process::Uid::from_raw(uid);
        rustix::thread::set_thread_res_uid(u, u, u).expect("setresuid on this thread");
        UnixStream::connect(&path)
    })
    .join()
    .expect("connecting thread")
    .expect("connect as another uid")
}

/// One connection.
pub struct Conn {
    w: UnixStream,
    r: BufReader<UnixStream>,
    next: u64,
}

impl Conn {
    /// A connection over a stream already connected (for instance from another uid).
    pub fn new(s: UnixStream) -> Self {
        s.set_read_timeout(Some(Duration::from_secs(120)))
            .expect("timeout");
        Conn {
            w: s.try_clone().expect("clone"),
            r: BufReader::new(s),
            next: 1,
        }
    }

    /// Sends one operation and reads its answer, which must answer it by id.
    pub fn call(&mut self, op: Value) -> Value {
        self.call_in(op, None)
    }

    /// Sends one operation in a session (its token from [`Conn::login`]) and reads its answer.
    pub fn call_as(&mut self, op: Value, session: &str) -> Value {
        self.call_in(op, Some(session))
    }

    /// Logs `auth` in and answers the session token.
    pub fn login(&mut self, auth: Value) -> String {
        let r = self.call(json!({"login": {"by": auth}}));
        r["result"]["ok"]["session"]["token"]
            .as_str()
            .unwrap_or_else(|| panic!("login: {r}"))
            .to_owned()
    }

    fn call_in(&mut self, op: Value, session: Option<&str>) -> Value {
        let id = self.next;
        let v = self.send(op, session);
        assert_eq!(v["id"], id, "{v}");
        v
    }

    /// Sends one operation and reads the answer line, whatever its id (a line the daemon
    /// cannot read is answered with id 0, and the connection closed).
    pub fn call_any_id(&mut self, op: Value) -> Value {
        self.send(op, None)
    }

    fn send(&mut self, op: Value, session: Option<&str>) -> Value {
        let id = self.next;
        self.next += 1;
        let mut req = json!({"v": 1, "id": id, "op": op});
        if let Some(t) = session {
            req["session"] = json!(t);
        }
        let mut line = serde_json::to_vec(&req).expect("encode");
        line.push(b'\n');
        self.w.write_all(&line).expect("write");
        let mut answer = String::new();
        self.r.read_line(&mut answer).expect("read");
        serde_json::from_str(&answer).expect("a JSON answer")
    }
}

/// The digest an approval of `request` (a request record as the daemon answers it) carries
/// as `seen`: what the approving officer was shown.
pub fn seen(request: &Value) -> String {
    serde_json::from_value::<mfa_custody::custody::RequestRecord>(request.clone())
        .unwrap_or_else(|e| panic!("a request record: {e}: {request}"))
        .approval_digest()
}

/// `ok`, or the error's `code`, or `code/reason` when the domain refused.
pub fn outcome(resp: &Value) -> String {
    if resp["result"].get("ok").is_some() {
        return "ok".into();
    }
    let e = &resp["result"]["err"];
    match (e["code"].as_str(), e["reason"].as_str()) {
        (Some(c), Some(r)) => format!("{c}/{r}"),
        (Some(c), None) => c.to_owned(),
        _ => panic!("neither ok nor err: {resp}"),
    }
}

/// The officers' second-factor seeds and the steps they have spent: a step is accepted once
/// per officer, the current or the previous one. Made by [`Custodyd::factors`], on its clock.
pub struct Factors {
    clock: TestClock,
    /// Base32 seeds by user.
    pub seeds: BTreeMap<String, String>,
    spent: BTreeMap<String, u64>,
    /// Every code handed out (for scans).
    pub issued: Vec<String>,
}

impl Factors {
    fn next_step(&self, user: &str) -> Option<u64> {
        let now = self.clock.step();
        let step = match self.spent.get(user) {
            Some(last) => (*last + 1).max(now - 1),
            None => now - 1,
        };
        (step <= now).then_some(step)
    }

    /// Whether `user` has a step left now.
    pub fn available(&self, user: &str) -> bool {
        self.next_step(user).is_some()
    }

    /// A code of an unspent step for `user`, moving the clock to the next step when both are
    /// spent.
    /// Users without a factor get none.
    pub fn code(&mut self, user: &str) -> Option<String> {
        let seed = self.seeds.get(user)?.clone();
        let step = self.clock.unused_step(self.spent.get(user).copied(), 0);
        self.spent.insert(user.to_owned(), step);
        let code = totp(&seed, step);
        self.issued.push(code.clone());
        Some(code)
    }

    /// `{"user", "passphrase", "factor"?}` for `user`, spending a step of their factor.
    pub fn auth(&mut self, user: &str) -> Value {
        match self.code(user) {
            Some(f) => json!({"user": user, "passphrase": user_pass(user), "factor": f}),
            None => json!({"user": user, "passphrase": user_pass(user)}),
        }
    }

    /// Like [`Factors::auth`] with a code of the current step, not counted as spent: for a
    /// person the daemon refuses before it checks the factor (suspended, unknown).
    pub fn auth_unspent(&self, user: &str) -> Value {
        match self.seeds.get(user) {
            Some(seed) => {
                json!({"user": user, "passphrase": user_pass(user), "factor": totp(seed, self.clock.step())})
            }
            None => json!({"user": user, "passphrase": user_pass(user)}),
        }
    }

    /// Steps `user` may still spend now (0, 1 or 2).
    pub fn left(&self, user: &str) -> u64 {
        let now = self.clock.step();
        let from = match self.spent.get(user) {
            Some(last) => (*last + 1).max(now - 1),
            None => now - 1,
        };
        (now + 1).saturating_sub(from)
    }

    /// Marks the step `user` spent as given (their code was sent and accepted or consumed).
    pub fn forget(&mut self, user: &str) {
        self.seeds.remove(user);
    }
}
