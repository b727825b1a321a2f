//! Event values and their stored bytes: validated names ([`Actor`], [`Kind`]), canonical JSON
//! bodies ([`CanonicalJson`]), and the event records kept in the ledger ([`StoredEvent`]).
//!
//! Canonical JSON is the exact byte form every body is stored, hashed and exported in: the
//! encoding `serde_json` produces for strings, object keys sorted by their UTF-8 bytes, no
//! whitespace, and integers only (no fractions or exponents), so that parsing and re-encoding a
//! canonical text gives back the same bytes.

use std::fmt;

use serde_json::Value;

use super::chain::Hash;

/// Why bytes or a value are not canonical JSON.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CanonicalError {
    /// The bytes are not JSON at all.
    #[error("not JSON: {source}")]
    NotJson {
        /// The parser's complaint.
        #[source]
        source: serde_json::Error,
    },
    /// The top-level value is not an object.
    #[error("an event body must be a JSON object")]
    NotAnObject,
    /// A number that is not an integer (fractions and exponents are not allowed).
    #[error("number {number} is not an integer")]
    NotAnInteger {
        /// The number as parsed.
        number: String,
    },
    /// The bytes are JSON but not in canonical form (key order, whitespace, escapes, duplicates).
    #[error("JSON is not canonical (keys sorted, no whitespace, integers only)")]
    NotCanonical,
}

/// A JSON object in canonical form; the exact bytes the ledger stores and hashes.
#[derive(Clone, PartialEq, Eq)]
pub struct CanonicalJson(Vec<u8>);

impl CanonicalJson {
    /// Encodes a JSON object canonically. Fails on non-objects and non-integer numbers.
    pub fn from_value(value: &Value) -> Result<Self, CanonicalError> {
        if !value.is_object() {
            return Err(CanonicalError::NotAnObject);
        }
        let mut out = Vec::new();
        write_canonical(value, &mut out)?;
        Ok(Self(out))
    }

    /// Parses bytes that must already be canonical JSON for an object.
    ///
    /// The common case, canonical bytes, is proved in one pass that builds no JSON value: a
    /// scan of the bytes themselves for bodies without escapes ([`is_plain_canonical_object`]),
    /// else serde_json's parser re-encoding as it goes ([`is_canonical_object`]); anything
    /// both refuse goes through the full parse and re-encoding, which names what is wrong.
    /// Each fast pass accepts only bytes the full one gives back byte for byte, so the outcome
    /// is the full parse's either way.
    pub fn parse(bytes: &[u8]) -> Result<Self, CanonicalError> {
        if is_plain_canonical_object(bytes) || is_canonical_object(bytes) {
            return Ok(Self(bytes.to_vec()));
        }
        Self::parse_full(bytes)
    }

    /// [`CanonicalJson::parse`] of bytes the caller owns, kept without a copy when canonical.
    pub(crate) fn parse_owned(bytes: Vec<u8>) -> Result<Self, CanonicalError> {
        Self::check(&bytes)?;
        Ok(Self(bytes))
    }

    /// Whether [`CanonicalJson::parse`] accepts `bytes` (the same passes, the same error),
    /// without keeping them.
    pub(crate) fn check(bytes: &[u8]) -> Result<(), CanonicalError> {
        if is_plain_canonical_object(bytes) || is_canonical_object(bytes) {
            return Ok(());
        }
        Self::parse_full(bytes).map(drop)
    }

    fn parse_full(bytes: &[u8]) -> Result<Self, CanonicalError> {
        let value: Value =
            serde_json::from_slice(bytes).map_err(|source| CanonicalError::NotJson { source })?;
        let again = Self::from_value(&value)?;
        if again.0 != bytes {
            return Err(CanonicalError::NotCanonical);
        }
        Ok(again)
    }

    /// The canonical bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The body as a JSON value.
    pub fn to_value(&self) -> Value {
        // Canonical bytes were produced by our own encoder from a JSON value, so they parse.
        serde_json::from_slice(&self.0).unwrap_or(Value::Null)
    }
}

impl fmt::Debug for CanonicalJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.0))
    }
}

/// Writes any JSON value canonically into `out`.
pub(crate) fn write_canonical(value: &Value, out: &mut Vec<u8>) -> Result<(), CanonicalError> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => {
            if n.is_i64() || n.is_u64() {
                out.extend_from_slice(n.to_string().as_bytes());
            } else {
                return Err(CanonicalError::NotAnInteger {
                    number: n.to_string(),
                });
            }
        }
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(k, out);
                out.push(b':');
                write_canonical(v, out)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

/// Writes a JSON string with serde_json's escaping.
pub(crate) fn write_string(s: &str, out: &mut Vec<u8>) {
    // Serializing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// Deepest nesting [`is_plain_canonical_object`] follows (serde_json refuses beyond 128).
const PLAIN_MAX_DEPTH: usize = 64;

/// Whether `bytes` are the canonical encoding of a JSON object with no escape in any string
/// and no integer of more than 18 digits, read as bytes without a parser: valid UTF-8, no
/// whitespace, `true`, `false`, `null`, integers without leading zeros or `-0`, strings of
/// characters that serde_json writes as themselves (none below U+0020, no `"` or `\`),
/// object keys strictly increasing by their bytes (which, without escapes, are their UTF-8
/// bytes), nesting at most [`PLAIN_MAX_DEPTH`]. Such text is what [`write_canonical`] writes
/// for what it parses to. Anything else answers `false`, and the slower passes decide.
fn is_plain_canonical_object(bytes: &[u8]) -> bool {
    if bytes.first() != Some(&b'{') || std::str::from_utf8(bytes).is_err() {
        return false;
    }
    let mut scan = PlainScan { bytes, at: 0 };
    scan.value(0) && scan.at == bytes.len()
}

/// The cursor of [`is_plain_canonical_object`].
struct PlainScan<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> PlainScan<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        let found = self.peek() == Some(byte);
        if found {
            self.at += 1;
        }
        found
    }

    fn value(&mut self, depth: usize) -> bool {
        match self.peek() {
            Some(b'{') => depth < PLAIN_MAX_DEPTH && self.object(depth + 1),
            Some(b'[') => depth < PLAIN_MAX_DEPTH && self.array(depth + 1),
            Some(b'"') => self.string().is_some(),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'-' | b'0'..=b'9') => self.integer(),
            _ => false,
        }
    }

    fn literal(&mut self, word: &[u8]) -> bool {
        let found = self
            .bytes
            .get(self.at..)
            .is_some_and(|rest| rest.starts_with(word));
        if found {
            self.at += word.len();
        }
        found
    }

    /// The string at the cursor (on its opening quote), without its quotes.
    fn string(&mut self) -> Option<&'a [u8]> {
        let bytes = self.bytes;
        let start = self.at + 1;
        let rest = bytes.get(start..)?;
        let len = rest
            .iter()
            .position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
        if rest.get(len) != Some(&b'"') {
            return None;
        }
        self.at = start + len + 1;
        rest.get(..len)
    }

    fn integer(&mut self) -> bool {
        let negative = self.eat(b'-');
        let start = self.at;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.at += 1;
        }
        match self.bytes.get(start..self.at) {
            Some([b'0']) => !negative,
            Some([b'1'..=b'9', rest @ ..]) => rest.len() < 18,
            _ => false,
        }
    }

    fn object(&mut self, depth: usize) -> bool {
        self.at += 1;
        if self.eat(b'}') {
            return true;
        }
        let mut previous: Option<&[u8]> = None;
        loop {
            if self.peek() != Some(b'"') {
                return false;
            }
            let Some(key) = self.string() else {
                return false;
            };
            if previous.is_some_and(|p| p >= key) {
                return false;
            }
            previous = Some(key);
            if !self.eat(b':') || !self.value(depth) {
                return false;
            }
            if self.eat(b'}') {
                return true;
            }
            if !self.eat(b',') {
                return false;
            }
        }
    }

    fn array(&mut self, depth: usize) -> bool {
        self.at += 1;
        if self.eat(b']') {
            return true;
        }
        loop {
            if !self.value(depth) {
                return false;
            }
            if self.eat(b']') {
                return true;
            }
            if !self.eat(b',') {
                return false;
            }
        }
    }
}

/// Whether `bytes` are exactly the canonical encoding of a JSON object, checked while
/// serde_json parses them: every value is re-encoded as [`write_canonical`] would (the same
/// [`write_string`], integers only), every object's keys must be strictly increasing by their
/// UTF-8 bytes (sorted, no duplicates), and the re-encoding must equal the input. Builds no
/// [`Value`]; any doubt answers `false`.
fn is_canonical_object(bytes: &[u8]) -> bool {
    if bytes.first() != Some(&b'{') {
        return false;
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = serde::de::DeserializeSeed::deserialize(ReEncode(&mut out), &mut de)
        .and_then(|()| de.end());
    parsed.is_ok() && out == bytes
}

/// Re-encodes the value being parsed canonically into the buffer (see [`is_canonical_object`]).
struct ReEncode<'a>(&'a mut Vec<u8>);

impl<'de> serde::de::DeserializeSeed<'de> for ReEncode<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for ReEncode<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("canonical JSON")
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        self.0.extend_from_slice(b"null");
        Ok(())
    }

    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        self.0
            .extend_from_slice(if v { b"true" as &[u8] } else { b"false" });
        Ok(())
    }

    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.0.extend_from_slice(v.to_string().as_bytes());
        Ok(())
    }

    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.0.extend_from_slice(v.to_string().as_bytes());
        Ok(())
    }

    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<(), E> {
        Err(E::custom("not an integer"))
    }

    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        write_string(v, self.0);
        Ok(())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.0.push(b'[');
        let mut first = true;
        loop {
            let at = self.0.len();
            if !first {
                self.0.push(b',');
            }
            if seq.next_element_seed(ReEncode(self.0))?.is_none() {
                self.0.truncate(at);
                break;
            }
            first = false;
        }
        self.0.push(b']');
        Ok(())
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.0.push(b'{');
        let (mut key, mut previous) = (String::new(), None::<String>);
        while map.next_key_seed(Key(&mut key))?.is_some() {
            if let Some(p) = &mut previous {
                if p.as_bytes() >= key.as_bytes() {
                    return Err(serde::de::Error::custom("keys not strictly increasing"));
                }
                self.0.push(b',');
                std::mem::swap(p, &mut key);
            } else {
                previous = Some(std::mem::take(&mut key));
            }
            write_string(previous.as_deref().unwrap_or_default(), self.0);
            self.0.push(b':');
            map.next_value_seed(ReEncode(self.0))?;
        }
        self.0.push(b'}');
        Ok(())
    }
}

/// Reads an object key into a reused buffer.
struct Key<'a>(&'a mut String);

impl<'de> serde::de::DeserializeSeed<'de> for Key<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Key<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        self.0.clear();
        self.0.push_str(v);
        Ok(())
    }
}

/// Why a name (actor, kind) was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// Empty or longer than allowed.
    #[error("{what} {input:?} must be 1 to {max} bytes long")]
    Length {
        /// Which name.
        what: &'static str,
        /// The refused input.
        input: String,
        /// The longest allowed.
        max: usize,
    },
    /// Contains a character outside the allowed set.
    #[error("{what} {input:?} may only contain {allowed}")]
    Characters {
        /// Which name.
        what: &'static str,
        /// The refused input.
        input: String,
        /// The allowed characters.
        allowed: &'static str,
    },
}

fn check_name(
    what: &'static str,
    input: &str,
    max: usize,
    allowed: &'static str,
    ok: impl Fn(char) -> bool,
) -> Result<(), NameError> {
    if input.is_empty() || input.len() > max {
        return Err(NameError::Length {
            what,
            input: input.to_owned(),
            max,
        });
    }
    if !input.chars().all(ok) {
        return Err(NameError::Characters {
            what,
            input: input.to_owned(),
            allowed,
        });
    }
    Ok(())
}

/// Who caused an event: a user name, an officer pair (`alice+bob`) or a system role.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Actor(String);

impl Actor {
    /// Longest actor in bytes.
    pub const MAX_LEN: usize = 128;

    /// Parses an actor: 1 to 128 bytes of ASCII letters, digits and `._-+@:`.
    pub fn parse(input: &str) -> Result<Self, NameError> {
        Self::parse_owned(input.to_owned())
    }

    /// [`Actor::parse`] of a string the caller owns, kept without a copy.
    pub(crate) fn parse_owned(input: String) -> Result<Self, NameError> {
        Self::check(&input)?;
        Ok(Self(input))
    }

    /// Whether [`Actor::parse`] accepts `input` (the same error), without keeping it. An
    /// actor's characters are never escaped in JSON.
    pub(crate) fn check(input: &str) -> Result<(), NameError> {
        check_name(
            "actor",
            input,
            Self::MAX_LEN,
            "ASCII letters, digits and ._-+@:",
            |c| c.is_ascii_alphanumeric() || "._-+@:".contains(c),
        )
    }

    /// The actor's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An event kind such as `ledger.genesis` or `request.approved`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Kind(String);

impl Kind {
    /// Longest kind in bytes.
    pub const MAX_LEN: usize = 64;

    /// Parses a kind: 1 to 64 bytes of lower-case ASCII letters, digits and `._-`.
    pub fn parse(input: &str) -> Result<Self, NameError> {
        Self::parse_owned(input.to_owned())
    }

    /// [`Kind::parse`] of a string the caller owns, kept without a copy.
    pub(crate) fn parse_owned(input: String) -> Result<Self, NameError> {
        Self::check(&input)?;
        Ok(Self(input))
    }

    /// Whether [`Kind::parse`] accepts `input` (the same error), without keeping it. A kind's
    /// characters are never escaped in JSON.
    pub(crate) fn check(input: &str) -> Result<(), NameError> {
        check_name(
            "kind",
            input,
            Self::MAX_LEN,
            "lower-case ASCII letters, digits and ._-",
            |c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c),
        )
    }

    /// The kind's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Event kinds the ledger itself writes.
pub mod kinds {
    /// The first event: ledger id, officers, threshold, checkpoint public key.
    pub const GENESIS: &str = "ledger.genesis";
    /// The master secret was re-shared (officers or threshold changed).
    pub const RESHARE: &str = "ledger.reshare";
    /// Failed unseal attempts counted while the ledger was sealed.
    pub const UNSEAL_FAILED: &str = "ledger.unseal_failed";
}

/// Milliseconds since the Unix epoch, UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The current time.
    pub fn now() -> Self {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        Self(ms)
    }
}

/// An event to append: the ledger assigns seq, time and hashes.
#[derive(Clone, Debug)]
pub struct NewEvent {
    /// Who caused it.
    pub actor: Actor,
    /// What kind of event it is.
    pub kind: Kind,
    /// Its body.
    pub body: CanonicalJson,
}

impl NewEvent {
    /// Builds an event from a JSON object body.
    pub fn new(actor: Actor, kind: Kind, body: &Value) -> Result<Self, CanonicalError> {
        Ok(Self {
            actor,
            kind,
            body: CanonicalJson::from_value(body)?,
        })
    }
}

/// The hash-carrying fields of an event: everything but the body. This is what a stub in a
/// filtered export carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventHeader {
    /// Position in the chain, from 1.
    pub seq: u64,
    /// When it was appended.
    pub time: Timestamp,
    /// Who caused it.
    pub actor: Actor,
    /// Its kind.
    pub kind: Kind,
    /// Hash of the body bytes.
    pub body_hash: Hash,
    /// Hash of the previous event (zeros for the first).
    pub prev: Hash,
    /// This event's hash.
    pub hash: Hash,
}

/// An event as stored: its header and its body bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEvent {
    /// Seq, time, actor, kind and hashes.
    pub header: EventHeader,
    /// The exact stored body.
    pub body: CanonicalJson,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn canonical_sorts_keys_and_strips_whitespace() {
        let v = json!({"b": 1, "a": {"d": [1, 2, "x"], "c": null}, "é": true});
        let c = CanonicalJson::from_value(&v).expect("canonical");
        assert_eq!(
            c.as_bytes(),
            "{\"a\":{\"c\":null,\"d\":[1,2,\"x\"]},\"b\":1,\"é\":true}".as_bytes()
        );
        assert!(CanonicalJson::parse(c.as_bytes()).is_ok());
    }

    #[test]
    fn fail_non_canonical_bodies() {
        for bad in [
            &b"{\"b\":1,\"a\":2}"[..],
            b"{ \"a\":1}",
            b"{\"a\":1.5}",
            b"{\"a\":1e3}",
            b"{\"a\":1,\"a\":1}",
            b"[1]",
            b"{\"a\":\"\\u0041\"}",
            b"not json",
        ] {
            assert!(
                CanonicalJson::parse(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn names_are_checked() {
        assert!(Actor::parse("alice+bob").is_ok());
        assert!(Actor::parse("").is_err());
        assert!(Actor::parse("a b").is_err());
        assert!(Kind::parse("request.approved").is_ok());
        assert!(Kind::parse("Request").is_err());
        assert!(Kind::parse(&"a".repeat(65)).is_err());
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<u64>().prop_map(|n| json!(n)),
            ".{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(".{0,8}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// The full parse and re-encoding that [`CanonicalJson::parse`] falls back to.
    fn full_parse(bytes: &[u8]) -> Option<Vec<u8>> {
        let value: Value = serde_json::from_slice(bytes).ok()?;
        CanonicalJson::from_value(&value).ok().map(|c| c.0)
    }

    #[test]
    fn the_fast_pass_refuses_what_the_full_parse_refuses() {
        for bad in [
            &b"{\"b\":1,\"a\":2}"[..],
            b"{\"a\":1,\"a\":1}",
            b"{\"a\":{\"y\":1,\"x\":2}}",
            b"{ \"a\":1}",
            b"{\"a\":1} ",
            b"{\"a\":1.5}",
            b"{\"a\":-0}",
            b"{\"a\":01}",
            b"{\"a\":18446744073709551616}",
            b"{\"a\":\"\\u0041\"}",
            b"{\"a\":\"\\/\"}",
            b"{\"a\":[1 ,2]}",
            b"[1]",
            b"{\"a\":1}{}",
            b"{\"\\u00e9\":1}",
            b"{\"a\":-}",
            b"{\"a\":tru}",
            b"{\"a\":[1,]}",
            b"{\"a\":1,}",
            b"{\"a\"}",
            b"{\"a\":\"\xff\"}",
            b"{\"a\":\"\t\"}",
            b"{\"a\":1",
        ] {
            assert!(
                !is_canonical_object(bad),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
            assert!(
                !is_plain_canonical_object(bad),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
            assert_ne!(
                full_parse(bad).as_deref(),
                Some(bad),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let good = "{\"a\":[1,-2,\"\\n\\u0001\"],\"b\":null,\"é\":{\"\":true}}".as_bytes();
        assert!(is_canonical_object(good));
        assert_eq!(full_parse(good).as_deref(), Some(good));
        // Escapes are left to the parser; plain text of every other kind is accepted.
        assert!(!is_plain_canonical_object(good));
        let plain = "{\"\":{},\"a\":[1,-2,0,[],true,false,null],\"b\":\"x/é\u{7f}\"}".as_bytes();
        assert!(is_plain_canonical_object(plain));
        assert_eq!(full_parse(plain).as_deref(), Some(plain));
        // The longest integers accepted, and one digit more (left to the parser).
        for (n, plain) in [("999999999999999999", true), ("1000000000000000000", false)] {
            for n in [n.to_owned(), format!("-{n}")] {
                let text = format!("{{\"n\":{n}}}");
                assert_eq!(is_plain_canonical_object(text.as_bytes()), plain, "{text}");
                assert_eq!(
                    full_parse(text.as_bytes()).as_deref(),
                    Some(text.as_bytes())
                );
            }
        }
        // Nesting beyond what the scan follows is left to the parser.
        let deep = |d: usize| format!("{{\"a\":{}1{}}}", "[".repeat(d), "]".repeat(d));
        assert!(is_plain_canonical_object(
            deep(PLAIN_MAX_DEPTH - 1).as_bytes()
        ));
        assert!(!is_plain_canonical_object(deep(PLAIN_MAX_DEPTH).as_bytes()));
    }

    proptest! {
        /// The fast pass accepts canonical encodings, and accepts nothing the full parse does
        /// not give back byte for byte, even after a byte of a canonical text is changed.
        #[test]
        fn the_fast_pass_agrees_with_the_full_parse(
            v in prop::collection::btree_map(".{0,8}", arb_json(), 0..6),
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
        ) {
            let v = Value::Object(v.into_iter().collect());
            let c = CanonicalJson::from_value(&v).expect("integers only");
            prop_assert!(is_canonical_object(c.as_bytes()));
            // Without escapes or integers past 18 digits, the scan alone accepts it.
            let longest_digits = c.0.split(|b| !b.is_ascii_digit()).map(<[u8]>::len).max();
            if !c.0.contains(&b'\\') && longest_digits.unwrap_or(0) <= 18 {
                prop_assert!(is_plain_canonical_object(c.as_bytes()));
            }
            let mut edited = c.0.clone();
            let i = at.index(edited.len());
            edited[i] = byte;
            if is_canonical_object(&edited) || is_plain_canonical_object(&edited) {
                prop_assert_eq!(full_parse(&edited), Some(edited.clone()));
            }
        }

        #[test]
        fn the_fast_pass_never_accepts_what_the_full_parse_refuses(
            bytes in prop::collection::vec(any::<u8>(), 0..64),
        ) {
            if is_canonical_object(&bytes) || is_plain_canonical_object(&bytes) {
                prop_assert_eq!(full_parse(&bytes), Some(bytes.clone()));
            }
        }

        #[test]
        fn canonical_round_trips(v in prop::collection::btree_map(".{0,8}", arb_json(), 0..6)) {
            let v = Value::Object(v.into_iter().collect());
            let c = CanonicalJson::from_value(&v).expect("integers only");
            let again = CanonicalJson::parse(c.as_bytes()).expect("parses");
            prop_assert_eq!(&again, &c);
            prop_assert_eq!(again.to_value(), v);
        }
    }
}
