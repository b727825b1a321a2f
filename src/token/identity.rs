//! Who a YubiKey is: serial and firmware (through the `yubikey` crate), form factor and
//! capabilities (management applet), the OATH device id and lock state (OATH SELECT), and a
//! summary of its OATH credentials without any code.
//!
//! The OATH answers are read by the small parsers here ([`parse_oath_select`],
//! [`parse_list`], [`parse_calculate_all`]); they are pure functions over answer bytes.

use serde::Serialize;
use zeroize::Zeroizing;

use super::apdu::{Command, StatusWord};
use super::error::TokenError;
use super::management::{self, DeviceConfig, FormFactor};
use super::tlv;
use super::transport::{exchange, CardTransport};

/// The OATH applet's AID.
pub const OATH_AID: [u8; 7] = [0xA0, 0x00, 0x00, 0x05, 0x27, 0x21, 0x01];

/// What the OATH SELECT answer says about a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OathSelect {
    /// The applet's version.
    pub version: [u8; 3],
    /// The salt (stable until the applet is reset).
    pub salt: Vec<u8>,
    /// True when an access password is set (the answer carries a challenge).
    pub locked: bool,
}

impl OathSelect {
    /// The device id commonly shown to users: base64 without padding of SHA-256(salt)[..16].
    pub fn device_id(&self) -> String {
        let digest = ring::digest::digest(&ring::digest::SHA256, &self.salt);
        data_encoding::BASE64_NOPAD.encode(digest.as_ref().get(..16).unwrap_or_default())
    }
}

/// Why an OATH answer could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum AnswerError {
    /// The TLVs are malformed.
    #[error("malformed TLVs: {0}")]
    Tlv(#[from] tlv::TlvError),
    /// A required tag is missing.
    #[error("tag {0:02X} is missing")]
    Missing(u8),
    /// A tag's value has the wrong size.
    #[error("tag {tag:02X} has {len} bytes")]
    BadValue {
        /// The tag.
        tag: u8,
        /// Its length.
        len: usize,
    },
}

/// Parses the OATH SELECT answer (`79` version, `71` salt, optional `74` challenge).
pub fn parse_oath_select(answer: &[u8]) -> Result<OathSelect, AnswerError> {
    let tlvs = tlv::parse(answer)?;
    let v = tlv::find(&tlvs, 0x79).ok_or(AnswerError::Missing(0x79))?;
    let version: [u8; 3] = v.try_into().map_err(|_| AnswerError::BadValue {
        tag: 0x79,
        len: v.len(),
    })?;
    let salt = tlv::find(&tlvs, 0x71).ok_or(AnswerError::Missing(0x71))?;
    Ok(OathSelect {
        version,
        salt: salt.to_vec(),
        locked: tlv::find(&tlvs, 0x74).is_some(),
    })
}

/// An OATH credential's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OathKind {
    /// Counter-based.
    Hotp,
    /// Time-based.
    Totp,
    /// A type byte this client does not know.
    Unknown,
}

/// An OATH credential's hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OathAlgorithm {
    /// HMAC-SHA-1.
    Sha1,
    /// HMAC-SHA-256.
    Sha256,
    /// HMAC-SHA-512.
    Sha512,
    /// An algorithm nibble this client does not know.
    Unknown,
}

fn kind_alg(b: u8) -> (OathKind, OathAlgorithm) {
    let kind = match b & 0xF0 {
        0x10 => OathKind::Hotp,
        0x20 => OathKind::Totp,
        _ => OathKind::Unknown,
    };
    let alg = match b & 0x0F {
        0x01 => OathAlgorithm::Sha1,
        0x02 => OathAlgorithm::Sha256,
        0x03 => OathAlgorithm::Sha512,
        _ => OathAlgorithm::Unknown,
    };
    (kind, alg)
}

/// What a scan shows of one credential: never its secret or a code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CredentialSummary {
    /// Credential id (`[period/][issuer:]account`).
    pub name: String,
    /// TOTP or HOTP.
    #[serde(rename = "type")]
    pub kind: OathKind,
    /// Hash algorithm.
    pub algorithm: OathAlgorithm,
    /// Digits of its codes, when the device said.
    pub digits: Option<u8>,
    /// Whether a touch is required, when the device said.
    pub touch: Option<bool>,
}

/// Parses a LIST answer: `72 <len> <type|alg> <name>` entries.
pub fn parse_list(answer: &[u8]) -> Result<Vec<CredentialSummary>, AnswerError> {
    tlv::parse(answer)?
        .into_iter()
        .filter(|t| t.tag == 0x72)
        .map(|t| {
            let (b, name) = t
                .value
                .split_first()
                .ok_or(AnswerError::BadValue { tag: 0x72, len: 0 })?;
            let (kind, algorithm) = kind_alg(*b);
            Ok(CredentialSummary {
                name: String::from_utf8_lossy(name).into_owned(),
                kind,
                algorithm,
                digits: None,
                touch: None,
            })
        })
        .collect()
}

/// Reads a CALCULATE ALL answer for its shape only: credential name → (digits, touch). The
/// code bytes of `76`/`75` entries are never copied out.
pub fn parse_calculate_all(answer: &[u8]) -> Result<Vec<(String, u8, bool)>, AnswerError> {
    let tlvs = tlv::parse(answer)?;
    let mut out = Vec::new();
    let mut name: Option<String> = None;
    for t in tlvs {
        match t.tag {
            0x71 => name = Some(String::from_utf8_lossy(t.value).into_owned()),
            0x75 | 0x76 | 0x77 | 0x7C => {
                let n = name.take().ok_or(AnswerError::Missing(0x71))?;
                let digits = *t
                    .value
                    .first()
                    .ok_or(AnswerError::BadValue { tag: t.tag, len: 0 })?;
                out.push((n, digits, t.tag == 0x7C));
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Everything a scan learns about one device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceIdentity {
    /// The reader it sits in.
    pub reader: String,
    /// Serial number (absent when the device hides it).
    pub serial: Option<u32>,
    /// Firmware version `X.Y.Z`.
    pub firmware: Option<String>,
    /// Form factor.
    pub form_factor: FormFactor,
    /// Capabilities enabled over USB (`oath`, `piv`, ...).
    pub capabilities: Vec<&'static str>,
    /// OATH device id (base64 of SHA-256(salt)[..16], no padding).
    pub oath_device_id: Option<String>,
    /// True when the OATH applet is password-protected (its credentials are then not listed).
    pub oath_locked: bool,
    /// OATH credentials (empty when locked).
    pub credentials: Vec<CredentialSummary>,
}

fn refused(t: &impl CardTransport, ins: u8, sw: StatusWord) -> TokenError {
    TokenError::Refused {
        reader: t.reader().to_owned(),
        ins,
        sw,
    }
}

fn malformed(t: &impl CardTransport, ins: u8, what: impl ToString) -> TokenError {
    TokenError::Malformed {
        reader: t.reader().to_owned(),
        ins,
        what: what.to_string(),
    }
}

fn select(aid: &[u8]) -> Command {
    Command::new(0x00, 0xA4, 0x04, 0x00).with_data(aid.to_vec())
}

/// Reads the management applet's configuration (`None` when the device has no management
/// applet over CCID, as on old firmware).
pub fn read_config<T: CardTransport>(t: &mut T) -> Result<Option<DeviceConfig>, TokenError> {
    let r = exchange(t, &select(&management::AID), 0xC0)?;
    if r.sw == StatusWord::NotFound {
        return Ok(None);
    }
    if !r.sw.is_success() {
        return Err(refused(t, 0xA4, r.sw));
    }
    let cmd = Command::new(0x00, management::INS_READ_CONFIG, 0x00, 0x00).with_le(256);
    let r = exchange(t, &cmd, 0xC0)?;
    if !r.sw.is_success() {
        return Err(refused(t, management::INS_READ_CONFIG, r.sw));
    }
    DeviceConfig::parse(&r.data)
        .map(Some)
        .map_err(|e| malformed(t, management::INS_READ_CONFIG, e))
}

/// What the OATH applet says: its SELECT answer and, unless locked, its credentials.
pub fn read_oath<T: CardTransport>(
    t: &mut T,
) -> Result<Option<(OathSelect, Vec<CredentialSummary>)>, TokenError> {
    let r = exchange(t, &select(&OATH_AID), 0xA5)?;
    if r.sw == StatusWord::NotFound {
        return Ok(None);
    }
    if !r.sw.is_success() {
        return Err(refused(t, 0xA4, r.sw));
    }
    let sel = parse_oath_select(&r.data).map_err(|e| malformed(t, 0xA4, e))?;
    if sel.locked {
        return Ok(Some((sel, Vec::new())));
    }
    let r = exchange(t, &Command::new(0x00, 0xA1, 0x00, 0x00), 0xA5)?;
    if !r.sw.is_success() {
        return Err(refused(t, 0xA1, r.sw));
    }
    let mut creds = parse_list(&r.data).map_err(|e| malformed(t, 0xA1, e))?;
    // CALCULATE ALL for a step long past: only the shape of the answer is read (digits, touch);
    // the answer, which holds codes for that step, is zeroized when dropped.
    let cmd = Command::new(0x00, 0xA4, 0x00, 0x01)
        .with_data(vec![0x74, 0x08, 0, 0, 0, 0, 0, 0, 0, 0])
        .with_le(256);
    let r = exchange(t, &cmd, 0xA5)?;
    if !r.sw.is_success() {
        return Err(refused(t, 0xA4, r.sw));
    }
    let data = Zeroizing::new(r.data.to_vec());
    for (name, digits, touch) in parse_calculate_all(&data).map_err(|e| malformed(t, 0xA4, e))? {
        if let Some(c) = creds.iter_mut().find(|c| c.name == name) {
            c.digits = Some(digits);
            c.touch = Some(touch);
        }
    }
    Ok(Some((sel, creds)))
}

/// Serial and firmware as the `yubikey` crate sees the device in `reader` (PIV SELECT, GET
/// VERSION, GET SERIAL). `None` when the crate does not recognise a YubiKey there.
pub fn yubikey_serial_and_version(reader: &str) -> Option<(u32, String)> {
    let mut ctx = yubikey::reader::Context::open().ok()?;
    let readers = ctx.iter().ok()?;
    for r in readers {
        if r.name() != reader {
            continue;
        }
        let yk = r.open().ok()?;
        let v = yk.version();
        let out = (
            u32::from(yk.serial()),
            format!("{}.{}.{}", v.major, v.minor, v.patch),
        );
        // Leave the card as it is for the next reader of it.
        let _ = yk.disconnect(pcsc::Disposition::LeaveCard);
        return Some(out);
    }
    None
}

/// Opens the YubiKey with `serial` through the `yubikey` crate, returning its reader's name.
pub fn find_by_serial(serial: u32) -> Result<String, yubikey::Error> {
    let yk = yubikey::YubiKey::open_by_serial(yubikey::Serial(serial))?;
    let name = yk.name().to_owned();
    let _ = yk.disconnect(pcsc::Disposition::LeaveCard);
    Ok(name)
}

/// Identifies the device behind `t` (management and OATH applets). `yk` is what the `yubikey`
/// crate found for the same reader, if anything; its serial and firmware win.
pub fn identify<T: CardTransport>(
    t: &mut T,
    yk: Option<(u32, String)>,
) -> Result<DeviceIdentity, TokenError> {
    let config = read_config(t)?.unwrap_or_default();
    let oath = read_oath(t)?;
    let (serial, firmware) = match yk {
        Some((s, v)) => (Some(s), Some(v)),
        None => (
            config.serial,
            config.version.map(|[a, b, c]| format!("{a}.{b}.{c}")),
        ),
    };
    let (oath_device_id, oath_locked, credentials) = match oath {
        Some((sel, creds)) => (Some(sel.device_id()), sel.locked, creds),
        None => (None, false, Vec::new()),
    };
    Ok(DeviceIdentity {
        reader: t.reader().to_owned(),
        serial,
        firmware,
        form_factor: config.form_factor.unwrap_or_default(),
        capabilities: management::capability::names(config.usb_enabled.unwrap_or(0)),
        oath_device_id,
        oath_locked,
        credentials,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_of_a_real_524() {
        let answer = [
            0x79, 0x03, 0x05, 0x02, 0x04, 0x71, 0x08, 0x4B, 0xB7, 0xA7, 0xFA, 0xD7, 0xAF, 0x40,
            0x1B,
        ];
        let s = parse_oath_select(&answer).expect("valid");
        assert_eq!(s.version, [5, 2, 4]);
        assert!(!s.locked);
        // base64(SHA-256(salt)[..16]), no padding: 22 characters.
        assert_eq!(s.device_id().len(), 22);
        assert!(!s.device_id().contains('='));
    }

    #[test]
    fn device_id_known_answer() {
        // SHA-256 of eight zero bytes starts af5570f5a1810b7af78caf4bc70a660f.
        let s = OathSelect {
            version: [5, 4, 3],
            salt: vec![0; 8],
            locked: false,
        };
        let expect = data_encoding::BASE64_NOPAD.encode(&[
            0xaf, 0x55, 0x70, 0xf5, 0xa1, 0x81, 0x0b, 0x7a, 0xf7, 0x8c, 0xaf, 0x4b, 0xc7, 0x0a,
            0x66, 0x0f,
        ]);
        assert_eq!(s.device_id(), expect);
    }

    #[test]
    fn locked_select() {
        let answer = [
            0x79, 0x03, 5, 4, 3, 0x71, 0x08, 1, 2, 3, 4, 5, 6, 7, 8, 0x74, 0x08, 1, 1, 1, 1, 1, 1,
            1, 1, 0x7B, 0x01, 0x21,
        ];
        assert!(parse_oath_select(&answer).expect("valid").locked);
    }

    #[test]
    fn fail_select_without_salt() {
        assert_eq!(
            parse_oath_select(&[0x79, 0x03, 5, 4, 3]),
            Err(AnswerError::Missing(0x71))
        );
    }

    #[test]
    fn list_and_calculate_all_shapes() {
        let list = [0x72, 0x04, 0x21, b'a', b':', b'b', 0x72, 0x02, 0x12, b'h'];
        let creds = parse_list(&list).expect("valid");
        assert_eq!(creds[0].kind, OathKind::Totp);
        assert_eq!(creds[0].algorithm, OathAlgorithm::Sha1);
        assert_eq!(creds[1].kind, OathKind::Hotp);
        assert_eq!(creds[1].algorithm, OathAlgorithm::Sha256);
        let all = [
            0x71, 0x03, b'a', b':', b'b', 0x7C, 0x01, 0x06, 0x71, 0x01, b'h', 0x77, 0x01, 0x08,
            0x71, 0x01, b't', 0x76, 0x05, 0x06, 1, 2, 3, 4,
        ];
        assert_eq!(
            parse_calculate_all(&all).expect("valid"),
            [
                ("a:b".to_owned(), 6, true),
                ("h".to_owned(), 8, false),
                ("t".to_owned(), 6, false)
            ]
        );
    }
}
