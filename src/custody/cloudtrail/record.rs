//! CloudTrail records as the provider writes them, read as a stream.
//!
//! Two shapes are accepted (AWS CloudTrail User Guide, "CloudTrail record contents" and
//! "Understanding CloudTrail events": "The event data is enclosed in a `Records` array"):
//! - a log file as a trail delivers it to S3, `{"Records": [ {...}, {...} ]}` (any whitespace;
//!   `Records` is the object's first key, as CloudTrail writes it);
//! - JSON Lines, one record object per line, as tools that export events write them.
//!
//! A `Records` array is never held whole: a structural scanner finds where each record begins
//! and ends (counting nesting, never recursing), serde_json parses that record from its bytes
//! and it is handed to the caller. No single record may take more than [`MAX_RECORD_BYTES`],
//! so memory stays bounded whatever the file's size. Only the fields reconciliation needs are
//! kept; every other field is skipped without being held (serde_json skips nested values
//! without recursion; where a value is read as a structure, it refuses nesting deeper than 128).

use std::fmt;
use std::io::{self, BufRead, BufReader, Read};
use std::marker::PhantomData;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

/// The most input one record may take (CloudTrail's own records are far smaller).
pub const MAX_RECORD_BYTES: u64 = 1 << 20;

/// The fields of one CloudTrail record that reconciliation reads. Missing fields are `None`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct Record {
    /// `eventID`.
    #[serde(rename = "eventID", default)]
    pub event_id: Option<String>,
    /// `eventTime`, as written (`2026-11-30T12:00:00Z`).
    #[serde(rename = "eventTime", default)]
    pub event_time: Option<String>,
    /// `eventSource` (`signin.amazonaws.com`, `iam.amazonaws.com`, ...).
    #[serde(rename = "eventSource", default)]
    pub event_source: Option<String>,
    /// `eventName` (`ConsoleLogin`, `CreateAccessKey`, ...).
    #[serde(rename = "eventName", default)]
    pub event_name: Option<String>,
    /// `recipientAccountId`.
    #[serde(rename = "recipientAccountId", default)]
    pub recipient_account_id: Option<String>,
    /// `readOnly`.
    #[serde(rename = "readOnly", default)]
    pub read_only: Flag,
    /// `userIdentity` (absent or null: no identity, as some service events have).
    #[serde(rename = "userIdentity", default, deserialize_with = "null_is_default")]
    pub user_identity: Identity,
    /// `responseElements.ConsoleLogin` (`Success` or `Failure` for a sign-in).
    #[serde(rename = "responseElements", default)]
    pub console_login: Pick<ConsoleLoginKey>,
    /// `additionalEventData.MFAUsed` (`Yes` or `No` for a sign-in).
    #[serde(rename = "additionalEventData", default)]
    pub mfa_used: Pick<MfaUsedKey>,
}

/// `userIdentity`: who made the call.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct Identity {
    /// `type`: `Root`, `IAMUser`, `AssumedRole`, ...
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// `accountId`: the account that owns the identity.
    #[serde(rename = "accountId", default)]
    pub account_id: Option<String>,
    /// `sessionContext.assumedRoot`: `"true"` for a session opened with `sts:AssumeRoot`
    /// (centralized root access), which uses no root credentials of the member account.
    #[serde(rename = "sessionContext", default)]
    pub assumed_root: Pick<AssumedRootKey>,
}

fn null_is_default<'de, D: Deserializer<'de>>(d: D) -> Result<Identity, D::Error> {
    Ok(Option::<Identity>::deserialize(d)?.unwrap_or_default())
}

/// A boolean that may be written as `true` or `"true"`; anything else reads as absent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flag(pub Option<bool>);

/// The name of the one string member [`Pick`] keeps from an object.
pub trait PickKey {
    /// The member's name.
    const NAME: &'static str;
}

/// `ConsoleLogin` of `responseElements`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConsoleLoginKey;
impl PickKey for ConsoleLoginKey {
    const NAME: &'static str = "ConsoleLogin";
}

/// `MFAUsed` of `additionalEventData`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MfaUsedKey;
impl PickKey for MfaUsedKey {
    const NAME: &'static str = "MFAUsed";
}

/// `assumedRoot` of `sessionContext`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AssumedRootKey;
impl PickKey for AssumedRootKey {
    const NAME: &'static str = "assumedRoot";
}

/// One string member of a value that is usually an object: the member when the value is an
/// object holding it as a string, else absent. Any other value (null, a string, an array,
/// another member type) is skipped, never an error: services write many shapes there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pick<K> {
    /// The member's value.
    pub value: Option<String>,
    key: PhantomData<K>,
}

impl<K> Default for Pick<K> {
    fn default() -> Self {
        Self {
            value: None,
            key: PhantomData,
        }
    }
}

impl<K> Pick<K> {
    /// A member holding `value`.
    pub fn of(value: &str) -> Self {
        Self {
            value: Some(value.to_owned()),
            key: PhantomData,
        }
    }

    /// The member's value, if present.
    pub fn get(&self) -> Option<&str> {
        self.value.as_deref()
    }
}

/// Visits any value; keeps nothing unless told how.
struct Skip<T>(PhantomData<T>);

macro_rules! skip_scalars {
    () => {
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(Default::default())
        }
    };
}

impl<'de, K: PickKey> Visitor<'de> for Skip<Pick<K>> {
    type Value = Pick<K>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "any value")
    }
    skip_scalars!();
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Pick::default())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Pick::default())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = Pick::default();
        while let Some(key) = map.next_key::<KeyName>()? {
            if key.0.as_deref() == Some(K::NAME) {
                out.value = map.next_value::<StrOrSkip>()?.0;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(out)
    }
}

impl<'de, K: PickKey> Deserialize<'de> for Pick<K> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Skip::<Pick<K>>(PhantomData))
    }
}

impl<'de> Visitor<'de> for Skip<Flag> {
    type Value = Flag;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "any value")
    }
    skip_scalars!();
    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Flag, E> {
        Ok(Flag(Some(b)))
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Flag, E> {
        Ok(Flag(match s {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        }))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Flag, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Flag(None))
    }
}

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Skip::<Flag>(PhantomData))
    }
}

/// A string, or absent for any other value.
#[derive(Default)]
struct StrOrSkip(Option<String>);

impl<'de> Visitor<'de> for Skip<StrOrSkip> {
    type Value = StrOrSkip;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "any value")
    }
    skip_scalars!();
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<StrOrSkip, E> {
        Ok(StrOrSkip(None))
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<StrOrSkip, E> {
        Ok(StrOrSkip(Some(s.to_owned())))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StrOrSkip, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(StrOrSkip(None))
    }
}

impl<'de> Deserialize<'de> for StrOrSkip {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Skip::<StrOrSkip>(PhantomData))
    }
}

/// An object key: kept only when short (every key this module looks for is).
struct KeyName(Option<String>);

impl<'de> Deserialize<'de> for KeyName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = KeyName;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "an object key")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<KeyName, E> {
                Ok(KeyName((s.len() <= 32).then(|| s.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

/// Why CloudTrail input could not be read. Every variant names the record (counted from 1 in
/// its file) where it went wrong when there is one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CloudTrailError {
    /// The input could not be read (or gunzipped).
    #[error("read failed: {source}")]
    Read {
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The input is empty.
    #[error("the file is empty: expected a CloudTrail log file ({{\"Records\": [...]}}) or JSON Lines of records")]
    Empty,
    /// The input is neither shape.
    #[error("not CloudTrail input: {detail}; expected a CloudTrail log file ({{\"Records\": [...]}}, gzipped or not) or JSON Lines with one record object per line")]
    NotCloudTrail {
        /// What was found.
        detail: String,
    },
    /// A record (or the file around it) is not valid JSON of the expected shape.
    #[error("record {record}: {detail}; the file is not as CloudTrail writes it (check it was copied whole)")]
    Json {
        /// The record being read (1-based; 0: before the first record).
        record: u64,
        /// serde_json's message, with line and column.
        detail: String,
    },
    /// One record takes more input than [`MAX_RECORD_BYTES`].
    #[error("record {record} is larger than {limit} bytes; CloudTrail writes no such record (the file is damaged or not from CloudTrail)")]
    TooLarge {
        /// The record (1-based).
        record: u64,
        /// The limit.
        limit: u64,
    },
}

/// What the reader does with each record; an error from it stops the read.
pub type Sink<'a, E> = dyn FnMut(Record) -> Result<(), E> + 'a;

/// A failure of [`read_records`]: the input's, or the sink's.
#[derive(Debug)]
pub enum ReadError<E> {
    /// The input.
    Input(CloudTrailError),
    /// The sink refused a record.
    Sink(E),
}

impl<E> From<CloudTrailError> for ReadError<E> {
    fn from(e: CloudTrailError) -> Self {
        Self::Input(e)
    }
}

/// Reads CloudTrail input (either shape, gzipped or not: the gzip magic is recognised) and
/// hands each record to `sink`. Answers how many records were read.
pub fn read_records<R: Read, E>(input: R, sink: &mut Sink<'_, E>) -> Result<u64, ReadError<E>> {
    let mut input = BufReader::with_capacity(64 * 1024, input);
    let head = input
        .fill_buf()
        .map_err(|source| CloudTrailError::Read { source })?;
    if head.starts_with(&[0x1f, 0x8b]) {
        let gz = flate2::bufread::MultiGzDecoder::new(input);
        return read_plain(BufReader::with_capacity(64 * 1024, gz), sink);
    }
    read_plain(input, sink)
}

fn read_plain<R: BufRead, E>(mut input: R, sink: &mut Sink<'_, E>) -> Result<u64, ReadError<E>> {
    // Look past leading whitespace at the first bytes to tell the two shapes apart.
    let mut head = Vec::with_capacity(64);
    loop {
        let buf = input
            .fill_buf()
            .map_err(|source| CloudTrailError::Read { source })?;
        if buf.is_empty() {
            break;
        }
        let skip = if head.is_empty() {
            buf.iter().take_while(|b| b.is_ascii_whitespace()).count()
        } else {
            0
        };
        let take = (buf.len() - skip).min(64 - head.len());
        head.extend_from_slice(&buf[skip..skip + take]);
        input.consume(skip + take);
        if head.len() >= 64 {
            break;
        }
    }
    if head.is_empty() {
        return Err(CloudTrailError::Empty.into());
    }
    if head.first() != Some(&b'{') {
        return Err(CloudTrailError::NotCloudTrail {
            detail: format!(
                "it starts with {:?}",
                String::from_utf8_lossy(&head[..head.len().min(16)])
            ),
        }
        .into());
    }
    let after_brace: Vec<u8> = head
        .iter()
        .skip(1)
        .skip_while(|b| b.is_ascii_whitespace())
        .copied()
        .collect();
    let whole = io::Cursor::new(head).chain(input);
    if after_brace.starts_with(b"\"Records\"") {
        read_log_file(whole, sink)
    } else {
        read_json_lines(whole, sink)
    }
}

/// Finds where JSON values begin and end in a byte stream, chunk by chunk, without
/// interpreting them (serde_json then parses each record from its own bytes). Nesting is a
/// counter, never recursion.
struct Scanner<R> {
    input: R,
    /// Bytes consumed so far (for messages).
    offset: u64,
}

/// Why the scanner stopped.
enum Scan {
    Io(io::Error),
    /// The input ended inside a value.
    Eof,
    /// A value is longer than the limit.
    TooLarge,
    /// Not the byte expected here.
    Unexpected {
        want: &'static str,
        got: Option<u8>,
    },
}

impl From<io::Error> for Scan {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

impl<R: BufRead> Scanner<R> {
    /// The next byte after whitespace, not consumed.
    fn peek(&mut self) -> Result<Option<u8>, Scan> {
        loop {
            let buf = self.input.fill_buf()?;
            if buf.is_empty() {
                return Ok(None);
            }
            let n = buf.iter().take_while(|b| b.is_ascii_whitespace()).count();
            let len = buf.len();
            let next = buf.get(n).copied();
            self.input.consume(n);
            self.offset += n as u64;
            if n < len {
                return Ok(next);
            }
        }
    }

    /// Consumes `byte` (after whitespace), or says what came instead.
    fn expect(&mut self, byte: u8, want: &'static str) -> Result<(), Scan> {
        match self.peek()? {
            Some(b) if b == byte => {
                self.input.consume(1);
                self.offset += 1;
                Ok(())
            }
            got => Err(Scan::Unexpected { want, got }),
        }
    }

    /// Consumes the next value (after whitespace), copying its bytes to `out` when given
    /// (at most `limit` of them).
    fn value(&mut self, mut out: Option<&mut Vec<u8>>, limit: u64) -> Result<(), Scan> {
        let first = self.peek()?.ok_or(Scan::Eof)?;
        let mut depth = 0u64;
        let mut in_string = false;
        let mut escaped = false;
        let mut taken = 0u64;
        let scalar = !matches!(first, b'{' | b'[' | b'"');
        loop {
            let buf = self.input.fill_buf()?;
            if buf.is_empty() {
                // A number at the very end of the input ends there.
                return if scalar && taken > 0 {
                    Ok(())
                } else {
                    Err(Scan::Eof)
                };
            }
            let mut end = None;
            for (i, &b) in buf.iter().enumerate() {
                if scalar {
                    if matches!(b, b',' | b']' | b'}') || b.is_ascii_whitespace() {
                        end = Some(i);
                        break;
                    }
                    continue;
                }
                if in_string {
                    if escaped {
                        escaped = false;
                    } else if b == b'\\' {
                        escaped = true;
                    } else if b == b'"' {
                        in_string = false;
                        if depth == 0 {
                            end = Some(i + 1);
                            break;
                        }
                    }
                    continue;
                }
                match b {
                    b'"' => in_string = true,
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.saturating_sub(1);
                        if depth == 0 {
                            end = Some(i + 1);
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let n = end.unwrap_or(buf.len());
            taken += n as u64;
            if taken > limit {
                return Err(Scan::TooLarge);
            }
            if let Some(out) = out.as_deref_mut() {
                out.extend_from_slice(&buf[..n]);
            }
            self.input.consume(n);
            self.offset += n as u64;
            if end.is_some() {
                return Ok(());
            }
        }
    }
}

/// A trail's log file: one object whose `Records` array is read one record at a time.
fn read_log_file<R: BufRead, E>(input: R, sink: &mut Sink<'_, E>) -> Result<u64, ReadError<E>> {
    let mut sc = Scanner { input, offset: 0 };
    let mut records = 0u64;
    let mut buf = Vec::with_capacity(4096);
    let fail = |scan: Scan, records: u64, offset: u64| -> CloudTrailError {
        match scan {
            Scan::Io(source) => CloudTrailError::Read { source },
            Scan::TooLarge => CloudTrailError::TooLarge {
                record: records + 1,
                limit: MAX_RECORD_BYTES,
            },
            Scan::Eof => CloudTrailError::Json {
                record: records + 1,
                detail: format!("the file ends inside the Records array (byte {offset})"),
            },
            Scan::Unexpected { want, got } => CloudTrailError::Json {
                record: records + 1,
                detail: format!(
                    "expected {want} at byte {offset}, found {}",
                    got.map_or_else(
                        || "the end of the file".to_owned(),
                        |b| format!("{:?}", char::from(b))
                    )
                ),
            },
        }
    };
    let mut found = false;
    let result = (|| -> Result<(), ReadError<E>> {
        let at = |sc: &Scanner<R>| sc.offset;
        sc.expect(b'{', "'{'")
            .map_err(|e| fail(e, records, at(&sc)))?;
        if sc.peek().map_err(|e| fail(e, records, at(&sc)))? == Some(b'}') {
            return Ok(());
        }
        loop {
            buf.clear();
            sc.value(Some(&mut buf), 4096)
                .map_err(|e| fail(e, records, at(&sc)))?;
            let key: String = serde_json::from_slice(&buf).map_err(|e| CloudTrailError::Json {
                record: records + 1,
                detail: format!("a key of the top-level object is not a string ({e})"),
            })?;
            sc.expect(b':', "':'")
                .map_err(|e| fail(e, records, at(&sc)))?;
            if key == "Records" && !found {
                found = true;
                sc.expect(b'[', "'[' (the Records array)")
                    .map_err(|e| fail(e, records, at(&sc)))?;
                if sc.peek().map_err(|e| fail(e, records, at(&sc)))? == Some(b']') {
                    sc.expect(b']', "']'")
                        .map_err(|e| fail(e, records, at(&sc)))?;
                } else {
                    loop {
                        buf.clear();
                        sc.value(Some(&mut buf), MAX_RECORD_BYTES)
                            .map_err(|e| fail(e, records, at(&sc)))?;
                        let record: Record =
                            serde_json::from_slice(&buf).map_err(|e| CloudTrailError::Json {
                                record: records + 1,
                                detail: e.to_string(),
                            })?;
                        records += 1;
                        sink(record).map_err(ReadError::Sink)?;
                        match sc.peek().map_err(|e| fail(e, records, at(&sc)))? {
                            Some(b',') => sc.expect(b',', "','"),
                            Some(b']') => {
                                sc.expect(b']', "']'")
                                    .map_err(|e| fail(e, records, at(&sc)))?;
                                break;
                            }
                            got => Err(Scan::Unexpected {
                                want: "',' or ']' after a record",
                                got,
                            }),
                        }
                        .map_err(|e| fail(e, records, at(&sc)))?;
                    }
                }
            } else {
                sc.value(None, u64::MAX)
                    .map_err(|e| fail(e, records, at(&sc)))?;
            }
            match sc.peek().map_err(|e| fail(e, records, at(&sc)))? {
                Some(b',') => sc
                    .expect(b',', "','")
                    .map_err(|e| fail(e, records, at(&sc)))?,
                Some(b'}') => {
                    sc.expect(b'}', "'}'")
                        .map_err(|e| fail(e, records, at(&sc)))?;
                    break;
                }
                got => {
                    return Err(fail(
                        Scan::Unexpected {
                            want: "',' or '}' in the top-level object",
                            got,
                        },
                        records,
                        at(&sc),
                    )
                    .into())
                }
            }
        }
        match sc.peek().map_err(|e| fail(e, records, at(&sc)))? {
            None => Ok(()),
            got => Err(fail(
                Scan::Unexpected {
                    want: "the end of the file after the top-level object",
                    got,
                },
                records,
                at(&sc),
            )
            .into()),
        }
    })();
    result?;
    if found {
        Ok(records)
    } else {
        Err(CloudTrailError::NotCloudTrail {
            detail: "the object has no \"Records\" array".to_owned(),
        }
        .into())
    }
}

/// JSON Lines: one record object per line (blank lines skipped). A line that is itself a
/// `{"Records": [...]}` object is read as a log file.
fn read_json_lines<R: Read, E>(input: R, sink: &mut Sink<'_, E>) -> Result<u64, ReadError<E>> {
    let mut input = BufReader::with_capacity(64 * 1024, input);
    let mut line = Vec::new();
    let mut records = 0u64;
    let mut line_no = 0u64;
    loop {
        line.clear();
        let n = (&mut input)
            .take(MAX_RECORD_BYTES + 1)
            .read_until(b'\n', &mut line)
            .map_err(|source| CloudTrailError::Read { source })?;
        if n == 0 {
            return Ok(records);
        }
        line_no += 1;
        if line.len() as u64 > MAX_RECORD_BYTES {
            return Err(CloudTrailError::TooLarge {
                record: records + 1,
                limit: MAX_RECORD_BYTES,
            }
            .into());
        }
        let text = line.trim_ascii();
        if text.is_empty() {
            continue;
        }
        let is_log_file =
            text.starts_with(b"{") && text[1..].trim_ascii_start().starts_with(b"\"Records\"");
        if is_log_file {
            match read_log_file(text, sink) {
                Ok(n) => records += n,
                Err(ReadError::Input(CloudTrailError::Json { record, detail })) => {
                    return Err(CloudTrailError::Json {
                        record: records + record,
                        detail: format!("line {line_no}: {detail}"),
                    }
                    .into())
                }
                Err(e) => return Err(e),
            }
            continue;
        }
        let record: Record = serde_json::from_slice(text).map_err(|e| CloudTrailError::Json {
            record: records + 1,
            detail: format!(
                "line {line_no} is not one record object ({e}); JSON Lines holds one record per line"
            ),
        })?;
        records += 1;
        sink(record).map_err(ReadError::Sink)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(bytes: &[u8]) -> Result<Vec<Record>, CloudTrailError> {
        let mut out = Vec::new();
        let mut sink = |r: Record| -> Result<(), ()> {
            out.push(r);
            Ok(())
        };
        match read_records(bytes, &mut sink) {
            Ok(n) => {
                assert_eq!(n as usize, out.len());
                Ok(out)
            }
            Err(ReadError::Input(e)) => Err(e),
            Err(ReadError::Sink(())) => panic!("the sink never refuses"),
        }
    }

    const SIGN_IN: &str = r#"{"eventVersion":"1.08","userIdentity":{"type":"Root","principalId":"123456789012","arn":"arn:aws:iam::123456789012:root","accountId":"123456789012","accessKeyId":""},"eventTime":"2026-11-30T12:01:00Z","eventSource":"signin.amazonaws.com","eventName":"ConsoleLogin","awsRegion":"us-east-1","sourceIPAddress":"192.0.2.1","userAgent":"Mozilla/5.0","requestParameters":null,"responseElements":{"ConsoleLogin":"Success"},"additionalEventData":{"LoginTo":"https://console.aws.amazon.com/console/home","MobileVersion":"No","MFAUsed":"Yes"},"eventID":"e1","readOnly":false,"eventType":"AwsConsoleSignIn","managementEvent":true,"recipientAccountId":"123456789012"}"#;

    #[test]
    fn a_log_file_gives_each_record_with_its_fields() {
        let file = format!("{{\n  \"Records\": [\n    {SIGN_IN},\n    {{\"eventID\":\"e2\",\"userIdentity\":{{\"type\":\"IAMUser\"}},\"responseElements\":[1,2],\"additionalEventData\":\"text\",\"readOnly\":\"true\"}}\n  ]\n}}\n");
        let r = read(file.as_bytes()).expect("valid");
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].event_id.as_deref(), Some("e1"));
        assert_eq!(r[0].user_identity.kind.as_deref(), Some("Root"));
        assert_eq!(
            r[0].user_identity.account_id.as_deref(),
            Some("123456789012")
        );
        assert_eq!(r[0].console_login.get(), Some("Success"));
        assert_eq!(r[0].mfa_used.get(), Some("Yes"));
        assert_eq!(r[0].read_only, Flag(Some(false)));
        assert_eq!(r[0].event_time.as_deref(), Some("2026-11-30T12:01:00Z"));
        // Odd shapes where objects are usual read as absent, never as errors.
        assert_eq!(r[1].console_login.get(), None);
        assert_eq!(r[1].mfa_used.get(), None);
        assert_eq!(r[1].read_only, Flag(Some(true)));
    }

    #[test]
    fn json_lines_and_gzip_give_the_same_records() {
        let lines = format!("{SIGN_IN}\n\n{SIGN_IN}\n");
        let plain = read(lines.as_bytes()).expect("json lines");
        assert_eq!(plain.len(), 2);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(
            &mut gz,
            format!("{{\"Records\":[{SIGN_IN},{SIGN_IN}]}}").as_bytes(),
        )
        .expect("gzip");
        let zipped = read(&gz.finish().expect("gzip")).expect("gzipped log file");
        assert_eq!(zipped, plain);
    }

    #[test]
    fn records_end_where_json_says_not_where_a_brace_in_a_string_is() {
        let file = br#"{"Records": [{"eventID": "x}\"]{", "n": [1, {"b": "\\"}]}, {"eventID":"y"}], "Other": {"a": [1, "]}"]}, "Tail": 5}"#;
        let r = read(file).expect("valid");
        let ids: Vec<_> = r.iter().map(|r| r.event_id.clone()).collect();
        assert_eq!(ids, [Some("x}\"]{".to_owned()), Some("y".to_owned())]);
        assert_eq!(read(br#"{"Records": []}"#).expect("empty array"), []);
        let e = read(br#"{"Records": [{"eventID":"a"}] } trailing"#).expect_err("refused");
        assert!(e.to_string().contains("end of the file"), "{e}");
        let e = read(br#"{"Records": [{"eventID":"a"} {"eventID":"b"}]}"#).expect_err("refused");
        assert!(e.to_string().contains("',' or ']'"), "{e}");
        let e = read(br#"{"Records": [5]}"#).expect_err("refused");
        assert!(matches!(e, CloudTrailError::Json { record: 1, .. }), "{e}");
    }

    #[test]
    fn a_null_or_missing_identity_is_no_identity() {
        let r = read(br#"{"Records":[{"eventID":"a","userIdentity":null},{"eventID":"b"}]}"#)
            .expect("valid");
        assert!(r.iter().all(|r| r.user_identity == Identity::default()));
    }

    #[test]
    fn an_assume_root_session_is_marked() {
        let rec = r#"{"userIdentity":{"type":"Root","accountId":"111122223333","sessionContext":{"attributes":{"mfaAuthenticated":"false"},"assumedRoot":"true"}},"eventID":"x"}"#;
        let r = read(rec.as_bytes()).expect("valid");
        assert_eq!(r[0].user_identity.assumed_root.get(), Some("true"));
    }

    #[test]
    fn fail_bad_input_is_a_clear_error() {
        assert!(matches!(read(b"  \n"), Err(CloudTrailError::Empty)));
        assert!(matches!(
            read(b"[1,2]"),
            Err(CloudTrailError::NotCloudTrail { .. })
        ));
        let e = read(b"{\"Records\": [ {\"eventID\": \"a\"}, {\"eventID\": ").expect_err("refused");
        assert!(matches!(e, CloudTrailError::Json { record: 2, .. }), "{e}");
        let e = read(b"{\"Records\": 5}").expect_err("refused");
        assert!(matches!(e, CloudTrailError::Json { record: 1, .. }), "{e}");
        let e = read(b"{\"eventID\": \"a\"}\nnot json\n").expect_err("refused");
        assert!(e.to_string().contains("line 2"), "{e}");
        // A field of the wrong type names what was expected.
        let e = read(b"{\"Records\":[{\"eventTime\": 5}]}").expect_err("refused");
        assert!(e.to_string().contains("invalid type"), "{e}");
        // Non-UTF-8 bytes inside a string.
        let e = read(b"{\"Records\":[{\"eventID\": \"\xff\xfe\"}]}").expect_err("refused");
        assert!(matches!(e, CloudTrailError::Json { .. }), "{e}");
    }

    #[test]
    fn deep_nesting_is_skipped_without_recursion_and_huge_records_are_refused() {
        // Skipped values are walked without recursion (serde_json's ignore keeps its own
        // stack), so deep nesting costs neither the call stack nor more than the record's bytes.
        let deep = format!(
            "{{\"Records\":[{{\"requestParameters\":{}{},\"eventID\":\"d\"}}]}}",
            "[".repeat(200_000),
            "]".repeat(200_000)
        );
        let r = read(deep.as_bytes()).expect("deep but small");
        assert_eq!(r[0].event_id.as_deref(), Some("d"));
        let too_deep = format!(
            "{{\"Records\":[{{\"x\":{}",
            "[".repeat(MAX_RECORD_BYTES as usize)
        );
        let e = read(too_deep.as_bytes()).expect_err("refused");
        assert!(
            matches!(e, CloudTrailError::TooLarge { record: 1, .. }),
            "{e}"
        );
        // Where a value is read as a structure, nesting is bounded by serde_json's limit.
        let nested = format!(
            "{{\"userIdentity\":{}{}}}",
            "[".repeat(1000),
            "]".repeat(1000)
        );
        assert!(read(nested.as_bytes()).is_err());
        let huge = format!(
            "{{\"Records\":[{{\"eventID\":\"a\"}},{{\"requestParameters\":\"{}\"}}]}}",
            "a".repeat(MAX_RECORD_BYTES as usize + 10)
        );
        let e = read(huge.as_bytes()).expect_err("refused");
        assert!(
            matches!(e, CloudTrailError::TooLarge { record: 2, .. }),
            "{e}"
        );
        let huge_line = format!(
            "{{\"eventID\":\"{}\"}}\n",
            "a".repeat(MAX_RECORD_BYTES as usize)
        );
        let e = read(huge_line.as_bytes()).expect_err("refused");
        assert!(
            matches!(e, CloudTrailError::TooLarge { record: 1, .. }),
            "{e}"
        );
    }

    #[test]
    fn a_refusing_sink_stops_the_read() {
        let file = format!("{{\"Records\":[{SIGN_IN},{SIGN_IN},{SIGN_IN}]}}");
        let mut seen = 0;
        let mut sink = |_: Record| -> Result<(), &'static str> {
            seen += 1;
            if seen == 2 {
                Err("enough")
            } else {
                Ok(())
            }
        };
        assert!(matches!(
            read_records(file.as_bytes(), &mut sink),
            Err(ReadError::Sink("enough"))
        ));
        assert_eq!(seen, 2);
    }
}
