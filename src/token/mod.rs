//! token layer.
