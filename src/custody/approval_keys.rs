//! Officers' approval keys and signed approvals on [`Custody`].
//!
//! An officer may hold their own YubiKey with an attested P-256 key in PIV slot `9C` (PIN
//! policy once, touch policy always). Two officers register it
//! ([`Custody::register_officer_key`], `officer.key_registered`: the officer and a witness),
//! one key per officer; two officers remove it ([`Custody::remove_officer_key`],
//! `officer.key_removed`). An approval is then proved, besides the passphrase, by the key's
//! signature over [`signed_approval_message`]: what the approving screen showed of the
//! request, the officer, the key's id and a single-use nonce the daemon issued to this officer
//! for this request ([`Custody::approval_challenge`]). [`Custody::approve_signed`] recomputes
//! the message from the ledger's own request record, so a signature made for another request
//! or for other request details never verifies. The policy (`approval_proof`) decides which
//! proofs an approval may use.
//!
//! Challenges live in memory only ([`Challenges`]): each is bound to (officer, request), used
//! once, lives [`CHALLENGE_TTL_MS`] on the service clock, and an officer holds at most
//! [`CHALLENGES_PER_OFFICER`] unused ones (only that officer can ask for theirs, after proving
//! their passphrase, so nobody exhausts another officer's).

use std::collections::BTreeMap;

use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::authentication::PassphraseProven;
use super::code_requests::{ApprovalProofBody, FRESH_AUTH_MS};
use super::error::{AttestationRefusal, CustodyError};
use super::ids::{RequestId, Serial, UserName};
use super::records::{signed_approval_digest, signed_approval_message, RequestRecord, Role};
use super::service::{Custody, Session};
use super::store::{self, entity, kinds, Put};
use crate::token::attestation::{
    verify_attestation, AttestationError, Evidence, Expected, KeyAlgorithm, PivSlot, TouchPolicy,
    TrustAnchors,
};

/// How long an approval challenge stays usable (ms, service clock).
pub const CHALLENGE_TTL_MS: i64 = 120_000;
/// Most unused challenges one officer holds at once.
pub const CHALLENGES_PER_OFFICER: usize = 4;
/// Bytes of a challenge nonce.
pub const NONCE_LEN: usize = 32;

/// An officer's registered approval key, as the `officer_key` record holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfficerKey {
    /// The officer.
    pub officer: UserName,
    /// The serial of the officer's YubiKey.
    pub serial: u32,
    /// SHA-256 (hex) of the key's SubjectPublicKeyInfo.
    pub key_id: String,
    /// The SubjectPublicKeyInfo (DER, base64).
    pub spki: String,
    /// The YubiKey's firmware.
    pub firmware: String,
    /// The officer who witnessed the registration.
    pub witness: UserName,
    /// When it was registered (ms since the epoch).
    pub registered_ms: i64,
}

/// The `officer_key` record: the officer's key, or none once removed.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct OfficerKeyEntry {
    /// The key registered now.
    pub key: Option<OfficerKey>,
}

/// What an officer's YubiKey showed for registration.
#[derive(Clone, Debug)]
pub struct KeyEvidence {
    /// The serial the YubiKey reports.
    pub serial: u32,
    /// The public key the card answered (SubjectPublicKeyInfo, DER); must be the attested one.
    pub spki: Vec<u8>,
    /// ATTEST's certificate for slot `9C` (DER).
    pub slot_cert: Vec<u8>,
    /// The device's F9 certificate (DER).
    pub device_cert: Vec<u8>,
}

/// A signature proving an approval.
#[derive(Clone, Debug)]
pub struct SignedProof {
    /// The id of the key that signed (must be the officer's registered key).
    pub key_id: String,
    /// The challenge nonce (lowercase hex).
    pub nonce: String,
    /// The DER ECDSA P-256 signature over [`signed_approval_message`].
    pub signature: Vec<u8>,
}

/// An approval challenge issued to an officer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApprovalChallenge {
    /// The request it is for.
    pub request: RequestId,
    /// The officer it was issued to.
    pub officer: UserName,
    /// The officer's registered key, which must sign.
    pub key_id: String,
    /// The nonce (lowercase hex, [`NONCE_LEN`] bytes).
    pub nonce: String,
    /// When it stops being accepted (ms since the epoch).
    pub expires_ms: i64,
}

/// What a challenge is for: approving a request, or proving presence at the one two-officer
/// operation whose digest ([`super::records::operation_digest`]) it names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Subject {
    /// Approving this request.
    Request(RequestId),
    /// The operation of this digest (hex).
    Operation(String),
}

#[derive(Clone, Debug)]
struct Issued {
    nonce: String,
    subject: Subject,
    expires_ms: i64,
}

/// Challenges issued and not yet used, per officer (memory only).
#[derive(Debug, Default)]
pub struct Challenges {
    issued: BTreeMap<UserName, Vec<Issued>>,
}

impl Challenges {
    fn prune(&mut self, now_ms: i64) {
        self.issued.retain(|_, v| {
            v.retain(|i| i.expires_ms > now_ms);
            !v.is_empty()
        });
    }

    /// A fresh nonce for `officer` on `subject`, refused past the per-officer cap (one cap for
    /// approvals and operations together).
    pub(super) fn issue(
        &mut self,
        officer: &UserName,
        subject: Subject,
        now_ms: i64,
    ) -> Result<(String, i64), CustodyError> {
        use ring::rand::SecureRandom;
        self.prune(now_ms);
        let held = self.issued.entry(officer.clone()).or_default();
        if held.len() >= CHALLENGES_PER_OFFICER {
            let oldest = held.iter().map(|i| i.expires_ms).min().unwrap_or(now_ms);
            return Err(CustodyError::ApprovalNoncesExhausted {
                user: officer.clone(),
                cap: CHALLENGES_PER_OFFICER,
                wait_secs: u64::try_from(oldest.saturating_sub(now_ms))
                    .unwrap_or(0)
                    .div_ceil(1000),
            });
        }
        let mut b = [0u8; NONCE_LEN];
        ring::rand::SystemRandom::new()
            .fill(&mut b)
            .map_err(|_| CustodyError::Crypto {
                operation: "approval challenge nonce",
            })?;
        let nonce = data_encoding::HEXLOWER.encode(&b);
        let expires_ms = now_ms.saturating_add(CHALLENGE_TTL_MS);
        held.push(Issued {
            nonce: nonce.clone(),
            subject,
            expires_ms,
        });
        Ok((nonce, expires_ms))
    }

    /// Uses up `nonce` when it was issued to `officer` for `subject` and is unexpired.
    pub(super) fn take(
        &mut self,
        officer: &UserName,
        subject: &Subject,
        nonce: &str,
        now_ms: i64,
    ) -> bool {
        self.prune(now_ms);
        let Some(held) = self.issued.get_mut(officer) else {
            return false;
        };
        let found = held.iter().position(|i| {
            i.subject == *subject
                && bool::from(subtle::ConstantTimeEq::ct_eq(
                    i.nonce.as_bytes(),
                    nonce.as_bytes(),
                ))
        });
        match found {
            Some(at) => {
                held.remove(at);
                true
            }
            None => false,
        }
    }
}

impl OfficerKey {
    /// Whether `signature` (DER ECDSA P-256) verifies over `message` (SHA-256) with this key.
    pub(super) fn verifies(&self, message: &[u8], signature: &[u8]) -> Result<bool, CustodyError> {
        let spki = data_encoding::BASE64
            .decode(self.spki.as_bytes())
            .map_err(|e| CustodyError::CorruptRecord {
                entity: entity::OFFICER_KEY,
                id: self.officer.to_string(),
                reason: format!("spki is not base64: {e}"),
            })?;
        Ok(
            crate::token::piv::custody::spki_point(&spki).is_some_and(|point| {
                UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, point)
                    .verify(message, signature)
                    .is_ok()
            }),
        )
    }
}

fn refused(serial: u32, why: AttestationRefusal, detail: String) -> CustodyError {
    match Serial::new(serial) {
        Ok(serial) => CustodyError::AttestationRefused {
            serial,
            why,
            detail,
        },
        Err(e) => e,
    }
}

fn shown(r: &RequestRecord) -> [&str; 6] {
    [
        r.id.as_str(),
        r.account.as_str(),
        r.task.as_str(),
        r.ticket.as_str(),
        r.reason.as_str(),
        r.requester.as_str(),
    ]
}

impl Custody {
    /// The approval key registered to `officer`, if any.
    pub fn officer_key(&self, officer: &UserName) -> Result<Option<OfficerKey>, CustodyError> {
        let entry: Option<OfficerKeyEntry> =
            store::get(&self.ledger, entity::OFFICER_KEY, officer.as_str())?;
        Ok(entry.and_then(|e| e.key))
    }

    /// Registers `officer`'s approval key: `officer` (session `a`) and a witness officer
    /// (session `b`) both authenticated. The attestation must chain to `anchors` at the
    /// service clock's time, be of slot `9C` on the YubiKey with `evidence.serial`, hold a
    /// P-256 key equal to the public key the card answered, with touch policy always. One key
    /// per officer: an officer with a key is refused `signing_key_exists`.
    pub fn register_officer_key(
        &mut self,
        a: &Session,
        b: &Session,
        evidence: &KeyEvidence,
        anchors: &TrustAnchors,
    ) -> Result<OfficerKey, CustodyError> {
        let op = "officer_key_register";
        self.guarded(a.user().as_str(), op, |c| {
            let (officer, witness) = c.officer_pair(a, b, op)?;
            if let Some(k) = c.officer_key(&officer.name)? {
                return Err(CustodyError::SigningKeyExists {
                    user: officer.name,
                    key_id: k.key_id,
                });
            }
            let now = c.now();
            let at = jiff::Timestamp::from_millisecond(now).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
            let attested = verify_attestation(
                &Evidence {
                    slot_cert: &evidence.slot_cert,
                    device_cert: &evidence.device_cert,
                    extra_intermediates: &[],
                },
                &Expected {
                    slot: PivSlot::SIGNATURE,
                    serial: evidence.serial,
                },
                anchors,
                at,
            )
            .map_err(|e| match e {
                e @ AttestationError::SerialMismatch { .. } => refused(
                    evidence.serial,
                    AttestationRefusal::SerialMismatch,
                    e.to_string(),
                ),
                e => refused(
                    evidence.serial,
                    AttestationRefusal::Untrusted,
                    e.to_string(),
                ),
            })?;
            if attested.key_algorithm != KeyAlgorithm::EcP256 {
                return Err(refused(
                    evidence.serial,
                    AttestationRefusal::Unsupported,
                    format!(
                        "the key in slot 9c is {:?}; an approval key is P-256",
                        attested.key_algorithm
                    ),
                ));
            }
            if attested.public_key_spki != evidence.spki {
                return Err(refused(
                    evidence.serial,
                    AttestationRefusal::Untrusted,
                    "the public key the card answered is not the one its attestation names"
                        .to_owned(),
                ));
            }
            if attested.touch_policy != TouchPolicy::Always {
                return Err(CustodyError::SigningKeyPolicy {
                    user: officer.name,
                    touch: attested.touch_policy.to_string(),
                });
            }
            let b64 = data_encoding::BASE64;
            let key = OfficerKey {
                officer: officer.name.clone(),
                serial: attested.serial,
                key_id: attested.key_id.clone(),
                spki: b64.encode(&attested.public_key_spki),
                firmware: attested.firmware.to_string(),
                witness: witness.name.clone(),
                registered_ms: now,
            };
            c.append(
                kinds::OFFICER_KEY_REGISTERED,
                officer.name.as_str(),
                json!({"officer": officer.name, "serial": attested.serial, "slot": "9c",
                       "spki": key.spki, "key_id": key.key_id, "firmware": key.firmware,
                       "pin_policy": attested.pin_policy.to_string(),
                       "touch_policy": attested.touch_policy.to_string(),
                       "anchor": attested.anchor,
                       "slot_certificate": b64.encode(&evidence.slot_cert),
                       "device_certificate": b64.encode(&evidence.device_cert),
                       "witness": witness.name}),
                &[Put::new(
                    entity::OFFICER_KEY,
                    &officer.name,
                    &OfficerKeyEntry {
                        key: Some(key.clone()),
                    },
                )?],
            )?;
            Ok(key)
        })
    }

    /// Removes `officer`'s (session `a`) approval key, a witness officer (session `b`)
    /// present; returns the removed key's id. Refused `signing_key_not_registered` without
    /// one. Challenges issued for the key are dropped.
    pub fn remove_officer_key(&mut self, a: &Session, b: &Session) -> Result<String, CustodyError> {
        let op = "officer_key_remove";
        self.guarded(a.user().as_str(), op, |c| {
            let (officer, witness) = c.officer_pair(a, b, op)?;
            let Some(key) = c.officer_key(&officer.name)? else {
                return Err(CustodyError::SigningKeyNotRegistered {
                    user: officer.name,
                    given: String::new(),
                    registered: None,
                });
            };
            c.append(
                kinds::OFFICER_KEY_REMOVED,
                officer.name.as_str(),
                json!({"officer": officer.name, "key_id": key.key_id, "witness": witness.name}),
                &[Put::new(
                    entity::OFFICER_KEY,
                    &officer.name,
                    &OfficerKeyEntry { key: None },
                )?],
            )?;
            c.challenges.issued.remove(&officer.name);
            Ok(key.key_id)
        })
    }

    /// The key registered to `officer` when it is the one named `key_id`;
    /// `signing_key_not_registered` otherwise (no key, or another: a swapped YubiKey).
    pub(super) fn officer_key_named(
        &self,
        officer: &UserName,
        key_id: &str,
    ) -> Result<OfficerKey, CustodyError> {
        match self.officer_key(officer)? {
            Some(k) if k.key_id == key_id => Ok(k),
            other => Err(CustodyError::SigningKeyNotRegistered {
                user: officer.clone(),
                given: key_id.to_owned(),
                registered: other.map(|k| k.key_id),
            }),
        }
    }

    /// The officer whose passphrase `proven` shows, if fresh and still an active officer.
    pub(super) fn signing_officer(
        &self,
        proven: &PassphraseProven,
        operation: &'static str,
    ) -> Result<super::records::UserRecord, CustodyError> {
        if self.now().saturating_sub(proven.at_ms()) > FRESH_AUTH_MS {
            return Err(CustodyError::ProofNotFresh {
                user: proven.user().clone(),
                operation,
            });
        }
        let user = self.user(proven.user())?;
        if !user.active {
            return Err(CustodyError::Suspended { user: user.name });
        }
        if !user.has(Role::Officer) {
            return Err(CustodyError::NotAnOfficer {
                user: user.name,
                operation,
            });
        }
        if !self.policy.approval_proof.takes("signature") {
            if !matches!(operation, "approve" | "approval_challenge") {
                return Err(CustodyError::PresenceProofRequired {
                    operation,
                    user: user.name,
                    wanted: "a TOTP code",
                    given: "a signature",
                    policy: self.policy.approval_proof.as_str(),
                });
            }
            return Err(CustodyError::ApprovalProofRequired {
                user: user.name,
                wanted: "totp",
                given: "a signature",
                policy: self.policy.approval_proof.as_str(),
            });
        }
        Ok(user)
    }

    /// Issues a challenge for the officer whose passphrase `proven` shows (proven within the
    /// last minute) to approve request `id` by signature: the officer must have a registered
    /// key, the policy must take signatures, and the request must exist.
    pub fn approval_challenge(
        &mut self,
        proven: &PassphraseProven,
        id: &RequestId,
    ) -> Result<ApprovalChallenge, CustodyError> {
        let op = "approval_challenge";
        self.guarded(proven.user().as_str(), op, |c| {
            let officer = c.signing_officer(proven, op)?;
            let key = c.officer_key(&officer.name)?.ok_or_else(|| {
                CustodyError::SigningKeyNotRegistered {
                    user: officer.name.clone(),
                    given: String::new(),
                    registered: None,
                }
            })?;
            c.request(id)?;
            let now = c.now();
            let (nonce, expires_ms) =
                c.challenges
                    .issue(&officer.name, Subject::Request(id.clone()), now)?;
            Ok(ApprovalChallenge {
                request: id.clone(),
                officer: officer.name,
                key_id: key.key_id,
                nonce,
                expires_ms,
            })
        })
    }

    /// An officer approves request `id` with their passphrase (`proven`, within the last
    /// minute) and a signature by their registered key instead of the TOTP code. The nonce
    /// must have been issued to this officer for this request, unused and unexpired (it is
    /// used up here either way); the key must be the one registered to the officer; the
    /// signature must verify over [`signed_approval_message`] computed from the ledger's
    /// request record. Then it is an approval as [`Custody::approve_as`] records it, with
    /// `proof: "signature"`, the key id, nonce, digest and signature. `seen` is as for
    /// [`Custody::approve_as`].
    pub fn approve_signed(
        &mut self,
        id: &RequestId,
        proven: &PassphraseProven,
        seen: Option<&str>,
        proof: &SignedProof,
    ) -> Result<RequestRecord, CustodyError> {
        let op = "approve";
        let checked = self.guarded(proven.user().as_str(), op, |c| {
            let officer = c.signing_officer(proven, op)?;
            let now = c.now();
            if !c.challenges.take(
                &officer.name,
                &Subject::Request(id.clone()),
                &proof.nonce,
                now,
            ) {
                return Err(CustodyError::ApprovalNonceUnknown {
                    request: id.clone(),
                    user: officer.name,
                });
            }
            let key = c.officer_key_named(&officer.name, &proof.key_id)?;
            let record = c.request(id)?;
            let message = signed_approval_message(
                shown(&record),
                officer.name.as_str(),
                &key.key_id,
                &proof.nonce,
            );
            if !key.verifies(&message, &proof.signature)? {
                return Err(CustodyError::ApprovalSignatureInvalid {
                    request: id.clone(),
                    user: officer.name,
                    key_id: key.key_id,
                });
            }
            c.record_signed_authentication(&officer.name)?;
            Ok(ApprovalProofBody::Signature {
                key_id: key.key_id,
                nonce: proof.nonce.clone(),
                digest: signed_approval_digest(&message),
                signature: data_encoding::BASE64.encode(&proof.signature),
            })
        })?;
        let session = Session {
            user: proven.user().clone(),
            at_ms: proven.at_ms(),
            ledger: self.ledger.ledger_id(),
            presence: None,
        };
        self.approve_proved(id, &session, seen, checked)
    }
}
