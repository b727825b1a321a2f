//! Devices on [`Custody`]: registration with an attested custody key (`register_device`, or
//! `plan_registration`, a card read by [`identify_device`], `begin_registration`,
//! [`RegistrationPlan::provision_card`], `finish_registration`), `reconcile_device`, check-out
//! (`check_out`), check-in (`check_in`, or `plan_check_in`, [`DeviceCheck::reconcile`],
//! `finish_check_in`) and terminal states (`set_terminal`, or `plan_terminal`,
//! [`TerminalPlan::clear_access_key`], `finish_terminal`: lost, destroyed, retired).

use serde_json::json;

use crate::token::attestation::TrustAnchors;
use crate::token::CardTransport;

use super::access::DeviceAccess;
use super::device_attest::AttestPlan;
use super::error::{AttestationRefusal, CustodyError};
use super::ids::{Location, RequestId, SealNumber, Serial};
use super::reconcile::{reconcile, Reconciliation};
use super::records::{DeviceRecord, DeviceRole, DeviceState, IncidentKind, RequestStatus, Role};
use super::service::{pair, token_err, Custody, Session, Terminal};
use super::store::{self, entity, kinds, Put};

impl Custody {
    /// [`Custody::register_device_with`] trusting Yubico's published PIV attestation roots.
    pub fn register_device(
        &mut self,
        by: &Session,
        access: &mut dyn DeviceAccess,
        serial: Serial,
        role: DeviceRole,
    ) -> Result<DeviceRecord, CustodyError> {
        self.register_device_with(by, access, serial, role, &TrustAnchors::yubico())
    }

    /// Registers a device presented now (one officer) and gives it an attested custody key
    /// in the same ceremony: its serial, firmware and OATH device id are read from the card,
    /// whose serial must be `serial`; then its PIV applet generates the custody key, whose
    /// attestation must chain to `anchors` at the service clock's time and name `serial`.
    ///
    /// The phases the daemon runs, holding the service only around the ones that decide and
    /// record: [`Custody::plan_registration`], [`identify_device`] (card I/O),
    /// [`Custody::begin_registration`] (the new PIV management key sealed with
    /// `device.attestation_started` before the card is touched again),
    /// [`RegistrationPlan::provision_card`] (card I/O) and [`Custody::finish_registration`].
    /// A registration that stopped in between is simply run again: the device is not recorded
    /// yet, and the sealed management key is used again.
    pub fn register_device_with(
        &mut self,
        by: &Session,
        access: &mut dyn DeviceAccess,
        serial: Serial,
        role: DeviceRole,
        anchors: &TrustAnchors,
    ) -> Result<DeviceRecord, CustodyError> {
        self.plan_registration(by, serial)?;
        let seen = identify_device(access, serial);
        let plan = self.begin_registration(by, serial, role, seen)?;
        let now = self.attestation_time()?;
        let provisioned = plan.provision_card(access, anchors, now);
        self.finish_registration(by, &plan, provisioned)
    }

    /// The checks of a registration that need no card (an officer; a serial the ledger does
    /// not hold yet). Refusals are recorded.
    pub fn plan_registration(&mut self, by: &Session, serial: Serial) -> Result<(), CustodyError> {
        self.guarded(by.user().as_str(), "register_device", |c| {
            c.registration_checks(by, serial).map(|_| ())
        })
    }

    fn registration_checks(
        &self,
        by: &Session,
        serial: Serial,
    ) -> Result<super::records::UserRecord, CustodyError> {
        let u = self.session_with_role(by, &[Role::Officer], "register_device")?;
        if store::get::<DeviceRecord>(&self.ledger, entity::DEVICE, &serial.to_string())?.is_some()
        {
            return Err(CustodyError::DeviceExists { serial });
        }
        Ok(u)
    }

    /// Judges what the card answered ([`identify_device`]), checking the ledger again first,
    /// and plans the custody key's attestation: its new PIV management key is sealed and
    /// committed (`device.attestation_started`) before the card is touched again, or the key
    /// an earlier registration of this serial sealed is used again. A firmware that cannot
    /// attest (before 4.3) is refused `attestation_unsupported` when the policy requires
    /// attested devices, and otherwise registered unattested without touching its PIV
    /// applet. Refusals are recorded.
    pub fn begin_registration(
        &mut self,
        by: &Session,
        serial: Serial,
        role: DeviceRole,
        seen: Result<crate::token::identity::DeviceIdentity, CustodyError>,
    ) -> Result<RegistrationPlan, CustodyError> {
        self.guarded(by.user().as_str(), "register_device", |c| {
            let u = c.registration_checks(by, serial)?;
            let device = registered_record(serial, role, seen?)?;
            let attestation = match c.start_attestation(u.name.as_str(), &device) {
                Ok(key) => Attestation::Planned(Box::new(AttestPlan::for_registration(
                    device.clone(),
                    c.oath_lock(&device)?,
                    key,
                ))),
                Err(CustodyError::AttestationRefused {
                    why: AttestationRefusal::Unsupported,
                    detail,
                    ..
                }) if !c.policy.require_attested_devices => Attestation::Unsupported { detail },
                Err(e) => return Err(e),
            };
            Ok(RegistrationPlan {
                device,
                attestation,
            })
        })
    }

    /// Records a registration once the card was given its custody key
    /// ([`RegistrationPlan::provision_card`]), checking the ledger again first:
    /// `device.registered` and `device.attested` together. A card that could not be
    /// attested (`attestation_untrusted`, `attestation_unsupported`) is refused when the
    /// policy requires attested devices, and otherwise registered unattested, the refusal
    /// named in `device.registered` (`unattested`, `unattested_detail`); two officers may
    /// attest it later (`custody device attest`). An attestation naming another serial is
    /// always refused; so is a card that failed otherwise (absent, pulled), which a new
    /// registration retries with the sealed management key. Refusals are recorded.
    pub fn finish_registration(
        &mut self,
        by: &Session,
        plan: &RegistrationPlan,
        provisioned: Result<crate::token::piv::Provisioned, CustodyError>,
    ) -> Result<DeviceRecord, CustodyError> {
        let serial = plan.serial();
        self.guarded(by.user().as_str(), "register_device", |c| {
            let u = c.registration_checks(by, serial)?;
            let who = u.name.as_str();
            let mut d = plan.device.clone();
            let events = match (provisioned, &plan.attestation) {
                (Ok(p), Attestation::Planned(a)) => {
                    let registered = registered_event(who, &d, None)?;
                    let attested = Self::attested_event(who, &mut d, a.resumed(), &p)?;
                    vec![registered, attested]
                }
                (
                    Err(CustodyError::AttestationRefused {
                        why: why @ (AttestationRefusal::Untrusted | AttestationRefusal::Unsupported),
                        detail,
                        ..
                    }),
                    _,
                ) if !c.policy.require_attested_devices => {
                    vec![registered_event(who, &d, Some((why, &detail)))?]
                }
                // Only a planned attestation provisions a card: an outcome without a plan is
                // not this registration's.
                (Ok(_), Attestation::Unsupported { detail }) => {
                    return Err(CustodyError::AttestationRefused {
                        serial,
                        why: AttestationRefusal::Unsupported,
                        detail: detail.clone(),
                    })
                }
                (Err(e), _) => return Err(e),
            };
            c.append_batch("register_device", events)?;
            Ok(d)
        })
    }

    /// Compares the ledger's view of `serial` with the card `access` opens for it.
    pub fn reconcile_device(
        &self,
        access: &mut dyn DeviceAccess,
        serial: Serial,
    ) -> Result<Reconciliation, CustodyError> {
        let d = self.device(serial)?;
        let cred = match &d.account {
            Some(a) => Some(self.account(a)?.credential),
            None => None,
        };
        let lock = self.oath_lock(&d)?;
        let mut t = open(access, serial)?;
        reconcile(&d, cred.as_deref(), &lock, &mut t).map_err(token_err(serial))
    }

    /// Takes a device out of its sealed bag (one officer, who becomes its custodian). The seal
    /// presented must be the one recorded; a mismatch opens an incident that blocks the device.
    /// With `request`, the device must hold that request's account.
    pub fn check_out(
        &mut self,
        by: &Session,
        serial: Serial,
        presented_seal: &SealNumber,
        request: Option<&RequestId>,
    ) -> Result<DeviceRecord, CustodyError> {
        self.guarded(by.user().as_str(), "check_out", |c| {
            let u = c.session_with_role(by, &[Role::Officer], "check_out")?;
            let mut d = c.device(serial)?;
            if let Some(incident) = d.blocked_by.clone() {
                return Err(CustodyError::DeviceBlocked { serial, incident });
            }
            let DeviceState::InSafe { seal, location } = d.state.clone() else {
                return Err(CustodyError::DeviceState {
                    serial,
                    state: d.state.name(),
                    operation: "check out",
                });
            };
            if let Some(rid) = request {
                let r = c.request(rid)?;
                if !matches!(r.status, RequestStatus::Pending | RequestStatus::Approved) {
                    return Err(super::requests::closed_error(&r));
                }
                if d.account.as_ref() != Some(&r.account) {
                    let expected = c
                        .devices_of(&r.account)?
                        .into_iter()
                        .find(|x| x.role == DeviceRole::Primary && !x.state.is_terminal())
                        .map(|x| x.serial)
                        .unwrap_or(serial);
                    return Err(CustodyError::WrongDevice {
                        expected,
                        got: serial,
                    });
                }
            }
            if &seal != presented_seal {
                let incident = c.open_incident_event(
                    u.name.as_str(),
                    IncidentKind::SealMismatch,
                    Some(serial),
                    format!("seal {presented_seal} presented, {seal} recorded (at {location})"),
                )?;
                return Err(CustodyError::SealMismatch {
                    serial,
                    incident,
                    expected: seal,
                    got: presented_seal.clone(),
                });
            }
            d.state = DeviceState::CheckedOut {
                custodian: u.name.clone(),
                request: request.cloned(),
                since_ms: c.now(),
            };
            let mut body = json!({"device": serial.to_string(), "seal": seal, "location": location,
                                  "custodian": u.name});
            if let serde_json::Value::Object(m) = &mut body {
                if let Some(a) = &d.account {
                    m.insert("account".into(), json!(a));
                }
                if let Some(r) = request {
                    m.insert("request".into(), json!(r));
                }
            }
            c.append(
                kinds::DEVICE_CHECKED_OUT,
                u.name.as_str(),
                body,
                &[Put::new(entity::DEVICE, serial, &d)?],
            )?;
            Ok(d)
        })
    }

    /// Seals an enrolled or checked-out device into a new bag and puts it in the safe (one
    /// officer). The device is reconciled first; the seal number must never have been used.
    pub fn check_in(
        &mut self,
        by: &Session,
        access: &mut dyn DeviceAccess,
        serial: Serial,
        seal: SealNumber,
        location: Location,
    ) -> Result<DeviceRecord, CustodyError> {
        let plan = self.plan_check_in(by, serial, &seal)?;
        let read = plan.reconcile(access);
        self.finish_check_in(by, serial, seal, location, read)
    }

    /// The checks of a check-in that need no card (an officer; an enrolled or checked-out
    /// device; a seal number never used). Refusals are recorded.
    pub fn plan_check_in(
        &mut self,
        by: &Session,
        serial: Serial,
        seal: &SealNumber,
    ) -> Result<DeviceCheck, CustodyError> {
        self.guarded(by.user().as_str(), "check_in", |c| {
            c.check_in_checks(by, serial, seal).map(|(_, check)| check)
        })
    }

    fn check_in_checks(
        &self,
        by: &Session,
        serial: Serial,
        seal: &SealNumber,
    ) -> Result<(super::records::UserRecord, DeviceCheck), CustodyError> {
        let u = self.session_with_role(by, &[Role::Officer], "check_in")?;
        let d = self.device(serial)?;
        if !matches!(
            d.state,
            DeviceState::Enrolled | DeviceState::CheckedOut { .. }
        ) {
            return Err(CustodyError::DeviceState {
                serial,
                state: d.state.name(),
                operation: "check in",
            });
        }
        self.require_attested(&d, "check it in")?;
        if store::get::<serde_json::Value>(&self.ledger, entity::SEAL, seal.as_str())?.is_some() {
            return Err(CustodyError::SealReused { seal: seal.clone() });
        }
        Ok((u, self.device_check(d)?))
    }

    /// What reconciling `d`'s card needs: the record and its account's credential name.
    pub(super) fn device_check(&self, d: DeviceRecord) -> Result<DeviceCheck, CustodyError> {
        let credential = match &d.account {
            Some(a) => Some(self.account(a)?.credential),
            None => None,
        };
        let lock = self.oath_lock(&d)?;
        Ok(DeviceCheck {
            device: d,
            credential,
            lock,
        })
    }

    /// Records a check-in from the card's reconciliation ([`DeviceCheck::reconcile`]),
    /// checking the ledger again first; a mismatch opens an incident.
    pub fn finish_check_in(
        &mut self,
        by: &Session,
        serial: Serial,
        seal: SealNumber,
        location: Location,
        read: Result<Reconciliation, CustodyError>,
    ) -> Result<DeviceRecord, CustodyError> {
        self.guarded(by.user().as_str(), "check_in", |c| {
            let (u, check) = c.check_in_checks(by, serial, &seal)?;
            let mut d = check.device;
            let rec = read?;
            if !rec.is_ok() {
                let detail = rec.describe();
                c.open_incident_event(
                    u.name.as_str(),
                    IncidentKind::DeviceMismatch,
                    Some(serial),
                    detail.clone(),
                )?;
                return Err(CustodyError::DeviceMismatch {
                    serial,
                    mismatch: detail,
                });
            }
            d.state = DeviceState::InSafe {
                location: location.clone(),
                seal: seal.clone(),
            };
            let mut body = json!({"device": serial.to_string(), "seal": seal, "location": location,
                                  "by": u.name});
            if let (Some(a), serde_json::Value::Object(m)) = (&d.account, &mut body) {
                m.insert("account".into(), json!(a));
            }
            c.append(
                kinds::DEVICE_CHECKED_IN,
                u.name.as_str(),
                body,
                &[
                    Put::new(entity::DEVICE, serial, &d)?,
                    Put::new(entity::SEAL, &seal, &json!({"serial": serial}))?,
                ],
            )?;
            Ok(d)
        })
    }

    /// Puts a device in a terminal state (two officers). Losing one opens an incident.
    /// Retiring a device locked with an OATH access key clears the key on the card first
    /// ([`TerminalPlan::clear_access_key`]), so the card must be in an allowed reader.
    pub fn set_terminal(
        &mut self,
        a: &Session,
        b: &Session,
        access: &mut dyn DeviceAccess,
        serial: Serial,
        to: Terminal,
    ) -> Result<DeviceRecord, CustodyError> {
        let plan = self.plan_terminal(a, b, serial, to)?;
        let cleared = plan.clear_access_key(access);
        self.finish_terminal(a, b, &plan, cleared)
    }

    /// The checks of a terminal state that need no card (two officers; a device not already
    /// terminal). Retiring a locked device plans clearing its access key: the plan carries
    /// the key, and the intent is recorded before any card is touched
    /// ([`super::key_clearing`]). Refusals are recorded.
    pub fn plan_terminal(
        &mut self,
        a: &Session,
        b: &Session,
        serial: Serial,
        to: Terminal,
    ) -> Result<TerminalPlan, CustodyError> {
        self.guarded(&pair(a.user(), b.user()), "set_terminal", |c| {
            let (who, d) = c.terminal_checks(a, b, serial)?;
            let clearing = match to {
                Terminal::Retired => c.plan_key_clearings(&who, &[d], "retire")?.pop(),
                Terminal::Lost | Terminal::Destroyed => None,
            };
            Ok(TerminalPlan {
                serial,
                to,
                clearing,
            })
        })
    }

    fn terminal_checks(
        &self,
        a: &Session,
        b: &Session,
        serial: Serial,
    ) -> Result<(String, DeviceRecord), CustodyError> {
        let (x, y) = self.officer_pair(a, b, "set_terminal")?;
        let d = self.device(serial)?;
        if d.state.is_terminal() {
            return Err(CustodyError::DeviceState {
                serial,
                state: d.state.name(),
                operation: "change a terminal state",
            });
        }
        Ok((pair(&x.name, &y.name), d))
    }

    /// Records the terminal state, checking the ledger again first. `cleared` is the outcome
    /// of [`TerminalPlan::clear_access_key`]: a card that did not prove it holds the
    /// device's access key opens an incident and the device keeps its state.
    pub fn finish_terminal(
        &mut self,
        a: &Session,
        b: &Session,
        plan: &TerminalPlan,
        cleared: Result<bool, CustodyError>,
    ) -> Result<DeviceRecord, CustodyError> {
        let serial = plan.serial;
        let to = plan.to;
        self.guarded(&pair(a.user(), b.user()), "set_terminal", |c| {
            let (who, mut d) = c.terminal_checks(a, b, serial)?;
            let cleared = c.incident_on_mismatch(&who, cleared)?;
            if (to == Terminal::Retired && d.oath_access_key) != plan.needs_card() {
                // The device was locked or unlocked since the plan: plan again.
                return Err(CustodyError::DeviceState {
                    serial,
                    state: d.state.name(),
                    operation: "retire (its access key changed meanwhile; try again)",
                });
            }
            let before = d.state.name();
            d.state = match to {
                Terminal::Retired => DeviceState::Retired,
                Terminal::Lost => DeviceState::Lost,
                Terminal::Destroyed => DeviceState::Destroyed,
            };
            let mut body =
                json!({"device": serial.to_string(), "from": before, "to": d.state.name()});
            if let serde_json::Value::Object(m) = &mut body {
                if let Some(acc) = &d.account {
                    m.insert("account".into(), json!(acc));
                }
                if cleared {
                    // The sealed key stays in the ledger (history); the card asks for none.
                    d.oath_access_key = false;
                    m.insert("access_key_cleared".into(), json!(true));
                }
                d.access_key_clearing = false;
            }
            c.append(
                kinds::DEVICE_STATE_CHANGED,
                &who,
                body,
                &[Put::new(entity::DEVICE, serial, &d)?],
            )?;
            if to == Terminal::Lost {
                c.open_incident_event(
                    &who,
                    IncidentKind::DeviceLost,
                    Some(serial),
                    format!("device {serial} reported lost"),
                )?;
                d = c.device(serial)?;
            }
            Ok(d)
        })
    }
}

/// A planned terminal state ([`Custody::plan_terminal`]): when a locked device is retired, the
/// clearing of its access key from the card. `Debug` shows no key byte.
#[derive(Debug)]
pub struct TerminalPlan {
    serial: Serial,
    to: Terminal,
    clearing: Option<super::key_clearing::KeyClearing>,
}

impl TerminalPlan {
    /// The device's serial.
    pub fn serial(&self) -> Serial {
        self.serial
    }

    /// True when the card must be present: a locked device being retired.
    pub fn needs_card(&self) -> bool {
        self.clearing.is_some()
    }

    /// Clears the device's OATH access key from its card when the plan retires a locked
    /// device ([`super::key_clearing::KeyClearing::clear`]: VALIDATE with the ledger's key,
    /// UNSET CODE, SELECT again). Answers whether a key was cleared; no card is opened
    /// otherwise. A card that fails VALIDATE is [`CustodyError::DeviceMismatch`]. Card I/O
    /// only.
    pub fn clear_access_key(&self, access: &mut dyn DeviceAccess) -> Result<bool, CustodyError> {
        match &self.clearing {
            None => Ok(false),
            Some(c) => c.clear(access, "retired").map(|()| true),
        }
    }
}

/// Opens the device, mapping access errors to the domain's.
pub(super) fn open<'a>(
    access: &'a mut dyn DeviceAccess,
    serial: Serial,
) -> Result<Box<dyn CardTransport + 'a>, CustodyError> {
    access
        .open(serial)
        .map_err(|e| CustodyError::DeviceUnavailable {
            serial,
            reason: e.to_string(),
        })
}

/// Reads the identity of the card with `serial` (serial, firmware, OATH device id) for its
/// registration. Card I/O only.
pub fn identify_device(
    access: &mut dyn DeviceAccess,
    serial: Serial,
) -> Result<crate::token::identity::DeviceIdentity, CustodyError> {
    let mut t = open(access, serial)?;
    crate::token::identity::identify(&mut t, None).map_err(token_err(serial))
}

/// A device as the ledger holds it, with its account's credential name, to reconcile the
/// card against (see [`Custody::plan_check_in`]).
#[derive(Debug)]
pub struct DeviceCheck {
    device: DeviceRecord,
    credential: Option<String>,
    lock: super::device_keys::OathLock,
}

impl DeviceCheck {
    /// The device's serial.
    pub fn serial(&self) -> Serial {
        self.device.serial
    }

    /// Reads the card and compares it with the ledger's record, starting with VALIDATE when
    /// the device is locked. Card I/O only.
    pub fn reconcile(&self, access: &mut dyn DeviceAccess) -> Result<Reconciliation, CustodyError> {
        let serial = self.device.serial;
        let mut t = open(access, serial)?;
        reconcile(&self.device, self.credential.as_deref(), &self.lock, &mut t)
            .map_err(token_err(serial))
    }
}

/// The record of a device as its card identified itself at registration: its serial must be
/// the one registered, and it must have an OATH applet.
fn registered_record(
    serial: Serial,
    role: DeviceRole,
    id: crate::token::identity::DeviceIdentity,
) -> Result<DeviceRecord, CustodyError> {
    let got = id.serial.and_then(|s| Serial::new(s).ok());
    if got != Some(serial) {
        return Err(CustodyError::WrongDevice {
            expected: serial,
            got: got.unwrap_or(serial),
        });
    }
    let device_id = id
        .oath_device_id
        .ok_or_else(|| CustodyError::DeviceMismatch {
            serial,
            mismatch: "no OATH applet".into(),
        })?;
    Ok(DeviceRecord {
        serial,
        firmware: id.firmware.unwrap_or_default(),
        device_id,
        role,
        account: None,
        state: DeviceState::Registered,
        blocked_by: None,
        oath_access_key: false,
        access_key_clearing: false,
        custody_key: None,
    })
}

/// `device.registered` for `d`; `unattested` names why it has no custody key.
fn registered_event(
    who: &str,
    d: &DeviceRecord,
    unattested: Option<(AttestationRefusal, &str)>,
) -> Result<crate::ledger::NewEvent, CustodyError> {
    let mut body = json!({"device": d.serial.to_string(), "firmware": d.firmware,
                          "device_id": d.device_id, "role": d.role});
    if let (Some((why, detail)), serde_json::Value::Object(m)) = (unattested, &mut body) {
        m.insert("unattested".into(), json!(why.code()));
        m.insert("unattested_detail".into(), json!(detail));
    }
    Custody::event(
        kinds::DEVICE_REGISTERED,
        who,
        body,
        &[Put::new(entity::DEVICE, d.serial, d)?],
    )
}

/// A registration whose card was identified ([`Custody::begin_registration`]): the device
/// as it will be recorded, and its custody key's attestation. `Debug` shows no key byte.
#[derive(Debug)]
pub struct RegistrationPlan {
    device: DeviceRecord,
    attestation: Attestation,
}

/// What registration does with a device's PIV applet.
#[derive(Debug)]
enum Attestation {
    /// Give it a custody key with this (already sealed) management key.
    Planned(Box<AttestPlan>),
    /// Nothing: its firmware cannot attest, and the policy lets it be registered unattested.
    Unsupported {
        /// Why.
        detail: String,
    },
}

impl RegistrationPlan {
    /// The device's serial.
    pub fn serial(&self) -> Serial {
        self.device.serial
    }

    /// The plan's management key, for tests that check where it does not appear.
    #[cfg(test)]
    pub(crate) fn management_key(&self) -> Option<&crate::token::piv::ManagementKey> {
        match &self.attestation {
            Attestation::Planned(a) => Some(a.management_key()),
            Attestation::Unsupported { .. } => None,
        }
    }

    /// Gives the card its custody key and verifies the attestation against `anchors` at
    /// `now` ([`AttestPlan::provision_card`]: the card reconciled with what it showed at
    /// identification first); a firmware that cannot attest is not touched and answers
    /// `attestation_unsupported`. Card I/O only.
    pub fn provision_card(
        &self,
        access: &mut dyn DeviceAccess,
        anchors: &TrustAnchors,
        now: jiff::Timestamp,
    ) -> Result<crate::token::piv::Provisioned, CustodyError> {
        match &self.attestation {
            Attestation::Planned(a) => a.provision_card(access, anchors, now),
            Attestation::Unsupported { detail } => Err(CustodyError::AttestationRefused {
                serial: self.serial(),
                why: AttestationRefusal::Unsupported,
                detail: detail.clone(),
            }),
        }
    }
}
