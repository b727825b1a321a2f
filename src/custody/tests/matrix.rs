//! The authorization matrix: every operation × every kind of actor against an expected table.

use super::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
    Officer,
    Operator,
    Auditor,
    Suspended,
    Unknown,
}

#[derive(Clone, Copy, Debug)]
enum Op {
    CreateRequest,
    ApproveOther,
    ApproveSelf,
    Deny,
    CheckOut,
    RegisterAccount,
    AddOperator,
    ReleaseOther,
    ReleaseSelf,
}

const ALL_WHO: [Who; 5] = [
    Who::Officer,
    Who::Operator,
    Who::Auditor,
    Who::Suspended,
    Who::Unknown,
];

/// Expected outcome ("ok" or the refusal code) per operation, in `ALL_WHO` order.
fn expected(op: Op) -> [&'static str; 5] {
    match op {
        Op::CreateRequest => ["ok", "ok", "role_required", "suspended", "unknown_user"],
        Op::ApproveOther => [
            "ok",
            "not_an_officer",
            "not_an_officer",
            "suspended",
            "unknown_user",
        ],
        Op::ApproveSelf => [
            "self_approval",
            "not_an_officer",
            "role_required",
            "suspended",
            "unknown_user",
        ],
        Op::Deny => [
            "ok",
            "not_an_officer",
            "not_an_officer",
            "suspended",
            "unknown_user",
        ],
        Op::CheckOut => [
            "ok",
            "not_an_officer",
            "not_an_officer",
            "suspended",
            "unknown_user",
        ],
        Op::RegisterAccount => [
            "ok",
            "not_an_officer",
            "not_an_officer",
            "suspended",
            "unknown_user",
        ],
        Op::AddOperator => [
            "ok",
            "not_an_officer",
            "not_an_officer",
            "suspended",
            "unknown_user",
        ],
        Op::ReleaseOther => [
            "not_the_requester",
            "not_the_requester",
            "role_required",
            "suspended",
            "unknown_user",
        ],
        Op::ReleaseSelf => ["ok", "ok", "role_required", "suspended", "unknown_user"],
    }
}

fn user_of(who: Who) -> &'static str {
    match who {
        Who::Officer | Who::Suspended => "carol",
        Who::Operator => "olga",
        Who::Auditor => "audrey",
        Who::Unknown => "mallory",
    }
}

fn session(w: &mut World, who: Who) -> Session {
    match who {
        Who::Unknown => Session {
            user: name("mallory"),
            at_ms: w.clock.now_ms(),
            ledger: w.custody.ledger().ledger_id(),
            presence: None,
        },
        _ => w.login(user_of(who)),
    }
}

fn creds(w: &mut World, who: Who) -> Credentials {
    match who {
        Who::Unknown => Credentials {
            user: name("mallory"),
            ..w.creds("oscar")
        },
        _ => w.creds(user_of(who)),
    }
}

fn suspend_if(w: &mut World, who: Who) {
    if who == Who::Suspended {
        let (a, b) = (w.login("alice"), w.login("bob"));
        w.custody
            .set_active(&a, &b, &name("carol"), false)
            .expect("suspend");
    }
}

fn outcome<T>(r: Result<T, CustodyError>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(e) => e.code().into(),
    }
}

fn new_request_by(w: &mut World, s: &Session) -> Result<RequestRecord, CustodyError> {
    w.custody.create_request(
        s,
        NewRequest {
            account: AccountId::parse(ACCOUNT).expect("id"),
            task: "close-account".into(),
            ticket: "OPS-7".into(),
            reason: REASON.into(),
        },
    )
}

fn run(who: Who, op: Op) -> String {
    let mut w = World::new().with_enrolled_account();
    let other = w.new_request("oscar");
    match op {
        Op::CreateRequest => {
            let s = session(&mut w, who);
            suspend_if(&mut w, who);
            outcome(new_request_by(&mut w, &s))
        }
        Op::ApproveOther => {
            suspend_if(&mut w, who);
            let c = creds(&mut w, who);
            outcome(w.custody.approve(&other.id, &c))
        }
        Op::ApproveSelf => {
            // The actor's own request (auditors cannot make one: their refusal is the answer).
            let s = session(&mut w, who);
            let mine = match new_request_by(&mut w, &s) {
                Ok(r) => r,
                Err(e) => return e.code().into(),
            };
            suspend_if(&mut w, who);
            let c = creds(&mut w, who);
            outcome(w.custody.approve(&mine.id, &c))
        }
        Op::Deny => {
            let s = session(&mut w, who);
            suspend_if(&mut w, who);
            outcome(w.custody.deny(&s, &other.id, "not now"))
        }
        Op::CheckOut => {
            let s = session(&mut w, who);
            suspend_if(&mut w, who);
            outcome(
                w.custody
                    .check_out(&s, serial(PRIMARY), &seal("SEAL-P1"), Some(&other.id)),
            )
        }
        Op::RegisterAccount => {
            let s = session(&mut w, who);
            suspend_if(&mut w, who);
            outcome(
                w.custody.register_account(
                    &s,
                    NewAccount {
                        provider: Provider::AwsCn,
                        account: Provider::AwsCn
                            .parse_account_id("210987654321")
                            .expect("id"),
                        alias: Alias::parse("cn").expect("alias"),
                        root_email: Email::parse("cn@example.test").expect("e"),
                        credential: crate::token::oath::CredentialName::parse(
                            "AWS:cn@example.test",
                        )
                        .expect("c"),
                    },
                ),
            )
        }
        Op::AddOperator => {
            let s = session(&mut w, who);
            suspend_if(&mut w, who);
            let passphrase = w.passphrase("otto");
            outcome(w.custody.add_user(
                &[&s],
                NewUser {
                    name: name("otto"),
                    roles: vec![Role::Operator],
                    uid: None,
                    passphrase,
                },
            ))
        }
        Op::ReleaseOther | Op::ReleaseSelf => {
            let s = session(&mut w, who);
            let target = if matches!(op, Op::ReleaseSelf) {
                match new_request_by(&mut w, &s) {
                    Ok(r) => r,
                    Err(e) => return e.code().into(),
                }
            } else {
                other
            };
            for o in ["alice", "bob"] {
                w.approve(&target.id, o).expect("approve");
            }
            let a = w.login("alice");
            w.custody
                .check_out(&a, serial(PRIMARY), &seal("SEAL-P1"), Some(&target.id))
                .expect("out");
            suspend_if(&mut w, who);
            let s = Session {
                at_ms: w.clock.now_ms(),
                ..s
            };
            outcome(w.custody.release_code(&s, &target.id, &mut w.keys))
        }
    }
}

#[test]
fn authorization_matrix() {
    let ops = [
        Op::CreateRequest,
        Op::ApproveOther,
        Op::ApproveSelf,
        Op::Deny,
        Op::CheckOut,
        Op::RegisterAccount,
        Op::AddOperator,
        Op::ReleaseOther,
        Op::ReleaseSelf,
    ];
    let mut wrong = Vec::new();
    for op in ops {
        for (who, want) in ALL_WHO.iter().zip(expected(op)) {
            let got = run(*who, op);
            if got != want {
                wrong.push(format!("{op:?} by {who:?}: expected {want}, got {got}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn two_officer_operations_refuse_one_officer_and_non_officers() {
    let mut w = World::new();
    let (a, oscar) = (w.login("alice"), w.login("oscar"));
    let e = w
        .custody
        .set_active(&a, &a, &name("olga"), false)
        .expect_err("same");
    assert!(matches!(e, CustodyError::SameOfficerTwice { .. }), "{e:?}");
    let e = w
        .custody
        .set_active(&a, &oscar, &name("olga"), false)
        .expect_err("operator");
    assert!(matches!(e, CustodyError::NotAnOfficer { .. }), "{e:?}");
    let e = w
        .custody
        .set_roles(&a, &oscar, &name("olga"), vec![Role::Auditor])
        .expect_err("operator");
    assert!(matches!(e, CustodyError::NotAnOfficer { .. }), "{e:?}");
    let passphrase = w.passphrase("dave");
    let e = w
        .custody
        .add_user(
            &[&a],
            NewUser {
                name: name("dave"),
                roles: vec![Role::Officer],
                uid: None,
                passphrase,
            },
        )
        .expect_err("one officer adds an officer");
    assert!(matches!(e, CustodyError::SameOfficerTwice { .. }), "{e:?}");
    let b = w.login("bob");
    w.custody
        .set_roles(&a, &b, &name("olga"), vec![Role::Auditor, Role::Operator])
        .expect("roles");
    assert!(w
        .custody
        .user(&name("olga"))
        .expect("olga")
        .has(Role::Auditor));
}
