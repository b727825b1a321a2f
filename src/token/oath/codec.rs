//! The YKOATH codec: for every instruction a builder that returns a [`Command`] and a parser
//! that turns the card's answer into typed values, and for the software YubiKey in
//! [`crate::emulator`] the matching encoders and request decoders, so both sides share one
//! definition of the wire format. Nothing here does I/O.

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::*;
use crate::token::apdu::Command;
use crate::token::tlv;

fn tlvs<'a>(message: &'static str, bytes: &'a [u8]) -> Result<Vec<tlv::Tlv<'a>>, OathError> {
    tlv::parse(bytes).map_err(|source| OathError::Tlv { message, source })
}

fn required<'a>(
    message: &'static str,
    items: &[tlv::Tlv<'a>],
    tag: u8,
) -> Result<&'a [u8], OathError> {
    tlv::find(items, tag).ok_or(OathError::MissingTag { message, tag })
}

fn fixed<const N: usize>(
    message: &'static str,
    field: &'static str,
    expected: &'static str,
    value: &[u8],
) -> Result<[u8; N], OathError> {
    <[u8; N]>::try_from(value).map_err(|_| OathError::BadLength {
        message,
        field,
        expected,
        got: value.len(),
    })
}

fn push_tlv(out: &mut Vec<u8>, tag: u8, value: &[u8]) {
    // Every value written here is bounded far below the TLV limit of 65 535 bytes (names ≤ 64,
    // keys ≤ a few hundred, digests ≤ 64); a longer one would be a bug in this module.
    if tlv::write(out, tag, value).is_err() {
        debug_assert!(false, "TLV value of {} bytes", value.len());
    }
}
// SELECT

/// What SELECT tells about the applet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectInfo {
    /// Applet version.
    pub version: Version,
    /// The salt of the access key derivation, stable until RESET.
    pub salt: [u8; 8],
    /// The challenge to answer with VALIDATE, present when an access key is set.
    pub challenge: Option<[u8; 8]>,
    /// The access key's hash, when an access key is set.
    pub algorithm: Option<HashAlgorithm>,
}

impl SelectInfo {
    /// True when an access key is set: VALIDATE is needed before anything else.
    pub fn locked(&self) -> bool {
        self.challenge.is_some()
    }

    /// The device id shown to users: base64 of the first 16 bytes of SHA-256(salt), unpadded.
    pub fn device_id(&self) -> String {
        device_id(&self.salt)
    }

    /// Encodes the SELECT answer (for the applet).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32);
        push_tlv(&mut out, tag::VERSION, &self.version.to_bytes());
        push_tlv(&mut out, tag::NAME, &self.salt);
        if let Some(challenge) = &self.challenge {
            push_tlv(&mut out, tag::CHALLENGE, challenge);
            let alg = self.algorithm.unwrap_or(HashAlgorithm::Sha1);
            push_tlv(&mut out, tag::ALGORITHM, &[type_byte(OathType::Totp, alg)]);
        }
        out
    }
}

/// The device id of an applet whose salt is `salt`.
pub fn device_id(salt: &[u8; 8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, salt);
    let head = digest.as_ref().get(..16).unwrap_or_default();
    data_encoding::BASE64_NOPAD.encode(head)
}

/// `00 A4 04 00 07 <AID>`.
pub fn select() -> Command {
    Command::new(0x00, ins::SELECT, 0x04, 0x00).with_data(AID.to_vec())
}

/// Parses the answer to SELECT.
pub fn parse_select(data: &[u8]) -> Result<SelectInfo, OathError> {
    const M: &str = "SELECT";
    let items = tlvs(M, data)?;
    let version = fixed::<3>(M, "version", "3", required(M, &items, tag::VERSION)?)?;
    let salt = fixed::<8>(M, "salt", "8", required(M, &items, tag::NAME)?)?;
    let challenge = tlv::find(&items, tag::CHALLENGE)
        .map(|c| fixed::<8>(M, "challenge", "8", c))
        .transpose()?;
    let algorithm = match tlv::find(&items, tag::ALGORITHM) {
        Some(&[b]) => Some(HashAlgorithm::from_byte(b)?),
        Some(other) => {
            return Err(OathError::BadLength {
                message: M,
                field: "algorithm",
                expected: "1",
                got: other.len(),
            })
        }
        None => challenge.map(|_| HashAlgorithm::Sha1),
    };
    Ok(SelectInfo {
        version: version.into(),
        salt,
        challenge,
        algorithm,
    })
}

// Access key: SET CODE, VALIDATE

/// SET CODE with `key`: the key, a host `challenge` and the key's answer to it (so the applet
/// can check both sides compute the same HMAC). Carries the key: built as secret data.
pub fn set_code(key: &AccessKey, challenge: &[u8; 8]) -> Command {
    let mut data = Zeroizing::new(Vec::with_capacity(2 + 17 + 10 + 22));
    let mut key_field = Zeroizing::new(Vec::with_capacity(17));
    key_field.push(type_byte(OathType::Totp, HashAlgorithm::Sha1));
    key_field.extend_from_slice(key.expose());
    push_tlv(&mut data, tag::KEY, &key_field);
    push_tlv(&mut data, tag::CHALLENGE, challenge);
    push_tlv(
        &mut data,
        tag::RESPONSE,
        &key.respond(HashAlgorithm::Sha1, challenge),
    );
    Command::new(0x00, ins::SET_CODE, 0x00, 0x00).with_secret_data(data)
}

/// SET CODE with an empty key: removes the access key.
pub fn unset_code() -> Command {
    Command::new(0x00, ins::SET_CODE, 0x00, 0x00).with_data(vec![tag::KEY, 0x00])
}

/// A decoded SET CODE request (for the applet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetCodeRequest {
    /// Remove the access key.
    Remove,
    /// Set a new key, proven by `response` = HMAC(key, challenge).
    Set {
        /// The key's hash.
        algorithm: HashAlgorithm,
        /// The key bytes.
        key: OathSecret,
        /// The host's challenge.
        challenge: Vec<u8>,
        /// The host's HMAC of the challenge.
        response: OathSecret,
    },
}

impl SetCodeRequest {
    /// Decodes SET CODE data.
    pub fn decode(data: &[u8]) -> Result<Self, OathError> {
        const M: &str = "SET CODE";
        let items = tlvs(M, data)?;
        let key = required(M, &items, tag::KEY)?;
        let Some((&type_alg, key_bytes)) = key.split_first() else {
            return Ok(Self::Remove);
        };
        let algorithm = HashAlgorithm::from_byte(type_alg)?;
        if key_bytes.is_empty() {
            return Err(OathError::BadLength {
                message: M,
                field: "key",
                expected: "at least 1",
                got: 0,
            });
        }
        let challenge = required(M, &items, tag::CHALLENGE)?;
        let response = required(M, &items, tag::RESPONSE)?;
        Ok(Self::Set {
            algorithm,
            key: OathSecret::from_bytes(Zeroizing::new(key_bytes.to_vec())),
            challenge: challenge.to_vec(),
            response: OathSecret::from_bytes(Zeroizing::new(response.to_vec())),
        })
    }
}

/// VALIDATE: the answer to the card's SELECT `challenge` under `key`, and a fresh host challenge
/// the card must answer in turn.
pub fn validate(
    key: &AccessKey,
    algorithm: HashAlgorithm,
    card_challenge: &[u8],
    host_challenge: &[u8; 8],
) -> Command {
    let mut data = Zeroizing::new(Vec::with_capacity(2 + 64 + 10));
    push_tlv(
        &mut data,
        tag::RESPONSE,
        &key.respond(algorithm, card_challenge),
    );
    push_tlv(&mut data, tag::CHALLENGE, host_challenge);
    Command::new(0x00, ins::VALIDATE, 0x00, 0x00).with_secret_data(data)
}

/// Checks, in constant time, the card's answer to VALIDATE: `75 <HMAC(key, host challenge)>`.
pub fn verify_validate(
    key: &AccessKey,
    algorithm: HashAlgorithm,
    host_challenge: &[u8; 8],
    data: &[u8],
) -> Result<(), OathError> {
    const M: &str = "VALIDATE";
    let items = tlvs(M, data)?;
    let got = required(M, &items, tag::RESPONSE)?;
    let expected = key.respond(algorithm, host_challenge);
    if bool::from(got.ct_eq(expected.as_slice())) {
        Ok(())
    } else {
        Err(OathError::CardAuthFailed)
    }
}

/// A decoded VALIDATE request (for the applet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidateRequest {
    /// The host's answer to the SELECT challenge.
    pub response: OathSecret,
    /// The host's challenge.
    pub challenge: Vec<u8>,
}

impl ValidateRequest {
    /// Decodes VALIDATE data.
    pub fn decode(data: &[u8]) -> Result<Self, OathError> {
        const M: &str = "VALIDATE";
        let items = tlvs(M, data)?;
        Ok(Self {
            response: OathSecret::from_bytes(Zeroizing::new(
                required(M, &items, tag::RESPONSE)?.to_vec(),
            )),
            challenge: required(M, &items, tag::CHALLENGE)?.to_vec(),
        })
    }
}

/// Encodes the applet's VALIDATE answer.
pub fn encode_validate_response(response: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(response.len() + 2));
    push_tlv(&mut out, tag::RESPONSE, response);
    out
}

// RESET, DELETE, RENAME, LIST

/// `00 04 DE AD`.
pub fn reset() -> Command {
    Command::new(0x00, ins::RESET, 0xDE, 0xAD)
}

/// DELETE `name`.
pub fn delete(name: &CredentialName) -> Command {
    let mut data = Vec::with_capacity(name.as_bytes().len() + 2);
    push_tlv(&mut data, tag::NAME, name.as_bytes());
    Command::new(0x00, ins::DELETE, 0x00, 0x00).with_data(data)
}

/// RENAME `old` to `new`.
pub fn rename(old: &CredentialName, new: &CredentialName) -> Command {
    let mut data = Vec::with_capacity(old.as_bytes().len() + new.as_bytes().len() + 4);
    push_tlv(&mut data, tag::NAME, old.as_bytes());
    push_tlv(&mut data, tag::NAME, new.as_bytes());
    Command::new(0x00, ins::RENAME, 0x00, 0x00).with_data(data)
}

/// Decodes the data of a request that names credentials: DELETE (one name), RENAME (two).
/// Any other tag is refused.
pub fn decode_names(message: &'static str, data: &[u8]) -> Result<Vec<CredentialName>, OathError> {
    tlvs(message, data)?
        .into_iter()
        .map(|t| {
            if t.tag == tag::NAME {
                CredentialName::from_bytes(t.value)
            } else {
                Err(OathError::UnexpectedTag {
                    message,
                    tag: t.tag,
                })
            }
        })
        .collect()
}

/// `00 A1 00 00`.
pub fn list() -> Command {
    Command::new(0x00, ins::LIST, 0x00, 0x00)
}

/// One LIST entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListEntry {
    /// The credential's name.
    pub name: CredentialName,
    /// HOTP or TOTP.
    pub oath_type: OathType,
    /// The hash.
    pub algorithm: HashAlgorithm,
}

/// Encodes LIST entries (for the applet): `72 <len+1> <type|alg> <name>` each.
pub fn encode_list(entries: &[ListEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * 24);
    for e in entries {
        let mut value = Vec::with_capacity(e.name.as_bytes().len() + 1);
        value.push(type_byte(e.oath_type, e.algorithm));
        value.extend_from_slice(e.name.as_bytes());
        push_tlv(&mut out, tag::NAME_LIST, &value);
    }
    out
}

/// Parses the answer to LIST.
pub fn parse_list(data: &[u8]) -> Result<Vec<ListEntry>, OathError> {
    const M: &str = "LIST";
    tlvs(M, data)?
        .into_iter()
        .map(|t| {
            if t.tag != tag::NAME_LIST {
                return Err(OathError::UnexpectedTag {
                    message: M,
                    tag: t.tag,
                });
            }
            let Some((&type_alg, name)) = t.value.split_first() else {
                return Err(OathError::BadLength {
                    message: M,
                    field: "entry",
                    expected: "at least 2",
                    got: 0,
                });
            };
            Ok(ListEntry {
                name: CredentialName::from_bytes(name)?,
                oath_type: OathType::from_byte(type_alg)?,
                algorithm: HashAlgorithm::from_byte(type_alg)?,
            })
        })
        .collect()
}

// PUT

/// A credential to store with PUT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutRequest {
    /// The name (`[<period>/][<issuer>:]<account>`).
    pub name: CredentialName,
    /// HOTP or TOTP.
    pub oath_type: OathType,
    /// The hash.
    pub algorithm: HashAlgorithm,
    /// Digits of the codes.
    pub digits: Digits,
    /// The seed.
    pub secret: OathSecret,
    /// Require a touch for every code.
    pub touch: bool,
    /// Only accept increasing challenges.
    pub increasing: bool,
    /// HOTP initial counter (sent as IMF when non-zero).
    pub counter: u32,
}

impl PutRequest {
    /// A TOTP credential with the usual settings: SHA-1, 6 digits, no touch.
    pub fn totp(name: CredentialName, secret: OathSecret) -> Self {
        Self {
            name,
            oath_type: OathType::Totp,
            algorithm: HashAlgorithm::Sha1,
            digits: Digits::SIX,
            secret,
            touch: false,
            increasing: false,
            counter: 0,
        }
    }

    /// The property byte.
    pub fn properties(&self) -> u8 {
        let mut p = 0;
        if self.increasing {
            p |= property::INCREASING;
        }
        if self.touch {
            p |= property::TOUCH;
        }
        p
    }

    /// Encodes the PUT data. The key is sent [prepared](OathSecret::prepared).
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let key = self.secret.prepared(self.algorithm);
        let mut data = Zeroizing::new(Vec::with_capacity(key.len() + 80));
        push_tlv(&mut data, tag::NAME, self.name.as_bytes());
        let mut key_field = Zeroizing::new(Vec::with_capacity(key.len() + 2));
        key_field.push(type_byte(self.oath_type, self.algorithm));
        key_field.push(self.digits.get());
        key_field.extend_from_slice(key.expose());
        push_tlv(&mut data, tag::KEY, &key_field);
        let props = self.properties();
        if props != 0 {
            tlv::write_bare(&mut data, tag::PROPERTY, props);
        }
        if self.oath_type == OathType::Hotp && self.counter != 0 {
            push_tlv(&mut data, tag::IMF, &self.counter.to_be_bytes());
        }
        data
    }

    /// The PUT command; its data carries the seed, so it is built as secret data.
    pub fn command(&self) -> Command {
        Command::new(0x00, ins::PUT, 0x00, 0x00).with_secret_data(self.encode())
    }

    /// Decodes PUT data (for the applet). The key is kept as sent.
    pub fn decode(data: &[u8]) -> Result<Self, OathError> {
        const M: &str = "PUT";
        let items = tlv::parse_with_bare(data, &[tag::PROPERTY])
            .map_err(|source| OathError::Tlv { message: M, source })?;
        let mut seen = [false; 4];
        for t in &items {
            let slot = match t.tag {
                tag::NAME => 0,
                tag::KEY => 1,
                tag::PROPERTY => 2,
                tag::IMF => 3,
                other => {
                    return Err(OathError::UnexpectedTag {
                        message: M,
                        tag: other,
                    })
                }
            };
            if std::mem::replace(&mut seen[slot], true) {
                return Err(OathError::UnexpectedTag {
                    message: M,
                    tag: t.tag,
                });
            }
        }
        let name = CredentialName::from_bytes(required(M, &items, tag::NAME)?)?;
        let key = required(M, &items, tag::KEY)?;
        let (&type_alg, rest) = key.split_first().ok_or(OathError::BadLength {
            message: M,
            field: "key",
            expected: "at least 2",
            got: key.len(),
        })?;
        let (&digits, secret) = rest.split_first().ok_or(OathError::BadLength {
            message: M,
            field: "key",
            expected: "at least 2",
            got: key.len(),
        })?;
        let oath_type = OathType::from_byte(type_alg)?;
        let algorithm = HashAlgorithm::from_byte(type_alg)?;
        let digits = Digits::new(digits)?;
        let props = match tlv::find(&items, tag::PROPERTY) {
            Some(&[p]) => p,
            Some(other) => {
                return Err(OathError::BadLength {
                    message: M,
                    field: "property",
                    expected: "1",
                    got: other.len(),
                })
            }
            None => 0,
        };
        if props & !(property::INCREASING | property::TOUCH) != 0 {
            return Err(OathError::UnknownProperty { byte: props });
        }
        let counter = tlv::find(&items, tag::IMF)
            .map(|v| fixed::<4>(M, "IMF", "4", v).map(u32::from_be_bytes))
            .transpose()?
            .unwrap_or(0);
        Ok(Self {
            name,
            oath_type,
            algorithm,
            digits,
            secret: OathSecret::from_bytes(Zeroizing::new(secret.to_vec())),
            touch: props & property::TOUCH != 0,
            increasing: props & property::INCREASING != 0,
            counter,
        })
    }
}

// CALCULATE, CALCULATE ALL

/// CALCULATE `name` over `challenge`, asking for the truncated answer (P2 `01`) or the full
/// HMAC (P2 `00`). TOTP challenges are [`TimeStep::challenge`]; HOTP challenges are empty.
pub fn calculate(name: &CredentialName, challenge: &[u8], truncated: bool) -> Command {
    let mut data = Vec::with_capacity(name.as_bytes().len() + challenge.len() + 4);
    push_tlv(&mut data, tag::NAME, name.as_bytes());
    push_tlv(&mut data, tag::CHALLENGE, challenge);
    Command::new(0x00, ins::CALCULATE, 0x00, u8::from(truncated)).with_data(data)
}

/// A decoded CALCULATE request (for the applet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalculateRequest {
    /// The credential.
    pub name: CredentialName,
    /// The challenge (empty for HOTP, or absent).
    pub challenge: Vec<u8>,
}

impl CalculateRequest {
    /// Decodes CALCULATE data; a missing challenge reads as empty.
    pub fn decode(data: &[u8]) -> Result<Self, OathError> {
        const M: &str = "CALCULATE";
        let items = tlvs(M, data)?;
        Ok(Self {
            name: CredentialName::from_bytes(required(M, &items, tag::NAME)?)?,
            challenge: tlv::find(&items, tag::CHALLENGE)
                .unwrap_or_default()
                .to_vec(),
        })
    }
}

/// Encodes a truncated answer: `76 05 <digits> <4 bytes, top bit clear>`.
pub fn encode_truncated(out: &mut Vec<u8>, digits: Digits, value: u32) {
    let mut v = [0u8; 5];
    v[0] = digits.get();
    v[1..].copy_from_slice(&(value & 0x7FFF_FFFF).to_be_bytes());
    push_tlv(out, tag::TRUNCATED, &v);
}

/// Encodes a full answer: `75 <len+1> <digits> <HMAC>`.
pub fn encode_full(out: &mut Vec<u8>, digits: Digits, hmac: &[u8]) {
    let mut v = Zeroizing::new(Vec::with_capacity(hmac.len() + 1));
    v.push(digits.get());
    v.extend_from_slice(hmac);
    push_tlv(out, tag::RESPONSE, &v);
}

fn split_digits<'a>(
    message: &'static str,
    value: &'a [u8],
) -> Result<(Digits, &'a [u8]), OathError> {
    let (&d, rest) = value.split_first().ok_or(OathError::BadLength {
        message,
        field: "response",
        expected: "at least 1",
        got: 0,
    })?;
    Ok((Digits::new(d)?, rest))
}

fn read_truncated(message: &'static str, value: &[u8]) -> Result<Code, OathError> {
    let (digits, rest) = split_digits(message, value)?;
    let v = fixed::<4>(message, "truncated response", "5", rest)?;
    Ok(Code::from_value(u32::from_be_bytes(v), digits))
}

fn read_full(message: &'static str, value: &[u8]) -> Result<FullResponse, OathError> {
    let (digits, rest) = split_digits(message, value)?;
    if !matches!(rest.len(), 20 | 32 | 64) {
        return Err(OathError::BadLength {
            message,
            field: "full response",
            expected: "21, 33 or 65",
            got: value.len(),
        });
    }
    Ok(FullResponse {
        digits,
        hmac: OathSecret::from_bytes(Zeroizing::new(rest.to_vec())),
    })
}

fn single<'a>(message: &'static str, data: &'a [u8], want: u8) -> Result<&'a [u8], OathError> {
    match tlvs(message, data)?.as_slice() {
        [t] if t.tag == want => Ok(t.value),
        [t] => Err(OathError::UnexpectedTag {
            message,
            tag: t.tag,
        }),
        [] => Err(OathError::MissingTag { message, tag: want }),
        [_, t, ..] => Err(OathError::UnexpectedTag {
            message,
            tag: t.tag,
        }),
    }
}

/// Parses a truncated CALCULATE answer into a code.
pub fn parse_calculate_truncated(data: &[u8]) -> Result<Code, OathError> {
    const M: &str = "CALCULATE";
    read_truncated(M, single(M, data, tag::TRUNCATED)?)
}

/// Parses a full CALCULATE answer.
pub fn parse_calculate_full(data: &[u8]) -> Result<FullResponse, OathError> {
    const M: &str = "CALCULATE";
    read_full(M, single(M, data, tag::RESPONSE)?)
}

/// CALCULATE ALL over `challenge`, truncated (`00 A4 00 01`).
pub fn calculate_all(challenge: &[u8; 8]) -> Command {
    let mut data = Vec::with_capacity(10);
    push_tlv(&mut data, tag::CHALLENGE, challenge);
    Command::new(0x00, ins::CALCULATE_ALL, 0x00, 0x01).with_data(data)
}

/// What CALCULATE ALL says about one credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CalculateOutcome {
    /// A TOTP code (truncated form).
    Code(Code),
    /// A TOTP HMAC (full form, P2 `00`).
    Full(FullResponse),
    /// A HOTP credential: not calculated (that would move its counter).
    Hotp {
        /// Its digits.
        digits: Digits,
    },
    /// A touch credential: not calculated; use CALCULATE, which waits for the touch.
    TouchRequired {
        /// Its digits.
        digits: Digits,
    },
}

/// One CALCULATE ALL entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalculateAllEntry {
    /// The credential.
    pub name: CredentialName,
    /// Its answer.
    pub outcome: CalculateOutcome,
}

/// Encodes CALCULATE ALL entries (for the applet).
pub fn encode_calculate_all(entries: &[CalculateAllEntry]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(entries.len() * 80));
    for e in entries {
        push_tlv(&mut out, tag::NAME, e.name.as_bytes());
        match &e.outcome {
            CalculateOutcome::Code(code) => {
                // A code is re-encoded through its value; this path is for tests and the
                // round trip only, the applet encodes values directly.
                let value = code.as_str().parse::<u32>().unwrap_or_default();
                let digits = Digits::new(code.len().try_into().unwrap_or(0)).unwrap_or(Digits::SIX);
                encode_truncated(&mut out, digits, value);
            }
            CalculateOutcome::Full(full) => encode_full(&mut out, full.digits, full.hmac.expose()),
            CalculateOutcome::Hotp { digits } => push_tlv(&mut out, tag::HOTP, &[digits.get()]),
            CalculateOutcome::TouchRequired { digits } => {
                push_tlv(&mut out, tag::TOUCH, &[digits.get()])
            }
        }
    }
    out
}

/// Parses the answer to CALCULATE ALL: pairs of a name and one of `76`, `75`, `77`, `7C`.
pub fn parse_calculate_all(data: &[u8]) -> Result<Vec<CalculateAllEntry>, OathError> {
    const M: &str = "CALCULATE ALL";
    let items = tlvs(M, data)?;
    let mut out = Vec::with_capacity(items.len() / 2);
    let mut it = items.into_iter();
    while let Some(name) = it.next() {
        if name.tag != tag::NAME {
            return Err(OathError::UnexpectedTag {
                message: M,
                tag: name.tag,
            });
        }
        let name = CredentialName::from_bytes(name.value)?;
        let answer = it.next().ok_or(OathError::MissingTag {
            message: M,
            tag: tag::TRUNCATED,
        })?;
        let outcome = match answer.tag {
            tag::TRUNCATED => CalculateOutcome::Code(read_truncated(M, answer.value)?),
            tag::RESPONSE => CalculateOutcome::Full(read_full(M, answer.value)?),
            tag::HOTP | tag::TOUCH => {
                let digits = match answer.value {
                    [d] => Digits::new(*d)?,
                    other => {
                        return Err(OathError::BadLength {
                            message: M,
                            field: "digits",
                            expected: "1",
                            got: other.len(),
                        })
                    }
                };
                if answer.tag == tag::HOTP {
                    CalculateOutcome::Hotp { digits }
                } else {
                    CalculateOutcome::TouchRequired { digits }
                }
            }
            other => {
                return Err(OathError::UnexpectedTag {
                    message: M,
                    tag: other,
                })
            }
        };
        out.push(CalculateAllEntry { name, outcome });
    }
    Ok(out)
}

/// `00 A5 00 00`: the next part of a long answer.
pub fn send_remaining() -> Command {
    Command::new(0x00, ins::SEND_REMAINING, 0x00, 0x00)
}
