//! [`PivSession`]: the PIV instructions custody needs, over any [`CardTransport`]. Every card
//! answer goes through the pure parsers of [`super::codec`]; a refusal keeps its status word
//! ([`TokenError::Refused`]), a malformed answer names the instruction ([`TokenError::Malformed`]).

use std::fmt;

use ring::rand::{SecureRandom, SystemRandom};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::codec::{self, ins, PinPolicy, PivError, TouchPolicy, P256_POINT_LEN};
use super::key::{ManagementAlgorithm, ManagementKey};
use crate::token::apdu::{Command, Response};
use crate::token::error::TokenError;
use crate::token::transport::{transact, CardTransport};

/// The PIV applet, selected, with the firmware version it reported.
pub struct PivSession<T: CardTransport> {
    transport: T,
    version: [u8; 3],
}

impl<T: CardTransport> fmt::Debug for PivSession<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PivSession")
            .field("reader", &self.transport.reader())
            .field("version", &self.version)
            .finish()
    }
}

fn malformed<T: CardTransport + ?Sized>(transport: &T, ins: u8, what: impl ToString) -> TokenError {
    TokenError::Malformed {
        reader: transport.reader().to_owned(),
        ins,
        what: what.to_string(),
    }
}

impl<T: CardTransport> PivSession<T> {
    /// Selects the PIV applet and reads its version (GET VERSION).
    pub fn select(mut transport: T) -> Result<Self, TokenError> {
        transact(&mut transport, &codec::select(), ins::GET_RESPONSE)?;
        let answer = transact(&mut transport, &codec::get_version(), ins::GET_RESPONSE)?;
        let version = codec::parse_version(&answer.data)
            .map_err(|e| malformed(&transport, ins::GET_VERSION, e))?;
        Ok(Self { transport, version })
    }

    /// The applet's (the firmware's) version.
    pub fn version(&self) -> [u8; 3] {
        self.version
    }

    /// The transport back.
    pub fn into_transport(self) -> T {
        self.transport
    }

    fn send(&mut self, command: &Command) -> Result<Response, TokenError> {
        transact(&mut self.transport, command, ins::GET_RESPONSE)
    }

    fn parsed<V>(&self, ins: u8, parsed: Result<V, PivError>) -> Result<V, TokenError> {
        parsed.map_err(|e| malformed(&self.transport, ins, e))
    }

    /// The management key's algorithm: read with GET METADATA from firmware 5.3; 3DES, the
    /// only one before 5.4, on older firmware.
    pub fn management_algorithm(&mut self) -> Result<ManagementAlgorithm, TokenError> {
        if self.version < [5, 3, 0] {
            return Ok(ManagementAlgorithm::TripleDes);
        }
        let answer = self.send(&codec::get_metadata(codec::SLOT_MANAGEMENT))?;
        let byte = self.parsed(
            ins::GET_METADATA,
            codec::parse_metadata_algorithm(&answer.data),
        )?;
        self.parsed(ins::GET_METADATA, ManagementAlgorithm::from_byte(byte))
    }

    /// Mutual authentication with the management key (SP 800-73-4 part 2, appendix A.2): the
    /// card's witness decrypted proves the host holds the key; the card's encryption of a
    /// fresh host challenge proves the card does. A card that fails the second proof is
    /// [`TokenError::Malformed`]: it is not the card the key was set on.
    pub fn authenticate(&mut self, key: &ManagementKey) -> Result<(), TokenError> {
        let algorithm = key.algorithm().to_byte();
        let block = key.algorithm().block_len();
        let answer = self.send(&codec::authenticate_witness(algorithm))?;
        let sealed = self.parsed(ins::AUTHENTICATE, codec::parse_witness(&answer.data, block))?;
        let witness = key.decrypt(sealed);
        let mut challenge = Zeroizing::new(vec![0u8; block]);
        SystemRandom::new().fill(&mut challenge).map_err(|_| {
            malformed(
                &self.transport,
                ins::AUTHENTICATE,
                "the system random generator failed; no host challenge",
            )
        })?;
        let answer = self.send(&codec::authenticate_response(
            algorithm, &witness, &challenge,
        ))?;
        let proof = self.parsed(
            ins::AUTHENTICATE,
            codec::parse_card_response(&answer.data, block),
        )?;
        if bool::from(key.encrypt(&challenge).as_slice().ct_eq(proof)) {
            Ok(())
        } else {
            Err(malformed(
                &self.transport,
                ins::AUTHENTICATE,
                "the card's answer to the host challenge does not prove the management key",
            ))
        }
    }

    /// VERIFY the PIV PIN. A wrong PIN is [`TokenError::Refused`] with
    /// [`StatusWord::TriesLeft`](crate::token::apdu::StatusWord::TriesLeft) (the tries left), a
    /// blocked one with `AuthMethodBlocked`; neither carries the PIN.
    pub fn verify_pin(&mut self, pin: &super::Pin) -> Result<(), TokenError> {
        self.send(&codec::verify_pin(pin))?;
        Ok(())
    }

    /// SET MANAGEMENT KEY to `key` (no touch). Needs [`authenticate`](Self::authenticate).
    pub fn set_management_key(&mut self, key: &ManagementKey) -> Result<(), TokenError> {
        self.send(&codec::set_management_key(
            key.algorithm().to_byte(),
            key.expose(),
        ))?;
        Ok(())
    }

    /// GENERATE a P-256 key in `slot` with these policies; returns its uncompressed public
    /// point. Needs [`authenticate`](Self::authenticate).
    pub fn generate_p256(
        &mut self,
        slot: u8,
        pin: PinPolicy,
        touch: TouchPolicy,
    ) -> Result<[u8; P256_POINT_LEN], TokenError> {
        let answer = self.send(&codec::generate_p256(slot, pin, touch))?;
        self.parsed(ins::GENERATE, codec::parse_generated_p256(&answer.data))
    }

    /// ATTEST `slot`: the DER certificate the F9 key signed for the slot's key.
    pub fn attest(&mut self, slot: u8) -> Result<Vec<u8>, TokenError> {
        let answer = self.send(&codec::attest(slot))?;
        if answer.data.is_empty() {
            return Err(malformed(
                &self.transport,
                ins::ATTEST,
                "ATTEST answered no certificate",
            ));
        }
        Ok(answer.data.to_vec())
    }

    /// GET DATA of the F9 attestation certificate (the device certificate): DER.
    pub fn attestation_certificate(&mut self) -> Result<Vec<u8>, TokenError> {
        let answer = self.send(&codec::get_attestation_certificate())?;
        let cert = self.parsed(ins::GET_DATA, codec::parse_certificate_object(&answer.data))?;
        Ok(cert.to_vec())
    }

    /// Signs a SHA-256 `digest` with the P-256 key in `slot`; the DER ECDSA signature.
    pub fn sign_p256(&mut self, slot: u8, digest: &[u8; 32]) -> Result<Vec<u8>, TokenError> {
        let answer = self.send(&codec::sign_p256(slot, digest))?;
        let sig = self.parsed(ins::AUTHENTICATE, codec::parse_signature(&answer.data))?;
        Ok(sig.to_vec())
    }
}
