//! The sign-in ceremony through the production device path: a real pcscd with the vpcd driver,
//! two `custody-emu` keys (primary and backup, blank until enrolment programs them) and the
//! `PcscAccess` custodyd opens devices with (one per operation, from the shipped configuration).
//! Enrolment programs both keys over PC/SC, the code released for the request matches an
//! independent TOTP computation of the seed, `code.issuing` precedes `code.released`, and the
//! ledger verifies afterwards.
//!
//! The clock is the host's, moved forward (never back) when the domain waits for the next time
//! step or an officer needs a fresh second-factor step, so the test does not sleep through
//! 30-second steps. The emulated keys compute whatever step they are asked for.

use crate::support;

use mfa_custody::custody::{Clock, DeviceRole, Location, RequestStatus, SealNumber, Serial};
use mfa_custody::ledger::verify_ledger;
use support::clock::{step_of_ms, totp};
use support::domain::{self, SEED_B32};
use support::{custodyd_devices, in_harness};

const PRIMARY: u32 = 10_000_101;
const BACKUP: u32 = 10_000_102;

#[test]
fn pcscd_sign_in_ceremony_releases_the_current_code_from_the_checked_out_key() {
    if !in_harness(
        "pcscd_sign_in_ceremony_releases_the_current_code_from_the_checked_out_key",
        41200,
        1,
    ) {
        return;
    }
    let _keys = support::two_keys(
        &["--serial", &PRIMARY.to_string()],
        &["--serial", &BACKUP.to_string()],
    );

    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("ledger");
    let (mut custody, people) = domain::bootstrapped(&dir);
    let clock = people.clock.clone();
    let a = custody.authenticate(&people.creds("alice")).expect("alice");
    let b = custody.authenticate(&people.creds("bob")).expect("bob");
    let none = domain::add_operator(&mut custody, &a, "oscar");
    assert!(none.is_none());

    domain::register_aws_account(&mut custody, &a);
    for (s, role) in [(PRIMARY, DeviceRole::Primary), (BACKUP, DeviceRole::Backup)] {
        custody
            .register_device(
                &a,
                &mut custodyd_devices(),
                Serial::new(s).expect("serial"),
                role,
            )
            .expect("register over PC/SC");
    }
    let codes = custody
        .enrol(
            &a,
            &b,
            &mut custodyd_devices(),
            domain::enrolment(PRIMARY, BACKUP),
        )
        .expect("enrol over PC/SC");
    let s = codes.first_step;
    assert_eq!(codes.first.as_str(), totp(SEED_B32, s));
    assert_eq!(codes.second.as_str(), totp(SEED_B32, s + 1));
    for (s, seal) in [(PRIMARY, "SEAL-P1"), (BACKUP, "SEAL-B1")] {
        custody
            .check_in(
                &a,
                &mut custodyd_devices(),
                Serial::new(s).expect("serial"),
                SealNumber::parse(seal).expect("seal"),
                Location::parse("safe 1").expect("location"),
            )
            .expect("check in");
    }

    let oscar = custody.authenticate(&people.creds("oscar")).expect("oscar");
    let r = custody
        .create_request(
            &oscar,
            domain::new_request("rotate the root password after staff change"),
        )
        .expect("request");
    custody
        .approve(&r.id, &people.creds("alice"))
        .expect("first approval");
    let approved = custody
        .approve(&r.id, &people.creds("bob"))
        .expect("second approval");
    assert_eq!(approved.status, RequestStatus::Approved);
    let a = custody.authenticate(&people.creds("alice")).expect("alice");
    custody
        .check_out(
            &a,
            Serial::new(PRIMARY).expect("serial"),
            &SealNumber::parse("SEAL-P1").expect("seal"),
            Some(&r.id),
        )
        .expect("check out");
    let code = custody
        .release_code(&oscar, &r.id, &mut custodyd_devices())
        .expect("release over PC/SC");
    let now = clock.now_ms();
    assert_eq!(code.step, u64::try_from(now / 30_000).expect("step"));
    assert_eq!(code.code.as_str(), totp(SEED_B32, step_of_ms(now)));
    assert_eq!(code.device.get(), PRIMARY);

    let mut kinds = Vec::new();
    let head = custody.ledger().head().expect("head").expect("events").seq;
    custody
        .ledger()
        .for_each_event(1, head, |e| {
            kinds.push(e.header.kind.as_str().to_owned());
            Ok(())
        })
        .expect("events");
    let issuing = kinds.iter().position(|k| k == "code.issuing");
    let released = kinds.iter().position(|k| k == "code.released");
    assert!(
        matches!((issuing, released), (Some(i), Some(r)) if i < r),
        "{kinds:?}"
    );
    custody
        .check_in(
            &a,
            &mut custodyd_devices(),
            Serial::new(PRIMARY).expect("serial"),
            SealNumber::parse("SEAL-P2").expect("seal"),
            Location::parse("safe 1").expect("location"),
        )
        .expect("check in under a new seal");
    verify_ledger(custody.ledger()).expect("the ledger verifies");
}
