//! Every PIV client parser on arbitrary card answers, and a whole custody provisioning (SELECT,
//! mutual authentication, SET MANAGEMENT KEY, GENERATE, ATTEST, GET DATA, sign, a challenge
//! checked against the input as SPKI) against a card
//! whose answers are the input: errors are fine, panics are not.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mfa_custody::token::piv::{self, ManagementAlgorithm, ManagementKey, PivSession};
use mfa_custody::token::{CardTransport, TransportError};
use zeroize::Zeroizing;

/// A card that answers each command with the next length-prefixed (two bytes, big-endian)
/// piece of the input, then `6A82`.
struct Scripted<'a>(&'a [u8]);

impl CardTransport for Scripted<'_> {
    fn transmit(&mut self, _command: &[u8]) -> Result<Zeroizing<Vec<u8>>, TransportError> {
        let answer = match self.0 {
            [hi, lo, rest @ ..] => {
                let n = usize::from(u16::from_be_bytes([*hi, *lo])).min(rest.len());
                let (answer, rest) = rest.split_at(n);
                self.0 = rest;
                answer.to_vec()
            }
            _ => vec![0x6A, 0x82],
        };
        Ok(Zeroizing::new(answer))
    }

    fn reader(&self) -> &str {
        "fuzz"
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = piv::parse_version(data);
    let _ = piv::parse_metadata_algorithm(data);
    let _ = piv::parse_witness(data, 8);
    let _ = piv::parse_witness(data, 16);
    let _ = piv::parse_card_response(data, 16);
    let _ = piv::parse_generated_p256(data);
    let _ = piv::parse_certificate_object(data);
    let _ = piv::parse_signature(data);

    let Ok(mut session) = PivSession::select(Scripted(data)) else {
        return;
    };
    let algorithm = session
        .management_algorithm()
        .unwrap_or(ManagementAlgorithm::TripleDes);
    if let Ok(key) = ManagementKey::factory_default(algorithm) {
        let _ = session.authenticate(&key);
        let _ = session.set_management_key(&key);
    }
    let _ = session.generate_p256(piv::SLOT_CUSTODY, piv::PinPolicy::Never, piv::TouchPolicy::Never);
    let _ = session.attest(piv::SLOT_CUSTODY);
    let _ = session.attestation_certificate();
    let _ = session.sign_p256(piv::SLOT_CUSTODY, &[0; 32]);
    let _ = piv::challenge(&mut session, 1, data, &[0; 32]);
});
