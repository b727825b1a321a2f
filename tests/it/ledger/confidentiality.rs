//! Confidentiality at rest: account ids, e-mail addresses, kinds and passphrases never appear in
//! the database, its WAL, or the keyring.

use std::path::Path;

use mfa_custody::ledger::{Actor, Kind, Ledger, NewEvent, Projections};
use serde_json::json;

use crate::support::ledger::{create, officers};

const SECRETS: &[&str] = &[
    "731945608217",
    "root-mailbox@corp-example.com",
    "account.enrolled",
    "CHG-424242",
    "alice-Passphrase-1",
    "bob-Passphrase-1",
];

fn assert_absent(dir: &Path, when: &str) {
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        let bytes = std::fs::read(&path).expect("read");
        checked += 1;
        for secret in SECRETS {
            for needle in [
                secret.as_bytes().to_vec(),
                secret.encode_utf16().flat_map(u16::to_le_bytes).collect(),
            ] {
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle.as_slice()),
                    "{when}: {secret:?} found in {}",
                    path.display()
                );
            }
        }
    }
    assert!(checked >= 2, "{when}: expected files to check");
}

#[test]
fn no_plaintext_in_database_wal_or_keyring() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("l");
    let mut ledger = create(&dir);
    for i in 0..200 {
        let body = json!({"account": "731945608217", "root_email": "root-mailbox@corp-example.com",
                          "ticket": "CHG-424242", "n": i});
        ledger
            .append(
                NewEvent::new(
                    Actor::parse("alice").expect("actor"),
                    Kind::parse("account.enrolled").expect("kind"),
                    &body,
                )
                .expect("event"),
            )
            .expect("append");
    }
    // While open, the newest pages live in the WAL.
    assert!(
        dir.join("ledger.db-wal").exists(),
        "WAL file expected while open"
    );
    assert_absent(&dir, "while open");
    drop(ledger);
    assert_absent(&dir, "after close");
    // File modes.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("ledger.db")), 0o600);
    assert_eq!(mode(&dir.join("keyring.json")), 0o600);
}

#[test]
fn group_writable_directory_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("l");
    drop(create(&dir));
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o770)).expect("chmod");
    let err = Ledger::open(&dir, &officers(), Projections::ledger_only()).expect_err("opened");
    assert!(err.to_string().contains("0770"), "{err}");
}
