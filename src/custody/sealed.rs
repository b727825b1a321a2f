//! Secret records as the ledger stores them: AES-256-GCM under a key the ledger derives for
//! one purpose, with a fresh random nonce, bound to the record's identity as associated data.
//! Users' credentials ([`super::users`]) and devices' OATH access keys
//! ([`super::device_keys`]) are stored only this way; exports carry digests of them instead.

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use super::error::CustodyError;

/// Seals `plain` under `key`, bound to `aad`: Base64 of nonce ‖ ciphertext ‖ tag. `what` names
/// the secret in an error.
pub(crate) fn seal(
    key: &[u8; 32],
    aad: &[u8],
    mut plain: Zeroizing<Vec<u8>>,
    what: &'static str,
) -> Result<String, CustodyError> {
    let crypto = || CustodyError::Crypto { operation: what };
    let k = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).map_err(|_| crypto())?);
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new().fill(&mut nonce).map_err(|_| crypto())?;
    k.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad),
        &mut *plain,
    )
    .map_err(|_| crypto())?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&plain);
    Ok(data_encoding::BASE64.encode(&out))
}

/// Opens what [`seal`] made with the same key and associated data. `None` for anything that
/// does not decrypt (one answer for every failure: no oracle).
pub(crate) fn open(key: &[u8; 32], aad: &[u8], sealed: &str) -> Option<Zeroizing<Vec<u8>>> {
    let bytes = data_encoding::BASE64.decode(sealed.as_bytes()).ok()?;
    let nonce: [u8; NONCE_LEN] = bytes.get(..NONCE_LEN)?.try_into().ok()?;
    let mut buf = Zeroizing::new(bytes.get(NONCE_LEN..)?.to_vec());
    let k = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).ok()?);
    let n = k
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut buf,
        )
        .ok()?
        .len();
    buf.truncate(n);
    Some(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_bound_to_key_and_identity() {
        let plain = Zeroizing::new(b"sixteen byte key".to_vec());
        let s = seal(&[1u8; 32], b"id-1", plain, "test").expect("seal");
        assert!(
            !s.contains("c2l4dGVlbiBieXRlIGtleQ"),
            "not Base64 of the plaintext"
        );
        let o = open(&[1u8; 32], b"id-1", &s).expect("open");
        assert_eq!(o.as_slice(), b"sixteen byte key");
        assert!(open(&[1u8; 32], b"id-2", &s).is_none(), "bound to the id");
        assert!(open(&[2u8; 32], b"id-1", &s).is_none(), "bound to the key");
        assert!(open(&[1u8; 32], b"id-1", "not base64!").is_none());
        assert!(open(&[1u8; 32], b"id-1", "AAAA").is_none(), "too short");
    }
}
