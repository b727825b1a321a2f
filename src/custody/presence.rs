//! Officers proving presence at two-officer operations with their own YubiKeys, on
//! [`Custody`].
//!
//! Each officer of a two-officer operation (suspending a user, acknowledging an incident,
//! enrolling, releasing custody, ...) proves who they are with their passphrase and, instead
//! of the TOTP code, when the policy (`approval_proof`) takes it, a signature by their
//! registered approval key ([`super::approval_keys`]). What is signed is
//! [`signed_presence_message`]: the [`operation_digest`] of exactly what the operation does
//! (its name and its parameters as the command line shows them, no secret), the officer, the
//! key's id and a nonce custodyd issued to this officer for this digest
//! ([`Custody::presence_challenge`]: single use, [`CHALLENGE_TTL_MS`] on the service clock, one
//! per-officer cap with approval challenges). custodyd computes the digest again from the
//! operation it received ([`OperationIntent`]), so a signature relayed to another operation,
//! or to the same one with other parameters, never verifies.
//!
//! [`Custody::prove_presence`] checks the signature and answers the officer's [`Session`] for
//! this one operation. The first event the operation then records (its intent or its outcome,
//! or its refusal) carries every officer's proof under `presence`: officer, operation,
//! parameters, digest, key id, nonce and signature, which auditors check offline
//! ([`super::approval_proofs`]).

use serde::Serialize;
use serde_json::Value;

use super::approval_keys::{Subject, CHALLENGE_TTL_MS};
use super::authentication::PassphraseProven;
use super::error::CustodyError;
use super::ids::UserName;
use super::records::{operation_digest, signed_presence_message};
use super::service::{Custody, Session};
use super::SignedProof;
use crate::ledger::{CanonicalJson, NewEvent};

/// What a two-officer operation does: its name and its parameters (name, value) as the
/// command line shows them, in the operation's own order. Never holds a secret (a seed, a
/// password, a passphrase is never a parameter).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperationIntent {
    operation: &'static str,
    parameters: Vec<(String, String)>,
}

impl OperationIntent {
    /// The operation `operation` with these parameters.
    pub fn new(operation: &'static str, parameters: Vec<(String, String)>) -> Self {
        Self {
            operation,
            parameters,
        }
    }

    /// The operation's name (the daemon operation's, as `user_set_active`).
    pub fn operation(&self) -> &'static str {
        self.operation
    }

    /// The parameters, in order.
    pub fn parameters(&self) -> &[(String, String)] {
        &self.parameters
    }

    /// [`operation_digest`] of the operation and its parameters (SHA-256, hex).
    pub fn digest(&self) -> String {
        operation_digest(self.operation, &self.parameters)
    }
}

/// A presence challenge issued to an officer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PresenceChallenge {
    /// The officer it was issued to.
    pub officer: UserName,
    /// The digest of the operation it is for.
    pub digest: String,
    /// The officer's registered key, which must sign.
    pub key_id: String,
    /// The nonce (lowercase hex).
    pub nonce: String,
    /// When it stops being accepted (ms since the epoch).
    pub expires_ms: i64,
}

/// One officer's proof, as the operation's event records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
struct Record {
    officer: UserName,
    operation: &'static str,
    parameters: Vec<[String; 2]>,
    digest: String,
    key_id: String,
    nonce: String,
    /// The DER signature, base64.
    signature: String,
}

/// Proofs verified and not yet recorded: `verified` until the operation's officer-pair check
/// claims them, then `pending` until its next event records them.
#[derive(Debug, Default)]
pub struct Proofs {
    verified: Vec<(i64, Record)>,
    pending: Vec<(i64, Record)>,
    /// How deep in guarded domain calls the service is: claimed proofs wait again only when
    /// the outermost ends.
    depth: u32,
}

impl Proofs {
    /// Moves the proof of `nonce` to those the next event records, unless an earlier step
    /// of the operation recorded it already.
    fn claim(&mut self, nonce: &str) {
        if let Some(at) = self.verified.iter().position(|(_, r)| r.nonce == nonce) {
            let entry = self.verified.remove(at);
            self.pending.push(entry);
        }
    }

    /// Adds the pending proofs to `body` (an event body object) as `presence`.
    pub(super) fn attach_to(&mut self, body: &mut Value) {
        if self.pending.is_empty() {
            return;
        }
        if let Value::Object(m) = body {
            let records = std::mem::take(&mut self.pending);
            let list = records
                .iter()
                .filter_map(|(_, r)| serde_json::to_value(r).ok())
                .collect();
            m.insert("presence".into(), Value::Array(list));
        }
    }

    /// [`Proofs::attach_to`] on an event already built.
    pub(super) fn attach_to_event(&mut self, ev: &mut NewEvent) -> Result<(), CustodyError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut body = ev.body.to_value();
        self.attach_to(&mut body);
        ev.body = CanonicalJson::from_value(&body)
            .map_err(|e| CustodyError::invalid("event body", "presence", e.to_string()))?;
        Ok(())
    }

    /// A guarded domain call begins.
    pub(super) fn enter(&mut self) {
        self.depth = self.depth.saturating_add(1);
    }

    /// A guarded domain call ends. When it is the outermost, proofs claimed but recorded by
    /// no event wait again (an operation whose first step records nothing records them at
    /// its next).
    pub(super) fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
        if self.depth == 0 {
            let pending = std::mem::take(&mut self.pending);
            self.verified.extend(pending);
        }
    }

    fn prune(&mut self, now_ms: i64) {
        self.verified.retain(|(expires, _)| *expires > now_ms);
    }
}

impl Custody {
    /// Issues a challenge for the officer whose passphrase `proven` shows (within the last
    /// minute) to prove presence at the operation of `digest` ([`OperationIntent::digest`]):
    /// the officer must have a registered key and the policy must take signatures.
    pub fn presence_challenge(
        &mut self,
        proven: &PassphraseProven,
        digest: &str,
    ) -> Result<PresenceChallenge, CustodyError> {
        let op = "presence_challenge";
        self.guarded(proven.user().as_str(), op, |c| {
            if digest.len() != 64
                || !digest
                    .bytes()
                    .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            {
                return Err(CustodyError::invalid(
                    "operation digest",
                    digest,
                    "64 lowercase hex digits (SHA-256 of the operation the command shows)",
                ));
            }
            let officer = c.signing_officer(proven, op)?;
            let key = c.officer_key(&officer.name)?.ok_or_else(|| {
                CustodyError::SigningKeyNotRegistered {
                    user: officer.name.clone(),
                    given: String::new(),
                    registered: None,
                }
            })?;
            let now = c.now();
            let (nonce, expires_ms) =
                c.challenges
                    .issue(&officer.name, Subject::Operation(digest.to_owned()), now)?;
            Ok(PresenceChallenge {
                officer: officer.name,
                digest: digest.to_owned(),
                key_id: key.key_id,
                nonce,
                expires_ms,
            })
        })
    }

    /// The session of an officer at the two-officer operation `intent`: their passphrase
    /// (`proven`, within the last minute) and their registered key's signature over
    /// [`signed_presence_message`] of `intent`'s digest, which custodyd computed from the
    /// operation it received. The nonce must have been issued to this officer for this
    /// digest, unused and unexpired (it is used up here either way). The session serves this
    /// operation only: its proof is recorded by the operation's first event.
    pub fn prove_presence(
        &mut self,
        proven: &PassphraseProven,
        intent: &OperationIntent,
        proof: &SignedProof,
    ) -> Result<Session, CustodyError> {
        let op = intent.operation();
        self.guarded(proven.user().as_str(), op, |c| {
            let officer = c.signing_officer(proven, op)?;
            let now = c.now();
            let digest = intent.digest();
            let subject = Subject::Operation(digest.clone());
            if !c
                .challenges
                .take(&officer.name, &subject, &proof.nonce, now)
            {
                return Err(CustodyError::PresenceNonceUnknown {
                    operation: op,
                    user: officer.name,
                });
            }
            let key = c.officer_key_named(&officer.name, &proof.key_id)?;
            let message =
                signed_presence_message(&digest, officer.name.as_str(), &key.key_id, &proof.nonce);
            if !key.verifies(&message, &proof.signature)? {
                return Err(CustodyError::PresenceSignatureInvalid {
                    operation: op,
                    user: officer.name,
                    key_id: key.key_id,
                });
            }
            let proofs = c.presence.get_mut();
            proofs.prune(now);
            proofs.verified.push((
                now.saturating_add(CHALLENGE_TTL_MS),
                Record {
                    officer: officer.name.clone(),
                    operation: op,
                    parameters: intent
                        .parameters()
                        .iter()
                        .map(|(k, v)| [k.clone(), v.clone()])
                        .collect(),
                    digest,
                    key_id: key.key_id,
                    nonce: proof.nonce.clone(),
                    signature: data_encoding::BASE64.encode(&proof.signature),
                },
            ));
            Ok(Session {
                user: officer.name,
                at_ms: proven.at_ms(),
                ledger: c.ledger.ledger_id(),
                presence: Some(proof.nonce.clone()),
            })
        })
    }

    /// The presence check of an officer pair at `operation`: a session proved by signature
    /// hands its proof to the operation's next event; one proved by TOTP is refused when the
    /// policy takes signatures only. Registering and removing an approval key take TOTP
    /// codes whatever the policy: a key is how an officer comes to sign (the first officers
    /// to register have no key to sign with; an officer whose YubiKey is lost has none).
    pub(super) fn officers_present(
        &self,
        a: &Session,
        b: &Session,
        operation: &'static str,
    ) -> Result<(), CustodyError> {
        let exempt = matches!(operation, "officer_key_register" | "officer_key_remove");
        for s in [a, b] {
            match &s.presence {
                Some(nonce) => self.presence.borrow_mut().claim(nonce),
                None if !exempt && !self.policy.approval_proof.takes("totp") => {
                    return Err(CustodyError::PresenceProofRequired {
                        operation,
                        user: s.user.clone(),
                        wanted: "a signature",
                        given: "a TOTP code",
                        policy: self.policy.approval_proof.as_str(),
                    });
                }
                None => {}
            }
        }
        Ok(())
    }
}
