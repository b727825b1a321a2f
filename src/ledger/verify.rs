//! Verification: of an export, offline with only the pinned public key ([`verify_export`]), and
//! of the live ledger, chain and projections ([`verify_ledger`]).

use std::io::BufRead;

use rusqlite::types::Value as SqlValue;
use rusqlite::Connection;

use super::chain::{
    body_hash, event_hash, event_hash_of, CheckpointPublicKey, CheckpointSigner, Hash, LedgerId,
    SignedCheckpoint,
};
use super::error::{ChainProblem, LedgerError};
use super::event::{EventHeader, StoredEvent, Timestamp};
use super::export::{parse_export_line, redaction_signed_bytes, ExportLine, LineError, MAX_LINE};
use super::projection::Projections;
use super::store::{Ledger, RawRow, RowRef};

/// What is wrong with an export, at a line.
#[derive(Debug, thiserror::Error)]
#[error("line {line}{}: {problem}", seq.map(|s| format!(" (seq {s})")).unwrap_or_default())]
pub struct ExportFailure {
    /// 1-based line number.
    pub line: u64,
    /// The seq of the event on or expected at that line, when there is one.
    pub seq: Option<u64>,
    /// What is wrong.
    #[source]
    pub problem: ExportProblem,
}

/// The kinds of export failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportProblem {
    /// Reading the input failed.
    #[error("reading the export failed: {0}")]
    Io(#[source] std::io::Error),
    /// The line is longer than [`MAX_LINE`].
    #[error("line longer than {MAX_LINE} bytes")]
    LineTooLong,
    /// The line does not parse.
    #[error("malformed line: {0}")]
    Malformed(#[source] LineError),
    /// The first line is not the export header.
    #[error("the first line must be the export header")]
    MissingHeader,
    /// The header's signature does not verify with the pinned key (edited header or wrong key).
    #[error("export header signature does not verify with the pinned public key")]
    BadHeaderSignature,
    /// A second header.
    #[error("unexpected header line")]
    UnexpectedHeader,
    /// The export is empty.
    #[error("the export is empty")]
    Empty,
    /// Events are missing, repeated or out of order.
    #[error(
        "expected seq {expected}, found seq {found} (an event was deleted, duplicated or moved)"
    )]
    SeqOutOfOrder {
        /// The seq that should come next.
        expected: u64,
        /// The seq found.
        found: u64,
    },
    /// `prev` does not match the previous event's hash.
    #[error("prev hash does not match the previous event's hash")]
    BrokenLink,
    /// The body does not match `body_hash`.
    #[error("body does not match body_hash (the body was edited)")]
    BodyHashMismatch,
    /// A redacted event's signature does not verify with the pinned key: its shown body was
    /// edited, or it was not made by the exporting ledger.
    #[error("the redacted body's signature does not verify with the pinned public key (the body shown was edited)")]
    BadRedactionSignature,
    /// The fields do not match `hash`.
    #[error("hash does not match the event's fields (seq, prev, time, actor, kind or body_hash was edited)")]
    HashMismatch,
    /// The event's time is before the previous event's: times never go backwards in a ledger.
    #[error("time {} ms is before the previous event's {} ms", time.0, previous.0)]
    TimeWentBackwards {
        /// This event's time.
        time: Timestamp,
        /// The previous event's time.
        previous: Timestamp,
    },
    /// A checkpoint line before any event.
    #[error("checkpoint before any event")]
    CheckpointWithoutEvents,
    /// The checkpoint is for another ledger than the header says.
    #[error("checkpoint is for ledger {found}, the export header says {expected}")]
    LedgerIdMismatch {
        /// From the header (or the `--after` checkpoint).
        expected: LedgerId,
        /// From the checkpoint.
        found: LedgerId,
    },
    /// The checkpoint names another signing key than the one given.
    #[error("checkpoint claims key fingerprint {found}, the pinned key is {expected}")]
    WrongKey {
        /// Fingerprint of the pinned key.
        expected: String,
        /// Fingerprint on the checkpoint line.
        found: String,
    },
    /// The checkpoint's signature does not verify with the pinned key.
    #[error("checkpoint signature does not verify with the pinned public key")]
    BadSignature,
    /// The checkpoint does not sign the last event.
    #[error("checkpoint signs seq {seq} head {head}, but the last event is seq {last_seq} hash {last_hash}")]
    CheckpointMismatch {
        /// Seq in the checkpoint.
        seq: u64,
        /// Head in the checkpoint.
        head: Hash,
        /// Last event's seq.
        last_seq: u64,
        /// Last event's hash.
        last_hash: Hash,
    },
    /// Lines after the checkpoint.
    #[error("line after the final checkpoint")]
    LineAfterCheckpoint,
    /// No checkpoint at the end: the export was truncated.
    #[error("no checkpoint at the end of the export (truncated)")]
    MissingCheckpoint,
    /// The `--after` checkpoint's signature does not verify.
    #[error("the earlier checkpoint's signature does not verify with the pinned public key")]
    AfterBadSignature,
    /// The export does not contain the earlier checkpoint's head: history was rewritten.
    #[error("event hash {found} differs from the earlier checkpoint's head {expected}: history was rewritten")]
    AfterNotExtended {
        /// Head in the earlier checkpoint.
        expected: Hash,
        /// Hash found at that seq.
        found: Hash,
    },
    /// The export ends before the earlier checkpoint's seq.
    #[error("the export ends at seq {last} before the earlier checkpoint's seq {after}")]
    AfterBeyondExport {
        /// Earlier checkpoint's seq.
        after: u64,
        /// Last seq in the export.
        last: u64,
    },
}

/// What a valid export contains.
#[derive(Clone, Debug)]
pub struct VerifiedExport {
    /// The ledger.
    pub ledger_id: LedgerId,
    /// Events with bodies.
    pub events: u64,
    /// Stubs.
    pub stubs: u64,
    /// Events shown with secret records left out (signed redacted bodies).
    pub redacted: u64,
    /// The final checkpoint.
    pub checkpoint: SignedCheckpoint,
}

/// Verifies a JSON Lines export offline: the header, every hash and link from seq 1, that event
/// times never go backwards, the final checkpoint's signature with the pinned key, and with `after`, that the export extends that
/// earlier checkpoint. Reads line by line in constant memory.
pub fn verify_export(
    input: impl BufRead,
    key: &CheckpointPublicKey,
    after: Option<&SignedCheckpoint>,
) -> Result<VerifiedExport, ExportFailure> {
    verify_export_observed(input, key, after, &mut |_| {})
}

/// [`verify_export`], handing every line that parses to `seen` as it is read, so a caller can
/// build a view of the export (a report) in the same pass. `seen` gets lines that have not been
/// checked yet: whatever it builds is only trustworthy once this returns `Ok`.
pub fn verify_export_observed(
    mut input: impl BufRead,
    key: &CheckpointPublicKey,
    after: Option<&SignedCheckpoint>,
    seen: &mut dyn FnMut(&ExportLine),
) -> Result<VerifiedExport, ExportFailure> {
    let fail = |line: u64, seq: Option<u64>, problem| ExportFailure { line, seq, problem };
    if let Some(a) = after {
        if !a.verify(key) {
            return Err(fail(
                0,
                Some(a.checkpoint.seq),
                ExportProblem::AfterBadSignature,
            ));
        }
    }
    let mut buf = Vec::with_capacity(1024);
    let mut lineno = 0u64;
    let mut ledger_id: Option<LedgerId> = None;
    let mut last: Option<EventHeader> = None;
    let (mut events, mut stubs, mut redacted) = (0u64, 0u64, 0u64);
    let mut finished: Option<SignedCheckpoint> = None;
    loop {
        buf.clear();
        let n = std::io::Read::take(&mut input, MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|e| fail(lineno + 1, None, ExportProblem::Io(e)))?;
        if n == 0 {
            break;
        }
        lineno += 1;
        if buf.last() == Some(&b'\n') {
            buf.pop();
        } else if buf.len() > MAX_LINE {
            return Err(fail(lineno, None, ExportProblem::LineTooLong));
        }
        let expected_seq = last.as_ref().map_or(1, |h| h.seq + 1);
        if finished.is_some() {
            if buf.is_empty() {
                continue;
            }
            return Err(fail(lineno, None, ExportProblem::LineAfterCheckpoint));
        }
        let parsed = parse_export_line(&buf)
            .map_err(|e| fail(lineno, Some(expected_seq), ExportProblem::Malformed(e)))?;
        seen(&parsed);
        match parsed {
            ExportLine::Header {
                ledger_id: id,
                signed,
                signature,
                ..
            } => {
                if ledger_id.is_some() {
                    return Err(fail(lineno, None, ExportProblem::UnexpectedHeader));
                }
                if !CheckpointSigner::verify_raw(key, &signed, &signature) {
                    return Err(fail(lineno, None, ExportProblem::BadHeaderSignature));
                }
                if let Some(a) = after {
                    if a.checkpoint.ledger_id != id {
                        return Err(fail(
                            lineno,
                            None,
                            ExportProblem::LedgerIdMismatch {
                                expected: a.checkpoint.ledger_id,
                                found: id,
                            },
                        ));
                    }
                }
                ledger_id = Some(id);
            }
            _ if ledger_id.is_none() => {
                return Err(fail(lineno, None, ExportProblem::MissingHeader));
            }
            ExportLine::Event(_) | ExportLine::Stub(_) | ExportLine::Redacted { .. } => {
                let (h, body, shown) = match parsed {
                    ExportLine::Event(ev) => {
                        events += 1;
                        (ev.header, Some(ev.body), None)
                    }
                    ExportLine::Stub(h) => {
                        stubs += 1;
                        (h, None, None)
                    }
                    ExportLine::Redacted { event, signature } => {
                        redacted += 1;
                        (event.header, None, Some((event.body, signature)))
                    }
                    _ => continue,
                };
                let seq = Some(h.seq);
                if h.seq != expected_seq {
                    return Err(fail(
                        lineno,
                        seq,
                        ExportProblem::SeqOutOfOrder {
                            expected: expected_seq,
                            found: h.seq,
                        },
                    ));
                }
                let want_prev = last.as_ref().map_or(Hash::ZERO, |l| l.hash);
                if h.prev != want_prev {
                    return Err(fail(lineno, seq, ExportProblem::BrokenLink));
                }
                if let Some(body) = &body {
                    if body_hash(body.as_bytes()) != h.body_hash {
                        return Err(fail(lineno, seq, ExportProblem::BodyHashMismatch));
                    }
                }
                if event_hash(h.seq, &h.prev, h.time, &h.actor, &h.kind, &h.body_hash) != h.hash {
                    return Err(fail(lineno, seq, ExportProblem::HashMismatch));
                }
                if let Some(previous) = last.as_ref().map(|l| l.time).filter(|t| h.time < *t) {
                    return Err(fail(
                        lineno,
                        seq,
                        ExportProblem::TimeWentBackwards {
                            time: h.time,
                            previous,
                        },
                    ));
                }
                if let Some((body, signature)) = &shown {
                    let signed = redaction_signed_bytes(&h.hash, body.as_bytes());
                    if !CheckpointSigner::verify_raw(key, &signed, signature) {
                        return Err(fail(lineno, seq, ExportProblem::BadRedactionSignature));
                    }
                }
                if let Some(a) = after {
                    if a.checkpoint.seq == h.seq && a.checkpoint.head != h.hash {
                        return Err(fail(
                            lineno,
                            seq,
                            ExportProblem::AfterNotExtended {
                                expected: a.checkpoint.head,
                                found: h.hash,
                            },
                        ));
                    }
                }
                last = Some(h);
            }
            ExportLine::Checkpoint {
                checkpoint,
                key_fingerprint,
            } => {
                let seq = Some(checkpoint.checkpoint.seq);
                let Some(l) = &last else {
                    return Err(fail(lineno, seq, ExportProblem::CheckpointWithoutEvents));
                };
                if let Some(id) = ledger_id {
                    if checkpoint.checkpoint.ledger_id != id {
                        return Err(fail(
                            lineno,
                            seq,
                            ExportProblem::LedgerIdMismatch {
                                expected: id,
                                found: checkpoint.checkpoint.ledger_id,
                            },
                        ));
                    }
                }
                if key_fingerprint != key.fingerprint() {
                    return Err(fail(
                        lineno,
                        seq,
                        ExportProblem::WrongKey {
                            expected: key.fingerprint(),
                            found: key_fingerprint,
                        },
                    ));
                }
                if !checkpoint.verify(key) {
                    return Err(fail(lineno, seq, ExportProblem::BadSignature));
                }
                if checkpoint.checkpoint.seq != l.seq || checkpoint.checkpoint.head != l.hash {
                    return Err(fail(
                        lineno,
                        seq,
                        ExportProblem::CheckpointMismatch {
                            seq: checkpoint.checkpoint.seq,
                            head: checkpoint.checkpoint.head,
                            last_seq: l.seq,
                            last_hash: l.hash,
                        },
                    ));
                }
                finished = Some(checkpoint);
            }
        }
    }
    let Some(checkpoint) = finished else {
        let problem = if lineno == 0 {
            ExportProblem::Empty
        } else {
            ExportProblem::MissingCheckpoint
        };
        return Err(fail(lineno + 1, last.as_ref().map(|l| l.seq + 1), problem));
    };
    if let Some(a) = after {
        if a.checkpoint.seq > checkpoint.checkpoint.seq {
            return Err(fail(
                lineno,
                Some(a.checkpoint.seq),
                ExportProblem::AfterBeyondExport {
                    after: a.checkpoint.seq,
                    last: checkpoint.checkpoint.seq,
                },
            ));
        }
    }
    Ok(VerifiedExport {
        ledger_id: checkpoint.checkpoint.ledger_id,
        events,
        stubs,
        redacted,
        checkpoint,
    })
}

/// What the live verification checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerReport {
    /// Events checked.
    pub events: u64,
    /// Head seq and hash.
    pub head: Option<(u64, Hash)>,
    /// Checkpoints whose signatures and heads were checked.
    pub checkpoints: u64,
    /// Projection tables proved equal to a replay.
    pub tables: Vec<String>,
}

/// The b-tree check: every page of every b-tree (tables and indexes) decrypted, its HMAC
/// checked on the way, and the structure and every row's constraints checked.
const BTREE_CHECK: &str = "PRAGMA integrity_check";

/// The HMAC pass: every page of the file, free pages and a trailing partial page included.
const HMAC_CHECK: &str = "PRAGMA cipher_integrity_check";

/// The most memory the b-tree check's connection may cache pages in (512 MiB): up to that, the
/// whole file stays in its cache, so the second half of `integrity_check` (every row again for
/// its constraints) and the chain walk read no page twice.
const MAX_WARM_CACHE: i64 = 512 * 1024 * 1024;

/// Rows a batch of the walk's reader starts with room for (a chunk of the scan).
const WALK_BATCH_ROWS: usize = 2048;

/// One page check: clean when it answers nothing or a single `ok`; otherwise, or when it
/// fails, the single corrupted-or-wrong-key error, like a page that fails when read.
fn check_pages(conn: &Connection, db: &std::path::Path, pragma: &str) -> Result<(), LedgerError> {
    let corrupted = || LedgerError::CorruptedOrWrongKey {
        path: db.to_path_buf(),
    };
    let mut stmt = conn.prepare(pragma).map_err(|_| corrupted())?;
    let rows: Vec<String> = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .and_then(|rows| rows.collect())
        .map_err(|_| corrupted())?;
    let clean = rows.is_empty() || (rows.len() == 1 && rows[0] == "ok");
    if !clean {
        return Err(corrupted());
    }
    Ok(())
}

/// A pragma's single number (SQLCipher answers `page_size` as text).
fn pragma_int(conn: &Connection, db: &std::path::Path, name: &str) -> Result<i64, LedgerError> {
    let value: SqlValue = conn
        .query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
        .map_err(LedgerError::sql(db, "inspect the database"))?;
    match value {
        SqlValue::Integer(n) => Some(n),
        SqlValue::Text(t) => t.trim().parse().ok(),
        _ => None,
    }
    .ok_or_else(|| LedgerError::CorruptedOrWrongKey {
        path: db.to_path_buf(),
    })
}

/// Whether the file holds pages `integrity_check` does not read: free pages, a write-ahead
/// log with frames, or bytes past the last page. Without them every page of the file belongs
/// to a b-tree, and `integrity_check` decrypts it and checks its HMAC, so the HMAC pass would
/// authenticate every page a second time.
fn pages_outside_btrees(conn: &Connection, db: &std::path::Path) -> Result<bool, LedgerError> {
    let free = pragma_int(conn, db, "freelist_count")?;
    let pages = pragma_int(conn, db, "page_count")?;
    let page_size = pragma_int(conn, db, "page_size")?;
    let stat = |path: &std::path::Path| match std::fs::metadata(path) {
        Ok(m) => Ok(m.len()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(LedgerError::Io {
            operation: "inspect the database files",
            path: path.to_path_buf(),
            source: e,
        }),
    };
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    let wal_len = stat(std::path::Path::new(&wal))?;
    let file_len = stat(db)?;
    let btree_len = u64::try_from(pages.saturating_mul(page_size)).unwrap_or(u64::MAX);
    Ok(free != 0 || wal_len != 0 || file_len != btree_len)
}

/// Verifies the live ledger: every page of the file (its SQLCipher HMAC, free pages and
/// indexes included), every stored event (canonical body, body hash, link, hash, a time not
/// before the previous event's), every recorded checkpoint, and that every projection table
/// equals a replay of all events into an in-memory database.
pub fn verify_ledger(ledger: &Ledger) -> Result<LedgerReport, LedgerError> {
    verify_ledger_observed(ledger, &mut |_| {})
}

/// [`verify_ledger`], calling `checked` with each event's seq once its hashes and link are
/// checked and it is replayed (for a progress display).
///
/// The page checks and the chain walk run side by side, each on its own connection:
/// `integrity_check` on a thread of its own, on a connection whose page cache holds the whole
/// file (up to 512 MiB), so that every b-tree page is decrypted and HMAC-checked once and its
/// second pass over the rows reads from that cache; when the file has pages outside the
/// b-trees (free pages, write-ahead log frames or bytes past the last page),
/// `cipher_integrity_check` authenticates every page of it on a third. The walk reads the
/// events on a reader thread, which checks each row's fields and both its hashes, and links
/// them on this one. A page check that fails is the answer whatever the walk found (a page
/// that does not authenticate is all that can be said of such a file); otherwise the walk's.
pub fn verify_ledger_observed(
    ledger: &Ledger,
    checked: &mut dyn FnMut(u64),
) -> Result<LedgerReport, LedgerError> {
    let db = ledger.db_path();
    let warm = ledger.second_connection()?;
    let hmac_pass = pages_outside_btrees(&warm, db)?;
    let file_len =
        pragma_int(&warm, db, "page_count")?.saturating_mul(pragma_int(&warm, db, "page_size")?);
    let kib = file_len.clamp(0, MAX_WARM_CACHE) / 1024 + 1024;
    warm.execute_batch(&format!("PRAGMA cache_size = -{kib}"))
        .map_err(LedgerError::sql(db, "size the page cache"))?;
    let hmac_conn = hmac_pass.then(|| ledger.second_connection()).transpose()?;
    let walk_conn = ledger.second_connection()?;
    let (btrees, hmac, walked) = std::thread::scope(|s| {
        let hmac = hmac_conn.map(|conn| s.spawn(move || check_pages(&conn, db, HMAC_CHECK)));
        let btrees = s.spawn(move || check_pages(&warm, db, BTREE_CHECK));
        let walked = walk_events(ledger, walk_conn, checked);
        (btrees.join(), hmac.map(|h| h.join()), walked)
    });
    match hmac {
        Some(Ok(result)) => result?,
        Some(Err(panic)) => std::panic::resume_unwind(panic),
        None => {}
    }
    match btrees {
        Ok(result) => result?,
        Err(panic) => std::panic::resume_unwind(panic),
    }
    walked
}

/// A stored row as the reader thread leaves it for the walk: its seq, and its fields checked
/// with the two hashes that depend on nothing but the row already compared (the walk
/// reports them in its own order), or why its fields are not an event.
struct WalkRow {
    seq: i64,
    checked: Result<Walked, LedgerError>,
}

/// What the walk needs of a row whose fields are an event.
struct Walked {
    time: Timestamp,
    prev: Hash,
    hash: Hash,
    body_hash_ok: bool,
    hash_ok: bool,
    /// The event itself, when a projection consumes its kind (the replay applies it).
    event: Option<StoredEvent>,
}

/// Reads one row for the walk (on the reader thread): straight from the row, without a copy
/// of its fields unless a projection needs the event; a column of another type than the
/// schema's is read as [`RawRow`] (which names the problem).
fn walk_row(projections: &Projections, row: &rusqlite::Row<'_>) -> rusqlite::Result<WalkRow> {
    let Some(r) = RowRef::from_row(row)? else {
        return Ok(walk_raw(projections, RawRow::from_row(row)?));
    };
    let checked = r.check().and_then(|hashes| {
        let seq = r.seq();
        let time = Timestamp(r.time);
        let event = if projections.consumes(r.kind) {
            Some(r.to_event()?)
        } else {
            None
        };
        Ok(Walked {
            time,
            body_hash_ok: body_hash(r.body) == hashes.body_hash,
            hash_ok: event_hash_of(seq, &hashes.prev, time, r.actor, r.kind, &hashes.body_hash)
                == hashes.hash,
            prev: hashes.prev,
            hash: hashes.hash,
            event,
        })
    });
    Ok(WalkRow {
        seq: r.seq,
        checked,
    })
}

/// [`walk_row`] of a row read as [`RawRow`].
fn walk_raw(projections: &Projections, raw: RawRow) -> WalkRow {
    let seq = raw.seq;
    let checked = raw.into_event().map(|ev| {
        let h = &ev.header;
        Walked {
            time: h.time,
            prev: h.prev,
            hash: h.hash,
            body_hash_ok: body_hash(ev.body.as_bytes()) == h.body_hash,
            hash_ok: event_hash(h.seq, &h.prev, h.time, &h.actor, &h.kind, &h.body_hash) == h.hash,
            event: projections.consumes(h.kind.as_str()).then_some(ev),
        }
    });
    WalkRow { seq, checked }
}

/// The events, checkpoints and projections part of [`verify_ledger_observed`].
fn walk_events(
    ledger: &Ledger,
    conn_walk: Connection,
    checked: &mut dyn FnMut(u64),
) -> Result<LedgerReport, LedgerError> {
    let db = ledger.db_path();
    let conn = ledger.conn();
    let replay =
        Connection::open_in_memory().map_err(LedgerError::sql(db, "open replay database"))?;
    ledger
        .projections()
        .create_tables(&replay)
        .map_err(LedgerError::sql(db, "create replay tables"))?;
    let (first, last): (Option<i64>, Option<i64>) = conn
        .query_row(
            "SELECT (SELECT min(seq) FROM events), (SELECT max(seq) FROM events)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(LedgerError::sql(db, "query events"))?;
    let mut prev = Hash::ZERO;
    let mut prev_time: Option<Timestamp> = None;
    let mut count = 0u64;
    let mut hashes_at_checkpoints = std::collections::BTreeMap::new();
    for cp in ledger.checkpoints()? {
        hashes_at_checkpoints
            .entry(cp.checkpoint.seq)
            .or_insert_with(Vec::new)
            .push(cp);
    }
    let mut checkpoints = 0u64;
    replay
        .execute_batch("BEGIN")
        .map_err(LedgerError::sql(db, "begin replay"))?;
    if let (Some(first), Some(last)) = (first, last) {
        let projections = ledger.projections();
        let mut step = |row: WalkRow| {
            let expected = count + 1;
            let seq = u64::try_from(row.seq).unwrap_or(0);
            if seq != expected {
                return Err(LedgerError::Chain {
                    seq,
                    problem: ChainProblem::SeqGap { expected },
                });
            }
            let w = row.checked?;
            let chain = |problem| LedgerError::Chain { seq, problem };
            if !w.body_hash_ok {
                return Err(chain(ChainProblem::BodyHashMismatch));
            }
            if w.prev != prev {
                return Err(chain(ChainProblem::BrokenLink));
            }
            if !w.hash_ok {
                return Err(chain(ChainProblem::HashMismatch));
            }
            if let Some(previous) = prev_time.filter(|t| w.time < *t) {
                return Err(chain(ChainProblem::TimeWentBackwards {
                    time: w.time,
                    previous,
                }));
            }
            for cp in hashes_at_checkpoints.get(&seq).into_iter().flatten() {
                if cp.checkpoint.head != w.hash {
                    return Err(LedgerError::BadCheckpoint {
                        seq,
                        problem: "head differs from the event's hash",
                    });
                }
            }
            if let Some(ev) = &w.event {
                projections.apply(&replay, ev)?;
            }
            prev = w.hash;
            prev_time = Some(w.time);
            count = seq;
            checked(seq);
            Ok(())
        };
        ledger.scan_batches_on(
            vec![conn_walk],
            first,
            last,
            || Vec::with_capacity(WALK_BATCH_ROWS),
            |batch: &mut Vec<WalkRow>, row| {
                batch.push(walk_row(projections, row)?);
                Ok(())
            },
            |batch| batch.into_iter().try_for_each(&mut step),
        )?;
    }
    replay
        .execute_batch("COMMIT")
        .map_err(LedgerError::sql(db, "commit replay"))?;
    for (seq, cp) in hashes_at_checkpoints
        .iter()
        .flat_map(|(seq, cps)| cps.iter().map(move |cp| (seq, cp)))
    {
        if *seq > count || *seq == 0 {
            return Err(LedgerError::BadCheckpoint {
                seq: *seq,
                problem: "beyond the last event",
            });
        }
        if !cp.verify(&ledger.public_key()) {
            return Err(LedgerError::BadCheckpoint {
                seq: *seq,
                problem: "signature does not verify",
            });
        }
        checkpoints += 1;
    }
    let mut tables = Vec::new();
    for table in ledger.projections().tables() {
        compare_table(conn, &replay, table, db)?;
        tables.push(table.to_owned());
    }
    Ok(LedgerReport {
        events: count,
        head: (count > 0).then_some((count, prev)),
        checkpoints,
        tables,
    })
}

fn compare_table(
    live: &Connection,
    replay: &Connection,
    table: &str,
    db: &std::path::Path,
) -> Result<(), LedgerError> {
    let quoted = format!("\"{}\"", table.replace('"', "\"\""));
    let ncols = live
        .prepare(&format!("SELECT * FROM {quoted} LIMIT 0"))
        .map_err(LedgerError::sql(db, "inspect projection table"))?
        .column_count();
    let order = (1..=ncols)
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let sql = format!("SELECT * FROM {quoted} ORDER BY {order}");
    let mut a = live
        .prepare(&sql)
        .map_err(LedgerError::sql(db, "read projection table"))?;
    let mut b = replay
        .prepare(&sql)
        .map_err(LedgerError::sql(db, "read replayed table"))?;
    let mut ra = a
        .query([])
        .map_err(LedgerError::sql(db, "read projection table"))?;
    let mut rb = b
        .query([])
        .map_err(LedgerError::sql(db, "read replayed table"))?;
    let mismatch = |detail: String| LedgerError::ProjectionMismatch {
        table: table.to_owned(),
        detail,
    };
    let mut n = 0u64;
    loop {
        let x = ra
            .next()
            .map_err(LedgerError::sql(db, "read projection table"))?;
        let y = rb
            .next()
            .map_err(LedgerError::sql(db, "read replayed table"))?;
        n += 1;
        match (x, y) {
            (None, None) => return Ok(()),
            (Some(_), None) => {
                return Err(mismatch(format!(
                    "row {n} is not in the replay (extra row)"
                )))
            }
            (None, Some(_)) => return Err(mismatch(format!("row {n} of the replay is missing"))),
            (Some(x), Some(y)) => {
                for i in 0..ncols {
                    let vx: SqlValue = x
                        .get(i)
                        .map_err(LedgerError::sql(db, "read projection value"))?;
                    let vy: SqlValue = y
                        .get(i)
                        .map_err(LedgerError::sql(db, "read replayed value"))?;
                    if vx != vy {
                        return Err(mismatch(format!("row {n} column {} differs", i + 1)));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::event::{Actor, Kind, NewEvent};
    use crate::ledger::store::tests::{new_ledger, open};

    fn events(l: &mut Ledger, n: u64) {
        let batch = (0..n).map(|i| {
            let body = serde_json::json!({"request": i, "reason": "x".repeat(300)});
            NewEvent::new(
                Actor::parse("alice").expect("actor"),
                Kind::parse("request.approved").expect("kind"),
                &body,
            )
            .expect("event")
        });
        l.append_batch(batch).expect("append");
    }

    /// The database file of the closed ledger in `dir` with one byte of page `page` (0-based)
    /// flipped, in a copy of the ledger directory.
    fn with_page_flipped(dir: &std::path::Path, page: u64, into: &std::path::Path) {
        std::fs::create_dir(into).expect("mkdir");
        for f in ["ledger.db", "keyring.json"] {
            std::fs::copy(dir.join(f), into.join(f)).expect("copy");
        }
        let path = into.join("ledger.db");
        let mut bytes = std::fs::read(&path).expect("read");
        let at = usize::try_from(page * 4096 + 2000).expect("offset");
        bytes[at] ^= 0x5a;
        std::fs::write(&path, bytes).expect("write");
    }

    fn pages(dir: &std::path::Path) -> u64 {
        std::fs::metadata(dir.join("ledger.db"))
            .expect("stat")
            .len()
            / 4096
    }

    #[test]
    fn without_free_pages_or_a_wal_integrity_check_authenticates_every_page_alone() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("l");
        let mut l = new_ledger(&dir);
        events(&mut l, 200);
        drop(l);
        let l = open(&dir).expect("open");
        let conn = l.second_connection().expect("conn");
        assert!(!pages_outside_btrees(&conn, l.db_path()).expect("inspect"));
        assert!(verify_ledger(&l).is_ok());
        drop((conn, l));
        let n = pages(&dir);
        assert!(n > 20, "the ledger spans {n} pages");
        for page in 0..n {
            let copy = tmp.path().join(format!("p{page}"));
            with_page_flipped(&dir, page, &copy);
            // A flip in the first page can already fail the open: that is detection too.
            let Ok(l) = open(&copy) else { continue };
            let conn = l.second_connection();
            let alone = conn.and_then(|c| check_pages(&c, l.db_path(), BTREE_CHECK));
            assert!(
                matches!(alone, Err(LedgerError::CorruptedOrWrongKey { .. })),
                "integrity_check alone missed a flip in page {page} of {n}: {alone:?}"
            );
            assert!(matches!(
                verify_ledger(&l),
                Err(LedgerError::CorruptedOrWrongKey { .. })
            ));
        }
    }

    #[test]
    fn free_pages_and_a_wal_bring_the_hmac_pass_back() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("l");
        let mut l = new_ledger(&dir);
        events(&mut l, 50);
        // Uncheckpointed frames in the write-ahead log.
        let conn = l.second_connection().expect("conn");
        conn.execute_batch("PRAGMA wal_autocheckpoint = 0")
            .expect("pragma");
        l.conn()
            .execute_batch("PRAGMA wal_autocheckpoint = 0")
            .expect("pragma");
        events(&mut l, 10);
        assert!(pages_outside_btrees(&conn, l.db_path()).expect("inspect"));
        drop(conn);
        // Free pages: a table filled, then dropped.
        l.conn()
            .execute_batch(
                "CREATE TABLE scratch (b BLOB);
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 40)
                 INSERT INTO scratch SELECT randomblob(3000) FROM n;
                 DROP TABLE scratch;",
            )
            .expect("free pages");
        drop(l);
        let l = open(&dir).expect("open");
        let conn = l.second_connection().expect("conn");
        let free: i64 = conn
            .query_row("PRAGMA freelist_count", [], |r| r.get(0))
            .expect("freelist");
        assert!(free > 10, "{free} free pages");
        assert!(pages_outside_btrees(&conn, l.db_path()).expect("inspect"));
        assert!(verify_ledger(&l).is_ok());
        drop((conn, l));
        let n = pages(&dir);
        let mut missed_by_btree_check = 0;
        for page in 0..n {
            let copy = tmp.path().join(format!("p{page}"));
            with_page_flipped(&dir, page, &copy);
            let Ok(l) = open(&copy) else { continue };
            let alone = l
                .second_connection()
                .and_then(|c| check_pages(&c, l.db_path(), BTREE_CHECK));
            if alone.is_ok() {
                missed_by_btree_check += 1;
            }
            assert!(
                matches!(
                    verify_ledger(&l),
                    Err(LedgerError::CorruptedOrWrongKey { .. })
                ),
                "verify missed a flip in page {page} of {n}"
            );
        }
        // Free leaf pages are read by no b-tree: only the HMAC pass sees them.
        assert!(missed_by_btree_check > 0);
    }
}
