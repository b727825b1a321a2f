//! When approvals count: only from officers active ever since they approved, only within the
//! approval lifetime, renewable within the request's lifetime; and binding a user (genesis
//! officers included) to an OS uid by two other officers.

use serde_json::json;

use super::*;

const MINUTE: i64 = 60_000;

fn out_for(w: &mut World, id: &RequestId) {
    let a = w.login("alice");
    w.custody
        .check_out(&a, serial(PRIMARY), &seal("SEAL-P1"), Some(id))
        .expect("check out");
}

fn set_active(w: &mut World, user: &str, active: bool) {
    let (a, b) = (w.login("alice"), w.login("bob"));
    w.custody
        .set_active(&a, &b, &name(user), active)
        .expect("suspend or reinstate");
}

fn release(w: &mut World, id: &RequestId) -> Result<ReleasedCode, CustodyError> {
    let s = w.login("oscar");
    w.custody.release_code(&s, id, &mut w.keys)
}

fn last_approval(w: &World) -> serde_json::Value {
    w.bodies(store::kinds::REQUEST_APPROVED)
        .pop()
        .expect("an approval event")
}

#[test]
fn a_reinstated_officers_earlier_approval_does_not_count_at_release() {
    let mut w = World::new().with_enrolled_account();
    let r = w.new_request("oscar");
    w.approve(&r.id, "alice").expect("alice");
    let r = w.approve(&r.id, "carol").expect("carol");
    assert_eq!(r.status, RequestStatus::Approved);
    out_for(&mut w, &r.id);
    set_active(&mut w, "carol", false);
    set_active(&mut w, "carol", true);
    assert_eq!(
        w.custody.user(&name("carol")).expect("carol").suspensions,
        1
    );
    let before = w.keys.calculations();
    let e = release(&mut w, &r.id).expect_err("carol's approval predates her suspension");
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
    assert_eq!(w.keys.calculations(), before, "no code computed");
    // Carol, active again, approves afresh: her new approval counts.
    let r2 = w.approve(&r.id, "carol").expect("carol again");
    assert_eq!(r2.status, RequestStatus::Approved);
    let body = last_approval(&w);
    assert_eq!(body["reopened"], json!(true));
    assert_eq!(body["renewed"], json!(true));
    assert_eq!(body["dropped"][0]["officer"], json!("carol"));
    assert_eq!(body["dropped"][0]["why"], json!("officer_not_active_since"));
    let code = release(&mut w, &r.id).expect("release");
    assert_eq!(code.code.as_str(), totp_at(SEED_B32, w.clock.now_ms()));
    crate::ledger::verify_ledger(w.custody.ledger()).expect("projections replay");
}

#[test]
fn a_reinstated_officers_earlier_approval_does_not_count_toward_approval() {
    let mut w = World::new().with_enrolled_account();
    let r = w.new_request("oscar");
    w.approve(&r.id, "carol").expect("carol");
    set_active(&mut w, "carol", false);
    set_active(&mut w, "carol", true);
    let r = w.approve(&r.id, "alice").expect("alice");
    assert_eq!(
        r.status,
        RequestStatus::Pending,
        "carol's approval from before her suspension is not a second approval"
    );
    assert_eq!(r.approvals.len(), 1, "{:?}", r.approvals);
    assert_eq!(r.approvals[0].officer, name("alice"));
    let body = last_approval(&w);
    assert_eq!(body["reopened"], json!(false));
    assert_eq!(body["renewed"], json!(false));
    assert_eq!(
        body["dropped"],
        json!([{"officer": "carol", "at_ms": r.created_ms + 30_000,
                "why": "officer_not_active_since"}])
    );
    let r = w.approve(&r.id, "carol").expect("carol approves afresh");
    assert_eq!(r.status, RequestStatus::Approved);
    assert_eq!(
        r.approvals[1].suspensions, 1,
        "the count she approved under"
    );
}

#[test]
fn expired_approvals_can_be_renewed_within_the_request_lifetime() {
    let mut w = World::new().with_enrolled_account();
    let r = w.new_request("oscar");
    w.approve(&r.id, "alice").expect("alice");
    w.approve(&r.id, "bob").expect("bob");
    out_for(&mut w, &r.id);
    w.clock.advance(16 * MINUTE);
    let e = release(&mut w, &r.id).expect_err("approvals expired");
    assert!(matches!(e, CustodyError::ApprovalExpired { .. }), "{e:?}");
    // The approved request takes approvals again; alice's replaces her expired one.
    let r1 = w.approve(&r.id, "alice").expect("alice renews");
    assert_eq!(r1.status, RequestStatus::Pending);
    assert_eq!(r1.approvals.len(), 1);
    let body = last_approval(&w);
    assert_eq!(body["reopened"], json!(true));
    assert_eq!(body["renewed"], json!(true));
    let whys: Vec<_> = body["dropped"]
        .as_array()
        .expect("dropped")
        .iter()
        .map(|d| (d["officer"].clone(), d["why"].clone()))
        .collect();
    assert_eq!(
        whys,
        [
            (json!("alice"), json!("expired")),
            (json!("bob"), json!("expired"))
        ]
    );
    let e = w
        .approve(&r.id, "alice")
        .expect_err("her renewed approval counts");
    assert!(matches!(e, CustodyError::AlreadyApproved { .. }), "{e:?}");
    let e = release(&mut w, &r.id).expect_err("one approval");
    assert!(
        matches!(e, CustodyError::RequestNotApproved { approvals: 1, .. }),
        "{e:?}"
    );
    // Another officer completes it (bob's expired approval is gone, so carol or bob may).
    let r2 = w.approve(&r.id, "carol").expect("carol");
    assert_eq!(r2.status, RequestStatus::Approved);
    let e = w.approve(&r.id, "bob").expect_err("approvals stand");
    assert!(
        matches!(e, CustodyError::RequestAlreadyApproved { .. }),
        "{e:?}"
    );
    release(&mut w, &r.id).expect("release with renewed approvals");
}

#[test]
fn one_lapsed_approval_is_renewed_by_its_officer_alone() {
    let mut w = World::new().with_enrolled_account();
    let r = w.new_request("oscar");
    w.approve(&r.id, "alice").expect("alice");
    w.clock.advance(10 * MINUTE);
    w.approve(&r.id, "bob").expect("bob");
    out_for(&mut w, &r.id);
    w.clock.advance(5 * MINUTE);
    let e = release(&mut w, &r.id).expect_err("alice's approval expired");
    assert!(matches!(e, CustodyError::ApprovalExpired { .. }), "{e:?}");
    let r1 = w.approve(&r.id, "alice").expect("alice renews");
    assert_eq!(r1.status, RequestStatus::Approved, "bob's approval stands");
    let body = last_approval(&w);
    assert_eq!(body["reopened"], json!(true));
    assert_eq!(body["renewed"], json!(true));
    assert_eq!(body["dropped"][0]["officer"], json!("alice"));
    assert_eq!(body["dropped"].as_array().map(Vec::len), Some(1));
    release(&mut w, &r.id).expect("release");
}

#[test]
fn the_request_lifetime_bounds_renewal() {
    let mut w = World::new().with_enrolled_account();
    let r = w.new_request("oscar");
    w.approve(&r.id, "alice").expect("alice");
    w.approve(&r.id, "bob").expect("bob");
    w.clock.advance(r.expires_ms - w.clock.now_ms());
    let e = w.approve(&r.id, "alice").expect_err("request expired");
    assert!(matches!(e, CustodyError::RequestExpired { .. }), "{e:?}");
    assert_eq!(
        w.custody.request(&r.id).expect("r").status,
        RequestStatus::Expired
    );
}

#[test]
fn two_other_officers_bind_a_genesis_officer_to_a_uid() {
    let mut w = World::new();
    assert_eq!(w.custody.user(&name("alice")).expect("alice").uid, None);
    // Alice may not be one of the two who bind her.
    let (a, b) = (w.login("alice"), w.login("bob"));
    let e = w
        .custody
        .bind_uid(&a, &b, &name("alice"), 1001)
        .expect_err("subject in the pair");
    assert!(matches!(e, CustodyError::SubjectIsApprover { .. }), "{e:?}");
    assert!(e.to_string().contains("ask two other officers"), "{e}");
    // One officer twice, or an operator, is refused.
    let e = w
        .custody
        .bind_uid(&b, &b, &name("alice"), 1001)
        .expect_err("same officer");
    assert!(matches!(e, CustodyError::SameOfficerTwice { .. }), "{e:?}");
    let oscar = w.login("oscar");
    let e = w
        .custody
        .bind_uid(&b, &oscar, &name("alice"), 1001)
        .expect_err("operator");
    assert!(matches!(e, CustodyError::NotAnOfficer { .. }), "{e:?}");
    assert_eq!(w.custody.user(&name("alice")).expect("alice").uid, None);
    // Bob and carol bind her.
    let (b, c) = (w.login("bob"), w.login("carol"));
    let u = w
        .custody
        .bind_uid(&b, &c, &name("alice"), 1001)
        .expect("bind");
    assert_eq!(u.uid, Some(1001));
    let body = w.bodies(store::kinds::USER_UID_BOUND).pop().expect("event");
    assert_eq!(body["user"], json!("alice"));
    assert_eq!(body["from"], json!(null));
    assert_eq!(body["to"], json!(1001));
    assert_eq!(body["approved_by"], json!(["bob", "carol"]));
    // From now on she authenticates only from uid 1001.
    let creds = w.creds("alice");
    let e = w.custody.authenticate(&creds).expect_err("no uid");
    assert!(matches!(e, CustodyError::WrongUid { .. }), "{e:?}");
    let creds = Credentials {
        uid: Some(1001),
        ..w.creds("alice")
    };
    w.custody.authenticate(&creds).expect("from her uid");
    // Rebinding moves it; the same uid again, or (uid_t)-1, is refused naming the uid.
    let (b, c) = (w.login("bob"), w.login("carol"));
    let e = w
        .custody
        .bind_uid(&b, &c, &name("alice"), 1001)
        .expect_err("unchanged");
    assert!(e.to_string().contains("already bound"), "{e}");
    let e = w
        .custody
        .bind_uid(&b, &c, &name("alice"), u32::MAX)
        .expect_err("-1");
    assert!(
        matches!(e, CustodyError::Invalid { what: "uid", .. }),
        "{e:?}"
    );
    w.custody
        .bind_uid(&b, &c, &name("alice"), 1002)
        .expect("rebind");
    let body = w.bodies(store::kinds::USER_UID_BOUND).pop().expect("event");
    assert_eq!(
        (body["from"].clone(), body["to"].clone()),
        (json!(1001), json!(1002))
    );
    let refusals = w.refusals();
    for code in [
        "subject_is_approver",
        "same_officer_twice",
        "not_an_officer",
        "invalid_input",
    ] {
        assert!(
            refusals.contains(&code.to_owned()),
            "{code} in {refusals:?}"
        );
    }
    crate::ledger::verify_ledger(w.custody.ledger()).expect("projections replay");
}
