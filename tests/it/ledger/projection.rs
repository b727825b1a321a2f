//! Projections: a domain projection registered beside the ledger's own is written in the append
//! transaction, survives reopening, and is proved equal to a replay; re-sharing updates the
//! ledger's own tables.

use mfa_custody::ledger::{
    verify_ledger, ApplyError, Ledger, LedgerError, OfficerName, Passphrase, Projection,
    Projections, StoredEvent,
};
use rusqlite::{params, Connection};
use serde_json::json;
use zeroize::Zeroizing;

use crate::support::ledger::{ev, officers};

/// A small stand-in for the custody domain's accounts table.
struct Accounts;

impl Projection for Accounts {
    fn name(&self) -> &'static str {
        "accounts"
    }
    fn schema(&self) -> &'static str {
        "CREATE TABLE IF NOT EXISTS accounts (id TEXT PRIMARY KEY NOT NULL, status TEXT NOT NULL) STRICT;"
    }
    fn tables(&self) -> &'static [&'static str] {
        &["accounts"]
    }
    fn kinds(&self) -> &'static [&'static str] {
        &["account.enrolled", "account.closed"]
    }
    fn apply(&self, conn: &Connection, event: &StoredEvent) -> Result<(), ApplyError> {
        let body = event.body.to_value();
        let id = body
            .get("account")
            .and_then(|v| v.as_str())
            .ok_or(ApplyError::Body {
                field: "account",
                reason: "expected a string",
            })?;
        let status = if event.header.kind.as_str() == "account.closed" {
            "closed"
        } else {
            "active"
        };
        conn.execute(
            "INSERT INTO accounts (id, status) VALUES (?1, ?2)
             ON CONFLICT(id) DO UPDATE SET status = excluded.status",
            params![id, status],
        )?;
        Ok(())
    }
}

fn registry() -> Projections {
    let mut p = Projections::ledger_only();
    p.register(Box::new(Accounts)).expect("register");
    p
}

#[test]
fn domain_projection_is_written_and_replayed() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("l");
    let officers_ = officers();
    let genesis = mfa_custody::ledger::Genesis {
        officers: &officers_,
        threshold: 2,
        kdf: mfa_custody::ledger::KdfParams::insecure_for_tests(
            std::num::NonZeroU32::new(1000).expect("nonzero"),
        ),
    };
    let mut l = Ledger::create(&dir, &genesis, registry()).expect("create");
    l.append(ev(
        "alice",
        "account.enrolled",
        json!({"account": "111111111111"}),
    ))
    .expect("append");
    l.append(ev(
        "alice",
        "account.enrolled",
        json!({"account": "222222222222"}),
    ))
    .expect("append");
    l.append(ev(
        "bob",
        "account.closed",
        json!({"account": "111111111111"}),
    ))
    .expect("append");

    // A body the projection refuses: the append is rolled back whole.
    let head = l.head().expect("head").expect("some").seq;
    let err = l
        .append(ev("bob", "account.closed", json!({"acct": 1})))
        .expect_err("refused");
    assert!(
        matches!(
            err,
            LedgerError::Projection {
                projection: "accounts",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(l.head().expect("head").expect("some").seq, head);
    drop(l);

    let l = Ledger::open(&dir, &officers(), registry()).expect("open");
    let rows: Vec<(String, String)> = l
        .query(|c| {
            let mut s = c.prepare("SELECT id, status FROM accounts ORDER BY id")?;
            let rows = s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
        .expect("query");
    assert_eq!(
        rows,
        vec![
            ("111111111111".into(), "closed".into()),
            ("222222222222".into(), "active".into())
        ]
    );
    let report = verify_ledger(&l).expect("verify");
    assert!(report.tables.contains(&"accounts".to_owned()));
}

#[test]
fn a_kind_cannot_be_claimed_twice() {
    let mut p = registry();
    let err = p.register(Box::new(Accounts)).expect_err("conflict");
    assert!(
        matches!(err, LedgerError::ProjectionConflict { .. }),
        "{err:?}"
    );
}

#[test]
fn reshare_updates_officers_and_keyring() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("l");
    let mut l = crate::support::ledger::create(&dir);
    let carol = OfficerName::parse("carol").expect("name");
    let alice = OfficerName::parse("alice").expect("name");
    let new_pass = |s: &str| Passphrase::for_unseal(Zeroizing::new(s.to_owned())).expect("pass");
    // One officer is not a quorum.
    let quorum_of_one = vec![officers().remove(0)];
    assert!(matches!(
        l.reshare(
            &quorum_of_one,
            &[alice.clone(), carol.clone()],
            &[(carol.clone(), new_pass("carol-Passphrase-1"))],
            2
        ),
        Err(LedgerError::NotEnoughOfficers { .. })
    ));
    let ev = l
        .reshare(
            &officers(),
            &[alice.clone(), carol.clone()],
            &[(carol.clone(), new_pass("carol-Passphrase-1"))],
            2,
        )
        .expect("reshare");
    assert_eq!(ev.header.kind.as_str(), "ledger.reshare");
    assert_eq!(l.keyring().generation(), 2);
    let users: Vec<(String, i64)> = l
        .query(|c| {
            let mut s = c.prepare("SELECT name, active FROM users ORDER BY name")?;
            let rows = s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
        .expect("query");
    assert_eq!(
        users,
        vec![("alice".into(), 1), ("bob".into(), 0), ("carol".into(), 1)]
    );
    verify_ledger(&l).expect("verify");
    drop(l);
    // bob's old passphrase no longer opens; alice and carol do.
    assert!(Ledger::open(&dir, &officers(), Projections::ledger_only()).is_err());
    let l = Ledger::open(
        &dir,
        &[
            (carol, new_pass("carol-Passphrase-1")),
            (alice, new_pass("alice-Passphrase-1")),
        ],
        Projections::ledger_only(),
    )
    .expect("open with the new keyring");
    // The failed attempt (bob) and the quorum of one were counted and recorded.
    let last = l.head().expect("head").expect("some");
    assert_eq!(last.kind.as_str(), "ledger.unseal_failed");
    let body = l
        .event(last.seq)
        .expect("read")
        .expect("some")
        .body
        .to_value();
    assert_eq!(body["attempts"], 2);
}
