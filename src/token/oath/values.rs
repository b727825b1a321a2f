//! The plain values of YKOATH: credential type, hash algorithm, digits, applet version and
//! the TOTP time step.

use std::fmt;
use std::num::NonZeroU32;

use ring::hmac;

use super::OathError;

/// HOTP (counter based) or TOTP (time based). Serialized as `"hotp"` / `"totp"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OathType {
    /// RFC 4226, counter based.
    Hotp,
    /// RFC 6238, time based.
    Totp,
}

impl OathType {
    /// The high nibble of the type/algorithm byte.
    pub fn code(self) -> u8 {
        match self {
            Self::Hotp => 0x10,
            Self::Totp => 0x20,
        }
    }

    /// Reads the high nibble of a type/algorithm byte.
    pub fn from_byte(byte: u8) -> Result<Self, OathError> {
        match byte & 0xF0 {
            0x10 => Ok(Self::Hotp),
            0x20 => Ok(Self::Totp),
            _ => Err(OathError::UnknownType { byte }),
        }
    }
}

/// The HMAC hash of a credential. Serialized as `"sha1"`, `"sha256"`, `"sha512"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HashAlgorithm {
    /// HMAC-SHA-1.
    Sha1,
    /// HMAC-SHA-256.
    Sha256,
    /// HMAC-SHA-512.
    Sha512,
}

impl HashAlgorithm {
    /// The low nibble of the type/algorithm byte.
    pub fn code(self) -> u8 {
        match self {
            Self::Sha1 => 0x01,
            Self::Sha256 => 0x02,
            Self::Sha512 => 0x03,
        }
    }

    /// Reads the low nibble of a type/algorithm byte.
    pub fn from_byte(byte: u8) -> Result<Self, OathError> {
        match byte & 0x0F {
            0x01 => Ok(Self::Sha1),
            0x02 => Ok(Self::Sha256),
            0x03 => Ok(Self::Sha512),
            _ => Err(OathError::UnknownAlgorithm { byte }),
        }
    }

    /// The hash's block size: keys longer than this are hashed by clients.
    pub fn block_size(self) -> usize {
        match self {
            Self::Sha1 | Self::Sha256 => 64,
            Self::Sha512 => 128,
        }
    }

    /// The digest length in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            Self::Sha1 => 20,
            Self::Sha256 => 32,
            Self::Sha512 => 64,
        }
    }

    pub(super) fn hmac_algorithm(self) -> hmac::Algorithm {
        match self {
            Self::Sha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            Self::Sha256 => hmac::HMAC_SHA256,
            Self::Sha512 => hmac::HMAC_SHA512,
        }
    }

    pub(super) fn digest_algorithm(self) -> &'static ring::digest::Algorithm {
        match self {
            Self::Sha1 => &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
            Self::Sha256 => &ring::digest::SHA256,
            Self::Sha512 => &ring::digest::SHA512,
        }
    }
}

/// The type/algorithm byte: type in the high nibble, hash in the low.
pub fn type_byte(oath_type: OathType, algorithm: HashAlgorithm) -> u8 {
    oath_type.code() | algorithm.code()
}

/// The number of digits of a code: 6, 7 or 8.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digits(u8);

impl Digits {
    /// Six digits, the common case.
    pub const SIX: Self = Self(6);
    /// Eight digits.
    pub const EIGHT: Self = Self(8);

    /// Checks a digit count.
    pub fn new(digits: u8) -> Result<Self, OathError> {
        if (6..=8).contains(&digits) {
            Ok(Self(digits))
        } else {
            Err(OathError::BadDigits { digits })
        }
    }

    /// The count.
    pub fn get(self) -> u8 {
        self.0
    }

    pub(super) fn modulus(self) -> u32 {
        10u32.pow(u32::from(self.0))
    }
}

/// The applet's version (`79 03`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Version {
    /// Major.
    pub major: u8,
    /// Minor.
    pub minor: u8,
    /// Patch.
    pub patch: u8,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl From<[u8; 3]> for Version {
    fn from([major, minor, patch]: [u8; 3]) -> Self {
        Self {
            major,
            minor,
            patch,
        }
    }
}

impl Version {
    /// The three bytes.
    pub fn to_bytes(self) -> [u8; 3] {
        [self.major, self.minor, self.patch]
    }
}

/// A TOTP time step: `floor(unix time / period)`; its challenge is the step as 8 big-endian bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimeStep(pub u64);

impl TimeStep {
    /// The step containing `unix_seconds` for a period of `period` seconds.
    pub fn at(unix_seconds: u64, period: NonZeroU32) -> Self {
        Self(unix_seconds / u64::from(period.get()))
    }

    /// The step for the current system time.
    pub fn now(period: NonZeroU32) -> Self {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Self::at(secs, period)
    }

    /// The 8-byte challenge.
    pub fn challenge(self) -> [u8; 8] {
        self.0.to_be_bytes()
    }
}
