//! Giving a registered device an attested custody key (two officers): `attest_device`, or
//! `plan_attest`, [`AttestPlan::provision_card`], `finish_attest`. Registration gives a new
//! device its custody key with the same parts (`start_attestation`, [`AttestPlan`],
//! `attested_event`: see [`super::devices`]), and `require_attested` is the policy that refuses
//! ceremonies on devices without one.
//!
//! The device's new PIV management key is generated and sealed into the ledger
//! (`device.attestation_started`) before the card is touched. Under the device's lock only, the
//! card is reconciled (serial, OATH device id, its OATH access key), given a P-256 key in slot
//! `9e`, asked to attest it, and the chain is verified against the daemon's trust anchors for
//! the ledger's serial ([`crate::token::piv::provision_with`]); only a verified key gets
//! the new management key. `device.attested` then records the public key, the attested facts
//! and both certificates (public: an auditor re-verifies them offline), and the device record
//! carries the `custody_key` every later reconciliation challenges. An attestation that stopped
//! after `device.attestation_started` (card pulled, daemon killed, refused) leaves the sealed key
//! in the ledger, and the next one uses it again: a card that took it is opened with it, so no
//! card is ever left with a management key the ledger does not hold. A card whose attestation
//! does not verify keeps its factory management key; the refusal names why
//! (`attestation_untrusted`, `attestation_serial_mismatch`, `attestation_unsupported`) and is
//! recorded.

use serde::{Deserialize, Serialize};
use serde_json::json;
use zeroize::Zeroizing;

use crate::token::attestation::{AttestationError, PivSlot, TrustAnchors};
use crate::token::piv::{self, ManagementAlgorithm, ManagementKey, PivSession, ProvisionError};
use crate::token::TokenError;

use super::access::DeviceAccess;
use super::device_keys::OathLock;
use super::devices::open;
use super::error::{AttestationRefusal, CustodyError};
use super::ids::Serial;
use super::reconcile::reconcile;
use super::records::{CustodyKey, DeviceRecord, DeviceState};
use super::service::{pair, token_err, Custody, Session};
use super::store::{self, entity, kinds, Put};

/// The ledger purpose label of the key that seals devices' PIV management keys.
pub const MANAGEMENT_KEY_PURPOSE: &str = "custody/device-management-keys/v1";

/// A device's PIV management key as stored: Base64 of nonce ‖ AES-256-GCM ciphertext ‖ tag of
/// the algorithm byte ‖ the key, bound to the device's serial.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedManagementKey {
    /// Base64 of nonce ‖ ciphertext ‖ tag.
    pub sealed: String,
}

fn aad(serial: Serial) -> Vec<u8> {
    format!("device-management-key/{serial}").into_bytes()
}

/// The firmware `X.Y.Z` of a device record as three bytes.
fn firmware_bytes(serial: Serial, firmware: &str) -> Result<[u8; 3], CustodyError> {
    let mut parts = firmware.split('.').map(str::parse::<u8>);
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(Ok(a)), Some(Ok(b)), Some(Ok(c)), None) => Ok([a, b, c]),
        _ => Err(CustodyError::CorruptRecord {
            entity: entity::DEVICE,
            id: serial.to_string(),
            reason: format!("firmware {firmware:?} is not X.Y.Z"),
        }),
    }
}

/// The refusal of a device whose firmware predates PIV attestation.
fn unattestable_firmware(serial: Serial, firmware: &str) -> CustodyError {
    CustodyError::AttestationRefused {
        serial,
        why: AttestationRefusal::Unsupported,
        detail: format!(
            "firmware {firmware} has no PIV attestation (it arrived with YubiKey firmware 4.3); \
             use a newer YubiKey"
        ),
    }
}

impl Custody {
    fn management_key_purpose_key(&self) -> Result<Zeroizing<[u8; 32]>, CustodyError> {
        self.ledger
            .derive_key(MANAGEMENT_KEY_PURPOSE)
            .map_err(super::service::op_err(
                "derive the management-key sealing key",
            ))
    }

    /// Seals `key` for storage as `serial`'s PIV management key.
    fn seal_management_key(
        &self,
        serial: Serial,
        key: &ManagementKey,
    ) -> Result<SealedManagementKey, CustodyError> {
        let k = self.management_key_purpose_key()?;
        let mut plain = Zeroizing::new(Vec::with_capacity(1 + key.expose().len()));
        plain.push(key.algorithm().to_byte());
        plain.extend_from_slice(key.expose());
        let sealed = super::sealed::seal(&k, &aad(serial), plain, "seal PIV management key")?;
        Ok(SealedManagementKey { sealed })
    }

    /// The PIV management key the ledger holds sealed for `serial`, if any.
    fn management_key(&self, serial: Serial) -> Result<Option<ManagementKey>, CustodyError> {
        let id = serial.to_string();
        let Some(sealed) =
            store::get::<SealedManagementKey>(&self.ledger, entity::MANAGEMENT_KEY, &id)?
        else {
            return Ok(None);
        };
        let corrupt = || CustodyError::CorruptRecord {
            entity: entity::MANAGEMENT_KEY,
            id: id.clone(),
            reason: "does not decrypt".into(),
        };
        let k = self.management_key_purpose_key()?;
        let plain = super::sealed::open(&k, &aad(serial), &sealed.sealed).ok_or_else(corrupt)?;
        let (&alg, key) = plain.split_first().ok_or_else(corrupt)?;
        let algorithm = ManagementAlgorithm::from_byte(alg).map_err(|_| corrupt())?;
        ManagementKey::new(algorithm, Zeroizing::new(key.to_vec()))
            .map(Some)
            .map_err(|_| corrupt())
    }

    /// The management key an attestation of `device` gives its card, sealed in the ledger
    /// before any card is touched: the one an earlier attestation of this serial sealed and
    /// did not finish (`true`: resumed), or a new one drawn now and recorded with
    /// `device.attestation_started`. A firmware that cannot attest is refused
    /// `attestation_unsupported` first, and nothing is sealed.
    pub(super) fn start_attestation(
        &mut self,
        who: &str,
        device: &DeviceRecord,
    ) -> Result<(ManagementKey, bool), CustodyError> {
        let serial = device.serial;
        let firmware = firmware_bytes(serial, &device.firmware)?;
        if firmware < piv::FIRST_ATTESTING_FIRMWARE {
            return Err(unattestable_firmware(serial, &device.firmware));
        }
        if let Some(key) = self.management_key(serial)? {
            return Ok((key, true));
        }
        let algorithm = ManagementAlgorithm::for_firmware(firmware);
        let key = ManagementKey::random(algorithm).map_err(|_| CustodyError::Crypto {
            operation: "generate PIV management key",
        })?;
        let sealed = self.seal_management_key(serial, &key)?;
        self.append(
            kinds::DEVICE_ATTESTATION_STARTED,
            who,
            json!({"device": serial.to_string(), "account": device.account,
                   "slot": PivSlot::CARD_AUTHENTICATION.to_string()}),
            &[Put::new(entity::MANAGEMENT_KEY, serial, &sealed)?],
        )?;
        Ok((key, false))
    }

    /// `device.attested` for `d` given the custody key `p` proved, and `d` carrying it.
    pub(super) fn attested_event(
        who: &str,
        d: &mut DeviceRecord,
        resumed: bool,
        p: &piv::Provisioned,
    ) -> Result<crate::ledger::NewEvent, CustodyError> {
        let at = &p.attested;
        let key = CustodyKey {
            slot: at.slot.to_string(),
            spki: data_encoding::BASE64.encode(&at.public_key_spki),
            key_id: at.key_id.clone(),
        };
        d.custody_key = Some(key.clone());
        Self::event(
            kinds::DEVICE_ATTESTED,
            who,
            json!({"device": d.serial.to_string(), "account": d.account,
                   "slot": key.slot, "spki": key.spki, "key_id": key.key_id,
                   "serial": at.serial, "firmware": at.firmware.to_string(),
                   "pin_policy": at.pin_policy.to_string(),
                   "touch_policy": at.touch_policy.to_string(),
                   "form_factor": at.form_factor.to_string(),
                   "fips_series": at.fips_series, "anchor": at.anchor,
                   "resumed": resumed,
                   "slot_certificate": data_encoding::BASE64.encode(&p.slot_cert),
                   "device_certificate": data_encoding::BASE64.encode(&p.device_cert)}),
            &[Put::new(entity::DEVICE, d.serial, &*d)?],
        )
    }

    /// Refuses `operation` on `d` when the policy requires attested devices
    /// (`require_attested_devices`) and `d` has no attested custody key. Check-out, which
    /// never touches the card, is not refused: an unattested key in its bag is checked out to
    /// be attested.
    pub(super) fn require_attested(
        &self,
        d: &DeviceRecord,
        operation: &'static str,
    ) -> Result<(), CustodyError> {
        if self.policy.require_attested_devices && d.custody_key.is_none() {
            return Err(CustodyError::DeviceUnattested {
                serial: d.serial,
                operation,
            });
        }
        Ok(())
    }

    /// The service clock's time, at which an attestation's certificates must be valid.
    pub(super) fn attestation_time(&self) -> Result<jiff::Timestamp, CustodyError> {
        jiff::Timestamp::from_millisecond(self.now()).map_err(|_| CustodyError::Crypto {
            operation: "the clock's time for the attestation",
        })
    }

    /// Gives a device an attested custody key (two officers): see the module documentation.
    /// The card must be in an allowed reader; `anchors` are what the attestation must chain
    /// to, at the service clock's time.
    pub fn attest_device(
        &mut self,
        a: &Session,
        b: &Session,
        access: &mut dyn DeviceAccess,
        serial: Serial,
        anchors: &TrustAnchors,
    ) -> Result<DeviceRecord, CustodyError> {
        let plan = self.plan_attest(a, b, serial)?;
        let now = self.attestation_time()?;
        let provisioned = plan.provision_card(access, anchors, now);
        self.finish_attest(a, b, &plan, provisioned)
    }

    /// The checks of an attestation that need no card (two distinct active officers; the
    /// device known, out of its bag and not terminal, not blocked, not attested yet), and its
    /// new management key: the one an earlier attestation of this device sealed and did not
    /// finish, or a new one drawn and sealed now with `device.attestation_started` (committed
    /// before the card is touched). Refusals are recorded.
    pub fn plan_attest(
        &mut self,
        a: &Session,
        b: &Session,
        serial: Serial,
    ) -> Result<AttestPlan, CustodyError> {
        self.guarded(&pair(a.user(), b.user()), "attest_device", |c| {
            let (who, device) = c.attest_checks(a, b, serial)?;
            let (key, resumed) = c.start_attestation(&who, &device)?;
            let lock = c.oath_lock(&device)?;
            Ok(AttestPlan {
                device,
                lock,
                key,
                resumed,
            })
        })
    }

    fn attest_checks(
        &self,
        a: &Session,
        b: &Session,
        serial: Serial,
    ) -> Result<(String, DeviceRecord), CustodyError> {
        let (x, y) = self.officer_pair(a, b, "attest_device")?;
        let d = self.device(serial)?;
        if let Some(incident) = d.blocked_by.clone() {
            return Err(CustodyError::DeviceBlocked { serial, incident });
        }
        if d.custody_key.is_some() {
            return Err(CustodyError::DeviceState {
                serial,
                state: "attested",
                operation: "attest (it already has an attested custody key)",
            });
        }
        if !matches!(
            d.state,
            DeviceState::Registered | DeviceState::Enrolled | DeviceState::CheckedOut { .. }
        ) {
            return Err(CustodyError::DeviceState {
                serial,
                state: d.state.name(),
                operation: "attest (only a key out of its bag is attested: check it out first; \
                            a key that left custody is not attested)",
            });
        }
        Ok((pair(&x.name, &y.name), d))
    }

    /// Records the custody key once the card was given it and its attestation verified
    /// ([`AttestPlan::provision_card`]), checking the ledger again first. A card that is not
    /// the device opens a `device_mismatch` incident; an attestation that does not verify is
    /// refused (and recorded) with the code naming why; either way the device stays
    /// unattested.
    pub fn finish_attest(
        &mut self,
        a: &Session,
        b: &Session,
        plan: &AttestPlan,
        provisioned: Result<piv::Provisioned, CustodyError>,
    ) -> Result<DeviceRecord, CustodyError> {
        let serial = plan.serial();
        self.guarded(&pair(a.user(), b.user()), "attest_device", |c| {
            let (who, mut d) = c.attest_checks(a, b, serial)?;
            if d.state.name() != plan.device.state.name() {
                return Err(CustodyError::DeviceState {
                    serial,
                    state: d.state.name(),
                    operation: "attest (the device changed during the attestation; try again)",
                });
            }
            let p = c.incident_on_mismatch(&who, provisioned)?;
            let event = Self::attested_event(&who, &mut d, plan.resumed, &p)?;
            c.append_batch("attest_device", vec![event])?;
            Ok(d)
        })
    }
}

/// A planned attestation ([`Custody::plan_attest`]): the device as the ledger holds it, what
/// opens its OATH applet, and the new management key (already sealed in the ledger). `Debug`
/// shows no key byte.
#[derive(Debug)]
pub struct AttestPlan {
    device: DeviceRecord,
    lock: OathLock,
    key: ManagementKey,
    /// The key was sealed by an earlier attestation of this device that did not finish.
    resumed: bool,
}

impl AttestPlan {
    /// The attestation registration plans for a device not recorded yet: `device` is what
    /// the card showed, and `key` is already sealed ([`Custody::start_attestation`]).
    pub(super) fn for_registration(
        device: DeviceRecord,
        lock: OathLock,
        (key, resumed): (ManagementKey, bool),
    ) -> Self {
        Self {
            device,
            lock,
            key,
            resumed,
        }
    }

    /// True when the management key was sealed by an earlier attempt that did not finish.
    pub fn resumed(&self) -> bool {
        self.resumed
    }

    /// The device's serial.
    pub fn serial(&self) -> Serial {
        self.device.serial
    }

    /// The new management key, for tests that check where it does not appear.
    #[cfg(test)]
    pub(crate) fn management_key(&self) -> &ManagementKey {
        &self.key
    }

    /// Reconciles the card with the ledger (serial, OATH device id, the VALIDATE of a locked
    /// device), then gives it the custody key and verifies the attestation against `anchors`
    /// at `now` for the ledger's serial ([`piv::provision_with`]). A card that does
    /// not reconcile is [`CustodyError::DeviceMismatch`] and nothing is generated on it; an
    /// attestation that does not verify is [`CustodyError::AttestationRefused`] and the card
    /// keeps its factory management key. Card I/O only.
    pub fn provision_card(
        &self,
        access: &mut dyn DeviceAccess,
        anchors: &TrustAnchors,
        now: jiff::Timestamp,
    ) -> Result<piv::Provisioned, CustodyError> {
        let serial = self.serial();
        let mut t = open(access, serial).map_err(|e| match e {
            CustodyError::DeviceUnavailable { serial, reason } => CustodyError::DeviceUnavailable {
                serial,
                reason: format!("{reason}; put key {serial} in a reader to attest it"),
            },
            e => e,
        })?;
        let rec = reconcile(&self.device, None, &self.lock, &mut t).map_err(token_err(serial))?;
        if !rec.is_ok() {
            return Err(CustodyError::DeviceMismatch {
                serial,
                mismatch: rec.describe(),
            });
        }
        let refused = |why: AttestationRefusal, detail: String| CustodyError::AttestationRefused {
            serial,
            why,
            detail,
        };
        let mut session = match PivSession::select(&mut t) {
            Ok(s) => s,
            Err(e @ TokenError::Refused { .. }) => {
                return Err(refused(
                    AttestationRefusal::Unsupported,
                    format!("the card has no PIV applet ({e}): it is not a YubiKey with PIV"),
                ))
            }
            Err(e) => return Err(token_err(serial)(e)),
        };
        let key = ManagementKey::new(
            self.key.algorithm(),
            Zeroizing::new(self.key.expose().to_vec()),
        )
        .map_err(|_| CustodyError::Crypto {
            operation: "copy PIV management key",
        })?;
        piv::provision_with(&mut session, serial.get(), anchors, now, key).map_err(|e| match e {
            ProvisionError::Attestation(a @ AttestationError::SerialMismatch { .. }) => {
                refused(AttestationRefusal::SerialMismatch, a.to_string())
            }
            ProvisionError::Attestation(a) => refused(AttestationRefusal::Untrusted, a.to_string()),
            ProvisionError::Card(e @ TokenError::Refused { .. }) => refused(
                AttestationRefusal::Unsupported,
                format!(
                    "the PIV applet refused ({e}): it cannot generate and attest a P-256 \
                         key with the factory management key"
                ),
            ),
            ProvisionError::Card(e) => token_err(serial)(e),
            e @ (ProvisionError::NotP256(_) | ProvisionError::WrongAlgorithm { .. }) => {
                refused(AttestationRefusal::Unsupported, e.to_string())
            }
            ProvisionError::Key(_) => CustodyError::Crypto {
                operation: "PIV management key",
            },
        })
    }
}
