//! ledger layer.
