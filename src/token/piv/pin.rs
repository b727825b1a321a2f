//! The PIV PIN an officer types to let their YubiKey sign: 6 to 8 bytes (Yubico, "PIV PIN and
//! management key defaults"), padded to 8 with `FF` on the wire (SP 800-73-4 part 2, 3.2.1,
//! VERIFY). Zeroized on drop, never in `Debug`, never in an error.

use std::fmt;

use zeroize::Zeroizing;

/// The length VERIFY carries: the PIN padded with `FF`.
pub const PADDED_LEN: usize = 8;
/// The shortest PIN a YubiKey accepts.
pub const MIN_LEN: usize = 6;

/// A PIV PIN. No `Display`, a redacting `Debug`, zeroized on drop.
pub struct Pin(Zeroizing<Vec<u8>>);

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pin(<redacted>)")
    }
}

/// Why a PIN was not accepted before reaching the card. Names the length, never the PIN.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PinError {
    /// Too short or too long.
    #[error("a PIV PIN is {MIN_LEN} to {PADDED_LEN} characters, this one has {got}; type the PIN of your YubiKey's PIV applet (factory value 123456)")]
    Length {
        /// Bytes given.
        got: usize,
    },
    /// Holds the `FF` byte the padding uses, or a line break that was not trimmed.
    #[error(
        "a PIV PIN holds printable characters only; the one given holds a control or padding byte"
    )]
    Unprintable,
}

impl Pin {
    /// A PIN from the bytes the officer typed (a trailing line break already trimmed).
    pub fn new(bytes: Zeroizing<Vec<u8>>) -> Result<Self, PinError> {
        if !(MIN_LEN..=PADDED_LEN).contains(&bytes.len()) {
            return Err(PinError::Length { got: bytes.len() });
        }
        if bytes.iter().any(|b| !(0x20..0x7F).contains(b)) {
            return Err(PinError::Unprintable);
        }
        Ok(Self(bytes))
    }

    /// The PIN padded to [`PADDED_LEN`] with `FF`, as VERIFY carries it.
    pub(crate) fn padded(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(PADDED_LEN));
        out.extend_from_slice(&self.0);
        out.resize(PADDED_LEN, 0xFF);
        out
    }
}
