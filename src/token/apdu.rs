//! Command and response APDUs (ISO/IEC 7816-4): every encoding a client may send and a card must
//! accept (cases 1 to 4, short and extended lengths, command chaining), named status words and
//! `61xx` response chaining.
//!
//! Pure encode/decode: nothing here does I/O. Command data may carry secrets (OATH keys, access
//! keys), so it lives in [`Zeroizing`] buffers and a command marked [`Command::sensitive`] never
//! shows its data in `Debug`.

use std::fmt;

use zeroize::Zeroizing;

/// The largest data field of a short APDU.
pub const SHORT_MAX: usize = 255;
/// The largest data field of an extended APDU.
pub const EXTENDED_MAX: usize = 65_535;
/// The size of each chunk when a command is split by command chaining.
pub const CHAIN_CHUNK: usize = 255;
/// The class-byte bit that marks "more commands of this chain follow".
pub const CLA_CHAINING: u8 = 0x10;

/// Why bytes could not be read as an APDU, or a command could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApduError {
    /// Fewer than the 4 header bytes of a command.
    #[error("command APDU too short: {len} bytes, a header needs 4")]
    CommandTooShort {
        /// How many bytes arrived.
        len: usize,
    },
    /// The length fields disagree with the number of bytes.
    #[error("command APDU malformed: {what} ({len} bytes in all)")]
    BadCommandLength {
        /// Which length rule was broken.
        what: &'static str,
        /// How many bytes arrived.
        len: usize,
    },
    /// Fewer than the 2 status bytes of a response.
    #[error("response APDU too short: {len} bytes, a status word needs 2")]
    ResponseTooShort {
        /// How many bytes arrived.
        len: usize,
    },
    /// The data does not fit the chosen encoding.
    #[error("command data of {len} bytes does not fit a {form} APDU (at most {max})")]
    DataTooLong {
        /// How many data bytes.
        len: usize,
        /// "short" or "extended".
        form: &'static str,
        /// The largest allowed.
        max: usize,
    },
    /// Le does not fit the chosen encoding.
    #[error("expected length {le} does not fit a {form} APDU")]
    LeTooLarge {
        /// The requested Le.
        le: u32,
        /// "short" or "extended".
        form: &'static str,
    },
}

/// An ISO 7816-4 status word, with the ones the YubiKey applets use named.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StatusWord {
    /// `9000`: success.
    Success,
    /// `61xx`: success, `xx` more bytes waiting (`00` means 256 or more).
    MoreData(u8),
    /// `6300`: verification failed, no further information.
    VerifyFailed,
    /// `63Cx`: verification failed, `x` tries left.
    TriesLeft(u8),
    /// `6581`: memory failure.
    MemoryFailure,
    /// `6700`: wrong length.
    WrongLength,
    /// `6882`: secure messaging / command chaining not supported.
    ChainingNotSupported,
    /// `6982`: security status not satisfied (OATH: authentication required, or no touch).
    SecurityStatusNotSatisfied,
    /// `6983`: authentication method blocked.
    AuthMethodBlocked,
    /// `6984`: referenced data invalid (OATH: no such credential, or no password set).
    NoSuchObject,
    /// `6985`: conditions of use not satisfied.
    ConditionsNotSatisfied,
    /// `6A80`: incorrect data (OATH: wrong syntax, or a wrong VALIDATE response).
    WrongData,
    /// `6A81`: function not supported.
    FunctionNotSupported,
    /// `6A82`: file or application not found.
    NotFound,
    /// `6A84`: not enough memory (OATH: no space for another credential).
    NoSpace,
    /// `6A86`: incorrect P1 or P2.
    IncorrectP1P2,
    /// `6A88`: referenced data not found.
    ReferencedDataNotFound,
    /// `6B00`: wrong parameters P1-P2.
    WrongP1P2,
    /// `6Cxx`: wrong Le, `xx` is the right one.
    WrongLe(u8),
    /// `6D00`: instruction not supported.
    InsNotSupported,
    /// `6E00`: class not supported.
    ClaNotSupported,
    /// `6F00`: no precise diagnosis.
    NoPreciseDiagnosis,
    /// Any other status word.
    Other(u16),
}

impl StatusWord {
    /// Reads a status word from its two bytes.
    pub fn from_bytes(sw1: u8, sw2: u8) -> Self {
        Self::from_u16(u16::from_be_bytes([sw1, sw2]))
    }

    /// Reads a status word from its 16-bit value.
    pub fn from_u16(sw: u16) -> Self {
        let [sw1, sw2] = sw.to_be_bytes();
        match (sw1, sw2) {
            (0x90, 0x00) => Self::Success,
            (0x61, n) => Self::MoreData(n),
            (0x63, 0x00) => Self::VerifyFailed,
            (0x63, n) if n & 0xF0 == 0xC0 => Self::TriesLeft(n & 0x0F),
            (0x65, 0x81) => Self::MemoryFailure,
            (0x67, 0x00) => Self::WrongLength,
            (0x68, 0x82) => Self::ChainingNotSupported,
            (0x69, 0x82) => Self::SecurityStatusNotSatisfied,
            (0x69, 0x83) => Self::AuthMethodBlocked,
            (0x69, 0x84) => Self::NoSuchObject,
            (0x69, 0x85) => Self::ConditionsNotSatisfied,
            (0x6A, 0x80) => Self::WrongData,
            (0x6A, 0x81) => Self::FunctionNotSupported,
            (0x6A, 0x82) => Self::NotFound,
            (0x6A, 0x84) => Self::NoSpace,
            (0x6A, 0x86) => Self::IncorrectP1P2,
            (0x6A, 0x88) => Self::ReferencedDataNotFound,
            (0x6B, 0x00) => Self::WrongP1P2,
            (0x6C, n) => Self::WrongLe(n),
            (0x6D, 0x00) => Self::InsNotSupported,
            (0x6E, 0x00) => Self::ClaNotSupported,
            (0x6F, 0x00) => Self::NoPreciseDiagnosis,
            _ => Self::Other(sw),
        }
    }

    /// The 16-bit value.
    pub fn to_u16(self) -> u16 {
        match self {
            Self::Success => 0x9000,
            Self::MoreData(n) => 0x6100 | u16::from(n),
            Self::VerifyFailed => 0x6300,
            Self::TriesLeft(n) => 0x63C0 | u16::from(n & 0x0F),
            Self::MemoryFailure => 0x6581,
            Self::WrongLength => 0x6700,
            Self::ChainingNotSupported => 0x6882,
            Self::SecurityStatusNotSatisfied => 0x6982,
            Self::AuthMethodBlocked => 0x6983,
            Self::NoSuchObject => 0x6984,
            Self::ConditionsNotSatisfied => 0x6985,
            Self::WrongData => 0x6A80,
            Self::FunctionNotSupported => 0x6A81,
            Self::NotFound => 0x6A82,
            Self::NoSpace => 0x6A84,
            Self::IncorrectP1P2 => 0x6A86,
            Self::ReferencedDataNotFound => 0x6A88,
            Self::WrongP1P2 => 0x6B00,
            Self::WrongLe(n) => 0x6C00 | u16::from(n),
            Self::InsNotSupported => 0x6D00,
            Self::ClaNotSupported => 0x6E00,
            Self::NoPreciseDiagnosis => 0x6F00,
            Self::Other(sw) => sw,
        }
    }

    /// The two bytes, SW1 first.
    pub fn to_bytes(self) -> [u8; 2] {
        self.to_u16().to_be_bytes()
    }

    /// True for `9000`.
    pub fn is_success(self) -> bool {
        self == Self::Success
    }

    /// A short human description (for error messages).
    pub fn describe(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::MoreData(_) => "more data available",
            Self::VerifyFailed | Self::TriesLeft(_) => "verification failed",
            Self::MemoryFailure => "memory failure",
            Self::WrongLength => "wrong length",
            Self::ChainingNotSupported => "command chaining not supported",
            Self::SecurityStatusNotSatisfied => {
                "security status not satisfied (authentication or touch required)"
            }
            Self::AuthMethodBlocked => "authentication method blocked",
            Self::NoSuchObject => "no such object",
            Self::ConditionsNotSatisfied => "conditions of use not satisfied",
            Self::WrongData => "incorrect data",
            Self::FunctionNotSupported => "function not supported",
            Self::NotFound => "application or file not found",
            Self::NoSpace => "not enough space on the card",
            Self::IncorrectP1P2 | Self::WrongP1P2 => "incorrect parameters P1-P2",
            Self::ReferencedDataNotFound => "referenced data not found",
            Self::WrongLe(_) => "wrong expected length",
            Self::InsNotSupported => "instruction not supported",
            Self::ClaNotSupported => "class not supported",
            Self::NoPreciseDiagnosis => "no precise diagnosis",
            Self::Other(_) => "unknown status",
        }
    }
}

impl fmt::Debug for StatusWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SW {:04X}", self.to_u16())
    }
}

impl fmt::Display for StatusWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04X} ({})", self.to_u16(), self.describe())
    }
}

/// How a command's length fields are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LengthForm {
    /// Short when data and Le fit, extended otherwise.
    Auto,
    /// One-byte Lc and Le.
    Short,
    /// Three-byte Lc (`00 hi lo`) and two- or three-byte Le.
    Extended,
}

/// A command APDU.
#[derive(Clone, PartialEq, Eq)]
pub struct Command {
    /// Class byte.
    pub cla: u8,
    /// Instruction byte.
    pub ins: u8,
    /// Parameter 1.
    pub p1: u8,
    /// Parameter 2.
    pub p2: u8,
    /// Command data (may be empty); zeroized on drop.
    pub data: Zeroizing<Vec<u8>>,
    /// Expected response length: `None` for no Le field; `Some(0)` is never produced by
    /// parsing (an Le byte of `00` means 256, or 65 536 in extended form).
    pub le: Option<u32>,
    /// True when the data carries a secret: `Debug` then shows only its length.
    pub sensitive: bool,
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Command");
        d.field("cla", &format_args!("{:02X}", self.cla))
            .field("ins", &format_args!("{:02X}", self.ins))
            .field("p1", &format_args!("{:02X}", self.p1))
            .field("p2", &format_args!("{:02X}", self.p2));
        if self.sensitive {
            d.field(
                "data",
                &format_args!("<{} bytes, redacted>", self.data.len()),
            );
        } else {
            d.field("data", &format_args!("{}", hex(&self.data)));
        }
        d.field("le", &self.le).finish()
    }
}

impl Command {
    /// A command with no data and no Le.
    pub fn new(cla: u8, ins: u8, p1: u8, p2: u8) -> Self {
        Self {
            cla,
            ins,
            p1,
            p2,
            data: Zeroizing::new(Vec::new()),
            le: None,
            sensitive: false,
        }
    }

    /// Sets the command data.
    pub fn with_data(mut self, data: impl Into<Vec<u8>>) -> Self {
        self.data = Zeroizing::new(data.into());
        self
    }

    /// Sets command data that carries a secret (hidden from `Debug`).
    pub fn with_secret_data(mut self, data: Zeroizing<Vec<u8>>) -> Self {
        self.data = data;
        self.sensitive = true;
        self
    }

    /// Sets the expected response length.
    pub fn with_le(mut self, le: u32) -> Self {
        self.le = Some(le);
        self
    }

    /// Encodes the command.
    pub fn to_bytes(&self, form: LengthForm) -> Result<Zeroizing<Vec<u8>>, ApduError> {
        let n = self.data.len();
        let le = self.le;
        let extended = match form {
            LengthForm::Short => false,
            LengthForm::Extended => true,
            LengthForm::Auto => n > SHORT_MAX || le.is_some_and(|l| l > 256),
        };
        let (max_data, max_le, name) = if extended {
            (EXTENDED_MAX, 65_536, "extended")
        } else {
            (SHORT_MAX, 256, "short")
        };
        if n > max_data {
            return Err(ApduError::DataTooLong {
                len: n,
                form: name,
                max: max_data,
            });
        }
        if let Some(l) = le {
            if l == 0 || l > max_le {
                return Err(ApduError::LeTooLarge { le: l, form: name });
            }
        }
        let mut out = Zeroizing::new(Vec::with_capacity(n + 9));
        out.extend_from_slice(&[self.cla, self.ins, self.p1, self.p2]);
        // Lengths are checked above, so the narrowing casts below cannot truncate except for
        // the encodings of 256 and 65 536, which are zero by definition.
        if extended {
            if n > 0 {
                out.push(0);
                out.extend_from_slice(&(n as u16).to_be_bytes());
                out.extend_from_slice(&self.data);
            }
            if let Some(l) = le {
                if n == 0 {
                    out.push(0);
                }
                out.extend_from_slice(&((l % 65_536) as u16).to_be_bytes());
            }
        } else {
            if n > 0 {
                out.push(n as u8);
                out.extend_from_slice(&self.data);
            }
            if let Some(l) = le {
                out.push((l % 256) as u8);
            }
        }
        Ok(out)
    }

    /// Splits the command into a chain of short commands (ISO 7816-4 command chaining): every
    /// part but the last has [`CLA_CHAINING`] set and [`CHAIN_CHUNK`] data bytes; only the
    /// last carries Le. A command that fits one short APDU is returned alone.
    pub fn chain(&self) -> Vec<Command> {
        if self.data.len() <= SHORT_MAX {
            return vec![self.clone()];
        }
        let chunks: Vec<&[u8]> = self.data.chunks(CHAIN_CHUNK).collect();
        let last = chunks.len() - 1;
        chunks
            .into_iter()
            .enumerate()
            .map(|(i, chunk)| Command {
                cla: if i < last {
                    self.cla | CLA_CHAINING
                } else {
                    self.cla
                },
                ins: self.ins,
                p1: self.p1,
                p2: self.p2,
                data: Zeroizing::new(chunk.to_vec()),
                le: if i == last { self.le } else { None },
                sensitive: self.sensitive,
            })
            .collect()
    }

    /// True when this command says more parts of a chain follow.
    pub fn is_chained(&self) -> bool {
        self.cla & CLA_CHAINING != 0
    }

    /// Parses a command APDU in any of the ISO 7816-4 cases, short or extended. Parsed
    /// commands are marked sensitive, since a card cannot know which data is secret.
    pub fn parse(bytes: &[u8]) -> Result<Self, ApduError> {
        let len = bytes.len();
        let (header, body) = match bytes.split_first_chunk::<4>() {
            Some(split) => split,
            None => return Err(ApduError::CommandTooShort { len }),
        };
        let [cla, ins, p1, p2] = *header;
        let bad = |what| ApduError::BadCommandLength { what, len };
        let (data, le): (&[u8], Option<u32>) = match body {
            // Case 1.
            [] => (&[], None),
            // Case 2 short.
            [le] => (&[], Some(short_le(*le))),
            // Extended forms start with a zero byte and carry at least two more.
            [0, rest @ ..] if rest.len() >= 2 => {
                let (lc_or_le, tail) = rest.split_at(2);
                let v = u16::from_be_bytes([lc_or_le[0], lc_or_le[1]]);
                match tail {
                    // Case 2 extended.
                    [] => (&[], Some(ext_le(v))),
                    _ => {
                        let lc = usize::from(v);
                        if lc == 0 {
                            // `00 00 00 xx xx`: an empty extended data field followed by
                            // Le, as some clients send (`00 A1 00 00 00 00 00`).
                            match tail {
                                [a, b] => (&[], Some(ext_le(u16::from_be_bytes([*a, *b])))),
                                _ => return Err(bad("extended Lc of 0 with stray bytes")),
                            }
                        } else if tail.len() == lc {
                            // Case 3 extended.
                            (tail, None)
                        } else if tail.len() == lc + 2 {
                            // Case 4 extended.
                            let (d, l) = tail.split_at(lc);
                            (d, Some(ext_le(u16::from_be_bytes([l[0], l[1]]))))
                        } else {
                            return Err(bad("extended Lc disagrees with the data length"));
                        }
                    }
                }
            }
            [lc, rest @ ..] => {
                let lc = usize::from(*lc);
                if lc == 0 {
                    return Err(bad("short Lc of 0"));
                } else if rest.len() == lc {
                    // Case 3 short.
                    (rest, None)
                } else if rest.len() == lc + 1 {
                    // Case 4 short.
                    let (d, l) = rest.split_at(lc);
                    (d, Some(short_le(l[0])))
                } else {
                    return Err(bad("short Lc disagrees with the data length"));
                }
            }
        };
        Ok(Self {
            cla,
            ins,
            p1,
            p2,
            data: Zeroizing::new(data.to_vec()),
            le,
            sensitive: true,
        })
    }
}

fn short_le(b: u8) -> u32 {
    if b == 0 {
        256
    } else {
        u32::from(b)
    }
}

fn ext_le(v: u16) -> u32 {
    if v == 0 {
        65_536
    } else {
        u32::from(v)
    }
}

/// A response APDU: data, then the status word.
#[derive(Clone, PartialEq, Eq)]
pub struct Response {
    /// Response data (may hold codes or challenges); zeroized on drop.
    pub data: Zeroizing<Vec<u8>>,
    /// The status word.
    pub sw: StatusWord,
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Responses carry one-time codes and challenges: show only their size.
        f.debug_struct("Response")
            .field("data", &format_args!("<{} bytes>", self.data.len()))
            .field("sw", &self.sw)
            .finish()
    }
}

impl Response {
    /// A response with data and a status word.
    pub fn new(data: impl Into<Vec<u8>>, sw: StatusWord) -> Self {
        Self {
            data: Zeroizing::new(data.into()),
            sw,
        }
    }

    /// A response with only a status word.
    pub fn status(sw: StatusWord) -> Self {
        Self::new(Vec::new(), sw)
    }

    /// Parses response bytes: data followed by SW1 SW2.
    pub fn parse(bytes: &[u8]) -> Result<Self, ApduError> {
        match bytes.split_last_chunk::<2>() {
            Some((data, [sw1, sw2])) => Ok(Self {
                data: Zeroizing::new(data.to_vec()),
                sw: StatusWord::from_bytes(*sw1, *sw2),
            }),
            None => Err(ApduError::ResponseTooShort { len: bytes.len() }),
        }
    }

    /// Encodes the response.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(self.data.len() + 2));
        out.extend_from_slice(&self.data);
        out.extend_from_slice(&self.sw.to_bytes());
        out
    }
}

/// Uppercase hex of bytes, for diagnostics of non-secret data.
pub fn hex(bytes: &[u8]) -> String {
    data_encoding::HEXUPPER.encode(bytes)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn enc(c: &Command, form: LengthForm) -> Vec<u8> {
        c.to_bytes(form).unwrap().to_vec()
    }

    #[test]
    fn encodes_all_four_cases_short() {
        let c1 = Command::new(0, 0xA4, 0, 0);
        assert_eq!(enc(&c1, LengthForm::Auto), [0, 0xA4, 0, 0]);
        let c2 = Command::new(0, 0xFD, 0, 0).with_le(256);
        assert_eq!(enc(&c2, LengthForm::Auto), [0, 0xFD, 0, 0, 0]);
        let c3 = Command::new(0, 1, 0, 0).with_data(vec![0xAA, 0xBB]);
        assert_eq!(enc(&c3, LengthForm::Auto), [0, 1, 0, 0, 2, 0xAA, 0xBB]);
        let c4 = c3.clone().with_le(4);
        assert_eq!(enc(&c4, LengthForm::Auto), [0, 1, 0, 0, 2, 0xAA, 0xBB, 4]);
    }

    #[test]
    fn encodes_extended_forms() {
        let c2 = Command::new(0, 0xA1, 0, 0).with_le(65_536);
        assert_eq!(enc(&c2, LengthForm::Auto), [0, 0xA1, 0, 0, 0, 0, 0]);
        let c4 = Command::new(0, 0xA4, 0, 1)
            .with_data(vec![0x74, 0x01, 0x05])
            .with_le(65_536);
        assert_eq!(
            enc(&c4, LengthForm::Extended),
            [0, 0xA4, 0, 1, 0, 0, 3, 0x74, 1, 5, 0, 0]
        );
        let big = Command::new(0, 1, 0, 0).with_data(vec![7; 300]);
        let b = enc(&big, LengthForm::Auto);
        assert_eq!(&b[..7], &[0, 1, 0, 0, 0, 0x01, 0x2C]);
        assert_eq!(b.len(), 307);
    }

    #[test]
    fn refuses_what_does_not_fit() {
        let big = Command::new(0, 1, 0, 0).with_data(vec![7; 300]);
        assert!(matches!(
            big.to_bytes(LengthForm::Short),
            Err(ApduError::DataTooLong { len: 300, .. })
        ));
        let le = Command::new(0, 1, 0, 0).with_le(257);
        assert!(matches!(
            le.to_bytes(LengthForm::Short),
            Err(ApduError::LeTooLarge { le: 257, .. })
        ));
    }

    #[test]
    fn parses_every_case() {
        let p = |b: &[u8]| Command::parse(b).unwrap();
        let c = p(&[0, 0xA4, 4, 0]);
        assert!(c.data.is_empty() && c.le.is_none());
        assert_eq!(p(&[0, 0xFD, 0, 0, 0]).le, Some(256));
        assert_eq!(p(&[0, 0xFD, 0, 0, 0, 0, 0]).le, Some(65_536));
        assert_eq!(p(&[0, 0xA1, 0, 0, 0, 0, 0]).le, Some(65_536));
        let c = p(&[0, 0xA1, 0, 0, 0, 0, 0, 0, 0]);
        assert!(c.data.is_empty());
        assert_eq!(c.le, Some(65_536));
        let c = p(&[0, 1, 0, 0, 2, 9, 8]);
        assert_eq!(c.data.as_slice(), &[9, 8]);
        assert_eq!(c.le, None);
        let c = p(&[0, 1, 0, 0, 2, 9, 8, 0]);
        assert_eq!(c.le, Some(256));
        let c = p(&[0, 0xA4, 0, 1, 0, 0, 0x0A, 0x74, 8, 0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(c.data.len(), 10);
        assert_eq!(c.le, None);
        let c = p(&[0, 0xA4, 0, 1, 0, 0, 2, 0x74, 0, 0, 0]);
        assert_eq!(c.data.as_slice(), &[0x74, 0]);
        assert_eq!(c.le, Some(65_536));
    }

    #[test]
    fn rejects_malformed_commands() {
        assert!(matches!(
            Command::parse(&[0, 1, 2]),
            Err(ApduError::CommandTooShort { len: 3 })
        ));
        assert!(Command::parse(&[0, 1, 0, 0, 5, 1]).is_err());
        assert!(Command::parse(&[0, 1, 0, 0, 0, 0, 3, 1]).is_err());
        assert!(Command::parse(&[0, 1, 0, 0, 0, 1]).is_err());
    }

    #[test]
    fn chains_long_commands() {
        let c = Command::new(0, 1, 0, 0)
            .with_data((0..600u32).map(|i| i as u8).collect::<Vec<_>>())
            .with_le(256);
        let parts = c.chain();
        assert_eq!(parts.len(), 3);
        assert!(parts[0].is_chained() && parts[1].is_chained() && !parts[2].is_chained());
        assert_eq!(parts[0].data.len(), 255);
        assert_eq!(parts[2].data.len(), 90);
        assert_eq!(parts[2].le, Some(256));
        assert!(parts[0].le.is_none());
        let joined: Vec<u8> = parts.iter().flat_map(|p| p.data.iter().copied()).collect();
        assert_eq!(joined, c.data.to_vec());
    }

    #[test]
    fn status_words_round_trip_and_are_named() {
        for sw in 0..=u16::MAX {
            assert_eq!(StatusWord::from_u16(sw).to_u16(), sw);
        }
        assert_eq!(
            StatusWord::from_u16(0x6982),
            StatusWord::SecurityStatusNotSatisfied
        );
        assert_eq!(StatusWord::from_u16(0x6A84), StatusWord::NoSpace);
        assert_eq!(StatusWord::from_u16(0x61FF), StatusWord::MoreData(0xFF));
        assert_eq!(StatusWord::from_u16(0x63C2), StatusWord::TriesLeft(2));
        assert_eq!(
            format!("{}", StatusWord::NotFound),
            "6A82 (application or file not found)"
        );
    }

    #[test]
    fn sensitive_commands_hide_their_data() {
        let secret = b"\x21\x10SECRETSECRET1234".to_vec();
        let c = Command::new(0, 3, 0, 0).with_secret_data(Zeroizing::new(secret));
        let dbg = format!("{c:?}");
        assert!(!dbg.contains(&hex(b"SECRET")), "{dbg}");
        assert!(!dbg.contains("SECRET"), "{dbg}");
        assert!(dbg.contains("redacted"));
        let parsed = Command::parse(&c.to_bytes(LengthForm::Auto).unwrap()).unwrap();
        assert!(!format!("{parsed:?}").contains(&hex(b"SECRET")));
        let r = Response::new(
            b"\x76\x05\x06\x01\x02\x03\x04".to_vec(),
            StatusWord::Success,
        );
        assert!(!format!("{r:?}").contains("01020304"));
    }

    fn any_command() -> impl Strategy<Value = (Command, LengthForm)> {
        (
            any::<[u8; 4]>(),
            prop::collection::vec(any::<u8>(), 0..600),
            prop::option::of(1u32..=65_536),
            prop::bool::ANY,
        )
            .prop_map(|(h, data, le, ext)| {
                let mut c = Command::new(h[0], h[1], h[2], h[3]).with_data(data);
                c.le = le;
                c.sensitive = true;
                let fits_short = c.data.len() <= SHORT_MAX && le.is_none_or(|l| l <= 256);
                let form = if ext || !fits_short {
                    LengthForm::Extended
                } else {
                    LengthForm::Short
                };
                (c, form)
            })
    }

    proptest! {
        #[test]
        fn command_round_trips((c, form) in any_command()) {
            let bytes = c.to_bytes(form).unwrap();
            prop_assert_eq!(Command::parse(&bytes).unwrap(), c);
        }

        #[test]
        fn response_round_trips(data in prop::collection::vec(any::<u8>(), 0..300), sw in any::<u16>()) {
            let r = Response::new(data, StatusWord::from_u16(sw));
            prop_assert_eq!(Response::parse(&r.to_bytes()).unwrap(), r);
        }

        #[test]
        fn parsing_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
            let _ = Command::parse(&bytes);
            let _ = Response::parse(&bytes);
        }
    }
}
