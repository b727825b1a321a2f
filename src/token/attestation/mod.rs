//! PIV attestation, verified offline: proof that a key was generated inside a genuine YubiKey,
//! in a given slot, on the device with a given serial, under a given PIN and touch policy.
//!
//! A YubiKey answers PIV ATTEST (instruction F9) for a slot with an X.509 certificate over the
//! slot's public key ("YubiKey PIV Attestation 9a"), signed by the device's attestation key,
//! whose certificate sits in slot F9 ("Yubico PIV Attestation"). That certificate chains to a
//! Yubico root: directly to `Yubico PIV Root CA Serial 263751` before firmware 5.7.4, through
//! `Yubico PIV Attestation {A,B} 1` and `Yubico Attestation Intermediate {A,B} 1` to
//! `Yubico Attestation Root 1` from 5.7.4 (developers.yubico.com/PIV/Introduction/
//! PIV_attestation.html; developers.yubico.com/PKI/). The key holds only the slot and F9
//! certificates; the intermediates are published, and [`TrustAnchors::yubico`] carries them.
//!
//! [`verify_attestation`] checks, and refuses with a typed [`AttestationError`] naming the
//! certificate and the check:
//! - every certificate is one DER X.509 certificate (signatures are checked over its signed
//!   part as received), without duplicated extensions or critical extensions it does not
//!   understand;
//! - the slot certificate names the device certificate as its issuer and is signed by its key;
//! - the device certificate is signed by an intermediate or an anchor whose subject it names,
//!   and each intermediate in turn, up to an anchor; intermediates must be CAs (the device
//!   certificate itself need not be: YubiKey 4 F9 certificates carry no basic constraints, the
//!   reason Yubico's OpenSSL instructions fail on them with OpenSSL 1.1);
//! - every certificate, anchors included, is within its validity window at `now` (Yubico's
//!   certificates run to 2052 or 9999, and the slot certificate copies the F9 one's dates);
//! - the slot certificate's subject names the expected slot and its Yubico extensions
//!   (firmware, serial, PIN and touch policy, form factor) are present and decode as Yubico
//!   documents them (`yubico.rs` names the sources); the serial equals the one the management
//!   applet reported.
//!
//! Pure: no card I/O, no clock (the caller passes `now`), no file access (the roots are
//! compiled in from `roots/`).

mod error;
mod signature;
mod yubico;

#[cfg(test)]
mod tests;

use ring::digest;
use x509_cert::der::{Decode, Encode};
use x509_cert::ext::pkix::BasicConstraints;
use x509_cert::Certificate;

pub use error::{AttestationError, CertRole, YubicoExtension};
pub use yubico::{FirmwareVersion, PinPolicy, PivSlot, TouchPolicy};

use crate::token::management::FormFactor;

/// The largest certificate accepted (Yubico's are about 1 KiB).
const MAX_CERT_LEN: usize = 8 * 1024;
/// The most intermediates a caller may pass.
const MAX_EXTRA_INTERMEDIATES: usize = 8;
/// The most certificates between the device certificate and an anchor (Yubico uses two).
const MAX_PATH: usize = 4;

/// Yubico's published certificates, compiled in. Each file is a verbatim copy of the one
/// Yubico publishes; `tests::published_certificates_are_pinned` pins their SHA-256.
mod published {
    /// `Yubico PIV Root CA Serial 263751`, the root for firmware before 5.7.4, as reissued on
    /// 2018-09-24 (same key as the first issue, so certificates under either verify).
    /// Published at developers.yubico.com/PIV/Introduction/piv-attestation-ca.pem and
    /// developers.yubico.com/PKI/yubico-piv-ca-1.pem.
    pub const PIV_ROOT_CA_263751: &str = include_str!("roots/yubico-piv-root-ca-263751.pem");
    /// `Yubico Attestation Root 1`, the root for firmware 5.7.4 and later.
    /// Published at developers.yubico.com/PKI/yubico-ca-1.pem.
    pub const ATTESTATION_ROOT_1: &str = include_str!("roots/yubico-attestation-root-1.pem");
    /// The intermediates between `Yubico Attestation Root 1` and the F9 certificates of
    /// firmware 5.7.4 and later. Published at developers.yubico.com/PKI/yubico-intermediate.pem.
    pub const INTERMEDIATES: [&str; 4] = [
        include_str!("roots/yubico-attestation-intermediate-a-1.pem"),
        include_str!("roots/yubico-attestation-intermediate-b-1.pem"),
        include_str!("roots/yubico-piv-attestation-a-1.pem"),
        include_str!("roots/yubico-piv-attestation-b-1.pem"),
    ];
}

/// A parsed certificate with its DER and the exact DER of its signed part.
#[derive(Clone)]
struct Parsed {
    cert: Certificate,
    der: Vec<u8>,
    tbs: Vec<u8>,
}

impl Parsed {
    fn from_der(der: &[u8], role: CertRole) -> Result<Self, AttestationError> {
        use x509_cert::der::{Reader, SliceReader};
        if der.len() > MAX_CERT_LEN {
            return Err(AttestationError::TooLarge {
                what: format!("{role} is {} bytes (at most {MAX_CERT_LEN})", der.len()),
            });
        }
        let malformed = |reason: String| AttestationError::Malformed { role, reason };
        let cert = Certificate::from_der(der).map_err(|e| malformed(e.to_string()))?;
        // The signature is checked over the signed part exactly as received (the first element
        // of the outer SEQUENCE), not over a re-encoding of what was parsed.
        let tbs = SliceReader::new(der)
            .and_then(|mut r| {
                r.sequence(|r| {
                    let tbs = r.tlv_bytes()?;
                    r.tlv_bytes()?;
                    r.tlv_bytes()?;
                    Ok(tbs.to_vec())
                })
            })
            .map_err(|e| malformed(e.to_string()))?;
        let parsed = Self {
            cert,
            der: der.to_vec(),
            tbs,
        };
        parsed.check_extensions(role)?;
        Ok(parsed)
    }

    fn subject(&self) -> String {
        subject_of(&self.cert)
    }

    /// No extension twice; no critical extension other than those understood here.
    fn check_extensions(&self, role: CertRole) -> Result<(), AttestationError> {
        use x509_cert::der::oid::db::rfc5280;
        let exts = self
            .cert
            .tbs_certificate
            .extensions
            .as_deref()
            .unwrap_or(&[]);
        for (i, e) in exts.iter().enumerate() {
            if exts[..i].iter().any(|prev| prev.extn_id == e.extn_id) {
                return Err(AttestationError::DuplicateExtension {
                    role,
                    subject: self.subject(),
                    oid: e.extn_id.to_string(),
                });
            }
            let understood = [rfc5280::ID_CE_BASIC_CONSTRAINTS, rfc5280::ID_CE_KEY_USAGE];
            if e.critical && !understood.contains(&e.extn_id) {
                return Err(AttestationError::UnknownCriticalExtension {
                    role,
                    subject: self.subject(),
                    oid: e.extn_id.to_string(),
                });
            }
        }
        Ok(())
    }

    /// Whether basic constraints mark this certificate a CA.
    fn is_ca(&self, role: CertRole) -> Result<bool, AttestationError> {
        match self.cert.tbs_certificate.get::<BasicConstraints>() {
            Ok(found) => Ok(found.is_some_and(|(_, bc)| bc.ca)),
            Err(e) => Err(AttestationError::Malformed {
                role,
                reason: format!("its basic constraints do not decode ({e})"),
            }),
        }
    }

    fn check_validity(&self, role: CertRole, now: jiff::Timestamp) -> Result<(), AttestationError> {
        let v = &self.cert.tbs_certificate.validity;
        let secs = |t: x509_cert::time::Time| {
            i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX)
        };
        let (from, to) = (secs(v.not_before), secs(v.not_after));
        let at = now.as_second();
        if at < from || at > to {
            return Err(AttestationError::OutsideValidity {
                role,
                subject: self.subject(),
                not_before: v.not_before.to_string(),
                not_after: v.not_after.to_string(),
                now: now.to_string(),
            });
        }
        Ok(())
    }

    fn issued(&self, issuer: &Parsed) -> bool {
        self.cert.tbs_certificate.issuer == issuer.cert.tbs_certificate.subject
    }
}

/// Among `pool`, the certificate that issued `cert`: `None` when no subject there is `cert`'s
/// issuer; the first whose key verifies `cert`'s signature; otherwise the first failure (two
/// issues of one CA may share a name, as the two of `Yubico PIV Root CA Serial 263751` do).
fn signer_among<'p>(
    cert: &Parsed,
    role: CertRole,
    pool: &[(CertRole, &'p Parsed)],
) -> Option<Result<(CertRole, &'p Parsed), AttestationError>> {
    let mut first_failure = None;
    for &(issuer_role, issuer) in pool.iter().filter(|(_, c)| cert.issued(c)) {
        match signature::verify_signed_by(&cert.cert, &cert.tbs, role, &issuer.cert) {
            Ok(()) => return Some(Ok((issuer_role, issuer))),
            Err(e) => {
                first_failure.get_or_insert(e);
            }
        }
    }
    first_failure.map(Err)
}

/// The subject of `cert`, fit for an error message.
fn subject_of(cert: &Certificate) -> String {
    error::printable(&cert.tbs_certificate.subject.to_string())
}

/// The certificates an attestation is trusted up to, and the published intermediates that may
/// sit between them and a device certificate.
#[derive(Clone)]
pub struct TrustAnchors {
    roots: Vec<Parsed>,
    intermediates: Vec<Parsed>,
}

impl std::fmt::Debug for TrustAnchors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustAnchors")
            .field(
                "roots",
                &self.roots.iter().map(Parsed::subject).collect::<Vec<_>>(),
            )
            .field("intermediates", &self.intermediates.len())
            .finish()
    }
}

/// One trust anchor, as shown to an operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnchorInfo {
    /// Its subject.
    pub subject: String,
    /// The SHA-256 of its DER, lowercase hex.
    pub sha256: String,
}

/// The DER of each certificate in a PEM bundle (one or more `CERTIFICATE` blocks; text
/// between them, as in Yubico's `yubico-ca-certs.txt`, is ignored). Split here rather than
/// with `Certificate::load_pem_chain`, which panics on an empty input.
pub fn certificates_from_pem(pem: &str) -> Result<Vec<Vec<u8>>, AttestationError> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let bad = |reason: String| AttestationError::AnchorPem { reason };
    let mut found = Vec::new();
    let mut rest = pem;
    while let Some(start) = rest.find(BEGIN) {
        let after = &rest[start..];
        let end = after
            .find(END)
            .ok_or_else(|| bad(format!("certificate #{} has no END line", found.len())))?
            + END.len();
        let (_label, der) = x509_cert::der::pem::decode_vec(&after.as_bytes()[..end])
            .map_err(|e| bad(format!("certificate #{}: {e}", found.len())))?;
        found.push(der);
        rest = &after[end..];
    }
    if found.is_empty() {
        return Err(bad("no CERTIFICATE block in it".to_owned()));
    }
    Ok(found)
}

fn parse_pem_bundle(pem: &str) -> Result<Vec<Parsed>, AttestationError> {
    certificates_from_pem(pem)?
        .iter()
        .map(|der| Parsed::from_der(der, CertRole::Anchor))
        .collect()
}

impl TrustAnchors {
    /// Yubico's published PIV attestation roots (`Yubico PIV Root CA Serial 263751`,
    /// `Yubico Attestation Root 1`) and the intermediates Yubico publishes for firmware 5.7.4+.
    pub fn yubico() -> Self {
        // The compiled-in files are pinned by a test: a failure here is a defect of the build.
        let parse =
            |pem: &str| parse_pem_bundle(pem).expect("the compiled-in Yubico certificates parse");
        Self {
            roots: [published::PIV_ROOT_CA_263751, published::ATTESTATION_ROOT_1]
                .into_iter()
                .flat_map(parse)
                .collect(),
            intermediates: published::INTERMEDIATES
                .into_iter()
                .flat_map(parse)
                .collect(),
        }
    }

    /// Only the anchors in `pem` (one or more `CERTIFICATE` blocks), with no intermediates:
    /// for a private attestation CA (the emulator's, in tests) or a pinned subset.
    pub fn from_pem(pem: &str) -> Result<Self, AttestationError> {
        Ok(Self {
            roots: parse_pem_bundle(pem)?,
            intermediates: Vec::new(),
        })
    }

    /// These anchors and, in addition, those in `pem`.
    pub fn with_pem(mut self, pem: &str) -> Result<Self, AttestationError> {
        self.roots.extend(parse_pem_bundle(pem)?);
        Ok(self)
    }

    /// The anchors, for display (subject and fingerprint).
    pub fn anchors(&self) -> Vec<AnchorInfo> {
        self.roots
            .iter()
            .map(|p| AnchorInfo {
                subject: p.subject(),
                sha256: sha256_hex(&p.der),
            })
            .collect()
    }
}

impl Default for TrustAnchors {
    fn default() -> Self {
        Self::yubico()
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(digest::digest(&digest::SHA256, bytes).as_ref())
}

/// The algorithm of an attested key.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyAlgorithm {
    /// RSA with a modulus of this many bits.
    Rsa {
        /// The modulus length.
        bits: usize,
    },
    /// ECDSA/ECDH over NIST P-256.
    EcP256,
    /// ECDSA/ECDH over NIST P-384.
    EcP384,
    /// Ed25519 (firmware 5.7 and later).
    Ed25519,
    /// X25519 (firmware 5.7 and later).
    X25519,
    /// Anything else, by its OID (and curve OID for EC keys).
    Other(String),
}

impl KeyAlgorithm {
    fn of(spki: &x509_cert::spki::SubjectPublicKeyInfoOwned) -> Self {
        use x509_cert::der::asn1::{ObjectIdentifier, UintRef};
        use x509_cert::der::oid::db::{rfc5912, rfc8410};
        use x509_cert::der::{Reader, SliceReader};
        let oid = spki.algorithm.oid;
        let curve = || {
            spki.algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
        };
        let other = |detail: Option<ObjectIdentifier>| {
            Self::Other(detail.map_or_else(|| oid.to_string(), |d| format!("{oid} ({d})")))
        };
        if oid == rfc5912::RSA_ENCRYPTION {
            let bits = spki.subject_public_key.as_bytes().and_then(|key| {
                let mut r = SliceReader::new(key).ok()?;
                let n = r
                    .sequence(|r| {
                        let n = UintRef::decode(r)?;
                        UintRef::decode(r)?;
                        Ok(n.as_bytes().to_vec())
                    })
                    .ok()?;
                let first = *n.first()?;
                Some((n.len() - 1) * 8 + (8 - first.leading_zeros() as usize))
            });
            return bits.map_or_else(|| other(None), |bits| Self::Rsa { bits });
        }
        if oid == rfc5912::ID_EC_PUBLIC_KEY {
            return match curve() {
                Some(c) if c == rfc5912::SECP_256_R_1 => Self::EcP256,
                Some(c) if c == rfc5912::SECP_384_R_1 => Self::EcP384,
                c => other(c),
            };
        }
        if oid == rfc8410::ID_ED_25519 {
            return Self::Ed25519;
        }
        if oid == rfc8410::ID_X_25519 {
            return Self::X25519;
        }
        other(None)
    }
}

/// What the caller knows independently of the attestation and requires it to confirm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expected {
    /// The slot that was attested.
    pub slot: PivSlot,
    /// The serial the management applet reported for the key.
    pub serial: u32,
}

/// The certificates a key gave: the slot attestation, its F9 certificate and any
/// intermediates beyond those the anchors carry.
#[derive(Debug, Clone, Copy)]
pub struct Evidence<'a> {
    /// The answer to PIV ATTEST for the slot (DER).
    pub slot_cert: &'a [u8],
    /// The certificate read from slot F9 (DER).
    pub device_cert: &'a [u8],
    /// Further intermediates (DER), in any order.
    pub extra_intermediates: &'a [&'a [u8]],
}

/// A verified attestation: what it proves about the key and the device.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Attested {
    /// The attested slot.
    pub slot: PivSlot,
    /// The attested public key (SubjectPublicKeyInfo, DER).
    pub public_key_spki: Vec<u8>,
    /// A stable id of the key: SHA-256 of `public_key_spki`, lowercase hex.
    pub key_id: String,
    /// The attested key's algorithm.
    pub key_algorithm: KeyAlgorithm,
    /// The device's serial.
    pub serial: u32,
    /// The device's firmware.
    pub firmware: FirmwareVersion,
    /// The key's PIN policy.
    pub pin_policy: PinPolicy,
    /// The key's touch policy.
    pub touch_policy: TouchPolicy,
    /// The device's form factor (unknown when not attested).
    pub form_factor: FormFactor,
    /// Whether the device is of the FIPS series.
    pub fips_series: bool,
    /// The subject of the anchor the chain ends at.
    pub anchor: String,
}

/// Verifies a YubiKey PIV attestation offline against `anchors` at time `now`, and that it is
/// for `expected.slot` on the device with serial `expected.serial`. See the module
/// documentation for every check.
pub fn verify_attestation(
    evidence: &Evidence<'_>,
    expected: &Expected,
    anchors: &TrustAnchors,
    now: jiff::Timestamp,
) -> Result<Attested, AttestationError> {
    if evidence.extra_intermediates.len() > MAX_EXTRA_INTERMEDIATES {
        return Err(AttestationError::TooLarge {
            what: format!(
                "{} extra intermediates (at most {MAX_EXTRA_INTERMEDIATES})",
                evidence.extra_intermediates.len()
            ),
        });
    }
    let slot = Parsed::from_der(evidence.slot_cert, CertRole::Slot)?;
    let device = Parsed::from_der(evidence.device_cert, CertRole::Device)?;
    let extra = evidence
        .extra_intermediates
        .iter()
        .enumerate()
        .map(|(i, der)| Parsed::from_der(der, CertRole::Intermediate(i)))
        .collect::<Result<Vec<_>, _>>()?;

    // The slot certificate, issued by the device certificate.
    if !slot.issued(&device) {
        return Err(AttestationError::BrokenLink {
            role: CertRole::Slot,
            subject: slot.subject(),
            issuer: error::printable(&slot.cert.tbs_certificate.issuer.to_string()),
            presented: device.subject(),
        });
    }
    signature::verify_signed_by(&slot.cert, &slot.tbs, CertRole::Slot, &device.cert)?;
    slot.check_validity(CertRole::Slot, now)?;
    device.check_validity(CertRole::Device, now)?;

    // Up from the device certificate to an anchor.
    let candidates: Vec<(CertRole, &Parsed)> = extra
        .iter()
        .enumerate()
        .map(|(i, p)| (CertRole::Intermediate(i), p))
        .chain(
            anchors
                .intermediates
                .iter()
                .map(|p| (CertRole::PublishedIntermediate, p)),
        )
        .collect();
    let roots: Vec<(CertRole, &Parsed)> = anchors
        .roots
        .iter()
        .map(|p| (CertRole::Anchor, p))
        .collect();
    let mut current: (CertRole, &Parsed) = (CertRole::Device, &device);
    let mut steps = 0;
    let anchor = loop {
        let (role, cert) = current;
        if let Some(found) = signer_among(cert, role, &roots) {
            let (_, root) = found?;
            root.check_validity(CertRole::Anchor, now)?;
            break root;
        }
        let Some(found) = signer_among(cert, role, &candidates) else {
            return Err(AttestationError::UntrustedIssuer {
                role,
                subject: cert.subject(),
                issuer: error::printable(&cert.cert.tbs_certificate.issuer.to_string()),
            });
        };
        let (next_role, next) = found?;
        steps += 1;
        if steps > MAX_PATH {
            return Err(AttestationError::ChainTooLong {
                subject: cert.subject(),
                max: MAX_PATH,
            });
        }
        if !next.is_ca(next_role)? {
            return Err(AttestationError::NotACa {
                role: next_role,
                subject: next.subject(),
            });
        }
        next.check_validity(next_role, now)?;
        current = (next_role, next);
    };

    // What the slot certificate says, and whether it is what the caller knows.
    let facts = yubico::device_facts(&slot.cert)?;
    if facts.slot != expected.slot {
        return Err(AttestationError::SlotMismatch {
            expected: expected.slot,
            attested: facts.slot,
        });
    }
    if facts.serial != expected.serial {
        return Err(AttestationError::SerialMismatch {
            expected: expected.serial,
            attested: facts.serial,
        });
    }
    let spki = &slot.cert.tbs_certificate.subject_public_key_info;
    let public_key_spki = spki.to_der().map_err(|e| AttestationError::Malformed {
        role: CertRole::Slot,
        reason: e.to_string(),
    })?;
    Ok(Attested {
        slot: facts.slot,
        key_id: sha256_hex(&public_key_spki),
        key_algorithm: KeyAlgorithm::of(spki),
        public_key_spki,
        serial: facts.serial,
        firmware: facts.firmware,
        pin_policy: facts.pin_policy,
        touch_policy: facts.touch_policy,
        form_factor: facts.form_factor,
        fips_series: facts.fips_series,
        anchor: anchor.subject(),
    })
}
