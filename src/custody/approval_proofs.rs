//! Offline checks of hardware-signed approvals in a verified export.
//!
//! An officer who approves with their YubiKey signs [`signed_approval_message`] with a P-256
//! key in PIV slot 9c that was registered (`officer.key_registered`) with its attestation: the
//! slot certificate and the device's F9 certificate. From nothing but the export, an auditor
//! checks:
//! - every registered key's attestation chains to the trust anchors (Yubico's roots, and any
//!   test CA the auditor adds) at the time it was registered, for slot 9c on the recorded
//!   serial; the attested key is the recorded `spki`, and `key_id` is SHA-256 of it; the key
//!   is P-256; no key is registered to two officers; the recorded `firmware`, `pin_policy`,
//!   `touch_policy` and `anchor` are what the attestation says, and the touch policy is
//!   `always`; the `witness` is another
//!   officer than the one registering; the event's actor is the officer;
//! - every `request.approved` with `"proof": "signature"`: its key was registered to that
//!   officer before the approval and not removed since; the digest recomputed from what the
//!   request showed (`request.created`: id, account, task, ticket, reason, requester), the
//!   officer, the key id and the nonce equals the recorded digest; the signature verifies
//!   (ECDSA P-256 over SHA-256 of the message) with the registered key; no nonce is used twice;
//!   the event's actor is the approving officer.
//!
//! The first failure is kept with the check it failed and the event's seq
//! ([`ApprovalFailure`]). An approval the export cannot check because its request or key
//! registration is left out of the export (a filtered export holds stubs) is counted
//! `unchecked`, as is an approval shown only as a stub; approvals with `"proof": "totp"` or
//! none (older approvals) are counted `totp`.
//!
//! Memory grows with the requests and keys the export holds (a few hundred bytes each), never
//! with the size of an event: bodies are bounded by the export's line limit, and nothing is
//! kept of an event once it is read. Outside bytes never panic: every field is read with a
//! typed getter and every decode failure is a named check.

mod presence;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::BufRead;

use serde_json::Value;

use super::records::{signed_approval_digest, signed_approval_message};
use super::store::kinds;
use crate::ledger::{
    verify_export_observed, CheckpointPublicKey, ExportFailure, ExportLine, SignedCheckpoint,
    StoredEvent, VerifiedExport,
};
use crate::token::attestation::{
    verify_attestation, Evidence, Expected, KeyAlgorithm, PivSlot, TrustAnchors,
};

/// The longest nonce accepted (hex characters); the daemon's are 64.
const MAX_NONCE_HEX: usize = 128;

/// Which check an approval or officer key failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ApprovalCheck {
    /// An `officer.key_registered` body lacks a field or holds one that does not decode.
    KeyRecord,
    /// The key's attestation chain does not verify (or is not for slot 9c on that serial).
    KeyAttestation,
    /// The attested key is not the recorded `spki`, or is not P-256.
    AttestedKey,
    /// `key_id` is not SHA-256 of the recorded `spki`.
    KeyId,
    /// The key is registered to two officers.
    KeyShared,
    /// A `request.approved` body's proof lacks a field, holds one that does not decode, or
    /// names a proof this version does not know.
    ApprovalRecord,
    /// The approval's key was never registered (and the export leaves out no registration).
    KeyNotRegistered,
    /// The approval's key is registered to another officer.
    KeyOfAnotherOfficer,
    /// The approval's key was removed before the approval.
    KeyRemoved,
    /// The approved request is not in the export (and the export leaves out no request).
    RequestNotInExport,
    /// The recorded digest is not the one recomputed from the request's shown fields.
    Digest,
    /// The signature does not verify with the registered key over the message.
    Signature,
    /// The nonce was used by an earlier signed approval.
    NonceReused,
    /// The recorded `firmware` is not the firmware the attestation names.
    KeyFirmware,
    /// The recorded `pin_policy` or `touch_policy` is not the attested key's, or the attested
    /// touch policy is not `always`.
    KeyPolicy,
    /// The recorded `anchor` is not the trust anchor the attestation chains to.
    KeyAnchor,
    /// The `witness` is missing, not a string, or the registering officer themselves.
    KeyWitness,
    /// The event's actor is not the officer its body names (a registration or a signed
    /// approval recorded under someone else's name).
    ActorNotOfficer,
    /// An event's `presence` (officers' signatures at a two-officer operation) lacks a field
    /// or holds one that does not decode.
    PresenceRecord,
    /// A presence digest is not the one recomputed from the recorded operation and
    /// parameters.
    PresenceDigest,
    /// A presence signature does not verify with the officer's registered key.
    PresenceSignature,
}

impl ApprovalCheck {
    /// A stable snake_case name (JSON `problem`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::KeyRecord => "officer_key_record",
            Self::KeyAttestation => "officer_key_attestation",
            Self::AttestedKey => "officer_key_not_attested_key",
            Self::KeyId => "officer_key_id",
            Self::KeyShared => "officer_key_shared",
            Self::ApprovalRecord => "approval_record",
            Self::KeyNotRegistered => "approval_key_not_registered",
            Self::KeyOfAnotherOfficer => "approval_key_of_another_officer",
            Self::KeyRemoved => "approval_key_removed",
            Self::RequestNotInExport => "approval_request_not_in_export",
            Self::Digest => "approval_digest",
            Self::Signature => "approval_signature",
            Self::NonceReused => "approval_nonce_reused",
            Self::KeyFirmware => "officer_key_firmware",
            Self::KeyPolicy => "officer_key_policy",
            Self::KeyAnchor => "officer_key_anchor",
            Self::KeyWitness => "officer_key_witness",
            Self::ActorNotOfficer => "actor_not_officer",
            Self::PresenceRecord => "presence_record",
            Self::PresenceDigest => "presence_digest",
            Self::PresenceSignature => "presence_signature",
        }
    }
}

impl fmt::Display for ApprovalCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why the approvals of an export do not check: the check, the event's seq and what was wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ApprovalFailure {
    /// The event that failed.
    pub seq: u64,
    /// The check it failed.
    pub check: ApprovalCheck,
    /// What was found (never a secret: the export holds none).
    pub detail: String,
}

impl fmt::Display for ApprovalFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seq {}: {} failed: {}",
            self.seq, self.check, self.detail
        )
    }
}

impl std::error::Error for ApprovalFailure {}

/// How one approval was proven, for a report.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ApprovalProof {
    /// Signed by the officer's attested YubiKey, and the signature checked.
    Signed {
        /// The officer.
        officer: String,
        /// The YubiKey's serial.
        serial: u32,
        /// The key's id.
        key_id: String,
    },
    /// A second-factor (TOTP) approval.
    Totp,
    /// Signed, but the export does not hold the request or key registration to check it.
    Unchecked,
}

impl ApprovalProof {
    /// In words: "signed by alice's YubiKey 1234567 (attested)", "TOTP", ...
    pub fn describe(&self) -> String {
        match self {
            Self::Signed {
                officer, serial, ..
            } => format!("signed by {officer}'s YubiKey {serial} (attested)"),
            Self::Totp => "TOTP".to_owned(),
            Self::Unchecked => {
                "signed (not checked: its request or key is not in this export)".to_owned()
            }
        }
    }
}

/// What the approvals of an export came to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ApprovalSummary {
    /// Signed approvals whose every check passed.
    pub signed: u64,
    /// TOTP approvals (`"proof": "totp"` or no proof).
    pub totp: u64,
    /// Approvals not checked: signed ones whose request or key registration the export leaves
    /// out, and approvals shown only as stubs.
    pub unchecked: u64,
    /// Officer keys whose attestation verified.
    pub attested_keys: u64,
    /// Officers' presence signatures at two-officer operations whose every check passed (a
    /// signature whose key registration the export leaves out counts `unchecked`).
    pub presence_signed: u64,
    /// How each approval (by seq) was proven.
    pub proofs: HashMap<u64, ApprovalProof>,
}

/// A registered officer key.
struct OfficerKey {
    officer: String,
    serial: u32,
    /// The uncompressed P-256 point.
    point: Vec<u8>,
    /// The seq of the registration.
    registered: u64,
    /// The seq of its removal, if removed.
    removed: Option<u64>,
    /// How many removals the export had left out when the key was registered.
    removal_stubs_then: u64,
}

/// What a request showed its approvers: id, account, task, ticket, reason, requester.
type Shown = [String; 6];

/// Checks the officer keys and signed approvals of an export, line by line
/// ([`ApprovalProofs::observe`]), alongside the export's verification.
pub struct ApprovalProofs {
    anchors: TrustAnchors,
    keys: HashMap<String, OfficerKey>,
    /// Every key id ever registered, with its officer (a key shared is refused even after a
    /// removal).
    owners: HashMap<String, String>,
    requests: HashMap<String, Shown>,
    nonces: HashSet<String>,
    /// Stubs of each kind that matters, seen so far.
    request_stubs: u64,
    registration_stubs: u64,
    removal_stubs: u64,
    summary: ApprovalSummary,
    failure: Option<ApprovalFailure>,
}

impl fmt::Debug for ApprovalProofs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApprovalProofs")
            .field("keys", &self.keys.len())
            .field("requests", &self.requests.len())
            .field("summary", &self.summary)
            .field("failure", &self.failure)
            .finish_non_exhaustive()
    }
}

impl ApprovalProofs {
    /// A checker trusting `anchors` for officer key attestations.
    pub fn new(anchors: TrustAnchors) -> Self {
        Self {
            anchors,
            keys: HashMap::new(),
            owners: HashMap::new(),
            requests: HashMap::new(),
            nonces: HashSet::new(),
            request_stubs: 0,
            registration_stubs: 0,
            removal_stubs: 0,
            summary: ApprovalSummary::default(),
            failure: None,
        }
    }

    /// Takes the next export line (in export order). After the first failure nothing more is
    /// checked.
    pub fn observe(&mut self, line: &ExportLine) {
        if self.failure.is_some() {
            return;
        }
        let result = match line {
            ExportLine::Event(ev) => self.event(ev),
            // The redacted body is signed by the ledger's key; only secret records are gone,
            // and none of the fields checked here is one.
            ExportLine::Redacted { event, .. } => self.event(event),
            ExportLine::Stub(h) => {
                match h.kind.as_str() {
                    kinds::REQUEST_CREATED => self.request_stubs += 1,
                    kinds::OFFICER_KEY_REGISTERED => self.registration_stubs += 1,
                    kinds::OFFICER_KEY_REMOVED => self.removal_stubs += 1,
                    kinds::REQUEST_APPROVED => self.summary.unchecked += 1,
                    _ => {}
                }
                Ok(())
            }
            ExportLine::Header { .. } | ExportLine::Checkpoint { .. } => Ok(()),
        };
        if let Err(f) = result {
            self.failure = Some(f);
        }
    }

    /// The summary, or the first failure.
    pub fn finish(self) -> Result<ApprovalSummary, ApprovalFailure> {
        match self.failure {
            Some(f) => Err(f),
            None => Ok(self.summary),
        }
    }

    fn event(&mut self, ev: &StoredEvent) -> Result<(), ApprovalFailure> {
        self.presence(ev)?;
        let kind = ev.header.kind.as_str();
        if !matches!(
            kind,
            kinds::REQUEST_CREATED
                | kinds::REQUEST_APPROVED
                | kinds::OFFICER_KEY_REGISTERED
                | kinds::OFFICER_KEY_REMOVED
        ) {
            return Ok(());
        }
        let body = ev.body.to_value();
        let seq = ev.header.seq;
        let actor = ev.header.actor.as_str();
        match kind {
            kinds::REQUEST_CREATED => {
                self.request_created(&body);
                Ok(())
            }
            kinds::OFFICER_KEY_REGISTERED => {
                let at = jiff::Timestamp::from_millisecond(ev.header.time.0)
                    .map_err(|e| fail(seq, ApprovalCheck::KeyRecord, format!("event time: {e}")))?;
                self.key_registered(seq, actor, at, &body)
            }
            kinds::OFFICER_KEY_REMOVED => {
                self.key_removed(seq, &body);
                Ok(())
            }
            _ => self.approved(seq, actor, &body),
        }
    }

    fn request_created(&mut self, body: &Value) {
        let s = |name: &str| body.get(name).and_then(Value::as_str).map(str::to_owned);
        // A body without the shown fields cannot be what an officer signed: approvals of it
        // then fail their digest check as not in the export.
        let shown = (|| {
            Some([
                s("request")?,
                s("account")?,
                s("task")?,
                s("ticket")?,
                s("reason")?,
                s("requester")?,
            ])
        })();
        if let Some(shown) = shown {
            self.requests.insert(shown[0].clone(), shown);
        }
    }

    fn key_registered(
        &mut self,
        seq: u64,
        actor: &str,
        at: jiff::Timestamp,
        body: &Value,
    ) -> Result<(), ApprovalFailure> {
        let record = |detail: String| fail(seq, ApprovalCheck::KeyRecord, detail);
        let officer = str_field(body, "officer").map_err(record)?;
        let key_id = str_field(body, "key_id").map_err(record)?;
        let serial = body
            .get("serial")
            .and_then(Value::as_u64)
            .and_then(|s| u32::try_from(s).ok())
            .ok_or_else(|| record("\"serial\" is not a YubiKey serial number".to_owned()))?;
        let slot = str_field(body, "slot").map_err(record)?;
        if slot != "9c" {
            return Err(record(format!(
                "\"slot\" is {slot:?}: approval keys are in slot 9c"
            )));
        }
        let spki = base64_field(body, "spki").map_err(record)?;
        let slot_cert = base64_field(body, "slot_certificate").map_err(record)?;
        let device_cert = base64_field(body, "device_certificate").map_err(record)?;

        let attested = verify_attestation(
            &Evidence {
                slot_cert: &slot_cert,
                device_cert: &device_cert,
                extra_intermediates: &[],
            },
            &Expected {
                slot: PivSlot::SIGNATURE,
                serial,
            },
            &self.anchors,
            at,
        )
        .map_err(|e| {
            fail(
                seq,
                ApprovalCheck::KeyAttestation,
                format!("{officer}'s key on YubiKey {serial}: {e}"),
            )
        })?;
        if attested.public_key_spki != spki {
            return Err(fail(
                seq,
                ApprovalCheck::AttestedKey,
                format!("the recorded spki of {officer}'s key is not the key the attestation on YubiKey {serial} names"),
            ));
        }
        if attested.key_algorithm != KeyAlgorithm::EcP256 {
            return Err(fail(
                seq,
                ApprovalCheck::AttestedKey,
                format!(
                    "{officer}'s attested key is {:?}, not P-256",
                    attested.key_algorithm
                ),
            ));
        }
        let computed = data_encoding::HEXLOWER
            .encode(ring::digest::digest(&ring::digest::SHA256, &spki).as_ref());
        if computed != key_id {
            return Err(fail(
                seq,
                ApprovalCheck::KeyId,
                format!("key_id {key_id} is not SHA-256 of the recorded spki ({computed})"),
            ));
        }
        if let Some(other) = self.owners.get(&key_id) {
            if *other != officer {
                return Err(fail(
                    seq,
                    ApprovalCheck::KeyShared,
                    format!("key {key_id} registered to {officer} was registered to {other}"),
                ));
            }
        }
        let point = p256_point(&spki).ok_or_else(|| {
            fail(
                seq,
                ApprovalCheck::AttestedKey,
                "the attested key's SubjectPublicKeyInfo holds no P-256 point".to_owned(),
            )
        })?;
        registration_as_attested(seq, actor, &officer, body, &attested)?;
        self.owners.insert(key_id.clone(), officer.clone());
        self.keys.insert(
            key_id,
            OfficerKey {
                officer,
                serial,
                point,
                registered: seq,
                removed: None,
                removal_stubs_then: self.removal_stubs,
            },
        );
        self.summary.attested_keys += 1;
        Ok(())
    }

    fn key_removed(&mut self, seq: u64, body: &Value) {
        // A removal of a key the export does not hold (its registration left out) has nothing
        // to take effect on: approvals with that key are unchecked or fail as unregistered.
        if let Some(key) = body
            .get("key_id")
            .and_then(Value::as_str)
            .and_then(|id| self.keys.get_mut(id))
        {
            key.removed.get_or_insert(seq);
        }
    }

    fn approved(&mut self, seq: u64, actor: &str, body: &Value) -> Result<(), ApprovalFailure> {
        let record = |detail: String| fail(seq, ApprovalCheck::ApprovalRecord, detail);
        match body.get("proof") {
            None => {}
            Some(Value::String(p)) if p == "totp" => {}
            Some(Value::String(p)) if p == "signature" => return self.signed(seq, actor, body),
            Some(other) => {
                return Err(record(format!(
                    "\"proof\" is {other}: expected \"signature\" or \"totp\""
                )))
            }
        }
        self.summary.totp += 1;
        self.summary.proofs.insert(seq, ApprovalProof::Totp);
        Ok(())
    }

    fn signed(&mut self, seq: u64, actor: &str, body: &Value) -> Result<(), ApprovalFailure> {
        let record = |detail: String| fail(seq, ApprovalCheck::ApprovalRecord, detail);
        let request = str_field(body, "request").map_err(record)?;
        let officer = str_field(body, "officer").map_err(record)?;
        actor_is_officer(seq, actor, &officer)?;
        let key_id = str_field(body, "key_id").map_err(record)?;
        let nonce = str_field(body, "nonce").map_err(record)?;
        let digest = str_field(body, "digest").map_err(record)?;
        let signature = base64_field(body, "signature").map_err(record)?;
        nonce_form(&nonce).map_err(record)?;

        let what = format!("approval of {request}");
        let Some(key) = standing_key(
            &self.keys,
            self.registration_stubs,
            seq,
            &officer,
            &key_id,
            &what,
        )?
        else {
            return self.unchecked(seq);
        };
        let Some(shown) = self.requests.get(&request) else {
            if self.request_stubs > 0 {
                return self.unchecked(seq);
            }
            return Err(fail(
                seq,
                ApprovalCheck::RequestNotInExport,
                format!("{officer}'s signed approval is of request {request}, which no request.created in the export shows"),
            ));
        };
        let shown_refs = [
            shown[0].as_str(),
            shown[1].as_str(),
            shown[2].as_str(),
            shown[3].as_str(),
            shown[4].as_str(),
            shown[5].as_str(),
        ];
        let message = signed_approval_message(shown_refs, &officer, &key_id, &nonce);
        let computed = signed_approval_digest(&message);
        if computed != digest {
            return Err(fail(
                seq,
                ApprovalCheck::Digest,
                format!("{officer}'s approval of {request} records digest {digest}; what the request showed gives {computed}"),
            ));
        }
        let public = ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_ASN1,
            &key.point,
        );
        if public.verify(&message, &signature).is_err() {
            return Err(fail(
                seq,
                ApprovalCheck::Signature,
                format!("{officer}'s signature on request {request} does not verify with key {key_id} (YubiKey {})", key.serial),
            ));
        }
        // A removal left out of the export could have taken the key away before this
        // approval: the signature is good, but that the key still stood is not shown.
        let removal_unknown = self.removal_stubs > key.removal_stubs_then;
        let proof = ApprovalProof::Signed {
            officer,
            serial: key.serial,
            key_id,
        };
        if !self.nonces.insert(nonce.clone()) {
            return Err(fail(
                seq,
                ApprovalCheck::NonceReused,
                format!("nonce {nonce} was used by an earlier signed approval"),
            ));
        }
        if removal_unknown {
            return self.unchecked(seq);
        }
        self.summary.signed += 1;
        self.summary.proofs.insert(seq, proof);
        Ok(())
    }

    fn unchecked(&mut self, seq: u64) -> Result<(), ApprovalFailure> {
        self.summary.unchecked += 1;
        self.summary.proofs.insert(seq, ApprovalProof::Unchecked);
        Ok(())
    }
}

/// The event of `officer` is recorded under their own name.
fn actor_is_officer(seq: u64, actor: &str, officer: &str) -> Result<(), ApprovalFailure> {
    if actor == officer {
        return Ok(());
    }
    Err(fail(
        seq,
        ApprovalCheck::ActorNotOfficer,
        format!("the event names officer {officer:?} and was recorded by {actor:?}"),
    ))
}

/// What an `officer.key_registered` body says of the key besides the key itself (firmware,
/// policies, anchor) is what its verified attestation says; the witness is another officer;
/// the registering officer recorded it.
fn registration_as_attested(
    seq: u64,
    actor: &str,
    officer: &str,
    body: &Value,
    attested: &crate::token::attestation::Attested,
) -> Result<(), ApprovalFailure> {
    let record = |detail: String| fail(seq, ApprovalCheck::KeyRecord, detail);
    let fields = [
        (
            "firmware",
            attested.firmware.to_string(),
            ApprovalCheck::KeyFirmware,
        ),
        (
            "pin_policy",
            attested.pin_policy.to_string(),
            ApprovalCheck::KeyPolicy,
        ),
        (
            "touch_policy",
            attested.touch_policy.to_string(),
            ApprovalCheck::KeyPolicy,
        ),
        ("anchor", attested.anchor.clone(), ApprovalCheck::KeyAnchor),
    ];
    for (name, attested_value, check) in fields {
        let recorded = str_field(body, name).map_err(record)?;
        if recorded != attested_value {
            return Err(fail(
                seq,
                check,
                format!(
                    "{officer}'s key records {name} {recorded:?}; its attestation on YubiKey {} \
                     says {attested_value:?}",
                    attested.serial
                ),
            ));
        }
    }
    if attested.touch_policy != crate::token::attestation::TouchPolicy::Always {
        return Err(fail(
            seq,
            ApprovalCheck::KeyPolicy,
            format!(
                "{officer}'s key on YubiKey {} is attested with touch policy {}: an approval key \
                 needs a touch for every signature (always)",
                attested.serial, attested.touch_policy
            ),
        ));
    }
    let witness = str_field(body, "witness")
        .map_err(|detail| fail(seq, ApprovalCheck::KeyWitness, detail))?;
    if witness.is_empty() || witness == officer {
        return Err(fail(
            seq,
            ApprovalCheck::KeyWitness,
            format!(
                "{officer}'s key registration is witnessed by {witness:?}: a registration needs \
                 another officer as witness"
            ),
        ));
    }
    actor_is_officer(seq, actor, officer)
}

/// A recorded nonce's form: lowercase hex of 1 to [`MAX_NONCE_HEX`] characters.
fn nonce_form(nonce: &str) -> Result<(), String> {
    if nonce.is_empty()
        || nonce.len() > MAX_NONCE_HEX
        || data_encoding::HEXLOWER.decode(nonce.as_bytes()).is_err()
    {
        return Err(format!(
            "\"nonce\" is not lowercase hex of at most {MAX_NONCE_HEX} characters"
        ));
    }
    Ok(())
}

/// The key `key_id` that `officer`'s signature at `seq` names (`what`: "approval of R",
/// "presence at OP"), registered to that officer and not removed; `None` when the export
/// leaves registrations out (stubs) and the key is not among those it shows.
fn standing_key<'k>(
    keys: &'k HashMap<String, OfficerKey>,
    registration_stubs: u64,
    seq: u64,
    officer: &str,
    key_id: &str,
    what: &str,
) -> Result<Option<&'k OfficerKey>, ApprovalFailure> {
    let Some(key) = keys.get(key_id) else {
        if registration_stubs > 0 {
            return Ok(None);
        }
        return Err(fail(
            seq,
            ApprovalCheck::KeyNotRegistered,
            format!("{officer}'s {what} names key {key_id}, which no officer.key_registered in the export registers"),
        ));
    };
    if key.officer != officer {
        return Err(fail(
            seq,
            ApprovalCheck::KeyOfAnotherOfficer,
            format!(
                "{officer}'s {what} is signed with key {key_id}, registered to {} (seq {})",
                key.officer, key.registered
            ),
        ));
    }
    if let Some(removed) = key.removed {
        return Err(fail(
            seq,
            ApprovalCheck::KeyRemoved,
            format!("{officer}'s {what} is signed with key {key_id}, removed at seq {removed}"),
        ));
    }
    Ok(Some(key))
}

fn fail(seq: u64, check: ApprovalCheck, detail: String) -> ApprovalFailure {
    ApprovalFailure { seq, check, detail }
}

fn str_field(body: &Value, name: &str) -> Result<String, String> {
    body.get(name)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| format!("\"{name}\" is missing or not a string"))
}

fn base64_field(body: &Value, name: &str) -> Result<Vec<u8>, String> {
    let s = str_field(body, name)?;
    data_encoding::BASE64
        .decode(s.as_bytes())
        .map_err(|e| format!("\"{name}\" is not Base64: {e}"))
}

/// The uncompressed point of a P-256 SubjectPublicKeyInfo (DER).
fn p256_point(spki: &[u8]) -> Option<Vec<u8>> {
    use x509_cert::der::Decode;
    let info = x509_cert::spki::SubjectPublicKeyInfoRef::from_der(spki).ok()?;
    let point = info.subject_public_key.as_bytes()?;
    (point.len() == 65 && point.first() == Some(&0x04)).then(|| point.to_vec())
}

/// Why an export does not verify: its chain, or its approvals.
#[derive(Debug)]
#[non_exhaustive]
pub enum ExportCheckFailure {
    /// The export itself (hashes, links, checkpoint).
    Export(ExportFailure),
    /// An officer key or signed approval.
    Approval(ApprovalFailure),
}

impl fmt::Display for ExportCheckFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Export(e) => e.fmt(f),
            Self::Approval(a) => a.fmt(f),
        }
    }
}

impl std::error::Error for ExportCheckFailure {}

/// Verifies an export ([`verify_export_observed`]) and, only if it verifies, the approval
/// proofs it holds; `seen` gets every line as the verifier does.
pub fn verify_export_and_approvals(
    input: impl BufRead,
    key: &CheckpointPublicKey,
    after: Option<&SignedCheckpoint>,
    anchors: TrustAnchors,
    seen: &mut dyn FnMut(&ExportLine),
) -> Result<(VerifiedExport, ApprovalSummary), ExportCheckFailure> {
    let mut proofs = ApprovalProofs::new(anchors);
    let verified = verify_export_observed(input, key, after, &mut |line| {
        proofs.observe(line);
        seen(line);
    })
    .map_err(ExportCheckFailure::Export)?;
    let summary = proofs.finish().map_err(ExportCheckFailure::Approval)?;
    Ok((verified, summary))
}

#[cfg(test)]
pub(in crate::custody) mod tests {
    pub(in crate::custody) mod insider;

    use serde_json::json;

    use super::*;
    use crate::ledger::{Actor, CanonicalJson, EventHeader, Hash, Kind, Timestamp};

    fn header(seq: u64, kind: &str) -> EventHeader {
        EventHeader {
            seq,
            time: Timestamp(1_800_000_000_000),
            actor: Actor::parse("alice").expect("actor"),
            kind: Kind::parse(kind).expect("kind"),
            body_hash: Hash([0; 32]),
            prev: Hash([0; 32]),
            hash: Hash([0; 32]),
        }
    }

    fn event(seq: u64, kind: &str, body: Value) -> ExportLine {
        ExportLine::Event(StoredEvent {
            header: header(seq, kind),
            body: CanonicalJson::from_value(&body).expect("canonical"),
        })
    }

    fn check(lines: &[ExportLine]) -> Result<ApprovalSummary, ApprovalFailure> {
        let mut p = ApprovalProofs::new(TrustAnchors::yubico());
        for l in lines {
            p.observe(l);
        }
        p.finish()
    }

    fn created(id: &str) -> ExportLine {
        event(
            1,
            kinds::REQUEST_CREATED,
            json!({"request": id, "account": "123456789012", "task": "support_plan",
                   "ticket": "T-1", "reason": "why", "requester": "olivia"}),
        )
    }

    #[test]
    fn totp_and_older_approvals_count_as_totp_and_stubbed_approvals_as_unchecked() {
        let s = check(&[
            created("r1"),
            event(
                2,
                kinds::REQUEST_APPROVED,
                json!({"request": "r1", "officer": "alice"}),
            ),
            event(
                3,
                kinds::REQUEST_APPROVED,
                json!({"request": "r1", "officer": "bob", "proof": "totp"}),
            ),
            ExportLine::Stub(header(4, kinds::REQUEST_APPROVED)),
        ])
        .expect("checks");
        assert_eq!(
            (s.signed, s.totp, s.unchecked, s.attested_keys),
            (0, 2, 1, 0)
        );
        assert_eq!(s.proofs.get(&3), Some(&ApprovalProof::Totp));
    }

    #[test]
    fn fail_a_signed_approval_with_no_registered_key_is_named_with_its_seq() {
        let e = check(&[
            created("r1"),
            event(
                7,
                kinds::REQUEST_APPROVED,
                json!({"request": "r1", "officer": "alice", "proof": "signature",
                       "key_id": "ab", "nonce": "00ff", "digest": "cd",
                       "signature": "AAAA"}),
            ),
        ])
        .expect_err("no key");
        assert_eq!(
            (e.seq, e.check),
            (7, ApprovalCheck::KeyNotRegistered),
            "{e}"
        );
        assert!(e.to_string().contains("seq 7"), "{e}");
    }

    #[test]
    fn fail_malformed_proofs_and_key_records_are_named_never_a_panic() {
        let approvals = [
            json!({"request": "r1", "officer": "alice", "proof": "magic"}),
            json!({"request": "r1", "officer": "alice", "proof": 3}),
            json!({"request": "r1", "officer": "alice", "proof": "signature"}),
            json!({"request": "r1", "officer": "alice", "proof": "signature", "key_id": "ab",
                   "nonce": "not hex", "digest": "cd", "signature": "AAAA"}),
            json!({"request": "r1", "officer": "alice", "proof": "signature", "key_id": "ab",
                   "nonce": "00", "digest": "cd", "signature": "%%%"}),
        ];
        for body in approvals {
            let e = check(&[
                created("r1"),
                event(2, kinds::REQUEST_APPROVED, body.clone()),
            ])
            .expect_err("malformed");
            assert_eq!(e.check, ApprovalCheck::ApprovalRecord, "{body}: {e}");
        }
        let keys = [
            json!({}),
            json!({"officer": "alice", "key_id": "ab", "serial": -1}),
            json!({"officer": "alice", "key_id": "ab", "serial": 5_000_000_000_u64}),
            json!({"officer": "alice", "key_id": "ab", "serial": 1, "slot": "9a"}),
            json!({"officer": "alice", "key_id": "ab", "serial": 1, "slot": "9c",
                   "spki": "AAAA", "slot_certificate": "AAAA", "device_certificate": "!"}),
        ];
        for body in keys {
            let e = check(&[event(2, kinds::OFFICER_KEY_REGISTERED, body.clone())])
                .expect_err("malformed");
            assert_eq!(e.check, ApprovalCheck::KeyRecord, "{body}: {e}");
        }
        // Certificates that are not certificates fail the attestation, by name.
        let e = check(&[event(
            2,
            kinds::OFFICER_KEY_REGISTERED,
            json!({"officer": "alice", "key_id": "ab", "serial": 1, "slot": "9c",
                   "spki": "AAAA", "slot_certificate": "AAAA", "device_certificate": "AAAA"}),
        )])
        .expect_err("not certificates");
        assert_eq!(e.check, ApprovalCheck::KeyAttestation, "{e}");
    }

    #[test]
    fn a_signed_approval_whose_key_or_request_a_filtered_export_leaves_out_is_unchecked() {
        let signed = json!({"request": "r9", "officer": "alice", "proof": "signature",
                            "key_id": "ab", "nonce": "00", "digest": "cd", "signature": "AAAA"});
        let s = check(&[
            ExportLine::Stub(header(1, kinds::OFFICER_KEY_REGISTERED)),
            event(2, kinds::REQUEST_APPROVED, signed),
        ])
        .expect("unchecked, not failed");
        assert_eq!((s.signed, s.unchecked), (0, 1));
        assert_eq!(s.proofs.get(&2), Some(&ApprovalProof::Unchecked));
    }

    #[test]
    fn every_check_has_a_distinct_name() {
        use ApprovalCheck::*;
        let all = [
            KeyRecord,
            KeyAttestation,
            AttestedKey,
            KeyId,
            KeyShared,
            ApprovalRecord,
            KeyNotRegistered,
            KeyOfAnotherOfficer,
            KeyRemoved,
            RequestNotInExport,
            Digest,
            Signature,
            NonceReused,
            KeyFirmware,
            KeyPolicy,
            KeyAnchor,
            KeyWitness,
            ActorNotOfficer,
            PresenceRecord,
            PresenceDigest,
            PresenceSignature,
        ];
        let names: HashSet<_> = all.iter().map(|c| c.as_str()).collect();
        assert_eq!(names.len(), all.len());
    }
}
