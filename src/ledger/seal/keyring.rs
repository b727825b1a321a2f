//! The keyring: the master secret split among the officers, one passphrase-wrapped share each,
//! under a header (ledger id, generation, threshold, KDF parameters, officers) that every share
//! is bound to and a MAC keyed from the master secret. Sealing a new keyring is here; opening
//! one is in `unseal`, its file format in `file`.

use std::fmt;

use ring::hmac;
use ring::rand::SystemRandom;

use super::master::{LedgerKeys, MasterSecret};
use super::officer::OfficerName;
use super::passphrase::Passphrase;
use super::shamir;
use super::wrap::{KdfParams, SealedShare};
use crate::ledger::chain::LedgerId;
use crate::ledger::error::LedgerError;

/// A parsed keyring: the header, one sealed share per officer, and the MAC.
#[derive(Clone, PartialEq, Eq)]
pub struct Keyring {
    pub(super) ledger_id: LedgerId,
    pub(super) generation: u64,
    pub(super) threshold: u8,
    pub(super) kdf: KdfParams,
    pub(super) shares: Vec<SealedShare>,
    pub(super) mac: [u8; 32],
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("ledger_id", &self.ledger_id)
            .field("generation", &self.generation)
            .field("threshold", &self.threshold)
            .field("kdf", &self.kdf)
            .field("officers", &self.officers())
            .finish_non_exhaustive()
    }
}

impl Keyring {
    /// Splits `master` among `officers` (in order; share ids 1, 2, ...) with `threshold`, sealing
    /// each share under its officer's passphrase.
    pub fn seal(
        ledger_id: LedgerId,
        generation: u64,
        master: &MasterSecret,
        officers: &[(OfficerName, &Passphrase)],
        threshold: usize,
        kdf: KdfParams,
        rng: &SystemRandom,
    ) -> Result<Self, LedgerError> {
        let n = officers.len();
        if threshold < 2 || threshold > n || n > 255 {
            return Err(LedgerError::InvalidThreshold {
                threshold,
                officers: n,
            });
        }
        for (i, (name, _)) in officers.iter().enumerate() {
            if officers.iter().skip(i + 1).any(|(other, _)| other == name) {
                return Err(LedgerError::DuplicateOfficer {
                    name: name.as_str().to_owned(),
                });
            }
        }
        let threshold_u8 = u8::try_from(threshold).map_err(|_| LedgerError::InvalidThreshold {
            threshold,
            officers: n,
        })?;
        let shares = shamir::split(master, threshold, n, rng)?;
        let mut keyring = Keyring {
            ledger_id,
            generation,
            threshold: threshold_u8,
            kdf,
            shares: Vec::with_capacity(n),
            mac: [0; 32],
        };
        let mut sealed = Vec::with_capacity(n);
        for (i, (name, _)) in officers.iter().enumerate() {
            sealed.push(SealedShare::slot(
                name.clone(),
                u8::try_from(i + 1).unwrap_or(u8::MAX),
            ));
        }
        keyring.shares = sealed;
        let header = keyring.header_bytes();
        for ((slot, (_, pass)), share) in keyring.shares.iter_mut().zip(officers).zip(&shares) {
            if share.id() != slot.share_id {
                return Err(LedgerError::Crypto {
                    operation: "shamir split layout",
                });
            }
            slot.seal(share, &ledger_id, kdf, pass, &header, rng)?;
        }
        let keys = LedgerKeys::derive(master, &ledger_id)?;
        keyring.mac = keyring.compute_mac(&keys.keyring_mac);
        Ok(keyring)
    }

    /// Whether this keyring's MAC is the one `master` gives: the file is unaltered and was
    /// written by a holder of this ledger's master secret.
    pub(crate) fn is_authentic(&self, master: &MasterSecret) -> Result<bool, LedgerError> {
        let keys = LedgerKeys::derive(master, &self.ledger_id)?;
        Ok(hmac::verify(&keys.keyring_mac, &self.mac_input(), &self.mac).is_ok())
    }

    /// The ledger this keyring belongs to.
    pub fn ledger_id(&self) -> LedgerId {
        self.ledger_id
    }

    /// How many officers must take part to unseal.
    pub fn threshold(&self) -> u8 {
        self.threshold
    }

    /// Incremented at every re-share; 1 at genesis.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// PBKDF2 parameters.
    pub fn kdf(&self) -> KdfParams {
        self.kdf
    }

    /// Officer names, in share order.
    pub fn officers(&self) -> Vec<OfficerName> {
        self.shares.iter().map(|s| s.name.clone()).collect()
    }

    /// What the MAC covers: the header, then every sealed share with its salt and nonce.
    fn mac_input(&self) -> Vec<u8> {
        let mut m = self.header_bytes();
        for s in &self.shares {
            m.push(s.share_id);
            m.extend_from_slice(&s.salt);
            m.extend_from_slice(&s.nonce);
            m.extend_from_slice(&u32::try_from(s.sealed.len()).unwrap_or(0).to_be_bytes());
            m.extend_from_slice(&s.sealed);
        }
        m
    }

    fn compute_mac(&self, key: &hmac::Key) -> [u8; 32] {
        let tag = hmac::sign(key, &self.mac_input());
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::ledger::seal::tests::{kdf, name, pass};

    #[test]
    fn threshold_below_two_is_refused() {
        let rng = SystemRandom::new();
        let master = MasterSecret::generate(&rng).expect("rng");
        let a = pass("alice-pass-1234");
        let b = pass("bob-pass-5678");
        for t in [0, 1, 3] {
            assert!(matches!(
                Keyring::seal(
                    LedgerId([0; 16]),
                    1,
                    &master,
                    &[(name("a"), &a), (name("b"), &b)],
                    t,
                    kdf(),
                    &rng
                ),
                Err(LedgerError::InvalidThreshold { .. })
            ));
        }
    }

    #[test]
    fn production_iterations_round_trip() {
        // One keyring at the real cost (600,000 iterations, ~0.3 s per share).
        let rng = SystemRandom::new();
        let master = MasterSecret::generate(&rng).expect("rng");
        let a = pass("alice-pass-1234");
        let b = pass("bob-pass-5678");
        let k = Keyring::seal(
            LedgerId([5; 16]),
            1,
            &master,
            &[(name("alice"), &a), (name("bob"), &b)],
            2,
            KdfParams::production(),
            &rng,
        )
        .expect("seal");
        assert_eq!(k.kdf().iterations(), 600_000);
        assert!(!k.kdf().is_insecure_test_only());
        let parsed = Keyring::parse(&k.to_bytes()).expect("parse");
        let m = parsed
            .unseal(Path::new("k"), &[(name("alice"), a), (name("bob"), b)])
            .expect("unseal");
        assert_eq!(m.bytes(), master.bytes());
    }
}
