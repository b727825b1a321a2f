//! Reconciliation: what the ledger holds about a device against what the device reports.
//! Every ceremony runs it before trusting a device.

use serde::Serialize;

use ring::rand::{SecureRandom, SystemRandom};

use crate::token::identity::{identify_unlocking, OathAccess};
use crate::token::piv::{self, PivSession};
use crate::token::{CardTransport, TokenError};

use super::device_keys::OathLock;
use super::ids::Serial;
use super::records::{CustodyKey, DeviceRecord};

/// What the device reported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Observed {
    /// Serial number, when the device reports it.
    pub serial: Option<u32>,
    /// Firmware `X.Y.Z`.
    pub firmware: Option<String>,
    /// OATH device id.
    pub device_id: Option<String>,
    /// Whether the OATH applet is password-protected.
    pub oath_locked: bool,
    /// Whether the expected credential is present (when one is expected).
    pub credential_present: Option<bool>,
    /// Whether that credential requires touch.
    pub touch: Option<bool>,
}

/// One difference between the ledger and the device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "field", rename_all = "snake_case")]
pub enum Mismatch {
    /// The serial differs (or the device hides it).
    Serial {
        /// Expected.
        expected: Serial,
        /// Reported.
        got: Option<u32>,
    },
    /// The OATH device id differs.
    DeviceId {
        /// Expected.
        expected: String,
        /// Reported.
        got: Option<String>,
    },
    /// The OATH applet is locked with a password the custody service does not use.
    OathLocked,
    /// The ledger locked the device's OATH applet with an access key, but the card asks for
    /// none: it is not the device the ledger locked.
    AccessKeyNotSet,
    /// The card failed the mutual VALIDATE with the device's access key: it is not the device
    /// the ledger locked.
    AccessKeyNotProven,
    /// The card did not sign a fresh nonce with the device's attested custody key (PIV slot
    /// `9e`): it is not the device that was attested, whatever serial and device id it shows.
    CustodyKeyNotProven,
    /// The account's credential is missing.
    CredentialMissing {
        /// Its name.
        credential: String,
    },
    /// The credential does not require touch.
    TouchOff {
        /// Its name.
        credential: String,
    },
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Serial { expected, got } => write!(f, "serial {got:?} instead of {expected}"),
            Self::DeviceId { expected, got } => {
                write!(f, "OATH device id {got:?} instead of {expected:?}")
            }
            Self::OathLocked => f.write_str("OATH applet is password-protected"),
            Self::AccessKeyNotSet => f.write_str(super::device_keys::NOT_SET),
            Self::AccessKeyNotProven => f.write_str(super::device_keys::NOT_PROVEN),
            Self::CustodyKeyNotProven => {
                f.write_str("the card did not sign a fresh challenge with the attested custody key")
            }
            Self::CredentialMissing { credential } => {
                write!(f, "credential {credential:?} missing")
            }
            Self::TouchOff { credential } => {
                write!(f, "credential {credential:?} does not require touch")
            }
        }
    }
}

/// The ledger's view compared with the device's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Reconciliation {
    /// The device the ledger expected.
    pub expected: Serial,
    /// What the device said.
    pub observed: Observed,
    /// Every difference (empty: it reconciles).
    pub mismatches: Vec<Mismatch>,
}

impl Reconciliation {
    /// True when nothing differs.
    pub fn is_ok(&self) -> bool {
        self.mismatches.is_empty()
    }

    /// The mismatches as one line.
    pub fn describe(&self) -> String {
        self.mismatches
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Challenges the device's custody key with a fresh 32-byte nonce from the system generator
/// (never reused): false when the card has no PIV applet, refuses, or signs with another key.
fn custody_key_proven<T: CardTransport>(
    serial: Serial,
    key: &CustodyKey,
    transport: &mut T,
) -> Result<bool, TokenError> {
    let Ok(spki) = data_encoding::BASE64.decode(key.spki.as_bytes()) else {
        return Ok(false);
    };
    let mut nonce = [0u8; 32];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| TokenError::Malformed {
            reader: transport.reader().to_owned(),
            ins: piv::ins::AUTHENTICATE,
            what: "the system random generator failed; no challenge nonce".to_owned(),
        })?;
    let mut session = match PivSession::select(&mut *transport) {
        Ok(s) => s,
        Err(TokenError::Refused { .. }) => return Ok(false),
        Err(e) => return Err(e),
    };
    Ok(piv::challenge(&mut session, serial.get(), &spki, &nonce)? == piv::Challenge::Proven)
}

/// Compares `device` (and, when given, the credential it must hold with touch on) with what
/// the card behind `transport` reports. When the ledger holds the device's OATH access key
/// (`lock`), the applet is opened with the mutual VALIDATE first, and a card that asks for no
/// key although the device is locked, or fails VALIDATE, is a mismatch whose credentials are
/// neither listed nor computed. A device with an attested custody key must first sign a fresh
/// nonce with it ([`Mismatch::CustodyKeyNotProven`] otherwise).
pub fn reconcile<T: CardTransport>(
    device: &DeviceRecord,
    credential: Option<&str>,
    lock: &OathLock,
    transport: &mut T,
) -> Result<Reconciliation, TokenError> {
    // The PIV challenge first: the OATH applet stays the selected one afterwards, as callers
    // that go on to compute a code expect.
    let custody_key_proven = match &device.custody_key {
        Some(key) => custody_key_proven(device.serial, key, transport)?,
        None => true,
    };
    let (id, access) = identify_unlocking(transport, None, lock.key())?;
    let cred = credential.map(|name| id.credentials.iter().find(|c| c.name == name));
    let observed = Observed {
        serial: id.serial,
        firmware: id.firmware.clone(),
        device_id: id.oath_device_id.clone(),
        oath_locked: id.oath_locked,
        credential_present: cred.map(|c| c.is_some()),
        touch: cred.and_then(|c| c.and_then(|c| c.touch)),
    };
    let mut mismatches = Vec::new();
    if id.serial != Some(device.serial.get()) {
        mismatches.push(Mismatch::Serial {
            expected: device.serial,
            got: id.serial,
        });
    }
    if id.oath_device_id.as_deref() != Some(device.device_id.as_str()) {
        mismatches.push(Mismatch::DeviceId {
            expected: device.device_id.clone(),
            got: id.oath_device_id.clone(),
        });
    }
    if !custody_key_proven {
        mismatches.push(Mismatch::CustodyKeyNotProven);
    }
    let listed = match access {
        OathAccess::Validated => true,
        OathAccess::NotOffered if id.oath_locked => {
            mismatches.push(Mismatch::OathLocked);
            false
        }
        OathAccess::NotOffered => true,
        OathAccess::NotSet if lock.required() => {
            mismatches.push(Mismatch::AccessKeyNotSet);
            false
        }
        // A key the ledger holds for an enrolment that never reached SET CODE.
        OathAccess::NotSet => false,
        OathAccess::Failed => {
            mismatches.push(Mismatch::AccessKeyNotProven);
            false
        }
    };
    if let Some(name) = credential {
        match cred.flatten() {
            None if listed => mismatches.push(Mismatch::CredentialMissing {
                credential: name.to_owned(),
            }),
            Some(c) if c.touch != Some(true) => mismatches.push(Mismatch::TouchOff {
                credential: name.to_owned(),
            }),
            _ => {}
        }
    }
    Ok(Reconciliation {
        expected: device.serial,
        observed,
        mismatches,
    })
}

#[cfg(test)]
mod tests {
    //! The custody-key challenge inside reconciliation, against the in-process software
    //! YubiKey: a copy that shows the same serial and the same OATH device id (the same OATH
    //! salt) is told apart by its PIV key alone.
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::custody::records::{DeviceRole, DeviceState};
    use crate::emulator::oath::{AutoTouch, OathState};
    use crate::emulator::piv::attest::TEST_CA_CERT_PEM;
    use crate::emulator::SoftKey;
    use crate::token::attestation::TrustAnchors;
    use crate::token::management::FormFactor;

    const SERIAL: u32 = 10_000_123;
    const SALT: [u8; 8] = [7; 8];

    fn card() -> SoftKey {
        SoftKey::new(
            SERIAL,
            [5, 7, 1],
            FormFactor::UsbAKeychain,
            OathState::blank(SALT),
            Box::new(AutoTouch),
        )
    }

    /// The ledger's record of `card` after registration, with its custody key when `attest`.
    fn record(card: &mut SoftKey, attest: bool) -> DeviceRecord {
        let id = crate::token::identity::identify(&mut *card, None).unwrap();
        let custody_key = attest.then(|| {
            let anchors = TrustAnchors::from_pem(TEST_CA_CERT_PEM).unwrap();
            let mut session = PivSession::select(&mut *card).unwrap();
            let p = piv::provision(&mut session, SERIAL, &anchors, jiff::Timestamp::now()).unwrap();
            CustodyKey {
                slot: p.attested.slot.to_string(),
                spki: data_encoding::BASE64.encode(&p.attested.public_key_spki),
                key_id: p.attested.key_id,
            }
        });
        DeviceRecord {
            serial: Serial::new(SERIAL).unwrap(),
            firmware: id.firmware.unwrap(),
            device_id: id.oath_device_id.unwrap(),
            role: DeviceRole::Primary,
            account: None,
            state: DeviceState::Registered,
            blocked_by: None,
            oath_access_key: false,
            access_key_clearing: false,
            custody_key,
        }
    }

    #[test]
    fn the_attested_device_reconciles_and_a_copy_does_not() {
        let mut original = card();
        let device = record(&mut original, true);
        assert_eq!(device.custody_key.as_ref().unwrap().slot, "9e");
        let lock = OathLock::default();
        let rec = reconcile(&device, None, &lock, &mut original).unwrap();
        assert!(rec.is_ok(), "{}", rec.describe());

        // Same serial, same OATH device id, its own PIV key (attested too: it is a YubiKey).
        let mut copy = card();
        let copied = record(&mut copy, true);
        assert_eq!(
            copied.device_id, device.device_id,
            "the copy shows the same device id"
        );
        let rec = reconcile(&device, None, &lock, &mut copy).unwrap();
        assert_eq!(rec.mismatches, [Mismatch::CustodyKeyNotProven]);
        assert!(rec.describe().contains("custody key"), "{}", rec.describe());

        // A copy with no custody key at all is no better.
        let rec = reconcile(&device, None, &lock, &mut card()).unwrap();
        assert_eq!(rec.mismatches, [Mismatch::CustodyKeyNotProven]);
    }

    #[test]
    fn a_device_registered_before_attestation_is_not_challenged() {
        let mut original = card();
        let device = record(&mut original, false);
        let rec = reconcile(&device, None, &OathLock::default(), &mut card()).unwrap();
        assert!(rec.is_ok(), "{}", rec.describe());
    }
}
