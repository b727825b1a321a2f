//! The PIV applet's cryptography, from vetted crates only: P-256 and P-384 keys and ECDSA
//! signatures (`p256`, `p384`, RFC 6979 nonces), 3DES and AES single-block encryption for the management key's
//! challenge-response (`des`, `aes`), and random bytes from the system (`ring`).

use des::cipher::{BlockEncrypt, KeyInit};
use p256::ecdsa::signature::hazmat::PrehashSigner;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use super::state::{ALG_ECCP256, ALG_ECCP384};

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

/// Runs `$body` with `$c` naming the curve crate of key algorithm `$alg` (`11` P-256, `14`
/// P-384); any other algorithm is [`KeyError::BadKey`].
macro_rules! with_curve {
    ($alg:expr, $c:ident => $body:expr) => {
        match $alg {
            ALG_ECCP256 => {
                use p256 as $c;
                $body
            }
            ALG_ECCP384 => {
                use p384 as $c;
                $body
            }
            _ => Err(KeyError::BadKey),
        }
    };
}

/// A fresh private scalar (big-endian, 32 bytes for P-256, 48 for P-384).
pub fn generate(algorithm: u8) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    with_curve!(algorithm, c => {
        // A random string of the field's size is a valid scalar unless it is zero or at least
        // the group order (probability below 2^-32); draw again then.
        for _ in 0..16 {
            let bytes = random::<48>()?;
            let len = c::FieldBytes::default().len();
            if let Ok(key) = c::SecretKey::from_slice(&bytes[..len]) {
                return Ok(Zeroizing::new(key.to_bytes().to_vec()));
            }
        }
        Err(KeyError::Random)
    })
}

/// The uncompressed SEC1 point (`04 || X || Y`) of a private scalar.
pub fn public(algorithm: u8, secret: &[u8]) -> Result<Vec<u8>, KeyError> {
    with_curve!(algorithm, c => {
        let key = c::SecretKey::from_slice(secret).map_err(|_| KeyError::BadKey)?;
        Ok(key.public_key().to_encoded_point(false).as_bytes().to_vec())
    })
}

/// An ECDSA signature (DER) over a digest the client computed.
///
/// The card signs the digest it is given, at most the key's size (32 bytes for P-256, 48 for
/// P-384; the yubikey crate's `authenticated_command` refuses longer input before sending):
/// shorter input is left-padded with zeros, which is how ECDSA converts a short hash to an
/// integer (FIPS 186-4, 6.4); longer input is refused.
pub fn sign_digest(algorithm: u8, secret: &[u8], digest: &[u8]) -> Result<Vec<u8>, KeyError> {
    with_curve!(algorithm, c => {
        let mut padded = Zeroizing::new(c::FieldBytes::default());
        let len = padded.len();
        if digest.len() > len {
            return Err(KeyError::BadDigest);
        }
        padded[len - digest.len()..].copy_from_slice(digest);
        let key = c::ecdsa::SigningKey::from_slice(secret).map_err(|_| KeyError::BadKey)?;
        let sig: c::ecdsa::Signature = key
            .sign_prehash(padded.as_slice())
            .map_err(|_| KeyError::BadDigest)?;
        Ok(sig.to_der().as_bytes().to_vec())
    })
}

/// The uncompressed point of a P-256 private scalar (the attestation key's curve).
pub fn p256_public(secret: &[u8]) -> Result<Vec<u8>, KeyError> {
    public(ALG_ECCP256, secret)
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
