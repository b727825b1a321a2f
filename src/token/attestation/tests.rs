//! Real attestations from real YubiKeys, Yubico's published certificates pinned, and synthetic
//! chains (built here with `x509-cert` and signed with `ring`) for every refusal.
//!
//! Real vectors (`testdata/`, public certificates):
//! - `yk-5.2.6-*.pem`: a YubiKey 5 (firmware 5.2.6, serial 13078782, USB-C keychain), slot 9c,
//!   P-256 key, PIN and touch policy "always", under `Yubico PIV Root CA Serial 263751`; published
//!   in sigstore/cosign's hardware-token documentation ("Hardware Tokens", section
//!   "Attestations": `device.crt` and `key.crt`).
//! - `yk-5.7.4-*.pem`: a YubiKey 5 (firmware 5.7.4, serial 38906327), slot 9c, P-256 key, under
//!   `Yubico PIV Attestation B 1` → `Yubico Attestation Intermediate B 1` →
//!   `Yubico Attestation Root 1`; published in a public repository's record of its signing
//!   keys' attestations ("Device attestation certificates: YK1 F9" and "Signer B").
//!   `yk-5.7.4-9c-other-device.pem` is that record's "Signer C": serial 38906331, and it
//!   verifies under the same F9 certificate (the F9 certificate names no serial; the slot
//!   certificate is what binds a key to a device).
//!
//! `testdata/test-ca-rsa2048.der` is a test-only RSA key (public, never trusted anywhere), made
//! with `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -outform DER | openssl rsa
//! -inform DER -traditional -outform DER` (PKCS#1): `ring` signs RSA but does not generate RSA
//! keys.

use std::str::FromStr;
use std::time::Duration;

use ring::rand::SystemRandom;
use ring::signature::{self as ring_sig, EcdsaKeyPair, KeyPair, RsaKeyPair};
use x509_cert::der::asn1::{
    Any, BitString, GeneralizedTime, ObjectIdentifier, OctetString, UtcTime,
};
use x509_cert::der::oid::db::{rfc5280, rfc5912};
use x509_cert::der::{DecodePem, Encode};
use x509_cert::ext::pkix::BasicConstraints;
use x509_cert::ext::Extension;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::time::{Time, Validity};
use x509_cert::{Certificate, TbsCertificate, Version};

use super::*;

const YK526_SLOT: &str = include_str!("testdata/yk-5.2.6-9c.pem");
const YK526_F9: &str = include_str!("testdata/yk-5.2.6-f9.pem");
const YK574_SLOT: &str = include_str!("testdata/yk-5.7.4-9c.pem");
const YK574_F9: &str = include_str!("testdata/yk-5.7.4-f9.pem");
const YK574_OTHER_SLOT: &str = include_str!("testdata/yk-5.7.4-9c-other-device.pem");
const TEST_RSA_KEY: &[u8] = include_bytes!("testdata/test-ca-rsa2048.der");

fn der(pem: &str) -> Vec<u8> {
    Certificate::from_pem(pem)
        .and_then(|c| c.to_der())
        .expect("a test PEM certificate")
}

/// 2026-06-01T00:00:00Z: inside every real certificate's validity.
fn now() -> jiff::Timestamp {
    jiff::Timestamp::from_second(1_780_272_000).expect("a valid timestamp")
}

fn at(rfc3339: &str) -> jiff::Timestamp {
    rfc3339.parse().expect("an RFC 3339 time")
}

fn verify(
    slot: &[u8],
    device: &[u8],
    extra: &[&[u8]],
    expected: Expected,
    anchors: &TrustAnchors,
) -> Result<Attested, AttestationError> {
    let evidence = Evidence {
        slot_cert: slot,
        device_cert: device,
        extra_intermediates: extra,
    };
    verify_attestation(&evidence, &expected, anchors, now())
}

const YK526: Expected = Expected {
    slot: PivSlot::SIGNATURE,
    serial: 13_078_782,
};
const YK574: Expected = Expected {
    slot: PivSlot::SIGNATURE,
    serial: 38_906_327,
};

fn is_bad_signature(err: &AttestationError, role: CertRole) -> bool {
    matches!(err, AttestationError::BadSignature { role: r, .. } if *r == role)
}

fn is_malformed(err: &AttestationError, role: CertRole) -> bool {
    matches!(err, AttestationError::Malformed { role: r, .. } if *r == role)
}

// ---- Yubico's published certificates -------------------------------------------------------

#[test]
fn published_certificates_are_pinned() {
    // SHA-256 of the DER of each file, as published by Yubico (developers.yubico.com/PKI/);
    // any change to a file, or an added anchor, fails here.
    let pinned = [
        (
            published::PIV_ROOT_CA_263751,
            "CN=Yubico PIV Root CA Serial 263751",
            "63ece914e54dd87915f34033c85af4c0696ba1512f8add66ced738331207b546",
        ),
        (
            published::ATTESTATION_ROOT_1,
            "CN=Yubico Attestation Root 1",
            "62760c6a6ef91679f454c8902b80fd009825b3f25da90f1fbace2ec6586cd5a8",
        ),
        (
            published::INTERMEDIATES[0],
            "CN=Yubico Attestation Intermediate A 1",
            "4698a1d3389c3ec60016c216250f1d0439922832d65142327436376dc2942b55",
        ),
        (
            published::INTERMEDIATES[1],
            "CN=Yubico Attestation Intermediate B 1",
            "d4cc3f456fdaf4e7812a21aab1dfe9d8e27d24e2fd2d6f21c9940109f0daa754",
        ),
        (
            published::INTERMEDIATES[2],
            "CN=Yubico PIV Attestation A 1",
            "6de693f05376f5d8ca29069261e1c8626c75d503bd2edbfd75354cad1f722870",
        ),
        (
            published::INTERMEDIATES[3],
            "CN=Yubico PIV Attestation B 1",
            "2d55b7998f4e42569d6d8fa382b6dc77d1dacf07358b19701163892922b17052",
        ),
    ];
    for (pem, subject, sha256) in pinned {
        let cert = Certificate::from_pem(pem).expect("a published certificate");
        assert_eq!(cert.tbs_certificate.subject.to_string(), subject);
        assert_eq!(sha256_hex(&der(pem)), sha256, "{subject}");
    }
    let anchors = TrustAnchors::yubico().anchors();
    assert_eq!(
        anchors,
        vec![
            AnchorInfo {
                subject: "CN=Yubico PIV Root CA Serial 263751".into(),
                sha256: pinned[0].2.into()
            },
            AnchorInfo {
                subject: "CN=Yubico Attestation Root 1".into(),
                sha256: pinned[1].2.into()
            },
        ]
    );
    assert_eq!(TrustAnchors::yubico().intermediates.len(), 4);
}

// ---- real attestations ---------------------------------------------------------------------

#[test]
fn real_5_2_6_attestation_verifies_under_the_piv_root() {
    let a = verify(
        &der(YK526_SLOT),
        &der(YK526_F9),
        &[],
        YK526,
        &TrustAnchors::yubico(),
    )
    .expect("a genuine attestation");
    assert_eq!(a.slot, PivSlot::SIGNATURE);
    assert_eq!(a.serial, 13_078_782);
    assert_eq!(a.firmware.to_string(), "5.2.6");
    assert_eq!(a.pin_policy, PinPolicy::Always);
    assert_eq!(a.touch_policy, TouchPolicy::Always);
    assert_eq!(a.form_factor, FormFactor::UsbCKeychain);
    assert!(!a.fips_series);
    assert_eq!(a.anchor, "CN=Yubico PIV Root CA Serial 263751");
    assert_eq!(a.key_algorithm, KeyAlgorithm::EcP256);
    // `openssl x509 -pubkey | openssl pkey -pubin -outform DER | sha256sum`
    assert_eq!(
        a.key_id,
        "ad8557bc86e0a0a44a69b28cc9ff01965b85a773d329d81fc8cced18c9ce4ef3"
    );
    assert_eq!(a.key_id, sha256_hex(&a.public_key_spki));
}

#[test]
fn real_5_7_4_attestation_verifies_through_the_published_intermediates() {
    let a = verify(
        &der(YK574_SLOT),
        &der(YK574_F9),
        &[],
        YK574,
        &TrustAnchors::yubico(),
    )
    .expect("a genuine attestation");
    assert_eq!(a.serial, 38_906_327);
    assert_eq!(a.firmware.to_string(), "5.7.4");
    assert_eq!(a.pin_policy, PinPolicy::Always);
    assert_eq!(a.touch_policy, TouchPolicy::Always);
    assert_eq!(a.form_factor, FormFactor::UsbCKeychain);
    assert_eq!(a.anchor, "CN=Yubico Attestation Root 1");
    assert_eq!(
        a.key_id,
        "f43a3154746cf0966d13a8e8b5c1a7155e8edf6ae951736f4f256b228df019bb"
    );
}

#[test]
fn real_5_7_4_attestation_verifies_with_its_intermediates_passed_in_any_order() {
    // Anchored at the root alone: the caller carries the two intermediates.
    let anchors = TrustAnchors::from_pem(published::ATTESTATION_ROOT_1).expect("root");
    let piv_b1 = der(published::INTERMEDIATES[3]);
    let int_b1 = der(published::INTERMEDIATES[1]);
    let a = verify(
        &der(YK574_SLOT),
        &der(YK574_F9),
        &[&int_b1, &piv_b1],
        YK574,
        &anchors,
    )
    .expect("verifies");
    assert_eq!(a.anchor, "CN=Yubico Attestation Root 1");
    // Without them, the F9 certificate's issuer is unknown.
    let err = verify(&der(YK574_SLOT), &der(YK574_F9), &[], YK574, &anchors).expect_err("refused");
    assert!(
        matches!(&err, AttestationError::UntrustedIssuer { role: CertRole::Device, issuer, .. } if issuer == "CN=Yubico PIV Attestation B 1"),
        "{err:?}"
    );
}

#[test]
fn a_flipped_signature_byte_in_each_real_certificate_is_a_bad_signature_of_that_certificate() {
    let anchors = TrustAnchors::yubico();
    let flip_last = |mut der: Vec<u8>| {
        let last = der.len() - 1;
        der[last] ^= 0x01;
        der
    };
    for (slot_pem, f9_pem, expected) in
        [(YK526_SLOT, YK526_F9, YK526), (YK574_SLOT, YK574_F9, YK574)]
    {
        let (slot, f9) = (der(slot_pem), der(f9_pem));
        let err =
            verify(&flip_last(slot.clone()), &f9, &[], expected, &anchors).expect_err("refused");
        assert!(
            matches!(&err, AttestationError::BadSignature { role: CertRole::Slot, issuer, .. } if issuer == "CN=Yubico PIV Attestation"),
            "{err:?}"
        );
        let err = verify(&slot, &flip_last(f9), &[], expected, &anchors).expect_err("refused");
        assert!(is_bad_signature(&err, CertRole::Device), "{err:?}");
    }
    // The intermediates of the 5.7.4 chain, passed in flipped: each one's own signature fails.
    let root_only = TrustAnchors::from_pem(published::ATTESTATION_ROOT_1).expect("root");
    let (piv_b1, int_b1) = (
        der(published::INTERMEDIATES[3]),
        der(published::INTERMEDIATES[1]),
    );
    let (bad_piv_b1, bad_int_b1) = (flip_last(piv_b1.clone()), flip_last(int_b1.clone()));
    let (slot, f9) = (der(YK574_SLOT), der(YK574_F9));
    let err = verify(&slot, &f9, &[&bad_piv_b1, &int_b1], YK574, &root_only).expect_err("refused");
    assert!(is_bad_signature(&err, CertRole::Intermediate(0)), "{err:?}");
    let err = verify(&slot, &f9, &[&piv_b1, &bad_int_b1], YK574, &root_only).expect_err("refused");
    assert!(is_bad_signature(&err, CertRole::Intermediate(1)), "{err:?}");
}

#[test]
fn every_single_byte_flip_in_a_real_chain_is_refused() {
    let anchors = TrustAnchors::yubico();
    for (slot_pem, f9_pem, expected) in
        [(YK526_SLOT, YK526_F9, YK526), (YK574_SLOT, YK574_F9, YK574)]
    {
        let (slot, f9) = (der(slot_pem), der(f9_pem));
        for i in 0..slot.len() {
            let mut bad = slot.clone();
            bad[i] ^= 0x04;
            assert!(
                verify(&bad, &f9, &[], expected, &anchors).is_err(),
                "slot byte {i}"
            );
        }
        for i in 0..f9.len() {
            let mut bad = f9.clone();
            bad[i] ^= 0x04;
            assert!(
                verify(&slot, &bad, &[], expected, &anchors).is_err(),
                "F9 byte {i}"
            );
        }
    }
}

#[test]
fn a_real_attestation_with_another_serial_is_a_serial_mismatch() {
    let err = verify(
        &der(YK574_SLOT),
        &der(YK574_F9),
        &[],
        Expected {
            serial: 38_906_331,
            ..YK574
        },
        &TrustAnchors::yubico(),
    )
    .expect_err("refused");
    assert_eq!(
        err,
        AttestationError::SerialMismatch {
            expected: 38_906_331,
            attested: 38_906_327
        }
    );
    assert!(err.to_string().contains("another device"), "{err}");
}

#[test]
fn another_real_devices_attestation_is_a_serial_mismatch_for_this_device() {
    // Same F9 certificate, another key's slot attestation: genuine, but not this device's.
    let (other, f9) = (der(YK574_OTHER_SLOT), der(YK574_F9));
    let anchors = TrustAnchors::yubico();
    let a = verify(
        &other,
        &f9,
        &[],
        Expected {
            serial: 38_906_331,
            ..YK574
        },
        &anchors,
    )
    .expect("genuine for its own device");
    assert_eq!(a.serial, 38_906_331);
    let err = verify(&other, &f9, &[], YK574, &anchors).expect_err("refused");
    assert_eq!(
        err,
        AttestationError::SerialMismatch {
            expected: 38_906_327,
            attested: 38_906_331
        }
    );
}

#[test]
fn a_real_attestation_of_another_slot_is_a_slot_mismatch() {
    let err = verify(
        &der(YK526_SLOT),
        &der(YK526_F9),
        &[],
        Expected {
            slot: PivSlot::AUTHENTICATION,
            ..YK526
        },
        &TrustAnchors::yubico(),
    )
    .expect_err("refused");
    assert_eq!(
        err,
        AttestationError::SlotMismatch {
            expected: PivSlot::AUTHENTICATION,
            attested: PivSlot::SIGNATURE
        }
    );
    assert_eq!(
        err.to_string(),
        "the attestation is for slot 9c, not slot 9a; attest slot 9a again"
    );
}

#[test]
fn a_slot_attestation_with_another_devices_f9_certificate_is_a_bad_signature() {
    // Both F9 certificates are named "CN=Yubico PIV Attestation": the names link, the keys do not.
    let err = verify(
        &der(YK526_SLOT),
        &der(YK574_F9),
        &[],
        YK526,
        &TrustAnchors::yubico(),
    )
    .expect_err("refused");
    assert!(is_bad_signature(&err, CertRole::Slot), "{err:?}");
}

#[test]
fn a_real_chain_under_an_anchor_set_without_its_root_is_untrusted() {
    let anchors = TrustAnchors::from_pem(published::ATTESTATION_ROOT_1).expect("root");
    let err = verify(&der(YK526_SLOT), &der(YK526_F9), &[], YK526, &anchors).expect_err("refused");
    assert_eq!(
        err,
        AttestationError::UntrustedIssuer {
            role: CertRole::Device,
            subject: "CN=Yubico PIV Attestation".into(),
            issuer: "CN=Yubico PIV Root CA Serial 263751".into(),
        }
    );
}

#[test]
fn a_real_chain_outside_its_validity_is_refused_naming_the_dates() {
    let evidence = Evidence {
        slot_cert: &der(YK526_SLOT),
        device_cert: &der(YK526_F9),
        extra_intermediates: &[],
    };
    let anchors = TrustAnchors::yubico();
    for when in ["2016-03-13T23:59:59Z", "2052-04-17T00:00:01Z"] {
        let err = verify_attestation(&evidence, &YK526, &anchors, at(when)).expect_err("refused");
        assert!(
            matches!(&err, AttestationError::OutsideValidity { role: CertRole::Slot, not_before, not_after, .. }
                if not_before == "2016-03-14T00:00:00Z" && not_after == "2052-04-17T00:00:00Z"),
            "{err:?}"
        );
    }
    assert!(verify_attestation(&evidence, &YK526, &anchors, at("2052-04-17T00:00:00Z")).is_ok());
}

#[test]
fn a_chain_made_by_openssl_verifies() {
    // testdata/openssl-p256/gen.sh: P-256 throughout, extensions written as raw DER by OpenSSL.
    let anchors =
        TrustAnchors::from_pem(include_str!("testdata/openssl-p256/root.pem")).expect("root");
    let evidence = Evidence {
        slot_cert: &der(include_str!("testdata/openssl-p256/slot-9a.pem")),
        device_cert: &der(include_str!("testdata/openssl-p256/f9.pem")),
        extra_intermediates: &[],
    };
    let a = verify_attestation(&evidence, &SYNTH, &anchors, at("2030-01-01T00:00:00Z"))
        .expect("an OpenSSL-made chain verifies");
    assert_eq!(a.anchor, "CN=OpenSSL Test Attestation Root");
    assert_eq!(
        (a.pin_policy, a.touch_policy),
        (PinPolicy::Always, TouchPolicy::Always)
    );
    assert_eq!(a.form_factor, FormFactor::UsbCKeychain);
    assert_eq!(a.key_algorithm, KeyAlgorithm::EcP256);
    // Not under Yubico's roots.
    let err = verify_attestation(
        &evidence,
        &SYNTH,
        &TrustAnchors::yubico(),
        at("2030-01-01T00:00:00Z"),
    )
    .expect_err("refused");
    assert!(
        matches!(
            err,
            AttestationError::UntrustedIssuer {
                role: CertRole::Device,
                ..
            }
        ),
        "{err:?}"
    );
}

// ---- synthetic chains ----------------------------------------------------------------------

/// A signing key of a synthetic CA.
enum TestKey {
    P256(EcdsaKeyPair),
    P384(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

impl TestKey {
    fn p256() -> Self {
        let rng = SystemRandom::new();
        let alg = &ring_sig::ECDSA_P256_SHA256_ASN1_SIGNING;
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).expect("keygen");
        Self::P256(EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).expect("key"))
    }

    fn p384() -> Self {
        let rng = SystemRandom::new();
        let alg = &ring_sig::ECDSA_P384_SHA384_ASN1_SIGNING;
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).expect("keygen");
        Self::P384(EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).expect("key"))
    }

    fn rsa() -> Self {
        Self::Rsa(RsaKeyPair::from_der(TEST_RSA_KEY).expect("the test RSA key"))
    }

    fn spki(&self) -> SubjectPublicKeyInfoOwned {
        let (oid, parameters, key) = match self {
            Self::P256(k) => (
                rfc5912::ID_EC_PUBLIC_KEY,
                Some(Any::encode_from(&rfc5912::SECP_256_R_1).expect("oid")),
                k.public_key().as_ref().to_vec(),
            ),
            Self::P384(k) => (
                rfc5912::ID_EC_PUBLIC_KEY,
                Some(Any::encode_from(&rfc5912::SECP_384_R_1).expect("oid")),
                k.public_key().as_ref().to_vec(),
            ),
            Self::Rsa(k) => (
                rfc5912::RSA_ENCRYPTION,
                Some(Any::null()),
                k.public().as_ref().to_vec(),
            ),
        };
        SubjectPublicKeyInfoOwned {
            algorithm: AlgorithmIdentifierOwned { oid, parameters },
            subject_public_key: BitString::from_bytes(&key).expect("bits"),
        }
    }

    fn algorithm(&self) -> AlgorithmIdentifierOwned {
        match self {
            Self::P256(_) => AlgorithmIdentifierOwned {
                oid: rfc5912::ECDSA_WITH_SHA_256,
                parameters: None,
            },
            Self::P384(_) => AlgorithmIdentifierOwned {
                oid: rfc5912::ECDSA_WITH_SHA_384,
                parameters: None,
            },
            Self::Rsa(_) => AlgorithmIdentifierOwned {
                oid: rfc5912::SHA_256_WITH_RSA_ENCRYPTION,
                parameters: Some(Any::null()),
            },
        }
    }

    fn sign(&self, msg: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match self {
            Self::P256(k) | Self::P384(k) => k.sign(&rng, msg).expect("sign").as_ref().to_vec(),
            Self::Rsa(k) => {
                let mut sig = vec![0; k.public().modulus_len()];
                k.sign(&ring_sig::RSA_PKCS1_SHA256, &rng, msg, &mut sig)
                    .expect("sign");
                sig
            }
        }
    }
}

fn ext(oid: &str, critical: bool, value: &[u8]) -> Extension {
    Extension {
        extn_id: ObjectIdentifier::new(oid).expect("oid"),
        critical,
        extn_value: OctetString::new(value).expect("octets"),
    }
}

fn ca_ext() -> Extension {
    let bc = BasicConstraints {
        ca: true,
        path_len_constraint: None,
    };
    Extension {
        extn_id: rfc5280::ID_CE_BASIC_CONSTRAINTS,
        critical: true,
        extn_value: OctetString::new(bc.to_der().expect("bc")).expect("octets"),
    }
}

/// The Yubico extensions of a 5.7.4 key: firmware 5.7.4, serial 10000001 (`02 04 00 98 96 81`),
/// PIN once, touch always, USB-A keychain.
fn yubico_exts() -> Vec<Extension> {
    vec![
        ext("1.3.6.1.4.1.41482.3.3", false, &[5, 7, 4]),
        ext(
            "1.3.6.1.4.1.41482.3.7",
            false,
            &[0x02, 0x04, 0x00, 0x98, 0x96, 0x81],
        ),
        ext("1.3.6.1.4.1.41482.3.8", false, &[2, 2]),
        ext("1.3.6.1.4.1.41482.3.9", false, &[1]),
    ]
}

const SYNTH: Expected = Expected {
    slot: PivSlot::AUTHENTICATION,
    serial: 10_000_001,
};

/// A certificate for `subject` (over `subject_key`'s public key), issued by `issuer_name` and
/// signed with `issuer_key`, valid 2024-12-01 to 9999-12-31 like Yubico's.
fn issue(
    subject: &str,
    subject_key: &TestKey,
    issuer_name: &str,
    issuer_key: &TestKey,
    extensions: Vec<Extension>,
) -> Vec<u8> {
    let not_before = UtcTime::from_unix_duration(Duration::from_secs(1_733_011_200)).expect("t");
    let not_after =
        GeneralizedTime::from_unix_duration(Duration::from_secs(253_402_300_799)).expect("t");
    let tbs = TbsCertificate {
        version: Version::V3,
        serial_number: SerialNumber::new(&[0x01, 0x23, 0x45]).expect("serial"),
        signature: issuer_key.algorithm(),
        issuer: Name::from_str(issuer_name).expect("issuer"),
        validity: Validity {
            not_before: Time::UtcTime(not_before),
            not_after: Time::GeneralTime(not_after),
        },
        subject: Name::from_str(subject).expect("subject"),
        subject_public_key_info: subject_key.spki(),
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: (!extensions.is_empty()).then_some(extensions),
    };
    let signature = issuer_key.sign(&tbs.to_der().expect("tbs"));
    Certificate {
        tbs_certificate: tbs,
        signature_algorithm: issuer_key.algorithm(),
        signature: BitString::from_bytes(&signature).expect("bits"),
    }
    .to_der()
    .expect("certificate")
}

/// A synthetic hierarchy: root → F9 → slot 9a, with the root as the only anchor.
struct Chain {
    root_pem: String,
    root: TestKey,
    f9: TestKey,
    slot: TestKey,
}

const ROOT: &str = "CN=Test Attestation Root";
const F9: &str = "CN=Yubico PIV Attestation";
const SLOT_9A: &str = "CN=YubiKey PIV Attestation 9a";

impl Chain {
    fn new(root: TestKey, f9: TestKey) -> Self {
        let root_der = issue(ROOT, &root, ROOT, &root, vec![ca_ext()]);
        let root_pem = pem_rfc7468(&root_der);
        Self {
            root_pem,
            root,
            f9,
            slot: TestKey::p256(),
        }
    }

    fn anchors(&self) -> TrustAnchors {
        TrustAnchors::from_pem(&self.root_pem).expect("test root")
    }

    fn device(&self) -> Vec<u8> {
        issue(
            F9,
            &self.f9,
            ROOT,
            &self.root,
            vec![ext("1.3.6.1.4.1.41482.3.3", false, &[5, 7, 4])],
        )
    }

    fn slot_with(&self, subject: &str, exts: Vec<Extension>) -> Vec<u8> {
        issue(subject, &self.slot, F9, &self.f9, exts)
    }

    fn verify_slot(&self, slot: &[u8]) -> Result<Attested, AttestationError> {
        verify(slot, &self.device(), &[], SYNTH, &self.anchors())
    }
}

fn pem_rfc7468(der: &[u8]) -> String {
    use x509_cert::der::pem::LineEnding;
    x509_cert::der::pem::encode_string("CERTIFICATE", LineEnding::LF, der).expect("pem")
}

#[test]
fn synthetic_chains_of_each_algorithm_verify() {
    let chains = [
        ("P-256", Chain::new(TestKey::p256(), TestKey::p256())),
        ("P-384", Chain::new(TestKey::p384(), TestKey::p384())),
        ("RSA-2048", Chain::new(TestKey::rsa(), TestKey::rsa())),
        (
            "RSA root, P-256 F9",
            Chain::new(TestKey::rsa(), TestKey::p256()),
        ),
    ];
    for (name, chain) in chains {
        let a = chain
            .verify_slot(&chain.slot_with(SLOT_9A, yubico_exts()))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(a.slot, PivSlot::AUTHENTICATION, "{name}");
        assert_eq!(a.serial, 10_000_001, "{name}");
        assert_eq!(a.firmware.to_string(), "5.7.4", "{name}");
        assert_eq!(a.pin_policy, PinPolicy::Once, "{name}");
        assert_eq!(a.touch_policy, TouchPolicy::Always, "{name}");
        assert_eq!(a.form_factor, FormFactor::UsbAKeychain, "{name}");
        assert_eq!(a.anchor, ROOT, "{name}");
        assert_eq!(a.public_key_spki, chain.slot.spki().to_der().expect("spki"));
        assert_eq!(a.key_algorithm, KeyAlgorithm::EcP256, "{name}");
    }
    // The attested key's algorithm, for RSA-2048 and P-384 slot keys.
    for (key, algorithm) in [
        (TestKey::rsa(), KeyAlgorithm::Rsa { bits: 2048 }),
        (TestKey::p384(), KeyAlgorithm::EcP384),
    ] {
        let chain = Chain::new(TestKey::p256(), TestKey::p256());
        let slot = issue(SLOT_9A, &key, F9, &chain.f9, yubico_exts());
        let a = chain.verify_slot(&slot).expect("verifies");
        assert_eq!(a.key_algorithm, algorithm);
    }
}

#[test]
fn a_root_of_the_same_name_with_another_key_is_a_bad_signature_of_the_device_certificate() {
    let chain = Chain::new(TestKey::p256(), TestKey::p256());
    let impostor = Chain::new(TestKey::p256(), TestKey::p256());
    let err = verify(
        &chain.slot_with(SLOT_9A, yubico_exts()),
        &chain.device(),
        &[],
        SYNTH,
        &impostor.anchors(),
    )
    .expect_err("refused");
    assert_eq!(
        err,
        AttestationError::BadSignature {
            role: CertRole::Device,
            subject: F9.into(),
            issuer: ROOT.into()
        }
    );
    // And under Yubico's roots, a self-made hierarchy is simply untrusted.
    let err = verify(
        &chain.slot_with(SLOT_9A, yubico_exts()),
        &chain.device(),
        &[],
        SYNTH,
        &TrustAnchors::yubico(),
    )
    .expect_err("refused");
    assert!(
        matches!(&err, AttestationError::UntrustedIssuer { role: CertRole::Device, issuer, .. } if issuer == ROOT),
        "{err:?}"
    );
}

#[test]
fn a_slot_certificate_naming_another_issuer_is_a_broken_link() {
    let chain = Chain::new(TestKey::p256(), TestKey::p256());
    let slot = issue(
        SLOT_9A,
        &chain.slot,
        "CN=Someone Else",
        &chain.f9,
        yubico_exts(),
    );
    let err = chain.verify_slot(&slot).expect_err("refused");
    assert_eq!(
        err,
        AttestationError::BrokenLink {
            role: CertRole::Slot,
            subject: SLOT_9A.into(),
            issuer: "CN=Someone Else".into(),
            presented: F9.into(),
        }
    );
}

#[test]
fn a_slot_certificate_signed_by_another_key_is_a_bad_signature() {
    let chain = Chain::new(TestKey::p256(), TestKey::p256());
    let slot = issue(SLOT_9A, &chain.slot, F9, &TestKey::p256(), yubico_exts());
    let err = chain.verify_slot(&slot).expect_err("refused");
    assert!(is_bad_signature(&err, CertRole::Slot), "{err:?}");
}

#[test]
fn each_missing_required_extension_is_named() {
    let chain = Chain::new(TestKey::p256(), TestKey::p256());
    for (index, which) in [
        (0, YubicoExtension::Firmware),
        (1, YubicoExtension::Serial),
        (2, YubicoExtension::Policy),
    ] {
        let mut exts = yubico_exts();
        exts.remove(index);
        let err = chain
            .verify_slot(&chain.slot_with(SLOT_9A, exts))
            .expect_err("refused");
        assert_eq!(err, AttestationError::MissingExtension { extension: which });
    }
    // The form factor is optional (not every firmware attests it).
    let mut exts = yubico_exts();
    exts.remove(3);
    let a = chain
        .verify_slot(&chain.slot_with(SLOT_9A, exts))
        .expect("verifies");
    assert_eq!(a.form_factor, FormFactor::Unknown);
}

#[test]
fn a_duplicated_extension_is_refused() {
    let chain = Chain::new(TestKey::p256(), TestKey::p256());
    let mut exts = yubico_exts();
    exts.push(ext(
        "1.3.6.1.4.1.41482.3.7",
        false,
        &[0x02, 0x04, 0x00, 0x98, 0x96, 0x82],
    ));
    let err = chain
        .verify_slot(&chain.slot_with(SLOT_9A, exts))
        .expect_err("refused");
    assert_eq!(
        err,
        AttestationError::DuplicateExtension {
            role: CertRole::Slot,
            subject: SLOT_9A.into(),
            oid: "1.3.6.1.4.1.41482.3.7".into()
        }
    );
}

#[test]
fn each_garbled_extension_is_named_with_what_was_wrong() {
    let chain = Chain::new(TestKey::p256(), TestKey::p256());
    let cases: [(usize, &[u8], YubicoExtension, &str); 8] = [
        (0, &[5, 7], YubicoExtension::Firmware, "2 bytes where 3"),
        (
            1,
            &[0x00, 0x98, 0x96, 0x81],
            YubicoExtension::Serial,
            "not a DER INTEGER",
        ),
        (
            1,
            &[0x02, 0x01, 0xFF],
            YubicoExtension::Serial,
            "not a DER INTEGER",
        ),
        (
            1,
            &[0x02, 0x05, 0x01, 0x00, 0x00, 0x00, 0x00],
            YubicoExtension::Serial,
            "not a DER INTEGER",
        ),
        (2, &[2, 2, 0], YubicoExtension::Policy, "3 bytes where 2"),
        (2, &[7, 2], YubicoExtension::Policy, "PIN policy 0x07"),
        (2, &[2, 9], YubicoExtension::Policy, "touch policy 0x09"),
        (3, &[1, 0], YubicoExtension::FormFactor, "2 bytes where 1"),
    ];
    for (index, value, which, words) in cases {
        let mut exts = yubico_exts();
        exts[index] = ext(which.oid(), false, value);
        let err = chain
            .verify_slot(&chain.slot_with(SLOT_9A, exts))
            .expect_err("refused");
        match &err {
            AttestationError::GarbledExtension { extension, reason } => {
                assert_eq!(*extension, which);
                assert!(reason.contains(words), "{which}: {reason}");
            }
            other => panic!("{which}: {other:?}"),
        }
    }
}

#[test]
fn an_unknown_critical_extension_is_refused() {
    let chain = Chain::new(TestKey::p256(), TestKey::p256());
    let mut exts = yubico_exts();
    exts.push(ext("1.2.3.4.5", true, &[0x05, 0x00]));
    let err = chain
        .verify_slot(&chain.slot_with(SLOT_9A, exts))
        .expect_err("refused");
    assert!(
        matches!(&err, AttestationError::UnknownCriticalExtension { role: CertRole::Slot, oid, .. } if oid == "1.2.3.4.5"),
        "{err:?}"
    );
}

#[test]
fn a_subject_that_names_no_attestable_slot_is_refused() {
    let chain = Chain::new(TestKey::p256(), TestKey::p256());
    for subject in [
        "CN=YubiKey PIV Attestation f9",
        "CN=YubiKey PIV Attestation 9",
        "CN=YubiKey PIV Attestation zz",
        "CN=My Key",
        "CN=YubiKey PIV Attestation 9a,O=Extra",
    ] {
        let err = chain
            .verify_slot(&chain.slot_with(subject, yubico_exts()))
            .expect_err("refused");
        assert!(
            matches!(err, AttestationError::NotASlotAttestation { .. }),
            "{subject}: {err:?}"
        );
    }
    // Retired slots are attestable.
    let a = verify(
        &chain.slot_with("CN=YubiKey PIV Attestation 82", yubico_exts()),
        &chain.device(),
        &[],
        Expected {
            slot: PivSlot::new(0x82).expect("retired slot"),
            ..SYNTH
        },
        &chain.anchors(),
    )
    .expect("verifies");
    assert_eq!(a.slot.to_string(), "82");
}

#[test]
fn an_intermediate_that_is_not_a_ca_is_refused() {
    let root = TestKey::p256();
    let mid = TestKey::p256();
    let f9 = TestKey::p256();
    let slot = TestKey::p256();
    let root_pem = pem_rfc7468(&issue(ROOT, &root, ROOT, &root, vec![ca_ext()]));
    let anchors = TrustAnchors::from_pem(&root_pem).expect("root");
    let device = issue(F9, &f9, "CN=Mid", &mid, vec![]);
    let slot_der = issue(SLOT_9A, &slot, F9, &f9, yubico_exts());
    let not_ca = issue("CN=Mid", &mid, ROOT, &root, vec![]);
    let err = verify(&slot_der, &device, &[&not_ca], SYNTH, &anchors).expect_err("refused");
    assert_eq!(
        err,
        AttestationError::NotACa {
            role: CertRole::Intermediate(0),
            subject: "CN=Mid".into()
        }
    );
    let ca = issue("CN=Mid", &mid, ROOT, &root, vec![ca_ext()]);
    assert!(verify(&slot_der, &device, &[&ca], SYNTH, &anchors).is_ok());
}

#[test]
fn a_chain_longer_than_any_yubico_hierarchy_is_refused() {
    let root = TestKey::p256();
    let root_pem = pem_rfc7468(&issue(ROOT, &root, ROOT, &root, vec![ca_ext()]));
    let anchors = TrustAnchors::from_pem(&root_pem).expect("root");
    // root → m5 → m4 → ... → m0 → F9 → slot
    let keys: Vec<TestKey> = (0..6).map(|_| TestKey::p256()).collect();
    let mut mids = Vec::new();
    for i in 0..6 {
        let issuer = if i == 5 {
            ROOT.to_owned()
        } else {
            format!("CN=m{}", i + 1)
        };
        let issuer_key = if i == 5 { &root } else { &keys[i + 1] };
        mids.push(issue(
            &format!("CN=m{i}"),
            &keys[i],
            &issuer,
            issuer_key,
            vec![ca_ext()],
        ));
    }
    let f9 = TestKey::p256();
    let device = issue(F9, &f9, "CN=m0", &keys[0], vec![]);
    let slot = issue(SLOT_9A, &TestKey::p256(), F9, &f9, yubico_exts());
    let extra: Vec<&[u8]> = mids.iter().map(Vec::as_slice).collect();
    let err = verify(&slot, &device, &extra, SYNTH, &anchors).expect_err("refused");
    assert!(
        matches!(err, AttestationError::ChainTooLong { max: 4, .. }),
        "{err:?}"
    );
    // Four intermediates (the most allowed) verify.
    let short_root_pem = pem_rfc7468(&mids[4]);
    let anchors = TrustAnchors::from_pem(&short_root_pem).expect("m4 as anchor");
    assert!(verify(&slot, &device, &extra[..4], SYNTH, &anchors).is_ok());
}

#[test]
fn garbage_is_refused_without_panicking_and_names_the_certificate() {
    let chain = Chain::new(TestKey::p256(), TestKey::p256());
    let good_slot = chain.slot_with(SLOT_9A, yubico_exts());
    let err = verify(
        b"not a certificate",
        &chain.device(),
        &[],
        SYNTH,
        &chain.anchors(),
    )
    .expect_err("refused");
    assert!(is_malformed(&err, CertRole::Slot), "{err:?}");
    let err = verify(
        &good_slot,
        &[0x30, 0x03, 0x02, 0x01],
        &[],
        SYNTH,
        &chain.anchors(),
    )
    .expect_err("refused");
    assert!(is_malformed(&err, CertRole::Device), "{err:?}");
    // Trailing bytes after a certificate.
    let mut trailing = good_slot.clone();
    trailing.push(0);
    let err = chain.verify_slot(&trailing).expect_err("refused");
    assert!(is_malformed(&err, CertRole::Slot), "{err:?}");
    // Too large, too many.
    let err = chain
        .verify_slot(&vec![0x30; MAX_CERT_LEN + 1])
        .expect_err("refused");
    assert!(matches!(err, AttestationError::TooLarge { .. }), "{err:?}");
    let many: Vec<&[u8]> = vec![&good_slot; MAX_EXTRA_INTERMEDIATES + 1];
    let err =
        verify(&good_slot, &chain.device(), &many, SYNTH, &chain.anchors()).expect_err("refused");
    assert!(matches!(err, AttestationError::TooLarge { .. }), "{err:?}");
    // Anchors.
    for pem in [
        "",
        "hello",
        "-----BEGIN CERTIFICATE-----\nMIIB\n",
        "-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----",
    ] {
        assert!(
            matches!(
                TrustAnchors::from_pem(pem),
                Err(AttestationError::AnchorPem { .. })
            ),
            "{pem:?}"
        );
    }
    let not_der = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    assert!(
        matches!(
            TrustAnchors::from_pem(not_der),
            Err(AttestationError::Malformed {
                role: CertRole::Anchor,
                ..
            })
        ),
        "{not_der:?}"
    );
    // Text around the blocks (as in Yubico's yubico-ca-certs.txt) is ignored.
    let annotated = format!(
        "Yubico roots\n{}\nsecond:\n{}",
        published::PIV_ROOT_CA_263751,
        published::ATTESTATION_ROOT_1
    );
    assert_eq!(
        TrustAnchors::from_pem(&annotated)
            .expect("two anchors")
            .anchors()
            .len(),
        2
    );
}

#[test]
fn names_from_certificates_reach_messages_escaped_and_shortened() {
    let chain = Chain::new(TestKey::p256(), TestKey::p256());
    let sneaky = format!("CN=YubiKey PIV Attestation 9a\u{202E}{}", "x".repeat(300));
    let err = chain
        .verify_slot(&chain.slot_with(&sneaky, yubico_exts()))
        .expect_err("refused");
    let message = err.to_string();
    assert!(!message.contains('\u{202E}'), "{message}");
    assert!(message.contains("\\u{202e}"), "{message}");
    assert!(message.len() < 400, "{} bytes: {message}", message.len());
}

#[test]
fn error_messages_name_certificates_but_never_carry_their_bytes() {
    let (slot, f9) = (der(YK574_SLOT), der(YK574_F9));
    let mut bad_f9 = f9.clone();
    let last = bad_f9.len() - 1;
    bad_f9[last] ^= 1;
    let anchors = TrustAnchors::yubico();
    let errors = [
        verify(&slot, &bad_f9, &[], YK574, &anchors).expect_err("refused"),
        verify(&slot, &f9, &[], Expected { serial: 1, ..YK574 }, &anchors).expect_err("refused"),
        verify(
            &slot,
            &f9,
            &[],
            YK574,
            &TrustAnchors::from_pem(published::PIV_ROOT_CA_263751).expect("root"),
        )
        .expect_err("refused"),
    ];
    let b64 = data_encoding::BASE64.encode(&f9);
    let hex = data_encoding::HEXLOWER.encode(&f9);
    for err in errors {
        let message = format!("{err} {err:?}");
        for window in [&b64[40..80], &hex[100..140], &b64[200..240]] {
            assert!(
                !message.to_lowercase().contains(&window.to_lowercase()),
                "{message}"
            );
        }
        assert!(message.len() < 600, "{message}");
    }
}
