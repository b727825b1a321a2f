//! The ledger master secret and the keys derived from it with HKDF-SHA256: the SQLCipher key,
//! the checkpoint signing key, the keyring MAC key, and the root of the keys the layers above
//! derive for their own purposes.

use std::fmt;

use data_encoding::HEXLOWER;
use ring::rand::{SecureRandom, SystemRandom};
use ring::{hkdf, hmac};
use zeroize::{ZeroizeOnDrop, Zeroizing};

use crate::ledger::chain::{CheckpointSigner, LedgerId};
use crate::ledger::error::LedgerError;

/// The 32-byte ledger master secret. Never stored whole; zeroized on drop. Its bytes live on the
/// heap, so moving it copies a pointer, never the secret.
pub struct MasterSecret(Box<Zeroizing<[u8; 32]>>);

/// The boxed bytes are cleared (`Zeroizing`) when the box drops.
impl ZeroizeOnDrop for MasterSecret {}

impl MasterSecret {
    /// A fresh random secret.
    pub fn generate(rng: &SystemRandom) -> Result<Self, LedgerError> {
        let mut s = Self::zeroed();
        rng.fill(s.bytes_mut()).map_err(|_| LedgerError::Crypto {
            operation: "generate master secret",
        })?;
        Ok(s)
    }

    /// All zeros, to be filled in place.
    pub(super) fn zeroed() -> Self {
        Self(Box::new(Zeroizing::new([0u8; 32])))
    }

    /// The secret's bytes.
    pub(super) fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The secret's bytes, to fill in place.
    pub(super) fn bytes_mut(&mut self) -> &mut [u8; 32] {
        &mut self.0
    }
}

impl fmt::Debug for MasterSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterSecret(<redacted>)")
    }
}

/// Keys derived from the master secret with HKDF-SHA256 (salt: a fixed tag and the ledger id).
pub(crate) struct LedgerKeys {
    /// `x'<64 hex>'`, the raw SQLCipher key as the `PRAGMA key` value.
    pub(crate) sqlcipher_key: Zeroizing<String>,
    /// Signs checkpoints.
    pub(crate) signer: CheckpointSigner,
    /// Authenticates the keyring file.
    pub(crate) keyring_mac: hmac::Key,
    /// Root of the keys the layers above derive for their own data (see
    /// [`crate::ledger::Ledger::derive_key`]).
    pub(crate) purpose_root: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for LedgerKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LedgerKeys")
            .field("sqlcipher_key", &"<redacted>")
            .field("signer", &self.signer)
            .finish_non_exhaustive()
    }
}

struct Len(usize);
impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

fn hkdf32(
    master: &MasterSecret,
    id: &LedgerId,
    label: &[u8],
) -> Result<Zeroizing<[u8; 32]>, LedgerError> {
    let mut salt_bytes = b"mfa-custody/ledger/hkdf/v1\0".to_vec();
    salt_bytes.extend_from_slice(&id.0);
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &salt_bytes).extract(master.bytes());
    expand32(&prk, label)
}

/// 32 bytes of HKDF-SHA256 output for `label`.
fn expand32(prk: &hkdf::Prk, label: &[u8]) -> Result<Zeroizing<[u8; 32]>, LedgerError> {
    let info = [label];
    let okm = prk
        .expand(&info, Len(32))
        .map_err(|_| LedgerError::Crypto {
            operation: "hkdf expand",
        })?;
    let mut out = Zeroizing::new([0u8; 32]);
    okm.fill(out.as_mut()).map_err(|_| LedgerError::Crypto {
        operation: "hkdf fill",
    })?;
    Ok(out)
}

impl LedgerKeys {
    pub(crate) fn derive(master: &MasterSecret, id: &LedgerId) -> Result<Self, LedgerError> {
        let db = hkdf32(master, id, b"sqlcipher-key")?;
        let mut hex = Zeroizing::new(String::with_capacity(67));
        hex.push_str("x'");
        hex.push_str(&HEXLOWER.encode(db.as_ref()));
        hex.push('\'');
        let seed = hkdf32(master, id, b"checkpoint-ed25519-seed")?;
        let signer = CheckpointSigner::from_seed(&seed).ok_or(LedgerError::Crypto {
            operation: "ed25519 key from seed",
        })?;
        let mac = hkdf32(master, id, b"keyring-mac")?;
        let purpose_root = hkdf32(master, id, b"purpose-keys")?;
        Ok(Self {
            sqlcipher_key: hex,
            signer,
            keyring_mac: hmac::Key::new(hmac::HMAC_SHA256, mac.as_ref()),
            purpose_root,
        })
    }

    /// A 32-byte key for one named purpose, HKDF-SHA256-derived from the purpose root.
    pub(crate) fn purpose_key(&self, purpose: &str) -> Result<Zeroizing<[u8; 32]>, LedgerError> {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"mfa-custody/ledger/purpose/v1")
            .extract(self.purpose_root.as_ref());
        expand32(&prk, purpose.as_bytes())
    }
}
