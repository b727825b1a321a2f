//! Streaming export (JSON Lines and CSV) and the parser of export lines.
//!
//! A JSON Lines export is, one canonical JSON object per line:
//! 1. a header: `{"filter":{..},"format":"mfa-custody-export","ledger_id":"..","signature":"..","type":"header","version":1}`,
//!    where `signature` is the checkpoint key's Ed25519 signature over
//!    `"mfa-custody/export/header/v1\0" ‖` the canonical header without its `signature` field;
//! 2. every event from seq 1 to the checkpoint's seq, in order: events that match the filter as
//!    `{"actor","body","body_hash","hash","kind","prev","seq","time","type":"event"}`, the others
//!    as stubs with the same fields but no `body` and `"type":"stub"`;
//! 3. the signed checkpoint of the last event:
//!    `{"head","key_fingerprint","ledger_id","seq","signature","time","type":"checkpoint"}`.
//!
//! An export may leave out records that must not leave the ledger (the custody domain's sealed
//! credentials): an event whose body carries such a record in its `records` array is then a
//! `"type":"redacted"` line, with the event's fields, the body with each such record's
//! `record` replaced by `{"redacted":"sha256:<hex of the record's canonical bytes>"}`, and
//! `signature`: the checkpoint key's Ed25519 signature over
//! `"mfa-custody/export/redacted/v1\0" ‖ hash ‖` the redacted body. The chain still verifies
//! through `body_hash`, as for a stub; the redacted body is vouched for by that signature,
//! since a hash over the whole stored body cannot be checked without the bytes left out. The
//! header's `filter` then lists `redacted_entities`.
//!
//! Hashes, ids and signatures are lower-case hex; times are milliseconds since the Unix epoch.
//! Filters combine with AND; `account` and `device` match a top-level string (or integer) field
//! of that name in the body.

use std::io::Write;

use data_encoding::HEXLOWER;
use serde_json::{json, Map, Value};

use super::chain::{
    Checkpoint, CheckpointPublicKey, CheckpointSigner, Hash, LedgerId, SignedCheckpoint,
};
use super::error::LedgerError;
use super::event::{
    write_canonical, write_string, Actor, CanonicalJson, EventHeader, Kind, StoredEvent, Timestamp,
};
use super::store::{Ledger, RawRow, RowRef};

/// The export format version this build writes and reads.
pub const EXPORT_VERSION: u64 = 1;
const EXPORT_FORMAT: &str = "mfa-custody-export";
/// Longest export line accepted by the verifier, in bytes.
pub const MAX_LINE: usize = 4 * 1024 * 1024;

/// Which events an export carries with their bodies (the rest become stubs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExportFilter {
    /// Only events at or after this time.
    pub since: Option<Timestamp>,
    /// Only events before this time.
    pub until: Option<Timestamp>,
    /// Only these kinds (empty: all).
    pub kinds: Vec<Kind>,
    /// Only events whose body has this top-level `account`.
    pub account: Option<String>,
    /// Only events whose body has this top-level `device`.
    pub device: Option<String>,
    /// Only events by this actor.
    pub actor: Option<Actor>,
}

impl ExportFilter {
    /// Whether the event is exported with its body.
    pub fn matches(&self, ev: &StoredEvent) -> bool {
        self.matches_fields(&LineFields::of(&ev.header), ev.body.as_bytes())
    }

    /// [`ExportFilter::matches`] on an event's fields and body bytes.
    fn matches_fields(&self, h: &LineFields<'_>, body: &[u8]) -> bool {
        self.since.map_or(true, |t| h.time >= t)
            && self.until.map_or(true, |t| h.time < t)
            && (self.kinds.is_empty() || self.kinds.iter().any(|k| k.as_str() == h.kind))
            && self.actor.as_ref().map_or(true, |a| a.as_str() == h.actor)
            && self.body_fields_match(body)
    }

    /// The `account` and `device` criteria, parsing the body once and only when one is set
    /// and the body's bytes hold each value asked for.
    fn body_fields_match(&self, body: &[u8]) -> bool {
        if self.account.is_none() && self.device.is_none() {
            return true;
        }
        let asked = [&self.account, &self.device];
        if !asked
            .iter()
            .filter_map(|v| v.as_deref())
            .all(|v| may_hold(body, v))
        {
            return false;
        }
        let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let field = |name: &str| match body.get(name) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        self.account
            .as_ref()
            .map_or(true, |a| field("account").as_ref() == Some(a))
            && self
                .device
                .as_ref()
                .map_or(true, |d| field("device").as_ref() == Some(d))
    }

    fn to_json(&self) -> Value {
        let mut m = Map::new();
        if let Some(t) = self.since {
            m.insert("since".into(), json!(t.0));
        }
        if let Some(t) = self.until {
            m.insert("until".into(), json!(t.0));
        }
        if !self.kinds.is_empty() {
            m.insert(
                "kinds".into(),
                json!(self.kinds.iter().map(Kind::as_str).collect::<Vec<_>>()),
            );
        }
        if let Some(a) = &self.account {
            m.insert("account".into(), json!(a));
        }
        if let Some(d) = &self.device {
            m.insert("device".into(), json!(d));
        }
        if let Some(a) = &self.actor {
            m.insert("actor".into(), json!(a.as_str()));
        }
        Value::Object(m)
    }
}

/// Whether a canonical body can have a top-level field equal to `value` (a string, or an
/// integer whose digits it is): only when its bytes hold `value` as a JSON string's
/// content, escaped as canonical JSON escapes it (an integer is written as its digits, which
/// need no escape). A `false` spares parsing a body that cannot match.
fn may_hold(body: &[u8], value: &str) -> bool {
    let mut quoted = Vec::with_capacity(value.len() + 2);
    write_string(value, &mut quoted);
    let escaped = quoted
        .get(1..quoted.len().saturating_sub(1))
        .unwrap_or_default();
    contains(body, escaped)
}

/// Whether `needle` occurs in `haystack`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    let Some((&first, rest)) = needle.split_first() else {
        return true;
    };
    let mut at = 0;
    while let Some(i) = haystack
        .get(at..)
        .and_then(|h| h.iter().position(|&b| b == first))
    {
        let start = at + i + 1;
        if haystack.get(start..start + rest.len()) == Some(rest) {
            return true;
        }
        at = start;
    }
    false
}

/// An event's fields as an export line shows them, borrowed from a stored event or straight
/// from its row.
pub(crate) struct LineFields<'a> {
    seq: u64,
    time: Timestamp,
    /// A checked actor ([`Actor::check`]): never escaped in JSON.
    actor: &'a str,
    /// A checked kind ([`Kind::check`]): never escaped in JSON.
    kind: &'a str,
    body_hash: &'a Hash,
    prev: &'a Hash,
    hash: &'a Hash,
}

impl<'a> LineFields<'a> {
    fn of(h: &'a EventHeader) -> Self {
        Self {
            seq: h.seq,
            time: h.time,
            actor: h.actor.as_str(),
            kind: h.kind.as_str(),
            body_hash: &h.body_hash,
            prev: &h.prev,
            hash: &h.hash,
        }
    }
}

/// Output format of an export.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    /// JSON Lines, verifiable with `custody audit verify`.
    JsonLines,
    /// CSV (RFC 4180) for spreadsheets: `record,seq,time,actor,kind,body,body_hash,prev,hash,signature`,
    /// a `note` row saying it proves nothing, formula cells neutralised ([`CSV_NOTE`]).
    Csv,
}

/// What an export wrote.
#[derive(Clone, Debug)]
pub struct ExportSummary {
    /// Events written with their bodies.
    pub events: u64,
    /// Events written as stubs.
    pub stubs: u64,
    /// The checkpoint that ends the export.
    pub checkpoint: SignedCheckpoint,
}

/// Writes a signed checkpoint of the current head, then every event up to it, to `out`,
/// streaming (one event in memory at a time).
pub fn export(
    ledger: &mut Ledger,
    filter: &ExportFilter,
    format: ExportFormat,
    out: &mut dyn Write,
) -> Result<ExportSummary, LedgerError> {
    export_redacted(ledger, filter, format, &[], out)
}

/// Reader threads of an export (the host has two cores; encoding the lines is the lighter part).
const EXPORT_READERS: usize = 2;

const REDACTION_TAG: &[u8] = b"mfa-custody/export/redacted/v1\0";

/// The bytes a redacted line's signature covers: a tag, the event's hash, the redacted body.
pub(crate) fn redaction_signed_bytes(hash: &Hash, redacted_body: &[u8]) -> Vec<u8> {
    let mut m = REDACTION_TAG.to_vec();
    m.extend_from_slice(&hash.0);
    m.extend_from_slice(redacted_body);
    m
}

/// The body with every `records` entry of one of `entities` replaced by the digest of its
/// record, or `None` when the body carries none.
pub fn redact_body(body: &CanonicalJson, entities: &[&str]) -> Option<CanonicalJson> {
    redact_bytes(body.as_bytes(), entities)
}

/// [`redact_body`] on a canonical body's bytes. A body without a top-level `records` field
/// (its bytes never hold `"records":`) is not parsed.
fn redact_bytes(body: &[u8], entities: &[&str]) -> Option<CanonicalJson> {
    if entities.is_empty() || !contains(body, b"\"records\":") {
        return None;
    }
    let mut value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let records = value.get_mut("records")?.as_array_mut()?;
    let mut changed = false;
    for r in records.iter_mut() {
        let secret = r
            .get("entity")
            .and_then(Value::as_str)
            .is_some_and(|e| entities.contains(&e));
        if !secret {
            continue;
        }
        if let Some(record) = r.get_mut("record") {
            let mut bytes = Vec::new();
            // Stored bodies are canonical, so their parts encode.
            let _ = write_canonical(record, &mut bytes);
            let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
            bytes.fill(0);
            *record = json!({"redacted": format!("sha256:{}", HEXLOWER.encode(digest.as_ref()))});
            changed = true;
        }
    }
    if !changed {
        return None;
    }
    CanonicalJson::from_value(&value).ok()
}

/// Encodes a redacted event as one canonical JSON line, no newline.
fn encode_redacted_line(
    h: &LineFields<'_>,
    body: &CanonicalJson,
    signature: &[u8; 64],
    out: &mut Vec<u8>,
) {
    let v = json!({
        "type": "redacted",
        "actor": h.actor,
        "body": body.to_value(),
        "body_hash": h.body_hash.to_hex(),
        "hash": h.hash.to_hex(),
        "kind": h.kind,
        "prev": h.prev.to_hex(),
        "seq": h.seq,
        "time": h.time.0,
        "signature": HEXLOWER.encode(signature),
    });
    let _ = write_canonical(&v, out);
}

/// The export lines (or CSV rows) of one chunk of events, encoded on a reader thread of
/// [`Ledger::scan_batches_on`]: the lines of its rows up to the first that fails, and that
/// failure.
struct LineBatch {
    out: Vec<u8>,
    events: u64,
    stubs: u64,
    failed: Option<LedgerError>,
}

impl LineBatch {
    /// A batch in a buffer the writer gave back, or a new one: buffers of a megabyte made and
    /// dropped for every chunk would each be mapped, faulted in and unmapped by the kernel.
    fn new(spare: &std::sync::Mutex<Vec<Vec<u8>>>) -> Self {
        let out = spare
            .lock()
            .ok()
            .and_then(|mut s| s.pop())
            .unwrap_or_else(|| Vec::with_capacity(LINE_BATCH_BYTES));
        Self {
            out,
            events: 0,
            stubs: 0,
            failed: None,
        }
    }
}

/// What a batch of lines starts with room for (a chunk of rows of about 450 bytes).
const LINE_BATCH_BYTES: usize = 1 << 20;

/// How the export turns rows into lines, shared by its reader threads.
struct LineEncoder<'a> {
    filter: &'a ExportFilter,
    format: ExportFormat,
    entities: &'a [&'a str],
    signer: &'a CheckpointSigner,
}

impl LineEncoder<'_> {
    /// Adds a row's line to the batch, or its failure (after which the batch takes no more).
    fn add(&self, batch: &mut LineBatch, row: &rusqlite::Row<'_>) -> rusqlite::Result<()> {
        if batch.failed.is_some() {
            return Ok(());
        }
        let encoded = match RowRef::from_row(row)? {
            Some(r) => r.check().map(|hashes| {
                let fields = LineFields {
                    seq: r.seq(),
                    time: Timestamp(r.time),
                    actor: r.actor,
                    kind: r.kind,
                    body_hash: &hashes.body_hash,
                    prev: &hashes.prev,
                    hash: &hashes.hash,
                };
                self.encode(&fields, r.body, batch);
            }),
            // A column of another type than the schema's: read as the other passes read it.
            None => RawRow::from_row(row)?.into_event().map(|ev| {
                self.encode(&LineFields::of(&ev.header), ev.body.as_bytes(), batch);
            }),
        };
        if let Err(e) = encoded {
            batch.failed = Some(e);
        }
        Ok(())
    }

    /// Encodes a checked event (`body` canonical) as its line: with its body, as a stub, or
    /// redacted and signed.
    fn encode(&self, h: &LineFields<'_>, body: &[u8], batch: &mut LineBatch) {
        let with_body = self.filter.matches_fields(h, body);
        if with_body {
            batch.events += 1;
        } else {
            batch.stubs += 1;
        }
        let redacted = with_body
            .then(|| redact_bytes(body, self.entities))
            .flatten();
        let out = &mut batch.out;
        match (self.format, redacted) {
            (ExportFormat::JsonLines, Some(body)) => {
                let signature = self
                    .signer
                    .sign_raw(&redaction_signed_bytes(h.hash, body.as_bytes()));
                encode_redacted_line(h, &body, &signature, out);
                out.push(b'\n');
            }
            (ExportFormat::Csv, Some(body)) => {
                let signature = self
                    .signer
                    .sign_raw(&redaction_signed_bytes(h.hash, body.as_bytes()));
                encode_redacted_csv(h, &body, &signature, out);
            }
            (ExportFormat::JsonLines, None) => {
                encode_fields_line(h, with_body.then_some(body), out);
                out.push(b'\n');
            }
            (ExportFormat::Csv, None) => encode_event_csv(h, with_body.then_some(body), out),
        }
    }
}

/// [`export`], leaving out the records of `entities` (see the module's documentation): the
/// events that carry one are written as signed `redacted` lines.
pub fn export_redacted(
    ledger: &mut Ledger,
    filter: &ExportFilter,
    format: ExportFormat,
    entities: &[&str],
    out: &mut dyn Write,
) -> Result<ExportSummary, LedgerError> {
    let checkpoint = ledger.checkpoint()?;
    let key = ledger.public_key();
    let w = |r: std::io::Result<()>| r.map_err(|source| LedgerError::Output { source });
    let mut line = Vec::with_capacity(512);
    match format {
        ExportFormat::JsonLines => {
            line.clear();
            let mut header = json!({
                "type": "header",
                "format": EXPORT_FORMAT,
                "version": EXPORT_VERSION,
                "ledger_id": ledger.ledger_id().to_hex(),
                "filter": filter.to_json(),
            });
            if !entities.is_empty() {
                header["filter"]["redacted_entities"] = json!(entities);
            }
            let signature = ledger.sign_export_header(&header_signed_bytes(&header));
            if let Value::Object(m) = &mut header {
                m.insert("signature".into(), json!(HEXLOWER.encode(&signature)));
            }
            // The header holds strings and integers only.
            let _ = write_canonical(&header, &mut line);
            line.push(b'\n');
            w(out.write_all(&line))?;
        }
        ExportFormat::Csv => {
            w(out.write_all(b"record,seq,time,actor,kind,body,body_hash,prev,hash,signature\r\n"))?;
            csv_row(
                &["note", "", "", "", "", CSV_NOTE, "", "", "", ""],
                &mut line,
            );
            w(out.write_all(&line))?;
        }
    }
    let (mut events, mut stubs) = (0u64, 0u64);
    let last = i64::try_from(checkpoint.checkpoint.seq).unwrap_or(i64::MAX);
    let encoder = LineEncoder {
        filter,
        format,
        entities,
        signer: ledger.signer(),
    };
    let readers = (0..EXPORT_READERS)
        .map(|_| ledger.second_connection())
        .collect::<Result<Vec<_>, _>>()?;
    let spare = std::sync::Mutex::new(Vec::new());
    ledger.scan_batches_on(
        readers,
        1,
        last,
        || LineBatch::new(&spare),
        |batch, row| encoder.add(batch, row),
        |mut batch| {
            events += batch.events;
            stubs += batch.stubs;
            w(out.write_all(&batch.out))?;
            batch.out.clear();
            if let Ok(mut s) = spare.lock() {
                s.push(std::mem::take(&mut batch.out));
            }
            batch.failed.map_or(Ok(()), Err)
        },
    )?;
    line.clear();
    match format {
        ExportFormat::JsonLines => {
            line.extend_from_slice(checkpoint_line(&checkpoint, &key).as_bytes());
            line.push(b'\n');
        }
        ExportFormat::Csv => {
            let c = &checkpoint.checkpoint;
            csv_row(
                &[
                    "checkpoint",
                    &c.seq.to_string(),
                    &c.time.0.to_string(),
                    "",
                    "",
                    "",
                    "",
                    "",
                    &c.head.to_hex(),
                    &HEXLOWER.encode(&checkpoint.signature),
                ],
                &mut line,
            );
        }
    }
    w(out.write_all(&line))?;
    w(out.flush())?;
    Ok(ExportSummary {
        events,
        stubs,
        checkpoint,
    })
}

const HEADER_TAG: &[u8] = b"mfa-custody/export/header/v1\0";

/// The bytes the header signature covers: a tag and the canonical header without `signature`.
pub(crate) fn header_signed_bytes(header_without_signature: &Value) -> Vec<u8> {
    let mut m = HEADER_TAG.to_vec();
    // Headers hold strings, integers and the filter object only.
    let _ = write_canonical(header_without_signature, &mut m);
    m
}

/// Encodes an event (with body) or a stub (without) as one canonical JSON line, no newline.
pub fn encode_event_line(h: &EventHeader, body: Option<&CanonicalJson>, out: &mut Vec<u8>) {
    encode_fields_line(&LineFields::of(h), body.map(CanonicalJson::as_bytes), out);
}

/// [`encode_event_line`] from the fields and the canonical body's bytes, written straight
/// into `out` in canonical order (keys sorted).
fn encode_fields_line(h: &LineFields<'_>, body: Option<&[u8]>, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"actor\":");
    push_name(h.actor, out);
    if let Some(body) = body {
        out.extend_from_slice(b",\"body\":");
        out.extend_from_slice(body);
    }
    out.extend_from_slice(b",\"body_hash\":\"");
    push_hex(h.body_hash, out);
    out.extend_from_slice(b"\",\"hash\":\"");
    push_hex(h.hash, out);
    out.extend_from_slice(b"\",\"kind\":");
    push_name(h.kind, out);
    out.extend_from_slice(b",\"prev\":\"");
    push_hex(h.prev, out);
    out.extend_from_slice(b"\",\"seq\":");
    push_u64(h.seq, out);
    out.extend_from_slice(b",\"time\":");
    if h.time.0 < 0 {
        out.push(b'-');
    }
    push_u64(h.time.0.unsigned_abs(), out);
    out.extend_from_slice(if body.is_some() {
        b",\"type\":\"event\"}"
    } else {
        b",\"type\":\"stub\"}"
    });
}

/// Appends a checked actor or kind as a JSON string: their characters are never escaped
/// ([`Actor::check`], [`Kind::check`]), so the string is the name between quotes, as
/// canonical JSON writes it.
fn push_name(name: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    out.extend_from_slice(name.as_bytes());
    out.push(b'"');
}

/// Appends `n` in decimal, as JSON writes an integer.
fn push_u64(mut n: u64, out: &mut Vec<u8>) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        // `n % 10` is a single digit.
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// Appends a hash's lower-case hex (as [`Hash::to_hex`]) without a temporary string.
fn push_hex(hash: &Hash, out: &mut Vec<u8>) {
    let start = out.len();
    out.resize(start + HEXLOWER.encode_len(hash.0.len()), 0);
    HEXLOWER.encode_mut(&hash.0, &mut out[start..]);
}

/// The canonical JSON line (no newline) of a signed checkpoint, as ending an export and as
/// printed by `custody audit checkpoint`.
pub fn checkpoint_line(cp: &SignedCheckpoint, key: &CheckpointPublicKey) -> String {
    let c = &cp.checkpoint;
    let v = json!({
        "type": "checkpoint",
        "ledger_id": c.ledger_id.to_hex(),
        "seq": c.seq,
        "head": c.head.to_hex(),
        "time": c.time.0,
        "signature": HEXLOWER.encode(&cp.signature),
        "key_fingerprint": key.fingerprint(),
    });
    let mut out = Vec::new();
    let _ = write_canonical(&v, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

fn encode_redacted_csv(
    h: &LineFields<'_>,
    body: &CanonicalJson,
    signature: &[u8; 64],
    out: &mut Vec<u8>,
) {
    csv_row(
        &[
            "redacted",
            &h.seq.to_string(),
            &h.time.0.to_string(),
            h.actor,
            h.kind,
            &String::from_utf8_lossy(body.as_bytes()),
            &h.body_hash.to_hex(),
            &h.prev.to_hex(),
            &h.hash.to_hex(),
            &HEXLOWER.encode(signature),
        ],
        out,
    );
}

fn encode_event_csv(h: &LineFields<'_>, body: Option<&[u8]>, out: &mut Vec<u8>) {
    let shown = body.map(String::from_utf8_lossy).unwrap_or_default();
    csv_row(
        &[
            if body.is_some() { "event" } else { "stub" },
            &h.seq.to_string(),
            &h.time.0.to_string(),
            h.actor,
            h.kind,
            &shown,
            &h.body_hash.to_hex(),
            &h.prev.to_hex(),
            &h.hash.to_hex(),
            "",
        ],
        out,
    );
}

/// What a CSV export can and cannot prove, in its second row.
pub const CSV_NOTE: &str = "This CSV is for reading only and proves nothing: nothing can verify it, and a spreadsheet may change it. The hashes and signatures are copied from the ledger but checked by nothing here. To prove what the ledger holds, export JSON Lines (custody audit export --format jsonl) and run custody audit verify. Cells that a spreadsheet would run as a formula start with an apostrophe.";

/// Appends one CSV row (RFC 4180). A cell that a spreadsheet would run as a formula (one that
/// starts with `=`, `+`, `-`, `@`, a tab or a carriage return, OWASP's "CSV Injection" list)
/// is neutralised with a leading apostrophe, which spreadsheets show as text.
fn csv_row(fields: &[&str], out: &mut Vec<u8>) {
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let neutral;
        let f = if f.starts_with(['=', '+', '-', '@', '\t', '\r']) {
            neutral = format!("'{f}");
            neutral.as_str()
        } else {
            f
        };
        if f.contains([',', '"', '\r', '\n']) {
            out.push(b'"');
            out.extend_from_slice(f.replace('"', "\"\"").as_bytes());
            out.push(b'"');
        } else {
            out.extend_from_slice(f.as_bytes());
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// One parsed line of a JSON Lines export.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExportLine {
    /// The first line.
    Header {
        /// The exported ledger.
        ledger_id: LedgerId,
        /// The filter that was applied.
        filter: Value,
        /// The bytes the signature covers.
        signed: Vec<u8>,
        /// Ed25519 signature of the checkpoint key over `signed`.
        signature: [u8; 64],
    },
    /// An event with its body.
    Event(StoredEvent),
    /// An event without its body.
    Stub(EventHeader),
    /// An event whose body is shown with secret records replaced by their digests.
    Redacted {
        /// The event's fields and the redacted body (which does not match `body_hash`).
        event: StoredEvent,
        /// The checkpoint key's signature over the event's hash and the redacted body.
        signature: [u8; 64],
    },
    /// The signed checkpoint that ends the export.
    Checkpoint {
        /// The checkpoint.
        checkpoint: SignedCheckpoint,
        /// Fingerprint of the key that signed it, as the exporter claims.
        key_fingerprint: String,
    },
}

/// Why an export line does not parse.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LineError {
    /// Not JSON.
    #[error("not JSON: {source}")]
    NotJson {
        /// The parser's complaint.
        #[source]
        source: serde_json::Error,
    },
    /// JSON, but not canonical (key order, whitespace, escapes, non-integer numbers).
    #[error("line is not canonical JSON")]
    NotCanonical,
    /// No `type` field, or an unknown one.
    #[error("unknown line type {found:?}")]
    UnknownType {
        /// The type found.
        found: String,
    },
    /// A required field is missing.
    #[error("missing field {field}")]
    Missing {
        /// The field.
        field: &'static str,
    },
    /// A field that does not belong to this line type.
    #[error("unexpected field {field:?}")]
    Unexpected {
        /// The field.
        field: String,
    },
    /// A field with a wrong value.
    #[error("field {field}: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// An unsupported format or version.
    #[error("not an mfa-custody export version {EXPORT_VERSION}: {found}")]
    Version {
        /// What the header says.
        found: String,
    },
}

struct Fields(Map<String, Value>);

impl Fields {
    fn take(&mut self, field: &'static str) -> Result<Value, LineError> {
        self.0.remove(field).ok_or(LineError::Missing { field })
    }
    fn str(&mut self, field: &'static str) -> Result<String, LineError> {
        match self.take(field)? {
            Value::String(s) => Ok(s),
            _ => Err(invalid(field, "expected a string")),
        }
    }
    fn u64(&mut self, field: &'static str) -> Result<u64, LineError> {
        self.take(field)?
            .as_u64()
            .ok_or_else(|| invalid(field, "expected a non-negative integer"))
    }
    fn i64(&mut self, field: &'static str) -> Result<i64, LineError> {
        self.take(field)?
            .as_i64()
            .ok_or_else(|| invalid(field, "expected an integer"))
    }
    fn hash(&mut self, field: &'static str) -> Result<Hash, LineError> {
        let s = self.str(field)?;
        Hash::from_hex(&s).ok_or_else(|| invalid(field, "expected 64 lower-case hex digits"))
    }
    fn done(self) -> Result<(), LineError> {
        match self.0.into_iter().next() {
            None => Ok(()),
            Some((field, _)) => Err(LineError::Unexpected { field }),
        }
    }
}

fn decode_signature(sig: &str) -> Result<[u8; 64], LineError> {
    HEXLOWER
        .decode(sig.as_bytes())
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| invalid("signature", "expected 128 lower-case hex digits"))
}

fn invalid(field: &'static str, reason: impl Into<String>) -> LineError {
    LineError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// Parses one export line (without its newline). Pure: no I/O, no panics on any input.
pub fn parse_export_line(bytes: &[u8]) -> Result<ExportLine, LineError> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|source| LineError::NotJson { source })?;
    let mut again = Vec::with_capacity(bytes.len());
    if write_canonical(&value, &mut again).is_err() || again != bytes {
        return Err(LineError::NotCanonical);
    }
    let Value::Object(map) = value else {
        return Err(LineError::UnknownType {
            found: "(not an object)".into(),
        });
    };
    let mut f = Fields(map);
    let ty = f.str("type").map_err(|_| LineError::UnknownType {
        found: "(none)".into(),
    })?;
    let line = match ty.as_str() {
        "header" => {
            let format = f.str("format")?;
            let version = f.u64("version")?;
            if format != EXPORT_FORMAT || version != EXPORT_VERSION {
                return Err(LineError::Version {
                    found: format!("{format} version {version}"),
                });
            }
            let id = f.str("ledger_id")?;
            let ledger_id = LedgerId::from_hex(&id)
                .ok_or_else(|| invalid("ledger_id", "expected 32 lower-case hex digits"))?;
            let filter = f.take("filter")?;
            if !filter.is_object() {
                return Err(invalid("filter", "expected an object"));
            }
            let signature = decode_signature(&f.str("signature")?)?;
            let signed = header_signed_bytes(&json!({
                "type": "header",
                "format": format,
                "version": version,
                "ledger_id": id,
                "filter": filter,
            }));
            ExportLine::Header {
                ledger_id,
                filter,
                signed,
                signature,
            }
        }
        "event" | "stub" | "redacted" => {
            let body = if ty != "stub" {
                let b = f.take("body")?;
                Some(CanonicalJson::from_value(&b).map_err(|e| invalid("body", e.to_string()))?)
            } else {
                None
            };
            let actor =
                Actor::parse(&f.str("actor")?).map_err(|e| invalid("actor", e.to_string()))?;
            let kind = Kind::parse(&f.str("kind")?).map_err(|e| invalid("kind", e.to_string()))?;
            let seq = f.u64("seq")?;
            if seq == 0 || seq > i64::MAX as u64 {
                return Err(invalid("seq", "must be between 1 and 2^63-1"));
            }
            let header = EventHeader {
                seq,
                time: Timestamp(f.i64("time")?),
                actor,
                kind,
                body_hash: f.hash("body_hash")?,
                prev: f.hash("prev")?,
                hash: f.hash("hash")?,
            };
            match body {
                Some(body) if ty == "redacted" => ExportLine::Redacted {
                    event: StoredEvent { header, body },
                    signature: decode_signature(&f.str("signature")?)?,
                },
                Some(body) => ExportLine::Event(StoredEvent { header, body }),
                None => ExportLine::Stub(header),
            }
        }
        "checkpoint" => {
            let id = f.str("ledger_id")?;
            let ledger_id = LedgerId::from_hex(&id)
                .ok_or_else(|| invalid("ledger_id", "expected 32 lower-case hex digits"))?;
            let signature = decode_signature(&f.str("signature")?)?;
            let checkpoint = SignedCheckpoint {
                checkpoint: Checkpoint {
                    ledger_id,
                    seq: f.u64("seq")?,
                    head: f.hash("head")?,
                    time: Timestamp(f.i64("time")?),
                },
                signature,
            };
            ExportLine::Checkpoint {
                checkpoint,
                key_fingerprint: f.str("key_fingerprint")?,
            }
        }
        _ => return Err(LineError::UnknownType { found: ty }),
    };
    f.done()?;
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::chain::{body_hash, event_hash};
    use proptest::prelude::*;

    fn body(v: serde_json::Value) -> CanonicalJson {
        CanonicalJson::from_value(&v).expect("canonical")
    }

    /// The byte test before the body is parsed never turns a match into a stub: top-level
    /// strings (escaped or not) and integers match, nested fields and near misses do not.
    #[test]
    fn account_and_device_filters_match_after_the_byte_test_as_before() {
        let filter = |account: &str| ExportFilter {
            account: Some(account.to_owned()),
            ..ExportFilter::default()
        };
        let cases = [
            (
                serde_json::json!({"account": "123456789012"}),
                "123456789012",
                true,
            ),
            (
                serde_json::json!({"account": 123456789012u64}),
                "123456789012",
                true,
            ),
            (serde_json::json!({"account": -7}), "-7", true),
            (
                serde_json::json!({"account": "a\"b\\c\u{1}"}),
                "a\"b\\c\u{1}",
                true,
            ),
            (serde_json::json!({"account": "x\u{e9}y"}), "x\u{e9}y", true),
            (
                serde_json::json!({"account": "1234567890123"}),
                "123456789012",
                false,
            ),
            (
                serde_json::json!({"other": {"account": "123456789012"}}),
                "123456789012",
                false,
            ),
            (
                serde_json::json!({"note": "123456789012"}),
                "123456789012",
                false,
            ),
            (serde_json::json!({"account": "abc"}), "a\"c", false),
        ];
        for (v, account, expected) in cases {
            let b = body(v.clone());
            assert_eq!(
                filter(account).body_fields_match(b.as_bytes()),
                expected,
                "{v} against {account:?}"
            );
        }
        let both = ExportFilter {
            account: Some("1".into()),
            device: Some("YK-2".into()),
            ..ExportFilter::default()
        };
        assert!(both.body_fields_match(
            body(serde_json::json!({"account": 1, "device": "YK-2"})).as_bytes()
        ));
        assert!(!both.body_fields_match(
            body(serde_json::json!({"account": 1, "device": "YK-3"})).as_bytes()
        ));
    }

    /// A body with no top-level `records` is shown as it is; one with a secret record is
    /// redacted, with the record's digest.
    #[test]
    fn only_bodies_with_records_are_redacted() {
        let entities = ["credential"];
        let plain = body(serde_json::json!({"note": "records", "x": {"records": []}}));
        assert!(redact_body(&plain, &entities).is_none());
        let secret = body(serde_json::json!({
            "records": [{"entity": "credential", "record": {"seed": "c2VjcmV0"}}]
        }));
        let redacted = redact_body(&secret, &entities).expect("redacted");
        let text = String::from_utf8_lossy(redacted.as_bytes()).into_owned();
        assert!(text.contains("sha256:"), "{text}");
        assert!(!text.contains("c2VjcmV0"), "{text}");
    }

    #[test]
    fn csv_cells_a_spreadsheet_would_run_are_neutralised() {
        let mut out = Vec::new();
        csv_row(
            &[
                "=cmd|' /C calc'!A0",
                "+1",
                "-2",
                "@SUM(A1)",
                "\tx",
                "plain",
                "a,\"b\"",
                "1",
            ],
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            "'=cmd|' /C calc'!A0,'+1,'-2,'@SUM(A1),'\tx,plain,\"a,\"\"b\"\"\",1\r\n"
        );
        let mut out = Vec::new();
        csv_row(&["\r=1"], &mut out);
        assert_eq!(out, b"\"'\r=1\"\r\n");
    }

    fn arb_event() -> impl Strategy<Value = (StoredEvent, bool)> {
        (
            1u64..u64::from(u32::MAX),
            any::<i64>(),
            "[a-z0-9._+@:-]{1,20}",
            "[a-z0-9._-]{1,20}",
            prop::collection::btree_map(
                "[a-z\u{e9}\"\\\\ ]{0,6}",
                prop_oneof![
                    any::<i64>().prop_map(|n| json!(n)),
                    ".{0,10}".prop_map(|s| json!(s))
                ],
                0..5,
            ),
            any::<bool>(),
        )
            .prop_map(|(seq, time, actor, kind, body, with_body)| {
                let actor = Actor::parse(&actor).expect("actor");
                let kind = Kind::parse(&kind).expect("kind");
                let body = CanonicalJson::from_value(&Value::Object(body.into_iter().collect()))
                    .expect("body");
                let bh = body_hash(body.as_bytes());
                let prev = Hash([seq as u8; 32]);
                let hash = event_hash(seq, &prev, Timestamp(time), &actor, &kind, &bh);
                (
                    StoredEvent {
                        header: EventHeader {
                            seq,
                            time: Timestamp(time),
                            actor,
                            kind,
                            body_hash: bh,
                            prev,
                            hash,
                        },
                        body,
                    },
                    with_body,
                )
            })
    }

    proptest! {
        #[test]
        fn export_lines_round_trip((ev, with_body) in arb_event()) {
            let mut line = Vec::new();
            encode_event_line(&ev.header, with_body.then_some(&ev.body), &mut line);
            let parsed = parse_export_line(&line).expect("parses");
            if with_body {
                prop_assert_eq!(parsed, ExportLine::Event(ev));
            } else {
                prop_assert_eq!(parsed, ExportLine::Stub(ev.header));
            }
        }

        #[test]
        fn parser_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_export_line(&bytes);
        }
    }

    #[test]
    fn checkpoint_line_round_trip() {
        let cp = SignedCheckpoint {
            checkpoint: Checkpoint {
                ledger_id: LedgerId([1; 16]),
                seq: 3,
                head: Hash([2; 32]),
                time: Timestamp(4),
            },
            signature: [5; 64],
        };
        let key = CheckpointPublicKey([6; 32]);
        let line = checkpoint_line(&cp, &key);
        assert_eq!(
            parse_export_line(line.as_bytes()).expect("parses"),
            ExportLine::Checkpoint {
                checkpoint: cp,
                key_fingerprint: key.fingerprint()
            }
        );
    }

    #[test]
    fn fail_lines() {
        for bad in [
            &b""[..],
            b"{}",
            b"{\"type\":\"nope\"}",
            b"{\"type\":\"stub\"}",
            b"{ \"type\":\"stub\"}",
            b"[1,2]",
        ] {
            assert!(parse_export_line(bad).is_err());
        }
    }
}
