//! Keyring generations: which keyring the ledger holds valid, and how a re-share moves from one
//! generation to the next so that a crash at any point leaves exactly one of them valid.
//!
//! A re-share keeps the master secret and writes a new keyring (the next generation: new
//! officers, threshold or passphrases). The old keyring's shares still reconstruct the same
//! secret, so what retires them cannot be the file alone: it is the ledger. The `ledger.genesis`
//! and `ledger.reshare` events record each generation (the `keyring_generations` table), and an
//! unseal is accepted only with the keyring of the newest recorded generation. A re-share runs:
//!
//! 1. the new keyring is written durably beside the current one, as `keyring.json.next`
//!    (staged: not yet valid, since the ledger does not name its generation);
//! 2. the `ledger.reshare` event naming the new generation commits: this is the moment the new
//!    generation becomes the valid one and the old one is refused;
//! 3. the staged keyring is renamed over `keyring.json` and the directory synced.
//!
//! The event is the commit point, rather than the rename, because the ledger is what an
//! auditor reads and what the next unseal consults: whichever file survives a crash, the
//! ledger's record decides, and a copy of an old keyring restored later (from a backup) is
//! refused the same way. Every open settles a re-share a crash interrupted (`settle`): with a
//! staged keyring of the recorded generation (the event committed, the rename did not happen)
//! the staged file is moved into place; otherwise (the event never committed) it is removed.
//! Either way the quorum that unsealed is then held to the recorded generation: the old
//! officers' shares after a committed re-share are [`LedgerError::KeyringSuperseded`], the new
//! ones after an uncommitted one [`LedgerError::KeyringNotCommitted`]. A quorum that holds both
//! generations (a re-share that kept its officers and their passphrases) is let in by the new
//! one.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension};

use super::error::LedgerError;
use super::seal::{sync_dir, Keyring, MasterSecret};
use super::store::{check_not_writable_by_others, KEYRING_FILE};

/// A re-share's new keyring between its staging and its move into place.
pub const STAGED_KEYRING_FILE: &str = "keyring.json.next";

/// The staged keyring a re-share left, if there is one.
pub(crate) fn load_staged(dir: &Path) -> Result<Option<Keyring>, LedgerError> {
    let path = dir.join(STAGED_KEYRING_FILE);
    if !path.exists() {
        return Ok(None);
    }
    check_not_writable_by_others(&path)?;
    Keyring::load(&path).map(Some)
}

/// Writes a re-share's new keyring durably as the staged keyring (step 1).
pub(crate) fn stage(dir: &Path, keyring: &Keyring) -> Result<(), LedgerError> {
    keyring.store(&dir.join(STAGED_KEYRING_FILE))
}

/// Removes a staged keyring whose re-share did not commit.
pub(crate) fn discard_staged(dir: &Path) -> Result<(), LedgerError> {
    let path = dir.join(STAGED_KEYRING_FILE);
    std::fs::remove_file(&path).map_err(LedgerError::io("remove", &path))?;
    sync_dir(dir)
}

/// Moves the staged keyring over the current one (step 3). Failing here, after the commit,
/// leaves the re-share committed; the next open completes the move.
pub(crate) fn install_staged(dir: &Path) -> Result<(), LedgerError> {
    let keyring_path = dir.join(KEYRING_FILE);
    std::fs::rename(dir.join(STAGED_KEYRING_FILE), &keyring_path)
        .map_err(LedgerError::io("rename into place", &keyring_path))?;
    sync_dir(dir)
}

/// The newest keyring generation the ledger records (`None`: no genesis).
pub(crate) fn recorded_generation(
    conn: &Connection,
    db_path: &Path,
) -> Result<Option<u64>, LedgerError> {
    let newest: Option<i64> = conn
        .query_row(
            "SELECT generation FROM keyring_generations ORDER BY generation DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(LedgerError::sql(db_path, "read keyring generation"))?;
    Ok(newest.map(|g| u64::try_from(g).unwrap_or(0)))
}

/// Settles an interrupted re-share against the generation the ledger records, and returns the
/// keyring of that generation, now in place as `keyring.json`. `current` is `keyring.json`,
/// `staged` the staged keyring if any; `master` (reconstructed from either) authenticates the
/// staged keyring before it is moved into place. A staged keyring of another generation is
/// removed; one of the recorded generation that does not authenticate is kept and refused
/// ([`LedgerError::KeyringTampered`]). Otherwise, `keyring.json` not of the recorded
/// generation: [`LedgerError::KeyringSuperseded`] or [`LedgerError::KeyringNotCommitted`].
pub(crate) fn settle(
    dir: &Path,
    current: Keyring,
    staged: Option<Keyring>,
    master: &MasterSecret,
    recorded: u64,
) -> Result<Keyring, LedgerError> {
    if let Some(staged) = staged {
        if staged.generation() != recorded {
            // Its re-share never committed: the file is void.
            discard_staged(dir)?;
        } else if staged.ledger_id() == current.ledger_id() && staged.is_authentic(master)? {
            install_staged(dir)?;
            return Ok(staged);
        } else {
            // Of the recorded generation, yet not written with this ledger's secret: kept as
            // it is, for whoever investigates, and refused.
            return Err(LedgerError::KeyringTampered {
                path: dir.join(STAGED_KEYRING_FILE),
            });
        }
    }
    check_generation(&dir.join(KEYRING_FILE), current.generation(), recorded)?;
    Ok(current)
}

/// Refuses a keyring (file `path`) of `generation` unless it is the `recorded` one.
pub(crate) fn check_generation(
    path: &Path,
    generation: u64,
    recorded: u64,
) -> Result<(), LedgerError> {
    let path = path.to_path_buf();
    if generation < recorded {
        return Err(LedgerError::KeyringSuperseded {
            path,
            generation,
            current: recorded,
        });
    }
    if generation > recorded {
        return Err(LedgerError::KeyringNotCommitted {
            path,
            generation,
            current: recorded,
        });
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::ledger::fault::{self, Step};
    use crate::ledger::seal::tests::{kdf, name, pass};
    use crate::ledger::seal::{OfficerName, Passphrase};
    use crate::ledger::store::{Genesis, Ledger};
    use crate::ledger::verify::verify_ledger;
    use crate::ledger::Projections;

    /// Generation 1: alice and bob.
    fn old_quorum() -> Vec<(OfficerName, Passphrase)> {
        vec![
            (name("alice"), pass("alice-old-pass-1")),
            (name("bob"), pass("bob-old-pass-1")),
        ]
    }
    /// Generation 2: alice (a new passphrase) and carol; bob removed.
    pub(crate) fn new_quorum() -> Vec<(OfficerName, Passphrase)> {
        vec![
            (name("alice"), pass("alice-new-pass-2")),
            (name("carol"), pass("carol-new-pass-2")),
        ]
    }
    fn open(dir: &Path, quorum: &[(OfficerName, Passphrase)]) -> Result<Ledger, LedgerError> {
        Ledger::open(dir, quorum, Projections::ledger_only())
    }
    fn generation_on_disk(dir: &Path) -> u64 {
        Keyring::load(&dir.join(KEYRING_FILE))
            .expect("keyring")
            .generation()
    }

    /// A new ledger of generation 1.
    fn create(dir: &Path) -> Ledger {
        let genesis = Genesis {
            officers: &old_quorum(),
            threshold: 2,
            kdf: kdf(),
        };
        Ledger::create(dir, &genesis, Projections::ledger_only()).expect("create")
    }

    /// A ledger of generation 1 whose re-share to generation 2 stopped at `crash` (`None`: it
    /// completed).
    fn reshared(dir: &Path, crash: Option<Step>) {
        let mut l = create(dir);
        if let Some(step) = crash {
            fault::arm(step);
        }
        let r = l.reshare(
            &old_quorum(),
            &[name("alice"), name("carol")],
            &new_quorum(),
            2,
        );
        match crash {
            None => assert!(r.is_ok(), "{r:?}"),
            Some(_) => match r {
                Err(LedgerError::Io { operation, .. }) => assert_eq!(operation, "crash injected"),
                other => panic!("expected the injected crash, got {other:?}"),
            },
        }
    }

    /// A ledger whose re-share crashed at `step`, before its keyring was moved into place.
    pub(crate) fn crashed_at(step: Step) -> (tempfile::TempDir, std::path::PathBuf) {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("l");
        reshared(&dir, Some(step));
        assert!(dir.join(STAGED_KEYRING_FILE).exists());
        assert_eq!(generation_on_disk(&dir), 1, "the rename did not happen");
        (tmp, dir)
    }

    #[test]
    fn a_crash_before_the_event_commits_keeps_the_old_generation() {
        for old_first in [true, false] {
            let (_tmp, dir) = crashed_at(Step::ReshareStaged);
            if old_first {
                let l = open(&dir, &old_quorum()).expect("the old generation still unseals");
                assert_eq!(l.keyring().generation(), 1);
                assert!(
                    !dir.join(STAGED_KEYRING_FILE).exists(),
                    "staged keyring kept"
                );
                verify_ledger(&l).expect("verify");
                drop(l);
            }
            // The new officers' keyring was never committed: refused, and removed.
            match open(&dir, &new_quorum()) {
                Err(LedgerError::KeyringNotCommitted {
                    generation: 2,
                    current: 1,
                    ..
                }) => assert!(
                    !old_first,
                    "the staged keyring was removed at the first open"
                ),
                Err(LedgerError::UnknownOfficer { name }) => {
                    assert!(old_first);
                    assert_eq!(name, "carol");
                }
                other => panic!("unexpected {other:?}"),
            }
            assert!(!dir.join(STAGED_KEYRING_FILE).exists());
            let l = open(&dir, &old_quorum()).expect("the old generation unseals");
            assert_eq!(l.keyring().generation(), 1);
            assert_eq!(generation_on_disk(&dir), 1);
            let head = l.head().expect("head").expect("some");
            assert_eq!(head.kind.as_str(), "ledger.unseal_failed");
        }
    }

    #[test]
    fn a_crash_after_the_event_commits_retires_the_old_generation() {
        for old_first in [true, false] {
            let (_tmp, dir) = crashed_at(Step::ReshareCommitted);
            if old_first {
                // The old quorum reconstructs the secret, but the ledger names generation 2.
                match open(&dir, &old_quorum()) {
                    Err(e @ LedgerError::KeyringSuperseded { .. }) => {
                        assert!(e.to_string().contains("generation 1"), "{e}");
                        assert!(e.to_string().contains("generation 2"), "{e}");
                    }
                    other => panic!("unexpected {other:?}"),
                }
                assert_eq!(generation_on_disk(&dir), 2, "the open moved it into place");
            }
            let l = open(&dir, &new_quorum()).expect("the new generation unseals");
            assert_eq!(l.keyring().generation(), 2);
            assert_eq!(generation_on_disk(&dir), 2);
            assert!(!dir.join(STAGED_KEYRING_FILE).exists());
            verify_ledger(&l).expect("verify");
            drop(l);
            // bob is gone, and alice's old passphrase no longer opens her share.
            assert!(matches!(
                open(&dir, &old_quorum()),
                Err(LedgerError::UnknownOfficer { .. })
            ));
            let alice_old_carol_new = vec![
                (name("alice"), pass("alice-old-pass-1")),
                (name("carol"), pass("carol-new-pass-2")),
            ];
            assert!(matches!(
                open(&dir, &alice_old_carol_new),
                Err(LedgerError::WrongPassphrase { .. })
            ));
        }
    }

    #[test]
    fn a_crash_after_the_event_commits_lets_officers_kept_by_the_reshare_in() {
        // A re-share that keeps alice and bob and their passphrases (fresh shares only).
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("l");
        let mut l = create(&dir);
        fault::arm(Step::ReshareCommitted);
        assert!(l
            .reshare(&old_quorum(), &[name("alice"), name("bob")], &[], 2)
            .is_err());
        drop(l);
        assert_eq!(generation_on_disk(&dir), 1);
        let l = open(&dir, &old_quorum()).expect("the same officers hold generation 2");
        assert_eq!(l.keyring().generation(), 2);
        assert_eq!(generation_on_disk(&dir), 2);
        assert!(!dir.join(STAGED_KEYRING_FILE).exists());
        assert_ne!(
            l.head().expect("head").expect("some").kind.as_str(),
            "ledger.unseal_failed"
        );
    }

    #[test]
    fn a_restored_copy_of_a_superseded_keyring_is_refused() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("l");
        drop(create(&dir));
        let old = std::fs::read(dir.join(KEYRING_FILE)).expect("read");
        let mut l = open(&dir, &old_quorum()).expect("open");
        l.reshare(
            &old_quorum(),
            &[name("alice"), name("carol")],
            &new_quorum(),
            2,
        )
        .expect("reshare");
        drop(l);
        assert!(!dir.join(STAGED_KEYRING_FILE).exists());
        // The old keyring put back (a backup): its shares still reconstruct the secret, but
        // the ledger records generation 2.
        let new = std::fs::read(dir.join(KEYRING_FILE)).expect("read");
        std::fs::write(dir.join(KEYRING_FILE), &old).expect("restore");
        assert!(matches!(
            open(&dir, &old_quorum()),
            Err(LedgerError::KeyringSuperseded {
                generation: 1,
                current: 2,
                ..
            })
        ));
        // The same copy staged as if it were a re-share's next keyring is discarded, too.
        std::fs::write(dir.join(KEYRING_FILE), &new).expect("put back");
        std::fs::write(dir.join(STAGED_KEYRING_FILE), &old).expect("stage the old one");
        let l = open(&dir, &new_quorum()).expect("the new generation unseals");
        assert_eq!(l.keyring().generation(), 2);
        assert!(!dir.join(STAGED_KEYRING_FILE).exists());
        assert_eq!(generation_on_disk(&dir), 2);
    }

    #[test]
    fn a_staged_keyring_that_does_not_authenticate_is_kept_and_refused() {
        let (_tmp, dir) = crashed_at(Step::ReshareCommitted);
        let staged = dir.join(STAGED_KEYRING_FILE);
        let text = std::fs::read_to_string(&staged).expect("read");
        let mac = text
            .split("\"mac\": \"")
            .nth(1)
            .and_then(|rest| rest.get(..64))
            .expect("mac")
            .to_owned();
        let forged = text.replace(&mac, &"0".repeat(64));
        std::fs::write(&staged, &forged).expect("forge");
        for quorum in [old_quorum(), new_quorum()] {
            match open(&dir, &quorum) {
                Err(LedgerError::KeyringTampered { path }) => assert_eq!(path, staged),
                other => panic!("unexpected {other:?}"),
            }
            assert_eq!(std::fs::read_to_string(&staged).expect("kept"), forged);
            assert_eq!(generation_on_disk(&dir), 1);
        }
    }

    #[test]
    fn a_completed_reshare_leaves_only_the_new_generation() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("l");
        reshared(&dir, None);
        assert!(!dir.join(STAGED_KEYRING_FILE).exists());
        assert_eq!(generation_on_disk(&dir), 2);
        assert!(open(&dir, &old_quorum()).is_err());
        let l = open(&dir, &new_quorum()).expect("open");
        assert_eq!(l.keyring().generation(), 2);
    }
}
