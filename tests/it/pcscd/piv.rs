//! The software YubiKey's PIV applet through a real pcscd, driven by the `yubikey` crate (the
//! driver the product uses for device identity): PIN, the default management key, generating
//! P-256 and P-384 keys with policies, metadata, signing, ATTEST chaining to the test
//! attestation CA, and the key surviving a restart of `custody-emu` with `--state`.
//!
//! Re-runs itself inside `scripts/with-pcscd.sh` (see `support`). Needs root and the packages
//! pcscd and vsmartcard-vpcd (`make deps`).

use der::{Decode, DecodePem, Encode};
use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1};
use x509_cert::Certificate;
use yubikey::piv::{self, AlgorithmId, SlotId};
use yubikey::{MgmKey, PinPolicy, TouchPolicy, YubiKey};

use crate::support::{in_harness, repo, wait_for_card, Emu};

fn open(reader: &str) -> YubiKey {
    let mut ctx = yubikey::reader::Context::open().expect("pcscd");
    let found = ctx
        .iter()
        .expect("readers")
        .find(|r| r.name() == reader)
        .unwrap_or_else(|| panic!("reader {reader} is listed"));
    found
        .open()
        .expect("the yubikey crate opens the software YubiKey")
}

fn point(cert: &Certificate) -> Vec<u8> {
    cert.tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .raw_bytes()
        .to_vec()
}

fn assert_issued_by(cert: &Certificate, issuer: &Certificate) {
    assert_eq!(cert.tbs_certificate.issuer, issuer.tbs_certificate.subject);
    let tbs = cert.tbs_certificate.to_der().expect("tbs");
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, point(issuer))
        .verify(&tbs, cert.signature.raw_bytes())
        .expect("signed by its issuer");
}

/// GENERATE P-256 in slot 9A with these policies.
fn generate(
    yk: &mut YubiKey,
    pin: PinPolicy,
    touch: TouchPolicy,
) -> yubikey::Result<spki::SubjectPublicKeyInfoOwned> {
    piv::generate(yk, SlotId::Authentication, AlgorithmId::EccP256, pin, touch)
}

fn sign(yk: &mut YubiKey, message: &[u8]) -> Vec<u8> {
    let digest = ring::digest::digest(&ring::digest::SHA256, message);
    piv::sign_data(
        yk,
        digest.as_ref(),
        AlgorithmId::EccP256,
        SlotId::Authentication,
    )
    .expect("sign_data")
    .to_vec()
}

#[test]
fn pcscd_the_yubikey_crate_generates_signs_and_attests_with_the_piv_applet() {
    if !in_harness(
        "pcscd_the_yubikey_crate_generates_signs_and_attests_with_the_piv_applet",
        44700,
        1,
    ) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("key.state");
    let state_arg = state.to_str().expect("utf-8 path");
    let image = repo().join("hsm-fixtures/blank.toml");
    let image_arg = image.to_str().expect("utf-8 path");
    let args = ["--image", image_arg, "--state", state_arg];
    let emu = Emu::start(0, &args);
    let reader = wait_for_card(0);
    let mut yk = open(&reader);
    assert_eq!(u32::from(yk.serial()), 10_000_000);

    // PIN: retries, a wrong PIN counted, the factory PIN.
    assert_eq!(yk.get_pin_retries().expect("retries"), 3);
    match yk.verify_pin(b"654321") {
        Err(yubikey::Error::WrongPin { tries }) => assert_eq!(tries, 2),
        other => panic!("a wrong PIN is refused with its tries, got {other:?}"),
    }
    let pin_meta = piv::metadata(&mut yk, SlotId::Authentication);
    assert!(pin_meta.is_err(), "an empty slot has no metadata");

    // Generating needs the management key.
    let refused = generate(&mut yk, PinPolicy::Once, TouchPolicy::Never);
    assert!(
        matches!(refused, Err(yubikey::Error::AuthenticationError)),
        "{refused:?}"
    );
    yk.authenticate(MgmKey::default())
        .expect("the factory management key");
    let spki = generate(&mut yk, PinPolicy::Once, TouchPolicy::Never).expect("generate P-256");
    let public = spki.subject_public_key.raw_bytes().to_vec();
    assert_eq!(public.len(), 65);

    let meta = piv::metadata(&mut yk, SlotId::Authentication).expect("metadata");
    assert_eq!(meta.policy, Some((PinPolicy::Once, TouchPolicy::Never)));
    assert_eq!(meta.origin, Some(piv::Origin::Generated));
    assert_eq!(
        meta.public
            .as_ref()
            .map(|p| p.subject_public_key.raw_bytes().to_vec()),
        Some(public.clone())
    );

    // Signing needs the PIN (policy once); the signature verifies with the generated key.
    let refused = piv::sign_data(
        &mut yk,
        &[0u8; 32],
        AlgorithmId::EccP256,
        SlotId::Authentication,
    );
    assert!(refused.is_err(), "no PIN yet: {refused:?}");
    yk.verify_pin(b"123456").expect("the factory PIN");
    let sig = sign(&mut yk, b"approval digest");
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &public)
        .verify(b"approval digest", &sig)
        .expect("the signature verifies");

    // ATTEST: the slot's key, signed by the F9 key, whose certificate the test CA issued.
    let att = piv::attest(&mut yk, SlotId::Authentication).expect("attest");
    let att = Certificate::from_der(&att).expect("a DER certificate");
    assert_eq!(point(&att), public);
    assert_eq!(
        att.tbs_certificate.subject.to_string(),
        "CN=YubiKey PIV Attestation 9a"
    );
    let f9 = yubikey::Certificate::read(&mut yk, SlotId::Attestation).expect("F9 certificate");
    let f9 = f9.cert;
    assert_issued_by(&att, &f9);
    let ca_pem = std::fs::read(repo().join("hsm-fixtures/piv-test-ca.pem")).expect("CA");
    let ca = Certificate::from_pem(&ca_pem).expect("CA parses");
    assert_issued_by(&f9, &ca);

    // P-384 in 9D (PIN once, verified above): generate, sign, attest.
    let spki384 = piv::generate(
        &mut yk,
        SlotId::KeyManagement,
        AlgorithmId::EccP384,
        PinPolicy::Default,
        TouchPolicy::Default,
    )
    .expect("generate P-384");
    let public384 = spki384.subject_public_key.raw_bytes().to_vec();
    assert_eq!(public384.len(), 97);
    let digest = ring::digest::digest(&ring::digest::SHA384, b"p384 approval");
    let sig = piv::sign_data(
        &mut yk,
        digest.as_ref(),
        AlgorithmId::EccP384,
        SlotId::KeyManagement,
    )
    .expect("sign with P-384");
    UnparsedPublicKey::new(&ring::signature::ECDSA_P384_SHA384_ASN1, &public384)
        .verify(b"p384 approval", &sig)
        .expect("the P-384 signature verifies");
    let att384 = piv::attest(&mut yk, SlotId::KeyManagement).expect("attest P-384");
    let att384 = Certificate::from_der(&att384).expect("a DER certificate");
    assert_eq!(point(&att384), public384);
    assert_issued_by(&att384, &f9);
    let _ = yk.disconnect(pcsc::Disposition::LeaveCard);

    // The key survives a restart of the emulator from its state file; the PIN does not.
    emu.stop();
    let _emu = Emu::start(0, &args);
    let reader = wait_for_card(0);
    let mut yk = open(&reader);
    assert!(
        piv::sign_data(
            &mut yk,
            &[0u8; 32],
            AlgorithmId::EccP256,
            SlotId::Authentication
        )
        .is_err(),
        "a new power-up forgets the PIN"
    );
    yk.verify_pin(b"123456").expect("the factory PIN");
    let sig = sign(&mut yk, b"after restart");
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &public)
        .verify(b"after restart", &sig)
        .expect("the same key signs after a restart");
}

/// The touch policy through pcscd: a key generated with touch "always" signs when the emulator
/// is touched (`--touch auto`) and is refused when nobody touches (`--touch stdin` with no
/// terminal: no Enter ever comes).
#[test]
fn pcscd_a_touch_always_key_signs_only_when_touched() {
    if !in_harness("pcscd_a_touch_always_key_signs_only_when_touched", 44720, 1) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("key.state");
    let state_arg = state.to_str().expect("utf-8 path");
    let emu = Emu::start(0, &["--serial", "10000078", "--state", state_arg]);
    let reader = wait_for_card(0);
    let mut yk = open(&reader);
    yk.authenticate(MgmKey::default())
        .expect("the factory management key");
    let spki = generate(&mut yk, PinPolicy::Never, TouchPolicy::Always).expect("generate");
    let meta = piv::metadata(&mut yk, SlotId::Authentication).expect("metadata");
    assert_eq!(meta.policy, Some((PinPolicy::Never, TouchPolicy::Always)));
    let sig = sign(&mut yk, b"touched");
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, spki.subject_public_key.raw_bytes())
        .verify(b"touched", &sig)
        .expect("signed after a touch");
    let _ = yk.disconnect(pcsc::Disposition::LeaveCard);
    emu.stop();

    let _emu = Emu::start(
        0,
        &[
            "--serial", "10000078", "--state", state_arg, "--touch", "stdin",
        ],
    );
    let reader = wait_for_card(0);
    let mut yk = open(&reader);
    let meta = piv::metadata(&mut yk, SlotId::Authentication).expect("metadata");
    assert_eq!(
        meta.public
            .map(|p| p.subject_public_key.raw_bytes().to_vec()),
        Some(spki.subject_public_key.raw_bytes().to_vec()),
        "the key is there after the restart"
    );
    let digest = [7u8; 32];
    let refused = piv::sign_data(
        &mut yk,
        &digest,
        AlgorithmId::EccP256,
        SlotId::Authentication,
    );
    assert!(refused.is_err(), "no touch, no signature: {refused:?}");
}
