//! Why OATH bytes or values could not be encoded or decoded.

use crate::token::tlv::TlvError;

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
    /// A credential name longer than [`MAX_NAME_LEN`](super::MAX_NAME_LEN) bytes.
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
