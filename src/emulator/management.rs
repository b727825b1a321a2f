//! The software YubiKey's management applet: SELECT answers the version string, READ CONFIG
//! answers serial, capabilities, form factor and firmware.

use crate::token::apdu::{Command, Response, StatusWord};
use crate::token::management::{capability, DeviceConfig, FormFactor, INS_READ_CONFIG};

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

    /// The READ CONFIG answer of this device (no FIPS tags).
    pub fn config(&self) -> DeviceConfig {
        DeviceConfig {
            usb_supported: Some(capability::YUBIKEY_5),
            usb_enabled: Some(capability::YUBIKEY_5),
            serial: Some(self.serial),
            form_factor: Some(self.form_factor),
            version: Some(self.version),
        }
    }

    /// Answers a command sent while the applet is selected.
    pub fn process(&mut self, cmd: &Command) -> Response {
        match (cmd.ins, cmd.p1) {
            // Page 0 is everything this device reports; later pages are empty.
            (INS_READ_CONFIG, 0) => Response::new(self.config().encode(), StatusWord::Success),
            (INS_READ_CONFIG, _) => Response::new(vec![0], StatusWord::Success),
            _ => Response::status(StatusWord::InsNotSupported),
        }
    }
}
