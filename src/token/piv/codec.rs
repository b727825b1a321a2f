//! PIV command builders and answer parsers: pure, no I/O. Every parser takes the data of a
//! `9000` answer (bytes from a card, so from outside) and returns a typed value or a
//! [`PivError`] naming what was wrong.

use zeroize::Zeroizing;

use crate::token::apdu::Command;
use crate::token::tlv;

/// The PIV AID with Yubico's version suffix, as ykman and yubico-piv-tool select it.
pub const AID: [u8; 11] = [
    0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00,
];
/// The slot reserved for the custody key (see the [module docs](super)).
pub const SLOT_CUSTODY: u8 = 0x9E;
/// The slot of an officer's approval key (digital signature, PIN always by default; here
/// generated with PIN policy once and touch always, see [`super::signing`]).
pub const SLOT_SIGNATURE: u8 = 0x9C;
/// The PIV PIN's key reference (SP 800-73-4 part 2, table 5).
pub const REF_PIN: u8 = 0x80;
/// The management key's reference.
pub const SLOT_MANAGEMENT: u8 = 0x9B;
/// The attestation key's slot.
pub const SLOT_ATTESTATION: u8 = 0xF9;
/// The F9 attestation certificate's object id (Yubico, "PIV attestation").
pub const OBJECT_ATTESTATION: [u8; 3] = [0x5F, 0xFF, 0x01];
/// The first firmware whose PIV applet attests its keys (ATTEST, F9 key and certificate):
/// YubiKey .NET SDK user's manual, "PIV attestation statements": "Attestation was added as a
/// feature in version 4.3 of the YubiKey, so will not be available on earlier models".
pub const FIRST_ATTESTING_FIRMWARE: [u8; 3] = [4, 3, 0];
/// Algorithm byte of ECC P-256 keys (SP 800-78-4, table 6-2).
pub const ALG_ECCP256: u8 = 0x11;
/// A P-256 public point, uncompressed (`04 x y`).
pub const P256_POINT_LEN: usize = 65;

/// PIV instructions the client sends.
pub mod ins {
    /// SELECT.
    pub const SELECT: u8 = 0xA4;
    /// VERIFY.
    pub const VERIFY: u8 = 0x20;
    /// GENERATE ASYMMETRIC KEY PAIR.
    pub const GENERATE: u8 = 0x47;
    /// GENERAL AUTHENTICATE.
    pub const AUTHENTICATE: u8 = 0x87;
    /// GET DATA.
    pub const GET_DATA: u8 = 0xCB;
    /// GET RESPONSE (follows `61xx`).
    pub const GET_RESPONSE: u8 = 0xC0;
    /// GET METADATA (YubiKey 5.3 and later).
    pub const GET_METADATA: u8 = 0xF7;
    /// ATTEST (YubiKey 4.3 and later).
    pub const ATTEST: u8 = 0xF9;
    /// GET VERSION (YubiKey).
    pub const GET_VERSION: u8 = 0xFD;
    /// SET MANAGEMENT KEY (YubiKey).
    pub const SET_MANAGEMENT_KEY: u8 = 0xFF;
}

pub use crate::token::attestation::{PinPolicy, TouchPolicy};

/// Why a PIV answer could not be read. Each variant names the instruction's answer and what
/// was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PivError {
    /// The answer is not the TLV structure the instruction answers.
    #[error("{answer}: not valid TLV: {source}")]
    Tlv {
        /// Which answer.
        answer: &'static str,
        /// The TLV failure.
        #[source]
        source: tlv::TlvError,
    },
    /// An expected tag is missing (or the answer holds something else).
    #[error("{answer}: expected tag {tag:02X}, it is not there")]
    MissingTag {
        /// Which answer.
        answer: &'static str,
        /// The tag expected.
        tag: u8,
    },
    /// A value has the wrong length.
    #[error("{answer}: tag {tag:02X} holds {got} bytes, expected {expected}")]
    Length {
        /// Which answer.
        answer: &'static str,
        /// The tag.
        tag: u8,
        /// Bytes expected.
        expected: usize,
        /// Bytes found.
        got: usize,
    },
    /// A P-256 public point that is not uncompressed (`04 x y`).
    #[error("GENERATE answer: the public key is not an uncompressed P-256 point")]
    NotUncompressed,
    /// A management-key algorithm this client does not know.
    #[error("GET METADATA answer: management key algorithm {0:02X} is not 3DES or AES")]
    UnknownAlgorithm(u8),
}

fn tlvs<'a>(answer: &'static str, data: &'a [u8]) -> Result<Vec<tlv::Tlv<'a>>, PivError> {
    tlv::parse(data).map_err(|source| PivError::Tlv { answer, source })
}

/// The value of the only TLV of `data`, which must have `tag`.
fn only<'a>(answer: &'static str, data: &'a [u8], tag: u8) -> Result<&'a [u8], PivError> {
    match tlvs(answer, data)?.as_slice() {
        [t] if t.tag == tag => Ok(t.value),
        _ => Err(PivError::MissingTag { answer, tag }),
    }
}

fn find<'a>(answer: &'static str, tags: &[tlv::Tlv<'a>], tag: u8) -> Result<&'a [u8], PivError> {
    tlv::find(tags, tag).ok_or(PivError::MissingTag { answer, tag })
}

fn template(tag: u8, inner: &[(u8, &[u8])]) -> Zeroizing<Vec<u8>> {
    let mut body = Zeroizing::new(Vec::new());
    for (t, v) in inner {
        // Values here are at most a digest, a block or a key: far below 65535 bytes.
        let _ = tlv::write(&mut body, *t, v);
    }
    let mut out = Zeroizing::new(Vec::with_capacity(body.len() + 4));
    let _ = tlv::write(&mut out, tag, &body);
    out
}

/// SELECT of the PIV applet.
pub fn select() -> Command {
    Command::new(0x00, ins::SELECT, 0x04, 0x00).with_data(AID.to_vec())
}

/// VERIFY of the PIV PIN (`20 00 80`, the PIN padded to 8 with `FF`; SP 800-73-4 part 2,
/// 3.2.1); sensitive.
pub fn verify_pin(pin: &super::Pin) -> Command {
    Command::new(0x00, ins::VERIFY, 0x00, REF_PIN).with_secret_data(pin.padded())
}

/// GET VERSION.
pub fn get_version() -> Command {
    Command::new(0x00, ins::GET_VERSION, 0x00, 0x00)
}

/// Parses GET VERSION's answer: three bytes, major, minor, patch.
pub fn parse_version(data: &[u8]) -> Result<[u8; 3], PivError> {
    data.try_into().map_err(|_| PivError::Length {
        answer: "GET VERSION answer",
        tag: 0x00,
        expected: 3,
        got: data.len(),
    })
}

/// GET METADATA of `reference` (`F7 00 <ref>`).
pub fn get_metadata(reference: u8) -> Command {
    Command::new(0x00, ins::GET_METADATA, 0x00, reference)
}

/// Parses GET METADATA's answer and returns its algorithm (tag `01`).
pub fn parse_metadata_algorithm(data: &[u8]) -> Result<u8, PivError> {
    const ANSWER: &str = "GET METADATA answer";
    let tags = tlvs(ANSWER, data)?;
    match find(ANSWER, &tags, 0x01)? {
        [a] => Ok(*a),
        v => Err(PivError::Length {
            answer: ANSWER,
            tag: 0x01,
            expected: 1,
            got: v.len(),
        }),
    }
}

/// GENERAL AUTHENTICATE of the management key, first step: asks the card for a witness.
pub fn authenticate_witness(algorithm: u8) -> Command {
    Command::new(0x00, ins::AUTHENTICATE, algorithm, SLOT_MANAGEMENT)
        .with_data(template(0x7C, &[(0x80, &[])]).to_vec())
}

/// Parses the first step's answer `7C { 80 E(W) }`: the encrypted witness, one block long.
pub fn parse_witness(data: &[u8], block_len: usize) -> Result<&[u8], PivError> {
    dynamic("GENERAL AUTHENTICATE witness", data, 0x80, Some(block_len))
}

/// GENERAL AUTHENTICATE of the management key, second step: the decrypted witness and the
/// host's challenge. The witness proves the key, so the command is sensitive.
pub fn authenticate_response(algorithm: u8, witness: &[u8], challenge: &[u8]) -> Command {
    Command::new(0x00, ins::AUTHENTICATE, algorithm, SLOT_MANAGEMENT)
        .with_secret_data(template(0x7C, &[(0x80, witness), (0x81, challenge)]))
}

/// Parses the second step's answer `7C { 82 E(C) }`: the card's encryption of the challenge.
pub fn parse_card_response(data: &[u8], block_len: usize) -> Result<&[u8], PivError> {
    dynamic("GENERAL AUTHENTICATE response", data, 0x82, Some(block_len))
}

fn dynamic<'a>(
    answer: &'static str,
    data: &'a [u8],
    tag: u8,
    len: Option<usize>,
) -> Result<&'a [u8], PivError> {
    let inner = tlvs(answer, only(answer, data, 0x7C)?)?;
    let value = find(answer, &inner, tag)?;
    match len {
        Some(expected) if value.len() != expected => Err(PivError::Length {
            answer,
            tag,
            expected,
            got: value.len(),
        }),
        _ => Ok(value),
    }
}

/// SET MANAGEMENT KEY (`FF FF FF`, no touch): `<alg> 9B <len> <key>`; sensitive.
pub fn set_management_key(algorithm: u8, key: &[u8]) -> Command {
    let mut data = Zeroizing::new(Vec::with_capacity(key.len() + 3));
    data.extend_from_slice(&[
        algorithm,
        SLOT_MANAGEMENT,
        u8::try_from(key.len()).unwrap_or(u8::MAX),
    ]);
    data.extend_from_slice(key);
    Command::new(0x00, ins::SET_MANAGEMENT_KEY, 0xFF, 0xFF).with_secret_data(data)
}

/// GENERATE ASYMMETRIC KEY PAIR of a P-256 key in `slot` with these policies.
pub fn generate_p256(slot: u8, pin: PinPolicy, touch: TouchPolicy) -> Command {
    let data = template(
        0xAC,
        &[
            (0x80, &[ALG_ECCP256]),
            (0xAA, &[pin.to_byte()]),
            (0xAB, &[touch.to_byte()]),
        ],
    );
    Command::new(0x00, ins::GENERATE, 0x00, slot).with_data(data.to_vec())
}

/// Parses GENERATE's answer `7F49 { 86 <point> }`: the uncompressed P-256 point.
pub fn parse_generated_p256(data: &[u8]) -> Result<[u8; P256_POINT_LEN], PivError> {
    const ANSWER: &str = "GENERATE answer";
    // `7F49` is a two-byte tag; the TLV codec reads one-byte tags, so `7F` is taken first.
    let rest = match data {
        [0x7F, rest @ ..] => rest,
        _ => {
            return Err(PivError::MissingTag {
                answer: ANSWER,
                tag: 0x7F,
            })
        }
    };
    let inner = tlvs(ANSWER, only(ANSWER, rest, 0x49)?)?;
    let point = find(ANSWER, &inner, 0x86)?;
    let point: [u8; P256_POINT_LEN] = point.try_into().map_err(|_| PivError::Length {
        answer: ANSWER,
        tag: 0x86,
        expected: P256_POINT_LEN,
        got: point.len(),
    })?;
    if point[0] != 0x04 {
        return Err(PivError::NotUncompressed);
    }
    Ok(point)
}

/// ATTEST (`F9 <slot> 00`): the answer is the slot's attestation certificate, DER.
pub fn attest(slot: u8) -> Command {
    Command::new(0x00, ins::ATTEST, slot, 0x00).with_le(256)
}

/// GET DATA of the F9 attestation certificate object.
pub fn get_attestation_certificate() -> Command {
    let mut data = Vec::new();
    let _ = tlv::write(&mut data, 0x5C, &OBJECT_ATTESTATION);
    Command::new(0x00, ins::GET_DATA, 0x3F, 0xFF)
        .with_data(data)
        .with_le(256)
}

/// Parses a certificate object as GET DATA answers it, `53 { 70 <cert>, [71 <info>], [FE] }`,
/// and returns the certificate's DER.
pub fn parse_certificate_object(data: &[u8]) -> Result<&[u8], PivError> {
    const ANSWER: &str = "GET DATA answer";
    let inner = tlvs(ANSWER, only(ANSWER, data, 0x53)?)?;
    let cert = find(ANSWER, &inner, 0x70)?;
    if cert.is_empty() {
        return Err(PivError::Length {
            answer: ANSWER,
            tag: 0x70,
            expected: 1,
            got: 0,
        });
    }
    Ok(cert)
}

/// GENERAL AUTHENTICATE signing a SHA-256 `digest` with the P-256 key in `slot`:
/// `7C { 82 00, 81 <digest> }` (SP 800-73-4 part 2, appendix A.4).
pub fn sign_p256(slot: u8, digest: &[u8; 32]) -> Command {
    Command::new(0x00, ins::AUTHENTICATE, ALG_ECCP256, slot)
        .with_data(template(0x7C, &[(0x82, &[]), (0x81, digest)]).to_vec())
        .with_le(256)
}

/// Parses a signature answer `7C { 82 <DER ECDSA signature> }`.
pub fn parse_signature(data: &[u8]) -> Result<&[u8], PivError> {
    let sig = dynamic("GENERAL AUTHENTICATE signature", data, 0x82, None)?;
    if sig.is_empty() {
        return Err(PivError::Length {
            answer: "GENERAL AUTHENTICATE signature",
            tag: 0x82,
            expected: 8,
            got: 0,
        });
    }
    Ok(sig)
}
