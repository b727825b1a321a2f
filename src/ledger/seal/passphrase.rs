//! Officers' passphrases: the secret type, and what a newly chosen one must be.

use std::fmt;

use zeroize::Zeroizing;

/// Why a passphrase was refused when it is chosen.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum PassphraseError {
    /// Shorter than [`Passphrase::MIN_CHARS`] characters.
    #[error("passphrase has {chars} characters; at least {min} are required")]
    TooShort {
        /// Its length in characters.
        chars: usize,
        /// The minimum.
        min: usize,
    },
    /// Longer than [`Passphrase::MAX_BYTES`] bytes.
    #[error("passphrase is longer than {max} bytes")]
    TooLong {
        /// The maximum.
        max: usize,
    },
    /// Uses only one class of characters (only lower-case, only digits, ...).
    #[error("passphrase uses only one kind of character; mix letters, digits, symbols or cases")]
    OneCharacterClass,
}

/// An officer's passphrase. Zeroized on drop; Debug shows nothing of it.
pub struct Passphrase(Zeroizing<String>);

impl Passphrase {
    /// Fewest characters of a new passphrase.
    pub const MIN_CHARS: usize = 12;
    /// Most bytes of any passphrase.
    pub const MAX_BYTES: usize = 1024;

    /// Accepts a newly chosen passphrase: at least 12 characters, at most 1024 bytes, and not
    /// all from one class (lower-case letters, upper-case letters, digits, everything else).
    pub fn new_checked(text: Zeroizing<String>) -> Result<Self, PassphraseError> {
        let chars = text.chars().count();
        if chars < Self::MIN_CHARS {
            return Err(PassphraseError::TooShort {
                chars,
                min: Self::MIN_CHARS,
            });
        }
        if text.len() > Self::MAX_BYTES {
            return Err(PassphraseError::TooLong {
                max: Self::MAX_BYTES,
            });
        }
        let class = |c: char| {
            if c.is_lowercase() {
                0
            } else if c.is_uppercase() {
                1
            } else if c.is_ascii_digit() {
                2
            } else {
                3
            }
        };
        let mut seen = [false; 4];
        for c in text.chars() {
            if let Some(slot) = seen.get_mut(class(c)) {
                *slot = true;
            }
        }
        if seen.iter().filter(|s| **s).count() < 2 {
            return Err(PassphraseError::OneCharacterClass);
        }
        Ok(Self(text))
    }

    /// Takes a passphrase offered to unseal: only the length limit is applied, since the
    /// keyring decides whether it is right.
    pub fn for_unseal(text: Zeroizing<String>) -> Result<Self, PassphraseError> {
        if text.len() > Self::MAX_BYTES {
            return Err(PassphraseError::TooLong {
                max: Self::MAX_BYTES,
            });
        }
        Ok(Self(text))
    }

    pub(super) fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passphrase_strength() {
        let z = |s: &str| Zeroizing::new(s.to_owned());
        assert!(matches!(
            Passphrase::new_checked(z("short1A")),
            Err(PassphraseError::TooShort { .. })
        ));
        assert_eq!(
            Passphrase::new_checked(z("alllowercaseletters")).err(),
            Some(PassphraseError::OneCharacterClass)
        );
        assert_eq!(
            Passphrase::new_checked(z("123456789012345")).err(),
            Some(PassphraseError::OneCharacterClass)
        );
        assert!(Passphrase::new_checked(z("correct horse battery")).is_ok());
        assert!(Passphrase::new_checked(z("Correcthorsebattery")).is_ok());
    }
}
