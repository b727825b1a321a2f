//! The software YubiKey's PIV applet, as far as device identity needs: SELECT, GET VERSION
//! (`00 FD`) and GET SERIAL (`00 F8`, 4 bytes big-endian). Also the OTP applet's SELECT and its
//! serial read (`00 01 10 00`), which clients use on firmware 4.

use crate::token::apdu::{Command, Response, StatusWord};

/// The PIV AID (clients add the version suffix `00 00 10 00 01 00`).
pub const PIV_AID: [u8; 5] = [0xA0, 0x00, 0x00, 0x03, 0x08];
/// The OTP (YubiKey) applet's AID (clients send it with or without a trailing `01`).
pub const OTP_AID: [u8; 7] = [0xA0, 0x00, 0x00, 0x05, 0x27, 0x20, 0x01];

/// GET VERSION.
pub const INS_GET_VERSION: u8 = 0xFD;
/// GET SERIAL.
pub const INS_GET_SERIAL: u8 = 0xF8;

/// The PIV applet of one device.
#[derive(Debug, Clone)]
pub struct PivApplet {
    serial: u32,
    version: [u8; 3],
}

impl PivApplet {
    /// The applet of a device with this serial and firmware.
    pub fn new(serial: u32, version: [u8; 3]) -> Self {
        Self { serial, version }
    }

    /// Answers SELECT with the application property template a YubiKey sends.
    pub fn select(&self) -> Response {
        Response::new(
            [
                0x61, 0x11, 0x4F, 0x06, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00, 0x79, 0x07, 0x4F, 0x05,
                0xA0, 0x00, 0x00, 0x03, 0x08,
            ],
            StatusWord::Success,
        )
    }

    /// Answers a command sent while the applet is selected.
    pub fn process(&mut self, cmd: &Command) -> Response {
        match cmd.ins {
            INS_GET_VERSION => Response::new(self.version, StatusWord::Success),
            // Firmware 4 has no GET SERIAL in PIV; clients read it from the OTP applet.
            INS_GET_SERIAL if self.version[0] >= 5 => {
                Response::new(self.serial.to_be_bytes(), StatusWord::Success)
            }
            _ => Response::status(StatusWord::InsNotSupported),
        }
    }
}

/// The OTP applet of one device: SELECT (status bytes) and the serial read.
#[derive(Debug, Clone)]
pub struct OtpApplet {
    serial: u32,
    version: [u8; 3],
}

impl OtpApplet {
    /// The applet of a device with this serial and firmware.
    pub fn new(serial: u32, version: [u8; 3]) -> Self {
        Self { serial, version }
    }

    /// Answers SELECT: firmware version, programming sequence 0, touch level 0.
    pub fn select(&self) -> Response {
        let [a, b, c] = self.version;
        Response::new([a, b, c, 0, 0, 0], StatusWord::Success)
    }

    /// Answers a command sent while the applet is selected.
    pub fn process(&mut self, cmd: &Command) -> Response {
        match (cmd.ins, cmd.p1) {
            (0x01, 0x10) => Response::new(self.serial.to_be_bytes(), StatusWord::Success),
            _ => Response::status(StatusWord::InsNotSupported),
        }
    }
}
