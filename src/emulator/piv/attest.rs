//! PIV attestation: the device's attestation key (slot `F9`), its certificate, and the
//! certificates ATTEST writes for keys generated on the card.
//!
//! A real YubiKey leaves the factory with an F9 key and a certificate issued by Yubico's PIV CA.
//! The software YubiKey's F9 certificate is issued instead by the **test attestation CA** in
//! `hsm-fixtures/piv-test-ca.pem` (its private key `piv-test-ca.key.pem` is test-only and public;
//! nothing may ever trust it). The F9 key is derived from the test CA's key and the device's
//! serial (HKDF-SHA256), so one image always presents the same attestation key and certificate.
//!
//! What ATTEST writes follows Yubico's "PIV Attestation OID Arc"
//! (docs.yubico.com/hardware/oid/oid-piv-arc.html): a random 16-byte serial, the issuer is the
//! subject of the F9 certificate, the dates are copied from it, the subject is
//! `CN=YubiKey PIV Attestation <slot>`, ECDSA-SHA256 for an EC attestation key, and the
//! extensions `1.3.6.1.4.1.41482.3.3` (firmware, 3 bytes), `.3.7` (serial, an INTEGER), `.3.8`
//! (PIN policy and touch policy, 2 bytes) and `.3.9` (form factor, 1 byte).

use std::str::FromStr;

use der::asn1::{BitString, ObjectIdentifier, OctetString};
use der::{Any, Decode, DecodePem, Encode};
use p256::ecdsa::signature::Signer;
use p256::ecdsa::SigningKey;
use p256::pkcs8::DecodePrivateKey;
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::ext::pkix::BasicConstraints;
use x509_cert::ext::Extension;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::Validity;
use x509_cert::{Certificate, TbsCertificate, Version};
use zeroize::Zeroizing;

use super::keys::{self, KeyError};
use super::state::ALG_ECCP256;

/// The test attestation CA's certificate (test-only, public; see hsm-fixtures/README.md).
pub const TEST_CA_CERT_PEM: &str = include_str!("../../../hsm-fixtures/piv-test-ca.pem");
/// The test attestation CA's private key: **test-only and public**, never to be trusted.
const TEST_CA_KEY_PEM: &str = include_str!("../../../hsm-fixtures/piv-test-ca.key.pem");

/// Yubico's PIV attestation arc, firmware version.
pub const OID_FIRMWARE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.41482.3.3");
/// Serial number.
pub const OID_SERIAL: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.41482.3.7");
/// PIN and touch policy.
pub const OID_POLICY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.41482.3.8");
/// Form factor.
pub const OID_FORM_FACTOR: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.41482.3.9");

const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const SECP256R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const BASIC_CONSTRAINTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.19");

/// The subject a YubiKey's factory F9 certificate carries.
const F9_SUBJECT: &str = "CN=Yubico PIV Attestation";

/// Why an attestation certificate could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AttestError {
    /// The test CA's files (compiled in) did not parse.
    #[error("the test attestation CA in hsm-fixtures/ does not parse: {0}")]
    TestCa(String),
    /// Encoding the certificate failed.
    #[error("encoding the attestation certificate failed: {0}")]
    Encode(#[from] der::Error),
    /// A key step failed.
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// What ATTEST says about one slot's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attested<'a> {
    /// The slot.
    pub slot: u8,
    /// The key's algorithm (`11` P-256, `14` P-384).
    pub algorithm: u8,
    /// The key's uncompressed point.
    pub public: &'a [u8],
    /// PIN policy byte (1 never, 2 once, 3 always).
    pub pin_policy: u8,
    /// Touch policy byte (1 never, 2 always, 3 cached).
    pub touch_policy: u8,
}

/// The device: what the attestation extensions name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Device {
    /// Serial number.
    pub serial: u32,
    /// Firmware version.
    pub firmware: [u8; 3],
    /// Form factor byte (as the management applet reports it).
    pub form_factor: u8,
}

/// The device's attestation identity: the F9 private key and its certificate.
pub struct Attestation {
    key: Zeroizing<Vec<u8>>,
    certificate: Vec<u8>,
    subject: Name,
    validity: Validity,
}

impl std::fmt::Debug for Attestation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attestation")
            .field("subject", &self.subject.to_string())
            .field("certificate_len", &self.certificate.len())
            .finish_non_exhaustive()
    }
}

struct Len(usize);

impl ring::hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

fn ca() -> Result<(p256::SecretKey, Certificate), AttestError> {
    let key = p256::SecretKey::from_pkcs8_pem(TEST_CA_KEY_PEM)
        .map_err(|e| AttestError::TestCa(format!("key: {e}")))?;
    let cert = Certificate::from_pem(TEST_CA_CERT_PEM.as_bytes())
        .map_err(|e| AttestError::TestCa(format!("certificate: {e}")))?;
    Ok((key, cert))
}

/// The F9 scalar of device `serial`: HKDF-SHA256 over the test CA's key, drawn again (counter)
/// in the negligible case the bytes are not a valid scalar.
fn derive_key(ca_key: &p256::SecretKey, serial: u32) -> Result<Zeroizing<Vec<u8>>, AttestError> {
    let ikm = Zeroizing::new(ca_key.to_bytes().to_vec());
    let salt = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, b"custody-emu PIV attestation key");
    let prk = salt.extract(&ikm);
    let serial = serial.to_be_bytes();
    for counter in 0u8..16 {
        let info = [&serial[..], &[counter][..]];
        let okm = prk.expand(&info, Len(32)).map_err(|_| KeyError::BadKey)?;
        let mut out = Zeroizing::new([0u8; 32]);
        okm.fill(out.as_mut()).map_err(|_| KeyError::BadKey)?;
        if p256::SecretKey::from_slice(out.as_ref()).is_ok() {
            return Ok(Zeroizing::new(out.to_vec()));
        }
    }
    Err(AttestError::Key(KeyError::BadKey))
}

/// The SubjectPublicKeyInfo of an EC point on the curve of key algorithm `algorithm`.
fn ec_spki(algorithm: u8, point: &[u8]) -> Result<SubjectPublicKeyInfoOwned, AttestError> {
    let curve = match algorithm {
        super::state::ALG_ECCP384 => SECP384R1,
        _ => SECP256R1,
    };
    Ok(SubjectPublicKeyInfoOwned {
        algorithm: AlgorithmIdentifierOwned {
            oid: EC_PUBLIC_KEY,
            parameters: Some(Any::encode_from(&curve)?),
        },
        subject_public_key: BitString::from_bytes(point)?,
    })
}

fn extension(oid: ObjectIdentifier, value: Vec<u8>) -> Result<Extension, AttestError> {
    Ok(Extension {
        extn_id: oid,
        critical: false,
        extn_value: OctetString::new(value)?,
    })
}

/// Signs `tbs` with the P-256 `signer` (ECDSA-SHA256, RFC 6979) into a DER certificate.
fn sign(tbs: TbsCertificate, signer: &[u8]) -> Result<Vec<u8>, AttestError> {
    let key = SigningKey::from_slice(signer).map_err(|_| KeyError::BadKey)?;
    let tbs_der = tbs.to_der()?;
    let sig: p256::ecdsa::Signature = key.sign(&tbs_der);
    let cert = Certificate {
        tbs_certificate: tbs,
        signature_algorithm: AlgorithmIdentifierOwned {
            oid: ECDSA_WITH_SHA256,
            parameters: None,
        },
        signature: BitString::from_bytes(sig.to_der().as_bytes())?,
    };
    Ok(cert.to_der()?)
}

/// Identities already derived in this process, by serial: deriving one signs a certificate, and
/// every emulated key of a test run with the same serial has the same identity.
static DERIVED: std::sync::Mutex<Vec<(u32, std::sync::Arc<Attestation>)>> =
    std::sync::Mutex::new(Vec::new());

impl Attestation {
    /// The attestation identity of device `serial` (derived once per process).
    pub fn shared(serial: u32) -> Result<std::sync::Arc<Self>, AttestError> {
        // A poisoned lock only means another thread panicked while holding it: the list of
        // finished identities is still sound.
        let mut derived = DERIVED.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, a)) = derived.iter().find(|(s, _)| *s == serial) {
            return Ok(a.clone());
        }
        let a = std::sync::Arc::new(Self::for_device(serial)?);
        derived.push((serial, a.clone()));
        Ok(a)
    }

    /// The attestation identity of device `serial`, its F9 certificate issued by the test CA.
    pub fn for_device(serial: u32) -> Result<Self, AttestError> {
        let (ca_key, ca_cert) = ca()?;
        let key = derive_key(&ca_key, serial)?;
        let subject = Name::from_str(F9_SUBJECT)?;
        let validity = ca_cert.tbs_certificate.validity;
        let mut serial_bytes = vec![0x01];
        serial_bytes.extend_from_slice(&serial.to_be_bytes());
        let basic = BasicConstraints {
            ca: true,
            path_len_constraint: None,
        };
        let tbs = TbsCertificate {
            version: Version::V3,
            serial_number: SerialNumber::new(&serial_bytes)?,
            signature: AlgorithmIdentifierOwned {
                oid: ECDSA_WITH_SHA256,
                parameters: None,
            },
            issuer: ca_cert.tbs_certificate.subject.clone(),
            validity,
            subject: subject.clone(),
            subject_public_key_info: ec_spki(ALG_ECCP256, &keys::p256_public(&key)?)?,
            issuer_unique_id: None,
            subject_unique_id: None,
            extensions: Some(vec![Extension {
                extn_id: BASIC_CONSTRAINTS,
                critical: true,
                extn_value: OctetString::new(basic.to_der()?)?,
            }]),
        };
        let ca_scalar = Zeroizing::new(ca_key.to_bytes().to_vec());
        let certificate = sign(tbs, &ca_scalar)?;
        Ok(Self {
            key,
            certificate,
            subject,
            validity,
        })
    }

    /// The F9 certificate (DER).
    pub fn certificate(&self) -> &[u8] {
        &self.certificate
    }

    /// The F9 key's uncompressed P-256 point.
    pub fn public(&self) -> Result<Vec<u8>, KeyError> {
        keys::p256_public(&self.key)
    }

    /// The certificate ATTEST answers for `key` on `device` (DER).
    pub fn attest(&self, device: Device, key: Attested<'_>) -> Result<Vec<u8>, AttestError> {
        let mut serial = keys::random::<16>()?;
        // A positive INTEGER of 16 bytes: high bit clear, first byte non-zero.
        serial[0] = (serial[0] & 0x7F) | 0x01;
        let subject = Name::from_str(&format!("CN=YubiKey PIV Attestation {:02x}", key.slot))?;
        let tbs = TbsCertificate {
            version: Version::V3,
            serial_number: SerialNumber::new(serial.as_ref())?,
            signature: AlgorithmIdentifierOwned {
                oid: ECDSA_WITH_SHA256,
                parameters: None,
            },
            issuer: self.subject.clone(),
            validity: self.validity,
            subject,
            subject_public_key_info: ec_spki(key.algorithm, key.public)?,
            issuer_unique_id: None,
            subject_unique_id: None,
            extensions: Some(vec![
                extension(OID_FIRMWARE, device.firmware.to_vec())?,
                extension(OID_SERIAL, device.serial.to_der()?)?,
                extension(OID_POLICY, vec![key.pin_policy, key.touch_policy])?,
                extension(OID_FORM_FACTOR, vec![device.form_factor])?,
            ]),
        };
        sign(tbs, &self.key)
    }
}

/// Parses a DER certificate (for tests and tools reading what the card wrote).
pub fn parse(der: &[u8]) -> Result<Certificate, der::Error> {
    Certificate::from_der(der)
}
