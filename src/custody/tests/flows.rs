//! Ceremonies end to end and the refusals of the sign-in path.

use std::time::Duration;

use super::*;
use crate::custody::{compute_code, Clock, DeviceAccess, Issuing};

fn out_for(w: &mut World, id: &RequestId, s: &str) {
    let a = w.login("alice");
    w.custody
        .check_out(&a, serial(PRIMARY), &seal(s), Some(id))
        .expect("check out");
}

fn approved(w: &mut World) -> RequestRecord {
    let r = w.new_request("oscar");
    w.approve(&r.id, "alice").expect("first");
    let r2 = w.approve(&r.id, "bob").expect("second");
    assert_eq!(r2.status, RequestStatus::Approved);
    r2
}

/// A code with fewer than `min_code_seconds` left in its step is never shown: the release waits
/// for the next step (this clock jumps), so the operator always has the time to type it. With
/// more left, or with the policy at 0, the current step's code is released.
#[test]
fn a_code_close_to_its_steps_end_waits_for_the_next_step() {
    for (min, left_ms, waits) in [(10, 5_000, true), (10, 12_000, false), (0, 1_000, false)] {
        let mut w = World::new().with_enrolled_account();
        w.custody.policy.min_code_seconds = min;
        let r = approved(&mut w);
        out_for(&mut w, &r.id, "SEAL-P1");
        let oscar = w.login("oscar");
        let pos = w.clock.now_ms() % 30_000;
        w.clock.advance((30_000 - left_ms - pos).rem_euclid(30_000));
        let step = w.clock.now_ms() / 30_000;
        let code = w
            .custody
            .release_code(&oscar, &r.id, &mut w.keys)
            .expect("release");
        let want = if waits { step + 1 } else { step };
        let case = format!("min {min} s, {left_ms} ms left");
        assert_eq!(code.step, u64::try_from(want).expect("step"), "{case}");
        assert_eq!(
            code.code.as_str(),
            totp_at(SEED_B32, want * 30_000),
            "{case}"
        );
        assert!(
            code.seconds_remaining >= min,
            "{case}: {}",
            code.seconds_remaining
        );
        assert_eq!(
            w.bodies("code.issuing").len(),
            1,
            "{case}: nothing is recorded for the step skipped"
        );
    }
}

#[test]
fn sign_in_end_to_end_releases_the_current_code_once() {
    let mut w = World::new().with_enrolled_account();
    let r = approved(&mut w);
    out_for(&mut w, &r.id, "SEAL-P1");
    let oscar = w.login("oscar");
    let code = w
        .custody
        .release_code(&oscar, &r.id, &mut w.keys)
        .expect("release");
    let now = w.clock.now_ms();
    assert_eq!(code.step, u64::try_from(now / 30_000).expect("step"));
    assert_eq!(code.code.as_str(), totp_at(SEED_B32, now));
    assert!(code.seconds_remaining <= 30);
    assert_eq!(code.device, serial(PRIMARY));
    let kinds = w.kinds();
    let issuing = kinds
        .iter()
        .position(|k| k == "code.issuing")
        .expect("issuing");
    let released = kinds
        .iter()
        .position(|k| k == "code.released")
        .expect("released");
    assert!(issuing < released);
    let body = &w.bodies("code.released")[0];
    assert_eq!(body["step"], serde_json::json!(code.step));
    assert_eq!(body["account"], serde_json::json!(ACCOUNT));
    assert!(
        !body.to_string().contains(code.code.as_str()),
        "the code is never stored"
    );
    // Release twice: refused.
    let again = w.custody.release_code(&oscar, &r.id, &mut w.keys);
    assert!(
        matches!(again, Err(CustodyError::AlreadyReleased { .. })),
        "{again:?}"
    );
    assert_eq!(
        w.custody.request(&r.id).expect("r").status,
        RequestStatus::Released
    );
    // Check in under a new seal; the old one is refused.
    let a = w.login("alice");
    let reused = w.custody.check_in(
        &a,
        &mut w.keys,
        serial(PRIMARY),
        seal("SEAL-P1"),
        Location::parse("safe 1").expect("loc"),
    );
    assert!(
        matches!(reused, Err(CustodyError::SealReused { .. })),
        "{reused:?}"
    );
    w.custody
        .check_in(
            &a,
            &mut w.keys,
            serial(PRIMARY),
            seal("SEAL-P2"),
            Location::parse("safe 1").expect("loc"),
        )
        .expect("check in");
    let refusals = w.refusals();
    assert!(
        refusals.contains(&"already_released".to_owned()),
        "{refusals:?}"
    );
    assert!(refusals.contains(&"seal_reused".to_owned()), "{refusals:?}");
    crate::ledger::verify_ledger(w.custody.ledger()).expect("projections replay");
}

/// Two approved requests on the account: the primary checked out for the first, the backup
/// for the second.
fn two_requests_checked_out() -> (World, RequestRecord, RequestRecord) {
    let mut w = World::new().with_enrolled_account();
    let r1 = approved(&mut w);
    let r2 = approved(&mut w);
    let a = w.login("alice");
    w.custody
        .check_out(&a, serial(PRIMARY), &seal("SEAL-P1"), Some(&r1.id))
        .expect("primary out");
    w.custody
        .check_out(&a, serial(BACKUP), &seal("SEAL-B1"), Some(&r2.id))
        .expect("backup out");
    (w, r1, r2)
}

#[test]
fn second_release_in_the_same_step_waits_for_the_next() {
    let (mut w, r1, r2) = two_requests_checked_out();
    // Operators have no second factor: no clock movement between the two releases.
    let oscar = w.login("oscar");
    let c1 = w
        .custody
        .release_code(&oscar, &r1.id, &mut w.keys)
        .expect("one");
    let c2 = w
        .custody
        .release_code(&oscar, &r2.id, &mut w.keys)
        .expect("two");
    assert_eq!(c1.device, serial(PRIMARY));
    assert_eq!(c2.device, serial(BACKUP));
    assert_eq!(c2.step, c1.step + 1, "waited for the next step");
    assert_eq!(
        c2.code.as_str(),
        totp_at(SEED_B32, i64::try_from(c2.step * 30_000).expect("t"))
    );
}

#[test]
fn a_release_on_the_other_key_while_one_waits_for_its_touch_takes_the_next_step() {
    // The daemon runs a release's phases with the service free between them: the primary's
    // release commits `code.issuing` and waits for its touch while the backup's release, for
    // another request of the same account, reaches `begin_issuing`. It must not get the same
    // step: one credential, one code per step.
    let (mut w, r1, r2) = two_requests_checked_out();
    let oscar = w.login("oscar");
    let p1 = w.custody.plan_release(&oscar, &r1.id).expect("plan one");
    let p2 = w.custody.plan_release(&oscar, &r2.id).expect("plan two");
    assert_eq!(p2.not_before_ms(), None, "nothing released yet");
    let read1 = {
        let mut t = w.keys.open(serial(PRIMARY)).expect("primary");
        p1.reconcile(&mut *t).expect("reconcile one")
    };
    let read2 = {
        let mut t = w.keys.open(serial(BACKUP)).expect("backup");
        p2.reconcile(&mut *t).expect("reconcile two")
    };
    let Issuing::Ready(t1) = w
        .custody
        .begin_issuing(&oscar, &p1, &read1)
        .expect("issue one")
    else {
        panic!("the first release may compute now");
    };
    // The primary now waits for its touch; the backup's release comes in.
    let wait = match w
        .custody
        .begin_issuing(&oscar, &p2, &read2)
        .expect("issue two")
    {
        Issuing::NotBefore(t) => t,
        Issuing::Ready(t2) => panic!(
            "two codes of one credential in step {} (steps {} and {})",
            t1.step(),
            t1.step(),
            t2.step()
        ),
    };
    assert_eq!(
        wait,
        crate::custody::access::step_start_ms(crate::token::oath::TimeStep(t1.step() + 1))
    );
    let code1 = {
        let mut t = w.keys.open(serial(PRIMARY)).expect("primary");
        compute_code(&mut *t, &t1).expect("code one")
    };
    let c1 = w.custody.finish_release(&oscar, t1, code1).expect("one");
    w.clock.wait_until(wait);
    let Issuing::Ready(t2) = w
        .custody
        .begin_issuing(&oscar, &p2, &read2)
        .expect("issue two")
    else {
        panic!("the next step is free");
    };
    assert_eq!(t2.step(), c1.step + 1);
    crate::ledger::verify_ledger(w.custody.ledger()).expect("projections replay");
}

#[test]
fn approval_refusals_are_distinct_and_recorded() {
    let mut w = World::new().with_enrolled_account();
    let r = w.new_request("carol");
    // Self-approval.
    let e = w.approve(&r.id, "carol").expect_err("self");
    assert!(matches!(e, CustodyError::SelfApproval { .. }), "{e:?}");
    w.approve(&r.id, "alice").expect("alice");
    // Approval reuse.
    let e = w.approve(&r.id, "alice").expect_err("reuse");
    assert!(matches!(e, CustodyError::AlreadyApproved { .. }), "{e:?}");
    // Release before the threshold.
    let carol = w.login("carol");
    let e = w
        .custody
        .release_code(&carol, &r.id, &mut w.keys)
        .expect_err("not approved");
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
    w.approve(&r.id, "bob").expect("bob");
    // Third approval.
    let e = w.approve(&r.id, "olga").expect_err("operator");
    assert!(
        matches!(
            e,
            CustodyError::RequestAlreadyApproved { .. } | CustodyError::NotAnOfficer { .. }
        ),
        "{e:?}"
    );
    let c = w.creds("alice");
    let e = w.custody.approve(&r.id, &c).expect_err("third");
    assert!(
        matches!(e, CustodyError::RequestAlreadyApproved { .. }),
        "{e:?}"
    );
    // Approvals expire.
    w.clock.advance(16 * 60 * 1000);
    let a = w.login("alice");
    w.custody
        .check_out(&a, serial(PRIMARY), &seal("SEAL-P1"), Some(&r.id))
        .expect("out");
    let carol = w.login("carol");
    let e = w
        .custody
        .release_code(&carol, &r.id, &mut w.keys)
        .expect_err("expired approvals");
    assert!(matches!(e, CustodyError::ApprovalExpired { .. }), "{e:?}");
    assert_eq!(
        w.keys.calculations(),
        2 * 2,
        "only enrolment computed codes"
    );
    // Approval after the request expired.
    let r2 = w.new_request("oscar");
    w.clock.advance(61 * 60 * 1000);
    let e = w.approve(&r2.id, "alice").expect_err("request expired");
    assert!(matches!(e, CustodyError::RequestExpired { .. }), "{e:?}");
    let refusals = w.refusals();
    for code in [
        "self_approval",
        "already_approved",
        "request_not_approved",
        "request_already_approved",
        "approval_expired",
        "request_expired",
    ] {
        assert!(
            refusals.contains(&code.to_owned()),
            "{code} missing from {refusals:?}"
        );
    }
}

#[test]
fn wrong_device_is_refused_before_any_code() {
    let mut w = World::new().with_enrolled_account();
    let r = approved(&mut w);
    out_for(&mut w, &r.id, "SEAL-P1");
    // The reader holds the backup while the ledger expects the primary.
    w.keys.swap.insert(PRIMARY, BACKUP);
    let before = w.keys.calculations();
    let oscar = w.login("oscar");
    let e = w
        .custody
        .release_code(&oscar, &r.id, &mut w.keys)
        .expect_err("wrong device");
    match e {
        CustodyError::WrongDevice { expected, got } => {
            assert_eq!(expected, serial(PRIMARY));
            assert_eq!(got, serial(BACKUP));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(w.keys.calculations(), before, "no code computed");
    assert!(!w.kinds().contains(&"code.issuing".to_owned()));
    assert!(w.refusals().contains(&"wrong_device".to_owned()));
    // The mismatch opened an incident that blocks the device.
    let d = w.custody.device(serial(PRIMARY)).expect("dev");
    assert!(d.blocked_by.is_some());
}

#[test]
fn checked_out_for_another_account_or_without_request_is_refused() {
    let mut w = World::new().with_enrolled_account();
    let r = approved(&mut w);
    let a = w.login("alice");
    // Checked out, but not for this request.
    w.custody
        .check_out(&a, serial(PRIMARY), &seal("SEAL-P1"), None)
        .expect("out");
    let oscar = w.login("oscar");
    let e = w
        .custody
        .release_code(&oscar, &r.id, &mut w.keys)
        .expect_err("not for request");
    assert!(
        matches!(e, CustodyError::DeviceNotCheckedOut { .. }),
        "{e:?}"
    );
    // Someone other than the requester.
    let olga = w.login("olga");
    let e = w
        .custody
        .release_code(&olga, &r.id, &mut w.keys)
        .expect_err("other");
    assert!(matches!(e, CustodyError::NotTheRequester { .. }), "{e:?}");
}

#[test]
fn ledger_that_cannot_write_means_no_code() {
    let mut w = World::new().with_enrolled_account();
    let r = approved(&mut w);
    out_for(&mut w, &r.id, "SEAL-P1");
    let oscar = w.login("oscar");
    // A second handle on the same ledger holds the write lock: appends cannot commit.
    let other = Ledger::open(
        &w.dir,
        &ledger_officers(),
        Custody::projections().expect("p"),
    )
    .expect("second handle");
    other.conn().execute_batch("BEGIN IMMEDIATE").expect("lock");
    w.custody
        .ledger()
        .conn()
        .busy_timeout(Duration::from_millis(50))
        .expect("timeout");
    let before = w.keys.calculations();
    let e = w
        .custody
        .release_code(&oscar, &r.id, &mut w.keys)
        .expect_err("read-only");
    assert!(
        matches!(
            e,
            CustodyError::LedgerUnavailable {
                operation: "code.issuing",
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(w.keys.calculations(), before, "nothing computed");
    other.conn().execute_batch("ROLLBACK").expect("unlock");
    drop(other);
    // Once the ledger writes again the request is still approved and releases once.
    let code = w
        .custody
        .release_code(&oscar, &r.id, &mut w.keys)
        .expect("release");
    assert_eq!(code.code.as_str(), totp_at(SEED_B32, w.clock.now_ms()));
}

#[test]
fn seal_mismatch_opens_an_incident_that_two_officers_clear() {
    let mut w = World::new().with_enrolled_account();
    let r = approved(&mut w);
    let a = w.login("alice");
    let e = w
        .custody
        .check_out(&a, serial(PRIMARY), &seal("SEAL-XX"), Some(&r.id))
        .expect_err("mismatch");
    assert!(matches!(e, CustodyError::SealMismatch { .. }), "{e:?}");
    let incident = w
        .custody
        .device(serial(PRIMARY))
        .expect("d")
        .blocked_by
        .expect("blocked");
    // The refusal names the incident, says not to open the bag and what to do next.
    let CustodyError::SealMismatch {
        incident: named, ..
    } = &e
    else {
        panic!("{e:?}");
    };
    assert_eq!(named, &incident);
    let text = e.to_string();
    for said in [
        "Do not open the bag",
        &format!("Incident {incident} is open and blocks the device"),
        &format!("custody incident ack {incident}"),
        "docs/runbooks/incident.md",
    ] {
        assert!(text.contains(said), "{said:?} in {text}");
    }
    let e = w
        .custody
        .check_out(&a, serial(PRIMARY), &seal("SEAL-P1"), Some(&r.id))
        .expect_err("blocked");
    assert!(matches!(e, CustodyError::DeviceBlocked { .. }), "{e:?}");
    let e = w
        .custody
        .acknowledge_incident(&a, &a, &incident, "x")
        .expect_err("one officer");
    assert!(matches!(e, CustodyError::SameOfficerTwice { .. }), "{e:?}");
    let b = w.login("bob");
    let rec = w
        .custody
        .acknowledge_incident(&a, &b, &incident, "bag checked")
        .expect("ack");
    assert!(!rec.open);
    assert!(w
        .custody
        .device(serial(PRIMARY))
        .expect("d")
        .blocked_by
        .is_none());
    w.custody
        .check_out(&a, serial(PRIMARY), &seal("SEAL-P1"), Some(&r.id))
        .expect("out after ack");
}

#[test]
fn failed_authentications_are_recorded_without_locking_and_factor_codes_are_single_use() {
    let mut w = World::new();
    for n in 1..=8 {
        let c = Credentials {
            user: name("oscar"),
            passphrase: UserPassphrase::offered(Zeroizing::new("wrong passphrase".into()))
                .expect("p"),
            factor: None,
            uid: None,
        };
        let e = w.custody.authenticate(&c).expect_err("wrong");
        assert!(
            matches!(e, CustodyError::AuthenticationFailed { .. }),
            "{e:?}"
        );
        assert_eq!(
            w.bodies("auth.failed").last().expect("recorded")["failed_attempts"],
            n
        );
    }
    // Nobody is locked out by failures (the daemon throttles per user and peer uid instead):
    // the right passphrase works at once, and clears the count.
    let c = w.creds("oscar");
    w.custody
        .authenticate(&c)
        .expect("oscar after a stranger's guesses");
    assert_eq!(w.bodies("auth.failed").len(), 8);
    // Officer: the same code twice in one step.
    let c = w.creds("alice");
    w.custody.authenticate(&c).expect("first");
    let before = w.custody.user(&c.user).expect("alice").failed_attempts;
    let e = w.custody.authenticate(&c).expect_err("reuse");
    let CustodyError::FactorCodeReused { wait_secs, .. } = e else {
        panic!("{e:?}");
    };
    assert!(
        (1..=30).contains(&wait_secs),
        "waits for the next step: {wait_secs}"
    );
    assert!(
        e.to_string().contains(&format!(
            "wait {wait_secs} s for the authenticator's next code"
        )),
        "{e}"
    );
    assert_eq!(
        w.custody.user(&c.user).expect("alice").failed_attempts,
        before,
        "a reused code is not a failure"
    );
    // Officer without a code.
    let c = Credentials {
        factor: None,
        ..w.creds("bob")
    };
    let e = w.custody.authenticate(&c).expect_err("no factor");
    assert!(
        matches!(e, CustodyError::FactorCodeRequired { .. }),
        "{e:?}"
    );
    // Unknown user.
    let c = Credentials {
        user: name("mallory"),
        ..w.creds("oscar")
    };
    let e = w.custody.authenticate(&c).expect_err("unknown");
    assert!(matches!(e, CustodyError::UnknownUser { .. }), "{e:?}");
    // Bound uid.
    let refusals = w.refusals();
    assert!(
        refusals.contains(&"authentication_failed".to_owned())
            && refusals.contains(&"unknown_user".to_owned())
    );
}

#[test]
fn a_second_round_adds_the_code_to_a_proven_passphrase_and_proves_nothing_alone() {
    use crate::custody::Authenticated;
    let mut w = World::new().with_enrolled_account();
    let events = w.kinds().len();
    // A right passphrase, no code: the proof of the first round, nothing recorded or counted.
    let first = Credentials {
        factor: None,
        ..w.creds("bob")
    };
    let check = w.custody.begin_authentication(&first).expect("checks");
    let verdict = check.verify(&first);
    let proven = match w.custody.finish_authentication_rounds(verdict) {
        Ok(Authenticated::FactorRequired(p)) => p,
        other => panic!("{other:?}"),
    };
    assert_eq!(proven.user().as_str(), "bob");
    assert_eq!(w.kinds().len(), events, "a first round records nothing");
    assert_eq!(
        w.custody.user(&name("bob")).expect("bob").failed_attempts,
        0
    );
    // The second round: the code alone, with the proof.
    let code = w.creds("bob").factor.expect("a code");
    let check = w.custody.begin_second_round(&proven, None).expect("checks");
    match w
        .custody
        .finish_authentication_rounds(check.verify_factor(&code))
    {
        Ok(Authenticated::Session(s)) => assert_eq!(s.user().as_str(), "bob"),
        other => panic!("{other:?}"),
    }
    // A right code without a proven passphrase proves nothing: a check of a first round
    // given only a code is a failure, counted.
    let code = w.creds("bob").factor.expect("a code");
    let wrong = Credentials {
        passphrase: UserPassphrase::offered(Zeroizing::new("not bob's passphrase".into()))
            .expect("p"),
        factor: None,
        ..w.creds("bob")
    };
    let check = w.custody.begin_authentication(&wrong).expect("checks");
    let e = w
        .custody
        .finish_authentication_rounds(check.verify_factor(&code))
        .expect_err("no passphrase was proven");
    assert!(
        matches!(e, CustodyError::AuthenticationFailed { .. }),
        "{e:?}"
    );
    assert_eq!(
        w.custody.user(&name("bob")).expect("bob").failed_attempts,
        1
    );
    // A wrong passphrase without a code is a failure, never a question for the code.
    let check = w.custody.begin_authentication(&wrong).expect("checks");
    let verdict = check.verify(&wrong);
    let e = w
        .custody
        .finish_authentication_rounds(verdict)
        .expect_err("wrong passphrase");
    assert!(
        matches!(e, CustodyError::AuthenticationFailed { .. }),
        "{e:?}"
    );
}

#[test]
fn enrolment_refuses_to_overwrite_without_agreement() {
    let mut w = World::new().with_enrolled_account();
    let (a, b) = (w.login("alice"), w.login("bob"));
    // Fresh devices that already hold the credential (put there by a previous custodian).
    for s in [10_000_003, 10_000_004] {
        w.keys.add(s);
    }
    for (s, role) in [
        (10_000_003, DeviceRole::Primary),
        (10_000_004, DeviceRole::Backup),
    ] {
        w.custody
            .register_device(&a, &mut w.keys, serial(s), role)
            .expect("reg");
    }
    let plan = |overwrite| Enrolment {
        account: AccountId::parse(ACCOUNT).expect("id"),
        primary: serial(10_000_003),
        backup: serial(10_000_004),
        seed: ProviderSeed::parse(SEED_B32).expect("seed"),
        overwrite,
    };
    w.custody
        .enrol(&a, &b, &mut w.keys, plan(false))
        .expect("first enrolment of these keys");
    // Re-enrolling the same (now enrolled) keys needs the overwrite agreement.
    let e = w
        .custody
        .enrol(&a, &b, &mut w.keys, plan(false))
        .expect_err("no overwrite");
    assert!(matches!(e, CustodyError::DeviceState { .. }), "{e:?}");
    w.custody
        .enrol(&a, &b, &mut w.keys, plan(true))
        .expect("overwrite agreed");
    let e = w
        .custody
        .enrol(&a, &a, &mut w.keys, plan(true))
        .expect_err("one officer");
    assert!(matches!(e, CustodyError::SameOfficerTwice { .. }), "{e:?}");
}

#[test]
fn inventory_audit_and_custody_release() {
    let mut w = World::new().with_enrolled_account();
    let a = w.login("alice");
    let report = w
        .custody
        .inventory_audit(
            &a,
            &mut w.keys,
            &[
                Presented {
                    serial: serial(PRIMARY),
                    seal: Some(seal("SEAL-P1")),
                },
                Presented {
                    serial: serial(BACKUP),
                    seal: Some(seal("SEAL-WRONG")),
                },
                Presented {
                    serial: serial(99),
                    seal: None,
                },
            ],
        )
        .expect("audit");
    assert_eq!(report.ok, vec![serial(PRIMARY)]);
    assert_eq!(report.incidents.len(), 1);
    assert_eq!(report.unknown, vec![serial(99)]);
    assert_eq!(w.bodies("inventory.audited").len(), 1);
    let b = w.login("bob");
    let inc = report.incidents[0].clone();
    w.custody
        .acknowledge_incident(&a, &b, &inc, "relabelled")
        .expect("ack");
    let mut out = Vec::new();
    let summary = w
        .custody
        .release_custody(
            &a,
            &b,
            &mut w.keys,
            &AccountId::parse(ACCOUNT).expect("id"),
            &mut out,
        )
        .expect("release custody");
    assert!(summary.events > 0);
    for s in [PRIMARY, BACKUP] {
        assert_eq!(
            w.custody.device(serial(s)).expect("d").state,
            DeviceState::Released
        );
    }
    let text = String::from_utf8(out).expect("utf8");
    assert!(text.contains("custody.released"));
    let verified =
        crate::ledger::verify_export(text.as_bytes(), &w.custody.ledger().public_key(), None);
    assert!(verified.is_ok(), "{verified:?}");
}

#[test]
fn secrets_never_reach_the_ledger_file_or_debug_output() {
    let mut w = World::new().with_enrolled_account();
    let r = approved(&mut w);
    out_for(&mut w, &r.id, "SEAL-P1");
    let oscar = w.login("oscar");
    let code = w
        .custody
        .release_code(&oscar, &r.id, &mut w.keys)
        .expect("release");
    let shown = format!("{code:?} {:?}", w.creds("alice"));
    assert!(!shown.contains(code.code.as_str()), "{shown}");
    assert!(!shown.contains(&pass_of("alice")), "{shown}");
    let factor = w.factors["alice"].clone();
    let mut plain = String::new();
    for k in w.kinds().iter().collect::<std::collections::BTreeSet<_>>() {
        for b in w.bodies(k) {
            plain.push_str(&b.to_string());
        }
    }
    for needle in [
        SEED_B32,
        factor.as_str(),
        "12345678901234567890",
        &pass_of("alice"),
    ] {
        assert!(!plain.contains(needle), "secret in an event body");
    }
    let dir = w.dir.clone();
    drop(w);
    let mut bytes = Vec::new();
    for f in ["ledger.db", "ledger.db-wal"] {
        if let Ok(b) = std::fs::read(dir.join(f)) {
            bytes.extend_from_slice(&b);
        }
    }
    let seed_raw = b"12345678901234567890";
    for needle in [
        &seed_raw[..],
        SEED_B32.as_bytes(),
        factor.as_bytes(),
        pass_of("alice").as_bytes(),
    ] {
        assert!(
            !bytes.windows(needle.len()).any(|win| win == needle),
            "secret found in the ledger file"
        );
    }
}
