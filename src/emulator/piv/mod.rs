//! The software YubiKey's PIV applet, answering as a YubiKey 5 does, and the OTP applet's
//! SELECT and serial read (`00 01 10 00`, which clients use on firmware 4).
//!
//! Sources, named beside each behaviour: NIST SP 800-73-4 part 2 (the standard commands),
//! Yubico's "PIV extensions" page (developers.yubico.com/PIV/Introduction/Yubico_extensions.html),
//! the YubiKey .NET SDK user manual's PIV APDU pages (docs.yubico.com/yesdk), and yubico-piv-tool
//! (`lib/internal.h` status words, `lib/ykpiv.c`).
//!
//! - [`state`]: what persists (PIN, PUK, management key, slot keys, data objects).
//! - [`keys`]: P-256, ECDSA and 3DES from vetted crates.
//! - [`attest`]: the F9 attestation key, its test-CA certificate, and ATTEST's certificates.
//!
//! What it answers: SELECT, GET VERSION (`FD`), GET SERIAL (`F8`), VERIFY (`20`), CHANGE
//! REFERENCE DATA (`24`), RESET RETRY COUNTER (`2C`), GENERAL AUTHENTICATE (`87`: management
//! key mutual and single authentication with 3DES or AES, ECDSA signing), SET MANAGEMENT KEY
//! (`FF`), GENERATE ASYMMETRIC KEY PAIR (`47`, P-256 and P-384), IMPORT KEY (`FE`, the same),
//! ATTEST (`F9`),
//! GET METADATA (`F7`, firmware 5.3 and later), GET DATA (`CB`), PUT DATA (`DB`), SET PIN
//! RETRIES (`FA`) and RESET (`FB`). RSA and ECDH are not emulated:
//! the applet refuses them with `6A80` (wrong data) where a real key would compute.

pub mod attest;
pub mod keys;
pub mod state;

#[cfg(test)]
mod tests;

use std::time::{Duration, Instant};

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::emulator::oath::{SecretBytes, TouchSource};
use crate::token::apdu::{Command, Response, StatusWord};
use crate::token::tlv;

use self::attest::{Attestation, Attested, Device};
use self::state::{
    PivState, Reference, SlotKey, ALG_3DES, ALG_ECCP256, ALG_ECCP384, ORIGIN_GENERATED,
    ORIGIN_IMPORTED, REFERENCE_LEN,
};

/// The PIV AID (clients add the version suffix `00 00 10 00 01 00`).
pub const PIV_AID: [u8; 5] = [0xA0, 0x00, 0x00, 0x03, 0x08];
/// The OTP (YubiKey) applet's AID (clients send it with or without a trailing `01`).
pub const OTP_AID: [u8; 7] = [0xA0, 0x00, 0x00, 0x05, 0x27, 0x20, 0x01];

/// PIV instructions.
pub mod ins {
    /// VERIFY.
    pub const VERIFY: u8 = 0x20;
    /// CHANGE REFERENCE DATA.
    pub const CHANGE_REFERENCE: u8 = 0x24;
    /// RESET RETRY COUNTER.
    pub const RESET_RETRY: u8 = 0x2C;
    /// GENERATE ASYMMETRIC KEY PAIR.
    pub const GENERATE: u8 = 0x47;
    /// GENERAL AUTHENTICATE.
    pub const AUTHENTICATE: u8 = 0x87;
    /// GET DATA.
    pub const GET_DATA: u8 = 0xCB;
    /// PUT DATA.
    pub const PUT_DATA: u8 = 0xDB;
    /// GET METADATA (YubiKey, 5.3 and later).
    pub const GET_METADATA: u8 = 0xF7;
    /// GET SERIAL (YubiKey 5).
    pub const GET_SERIAL: u8 = 0xF8;
    /// ATTEST (YubiKey).
    pub const ATTEST: u8 = 0xF9;
    /// SET PIN RETRIES (YubiKey).
    pub const SET_PIN_RETRIES: u8 = 0xFA;
    /// RESET (YubiKey).
    pub const RESET: u8 = 0xFB;
    /// GET VERSION (YubiKey).
    pub const GET_VERSION: u8 = 0xFD;
    /// IMPORT KEY (YubiKey).
    pub const IMPORT_KEY: u8 = 0xFE;
    /// SET MANAGEMENT KEY (YubiKey).
    pub const SET_MANAGEMENT_KEY: u8 = 0xFF;
}

/// GET VERSION.
pub const INS_GET_VERSION: u8 = ins::GET_VERSION;
/// GET SERIAL.
pub const INS_GET_SERIAL: u8 = ins::GET_SERIAL;

/// Key reference of the PIV PIN.
pub const REF_PIN: u8 = 0x80;
/// Key reference of the PUK.
pub const REF_PUK: u8 = 0x81;
/// Key reference of the management key.
pub const SLOT_MANAGEMENT: u8 = 0x9B;
/// The attestation slot.
pub const SLOT_ATTESTATION: u8 = 0xF9;
/// The attestation certificate's object.
pub const OBJECT_ATTESTATION: u32 = 0x5F_FF01;

// The first firmware with an F9 attestation key: before it ATTEST is an unknown instruction
// (`6D00`) and the F9 certificate object is absent.
use crate::token::piv::FIRST_ATTESTING_FIRMWARE;

/// Yubico's "cached" touch policy keeps a touch valid for this long (Yubico, "PIV PIN and
/// touch policies": 15 seconds).
pub const TOUCH_CACHE: Duration = Duration::from_secs(15);

/// The largest data object PUT DATA accepts (yubico-piv-tool `lib/ykpiv.h`, `CB_OBJ_MAX`).
pub const MAX_OBJECT: usize = 3063;

/// The discovery object (SP 800-73-4 part 1, 3.3.2) a YubiKey answers: the PIV AID and a PIN
/// usage policy of `40 00` (the PIV application PIN only).
const DISCOVERY: [u8; 20] = [
    0x7E, 0x12, 0x4F, 0x0B, 0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00, 0x5F,
    0x2F, 0x02, 0x40, 0x00,
];

/// Objects a client reads only after VERIFY (SP 800-73-4 part 1, table 3: fingerprints, facial
/// image, printed information, iris images).
const PIN_PROTECTED_OBJECTS: [u32; 4] = [0x5F_C103, 0x5F_C108, 0x5F_C109, 0x5F_C121];

/// The key slots of SP 800-73-4 and YubiKey: `9A`, `9C`, `9D`, `9E` and the retired `82`-`95`.
pub fn is_key_slot(slot: u8) -> bool {
    matches!(slot, 0x9A | 0x9C | 0x9D | 0x9E | 0x82..=0x95)
}

/// The PIN policy a slot's key gets when generated with policy "default" (Yubico, "PIV PIN and
/// touch policies": 9C always, 9E never, the others once).
pub fn default_pin_policy(slot: u8) -> u8 {
    match slot {
        0x9C => 3,
        0x9E => 1,
        _ => 2,
    }
}

/// Security status: forgotten on SELECT, power off and reset.
#[derive(Default)]
struct Session {
    pin_verified: bool,
    /// A verification not yet spent by a key with PIN policy "always".
    pin_fresh: bool,
    management: bool,
    witness: Option<Zeroizing<Vec<u8>>>,
    challenge: Option<Zeroizing<Vec<u8>>>,
    touched: Vec<(u8, Instant)>,
}

/// The PIV applet of one device.
pub struct PivApplet {
    device: Device,
    state: PivState,
    session: Session,
    touch: Box<dyn TouchSource + Send>,
    attestation: Option<std::sync::Arc<Attestation>>,
    changed: bool,
}

impl std::fmt::Debug for PivApplet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PivApplet")
            .field("device", &self.device)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

fn ok(data: impl Into<Vec<u8>>) -> Response {
    Response::new(data, StatusWord::Success)
}

fn status(sw: StatusWord) -> Response {
    Response::status(sw)
}

fn tlv(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 4);
    // Values here are at most a few kilobytes: `write` only fails beyond 65535 bytes.
    if tlv::write(&mut out, tag, value).is_err() {
        out.clear();
    }
    out
}

/// The single TLV `tag` that is the whole of `data`, or `None`.
fn only(data: &[u8], tag: u8) -> Option<&[u8]> {
    match tlv::parse(data).ok()?.as_slice() {
        [t] if t.tag == tag => Some(t.value),
        _ => None,
    }
}

/// A PIN or PUK as sent: 8 bytes, the value followed by `FF` padding; its unpadded length.
fn unpadded_len(padded: &[u8]) -> usize {
    padded.iter().rposition(|&b| b != 0xFF).map_or(0, |i| i + 1)
}

impl PivApplet {
    /// The applet of a device, with its persistent `state`, taking touches from `touch`.
    pub fn new(
        serial: u32,
        version: [u8; 3],
        form_factor: u8,
        state: PivState,
        touch: Box<dyn TouchSource + Send>,
    ) -> Self {
        Self {
            device: Device {
                serial,
                firmware: version,
                form_factor,
            },
            state,
            session: Session::default(),
            touch,
            attestation: None,
            changed: false,
        }
    }

    /// The persistent state (to save it).
    pub fn state(&self) -> &PivState {
        &self.state
    }

    /// Replaces the persistent state (a saved one) and forgets the security status.
    pub fn replace_state(&mut self, state: PivState) {
        self.state = state;
        self.reset_volatile();
    }

    /// True once after a command changed the persistent state.
    pub fn state_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// Power off, power on, reset or another SELECT: the security status is forgotten.
    pub fn reset_volatile(&mut self) {
        self.session = Session::default();
    }

    /// Answers SELECT with the application property template a YubiKey sends, and clears the
    /// security status.
    pub fn select(&mut self) -> Response {
        self.reset_volatile();
        ok([
            0x61, 0x11, 0x4F, 0x06, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00, 0x79, 0x07, 0x4F, 0x05,
            0xA0, 0x00, 0x00, 0x03, 0x08,
        ])
    }

    fn at_least(&self, version: [u8; 3]) -> bool {
        self.device.firmware >= version
    }

    /// Answers a command sent while the applet is selected.
    pub fn process(&mut self, cmd: &Command) -> Response {
        if cmd.cla != 0x00 {
            return status(StatusWord::ClaNotSupported);
        }
        match cmd.ins {
            ins::GET_VERSION => ok(self.device.firmware),
            // Firmware 4 has no GET SERIAL in PIV; clients read it from the OTP applet.
            ins::GET_SERIAL if self.at_least([5, 0, 0]) => ok(self.device.serial.to_be_bytes()),
            ins::VERIFY => self.verify(cmd),
            ins::CHANGE_REFERENCE => self.change_reference(cmd),
            ins::RESET_RETRY => self.reset_retry(cmd),
            ins::AUTHENTICATE => self.authenticate(cmd),
            ins::SET_MANAGEMENT_KEY => self.set_management_key(cmd),
            ins::GENERATE => self.generate(cmd),
            ins::IMPORT_KEY => self.import(cmd),
            // ATTEST arrived with firmware 4.3 (YubiKey .NET SDK user's manual, "PIV attestation
            // statements": "Attestation was added as a feature in version 4.3 of the YubiKey";
            // yubikit gates `attest_key` and go-piv `SupportsAttestation` on 4.3.0).
            ins::ATTEST if self.at_least(FIRST_ATTESTING_FIRMWARE) => self.attest(cmd),
            // GET METADATA arrived with firmware 5.3 (YubiKey .NET SDK, "Get metadata").
            ins::GET_METADATA if self.at_least([5, 3, 0]) => self.metadata(cmd),
            ins::GET_DATA => self.get_data(cmd),
            ins::PUT_DATA => self.put_data(cmd),
            ins::SET_PIN_RETRIES => self.set_pin_retries(cmd),
            ins::RESET => self.reset(cmd),
            _ => status(StatusWord::InsNotSupported),
        }
    }

    // -----------------------------------------------------------------------------------------
    // PIN and PUK
    // -----------------------------------------------------------------------------------------

    /// Checks `candidate` against a reference, counting a wrong one (SP 800-73-4 part 2,
    /// 3.2.1: `63Cx` with x tries left, `6983` once blocked).
    fn check(reference: &mut Reference, candidate: &[u8]) -> Result<(), StatusWord> {
        if reference.left == 0 {
            return Err(StatusWord::AuthMethodBlocked);
        }
        if bool::from(reference.value.expose().ct_eq(candidate)) {
            reference.left = reference.total;
            Ok(())
        } else {
            reference.left = reference.left.saturating_sub(1);
            Err(StatusWord::TriesLeft(reference.left))
        }
    }

    /// VERIFY (`20`): P2 `80` the PIV PIN. Empty data asks the status: `9000` when verified,
    /// else `63Cx`; P1 `FF` with empty data resets the verification (SP 800-73-4 part 2, 3.2.1).
    fn verify(&mut self, cmd: &Command) -> Response {
        if cmd.p2 != REF_PIN {
            return status(StatusWord::ReferencedDataNotFound);
        }
        match (cmd.p1, cmd.data.len()) {
            (0xFF, 0) => {
                self.session.pin_verified = false;
                self.session.pin_fresh = false;
                ok([])
            }
            (0x00, 0) => {
                if self.session.pin_verified {
                    ok([])
                } else if self.state.pin.left == 0 {
                    status(StatusWord::AuthMethodBlocked)
                } else {
                    status(StatusWord::TriesLeft(self.state.pin.left))
                }
            }
            (0x00, REFERENCE_LEN) => {
                let before = self.state.pin.left;
                let result = Self::check(&mut self.state.pin, &cmd.data);
                self.changed |= self.state.pin.left != before;
                match result {
                    Ok(()) => {
                        self.session.pin_verified = true;
                        self.session.pin_fresh = true;
                        ok([])
                    }
                    Err(sw) => {
                        // A failed VERIFY clears the security status (SP 800-73-4 part 2, 3.2.1).
                        self.session.pin_verified = false;
                        self.session.pin_fresh = false;
                        status(sw)
                    }
                }
            }
            (0x00 | 0xFF, _) => status(StatusWord::WrongData),
            _ => status(StatusWord::IncorrectP1P2),
        }
    }

    /// A new PIN or PUK: 6 to 8 bytes before the `FF` padding (Yubico, "PIV PIN and management
    /// key defaults").
    fn valid_new(padded: &[u8]) -> bool {
        (6..=REFERENCE_LEN).contains(&unpadded_len(padded))
    }

    /// CHANGE REFERENCE DATA (`24`): P2 `80` PIN or `81` PUK; data old (8) and new (8).
    fn change_reference(&mut self, cmd: &Command) -> Response {
        if cmd.p1 != 0x00 {
            return status(StatusWord::IncorrectP1P2);
        }
        if cmd.data.len() != 2 * REFERENCE_LEN {
            return status(StatusWord::WrongData);
        }
        let (old, new) = cmd.data.split_at(REFERENCE_LEN);
        let reference = match cmd.p2 {
            REF_PIN => &mut self.state.pin,
            REF_PUK => &mut self.state.puk,
            _ => return status(StatusWord::ReferencedDataNotFound),
        };
        let before = reference.left;
        let result = Self::check(reference, old);
        self.changed |= reference.left != before;
        if let Err(sw) = result {
            if cmd.p2 == REF_PIN {
                self.session.pin_verified = false;
                self.session.pin_fresh = false;
            }
            return status(sw);
        }
        if !Self::valid_new(new) {
            return status(StatusWord::WrongData);
        }
        reference.value = SecretBytes::new(Zeroizing::new(new.to_vec()));
        self.changed = true;
        ok([])
    }

    /// RESET RETRY COUNTER (`2C`, P2 `80`): PUK (8) and new PIN (8); the PIN's tries return.
    fn reset_retry(&mut self, cmd: &Command) -> Response {
        if cmd.p1 != 0x00 || cmd.p2 != REF_PIN {
            return status(StatusWord::IncorrectP1P2);
        }
        if cmd.data.len() != 2 * REFERENCE_LEN {
            return status(StatusWord::WrongData);
        }
        let (puk, new) = cmd.data.split_at(REFERENCE_LEN);
        let before = self.state.puk.left;
        let result = Self::check(&mut self.state.puk, puk);
        self.changed |= self.state.puk.left != before;
        if let Err(sw) = result {
            return status(sw);
        }
        if !Self::valid_new(new) {
            return status(StatusWord::WrongData);
        }
        self.state.pin.value = SecretBytes::new(Zeroizing::new(new.to_vec()));
        self.state.pin.left = self.state.pin.total;
        self.changed = true;
        ok([])
    }

    /// SET PIN RETRIES (`FA`, P1 PIN tries, P2 PUK tries): needs the management key and the
    /// PIN; PIN and PUK return to their factory values (Yubico, "PIV extensions").
    fn set_pin_retries(&mut self, cmd: &Command) -> Response {
        if !self.session.management || !self.session.pin_verified {
            return status(StatusWord::SecurityStatusNotSatisfied);
        }
        if cmd.p1 == 0 || cmd.p2 == 0 {
            return status(StatusWord::IncorrectP1P2);
        }
        self.state.pin = Reference::new(state::DEFAULT_PIN);
        self.state.pin.total = cmd.p1;
        self.state.pin.left = cmd.p1;
        self.state.puk = Reference::new(state::DEFAULT_PUK);
        self.state.puk.total = cmd.p2;
        self.state.puk.left = cmd.p2;
        self.changed = true;
        ok([])
    }

    /// RESET (`FB`): only when both PIN and PUK are blocked (Yubico, "PIV extensions"); keys,
    /// objects, PIN, PUK and management key return to the factory. The attestation key stays.
    fn reset(&mut self, _cmd: &Command) -> Response {
        if self.state.pin.left != 0 || self.state.puk.left != 0 {
            return status(StatusWord::ConditionsNotSatisfied);
        }
        self.state = PivState::factory();
        self.reset_volatile();
        self.changed = true;
        ok([])
    }

    // -----------------------------------------------------------------------------------------
    // Management key
    // -----------------------------------------------------------------------------------------

    /// Waits for a touch when `policy` (1 never, 2 always, 3 cached) asks for one.
    fn touch(&mut self, slot: u8, policy: u8) -> bool {
        let now = Instant::now();
        if policy == 3
            && self
                .session
                .touched
                .iter()
                .any(|(s, at)| *s == slot && now.duration_since(*at) < TOUCH_CACHE)
        {
            return true;
        }
        if policy != 2 && policy != 3 {
            return true;
        }
        if !self.touch.wait_for_touch(&format!("PIV slot {slot:02x}")) {
            return false;
        }
        self.session.touched.retain(|(s, _)| *s != slot);
        self.session.touched.push((slot, Instant::now()));
        true
    }

    /// GENERAL AUTHENTICATE (`87`) with slot `9B` (SP 800-73-4 part 2, appendix A.1-A.2;
    /// the yubikey crate's `YubiKey::authenticate`), with blocks of the key's cipher (8 bytes
    /// for 3DES, 16 for AES):
    /// - `7C { 80 00 }`: the card answers a witness, encrypted: `7C { 80 E(W) }`;
    /// - `7C { 80 W, 81 C }`: the host proves it decrypted the witness and challenges the
    ///   card, which answers `7C { 82 E(C) }`;
    /// - `7C { 81 00 }` then `7C { 82 E(C) }`: the single-authentication variant.
    fn authenticate_management(&mut self, cmd: &Command, inner: &[tlv::Tlv<'_>]) -> Response {
        let algorithm = self.state.management.algorithm;
        if cmd.p1 != algorithm {
            return status(StatusWord::IncorrectP1P2);
        }
        let Some((_, block_len)) = keys::management_lengths(algorithm) else {
            return status(StatusWord::NoPreciseDiagnosis);
        };
        let key = Zeroizing::new(self.state.management.key.expose().to_vec());
        let encrypt = |block: &[u8]| keys::management_encrypt(algorithm, &key, block).ok();
        let get = |tag| tlv::find(inner, tag);
        let answer = |tag: u8, value: &[u8]| ok(tlv(0x7C, &tlv(tag, value)));
        let fresh = || {
            keys::random::<16>()
                .ok()
                .map(|r| Zeroizing::new(r[..block_len].to_vec()))
        };
        match (get(0x80), get(0x81), get(0x82)) {
            (Some([]), None, None) => {
                let Some(witness) = fresh() else {
                    return status(StatusWord::NoPreciseDiagnosis);
                };
                let Some(sealed) = encrypt(&witness) else {
                    return status(StatusWord::NoPreciseDiagnosis);
                };
                self.session.management = false;
                self.session.witness = Some(witness);
                answer(0x80, &sealed)
            }
            (Some(w), Some(c), None) => {
                if w.len() != block_len || c.len() != block_len {
                    return status(StatusWord::WrongData);
                }
                let Some(expected) = self.session.witness.take() else {
                    return status(StatusWord::ConditionsNotSatisfied);
                };
                if !bool::from(expected.as_slice().ct_eq(w)) {
                    return status(StatusWord::SecurityStatusNotSatisfied);
                }
                let Some(response) = encrypt(c) else {
                    return status(StatusWord::NoPreciseDiagnosis);
                };
                if !self.touch(SLOT_MANAGEMENT, self.state.management.touch) {
                    return status(StatusWord::SecurityStatusNotSatisfied);
                }
                self.session.management = true;
                answer(0x82, &response)
            }
            (None, Some([]), None) => {
                let Some(challenge) = fresh() else {
                    return status(StatusWord::NoPreciseDiagnosis);
                };
                self.session.management = false;
                let reply = answer(0x81, &challenge);
                self.session.challenge = Some(challenge);
                reply
            }
            (None, None, Some(r)) => {
                if r.len() != block_len {
                    return status(StatusWord::WrongData);
                }
                let Some(challenge) = self.session.challenge.take() else {
                    return status(StatusWord::ConditionsNotSatisfied);
                };
                let Some(expected) = encrypt(&challenge) else {
                    return status(StatusWord::NoPreciseDiagnosis);
                };
                if !bool::from(expected.as_slice().ct_eq(r)) {
                    return status(StatusWord::SecurityStatusNotSatisfied);
                }
                if !self.touch(SLOT_MANAGEMENT, self.state.management.touch) {
                    return status(StatusWord::SecurityStatusNotSatisfied);
                }
                self.session.management = true;
                ok([])
            }
            _ => status(StatusWord::WrongData),
        }
    }

    /// SET MANAGEMENT KEY (`FF FF FF|FE|FD`): data `<alg> 9B <len> <key>`, 3DES (`03`, 24
    /// bytes) or, from firmware 5.4, AES-128/192/256 (`08`, `0A`, `0C`: 16, 24, 32 bytes); P2
    /// `FE` asks a touch at every authentication, `FD` a cached one (Yubico, "PIV extensions";
    /// YubiKey .NET SDK, "Set management key"). Needs the management key.
    fn set_management_key(&mut self, cmd: &Command) -> Response {
        let touch = match (cmd.p1, cmd.p2) {
            (0xFF, 0xFF) => 1,
            (0xFF, 0xFE) => 2,
            (0xFF, 0xFD) => 3,
            _ => return status(StatusWord::IncorrectP1P2),
        };
        if !self.session.management {
            return status(StatusWord::SecurityStatusNotSatisfied);
        }
        let [algorithm, SLOT_MANAGEMENT, len, key @ ..] = cmd.data.as_slice() else {
            return status(StatusWord::WrongData);
        };
        let fits = match keys::management_lengths(*algorithm) {
            Some((key_len, _)) => key_len == usize::from(*len) && key.len() == key_len,
            None => false,
        };
        if !fits || (*algorithm != ALG_3DES && !self.at_least([5, 4, 0])) {
            return status(StatusWord::WrongData);
        }
        self.state.management = state::ManagementKey {
            algorithm: *algorithm,
            key: SecretBytes::new(Zeroizing::new(key.to_vec())),
            touch,
        };
        self.changed = true;
        ok([])
    }

    // -----------------------------------------------------------------------------------------
    // Slot keys
    // -----------------------------------------------------------------------------------------

    /// GENERAL AUTHENTICATE (`87`): management key (`9B`) or a signature with a slot's key.
    fn authenticate(&mut self, cmd: &Command) -> Response {
        let Some(template) = only(&cmd.data, 0x7C) else {
            return status(StatusWord::WrongData);
        };
        let Ok(inner) = tlv::parse(template) else {
            return status(StatusWord::WrongData);
        };
        if cmd.p2 == SLOT_MANAGEMENT {
            return self.authenticate_management(cmd, &inner);
        }
        if !is_key_slot(cmd.p2) {
            return status(StatusWord::WrongP1P2);
        }
        // An empty slot is `6A80`, as yubikit `piv.py` `_use_private_key` reads it ("No key?")
        // and ykman `piv.py` `check_key` expects.
        let Some(key) = self.state.key(cmd.p2).cloned() else {
            return status(StatusWord::WrongData);
        };
        if cmd.p1 != key.algorithm {
            return status(StatusWord::WrongData);
        }
        // Signing: `7C { 82 00, 81 <digest> }` (SP 800-73-4 part 2, appendix A.4).
        let (Some([]), Some(digest)) = (tlv::find(&inner, 0x82), tlv::find(&inner, 0x81)) else {
            return status(StatusWord::WrongData);
        };
        match key.pin_policy {
            2 if !self.session.pin_verified => {
                return status(StatusWord::SecurityStatusNotSatisfied)
            }
            3 if !self.session.pin_fresh => return status(StatusWord::SecurityStatusNotSatisfied),
            _ => {}
        }
        if !self.touch(key.slot, key.touch_policy) {
            return status(StatusWord::SecurityStatusNotSatisfied);
        }
        if key.pin_policy == 3 {
            self.session.pin_fresh = false;
        }
        match keys::sign_digest(key.algorithm, key.secret.expose(), digest) {
            Ok(sig) => ok(tlv(0x7C, &tlv(0x82, &sig))),
            Err(_) => status(StatusWord::WrongData),
        }
    }

    /// Reads the optional PIN (`AA`) and touch (`AB`) policy tags; `None` for a bad value.
    fn policies(slot: u8, tags: &[tlv::Tlv<'_>]) -> Option<(u8, u8)> {
        let pin = match tlv::find(tags, 0xAA) {
            None | Some([0]) => default_pin_policy(slot),
            Some([p @ 1..=3]) => *p,
            Some(_) => return None,
        };
        let touch = match tlv::find(tags, 0xAB) {
            None | Some([0]) => 1,
            Some([t @ 1..=3]) => *t,
            Some(_) => return None,
        };
        Some((pin, touch))
    }

    /// Stores a key of `algorithm` in `slot` with its (PIN, touch) policies and origin.
    fn store_key(
        &mut self,
        slot: u8,
        (algorithm, origin): (u8, u8),
        policies: (u8, u8),
        secret: Zeroizing<Vec<u8>>,
    ) {
        self.state.put_key(SlotKey {
            slot,
            algorithm,
            pin_policy: policies.0,
            touch_policy: policies.1,
            origin,
            secret: SecretBytes::new(secret),
        });
        self.changed = true;
    }

    /// GENERATE ASYMMETRIC KEY PAIR (`47 00 <slot>`): data `AC { 80 <alg>, [AA <pin policy>],
    /// [AB <touch policy>] }`; the answer is `7F49 { 86 <point> }`. Needs the management key;
    /// a slot the key does not have is `6B00` and an algorithm it does not make `6A80`
    /// (yubico-piv-tool `lib/internal.h`, `SW_ERR_INCORRECT_SLOT`, `SW_ERR_INCORRECT_PARAM`).
    fn generate(&mut self, cmd: &Command) -> Response {
        if cmd.p1 != 0x00 {
            return status(StatusWord::IncorrectP1P2);
        }
        if !self.session.management {
            return status(StatusWord::SecurityStatusNotSatisfied);
        }
        if !is_key_slot(cmd.p2) {
            return status(StatusWord::WrongP1P2);
        }
        let Some(template) = only(&cmd.data, 0xAC) else {
            return status(StatusWord::WrongData);
        };
        let Ok(tags) = tlv::parse(template) else {
            return status(StatusWord::WrongData);
        };
        let algorithm = match tlv::find(&tags, 0x80) {
            Some(&[a @ (ALG_ECCP256 | ALG_ECCP384)]) => a,
            _ => return status(StatusWord::WrongData),
        };
        let Some((pin_policy, touch_policy)) = Self::policies(cmd.p2, &tags) else {
            return status(StatusWord::WrongData);
        };
        let Ok(secret) = keys::generate(algorithm) else {
            return status(StatusWord::NoPreciseDiagnosis);
        };
        let Ok(point) = keys::public(algorithm, &secret) else {
            return status(StatusWord::NoPreciseDiagnosis);
        };
        let policies = (pin_policy, touch_policy);
        self.store_key(cmd.p2, (algorithm, ORIGIN_GENERATED), policies, secret);
        ok(public_key_template(&point))
    }

    /// IMPORT KEY (`FE <alg> <slot>`): for P-256 the data is `06 <32-byte scalar>` with the
    /// optional policy tags (Yubico, "PIV extensions"). Needs the management key.
    fn import(&mut self, cmd: &Command) -> Response {
        if !self.session.management {
            return status(StatusWord::SecurityStatusNotSatisfied);
        }
        if !is_key_slot(cmd.p2) {
            return status(StatusWord::WrongP1P2);
        }
        let (algorithm, len) = match cmd.p1 {
            ALG_ECCP256 => (ALG_ECCP256, 32),
            ALG_ECCP384 => (ALG_ECCP384, 48),
            _ => return status(StatusWord::WrongData),
        };
        let Ok(tags) = tlv::parse(&cmd.data) else {
            return status(StatusWord::WrongData);
        };
        let Some(scalar) = tlv::find(&tags, 0x06).filter(|s| s.len() == len) else {
            return status(StatusWord::WrongData);
        };
        if keys::public(algorithm, scalar).is_err() {
            return status(StatusWord::WrongData);
        }
        let Some((pin_policy, touch_policy)) = Self::policies(cmd.p2, &tags) else {
            return status(StatusWord::WrongData);
        };
        let secret = Zeroizing::new(scalar.to_vec());
        let policies = (pin_policy, touch_policy);
        self.store_key(cmd.p2, (algorithm, ORIGIN_IMPORTED), policies, secret);
        ok([])
    }

    fn attestation(&mut self) -> Option<&Attestation> {
        if self.attestation.is_none() {
            match Attestation::shared(self.device.serial) {
                Ok(a) => self.attestation = Some(a),
                Err(e) => {
                    tracing::error!(error = %e, "no attestation identity");
                    return None;
                }
            }
        }
        self.attestation.as_deref()
    }

    /// ATTEST (`F9 <slot> 00`): a certificate for the slot's key, signed by the F9 key. Only
    /// keys generated on the card are attested (YubiKey .NET SDK, "PIV attestation
    /// statements"): an imported key is refused with `6A80`, an empty slot with `6A88`.
    fn attest(&mut self, cmd: &Command) -> Response {
        if !is_key_slot(cmd.p1) {
            return status(StatusWord::WrongP1P2);
        }
        let Some(key) = self.state.key(cmd.p1).cloned() else {
            return status(StatusWord::ReferencedDataNotFound);
        };
        if key.origin != ORIGIN_GENERATED {
            return status(StatusWord::WrongData);
        }
        let Ok(point) = keys::public(key.algorithm, key.secret.expose()) else {
            return status(StatusWord::NoPreciseDiagnosis);
        };
        let device = self.device;
        let Some(attestation) = self.attestation() else {
            return status(StatusWord::NoPreciseDiagnosis);
        };
        let attested = Attested {
            slot: key.slot,
            algorithm: key.algorithm,
            public: &point,
            pin_policy: key.pin_policy,
            touch_policy: key.touch_policy,
        };
        match attestation.attest(device, attested) {
            Ok(cert) => ok(cert),
            Err(e) => {
                tracing::error!(error = %e, "attestation failed");
                status(StatusWord::NoPreciseDiagnosis)
            }
        }
    }

    /// GET METADATA (`F7 00 <ref>`), TLVs per the YubiKey .NET SDK's "Get metadata": `01`
    /// algorithm, `02` policy, `03` origin, `04` public key, `05` default value, `06` retries.
    /// An empty slot or unknown reference is `6A88` (ykman `cli/piv.py` `export`: "No key stored
    /// in slot").
    fn metadata(&mut self, cmd: &Command) -> Response {
        if cmd.p1 != 0x00 {
            return status(StatusWord::IncorrectP1P2);
        }
        let mut out = Vec::new();
        let reference = |out: &mut Vec<u8>, r: &Reference, default: &[u8]| {
            out.extend(tlv(0x01, &[0xFF]));
            out.extend(tlv(0x05, &[u8::from(r.is(default))]));
            out.extend(tlv(0x06, &[r.total, r.left]));
        };
        match cmd.p2 {
            REF_PIN => reference(&mut out, &self.state.pin, state::DEFAULT_PIN),
            REF_PUK => reference(&mut out, &self.state.puk, state::DEFAULT_PUK),
            SLOT_MANAGEMENT => {
                let m = &self.state.management;
                let default = m.algorithm == ALG_3DES
                    && bool::from(m.key.expose().ct_eq(&state::DEFAULT_MANAGEMENT_KEY));
                out.extend(tlv(0x01, &[m.algorithm]));
                out.extend(tlv(0x02, &[0x00, m.touch]));
                out.extend(tlv(0x05, &[u8::from(default)]));
            }
            SLOT_ATTESTATION => {
                let Some(point) = self.attestation().and_then(|a| a.public().ok()) else {
                    return status(StatusWord::NoPreciseDiagnosis);
                };
                out.extend(tlv(0x01, &[ALG_ECCP256]));
                out.extend(tlv(0x02, &[0x01, 0x01]));
                out.extend(tlv(0x03, &[ORIGIN_IMPORTED]));
                out.extend(tlv(0x04, &tlv(0x86, &point)));
            }
            slot if is_key_slot(slot) => {
                let Some(key) = self.state.key(slot) else {
                    return status(StatusWord::ReferencedDataNotFound);
                };
                let Ok(point) = keys::public(key.algorithm, key.secret.expose()) else {
                    return status(StatusWord::NoPreciseDiagnosis);
                };
                out.extend(tlv(0x01, &[key.algorithm]));
                out.extend(tlv(0x02, &[key.pin_policy, key.touch_policy]));
                out.extend(tlv(0x03, &[key.origin]));
                out.extend(tlv(0x04, &tlv(0x86, &point)));
            }
            _ => return status(StatusWord::ReferencedDataNotFound),
        }
        ok(out)
    }

    // -----------------------------------------------------------------------------------------
    // Data objects
    // -----------------------------------------------------------------------------------------

    /// The object id in `5C <id>`: 1 byte (`7E` discovery), 2 (`7F61`) or 3 (`5FC1xx`,
    /// `5FFFxx`).
    fn object_id(tags: &[tlv::Tlv<'_>]) -> Option<u32> {
        let id = tlv::find(tags, 0x5C)?;
        if id.is_empty() || id.len() > 3 {
            return None;
        }
        Some(id.iter().fold(0u32, |acc, &b| acc << 8 | u32::from(b)))
    }

    /// GET DATA (`CB 3F FF`, data `5C <id>`): the object in a `53` TLV, discovery as its `7E`
    /// TLV, `6A82` when absent (YubiKey .NET SDK, "Get data"). The F9 certificate is the
    /// attestation identity's unless PUT DATA replaced it.
    fn get_data(&mut self, cmd: &Command) -> Response {
        if (cmd.p1, cmd.p2) != (0x3F, 0xFF) {
            return status(StatusWord::IncorrectP1P2);
        }
        let Ok(tags) = tlv::parse(&cmd.data) else {
            return status(StatusWord::WrongData);
        };
        let Some(id) = Self::object_id(&tags) else {
            return status(StatusWord::WrongData);
        };
        if id == 0x7E {
            return ok(DISCOVERY);
        }
        if PIN_PROTECTED_OBJECTS.contains(&id) && !self.session.pin_verified {
            return status(StatusWord::SecurityStatusNotSatisfied);
        }
        if let Some(data) = self.state.object(id) {
            return ok(tlv(0x53, data));
        }
        if id == OBJECT_ATTESTATION && self.at_least(FIRST_ATTESTING_FIRMWARE) {
            if let Some(cert) = self.attestation().map(|a| a.certificate().to_vec()) {
                return ok(tlv(0x53, &certificate_object(&cert)));
            }
        }
        status(StatusWord::NotFound)
    }

    /// PUT DATA (`DB 3F FF`, data `5C <id> 53 <value>`): needs the management key. Ids are the
    /// PIV objects `5FC101`-`5FC123` and the YubiKey's `5FFF00`-`5FFF15`; an empty value deletes.
    fn put_data(&mut self, cmd: &Command) -> Response {
        if (cmd.p1, cmd.p2) != (0x3F, 0xFF) {
            return status(StatusWord::IncorrectP1P2);
        }
        if !self.session.management {
            return status(StatusWord::SecurityStatusNotSatisfied);
        }
        let Ok(tags) = tlv::parse(&cmd.data) else {
            return status(StatusWord::WrongData);
        };
        let (Some(id), Some(value)) = (Self::object_id(&tags), tlv::find(&tags, 0x53)) else {
            return status(StatusWord::WrongData);
        };
        if !matches!(id, 0x5F_C101..=0x5F_C123 | 0x5F_FF00..=0x5F_FF15) {
            return status(StatusWord::WrongData);
        }
        if value.len() > MAX_OBJECT {
            return status(StatusWord::NoSpace);
        }
        self.state.put_object(id, value);
        self.changed = true;
        ok([])
    }
}

/// `7F49 { 86 <point> }`, the public key template GENERATE answers (SP 800-73-4 part 2,
/// 3.3.2, table 10).
fn public_key_template(point: &[u8]) -> Vec<u8> {
    // The one-byte TLV writer with the tag's second byte: `49 <len> <inner>` after `7F`.
    let mut out = vec![0x7F];
    out.extend(tlv(0x49, &tlv(0x86, point)));
    out
}

/// A certificate as PIV stores it in its object: `70 <cert> 71 00 FE 00` (SP 800-73-4 part 1,
/// appendix A, certificate info "not compressed" and an empty error detection code).
pub fn certificate_object(cert: &[u8]) -> Vec<u8> {
    let mut out = tlv(0x70, cert);
    out.extend(tlv(0x71, &[0x00]));
    out.extend(tlv(0xFE, &[]));
    out
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
