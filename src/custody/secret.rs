//! Secret carriers of the domain: users' passphrases, officers' second-factor seeds and codes,
//! and the provider's TOTP seed read at enrolment. Each is zeroized on drop, derives nothing,
//! and shows no secret byte in `Debug`.

use std::fmt;

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::token::oath::OathSecret;

use super::error::CustodyError;

/// A user's passphrase as typed. Zeroized on drop; `Debug` shows nothing of it.
pub struct UserPassphrase(Zeroizing<String>);

impl UserPassphrase {
    /// Fewest characters of a newly chosen passphrase.
    pub const MIN_CHARS: usize = 12;
    /// Most bytes of any passphrase.
    pub const MAX_BYTES: usize = 1024;

    /// A newly chosen passphrase: 12 characters or more, at most 1024 bytes.
    pub fn new_checked(text: Zeroizing<String>) -> Result<Self, CustodyError> {
        let n = text.chars().count();
        if n < Self::MIN_CHARS || text.len() > Self::MAX_BYTES {
            return Err(CustodyError::invalid(
                "passphrase",
                "<redacted>",
                format!(
                    "must be at least {} characters and at most {} bytes",
                    Self::MIN_CHARS,
                    Self::MAX_BYTES
                ),
            ));
        }
        Ok(Self(text))
    }

    /// A passphrase offered to authenticate (only the length limit applies).
    pub fn offered(text: Zeroizing<String>) -> Result<Self, CustodyError> {
        if text.len() > Self::MAX_BYTES {
            return Err(CustodyError::invalid(
                "passphrase",
                "<redacted>",
                "longer than 1024 bytes",
            ));
        }
        Ok(Self(text))
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for UserPassphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UserPassphrase(<redacted>)")
    }
}

/// A six-digit code from an officer's personal TOTP second factor, as typed.
pub struct FactorCode(Zeroizing<String>);

impl FactorCode {
    /// Parses six ASCII digits.
    pub fn parse(text: &str) -> Result<Self, CustodyError> {
        let t = text.trim();
        if t.len() != 6 || !t.chars().all(|c| c.is_ascii_digit()) {
            return Err(CustodyError::invalid(
                "second-factor code",
                "<redacted>",
                "must be 6 digits",
            ));
        }
        Ok(Self(Zeroizing::new(t.to_owned())))
    }

    /// Constant-time comparison with a computed code.
    pub(crate) fn matches(&self, computed: &str) -> bool {
        self.0.as_bytes().ct_eq(computed.as_bytes()).into()
    }
}

impl fmt::Debug for FactorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FactorCode(<redacted>)")
    }
}

/// An officer's personal TOTP seed (20 random bytes). Lives only in memory, zeroized on drop;
/// stored only encrypted.
pub struct FactorSeed(pub(crate) Zeroizing<Vec<u8>>);

impl FactorSeed {
    /// Seed length in bytes.
    pub const LEN: usize = 20;

    pub(crate) fn generate() -> Result<Self, CustodyError> {
        use ring::rand::SecureRandom;
        let mut b = Zeroizing::new(vec![0u8; Self::LEN]);
        ring::rand::SystemRandom::new()
            .fill(&mut b)
            .map_err(|_| CustodyError::Crypto {
                operation: "generate second-factor seed",
            })?;
        Ok(Self(b))
    }

    pub(crate) fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for FactorSeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FactorSeed(<redacted>)")
    }
}

/// What an officer's enrolment hands back exactly once: the second-factor seed as an
/// `otpauth://` URI (for an authenticator app) and as Base32.
pub struct FactorEnrolment {
    uri: Zeroizing<String>,
    base32: Zeroizing<String>,
}

impl FactorEnrolment {
    pub(crate) fn new(user: &str, seed: &FactorSeed) -> Self {
        let base32 = Zeroizing::new(data_encoding::BASE32_NOPAD.encode(seed.expose()));
        let uri = Zeroizing::new(format!(
            "otpauth://totp/mfa-custody:{user}?secret={}&issuer=mfa-custody&algorithm=SHA1&digits=6&period=30",
            base32.as_str()
        ));
        Self { uri, base32 }
    }

    /// The `otpauth://totp/...` URI.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// The seed in Base32 (no padding).
    pub fn base32(&self) -> &str {
        &self.base32
    }
}

impl fmt::Debug for FactorEnrolment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FactorEnrolment(<redacted>)")
    }
}

/// The provider's TOTP seed for a root user, read at enrolment from Base32 or an `otpauth://`
/// URI. Only TOTP, SHA-1, 6 digits, 30 s is accepted (what the devices are programmed with).
pub struct ProviderSeed {
    pub(crate) secret: OathSecret,
    /// The URI's label (`issuer:account`), when given.
    pub(crate) label: Option<String>,
}

impl fmt::Debug for ProviderSeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderSeed")
            .field("secret", &"<redacted>")
            .field("label", &self.label)
            .finish()
    }
}

fn percent_decode(s: &str) -> Result<Zeroizing<String>, CustodyError> {
    let bytes = s.as_bytes();
    let mut out = Zeroizing::new(Vec::with_capacity(bytes.len()));
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| bad_seed("bad percent-encoding in the URI"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(if b == b'+' { b' ' } else { b });
            i += 1;
        }
    }
    let text = String::from_utf8(std::mem::take(&mut *out))
        .map_err(|_| bad_seed("the URI is not UTF-8 once decoded"))?;
    Ok(Zeroizing::new(text))
}

fn bad_seed(reason: &str) -> CustodyError {
    CustodyError::BadSeed {
        reason: reason.to_owned(),
    }
}

impl ProviderSeed {
    /// Parses a Base32 seed (spaces and case ignored, padding optional) or an `otpauth://totp/`
    /// URI (including AWS's `otpauth://totp/name@Account?secret=...`). Errors never quote the
    /// seed.
    pub fn parse(input: &str) -> Result<Self, CustodyError> {
        let t = input.trim();
        if let Some(rest) = t.strip_prefix("otpauth://") {
            let rest = rest
                .strip_prefix("totp/")
                .ok_or_else(|| bad_seed("only otpauth://totp/ URIs are accepted"))?;
            let (label, query) = rest.split_once('?').unwrap_or((rest, ""));
            let label = percent_decode(label)?;
            let mut secret = None;
            for pair in query.split('&').filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                let v = percent_decode(v)?;
                match k.to_ascii_lowercase().as_str() {
                    "secret" => secret = Some(v),
                    "algorithm" if !v.eq_ignore_ascii_case("sha1") => {
                        return Err(bad_seed("only SHA1 is accepted (algorithm)"))
                    }
                    "digits" if v.as_str() != "6" => {
                        return Err(bad_seed("only 6 digits are accepted (digits)"))
                    }
                    "period" if v.as_str() != "30" => {
                        return Err(bad_seed("only a 30 s period is accepted (period)"))
                    }
                    _ => {}
                }
            }
            let secret = secret.ok_or_else(|| bad_seed("the URI has no secret parameter"))?;
            let mut s = Self::from_base32(&secret)?;
            s.label = (!label.is_empty()).then(|| label.to_string());
            Ok(s)
        } else {
            Self::from_base32(t)
        }
    }

    fn from_base32(text: &str) -> Result<Self, CustodyError> {
        let cleaned: Zeroizing<String> = Zeroizing::new(
            text.chars()
                .filter(|c| !c.is_whitespace() && *c != '=' && *c != '-')
                .map(|c| c.to_ascii_uppercase())
                .collect(),
        );
        let bytes = data_encoding::BASE32_NOPAD
            .decode(cleaned.as_bytes())
            .map_err(|_| bad_seed("not valid Base32"))?;
        let bytes = Zeroizing::new(bytes);
        if bytes.len() < 10 {
            return Err(bad_seed("shorter than 80 bits"));
        }
        Ok(Self {
            secret: OathSecret::from_bytes(bytes),
            label: None,
        })
    }

    /// The label of the URI it came from, if any (`issuer:account` or AWS's `name@Account`).
    pub fn label(&self) -> Option<&str> {
        self.label.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B32: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

    #[test]
    fn seeds_parse_from_base32_and_uris() {
        let a = ProviderSeed::parse(B32).expect("base32");
        assert_eq!(a.secret.expose(), b"12345678901234567890");
        let b = ProviderSeed::parse("gezd gnbv gy3t qojq gezd gnbv gy3t qojq").expect("spaced");
        assert_eq!(b.secret.expose(), b"12345678901234567890");
        let aws = format!("otpauth://totp/Amazon%20Web%20Services:root@123456789012?secret={B32}&issuer=Amazon%20Web%20Services");
        let c = ProviderSeed::parse(&aws).expect("aws uri");
        assert_eq!(c.secret.expose(), b"12345678901234567890");
        assert_eq!(c.label(), Some("Amazon Web Services:root@123456789012"));
        let plain = format!("otpauth://totp/name@Account?secret={B32}");
        assert!(ProviderSeed::parse(&plain).is_ok());
    }

    #[test]
    fn fail_seed_errors_never_quote_the_seed() {
        for bad in [
            format!("otpauth://hotp/x?secret={B32}"),
            format!("otpauth://totp/x?secret={B32}&digits=8"),
            format!("otpauth://totp/x?secret={B32}&algorithm=SHA256"),
            format!("otpauth://totp/x?secret={B32}&period=60"),
            "otpauth://totp/x?issuer=y".to_owned(),
            "GEZDGNBV1!".to_owned(),
            "GEZDGNBV".to_owned(),
        ] {
            let e = ProviderSeed::parse(&bad).expect_err(&bad);
            assert!(!e.to_string().contains("GEZDGNBV"), "{e}");
            assert!(!format!("{e:?}").contains("GEZDGNBV"), "{e:?}");
        }
    }

    #[test]
    fn debug_shows_no_secret() {
        let s = ProviderSeed::parse(B32).expect("seed");
        let p = UserPassphrase::new_checked(Zeroizing::new("correct horse battery".into()))
            .expect("pass");
        let c = FactorCode::parse("123456").expect("code");
        let f = FactorSeed(Zeroizing::new(b"abcdefghijklmnopqrst".to_vec()));
        let e = FactorEnrolment::new("alice", &f);
        let shown = format!("{s:?} {p:?} {c:?} {f:?} {e:?}");
        for secret in [
            "12345678901234567890",
            "3132333435",
            "correct horse",
            "123456",
            "abcdefghij",
            &data_encoding::BASE32_NOPAD.encode(b"abcdefghijklmnopqrst"),
            B32,
        ] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(e
            .uri()
            .starts_with("otpauth://totp/mfa-custody:alice?secret="));
    }
}
