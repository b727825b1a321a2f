//! The private pcscd harness (`scripts/with-pcscd.sh`) ends whatever a command left running:
//! a test that fails with an emulator still running must not keep `cargo test` waiting.

use crate::support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn the_harness_ends_what_a_failing_command_left_running() {
    assert!(
        rustix::process::geteuid().is_root(),
        "the pcscd harness needs root (unshare), as CI runs it"
    );
    // The command leaves a process holding its standard output, then fails.
    let started = Instant::now();
    let child = Command::new(support::repo().join("scripts/with-pcscd.sh"))
        .args(["--port", "41760", "--readers", "1", "--"])
        .args(["sh", "-c", "sleep 600 & echo left-running; exit 3"])
        .env_remove("CUSTODY_PCSCD_NS")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run scripts/with-pcscd.sh");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the harness's output ended: nothing it started outlived it")
        .expect("harness output");
    assert_eq!(
        out.status.code(),
        Some(3),
        "the command's status is the harness's"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("left-running"));
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
}
