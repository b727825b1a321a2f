//! Crash points for tests: a test arms one [`Step`], and the ledger code stops there with an
//! error as if the process had died, leaving the files exactly as a crash at that point would.
//! Compiled only into test builds; product builds have no crash points.

use std::cell::Cell;

use super::error::LedgerError;

/// A point between two durable steps of a multi-file change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// A new ledger's database is built, genesis included, under its temporary name; no
    /// keyring is written.
    CreateBuilt,
    /// A new ledger's keyring is written; its database is not yet renamed into place.
    CreateKeyringStored,
    /// A re-share's new keyring is staged; its event is not committed.
    ReshareStaged,
    /// A re-share's event is committed; its keyring is not yet moved into place.
    ReshareCommitted,
}

thread_local! {
    static ARMED: Cell<Option<Step>> = const { Cell::new(None) };
}

/// Makes the next [`reached`] of `step` on this thread fail.
pub(crate) fn arm(step: Step) {
    ARMED.with(|a| a.set(Some(step)));
}

/// Fails once if `step` is armed on this thread (and disarms it).
pub(crate) fn reached(step: Step) -> Result<(), LedgerError> {
    if ARMED.with(|a| a.get()) != Some(step) {
        return Ok(());
    }
    ARMED.with(|a| a.set(None));
    Err(LedgerError::Io {
        operation: "crash injected",
        path: std::path::PathBuf::from(format!("{step:?}")),
        source: std::io::Error::other("crash injected by a test"),
    })
}
