//! Parse-don't-validate newtypes for the names and numbers the domain takes from outside: each
//! is built by a parser that refuses bad input once, at the edge.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::error::CustodyError;

macro_rules! string_id {
    ($(#[$m:meta])* $name:ident, $what:literal, $check:expr) => {
        $(#[$m])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Parses the text form, refusing anything malformed.
            pub fn parse(input: &str) -> Result<Self, CustodyError> {
                let check: fn(&str) -> Result<(), String> = $check;
                check(input).map_err(|reason| CustodyError::invalid($what, input, reason))?;
                Ok(Self(input.to_owned()))
            }

            /// The text form.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = CustodyError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

fn chars_in(
    input: &str,
    min: usize,
    max: usize,
    allowed: &'static str,
    ok: impl Fn(char) -> bool,
) -> Result<(), String> {
    let n = input.chars().count();
    if n < min || n > max {
        return Err(format!("must be {min} to {max} characters long"));
    }
    if !input.chars().all(ok) {
        return Err(format!("may only contain {allowed}"));
    }
    Ok(())
}

string_id!(
    /// A user's name: 1 to 32 characters, lower-case ASCII letters, digits, `.`, `_`, `-`,
    /// starting with a letter.
    UserName,
    "user name",
    |s| {
        chars_in(s, 1, 32, "lower-case letters, digits and ._-", |c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c)
        })?;
        if !s.starts_with(|c: char| c.is_ascii_lowercase()) {
            return Err("must start with a letter".into());
        }
        Ok(())
    }
);

string_id!(
    /// A cloud account id. AWS account ids (all partitions) are exactly 12 digits; the
    /// provider decides (see [`Provider::check_account_id`]); this form is the generic one:
    /// 1 to 64 ASCII letters, digits and `-`.
    AccountId,
    "account id",
    |s| chars_in(s, 1, 64, "ASCII letters, digits and -", |c| {
        c.is_ascii_alphanumeric() || c == '-'
    })
);

string_id!(
    /// A seal number printed on a tamper-evident bag: 4 to 32 upper-case ASCII letters,
    /// digits and `-`.
    SealNumber,
    "seal number",
    |s| chars_in(s, 4, 32, "upper-case letters, digits and -", |c| {
        c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-'
    })
);

string_id!(
    /// Where a sealed device is kept (safe and shelf): 1 to 64 printable characters.
    Location,
    "location",
    |s| chars_in(s, 1, 64, "printable characters", |c| !c.is_control())
);

string_id!(
    /// A request id: `req-` and 16 lower-case hex digits.
    RequestId,
    "request id",
    |s| hex_id(s, "req-")
);

string_id!(
    /// An incident id: `inc-` and 16 lower-case hex digits.
    IncidentId,
    "incident id",
    |s| hex_id(s, "inc-")
);

string_id!(
    /// An account alias: 1 to 64 printable characters.
    Alias,
    "alias",
    |s| chars_in(s, 1, 64, "printable characters", |c| !c.is_control())
);

string_id!(
    /// A root user's e-mail address: `local@domain`, 3 to 254 printable ASCII characters
    /// without spaces.
    Email,
    "e-mail address",
    |s| {
        chars_in(s, 3, 254, "printable ASCII without spaces", |c| {
            c.is_ascii_graphic()
        })?;
        match s.split_once('@') {
            Some((l, d)) if !l.is_empty() && d.contains('.') && !d.contains('@') => Ok(()),
            _ => Err("must look like local@domain.tld".into()),
        }
    }
);

fn hex_id(s: &str, prefix: &str) -> Result<(), String> {
    let rest = s
        .strip_prefix(prefix)
        .ok_or_else(|| format!("must start with {prefix}"))?;
    if rest.len() != 16
        || !rest
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    {
        return Err("must end with 16 lower-case hex digits".into());
    }
    Ok(())
}

pub(crate) fn random_hex_id(prefix: &str) -> Result<String, CustodyError> {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 8];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| CustodyError::Crypto {
            operation: "random id",
        })?;
    Ok(format!("{prefix}{}", data_encoding::HEXLOWER.encode(&b)))
}

impl RequestId {
    pub(crate) fn generate() -> Result<Self, CustodyError> {
        Ok(Self(random_hex_id("req-")?))
    }
}

impl IncidentId {
    pub(crate) fn generate() -> Result<Self, CustodyError> {
        Ok(Self(random_hex_id("inc-")?))
    }
}

/// A YubiKey serial number (1 to 4294967295).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct Serial(u32);

impl Serial {
    /// Parses decimal text.
    pub fn parse(input: &str) -> Result<Self, CustodyError> {
        if input.is_empty() || input.len() > 10 || !input.chars().all(|c| c.is_ascii_digit()) {
            return Err(CustodyError::invalid(
                "serial",
                input,
                "must be 1 to 10 digits",
            ));
        }
        let n: u32 = input
            .parse()
            .map_err(|_| CustodyError::invalid("serial", input, "out of range"))?;
        Self::new(n)
    }

    /// From the number a card reports.
    pub fn new(n: u32) -> Result<Self, CustodyError> {
        if n == 0 {
            return Err(CustodyError::invalid("serial", "0", "must not be zero"));
        }
        Ok(Self(n))
    }

    /// The number.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<u32> for Serial {
    type Error = CustodyError;
    fn try_from(n: u32) -> Result<Self, Self::Error> {
        Self::new(n)
    }
}

impl From<Serial> for u32 {
    fn from(s: Serial) -> u32 {
        s.0
    }
}

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A cloud provider (partition). The list is extensible: `Other` carries any lower-case name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Provider {
    /// AWS commercial partition.
    Aws,
    /// AWS GovCloud (US).
    AwsUsGov,
    /// AWS China.
    AwsCn,
    /// Another provider: 2 to 32 lower-case letters, digits and `-`.
    Other(String),
}

impl Provider {
    /// Parses `aws`, `aws-us-gov`, `aws-cn` or another provider's name.
    pub fn parse(input: &str) -> Result<Self, CustodyError> {
        Ok(match input {
            "aws" => Self::Aws,
            "aws-us-gov" => Self::AwsUsGov,
            "aws-cn" => Self::AwsCn,
            other => {
                chars_in(other, 2, 32, "lower-case letters, digits and -", |c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
                })
                .map_err(|r| CustodyError::invalid("provider", input, r))?;
                Self::Other(other.to_owned())
            }
        })
    }

    /// The text form.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Aws => "aws",
            Self::AwsUsGov => "aws-us-gov",
            Self::AwsCn => "aws-cn",
            Self::Other(s) => s,
        }
    }

    /// Parses an account id for this provider (AWS partitions: exactly 12 digits).
    pub fn parse_account_id(&self, input: &str) -> Result<AccountId, CustodyError> {
        match self {
            Self::Aws | Self::AwsUsGov | Self::AwsCn => {
                if input.len() != 12 || !input.chars().all(|c| c.is_ascii_digit()) {
                    return Err(CustodyError::invalid(
                        "account id",
                        input,
                        format!("an {} account id is exactly 12 digits", self.as_str()),
                    ));
                }
                AccountId::parse(input)
            }
            Self::Other(_) => AccountId::parse(input),
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Provider {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Provider {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The pattern ticket references must follow: an upper-case project key (one of `prefixes`,
/// or any 2 to 10 upper-case letters when the list is empty), `-`, and 1 to `max_digits`
/// digits, as in `SEC-1234`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TicketPattern {
    /// Allowed project keys (empty: any 2 to 10 upper-case letters).
    pub prefixes: Vec<String>,
    /// The most digits after the dash.
    pub max_digits: usize,
}

impl Default for TicketPattern {
    fn default() -> Self {
        Self {
            prefixes: Vec::new(),
            max_digits: 10,
        }
    }
}

/// A ticket reference that matched the configured [`TicketPattern`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TicketRef(String);

impl TicketRef {
    /// Parses `input` against `pattern`.
    pub fn parse(input: &str, pattern: &TicketPattern) -> Result<Self, CustodyError> {
        let bad = |r: String| CustodyError::invalid("ticket", input, r);
        let (key, num) = input
            .split_once('-')
            .ok_or_else(|| bad("must look like KEY-123".into()))?;
        let key_ok = if pattern.prefixes.is_empty() {
            (2..=10).contains(&key.len()) && key.chars().all(|c| c.is_ascii_uppercase())
        } else {
            pattern.prefixes.iter().any(|p| p == key)
        };
        if !key_ok {
            return Err(bad(if pattern.prefixes.is_empty() {
                "project key must be 2 to 10 upper-case letters".into()
            } else {
                format!("project key must be one of {}", pattern.prefixes.join(", "))
            }));
        }
        if num.is_empty()
            || num.len() > pattern.max_digits
            || !num.chars().all(|c| c.is_ascii_digit())
        {
            return Err(bad(format!(
                "must end with 1 to {} digits",
                pattern.max_digits
            )));
        }
        Ok(Self(input.to_owned()))
    }

    /// The text form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TicketRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A request's reason: at least the policy's minimum length, at most 1000 characters, no
/// control characters except newlines.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Reason(String);

impl Reason {
    /// Longest reason in characters.
    pub const MAX_CHARS: usize = 1000;

    /// Parses a reason of at least `min_chars` characters (trimmed).
    pub fn parse(input: &str, min_chars: usize) -> Result<Self, CustodyError> {
        let t = input.trim();
        let n = t.chars().count();
        if n < min_chars || n > Self::MAX_CHARS {
            return Err(CustodyError::invalid(
                "reason",
                input,
                format!("must be {min_chars} to {} characters", Self::MAX_CHARS),
            ));
        }
        if t.chars().any(|c| c.is_control() && c != '\n') {
            return Err(CustodyError::invalid(
                "reason",
                input,
                "must not contain control characters",
            ));
        }
        Ok(Self(t.to_owned()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_bad_ids_name_the_input() {
        for (r, input) in [
            (UserName::parse("Alice").map(drop), "Alice"),
            (UserName::parse("1bob").map(drop), "1bob"),
            (SealNumber::parse("ab12").map(drop), "ab12"),
            (Serial::parse("0").map(drop), "0"),
            (Serial::parse("99999999999").map(drop), "99999999999"),
            (RequestId::parse("req-xyz").map(drop), "req-xyz"),
            (Email::parse("root").map(drop), "root"),
            (Provider::Aws.parse_account_id("12345").map(drop), "12345"),
            (
                TicketRef::parse("sec-1", &TicketPattern::default()).map(drop),
                "sec-1",
            ),
            (Reason::parse("short", 20).map(drop), "short"),
        ] {
            let e = r.expect_err(input);
            assert!(e.to_string().contains(input), "{e}");
        }
    }

    #[test]
    fn good_ids_round_trip() {
        assert_eq!(
            UserName::parse("alice.b-1").expect("ok").as_str(),
            "alice.b-1"
        );
        assert_eq!(Serial::parse("10000001").expect("ok").get(), 10000001);
        assert_eq!(
            Provider::AwsUsGov
                .parse_account_id("123456789012")
                .expect("ok")
                .as_str(),
            "123456789012"
        );
        let p = TicketPattern {
            prefixes: vec!["SEC".into()],
            max_digits: 6,
        };
        assert!(TicketRef::parse("SEC-42", &p).is_ok());
        assert!(TicketRef::parse("OPS-42", &p).is_err());
        assert!(TicketRef::parse("SEC-1234567", &p).is_err());
        for p in ["aws", "aws-us-gov", "aws-cn", "gcp"] {
            assert_eq!(Provider::parse(p).expect("ok").as_str(), p);
        }
        let id = RequestId::generate().expect("rng");
        assert!(RequestId::parse(id.as_str()).is_ok());
    }
}
