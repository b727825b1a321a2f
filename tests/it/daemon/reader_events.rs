//! How `custodyd` records what its reader watch sees, given the identification of each card
//! (the PC/SC side is exercised in `tests/it/daemon/readers.rs`): a real ledger directory, the
//! daemon unsealed by its officers, a key registered through the custody domain, then reader
//! events whose identification is registered, unregistered, unreadable or refused.

use std::num::NonZeroU32;
use std::path::Path;

use mfa_custody::custody::{DeviceRole, PassphraseKdf, Serial};
use mfa_custody::daemon::peer::PeerCred;
use mfa_custody::daemon::{Daemon, DaemonOptions, Op, Secret};
use mfa_custody::emulator::oath::OathState;
use mfa_custody::token::identity::Glimpse;
use mfa_custody::token::pcsc::ReaderEvent;
use serde_json::Value;
use zeroize::Zeroizing;

use crate::support::domain::{self, unseal_pass, Keys};

const REGISTERED: u32 = 10_000_401;
const STRANGER: u32 = 10_000_402;
const READER_A: &str = "Yubico YubiKey OTP+FIDO+CCID 00 00";
const READER_B: &str = "Yubico YubiKey OTP+FIDO+CCID 00 01";
const READER_C: &str = "Yubico YubiKey OTP+FIDO+CCID 01 00";

fn low() -> NonZeroU32 {
    NonZeroU32::new(1000).expect("non-zero")
}

fn make_ledger(dir: &Path) {
    domain::ledger(dir, &domain::officers());
}

/// Bootstraps alice and registers `REGISTERED`; returns its OATH device id.
fn register(d: &Daemon) -> String {
    d.with_custody(|c| {
        let a = domain::first_officer(c, "alice");
        let mut key = Keys::one(domain::soft_key(REGISTERED, OathState::fresh()));
        let rec = c
            .register_device(
                &a,
                &mut key,
                Serial::new(REGISTERED).expect("serial"),
                DeviceRole::Primary,
            )
            .expect("register");
        Ok(rec.device_id)
    })
    .expect("unsealed")
}

/// The reader events recorded so far, as (kind, actor, body).
fn reader_events(d: &Daemon) -> Vec<(String, String, Value)> {
    d.with_ledger(|l| {
        let head = l.head()?.map_or(0, |h| h.seq);
        let mut out = Vec::new();
        l.for_each_event(1, head, |e| {
            let k = e.header.kind.as_str();
            if k.starts_with("token.") {
                out.push((
                    k.to_owned(),
                    e.header.actor.as_str().to_owned(),
                    e.body.to_value(),
                ));
            }
            Ok(())
        })?;
        Ok(out)
    })
    .expect("unsealed")
}

fn glimpse(serial: Option<u32>, device_id: &str) -> Result<Glimpse, String> {
    Ok(Glimpse {
        serial,
        firmware: Some("5.4.3".into()),
        oath_device_id: Some(device_id.to_owned()),
        oath_locked: false,
    })
}

fn inserted(reader: &str) -> ReaderEvent {
    ReaderEvent::CardInserted {
        reader: reader.to_owned(),
        atr: vec![0x3b, 0x8d],
    }
}

fn removed(reader: &str) -> ReaderEvent {
    ReaderEvent::CardRemoved {
        reader: reader.to_owned(),
    }
}

fn not_asked(reader: &str) -> Result<Glimpse, String> {
    panic!("a card in {reader} must not be identified")
}

#[test]
fn reader_events_name_known_unknown_and_unreadable_cards() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("ledger");
    make_ledger(&dir);
    let mut opts = DaemonOptions::new(&dir);
    opts.policy.kdf = PassphraseKdf::insecure_for_tests(low());
    let d = Daemon::new(opts);
    let peer = PeerCred {
        uid: 0,
        gid: 0,
        pid: 1,
    };

    // Sealed: the registered key's insertion is identified and remembered, not recorded.
    d.reader_event(&inserted(READER_A), |_| glimpse(Some(REGISTERED), "x"));
    for officer in ["alice", "bob"] {
        d.handle(
            Op::Unseal {
                officer: officer.into(),
                passphrase: Secret::new(Zeroizing::new(unseal_pass(officer))),
            },
            &peer,
        )
        .expect("unseal");
    }
    let device_id = register(&d);
    assert!(reader_events(&d).is_empty());

    // Its removal is matched against the ledger now.
    d.reader_event(&removed(READER_A), not_asked);
    // Registered, with the device id it had at registration, then with another one.
    d.reader_event(&inserted(READER_A), |_| {
        glimpse(Some(REGISTERED), &device_id)
    });
    d.reader_event(&inserted(READER_C), |_| glimpse(Some(REGISTERED), "other"));
    // Unregistered; refused by the card; no serial at all.
    d.reader_event(&inserted(READER_B), |_| glimpse(Some(STRANGER), "y"));
    d.reader_event(&removed(READER_B), not_asked);
    d.reader_event(&inserted(READER_B), |r| {
        Err(format!("the card in reader {r:?} was removed"))
    });
    d.reader_event(&removed(READER_B), not_asked);
    d.reader_event(&inserted(READER_B), |_| glimpse(None, "z"));
    // A reader that is not allowed: never identified.
    d.reader_event(&inserted("Other Vendor Reader 00 00"), not_asked);
    // The registered key's reader goes away with the key in it.
    d.reader_event(
        &ReaderEvent::ReaderRemoved {
            reader: READER_C.into(),
        },
        not_asked,
    );
    d.reader_event(&removed(READER_A), not_asked);

    let events = reader_events(&d);
    let kinds: Vec<&str> = events.iter().map(|(k, _, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "token.device_removed",
            "token.device_inserted",
            "token.device_inserted",
            "token.unknown_device",
            "token.card_removed",
            "token.unknown_device",
            "token.card_removed",
            "token.unknown_device",
            "token.unknown_reader",
            "token.device_removed",
            "token.device_removed",
        ],
        "{events:#?}"
    );
    assert!(events.iter().all(|(_, actor, _)| actor == "custodyd"));
    let body = |i: usize| &events[i].2;
    let serial = REGISTERED.to_string();
    assert_eq!(body(0)["serial"], serial.as_str());
    assert_eq!(body(0)["reader"], READER_A);
    assert_eq!(body(1)["serial"], serial.as_str());
    assert_eq!(body(1)["state"], "registered");
    assert_eq!(body(1)["device_id_matches"], true);
    assert_eq!(body(2)["reader"], READER_C);
    assert_eq!(body(2)["device_id_matches"], false);
    assert_eq!(body(3)["serial"], STRANGER.to_string());
    assert!(body(3).get("error").is_none(), "{}", body(3));
    assert_eq!(body(4)["serial"], STRANGER.to_string());
    assert_eq!(body(5)["serial"], "unreadable");
    assert!(
        body(5)["error"]
            .as_str()
            .is_some_and(|e| e.contains("was removed")),
        "{}",
        body(5)
    );
    assert_eq!(body(6)["serial"], "unreadable");
    assert_eq!(body(7)["serial"], "unreadable");
    assert_eq!(body(7)["error"], "the card reports no serial");
    assert_eq!(body(8)["reader"], "Other Vendor Reader 00 00");
    assert_eq!(body(9)["reader"], READER_C);
    assert_eq!(body(9)["serial"], serial.as_str());
    assert_eq!(body(10)["reader"], READER_A);

    // An unregistered serial stays unknown to every device operation (see the custody tests):
    // the event is the only trace it leaves.
    let unknown = d.with_custody(|c| Ok(c.device(Serial::new(STRANGER).expect("serial")).is_err()));
    assert!(unknown.expect("unsealed"));
}
