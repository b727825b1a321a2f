//! The PIV applet in process, through the card frame, driven with raw APDUs as a client sends
//! them. The host side of every check uses independent code: `des` for the management key,
//! `ring` for signature verification, `x509-cert` for parsing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use der::{Decode, Encode};
use des::cipher::{BlockDecrypt, BlockEncrypt, KeyInit};
use proptest::prelude::*;
use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1};
use x509_cert::Certificate;

use super::state::{DEFAULT_MANAGEMENT_KEY, DEFAULT_PIN};
use super::*;
use crate::emulator::oath::{AutoTouch, OathState};
use crate::emulator::SoftKey;
use crate::token::management::FormFactor;

const SERIAL: u32 = 10_000_042;

/// Counts touches and answers them with `grant`.
struct CountTouch(Arc<AtomicUsize>, bool);

impl TouchSource for CountTouch {
    fn wait_for_touch(&mut self, _what: &str) -> bool {
        self.0.fetch_add(1, Ordering::SeqCst);
        self.1
    }
}

fn device(touch: Box<dyn TouchSource + Send>) -> SoftKey {
    let mut k = SoftKey::new(
        SERIAL,
        [5, 4, 3],
        FormFactor::UsbAKeychain,
        OathState::fresh(),
        touch,
    );
    let r = k.process(&[
        0x00, 0xA4, 0x04, 0x00, 0x0B, 0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x01,
        0x00,
    ]);
    assert_eq!(sw(&r), 0x9000, "SELECT PIV");
    k
}

fn key() -> SoftKey {
    device(Box::new(AutoTouch))
}

fn sw(r: &[u8]) -> u16 {
    match r {
        [.., a, b] => u16::from_be_bytes([*a, *b]),
        _ => panic!("response shorter than a status word"),
    }
}

/// Sends one command (short or extended length) and collects `61xx` chunks.
fn tx(k: &mut SoftKey, ins: u8, p1: u8, p2: u8, data: &[u8]) -> (Vec<u8>, u16) {
    let mut apdu = vec![0x00, ins, p1, p2];
    if data.len() > 255 {
        apdu.push(0);
        apdu.extend_from_slice(&(data.len() as u16).to_be_bytes());
        apdu.extend_from_slice(data);
    } else if !data.is_empty() {
        apdu.push(data.len() as u8);
        apdu.extend_from_slice(data);
    }
    let mut r = k.process(&apdu).to_vec();
    let mut out = Vec::new();
    loop {
        let s = sw(&r);
        out.extend_from_slice(&r[..r.len() - 2]);
        if s >> 8 != 0x61 {
            return (out, s);
        }
        r = k.process(&[0x00, 0xC0, 0x00, 0x00]).to_vec();
    }
}

fn padded(pin: &[u8]) -> Vec<u8> {
    let mut v = pin.to_vec();
    v.resize(8, 0xFF);
    v
}

fn verify(k: &mut SoftKey, pin: &[u8]) -> u16 {
    tx(k, 0x20, 0x00, 0x80, &padded(pin)).1
}

fn tdes(key: &[u8]) -> des::TdesEde3 {
    des::TdesEde3::new_from_slice(key).expect("24-byte key")
}

/// The host side of mutual authentication (the yubikey crate's `YubiKey::authenticate`):
/// true when the card accepted the key and proved it holds it too.
fn authenticate(k: &mut SoftKey, key: &[u8]) -> Result<(), u16> {
    let (r, s) = tx(k, 0x87, 0x03, 0x9B, &[0x7C, 0x02, 0x80, 0x00]);
    if s != 0x9000 {
        return Err(s);
    }
    assert_eq!(&r[..4], &[0x7C, 0x0A, 0x80, 0x08], "witness template");
    let mut witness = des::cipher::generic_array::GenericArray::clone_from_slice(&r[4..12]);
    tdes(key).decrypt_block(&mut witness);
    let challenge = [9u8, 8, 7, 6, 5, 4, 3, 2];
    let mut data = vec![0x7C, 0x14, 0x80, 0x08];
    data.extend_from_slice(&witness);
    data.extend_from_slice(&[0x81, 0x08]);
    data.extend_from_slice(&challenge);
    let (r, s) = tx(k, 0x87, 0x03, 0x9B, &data);
    if s != 0x9000 {
        return Err(s);
    }
    let mut expected = des::cipher::generic_array::GenericArray::clone_from_slice(&challenge);
    tdes(key).encrypt_block(&mut expected);
    assert_eq!(&r[..4], &[0x7C, 0x0A, 0x82, 0x08], "response template");
    assert_eq!(&r[4..12], expected.as_slice(), "the card proved the key");
    Ok(())
}

/// GENERATE P-256 in `slot` with policies; the uncompressed point.
fn generate(k: &mut SoftKey, slot: u8, pin: u8, touch: u8) -> Vec<u8> {
    let (r, s) = tx(
        k,
        0x47,
        0x00,
        slot,
        &[
            0xAC, 0x09, 0x80, 0x01, 0x11, 0xAA, 0x01, pin, 0xAB, 0x01, touch,
        ],
    );
    assert_eq!(s, 0x9000, "GENERATE");
    assert_eq!(&r[..5], &[0x7F, 0x49, 0x43, 0x86, 0x41], "7F49 {{ 86 }}");
    assert_eq!(r.len(), 5 + 65);
    assert_eq!(r[5], 0x04, "uncompressed point");
    r[5..].to_vec()
}

fn sign(k: &mut SoftKey, slot: u8, message: &[u8]) -> Result<Vec<u8>, u16> {
    let digest = ring::digest::digest(&ring::digest::SHA256, message);
    let mut data = vec![0x7C, 0x24, 0x82, 0x00, 0x81, 0x20];
    data.extend_from_slice(digest.as_ref());
    let (r, s) = tx(k, 0x87, 0x11, slot, &data);
    if s != 0x9000 {
        return Err(s);
    }
    let outer = tlv::parse(&r).expect("TLV");
    let inner = tlv::parse(tlv::find(&outer, 0x7C).expect("7C")).expect("TLV");
    Ok(tlv::find(&inner, 0x82).expect("82").to_vec())
}

fn assert_signs(point: &[u8], message: &[u8], sig: &[u8]) {
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, point)
        .verify(message, sig)
        .expect("the signature verifies with the generated public key");
}

#[test]
fn get_version_and_serial() {
    let mut k = key();
    assert_eq!(tx(&mut k, 0xFD, 0, 0, &[]), (vec![5, 4, 3], 0x9000));
    assert_eq!(
        tx(&mut k, 0xF8, 0, 0, &[]),
        (SERIAL.to_be_bytes().to_vec(), 0x9000)
    );
}

#[test]
fn verify_counts_tries_blocks_and_the_puk_unblocks() {
    let mut k = key();
    // Empty VERIFY asks the tries left without spending one.
    assert_eq!(tx(&mut k, 0x20, 0x00, 0x80, &[]).1, 0x63C3);
    assert_eq!(verify(&mut k, b"654321"), 0x63C2);
    assert_eq!(verify(&mut k, b"654321"), 0x63C1);
    // A right PIN restores the tries.
    assert_eq!(verify(&mut k, DEFAULT_PIN), 0x9000);
    assert_eq!(tx(&mut k, 0x20, 0x00, 0x80, &[]).1, 0x9000, "verified");
    for left in [2u16, 1, 0] {
        assert_eq!(verify(&mut k, b"000000"), 0x63C0 | left);
    }
    assert_eq!(verify(&mut k, DEFAULT_PIN), 0x6983, "blocked");
    assert_eq!(tx(&mut k, 0x20, 0x00, 0x80, &[]).1, 0x6983);
    // RESET RETRY COUNTER: a wrong PUK counts, the right one sets a new PIN.
    let mut data = padded(b"87654321");
    data.extend(padded(b"24681357"));
    assert_eq!(tx(&mut k, 0x2C, 0x00, 0x80, &data).1, 0x63C2);
    let mut data = padded(b"12345678");
    data.extend(padded(b"24681357"));
    assert_eq!(tx(&mut k, 0x2C, 0x00, 0x80, &data).1, 0x9000);
    assert_eq!(verify(&mut k, DEFAULT_PIN), 0x63C2, "the old PIN is gone");
    assert_eq!(verify(&mut k, b"24681357"), 0x9000);
}

#[test]
fn change_pin_and_puk() {
    let mut k = key();
    let mut data = padded(DEFAULT_PIN);
    data.extend(padded(b"12345"));
    assert_eq!(
        tx(&mut k, 0x24, 0x00, 0x80, &data).1,
        0x6A80,
        "a 5-digit PIN is refused"
    );
    let mut data = padded(DEFAULT_PIN);
    data.extend(padded(b"9876543"));
    assert_eq!(tx(&mut k, 0x24, 0x00, 0x80, &data).1, 0x9000);
    assert_eq!(verify(&mut k, b"9876543"), 0x9000);
    let mut data = padded(b"00000000");
    data.extend(padded(b"11223344"));
    assert_eq!(tx(&mut k, 0x24, 0x00, 0x81, &data).1, 0x63C2, "wrong PUK");
    let mut data = padded(b"12345678");
    data.extend(padded(b"11223344"));
    assert_eq!(tx(&mut k, 0x24, 0x00, 0x81, &data).1, 0x9000);
    assert!(k.piv_state().puk.is(b"11223344"));
    assert_eq!(
        tx(&mut k, 0x24, 0x00, 0x82, &data).1,
        0x6A88,
        "no such reference"
    );
}

#[test]
fn the_default_management_key_authenticates_and_a_wrong_one_is_refused() {
    let mut k = key();
    let mut wrong = DEFAULT_MANAGEMENT_KEY;
    wrong[0] ^= 0x10;
    assert_eq!(authenticate(&mut k, &wrong), Err(0x6982));
    assert_eq!(
        tx(&mut k, 0x47, 0x00, 0x9A, &[0xAC, 0x03, 0x80, 0x01, 0x11]).1,
        0x6982,
        "still not authenticated"
    );
    authenticate(&mut k, &DEFAULT_MANAGEMENT_KEY).expect("factory key");
    // A response without a witness asked first is refused.
    let mut k = key();
    let mut data = vec![0x7C, 0x14, 0x80, 0x08];
    data.extend_from_slice(&[0; 8]);
    data.extend_from_slice(&[0x81, 0x08]);
    data.extend_from_slice(&[0; 8]);
    assert_eq!(tx(&mut k, 0x87, 0x03, 0x9B, &data).1, 0x6985);
    // AES algorithm bytes against a 3DES key: wrong P1.
    assert_eq!(
        tx(&mut k, 0x87, 0x08, 0x9B, &[0x7C, 0x02, 0x80, 0x00]).1,
        0x6A86
    );
}

#[test]
fn single_authentication_with_the_card_challenge() {
    let mut k = key();
    let (r, s) = tx(&mut k, 0x87, 0x03, 0x9B, &[0x7C, 0x02, 0x81, 0x00]);
    assert_eq!(s, 0x9000);
    assert_eq!(&r[..4], &[0x7C, 0x0A, 0x81, 0x08]);
    let mut response = des::cipher::generic_array::GenericArray::clone_from_slice(&r[4..12]);
    tdes(&DEFAULT_MANAGEMENT_KEY).encrypt_block(&mut response);
    let mut data = vec![0x7C, 0x0A, 0x82, 0x08];
    data.extend_from_slice(&response);
    assert_eq!(tx(&mut k, 0x87, 0x03, 0x9B, &data).1, 0x9000);
    assert_eq!(
        tx(
            &mut k,
            0xDB,
            0x3F,
            0xFF,
            &[0x5C, 0x03, 0x5F, 0xC1, 0x02, 0x53, 0x01, 0x00]
        )
        .1,
        0x9000,
        "authenticated"
    );
}

#[test]
fn set_management_key_replaces_it_and_can_require_touch() {
    let touches = Arc::new(AtomicUsize::new(0));
    let mut k = device(Box::new(CountTouch(touches.clone(), true)));
    let new: Vec<u8> = (0x20..0x38).collect();
    let mut data = vec![0x03, 0x9B, 0x18];
    data.extend_from_slice(&new);
    assert_eq!(
        tx(&mut k, 0xFF, 0xFF, 0xFE, &data).1,
        0x6982,
        "needs the key"
    );
    authenticate(&mut k, &DEFAULT_MANAGEMENT_KEY).expect("factory key");
    assert_eq!(tx(&mut k, 0xFF, 0xFF, 0xFE, &data[..10]).1, 0x6A80, "short");
    assert_eq!(tx(&mut k, 0xFF, 0xFF, 0xFE, &data).1, 0x9000);
    assert_eq!(touches.load(Ordering::SeqCst), 0);
    assert_eq!(
        authenticate(&mut k, &DEFAULT_MANAGEMENT_KEY),
        Err(0x6982),
        "the old key is gone"
    );
    authenticate(&mut k, &new).expect("new key");
    assert_eq!(touches.load(Ordering::SeqCst), 1, "P2 FE: touch required");
    let (meta, s) = tx(&mut k, 0xF7, 0x00, 0x9B, &[]);
    assert_eq!(s, 0x9000);
    assert_eq!(
        meta,
        [0x01, 0x01, 0x03, 0x02, 0x02, 0x00, 0x02, 0x05, 0x01, 0x00]
    );
}

/// Mutual authentication with an AES management key, the host side computed with the `aes`
/// crate: 16-byte witness and challenge.
fn authenticate_aes256(k: &mut SoftKey, key: &[u8; 32]) -> Result<(), u16> {
    use aes::cipher::{BlockDecrypt, BlockEncrypt, KeyInit};
    let cipher = aes::Aes256::new_from_slice(key).expect("32-byte key");
    let (r, s) = tx(k, 0x87, 0x0C, 0x9B, &[0x7C, 0x02, 0x80, 0x00]);
    if s != 0x9000 {
        return Err(s);
    }
    assert_eq!(&r[..4], &[0x7C, 0x12, 0x80, 0x10], "16-byte witness");
    let mut witness = aes::cipher::generic_array::GenericArray::clone_from_slice(&r[4..20]);
    cipher.decrypt_block(&mut witness);
    let challenge = [0x5Au8; 16];
    let mut data = vec![0x7C, 0x24, 0x80, 0x10];
    data.extend_from_slice(&witness);
    data.extend_from_slice(&[0x81, 0x10]);
    data.extend_from_slice(&challenge);
    let (r, s) = tx(k, 0x87, 0x0C, 0x9B, &data);
    if s != 0x9000 {
        return Err(s);
    }
    let mut expected = aes::cipher::generic_array::GenericArray::clone_from_slice(&challenge);
    cipher.encrypt_block(&mut expected);
    assert_eq!(&r[4..20], expected.as_slice(), "the card proved the key");
    Ok(())
}

#[test]
fn an_aes_management_key_from_firmware_5_4() {
    let mut k = key();
    authenticate(&mut k, &DEFAULT_MANAGEMENT_KEY).expect("factory key");
    let aes_key = [0x42u8; 32];
    let mut data = vec![0x0C, 0x9B, 0x20];
    data.extend_from_slice(&aes_key);
    assert_eq!(
        tx(&mut k, 0xFF, 0xFF, 0xFF, &data[..20]).1,
        0x6A80,
        "short key"
    );
    assert_eq!(tx(&mut k, 0xFF, 0xFF, 0xFF, &data).1, 0x9000);
    assert_eq!(
        tx(&mut k, 0x87, 0x03, 0x9B, &[0x7C, 0x02, 0x80, 0x00]).1,
        0x6A86,
        "3DES is no longer the key's algorithm"
    );
    let mut wrong = aes_key;
    wrong[31] ^= 1;
    assert_eq!(authenticate_aes256(&mut k, &wrong), Err(0x6982));
    authenticate_aes256(&mut k, &aes_key).expect("the AES-256 key");
    let (meta, _) = tx(&mut k, 0xF7, 0x00, 0x9B, &[]);
    assert_eq!(
        meta,
        [0x01, 0x01, 0x0C, 0x02, 0x02, 0x00, 0x01, 0x05, 0x01, 0x00]
    );

    // Firmware 5.3 has no AES management keys.
    let mut old = SoftKey::new(
        1,
        [5, 3, 0],
        FormFactor::UsbAKeychain,
        OathState::fresh(),
        Box::new(AutoTouch),
    );
    let _ = old.process(&[0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0, 0x00, 0x00, 0x03, 0x08]);
    authenticate(&mut old, &DEFAULT_MANAGEMENT_KEY).expect("factory key");
    assert_eq!(tx(&mut old, 0xFF, 0xFF, 0xFF, &data).1, 0x6A80);
}

#[test]
fn generate_needs_the_management_key_and_checks_its_input() {
    let mut k = key();
    let template = [0xAC, 0x03, 0x80, 0x01, 0x11];
    assert_eq!(tx(&mut k, 0x47, 0x00, 0x9A, &template).1, 0x6982);
    authenticate(&mut k, &DEFAULT_MANAGEMENT_KEY).expect("factory key");
    assert_eq!(
        tx(&mut k, 0x47, 0x00, 0x9B, &template).1,
        0x6B00,
        "not a key slot"
    );
    assert_eq!(
        tx(&mut k, 0x47, 0x00, 0x9A, &[0xAC, 0x03, 0x80, 0x01, 0x07]).1,
        0x6A80,
        "RSA2048 is not emulated"
    );
    assert_eq!(
        tx(
            &mut k,
            0x47,
            0x00,
            0x9A,
            &[0xAC, 0x06, 0x80, 0x01, 0x11, 0xAA, 0x01, 0x07]
        )
        .1,
        0x6A80,
        "no PIN policy 7"
    );
    assert_eq!(tx(&mut k, 0x47, 0x00, 0x9A, &[0xAC, 0x05, 0x80]).1, 0x6A80);
    let (r, s) = tx(&mut k, 0x47, 0x00, 0x9A, &template);
    assert_eq!(s, 0x9000);
    assert_eq!(&r[..5], &[0x7F, 0x49, 0x43, 0x86, 0x41]);
    // The slot's metadata: P-256, the slot's default policies (9A: PIN once, touch never),
    // generated, the same public key.
    let (meta, s) = tx(&mut k, 0xF7, 0x00, 0x9A, &[]);
    assert_eq!(s, 0x9000);
    let tags = tlv::parse(&meta).expect("TLV");
    assert_eq!(tlv::find(&tags, 0x01), Some(&[0x11][..]));
    assert_eq!(tlv::find(&tags, 0x02), Some(&[0x02, 0x01][..]));
    assert_eq!(tlv::find(&tags, 0x03), Some(&[0x01][..]));
    assert_eq!(tlv::find(&tags, 0x04), Some(&r[3..]));
}

#[test]
fn sign_honours_the_pin_policy() {
    let mut k = key();
    authenticate(&mut k, &DEFAULT_MANAGEMENT_KEY).expect("factory key");
    let once = generate(&mut k, 0x9A, 0x02, 0x01);
    let always = generate(&mut k, 0x9C, 0x03, 0x01);
    let never = generate(&mut k, 0x9E, 0x01, 0x01);
    assert_eq!(
        sign(&mut k, 0x9A, b"m"),
        Err(0x6982),
        "PIN once: not verified"
    );
    assert_eq!(
        sign(&mut k, 0x9C, b"m"),
        Err(0x6982),
        "PIN always: not verified"
    );
    let sig = sign(&mut k, 0x9E, b"never").expect("PIN never");
    assert_signs(&never, b"never", &sig);
    assert_eq!(verify(&mut k, DEFAULT_PIN), 0x9000);
    for _ in 0..2 {
        let sig = sign(&mut k, 0x9A, b"approval").expect("once: verified this session");
        assert_signs(&once, b"approval", &sig);
    }
    let sig = sign(&mut k, 0x9C, b"always").expect("always: verified just before");
    assert_signs(&always, b"always", &sig);
    assert_eq!(sign(&mut k, 0x9C, b"again"), Err(0x6982), "always: spent");
    assert_eq!(verify(&mut k, DEFAULT_PIN), 0x9000);
    sign(&mut k, 0x9C, b"again").expect("verified again");
    // A wrong algorithm, an empty slot, a digest longer than the key.
    let digest = [0u8; 33];
    let mut data = vec![0x7C, 0x25, 0x82, 0x00, 0x81, 0x21];
    data.extend_from_slice(&digest);
    assert_eq!(tx(&mut k, 0x87, 0x11, 0x9A, &data).1, 0x6A80);
    assert_eq!(tx(&mut k, 0x87, 0x14, 0x9A, &data).1, 0x6A80);
    assert_eq!(sign(&mut k, 0x9D, b"m"), Err(0x6A80), "empty slot");
    // Power off forgets the verification; the key stays.
    k.power_off();
    k.power_on();
    let _ = k.process(&[0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0, 0x00, 0x00, 0x03, 0x08]);
    assert_eq!(sign(&mut k, 0x9A, b"m"), Err(0x6982));
    assert_eq!(verify(&mut k, DEFAULT_PIN), 0x9000);
    assert_signs(&once, b"m", &sign(&mut k, 0x9A, b"m").expect("signed"));
}

#[test]
fn p384_keys_generate_sign_import_and_attest() {
    use ring::signature::ECDSA_P384_SHA384_ASN1;
    let mut k = key();
    authenticate(&mut k, &DEFAULT_MANAGEMENT_KEY).expect("factory key");
    let (r, s) = tx(&mut k, 0x47, 0x00, 0x9E, &[0xAC, 0x03, 0x80, 0x01, 0x14]);
    assert_eq!(s, 0x9000);
    assert_eq!(
        &r[..5],
        &[0x7F, 0x49, 0x63, 0x86, 0x61],
        "7F49 {{ 86 <97 bytes> }}"
    );
    let point = r[5..].to_vec();
    let digest = ring::digest::digest(&ring::digest::SHA384, b"p384");
    let mut data = vec![0x7C, 0x34, 0x82, 0x00, 0x81, 0x30];
    data.extend_from_slice(digest.as_ref());
    assert_eq!(
        tx(&mut k, 0x87, 0x11, 0x9E, &data).1,
        0x6A80,
        "P-256 algorithm byte"
    );
    let (r, s) = tx(&mut k, 0x87, 0x14, 0x9E, &data);
    assert_eq!(s, 0x9000, "9E: PIN never by default");
    let outer = tlv::parse(&r).expect("TLV");
    let inner = tlv::parse(tlv::find(&outer, 0x7C).expect("7C")).expect("TLV");
    UnparsedPublicKey::new(&ECDSA_P384_SHA384_ASN1, &point)
        .verify(b"p384", tlv::find(&inner, 0x82).expect("82"))
        .expect("the P-384 signature verifies");
    let (der, s) = tx(&mut k, 0xF9, 0x9E, 0x00, &[]);
    assert_eq!(s, 0x9000);
    let att = Certificate::from_der(&der).expect("certificate");
    assert_eq!(spki_point(&att), point);
    assert_eq!(
        att.tbs_certificate
            .subject_public_key_info
            .algorithm
            .parameters
            .as_ref()
            .map(|p| p.to_der().expect("der")),
        Some(vec![0x06, 0x05, 0x2B, 0x81, 0x04, 0x00, 0x22]),
        "secp384r1"
    );
    let scalar = crate::emulator::piv::keys::generate(0x14).expect("key");
    let mut data = vec![0x06, 0x30];
    data.extend_from_slice(&scalar);
    assert_eq!(
        tx(&mut k, 0xFE, 0x14, 0x9D, &data).1,
        0x9000,
        "IMPORT P-384"
    );
    assert_eq!(
        tx(&mut k, 0xFE, 0x11, 0x9D, &data).1,
        0x6A80,
        "48 bytes for P-256"
    );
}

#[test]
fn touch_policy_waits_for_a_touch() {
    let touches = Arc::new(AtomicUsize::new(0));
    let mut k = device(Box::new(CountTouch(touches.clone(), true)));
    authenticate(&mut k, &DEFAULT_MANAGEMENT_KEY).expect("factory key");
    let point = generate(&mut k, 0x9E, 0x01, 0x02);
    generate(&mut k, 0x9D, 0x01, 0x03);
    assert_eq!(
        touches.load(Ordering::SeqCst),
        0,
        "generating needs no touch"
    );
    assert_signs(&point, b"a", &sign(&mut k, 0x9E, b"a").expect("touched"));
    sign(&mut k, 0x9E, b"b").expect("touched");
    assert_eq!(
        touches.load(Ordering::SeqCst),
        2,
        "always: one touch per signature"
    );
    sign(&mut k, 0x9D, b"a").expect("touched");
    sign(&mut k, 0x9D, b"b").expect("cached");
    assert_eq!(
        touches.load(Ordering::SeqCst),
        3,
        "cached: one touch for both"
    );

    let denied = Arc::new(AtomicUsize::new(0));
    let mut k = device(Box::new(CountTouch(denied.clone(), false)));
    authenticate(&mut k, &DEFAULT_MANAGEMENT_KEY).expect("factory key");
    generate(&mut k, 0x9E, 0x01, 0x02);
    assert_eq!(sign(&mut k, 0x9E, b"a"), Err(0x6982), "nobody touched");
    assert_eq!(denied.load(Ordering::SeqCst), 1);
}

fn spki_point(cert: &Certificate) -> Vec<u8> {
    cert.tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .raw_bytes()
        .to_vec()
}

fn assert_issued_by(cert: &Certificate, issuer_point: &[u8]) {
    let tbs = cert.tbs_certificate.to_der().expect("tbs");
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, issuer_point)
        .verify(&tbs, cert.signature.raw_bytes())
        .expect("the certificate's signature verifies with its issuer's key");
}

fn extension<'a>(cert: &'a Certificate, oid: &str) -> &'a [u8] {
    cert.tbs_certificate
        .extensions
        .as_ref()
        .and_then(|e| e.iter().find(|x| x.extn_id.to_string() == oid))
        .map(|x| x.extn_value.as_bytes())
        .unwrap_or_else(|| panic!("extension {oid}"))
}

#[test]
fn attest_chains_to_the_test_ca_with_yubico_extensions() {
    let mut k = key();
    authenticate(&mut k, &DEFAULT_MANAGEMENT_KEY).expect("factory key");
    let point = generate(&mut k, 0x9A, 0x03, 0x02);
    let (der, s) = tx(&mut k, 0xF9, 0x9A, 0x00, &[]);
    assert_eq!(s, 0x9000);
    let att = Certificate::from_der(&der).expect("ATTEST answers a DER certificate");
    assert_eq!(spki_point(&att), point, "the slot's public key");
    assert_eq!(
        att.tbs_certificate.subject.to_string(),
        "CN=YubiKey PIV Attestation 9a"
    );
    assert_eq!(extension(&att, "1.3.6.1.4.1.41482.3.3"), [5, 4, 3]);
    assert_eq!(
        extension(&att, "1.3.6.1.4.1.41482.3.7"),
        SERIAL.to_der().expect("INTEGER")
    );
    assert_eq!(extension(&att, "1.3.6.1.4.1.41482.3.8"), [0x03, 0x02]);
    assert_eq!(
        extension(&att, "1.3.6.1.4.1.41482.3.9"),
        [FormFactor::UsbAKeychain.to_byte()]
    );
    assert_eq!(att.tbs_certificate.serial_number.as_bytes().len(), 16);

    // The F9 certificate, read as tools read it (GET DATA 5FFF01, `53 { 70 <cert> ... }`).
    let (obj, s) = tx(&mut k, 0xCB, 0x3F, 0xFF, &[0x5C, 0x03, 0x5F, 0xFF, 0x01]);
    assert_eq!(s, 0x9000);
    let outer = tlv::parse(&obj).expect("TLV");
    let inner = tlv::parse(tlv::find(&outer, 0x53).expect("53")).expect("TLV");
    let f9 = Certificate::from_der(tlv::find(&inner, 0x70).expect("70")).expect("F9 cert");
    assert_eq!(att.tbs_certificate.issuer, f9.tbs_certificate.subject);
    assert_eq!(att.tbs_certificate.validity, f9.tbs_certificate.validity);
    assert_issued_by(&att, &spki_point(&f9));

    let ca = <Certificate as der::DecodePem>::from_pem(attest::TEST_CA_CERT_PEM).expect("CA");
    assert_eq!(f9.tbs_certificate.issuer, ca.tbs_certificate.subject);
    assert_issued_by(&f9, &spki_point(&ca));
    // The F9 metadata names the same key.
    let (meta, _) = tx(&mut k, 0xF7, 0x00, 0xF9, &[]);
    let tags = tlv::parse(&meta).expect("TLV");
    assert_eq!(
        tlv::find(&tags, 0x04).map(|v| v[2..].to_vec()),
        Some(spki_point(&f9))
    );
    // The same serial presents the same F9 certificate; another serial another key.
    let again = attest::Attestation::for_device(SERIAL).expect("identity");
    assert_eq!(again.certificate(), f9.to_der().expect("der"));
    let other = attest::Attestation::for_device(SERIAL + 1).expect("identity");
    assert_ne!(other.public().expect("point"), spki_point(&f9));
}

#[test]
fn only_generated_keys_are_attested() {
    let mut k = key();
    assert_eq!(tx(&mut k, 0xF9, 0x9A, 0x00, &[]).1, 0x6A88, "empty slot");
    assert_eq!(
        tx(&mut k, 0xF9, 0x9B, 0x00, &[]).1,
        0x6B00,
        "not a key slot"
    );
    authenticate(&mut k, &DEFAULT_MANAGEMENT_KEY).expect("factory key");
    let scalar = crate::emulator::piv::keys::generate(0x11).expect("key");
    let mut data = vec![0x06, 0x20];
    data.extend_from_slice(&scalar);
    assert_eq!(tx(&mut k, 0xFE, 0x11, 0x9D, &data).1, 0x9000, "IMPORT");
    assert_eq!(tx(&mut k, 0xF9, 0x9D, 0x00, &[]).1, 0x6A80, "imported");
    let (meta, _) = tx(&mut k, 0xF7, 0x00, 0x9D, &[]);
    let tags = tlv::parse(&meta).expect("TLV");
    assert_eq!(tlv::find(&tags, 0x03), Some(&[0x02][..]), "origin imported");
}

#[test]
fn data_objects_need_the_management_key_to_write() {
    let mut k = key();
    let chuid = [0x5C, 0x03, 0x5F, 0xC1, 0x02];
    assert_eq!(tx(&mut k, 0xCB, 0x3F, 0xFF, &chuid).1, 0x6A82, "absent");
    assert_eq!(
        tx(&mut k, 0xCB, 0x3F, 0xFF, &[0x5C, 0x03, 0x5F, 0xC1, 0x05]).1,
        0x6A82
    );
    let mut put = chuid.to_vec();
    put.extend_from_slice(&[0x53, 0x04, 0x30, 0x02, 0xAB, 0xCD]);
    assert_eq!(tx(&mut k, 0xDB, 0x3F, 0xFF, &put).1, 0x6982);
    authenticate(&mut k, &DEFAULT_MANAGEMENT_KEY).expect("factory key");
    assert_eq!(tx(&mut k, 0xDB, 0x3F, 0xFF, &put).1, 0x9000);
    assert!(k.piv_state_changed());
    assert_eq!(
        tx(&mut k, 0xCB, 0x3F, 0xFF, &chuid),
        (vec![0x53, 0x04, 0x30, 0x02, 0xAB, 0xCD], 0x9000)
    );
    // A certificate longer than one response comes back in 61xx chunks.
    let big = vec![0x5A; 1200];
    let mut put = vec![0x5C, 0x03, 0x5F, 0xC1, 0x05, 0x53, 0x82, 0x04, 0xB0];
    put.extend_from_slice(&big);
    assert_eq!(tx(&mut k, 0xDB, 0x3F, 0xFF, &put).1, 0x9000);
    let (r, s) = tx(&mut k, 0xCB, 0x3F, 0xFF, &[0x5C, 0x03, 0x5F, 0xC1, 0x05]);
    assert_eq!(s, 0x9000);
    assert_eq!(&r[4..], big.as_slice());
    // Discovery; a PIN-protected object; a malformed request; a wrong P1P2.
    let (r, s) = tx(&mut k, 0xCB, 0x3F, 0xFF, &[0x5C, 0x01, 0x7E]);
    assert_eq!(s, 0x9000);
    assert_eq!(&r[..2], &[0x7E, 0x12]);
    assert_eq!(
        tx(&mut k, 0xCB, 0x3F, 0xFF, &[0x5C, 0x03, 0x5F, 0xC1, 0x09]).1,
        0x6982,
        "printed information needs the PIN"
    );
    assert_eq!(tx(&mut k, 0xCB, 0x3F, 0xFF, &[0x5C, 0x05, 0x5F]).1, 0x6A80);
    assert_eq!(tx(&mut k, 0xCB, 0x3F, 0xFE, &chuid).1, 0x6A86);
}

#[test]
fn metadata_of_pin_puk_and_management_key() {
    let mut k = key();
    assert_eq!(
        tx(&mut k, 0xF7, 0x00, 0x80, &[]),
        (
            vec![0x01, 0x01, 0xFF, 0x05, 0x01, 0x01, 0x06, 0x02, 0x03, 0x03],
            0x9000
        )
    );
    verify(&mut k, b"000000");
    assert_eq!(
        tx(&mut k, 0xF7, 0x00, 0x80, &[]).0,
        vec![0x01, 0x01, 0xFF, 0x05, 0x01, 0x01, 0x06, 0x02, 0x03, 0x02]
    );
    assert_eq!(
        tx(&mut k, 0xF7, 0x00, 0x9B, &[]),
        (
            vec![0x01, 0x01, 0x03, 0x02, 0x02, 0x00, 0x01, 0x05, 0x01, 0x01],
            0x9000
        )
    );
    assert_eq!(tx(&mut k, 0xF7, 0x00, 0x9A, &[]).1, 0x6A88, "empty slot");
    // Firmware before 5.3 has no GET METADATA.
    let mut old = SoftKey::new(
        1,
        [5, 2, 7],
        FormFactor::UsbAKeychain,
        OathState::fresh(),
        Box::new(AutoTouch),
    );
    let _ = old.process(&[0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0, 0x00, 0x00, 0x03, 0x08]);
    assert_eq!(tx(&mut old, 0xF7, 0x00, 0x80, &[]).1, 0x6D00);
}

#[test]
fn state_survives_a_restart_and_secrets_stay_out_of_debug() {
    let mut k = key();
    authenticate(&mut k, &DEFAULT_MANAGEMENT_KEY).expect("factory key");
    let point = generate(&mut k, 0x9A, 0x01, 0x01);
    let saved = serde_json::to_string(k.piv_state()).expect("serde");
    let back: state::PivState = serde_json::from_str(&saved).expect("serde");
    let mut k2 = key().with_piv_state(back);
    assert_signs(&point, b"x", &sign(&mut k2, 0x9A, b"x").expect("same key"));

    let secret = data_encoding::HEXLOWER.encode(k.piv_state().keys[0].secret.expose());
    let mgm = data_encoding::HEXLOWER.encode(&DEFAULT_MANAGEMENT_KEY);
    for text in [
        format!("{:?}", k.piv_state()),
        format!("{k:?}"),
        format!(
            "{:?}",
            attest::Attestation::for_device(SERIAL).expect("identity")
        ),
    ] {
        assert!(!text.contains(&secret), "private key in Debug: {text}");
        assert!(!text.contains(&mgm), "management key in Debug: {text}");
        assert!(
            !text.contains("123456") && !text.contains("12345678"),
            "PIN in {text}"
        );
        assert!(!text.contains("49, 50, 51"), "PIN bytes in {text}");
    }
}

#[test]
fn reset_needs_pin_and_puk_blocked() {
    let mut k = key();
    authenticate(&mut k, &DEFAULT_MANAGEMENT_KEY).expect("factory key");
    generate(&mut k, 0x9A, 0x01, 0x01);
    assert_eq!(tx(&mut k, 0xFB, 0x00, 0x00, &[]).1, 0x6985);
    for _ in 0..3 {
        verify(&mut k, b"000000");
    }
    let mut data = padded(b"00000000");
    data.extend(padded(b"00000000"));
    for _ in 0..3 {
        tx(&mut k, 0x2C, 0x00, 0x80, &data);
    }
    assert_eq!(tx(&mut k, 0xFB, 0x00, 0x00, &[]).1, 0x9000);
    assert_eq!(verify(&mut k, DEFAULT_PIN), 0x9000, "factory PIN");
    assert_eq!(tx(&mut k, 0xF7, 0x00, 0x9A, &[]).1, 0x6A88, "keys erased");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Arbitrary command sequences to the selected PIV applet always get a status word.
    #[test]
    fn arbitrary_apdus_never_panic(cmds in proptest::collection::vec(
        (prop_oneof![Just(0x20u8), Just(0x24), Just(0x2C), Just(0x47), Just(0x87), Just(0xCB),
            Just(0xDB), Just(0xF7), Just(0xF9), Just(0xFA), Just(0xFB), Just(0xFE), Just(0xFF),
            any::<u8>()],
         any::<u8>(), any::<u8>(), proptest::collection::vec(any::<u8>(), 0..80)), 1..12)) {
        let mut k = key();
        for (ins, p1, p2, data) in cmds {
            let (_, s) = tx(&mut k, ins, p1, p2, &data);
            prop_assert!(s >> 8 != 0x61);
        }
    }
}
