//! Reconciliation: what the ledger holds about a device against what the device reports.
//! Every ceremony runs it before trusting a device.

use serde::Serialize;

use crate::token::identity::{identify_unlocking, OathAccess};
use crate::token::{CardTransport, TokenError};

use super::device_keys::OathLock;
use super::ids::Serial;
use super::records::DeviceRecord;

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

/// Compares `device` (and, when given, the credential it must hold with touch on) with what
/// the card behind `transport` reports. When the ledger holds the device's OATH access key
/// (`lock`), the applet is opened with the mutual VALIDATE first, and a card that asks for no
/// key although the device is locked, or fails VALIDATE, is a mismatch whose credentials are
/// neither listed nor computed.
pub fn reconcile<T: CardTransport>(
    device: &DeviceRecord,
    credential: Option<&str>,
    lock: &OathLock,
    transport: &mut T,
) -> Result<Reconciliation, TokenError> {
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
