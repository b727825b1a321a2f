//! The software YubiKey's management applet: SELECT answers the version string, READ CONFIG
//! answers the device-information tags a YubiKey of the emulated firmware sends.
//!
//! Tags (numbers and layout from yubikey-manager `yubikit/management.py`, `DeviceInfo.parse`;
//! a length byte, then TLVs):
//!
//! | tag | value | sent by |
//! |---|---|---|
//! | `01` USB supported | capabilities, 2 bytes | every firmware (yubikit reads it unconditionally) |
//! | `02` serial | 4 bytes big-endian | every firmware |
//! | `03` USB enabled | capabilities, 2 bytes | 5.0.0 and later (yubikit: "From YK 5.0.0"; ignored on 4.x) |
//! | `04` form factor | 1 byte | every firmware |
//! | `05` version | 3 bytes | every firmware |
//! | `16` PIN complexity | 1 byte, `00` = off | 5.7.0 and later (Yubico .NET SDK, "PIN complexity policy": "available on YubiKeys with firmware version 5.7 or later") |
//!
//! Capabilities name only the applets this emulator answers: OATH, PIV and OTP
//! (identity) over CCID. It has no FIDO (U2F, FIDO2), OpenPGP or YubiHSM Auth applet, so those
//! bits are never set, and a SELECT of their AIDs answers `6A82`.
//!
//! Not sent, because the emulated key has no such feature: NFC tags (`0D`, `0E`, `17`; a USB-only
//! key), FIPS tags (`14`, `15`; not a FIPS series key: the form-factor byte has no FIPS bit),
//! configuration lock, part number, reset-blocked, version qualifier and Bio tags (`20`, `21`).

use crate::token::apdu::{Command, Response, StatusWord};
use crate::token::management::{
    capability, FormFactor, INS_READ_CONFIG, TAG_FORM_FACTOR, TAG_SERIAL, TAG_USB_ENABLED,
    TAG_USB_SUPPORTED, TAG_VERSION,
};
use crate::token::tlv;

/// TLV tag: PIN complexity enforced (`01`) or not (`00`).
pub const TAG_PIN_COMPLEXITY: u8 = 0x16;

/// The capabilities this emulator implements, as READ CONFIG reports them supported and enabled.
pub const CAPABILITIES: u16 = capability::OTP | capability::PIV | capability::OATH;

/// The first firmware that reports which capabilities are enabled (tag `03`).
pub const FIRMWARE_USB_ENABLED: [u8; 3] = [5, 0, 0];
/// The first firmware that reports PIN complexity (tag `16`).
pub const FIRMWARE_PIN_COMPLEXITY: [u8; 3] = [5, 7, 0];

/// The management applet of one device.
#[derive(Debug, Clone)]
pub struct ManagementApplet {
    serial: u32,
    version: [u8; 3],
    form_factor: FormFactor,
}

impl ManagementApplet {
    /// The applet of a device with this serial, firmware and form factor.
    pub fn new(serial: u32, version: [u8; 3], form_factor: FormFactor) -> Self {
        Self {
            serial,
            version,
            form_factor,
        }
    }

    /// Answers SELECT: `Virtual mgr - FW version X.Y.Z`.
    pub fn select(&self) -> Response {
        let [a, b, c] = self.version;
        Response::new(
            format!("Virtual mgr - FW version {a}.{b}.{c}").into_bytes(),
            StatusWord::Success,
        )
    }

    /// The READ CONFIG answer of this device: a length byte, then the tags its firmware sends,
    /// in tag order.
    pub fn config(&self) -> Vec<u8> {
        let caps = CAPABILITIES.to_be_bytes();
        let serial = self.serial.to_be_bytes();
        let form_factor = [self.form_factor.to_byte()];
        let mut tags: Vec<(u8, &[u8])> = vec![(TAG_USB_SUPPORTED, &caps), (TAG_SERIAL, &serial)];
        if self.version >= FIRMWARE_USB_ENABLED {
            tags.push((TAG_USB_ENABLED, &caps));
        }
        tags.push((TAG_FORM_FACTOR, &form_factor));
        tags.push((TAG_VERSION, &self.version));
        if self.version >= FIRMWARE_PIN_COMPLEXITY {
            tags.push((TAG_PIN_COMPLEXITY, &[0x00]));
        }
        let mut body = Vec::new();
        for (tag, value) in tags {
            // Values are at most 4 bytes: `tlv::write` cannot fail on them.
            let _ = tlv::write(&mut body, tag, value);
        }
        let mut out = Vec::with_capacity(body.len() + 1);
        out.push(u8::try_from(body.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(&body);
        out
    }

    /// Answers a command sent while the applet is selected.
    pub fn process(&mut self, cmd: &Command) -> Response {
        match (cmd.ins, cmd.p1) {
            // Page 0 is everything this device reports (no "more data" tag); later pages are
            // empty.
            (INS_READ_CONFIG, 0) => Response::new(self.config(), StatusWord::Success),
            (INS_READ_CONFIG, _) => Response::new(vec![0], StatusWord::Success),
            _ => Response::status(StatusWord::InsNotSupported),
        }
    }
}
