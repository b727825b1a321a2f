//! CloudTrail records as the provider writes them, read as a stream.
//!
//! Two shapes are accepted (AWS CloudTrail User Guide, "CloudTrail record contents" and
//! "Understanding CloudTrail events": "The event data is enclosed in a `Records` array"):
//! - a log file as a trail delivers it to S3, `{"Records": [ {...}, {...} ]}` (any whitespace);
//! - JSON Lines, one record object per line, as tools that export events write them.
//!
//! Only the fields reconciliation needs are kept; every other field is skipped without being
//! held. A `Records` array is never held whole: records are handed to the caller one by one,
//! and no single record may take more than [`MAX_RECORD_BYTES`] of input, so memory stays
//! bounded whatever the file's size. serde_json refuses nesting deeper than 128 levels.

use std::cell::Cell;
use std::fmt;
use std::io::{self, BufRead, BufReader, Read};
use std::marker::PhantomData;
use std::rc::Rc;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
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
    /// `userIdentity`.
    #[serde(rename = "userIdentity", default)]
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

/// A reader that refuses to give more than [`MAX_RECORD_BYTES`] since `spent` was last reset.
struct Budget<R> {
    inner: R,
    spent: Rc<Cell<u64>>,
}

impl<R: Read> Read for Budget<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let spent = self.spent.get();
        if spent >= MAX_RECORD_BYTES {
            return Err(io::Error::other(TOO_LARGE));
        }
        let room = usize::try_from(MAX_RECORD_BYTES - spent).unwrap_or(usize::MAX);
        let n = buf.len().min(room);
        let got = self.inner.read(&mut buf[..n])?;
        self.spent.set(spent + got as u64);
        Ok(got)
    }
}

const TOO_LARGE: &str = "record too large";

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

/// A trail's log file: one object whose `Records` array is streamed.
fn read_log_file<R: Read, E>(input: R, sink: &mut Sink<'_, E>) -> Result<u64, ReadError<E>> {
    let spent = Rc::new(Cell::new(0));
    let reader = Budget {
        inner: input,
        spent: spent.clone(),
    };
    let mut de = serde_json::Deserializer::from_reader(reader);
    let mut state = State {
        sink,
        spent,
        records: 0,
        sink_error: None,
    };
    let result = FileSeed(&mut state).deserialize(&mut de).and_then(|found| {
        de.end()?;
        Ok(found)
    });
    if let Some(e) = state.sink_error.take() {
        return Err(ReadError::Sink(e));
    }
    match result {
        Ok(true) => Ok(state.records),
        Ok(false) => Err(CloudTrailError::NotCloudTrail {
            detail: "the object has no \"Records\" array".to_owned(),
        }
        .into()),
        Err(e) => Err(json_error(&e, state.records + 1).into()),
    }
}

fn json_error(e: &serde_json::Error, record: u64) -> CloudTrailError {
    let too_large = e.is_io()
        && std::error::Error::source(e).is_some_and(|s| s.to_string() == TOO_LARGE)
        || e.to_string().starts_with(TOO_LARGE);
    if too_large {
        CloudTrailError::TooLarge {
            record,
            limit: MAX_RECORD_BYTES,
        }
    } else if e.is_io() {
        CloudTrailError::Read {
            source: io::Error::other(e.to_string()),
        }
    } else {
        CloudTrailError::Json {
            record,
            detail: e.to_string(),
        }
    }
}

struct State<'s, 'a, E> {
    sink: &'s mut Sink<'a, E>,
    spent: Rc<Cell<u64>>,
    records: u64,
    sink_error: Option<E>,
}

/// The file's top-level object: answers whether it held `Records`.
struct FileSeed<'x, 's, 'a, E>(&'x mut State<'s, 'a, E>);

impl<'de, E> DeserializeSeed<'de> for FileSeed<'_, '_, '_, E> {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, E> Visitor<'de> for FileSeed<'_, '_, '_, E> {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "an object with a \"Records\" array")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let mut found = false;
        while let Some(key) = map.next_key::<KeyName>()? {
            if key.0.as_deref() == Some("Records") && !found {
                map.next_value_seed(RecordsSeed(&mut *self.0))?;
                found = true;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// The `Records` array, handed out one record at a time.
struct RecordsSeed<'x, 's, 'a, E>(&'x mut State<'s, 'a, E>);

impl<'de, E> DeserializeSeed<'de> for RecordsSeed<'_, '_, '_, E> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, E> Visitor<'de> for RecordsSeed<'_, '_, '_, E> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "an array of CloudTrail records")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        loop {
            self.0.spent.set(0);
            let Some(record) = seq.next_element::<Record>()? else {
                return Ok(());
            };
            self.0.records += 1;
            if let Err(e) = (self.0.sink)(record) {
                self.0.sink_error = Some(e);
                return Err(de::Error::custom("stopped by the reader of records"));
            }
        }
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
