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

use std::fmt;
use std::io::Write;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};

use data_encoding::HEXLOWER;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use ring::rand::{SecureRandom, SystemRandom};
use ring::{hkdf, hmac, pbkdf2};
use serde::{Deserialize, Serialize};
use zeroize::{ZeroizeOnDrop, Zeroizing};

use super::chain::{CheckpointSigner, LedgerId};
use super::error::LedgerError;
use super::event::{write_canonical, Actor};
use shamir::{Share, SHARE_LEN};

mod shamir;

/// The production PBKDF2-HMAC-SHA256 iteration count, and the minimum for any keyring not
/// explicitly marked as a test keyring.
pub const MIN_ITERATIONS: u32 = 600_000;
/// The keyring file format version this build writes and reads.
pub const KEYRING_VERSION: u32 = 1;
const KEYRING_FORMAT: &str = "mfa-custody-keyring";
const SEALED_LEN: usize = SHARE_LEN + 16; // plus the GCM tag

/// The 32-byte ledger master secret. Never stored whole; zeroized on drop.
#[derive(ZeroizeOnDrop)]
pub struct MasterSecret(Zeroizing<[u8; 32]>);

impl MasterSecret {
    /// A fresh random secret.
    pub fn generate(rng: &SystemRandom) -> Result<Self, LedgerError> {
        let mut s = Zeroizing::new([0u8; 32]);
        rng.fill(s.as_mut()).map_err(|_| LedgerError::Crypto {
            operation: "generate master secret",
        })?;
        Ok(Self(s))
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
    /// [`super::Ledger::derive_key`]).
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
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &salt_bytes).extract(master.0.as_ref());
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

/// Why a passphrase was refused when it is chosen.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum PassphraseError {
    /// Shorter than [`Passphrase::MIN_CHARS`] characters.
    #[error("passphrase has {chars} characters; at least {min} are required")]
    TooShort {
        /// Its length in characters.
        chars: usize,
        /// The minimum.
        min: usize,
    },
    /// Longer than [`Passphrase::MAX_BYTES`] bytes.
    #[error("passphrase is longer than {max} bytes")]
    TooLong {
        /// The maximum.
        max: usize,
    },
    /// Uses only one class of characters (only lower-case, only digits, ...).
    #[error("passphrase uses only one kind of character; mix letters, digits, symbols or cases")]
    OneCharacterClass,
}

/// An officer's passphrase. Zeroized on drop; Debug shows nothing of it.
pub struct Passphrase(Zeroizing<String>);

impl Passphrase {
    /// Fewest characters of a new passphrase.
    pub const MIN_CHARS: usize = 12;
    /// Most bytes of any passphrase.
    pub const MAX_BYTES: usize = 1024;

    /// Accepts a newly chosen passphrase: at least 12 characters, at most 1024 bytes, and not
    /// all from one class (lower-case letters, upper-case letters, digits, everything else).
    pub fn new_checked(text: Zeroizing<String>) -> Result<Self, PassphraseError> {
        let chars = text.chars().count();
        if chars < Self::MIN_CHARS {
            return Err(PassphraseError::TooShort {
                chars,
                min: Self::MIN_CHARS,
            });
        }
        if text.len() > Self::MAX_BYTES {
            return Err(PassphraseError::TooLong {
                max: Self::MAX_BYTES,
            });
        }
        let class = |c: char| {
            if c.is_lowercase() {
                0
            } else if c.is_uppercase() {
                1
            } else if c.is_ascii_digit() {
                2
            } else {
                3
            }
        };
        let mut seen = [false; 4];
        for c in text.chars() {
            if let Some(slot) = seen.get_mut(class(c)) {
                *slot = true;
            }
        }
        if seen.iter().filter(|s| **s).count() < 2 {
            return Err(PassphraseError::OneCharacterClass);
        }
        Ok(Self(text))
    }

    /// Takes a passphrase offered to unseal: only the length limit is applied, since the
    /// keyring decides whether it is right.
    pub fn for_unseal(text: Zeroizing<String>) -> Result<Self, PassphraseError> {
        if text.len() > Self::MAX_BYTES {
            return Err(PassphraseError::TooLong {
                max: Self::MAX_BYTES,
            });
        }
        Ok(Self(text))
    }

    fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase(<redacted>)")
    }
}

/// An officer's name in the keyring: 1 to 64 ASCII letters, digits and `._-`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OfficerName(String);

impl OfficerName {
    /// Parses a name.
    pub fn parse(input: &str) -> Result<Self, super::event::NameError> {
        // An officer name is also a valid actor; reuse the stricter character set.
        if input.is_empty() || input.len() > 64 {
            return Err(super::event::NameError::Length {
                what: "officer name",
                input: input.to_owned(),
                max: 64,
            });
        }
        if !input
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            return Err(super::event::NameError::Characters {
                what: "officer name",
                input: input.to_owned(),
                allowed: "ASCII letters, digits and ._-",
            });
        }
        Ok(Self(input.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Officers acting together, as one actor: names joined by `+` (`alice+bob`).
    pub fn joined_actor(names: &[OfficerName]) -> Result<Actor, super::event::NameError> {
        let joined = names
            .iter()
            .map(|n| n.0.as_str())
            .collect::<Vec<_>>()
            .join("+");
        Actor::parse(&joined)
    }
}

impl fmt::Display for OfficerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// PBKDF2 parameters of a keyring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfParams {
    iterations: NonZeroU32,
    insecure_test_only: bool,
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

/// Why keyring bytes do not parse.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyringFormatError {
    /// Not JSON of the expected shape.
    #[error("not a keyring document: {source}")]
    Json {
        /// The parser's complaint.
        #[source]
        source: serde_json::Error,
    },
    /// Another file format.
    #[error("format is {found:?}, expected {KEYRING_FORMAT:?}")]
    Format {
        /// What the file says.
        found: String,
    },
    /// A version this build does not read.
    #[error("keyring version {found} is not supported (this build reads {KEYRING_VERSION})")]
    Version {
        /// The file's version.
        found: u32,
    },
    /// A field has a wrong value.
    #[error("field {field}: {reason}")]
    Field {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

fn field_err(field: &'static str, reason: impl Into<String>) -> KeyringFormatError {
    KeyringFormatError::Field {
        field,
        reason: reason.into(),
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKdf {
    algorithm: String,
    iterations: u32,
    insecure_test_only: bool,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOfficer {
    name: String,
    share_id: u8,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeader {
    format: String,
    version: u32,
    ledger_id: String,
    generation: u64,
    threshold: u8,
    kdf: RawKdf,
    officers: Vec<RawOfficer>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawShare {
    share_id: u8,
    salt: String,
    nonce: String,
    sealed: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKeyring {
    header: RawHeader,
    shares: Vec<RawShare>,
    mac: String,
}

/// One officer's sealed share.
#[derive(Clone, PartialEq, Eq)]
struct SealedShare {
    name: OfficerName,
    share_id: u8,
    salt: [u8; 16],
    nonce: [u8; 12],
    sealed: Vec<u8>,
}

/// A parsed keyring: the header, one sealed share per officer, and the MAC.
#[derive(Clone, PartialEq, Eq)]
pub struct Keyring {
    ledger_id: LedgerId,
    generation: u64,
    threshold: u8,
    kdf: KdfParams,
    shares: Vec<SealedShare>,
    mac: [u8; 32],
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
                    name: name.0.clone(),
                });
            }
        }
        let threshold_u8 = u8::try_from(threshold).map_err(|_| LedgerError::InvalidThreshold {
            threshold,
            officers: n,
        })?;
        let shares = shamir::split(&master.0, threshold, n, rng)?;
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
            sealed.push(SealedShare {
                name: name.clone(),
                share_id: u8::try_from(i + 1).unwrap_or(u8::MAX),
                salt: [0; 16],
                nonce: [0; 12],
                sealed: Vec::new(),
            });
        }
        keyring.shares = sealed;
        let header = keyring.header_bytes();
        for ((slot, (_, pass)), share) in keyring.shares.iter_mut().zip(officers).zip(&shares) {
            if share.id() != slot.share_id {
                return Err(LedgerError::Crypto {
                    operation: "shamir split layout",
                });
            }
            rng.fill(&mut slot.salt)
                .and_then(|()| rng.fill(&mut slot.nonce))
                .map_err(|_| LedgerError::Crypto {
                    operation: "random generator",
                })?;
            let key = wrap_key(&ledger_id, &slot.salt, kdf, pass)?;
            // Allocated at its sealed size, so appending the tag moves no plaintext.
            let mut buf = Zeroizing::new(Vec::with_capacity(SEALED_LEN));
            buf.extend_from_slice(share.as_bytes());
            key.seal_in_place_append_tag(
                Nonce::assume_unique_for_key(slot.nonce),
                Aad::from(share_aad(&header, slot.share_id)),
                &mut *buf,
            )
            .map_err(|_| LedgerError::Crypto {
                operation: "seal share",
            })?;
            slot.sealed = std::mem::take(&mut *buf);
        }
        let keys = LedgerKeys::derive(master, &ledger_id)?;
        keyring.mac = keyring.compute_mac(&keys.keyring_mac);
        Ok(keyring)
    }

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
                    name: name.0.clone(),
                });
            }
            if !self.shares.iter().any(|s| &s.name == name) {
                return Err(LedgerError::UnknownOfficer {
                    name: name.0.clone(),
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
            let key = wrap_key(&self.ledger_id, &slot.salt, self.kdf, pass)?;
            let mut buf = Zeroizing::new(slot.sealed.clone());
            match key.open_in_place(
                Nonce::assume_unique_for_key(slot.nonce),
                Aad::from(share_aad(&header, slot.share_id)),
                &mut buf,
            ) {
                Ok(plain) => match Share::from_bytes(plain) {
                    Some(share) if share.id() == slot.share_id => opened.push(share),
                    _ => wrong.push(name.0.clone()),
                },
                Err(_) => wrong.push(name.0.clone()),
            }
        }
        if !wrong.is_empty() {
            return Err(LedgerError::WrongPassphrase { officers: wrong });
        }
        let secret = shamir::combine(&opened).ok_or_else(|| LedgerError::KeyringTampered {
            path: path.to_path_buf(),
        })?;
        drop(opened);
        let master = MasterSecret(secret);
        if !self.is_authentic(&master)? {
            return Err(LedgerError::KeyringTampered {
                path: path.to_path_buf(),
            });
        }
        Ok(master)
    }

    /// Whether this keyring's MAC is the one `master` gives: the file is unaltered and was
    /// written by a holder of this ledger's master secret.
    pub(crate) fn is_authentic(&self, master: &MasterSecret) -> Result<bool, LedgerError> {
        let keys = LedgerKeys::derive(master, &self.ledger_id)?;
        Ok(hmac::verify(&keys.keyring_mac, &self.mac_input(), &self.mac).is_ok())
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
            // The same work as for a real share, against a salt no share uses.
            let _ = wrap_key(&self.ledger_id, &[0u8; 16], self.kdf, pass)?;
            return Err(LedgerError::UnknownOfficer {
                name: officer.0.clone(),
            });
        };
        let key = wrap_key(&self.ledger_id, &slot.salt, self.kdf, pass)?;
        let mut buf = Zeroizing::new(slot.sealed.clone());
        let opened = key
            .open_in_place(
                Nonce::assume_unique_for_key(slot.nonce),
                Aad::from(share_aad(&self.header_bytes(), slot.share_id)),
                &mut buf,
            )
            .map(|plain| plain.len() == SHARE_LEN && plain.first() == Some(&slot.share_id));
        // `buf` (the opened share, when it opened) is zeroized when it drops here.
        drop(buf);
        match opened {
            Ok(true) => Ok(()),
            _ => Err(LedgerError::WrongPassphrase {
                officers: vec![officer.0.clone()],
            }),
        }
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

    fn raw_header(&self) -> RawHeader {
        RawHeader {
            format: KEYRING_FORMAT.to_owned(),
            version: KEYRING_VERSION,
            ledger_id: self.ledger_id.to_hex(),
            generation: self.generation,
            threshold: self.threshold,
            kdf: RawKdf {
                algorithm: "pbkdf2-hmac-sha256".to_owned(),
                iterations: self.kdf.iterations(),
                insecure_test_only: self.kdf.insecure_test_only,
            },
            officers: self
                .shares
                .iter()
                .map(|s| RawOfficer {
                    name: s.name.0.clone(),
                    share_id: s.share_id,
                })
                .collect(),
        }
    }

    /// Canonical JSON of the header: the associated data of every share and the MAC's prefix.
    fn header_bytes(&self) -> Vec<u8> {
        let value = serde_json::to_value(self.raw_header()).unwrap_or_default();
        let mut out = Vec::new();
        // The header holds no floats, so canonical encoding cannot fail.
        let _ = write_canonical(&value, &mut out);
        out
    }

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

    /// The file's bytes (pretty JSON).
    pub fn to_bytes(&self) -> Vec<u8> {
        let raw = RawKeyring {
            header: self.raw_header(),
            shares: self
                .shares
                .iter()
                .map(|s| RawShare {
                    share_id: s.share_id,
                    salt: HEXLOWER.encode(&s.salt),
                    nonce: HEXLOWER.encode(&s.nonce),
                    sealed: HEXLOWER.encode(&s.sealed),
                })
                .collect(),
            mac: HEXLOWER.encode(&self.mac),
        };
        let mut out = serde_json::to_vec_pretty(&raw).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// Parses keyring file bytes. Checks the shape only; the MAC is checked by [`Keyring::unseal`].
    pub fn parse(bytes: &[u8]) -> Result<Self, KeyringFormatError> {
        let raw: RawKeyring =
            serde_json::from_slice(bytes).map_err(|source| KeyringFormatError::Json { source })?;
        let h = raw.header;
        if h.format != KEYRING_FORMAT {
            return Err(KeyringFormatError::Format { found: h.format });
        }
        if h.version != KEYRING_VERSION {
            return Err(KeyringFormatError::Version { found: h.version });
        }
        let ledger_id = LedgerId::from_hex(&h.ledger_id)
            .ok_or_else(|| field_err("header.ledger_id", "expected 32 lower-case hex digits"))?;
        if h.kdf.algorithm != "pbkdf2-hmac-sha256" {
            return Err(field_err(
                "header.kdf.algorithm",
                format!("unsupported {:?}", h.kdf.algorithm),
            ));
        }
        let iterations = NonZeroU32::new(h.kdf.iterations)
            .ok_or_else(|| field_err("header.kdf.iterations", "must not be 0"))?;
        if iterations.get() < MIN_ITERATIONS && !h.kdf.insecure_test_only {
            return Err(field_err(
                "header.kdf.iterations",
                format!("{} is below the minimum {MIN_ITERATIONS}", iterations),
            ));
        }
        let kdf = KdfParams {
            iterations,
            insecure_test_only: h.kdf.insecure_test_only,
        };
        let n = h.officers.len();
        if h.threshold < 2 || usize::from(h.threshold) > n {
            return Err(field_err(
                "header.threshold",
                format!("{} with {n} officers", h.threshold),
            ));
        }
        if raw.shares.len() != n {
            return Err(field_err(
                "shares",
                format!("{} shares for {n} officers", raw.shares.len()),
            ));
        }
        let mut shares = Vec::with_capacity(n);
        for (i, (o, s)) in h.officers.into_iter().zip(raw.shares).enumerate() {
            let name = OfficerName::parse(&o.name)
                .map_err(|e| field_err("header.officers.name", e.to_string()))?;
            if shares.iter().any(|x: &SealedShare| x.name == name) {
                return Err(field_err(
                    "header.officers.name",
                    format!("{name} appears twice"),
                ));
            }
            if o.share_id == 0
                || s.share_id != o.share_id
                || shares
                    .iter()
                    .any(|x: &SealedShare| x.share_id == o.share_id)
            {
                return Err(field_err(
                    "shares.share_id",
                    format!("share {i} has a bad or repeated id"),
                ));
            }
            let salt = decode_fixed::<16>(&s.salt)
                .ok_or_else(|| field_err("shares.salt", "expected 16 bytes of hex"))?;
            let nonce = decode_fixed::<12>(&s.nonce)
                .ok_or_else(|| field_err("shares.nonce", "expected 12 bytes of hex"))?;
            let sealed = HEXLOWER
                .decode(s.sealed.as_bytes())
                .ok()
                .filter(|v| v.len() == SEALED_LEN)
                .ok_or_else(|| {
                    field_err(
                        "shares.sealed",
                        format!("expected {SEALED_LEN} bytes of hex"),
                    )
                })?;
            shares.push(SealedShare {
                name,
                share_id: o.share_id,
                salt,
                nonce,
                sealed,
            });
        }
        let mac = decode_fixed::<32>(&raw.mac)
            .ok_or_else(|| field_err("mac", "expected 32 bytes of hex"))?;
        Ok(Keyring {
            ledger_id,
            generation: h.generation,
            threshold: h.threshold,
            kdf,
            shares,
            mac,
        })
    }

    /// Reads and parses a keyring file.
    pub fn load(path: &Path) -> Result<Self, LedgerError> {
        let bytes =
            std::fs::read(path).map_err(LedgerError::io_or_missing("read keyring", path))?;
        Self::parse(&bytes).map_err(|source| LedgerError::KeyringMalformed {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Writes the keyring atomically with mode 0600 (temp file, fsync, rename, directory fsync).
    pub fn store(&self, path: &Path) -> Result<(), LedgerError> {
        write_atomic(path, &self.to_bytes())
    }
}

fn decode_fixed<const N: usize>(s: &str) -> Option<[u8; N]> {
    HEXLOWER.decode(s.as_bytes()).ok()?.try_into().ok()
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

/// Writes `bytes` to `path` atomically: a 0600 temp file beside it, fsync, rename, fsync of the
/// directory.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), LedgerError> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp: PathBuf = dir.join(tmp_name);
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(LedgerError::io("create", &tmp))?;
    f.write_all(bytes).map_err(LedgerError::io("write", &tmp))?;
    f.sync_all().map_err(LedgerError::io("fsync", &tmp))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(LedgerError::io("rename into place", path))?;
    sync_dir(dir)
}

/// Makes the renames and removals of entries in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), LedgerError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(LedgerError::io("fsync directory", dir))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn pass(s: &str) -> Passphrase {
        Passphrase::for_unseal(Zeroizing::new(s.to_owned())).expect("pass")
    }
    pub(crate) fn name(s: &str) -> OfficerName {
        OfficerName::parse(s).expect("name")
    }
    pub(crate) fn kdf() -> KdfParams {
        KdfParams::insecure_for_tests(NonZeroU32::new(1000).unwrap_or(NonZeroU32::MIN))
    }

    fn three_officers() -> (Keyring, MasterSecret) {
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
            assert_eq!(m.0.as_ref(), master.0.as_ref());
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

    #[test]
    fn header_edits_are_detected() {
        let (k, _) = three_officers();
        let text = String::from_utf8(k.to_bytes()).expect("utf8");
        // Raising the threshold or renaming an officer changes the associated data of every share.
        for edited in [
            text.replace("\"threshold\": 2", "\"threshold\": 3"),
            text.replace("\"generation\": 1", "\"generation\": 2"),
        ] {
            let parsed = Keyring::parse(edited.as_bytes()).expect("still parses");
            let r = parsed.unseal(
                Path::new("k"),
                &[
                    (name("alice"), pass("alice-pass-1234")),
                    (name("bob"), pass("bob-pass-5678")),
                    (name("carol"), pass("carol-pass-90ab")),
                ],
            );
            assert!(
                matches!(r, Err(LedgerError::WrongPassphrase { .. })),
                "{r:?}"
            );
        }
        // Lowering the threshold below 2 is refused at parse time.
        assert!(Keyring::parse(
            text.replace("\"threshold\": 2", "\"threshold\": 1")
                .as_bytes()
        )
        .is_err());
        // A lowered iteration count without the test marker is refused.
        let weak = text.replace(
            "\"insecure_test_only\": true",
            "\"insecure_test_only\": false",
        );
        assert!(Keyring::parse(weak.as_bytes()).is_err());
    }

    proptest::proptest! {
        #[test]
        fn keyring_parser_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            let _ = Keyring::parse(&bytes);
        }

        #[test]
        fn keyring_parser_survives_edits_of_a_real_keyring(pos in 0usize..2000, byte in proptest::prelude::any::<u8>()) {
            static KEYRING: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
            let mut bytes = KEYRING.get_or_init(|| three_officers().0.to_bytes()).clone();
            let i = pos % bytes.len();
            bytes[i] = byte;
            let _ = Keyring::parse(&bytes);
        }
    }

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
    fn passphrase_strength() {
        let z = |s: &str| Zeroizing::new(s.to_owned());
        assert!(matches!(
            Passphrase::new_checked(z("short1A")),
            Err(PassphraseError::TooShort { .. })
        ));
        assert_eq!(
            Passphrase::new_checked(z("alllowercaseletters")).err(),
            Some(PassphraseError::OneCharacterClass)
        );
        assert_eq!(
            Passphrase::new_checked(z("123456789012345")).err(),
            Some(PassphraseError::OneCharacterClass)
        );
        assert!(Passphrase::new_checked(z("correct horse battery")).is_ok());
        assert!(Passphrase::new_checked(z("Correcthorsebattery")).is_ok());
    }

    #[test]
    fn debug_shows_no_secret_bytes() {
        let rng = SystemRandom::new();
        let master = MasterSecret::generate(&rng).expect("rng");
        let hex = HEXLOWER.encode(master.0.as_ref());
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
        assert_eq!(m.0.as_ref(), master.0.as_ref());
    }
}
