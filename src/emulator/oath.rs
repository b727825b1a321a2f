//! The software YubiKey's OATH applet: every YKOATH instruction, with the status words a real
//! YubiKey 5 answers.
//!
//! The applet sees whole commands (command chaining already joined by the card frame) and gives
//! whole answers (the frame splits them into `61xx` chunks continued with SEND REMAINING).
//! Persistent memory is [`OathState`] (serde, so it can be saved after every change and embedded
//! in device images as an [`OathImage`]); volatile memory (authentication, the SELECT challenge)
//! is cleared by [`OathApplet::select`] and [`OathApplet::reset_volatile`].
//!
//! Wire encodings come from [`crate::token::oath`], the client's own codec, so the two sides
//! cannot drift apart.

use std::fmt;
use std::time::Duration;

use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::token::apdu::{Command, Response, StatusWord, CLA_CHAINING};
use crate::token::oath::{
    self as wire, ins, AccessKey, CalculateRequest, CredentialName, Digits, HashAlgorithm,
    ListEntry, OathError, OathSecret, OathType, Password, PutRequest, SelectInfo, SetCodeRequest,
    ValidateRequest, AID,
};
use crate::token::{CardTransport, TransportError};

/// The first firmware whose OATH applet holds 64 credentials; earlier firmware holds 32.
///
/// Source: Yubico, "YubiKey 5 Series technical manual", OATH
/// (docs.yubico.com/hardware/yubikey/yk-tech-manual/yk5-apps-oath.html): "The OATH application
/// can store up to 64 OATH credentials on firmware 5.7.0 and later (32 on older firmware)".
pub const FIRMWARE_64_CREDENTIALS: [u8; 3] = [5, 7, 0];

/// The first firmware whose OATH applet has RENAME (`INS 05`); earlier firmware answers it
/// `6D00` like any instruction it does not have.
///
/// Source: yubikey-manager `yubikit/oath.py`, `rename_credential`:
/// `require_version(self.version, (5, 3, 1))`. (Yubico's .NET SDK gates its `RenameCommand` at
/// 5.3.0; the emulator follows yubikit, the reference client.) The `6D00` is what the YKOATH
/// applet answers an instruction it lacks (ykneo-oath `YkneoOath.java`: `default:
/// ISOException.throwIt(ISO7816.SW_INS_NOT_SUPPORTED)`).
pub const FIRMWARE_RENAME: [u8; 3] = [5, 3, 1];

/// How many credentials the OATH applet of `firmware` holds: 32 before 5.7.0, 64 from 5.7.0.
pub fn firmware_capacity(firmware: [u8; 3]) -> usize {
    if firmware >= FIRMWARE_64_CREDENTIALS {
        64
    } else {
        32
    }
}

// ---------------------------------------------------------------------------------------------
// Touch
// ---------------------------------------------------------------------------------------------

/// Where the applet gets a touch from when a credential requires one.
pub trait TouchSource {
    /// Waits for a touch to calculate `credential`; false when none came (answered `6982`).
    fn wait_for_touch(&mut self, credential: &str) -> bool;
}

/// Touches at once, every time.
#[derive(Debug, Clone, Copy, Default)]
pub struct AutoTouch;

impl TouchSource for AutoTouch {
    fn wait_for_touch(&mut self, _credential: &str) -> bool {
        true
    }
}

/// Never touches: waits `timeout`, like a key nobody presses, then gives up.
#[derive(Debug, Clone, Copy, Default)]
pub struct DenyTouch {
    /// How long to wait before giving up.
    pub timeout: Duration,
}

impl TouchSource for DenyTouch {
    fn wait_for_touch(&mut self, _credential: &str) -> bool {
        std::thread::sleep(self.timeout);
        false
    }
}

/// Touches after a delay.
#[derive(Debug, Clone, Copy, Default)]
pub struct DelayTouch(pub Duration);

impl TouchSource for DelayTouch {
    fn wait_for_touch(&mut self, _credential: &str) -> bool {
        std::thread::sleep(self.0);
        true
    }
}

// ---------------------------------------------------------------------------------------------
// Persistent state
// ---------------------------------------------------------------------------------------------

/// Secret bytes in the applet's memory: zeroized on drop, redacted in `Debug`, stored as hex.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    /// Wraps bytes.
    pub fn new(bytes: Zeroizing<Vec<u8>>) -> Self {
        Self(bytes)
    }

    /// The bytes.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} secret bytes, redacted>", self.0.len())
    }
}

impl Serialize for SecretBytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let text = Zeroizing::new(data_encoding::HEXLOWER.encode(&self.0));
        s.serialize_str(&text)
    }
}

impl<'de> Deserialize<'de> for SecretBytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = Zeroizing::new(String::deserialize(d)?);
        OathSecret::from_hex(&text)
            .map(|s| Self(Zeroizing::new(s.expose().to_vec())))
            .map_err(serde::de::Error::custom)
    }
}

mod hex8 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8; 8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&data_encoding::HEXLOWER.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 8], D::Error> {
        let text = String::deserialize(d)?;
        super::parse_salt(&text).map_err(serde::de::Error::custom)
    }
}

fn parse_salt(text: &str) -> Result<[u8; 8], String> {
    let bytes = data_encoding::HEXLOWER_PERMISSIVE
        .decode(text.trim().as_bytes())
        .map_err(|e| format!("salt {text:?} is not hex: {e}"))?;
    <[u8; 8]>::try_from(bytes.as_slice())
        .map_err(|_| format!("salt {text:?} is {} bytes, expected 8", bytes.len()))
}

/// The stored access key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredAccessKey {
    /// Its hash (SHA-1 for every key a YubiKey client sets).
    pub algorithm: HashAlgorithm,
    /// The key.
    pub key: SecretBytes,
}

/// One credential in the applet's memory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredCredential {
    /// Its name.
    pub name: String,
    /// HOTP or TOTP.
    #[serde(rename = "type")]
    pub oath_type: OathType,
    /// The hash.
    pub algorithm: HashAlgorithm,
    /// Digits (6 to 8).
    pub digits: u8,
    /// The key, as PUT sent it.
    pub secret: SecretBytes,
    /// A touch is required for every code.
    #[serde(default)]
    pub touch: bool,
    /// Challenges may only increase.
    #[serde(default)]
    pub increasing: bool,
    /// HOTP: the next counter value.
    #[serde(default)]
    pub counter: u64,
    /// Increasing-only TOTP: the highest challenge calculated so far.
    #[serde(default)]
    pub last_challenge: u64,
}

impl StoredCredential {
    fn digits(&self) -> Digits {
        Digits::new(self.digits).unwrap_or(Digits::SIX)
    }

    fn from_put(req: &PutRequest) -> Self {
        Self {
            name: req.name.as_str().to_owned(),
            oath_type: req.oath_type,
            algorithm: req.algorithm,
            digits: req.digits.get(),
            secret: SecretBytes(Zeroizing::new(req.secret.expose().to_vec())),
            touch: req.touch,
            increasing: req.increasing,
            counter: u64::from(req.counter),
            last_challenge: 0,
        }
    }
}

/// The applet's persistent memory: salt, optional access key, credentials, and an optional
/// capacity below what the firmware holds (a test knob; absent: [`firmware_capacity`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OathState {
    #[serde(with = "hex8")]
    salt: [u8; 8],
    #[serde(default)]
    access_key: Option<StoredAccessKey>,
    #[serde(default)]
    credentials: Vec<StoredCredential>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    capacity: Option<usize>,
}

/// Eight random bytes from the system generator. Should the generator ever fail, the bytes come
/// from SHA-256 of the clock and a counter instead: the emulator must keep answering, and its
/// salts and challenges protect no real secret.
fn random8() -> [u8; 8] {
    let mut out = [0u8; 8];
    if SystemRandom::new().fill(&mut out).is_err() {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let mut seed = t.to_be_bytes().to_vec();
        seed.extend_from_slice(&n.to_be_bytes());
        let d = ring::digest::digest(&ring::digest::SHA256, &seed);
        for (o, b) in out.iter_mut().zip(d.as_ref()) {
            *o = *b;
        }
    }
    out
}

impl OathState {
    /// A blank applet (no password, no credentials) with the given salt, holding what its
    /// firmware holds.
    pub fn blank(salt: [u8; 8]) -> Self {
        Self {
            salt,
            access_key: None,
            credentials: Vec::new(),
            capacity: None,
        }
    }

    /// A blank applet with a random salt, as a new key leaves the factory.
    pub fn fresh() -> Self {
        Self::blank(random8())
    }

    /// An applet holding `credentials`, protected by `access_key` when given, with room for
    /// `capacity` credentials (at most what the firmware holds: see [`OathState::check_firmware`]).
    pub fn with_credentials(
        salt: [u8; 8],
        access_key: Option<&AccessKey>,
        credentials: Vec<StoredCredential>,
        capacity: usize,
    ) -> Self {
        Self {
            salt,
            access_key: access_key.map(|k| StoredAccessKey {
                algorithm: HashAlgorithm::Sha1,
                key: SecretBytes(Zeroizing::new(k.expose().to_vec())),
            }),
            credentials,
            capacity: Some(capacity),
        }
    }

    /// The salt (stable until RESET).
    pub fn salt(&self) -> &[u8; 8] {
        &self.salt
    }

    /// The device id clients derive from the salt.
    pub fn device_id(&self) -> String {
        wire::device_id(&self.salt)
    }

    /// True when an access key is set.
    pub fn has_password(&self) -> bool {
        self.access_key.is_some()
    }

    /// The credentials, in the order they were added.
    pub fn credentials(&self) -> &[StoredCredential] {
        &self.credentials
    }

    /// The capacity set below the firmware's, if any; `None`: what the firmware holds.
    pub fn capacity(&self) -> Option<usize> {
        self.capacity
    }

    /// How many credentials fit on a key with `firmware`.
    pub fn capacity_on(&self, firmware: [u8; 3]) -> usize {
        self.capacity.unwrap_or_else(|| firmware_capacity(firmware))
    }

    /// Refuses a state a key with `firmware` cannot hold: a capacity above
    /// [`firmware_capacity`], or more credentials than fit.
    pub fn check_firmware(&self, firmware: [u8; 3]) -> Result<(), OathImageError> {
        let holds = firmware_capacity(firmware);
        if let Some(capacity) = self.capacity.filter(|c| *c > holds) {
            return Err(OathImageError::CapacityBeyondFirmware {
                capacity,
                firmware: super::image::Firmware(firmware),
                holds,
            });
        }
        let capacity = self.capacity_on(firmware);
        if self.credentials.len() > capacity {
            return Err(OathImageError::OverCapacity {
                count: self.credentials.len(),
                capacity,
            });
        }
        Ok(())
    }

    fn find(&self, name: &CredentialName) -> Option<usize> {
        self.credentials
            .iter()
            .position(|c| c.name.as_bytes() == name.as_bytes())
    }
}

// ---------------------------------------------------------------------------------------------
// Device images
// ---------------------------------------------------------------------------------------------

/// Text that may be a secret (a test password, a seed): zeroized on drop, never printed.
#[derive(Clone, Default)]
pub struct SecretText(Zeroizing<String>);

impl SecretText {
    /// Wraps text.
    pub fn new(text: &str) -> Self {
        Self(Zeroizing::new(text.to_owned()))
    }

    /// The text.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Serialize for SecretText {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SecretText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|s| Self(Zeroizing::new(s)))
    }
}

/// The `[oath]` table of a device image in `hsm-fixtures/`.
///
/// ```toml
/// [oath]
/// password = "test-password"   # optional; the access key is derived from it and the salt
/// salt_hex = "0011223344556677" # optional; random when absent
/// capacity = 4                 # optional; default and maximum: 32 before firmware 5.7.0, 64 from it
/// [[oath.credentials]]
/// name = "AWS:root@example.com"
/// type = "totp"                 # or "hotp"
/// algorithm = "sha1"            # "sha256", "sha512"
/// digits = 6
/// secret_base32 = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"   # or secret_hex
/// touch = true
/// counter = 0                   # HOTP
/// ```
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OathImage {
    /// A plain test password; the access key is derived from it.
    #[serde(default)]
    pub password: Option<SecretText>,
    /// A fixed salt (16 hex digits), for stable device ids.
    #[serde(default)]
    pub salt_hex: Option<String>,
    /// How many credentials fit, when fewer than the firmware holds; absent: what the firmware
    /// holds ([`firmware_capacity`]).
    #[serde(default)]
    pub capacity: Option<usize>,
    /// The credentials.
    #[serde(default)]
    pub credentials: Vec<ImageCredential>,
}

fn default_type() -> OathType {
    OathType::Totp
}

fn default_algorithm() -> HashAlgorithm {
    HashAlgorithm::Sha1
}

fn default_digits() -> u8 {
    6
}

/// One `[[oath.credentials]]` entry of a device image.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageCredential {
    /// The credential name.
    pub name: String,
    /// `"totp"` (default) or `"hotp"`.
    #[serde(rename = "type", default = "default_type")]
    pub oath_type: OathType,
    /// `"sha1"` (default), `"sha256"` or `"sha512"`.
    #[serde(default = "default_algorithm")]
    pub algorithm: HashAlgorithm,
    /// 6 (default) to 8.
    #[serde(default = "default_digits")]
    pub digits: u8,
    /// The seed in hex.
    #[serde(default)]
    pub secret_hex: Option<SecretText>,
    /// The seed in Base32.
    #[serde(default)]
    pub secret_base32: Option<SecretText>,
    /// Touch required.
    #[serde(default)]
    pub touch: bool,
    /// Increasing-only.
    #[serde(default)]
    pub increasing: bool,
    /// HOTP counter.
    #[serde(default)]
    pub counter: u64,
}

/// Why a device image's `[oath]` table cannot become an applet state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OathImageError {
    /// `salt_hex` is not 8 bytes of hex.
    #[error("oath.salt_hex: {reason}")]
    BadSalt {
        /// What is wrong.
        reason: String,
    },
    /// More credentials than fit.
    #[error("oath.credentials: {count} credentials do not fit a capacity of {capacity}")]
    OverCapacity {
        /// How many credentials.
        count: usize,
        /// The capacity.
        capacity: usize,
    },
    /// A capacity above what the firmware holds.
    #[error(
        "oath.capacity = {capacity}: the OATH applet of firmware {firmware} holds at most {holds} \
         credentials"
    )]
    CapacityBeyondFirmware {
        /// The capacity asked for.
        capacity: usize,
        /// The device's firmware.
        firmware: super::image::Firmware,
        /// What that firmware holds.
        holds: usize,
    },
    /// A bad field in one credential.
    #[error("oath.credentials[{index}] ({name:?}): field `{field}`: {reason}")]
    BadCredential {
        /// Position in the list.
        index: usize,
        /// The credential's name as written.
        name: String,
        /// The field.
        field: &'static str,
        /// What is wrong (never the secret itself).
        reason: String,
    },
}

impl OathImage {
    /// Builds the applet state the image describes.
    pub fn to_state(&self) -> Result<OathState, OathImageError> {
        let salt = match &self.salt_hex {
            Some(text) => parse_salt(text).map_err(|reason| OathImageError::BadSalt { reason })?,
            None => random8(),
        };
        if let Some(capacity) = self.capacity.filter(|c| self.credentials.len() > *c) {
            return Err(OathImageError::OverCapacity {
                count: self.credentials.len(),
                capacity,
            });
        }
        let mut credentials: Vec<StoredCredential> = Vec::with_capacity(self.credentials.len());
        for (index, c) in self.credentials.iter().enumerate() {
            let bad = |field, reason: String| OathImageError::BadCredential {
                index,
                name: c.name.clone(),
                field,
                reason,
            };
            let name = CredentialName::parse(&c.name).map_err(|e| bad("name", e.to_string()))?;
            if credentials.iter().any(|o| o.name == c.name) {
                return Err(bad("name", "appears twice".to_owned()));
            }
            let digits = Digits::new(c.digits).map_err(|e| bad("digits", e.to_string()))?;
            let secret = match (&c.secret_hex, &c.secret_base32) {
                (Some(h), None) => OathSecret::from_hex(h.expose())
                    .map_err(|e| bad("secret_hex", e.to_string()))?,
                (None, Some(b)) => OathSecret::from_base32(b.expose())
                    .map_err(|e| bad("secret_base32", e.to_string()))?,
                (Some(_), Some(_)) => {
                    return Err(bad(
                        "secret_hex",
                        "give secret_hex or secret_base32, not both".to_owned(),
                    ))
                }
                (None, None) => {
                    return Err(bad(
                        "secret_hex",
                        "missing: give secret_hex or secret_base32".to_owned(),
                    ))
                }
            };
            if secret.is_empty() {
                return Err(bad("secret_hex", "the secret is empty".to_owned()));
            }
            // Store the key exactly as a client's PUT would have sent it.
            let prepared = secret.prepared(c.algorithm);
            credentials.push(StoredCredential {
                name: name.as_str().to_owned(),
                oath_type: c.oath_type,
                algorithm: c.algorithm,
                digits: digits.get(),
                secret: SecretBytes(Zeroizing::new(prepared.expose().to_vec())),
                touch: c.touch,
                increasing: c.increasing,
                counter: c.counter,
                last_challenge: 0,
            });
        }
        let key = self
            .password
            .as_ref()
            .map(|p| AccessKey::derive(&Password::from(p.expose()), &salt));
        let mut state = OathState::blank(salt);
        state.access_key = key.map(|k| StoredAccessKey {
            algorithm: HashAlgorithm::Sha1,
            key: SecretBytes(Zeroizing::new(k.expose().to_vec())),
        });
        state.credentials = credentials;
        state.capacity = self.capacity;
        Ok(state)
    }
}

// ---------------------------------------------------------------------------------------------
// The applet
// ---------------------------------------------------------------------------------------------

/// The OATH applet of the software YubiKey.
pub struct OathApplet {
    state: OathState,
    version: [u8; 3],
    capacity: usize,
    touch: Box<dyn TouchSource + Send>,
    authenticated: bool,
    challenge: Option<[u8; 8]>,
    changed: bool,
}

impl fmt::Debug for OathApplet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OathApplet")
            .field("state", &self.state)
            .field("version", &self.version)
            .field("authenticated", &self.authenticated)
            .finish_non_exhaustive()
    }
}

fn status(sw: StatusWord) -> Response {
    Response::status(sw)
}

fn ok(data: Zeroizing<Vec<u8>>) -> Response {
    Response {
        data,
        sw: StatusWord::Success,
    }
}

fn syntax(_: OathError) -> Response {
    status(StatusWord::WrongData)
}

/// True when `data` selects the OATH applet (AIDs match by prefix).
pub fn selects_oath(data: &[u8]) -> bool {
    data.len() >= 5 && (data.starts_with(&AID) || AID.starts_with(data))
}

impl OathApplet {
    /// An applet with persistent `state`, reporting `version`, taking touches from `touch`.
    pub fn new(state: OathState, version: [u8; 3], touch: Box<dyn TouchSource + Send>) -> Self {
        Self {
            capacity: state.capacity_on(version),
            state,
            version,
            touch,
            authenticated: false,
            challenge: None,
            changed: false,
        }
    }

    /// Answers SELECT by AID: version, salt and, when a password is set, a fresh challenge and
    /// the key's algorithm. Clears authentication.
    pub fn select(&mut self) -> Response {
        self.authenticated = false;
        self.challenge = self.state.access_key.as_ref().map(|_| random8());
        let info = SelectInfo {
            version: self.version.into(),
            salt: self.state.salt,
            challenge: self.challenge,
            algorithm: self.state.access_key.as_ref().map(|k| k.algorithm),
        };
        ok(Zeroizing::new(info.encode()))
    }

    /// Power off, power on or reset: authentication and the SELECT challenge are forgotten.
    pub fn reset_volatile(&mut self) {
        self.authenticated = false;
        self.challenge = None;
    }

    /// How many credentials fit: the state's capacity, else what the firmware holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The persistent state.
    pub fn state(&self) -> &OathState {
        &self.state
    }

    /// True once after a command changed the persistent state.
    pub fn state_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    fn locked(&self) -> bool {
        self.state.access_key.is_some() && !self.authenticated
    }

    /// Processes one whole command.
    ///
    /// Checks run in this order: class (`6E00`), instruction (`6D00`, also RENAME before
    /// firmware [`FIRMWARE_RENAME`]), authentication (`6982`
    /// unless the instruction is VALIDATE, RESET or SELECT), P1/P2 (`6A86`), then the data.
    pub fn process(&mut self, cmd: &Command) -> Response {
        if cmd.cla & !CLA_CHAINING != 0 {
            return status(StatusWord::ClaNotSupported);
        }
        let known = match cmd.ins {
            ins::PUT
            | ins::DELETE
            | ins::SET_CODE
            | ins::RESET
            | ins::LIST
            | ins::CALCULATE
            | ins::VALIDATE
            | ins::CALCULATE_ALL => true,
            ins::RENAME => self.version >= FIRMWARE_RENAME,
            _ => false,
        };
        if !known {
            return status(StatusWord::InsNotSupported);
        }
        if cmd.ins == ins::SELECT && cmd.p1 == 0x04 {
            return if selects_oath(&cmd.data) {
                self.select()
            } else {
                status(StatusWord::NotFound)
            };
        }
        if self.locked() && !matches!(cmd.ins, ins::VALIDATE | ins::RESET) {
            return status(StatusWord::SecurityStatusNotSatisfied);
        }
        let p1p2 = u16::from_be_bytes([cmd.p1, cmd.p2]);
        let params_ok = match cmd.ins {
            ins::RESET => p1p2 == 0xDEAD,
            ins::CALCULATE | ins::CALCULATE_ALL => cmd.p1 == 0 && cmd.p2 <= 1,
            _ => p1p2 == 0,
        };
        if !params_ok {
            return status(StatusWord::IncorrectP1P2);
        }
        match cmd.ins {
            ins::PUT => self.put(&cmd.data),
            ins::DELETE => self.delete(&cmd.data),
            ins::SET_CODE => self.set_code(&cmd.data),
            ins::RESET => self.reset(),
            ins::RENAME => self.rename(&cmd.data),
            ins::LIST => self.list(),
            ins::CALCULATE => self.calculate(&cmd.data, cmd.p2 == 1),
            ins::VALIDATE => self.validate(&cmd.data),
            _ => self.calculate_all(&cmd.data, cmd.p2 == 1),
        }
    }

    fn put(&mut self, data: &[u8]) -> Response {
        let req = match PutRequest::decode(data) {
            Ok(r) => r,
            Err(e) => return syntax(e),
        };
        let cred = StoredCredential::from_put(&req);
        match self.state.find(&req.name) {
            Some(i) => {
                if let Some(slot) = self.state.credentials.get_mut(i) {
                    *slot = cred;
                }
            }
            // Full: `6A84` (no space), as YKOATH specifies for PUT (Yubico, ykneo-oath
            // `doc/Protocol.asciidoc`, PUT response codes; `ISO7816.SW_FILE_FULL` in its applet).
            None if self.state.credentials.len() >= self.capacity => {
                return status(StatusWord::NoSpace)
            }
            None => self.state.credentials.push(cred),
        }
        self.changed = true;
        status(StatusWord::Success)
    }

    fn delete(&mut self, data: &[u8]) -> Response {
        let names = match wire::decode_names("DELETE", data) {
            Ok(n) => n,
            Err(e) => return syntax(e),
        };
        let [name] = names.as_slice() else {
            return status(StatusWord::WrongData);
        };
        match self.state.find(name) {
            Some(i) => {
                self.state.credentials.remove(i);
                self.changed = true;
                status(StatusWord::Success)
            }
            None => status(StatusWord::NoSuchObject),
        }
    }

    fn rename(&mut self, data: &[u8]) -> Response {
        let names = match wire::decode_names("RENAME", data) {
            Ok(n) => n,
            Err(e) => return syntax(e),
        };
        let [old, new] = names.as_slice() else {
            return status(StatusWord::WrongData);
        };
        let Some(i) = self.state.find(old) else {
            return status(StatusWord::NoSuchObject);
        };
        if self.state.find(new).is_some() {
            return status(StatusWord::WrongData);
        }
        if let Some(c) = self.state.credentials.get_mut(i) {
            c.name = new.as_str().to_owned();
        }
        self.changed = true;
        status(StatusWord::Success)
    }

    fn set_code(&mut self, data: &[u8]) -> Response {
        match SetCodeRequest::decode(data) {
            Err(e) => syntax(e),
            Ok(SetCodeRequest::Remove) => {
                self.state.access_key = None;
                self.challenge = None;
                self.changed = true;
                status(StatusWord::Success)
            }
            Ok(SetCodeRequest::Set {
                algorithm,
                key,
                challenge,
                response,
            }) => {
                if challenge.is_empty() || challenge.len() > 64 {
                    return status(StatusWord::WrongData);
                }
                let expected = wire::hmac_digest(algorithm, key.expose(), &challenge);
                if !bool::from(expected.as_slice().ct_eq(response.expose())) {
                    // The host and the applet disagree about the key: keep the old one.
                    return status(StatusWord::NoSuchObject);
                }
                self.state.access_key = Some(StoredAccessKey {
                    algorithm,
                    key: SecretBytes(Zeroizing::new(key.expose().to_vec())),
                });
                // The host has just proven it holds the new key: this session stays open.
                self.authenticated = true;
                self.changed = true;
                status(StatusWord::Success)
            }
        }
    }

    fn validate(&mut self, data: &[u8]) -> Response {
        let Some(key) = self.state.access_key.as_ref() else {
            return status(StatusWord::NoSuchObject);
        };
        let req = match ValidateRequest::decode(data) {
            Ok(r) => r,
            Err(e) => return syntax(e),
        };
        // Each SELECT challenge answers one VALIDATE, right or wrong.
        let Some(challenge) = self.challenge.take() else {
            return status(StatusWord::WrongData);
        };
        let expected = wire::hmac_digest(key.algorithm, key.key.expose(), &challenge);
        if !bool::from(expected.as_slice().ct_eq(req.response.expose())) {
            self.authenticated = false;
            return status(StatusWord::WrongData);
        }
        if !(8..=64).contains(&req.challenge.len()) {
            self.authenticated = false;
            return status(StatusWord::WrongData);
        }
        self.authenticated = true;
        let answer = wire::hmac_digest(key.algorithm, key.key.expose(), &req.challenge);
        ok(wire::encode_validate_response(&answer))
    }

    fn reset(&mut self) -> Response {
        self.state.credentials.clear();
        self.state.access_key = None;
        self.state.salt = random8();
        self.authenticated = false;
        self.challenge = None;
        self.changed = true;
        status(StatusWord::Success)
    }

    fn list(&mut self) -> Response {
        let entries: Vec<ListEntry> = self
            .state
            .credentials
            .iter()
            .filter_map(|c| {
                Some(ListEntry {
                    name: CredentialName::parse(&c.name).ok()?,
                    oath_type: c.oath_type,
                    algorithm: c.algorithm,
                })
            })
            .collect();
        ok(Zeroizing::new(wire::encode_list(&entries)))
    }

    fn calculate(&mut self, data: &[u8], truncated: bool) -> Response {
        let req = match CalculateRequest::decode(data) {
            Ok(r) => r,
            Err(e) => return syntax(e),
        };
        let Some(i) = self.state.find(&req.name) else {
            return status(StatusWord::NoSuchObject);
        };
        let Some(cred) = self.state.credentials.get(i) else {
            return status(StatusWord::NoSuchObject);
        };
        let (oath_type, increasing, touch) = (cred.oath_type, cred.increasing, cred.touch);
        let mut next_last = None;
        if oath_type == OathType::Totp && increasing {
            let Some(value) = challenge_value(&req.challenge) else {
                return status(StatusWord::WrongData);
            };
            if value < cred.last_challenge {
                return status(StatusWord::WrongData);
            }
            next_last = Some(value);
        }
        if touch && !self.touch.wait_for_touch(req.name.as_str()) {
            return status(StatusWord::SecurityStatusNotSatisfied);
        }
        let Some(cred) = self.state.credentials.get_mut(i) else {
            return status(StatusWord::NoSuchObject);
        };
        let message = match oath_type {
            OathType::Hotp => {
                let counter = cred.counter;
                let Some(next) = counter.checked_add(1) else {
                    return status(StatusWord::WrongData);
                };
                cred.counter = next;
                self.changed = true;
                Zeroizing::new(counter.to_be_bytes().to_vec())
            }
            OathType::Totp => Zeroizing::new(req.challenge.clone()),
        };
        if let Some(v) = next_last {
            if v != cred.last_challenge {
                cred.last_challenge = v;
                self.changed = true;
            }
        }
        let digest = wire::hmac_digest(cred.algorithm, cred.secret.expose(), &message);
        let mut out = Zeroizing::new(Vec::with_capacity(digest.len() + 3));
        if truncated {
            wire::encode_truncated(&mut out, cred.digits(), wire::dynamic_truncate(&digest));
        } else {
            wire::encode_full(&mut out, cred.digits(), &digest);
        }
        ok(out)
    }

    fn calculate_all(&mut self, data: &[u8], truncated: bool) -> Response {
        let challenge = match crate::token::tlv::parse(data) {
            Ok(items) => match crate::token::tlv::find(&items, wire::tag::CHALLENGE) {
                Some(c) => Zeroizing::new(c.to_vec()),
                None => return status(StatusWord::WrongData),
            },
            Err(_) => return status(StatusWord::WrongData),
        };
        let value = challenge_value(&challenge);
        let mut out = Zeroizing::new(Vec::with_capacity(self.state.credentials.len() * 80));
        for cred in &mut self.state.credentials {
            let name = cred.name.as_bytes();
            if crate::token::tlv::write(&mut out, wire::tag::NAME, name).is_err() {
                return status(StatusWord::WrongData);
            }
            let digits = Digits::new(cred.digits).unwrap_or(Digits::SIX);
            if cred.oath_type == OathType::Hotp {
                out.extend_from_slice(&[wire::tag::HOTP, 1, digits.get()]);
            } else if cred.touch {
                out.extend_from_slice(&[wire::tag::TOUCH, 1, digits.get()]);
            } else {
                if cred.increasing {
                    if let Some(v) = value.filter(|v| *v > cred.last_challenge) {
                        cred.last_challenge = v;
                        self.changed = true;
                    }
                }
                let digest = wire::hmac_digest(cred.algorithm, cred.secret.expose(), &challenge);
                if truncated {
                    wire::encode_truncated(&mut out, digits, wire::dynamic_truncate(&digest));
                } else {
                    wire::encode_full(&mut out, digits, &digest);
                }
            }
        }
        ok(out)
    }
}

/// A challenge of at most 8 bytes read as a big-endian number.
fn challenge_value(challenge: &[u8]) -> Option<u64> {
    if challenge.len() > 8 {
        return None;
    }
    Some(
        challenge
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)),
    )
}

// ---------------------------------------------------------------------------------------------
// A card holding only the OATH applet
// ---------------------------------------------------------------------------------------------

/// The largest data part of one answer; longer answers continue with `61xx`.
pub const MAX_CHUNK: usize = 256;

/// A minimal card that hosts only the OATH applet: SELECT by AID, command chaining, `61xx`
/// answers continued with SEND REMAINING. It lets client code, benchmarks and fuzzers talk to
/// the applet in-process through [`CardTransport`]; the full software YubiKey (all applets)
/// is the emulator's card frame.
pub struct OathCard {
    applet: OathApplet,
    selected: bool,
    chain: Option<(u8, u8, u8, Zeroizing<Vec<u8>>)>,
    pending: Zeroizing<Vec<u8>>,
    reader: String,
}

impl fmt::Debug for OathCard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OathCard")
            .field("reader", &self.reader)
            .field("selected", &self.selected)
            .field("applet", &self.applet)
            .finish_non_exhaustive()
    }
}

impl OathCard {
    /// A card around `applet`, in a reader called `reader`.
    pub fn new(applet: OathApplet, reader: &str) -> Self {
        Self {
            applet,
            selected: false,
            chain: None,
            pending: Zeroizing::new(Vec::new()),
            reader: reader.to_owned(),
        }
    }

    /// The applet.
    pub fn applet(&self) -> &OathApplet {
        &self.applet
    }

    /// The applet, mutably.
    pub fn applet_mut(&mut self) -> &mut OathApplet {
        &mut self.applet
    }

    /// Power cycle: nothing selected, volatile applet state cleared.
    pub fn power_cycle(&mut self) {
        self.selected = false;
        self.chain = None;
        self.pending.clear();
        self.applet.reset_volatile();
    }

    /// Answers one command APDU.
    pub fn answer(&mut self, bytes: &[u8]) -> Response {
        let cmd = match Command::parse(bytes) {
            Ok(c) => c,
            Err(_) => return status(StatusWord::WrongLength),
        };
        if cmd.ins == ins::SEND_REMAINING && self.chain.is_none() {
            if self.pending.is_empty() {
                return status(StatusWord::ConditionsNotSatisfied);
            }
            let rest = Zeroizing::new(std::mem::take(&mut *self.pending));
            return self.chunk(rest);
        }
        self.pending.clear();
        let cmd = if cmd.is_chained() {
            let (ins_, p1, p2, mut data) =
                self.chain
                    .take()
                    .unwrap_or((cmd.ins, cmd.p1, cmd.p2, Zeroizing::new(Vec::new())));
            if (ins_, p1, p2) != (cmd.ins, cmd.p1, cmd.p2) || data.len() > 65_536 {
                return status(StatusWord::WrongData);
            }
            data.extend_from_slice(&cmd.data);
            self.chain = Some((ins_, p1, p2, data));
            return status(StatusWord::Success);
        } else if let Some((ins_, p1, p2, mut data)) = self.chain.take() {
            if (ins_, p1, p2) != (cmd.ins, cmd.p1, cmd.p2) {
                return status(StatusWord::WrongData);
            }
            data.extend_from_slice(&cmd.data);
            Command { data, ..cmd }
        } else {
            cmd
        };
        let response = if cmd.ins == ins::SELECT && cmd.p1 == 0x04 {
            if selects_oath(&cmd.data) {
                self.selected = true;
                self.applet.select()
            } else {
                self.selected = false;
                status(StatusWord::NotFound)
            }
        } else if self.selected {
            self.applet.process(&cmd)
        } else {
            status(StatusWord::InsNotSupported)
        };
        let sw = response.sw;
        if sw == StatusWord::Success {
            self.chunk(response.data)
        } else {
            response
        }
    }

    fn chunk(&mut self, mut data: Zeroizing<Vec<u8>>) -> Response {
        if data.len() <= MAX_CHUNK {
            return ok(data);
        }
        let rest = Zeroizing::new(data.split_off(MAX_CHUNK));
        let n = u8::try_from(rest.len()).unwrap_or(0);
        self.pending = rest;
        Response {
            data,
            sw: StatusWord::MoreData(n),
        }
    }
}

impl CardTransport for OathCard {
    fn transmit(&mut self, command: &[u8]) -> Result<Zeroizing<Vec<u8>>, TransportError> {
        Ok(self.answer(command).to_bytes())
    }

    fn reader(&self) -> &str {
        &self.reader
    }
}
