//! A software YubiKey for tests and demos: the card frame ([`SoftKey`]), its applets, device
//! images, and the `vpcd` bridge that presents it to a real pcscd.
//!
//! The frame does what the card's operating system does on a YubiKey 5: it answers with the
//! YubiKey ATR, routes SELECT by AID prefix to the OATH, management, PIV and OTP applets (any other
//! AID: `6A82`), reassembles command chains (CLA bit `0x10`), splits answers longer than 256 bytes
//! into `61xx` chunks (continued with `00 A5 00 00` for OATH, `00 C0 00 00` otherwise), and forgets
//! volatile state on power off, power on and reset. Malformed APDUs get `6700`; no byte string
//! makes it panic.
//!
//! - [`oath`]: the OATH applet (YKOATH), its persistent state and device-image table.
//! - [`management`]: device information.
//! - [`piv`]: the PIV applet (PIN, management key, keys, signatures, attestation, objects) and
//!   the OTP applet's SELECT.
//! - [`image`], [`state`]: device images and the saved-state file (OATH and PIV).
//! - [`vpcd`]: the bridge to pcscd's vpcd driver.
//!
//! Never part of a trust decision: a device is trusted for what the ledger knows of it.

pub mod image;
pub mod management;
pub mod oath;
pub mod piv;
pub mod state;
pub mod vpcd;

use zeroize::Zeroizing;

use crate::token::apdu::{Command, Response, StatusWord, CLA_CHAINING};
use crate::token::management::FormFactor;
use crate::token::transport::{CardTransport, TransportError};

use self::management::ManagementApplet;
use self::oath::{OathApplet, OathState, TouchSource};
use self::piv::state::PivState;
use self::piv::{OtpApplet, PivApplet, OTP_AID, PIV_AID};

/// The ATR of a YubiKey 5 over USB (T=1, chaining and extended lengths advertised).
pub const YUBIKEY5_ATR: [u8; 23] = [
    0x3B, 0xFD, 0x13, 0x00, 0x00, 0x81, 0x31, 0xFE, 0x15, 0x80, 0x73, 0xC0, 0x21, 0xC0, 0x57, 0x59,
    0x75, 0x62, 0x69, 0x4B, 0x65, 0x79, 0x40,
];

/// The OATH applet's AID.
pub const OATH_AID: [u8; 7] = [0xA0, 0x00, 0x00, 0x05, 0x27, 0x21, 0x01];

/// The most data bytes in one response; longer answers are chunked with `61xx`.
pub const CHUNK: usize = 256;
/// The most data a command chain may accumulate before the card refuses it.
pub const MAX_CHAIN: usize = 64 * 1024;

/// SEND REMAINING, the OATH applet's continuation instruction.
pub const INS_SEND_REMAINING: u8 = 0xA5;
/// GET RESPONSE, every other applet's continuation instruction.
pub const INS_GET_RESPONSE: u8 = 0xC0;

/// The reader name [`SoftKey`] reports through [`CardTransport::reader`] unless told otherwise.
pub const DEFAULT_READER: &str = "Software YubiKey";

/// Which applet answers commands other than SELECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applet {
    /// YKOATH.
    Oath,
    /// Management (device information).
    Management,
    /// PIV.
    Piv,
    /// OTP (SELECT and serial only).
    Otp,
}

impl Applet {
    /// The applet a SELECT for `aid` reaches: the first whose AID `aid` starts with.
    pub fn for_aid(aid: &[u8]) -> Option<Self> {
        [
            (&OATH_AID[..], Self::Oath),
            (&crate::token::management::AID[..], Self::Management),
            (&PIV_AID[..], Self::Piv),
            (&OTP_AID[..], Self::Otp),
        ]
        .into_iter()
        .find(|(prefix, _)| aid.starts_with(prefix))
        .map(|(_, applet)| applet)
    }
}

struct Pending {
    data: Zeroizing<Vec<u8>>,
    sw: StatusWord,
    ins: u8,
}

struct Chain {
    header: [u8; 4],
    data: Zeroizing<Vec<u8>>,
}

/// A software YubiKey 5: the card frame around its applets.
pub struct SoftKey {
    reader: String,
    serial: u32,
    firmware: [u8; 3],
    oath: OathApplet,
    management: ManagementApplet,
    piv: PivApplet,
    otp: OtpApplet,
    selected: Option<Applet>,
    chain: Option<Chain>,
    pending: Option<Pending>,
}

impl std::fmt::Debug for SoftKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoftKey")
            .field("reader", &self.reader)
            .field("serial", &self.serial)
            .field("firmware", &self.firmware)
            .field("selected", &self.selected)
            .finish_non_exhaustive()
    }
}

impl SoftKey {
    /// A device with this identity and OATH state; `touch` answers touch requests.
    pub fn new(
        serial: u32,
        firmware: [u8; 3],
        form_factor: FormFactor,
        oath: OathState,
        touch: Box<dyn TouchSource + Send>,
    ) -> Self {
        let touch = SharedTouch(std::sync::Arc::new(std::sync::Mutex::new(touch)));
        Self {
            reader: DEFAULT_READER.to_owned(),
            serial,
            firmware,
            oath: OathApplet::new(oath, firmware, Box::new(touch.clone())),
            management: ManagementApplet::new(serial, firmware, form_factor),
            piv: PivApplet::new(
                serial,
                firmware,
                form_factor.to_byte(),
                PivState::factory(),
                Box::new(touch),
            ),
            otp: OtpApplet::new(serial, firmware),
            selected: None,
            chain: None,
            pending: None,
        }
    }

    /// The device an image describes, with `state` for its OATH applet when given (a saved
    /// state wins over the image's `[oath]` table). A state the image's firmware cannot hold
    /// is refused.
    pub fn from_image(
        image: &image::DeviceImage,
        path: &std::path::Path,
        state: Option<OathState>,
        touch: Box<dyn TouchSource + Send>,
    ) -> Result<Self, image::ImageError> {
        let state = match state {
            Some(s) => {
                image.check_oath_state(&s, path)?;
                s
            }
            None => image.oath_state(path)?,
        };
        Ok(Self::new(
            image.serial,
            image.firmware.0,
            image.form_factor,
            state,
            touch,
        ))
    }

    /// The same device with this PIV state (a saved one) instead of the factory's.
    pub fn with_piv_state(mut self, state: PivState) -> Self {
        self.piv.replace_state(state);
        self
    }

    /// Names the reader reported through [`CardTransport::reader`].
    pub fn with_reader_name(mut self, reader: impl Into<String>) -> Self {
        self.reader = reader.into();
        self
    }

    /// The ATR.
    pub fn atr(&self) -> &'static [u8] {
        &YUBIKEY5_ATR
    }

    /// The serial number.
    pub fn serial(&self) -> u32 {
        self.serial
    }

    /// The firmware version.
    pub fn firmware(&self) -> [u8; 3] {
        self.firmware
    }

    /// The applet selected now, if any.
    pub fn selected(&self) -> Option<Applet> {
        self.selected
    }

    /// The OATH applet's persistent state (to save it).
    pub fn oath_state(&self) -> &OathState {
        self.oath.state()
    }

    /// True once after the OATH applet's persistent state changed.
    pub fn oath_state_changed(&mut self) -> bool {
        self.oath.state_changed()
    }

    /// The PIV applet's persistent state (to save it).
    pub fn piv_state(&self) -> &PivState {
        self.piv.state()
    }

    /// True once after the PIV applet's persistent state changed.
    pub fn piv_state_changed(&mut self) -> bool {
        self.piv.state_changed()
    }

    /// Power on: volatile state starts empty.
    pub fn power_on(&mut self) {
        self.reset_volatile();
    }

    /// Power off: volatile state is lost.
    pub fn power_off(&mut self) {
        self.reset_volatile();
    }

    /// Warm reset: volatile state is lost.
    pub fn reset(&mut self) {
        self.reset_volatile();
    }

    fn reset_volatile(&mut self) {
        self.selected = None;
        self.chain = None;
        self.pending = None;
        self.oath.reset_volatile();
        self.piv.reset_volatile();
    }

    /// Processes one command APDU and returns the response APDU (data and status word).
    pub fn process(&mut self, apdu: &[u8]) -> Zeroizing<Vec<u8>> {
        self.process_command(apdu).to_bytes()
    }

    fn process_command(&mut self, apdu: &[u8]) -> Response {
        let Ok(cmd) = Command::parse(apdu) else {
            self.chain = None;
            self.pending = None;
            return Response::status(StatusWord::WrongLength);
        };

        // A continuation of a chunked answer.
        if let Some(pending) = self.pending.take() {
            if cmd.ins == pending.ins && !cmd.is_chained() {
                return self.next_chunk(pending);
            }
        }

        // Command chaining: collect the parts, answer each with 9000.
        let header = [cmd.cla & !CLA_CHAINING, cmd.ins, cmd.p1, cmd.p2];
        let mut cmd = cmd;
        if let Some(chain) = self.chain.take() {
            if chain.header == header {
                let mut data = chain.data;
                data.extend_from_slice(&cmd.data);
                if data.len() > MAX_CHAIN {
                    return Response::status(StatusWord::WrongLength);
                }
                cmd.data = data;
            }
            // A different command abandons the chain and stands alone.
        }
        if cmd.is_chained() {
            if cmd.data.len() > MAX_CHAIN {
                return Response::status(StatusWord::WrongLength);
            }
            self.chain = Some(Chain {
                header,
                data: std::mem::take(&mut cmd.data),
            });
            return Response::status(StatusWord::Success);
        }
        cmd.cla = header[0];

        let (response, applet) = self.dispatch(&cmd);
        self.chunk(response, applet)
    }

    fn dispatch(&mut self, cmd: &Command) -> (Response, Option<Applet>) {
        if cmd.ins == 0xA4 && cmd.p1 == 0x04 {
            return match Applet::for_aid(&cmd.data) {
                Some(applet) => {
                    if self.selected == Some(Applet::Oath) || applet == Applet::Oath {
                        // Re-SELECT clears OATH authentication.
                        self.oath.reset_volatile();
                    }
                    if self.selected == Some(Applet::Piv) {
                        // Leaving PIV forgets its security status (SELECT of PIV does too).
                        self.piv.reset_volatile();
                    }
                    self.selected = Some(applet);
                    let r = match applet {
                        Applet::Oath => self.oath.select(),
                        Applet::Management => self.management.select(),
                        Applet::Piv => self.piv.select(),
                        Applet::Otp => self.otp.select(),
                    };
                    (r, Some(applet))
                }
                None => (Response::status(StatusWord::NotFound), None),
            };
        }
        let r = match self.selected {
            Some(Applet::Oath) => self.oath.process(cmd),
            Some(Applet::Management) => self.management.process(cmd),
            Some(Applet::Piv) => self.piv.process(cmd),
            Some(Applet::Otp) => self.otp.process(cmd),
            None => Response::status(StatusWord::InsNotSupported),
        };
        (r, self.selected)
    }

    fn chunk(&mut self, response: Response, applet: Option<Applet>) -> Response {
        if response.data.len() <= CHUNK {
            return response;
        }
        let ins = if applet == Some(Applet::Oath) {
            INS_SEND_REMAINING
        } else {
            INS_GET_RESPONSE
        };
        self.next_chunk(Pending {
            data: response.data,
            sw: response.sw,
            ins,
        })
    }

    fn next_chunk(&mut self, pending: Pending) -> Response {
        let Pending { data, sw, ins } = pending;
        if data.len() <= CHUNK {
            return Response { data, sw };
        }
        let (head, rest) = data.split_at(CHUNK);
        let left = rest.len();
        let head = Zeroizing::new(head.to_vec());
        self.pending = Some(Pending {
            data: Zeroizing::new(rest.to_vec()),
            sw,
            ins,
        });
        Response {
            data: head,
            sw: StatusWord::MoreData(u8::try_from(left).unwrap_or(0)),
        }
    }
}

/// One touch source shared by the applets that ask for touches (OATH and PIV), as one button
/// serves every applet of a YubiKey.
#[derive(Clone)]
struct SharedTouch(std::sync::Arc<std::sync::Mutex<Box<dyn TouchSource + Send>>>);

impl TouchSource for SharedTouch {
    fn wait_for_touch(&mut self, what: &str) -> bool {
        // A poisoned lock means an earlier wait panicked: answer "no touch" (6982).
        match self.0.lock() {
            Ok(mut t) => t.wait_for_touch(what),
            Err(_) => false,
        }
    }
}

impl CardTransport for SoftKey {
    fn transmit(&mut self, command: &[u8]) -> Result<Zeroizing<Vec<u8>>, TransportError> {
        Ok(self.process(command))
    }

    fn reader(&self) -> &str {
        &self.reader
    }
}

#[cfg(test)]
mod firmware_tests;
#[cfg(test)]
mod tests;
