//! Officer names, as the keyring lists them and as they act in the ledger.

use std::fmt;

use crate::ledger::event::{Actor, NameError};

/// An officer's name in the keyring: 1 to 64 ASCII letters, digits and `._-`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OfficerName(pub(super) String);

impl OfficerName {
    /// Parses a name.
    pub fn parse(input: &str) -> Result<Self, NameError> {
        // An officer name is also a valid actor; reuse the stricter character set.
        if input.is_empty() || input.len() > 64 {
            return Err(NameError::Length {
                what: "officer name",
                input: input.to_owned(),
                max: 64,
            });
        }
        if !input
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            return Err(NameError::Characters {
                what: "officer name",
                input: input.to_owned(),
                allowed: "ASCII letters, digits and ._-",
            });
        }
        Ok(Self(input.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Officers acting together, as one actor: names joined by `+` (`alice+bob`).
    pub fn joined_actor(names: &[OfficerName]) -> Result<Actor, NameError> {
        let joined = names
            .iter()
            .map(|n| n.0.as_str())
            .collect::<Vec<_>>()
            .join("+");
        Actor::parse(&joined)
    }
}

impl fmt::Display for OfficerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
