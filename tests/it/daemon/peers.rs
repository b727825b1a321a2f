//! Slow and numerous peers against the real `custodyd`: connections trickling a request line
//! one byte at a time are closed at the request deadline (counted from their first byte), one
//! uid cannot hold more than `max_connections_per_uid` connections while others are served,
//! and a second `custodyd` on the same configuration refuses to start and leaves the running
//! one serving.
//!
//! The tests run as root, as CI runs them. A connection from another uid is made by a thread
//! that takes uid and gid 65534 (`nobody`) for itself alone (`setresuid` on that thread, no
//! setuid program): the kernel records the connecting thread's credentials as the
//! connection's SO_PEERCRED, which is all the daemon looks at.

use crate::support;

use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::custodyd::{stream_as, tmp_open_to_nobody, Custodyd, NOBODY};

/// A request line a trickling peer sends one byte at a time and never finishes.
const TRICKLE: &[u8] = br#"{"v":1,"id":1,"op":"status"                                        "#;
const STATUS: &[u8] = b"{\"v\":1,\"id\":1,\"op\":\"status\"}\n";

fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "the daemon tests run as root (they connect as another uid), as CI runs them"
    );
}

/// Reads one line within `timeout`. `None`: end of file or a reset before any line.
fn read_line(s: &mut UnixStream, timeout: Duration) -> Option<String> {
    let end = Instant::now() + timeout;
    let mut got = Vec::new();
    let mut b = [0u8; 4096];
    while !got.contains(&b'\n') {
        let left = end.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no answer within {timeout:?}");
        s.set_read_timeout(Some(left)).expect("timeout");
        match s.read(&mut b) {
            Ok(0) => return None,
            Ok(n) => got.extend_from_slice(&b[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return None,
            Err(e) => panic!("read: {e}"),
        }
    }
    Some(String::from_utf8(got).expect("UTF-8"))
}

fn parse(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"))
}

fn err_code(v: &Value) -> &str {
    v["result"]["err"]["code"]
        .as_str()
        .unwrap_or("(not an error)")
}

fn err_message(v: &Value) -> &str {
    v["result"]["err"]["message"].as_str().unwrap_or("")
}

/// Whether the daemon closed `s` (end of file or reset) within `timeout`.
fn closed_within(s: &mut UnixStream, timeout: Duration) -> bool {
    s.set_read_timeout(Some(timeout)).expect("timeout");
    let mut b = [0u8; 64];
    match s.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() == ErrorKind::ConnectionReset,
    }
}

/// Sends `status` on a new connection and reads the answer.
fn status(mut s: UnixStream) -> Value {
    s.write_all(STATUS).expect("write status");
    parse(&read_line(&mut s, Duration::from_secs(5)).expect("an answer to status"))
}

/// The answer to a new connection that sends nothing (a refusal comes at once).
fn refusal(socket: &Path) -> Value {
    let mut s = UnixStream::connect(socket).expect("connect");
    parse(&read_line(&mut s, Duration::from_secs(5)).expect("a refusal"))
}

/// A connection that holds a slot: retried while the daemon still counts a connection that
/// just went away (it answers `busy` at once), so the test starts from the slots it means.
fn hold_slot(socket: &Path) -> UnixStream {
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        let mut s = UnixStream::connect(socket).expect("connect");
        s.set_read_timeout(Some(Duration::from_millis(250)))
            .expect("timeout");
        let mut b = [0u8; 512];
        match s.read(&mut b) {
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => return s,
            other => {
                assert!(Instant::now() < end, "no free slot: {other:?}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// What became of a trickling connection.
#[derive(Debug)]
enum Trickled {
    /// Answered this line this long after the first byte, then closed (`true`) or not.
    Answered(Duration, String, bool),
    /// Closed without an answer this long after the first byte.
    Closed(Duration),
    /// Still open when the peer gave up.
    StillOpen,
}

/// Sends [`TRICKLE`] one byte every `every` on `s` until the daemon answers or closes, or
/// `give_up` has passed since the first byte.
fn trickle(mut s: UnixStream, every: Duration, give_up: Duration) -> JoinHandle<Trickled> {
    std::thread::spawn(move || {
        let first = Instant::now();
        let mut got = Vec::new();
        for byte in TRICKLE.iter().cycle() {
            if first.elapsed() > give_up {
                return Trickled::StillOpen;
            }
            if s.write_all(std::slice::from_ref(byte)).is_err() {
                return Trickled::Closed(first.elapsed());
            }
            s.set_read_timeout(Some(every)).expect("timeout");
            let mut b = [0u8; 512];
            match s.read(&mut b) {
                Ok(0) => return Trickled::Closed(first.elapsed()),
                Ok(n) => {
                    let at = first.elapsed();
                    got.extend_from_slice(&b[..n]);
                    if !got.contains(&b'\n') {
                        let rest = read_line(&mut s, Duration::from_secs(2)).unwrap_or_default();
                        got.extend_from_slice(rest.as_bytes());
                    }
                    let line = String::from_utf8_lossy(&got).into_owned();
                    let closed = closed_within(&mut s, Duration::from_secs(2));
                    return Trickled::Answered(at, line, closed);
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => return Trickled::Closed(first.elapsed()),
            }
        }
        Trickled::StillOpen
    })
}

/// Checks that a trickling connection was answered "request line not finished in time" at
/// the deadline from its first byte (not later: its bytes never pushed the deadline back).
fn assert_closed_at_deadline(t: Trickled, deadline: Duration) {
    match t {
        Trickled::Answered(at, line, closed) => {
            let v = parse(&line);
            assert_eq!(err_code(&v), "bad_request", "{line}");
            assert_eq!(err_message(&v), "request line not finished in time");
            assert!(
                at >= deadline - Duration::from_millis(150)
                    && at < deadline + Duration::from_secs(1),
                "answered {at:?} after the first byte; the deadline is {deadline:?}"
            );
            assert!(
                closed,
                "the connection stays open after the deadline answer"
            );
        }
        Trickled::Closed(at) => {
            panic!("a trickling peer was closed {at:?} after its first byte without an answer")
        }
        Trickled::StillOpen => panic!("a trickling peer was still open long after the deadline"),
    }
}

/// `status` answered, retrying while the daemon still counts connections that just closed;
/// returns the answer and how long it took from the first attempt.
fn status_soon(socket: &Path) -> (Value, Duration) {
    let start = Instant::now();
    loop {
        let v = status(UnixStream::connect(socket).expect("connect"));
        if err_code(&v) != "busy" || start.elapsed() > Duration::from_secs(3) {
            return (v, start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn trickling_peers_holding_every_slot_are_closed_at_the_request_deadline() {
    let _alone = crate::support::alone();
    require_root();
    let tmp = tempfile::tempdir().expect("tmp");
    let deadline = Duration::from_secs(2);
    // One uid may take every slot here, so only the deadline frees them; the idle timeout is
    // far away and each byte would have restarted it.
    let d = Custodyd::start(
        tmp.path(),
        &["alice", "bob"],
        "info",
        "max_connections = 3\nmax_connections_per_uid = 3\n\
         request_deadline_secs = 2\nidle_timeout_secs = 30\n",
    );
    let tricklers: Vec<_> = (0..3)
        .map(|_| {
            trickle(
                hold_slot(&d.socket),
                Duration::from_millis(500),
                Duration::from_secs(6),
            )
        })
        .collect();
    let v = refusal(&d.socket);
    assert_eq!(err_code(&v), "busy", "every slot is held: {v}");
    assert!(err_message(&v).contains("max_connections"), "{v}");
    for t in tricklers {
        assert_closed_at_deadline(t.join().expect("trickler"), deadline);
    }
    let (v, took) = status_soon(&d.socket);
    assert!(v["result"]["ok"]["status"].is_object(), "{v}");
    assert!(took < Duration::from_millis(500), "status took {took:?}");
    let log = std::fs::read_to_string(&d.log).expect("log");
    assert!(log.contains("request line not finished in time"), "{log}");
    d.stop();
}

#[test]
fn one_uid_is_capped_while_another_uid_is_answered_at_once() {
    let _alone = crate::support::alone();
    require_root();
    let tmp = tmp_open_to_nobody();
    let d = Custodyd::start(
        tmp.path(),
        &["alice", "bob"],
        "info",
        &format!(
            "socket_group = \"{NOBODY}\"\nmax_connections = 8\nmax_connections_per_uid = 3\n\
             request_deadline_secs = 2\nidle_timeout_secs = 30\n"
        ),
    );
    // Root fills its share with trickling connections.
    let tricklers: Vec<_> = (0..3)
        .map(|_| {
            trickle(
                hold_slot(&d.socket),
                Duration::from_millis(500),
                Duration::from_secs(6),
            )
        })
        .collect();
    let v = refusal(&d.socket);
    assert_eq!(err_code(&v), "busy", "a 4th connection from root: {v}");
    let m = err_message(&v);
    assert!(
        m.contains("max_connections_per_uid") && m.contains("uid 0"),
        "{m}"
    );
    // Another uid is served at once, while root's connections still trickle.
    let start = Instant::now();
    let v = status(stream_as(&d.socket, NOBODY));
    let took = start.elapsed();
    assert!(v["result"]["ok"]["status"].is_object(), "{v}");
    assert!(took < Duration::from_millis(500), "status took {took:?}");
    assert!(
        tricklers.iter().all(|t| !t.is_finished()),
        "root's connections were still open"
    );
    for t in tricklers {
        assert_closed_at_deadline(t.join().expect("trickler"), Duration::from_secs(2));
    }
    // Their slots came back: root is served again.
    let (v, took) = status_soon(&d.socket);
    assert!(v["result"]["ok"]["status"].is_object(), "{v}");
    assert!(took < Duration::from_millis(500), "status took {took:?}");
    let log = std::fs::read_to_string(&d.log).expect("log");
    assert!(log.contains("too many connections from this uid"), "{log}");
    d.stop();
}

#[test]
fn a_quiet_connection_outlives_the_deadline_and_closes_at_the_idle_timeout() {
    let _alone = crate::support::alone();
    require_root();
    let tmp = tempfile::tempdir().expect("tmp");
    let d = Custodyd::start(
        tmp.path(),
        &["alice", "bob"],
        "info",
        "request_deadline_secs = 1\nidle_timeout_secs = 2\n",
    );
    let mut s = UnixStream::connect(&d.socket).expect("connect");
    for _ in 0..2 {
        s.write_all(STATUS).expect("write");
        let v = parse(&read_line(&mut s, Duration::from_secs(5)).expect("answer"));
        assert!(v["result"]["ok"]["status"].is_object(), "{v}");
        // Silence between requests, longer than the request deadline.
        std::thread::sleep(Duration::from_millis(1300));
    }
    // Closed at the idle timeout (2 s after the last answer, 1.3 s of it already gone), with
    // no error line: nothing was half-sent.
    let start = Instant::now();
    assert_eq!(read_line(&mut s, Duration::from_secs(3)), None);
    assert!(
        start.elapsed() < Duration::from_millis(1500),
        "{:?}",
        start.elapsed()
    );
    d.stop();
}
/// Runs a second `custodyd` on `config` and waits (at most 10 s) for it to exit.
fn second_custodyd(config: &Path) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_custodyd"))
        .args(["--config", &config.to_string_lossy()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start a second custodyd");
    let end = Instant::now() + Duration::from_secs(10);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > end {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "the second custodyd kept running:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_second_custodyd_on_the_same_config_refuses_and_the_first_keeps_serving() {
    require_root();
    let tmp = tempfile::tempdir().expect("tmp");
    let d = Custodyd::start(tmp.path(), &["alice", "bob"], "info", "");
    let inode = std::fs::metadata(&d.socket).expect("socket").ino();
    let (code, stderr) = second_custodyd(&d.config);
    assert_eq!(code, Some(6), "{stderr}");
    let lock: PathBuf = d.ledger.join("custodyd.lock");
    assert!(
        stderr.contains("another custodyd")
            && stderr.contains(&lock.display().to_string())
            && stderr.contains(&format!("pid {}", d.pid())),
        "{stderr}"
    );
    assert_eq!(
        std::fs::metadata(&d.socket)
            .expect("socket still there")
            .ino(),
        inode,
        "the running daemon's socket was replaced"
    );
    let v = status(UnixStream::connect(&d.socket).expect("connect"));
    assert!(v["result"]["ok"]["status"].is_object(), "{v}");

    // Once the first is gone (killed: its socket is left behind, its lock goes with it), a
    // new one starts on the same configuration and replaces the stale socket.
    let (config, socket) = (d.config.clone(), d.socket.clone());
    drop(d);
    assert!(socket.exists(), "a killed daemon leaves its socket");
    let mut next = Command::new(env!("CARGO_BIN_EXE_custodyd"))
        .args(["--config", &config.to_string_lossy()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start custodyd again");
    let end = Instant::now() + Duration::from_secs(10);
    let v = loop {
        if let Ok(s) = UnixStream::connect(&socket) {
            break status(s);
        }
        assert!(Instant::now() < end, "the new custodyd never listened");
        assert!(
            next.try_wait().expect("wait").is_none(),
            "the new custodyd exited"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(v["result"]["ok"]["status"].is_object(), "{v}");
    let _ = next.kill();
    let _ = next.wait();
}
