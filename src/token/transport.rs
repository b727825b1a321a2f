//! The seam between protocol code and cards: [`CardTransport`] moves bytes, nothing else.
//!
//! A PC/SC reader ([`super::pcsc`]) and the software YubiKey ([`crate::emulator`]) both implement
//! it, so the same client code and the same tests run against both. [`exchange`] adds the two
//! chaining mechanisms every client needs on top of any transport: command chaining for long
//! commands and `61xx` response chaining for long answers.

use zeroize::Zeroizing;

use super::apdu::{Command, LengthForm, Response, StatusWord};
use super::error::TokenError;

/// Why bytes could not be moved to or from a card. These are failures of the path, not refusals
/// by the card (those are status words, see [`TokenError::Refused`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The PC/SC service (pcscd) is not running or not reachable.
    #[error("the PC/SC service is not available (is pcscd running?): {detail}")]
    ServiceUnavailable {
        /// What the PC/SC layer said.
        detail: String,
    },
    /// The reader is gone (unplugged, or its driver stopped).
    #[error("reader {reader:?} is no longer available")]
    ReaderGone {
        /// The reader's name.
        reader: String,
    },
    /// There is no card in the reader.
    #[error("no card in reader {reader:?}")]
    NoCard {
        /// The reader's name.
        reader: String,
    },
    /// The card was removed (or reset by someone else) during the exchange.
    #[error("the card in reader {reader:?} was removed or reset")]
    CardRemoved {
        /// The reader's name.
        reader: String,
    },
    /// The card did not answer in time.
    #[error("the card in reader {reader:?} did not answer in time")]
    Timeout {
        /// The reader's name.
        reader: String,
    },
    /// Any other failure of the transport, with the underlying cause.
    #[error("transport failure on reader {reader:?}: {detail}")]
    Failed {
        /// The reader's name.
        reader: String,
        /// What failed.
        detail: String,
    },
}

/// A path to one card: command APDU bytes in, response APDU bytes out.
pub trait CardTransport {
    /// Sends one command APDU and returns the card's response APDU (data and status word).
    fn transmit(&mut self, command: &[u8]) -> Result<Zeroizing<Vec<u8>>, TransportError>;

    /// The name of the reader the card sits in, for error messages.
    fn reader(&self) -> &str;
}

impl<T: CardTransport + ?Sized> CardTransport for &mut T {
    fn transmit(&mut self, command: &[u8]) -> Result<Zeroizing<Vec<u8>>, TransportError> {
        (**self).transmit(command)
    }

    fn reader(&self) -> &str {
        (**self).reader()
    }
}

impl<T: CardTransport + ?Sized> CardTransport for Box<T> {
    fn transmit(&mut self, command: &[u8]) -> Result<Zeroizing<Vec<u8>>, TransportError> {
        (**self).transmit(command)
    }

    fn reader(&self) -> &str {
        (**self).reader()
    }
}

/// The most data [`exchange`] collects through `61xx` chaining before giving up on a card that
/// keeps saying "more".
pub const MAX_RESPONSE: usize = 64 * 1024;
/// The most `61xx` rounds [`exchange`] follows.
pub const MAX_ROUNDS: usize = 512;

/// Sends `command` (split by command chaining when its data exceeds a short APDU) and collects a
/// long answer by following `61xx` with `00 <remaining_ins> 00 00` (`A5` for the OATH applet,
/// `C0` GET RESPONSE otherwise). A `6Cxx` answer is retried once with the Le the card asked for.
///
/// Returns the whole response with its final status word, which the caller interprets: only
/// transport failures and malformed or endless answers are errors here.
pub fn exchange<T: CardTransport + ?Sized>(
    transport: &mut T,
    command: &Command,
    remaining_ins: u8,
) -> Result<Response, TokenError> {
    let ins = command.ins;
    let parts = command.chain();
    let last = parts.len() - 1;
    let mut response = Response::status(StatusWord::Success);
    for (i, part) in parts.iter().enumerate() {
        response = send_one(transport, part)?;
        if i < last && !response.sw.is_success() {
            // The card refused a middle part of a chain: that refusal is the answer.
            return Ok(response);
        }
    }
    if let StatusWord::WrongLe(le) = response.sw {
        let mut retry = parts[last].clone();
        retry.le = Some(if le == 0 { 256 } else { u32::from(le) });
        response = send_one(transport, &retry)?;
    }
    let mut data = Zeroizing::new(std::mem::take(&mut *response.data));
    let mut rounds = 0;
    while let StatusWord::MoreData(n) = response.sw {
        rounds += 1;
        if rounds > MAX_ROUNDS || data.len() > MAX_RESPONSE {
            return Err(TokenError::EndlessResponse {
                reader: transport.reader().to_owned(),
                ins,
                rounds,
                bytes: data.len(),
            });
        }
        let more = Command::new(0x00, remaining_ins, 0x00, 0x00).with_le(if n == 0 {
            256
        } else {
            u32::from(n)
        });
        response = send_one(transport, &more)?;
        data.extend_from_slice(&response.data);
    }
    Ok(Response {
        data,
        sw: response.sw,
    })
}

/// [`exchange`], then any final status word but `9000` turned into [`TokenError::Refused`]
/// (keeping the named word): how the applet clients send a command.
pub fn transact<T: CardTransport + ?Sized>(
    transport: &mut T,
    command: &Command,
    remaining_ins: u8,
) -> Result<Response, TokenError> {
    let response = exchange(transport, command, remaining_ins)?;
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

fn send_one<T: CardTransport + ?Sized>(
    transport: &mut T,
    command: &Command,
) -> Result<Response, TokenError> {
    let bytes = command
        .to_bytes(LengthForm::Auto)
        .map_err(|source| TokenError::Encode {
            ins: command.ins,
            source,
        })?;
    let answer = transport
        .transmit(&bytes)
        .map_err(|source| TokenError::Transport {
            reader: transport.reader().to_owned(),
            ins: command.ins,
            source,
        })?;
    Response::parse(&answer).map_err(|e| TokenError::Malformed {
        reader: transport.reader().to_owned(),
        ins: command.ins,
        what: e.to_string(),
    })
}
