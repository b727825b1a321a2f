//! `custodyd` over a real Unix socket in a temporary directory: the server is given its
//! listener, shutdown flag and limits (`daemon::run`), and the tests speak raw bytes to it. The
//! in-process daemon runs on a clock the test holds ([`HeldClock`]), so officers' codes are
//! made at its time and never meet a step boundary. The last tests run the real binaries:
//! `custodyd` for its socket and shutdown, `custodyd-testclock` (the same body on a clock the
//! test moves) for what its log holds after officers act.

use std::io::{BufRead, BufReader, Read, Write};
use std::num::NonZeroU32;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mfa_custody::custody::Clock;
use mfa_custody::daemon::{run, Daemon, DaemonOptions, ServerLimits};
use mfa_custody::ledger::Projections;
use serde_json::Value;

use crate::support::clock;
use crate::support::custodyd::{config, spawn_listening};
use crate::support::ledger::{genesis, keyring};

const ALICE: &str = "alice-Unseal-Phrase-1";
const BOB: &str = "bob-Unseal-Phrase-22";

fn make_ledger(dir: &Path) -> PathBuf {
    let ledger = dir.join("ledger");
    genesis(
        &ledger,
        &keyring(&[("alice", ALICE), ("bob", BOB)]),
        Projections::ledger_only(),
    );
    ledger
}

/// The in-process daemon's time: the start of the host's current step, standing still unless
/// the daemon waits for a later time (then it moves there).
struct HeldClock(AtomicI64);

impl HeldClock {
    fn at_host_step() -> Arc<Self> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis();
        let ms = i64::try_from(now).expect("ms") / 30_000 * 30_000;
        Arc::new(Self(AtomicI64::new(ms)))
    }

    fn step(&self) -> u64 {
        u64::try_from(self.now_ms() / 30_000).expect("after 1970")
    }
}

impl Clock for HeldClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }

    fn wait_until(&self, until_ms: i64) {
        self.0.fetch_max(until_ms, Ordering::SeqCst);
    }
}

struct Server {
    _dir: tempfile::TempDir,
    clock: Arc<HeldClock>,
    socket: PathBuf,
    shutdown: Arc<AtomicBool>,
    handle: Option<JoinHandle<std::io::Result<()>>>,
    /// The daemon itself, for the tests' own reads of its ledger (the socket's reads need a
    /// login session, which `tests/it/daemon/sessions.rs` and the authorization matrix cover).
    daemon: Arc<Daemon>,
}

impl Server {
    fn start(max_connections: usize) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let ledger = make_ledger(dir.path());
        let socket = dir.path().join("custodyd.sock");
        let listener = UnixListener::bind(&socket).expect("bind");
        let mut opts = DaemonOptions::new(ledger);
        let limits = ServerLimits {
            max_connections,
            max_connections_per_uid: max_connections,
            idle_timeout: Duration::from_secs(5),
            request_deadline: Duration::from_secs(5),
        };
        opts.policy.kdf = mfa_custody::custody::PassphraseKdf::insecure_for_tests(
            NonZeroU32::new(1000).expect("nonzero"),
        );
        let clock = HeldClock::at_host_step();
        let daemon = Arc::new(Daemon::with_clock(opts, clock.clone()));
        let shutdown = Arc::new(AtomicBool::new(false));
        let s = shutdown.clone();
        let served = daemon.clone();
        let handle = std::thread::spawn(move || run(listener, served, s, limits));
        Self {
            daemon,
            _dir: dir,
            clock,
            socket,
            shutdown,
            handle: Some(handle),
        }
    }

    fn connect(&self) -> Conn {
        Conn::new(UnixStream::connect(&self.socket).expect("connect"))
    }

    /// The code of `base32`'s TOTP `steps_back` steps before the daemon's current one.
    fn totp(&self, base32: &str, steps_back: u64) -> String {
        clock::totp(base32, self.clock.step() - steps_back)
    }

    fn stop(mut self) {
        self.shutdown.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            h.join().expect("server thread").expect("server result");
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.store(true, Ordering::SeqCst);
    }
}

struct Conn {
    w: UnixStream,
    r: BufReader<UnixStream>,
}

impl Conn {
    fn new(s: UnixStream) -> Self {
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        Self {
            w: s.try_clone().expect("clone"),
            r: BufReader::new(s),
        }
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        self.w.write_all(bytes).expect("write");
    }

    fn read_response(&mut self) -> Value {
        let mut line = String::new();
        self.r.read_line(&mut line).expect("read");
        assert!(line.ends_with('\n'), "a whole response line: {line:?}");
        serde_json::from_str(&line).expect("JSON response")
    }

    fn call(&mut self, id: u64, op: Value) -> Value {
        let req = serde_json::json!({"v": 1, "id": id, "op": op});
        let mut line = serde_json::to_vec(&req).expect("encode");
        line.push(b'\n');
        self.send_raw(&line);
        let resp = self.read_response();
        assert_eq!(resp["v"], 1);
        assert_eq!(resp["id"], id);
        resp
    }

    /// Sends a request the daemon cannot read (its answer carries id 0) and reads the answer.
    fn call_malformed(&mut self, id: u64, op: Value) -> Value {
        let req = serde_json::json!({"v": 1, "id": id, "op": op});
        let mut line = serde_json::to_vec(&req).expect("encode");
        line.push(b'\n');
        self.send_raw(&line);
        self.read_response()
    }

    /// True when the daemon has closed the connection: end of file, or a reset (a Unix socket
    /// closed with unread bytes still queued, as after an oversized line, resets its peer).
    fn closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        match self.r.read(&mut b) {
            Ok(0) => true,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
            Ok(_) => false,
        }
    }
}

fn ok(resp: &Value) -> &Value {
    resp["result"]
        .get("ok")
        .unwrap_or_else(|| panic!("expected ok: {resp}"))
}

fn err_code(resp: &Value) -> String {
    resp["result"]["err"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("expected an error: {resp}"))
        .to_owned()
}

fn unseal(c: &mut Conn, id: u64, officer: &str, pass: &str) -> Value {
    c.call(
        id,
        serde_json::json!({"unseal": {"officer": officer, "passphrase": pass}}),
    )
}

/// The keyring (unseal) passphrase of a genesis officer.
fn keyring_of(who: &str) -> &'static str {
    match who {
        "alice" => ALICE,
        "bob" => BOB,
        _ => "not-an-officer",
    }
}

/// A `bootstrap_officer` op for a genesis officer, with their keyring passphrase.
fn bootstrap(who: &str) -> Value {
    serde_json::json!({"bootstrap_officer": {"user": who, "keyring_passphrase": keyring_of(who), "passphrase": format!("{who}-User-Phrase-9")}})
}

/// alice and bob unseal (requests 1 and 2) and enrol as custody officers (3 and 4), each
/// given a TOTP factor: their Base32 seeds.
fn unseal_and_enrol_alice_and_bob(c: &mut Conn) -> std::collections::HashMap<&'static str, String> {
    unseal(c, 1, "alice", ALICE);
    unseal(c, 2, "bob", BOB);
    let mut seeds = std::collections::HashMap::new();
    for (id, who) in [(3, "alice"), (4, "bob")] {
        let r = c.call(id, bootstrap(who));
        let f = &ok(&r)["factor"];
        assert!(f["uri"]
            .as_str()
            .expect("uri")
            .starts_with("otpauth://totp/"));
        seeds.insert(who, f["base32"].as_str().expect("seed").to_owned());
    }
    seeds
}

/// Officer `who`'s credentials with the code of `back` steps before the daemon's current one.
fn officer(
    server: &Server,
    seeds: &std::collections::HashMap<&str, String>,
    who: &str,
    back: u64,
) -> Value {
    let pass = format!("{who}-User-Phrase-9");
    auth(who, &pass, Some(server.totp(&seeds[who], back)))
}

#[test]
fn daemon_status_while_sealed() {
    let server = Server::start(8);
    let mut c = server.connect();
    let r = c.call(1, "status".into());
    let s = &ok(&r)["status"];
    assert_eq!(s["sealed"], true);
    assert_eq!(s["threshold"], 2);
    assert_eq!(s["officers"], serde_json::json!(["alice", "bob"]));
    assert_eq!(s["head_seq"], Value::Null);
    assert_eq!(s["peer_uid"], rustix::process::geteuid().as_raw());
    let r = c.call(2, "checkpoint".into());
    assert_eq!(err_code(&r), "sealed");
    server.stop();
}

#[test]
fn daemon_unseal_with_quorum_then_seal() {
    let server = Server::start(8);
    let mut a = server.connect();
    let mut b = server.connect();
    assert_eq!(
        err_code(&unseal(&mut a, 1, "mallory", ALICE)),
        "unknown_officer"
    );
    let r = unseal(&mut a, 2, "alice", ALICE);
    let p = &ok(&r)["unseal"];
    assert_eq!(p["unsealed"], false);
    assert_eq!(p["given"], serde_json::json!(["alice"]));
    assert_eq!(
        err_code(&unseal(&mut a, 3, "alice", ALICE)),
        "unknown_officer"
    );
    let r = b.call(4, "status".into());
    assert_eq!(
        ok(&r)["status"]["unseal_given"],
        serde_json::json!(["alice"])
    );
    // A wrong share is refused at once, to the officer who offered it, naming only them; the
    // shares already offered are kept.
    let r = unseal(&mut b, 5, "bob", "not-Bobs-Phrase-9");
    assert_eq!(err_code(&r), "unseal_failed");
    let message = r["result"]["err"]["message"].as_str().expect("message");
    assert!(
        message.contains("bob") && !message.contains("alice"),
        "{message}"
    );
    let r = b.call(6, "status".into());
    assert_eq!(
        ok(&r)["status"]["unseal_given"],
        serde_json::json!(["alice"])
    );
    let r = unseal(&mut b, 8, "bob", BOB);
    assert_eq!(ok(&r)["unseal"]["unsealed"], true);
    let r = a.call(9, "status".into());
    let s = &ok(&r)["status"];
    assert_eq!(s["sealed"], false);
    // genesis, the recorded failed attempt, the unseal event.
    assert_eq!(s["head_seq"], 3);
    assert_eq!(s["public_key"].as_str().map(str::len), Some(64));
    assert_eq!(
        err_code(&unseal(&mut a, 10, "alice", ALICE)),
        "already_unsealed"
    );
    let r = a.call(11, "checkpoint".into());
    assert_eq!(
        r["result"]["err"]["reason"], "authentication_required",
        "a checkpoint needs an officer's or auditor's session: {r}"
    );
    // Sealing needs an officer: alice enrols (seq 4), then seals with her second factor
    // (auth.succeeded 5, daemon.sealed 6).
    let seed = ok(&a.call(15, bootstrap("alice")))["factor"]["base32"]
        .as_str()
        .expect("seed")
        .to_owned();
    let by = auth("alice", "alice-User-Phrase-9", Some(server.totp(&seed, 0)));
    let r = a.call(12, serde_json::json!({"seal": {"by": by}}));
    assert_eq!(ok(&r)["sealed"]["seq"], 6);
    let r = b.call(13, "status".into());
    assert_eq!(ok(&r)["status"]["sealed"], true);
    assert_eq!(err_code(&b.call(14, "export".into())), "sealed");
    server.stop();
}

#[test]
fn daemon_answers_garbage_and_closes_while_another_client_completes() {
    let server = Server::start(8);
    let mut good = server.connect();
    let r = unseal(&mut good, 1, "alice", ALICE);
    assert_eq!(ok(&r)["unseal"]["given"], serde_json::json!(["alice"]));
    for garbage in [
        &b"\x00\xff\xfe garbage\n"[..],
        b"{\"v\":1,\"id\":2}\n",
        b"{\"v\":1,\"id\":3,\"op\":\"launch_missiles\"}\n",
        b"[1,2,3]\n",
    ] {
        let mut bad = server.connect();
        bad.send_raw(garbage);
        let r = bad.read_response();
        assert_eq!(err_code(&r), "bad_request", "{r}");
        assert!(bad.closed(), "the connection closes after a malformed line");
    }
    let mut v2 = server.connect();
    v2.send_raw(b"{\"v\":2,\"id\":77,\"op\":\"status\"}\n");
    let r = v2.read_response();
    assert_eq!(err_code(&r), "unsupported_version");
    assert_eq!(r["id"], 77);
    // The first client's unseal goes on undisturbed.
    let r = unseal(&mut good, 4, "bob", BOB);
    assert_eq!(ok(&r)["unseal"]["unsealed"], true);
    server.stop();
}

#[test]
fn daemon_refuses_a_100_mb_line_at_the_limit_without_reading_it_all() {
    let server = Server::start(8);
    let mut big = server.connect();
    let mut writer = big.w.try_clone().expect("clone");
    let sender = std::thread::spawn(move || {
        let chunk = vec![b'a'; 1 << 20];
        let mut sent = 0usize;
        for _ in 0..100 {
            match writer.write_all(&chunk) {
                Ok(()) => sent += chunk.len(),
                Err(_) => break,
            }
        }
        sent
    });
    let r = big.read_response();
    assert_eq!(err_code(&r), "too_large");
    assert!(big.closed());
    let sent = sender.join().expect("sender");
    assert!(
        sent < 100 << 20,
        "the daemon closed before the 100 MB were taken ({sent} bytes sent)"
    );
    // Meanwhile, another client is served.
    let mut other = server.connect();
    assert_eq!(
        ok(&other.call(1, "status".into()))["status"]["sealed"],
        true
    );
    server.stop();
}

#[test]
fn daemon_survives_a_disconnect_mid_request() {
    let server = Server::start(8);
    let mut a = server.connect();
    unseal(&mut a, 1, "alice", ALICE);
    {
        let mut half = server.connect();
        half.send_raw(b"{\"v\":1,\"id\":5,\"op\":{\"unseal\":{\"officer\":\"bob\",\"passph");
    }
    std::thread::sleep(Duration::from_millis(200));
    let r = a.call(2, "status".into());
    assert_eq!(
        ok(&r)["status"]["unseal_given"],
        serde_json::json!(["alice"])
    );
    let mut b = server.connect();
    assert_eq!(
        ok(&unseal(&mut b, 3, "bob", BOB))["unseal"]["unsealed"],
        true
    );
    server.stop();
}

#[test]
fn daemon_bounds_connections() {
    let server = Server::start(2);
    let mut a = server.connect();
    let mut b = server.connect();
    a.call(1, "status".into());
    b.call(2, "status".into());
    let mut c = server.connect();
    let r = c.read_response();
    assert_eq!(err_code(&r), "busy");
    assert!(c.closed());
    drop(a);
    // The freed slot is reused once the server notices the close.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut d = server.connect();
        d.send_raw(b"{\"v\":1,\"id\":3,\"op\":\"status\"}\n");
        let r = d.read_response();
        if r["result"].get("ok").is_some() {
            break;
        }
        assert_eq!(err_code(&r), "busy");
        assert!(Instant::now() < deadline, "the slot was never freed");
        std::thread::sleep(Duration::from_millis(50));
    }
    b.call(4, "status".into());
    server.stop();
}

#[test]
fn daemon_shutdown_answers_idle_clients_and_returns() {
    let server = Server::start(8);
    let mut a = server.connect();
    a.call(1, "status".into());
    let start = Instant::now();
    let sock = server.socket.clone();
    server.stop();
    assert!(start.elapsed() < Duration::from_secs(3));
    let r = a.read_response();
    assert_eq!(err_code(&r), "shutting_down");
    assert!(UnixStream::connect(sock).is_err(), "no longer accepting");
}

// ---- the real binary ----

struct Custodyd {
    child: Child,
    socket: PathBuf,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

fn start_custodyd() -> Custodyd {
    start_custodyd_on(None)
}

/// The shipped `custodyd`, or with a test clock `custodyd-testclock` reading its time from it.
fn start_custodyd_on(test_clock: Option<&clock::TestClock>) -> Custodyd {
    let dir = tempfile::tempdir().expect("tempdir");
    let ledger = make_ledger(dir.path());
    let socket = dir.path().join("custodyd.sock");
    let config = config(dir.path(), &ledger, &socket, "watch_readers = false\n");
    let log = dir.path().join("custodyd.log");
    let (program, clock_args) = match test_clock {
        Some(c) => (clock::custodyd_testclock(), c.args().to_vec()),
        None => (PathBuf::from(env!("CARGO_BIN_EXE_custodyd")), Vec::new()),
    };
    let mut cmd = Command::new(program);
    cmd.args(clock_args).args([
        "--config",
        &config.to_string_lossy(),
        "--log-level",
        "debug",
    ]);
    let child = spawn_listening(cmd, &socket, &log);
    Custodyd {
        child,
        socket,
        log,
        _dir: dir,
    }
}

impl Drop for Custodyd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sigterm_and_wait(d: &mut Custodyd) -> std::process::ExitStatus {
    let pid = rustix::process::Pid::from_raw(i32::try_from(d.child.id()).expect("pid"))
        .expect("nonzero pid");
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("kill");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(st) = d.child.try_wait().expect("wait") {
            return st;
        }
        assert!(Instant::now() < deadline, "custodyd ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn custodyd_refuses_a_test_clock() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ledger = make_ledger(dir.path());
    let socket = dir.path().join("custodyd.sock");
    let config = dir.path().join("custody.toml");
    std::fs::write(
        &config,
        format!("ledger_dir = {ledger:?}\nsocket = {socket:?}\nwatch_readers = false\n"),
    )
    .expect("config");
    let clock = dir.path().join("clock.ms");
    std::fs::write(&clock, "1000000000000\n").expect("clock file");
    let out = Command::new(env!("CARGO_BIN_EXE_custodyd"))
        .args(["--config", &config.to_string_lossy()])
        .args(["--test-clock", &clock.to_string_lossy()])
        .stdin(Stdio::null())
        .output()
        .expect("run custodyd");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "a bad configuration: {err}");
    assert!(
        err.contains("--test-clock: custodyd runs on the host's clock only"),
        "{err}"
    );
    assert!(!socket.exists(), "custodyd never listened");
}

/// Packaging builds `cargo build --release --bins`: the test build of custodyd is not among
/// them, because it needs a feature no default enables.
#[test]
fn the_test_clock_build_needs_a_feature_packaging_never_enables() {
    let manifest: toml::Value = toml::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
            .expect("Cargo.toml"),
    )
    .expect("Cargo.toml is TOML");
    let bins = manifest["bin"].as_array().expect("[[bin]] entries");
    let testclock = bins
        .iter()
        .find(|b| b["name"].as_str() == Some("custodyd-testclock"))
        .expect("custodyd-testclock is declared");
    assert_eq!(
        testclock.get("required-features"),
        Some(&toml::Value::Array(vec!["test-clock".into()])),
        "{testclock}"
    );
    let defaults = manifest
        .get("features")
        .and_then(|f| f.get("default"))
        .and_then(toml::Value::as_array)
        .cloned()
        .unwrap_or_default();
    assert!(!defaults.contains(&"test-clock".into()), "{defaults:?}");
    for b in bins {
        if b["name"].as_str() != Some("custodyd-testclock") {
            assert!(b.get("required-features").is_none(), "{b}");
        }
    }
}

#[test]
fn custodyd_binary_socket_mode_and_sigterm_shutdown() {
    let mut d = start_custodyd();
    let mode = std::fs::metadata(&d.socket).expect("socket").permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o660
    );
    let mut c = Conn::new(UnixStream::connect(&d.socket).expect("connect"));
    assert_eq!(ok(&c.call(1, "status".into()))["status"]["sealed"], true);
    let st = sigterm_and_wait(&mut d);
    assert_eq!(st.code(), Some(0), "clean exit");
    assert!(!d.socket.exists(), "socket removed");
}

#[test]
fn custodyd_log_holds_no_passphrase() {
    let time = tempfile::tempdir().expect("tempdir");
    let time = clock::TestClock::create(time.path());
    let mut d = start_custodyd_on(Some(&time));
    let mut c = Conn::new(UnixStream::connect(&d.socket).expect("connect"));
    unseal(&mut c, 1, "alice", ALICE);
    assert_eq!(
        err_code(&unseal(&mut c, 2, "bob", "Wrong-Bob-Phrase-3")),
        "unseal_failed"
    );
    unseal(&mut c, 3, "alice", ALICE);
    assert_eq!(
        ok(&unseal(&mut c, 4, "bob", BOB))["unseal"]["unsealed"],
        true
    );
    // A malformed request carrying a passphrase: its error must not quote it.
    let mut bad = Conn::new(UnixStream::connect(&d.socket).expect("connect"));
    bad.send_raw(b"{\"v\":1,\"id\":5,\"op\":{\"unseal\":{\"officer\":\"bob\",\"passphrase\":\"Leaky-Phrase-444\",\"extra\":1}}}\n");
    let r = bad.read_response();
    assert!(!r.to_string().contains("Leaky"), "{r}");
    // A bootstrap with another officer's keyring passphrase, then the right one; a seal with a
    // wrong passphrase, then alice's.
    let r = c.call(
        6,
        serde_json::json!({"bootstrap_officer": {"user": "alice", "keyring_passphrase": BOB, "passphrase": "alice-User-Phrase-9"}}),
    );
    assert_eq!(
        r["result"]["err"]["reason"], "wrong_keyring_passphrase",
        "{r}"
    );
    let seed = ok(&c.call(7, bootstrap("alice")))["factor"]["base32"]
        .as_str()
        .expect("seed")
        .to_owned();
    let r = c.call(
        8,
        serde_json::json!({"seal": {"by": auth("alice", "Wrong-Alice-Phrase-8", Some(clock::totp(&seed, time.step())))}}),
    );
    assert_eq!(err_code(&r), "forbidden", "{r}");
    let r = c.call(
        9,
        serde_json::json!({"seal": {"by": auth("alice", "alice-User-Phrase-9", Some(clock::totp(&seed, time.step())))}}),
    );
    assert!(ok(&r)["sealed"]["seq"].is_u64(), "{r}");
    assert_eq!(sigterm_and_wait(&mut d).code(), Some(0));
    let log = std::fs::read_to_string(&d.log).expect("log");
    for what in ["unsealed", "sealed", "bootstrap_officer", "seal"] {
        assert!(
            log.contains(what),
            "the log says what happened ({what}): {log}"
        );
    }
    for secret in [
        ALICE,
        BOB,
        "Wrong-Bob-Phrase-3",
        "Leaky-Phrase-444",
        "alice-User-Phrase-9",
        "Wrong-Alice-Phrase-8",
        &seed,
    ] {
        assert!(!log.contains(secret), "the log holds a passphrase: {log}");
    }
}

// ---- the custody domain through the socket ----

fn auth(user: &str, pass: &str, factor: Option<String>) -> Value {
    match factor {
        Some(f) => serde_json::json!({"user": user, "passphrase": pass, "factor": f}),
        None => serde_json::json!({"user": user, "passphrase": pass}),
    }
}

/// Every event of a fresh export of the daemon's ledger.
fn exported_events(server: &Server) -> Vec<Value> {
    let content = server
        .daemon
        .with_ledger(|l| {
            let mut out = Vec::new();
            mfa_custody::ledger::export(
                l,
                &mfa_custody::ledger::ExportFilter::default(),
                mfa_custody::ledger::ExportFormat::JsonLines,
                &mut out,
            )?;
            Ok(out)
        })
        .expect("export");
    String::from_utf8(content)
        .expect("utf-8")
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("export line"))
        .filter(|v| v["type"] == "event" || v["type"] == "redacted")
        .collect()
}

#[test]
fn daemon_bootstrap_needs_the_officers_own_keyring_passphrase() {
    let server = Server::start(8);
    let mut c = server.connect();
    unseal(&mut c, 1, "alice", ALICE);
    unseal(&mut c, 2, "bob", BOB);
    let with = |keyring: &str| serde_json::json!({"bootstrap_officer": {"user": "alice", "keyring_passphrase": keyring, "passphrase": "alice-User-Phrase-9"}});
    // Bob's keyring passphrase, a guess, and the old request shape: all refused.
    for (id, keyring) in [(3, BOB), (4, "Guessed-Keyring-Phrase-5")] {
        let r = c.call(id, with(keyring));
        assert_eq!(err_code(&r), "forbidden", "{r}");
        assert_eq!(
            r["result"]["err"]["reason"], "wrong_keyring_passphrase",
            "{r}"
        );
        assert!(!r.to_string().contains(keyring), "{r}");
    }
    let r = c.call_malformed(
        5,
        serde_json::json!({"bootstrap_officer": {"user": "alice", "passphrase": "alice-User-Phrase-9"}}),
    );
    assert_eq!(err_code(&r), "bad_request", "{r}");
    let mut c = server.connect();
    let r = c.call(6, "users".into());
    assert_eq!(
        r["result"]["err"]["reason"], "authentication_required",
        "reading needs a session: {r}"
    );
    let users = server
        .daemon
        .with_custody(|c| Ok(c.users()?))
        .expect("users");
    assert!(users.is_empty(), "nobody enrolled");
    // The right one works once, and only once.
    let r = c.call(7, with(ALICE));
    assert!(ok(&r)["factor"]["base32"].is_string(), "{r}");
    let r = c.call(8, with(ALICE));
    assert_eq!(r["result"]["err"]["reason"], "user_exists", "{r}");
    // The refusals are in the ledger, without the passphrases.
    let events = exported_events(&server);
    let refusals: Vec<&Value> = events
        .iter()
        .filter(|e| e["kind"] == "custody.refused")
        .map(|e| &e["body"]["refusal"])
        .collect();
    assert_eq!(
        refusals,
        [
            "wrong_keyring_passphrase",
            "wrong_keyring_passphrase",
            "user_exists"
        ]
    );
    let failed: Vec<&Value> = events
        .iter()
        .filter(|e| e["kind"] == "auth.failed")
        .collect();
    assert_eq!(failed.len(), 2);
    assert_eq!(failed[0]["body"]["user"], "alice");
    let text = serde_json::to_string(&events).expect("json");
    for secret in [
        ALICE,
        BOB,
        "Guessed-Keyring-Phrase-5",
        "alice-User-Phrase-9",
    ] {
        assert!(!text.contains(secret), "{secret} in the ledger");
    }
    server.stop();
}

#[test]
fn daemon_seal_needs_an_authenticated_officer_and_names_them() {
    let server = Server::start(8);
    let mut c = server.connect();
    unseal(&mut c, 1, "alice", ALICE);
    unseal(&mut c, 2, "bob", BOB);
    let seed = ok(&c.call(3, bootstrap("alice")))["factor"]["base32"]
        .as_str()
        .expect("seed")
        .to_owned();
    let r = c.call(
        4,
        serde_json::json!({"user_add": {"by": [auth("alice", "alice-User-Phrase-9", Some(server.totp(&seed, 1)))], "name": "dave", "roles": ["operator"], "passphrase": "dave-Operator-Phrase-1"}}),
    );
    assert_eq!(ok(&r)["user"]["name"], "dave", "{r}");
    let seal = |by: Value| serde_json::json!({"seal": {"by": by}});
    // The former free-form actor, and no credentials at all: not a request.
    assert_eq!(
        err_code(&c.call_malformed(5, serde_json::json!({"seal": {"actor": "alice"}}))),
        "bad_request"
    );
    let mut c = server.connect();
    assert_eq!(
        err_code(&c.call_malformed(6, serde_json::json!({"seal": {}}))),
        "bad_request"
    );
    let mut c = server.connect();
    // Wrong passphrase, a code of someone else's seed, an operator, an unknown person.
    for (id, by, reason) in [
        (
            7,
            auth("alice", "Wrong-Alice-Phrase-7", Some(server.totp(&seed, 0))),
            "authentication_failed",
        ),
        (
            8,
            auth("alice", "alice-User-Phrase-9", Some("000000".into())),
            "authentication_failed",
        ),
        (
            9,
            auth("dave", "dave-Operator-Phrase-1", None),
            "not_an_officer",
        ),
        (
            10,
            auth("mallory", "Mallory-Phrase-10", None),
            "unknown_user",
        ),
    ] {
        let r = c.call(id, seal(by));
        assert!(
            r["result"]["err"]["code"] == "forbidden" || r["result"]["err"]["code"] == "not_found",
            "{r}"
        );
        assert_eq!(r["result"]["err"]["reason"], reason, "{r}");
        let st = c.call(id + 100, "status".into());
        assert_eq!(ok(&st)["status"]["sealed"], false, "still unsealed");
    }
    let events = exported_events(&server);
    let seal_refusals = events
        .iter()
        .filter(|e| e["kind"] == "custody.refused")
        .filter(|e| {
            ["seal", "authenticate"].contains(&e["body"]["operation"].as_str().unwrap_or(""))
        })
        .count();
    assert_eq!(seal_refusals, 4, "every refused seal is in the ledger");
    // Alice, with her passphrase and current code, seals; the event names her.
    let r = c.call(
        12,
        seal(auth(
            "alice",
            "alice-User-Phrase-9",
            Some(server.totp(&seed, 0)),
        )),
    );
    let seq = ok(&r)["sealed"]["seq"].as_u64().expect("seq");
    assert_eq!(ok(&c.call(13, "status".into()))["status"]["sealed"], true);
    // While sealed a seal is answered `sealed` and changes nothing.
    let r = c.call(
        14,
        seal(auth(
            "alice",
            "alice-User-Phrase-9",
            Some(server.totp(&seed, 0)),
        )),
    );
    assert_eq!(err_code(&r), "sealed");
    unseal(&mut c, 15, "alice", ALICE);
    unseal(&mut c, 16, "bob", BOB);
    let events = exported_events(&server);
    let sealed = events
        .iter()
        .find(|e| e["kind"] == "daemon.sealed")
        .expect("daemon.sealed");
    assert_eq!(sealed["seq"], seq);
    assert_eq!(sealed["actor"], "alice");
    assert_eq!(sealed["body"]["officer"], "alice");
    server.stop();
}

#[test]
fn daemon_sign_in_request_needs_two_distinct_officers() {
    // Stay clear of a step boundary: every officer uses the previous and the current step.
    let server = Server::start(8);
    let mut c = server.connect();
    let seeds = unseal_and_enrol_alice_and_bob(&mut c);
    let alice = |back| officer(&server, &seeds, "alice", back);
    let bob = |back| officer(&server, &seeds, "bob", back);
    let uid = rustix::process::geteuid().as_raw();
    let r = c.call(
        5,
        serde_json::json!({"user_add": {"by": [alice(1)], "name": "dave", "roles": ["operator"], "uid": uid, "passphrase": "dave-Operator-Phrase-1"}}),
    );
    assert_eq!(ok(&r)["user"]["name"], "dave");
    let r = c.call(
        6,
        serde_json::json!({"user_add": {"by": [auth("dave", "dave-Operator-Phrase-1", None)], "name": "eve", "roles": ["operator"], "uid": uid.wrapping_add(1), "passphrase": "eve-Operator-Phrase-1"}}),
    );
    assert_eq!(
        err_code(&r),
        "forbidden",
        "an operator cannot add users: {r}"
    );
    let r = c.call(
        7,
        serde_json::json!({"account_add": {"by": bob(1), "provider": "aws", "account": "123456789012", "alias": "prod-root", "root_email": "root@example.test", "credential": "AWS:root@example.test"}}),
    );
    assert_eq!(ok(&r)["account"]["alias"], "prod-root", "{r}");
    let dave = auth("dave", "dave-Operator-Phrase-1", None);
    let r = c.call(
        8,
        serde_json::json!({"request_code": {"by": dave, "account": "123456789012", "task": "change-root-password", "ticket": "SEC-42", "reason": "rotate the root password after the audit finding"}}),
    );
    let req = ok(&r)["request"].clone();
    assert_eq!(req["status"], "pending", "{r}");
    let id = req["id"].as_str().expect("id").to_owned();
    let seen = serde_json::from_value::<mfa_custody::custody::RequestRecord>(req.clone())
        .expect("a request record")
        .approval_digest();
    let r = c.call(
        9,
        serde_json::json!({"approve": {"by": auth("dave", "dave-Operator-Phrase-1", None), "request": id, "seen": seen}}),
    );
    assert_eq!(err_code(&r), "forbidden", "{r}");
    let r = c.call(
        10,
        serde_json::json!({"approve": {"by": alice(0), "request": id, "seen": seen}}),
    );
    assert_eq!(ok(&r)["request"]["status"], "pending", "{r}");
    let r = c.call(
        11,
        serde_json::json!({"approve": {"by": alice(0), "request": id, "seen": seen}}),
    );
    assert_eq!(
        err_code(&r),
        "forbidden",
        "a code is never accepted twice: {r}"
    );
    let r = c.call(
        12,
        serde_json::json!({"approve": {"by": bob(0), "request": id, "seen": seen}}),
    );
    assert_eq!(ok(&r)["request"]["status"], "approved", "{r}");
    let (requests, users) = server
        .daemon
        .with_custody(|c| Ok((c.requests()?, c.users()?)))
        .expect("reads");
    assert_eq!(requests.len(), 1);
    assert_eq!(users.len(), 3);
    server.stop();
}

#[test]
fn daemon_two_officers_suspend_an_operator_who_is_then_refused() {
    let server = Server::start(8);
    let mut c = server.connect();
    let seeds = unseal_and_enrol_alice_and_bob(&mut c);
    let alice = |back| officer(&server, &seeds, "alice", back);
    let bob = |back| officer(&server, &seeds, "bob", back);
    let r = c.call(
        5,
        serde_json::json!({"user_add": {"by": [alice(1)], "name": "dave", "roles": ["operator"], "passphrase": "dave-Operator-Phrase-1"}}),
    );
    assert_eq!(ok(&r)["user"]["active"], true);
    // One officer is not enough.
    let r = c.call(
        6,
        serde_json::json!({"user_set_active": {"by": [bob(1)], "name": "dave", "active": false}}),
    );
    assert_eq!(err_code(&r), "bad_request", "{r}");
    let r = c.call(
        7,
        serde_json::json!({"user_set_active": {"by": [alice(0), bob(0)], "name": "dave", "active": false}}),
    );
    assert_eq!(ok(&r)["user"]["active"], false, "{r}");
    let r = c.call(
        8,
        serde_json::json!({"request_code": {"by": auth("dave", "dave-Operator-Phrase-1", None), "account": "123456789012", "task": "change-root-password", "ticket": "SEC-1", "reason": "a suspended user must not get this far"}}),
    );
    assert_eq!(err_code(&r), "forbidden", "{r}");
    assert_eq!(r["result"]["err"]["reason"], "suspended", "{r}");
    server.stop();
}
