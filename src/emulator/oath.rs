//! The software YubiKey's OATH applet (YKOATH): the interface the card frame codes against.
//!
//! This implementation answers SELECT, LIST and CALCULATE ALL (enough to identify a device and
//! describe its credentials) and refuses everything else with `6D00`; the complete applet
//! replaces it behind the same interface.

use std::time::Duration;

use ring::{hmac, pbkdf2, rand::SecureRandom};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::token::apdu::{Command, Response, StatusWord};
use crate::token::tlv;

/// Decides whether a touch-required credential gets its touch.
pub trait TouchSource {
    /// Waits for the user's touch for `credential`; false when none came.
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

/// Never touches: waits `timeout`, then reports no touch.
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

/// One stored credential.
#[derive(Clone, Serialize, Deserialize)]
struct StoredCredential {
    name: String,
    /// Type and algorithm byte (high nibble type, low nibble hash).
    kind: u8,
    digits: u8,
    /// The key, hex.
    secret_hex: String,
    touch: bool,
    counter: u32,
}

/// The applet's persistent state (credentials, password key, salt).
#[derive(Clone, Serialize, Deserialize)]
pub struct OathState {
    salt_hex: String,
    /// Hex of the 16-byte access key, when a password is set.
    access_key_hex: Option<String>,
    capacity: usize,
    credentials: Vec<StoredCredential>,
}

impl std::fmt::Debug for OathState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OathState")
            .field("credentials", &self.credentials.len())
            .field("locked", &self.access_key_hex.is_some())
            .finish_non_exhaustive()
    }
}

/// One credential of an image's `[[oath.credentials]]`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageCredential {
    /// Credential id (`issuer:account`, optionally `period/` first).
    pub name: String,
    /// `totp` or `hotp`.
    #[serde(rename = "type", default = "default_type")]
    pub kind: String,
    /// `sha1`, `sha256` or `sha512`.
    #[serde(default = "default_algorithm")]
    pub algorithm: String,
    /// 6 to 8.
    #[serde(default = "default_digits")]
    pub digits: u8,
    /// The key in hex.
    #[serde(default)]
    pub secret_hex: Option<String>,
    /// The key in Base32.
    #[serde(default)]
    pub secret_base32: Option<String>,
    /// Touch required.
    #[serde(default)]
    pub touch: bool,
    /// HOTP initial counter.
    #[serde(default)]
    pub counter: u32,
}

fn default_type() -> String {
    "totp".into()
}
fn default_algorithm() -> String {
    "sha1".into()
}
fn default_digits() -> u8 {
    6
}

/// The `[oath]` table of a device image.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OathImage {
    /// Access password (test images only).
    #[serde(default)]
    pub password: Option<String>,
    /// Credential slots (default 32).
    #[serde(default)]
    pub capacity: Option<usize>,
    /// Credentials.
    #[serde(default)]
    pub credentials: Vec<ImageCredential>,
}

/// Why an image's `[oath]` table cannot become a state.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OathImageError {
    /// A credential is malformed.
    #[error("credential {name:?}: {what}")]
    Credential {
        /// The credential's name.
        name: String,
        /// What is wrong.
        what: String,
    },
    /// No randomness.
    #[error("no randomness available for the salt")]
    Random,
}

impl TryFrom<OathImage> for OathState {
    type Error = OathImageError;

    fn try_from(image: OathImage) -> Result<Self, Self::Error> {
        let mut salt = [0u8; 8];
        ring::rand::SystemRandom::new()
            .fill(&mut salt)
            .map_err(|_| OathImageError::Random)?;
        let access_key_hex = image.password.as_ref().map(|p| {
            let mut key = Zeroizing::new([0u8; 16]);
            pbkdf2::derive(
                pbkdf2::PBKDF2_HMAC_SHA1,
                std::num::NonZeroU32::MIN.saturating_add(999),
                &salt,
                p.as_bytes(),
                &mut key[..],
            );
            data_encoding::HEXLOWER.encode(&key[..])
        });
        let mut credentials = Vec::new();
        for c in image.credentials {
            let bad = |what: &str| OathImageError::Credential {
                name: c.name.clone(),
                what: what.to_owned(),
            };
            let t = match c.kind.as_str() {
                "totp" => 0x20,
                "hotp" => 0x10,
                _ => return Err(bad("type must be totp or hotp")),
            };
            let a = match c.algorithm.as_str() {
                "sha1" => 0x01,
                "sha256" => 0x02,
                "sha512" => 0x03,
                _ => return Err(bad("algorithm must be sha1, sha256 or sha512")),
            };
            let key: Zeroizing<Vec<u8>> = match (&c.secret_hex, &c.secret_base32) {
                (Some(h), None) => Zeroizing::new(
                    data_encoding::HEXLOWER_PERMISSIVE
                        .decode(h.as_bytes())
                        .map_err(|_| bad("secret_hex is not hex"))?,
                ),
                (None, Some(b)) => {
                    let clean: String = b
                        .chars()
                        .filter(|c| !c.is_whitespace() && *c != '=')
                        .collect::<String>()
                        .to_uppercase();
                    Zeroizing::new(
                        data_encoding::BASE32_NOPAD
                            .decode(clean.as_bytes())
                            .map_err(|_| bad("secret_base32 is not Base32"))?,
                    )
                }
                _ => return Err(bad("give exactly one of secret_hex and secret_base32")),
            };
            credentials.push(StoredCredential {
                name: c.name.clone(),
                kind: t | a,
                digits: c.digits,
                secret_hex: data_encoding::HEXLOWER.encode(&key),
                touch: c.touch,
                counter: c.counter,
            });
        }
        Ok(Self {
            salt_hex: data_encoding::HEXLOWER.encode(&salt),
            access_key_hex,
            capacity: image.capacity.unwrap_or(32),
            credentials,
        })
    }
}

/// The OATH applet.
pub struct OathApplet {
    state: OathState,
    version: [u8; 3],
    touch: Box<dyn TouchSource + Send>,
    changed: bool,
}

impl OathApplet {
    /// An applet with `state`, reporting firmware `version`, asking `touch` for touches.
    pub fn new(state: OathState, version: [u8; 3], touch: Box<dyn TouchSource + Send>) -> Self {
        Self {
            state,
            version,
            touch,
            changed: false,
        }
    }

    /// Answers SELECT.
    pub fn select(&mut self) -> Response {
        let mut out = Vec::new();
        let salt = data_encoding::HEXLOWER
            .decode(self.state.salt_hex.as_bytes())
            .unwrap_or_default();
        let _ = tlv::write(&mut out, 0x79, &self.version);
        let _ = tlv::write(&mut out, 0x71, &salt);
        if self.state.access_key_hex.is_some() {
            let mut chal = [0u8; 8];
            let _ = ring::rand::SystemRandom::new().fill(&mut chal);
            let _ = tlv::write(&mut out, 0x74, &chal);
            let _ = tlv::write(&mut out, 0x7B, &[0x21]);
        }
        Response::new(out, StatusWord::Success)
    }

    /// Answers one command sent while the applet is selected.
    pub fn process(&mut self, cmd: &Command) -> Response {
        if self.state.access_key_hex.is_some() {
            return Response::status(StatusWord::SecurityStatusNotSatisfied);
        }
        match cmd.ins {
            0xA1 => {
                let mut out = Vec::new();
                for c in &self.state.credentials {
                    let mut v = vec![c.kind];
                    v.extend_from_slice(c.name.as_bytes());
                    let _ = tlv::write(&mut out, 0x72, &v);
                }
                Response::new(out, StatusWord::Success)
            }
            0xA4 => self.calculate_all(cmd),
            _ => Response::status(StatusWord::InsNotSupported),
        }
    }

    fn calculate_all(&mut self, cmd: &Command) -> Response {
        let Ok(tlvs) = tlv::parse(&cmd.data) else {
            return Response::status(StatusWord::WrongData);
        };
        let Some(challenge) = tlv::find(&tlvs, 0x74) else {
            return Response::status(StatusWord::WrongData);
        };
        let mut out = Vec::new();
        for c in &self.state.credentials {
            let _ = tlv::write(&mut out, 0x71, c.name.as_bytes());
            if c.kind & 0xF0 == 0x10 {
                let _ = tlv::write(&mut out, 0x77, &[c.digits]);
            } else if c.touch {
                let _ = tlv::write(&mut out, 0x7C, &[c.digits]);
            } else {
                let key = Zeroizing::new(
                    data_encoding::HEXLOWER
                        .decode(c.secret_hex.as_bytes())
                        .unwrap_or_default(),
                );
                let alg = match c.kind & 0x0F {
                    0x02 => hmac::HMAC_SHA256,
                    0x03 => hmac::HMAC_SHA512,
                    _ => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
                };
                let tag = hmac::sign(&hmac::Key::new(alg, &key), challenge);
                let d = tag.as_ref();
                let o = usize::from(d.last().copied().unwrap_or(0) & 0x0F);
                let mut v = vec![c.digits];
                v.extend(d.iter().skip(o).take(4).enumerate().map(|(i, b)| {
                    if i == 0 {
                        b & 0x7F
                    } else {
                        *b
                    }
                }));
                let _ = tlv::write(&mut out, 0x76, &v);
            }
        }
        Response::new(out, StatusWord::Success)
    }

    /// Forgets the volatile state (authentication).
    pub fn reset_volatile(&mut self) {}

    /// The persistent state.
    pub fn state(&self) -> &OathState {
        &self.state
    }

    /// True once after the persistent state changed.
    pub fn state_changed(&mut self) -> bool {
        let _ = &self.touch;
        std::mem::take(&mut self.changed)
    }
}
