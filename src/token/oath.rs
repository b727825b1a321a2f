//! YKOATH, the YubiKey OATH applet's protocol, as typed messages.
//!
//! The first half of this module is pure: for every instruction a builder that returns a
//! [`Command`] and a parser that turns the card's answer into typed values (and, for the software
//! YubiKey in [`crate::emulator`], the matching encoders and request decoders, so both sides share
//! one definition of the wire format). Nothing there does I/O.
//!
//! The second half is a thin session over any [`CardTransport`]: [`OathSession::select`] returns
//! either a usable [`OathSession`] or, when the applet is protected by an access password, a
//! [`LockedOathSession`] whose only way forward is [`LockedOathSession::validate`]. Operations
//! that need authentication exist only on [`OathSession`], so calling them on a locked applet
//! does not compile.
//!
//! Secrets ([`OathSecret`], [`AccessKey`], [`Password`], [`Code`], [`FullResponse`]) are zeroized
//! on drop and never show their bytes in `Debug`; commands that carry them are built with
//! [`Command::with_secret_data`].

use std::fmt;
use std::num::NonZeroU32;

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use super::apdu::{Command, Response, StatusWord};
use super::error::TokenError;
use super::tlv::{self, TlvError};
use super::transport::{exchange, CardTransport};

/// The OATH applet's AID.
pub const AID: [u8; 7] = [0xA0, 0x00, 0x00, 0x05, 0x27, 0x21, 0x01];

/// Instruction bytes.
pub mod ins {
    /// PUT: add or overwrite a credential.
    pub const PUT: u8 = 0x01;
    /// DELETE a credential.
    pub const DELETE: u8 = 0x02;
    /// SET CODE: set or remove the access key.
    pub const SET_CODE: u8 = 0x03;
    /// RESET the applet (P1 P2 = `DE AD`).
    pub const RESET: u8 = 0x04;
    /// RENAME a credential (firmware 5.3 and later).
    pub const RENAME: u8 = 0x05;
    /// LIST credentials.
    pub const LIST: u8 = 0xA1;
    /// CALCULATE one credential.
    pub const CALCULATE: u8 = 0xA2;
    /// VALIDATE the access key (mutual authentication).
    pub const VALIDATE: u8 = 0xA3;
    /// SELECT (P1 `04`) and CALCULATE ALL (P1 `00`) share this instruction.
    pub const SELECT: u8 = 0xA4;
    /// CALCULATE ALL: the same byte as [`SELECT`], with P1 `00`.
    pub const CALCULATE_ALL: u8 = 0xA4;
    /// SEND REMAINING: continue a `61xx` answer.
    pub const SEND_REMAINING: u8 = 0xA5;
}

/// TLV tags.
pub mod tag {
    /// Credential name (also the salt in the SELECT answer).
    pub const NAME: u8 = 0x71;
    /// LIST entry.
    pub const NAME_LIST: u8 = 0x72;
    /// Key: type/algorithm byte, digits, key bytes.
    pub const KEY: u8 = 0x73;
    /// Challenge.
    pub const CHALLENGE: u8 = 0x74;
    /// Full HMAC response.
    pub const RESPONSE: u8 = 0x75;
    /// Truncated response.
    pub const TRUNCATED: u8 = 0x76;
    /// HOTP credential, not calculated by CALCULATE ALL.
    pub const HOTP: u8 = 0x77;
    /// Property byte (bare: no length byte in PUT).
    pub const PROPERTY: u8 = 0x78;
    /// Applet version.
    pub const VERSION: u8 = 0x79;
    /// Initial moving factor (HOTP counter).
    pub const IMF: u8 = 0x7A;
    /// Access key algorithm in the SELECT answer.
    pub const ALGORITHM: u8 = 0x7B;
    /// Touch required, not calculated by CALCULATE ALL.
    pub const TOUCH: u8 = 0x7C;
}

/// Property bits of a credential.
pub mod property {
    /// The challenge (or counter) may only increase.
    pub const INCREASING: u8 = 0x01;
    /// A touch is required to calculate.
    pub const TOUCH: u8 = 0x02;
}

/// The longest credential name the applet stores, in bytes.
pub const MAX_NAME_LEN: usize = 64;
/// Keys shorter than this are zero-padded by clients.
pub const MIN_KEY_LEN: usize = 14;
/// The TOTP period assumed when a credential name has no `<period>/` prefix.
pub const DEFAULT_PERIOD: u32 = 30;

/// Why OATH bytes or values could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OathError {
    /// The bytes are not valid TLVs.
    #[error("{message}: {source}")]
    Tlv {
        /// The message being read.
        message: &'static str,
        /// What was wrong.
        #[source]
        source: TlvError,
    },
    /// A required tag is missing.
    #[error("{message}: tag {tag:02X} is missing")]
    MissingTag {
        /// The message being read.
        message: &'static str,
        /// The missing tag.
        tag: u8,
    },
    /// A tag that does not belong in the message, or appears twice.
    #[error("{message}: unexpected tag {tag:02X}")]
    UnexpectedTag {
        /// The message being read.
        message: &'static str,
        /// The tag found.
        tag: u8,
    },
    /// A field of the wrong size.
    #[error("{message}: {field} is {got} bytes, expected {expected}")]
    BadLength {
        /// The message being read.
        message: &'static str,
        /// Which field.
        field: &'static str,
        /// The size allowed.
        expected: &'static str,
        /// The size found.
        got: usize,
    },
    /// The high nibble of a type/algorithm byte is neither HOTP nor TOTP.
    #[error("type/algorithm byte {byte:02X} names no known credential type")]
    UnknownType {
        /// The byte.
        byte: u8,
    },
    /// The low nibble of a type/algorithm byte is no known hash.
    #[error("type/algorithm byte {byte:02X} names no known hash algorithm")]
    UnknownAlgorithm {
        /// The byte.
        byte: u8,
    },
    /// A digit count outside 6..=8.
    #[error("{digits} digits: an OATH code has 6 to 8")]
    BadDigits {
        /// The digit count.
        digits: u8,
    },
    /// Property bits other than increasing-only and touch-required.
    #[error("property byte {byte:02X} has unknown bits")]
    UnknownProperty {
        /// The byte.
        byte: u8,
    },
    /// An empty credential name.
    #[error("a credential name cannot be empty")]
    NameEmpty,
    /// A credential name longer than [`MAX_NAME_LEN`] bytes.
    #[error("credential name {name:?} is {len} bytes, at most 64 are allowed")]
    NameTooLong {
        /// The name (lossily decoded).
        name: String,
        /// Its length in bytes.
        len: usize,
    },
    /// A credential name that is not UTF-8.
    #[error("credential name of {len} bytes is not UTF-8")]
    NameNotUtf8 {
        /// Its length in bytes.
        len: usize,
    },
    /// Name parts that would not read back as the same parts.
    #[error("period {period}, issuer {issuer:?} and account {account:?} do not form an unambiguous credential name")]
    AmbiguousName {
        /// The period.
        period: u32,
        /// The issuer.
        issuer: Option<String>,
        /// The account.
        account: String,
    },
    /// A secret that could not be decoded (the message never contains the secret).
    #[error("secret is not valid {encoding}: {detail}")]
    BadSecret {
        /// "hex" or "base32".
        encoding: &'static str,
        /// What the decoder said (position and kind, never the input).
        detail: String,
    },
    /// The card's answer to VALIDATE does not prove that it holds the access key.
    #[error("the card's VALIDATE response does not match the access key: not the expected card")]
    CardAuthFailed,
}

fn tlvs<'a>(message: &'static str, bytes: &'a [u8]) -> Result<Vec<tlv::Tlv<'a>>, OathError> {
    tlv::parse(bytes).map_err(|source| OathError::Tlv { message, source })
}

fn required<'a>(
    message: &'static str,
    items: &[tlv::Tlv<'a>],
    tag: u8,
) -> Result<&'a [u8], OathError> {
    tlv::find(items, tag).ok_or(OathError::MissingTag { message, tag })
}

fn fixed<const N: usize>(
    message: &'static str,
    field: &'static str,
    expected: &'static str,
    value: &[u8],
) -> Result<[u8; N], OathError> {
    <[u8; N]>::try_from(value).map_err(|_| OathError::BadLength {
        message,
        field,
        expected,
        got: value.len(),
    })
}

fn push_tlv(out: &mut Vec<u8>, tag: u8, value: &[u8]) {
    // Every value written here is bounded far below the TLV limit of 65 535 bytes (names ≤ 64,
    // keys ≤ a few hundred, digests ≤ 64); a longer one would be a bug in this module.
    if tlv::write(out, tag, value).is_err() {
        debug_assert!(false, "TLV value of {} bytes", value.len());
    }
}

// ---------------------------------------------------------------------------------------------
// Value types
// ---------------------------------------------------------------------------------------------

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

    fn hmac_algorithm(self) -> hmac::Algorithm {
        match self {
            Self::Sha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            Self::Sha256 => hmac::HMAC_SHA256,
            Self::Sha512 => hmac::HMAC_SHA512,
        }
    }

    fn digest_algorithm(self) -> &'static ring::digest::Algorithm {
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

    fn modulus(self) -> u32 {
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

/// A credential id as the applet stores it: `[<period>/][<issuer>:]<account>`, 1 to 64 bytes of
/// UTF-8. The period prefix appears only for TOTP credentials whose period is not 30 seconds.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CredentialName(String);

/// The parts of a [`CredentialName`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameParts<'a> {
    /// The TOTP period (30 when there is no prefix); `None` for HOTP.
    pub period: Option<u32>,
    /// The issuer, when there is one.
    pub issuer: Option<&'a str>,
    /// The account name.
    pub account: &'a str,
}

impl CredentialName {
    /// Checks a name as sent to or stored on the applet.
    pub fn parse(name: &str) -> Result<Self, OathError> {
        if name.is_empty() {
            return Err(OathError::NameEmpty);
        }
        if name.len() > MAX_NAME_LEN {
            return Err(OathError::NameTooLong {
                name: name.to_owned(),
                len: name.len(),
            });
        }
        Ok(Self(name.to_owned()))
    }

    /// Reads a name from the card's bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, OathError> {
        let s =
            std::str::from_utf8(bytes).map_err(|_| OathError::NameNotUtf8 { len: bytes.len() })?;
        Self::parse(s)
    }

    /// Builds the name of a credential from its parts, refusing parts that would read back
    /// differently (an issuer containing `:`, an empty account, a period of 0, ...).
    pub fn build(
        oath_type: OathType,
        period: u32,
        issuer: Option<&str>,
        account: &str,
    ) -> Result<Self, OathError> {
        let issuer = issuer.filter(|i| !i.is_empty());
        let mut s = String::new();
        if oath_type == OathType::Totp && period != DEFAULT_PERIOD {
            s.push_str(&period.to_string());
            s.push('/');
        }
        if let Some(i) = issuer {
            s.push_str(i);
            s.push(':');
        }
        s.push_str(account);
        let name = Self::parse(&s)?;
        let parts = name.parts(oath_type);
        let expected_period = (oath_type == OathType::Totp).then_some(period);
        if parts.period != expected_period || parts.issuer != issuer || parts.account != account {
            return Err(OathError::AmbiguousName {
                period,
                issuer: issuer.map(str::to_owned),
                account: account.to_owned(),
            });
        }
        Ok(name)
    }

    /// Splits the name into period (TOTP only), issuer and account.
    pub fn parts(&self, oath_type: OathType) -> NameParts<'_> {
        let mut rest = self.0.as_str();
        let mut period = None;
        if oath_type == OathType::Totp {
            period = Some(DEFAULT_PERIOD);
            if let Some((prefix, tail)) = rest.split_once('/') {
                let digits = !prefix.is_empty() && prefix.bytes().all(|b| b.is_ascii_digit());
                if let (true, Ok(p)) = (digits, prefix.parse::<u32>()) {
                    if p > 0 && !tail.is_empty() {
                        period = Some(p);
                        rest = tail;
                    }
                }
            }
        }
        let (issuer, account) = match rest.split_once(':') {
            Some((i, a)) if !i.is_empty() && !a.is_empty() => (Some(i), a),
            _ => (None, rest),
        };
        NameParts {
            period,
            issuer,
            account,
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name's bytes, as sent to the card.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Display for CredentialName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for CredentialName {
    type Err = OathError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

// ---------------------------------------------------------------------------------------------
// Secrets
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Code computation (shared with the emulator)
// ---------------------------------------------------------------------------------------------

/// HMAC of `message` under `key`.
pub fn hmac_digest(algorithm: HashAlgorithm, key: &[u8], message: &[u8]) -> Zeroizing<Vec<u8>> {
    let key = hmac::Key::new(algorithm.hmac_algorithm(), key);
    Zeroizing::new(hmac::sign(&key, message).as_ref().to_vec())
}

/// RFC 4226 dynamic truncation: the 31-bit value at the offset named by the digest's last nibble.
/// Every HMAC digest (20, 32 or 64 bytes) has the four bytes it needs; for shorter input the
/// missing bytes count as zero.
pub fn dynamic_truncate(digest: &[u8]) -> u32 {
    let offset = digest.last().map_or(0, |b| usize::from(b & 0x0F));
    let value = digest
        .iter()
        .skip(offset)
        .chain(std::iter::repeat(&0u8))
        .take(4)
        .fold(0u32, |acc, b| (acc << 8) | u32::from(*b));
    value & 0x7FFF_FFFF
}

/// The code a digest truncates to.
pub fn truncate(digest: &[u8], digits: Digits) -> Code {
    Code::from_value(dynamic_truncate(digest), digits)
}

/// RFC 4226 HOTP.
pub fn hotp(secret: &OathSecret, algorithm: HashAlgorithm, counter: u64, digits: Digits) -> Code {
    truncate(
        &hmac_digest(algorithm, secret.expose(), &counter.to_be_bytes()),
        digits,
    )
}

/// RFC 6238 TOTP: HOTP over the time step.
pub fn totp(secret: &OathSecret, algorithm: HashAlgorithm, step: TimeStep, digits: Digits) -> Code {
    hotp(secret, algorithm, step.0, digits)
}

// ---------------------------------------------------------------------------------------------
// SELECT
// ---------------------------------------------------------------------------------------------

/// What SELECT tells about the applet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectInfo {
    /// Applet version.
    pub version: Version,
    /// The salt of the access key derivation, stable until RESET.
    pub salt: [u8; 8],
    /// The challenge to answer with VALIDATE, present when an access key is set.
    pub challenge: Option<[u8; 8]>,
    /// The access key's hash, when an access key is set.
    pub algorithm: Option<HashAlgorithm>,
}

impl SelectInfo {
    /// True when an access key is set: VALIDATE is needed before anything else.
    pub fn locked(&self) -> bool {
        self.challenge.is_some()
    }

    /// The device id shown to users: base64 of the first 16 bytes of SHA-256(salt), unpadded.
    pub fn device_id(&self) -> String {
        device_id(&self.salt)
    }

    /// Encodes the SELECT answer (for the applet).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32);
        push_tlv(&mut out, tag::VERSION, &self.version.to_bytes());
        push_tlv(&mut out, tag::NAME, &self.salt);
        if let Some(challenge) = &self.challenge {
            push_tlv(&mut out, tag::CHALLENGE, challenge);
            let alg = self.algorithm.unwrap_or(HashAlgorithm::Sha1);
            push_tlv(&mut out, tag::ALGORITHM, &[type_byte(OathType::Totp, alg)]);
        }
        out
    }
}

/// The device id of an applet whose salt is `salt`.
pub fn device_id(salt: &[u8; 8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, salt);
    let head = digest.as_ref().get(..16).unwrap_or_default();
    data_encoding::BASE64_NOPAD.encode(head)
}

/// `00 A4 04 00 07 <AID>`.
pub fn select() -> Command {
    Command::new(0x00, ins::SELECT, 0x04, 0x00).with_data(AID.to_vec())
}

/// Parses the answer to SELECT.
pub fn parse_select(data: &[u8]) -> Result<SelectInfo, OathError> {
    const M: &str = "SELECT";
    let items = tlvs(M, data)?;
    let version = fixed::<3>(M, "version", "3", required(M, &items, tag::VERSION)?)?;
    let salt = fixed::<8>(M, "salt", "8", required(M, &items, tag::NAME)?)?;
    let challenge = tlv::find(&items, tag::CHALLENGE)
        .map(|c| fixed::<8>(M, "challenge", "8", c))
        .transpose()?;
    let algorithm = match tlv::find(&items, tag::ALGORITHM) {
        Some(&[b]) => Some(HashAlgorithm::from_byte(b)?),
        Some(other) => {
            return Err(OathError::BadLength {
                message: M,
                field: "algorithm",
                expected: "1",
                got: other.len(),
            })
        }
        None => challenge.map(|_| HashAlgorithm::Sha1),
    };
    Ok(SelectInfo {
        version: version.into(),
        salt,
        challenge,
        algorithm,
    })
}

// ---------------------------------------------------------------------------------------------
// Access key: SET CODE, VALIDATE
// ---------------------------------------------------------------------------------------------

/// SET CODE with `key`: the key, a host `challenge` and the key's answer to it (so the applet
/// can check both sides compute the same HMAC). Carries the key: built as secret data.
pub fn set_code(key: &AccessKey, challenge: &[u8; 8]) -> Command {
    let mut data = Zeroizing::new(Vec::with_capacity(2 + 17 + 10 + 22));
    let mut key_field = Zeroizing::new(Vec::with_capacity(17));
    key_field.push(type_byte(OathType::Totp, HashAlgorithm::Sha1));
    key_field.extend_from_slice(key.expose());
    push_tlv(&mut data, tag::KEY, &key_field);
    push_tlv(&mut data, tag::CHALLENGE, challenge);
    push_tlv(
        &mut data,
        tag::RESPONSE,
        &key.respond(HashAlgorithm::Sha1, challenge),
    );
    Command::new(0x00, ins::SET_CODE, 0x00, 0x00).with_secret_data(data)
}

/// SET CODE with an empty key: removes the access key.
pub fn unset_code() -> Command {
    Command::new(0x00, ins::SET_CODE, 0x00, 0x00).with_data(vec![tag::KEY, 0x00])
}

/// A decoded SET CODE request (for the applet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetCodeRequest {
    /// Remove the access key.
    Remove,
    /// Set a new key, proven by `response` = HMAC(key, challenge).
    Set {
        /// The key's hash.
        algorithm: HashAlgorithm,
        /// The key bytes.
        key: OathSecret,
        /// The host's challenge.
        challenge: Vec<u8>,
        /// The host's HMAC of the challenge.
        response: OathSecret,
    },
}

impl SetCodeRequest {
    /// Decodes SET CODE data.
    pub fn decode(data: &[u8]) -> Result<Self, OathError> {
        const M: &str = "SET CODE";
        let items = tlvs(M, data)?;
        let key = required(M, &items, tag::KEY)?;
        let Some((&type_alg, key_bytes)) = key.split_first() else {
            return Ok(Self::Remove);
        };
        let algorithm = HashAlgorithm::from_byte(type_alg)?;
        if key_bytes.is_empty() {
            return Err(OathError::BadLength {
                message: M,
                field: "key",
                expected: "at least 1",
                got: 0,
            });
        }
        let challenge = required(M, &items, tag::CHALLENGE)?;
        let response = required(M, &items, tag::RESPONSE)?;
        Ok(Self::Set {
            algorithm,
            key: OathSecret(Zeroizing::new(key_bytes.to_vec())),
            challenge: challenge.to_vec(),
            response: OathSecret(Zeroizing::new(response.to_vec())),
        })
    }
}

/// VALIDATE: the answer to the card's SELECT `challenge` under `key`, and a fresh host challenge
/// the card must answer in turn.
pub fn validate(
    key: &AccessKey,
    algorithm: HashAlgorithm,
    card_challenge: &[u8],
    host_challenge: &[u8; 8],
) -> Command {
    let mut data = Zeroizing::new(Vec::with_capacity(2 + 64 + 10));
    push_tlv(
        &mut data,
        tag::RESPONSE,
        &key.respond(algorithm, card_challenge),
    );
    push_tlv(&mut data, tag::CHALLENGE, host_challenge);
    Command::new(0x00, ins::VALIDATE, 0x00, 0x00).with_secret_data(data)
}

/// Checks, in constant time, the card's answer to VALIDATE: `75 <HMAC(key, host challenge)>`.
pub fn verify_validate(
    key: &AccessKey,
    algorithm: HashAlgorithm,
    host_challenge: &[u8; 8],
    data: &[u8],
) -> Result<(), OathError> {
    const M: &str = "VALIDATE";
    let items = tlvs(M, data)?;
    let got = required(M, &items, tag::RESPONSE)?;
    let expected = key.respond(algorithm, host_challenge);
    if bool::from(got.ct_eq(expected.as_slice())) {
        Ok(())
    } else {
        Err(OathError::CardAuthFailed)
    }
}

/// A decoded VALIDATE request (for the applet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidateRequest {
    /// The host's answer to the SELECT challenge.
    pub response: OathSecret,
    /// The host's challenge.
    pub challenge: Vec<u8>,
}

impl ValidateRequest {
    /// Decodes VALIDATE data.
    pub fn decode(data: &[u8]) -> Result<Self, OathError> {
        const M: &str = "VALIDATE";
        let items = tlvs(M, data)?;
        Ok(Self {
            response: OathSecret(Zeroizing::new(required(M, &items, tag::RESPONSE)?.to_vec())),
            challenge: required(M, &items, tag::CHALLENGE)?.to_vec(),
        })
    }
}

/// Encodes the applet's VALIDATE answer.
pub fn encode_validate_response(response: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(response.len() + 2));
    push_tlv(&mut out, tag::RESPONSE, response);
    out
}

// ---------------------------------------------------------------------------------------------
// RESET, DELETE, RENAME, LIST
// ---------------------------------------------------------------------------------------------

/// `00 04 DE AD`.
pub fn reset() -> Command {
    Command::new(0x00, ins::RESET, 0xDE, 0xAD)
}

/// DELETE `name`.
pub fn delete(name: &CredentialName) -> Command {
    let mut data = Vec::with_capacity(name.as_bytes().len() + 2);
    push_tlv(&mut data, tag::NAME, name.as_bytes());
    Command::new(0x00, ins::DELETE, 0x00, 0x00).with_data(data)
}

/// RENAME `old` to `new`.
pub fn rename(old: &CredentialName, new: &CredentialName) -> Command {
    let mut data = Vec::with_capacity(old.as_bytes().len() + new.as_bytes().len() + 4);
    push_tlv(&mut data, tag::NAME, old.as_bytes());
    push_tlv(&mut data, tag::NAME, new.as_bytes());
    Command::new(0x00, ins::RENAME, 0x00, 0x00).with_data(data)
}

/// Decodes the data of a request that names credentials: DELETE (one name), RENAME (two).
/// Any other tag is refused.
pub fn decode_names(message: &'static str, data: &[u8]) -> Result<Vec<CredentialName>, OathError> {
    tlvs(message, data)?
        .into_iter()
        .map(|t| {
            if t.tag == tag::NAME {
                CredentialName::from_bytes(t.value)
            } else {
                Err(OathError::UnexpectedTag {
                    message,
                    tag: t.tag,
                })
            }
        })
        .collect()
}

/// `00 A1 00 00`.
pub fn list() -> Command {
    Command::new(0x00, ins::LIST, 0x00, 0x00)
}

/// One LIST entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListEntry {
    /// The credential's name.
    pub name: CredentialName,
    /// HOTP or TOTP.
    pub oath_type: OathType,
    /// The hash.
    pub algorithm: HashAlgorithm,
}

/// Encodes LIST entries (for the applet): `72 <len+1> <type|alg> <name>` each.
pub fn encode_list(entries: &[ListEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * 24);
    for e in entries {
        let mut value = Vec::with_capacity(e.name.as_bytes().len() + 1);
        value.push(type_byte(e.oath_type, e.algorithm));
        value.extend_from_slice(e.name.as_bytes());
        push_tlv(&mut out, tag::NAME_LIST, &value);
    }
    out
}

/// Parses the answer to LIST.
pub fn parse_list(data: &[u8]) -> Result<Vec<ListEntry>, OathError> {
    const M: &str = "LIST";
    tlvs(M, data)?
        .into_iter()
        .map(|t| {
            if t.tag != tag::NAME_LIST {
                return Err(OathError::UnexpectedTag {
                    message: M,
                    tag: t.tag,
                });
            }
            let Some((&type_alg, name)) = t.value.split_first() else {
                return Err(OathError::BadLength {
                    message: M,
                    field: "entry",
                    expected: "at least 2",
                    got: 0,
                });
            };
            Ok(ListEntry {
                name: CredentialName::from_bytes(name)?,
                oath_type: OathType::from_byte(type_alg)?,
                algorithm: HashAlgorithm::from_byte(type_alg)?,
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// PUT
// ---------------------------------------------------------------------------------------------

/// A credential to store with PUT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutRequest {
    /// The name (`[<period>/][<issuer>:]<account>`).
    pub name: CredentialName,
    /// HOTP or TOTP.
    pub oath_type: OathType,
    /// The hash.
    pub algorithm: HashAlgorithm,
    /// Digits of the codes.
    pub digits: Digits,
    /// The seed.
    pub secret: OathSecret,
    /// Require a touch for every code.
    pub touch: bool,
    /// Only accept increasing challenges.
    pub increasing: bool,
    /// HOTP initial counter (sent as IMF when non-zero).
    pub counter: u32,
}

impl PutRequest {
    /// A TOTP credential with the usual settings: SHA-1, 6 digits, no touch.
    pub fn totp(name: CredentialName, secret: OathSecret) -> Self {
        Self {
            name,
            oath_type: OathType::Totp,
            algorithm: HashAlgorithm::Sha1,
            digits: Digits::SIX,
            secret,
            touch: false,
            increasing: false,
            counter: 0,
        }
    }

    /// The property byte.
    pub fn properties(&self) -> u8 {
        let mut p = 0;
        if self.increasing {
            p |= property::INCREASING;
        }
        if self.touch {
            p |= property::TOUCH;
        }
        p
    }

    /// Encodes the PUT data. The key is sent [prepared](OathSecret::prepared).
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let key = self.secret.prepared(self.algorithm);
        let mut data = Zeroizing::new(Vec::with_capacity(key.len() + 80));
        push_tlv(&mut data, tag::NAME, self.name.as_bytes());
        let mut key_field = Zeroizing::new(Vec::with_capacity(key.len() + 2));
        key_field.push(type_byte(self.oath_type, self.algorithm));
        key_field.push(self.digits.get());
        key_field.extend_from_slice(key.expose());
        push_tlv(&mut data, tag::KEY, &key_field);
        let props = self.properties();
        if props != 0 {
            tlv::write_bare(&mut data, tag::PROPERTY, props);
        }
        if self.oath_type == OathType::Hotp && self.counter != 0 {
            push_tlv(&mut data, tag::IMF, &self.counter.to_be_bytes());
        }
        data
    }

    /// The PUT command; its data carries the seed, so it is built as secret data.
    pub fn command(&self) -> Command {
        Command::new(0x00, ins::PUT, 0x00, 0x00).with_secret_data(self.encode())
    }

    /// Decodes PUT data (for the applet). The key is kept as sent.
    pub fn decode(data: &[u8]) -> Result<Self, OathError> {
        const M: &str = "PUT";
        let items = tlv::parse_with_bare(data, &[tag::PROPERTY])
            .map_err(|source| OathError::Tlv { message: M, source })?;
        let mut seen = [false; 4];
        for t in &items {
            let slot = match t.tag {
                tag::NAME => 0,
                tag::KEY => 1,
                tag::PROPERTY => 2,
                tag::IMF => 3,
                other => {
                    return Err(OathError::UnexpectedTag {
                        message: M,
                        tag: other,
                    })
                }
            };
            if std::mem::replace(&mut seen[slot], true) {
                return Err(OathError::UnexpectedTag {
                    message: M,
                    tag: t.tag,
                });
            }
        }
        let name = CredentialName::from_bytes(required(M, &items, tag::NAME)?)?;
        let key = required(M, &items, tag::KEY)?;
        let (&type_alg, rest) = key.split_first().ok_or(OathError::BadLength {
            message: M,
            field: "key",
            expected: "at least 2",
            got: key.len(),
        })?;
        let (&digits, secret) = rest.split_first().ok_or(OathError::BadLength {
            message: M,
            field: "key",
            expected: "at least 2",
            got: key.len(),
        })?;
        let oath_type = OathType::from_byte(type_alg)?;
        let algorithm = HashAlgorithm::from_byte(type_alg)?;
        let digits = Digits::new(digits)?;
        let props = match tlv::find(&items, tag::PROPERTY) {
            Some(&[p]) => p,
            Some(other) => {
                return Err(OathError::BadLength {
                    message: M,
                    field: "property",
                    expected: "1",
                    got: other.len(),
                })
            }
            None => 0,
        };
        if props & !(property::INCREASING | property::TOUCH) != 0 {
            return Err(OathError::UnknownProperty { byte: props });
        }
        let counter = tlv::find(&items, tag::IMF)
            .map(|v| fixed::<4>(M, "IMF", "4", v).map(u32::from_be_bytes))
            .transpose()?
            .unwrap_or(0);
        Ok(Self {
            name,
            oath_type,
            algorithm,
            digits,
            secret: OathSecret(Zeroizing::new(secret.to_vec())),
            touch: props & property::TOUCH != 0,
            increasing: props & property::INCREASING != 0,
            counter,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// CALCULATE, CALCULATE ALL
// ---------------------------------------------------------------------------------------------

/// CALCULATE `name` over `challenge`, asking for the truncated answer (P2 `01`) or the full
/// HMAC (P2 `00`). TOTP challenges are [`TimeStep::challenge`]; HOTP challenges are empty.
pub fn calculate(name: &CredentialName, challenge: &[u8], truncated: bool) -> Command {
    let mut data = Vec::with_capacity(name.as_bytes().len() + challenge.len() + 4);
    push_tlv(&mut data, tag::NAME, name.as_bytes());
    push_tlv(&mut data, tag::CHALLENGE, challenge);
    Command::new(0x00, ins::CALCULATE, 0x00, u8::from(truncated)).with_data(data)
}

/// A decoded CALCULATE request (for the applet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalculateRequest {
    /// The credential.
    pub name: CredentialName,
    /// The challenge (empty for HOTP, or absent).
    pub challenge: Vec<u8>,
}

impl CalculateRequest {
    /// Decodes CALCULATE data; a missing challenge reads as empty.
    pub fn decode(data: &[u8]) -> Result<Self, OathError> {
        const M: &str = "CALCULATE";
        let items = tlvs(M, data)?;
        Ok(Self {
            name: CredentialName::from_bytes(required(M, &items, tag::NAME)?)?,
            challenge: tlv::find(&items, tag::CHALLENGE)
                .unwrap_or_default()
                .to_vec(),
        })
    }
}

/// Encodes a truncated answer: `76 05 <digits> <4 bytes, top bit clear>`.
pub fn encode_truncated(out: &mut Vec<u8>, digits: Digits, value: u32) {
    let mut v = [0u8; 5];
    v[0] = digits.get();
    v[1..].copy_from_slice(&(value & 0x7FFF_FFFF).to_be_bytes());
    push_tlv(out, tag::TRUNCATED, &v);
}

/// Encodes a full answer: `75 <len+1> <digits> <HMAC>`.
pub fn encode_full(out: &mut Vec<u8>, digits: Digits, hmac: &[u8]) {
    let mut v = Zeroizing::new(Vec::with_capacity(hmac.len() + 1));
    v.push(digits.get());
    v.extend_from_slice(hmac);
    push_tlv(out, tag::RESPONSE, &v);
}

fn split_digits<'a>(
    message: &'static str,
    value: &'a [u8],
) -> Result<(Digits, &'a [u8]), OathError> {
    let (&d, rest) = value.split_first().ok_or(OathError::BadLength {
        message,
        field: "response",
        expected: "at least 1",
        got: 0,
    })?;
    Ok((Digits::new(d)?, rest))
}

fn read_truncated(message: &'static str, value: &[u8]) -> Result<Code, OathError> {
    let (digits, rest) = split_digits(message, value)?;
    let v = fixed::<4>(message, "truncated response", "5", rest)?;
    Ok(Code::from_value(u32::from_be_bytes(v), digits))
}

fn read_full(message: &'static str, value: &[u8]) -> Result<FullResponse, OathError> {
    let (digits, rest) = split_digits(message, value)?;
    if !matches!(rest.len(), 20 | 32 | 64) {
        return Err(OathError::BadLength {
            message,
            field: "full response",
            expected: "21, 33 or 65",
            got: value.len(),
        });
    }
    Ok(FullResponse {
        digits,
        hmac: OathSecret(Zeroizing::new(rest.to_vec())),
    })
}

fn single<'a>(message: &'static str, data: &'a [u8], want: u8) -> Result<&'a [u8], OathError> {
    match tlvs(message, data)?.as_slice() {
        [t] if t.tag == want => Ok(t.value),
        [t] => Err(OathError::UnexpectedTag {
            message,
            tag: t.tag,
        }),
        [] => Err(OathError::MissingTag { message, tag: want }),
        [_, t, ..] => Err(OathError::UnexpectedTag {
            message,
            tag: t.tag,
        }),
    }
}

/// Parses a truncated CALCULATE answer into a code.
pub fn parse_calculate_truncated(data: &[u8]) -> Result<Code, OathError> {
    const M: &str = "CALCULATE";
    read_truncated(M, single(M, data, tag::TRUNCATED)?)
}

/// Parses a full CALCULATE answer.
pub fn parse_calculate_full(data: &[u8]) -> Result<FullResponse, OathError> {
    const M: &str = "CALCULATE";
    read_full(M, single(M, data, tag::RESPONSE)?)
}

/// CALCULATE ALL over `challenge`, truncated (`00 A4 00 01`).
pub fn calculate_all(challenge: &[u8; 8]) -> Command {
    let mut data = Vec::with_capacity(10);
    push_tlv(&mut data, tag::CHALLENGE, challenge);
    Command::new(0x00, ins::CALCULATE_ALL, 0x00, 0x01).with_data(data)
}

/// What CALCULATE ALL says about one credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CalculateOutcome {
    /// A TOTP code (truncated form).
    Code(Code),
    /// A TOTP HMAC (full form, P2 `00`).
    Full(FullResponse),
    /// A HOTP credential: not calculated (that would move its counter).
    Hotp {
        /// Its digits.
        digits: Digits,
    },
    /// A touch credential: not calculated; use CALCULATE, which waits for the touch.
    TouchRequired {
        /// Its digits.
        digits: Digits,
    },
}

/// One CALCULATE ALL entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalculateAllEntry {
    /// The credential.
    pub name: CredentialName,
    /// Its answer.
    pub outcome: CalculateOutcome,
}

/// Encodes CALCULATE ALL entries (for the applet).
pub fn encode_calculate_all(entries: &[CalculateAllEntry]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(entries.len() * 80));
    for e in entries {
        push_tlv(&mut out, tag::NAME, e.name.as_bytes());
        match &e.outcome {
            CalculateOutcome::Code(code) => {
                // A code is re-encoded through its value; this path is for tests and the
                // round trip only, the applet encodes values directly.
                let value = code.as_str().parse::<u32>().unwrap_or_default();
                let digits = Digits::new(code.len().try_into().unwrap_or(0)).unwrap_or(Digits::SIX);
                encode_truncated(&mut out, digits, value);
            }
            CalculateOutcome::Full(full) => encode_full(&mut out, full.digits, full.hmac.expose()),
            CalculateOutcome::Hotp { digits } => push_tlv(&mut out, tag::HOTP, &[digits.get()]),
            CalculateOutcome::TouchRequired { digits } => {
                push_tlv(&mut out, tag::TOUCH, &[digits.get()])
            }
        }
    }
    out
}

/// Parses the answer to CALCULATE ALL: pairs of a name and one of `76`, `75`, `77`, `7C`.
pub fn parse_calculate_all(data: &[u8]) -> Result<Vec<CalculateAllEntry>, OathError> {
    const M: &str = "CALCULATE ALL";
    let items = tlvs(M, data)?;
    let mut out = Vec::with_capacity(items.len() / 2);
    let mut it = items.into_iter();
    while let Some(name) = it.next() {
        if name.tag != tag::NAME {
            return Err(OathError::UnexpectedTag {
                message: M,
                tag: name.tag,
            });
        }
        let name = CredentialName::from_bytes(name.value)?;
        let answer = it.next().ok_or(OathError::MissingTag {
            message: M,
            tag: tag::TRUNCATED,
        })?;
        let outcome = match answer.tag {
            tag::TRUNCATED => CalculateOutcome::Code(read_truncated(M, answer.value)?),
            tag::RESPONSE => CalculateOutcome::Full(read_full(M, answer.value)?),
            tag::HOTP | tag::TOUCH => {
                let digits = match answer.value {
                    [d] => Digits::new(*d)?,
                    other => {
                        return Err(OathError::BadLength {
                            message: M,
                            field: "digits",
                            expected: "1",
                            got: other.len(),
                        })
                    }
                };
                if answer.tag == tag::HOTP {
                    CalculateOutcome::Hotp { digits }
                } else {
                    CalculateOutcome::TouchRequired { digits }
                }
            }
            other => {
                return Err(OathError::UnexpectedTag {
                    message: M,
                    tag: other,
                })
            }
        };
        out.push(CalculateAllEntry { name, outcome });
    }
    Ok(out)
}

/// `00 A5 00 00`: the next part of a long answer.
pub fn send_remaining() -> Command {
    Command::new(0x00, ins::SEND_REMAINING, 0x00, 0x00)
}

// ---------------------------------------------------------------------------------------------
// Session
// ---------------------------------------------------------------------------------------------

/// The applet after SELECT, when it needs no password or has been validated: every operation is
/// available.
pub struct OathSession<T: CardTransport> {
    transport: T,
    info: SelectInfo,
}

/// The applet after SELECT when an access key is set: only [`validate`](Self::validate) and
/// [`reset`](Self::reset) are possible.
pub struct LockedOathSession<T: CardTransport> {
    transport: T,
    info: SelectInfo,
}

/// The outcome of SELECT.
pub enum Selected<T: CardTransport> {
    /// No access key set: ready.
    Ready(OathSession<T>),
    /// An access key is set: VALIDATE first.
    Locked(LockedOathSession<T>),
}

impl<T: CardTransport> fmt::Debug for OathSession<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OathSession")
            .field("reader", &self.transport.reader())
            .field("info", &self.info)
            .finish()
    }
}

impl<T: CardTransport> fmt::Debug for LockedOathSession<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockedOathSession")
            .field("reader", &self.transport.reader())
            .field("info", &self.info)
            .finish()
    }
}

impl<T: CardTransport> fmt::Debug for Selected<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ready(s) => s.fmt(f),
            Self::Locked(s) => s.fmt(f),
        }
    }
}

/// Sends `command` as the session does: chaining, `61xx` followed with SEND REMAINING, and any
/// final status word but `9000` turned into [`TokenError::Refused`] (keeping the named word).
pub fn transact<T: CardTransport + ?Sized>(
    transport: &mut T,
    command: &Command,
) -> Result<Response, TokenError> {
    let response = exchange(transport, command, ins::SEND_REMAINING)?;
    if response.sw == StatusWord::Success {
        Ok(response)
    } else {
        Err(TokenError::Refused {
            reader: transport.reader().to_owned(),
            ins: command.ins,
            sw: response.sw,
        })
    }
}

fn malformed<T: CardTransport + ?Sized>(transport: &T, ins: u8, e: OathError) -> TokenError {
    TokenError::Malformed {
        reader: transport.reader().to_owned(),
        ins,
        what: e.to_string(),
    }
}

fn random_challenge<T: CardTransport + ?Sized>(
    transport: &T,
    ins: u8,
) -> Result<[u8; 8], TokenError> {
    let mut c = [0u8; 8];
    SystemRandom::new()
        .fill(&mut c)
        .map_err(|_| TokenError::Malformed {
            reader: transport.reader().to_owned(),
            ins,
            what: "the system random generator failed; no host challenge".to_owned(),
        })?;
    Ok(c)
}

fn do_select<T: CardTransport>(mut transport: T) -> Result<Selected<T>, TokenError> {
    let response = transact(&mut transport, &select())?;
    let info = parse_select(&response.data).map_err(|e| malformed(&transport, ins::SELECT, e))?;
    Ok(if info.locked() {
        Selected::Locked(LockedOathSession { transport, info })
    } else {
        Selected::Ready(OathSession { transport, info })
    })
}

fn do_reset<T: CardTransport>(mut transport: T) -> Result<OathSession<T>, TokenError> {
    transact(&mut transport, &reset())?;
    match do_select(transport)? {
        Selected::Ready(s) => Ok(s),
        Selected::Locked(s) => Err(TokenError::Malformed {
            reader: s.transport.reader().to_owned(),
            ins: ins::SELECT,
            what: "the applet still asks for a password after RESET".to_owned(),
        }),
    }
}

impl<T: CardTransport> Selected<T> {
    /// The SELECT answer.
    pub fn info(&self) -> &SelectInfo {
        match self {
            Self::Ready(s) => &s.info,
            Self::Locked(s) => &s.info,
        }
    }

    /// A usable session: ready as is, or after VALIDATE with `key` when locked (no key given
    /// for a locked applet answers like the card would, with `6982`).
    pub fn unlock(self, key: Option<&AccessKey>) -> Result<OathSession<T>, TokenError> {
        match (self, key) {
            (Self::Ready(s), _) => Ok(s),
            (Self::Locked(s), Some(key)) => s.validate(key),
            (Self::Locked(s), None) => Err(TokenError::Refused {
                reader: s.transport.reader().to_owned(),
                ins: ins::VALIDATE,
                sw: StatusWord::SecurityStatusNotSatisfied,
            }),
        }
    }
}

impl<T: CardTransport> LockedOathSession<T> {
    /// The SELECT answer (salt for the key derivation, challenge).
    pub fn info(&self) -> &SelectInfo {
        &self.info
    }

    /// Mutual authentication: answers the card's challenge with `key` and checks the card's
    /// answer to a fresh host challenge. A wrong key is refused by the card (`6A80`); a card
    /// whose answer is wrong is reported as malformed. The challenge is spent either way: pass
    /// the transport by `&mut` to SELECT again after a failure.
    pub fn validate(mut self, key: &AccessKey) -> Result<OathSession<T>, TokenError> {
        let algorithm = self.info.algorithm.unwrap_or(HashAlgorithm::Sha1);
        let card_challenge = self.info.challenge.unwrap_or_default();
        let host_challenge = random_challenge(&self.transport, ins::VALIDATE)?;
        let response = transact(
            &mut self.transport,
            &validate(key, algorithm, &card_challenge, &host_challenge),
        )?;
        verify_validate(key, algorithm, &host_challenge, &response.data)
            .map_err(|e| malformed(&self.transport, ins::VALIDATE, e))?;
        Ok(OathSession {
            transport: self.transport,
            info: self.info,
        })
    }

    /// RESET (allowed without the password): wipes every credential and the password, then
    /// selects the applet again.
    pub fn reset(self) -> Result<OathSession<T>, TokenError> {
        do_reset(self.transport)
    }

    /// Gives the transport back.
    pub fn into_transport(self) -> T {
        self.transport
    }
}

impl<T: CardTransport> OathSession<T> {
    /// SELECTs the OATH applet.
    pub fn select(transport: T) -> Result<Selected<T>, TokenError> {
        do_select(transport)
    }

    /// The SELECT answer (version, salt, device id).
    pub fn info(&self) -> &SelectInfo {
        &self.info
    }

    /// Gives the transport back.
    pub fn into_transport(self) -> T {
        self.transport
    }

    fn parsed<V>(
        &mut self,
        command: &Command,
        parse: impl FnOnce(&[u8]) -> Result<V, OathError>,
    ) -> Result<V, TokenError> {
        let response = transact(&mut self.transport, command)?;
        parse(&response.data).map_err(|e| malformed(&self.transport, command.ins, e))
    }

    /// LIST.
    pub fn list(&mut self) -> Result<Vec<ListEntry>, TokenError> {
        self.parsed(&list(), parse_list)
    }

    /// PUT (adds, or overwrites a credential of the same name).
    pub fn put(&mut self, request: &PutRequest) -> Result<(), TokenError> {
        transact(&mut self.transport, &request.command()).map(drop)
    }

    /// DELETE.
    pub fn delete(&mut self, name: &CredentialName) -> Result<(), TokenError> {
        transact(&mut self.transport, &delete(name)).map(drop)
    }

    /// RENAME.
    pub fn rename(&mut self, old: &CredentialName, new: &CredentialName) -> Result<(), TokenError> {
        transact(&mut self.transport, &rename(old, new)).map(drop)
    }

    /// CALCULATE with an explicit challenge, truncated to a code.
    pub fn calculate(
        &mut self,
        name: &CredentialName,
        challenge: &[u8],
    ) -> Result<Code, TokenError> {
        self.parsed(&calculate(name, challenge, true), parse_calculate_truncated)
    }

    /// CALCULATE a TOTP credential for time step `step`.
    pub fn calculate_totp(
        &mut self,
        name: &CredentialName,
        step: TimeStep,
    ) -> Result<Code, TokenError> {
        self.calculate(name, &step.challenge())
    }

    /// CALCULATE a HOTP credential (the card uses and advances its counter).
    pub fn calculate_hotp(&mut self, name: &CredentialName) -> Result<Code, TokenError> {
        self.calculate(name, &[])
    }

    /// CALCULATE, full HMAC answer.
    pub fn calculate_full(
        &mut self,
        name: &CredentialName,
        challenge: &[u8],
    ) -> Result<FullResponse, TokenError> {
        self.parsed(&calculate(name, challenge, false), parse_calculate_full)
    }

    /// CALCULATE ALL for time step `step` (TOTP codes; HOTP and touch credentials are only
    /// named).
    pub fn calculate_all(&mut self, step: TimeStep) -> Result<Vec<CalculateAllEntry>, TokenError> {
        self.parsed(&calculate_all(&step.challenge()), parse_calculate_all)
    }

    /// SET CODE: protects the applet with `key` (derive it with [`AccessKey::derive`] from the
    /// password and [`SelectInfo::salt`]). This session stays usable.
    pub fn set_code(&mut self, key: &AccessKey) -> Result<(), TokenError> {
        let challenge = random_challenge(&self.transport, ins::SET_CODE)?;
        transact(&mut self.transport, &set_code(key, &challenge)).map(drop)
    }

    /// SET CODE with no key: removes the password.
    pub fn unset_code(&mut self) -> Result<(), TokenError> {
        transact(&mut self.transport, &unset_code()).map(drop)
    }

    /// RESET: wipes every credential and the password, then selects the applet again (the salt,
    /// and so the device id, changes).
    pub fn reset(self) -> Result<OathSession<T>, TokenError> {
        do_reset(self.transport)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn access_key_vector() {
        let key = AccessKey::derive(&Password::from("foobar"), &[0u8; 8]);
        assert_eq!(
            data_encoding::HEXLOWER.encode(key.expose()),
            "b07da1e7de87f89a87a2b598eaa2188c"
        );
    }

    #[test]
    fn parses_the_real_select_answer() {
        let data = [
            0x79, 0x03, 0x05, 0x02, 0x04, 0x71, 0x08, 0x4B, 0xB7, 0xA7, 0xFA, 0xD7, 0xAF, 0x40,
            0x1B,
        ];
        let info = parse_select(&data).unwrap();
        assert_eq!(info.version.to_string(), "5.2.4");
        assert!(!info.locked());
        assert_eq!(info.encode(), data);
        assert_eq!(info.device_id().len(), 22);
    }

    #[test]
    fn parses_the_real_list_answer() {
        let mut data = vec![0x72, 0x1B, 0x21];
        data.extend_from_slice(b"Microsoft:test@outlook.com");
        data.extend_from_slice(&[0x72, 0x16, 0x12]);
        data.extend_from_slice(b"Google:test@gmail.com");
        let list = parse_list(&data).unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].oath_type, OathType::Totp);
        assert_eq!(list[1].oath_type, OathType::Hotp);
        assert_eq!(list[1].algorithm, HashAlgorithm::Sha256);
        assert_eq!(list[1].name.parts(OathType::Hotp).issuer, Some("Google"));
        assert_eq!(encode_list(&list), data);
    }

    #[test]
    fn parses_the_real_calculate_all_answer() {
        let mut data = vec![0x71, 0x1A];
        data.extend_from_slice(b"Microsoft:test@outlook.com");
        data.extend_from_slice(&[
            0x75, 0x15, 0x06, 0x8A, 0x9B, 0x0D, 0xF3, 0xD7, 0x18, 0x43, 0x96, 0x40, 0xA6, 0x58,
            0x6F, 0x89, 0xD4, 0x03, 0x1D, 0xC4, 0xC4, 0x9F, 0x6C, 0x71, 0x15,
        ]);
        data.extend_from_slice(b"Apple:test@icloud.com");
        data.extend_from_slice(&[0x77, 0x01, 0x06]);
        let all = parse_calculate_all(&data).unwrap();
        assert!(matches!(all[0].outcome, CalculateOutcome::Full(_)));
        assert_eq!(
            all[1].outcome,
            CalculateOutcome::Hotp {
                digits: Digits::SIX
            }
        );
        assert_eq!(encode_calculate_all(&all).as_slice(), data.as_slice());
    }

    #[test]
    fn put_matches_the_real_trace() {
        // 5.2.4 trace: name, 73 10 21 06 9C 00.., 78 02.
        let mut name_key = vec![0x9C];
        name_key.resize(14, 0);
        let req = PutRequest {
            touch: true,
            ..PutRequest::totp(
                CredentialName::parse("Microsoft:test@outlook.com").unwrap(),
                OathSecret::from_bytes(Zeroizing::new(vec![0x9C])),
            )
        };
        let enc = req.encode();
        let mut want = vec![0x71, 0x1A];
        want.extend_from_slice(b"Microsoft:test@outlook.com");
        want.extend_from_slice(&[0x73, 0x10, 0x21, 0x06]);
        want.extend_from_slice(&name_key);
        want.extend_from_slice(&[0x78, 0x02]);
        assert_eq!(enc.as_slice(), want.as_slice());
    }

    #[test]
    fn long_keys_are_hashed_and_short_keys_padded() {
        let long = OathSecret::from_bytes(Zeroizing::new(vec![7u8; 65]));
        let p = long.prepared(HashAlgorithm::Sha1);
        assert_eq!(p.len(), 20);
        // Same HMAC either way.
        let msg = 5u64.to_be_bytes();
        assert_eq!(
            hmac_digest(HashAlgorithm::Sha1, long.expose(), &msg),
            hmac_digest(HashAlgorithm::Sha1, p.expose(), &msg)
        );
        let long512 = OathSecret::from_bytes(Zeroizing::new(vec![7u8; 128]));
        assert_eq!(long512.prepared(HashAlgorithm::Sha512).len(), 128);
        let short = OathSecret::from_bytes(Zeroizing::new(vec![1u8; 3]));
        assert_eq!(short.prepared(HashAlgorithm::Sha256).len(), 14);
        assert_eq!(
            hmac_digest(HashAlgorithm::Sha256, short.expose(), &msg),
            hmac_digest(
                HashAlgorithm::Sha256,
                short.prepared(HashAlgorithm::Sha256).expose(),
                &msg
            )
        );
    }

    #[test]
    fn credential_name_parts() {
        let n = CredentialName::parse("60/AWS:root@example").unwrap();
        let p = n.parts(OathType::Totp);
        assert_eq!(p.period, Some(60));
        assert_eq!(p.issuer, Some("AWS"));
        assert_eq!(p.account, "root@example");
        assert_eq!(n.parts(OathType::Hotp).issuer, Some("60/AWS"));
        let n = CredentialName::build(OathType::Totp, 30, Some("AWS"), "a@b").unwrap();
        assert_eq!(n.as_str(), "AWS:a@b");
        assert!(CredentialName::parse("").is_err());
        assert!(CredentialName::parse(&"x".repeat(65)).is_err());
        assert!(CredentialName::parse(&"x".repeat(64)).is_ok());
        assert!(matches!(
            CredentialName::build(OathType::Totp, 30, Some("a:b"), "c"),
            Err(OathError::AmbiguousName { .. })
        ));
        assert!(matches!(
            CredentialName::build(OathType::Totp, 30, None, "15/x"),
            Err(OathError::AmbiguousName { .. })
        ));
    }

    #[test]
    fn rfc4226_vectors() {
        let secret = OathSecret::from_bytes(Zeroizing::new(b"12345678901234567890".to_vec()));
        let want = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583",
            "399871", "520489",
        ];
        for (counter, want) in want.iter().enumerate() {
            assert_eq!(
                hotp(&secret, HashAlgorithm::Sha1, counter as u64, Digits::SIX).as_str(),
                *want
            );
        }
    }

    #[test]
    fn base32_secrets_as_providers_send_them() {
        let a = OathSecret::from_base32("gezd gnbv gy3t qojq").unwrap();
        let b = OathSecret::from_base32("GEZDGNBVGY3TQOJQ====").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.expose(), b"1234567890");
        let e = OathSecret::from_base32("!!!!").unwrap_err();
        assert!(!e.to_string().contains("!!!!"));
    }

    /// Every form a leaked secret could take in Debug output.
    fn leaks(debug: &str, secret: &[u8]) -> bool {
        let forms = [
            data_encoding::HEXUPPER.encode(secret),
            data_encoding::HEXLOWER.encode(secret),
            String::from_utf8_lossy(secret).into_owned(),
            format!("{secret:?}"),
            secret
                .iter()
                .map(|b| b.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        ];
        forms
            .iter()
            .any(|f| !f.is_empty() && debug.contains(f.as_str()))
    }

    #[test]
    fn secret_types_redact_debug() {
        let raw = b"SUPERSECRETSEED-0123456789".to_vec();
        let secret = OathSecret::from_bytes(Zeroizing::new(raw.clone()));
        let d = format!("{secret:?} {secret:#?}");
        assert!(!leaks(&d, &raw), "{d}");
        assert!(d.contains("redacted"));

        let password = Password::from("hunter2-correct-horse");
        let d = format!("{password:?}");
        assert!(!leaks(&d, b"hunter2-correct-horse"), "{d}");

        let key = AccessKey::derive(&password, &[7u8; 8]);
        let d = format!("{key:?}");
        assert!(!leaks(&d, key.expose()), "{d}");

        let code = Code::from_value(12_345_678, Digits::EIGHT);
        let d = format!("{code:?}");
        assert!(!d.contains("12345678"), "{d}");

        let full = FullResponse {
            digits: Digits::SIX,
            hmac: OathSecret::from_bytes(Zeroizing::new(vec![0xAB; 20])),
        };
        let d = format!("{full:?}");
        assert!(!leaks(&d, &[0xAB; 20]), "{d}");
    }

    #[test]
    fn commands_carrying_secrets_redact_debug() {
        let raw = b"SUPERSECRETSEED-0123456789".to_vec();
        let put = PutRequest::totp(
            CredentialName::parse("AWS:root").unwrap(),
            OathSecret::from_bytes(Zeroizing::new(raw.clone())),
        )
        .command();
        assert!(put.sensitive);
        let d = format!("{put:?}");
        assert!(!leaks(&d, &raw), "{d}");
        // The encoded bytes do carry the key, so the check above is meaningful.
        assert!(leaks(&format!("{:?}", put.data.as_slice()), &raw));

        let key = AccessKey::derive(&Password::from("hunter2"), &[1u8; 8]);
        let set = set_code(&key, &[9u8; 8]);
        assert!(set.sensitive);
        let d = format!("{set:?}");
        assert!(!leaks(&d, key.expose()), "{d}");

        let val = validate(&key, HashAlgorithm::Sha1, &[3u8; 8], &[4u8; 8]);
        assert!(val.sensitive);
        let proof = key.respond(HashAlgorithm::Sha1, &[3u8; 8]);
        let d = format!("{val:?}");
        assert!(!leaks(&d, &proof), "{d}");
    }
}
