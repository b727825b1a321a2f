//! Passphrase wrapping of one officer's share: an AES-256-GCM key derived by
//! PBKDF2-HMAC-SHA256 from the officer's passphrase (salted with a tag, the ledger id and a
//! 16-byte random salt per share), the keyring header and the share id as associated data.

use std::num::NonZeroU32;

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use ring::pbkdf2;
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use super::officer::OfficerName;
use super::passphrase::Passphrase;
use super::shamir::{Share, SHARE_LEN};
use crate::ledger::chain::LedgerId;
use crate::ledger::error::LedgerError;

/// The production PBKDF2-HMAC-SHA256 iteration count, and the minimum for any keyring not
/// explicitly marked as a test keyring.
pub const MIN_ITERATIONS: u32 = 600_000;
/// Bytes of a sealed share: the share and the GCM tag.
pub(super) const SEALED_LEN: usize = SHARE_LEN + 16;

/// PBKDF2 parameters of a keyring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfParams {
    pub(super) iterations: NonZeroU32,
    pub(super) insecure_test_only: bool,
}

impl KdfParams {
    /// The production setting: 600,000 iterations.
    pub fn production() -> Self {
        Self {
            iterations: NonZeroU32::MIN.saturating_add(MIN_ITERATIONS - 1),
            insecure_test_only: false,
        }
    }

    /// A low iteration count for tests and demonstrations only. The keyring records the
    /// `insecure_test_only` marker, and `custody` warns whenever it opens such a keyring.
    pub fn insecure_for_tests(iterations: NonZeroU32) -> Self {
        Self {
            iterations,
            insecure_test_only: iterations.get() < MIN_ITERATIONS,
        }
    }

    /// The iteration count.
    pub fn iterations(&self) -> u32 {
        self.iterations.get()
    }

    /// Whether the keyring is marked as a test keyring.
    pub fn is_insecure_test_only(&self) -> bool {
        self.insecure_test_only
    }
}

/// One officer's sealed share, as the keyring file holds it.
#[derive(Clone, PartialEq, Eq)]
pub(super) struct SealedShare {
    pub(super) name: OfficerName,
    pub(super) share_id: u8,
    pub(super) salt: [u8; 16],
    pub(super) nonce: [u8; 12],
    pub(super) sealed: Vec<u8>,
}

impl SealedShare {
    /// A slot for `name`'s share `share_id`, not yet sealed (the keyring header, which the
    /// sealing binds, names the slots first).
    pub(super) fn slot(name: OfficerName, share_id: u8) -> Self {
        Self {
            name,
            share_id,
            salt: [0; 16],
            nonce: [0; 12],
            sealed: Vec::new(),
        }
    }

    /// Seals `share` into this slot under `pass`, with a fresh salt and nonce, bound to the
    /// keyring `header`.
    pub(super) fn seal(
        &mut self,
        share: &Share,
        ledger_id: &LedgerId,
        kdf: KdfParams,
        pass: &Passphrase,
        header: &[u8],
        rng: &SystemRandom,
    ) -> Result<(), LedgerError> {
        rng.fill(&mut self.salt)
            .and_then(|()| rng.fill(&mut self.nonce))
            .map_err(|_| LedgerError::Crypto {
                operation: "random generator",
            })?;
        let key = wrap_key(ledger_id, &self.salt, kdf, pass)?;
        // Allocated at its sealed size, so appending the tag moves no plaintext.
        let mut buf = Zeroizing::new(Vec::with_capacity(SEALED_LEN));
        buf.extend_from_slice(share.as_bytes());
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(self.nonce),
            Aad::from(share_aad(header, self.share_id)),
            &mut *buf,
        )
        .map_err(|_| LedgerError::Crypto {
            operation: "seal share",
        })?;
        self.sealed = std::mem::take(&mut *buf);
        Ok(())
    }

    /// Opens the share with `pass`: `None` if the passphrase is not this officer's for the
    /// keyring `header` (or the share is not the one this slot names).
    pub(super) fn open(
        &self,
        ledger_id: &LedgerId,
        kdf: KdfParams,
        pass: &Passphrase,
        header: &[u8],
    ) -> Result<Option<Share>, LedgerError> {
        let key = wrap_key(ledger_id, &self.salt, kdf, pass)?;
        let mut buf = Zeroizing::new(self.sealed.clone());
        let opened = key
            .open_in_place(
                Nonce::assume_unique_for_key(self.nonce),
                Aad::from(share_aad(header, self.share_id)),
                &mut buf,
            )
            .ok()
            .and_then(|plain| Share::from_bytes(plain))
            .filter(|share| share.id() == self.share_id);
        // `buf` (the opened share, when it opened) is zeroized when it drops here.
        Ok(opened)
    }
}

/// Derives a share's wrapping key as [`SealedShare::open`] does, against a salt no share uses:
/// the same work, for a name that has no share.
pub(super) fn derive_for_nothing(
    ledger_id: &LedgerId,
    kdf: KdfParams,
    pass: &Passphrase,
) -> Result<(), LedgerError> {
    wrap_key(ledger_id, &[0u8; 16], kdf, pass).map(drop)
}

fn share_aad(header: &[u8], share_id: u8) -> Vec<u8> {
    let mut aad = header.to_vec();
    aad.push(0);
    aad.push(share_id);
    aad
}

fn wrap_key(
    id: &LedgerId,
    salt: &[u8; 16],
    kdf: KdfParams,
    pass: &Passphrase,
) -> Result<LessSafeKey, LedgerError> {
    let mut full_salt = b"mfa-custody/keyring/v1\0".to_vec();
    full_salt.extend_from_slice(&id.0);
    full_salt.extend_from_slice(salt);
    let mut key = Zeroizing::new([0u8; 32]);
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        kdf.iterations,
        &full_salt,
        pass.as_bytes(),
        key.as_mut(),
    );
    let unbound = UnboundKey::new(&AES_256_GCM, key.as_ref()).map_err(|_| LedgerError::Crypto {
        operation: "aes-256-gcm key",
    })?;
    Ok(LessSafeKey::new(unbound))
}
