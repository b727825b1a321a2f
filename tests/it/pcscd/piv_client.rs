//! The project's own PIV client (`token::piv`, the code custodyd runs) through a real pcscd and
//! `custody-emu`: a custody key provisioned in slot 9e and attested to the test CA, challenged
//! through the same PC/SC transaction type custodyd uses; the `yubikey` crate signs with the
//! same key (an independent reading of it); a second emulator with the same serial cannot
//! answer the challenge.
//!
//! Re-runs itself inside `scripts/with-pcscd.sh` (see `support`). Needs root and the packages
//! pcscd and vsmartcard-vpcd (`make deps`).

use mfa_custody::emulator::piv::attest::TEST_CA_CERT_PEM;
use mfa_custody::token::attestation::TrustAnchors;
use mfa_custody::token::pcsc::PcscContext;
use mfa_custody::token::piv::{self, Challenge, PivSession};
use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1};
use yubikey::piv::{AlgorithmId, SlotId};

use crate::support::{in_harness, repo, wait_for_card, Emu};

const SERIAL: u32 = 10_000_000;

#[test]
fn pcscd_custody_key_is_provisioned_attested_and_a_copy_cannot_answer_its_challenge() {
    if !in_harness(
        "pcscd_custody_key_is_provisioned_attested_and_a_copy_cannot_answer_its_challenge",
        44800,
        1,
    ) {
        return;
    }
    let image = repo().join("hsm-fixtures/blank.toml");
    let image_arg = image.to_str().expect("utf-8 path");
    let _original = Emu::start(0, &["--image", image_arg]);
    let _copy = Emu::start(1, &["--image", image_arg]);
    let original = wait_for_card(0);
    let copy = wait_for_card(1);
    let ctx = PcscContext::establish().expect("pcscd");
    let anchors = TrustAnchors::from_pem(TEST_CA_CERT_PEM).expect("test CA");

    let mut card = ctx.connect(&original).expect("card");
    let provisioned = card
        .with_transaction(|tx| {
            let mut s = PivSession::select(&mut *tx).expect("select PIV");
            piv::provision(&mut s, SERIAL, &anchors, jiff::Timestamp::now())
        })
        .expect("transaction")
        .expect("provisioned and attested");
    assert_eq!(provisioned.attested.serial, SERIAL);
    assert_eq!(provisioned.attested.slot.to_string(), "9e");
    let spki = provisioned.attested.public_key_spki.clone();

    let challenge = |reader: &str, nonce: &[u8]| {
        let mut card = ctx.connect(reader).expect("card");
        card.with_transaction(|tx| {
            let mut s = PivSession::select(&mut *tx).expect("select PIV");
            piv::challenge(&mut s, SERIAL, &spki, nonce).expect("challenge answered")
        })
        .expect("transaction")
    };
    assert_eq!(challenge(&original, &[1; 32]), Challenge::Proven);
    assert_eq!(challenge(&copy, &[2; 32]), Challenge::NotProven);

    // The yubikey crate reads the same key: its signature verifies against the attested SPKI.
    drop(card);
    let mut yk = yubikey::reader::Context::open()
        .expect("pcscd")
        .iter()
        .expect("readers")
        .find(|r| r.name() == original)
        .expect("the reader is listed")
        .open()
        .expect("the yubikey crate opens the key");
    let message = b"cross-check";
    let digest = ring::digest::digest(&ring::digest::SHA256, message);
    let sig = yubikey::piv::sign_data(
        &mut yk,
        digest.as_ref(),
        AlgorithmId::EccP256,
        SlotId::CardAuthentication,
    )
    .expect("the 9e key signs with PIN policy never");
    let point = &spki[spki.len() - piv::P256_POINT_LEN..];
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, point)
        .verify(message, &sig)
        .expect("the yubikey crate's signature is the attested key's");
}
