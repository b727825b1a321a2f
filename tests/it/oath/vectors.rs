//! RFC 4226 and RFC 6238 known answers through the applet's CALCULATE and the client session,
//! and a cross-check of both against `oathtool` on random secrets, times and hashes.
#![allow(clippy::unwrap_used)]

use std::process::Command as Process;

use mfa_custody::emulator::oath::{AutoTouch, OathApplet, OathCard, OathState};
use mfa_custody::token::apdu::{Command, StatusWord};
use mfa_custody::token::oath::{
    self, CredentialName, Digits, HashAlgorithm, OathSecret, OathSession, OathType, PutRequest,
    Selected, TimeStep,
};
use zeroize::Zeroizing;

use crate::support::rng::Rng;

const RFC4226: [&str; 10] = [
    "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871",
    "520489",
];

const SEED_SHA1: &[u8] = b"12345678901234567890";
const SEED_SHA256: &[u8] = b"12345678901234567890123456789012";
const SEED_SHA512: &[u8] = b"1234567890123456789012345678901234567890123456789012345678901234";

/// RFC 6238 appendix B: time, SHA-1, SHA-256, SHA-512 (8 digits, 30 s).
const RFC6238: [(u64, &str, &str, &str); 6] = [
    (59, "94287082", "46119246", "90693936"),
    (1_111_111_109, "07081804", "68084774", "25091201"),
    (1_111_111_111, "14050471", "67062674", "99943326"),
    (1_234_567_890, "89005924", "91819424", "93441116"),
    (2_000_000_000, "69279037", "90698825", "38618901"),
    (20_000_000_000, "65353130", "77737706", "47863826"),
];

fn secret(bytes: &[u8]) -> OathSecret {
    OathSecret::from_bytes(Zeroizing::new(bytes.to_vec()))
}

fn name(s: &str) -> CredentialName {
    CredentialName::parse(s).unwrap()
}

fn new_card() -> OathCard {
    OathCard::new(
        OathApplet::new(OathState::blank([0; 8]), [5, 4, 3], Box::new(AutoTouch)),
        "vectors",
    )
}

fn session(card: &mut OathCard) -> OathSession<&mut OathCard> {
    match OathSession::select(card).unwrap() {
        Selected::Ready(s) => s,
        Selected::Locked(_) => panic!("locked"),
    }
}

fn cred(n: &str, t: OathType, alg: HashAlgorithm, digits: u8, seed: &[u8]) -> PutRequest {
    PutRequest {
        oath_type: t,
        algorithm: alg,
        digits: Digits::new(digits).unwrap(),
        ..PutRequest::totp(name(n), secret(seed))
    }
}

#[test]
fn rfc4226_through_the_client_session() {
    let mut c = new_card();
    let mut s = session(&mut c);
    let req = cred("hotp", OathType::Hotp, HashAlgorithm::Sha1, 6, SEED_SHA1);
    s.put(&req).unwrap();
    for want in RFC4226 {
        assert_eq!(s.calculate_hotp(&req.name).unwrap().as_str(), want);
    }
}

#[test]
fn rfc4226_through_the_applet_directly() {
    let mut applet = OathApplet::new(OathState::blank([0; 8]), [5, 4, 3], Box::new(AutoTouch));
    applet.select();
    let put = cred("hotp", OathType::Hotp, HashAlgorithm::Sha1, 6, SEED_SHA1).command();
    assert_eq!(applet.process(&put).sw, StatusWord::Success);
    for want in RFC4226 {
        let r = applet.process(&oath::calculate(&name("hotp"), &[], true));
        assert_eq!(r.sw, StatusWord::Success);
        assert_eq!(r.data.len(), 7);
        assert_eq!(
            oath::parse_calculate_truncated(&r.data).unwrap().as_str(),
            want
        );
    }
    // The HOTP counter starts at the IMF.
    let mut put = cred("imf", OathType::Hotp, HashAlgorithm::Sha1, 6, SEED_SHA1);
    put.counter = 7;
    assert_eq!(applet.process(&put.command()).sw, StatusWord::Success);
    let r = applet.process(&oath::calculate(&name("imf"), &[], true));
    assert_eq!(
        oath::parse_calculate_truncated(&r.data).unwrap().as_str(),
        RFC4226[7]
    );
}

#[test]
fn rfc6238_all_hashes_six_and_eight_digits() {
    let mut c = new_card();
    let mut s = session(&mut c);
    let algs = [
        (HashAlgorithm::Sha1, SEED_SHA1),
        (HashAlgorithm::Sha256, SEED_SHA256),
        (HashAlgorithm::Sha512, SEED_SHA512),
    ];
    for (alg, seed) in algs {
        for digits in [6u8, 8] {
            let n = format!("{alg:?}-{digits}");
            s.put(&cred(&n, OathType::Totp, alg, digits, seed)).unwrap();
        }
    }
    for (t, sha1, sha256, sha512) in RFC6238 {
        let step = TimeStep(t / 30);
        for (alg, want8) in [
            (HashAlgorithm::Sha1, sha1),
            (HashAlgorithm::Sha256, sha256),
            (HashAlgorithm::Sha512, sha512),
        ] {
            let eight = s
                .calculate_totp(&name(&format!("{alg:?}-8")), step)
                .unwrap();
            assert_eq!(eight.as_str(), want8, "{alg:?} at {t}");
            let six = s
                .calculate_totp(&name(&format!("{alg:?}-6")), step)
                .unwrap();
            assert_eq!(six.as_str(), &want8[2..], "{alg:?} at {t}");
            // The full answer truncates to the same code.
            let full = s
                .calculate_full(&name(&format!("{alg:?}-8")), &step.challenge())
                .unwrap();
            assert_eq!(full.hmac.len(), alg.digest_len());
            assert_eq!(full.code().as_str(), want8);
        }
        // CALCULATE ALL answers the same codes.
        let all = s.calculate_all(step).unwrap();
        for e in all {
            if let oath::CalculateOutcome::Code(code) = e.outcome {
                let want = match e.name.as_str() {
                    "Sha1-8" => sha1.to_owned(),
                    "Sha256-8" => sha256.to_owned(),
                    "Sha512-8" => sha512.to_owned(),
                    "Sha1-6" => sha1[2..].to_owned(),
                    "Sha256-6" => sha256[2..].to_owned(),
                    _ => sha512[2..].to_owned(),
                };
                assert_eq!(code.as_str(), want, "{} at {t}", e.name);
            } else {
                panic!("{:?}", e.outcome);
            }
        }
    }
}

#[test]
fn rfc_vectors_of_the_pure_functions() {
    for (counter, want) in RFC4226.iter().enumerate() {
        let code = oath::hotp(
            &secret(SEED_SHA1),
            HashAlgorithm::Sha1,
            counter as u64,
            Digits::SIX,
        );
        assert_eq!(code.as_str(), *want);
    }
    for (t, sha1, _, sha512) in RFC6238 {
        let step = TimeStep(t / 30);
        assert_eq!(
            oath::totp(&secret(SEED_SHA1), HashAlgorithm::Sha1, step, Digits::EIGHT).as_str(),
            sha1
        );
        assert_eq!(
            oath::totp(
                &secret(SEED_SHA512),
                HashAlgorithm::Sha512,
                step,
                Digits::EIGHT
            )
            .as_str(),
            sha512
        );
    }
}

fn oathtool(args: &[String]) -> String {
    let out = match Process::new("oathtool").args(args).output() {
        Ok(o) => o,
        Err(e) => panic!("oathtool is not installed or not runnable ({e}): run `make deps`"),
    };
    assert!(
        out.status.success(),
        "oathtool {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn cross_check_with_oathtool() {
    let seed = 0x5EED_0A7B_u64;
    let mut rng = Rng::new(seed);
    let mut c = new_card();
    let mut s = session(&mut c);
    for case in 0..64 {
        // Secrets from 1 to 150 bytes: short ones get padded, long ones hashed by the client.
        let len = 1 + rng.below(150) as usize;
        let key = rng.bytes(len);
        let hex = data_encoding::HEXLOWER.encode(&key);
        let digits = 6 + rng.below(3) as u8;
        let n = format!("case-{case}");
        if case % 4 == 3 {
            // oathtool's HOTP is SHA-1 only.
            let counter = rng.below(1 << 20);
            let mut put = cred(&n, OathType::Hotp, HashAlgorithm::Sha1, digits, &key);
            put.counter = counter as u32;
            s.put(&put).unwrap();
            let got = s.calculate_hotp(&name(&n)).unwrap();
            let want = oathtool(&[
                "-c".into(),
                counter.to_string(),
                "-d".into(),
                digits.to_string(),
                hex.clone(),
            ]);
            assert_eq!(
                got.as_str(),
                want,
                "seed {seed:#x} case {case}: HOTP key {hex} counter {counter}"
            );
        } else {
            let (alg, mode) = match rng.below(3) {
                0 => (HashAlgorithm::Sha1, "SHA1"),
                1 => (HashAlgorithm::Sha256, "SHA256"),
                _ => (HashAlgorithm::Sha512, "SHA512"),
            };
            let t = rng.below(1 << 34);
            s.put(&cred(&n, OathType::Totp, alg, digits, &key)).unwrap();
            let got = s.calculate_totp(&name(&n), TimeStep(t / 30)).unwrap();
            let want = oathtool(&[
                format!("--totp={mode}"),
                "-d".into(),
                digits.to_string(),
                "-N".into(),
                format!("@{t}"),
                hex.clone(),
            ]);
            assert_eq!(
                got.as_str(),
                want,
                "seed {seed:#x} case {case}: TOTP {mode} key {hex} time {t}"
            );
            // The pure function agrees too.
            assert_eq!(
                oath::totp(
                    &secret(&key),
                    alg,
                    TimeStep(t / 30),
                    Digits::new(digits).unwrap()
                )
                .as_str(),
                want
            );
        }
        s.delete(&name(&n)).unwrap();
    }
}

#[test]
fn calculate_answers_have_the_yubikey_shapes() {
    let mut applet = OathApplet::new(OathState::blank([0; 8]), [5, 4, 3], Box::new(AutoTouch));
    applet.select();
    let put = cred("x", OathType::Totp, HashAlgorithm::Sha256, 6, SEED_SHA256).command();
    applet.process(&put);
    let full = applet.process(&oath::calculate(&name("x"), &[0; 8], false));
    // 75 21 06 <32 bytes>
    assert_eq!(full.data.get(..3), Some(&[0x75, 0x21, 0x06][..]));
    assert_eq!(full.data.len(), 35);
    let t = applet.process(&oath::calculate(&name("x"), &[0; 8], true));
    assert_eq!(t.data.get(..3), Some(&[0x76, 0x05, 0x06][..]));
    assert_eq!(t.data.get(3).map(|b| b & 0x80), Some(0));
    let all = applet
        .process(&Command::new(0, 0xA4, 0, 0).with_data(vec![0x74, 8, 0, 0, 0, 0, 0, 0, 0, 0]));
    assert_eq!(all.data.get(..5), Some(&[0x71, 0x01, b'x', 0x75, 0x21][..]));
}
