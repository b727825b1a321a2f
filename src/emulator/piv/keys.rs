//! The PIV applet's cryptography, from vetted crates only: P-256 keys and ECDSA signatures
//! (`p256`, RFC 6979 nonces), 3DES and AES single-block encryption for the management key's
//! challenge-response (`des`, `aes`), and random bytes from the system (`ring`).

use des::cipher::{BlockEncrypt, KeyInit};
use p256::ecdsa::signature::hazmat::PrehashSigner;
use p256::ecdsa::{DerSignature, SigningKey};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

/// Why a cryptographic step failed. The emulator answers each with a status word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The system random generator failed.
    #[error("the system random generator failed")]
    Random,
    /// Stored or imported key bytes are not a valid key of their algorithm.
    #[error("the key bytes are not a valid key")]
    BadKey,
    /// The digest to sign is longer than the curve's order allows.
    #[error("the digest is longer than the key's size")]
    BadDigest,
}

/// `n` random bytes from the system generator.
pub fn random<const N: usize>() -> Result<Zeroizing<[u8; N]>, KeyError> {
    let mut out = Zeroizing::new([0u8; N]);
    SystemRandom::new()
        .fill(out.as_mut())
        .map_err(|_| KeyError::Random)?;
    Ok(out)
}

/// A fresh P-256 private scalar (32 bytes, big-endian).
pub fn generate_p256() -> Result<Zeroizing<Vec<u8>>, KeyError> {
    // A random 32-byte string is a valid scalar unless it is zero or at least the group order
    // (probability about 2^-32); draw again then.
    for _ in 0..16 {
        let bytes = random::<32>()?;
        if let Ok(key) = p256::SecretKey::from_slice(bytes.as_ref()) {
            return Ok(Zeroizing::new(key.to_bytes().to_vec()));
        }
    }
    Err(KeyError::Random)
}

/// The uncompressed SEC1 point (`04 || X || Y`, 65 bytes) of a P-256 private scalar.
pub fn p256_public(secret: &[u8]) -> Result<Vec<u8>, KeyError> {
    let key = p256::SecretKey::from_slice(secret).map_err(|_| KeyError::BadKey)?;
    Ok(key.public_key().to_encoded_point(false).as_bytes().to_vec())
}

/// An ECDSA P-256 signature (DER) over a digest the client computed.
///
/// The card signs the digest it is given, at most the key's 32 bytes (the yubikey crate's
/// `authenticated_command` refuses longer input for P-256 before sending): shorter input is
/// left-padded with zeros, which is how ECDSA converts a short hash to an integer (FIPS 186-4,
/// 6.4); longer input is refused.
pub fn p256_sign_digest(secret: &[u8], digest: &[u8]) -> Result<Vec<u8>, KeyError> {
    if digest.len() > 32 {
        return Err(KeyError::BadDigest);
    }
    let mut padded = Zeroizing::new([0u8; 32]);
    let start = 32 - digest.len();
    padded[start..].copy_from_slice(digest);
    let key = SigningKey::from_slice(secret).map_err(|_| KeyError::BadKey)?;
    let sig: p256::ecdsa::Signature = key
        .sign_prehash(padded.as_ref())
        .map_err(|_| KeyError::BadDigest)?;
    let der: DerSignature = sig.to_der();
    Ok(der.as_bytes().to_vec())
}

/// Management key algorithms: 3DES (`03`) and, from firmware 5.4, AES-128/192/256 (`08`, `0A`,
/// `0C`) (YubiKey .NET SDK, "Get metadata"; Yubico, "PIV management key" on 5.4).
pub const MANAGEMENT_ALGORITHMS: [(u8, usize, usize); 4] = [
    (0x03, 24, 8),
    (0x08, 16, 16),
    (0x0A, 24, 16),
    (0x0C, 32, 16),
];

/// The key length and block length of management key `algorithm`, if it is one.
pub fn management_lengths(algorithm: u8) -> Option<(usize, usize)> {
    MANAGEMENT_ALGORITHMS
        .iter()
        .find(|(a, _, _)| *a == algorithm)
        .map(|&(_, key, block)| (key, block))
}

fn encrypt_with<C: BlockEncrypt + KeyInit>(key: &[u8], block: &[u8]) -> Result<Vec<u8>, KeyError> {
    let cipher = C::new_from_slice(key).map_err(|_| KeyError::BadKey)?;
    if block.len() != C::block_size() {
        return Err(KeyError::BadKey);
    }
    let mut b = des::cipher::generic_array::GenericArray::clone_from_slice(block);
    cipher.encrypt_block(&mut b);
    Ok(b.to_vec())
}

/// Encrypts one block (8 bytes for 3DES, 16 for AES) with a management key of `algorithm`.
pub fn management_encrypt(algorithm: u8, key: &[u8], block: &[u8]) -> Result<Vec<u8>, KeyError> {
    match algorithm {
        0x03 => encrypt_with::<des::TdesEde3>(key, block),
        0x08 => encrypt_with::<aes::Aes128>(key, block),
        0x0A => encrypt_with::<aes::Aes192>(key, block),
        0x0C => encrypt_with::<aes::Aes256>(key, block),
        _ => Err(KeyError::BadKey),
    }
}
