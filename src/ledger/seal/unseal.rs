//! Opening a keyring: with a quorum of officers' passphrases to reconstruct the master secret,
//! or with one officer's passphrase alone to prove it, without reconstructing anything.

use std::path::Path;

use super::keyring::Keyring;
use super::master::MasterSecret;
use super::officer::OfficerName;
use super::passphrase::Passphrase;
use super::shamir::{self, Share};
use super::wrap::{derive_for_nothing, SealedShare};
use crate::ledger::error::LedgerError;

impl Keyring {
    /// Reconstructs the master secret from the passphrases of at least `threshold` officers,
    /// then checks the keyring MAC. `path` only names the file in errors.
    pub fn unseal(
        &self,
        path: &Path,
        given: &[(OfficerName, Passphrase)],
    ) -> Result<MasterSecret, LedgerError> {
        for (i, (name, _)) in given.iter().enumerate() {
            if given.iter().skip(i + 1).any(|(other, _)| other == name) {
                return Err(LedgerError::DuplicateOfficer {
                    name: name.as_str().to_owned(),
                });
            }
            if !self.shares.iter().any(|s| &s.name == name) {
                return Err(LedgerError::UnknownOfficer {
                    name: name.as_str().to_owned(),
                });
            }
        }
        if given.len() < usize::from(self.threshold) {
            return Err(LedgerError::NotEnoughOfficers {
                given: given.len(),
                threshold: self.threshold,
            });
        }
        let header = self.header_bytes();
        // Allocated at its full size: a growing Vec would leave copies of shares behind.
        let mut opened: Vec<Share> = Vec::with_capacity(given.len());
        let mut wrong = Vec::new();
        for (name, pass) in given {
            let Some(slot) = self.shares.iter().find(|s| &s.name == name) else {
                continue;
            };
            match slot.open(&self.ledger_id, self.kdf, pass, &header)? {
                Some(share) => opened.push(share),
                None => wrong.push(name.as_str().to_owned()),
            }
        }
        if !wrong.is_empty() {
            return Err(LedgerError::WrongPassphrase { officers: wrong });
        }
        let master = shamir::combine(&opened).ok_or_else(|| LedgerError::KeyringTampered {
            path: path.to_path_buf(),
        })?;
        drop(opened);
        if !self.is_authentic(&master)? {
            return Err(LedgerError::KeyringTampered {
                path: path.to_path_buf(),
            });
        }
        Ok(master)
    }

    /// Checks one officer's passphrase by opening their own share, which proves the passphrase
    /// without a quorum: nothing is reconstructed, and the opened share is zeroized before this
    /// returns.
    ///
    /// The share's associated data is this keyring's header, so a passphrase that opens it is
    /// this officer's for this keyring (the keyring MAC itself needs the master secret and is
    /// checked at unseal, not here). The cost is one key derivation whatever the name: a name
    /// that is not in the keyring is answered [`LedgerError::UnknownOfficer`] only after the
    /// same derivation, so timing tells nothing beyond the header's list of officers.
    /// A wrong passphrase is [`LedgerError::WrongPassphrase`] naming the officer.
    pub fn check_officer_passphrase(
        &self,
        officer: &OfficerName,
        pass: &Passphrase,
    ) -> Result<(), LedgerError> {
        // Select the slot without stopping at the first match, then derive and open once.
        let mut slot: Option<&SealedShare> = None;
        for s in &self.shares {
            if s.name == *officer {
                slot = Some(s);
            }
        }
        let Some(slot) = slot else {
            // The same work as for a real share.
            derive_for_nothing(&self.ledger_id, self.kdf, pass)?;
            return Err(LedgerError::UnknownOfficer {
                name: officer.as_str().to_owned(),
            });
        };
        // The opened share, when it opened, is zeroized as it drops here.
        match slot.open(&self.ledger_id, self.kdf, pass, &self.header_bytes())? {
            Some(_) => Ok(()),
            None => Err(LedgerError::WrongPassphrase {
                officers: vec![officer.as_str().to_owned()],
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use ring::rand::SystemRandom;

    use super::*;
    use crate::ledger::chain::LedgerId;
    use crate::ledger::seal::tests::{name, pass, three_officers};
    use crate::ledger::seal::KdfParams;
    use std::num::NonZeroU32;

    #[test]
    fn keyring_round_trip_and_threshold() {
        let (k, master) = three_officers();
        let parsed = Keyring::parse(&k.to_bytes()).expect("parse");
        assert_eq!(parsed, k);
        let p = Path::new("keyring.json");
        // One share is not enough.
        assert!(matches!(
            parsed.unseal(p, &[(name("alice"), pass("alice-pass-1234"))]),
            Err(LedgerError::NotEnoughOfficers {
                given: 1,
                threshold: 2
            })
        ));
        // Any two succeed.
        for (x, px, y, py) in [
            ("alice", "alice-pass-1234", "bob", "bob-pass-5678"),
            ("carol", "carol-pass-90ab", "alice", "alice-pass-1234"),
        ] {
            let m = parsed
                .unseal(p, &[(name(x), pass(px)), (name(y), pass(py))])
                .expect("unseal");
            assert_eq!(m.bytes(), master.bytes());
        }
        // All three succeed too.
        assert!(parsed
            .unseal(
                p,
                &[
                    (name("alice"), pass("alice-pass-1234")),
                    (name("bob"), pass("bob-pass-5678")),
                    (name("carol"), pass("carol-pass-90ab")),
                ]
            )
            .is_ok());
        // A wrong passphrase is named.
        match parsed.unseal(
            p,
            &[
                (name("alice"), pass("alice-pass-1234")),
                (name("bob"), pass("nope-nope-nope")),
            ],
        ) {
            Err(LedgerError::WrongPassphrase { officers }) => {
                assert_eq!(officers, vec!["bob".to_owned()])
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            parsed.unseal(p, &[(name("alice"), pass("x")), (name("alice"), pass("x"))]),
            Err(LedgerError::DuplicateOfficer { .. })
        ));
        assert!(matches!(
            parsed.unseal(
                p,
                &[(name("alice"), pass("x")), (name("mallory"), pass("x"))]
            ),
            Err(LedgerError::UnknownOfficer { .. })
        ));
    }

    #[test]
    fn one_officers_passphrase_is_checked_against_their_own_share() {
        let (k, _) = three_officers();
        assert!(k
            .check_officer_passphrase(&name("alice"), &pass("alice-pass-1234"))
            .is_ok());
        assert!(k
            .check_officer_passphrase(&name("carol"), &pass("carol-pass-90ab"))
            .is_ok());
        // Another officer's passphrase does not open alice's share.
        for wrong in ["bob-pass-5678", "alice-pass-1235", ""] {
            match k.check_officer_passphrase(&name("alice"), &pass(wrong)) {
                Err(LedgerError::WrongPassphrase { officers }) => {
                    assert_eq!(officers, vec!["alice".to_owned()])
                }
                other => panic!("{wrong:?}: unexpected {other:?}"),
            }
        }
        assert!(matches!(
            k.check_officer_passphrase(&name("mallory"), &pass("alice-pass-1234")),
            Err(LedgerError::UnknownOfficer { .. })
        ));
        // The share is bound to this keyring's header: an edited header refuses it.
        let text = String::from_utf8(k.to_bytes()).expect("utf8");
        let edited = Keyring::parse(
            text.replace("\"generation\": 1", "\"generation\": 2")
                .as_bytes(),
        )
        .expect("still parses");
        assert!(matches!(
            edited.check_officer_passphrase(&name("alice"), &pass("alice-pass-1234")),
            Err(LedgerError::WrongPassphrase { .. })
        ));
        // Nothing of the passphrase reaches the error.
        let e = k
            .check_officer_passphrase(&name("alice"), &pass("Hunter2-SECRET-x"))
            .expect_err("wrong");
        assert!(!format!("{e} {e:?}").contains("SECRET"));
    }

    #[test]
    fn checking_an_unknown_officer_costs_one_derivation_too() {
        // With a deliberately slow KDF, a name outside the keyring costs a derivation like a
        // real one: an early return would be thousands of times faster, so a loose bound
        // (a quarter) is enough and stays reliable on a busy machine.
        let rng = SystemRandom::new();
        let master = MasterSecret::generate(&rng).expect("rng");
        let (a, b) = (pass("alice-pass-1234"), pass("bob-pass-5678"));
        let slow = KdfParams::insecure_for_tests(NonZeroU32::new(100_000).expect("nonzero"));
        let k = Keyring::seal(
            LedgerId([3; 16]),
            1,
            &master,
            &[(name("alice"), &a), (name("bob"), &b)],
            2,
            slow,
            &rng,
        )
        .expect("seal");
        let time = |n: &str| {
            let mut best = std::time::Duration::MAX;
            for _ in 0..3 {
                let t = std::time::Instant::now();
                let _ = k.check_officer_passphrase(&name(n), &pass("not-the-passphrase"));
                best = best.min(t.elapsed());
            }
            best
        };
        let (known, unknown) = (time("alice"), time("mallory"));
        assert!(unknown * 4 > known, "known {known:?}, unknown {unknown:?}");
    }
}
