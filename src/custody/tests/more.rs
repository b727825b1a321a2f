//! Further refusals: bound uids, expired sessions, closed accounts, clock skew.

use std::time::Duration;

use super::*;

struct FixedWitness(i64);

impl TimeWitness for FixedWitness {
    fn now_ms(&self) -> Result<i64, String> {
        Ok(self.0)
    }
}

#[test]
fn bound_uid_and_expired_sessions_are_refused() {
    let mut w = World::new();
    let a = w.login("alice");
    let passphrase = w.passphrase("uma");
    w.custody
        .add_user(
            &[&a],
            NewUser {
                name: name("uma"),
                roles: vec![Role::Operator],
                uid: Some(1000),
                passphrase,
            },
        )
        .expect("add");
    let c = w.creds("uma");
    let e = w.custody.authenticate(&c).expect_err("no uid");
    assert!(matches!(e, CustodyError::WrongUid { .. }), "{e:?}");
    let c = Credentials {
        uid: Some(1001),
        ..w.creds("uma")
    };
    assert!(matches!(
        w.custody.authenticate(&c),
        Err(CustodyError::WrongUid { uid: 1001, .. })
    ));
    let c = Credentials {
        uid: Some(1000),
        ..w.creds("uma")
    };
    let s = w.custody.authenticate(&c).expect("bound uid");
    w.clock.advance(11 * 60 * 1000);
    let e = w
        .custody
        .create_request(
            &s,
            NewRequest {
                account: AccountId::parse(ACCOUNT).expect("id"),
                task: "other".into(),
                ticket: "SEC-1".into(),
                reason: REASON.into(),
            },
        )
        .expect_err("expired session");
    assert!(matches!(e, CustodyError::SessionExpired { .. }), "{e:?}");
    assert!(w.refusals().contains(&"wrong_uid".to_owned()));
}

#[test]
fn bad_request_input_is_refused_naming_it() {
    let mut w = World::new().with_enrolled_account();
    let s = w.login("oscar");
    for (task, ticket, reason, code) in [
        ("make-coffee", "SEC-1", REASON, "unknown_task"),
        ("other", "sec-1", REASON, "invalid_input"),
        ("other", "SEC-1", "too short", "invalid_input"),
    ] {
        let e = w
            .custody
            .create_request(
                &s,
                NewRequest {
                    account: AccountId::parse(ACCOUNT).expect("id"),
                    task: task.into(),
                    ticket: ticket.into(),
                    reason: reason.into(),
                },
            )
            .expect_err(task);
        assert_eq!(e.code(), code, "{e}");
    }
}

#[test]
fn closing_an_account_retires_its_devices_and_refuses_requests() {
    let mut w = World::new().with_enrolled_account();
    let (a, b) = (w.login("alice"), w.login("bob"));
    let id = AccountId::parse(ACCOUNT).expect("id");
    w.custody
        .set_account_status(&a, &b, &id, AccountStatus::Closed)
        .expect("close");
    for s in [PRIMARY, BACKUP] {
        assert_eq!(
            w.custody.device(serial(s)).expect("d").state,
            DeviceState::Retired
        );
    }
    let s = w.login("oscar");
    let e = w
        .custody
        .create_request(
            &s,
            NewRequest {
                account: id,
                task: "other".into(),
                ticket: "SEC-1".into(),
                reason: REASON.into(),
            },
        )
        .expect_err("closed");
    assert!(matches!(e, CustodyError::AccountNotActive { .. }), "{e:?}");
    crate::ledger::verify_ledger(w.custody.ledger()).expect("projection replays");
}

#[test]
fn clock_far_from_the_witness_refuses_release() {
    let mut w = World::new().with_enrolled_account();
    let r = w.approved_and_out();
    w.custody.policy.max_clock_skew = Some(Duration::from_secs(5));
    w.custody
        .set_time_witness(Box::new(FixedWitness(w.clock.now_ms() + 60_000)));
    let before = w.keys.calculations();
    let s = w.login("oscar");
    let e = w
        .custody
        .release_code(&s, &r.id, &mut w.keys)
        .expect_err("skew");
    assert!(
        matches!(
            e,
            CustodyError::ClockSkew {
                skew_ms: 60_000,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(w.keys.calculations(), before);
    w.custody
        .set_time_witness(Box::new(FixedWitness(w.clock.now_ms() + 1_000)));
    w.custody
        .release_code(&s, &r.id, &mut w.keys)
        .expect("within the bound");
}

#[test]
fn enrolment_accepts_an_aws_style_uri() {
    let mut w = World::new();
    let (a, b) = (w.login("alice"), w.login("bob"));
    w.custody
        .register_account(
            &a,
            NewAccount {
                provider: Provider::AwsUsGov,
                account: Provider::AwsUsGov
                    .parse_account_id("999988887777")
                    .expect("id"),
                alias: Alias::parse("gov").expect("alias"),
                root_email: Email::parse("gov@example.test").expect("e"),
                credential: crate::token::oath::CredentialName::parse("AWS:gov@example.test")
                    .expect("c"),
            },
        )
        .expect("account");
    for (s, role) in [
        (20_000_001, DeviceRole::Primary),
        (20_000_002, DeviceRole::Backup),
    ] {
        w.keys.add(s);
        w.custody
            .register_device(&a, &mut w.keys, serial(s), role)
            .expect("reg");
    }
    let uri = format!(
        "otpauth://totp/root@999988887777?secret={SEED_B32}&issuer=Amazon%20Web%20Services"
    );
    let codes = w
        .custody
        .enrol(
            &a,
            &b,
            &mut w.keys,
            Enrolment {
                account: AccountId::parse("999988887777").expect("id"),
                primary: serial(20_000_001),
                backup: serial(20_000_002),
                seed: ProviderSeed::parse(&uri).expect("uri"),
                overwrite: false,
            },
        )
        .expect("enrol");
    let t = |s: u64| i64::try_from(s * 30_000).expect("t");
    assert_eq!(codes.first.as_str(), totp_at(SEED_B32, t(codes.first_step)));
    assert_eq!(
        codes.second.as_str(),
        totp_at(SEED_B32, t(codes.first_step + 1))
    );
    assert!(
        w.clock.now_ms() >= t(codes.first_step + 1),
        "waited for the second step"
    );
    for s in [20_000_001, 20_000_002] {
        let creds = w.keys.keys[&s].oath_state().credentials();
        assert_eq!(creds.len(), 1);
        assert!(creds[0].touch, "touch required");
    }
}

#[test]
fn approvals_of_a_since_suspended_officer_no_longer_count() {
    let mut w = World::new().with_enrolled_account();
    let r = w.new_request("oscar");
    w.approve(&r.id, "alice").expect("a");
    w.approve(&r.id, "carol").expect("c");
    let a = w.login("alice");
    w.custody
        .check_out(&a, serial(PRIMARY), &seal("SEAL-P1"), Some(&r.id))
        .expect("out");
    let b = w.login("bob");
    w.custody
        .set_active(&a, &b, &name("carol"), false)
        .expect("suspend carol");
    let before = w.keys.calculations();
    let s = w.login("oscar");
    let e = w
        .custody
        .release_code(&s, &r.id, &mut w.keys)
        .expect_err("carol suspended");
    assert!(
        matches!(
            e,
            CustodyError::RequestNotApproved {
                approvals: 1,
                threshold: 2,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(w.keys.calculations(), before);
    // A wrong second-factor code is an authentication failure, counted like any other.
    let mut c = w.creds("bob");
    c.factor = Some(FactorCode::parse("000000").expect("code"));
    let e = w.custody.approve(&r.id, &c).expect_err("wrong factor");
    assert!(
        matches!(e, CustodyError::AuthenticationFailed { .. }),
        "{e:?}"
    );
    assert_eq!(
        w.custody.user(&name("bob")).expect("bob").failed_attempts,
        1
    );
}

#[test]
fn existing_credential_is_overwritten_only_by_agreement() {
    use crate::token::oath::{CredentialName, OathSecret, OathSession, PutRequest, Selected};
    let mut w = World::new();
    let (a, b) = (w.login("alice"), w.login("bob"));
    w.custody
        .register_account(
            &a,
            NewAccount {
                provider: Provider::Aws,
                account: Provider::Aws.parse_account_id(ACCOUNT).expect("id"),
                alias: Alias::parse("prod").expect("alias"),
                root_email: Email::parse("root@example.test").expect("e"),
                credential: CredentialName::parse(CRED).expect("c"),
            },
        )
        .expect("account");
    for (s, role) in [(PRIMARY, DeviceRole::Primary), (BACKUP, DeviceRole::Backup)] {
        w.keys.add(s);
        w.custody
            .register_device(&a, &mut w.keys, serial(s), role)
            .expect("reg");
    }
    // The backup already holds a credential of that name (an earlier, abandoned enrolment).
    let key = w.keys.keys.get_mut(&BACKUP).expect("backup");
    let Ok(Selected::Ready(mut s)) = OathSession::select(key) else {
        panic!("select");
    };
    s.put(&PutRequest::totp(
        CredentialName::parse(CRED).expect("c"),
        OathSecret::from_base32("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP").expect("seed"),
    ))
    .expect("put");
    let plan = |overwrite| Enrolment {
        account: AccountId::parse(ACCOUNT).expect("id"),
        primary: serial(PRIMARY),
        backup: serial(BACKUP),
        seed: ProviderSeed::parse(SEED_B32).expect("seed"),
        overwrite,
    };
    let e = w
        .custody
        .enrol(&a, &b, &mut w.keys, plan(false))
        .expect_err("exists");
    assert!(matches!(e, CustodyError::CredentialExists { .. }), "{e:?}");
    assert!(
        !w.kinds().contains(&"enrolment.started".to_owned()),
        "nothing programmed"
    );
    let codes = w
        .custody
        .enrol(&a, &b, &mut w.keys, plan(true))
        .expect("agreed");
    let t = i64::try_from(codes.first_step * 30_000).expect("t");
    assert_eq!(codes.first.as_str(), totp_at(SEED_B32, t));
}

#[test]
fn a_lost_device_is_terminal_and_opens_an_incident() {
    let mut w = World::new().with_enrolled_account();
    let (a, b) = (w.login("alice"), w.login("bob"));
    let d = w
        .custody
        .set_terminal(&a, &b, &mut w.keys, serial(BACKUP), Terminal::Lost)
        .expect("lost");
    assert_eq!(d.state, DeviceState::Lost);
    assert!(d.blocked_by.is_some());
    let incidents = w.custody.incidents().expect("incidents");
    assert!(incidents
        .iter()
        .any(|i| i.kind == IncidentKind::DeviceLost && i.open));
    let e = w
        .custody
        .set_terminal(&a, &b, &mut w.keys, serial(BACKUP), Terminal::Destroyed)
        .expect_err("terminal");
    assert!(matches!(e, CustodyError::DeviceState { .. }), "{e:?}");
}

/// A key the ledger has not registered is never used: every operation that names a device
/// refuses its serial with `unknown_device` and writes nothing but the refusal, and no APDU
/// reaches it, even while it is presented next to the registered keys.
#[test]
fn unregistered_serial_is_refused_by_every_operation() {
    const STRANGER: u32 = 10_000_009;
    let mut w = World::new().with_enrolled_account();
    const SPARE: u32 = 10_000_003;
    w.keys.add(STRANGER);
    w.keys.add(SPARE);
    let a = w.login("alice");
    w.custody
        .register_device(&a, &mut w.keys, serial(SPARE), DeviceRole::Primary)
        .expect("register the spare");
    w.keys.log.clear();
    let s = serial(STRANGER);
    let unknown = |r: Result<_, CustodyError>, op: &str| match r {
        Err(e) => assert_eq!(e.code(), "unknown_device", "{op}: {e:?}"),
        Ok(_) => panic!("{op} accepted an unregistered serial"),
    };
    let (a, b) = (w.login("alice"), w.login("bob"));
    unknown(w.custody.device(s).map(|_| ()), "device");
    unknown(
        w.custody
            .check_out(&a, s, &seal("SEAL-X1"), None)
            .map(|_| ()),
        "check_out",
    );
    unknown(
        w.custody
            .check_in(
                &a,
                &mut w.keys,
                s,
                seal("SEAL-X2"),
                Location::parse("safe 1").expect("loc"),
            )
            .map(|_| ()),
        "check_in",
    );
    unknown(
        w.custody
            .set_terminal(&a, &b, &mut w.keys, s, Terminal::Retired)
            .map(|_| ()),
        "set_terminal",
    );
    unknown(
        w.custody
            .report_incident(&a, Some(s), "seen in a drawer")
            .map(|_| ()),
        "report_incident",
    );
    unknown(
        w.custody.reconcile_device(&mut w.keys, s).map(|_| ()),
        "reconcile_device",
    );
    for (primary, backup) in [(s, serial(BACKUP)), (serial(SPARE), s)] {
        unknown(
            w.custody
                .enrol(
                    &a,
                    &b,
                    &mut w.keys,
                    Enrolment {
                        account: AccountId::parse(ACCOUNT).expect("id"),
                        primary,
                        backup,
                        seed: ProviderSeed::parse(SEED_B32).expect("seed"),
                        overwrite: true,
                    },
                )
                .map(|_| ()),
            "enrol",
        );
    }
    assert!(
        w.keys.log.is_empty(),
        "APDUs reached a key: {:02x?}",
        w.keys.log
    );
    // An inventory audit lists it as unknown next to the registered keys it checks.
    let presented = [
        (PRIMARY, "SEAL-P1"),
        (BACKUP, "SEAL-B1"),
        (STRANGER, "SEAL-X3"),
    ]
    .map(|(n, sl)| Presented {
        serial: serial(n),
        seal: Some(seal(sl)),
    });
    let report = w
        .custody
        .inventory_audit(&a, &mut w.keys, &presented)
        .expect("audit");
    assert_eq!(report.unknown, vec![s]);
    assert_eq!(report.ok, vec![serial(PRIMARY), serial(BACKUP)]);
    // The spare was not presented: that is an incident about it, not about the stranger.
    assert_eq!(report.incidents.len(), 1, "{:?}", report.incidents);
    assert!(w
        .custody
        .devices()
        .expect("devices")
        .iter()
        .all(|d| d.serial != s));
}
