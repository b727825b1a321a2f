//! The token layer's error: transport failures and card refusals are different variants, and
//! every variant names the reader and the instruction.

use super::apdu::{ApduError, StatusWord};
use super::transport::TransportError;

/// Why a conversation with a card failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The bytes could not be moved (reader gone, card removed, pcscd not running, ...).
    #[error("reader {reader:?}, instruction {ins:02X}: {source}")]
    Transport {
        /// The reader's name.
        reader: String,
        /// The instruction being sent.
        ins: u8,
        /// What failed underneath.
        #[source]
        source: TransportError,
    },
    /// The card answered with a status word other than success.
    #[error("reader {reader:?}, instruction {ins:02X}: the card refused with {sw}")]
    Refused {
        /// The reader's name.
        reader: String,
        /// The instruction the card refused.
        ins: u8,
        /// The status word it answered.
        sw: StatusWord,
    },
    /// The card answered something that is not a valid answer to the instruction.
    #[error("reader {reader:?}, instruction {ins:02X}: malformed answer: {what}")]
    Malformed {
        /// The reader's name.
        reader: String,
        /// The instruction that was answered.
        ins: u8,
        /// What was wrong with the answer.
        what: String,
    },
    /// The card kept answering `61xx` past every sane limit.
    #[error("reader {reader:?}, instruction {ins:02X}: the card kept sending more data ({rounds} rounds, {bytes} bytes); gave up")]
    EndlessResponse {
        /// The reader's name.
        reader: String,
        /// The instruction being answered.
        ins: u8,
        /// Rounds of `61xx` followed.
        rounds: usize,
        /// Bytes collected.
        bytes: usize,
    },
    /// A command could not be encoded (for instance, data too long for any APDU).
    #[error("instruction {ins:02X} could not be encoded: {source}")]
    Encode {
        /// The instruction.
        ins: u8,
        /// Why.
        #[source]
        source: ApduError,
    },
}
