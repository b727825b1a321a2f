//! Offline checks of the officers' presence signatures at two-officer operations.
//!
//! An event of a two-officer operation whose officers proved presence by signature carries
//! `presence`: one entry per officer with `officer`, `operation`, `parameters` (name, value
//! pairs), `digest`, `key_id`, `nonce` and `signature` ([`crate::custody::presence`]). For each
//! entry the auditor checks, from the export alone: the digest is [`operation_digest`] of the
//! recorded operation and parameters (what the officer's screen showed and custodyd ran); the
//! key was registered to that officer before the event and not removed since; the signature
//! verifies over [`signed_presence_message`] with that key; the nonce was never used before,
//! by this or any signed approval.

use serde_json::Value;

use super::{
    base64_field, fail, nonce_form, standing_key, str_field, ApprovalCheck, ApprovalFailure,
    ApprovalProofs,
};
use crate::custody::records::{operation_digest, signed_presence_message};
use crate::ledger::StoredEvent;

/// The most entries one event's `presence` holds (two officers; a few more are refused).
const MAX_ENTRIES: usize = 8;
/// The most parameters one entry holds.
const MAX_PARAMETERS: usize = 32;

impl ApprovalProofs {
    /// Checks the `presence` of `ev`, when it has one (any event kind may: the operation's
    /// first event, or its refusal, records it).
    pub(super) fn presence(&mut self, ev: &StoredEvent) -> Result<(), ApprovalFailure> {
        // Most events have none: look before parsing.
        if !contains(ev.body.as_bytes(), b"\"presence\"") {
            return Ok(());
        }
        let seq = ev.header.seq;
        let body = ev.body.to_value();
        let Some(list) = body.get("presence") else {
            return Ok(());
        };
        let record = |detail: String| fail(seq, ApprovalCheck::PresenceRecord, detail);
        let entries = list
            .as_array()
            .filter(|l| !l.is_empty() && l.len() <= MAX_ENTRIES)
            .ok_or_else(|| {
                record(format!(
                    "\"presence\" is not a list of 1 to {MAX_ENTRIES} officers' proofs"
                ))
            })?;
        for entry in entries {
            self.presence_entry(seq, entry)?;
        }
        Ok(())
    }

    fn presence_entry(&mut self, seq: u64, entry: &Value) -> Result<(), ApprovalFailure> {
        let record = |detail: String| fail(seq, ApprovalCheck::PresenceRecord, detail);
        let officer = str_field(entry, "officer").map_err(record)?;
        let operation = str_field(entry, "operation").map_err(record)?;
        let key_id = str_field(entry, "key_id").map_err(record)?;
        let nonce = str_field(entry, "nonce").map_err(record)?;
        let digest = str_field(entry, "digest").map_err(record)?;
        let signature = base64_field(entry, "signature").map_err(record)?;
        let parameters = parameters(entry).map_err(record)?;
        nonce_form(&nonce).map_err(record)?;
        let computed = operation_digest(&operation, &parameters);
        if computed != digest {
            return Err(fail(
                seq,
                ApprovalCheck::PresenceDigest,
                format!("{officer}'s presence at {operation} records digest {digest}; its recorded parameters give {computed}"),
            ));
        }
        let what = format!("presence at {operation}");
        let Some(key) = standing_key(
            &self.keys,
            self.registration_stubs,
            seq,
            &officer,
            &key_id,
            &what,
        )?
        else {
            self.summary.unchecked += 1;
            return Ok(());
        };
        let message = signed_presence_message(&digest, &officer, &key_id, &nonce);
        let public = ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_ASN1,
            &key.point,
        );
        if public.verify(&message, &signature).is_err() {
            return Err(fail(
                seq,
                ApprovalCheck::PresenceSignature,
                format!("{officer}'s signature at {operation} does not verify with key {key_id} (YubiKey {})", key.serial),
            ));
        }
        let removal_unknown = self.removal_stubs > key.removal_stubs_then;
        if !self.nonces.insert(nonce.clone()) {
            return Err(fail(
                seq,
                ApprovalCheck::NonceReused,
                format!("nonce {nonce} of {officer}'s presence at {operation} was used before"),
            ));
        }
        if removal_unknown {
            self.summary.unchecked += 1;
        } else {
            self.summary.presence_signed += 1;
        }
        Ok(())
    }
}

/// The `parameters` of an entry: a list of [name, value] string pairs.
fn parameters(entry: &Value) -> Result<Vec<(String, String)>, String> {
    let bad = || {
        format!(
            "\"parameters\" is not a list of at most {MAX_PARAMETERS} [name, value] string pairs"
        )
    };
    let list = entry
        .get("parameters")
        .and_then(Value::as_array)
        .filter(|l| l.len() <= MAX_PARAMETERS)
        .ok_or_else(bad)?;
    list.iter()
        .map(|pair| match pair.as_array().map(Vec::as_slice) {
            Some([Value::String(k), Value::String(v)]) => Ok((k.clone(), v.clone())),
            _ => Err(bad()),
        })
        .collect()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}
