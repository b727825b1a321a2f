//! The secrets YKOATH carries: credential keys, the access password and the key derived from
//! it, and the codes and full responses a card computes. Each is zeroized on drop and never
//! shows its bytes in `Debug`.

use std::fmt;
use std::num::NonZeroU32;

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use super::{hmac_digest, truncate, Digits, HashAlgorithm, OathError, MIN_KEY_LEN};

/// An OATH seed (the shared HMAC key). Zeroized on drop; `Debug` shows only its length.
#[derive(Clone)]
pub struct OathSecret(Zeroizing<Vec<u8>>);

impl OathSecret {
    /// Takes ownership of raw key bytes.
    pub fn from_bytes(bytes: Zeroizing<Vec<u8>>) -> Self {
        Self(bytes)
    }

    /// Decodes hex (either case).
    pub fn from_hex(text: &str) -> Result<Self, OathError> {
        let clean = Zeroizing::new(text.trim().to_ascii_uppercase());
        data_encoding::HEXUPPER
            .decode(clean.as_bytes())
            .map(|v| Self(Zeroizing::new(v)))
            .map_err(|e| OathError::BadSecret {
                encoding: "hex",
                detail: e.to_string(),
            })
    }

    /// Decodes Base32 as providers hand it out: either case, spaces allowed, padding optional.
    pub fn from_base32(text: &str) -> Result<Self, OathError> {
        let mut clean: Zeroizing<String> = Zeroizing::new(
            text.chars()
                .filter(|c| !c.is_whitespace() && *c != '=' && *c != '-')
                .map(|c| c.to_ascii_uppercase())
                .collect(),
        );
        let decoded = data_encoding::BASE32_NOPAD.decode(clean.as_bytes());
        clean.zeroize();
        decoded
            .map(|v| Self(Zeroizing::new(v)))
            .map_err(|e| OathError::BadSecret {
                encoding: "base32",
                detail: e.to_string(),
            })
    }

    /// The key bytes.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for an empty key.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The key as a client sends it in PUT: hashed when longer than the hash's block size,
    /// zero-padded to at least [`MIN_KEY_LEN`] bytes. Neither step changes any HMAC.
    pub fn prepared(&self, algorithm: HashAlgorithm) -> OathSecret {
        let mut key = if self.0.len() > algorithm.block_size() {
            Zeroizing::new(
                ring::digest::digest(algorithm.digest_algorithm(), &self.0)
                    .as_ref()
                    .to_vec(),
            )
        } else {
            self.0.clone()
        };
        if key.len() < MIN_KEY_LEN {
            key.resize(MIN_KEY_LEN, 0);
        }
        Self(key)
    }
}

impl PartialEq for OathSecret {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_slice().ct_eq(other.0.as_slice()).into()
    }
}

impl Eq for OathSecret {}

impl fmt::Debug for OathSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OathSecret(<{} bytes, redacted>)", self.0.len())
    }
}

/// An access password as typed by a person. Zeroized on drop; never printed.
pub struct Password(Zeroizing<Vec<u8>>);

impl Password {
    /// Takes the password's UTF-8 bytes.
    pub fn new(password: Zeroizing<String>) -> Self {
        Self(Zeroizing::new(password.as_bytes().to_vec()))
    }

    /// The bytes.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl From<&str> for Password {
    fn from(s: &str) -> Self {
        Self(Zeroizing::new(s.as_bytes().to_vec()))
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// The 16-byte access key: PBKDF2-HMAC-SHA1(password, salt, 1000 iterations). Zeroized on drop.
#[derive(Clone)]
pub struct AccessKey(Zeroizing<[u8; 16]>);

/// PBKDF2 iterations of the access key derivation.
pub const ACCESS_KEY_ITERATIONS: u32 = 1000;

impl AccessKey {
    /// Derives the key for `password` on the applet whose SELECT salt is `salt`.
    pub fn derive(password: &Password, salt: &[u8; 8]) -> Self {
        let mut out = Zeroizing::new([0u8; 16]);
        let iterations = NonZeroU32::MIN.saturating_add(ACCESS_KEY_ITERATIONS - 1);
        ring::pbkdf2::derive(
            ring::pbkdf2::PBKDF2_HMAC_SHA1,
            iterations,
            salt,
            password.expose(),
            out.as_mut_slice(),
        );
        Self(out)
    }

    /// Takes a key that is already derived.
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The key bytes.
    pub fn expose(&self) -> &[u8; 16] {
        &self.0
    }

    /// HMAC of `challenge` under this key (SHA-1 unless the applet says otherwise).
    pub fn respond(&self, algorithm: HashAlgorithm, challenge: &[u8]) -> Zeroizing<Vec<u8>> {
        hmac_digest(algorithm, self.0.as_slice(), challenge)
    }
}

impl PartialEq for AccessKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_slice().ct_eq(other.0.as_slice()).into()
    }
}

impl Eq for AccessKey {}

impl fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessKey(<redacted>)")
    }
}

/// A one-time code: its digits, zero-padded. Zeroized on drop; `Debug` hides the digits.
#[derive(Clone)]
pub struct Code(Zeroizing<String>);

impl Code {
    /// The code for a 31-bit truncated value.
    pub fn from_value(value: u32, digits: Digits) -> Self {
        let n = (value & 0x7FFF_FFFF) % digits.modulus();
        Self(Zeroizing::new(format!(
            "{n:0width$}",
            width = usize::from(digits.get())
        )))
    }

    /// The digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// How many digits.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Never true for a real code.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl PartialEq for Code {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

impl Eq for Code {}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Code(<{} digits, redacted>)", self.0.len())
    }
}

/// A full (untruncated) CALCULATE answer: the digit count and the raw HMAC. Zeroized on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct FullResponse {
    /// The credential's digit count.
    pub digits: Digits,
    /// The HMAC.
    pub hmac: OathSecret,
}

impl FullResponse {
    /// The code this HMAC truncates to.
    pub fn code(&self) -> Code {
        truncate(self.hmac.expose(), self.digits)
    }
}

impl fmt::Debug for FullResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "FullResponse {{ digits: {}, hmac: <{} bytes, redacted> }}",
            self.digits.get(),
            self.hmac.len()
        )
    }
}
