//! emulator layer.
//!
//! - [`oath`]: the OATH applet (YKOATH), its persistent state and device-image table.

pub mod oath;
