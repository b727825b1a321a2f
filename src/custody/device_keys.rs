//! Devices' OATH access keys. At enrolment each custody key gets its own random 16-byte access
//! key (SET CODE): without it the OATH applet lists and computes nothing. The key is stored only
//! sealed in the ledger ([`super::sealed`], under a key derived from the master secret for this
//! purpose, bound to the device's serial) and never leaves it: exports carry a digest of the
//! sealed record, and the device record says only that the device is locked.
//!
//! Every later use of a locked device starts with a mutual VALIDATE ([`OathLock::unlock`]): the
//! card must answer a fresh challenge under the key, so a card without it, or with another, is
//! not the device the ledger locked.

use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::token::oath::{AccessKey, LockedOathSession, OathSession, Selected};
use crate::token::{CardTransport, TokenError};

use super::error::CustodyError;
use super::ids::Serial;
use super::records::DeviceRecord;
use super::service::{token_err, Custody};
use super::store::{self, entity};

/// The ledger purpose label of the key that seals devices' OATH access keys.
pub const ACCESS_KEY_PURPOSE: &str = "custody/device-access-keys/v1";

/// A device's OATH access key as stored: Base64 of nonce ‖ AES-256-GCM ciphertext ‖ tag, bound
/// to the device's serial.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedAccessKey {
    /// Base64 of nonce ‖ ciphertext ‖ tag.
    pub sealed: String,
}

fn aad(serial: Serial) -> Vec<u8> {
    format!("device-access-key/{serial}").into_bytes()
}

/// A new random access key from the system generator.
pub(crate) fn generate() -> Result<AccessKey, CustodyError> {
    let mut b = Zeroizing::new([0u8; 16]);
    SystemRandom::new()
        .fill(b.as_mut_slice())
        .map_err(|_| CustodyError::Crypto {
            operation: "generate OATH access key",
        })?;
    Ok(AccessKey::from_bytes(*b))
}

/// What the ledger holds of one device's OATH access key: the key to VALIDATE with, if the
/// ledger has one, and whether the card must ask for it (the device was locked at enrolment).
/// `Debug` shows no key byte.
#[derive(Clone, Debug, Default)]
pub struct OathLock {
    key: Option<AccessKey>,
    required: bool,
}

impl OathLock {
    /// A device locked with `key`.
    pub fn locked(key: AccessKey) -> Self {
        Self {
            key: Some(key),
            required: true,
        }
    }

    /// True when the ledger locked the device: a card that asks for no access key is not it.
    pub fn required(&self) -> bool {
        self.required
    }

    pub(crate) fn key(&self) -> Option<&AccessKey> {
        self.key.as_ref()
    }

    /// SELECTs the OATH applet and, when it asks for an access key, runs the mutual VALIDATE
    /// with the ledger's key (the card's answer to a fresh host challenge is checked in
    /// constant time). A card that asks for no key although the device is locked, one that
    /// fails VALIDATE, and one that asks for a key the ledger does not hold are
    /// [`CustodyError::DeviceMismatch`]; nothing is listed or computed on them.
    pub(crate) fn unlock<T: CardTransport>(
        &self,
        transport: T,
        serial: Serial,
    ) -> Result<OathSession<T>, CustodyError> {
        let mismatch = |m: &str| CustodyError::DeviceMismatch {
            serial,
            mismatch: m.to_owned(),
        };
        match OathSession::select(transport).map_err(token_err(serial))? {
            Selected::Ready(_) if self.required => Err(mismatch(NOT_SET)),
            Selected::Ready(s) => Ok(s),
            Selected::Locked(s) => self.validated(s, serial),
        }
    }

    /// The mutual VALIDATE of an applet that asks for an access key, with the ledger's key: a
    /// card that fails it, or one the ledger holds no key for, is
    /// [`CustodyError::DeviceMismatch`].
    pub(crate) fn validated<T: CardTransport>(
        &self,
        s: LockedOathSession<T>,
        serial: Serial,
    ) -> Result<OathSession<T>, CustodyError> {
        let mismatch = |m: &str| CustodyError::DeviceMismatch {
            serial,
            mismatch: m.to_owned(),
        };
        match &self.key {
            None => Err(mismatch("OATH applet is password-protected")),
            Some(key) => match s.validate(key) {
                Ok(s) => Ok(s),
                Err(TokenError::Refused { .. } | TokenError::Malformed { .. }) => {
                    Err(mismatch(NOT_PROVEN))
                }
                Err(e) => Err(token_err(serial)(e)),
            },
        }
    }
}

/// The mismatch of a locked device whose card asks for no access key.
pub(crate) const NOT_SET: &str =
    "no OATH access key is set, though the ledger locked this device with one";
/// The mismatch of a card that fails VALIDATE with the device's access key.
pub(crate) const NOT_PROVEN: &str =
    "the card did not prove it holds this device's OATH access key (VALIDATE failed)";

impl Custody {
    fn access_key_purpose_key(&self) -> Result<Zeroizing<[u8; 32]>, CustodyError> {
        self.ledger
            .derive_key(ACCESS_KEY_PURPOSE)
            .map_err(super::service::op_err("derive the access-key sealing key"))
    }

    /// Seals `key` for storage as `serial`'s access key.
    pub(super) fn seal_access_key(
        &self,
        serial: Serial,
        key: &AccessKey,
    ) -> Result<SealedAccessKey, CustodyError> {
        let k = self.access_key_purpose_key()?;
        let sealed = super::sealed::seal(
            &k,
            &aad(serial),
            Zeroizing::new(key.expose().to_vec()),
            "seal OATH access key",
        )?;
        Ok(SealedAccessKey { sealed })
    }

    /// The access key the ledger holds for `serial`, if any.
    pub(super) fn access_key(&self, serial: Serial) -> Result<Option<AccessKey>, CustodyError> {
        let id = serial.to_string();
        let Some(sealed) = store::get::<SealedAccessKey>(&self.ledger, entity::ACCESS_KEY, &id)?
        else {
            return Ok(None);
        };
        let corrupt = || CustodyError::CorruptRecord {
            entity: entity::ACCESS_KEY,
            id: id.clone(),
            reason: "does not decrypt".into(),
        };
        let k = self.access_key_purpose_key()?;
        let plain = super::sealed::open(&k, &aad(serial), &sealed.sealed).ok_or_else(corrupt)?;
        let mut bytes = Zeroizing::new([0u8; 16]);
        if plain.len() != bytes.len() {
            return Err(corrupt());
        }
        bytes.copy_from_slice(&plain);
        Ok(Some(AccessKey::from_bytes(*bytes)))
    }

    /// What a device operation needs to open `d`'s OATH applet.
    pub(super) fn oath_lock(&self, d: &DeviceRecord) -> Result<OathLock, CustodyError> {
        let key = self.access_key(d.serial)?;
        if d.oath_access_key && key.is_none() {
            return Err(CustodyError::CorruptRecord {
                entity: entity::ACCESS_KEY,
                id: d.serial.to_string(),
                reason: "missing, though the device is recorded as locked".into(),
            });
        }
        Ok(OathLock {
            key,
            required: d.oath_access_key,
        })
    }
}
