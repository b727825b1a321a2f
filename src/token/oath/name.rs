//! Credential names (`[period/][issuer:]account`), parsed once and bounded by what the applet
//! stores.

use std::fmt;

use super::{OathError, OathType, DEFAULT_PERIOD, MAX_NAME_LEN};

/// A credential id as the applet stores it: `[<period>/][<issuer>:]<account>`, 1 to 64 bytes of
/// UTF-8. The period prefix appears only for TOTP credentials whose period is not 30 seconds.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CredentialName(String);

/// The parts of a [`CredentialName`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameParts<'a> {
    /// The TOTP period (30 when there is no prefix); `None` for HOTP.
    pub period: Option<u32>,
    /// The issuer, when there is one.
    pub issuer: Option<&'a str>,
    /// The account name.
    pub account: &'a str,
}

impl CredentialName {
    /// Checks a name as sent to or stored on the applet.
    pub fn parse(name: &str) -> Result<Self, OathError> {
        if name.is_empty() {
            return Err(OathError::NameEmpty);
        }
        if name.len() > MAX_NAME_LEN {
            return Err(OathError::NameTooLong {
                name: name.to_owned(),
                len: name.len(),
            });
        }
        Ok(Self(name.to_owned()))
    }

    /// Reads a name from the card's bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, OathError> {
        let s =
            std::str::from_utf8(bytes).map_err(|_| OathError::NameNotUtf8 { len: bytes.len() })?;
        Self::parse(s)
    }

    /// Builds the name of a credential from its parts, refusing parts that would read back
    /// differently (an issuer containing `:`, an empty account, a period of 0, ...).
    pub fn build(
        oath_type: OathType,
        period: u32,
        issuer: Option<&str>,
        account: &str,
    ) -> Result<Self, OathError> {
        let issuer = issuer.filter(|i| !i.is_empty());
        let mut s = String::new();
        if oath_type == OathType::Totp && period != DEFAULT_PERIOD {
            s.push_str(&period.to_string());
            s.push('/');
        }
        if let Some(i) = issuer {
            s.push_str(i);
            s.push(':');
        }
        s.push_str(account);
        let name = Self::parse(&s)?;
        let parts = name.parts(oath_type);
        let expected_period = (oath_type == OathType::Totp).then_some(period);
        if parts.period != expected_period || parts.issuer != issuer || parts.account != account {
            return Err(OathError::AmbiguousName {
                period,
                issuer: issuer.map(str::to_owned),
                account: account.to_owned(),
            });
        }
        Ok(name)
    }

    /// Splits the name into period (TOTP only), issuer and account.
    pub fn parts(&self, oath_type: OathType) -> NameParts<'_> {
        let mut rest = self.0.as_str();
        let mut period = None;
        if oath_type == OathType::Totp {
            period = Some(DEFAULT_PERIOD);
            if let Some((prefix, tail)) = rest.split_once('/') {
                let digits = !prefix.is_empty() && prefix.bytes().all(|b| b.is_ascii_digit());
                if let (true, Ok(p)) = (digits, prefix.parse::<u32>()) {
                    if p > 0 && !tail.is_empty() {
                        period = Some(p);
                        rest = tail;
                    }
                }
            }
        }
        let (issuer, account) = match rest.split_once(':') {
            Some((i, a)) if !i.is_empty() && !a.is_empty() => (Some(i), a),
            _ => (None, rest),
        };
        NameParts {
            period,
            issuer,
            account,
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name's bytes, as sent to the card.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Display for CredentialName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for CredentialName {
    type Err = OathError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}
