//! Parse-don't-validate newtypes for the names and numbers the domain takes from outside: each
//! is built by a parser that refuses bad input once, at the edge.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::error::CustodyError;

macro_rules! string_id {
    ($(#[$m:meta])* $name:ident, $what:literal, $check:expr) => {
        $(#[$m])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Parses the text form, refusing anything malformed or unsafe to show
            /// ([`check_display_safe`]).
            pub fn parse(input: &str) -> Result<Self, CustodyError> {
                check_display_safe($what, input)?;
                Self::stored(input)
            }

            /// Reads a value the ledger already holds: the shape is checked, but not
            /// [`check_display_safe`], so that a ledger written before that rule still opens
            /// (its strings are escaped wherever they are shown, see [`escape_unsafe`]).
            fn stored(input: &str) -> Result<Self, CustodyError> {
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
                Self::stored(&s).map_err(serde::de::Error::custom)
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

/// What a character refused by [`check_display_safe`] could do to a screen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Unsafe {
    /// C0 and C1 controls and DEL: new lines, tabs, terminal escape sequences.
    Control,
    /// U+2028 and U+2029: some screens start a new line at them.
    Separator,
    /// Bidi embeddings, overrides, isolates and marks: they reorder what follows.
    Bidi,
    /// Zero-width, invisible and formatting characters, and blank fillers.
    Invisible,
    /// Variation selectors: invisible, they only change a glyph's look.
    Variation,
}

impl Unsafe {
    fn describe(self) -> &'static str {
        match self {
            Self::Control => {
                "a control character (a line break, tab or terminal escape: it can forge lines \
                 or drive the terminal)"
            }
            Self::Separator => "a line or paragraph separator (it can forge a new line)",
            Self::Bidi => "a bidi control (it can reorder what a screen shows)",
            Self::Invisible => {
                "an invisible formatting character (it can hide text or make two texts that \
                 look the same differ)"
            }
            Self::Variation => {
                "a variation selector (invisible: it can make two texts that look the same \
                 differ)"
            }
        }
    }
}

/// The characters free text may not hold, as inclusive ranges in code point order: Unicode's
/// control (Cc), format (Cf), line separator (Zl) and paragraph separator (Zp) categories, and
/// every Default_Ignorable_Code_Point (which adds the variation selectors, the combining
/// grapheme joiner, the Hangul fillers, U+2065, U+FFF0 to U+FFF8 and the rest of the tag
/// block), as of Unicode 15.
const UNSAFE: &[(u32, u32, Unsafe)] = &[
    (0x0000, 0x001F, Unsafe::Control),
    (0x007F, 0x009F, Unsafe::Control),
    (0x00AD, 0x00AD, Unsafe::Invisible), // soft hyphen
    (0x034F, 0x034F, Unsafe::Invisible), // combining grapheme joiner
    (0x0600, 0x0605, Unsafe::Invisible), // Arabic number signs
    (0x061C, 0x061C, Unsafe::Bidi),      // Arabic letter mark
    (0x06DD, 0x06DD, Unsafe::Invisible),
    (0x070F, 0x070F, Unsafe::Invisible),
    (0x0890, 0x0891, Unsafe::Invisible),
    (0x08E2, 0x08E2, Unsafe::Invisible),
    (0x115F, 0x1160, Unsafe::Invisible), // Hangul fillers
    (0x17B4, 0x17B5, Unsafe::Invisible),
    (0x180B, 0x180D, Unsafe::Variation), // Mongolian free variation selectors
    (0x180E, 0x180E, Unsafe::Invisible), // Mongolian vowel separator
    (0x180F, 0x180F, Unsafe::Variation),
    (0x200B, 0x200D, Unsafe::Invisible), // zero-width space, non-joiner, joiner
    (0x200E, 0x200F, Unsafe::Bidi),      // LRM, RLM
    (0x2028, 0x2029, Unsafe::Separator),
    (0x202A, 0x202E, Unsafe::Bidi),      // LRE, RLE, PDF, LRO, RLO
    (0x2060, 0x2065, Unsafe::Invisible), // word joiner, invisible operators
    (0x2066, 0x2069, Unsafe::Bidi),      // LRI, RLI, FSI, PDI
    (0x206A, 0x206F, Unsafe::Invisible), // deprecated format characters
    (0x3164, 0x3164, Unsafe::Invisible), // Hangul filler
    (0xFE00, 0xFE0F, Unsafe::Variation),
    (0xFEFF, 0xFEFF, Unsafe::Invisible), // zero-width no-break space (BOM)
    (0xFFA0, 0xFFA0, Unsafe::Invisible), // halfwidth Hangul filler
    (0xFFF0, 0xFFFB, Unsafe::Invisible), // interlinear annotation
    (0x110BD, 0x110BD, Unsafe::Invisible),
    (0x110CD, 0x110CD, Unsafe::Invisible),
    (0x13430, 0x1343F, Unsafe::Invisible), // Egyptian hieroglyph format controls
    (0x1BCA0, 0x1BCA3, Unsafe::Invisible), // shorthand format controls
    (0x1D173, 0x1D17A, Unsafe::Invisible), // musical symbol format controls
    (0xE0000, 0xE00FF, Unsafe::Invisible), // tags
    (0xE0100, 0xE01EF, Unsafe::Variation),
    (0xE01F0, 0xE0FFF, Unsafe::Invisible),
];

fn unsafe_class(c: char) -> Option<Unsafe> {
    if (' '..='~').contains(&c) {
        return None;
    }
    let cp = u32::from(c);
    UNSAFE
        .iter()
        .find(|(lo, hi, _)| (*lo..=*hi).contains(&cp))
        .map(|&(_, _, class)| class)
}

/// Whether `c` may be shown to a person as it is: false for control characters, bidi
/// controls, line and paragraph separators, zero-width and other invisible formatting
/// characters and variation selectors (the list is in this module's `UNSAFE`).
pub fn is_display_safe(c: char) -> bool {
    unsafe_class(c).is_none()
}

/// Refuses free text that could make a screen lie: a line break forging a `requester` line, a
/// bidi override reversing what an officer reads, an invisible character hiding a difference.
/// Every parser of human free text (reasons, notes, aliases, locations, ...) calls this. The
/// error names `field`, the 1-based position of the first such character and its code point as
/// `U+XXXX`; it shows only the text before that character, never the character itself.
pub fn check_display_safe(field: &'static str, value: &str) -> Result<(), CustodyError> {
    for (i, (at, c)) in value.char_indices().enumerate() {
        if let Some(class) = unsafe_class(c) {
            return Err(CustodyError::invalid(
                field,
                &value[..at],
                format!(
                    "character {} (after the text shown) is U+{:04X}, {}; type the {field} \
                     again on one line with letters, digits, punctuation and spaces only",
                    i + 1,
                    u32::from(c),
                    class.describe()
                ),
            ));
        }
    }
    Ok(())
}

/// `text` as it may be shown on a terminal or in a report: every character
/// [`check_display_safe`] refuses is replaced by a visible escape (`\n`, `\r`, `\t`, else
/// `\u{202e}`); text without one comes back unchanged. Use it for every ledger string shown to
/// a person, since a ledger written before the rule may hold such characters.
pub fn escape_unsafe(text: &str) -> Cow<'_, str> {
    if text.chars().all(is_display_safe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if !is_display_safe(c) => {
                use std::fmt::Write as _;
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
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
    /// Where a sealed device is kept (safe and shelf): 1 to 64 characters, none refused by
    /// [`check_display_safe`].
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
    /// An account alias: 1 to 64 characters, none refused by [`check_display_safe`].
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
        check_display_safe("ticket", input)?;
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

/// A request's reason: at least the policy's minimum length, at most 1000 characters, on one
/// line, none refused by [`check_display_safe`] (it is what approving officers read).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Reason(String);

impl Reason {
    /// Longest reason in characters.
    pub const MAX_CHARS: usize = 1000;

    /// Parses a reason of at least `min_chars` characters (trimmed).
    pub fn parse(input: &str, min_chars: usize) -> Result<Self, CustodyError> {
        let t = input.trim();
        // First, so that no other refusal shows the input with such a character in it.
        check_display_safe("reason", t)?;
        let n = t.chars().count();
        if n < min_chars || n > Self::MAX_CHARS {
            return Err(CustodyError::invalid(
                "reason",
                input,
                format!("must be {min_chars} to {} characters", Self::MAX_CHARS),
            ));
        }
        Ok(Self(t.to_owned()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A free-text note (why a request is denied, how an incident was resolved, what an incident
/// is): at most 500 characters after trimming, possibly empty, none refused by
/// [`check_display_safe`]. A note the ledger already holds is read as written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Note(String);

impl Note {
    /// Longest note in characters.
    pub const MAX_CHARS: usize = 500;

    /// Parses the note given for `field` (`"note"`, `"incident detail"`, ...).
    pub fn parse(field: &'static str, input: &str) -> Result<Self, CustodyError> {
        let t = input.trim();
        check_display_safe(field, t)?;
        if t.chars().count() > Self::MAX_CHARS {
            return Err(CustodyError::invalid(
                field,
                input,
                format!(
                    "must be at most {} characters; shorten it (details belong in the ticket)",
                    Self::MAX_CHARS
                ),
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

    /// One character of each kind the rule refuses.
    const REFUSED: &[char] = &[
        '\n',
        '\r',
        '\t',
        '\u{0}',
        '\u{1b}',
        '\u{7f}',
        '\u{85}',
        '\u{9b}', // controls
        '\u{2028}',
        '\u{2029}', // separators
        '\u{61c}',
        '\u{200e}',
        '\u{200f}',
        '\u{202a}',
        '\u{202b}',
        '\u{202c}',
        '\u{202d}',
        '\u{202e}',
        '\u{2066}',
        '\u{2067}',
        '\u{2068}',
        '\u{2069}', // bidi
        '\u{200b}',
        '\u{200c}',
        '\u{200d}',
        '\u{2060}',
        '\u{2061}',
        '\u{2062}',
        '\u{2063}',
        '\u{2064}',
        '\u{feff}',
        '\u{180e}',
        '\u{ad}',
        '\u{34f}',
        '\u{3164}',
        '\u{e0041}',
        '\u{fff9}', // invisible
        '\u{fe0f}',
        '\u{fe00}',
        '\u{180b}',
        '\u{e0100}', // variation selectors
    ];

    #[test]
    fn the_unsafe_table_is_ordered_and_disjoint() {
        for w in UNSAFE.windows(2) {
            assert!(w[0].0 <= w[0].1 && w[0].1 < w[1].0, "{:x?}", w);
        }
    }

    #[test]
    fn fail_every_unsafe_kind_is_refused_by_name_position_and_code_point() {
        for &c in REFUSED {
            let input = format!("approve{c}requester mallory");
            let e = check_display_safe("reason", &input).expect_err(&format!("{c:?}"));
            let m = e.to_string();
            assert!(m.starts_with("invalid reason \"approve\""), "{m}");
            assert!(m.contains("character 8 "), "{m}");
            assert!(
                m.contains(&format!("U+{:04X}", u32::from(c))),
                "{m} should name U+{:04X}",
                u32::from(c)
            );
            assert!(m.contains("type the reason again"), "{m}");
            assert!(!m.contains(c), "{m:?} echoes the character");
            assert!(!m.contains("mallory"), "{m}");
        }
    }

    #[test]
    fn fail_every_free_text_parser_refuses_unsafe_characters() {
        let long = "rotate the root password after the audit";
        for c in ['\n', '\u{202e}', '\u{200b}', '\u{1b}'] {
            let bad = format!("{long}{c}x");
            let refusals = [
                ("reason", Reason::parse(&bad, 20).map(drop)),
                ("note", Note::parse("note", &bad).map(drop)),
                (
                    "incident detail",
                    Note::parse("incident detail", &bad).map(drop),
                ),
                ("alias", Alias::parse(&format!("prod{c}")).map(drop)),
                ("location", Location::parse(&format!("safe A{c}")).map(drop)),
                (
                    "ticket",
                    TicketRef::parse(
                        &format!("SEC{c}-1"),
                        &TicketPattern {
                            prefixes: vec![format!("SEC{c}")],
                            max_digits: 6,
                        },
                    )
                    .map(drop),
                ),
            ];
            for (field, r) in refusals {
                let m = r.expect_err(field).to_string();
                assert!(m.starts_with(&format!("invalid {field} ")), "{m}");
                assert!(m.contains(&format!("U+{:04X}", u32::from(c))), "{m}");
            }
        }
    }

    #[test]
    fn fail_no_refusal_echoes_an_unsafe_character() {
        for &c in REFUSED {
            let short = format!("a{c}b");
            let long = format!("x{c}{}", "x".repeat(Note::MAX_CHARS + 1));
            for e in [
                Reason::parse(&short, 20).map(drop),
                Reason::parse(&long.repeat(3), 20).map(drop),
                Note::parse("note", &long).map(drop),
                Alias::parse(&long).map(drop),
                Location::parse(&short).map(drop),
                TicketRef::parse(&short, &TicketPattern::default()).map(drop),
            ] {
                let m = e.expect_err("refused").to_string();
                assert!(!m.contains(c), "{m:?}");
                assert!(m.contains(&format!("U+{:04X}", u32::from(c))), "{m}");
            }
        }
    }

    #[test]
    fn safe_free_text_is_accepted_as_typed() {
        let text = "Rotate root pwd: «audit» 2024 — ünïcödé, 日本語, שלום, 🔑 (SEC-42)";
        assert_eq!(Reason::parse(text, 20).expect("ok").as_str(), text);
        assert_eq!(Note::parse("note", text).expect("ok").as_str(), text);
        assert_eq!(Note::parse("note", "").expect("ok").as_str(), "");
        assert!(Alias::parse("prod — ünï").is_ok());
        assert!(Location::parse("safe A, shelf 1").is_ok());
        assert_eq!(escape_unsafe(text), text);
    }

    #[test]
    fn fail_a_long_note_is_refused_not_cut() {
        let m = Note::parse("note", &"x".repeat(Note::MAX_CHARS + 1))
            .expect_err("too long")
            .to_string();
        assert!(m.contains("at most 500"), "{m}");
    }

    #[test]
    fn a_stored_value_from_before_the_rule_still_reads_and_is_shown_escaped() {
        let alias: Alias = serde_json::from_str("\"prod\\u202e\"").expect("old ledgers open");
        assert_eq!(escape_unsafe(alias.as_str()), "prod\\u{202e}");
        assert!(serde_json::from_str::<Alias>("\"pr\\nod\"").is_err());
    }

    #[test]
    fn escaping_makes_every_unsafe_character_visible() {
        assert_eq!(
            escape_unsafe("a\nrequester alice\r\tb\u{1b}[2J\u{202e}c\u{200b}d\u{fe0f}"),
            "a\\nrequester alice\\r\\tb\\u{1b}[2J\\u{202e}c\\u{200b}d\\u{fe0f}"
        );
        for &c in REFUSED {
            let shown = escape_unsafe(&format!("x{c}y")).into_owned();
            assert!(shown.chars().all(is_display_safe), "{shown:?}");
            assert!(
                shown.starts_with("x\\") && shown.ends_with('y'),
                "{shown:?}"
            );
        }
    }

    mod props {
        use super::super::*;
        use proptest::prelude::*;

        fn refused() -> impl Strategy<Value = char> {
            proptest::sample::select(super::REFUSED.to_vec())
        }

        proptest! {
            #[test]
            fn any_text_with_an_unsafe_character_is_refused(
                before in "[a-zA-Z0-9 .,:;!?()'\"«»é日🔑-]{0,40}",
                c in refused(),
                after in any::<String>(),
            ) {
                let input = format!("{before}{c}{after}");
                let e = check_display_safe("reason", &input).expect_err("refused");
                let m = e.to_string();
                let at = before.chars().count() + 1;
                let expected = format!("character {at} ");
                prop_assert!(m.contains(&expected), "{}", m);
                prop_assert!(!m.contains(c));
            }

            #[test]
            fn any_text_of_safe_characters_is_accepted(
                s in any::<String>().prop_map(|s| s.chars().filter(|&c| is_display_safe(c)).collect::<String>())
            ) {
                prop_assert!(check_display_safe("reason", &s).is_ok());
                prop_assert_eq!(escape_unsafe(&s), s.as_str());
            }

            #[test]
            fn escaped_text_is_always_safe(s in any::<String>()) {
                prop_assert!(escape_unsafe(&s).chars().all(is_display_safe));
            }
        }
    }
}
