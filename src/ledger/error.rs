//! The ledger's error type.

use std::path::PathBuf;

use super::event::{CanonicalError, NameError, Timestamp};
use super::projection::ApplyError;
use super::seal::KeyringFormatError;

/// Everything that can go wrong opening, unsealing, writing or verifying a ledger.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// The database could not be decrypted or its pages fail their integrity check. A wrong
    /// key and a damaged file are deliberately not told apart.
    #[error("ledger file {path} corrupted or wrong key")]
    CorruptedOrWrongKey {
        /// The database file.
        path: PathBuf,
    },
    /// An SQLite operation failed for another reason (disk full, busy, ...).
    #[error("ledger database {operation} failed: {source}")]
    Sqlite {
        /// What was being done.
        operation: &'static str,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// A file or directory operation failed.
    #[error("{operation} {path}: {source}")]
    Io {
        /// What was being done.
        operation: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The ledger directory or a file in it may be written by others.
    #[error("{path} has mode {mode:04o}; the ledger refuses group- or world-writable paths")]
    InsecurePermissions {
        /// The path.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// `init` found a ledger already there.
    #[error("{path} already exists; refusing to overwrite a ledger")]
    AlreadyExists {
        /// The existing file.
        path: PathBuf,
    },
    /// No ledger at that place.
    #[error("no ledger at {path}")]
    NotFound {
        /// The missing file.
        path: PathBuf,
    },
    /// A ledger's creation stopped before its database was complete: there is no ledger yet.
    #[error("the creation of the ledger in {dir} was interrupted before its genesis was committed, so there is no ledger there yet; create it again in the same directory (custody init)")]
    CreationInterrupted {
        /// The ledger directory.
        dir: PathBuf,
    },
    /// The database holds no genesis event: its creation stopped between writing the keyring
    /// and recording the genesis.
    #[error("ledger {path} has no genesis event: its creation was interrupted before the genesis was recorded; move the ledger directory aside and create the ledger again (custody init)")]
    NoGenesis {
        /// The database file.
        path: PathBuf,
    },
    /// The file was written by a newer version of this program.
    #[error("ledger schema version {found} is newer than this program supports ({supported})")]
    SchemaTooNew {
        /// The file's version.
        found: u32,
        /// The newest version this build knows.
        supported: u32,
    },
    /// The keyring file does not parse.
    #[error("keyring {path} is malformed: {source}")]
    KeyringMalformed {
        /// The keyring file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: KeyringFormatError,
    },
    /// The keyring's MAC does not match the reconstructed secret: the file was altered, or the
    /// shares do not belong together.
    #[error("keyring {path} failed its integrity check")]
    KeyringTampered {
        /// The keyring file.
        path: PathBuf,
    },
    /// The keyring belongs to another ledger.
    #[error("keyring is for ledger {keyring} but the database is ledger {database}")]
    KeyringMismatch {
        /// Ledger id in the keyring.
        keyring: String,
        /// Ledger id in the database.
        database: String,
    },
    /// The keyring is of a generation a re-share recorded in the ledger has replaced: its
    /// shares no longer unseal.
    #[error("keyring {path} is generation {generation}, superseded by the re-share to generation {current} recorded in the ledger; unseal with the officers of generation {current}")]
    KeyringSuperseded {
        /// The keyring file.
        path: PathBuf,
        /// Its generation.
        generation: u64,
        /// The generation the ledger records.
        current: u64,
    },
    /// The keyring is of a generation whose re-share never committed: the ledger still records
    /// an earlier one.
    #[error("keyring {path} is generation {generation}, but its re-share was never committed: the ledger records generation {current}; unseal with the officers of generation {current}")]
    KeyringNotCommitted {
        /// The keyring file.
        path: PathBuf,
        /// Its generation.
        generation: u64,
        /// The generation the ledger records.
        current: u64,
    },
    /// Fewer officers than the threshold took part.
    #[error("{given} officer(s) given, the keyring needs {threshold}")]
    NotEnoughOfficers {
        /// How many were given.
        given: usize,
        /// How many are needed.
        threshold: u8,
    },
    /// An officer not in the keyring.
    #[error("officer {name:?} is not in the keyring")]
    UnknownOfficer {
        /// The name given.
        name: String,
    },
    /// The same officer given twice.
    #[error("officer {name:?} given more than once")]
    DuplicateOfficer {
        /// The repeated name.
        name: String,
    },
    /// A re-share lists an officer without a passphrase for their new share.
    #[error("no passphrase given for officer {name:?}")]
    MissingPassphrase {
        /// The officer.
        name: String,
    },
    /// These officers' passphrases did not open their shares.
    #[error("wrong passphrase for officer(s) {}", officers.join(", "))]
    WrongPassphrase {
        /// The officers whose share did not open.
        officers: Vec<String>,
    },
    /// Threshold below 2 or above the number of officers.
    #[error("threshold {threshold} is invalid for {officers} officer(s): it must be at least 2 and at most the number of officers")]
    InvalidThreshold {
        /// The threshold asked for.
        threshold: usize,
        /// The number of officers.
        officers: usize,
    },
    /// A PBKDF2 iteration count below the production minimum without the test-only marker.
    #[error("PBKDF2 iteration count {iterations} is below the minimum {minimum}")]
    KdfTooWeak {
        /// The count.
        iterations: u32,
        /// The minimum.
        minimum: u32,
    },
    /// The system random generator or a key derivation failed.
    #[error("cryptographic operation {operation} failed")]
    Crypto {
        /// What was being done.
        operation: &'static str,
    },
    /// A stored event is inconsistent with the chain.
    #[error("ledger event seq {seq}: {problem}")]
    Chain {
        /// The event.
        seq: u64,
        /// What is wrong.
        problem: ChainProblem,
    },
    /// A stored checkpoint does not verify.
    #[error("checkpoint at seq {seq}: {problem}")]
    BadCheckpoint {
        /// The checkpoint's seq.
        seq: u64,
        /// What is wrong.
        problem: &'static str,
    },
    /// A projection table differs from a replay of the events.
    #[error("projection table {table} differs from a replay of the events: {detail}")]
    ProjectionMismatch {
        /// The table.
        table: String,
        /// The first difference.
        detail: String,
    },
    /// A projection applier refused or failed on an event.
    #[error("projection {projection} failed on event seq {seq} ({kind}): {source}")]
    Projection {
        /// The projection's name.
        projection: &'static str,
        /// The event.
        seq: u64,
        /// Its kind.
        kind: String,
        /// The applier's error.
        #[source]
        source: ApplyError,
    },
    /// Two projections claim the same event kind.
    #[error("event kind {kind} is claimed by projections {first} and {second}")]
    ProjectionConflict {
        /// The kind.
        kind: String,
        /// The projection registered first.
        first: &'static str,
        /// The one registered second.
        second: &'static str,
    },
    /// A stored row holds a value that does not parse (name, body).
    #[error("ledger event seq {seq} holds an invalid {field}: {source}")]
    InvalidStoredName {
        /// The event.
        seq: u64,
        /// Which field.
        field: &'static str,
        /// The parser's complaint.
        #[source]
        source: NameError,
    },
    /// Writing an export or a checkpoint to its output failed.
    #[error("writing the export failed: {source}")]
    Output {
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// An event body given to the ledger is not canonical.
    #[error("event body for kind {kind} is not canonical: {source}")]
    InvalidBody {
        /// The event kind.
        kind: String,
        /// What is wrong.
        #[source]
        source: CanonicalError,
    },
}

/// What is wrong with a stored event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChainProblem {
    /// Seqs do not run 1, 2, 3, ...
    #[error("expected seq {expected}")]
    SeqGap {
        /// The seq that should have come.
        expected: u64,
    },
    /// `prev` is not the previous event's hash.
    #[error("prev hash does not match the previous event")]
    BrokenLink,
    /// `body_hash` does not match the body bytes.
    #[error("body hash does not match the body")]
    BodyHashMismatch,
    /// `hash` does not match the fields.
    #[error("hash does not match the event's fields")]
    HashMismatch,
    /// The body is not canonical JSON.
    #[error("body is not canonical JSON")]
    NonCanonicalBody,
    /// The event's time is before the previous event's: times never go backwards in a ledger.
    #[error("time {} ms is before the previous event's {} ms", time.0, previous.0)]
    TimeWentBackwards {
        /// This event's time.
        time: Timestamp,
        /// The previous event's time.
        previous: Timestamp,
    },
    /// A stored hash column is not 32 bytes.
    #[error("a stored hash is not 32 bytes")]
    MalformedHash,
}

impl LedgerError {
    /// Wraps an SQLite error, turning "not a database" and "corrupt" into
    /// [`LedgerError::CorruptedOrWrongKey`].
    pub(crate) fn sql<'a>(
        path: &'a std::path::Path,
        operation: &'static str,
    ) -> impl FnOnce(rusqlite::Error) -> Self + 'a {
        move |source| {
            if is_corruption(&source) {
                LedgerError::CorruptedOrWrongKey {
                    path: path.to_path_buf(),
                }
            } else {
                LedgerError::Sqlite { operation, source }
            }
        }
    }

    /// Wraps an I/O error with the path it concerns.
    pub(crate) fn io<'a>(
        operation: &'static str,
        path: &'a std::path::Path,
    ) -> impl FnOnce(std::io::Error) -> Self + 'a {
        move |source| LedgerError::Io {
            operation,
            path: path.to_path_buf(),
            source,
        }
    }

    /// [`LedgerError::io`], except that a missing file is [`LedgerError::NotFound`].
    pub(crate) fn io_or_missing<'a>(
        operation: &'static str,
        path: &'a std::path::Path,
    ) -> impl FnOnce(std::io::Error) -> Self + 'a {
        move |source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                LedgerError::NotFound {
                    path: path.to_path_buf(),
                }
            } else {
                LedgerError::io(operation, path)(source)
            }
        }
    }
}

fn is_corruption(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::NotADatabase) | Some(rusqlite::ErrorCode::DatabaseCorrupt)
    )
}
