//! Bootstrapping a genesis officer needs that officer's keyring (unseal) passphrase.

use super::*;

fn bootstrap(w: &mut World, who: &str, keyring: &str) -> Result<FactorEnrolment, CustodyError> {
    let p = w.passphrase(who);
    w.custody
        .bootstrap_officer(&name(who), &keyring_pass(keyring), &p)
}

fn bootstrap_with(
    w: &mut World,
    who: &str,
    keyring: &str,
) -> Result<FactorEnrolment, CustodyError> {
    let p = w.passphrase(who);
    let k = Passphrase::for_unseal(Zeroizing::new(keyring.to_owned())).expect("pass");
    w.custody.bootstrap_officer(&name(who), &k, &p)
}

#[test]
fn bootstrap_with_a_wrong_or_another_officers_keyring_passphrase_is_refused_and_recorded() {
    let mut w = World::genesis_only();
    // Bob's keyring passphrase does not make anyone alice.
    assert!(matches!(
        bootstrap(&mut w, "alice", "bob"),
        Err(CustodyError::WrongKeyringPassphrase { user }) if user.as_str() == "alice"
    ));
    assert!(matches!(
        bootstrap_with(&mut w, "alice", "Guessed-Keyring-Phrase-1"),
        Err(CustodyError::WrongKeyringPassphrase { .. })
    ));
    assert!(matches!(
        w.custody.user(&name("alice")),
        Err(CustodyError::UnknownUser { .. })
    ));
    // Both refusals are in the ledger: an auth.failed and a custody.refused each.
    assert_eq!(
        w.refusals(),
        vec!["wrong_keyring_passphrase", "wrong_keyring_passphrase"]
    );
    let failed = w.bodies(store::kinds::AUTH_FAILED);
    assert_eq!(failed.len(), 2);
    assert_eq!(failed[0]["user"], "alice");
    assert_eq!(failed[0]["operation"], "bootstrap_officer");
    assert_eq!(failed[0]["reason"], "wrong_keyring_passphrase");
    let refused = w.bodies(store::kinds::REFUSED);
    assert_eq!(refused[0]["operation"], "bootstrap_officer");

    // The right one works once, and only once.
    let e = bootstrap(&mut w, "alice", "alice").expect("bootstrap alice");
    assert_eq!(e.base32().len(), 32);
    let alice = w.custody.user(&name("alice")).expect("alice exists");
    assert!(alice.has(Role::Officer));
    assert!(matches!(
        bootstrap(&mut w, "alice", "alice"),
        Err(CustodyError::UserExists { .. })
    ));
    assert_eq!(w.bodies(store::kinds::USER_ADDED).len(), 1);
    // A name that is not in the keyring is refused as before.
    assert!(matches!(
        bootstrap(&mut w, "carol", "carol"),
        Err(CustodyError::NotAnOfficer { .. })
    ));

    // No passphrase reaches an event, an error or the ledger file.
    let mut all = String::new();
    for k in [
        store::kinds::AUTH_FAILED,
        store::kinds::REFUSED,
        store::kinds::USER_ADDED,
    ] {
        for b in w.bodies(k) {
            all.push_str(&b.to_string());
        }
    }
    let err = bootstrap(&mut w, "bob", "alice").expect_err("wrong");
    all.push_str(&format!("{err} {err:?}"));
    for secret in [
        "alice-unseal-1",
        "bob-unseal-1",
        "Guessed-Keyring-Phrase-1",
        &pass_of("alice"),
    ] {
        assert!(!all.contains(secret), "{secret} in {all}");
    }
    w.custody.ledger_mut().checkpoint().expect("checkpoint");
    for entry in std::fs::read_dir(&w.dir).expect("ledger dir") {
        let bytes = std::fs::read(entry.expect("entry").path()).expect("read");
        for secret in ["alice-unseal-1", "Guessed-Keyring-Phrase-1"] {
            assert!(
                !bytes.windows(secret.len()).any(|x| x == secret.as_bytes()),
                "{secret} on disk"
            );
        }
    }
}

#[test]
fn wrong_keyring_passphrases_are_counted_and_lock_nobody_out() {
    // Guessing is bounded by the daemon's throttle per (name, peer uid)
    // (daemon::throttle); the domain records each failure and never locks the name, so a
    // stranger cannot keep a genesis officer from bootstrapping.
    let mut w = World::genesis_only();
    for _ in 0..10 {
        assert!(matches!(
            bootstrap(&mut w, "alice", "bob"),
            Err(CustodyError::WrongKeyringPassphrase { .. })
        ));
    }
    let failed = w.bodies(store::kinds::AUTH_FAILED);
    assert_eq!(failed.len(), 10);
    assert_eq!(failed[9]["failed_attempts"], 10);
    assert!(failed.iter().all(|b| b.get("locked_until_ms").is_none()));
    bootstrap(&mut w, "alice", "alice").expect("alice bootstraps after a stranger's guesses");
    bootstrap(&mut w, "bob", "bob").expect("bob bootstraps");
    let report = crate::ledger::verify_ledger(w.custody.ledger());
    assert!(report.is_ok(), "{report:?}");
}

#[test]
fn only_an_authenticated_officer_passes_authenticate_officer() {
    let mut w = World::new();
    let c = w.creds("alice");
    let s = w
        .custody
        .authenticate_officer(&c, "seal")
        .expect("an officer");
    assert_eq!(s.user().as_str(), "alice");
    let c = w.creds("oscar");
    assert!(matches!(
        w.custody.authenticate_officer(&c, "seal"),
        Err(CustodyError::NotAnOfficer {
            operation: "seal",
            ..
        })
    ));
    let mut c = w.creds("bob");
    c.passphrase = w.passphrase("carol");
    assert!(matches!(
        w.custody.authenticate_officer(&c, "seal"),
        Err(CustodyError::AuthenticationFailed { .. })
    ));
    let refusals = w.refusals();
    assert!(refusals.ends_with(&[
        "not_an_officer".to_owned(),
        "authentication_failed".to_owned()
    ]));
}
