//! custodyd's reader watch through a real pcscd with vpcd readers and `custody-emu` keys: a
//! registered key inserted gives `token.device_inserted` with its serial and state, an
//! unregistered key `token.unknown_device` with its serial (and a warning in the log), and the
//! registered key's removal `token.device_removed` with the serial remembered from the
//! insertion. The events are read back from `custody export` over the socket.
//!
//! vpcd does not reliably notice a card that comes back to a slot it left, so each slot is
//! used once: the registered key is registered in-process (a `SoftKey` with the same OATH
//! state file that its `custody-emu` later starts from), not through a slot.

use crate::support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use mfa_custody::custody::{Custody, DeviceRole, Serial, UserName, UserPassphrase};
use mfa_custody::emulator::oath::OathState;
use mfa_custody::emulator::state;
use serde_json::Value;
use support::custodyd::{config, spawn_listening, Process};
use support::domain::{self, unseal_pass, Keys};
use support::{in_harness, wait_for_card, Emu};
use zeroize::Zeroizing;

const REGISTERED: u32 = 10_000_301;
const STRANGER: u32 = 10_000_302;

/// A ledger with officers alice and bob in which alice registered the key `REGISTERED`, whose
/// OATH state (salt, hence device id) is saved in `key_state` for its `custody-emu`.
fn ledger_with_registered_key(dir: &Path, key_state: &Path) {
    let officers = domain::officers();
    let mut custody =
        Custody::new(domain::ledger(dir, &officers), domain::policy()).expect("custody");
    let a = domain::first_officer(&mut custody, "alice");
    let oath = OathState::fresh();
    state::save(key_state, &oath, None).expect("save the key's state");
    let mut access = Keys::one(domain::soft_key(REGISTERED, oath));
    custody
        .register_device(
            &a,
            &mut access,
            Serial::new(REGISTERED).expect("serial"),
            DeviceRole::Primary,
        )
        .expect("register");
    // erin, an auditor, reads the exports (in a login session).
    custody
        .add_user(
            &[&a],
            mfa_custody::custody::NewUser {
                name: UserName::parse("erin").expect("name"),
                roles: vec![mfa_custody::custody::Role::Auditor],
                uid: None,
                passphrase: UserPassphrase::new_checked(Zeroizing::new(ERIN.into())).expect("pass"),
            },
        )
        .expect("add erin");
}

const ERIN: &str = "erin-passphrase-2";

fn start_daemon(dir: &Path, ledger: &Path, socket: &Path) -> Process {
    let config = config(
        dir,
        ledger,
        socket,
        "watch_readers = true\nallowed_readers = [\"Yubico YubiKey\"]\n",
    );
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_custodyd"));
    cmd.args(["--config", &config.to_string_lossy()]);
    Process(spawn_listening(cmd, socket, &dir.join("custodyd.log")))
}

fn custody(args: &[&str], stdin: &str) -> (i32, String, String) {
    support::custody_stdin(args, stdin)
}

/// The reader events (`token.*`) of an export through the daemon, as (kind, body).
fn reader_events(socket: &str, out: &Path) -> Vec<(String, Value)> {
    let _ = std::fs::remove_file(out);
    let o = out.to_string_lossy();
    let (code, stdout, stderr) = custody(&["--socket", socket, "export", "--out", &o], "");
    assert_eq!(code, 0, "export: {stdout}{stderr}");
    std::fs::read_to_string(out)
        .expect("export file")
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| {
            let kind = v["kind"].as_str()?.to_owned();
            kind.starts_with("token.")
                .then(|| (kind, v["body"].clone()))
        })
        .collect()
}

/// Waits until the export holds `n` reader events, and returns them.
fn wait_for_events(socket: &str, out: &Path, n: usize) -> Vec<(String, Value)> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let events = reader_events(socket, out);
        if events.len() >= n {
            return events;
        }
        assert!(
            Instant::now() < deadline,
            "waited for {n} reader events, have {events:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn daemon_reader_events_name_registered_and_unknown_keys() {
    if !in_harness(
        "daemon_reader_events_name_registered_and_unknown_keys",
        43100,
        1,
    ) {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let ledger = tmp.path().join("ledger");
    let key_state = tmp.path().join("registered.state");
    ledger_with_registered_key(&ledger, &key_state);

    let socket = tmp.path().join("custodyd.sock");
    let s = socket.to_string_lossy().into_owned();
    let _daemon = start_daemon(tmp.path(), &ledger, &socket);
    for officer in ["alice", "bob"] {
        let (code, out, err) = custody(
            &[
                "--socket",
                &s,
                "unseal",
                "--officer",
                officer,
                "--passphrase-fd",
                "0",
            ],
            &format!("{}\n", unseal_pass(officer)),
        );
        assert_eq!(code, 0, "unseal by {officer}: {out}{err}");
    }
    let (code, out, err) = custody(
        &[
            "--socket",
            &s,
            "login",
            "--as",
            "erin",
            "--no-totp",
            "--passphrase-fd",
            "0",
        ],
        &format!("{ERIN}\n"),
    );
    assert_eq!(code, 0, "login: {out}{err}");
    let export = tmp.path().join("export.jsonl");
    assert!(reader_events(&s, &export).is_empty());

    // The registered key, then an unregistered one beside it.
    let registered = Emu::start(
        0,
        &[
            "--serial",
            &REGISTERED.to_string(),
            "--state",
            &key_state.to_string_lossy(),
        ],
    );
    let reader0 = wait_for_card(0);
    wait_for_events(&s, &export, 1);
    let _stranger = Emu::start(1, &["--serial", &STRANGER.to_string()]);
    let reader1 = wait_for_card(1);
    wait_for_events(&s, &export, 2);
    registered.stop();
    let events = wait_for_events(&s, &export, 3);
    let kinds: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "token.device_inserted",
            "token.unknown_device",
            "token.device_removed"
        ],
        "{events:?}"
    );
    let (_, inserted) = &events[0];
    assert_eq!(inserted["serial"], REGISTERED.to_string());
    assert_eq!(inserted["reader"], reader0.as_str());
    assert_eq!(inserted["state"], "registered");
    assert_eq!(inserted["device_id_matches"], true);
    let (_, unknown) = &events[1];
    assert_eq!(unknown["serial"], STRANGER.to_string());
    assert_eq!(unknown["reader"], reader1.as_str());
    let (_, removed) = &events[2];
    assert_eq!(removed["serial"], REGISTERED.to_string());
    assert_eq!(removed["reader"], reader0.as_str());

    let log = std::fs::read_to_string(tmp.path().join("custodyd.log")).expect("log");
    let warned = |serial: &str| {
        log.lines()
            .any(|l| l.contains("WARN") && l.contains("unknown device") && l.contains(serial))
    };
    assert!(warned(&STRANGER.to_string()), "{log}");
    assert!(!log.contains("panicked"), "{log}");
    let took: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("card identified"))
        .filter_map(|l| l.split("micros=").nth(1)?.split(' ').next())
        .collect();
    assert_eq!(took.len(), 2, "{log}");
    println!("identification took {took:?} µs");
}
