//! Device images: TOML files (see `hsm-fixtures/`) describing one software YubiKey.
//!
//! ```toml
//! serial = 10000001
//! firmware = "5.4.3"
//! form_factor = "usb-a-keychain"
//!
//! [oath]                       # optional: the OATH applet's initial contents
//! [[oath.credentials]]
//! name = "AWS:root@example.test"
//! type = "totp"
//! algorithm = "sha1"
//! digits = 6
//! secret_hex = "3132333435363738393031323334353637383930"
//! touch = true
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::oath::{OathImage, OathState};
use crate::token::management::FormFactor;

/// A firmware version `major.minor.patch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Firmware(pub [u8; 3]);

impl FromStr for Firmware {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('.').collect();
        let bad = || format!("firmware {s:?} is not MAJOR.MINOR.PATCH (each 0-255)");
        match parts.as_slice() {
            [a, b, c] => Ok(Self([
                a.parse().map_err(|_| bad())?,
                b.parse().map_err(|_| bad())?,
                c.parse().map_err(|_| bad())?,
            ])),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for Firmware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c] = self.0;
        write!(f, "{a}.{b}.{c}")
    }
}

impl Serialize for Firmware {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Firmware {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One software YubiKey, as described by an image file.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceImage {
    /// The device serial number.
    pub serial: u32,
    /// Firmware version, e.g. `"5.4.3"`.
    pub firmware: Firmware,
    /// Physical form (`usb-a-keychain`, `usb-c-nano`, ...).
    #[serde(default)]
    pub form_factor: FormFactor,
    /// The OATH applet's initial contents; absent means empty.
    #[serde(default)]
    pub oath: Option<OathImage>,
}

impl fmt::Debug for DeviceImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The OATH table holds seeds and a password: never shown.
        f.debug_struct("DeviceImage")
            .field("serial", &self.serial)
            .field("firmware", &self.firmware)
            .field("form_factor", &self.form_factor)
            .field("oath", &self.oath.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Why an image could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImageError {
    /// The file could not be read.
    #[error("cannot read device image {path:?}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid image.
    #[error("device image {path:?} is invalid: {detail}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the TOML parser said.
        detail: String,
    },
    /// The `[oath]` table cannot be loaded into the applet.
    #[error("device image {path:?}: [oath]: {detail}")]
    Oath {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
}

impl DeviceImage {
    /// An image with no OATH credentials.
    pub fn blank(serial: u32, firmware: Firmware) -> Self {
        Self {
            serial,
            firmware,
            form_factor: FormFactor::UsbAKeychain,
            oath: None,
        }
    }

    /// Parses an image from TOML text; `path` only names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ImageError> {
        toml::from_str(text).map_err(|e| ImageError::Parse {
            path: path.to_owned(),
            detail: e.message().to_owned(),
        })
    }

    /// Reads and parses an image file.
    pub fn load(path: &Path) -> Result<Self, ImageError> {
        let text = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|source| {
            ImageError::Read {
                path: path.to_owned(),
                source,
            }
        })?);
        Self::parse(&text, path)
    }

    /// The OATH applet's initial state from the `[oath]` table (a fresh, empty applet when
    /// there is none), refused when the image's firmware cannot hold it (`oath.capacity` above
    /// [`firmware_capacity`](super::oath::firmware_capacity), or more credentials than fit).
    /// `path` only names the image in errors.
    pub fn oath_state(&self, path: &Path) -> Result<OathState, ImageError> {
        let state = match &self.oath {
            None => OathState::fresh(),
            Some(o) => o.to_state().map_err(|e| ImageError::Oath {
                path: path.to_owned(),
                detail: e.to_string(),
            })?,
        };
        self.check_oath_state(&state, path)?;
        Ok(state)
    }

    /// Refuses an OATH state (from the image or a saved state file) this image's firmware
    /// cannot hold. `path` only names the image in errors.
    pub fn check_oath_state(&self, state: &OathState, path: &Path) -> Result<(), ImageError> {
        state
            .check_firmware(self.firmware.0)
            .map_err(|e| ImageError::Oath {
                path: path.to_owned(),
                detail: e.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn firmware_parses_and_prints() {
        assert_eq!("5.4.3".parse::<Firmware>(), Ok(Firmware([5, 4, 3])));
        assert_eq!(Firmware([5, 7, 1]).to_string(), "5.7.1");
        assert!("5.4".parse::<Firmware>().is_err());
        assert!("5.4.300".parse::<Firmware>().is_err());
    }

    #[test]
    fn shipped_fixtures_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("hsm-fixtures");
        for name in ["blank.toml", "primary.toml", "backup.toml", "locked.toml"] {
            let path = dir.join(name);
            let image = DeviceImage::load(&path).expect(name);
            image.oath_state(&path).expect(name);
        }
    }

    #[test]
    fn fail_unknown_field_and_bad_form_factor() {
        let p = Path::new("x.toml");
        assert!(DeviceImage::parse("serial = 1\nfirmware = \"5.4.3\"\ncolour = 1", p).is_err());
        assert!(DeviceImage::parse(
            "serial = 1\nfirmware = \"5.4.3\"\nform_factor = \"floppy\"",
            p
        )
        .is_err());
    }

    #[test]
    fn debug_hides_the_oath_table() {
        let p = Path::new("x.toml");
        let image = DeviceImage::parse(
            "serial = 1\nfirmware = \"5.4.3\"\n[oath]\npassword = \"hunter2\"\n",
            p,
        )
        .expect("valid");
        assert!(!format!("{image:?}").contains("hunter2"));
    }
}
