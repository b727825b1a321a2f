//! What a YubiKey writes into a slot attestation certificate, decoded with the encodings Yubico
//! documents.
//!
//! Sources: Yubico's "PIV Attestation OID Arc" (docs.yubico.com/hardware/oid/oid-piv-arc.html,
//! linked from developers.yubico.com/PIV/Introduction/PIV_attestation.html): the subject is
//! "YubiKey PIV Attestation " followed by the slot; `1.3.6.1.4.1.41482.3.3` firmware version
//! (3 bytes: major, minor, patch, as in the OpenPGP arc page: `040300` for 4.3.0), `.3.7` serial
//! number (a DER INTEGER), `.3.8` PIN policy and touch policy (2 bytes), `.3.9` form factor
//! (1 byte, the management applet's form-factor code). The policy values are those of Yubico's
//! .NET SDK (`PivPinPolicy`: Never 1, Once 2, Always 3, MatchOnce 4, MatchAlways 5;
//! `PivTouchPolicy`: Never 1, Always 2, Cached 3). Two real attestations
//! (`testdata/`, firmware 5.2.6 and 5.7.4) carry exactly these encodings.

use std::fmt;

use x509_cert::der::asn1::ObjectIdentifier;
use x509_cert::der::Decode;
use x509_cert::Certificate;

use super::error::{AttestationError, YubicoExtension};
use super::subject_of;
use crate::token::management::FormFactor;

const OID_FIRMWARE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.41482.3.3");
const OID_SERIAL: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.41482.3.7");
const OID_POLICY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.41482.3.8");
const OID_FORM_FACTOR: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.41482.3.9");

/// The subject prefix of every slot attestation.
const SUBJECT_PREFIX: &str = "CN=YubiKey PIV Attestation ";

/// A PIV key slot: `9a`, `9c`, `9d`, `9e`, the retired slots `82`..=`95`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PivSlot(u8);

impl PivSlot {
    /// PIV Authentication.
    pub const AUTHENTICATION: Self = Self(0x9A);
    /// Digital Signature.
    pub const SIGNATURE: Self = Self(0x9C);
    /// Key Management.
    pub const KEY_MANAGEMENT: Self = Self(0x9D);
    /// Card Authentication.
    pub const CARD_AUTHENTICATION: Self = Self(0x9E);

    /// The slot with this key reference, if it is one that holds an attestable key.
    pub fn new(reference: u8) -> Option<Self> {
        matches!(reference, 0x9A | 0x9C | 0x9D | 0x9E | 0x82..=0x95).then_some(Self(reference))
    }

    /// The key reference (the byte PIV commands name the slot with).
    pub fn reference(self) -> u8 {
        self.0
    }
}

impl fmt::Display for PivSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02x}", self.0)
    }
}

/// When the key's PIN must be given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PinPolicy {
    /// Never.
    Never,
    /// Once per session.
    Once,
    /// Before every use.
    Always,
    /// A fingerprint match (or the PIN) once per session (YubiKey Bio).
    MatchOnce,
    /// A fingerprint match (or the PIN) before every use (YubiKey Bio).
    MatchAlways,
}

impl PinPolicy {
    /// The policy byte, as the attestation extension and GENERATE's tag `AA` carry it.
    pub fn to_byte(self) -> u8 {
        match self {
            Self::Never => 1,
            Self::Once => 2,
            Self::Always => 3,
            Self::MatchOnce => 4,
            Self::MatchAlways => 5,
        }
    }
}

impl fmt::Display for PinPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Never => "never",
            Self::Once => "once",
            Self::Always => "always",
            Self::MatchOnce => "match-once",
            Self::MatchAlways => "match-always",
        })
    }
}

/// When the key needs a touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TouchPolicy {
    /// Never.
    Never,
    /// Every use.
    Always,
    /// Once, then cached for 15 seconds.
    Cached,
}

impl TouchPolicy {
    /// The policy byte, as the attestation extension and GENERATE's tag `AB` carry it.
    pub fn to_byte(self) -> u8 {
        match self {
            Self::Never => 1,
            Self::Always => 2,
            Self::Cached => 3,
        }
    }
}

impl fmt::Display for TouchPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Never => "never",
            Self::Always => "always",
            Self::Cached => "cached",
        })
    }
}

/// A firmware version `major.minor.patch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct FirmwareVersion {
    /// Major.
    pub major: u8,
    /// Minor.
    pub minor: u8,
    /// Patch.
    pub patch: u8,
}

impl fmt::Display for FirmwareVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// The device facts a slot attestation carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DeviceFacts {
    pub slot: PivSlot,
    pub firmware: FirmwareVersion,
    pub serial: u32,
    pub pin_policy: PinPolicy,
    pub touch_policy: TouchPolicy,
    pub form_factor: FormFactor,
    pub fips_series: bool,
}

/// The slot a slot attestation's subject names.
fn slot_of(cert: &Certificate) -> Result<PivSlot, AttestationError> {
    let subject = cert.tbs_certificate.subject.to_string();
    let not_slot = || AttestationError::NotASlotAttestation {
        subject: subject_of(cert),
    };
    let hex = subject.strip_prefix(SUBJECT_PREFIX).ok_or_else(not_slot)?;
    if hex.len() != 2 {
        return Err(not_slot());
    }
    u8::from_str_radix(hex, 16)
        .ok()
        .and_then(PivSlot::new)
        .ok_or_else(not_slot)
}

/// The value of the one extension `oid` in `cert`, if present (duplicates were refused before).
fn extension(cert: &Certificate, oid: ObjectIdentifier) -> Option<&[u8]> {
    cert.tbs_certificate
        .extensions
        .iter()
        .flatten()
        .find(|e| e.extn_id == oid)
        .map(|e| e.extn_value.as_bytes())
}

fn required(
    cert: &Certificate,
    oid: ObjectIdentifier,
    which: YubicoExtension,
) -> Result<&[u8], AttestationError> {
    extension(cert, oid).ok_or(AttestationError::MissingExtension { extension: which })
}

fn garbled(extension: YubicoExtension, reason: impl Into<String>) -> AttestationError {
    AttestationError::GarbledExtension {
        extension,
        reason: reason.into(),
    }
}

/// Decodes the slot and the Yubico extensions of a slot attestation certificate. Firmware,
/// serial and policies are required: without them a key cannot be held to a device and a
/// policy. The form factor is reported as unknown when absent.
pub(super) fn device_facts(cert: &Certificate) -> Result<DeviceFacts, AttestationError> {
    let slot = slot_of(cert)?;

    let fw = required(cert, OID_FIRMWARE, YubicoExtension::Firmware)?;
    let firmware = match *fw {
        [major, minor, patch] => FirmwareVersion {
            major,
            minor,
            patch,
        },
        _ => {
            return Err(garbled(
                YubicoExtension::Firmware,
                format!("{} bytes where 3 (major, minor, patch) belong", fw.len()),
            ))
        }
    };

    let serial_der = required(cert, OID_SERIAL, YubicoExtension::Serial)?;
    let serial = u32::from_der(serial_der).map_err(|e| {
        garbled(
            YubicoExtension::Serial,
            format!("not a DER INTEGER between 0 and 4294967295 ({e})"),
        )
    })?;

    let policy = required(cert, OID_POLICY, YubicoExtension::Policy)?;
    let (pin_policy, touch_policy) = match *policy {
        [pin, touch] => (
            match pin {
                1 => PinPolicy::Never,
                2 => PinPolicy::Once,
                3 => PinPolicy::Always,
                4 => PinPolicy::MatchOnce,
                5 => PinPolicy::MatchAlways,
                other => {
                    return Err(garbled(
                        YubicoExtension::Policy,
                        format!("PIN policy {other:#04x} is none of 1 (never), 2 (once), 3 (always), 4 (match-once), 5 (match-always)"),
                    ))
                }
            },
            match touch {
                1 => TouchPolicy::Never,
                2 => TouchPolicy::Always,
                3 => TouchPolicy::Cached,
                other => {
                    return Err(garbled(
                        YubicoExtension::Policy,
                        format!("touch policy {other:#04x} is none of 1 (never), 2 (always), 3 (cached)"),
                    ))
                }
            },
        ),
        _ => {
            return Err(garbled(
                YubicoExtension::Policy,
                format!("{} bytes where 2 (PIN policy, touch policy) belong", policy.len()),
            ))
        }
    };

    // The form-factor byte: the low nibble is the form factor (the management applet's code,
    // `FormFactor::from_byte`), 0x80 marks the FIPS series (a YubiKey 5 FIPS attests 0x81 for a
    // USB-A keychain).
    let (form_factor, fips_series) = match extension(cert, OID_FORM_FACTOR) {
        None => (FormFactor::Unknown, false),
        Some([b]) => (FormFactor::from_byte(*b), b & 0x80 != 0),
        Some(other) => {
            return Err(garbled(
                YubicoExtension::FormFactor,
                format!("{} bytes where 1 belongs", other.len()),
            ))
        }
    };

    Ok(DeviceFacts {
        slot,
        firmware,
        serial,
        pin_policy,
        touch_policy,
        form_factor,
        fips_series,
    })
}
