//! The private pcscd harness (`scripts/with-pcscd.sh`) ends whatever a command left running:
//! a test that fails with an emulator still running must not keep `cargo test` waiting.

use crate::support;
use mfa_custody::token::CardTransport;

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

/// A key pulled out while a client is using it, and another key put into the same vpcd slot at
/// once: pcscd must see the new one every time. The client's failed command is what makes
/// pcscd report the reader empty before its event handler has seen the removal; a key started
/// then is never seen (about one round in two when the harness waited only for an empty
/// reader). `support::remove_card` waits for the event handler itself.
#[test]
fn a_key_put_back_into_the_same_slot_at_once_is_seen() {
    if !support::in_harness(
        "a_key_put_back_into_the_same_slot_at_once_is_seen",
        41780,
        1,
    ) {
        return;
    }
    let ctx = mfa_custody::token::pcsc::PcscContext::establish().expect("pcscd");
    for round in 0..10 {
        let serial = (20_000_001 + round).to_string();
        let key = support::Emu::start(0, &["--serial", &serial]);
        let reader = support::wait_for_card(0);
        let card = ctx.connect(&reader).expect("the key");
        key.stop_while(|| {
            // The client's next command meets the removed card, and its disconnect resets it.
            let mut card = card;
            assert!(card.transmit(&[0x00, 0xA4, 0x04, 0x00, 0x00]).is_err());
            let _ = card.disconnect(true);
        });
        let started = Instant::now();
        let next = support::Emu::start(0, &["--serial", &serial]);
        support::wait_for_card(0);
        println!(
            "slot-reuse: round={round} seen_ms={}",
            started.elapsed().as_millis()
        );
        next.stop();
    }
}

/// Two harnesses on the same vpcd port at once (two clones tested side by side, or a test run
/// while a demo is up) each see their own key only: every harness has a network namespace of
/// its own, so its vpcd ports are private to it. Without it the second pcscd could not listen,
/// the readiness check saw the first one's port, and a key of one run was used by the other.
#[test]
fn two_harnesses_on_one_port_see_each_their_own_key() {
    assert!(
        rustix::process::geteuid().is_root(),
        "the pcscd harness needs root (unshare), as CI runs it"
    );
    let _alone = support::alone();
    let emu = env!("CARGO_BIN_EXE_custody-emu");
    let custody = env!("CARGO_BIN_EXE_custody");
    // Each harness plugs a key of its own serial and scans until it sees a key, then says so in
    // a file both can see and holds its port until the other has said so too: the two runs
    // overlap for certain, whatever their start-up times.
    let meet = tempfile::tempdir().expect("meeting directory");
    let script = format!(
        "{emu} --serial \"$SERIAL\" --vpcd 127.0.0.1:$CUSTODY_VPCD_PORT >/dev/null 2>&1 &
         for _ in $(seq 100); do
           out=$({custody} --json token scan 2>/dev/null) || true
           case \"$out\" in *'\"serial\":'*) break ;; esac
           sleep 0.1
         done
         echo \"$out\"
         touch \"$MEET/$SERIAL\"
         for _ in $(seq 200); do [ \"$(ls \"$MEET\" | wc -l)\" -ge 2 ] && break; sleep 0.05; done"
    );
    let run = |serial: &str| {
        Command::new(support::repo().join("scripts/with-pcscd.sh"))
            .args(["--port", "44500", "--readers", "1", "--"])
            .args(["sh", "-c", &script])
            .env_remove("CUSTODY_PCSCD_NS")
            .env("SERIAL", serial)
            .env("MEET", meet.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run scripts/with-pcscd.sh")
    };
    let (a, b) = (run("10000501"), run("10000502"));
    let (a, b) = (
        a.wait_with_output().expect("first harness"),
        b.wait_with_output().expect("second harness"),
    );
    for (out, mine, theirs) in [(&a, "10000501", "10000502"), (&b, "10000502", "10000501")] {
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "harness for {mine}: {:?}\n{text}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains(mine),
            "harness for {mine} sees its key: {text}"
        );
        assert!(
            !text.contains(theirs),
            "harness for {mine} sees the other run's key: {text}"
        );
    }
}
