//! One certificate's signature checked with its issuer's key, by `ring`: RSA PKCS#1 v1.5 with
//! SHA-256/384/512 and ECDSA over P-256/P-384 with SHA-256/384, the algorithms Yubico's PIV
//! hierarchies use (RSA-2048 with SHA-256 for the roots' children and the F9 certificates,
//! SHA-512 for `Yubico Attestation Root 1`'s own signature; a replaced F9 key may be EC, and
//! Yubico's OID arc page says an EC attesting key signs with ECDSA-SHA256).

use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use x509_cert::der::asn1::ObjectIdentifier;
use x509_cert::der::oid::db::rfc5912;
use x509_cert::Certificate;

use super::error::{AttestationError, CertRole};
use super::subject_of;

const SECP256R1: ObjectIdentifier = rfc5912::SECP_256_R_1;
const SECP384R1: ObjectIdentifier = rfc5912::SECP_384_R_1;

/// The issuer's key as `ring` takes it, or why it cannot be used.
enum IssuerKey<'a> {
    Rsa(&'a [u8]),
    EcP256(&'a [u8]),
    EcP384(&'a [u8]),
}

fn issuer_key<'a>(issuer: &'a Certificate) -> Result<IssuerKey<'a>, String> {
    let spki = &issuer.tbs_certificate.subject_public_key_info;
    let key = spki
        .subject_public_key
        .as_bytes()
        .ok_or_else(|| "a public key that is not a whole number of bytes".to_owned())?;
    let oid = spki.algorithm.oid;
    if oid == rfc5912::RSA_ENCRYPTION {
        return Ok(IssuerKey::Rsa(key));
    }
    if oid == rfc5912::ID_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
        return match curve {
            Some(c) if c == SECP256R1 => Ok(IssuerKey::EcP256(key)),
            Some(c) if c == SECP384R1 => Ok(IssuerKey::EcP384(key)),
            Some(c) => Err(format!("EC curve {c}")),
            None => Err("an EC key without a named curve".to_owned()),
        };
    }
    Err(oid.to_string())
}

/// Checks that `cert` (in `role`) is signed by `issuer`'s key. `tbs` is the exact DER of
/// `cert`'s to-be-signed part.
pub(super) fn verify_signed_by(
    cert: &Certificate,
    tbs: &[u8],
    role: CertRole,
    issuer: &Certificate,
) -> Result<(), AttestationError> {
    let subject = subject_of(cert);
    let unsupported = |what: &'static str, oid: String| AttestationError::UnsupportedAlgorithm {
        role,
        subject: subject.clone(),
        what,
        oid,
    };
    // RFC 5280 section 4.1.1.2: the outer algorithm must equal the one inside the signed part.
    let alg = &cert.signature_algorithm;
    if alg.oid != cert.tbs_certificate.signature.oid
        || alg.parameters != cert.tbs_certificate.signature.parameters
    {
        return Err(AttestationError::Malformed {
            role,
            reason: "its two signature algorithm fields differ".to_owned(),
        });
    }
    let key = issuer_key(issuer).map_err(|oid| unsupported("issuer key", oid))?;
    let algorithm: &'static dyn VerificationAlgorithm = match (alg.oid, &key) {
        (rfc5912::SHA_256_WITH_RSA_ENCRYPTION, IssuerKey::Rsa(_)) => {
            &signature::RSA_PKCS1_2048_8192_SHA256
        }
        (rfc5912::SHA_384_WITH_RSA_ENCRYPTION, IssuerKey::Rsa(_)) => {
            &signature::RSA_PKCS1_2048_8192_SHA384
        }
        (rfc5912::SHA_512_WITH_RSA_ENCRYPTION, IssuerKey::Rsa(_)) => {
            &signature::RSA_PKCS1_2048_8192_SHA512
        }
        (rfc5912::ECDSA_WITH_SHA_256, IssuerKey::EcP256(_)) => &signature::ECDSA_P256_SHA256_ASN1,
        (rfc5912::ECDSA_WITH_SHA_384, IssuerKey::EcP256(_)) => &signature::ECDSA_P256_SHA384_ASN1,
        (rfc5912::ECDSA_WITH_SHA_256, IssuerKey::EcP384(_)) => &signature::ECDSA_P384_SHA256_ASN1,
        (rfc5912::ECDSA_WITH_SHA_384, IssuerKey::EcP384(_)) => &signature::ECDSA_P384_SHA384_ASN1,
        (oid, _) => return Err(unsupported("signature algorithm", oid.to_string())),
    };
    // RSA signature algorithms carry NULL parameters or none (Yubico's 5.7.4+ F9 certificates
    // omit them); ECDSA ones carry none (RFC 5758 section 3.2).
    let params_ok = match (&key, &alg.parameters) {
        (_, None) => true,
        (IssuerKey::Rsa(_), Some(p)) => p.is_null(),
        (_, Some(_)) => false,
    };
    if !params_ok {
        return Err(AttestationError::Malformed {
            role,
            reason: "its signature algorithm carries unexpected parameters".to_owned(),
        });
    }
    let key_bytes = match key {
        IssuerKey::Rsa(k) | IssuerKey::EcP256(k) | IssuerKey::EcP384(k) => k,
    };
    let sig = cert
        .signature
        .as_bytes()
        .ok_or_else(|| AttestationError::Malformed {
            role,
            reason: "its signature is not a whole number of bytes".to_owned(),
        })?;
    UnparsedPublicKey::new(algorithm, key_bytes)
        .verify(tbs, sig)
        .map_err(|_| AttestationError::BadSignature {
            role,
            subject,
            issuer: subject_of(issuer),
        })
}
