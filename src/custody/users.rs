//! Users' credentials: the PBKDF2-HMAC-SHA256 passphrase verifier, the officer's personal TOTP
//! second factor (checked with `totp-rs`), and how both are sealed ([`super::sealed`], under a key
//! the ledger derives for this purpose) before they enter an event body.

use std::num::NonZeroU32;

use ring::pbkdf2;
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::error::CustodyError;
use super::ids::UserName;
use super::policy::PassphraseKdf;
use super::secret::{FactorCode, FactorSeed, UserPassphrase};

/// The ledger purpose label of the key that seals users' credentials.
pub const CREDENTIAL_KEY_PURPOSE: &str = "custody/user-credentials/v1";

const SALT_LEN: usize = 16;
const HASH_LEN: usize = 32;

/// A sealed credential as stored: nonce and AES-256-GCM ciphertext (Base64), bound to the user
/// name as associated data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedCredential {
    /// Base64 of nonce ‖ ciphertext ‖ tag.
    pub sealed: String,
}

/// The plaintext inside a [`SealedCredential`]. Zeroized on drop.
pub(crate) struct Credential {
    pub(crate) salt: [u8; SALT_LEN],
    pub(crate) iterations: NonZeroU32,
    pub(crate) hash: Zeroizing<[u8; HASH_LEN]>,
    pub(crate) factor: Option<FactorSeed>,
}

impl Credential {
    /// A new verifier for `passphrase` (and the officer's factor seed, if any).
    pub(crate) fn new(
        passphrase: &UserPassphrase,
        kdf: PassphraseKdf,
        factor: Option<FactorSeed>,
    ) -> Result<Self, CustodyError> {
        let mut salt = [0u8; SALT_LEN];
        SystemRandom::new()
            .fill(&mut salt)
            .map_err(|_| CustodyError::Crypto {
                operation: "generate salt",
            })?;
        let mut hash = Zeroizing::new([0u8; HASH_LEN]);
        pbkdf2::derive(
            pbkdf2::PBKDF2_HMAC_SHA256,
            kdf.iterations(),
            &salt,
            passphrase.as_bytes(),
            hash.as_mut(),
        );
        Ok(Self {
            salt,
            iterations: kdf.iterations(),
            hash,
            factor,
        })
    }

    /// Constant-time check of a passphrase.
    pub(crate) fn verify_passphrase(&self, passphrase: &UserPassphrase) -> bool {
        pbkdf2::verify(
            pbkdf2::PBKDF2_HMAC_SHA256,
            self.iterations,
            &self.salt,
            passphrase.as_bytes(),
            self.hash.as_ref(),
        )
        .is_ok()
    }

    /// The time step `code` matches (the current one or the one before, for typing delay),
    /// checked with `totp-rs`.
    pub(crate) fn factor_step(&self, code: &FactorCode, now_ms: i64) -> Option<u64> {
        let seed = self.factor.as_ref()?;
        let totp =
            totp_rs::TOTP::new(totp_rs::Algorithm::SHA1, 6, 0, 30, seed.expose().to_vec()).ok()?;
        let now = u64::try_from(now_ms / 1000).ok()?;
        let current = now / 30;
        // Newest first, so a code for the current step is never mistaken for an older one.
        [current, current.saturating_sub(1)]
            .into_iter()
            .find(|step| {
                let expected = Zeroizing::new(totp.generate(step * 30));
                code.matches(&expected)
            })
    }

    fn to_plain(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(96));
        out.extend_from_slice(&self.salt);
        out.extend_from_slice(&self.iterations.get().to_be_bytes());
        out.extend_from_slice(self.hash.as_ref());
        if let Some(f) = &self.factor {
            out.extend_from_slice(f.expose());
        }
        out
    }

    fn from_plain(p: &[u8]) -> Option<Self> {
        let salt: [u8; SALT_LEN] = p.get(..SALT_LEN)?.try_into().ok()?;
        let it: [u8; 4] = p.get(SALT_LEN..SALT_LEN + 4)?.try_into().ok()?;
        let iterations = NonZeroU32::new(u32::from_be_bytes(it))?;
        let mut hash = Zeroizing::new([0u8; HASH_LEN]);
        hash.copy_from_slice(p.get(SALT_LEN + 4..SALT_LEN + 4 + HASH_LEN)?);
        let rest = p.get(SALT_LEN + 4 + HASH_LEN..)?;
        let factor = (!rest.is_empty()).then(|| FactorSeed(Zeroizing::new(rest.to_vec())));
        Some(Self {
            salt,
            iterations,
            hash,
            factor,
        })
    }

    /// Seals for storage under `key`, bound to `user`.
    pub(crate) fn seal(
        &self,
        key: &[u8; 32],
        user: &UserName,
    ) -> Result<SealedCredential, CustodyError> {
        let sealed = super::sealed::seal(
            key,
            user.as_str().as_bytes(),
            self.to_plain(),
            "seal credential",
        )?;
        Ok(SealedCredential { sealed })
    }

    /// Opens a sealed credential.
    pub(crate) fn open(
        sealed: &SealedCredential,
        key: &[u8; 32],
        user: &UserName,
    ) -> Result<Self, CustodyError> {
        let corrupt = || CustodyError::CorruptRecord {
            entity: "credential",
            id: user.to_string(),
            reason: "does not decrypt".into(),
        };
        let plain = super::sealed::open(key, user.as_str().as_bytes(), &sealed.sealed)
            .ok_or_else(corrupt)?;
        Self::from_plain(&plain).ok_or_else(corrupt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pass(s: &str) -> UserPassphrase {
        UserPassphrase::offered(Zeroizing::new(s.to_owned())).expect("pass")
    }

    #[test]
    fn verifier_and_factor_round_trip_sealed() {
        let kdf = PassphraseKdf::insecure_for_tests(NonZeroU32::new(10).unwrap_or(NonZeroU32::MIN));
        let seed = FactorSeed(Zeroizing::new(b"12345678901234567890".to_vec()));
        let c = Credential::new(&pass("alice passphrase 1"), kdf, Some(seed)).expect("new");
        let key = [7u8; 32];
        let user = UserName::parse("alice").expect("name");
        let s = c.seal(&key, &user).expect("seal");
        assert!(!s.sealed.contains("MTIzNDU2Nzg5MDEyMzQ1Njc4OTA"));
        let o = Credential::open(&s, &key, &user).expect("open");
        assert!(o.verify_passphrase(&pass("alice passphrase 1")));
        assert!(!o.verify_passphrase(&pass("alice passphrase 2")));
        // RFC 6238 SHA-1 vector: T = 59 s gives 287082 (6 digits).
        let code = FactorCode::parse("287082").expect("code");
        assert_eq!(o.factor_step(&code, 59_000), Some(1));
        assert_eq!(o.factor_step(&code, 89_000), Some(1), "one step of delay");
        assert_eq!(o.factor_step(&code, 120_000), None, "two steps late");
        let bob = UserName::parse("bob").expect("name");
        assert!(
            Credential::open(&s, &key, &bob).is_err(),
            "bound to the user"
        );
        assert!(
            Credential::open(&s, &[8u8; 32], &user).is_err(),
            "wrong key"
        );
    }
}
