//! The YubiKey management applet's device information: AID, READ CONFIG, and its TLVs.
//!
//! Pure encode/decode, no I/O: [`DeviceConfig::parse`] reads a READ CONFIG answer and
//! [`DeviceConfig::encode`] writes one (the software YubiKey answers with it).

use std::fmt;

use serde::{Deserialize, Serialize};

use super::tlv;

/// The management applet's AID.
pub const AID: [u8; 8] = [0xA0, 0x00, 0x00, 0x05, 0x27, 0x47, 0x11, 0x17];
/// READ CONFIG's instruction byte (`00 1D 00 00`).
pub const INS_READ_CONFIG: u8 = 0x1D;

/// TLV tag: USB capabilities supported.
pub const TAG_USB_SUPPORTED: u8 = 0x01;
/// TLV tag: serial number (big-endian).
pub const TAG_SERIAL: u8 = 0x02;
/// TLV tag: USB capabilities enabled.
pub const TAG_USB_ENABLED: u8 = 0x03;
/// TLV tag: form factor.
pub const TAG_FORM_FACTOR: u8 = 0x04;
/// TLV tag: firmware version (3 bytes).
pub const TAG_VERSION: u8 = 0x05;

/// Capability bits of the supported/enabled TLVs.
pub mod capability {
    /// Yubico OTP.
    pub const OTP: u16 = 0x0001;
    /// FIDO U2F.
    pub const U2F: u16 = 0x0002;
    /// OpenPGP.
    pub const OPENPGP: u16 = 0x0008;
    /// PIV.
    pub const PIV: u16 = 0x0010;
    /// OATH.
    pub const OATH: u16 = 0x0020;
    /// FIDO2.
    pub const FIDO2: u16 = 0x0200;
    /// What a YubiKey 5 supports over USB.
    pub const YUBIKEY_5: u16 = OTP | U2F | OPENPGP | PIV | OATH | FIDO2;

    /// The names of the bits set in `caps`, in bit order.
    pub fn names(caps: u16) -> Vec<&'static str> {
        [
            (OTP, "otp"),
            (U2F, "u2f"),
            (OPENPGP, "openpgp"),
            (PIV, "piv"),
            (OATH, "oath"),
            (FIDO2, "fido2"),
        ]
        .into_iter()
        .filter(|(bit, _)| caps & bit != 0)
        .map(|(_, name)| name)
        .collect()
    }
}

/// A YubiKey's physical form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum FormFactor {
    /// Not reported.
    #[default]
    Unknown,
    /// USB-A keychain.
    UsbAKeychain,
    /// USB-A nano.
    UsbANano,
    /// USB-C keychain.
    UsbCKeychain,
    /// USB-C nano.
    UsbCNano,
    /// USB-C with Lightning.
    UsbCLightning,
    /// USB-A Bio series.
    UsbABio,
    /// USB-C Bio series.
    UsbCBio,
}

impl FormFactor {
    /// Decodes the form-factor byte (the low nibble; the high bits are flags).
    pub fn from_byte(b: u8) -> Self {
        match b & 0x0F {
            0x01 => Self::UsbAKeychain,
            0x02 => Self::UsbANano,
            0x03 => Self::UsbCKeychain,
            0x04 => Self::UsbCNano,
            0x05 => Self::UsbCLightning,
            0x06 => Self::UsbABio,
            0x07 => Self::UsbCBio,
            _ => Self::Unknown,
        }
    }

    /// The form-factor byte.
    pub fn to_byte(self) -> u8 {
        match self {
            Self::Unknown => 0x00,
            Self::UsbAKeychain => 0x01,
            Self::UsbANano => 0x02,
            Self::UsbCKeychain => 0x03,
            Self::UsbCNano => 0x04,
            Self::UsbCLightning => 0x05,
            Self::UsbABio => 0x06,
            Self::UsbCBio => 0x07,
        }
    }

    /// The kebab-case name used in images and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::UsbAKeychain => "usb-a-keychain",
            Self::UsbANano => "usb-a-nano",
            Self::UsbCKeychain => "usb-c-keychain",
            Self::UsbCNano => "usb-c-nano",
            Self::UsbCLightning => "usb-c-lightning",
            Self::UsbABio => "usb-a-bio",
            Self::UsbCBio => "usb-c-bio",
        }
    }
}

impl fmt::Display for FormFactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What READ CONFIG reports. Fields a device leaves out are `None`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeviceConfig {
    /// USB capabilities supported.
    pub usb_supported: Option<u16>,
    /// USB capabilities enabled.
    pub usb_enabled: Option<u16>,
    /// Serial number.
    pub serial: Option<u32>,
    /// Form factor.
    pub form_factor: Option<FormFactor>,
    /// Firmware version.
    pub version: Option<[u8; 3]>,
}

/// Why a READ CONFIG answer could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// The answer is empty.
    #[error("READ CONFIG answered no data")]
    Empty,
    /// The length byte disagrees with the data.
    #[error("READ CONFIG length byte says {said} bytes, {got} followed")]
    Length {
        /// The length byte.
        said: usize,
        /// Bytes that followed it.
        got: usize,
    },
    /// The TLVs are malformed.
    #[error("READ CONFIG TLVs: {0}")]
    Tlv(#[from] tlv::TlvError),
    /// A known tag has a value of the wrong size.
    #[error("READ CONFIG tag {tag:02X}: {len} bytes is not a valid length")]
    BadValue {
        /// The tag.
        tag: u8,
        /// Its value's length.
        len: usize,
    },
}

fn be_uint(tag: u8, v: &[u8], max: usize) -> Result<u32, ConfigError> {
    if v.is_empty() || v.len() > max {
        return Err(ConfigError::BadValue { tag, len: v.len() });
    }
    Ok(v.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)))
}

impl DeviceConfig {
    /// Parses a READ CONFIG answer (length byte, then TLVs). Unknown tags are skipped.
    pub fn parse(answer: &[u8]) -> Result<Self, ConfigError> {
        let (len, body) = answer.split_first().ok_or(ConfigError::Empty)?;
        let said = usize::from(*len);
        // Some firmware pads the answer; only the announced bytes count.
        let body = body.get(..said).ok_or(ConfigError::Length {
            said,
            got: body.len(),
        })?;
        let mut out = Self::default();
        for t in tlv::parse(body)? {
            match t.tag {
                TAG_USB_SUPPORTED => out.usb_supported = Some(be_uint(t.tag, t.value, 2)? as u16),
                TAG_USB_ENABLED => out.usb_enabled = Some(be_uint(t.tag, t.value, 2)? as u16),
                TAG_SERIAL => out.serial = Some(be_uint(t.tag, t.value, 4)?),
                TAG_FORM_FACTOR => {
                    out.form_factor = Some(FormFactor::from_byte(be_uint(t.tag, t.value, 1)? as u8))
                }
                TAG_VERSION => {
                    let v: [u8; 3] = t.value.try_into().map_err(|_| ConfigError::BadValue {
                        tag: t.tag,
                        len: t.value.len(),
                    })?;
                    out.version = Some(v);
                }
                _ => {}
            }
        }
        Ok(out)
    }

    /// Encodes a READ CONFIG answer: length byte, then the TLVs that are set.
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::new();
        // Values are at most 4 bytes: `tlv::write` cannot fail on them.
        if let Some(c) = self.usb_supported {
            let _ = tlv::write(&mut body, TAG_USB_SUPPORTED, &c.to_be_bytes());
        }
        if let Some(s) = self.serial {
            let _ = tlv::write(&mut body, TAG_SERIAL, &s.to_be_bytes());
        }
        if let Some(c) = self.usb_enabled {
            let _ = tlv::write(&mut body, TAG_USB_ENABLED, &c.to_be_bytes());
        }
        if let Some(f) = self.form_factor {
            let _ = tlv::write(&mut body, TAG_FORM_FACTOR, &[f.to_byte()]);
        }
        if let Some(v) = self.version {
            let _ = tlv::write(&mut body, TAG_VERSION, &v);
        }
        let mut out = Vec::with_capacity(body.len() + 1);
        out.push(u8::try_from(body.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(&body);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let c = DeviceConfig {
            usb_supported: Some(capability::YUBIKEY_5),
            usb_enabled: Some(capability::OATH | capability::PIV),
            serial: Some(12_345_678),
            form_factor: Some(FormFactor::UsbCNano),
            version: Some([5, 4, 3]),
        };
        assert_eq!(DeviceConfig::parse(&c.encode()), Ok(c));
    }

    #[test]
    fn parses_a_real_layout() {
        // 5.2.4-style answer: supported, serial, enabled, form factor, version, and tags we skip.
        let answer = [
            0x1A, 0x01, 0x02, 0x02, 0x3B, 0x02, 0x04, 0x00, 0xBC, 0x61, 0x4E, 0x03, 0x02, 0x02,
            0x3B, 0x04, 0x01, 0x01, 0x05, 0x03, 0x05, 0x02, 0x04, 0x06, 0x02, 0x00, 0x00,
        ];
        let c = DeviceConfig::parse(&answer).expect("valid");
        assert_eq!(c.serial, Some(12_345_678));
        assert_eq!(c.form_factor, Some(FormFactor::UsbAKeychain));
        assert_eq!(c.version, Some([5, 2, 4]));
        assert_eq!(c.usb_supported, Some(0x023B));
    }

    #[test]
    fn fail_short_and_bad_values() {
        assert_eq!(DeviceConfig::parse(&[]), Err(ConfigError::Empty));
        assert!(matches!(
            DeviceConfig::parse(&[0x05, 0x02]),
            Err(ConfigError::Length { said: 5, got: 1 })
        ));
        assert!(matches!(
            DeviceConfig::parse(&[0x04, 0x05, 0x02, 0x05, 0x04]),
            Err(ConfigError::BadValue { tag: 0x05, len: 2 })
        ));
    }

    #[test]
    fn capability_names() {
        assert_eq!(
            capability::names(capability::OATH | capability::PIV),
            ["piv", "oath"]
        );
    }
}
