//! custodyd keeps its memory out of swap (mlockall) when it may lock without limit (an
//! unlimited RLIMIT_MEMLOCK, as the systemd unit sets it, or CAP_IPC_LOCK, as root has here),
//! and says in its log why it did not otherwise. `setpriv` drops CAP_IPC_LOCK and `prlimit`
//! sets a finite limit (both util-linux); each then execs the real daemon.

use crate::support;

use support::custodyd::Custodyd;

/// The `VmLck` line of a process's status, in kB.
fn locked_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmLck:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("a VmLck line")
}

#[test]
fn custodyd_locks_its_memory_when_it_may() {
    assert!(
        rustix::process::geteuid().is_root(),
        "the daemon tests run as root (CAP_IPC_LOCK), as CI runs them"
    );
    let tmp = tempfile::tempdir().expect("tmp");
    let d = Custodyd::start_wrapped(tmp.path(), &["alice", "bob"], "info", "", &[]);
    let kb = locked_kb(d.pid());
    let log = std::fs::read_to_string(&d.log).expect("log");
    d.stop();
    assert!(kb > 0, "VmLck is {kb} kB:\n{log}");
    assert!(log.contains("memory locked (mlockall)"), "{log}");
}

#[test]
fn custodyd_says_why_memory_is_not_locked_under_a_finite_limit() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = Custodyd::start_wrapped(
        tmp.path(),
        &["alice", "bob"],
        "info",
        "",
        &[
            "setpriv",
            "--inh-caps=-ipc_lock",
            "--bounding-set=-ipc_lock",
            "--",
            "prlimit",
            "--memlock=65536:65536",
            "--",
        ],
    );
    let kb = locked_kb(d.pid());
    let log = std::fs::read_to_string(&d.log).expect("log");
    // The daemon still answers.
    let mut c = d.connect();
    let r = c.call(serde_json::json!("status"));
    d.stop();
    assert_eq!(kb, 0, "{log}");
    assert!(
        log.contains("memory not locked: RLIMIT_MEMLOCK is 65536 bytes"),
        "{log}"
    );
    assert!(r.to_string().contains("sealed"), "{r}");
}
