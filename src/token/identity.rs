//! Who a YubiKey is: serial and firmware (through the `yubikey` crate), form factor and
//! capabilities (management applet), the OATH device id and lock state (OATH SELECT), and a
//! summary of its OATH credentials without any code.
//!
//! The OATH applet is read through the YKOATH client ([`super::oath`]).

use serde::Serialize;

use super::apdu::{Command, StatusWord};
use super::error::TokenError;
use super::management::{self, DeviceConfig, FormFactor};
use super::oath::{
    AccessKey, CalculateAllEntry, CalculateOutcome, HashAlgorithm, ListEntry, OathSession,
    OathType, SelectInfo, Selected, TimeStep,
};
use super::transport::{exchange, CardTransport};

/// An OATH credential's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OathKind {
    /// Counter-based.
    Hotp,
    /// Time-based.
    Totp,
}

impl From<OathType> for OathKind {
    fn from(t: OathType) -> Self {
        match t {
            OathType::Hotp => Self::Hotp,
            OathType::Totp => Self::Totp,
        }
    }
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
}

impl From<HashAlgorithm> for OathAlgorithm {
    fn from(a: HashAlgorithm) -> Self {
        match a {
            HashAlgorithm::Sha1 => Self::Sha1,
            HashAlgorithm::Sha256 => Self::Sha256,
            HashAlgorithm::Sha512 => Self::Sha512,
        }
    }
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

/// Merges LIST (type, algorithm) with the shape of a CALCULATE ALL answer (digits, touch). Codes
/// in `all` are not copied.
pub fn summarize(list: &[ListEntry], all: &[CalculateAllEntry]) -> Vec<CredentialSummary> {
    list.iter()
        .map(|e| {
            let outcome = all.iter().find(|a| a.name == e.name).map(|a| &a.outcome);
            let (digits, touch) = match outcome {
                Some(CalculateOutcome::TouchRequired { digits }) => {
                    (Some(digits.get()), Some(true))
                }
                Some(CalculateOutcome::Hotp { digits }) => (Some(digits.get()), Some(false)),
                Some(CalculateOutcome::Code(code)) => (u8::try_from(code.len()).ok(), Some(false)),
                Some(CalculateOutcome::Full(_)) | None => (None, None),
            };
            CredentialSummary {
                name: e.name.as_str().to_owned(),
                kind: e.oath_type.into(),
                algorithm: e.algorithm.into(),
                digits,
                touch,
            }
        })
        .collect()
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
    /// OATH credentials (empty when locked and not validated).
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

/// How the OATH applet took the access key offered to it (see [`identify_unlocking`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OathAccess {
    /// No access key was offered (a locked applet is then not listed).
    NotOffered,
    /// A key was offered but the applet asks for none: nothing was listed or computed.
    NotSet,
    /// The applet asked for the key and the mutual VALIDATE passed: the card proved it holds
    /// the same key.
    Validated,
    /// VALIDATE failed (the card refused the host's answer, or its own answer to the host's
    /// challenge was wrong): nothing was listed or computed.
    Failed,
}

fn summary<T: CardTransport>(s: &mut OathSession<T>) -> Result<Vec<CredentialSummary>, TokenError> {
    let list = s.list()?;
    // CALCULATE ALL for a step long past (step 0): only the shape of the answer is read
    // (digits, touch); the codes in it are zeroized when `all` is dropped.
    let all = s.calculate_all(TimeStep(0))?;
    Ok(summarize(&list, &all))
}

/// What the OATH applet says: its SELECT answer and, unless locked, its credentials. `None`
/// when the device has no OATH applet.
pub fn read_oath<T: CardTransport>(
    t: &mut T,
) -> Result<Option<(SelectInfo, Vec<CredentialSummary>)>, TokenError> {
    Ok(read_oath_with(t, None)?.map(|(info, _, creds)| (info, creds)))
}

/// [`read_oath`] offering the access key `key`: a locked applet is listed only after VALIDATE
/// passed, and, when a key is offered, an applet that asks for none is not listed at all.
pub fn read_oath_with<T: CardTransport>(
    t: &mut T,
    key: Option<&AccessKey>,
) -> Result<Option<(SelectInfo, OathAccess, Vec<CredentialSummary>)>, TokenError> {
    let selected = match OathSession::select(&mut *t) {
        Err(TokenError::Refused {
            sw: StatusWord::NotFound,
            ..
        }) => return Ok(None),
        Err(e) => return Err(e),
        Ok(s) => s,
    };
    let info = selected.info().clone();
    let (access, credentials) = match (selected, key) {
        (Selected::Locked(_), None) => (OathAccess::NotOffered, Vec::new()),
        (Selected::Locked(s), Some(key)) => match s.validate(key) {
            Ok(mut s) => (OathAccess::Validated, summary(&mut s)?),
            Err(TokenError::Refused { .. } | TokenError::Malformed { .. }) => {
                (OathAccess::Failed, Vec::new())
            }
            Err(e) => return Err(e),
        },
        (Selected::Ready(_), Some(_)) => (OathAccess::NotSet, Vec::new()),
        (Selected::Ready(mut s), None) => (OathAccess::NotOffered, summary(&mut s)?),
    };
    Ok(Some((info, access, credentials)))
}

/// What a short look at a device learns: serial and firmware from the management applet, then
/// the OATH applet's SELECT answer (device id, lock state). Nothing is listed or calculated, so
/// the key is never asked for a code and never waits for a touch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Glimpse {
    /// Serial number (absent when the device hides it).
    pub serial: Option<u32>,
    /// Firmware version `X.Y.Z`.
    pub firmware: Option<String>,
    /// OATH device id (absent without an OATH applet).
    pub oath_device_id: Option<String>,
    /// True when the OATH applet is password-protected.
    pub oath_locked: bool,
}

/// Takes a [`Glimpse`] of the device behind `t`: two SELECTs and one READ CONFIG. The OATH
/// applet is selected last, so the card is left as an OATH client expects to find it.
pub fn glimpse<T: CardTransport>(t: &mut T) -> Result<Glimpse, TokenError> {
    let config = read_config(t)?.unwrap_or_default();
    let (oath_device_id, oath_locked) = match OathSession::select(&mut *t) {
        Err(TokenError::Refused {
            sw: StatusWord::NotFound,
            ..
        }) => (None, false),
        Err(e) => return Err(e),
        Ok(Selected::Locked(s)) => (Some(s.info().device_id()), true),
        Ok(Selected::Ready(s)) => (Some(s.info().device_id()), s.info().locked()),
    };
    Ok(Glimpse {
        serial: config.serial,
        firmware: config.version.map(|[a, b, c]| format!("{a}.{b}.{c}")),
        oath_device_id,
        oath_locked,
    })
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
    identify_unlocking(t, yk, None).map(|(id, _)| id)
}

/// [`identify`] offering the OATH access key `key` (see [`read_oath_with`]), with how the
/// applet took it.
pub fn identify_unlocking<T: CardTransport>(
    t: &mut T,
    yk: Option<(u32, String)>,
    key: Option<&AccessKey>,
) -> Result<(DeviceIdentity, OathAccess), TokenError> {
    let config = read_config(t)?.unwrap_or_default();
    let oath = read_oath_with(t, key)?;
    let (serial, firmware) = match yk {
        Some((s, v)) => (Some(s), Some(v)),
        None => (
            config.serial,
            config.version.map(|[a, b, c]| format!("{a}.{b}.{c}")),
        ),
    };
    let (oath_device_id, oath_locked, access, credentials) = match oath {
        Some((sel, access, creds)) => (Some(sel.device_id()), sel.locked(), access, creds),
        None => (None, false, OathAccess::NotOffered, Vec::new()),
    };
    let id = DeviceIdentity {
        reader: t.reader().to_owned(),
        serial,
        firmware,
        form_factor: config.form_factor.unwrap_or_default(),
        capabilities: management::capability::names(config.usb_enabled.unwrap_or(0)),
        oath_device_id,
        oath_locked,
        credentials,
    };
    Ok((id, access))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::oath::{CredentialName, Digits};

    #[test]
    fn summary_takes_digits_and_touch_from_calculate_all() {
        let name = |n: &str| CredentialName::parse(n).expect("valid name");
        let list = [
            ListEntry {
                name: name("AWS:root@example.test"),
                oath_type: OathType::Totp,
                algorithm: HashAlgorithm::Sha1,
            },
            ListEntry {
                name: name("h"),
                oath_type: OathType::Hotp,
                algorithm: HashAlgorithm::Sha256,
            },
        ];
        let all = [
            CalculateAllEntry {
                name: name("AWS:root@example.test"),
                outcome: CalculateOutcome::TouchRequired {
                    digits: Digits::new(6).expect("valid"),
                },
            },
            CalculateAllEntry {
                name: name("h"),
                outcome: CalculateOutcome::Hotp {
                    digits: Digits::new(8).expect("valid"),
                },
            },
        ];
        let s = summarize(&list, &all);
        assert_eq!(s[0].touch, Some(true));
        assert_eq!(s[0].digits, Some(6));
        assert_eq!(s[0].kind, OathKind::Totp);
        assert_eq!(s[1].touch, Some(false));
        assert_eq!(s[1].digits, Some(8));
        assert_eq!(s[1].algorithm, OathAlgorithm::Sha256);
    }
}
