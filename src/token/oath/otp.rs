//! HOTP (RFC 4226) and TOTP (RFC 6238) code computation, shared by the client and the
//! software YubiKey.

use ring::hmac;
use zeroize::Zeroizing;

use super::{Code, Digits, HashAlgorithm, OathSecret, TimeStep};

/// HMAC of `message` under `key`.
pub fn hmac_digest(algorithm: HashAlgorithm, key: &[u8], message: &[u8]) -> Zeroizing<Vec<u8>> {
    let key = hmac::Key::new(algorithm.hmac_algorithm(), key);
    Zeroizing::new(hmac::sign(&key, message).as_ref().to_vec())
}

/// RFC 4226 dynamic truncation: the 31-bit value at the offset named by the digest's last nibble.
/// Every HMAC digest (20, 32 or 64 bytes) has the four bytes it needs; for shorter input the
/// missing bytes count as zero.
pub fn dynamic_truncate(digest: &[u8]) -> u32 {
    let offset = digest.last().map_or(0, |b| usize::from(b & 0x0F));
    let value = digest
        .iter()
        .skip(offset)
        .chain(std::iter::repeat(&0u8))
        .take(4)
        .fold(0u32, |acc, b| (acc << 8) | u32::from(*b));
    value & 0x7FFF_FFFF
}

/// The code a digest truncates to.
pub fn truncate(digest: &[u8], digits: Digits) -> Code {
    Code::from_value(dynamic_truncate(digest), digits)
}

/// RFC 4226 HOTP.
pub fn hotp(secret: &OathSecret, algorithm: HashAlgorithm, counter: u64, digits: Digits) -> Code {
    truncate(
        &hmac_digest(algorithm, secret.expose(), &counter.to_be_bytes()),
        digits,
    )
}

/// RFC 6238 TOTP: HOTP over the time step.
pub fn totp(secret: &OathSecret, algorithm: HashAlgorithm, step: TimeStep, digits: Digits) -> Code {
    hotp(secret, algorithm, step.0, digits)
}
