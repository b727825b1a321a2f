//! The custody story of a ledger export, as an auditor reads it: per-device timelines, the
//! requests and releases of each account, incidents, refusals and the export's scope.
//!
//! A [`ReportBuilder`] is fed the export's lines as the verifier reads them
//! ([`crate::ledger::verify_export_observed`]) and [`ReportBuilder::finish`] takes the verifier's
//! result, so a report exists only for an export that verified. Bodies are read leniently: a
//! field that is missing or of another type shows as absent, never as an error, and nothing here
//! panics on any body. Stubs (events exported without their body) are counted, not interpreted.
//! The ledger never holds a code, so no report can show one.

use std::collections::BTreeMap;

use serde_json::Value;

use super::approval_proofs::{ApprovalProof, ApprovalSummary};
use super::store::{entity, kinds};
use crate::ledger::{
    EventHeader, ExportLine, SignedCheckpoint, StoredEvent, Timestamp, VerifiedExport,
};

/// One event on a timeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Ledger seq.
    pub seq: u64,
    /// Host time, ms since the epoch.
    pub time_ms: i64,
    /// Who (a user, an officer pair `a+b`, a system role).
    pub actor: String,
    /// Event kind.
    pub kind: String,
    /// What happened, in words (built from the body's fields).
    pub what: String,
}

/// A device: its last recorded state and every event that names it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeviceReport {
    /// Serial.
    pub serial: String,
    /// `primary` or `backup`.
    pub role: Option<String>,
    /// The account it holds the credential of.
    pub account: Option<String>,
    /// Firmware as read at registration.
    pub firmware: Option<String>,
    /// OATH device id as read at registration.
    pub device_id: Option<String>,
    /// State name at the end of the export (`in_safe`, `checked_out`, ...).
    pub state: Option<String>,
    /// The state's details (location and seal, or custodian and request).
    pub state_detail: Option<String>,
    /// An open incident that blocks it.
    pub blocked_by: Option<String>,
    /// Events naming the device, in ledger order.
    pub timeline: Vec<Entry>,
}

/// A decision on a request (approval, denial, cancellation, expiry).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Who.
    pub who: String,
    /// Ledger seq.
    pub seq: u64,
    /// When, ms since the epoch.
    pub time_ms: i64,
    /// Kind of the event (`request.approved`, `request.denied`, ...).
    pub kind: String,
    /// A note given with it.
    pub note: Option<String>,
    /// For an approval, how it was proven ("signed by alice's YubiKey 1234567 (attested)",
    /// "TOTP"), once the export's approvals are checked
    /// ([`CustodyReport::set_approval_proofs`]).
    pub proof: Option<String>,
}

/// A code computation or release (never the code: the ledger has none).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodeEvent {
    /// Ledger seq.
    pub seq: u64,
    /// When, ms since the epoch.
    pub time_ms: i64,
    /// The device that computed it.
    pub device: Option<String>,
    /// The TOTP time step.
    pub step: Option<String>,
}

/// A dual-control request and what became of it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestReport {
    /// Request id.
    pub id: String,
    /// Account.
    pub account: Option<String>,
    /// Root task.
    pub task: Option<String>,
    /// Ticket reference.
    pub ticket: Option<String>,
    /// Reason given.
    pub reason: Option<String>,
    /// Who asked.
    pub requester: Option<String>,
    /// When it was created (ms), when that event is in the export.
    pub created_ms: Option<i64>,
    /// Seq of `request.created`.
    pub created_seq: Option<u64>,
    /// Expiry (ms).
    pub expires_ms: Option<i64>,
    /// Approvals, in order.
    pub approvals: Vec<Decision>,
    /// Denial, cancellation or expiry.
    pub closed: Option<Decision>,
    /// `code.issuing`: the intent to compute, committed before the device was asked.
    pub issuing: Option<CodeEvent>,
    /// `code.released`: the code was shown to the requester.
    pub released: Option<CodeEvent>,
    /// Status at the end of the export (from the last recorded state).
    pub status: Option<String>,
}

/// An account: registration, status, its requests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccountReport {
    /// Account id.
    pub account: String,
    /// Provider.
    pub provider: Option<String>,
    /// Alias.
    pub alias: Option<String>,
    /// OATH credential name on its devices.
    pub credential: Option<String>,
    /// Status at the end of the export.
    pub status: Option<String>,
    /// The root password at the end of the export: `held`, `rotation due` (a release handed it
    /// out), or `None` when no password was ever set.
    pub password: Option<String>,
    /// When the last status change in the export was recorded (ms).
    pub status_since_ms: Option<i64>,
    /// Registration, status changes, enrolments, custody release.
    pub events: Vec<Entry>,
    /// Its requests, in order of first appearance.
    pub requests: Vec<RequestReport>,
}

/// An incident.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IncidentReport {
    /// Incident id.
    pub id: String,
    /// `seal_mismatch`, `device_mismatch`, `device_missing`, `device_lost`, `other`.
    pub kind: Option<String>,
    /// What happened.
    pub detail: Option<String>,
    /// The device concerned.
    pub device: Option<String>,
    /// Its account.
    pub account: Option<String>,
    /// `incident.opened`.
    pub opened: Option<Entry>,
    /// `incident.acknowledged` (by an officer pair).
    pub acknowledged: Option<Decision>,
    /// Open at the end of the export.
    pub open: bool,
}

/// The whole report of a verified export.
#[derive(Clone, Debug)]
pub struct CustodyReport {
    /// The ledger, lower-case hex.
    pub ledger_id: String,
    /// The export header's filter (which events carry their body).
    pub filter: Value,
    /// Events with bodies.
    pub events: u64,
    /// Stubs.
    pub stubs: u64,
    /// Time of the first and last event (ms).
    pub first_ms: Option<i64>,
    /// Time of the last event (ms).
    pub last_ms: Option<i64>,
    /// The final checkpoint, verified with the pinned key.
    pub checkpoint: SignedCheckpoint,
    /// Fingerprint of the pinned key that verified it.
    pub key_fingerprint: String,
    /// Count of events (with bodies) per kind.
    pub kinds: BTreeMap<String, u64>,
    /// Count of stubs per kind.
    pub stub_kinds: BTreeMap<String, u64>,
    /// Devices by serial.
    pub devices: BTreeMap<String, DeviceReport>,
    /// Accounts by id, with their requests.
    pub accounts: BTreeMap<String, AccountReport>,
    /// Incidents, in order of opening.
    pub incidents: Vec<IncidentReport>,
    /// Refusals (`custody.refused`).
    pub refusals: Vec<Entry>,
    /// User administration (`user.*`) and ledger events (`ledger.*`, `daemon.*`).
    pub people: Vec<Entry>,
    /// How the export's approvals were proven, once checked
    /// ([`CustodyReport::set_approval_proofs`]).
    pub approval_proofs: Option<ApprovalSummary>,
}

impl CustodyReport {
    /// Every request of every account.
    pub fn requests(&self) -> impl Iterator<Item = &RequestReport> {
        self.accounts.values().flat_map(|a| a.requests.iter())
    }

    /// Records how each approval was proven (from the export's checked approvals), on the
    /// approval and as totals.
    pub fn set_approval_proofs(&mut self, summary: ApprovalSummary) {
        for a in self.accounts.values_mut() {
            for r in &mut a.requests {
                for d in &mut r.approvals {
                    d.proof = summary.proofs.get(&d.seq).map(ApprovalProof::describe);
                }
            }
        }
        self.approval_proofs = Some(summary);
    }

    /// Incidents still open at the end of the export.
    pub fn open_incidents(&self) -> impl Iterator<Item = &IncidentReport> {
        self.incidents.iter().filter(|i| i.open)
    }
}

/// Builds a [`CustodyReport`] from export lines fed in order.
#[derive(Debug, Default)]
pub struct ReportBuilder {
    ledger_id: Option<String>,
    filter: Option<Value>,
    first_ms: Option<i64>,
    last_ms: Option<i64>,
    kinds: BTreeMap<String, u64>,
    stub_kinds: BTreeMap<String, u64>,
    devices: BTreeMap<String, DeviceReport>,
    accounts: BTreeMap<String, AccountReport>,
    requests: Vec<RequestReport>,
    /// Request id → index in `requests`.
    request_at: BTreeMap<String, usize>,
    incidents: Vec<IncidentReport>,
    refusals: Vec<Entry>,
    people: Vec<Entry>,
}

/// A top-level string (or integer, as text) field of a body.
fn field(body: &Value, name: &str) -> Option<String> {
    text(body.get(name)?)
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn or_dash(v: Option<String>) -> String {
    v.unwrap_or_else(|| "?".to_owned())
}

/// Formats ms since the epoch as `YYYY-MM-DD HH:MM:SSZ` (UTC).
pub fn utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Parses milliseconds since the epoch or an RFC 3339 time (`YYYY-MM-DDTHH:MM:SS[.fff]Z`, or
/// with an offset), the inverse of [`utc`] for the times people and CloudTrail write. Dates that
/// do not exist (February 31st, hour 24) are refused, not carried into the next day.
pub fn parse_utc(s: &str) -> Result<Timestamp, String> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(Timestamp(ms));
    }
    let t: jiff::Timestamp = s.parse().map_err(|_| {
        format!("{s:?} is not milliseconds since the epoch nor an RFC 3339 time (YYYY-MM-DDTHH:MM:SS[.fff]Z)")
    })?;
    Ok(Timestamp(t.as_millisecond()))
}

impl ReportBuilder {
    /// A builder with nothing seen yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the next export line.
    pub fn observe(&mut self, line: &ExportLine) {
        match line {
            ExportLine::Header {
                ledger_id, filter, ..
            } => {
                self.ledger_id = Some(ledger_id.to_hex());
                self.filter = Some(filter.clone());
            }
            ExportLine::Stub(h) => {
                self.time(h);
                *self
                    .stub_kinds
                    .entry(h.kind.as_str().to_owned())
                    .or_default() += 1;
            }
            ExportLine::Event(ev) => self.event(ev),
            // The redacted body is signed by the ledger's key; only secret records are gone.
            ExportLine::Redacted { event, .. } => self.event(event),
            ExportLine::Checkpoint { .. } => {}
        }
    }

    fn time(&mut self, h: &EventHeader) {
        self.first_ms.get_or_insert(h.time.0);
        self.last_ms = Some(h.time.0);
    }

    fn device(&mut self, serial: &str) -> &mut DeviceReport {
        self.devices
            .entry(serial.to_owned())
            .or_insert_with(|| DeviceReport {
                serial: serial.to_owned(),
                ..DeviceReport::default()
            })
    }

    fn account(&mut self, account: &str) -> &mut AccountReport {
        self.accounts
            .entry(account.to_owned())
            .or_insert_with(|| AccountReport {
                account: account.to_owned(),
                ..AccountReport::default()
            })
    }

    fn request(&mut self, id: &str, account: Option<&str>) -> &mut RequestReport {
        let at = match self.request_at.get(id) {
            Some(at) => *at,
            None => {
                self.requests.push(RequestReport {
                    id: id.to_owned(),
                    ..RequestReport::default()
                });
                let at = self.requests.len() - 1;
                self.request_at.insert(id.to_owned(), at);
                at
            }
        };
        let r = &mut self.requests[at];
        if r.account.is_none() {
            r.account = account.map(str::to_owned);
        }
        r
    }

    fn incident(&mut self, id: &str) -> &mut IncidentReport {
        let at = match self.incidents.iter().position(|i| i.id == id) {
            Some(at) => at,
            None => {
                self.incidents.push(IncidentReport {
                    id: id.to_owned(),
                    ..IncidentReport::default()
                });
                self.incidents.len() - 1
            }
        };
        &mut self.incidents[at]
    }

    fn event(&mut self, ev: &StoredEvent) {
        let h = &ev.header;
        self.time(h);
        let kind = h.kind.as_str();
        *self.kinds.entry(kind.to_owned()).or_default() += 1;
        let body = ev.body.to_value();
        let f = |name: &str| field(&body, name);
        let entry = |what: String| Entry {
            seq: h.seq,
            time_ms: h.time.0,
            actor: h.actor.as_str().to_owned(),
            kind: kind.to_owned(),
            what,
        };
        let decision = |who: Option<String>, note: Option<String>| Decision {
            who: who.unwrap_or_else(|| h.actor.as_str().to_owned()),
            seq: h.seq,
            time_ms: h.time.0,
            kind: kind.to_owned(),
            note,
            proof: None,
        };
        let code_event = || CodeEvent {
            seq: h.seq,
            time_ms: h.time.0,
            device: f("device"),
            step: f("step"),
        };

        // What the event says about a device, in words.
        let device_what = match kind {
            kinds::DEVICE_REGISTERED => Some(format!(
                "registered as {} (firmware {}, OATH device id {})",
                or_dash(f("role")),
                or_dash(f("firmware")),
                or_dash(f("device_id"))
            )),
            kinds::DEVICE_ENROLLED => Some(format!(
                "enrolled for account {} as {} (credential {})",
                or_dash(f("account")),
                or_dash(f("role")),
                or_dash(f("credential"))
            )),
            kinds::DEVICE_CHECKED_OUT => Some(format!(
                "checked out: bag seal {} opened at {}, custodian {}{}",
                or_dash(f("seal")),
                or_dash(f("location")),
                or_dash(f("custodian")),
                f("request")
                    .map(|r| format!(", for request {r}"))
                    .unwrap_or_default()
            )),
            kinds::DEVICE_CHECKED_IN => Some(format!(
                "checked in under new seal {} at {}, by {}",
                or_dash(f("seal")),
                or_dash(f("location")),
                or_dash(f("by"))
            )),
            kinds::DEVICE_STATE_CHANGED => Some(format!(
                "state {} \u{2192} {}{}",
                or_dash(f("from")),
                or_dash(f("to")),
                f("why").map(|w| format!(" ({w})")).unwrap_or_default()
            )),
            kinds::DEVICE_LOCK_STARTED => Some(format!(
                "lock started for account {}: a new OATH access key sealed in the ledger",
                or_dash(f("account"))
            )),
            kinds::DEVICE_LOCKED => {
                Some("locked: the card proved its OATH access key (VALIDATE)".to_owned())
            }
            kinds::DEVICE_ATTESTATION_STARTED => Some(format!(
                "attestation started (PIV slot {}): a new PIV management key sealed in the ledger",
                or_dash(f("slot"))
            )),
            kinds::DEVICE_ATTESTED => Some(format!(
                "attested: custody key {} in PIV slot {}, serial {}, firmware {}, chain to {}",
                or_dash(f("key_id")),
                or_dash(f("slot")),
                body.get("serial")
                    .map_or("-".to_owned(), ToString::to_string),
                or_dash(f("firmware")),
                or_dash(f("anchor"))
            )),
            kinds::INCIDENT_OPENED => Some(format!(
                "incident {} opened ({}): {}",
                or_dash(f("incident")),
                or_dash(f("kind")),
                or_dash(f("detail"))
            )),
            kinds::INCIDENT_ACKNOWLEDGED => Some(format!(
                "incident {} acknowledged: {}",
                or_dash(f("incident")),
                or_dash(f("note"))
            )),
            kinds::CODE_ISSUING => Some(format!(
                "asked to compute the code of request {} (step {})",
                or_dash(f("request")),
                or_dash(f("step"))
            )),
            kinds::CODE_RELEASED => Some(format!(
                "code of request {} released to {} (step {})",
                or_dash(f("request")),
                or_dash(f("requester")),
                or_dash(f("step"))
            )),
            kinds::REFUSED => Some(format!(
                "refused {}: {} ({})",
                or_dash(f("operation")),
                or_dash(f("refusal")),
                or_dash(f("detail"))
            )),
            _ => None,
        };
        if let (Some(serial), Some(what)) = (f("device"), device_what) {
            self.device(&serial).timeline.push(entry(what));
        }
        match kind {
            kinds::ENROLMENT_STARTED | kinds::ENROLMENT_COMPLETED => {
                let verb = if kind == kinds::ENROLMENT_STARTED {
                    "enrolment started"
                } else {
                    "enrolment completed"
                };
                for (role, serial) in [("primary", f("primary")), ("backup", f("backup"))] {
                    if let Some(serial) = serial {
                        let what =
                            format!("{verb} for account {} as {role}", or_dash(f("account")));
                        self.device(&serial).timeline.push(entry(what));
                    }
                }
                if let Some(acc) = f("account") {
                    let what = format!(
                        "{verb}: primary {}, backup {}",
                        or_dash(f("primary")),
                        or_dash(f("backup"))
                    );
                    self.account(&acc).events.push(entry(what));
                }
            }
            kinds::INVENTORY_AUDITED => {
                for serial in body
                    .get("ok")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(text)
                {
                    self.device(&serial).timeline.push(entry(
                        "presented at an inventory audit: seal and identity confirmed".to_owned(),
                    ));
                }
            }
            kinds::ACCOUNT_REGISTERED | kinds::ACCOUNT_STATUS_CHANGED | kinds::CUSTODY_RELEASED => {
                if let Some(acc) = f("account") {
                    let what = match kind {
                        kinds::ACCOUNT_REGISTERED => format!(
                            "registered ({} {}, credential {})",
                            or_dash(f("provider")),
                            or_dash(f("alias")),
                            or_dash(f("credential"))
                        ),
                        kinds::ACCOUNT_STATUS_CHANGED => format!(
                            "status {} \u{2192} {}",
                            or_dash(f("from")),
                            or_dash(f("to"))
                        ),
                        _ => {
                            let devices: Vec<String> = body
                                .get("devices")
                                .and_then(Value::as_array)
                                .into_iter()
                                .flatten()
                                .filter_map(text)
                                .collect();
                            format!(
                                "custody released to another organisation (devices {})",
                                if devices.is_empty() {
                                    "none".to_owned()
                                } else {
                                    devices.join(", ")
                                }
                            )
                        }
                    };
                    let a = self.account(&acc);
                    if kind == kinds::ACCOUNT_STATUS_CHANGED {
                        a.status_since_ms = Some(h.time.0);
                    }
                    a.events.push(entry(what));
                }
            }
            kinds::ACCOUNT_PASSWORD_SET | kinds::CREDENTIAL_RELEASED => {
                if let Some(acc) = f("account") {
                    let (state, what) = match kind {
                        kinds::ACCOUNT_PASSWORD_SET => (
                            "held",
                            format!(
                                "root password stored sealed ({})",
                                if f("generated").as_deref() == Some("true") {
                                    "generated"
                                } else {
                                    "typed"
                                }
                            ),
                        ),
                        _ => (
                            "rotation due",
                            format!(
                                "root password released to {} with request {}: rotation due",
                                or_dash(f("requester")),
                                or_dash(f("request"))
                            ),
                        ),
                    };
                    let a = self.account(&acc);
                    a.password = Some(state.to_owned());
                    a.events.push(entry(what));
                }
            }
            kinds::REQUEST_CREATED => {
                if let Some(id) = f("request") {
                    let account = f("account");
                    let r = self.request(&id, account.as_deref());
                    r.task = f("task");
                    r.ticket = f("ticket");
                    r.reason = f("reason");
                    r.requester = f("requester").or_else(|| Some(h.actor.as_str().to_owned()));
                    r.created_ms = Some(h.time.0);
                    r.created_seq = Some(h.seq);
                    r.expires_ms = body.get("expires_ms").and_then(Value::as_i64);
                }
            }
            kinds::REQUEST_APPROVED => {
                if let Some(id) = f("request") {
                    let d = decision(f("officer"), None);
                    self.request(&id, f("account").as_deref()).approvals.push(d);
                }
            }
            kinds::REQUEST_DENIED | kinds::REQUEST_CANCELLED | kinds::REQUEST_EXPIRED => {
                if let Some(id) = f("request") {
                    let d = decision(f("by"), f("note"));
                    self.request(&id, f("account").as_deref()).closed = Some(d);
                }
            }
            kinds::CODE_ISSUING | kinds::CODE_RELEASED => {
                if let Some(id) = f("request") {
                    let c = code_event();
                    let r = self.request(&id, f("account").as_deref());
                    if kind == kinds::CODE_ISSUING {
                        r.issuing = Some(c);
                    } else {
                        r.released = Some(c);
                    }
                }
            }
            kinds::INCIDENT_OPENED => {
                if let Some(id) = f("incident") {
                    let e = entry(or_dash(f("detail")));
                    let i = self.incident(&id);
                    i.kind = f("kind");
                    i.detail = f("detail");
                    i.device = f("device");
                    i.account = f("account");
                    i.opened = Some(e);
                    i.open = true;
                }
            }
            kinds::INCIDENT_ACKNOWLEDGED => {
                if let Some(id) = f("incident") {
                    let d = decision(None, f("note"));
                    let i = self.incident(&id);
                    i.acknowledged = Some(d);
                    i.open = false;
                }
            }
            kinds::REFUSED => {
                let what = format!(
                    "{} refused: {} ({}){}",
                    or_dash(f("operation")),
                    or_dash(f("refusal")),
                    or_dash(f("detail")),
                    ["request", "account", "device"]
                        .iter()
                        .filter_map(|k| f(k).map(|v| format!(", {k} {v}")))
                        .collect::<String>()
                );
                self.refusals.push(entry(what));
            }
            k if k.starts_with("user.") || k.starts_with("ledger.") || k.starts_with("daemon.") => {
                let mut parts = Vec::new();
                for name in ["user", "from", "to", "roles", "officers", "threshold"] {
                    if let Some(v) = body.get(name) {
                        let shown = match v {
                            Value::Array(items) => {
                                items.iter().filter_map(text).collect::<Vec<_>>().join(", ")
                            }
                            other => text(other).unwrap_or_default(),
                        };
                        if !shown.is_empty() {
                            parts.push(format!("{name} {shown}"));
                        }
                    }
                }
                self.people.push(entry(parts.join("; ")));
            }
            _ => {}
        }
        self.records(&body);
    }

    /// Takes the entities' new states carried in `records`.
    fn records(&mut self, body: &Value) {
        for put in body
            .get("records")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let (Some(ent), Some(id), Some(rec)) = (
                put.get("entity").and_then(Value::as_str),
                put.get("id").and_then(text),
                put.get("record"),
            ) else {
                continue;
            };
            let r = |name: &str| field(rec, name);
            match ent {
                entity::DEVICE => {
                    let state = rec.get("state");
                    let s = |name: &str| state.and_then(|v| field(v, name));
                    let detail = match s("state").as_deref() {
                        Some("in_safe") => Some(format!(
                            "seal {} at {}",
                            or_dash(s("seal")),
                            or_dash(s("location"))
                        )),
                        Some("checked_out") => Some(format!(
                            "with {}{}{}",
                            or_dash(s("custodian")),
                            s("request")
                                .map(|r| format!(" for request {r}"))
                                .unwrap_or_default(),
                            state
                                .and_then(|v| v.get("since_ms"))
                                .and_then(Value::as_i64)
                                .map(|t| format!(" since {}", utc(t)))
                                .unwrap_or_default()
                        )),
                        _ => None,
                    };
                    let d = self.device(&id);
                    d.role = r("role").or(d.role.take());
                    d.account = r("account").or(d.account.take());
                    d.firmware = r("firmware").or(d.firmware.take());
                    d.device_id = r("device_id").or(d.device_id.take());
                    d.state = s("state");
                    d.state_detail = detail;
                    d.blocked_by = r("blocked_by");
                }
                entity::REQUEST => {
                    let status = r("status");
                    let account = r("account");
                    let q = self.request(&id, account.as_deref());
                    q.status = status;
                    if q.account.is_none() {
                        q.account = account;
                    }
                    for (slot, name) in [
                        (&mut q.task, "task"),
                        (&mut q.ticket, "ticket"),
                        (&mut q.reason, "reason"),
                        (&mut q.requester, "requester"),
                    ] {
                        if slot.is_none() {
                            *slot = r(name);
                        }
                    }
                }
                entity::ACCOUNT => {
                    let a = self.account(&id);
                    a.provider = r("provider").or(a.provider.take());
                    a.alias = r("alias").or(a.alias.take());
                    a.credential = r("credential").or(a.credential.take());
                    a.status = r("status");
                }
                entity::INCIDENT => {
                    let open = rec.get("open").and_then(Value::as_bool);
                    let i = self.incident(&id);
                    if let Some(open) = open {
                        i.open = open;
                    }
                    i.kind = i.kind.take().or_else(|| r("kind"));
                    i.detail = i.detail.take().or_else(|| r("detail"));
                    i.device = i.device.take().or_else(|| r("device"));
                }
                _ => {}
            }
        }
    }

    /// The report of an export that verified; `key_fingerprint` is the pinned key's.
    pub fn finish(mut self, verified: &VerifiedExport, key_fingerprint: String) -> CustodyReport {
        for r in std::mem::take(&mut self.requests) {
            let key = r.account.clone().unwrap_or_else(|| "?".to_owned());
            self.account(&key).requests.push(r);
        }
        CustodyReport {
            ledger_id: self
                .ledger_id
                .unwrap_or_else(|| verified.ledger_id.to_hex()),
            filter: self.filter.unwrap_or(Value::Object(Default::default())),
            events: verified.events,
            stubs: verified.stubs,
            first_ms: self.first_ms,
            last_ms: self.last_ms,
            checkpoint: verified.checkpoint,
            key_fingerprint,
            kinds: self.kinds,
            stub_kinds: self.stub_kinds,
            devices: self.devices,
            accounts: self.accounts,
            incidents: self.incidents,
            refusals: self.refusals,
            people: self.people,
            approval_proofs: None,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn parse_utc_reads_rfc3339_and_refuses_dates_that_do_not_exist() {
        let t0 = super::parse_utc("2026-01-01T00:00:00Z").expect("valid").0;
        assert_eq!(t0, 1_767_225_600_000);
        assert_eq!(
            super::parse_utc("2026-01-01T00:00:00.250Z").expect("ms").0,
            t0 + 250
        );
        assert_eq!(
            super::parse_utc("2026-01-01T01:00:00+01:00")
                .expect("offset")
                .0,
            t0
        );
        assert_eq!(super::parse_utc("1767225600000").expect("epoch ms").0, t0);
        for bad in [
            "2026-02-31T00:00:00Z",
            "2026-01-01T24:00:00Z",
            "2026-13-01T00:00:00Z",
            "",
            "yesterday",
        ] {
            let e = super::parse_utc(bad).expect_err(bad);
            assert!(e.contains("RFC 3339"), "{bad}: {e}");
        }
    }

    use super::*;

    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(utc(0), "1970-01-01 00:00:00Z");
        assert_eq!(utc(1_767_225_600_000), "2026-01-01 00:00:00Z");
        assert_eq!(utc(951_782_400_000 + 86_399_999), "2000-02-29 23:59:59Z");
        assert_eq!(utc(-1000), "1969-12-31 23:59:59Z");
    }
}
