//! Property tests: random operation sequences never reach an illegal state, never release more
//! than one code per request, and never release without two distinct non-requester officer
//! approvals within the approval lifetime, each from an officer active ever since.

use proptest::prelude::*;

use super::*;

#[derive(Clone, Debug)]
enum Step {
    Approve(usize),
    Deny(usize),
    Cancel,
    CheckOut,
    CheckIn,
    Release(usize),
    Wait(i64),
    /// Suspend (false) or reinstate (true) carol, by alice and bob.
    SetCarol(bool),
}

const PEOPLE: [&str; 5] = ["alice", "bob", "carol", "oscar", "olga"];

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0..PEOPLE.len()).prop_map(Step::Approve),
        1 => (0..PEOPLE.len()).prop_map(Step::Deny),
        1 => Just(Step::Cancel),
        2 => Just(Step::CheckOut),
        1 => Just(Step::CheckIn),
        3 => (0..PEOPLE.len()).prop_map(Step::Release),
        2 => (0i64..20).prop_map(|m| Step::Wait(m * 60_000)),
        1 => any::<bool>().prop_map(Step::SetCarol),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]
    #[test]
    fn random_sequences_keep_dual_control(steps in prop::collection::vec(step(), 1..14)) {
        let mut w = World::new().with_enrolled_account();
        let req = w.new_request("oscar");
        let mut seal_n = 10;
        let mut released = 0;
        for s in steps {
            match s {
                Step::Approve(i) => { let _ = w.approve(&req.id, PEOPLE[i]); }
                Step::Deny(i) => {
                    let c = w.creds(PEOPLE[i]);
                    if let Ok(s) = w.custody.authenticate(&c) {
                        let _ = w.custody.deny(&s, &req.id, "no");
                    }
                }
                Step::Cancel => {
                    let s = w.login("oscar");
                    let _ = w.custody.cancel(&s, &req.id);
                }
                Step::CheckOut => {
                    let a = w.login("alice");
                    let current = match w.custody.device(serial(PRIMARY)).expect("d").state {
                        DeviceState::InSafe { seal, .. } => Some(seal),
                        _ => None,
                    };
                    if let Some(sl) = current {
                        let _ = w.custody.check_out(&a, serial(PRIMARY), &sl, Some(&req.id));
                    }
                }
                Step::CheckIn => {
                    let a = w.login("alice");
                    seal_n += 1;
                    let _ = w.custody.check_in(
                        &a, &mut w.keys, serial(PRIMARY),
                        seal(&format!("SEAL-{seal_n}")), Location::parse("safe").expect("l"));
                }
                Step::Release(i) => {
                    let c = w.creds(PEOPLE[i]);
                    let Ok(s) = w.custody.authenticate(&c) else {
                        // Carol while suspended: nothing happens.
                        prop_assert_eq!(PEOPLE[i], "carol");
                        continue;
                    };
                    if let Ok(c) = w.custody.release_code(&s, &req.id, &mut w.keys) {
                        released += 1;
                        prop_assert_eq!(PEOPLE[i], "oscar");
                        prop_assert_eq!(c.code.as_str(), totp_at(SEED_B32, w.clock.now_ms()));
                        // Counted approvals: officers active and never suspended since.
                        let r = w.custody.request(&req.id).expect("request");
                        let standing = r.approvals.iter().filter(|a| {
                            let u = w.custody.user(&a.officer).expect("u");
                            u.active && u.suspensions == a.suspensions
                        }).count();
                        prop_assert!(standing >= 2, "released with {} standing approvals", standing);
                    }
                }
                Step::Wait(ms) => w.clock.advance(ms),
                Step::SetCarol(active) => {
                    let (a, b) = (w.login("alice"), w.login("bob"));
                    let _ = w.custody.set_active(&a, &b, &name("carol"), active);
                }
            }
            // Invariants after every step.
            let r = w.custody.request(&req.id).expect("request");
            let releases = w.bodies("code.released").len();
            prop_assert!(releases <= 1);
            prop_assert_eq!(releases, released);
            prop_assert!(r.approvals.iter().all(|a| a.officer != r.requester));
            let mut names: Vec<_> = r.approvals.iter().map(|a| a.officer.clone()).collect();
            names.sort();
            names.dedup();
            prop_assert_eq!(names.len(), r.approvals.len(), "distinct approvers");
            for a in &r.approvals {
                prop_assert!(w.custody.user(&a.officer).expect("u").has(Role::Officer));
            }
            if r.status == RequestStatus::Released {
                let body = &w.bodies("code.released")[0];
                let at = body["host_time_ms"].as_i64().expect("time");
                let ttl = 15 * 60 * 1000;
                let valid = r.approvals.iter().filter(|a| at - a.at_ms <= ttl).count();
                prop_assert!(valid >= 2, "released with {} valid approvals", valid);
                let kinds = w.kinds();
                let i = kinds.iter().position(|k| k == "code.issuing").expect("issuing");
                let j = kinds.iter().position(|k| k == "code.released").expect("released");
                prop_assert!(i < j);
            }
            let d = w.custody.device(serial(PRIMARY)).expect("d");
            prop_assert!(!d.state.is_terminal());
        }
    }
}

#[test]
fn state_types_follow_pending_approved_released() {
    use super::super::requests::{AfterApproval, LoadedRequest, PendingRequest};
    let policy = test_policy();
    let officer = |n: &str| UserRecord {
        name: name(n),
        roles: vec![Role::Officer],
        uid: None,
        active: true,
        failed_attempts: 0,
        locked_until_ms: None,
        last_factor_step: None,
        suspensions: 0,
    };
    let rec = RequestRecord {
        id: RequestId::parse("req-0011223344556677").expect("id"),
        account: AccountId::parse(ACCOUNT).expect("a"),
        task: "other".into(),
        ticket: TicketRef::parse("SEC-1", &TicketPattern::default()).expect("t"),
        reason: Reason::parse(REASON, 20).expect("r"),
        requester: name("oscar"),
        created_ms: 0,
        expires_ms: 3_600_000,
        approvals: Vec::new(),
        status: RequestStatus::Pending,
        step: None,
        device: None,
        closed_by: None,
    };
    let p = PendingRequest::new(rec);
    let AfterApproval::StillPending(p) = p.approve(&officer("alice"), &[], 10, &policy).expect("a")
    else {
        panic!("one approval is not enough");
    };
    let AfterApproval::Approved(a) = p
        .approve(&officer("bob"), &[officer("alice")], 20, &policy)
        .expect("b")
    else {
        panic!("two approvals approve");
    };
    let approvers = [officer("alice"), officer("bob")];
    a.check_valid(30, &policy, &approvers).expect("valid");
    assert!(matches!(
        a.check_valid(20 + 15 * 60 * 1000 + 11, &policy, &approvers),
        Err(CustodyError::ApprovalExpired { .. })
    ));
    let issuing = a.issue(1, serial(PRIMARY));
    let released = issuing.release();
    assert!(matches!(
        LoadedRequest::from_record(released),
        LoadedRequest::Closed(_)
    ));
}
