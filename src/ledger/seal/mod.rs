//! The ledger master secret, the keys derived from it, and the keyring that stores it as
//! passphrase-wrapped Shamir shares.
//!
//! The 32-byte master secret is split with Shamir's scheme over GF(256) (`vsss-rs`), one share per
//! officer. Each share is sealed with AES-256-GCM under a key derived by PBKDF2-HMAC-SHA256 from
//! that officer's passphrase (16-byte random salt per share, iteration count recorded). The
//! keyring header (format, version, ledger id, generation, threshold, KDF parameters, officer
//! names and share ids) is the associated data of every share, and an HMAC-SHA256 keyed from the
//! master secret covers the header and all sealed shares; it is checked after reconstruction, so
//! any edit of the file or a share from another keyring is detected.
//!
//! - `master`: the master secret and the keys derived from it.
//! - `shamir`: splitting and combining the secret, in memory zeroized on drop.
//! - `passphrase`: officers' passphrases; `officer`: officers' names.
//! - `wrap`: one share sealed under its officer's passphrase; the KDF parameters.
//! - `keyring`: the keyring and its sealing; `unseal`: opening it with a quorum or checking one
//!   officer's passphrase.
//! - `file`: the keyring file's format, parser and durable writing.

mod file;
mod keyring;
mod master;
mod officer;
mod passphrase;
mod shamir;
mod unseal;
mod wrap;

pub(crate) use file::sync_dir;
pub use file::{KeyringFormatError, KEYRING_VERSION};
pub use keyring::Keyring;
pub(crate) use master::LedgerKeys;
pub use master::MasterSecret;
pub use officer::OfficerName;
pub use passphrase::{Passphrase, PassphraseError};
pub use wrap::{KdfParams, MIN_ITERATIONS};

#[cfg(test)]
pub(crate) mod tests {
    use std::num::NonZeroU32;

    use data_encoding::HEXLOWER;
    use ring::rand::SystemRandom;
    use zeroize::Zeroizing;

    use super::*;
    use crate::ledger::chain::LedgerId;

    pub(crate) fn pass(s: &str) -> Passphrase {
        Passphrase::for_unseal(Zeroizing::new(s.to_owned())).expect("pass")
    }
    pub(crate) fn name(s: &str) -> OfficerName {
        OfficerName::parse(s).expect("name")
    }
    pub(crate) fn kdf() -> KdfParams {
        KdfParams::insecure_for_tests(NonZeroU32::new(1000).unwrap_or(NonZeroU32::MIN))
    }

    pub(crate) fn three_officers() -> (Keyring, MasterSecret) {
        let rng = SystemRandom::new();
        let master = MasterSecret::generate(&rng).expect("rng");
        let (a, b, c) = (
            pass("alice-pass-1234"),
            pass("bob-pass-5678"),
            pass("carol-pass-90ab"),
        );
        let k = Keyring::seal(
            LedgerId([1; 16]),
            1,
            &master,
            &[(name("alice"), &a), (name("bob"), &b), (name("carol"), &c)],
            2,
            kdf(),
            &rng,
        )
        .expect("seal");
        (k, master)
    }

    #[test]
    fn debug_shows_no_secret_bytes() {
        let rng = SystemRandom::new();
        let master = MasterSecret::generate(&rng).expect("rng");
        let hex = HEXLOWER.encode(master.bytes());
        let keys = LedgerKeys::derive(&master, &LedgerId([2; 16])).expect("derive");
        let p = pass("hunter2-hunter2-SECRET");
        for shown in [format!("{master:?}"), format!("{keys:?}"), format!("{p:?}")] {
            assert!(!shown.contains(&hex), "{shown}");
            assert!(!shown.contains(&keys.sqlcipher_key[2..66]), "{shown}");
            assert!(!shown.contains("SECRET"), "{shown}");
        }
        let (k, _) = three_officers();
        let shown = format!("{k:?}");
        for s in &k.shares {
            assert!(!shown.contains(&HEXLOWER.encode(&s.sealed)));
        }
    }
}
