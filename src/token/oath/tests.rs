//! Known-answer vectors (RFC 4226, the access-key derivation, answers traced from a real
//! YubiKey) and the redaction of every secret carrier's `Debug`.

#![allow(clippy::unwrap_used)]
use zeroize::Zeroizing;

use super::*;

#[test]
fn access_key_vector() {
    let key = AccessKey::derive(&Password::from("foobar"), &[0u8; 8]);
    assert_eq!(
        data_encoding::HEXLOWER.encode(key.expose()),
        "b07da1e7de87f89a87a2b598eaa2188c"
    );
}

#[test]
fn parses_the_real_select_answer() {
    let data = [
        0x79, 0x03, 0x05, 0x02, 0x04, 0x71, 0x08, 0x4B, 0xB7, 0xA7, 0xFA, 0xD7, 0xAF, 0x40, 0x1B,
    ];
    let info = parse_select(&data).unwrap();
    assert_eq!(info.version.to_string(), "5.2.4");
    assert!(!info.locked());
    assert_eq!(info.encode(), data);
    assert_eq!(info.device_id().len(), 22);
}

#[test]
fn parses_the_real_list_answer() {
    let mut data = vec![0x72, 0x1B, 0x21];
    data.extend_from_slice(b"Microsoft:test@outlook.com");
    data.extend_from_slice(&[0x72, 0x16, 0x12]);
    data.extend_from_slice(b"Google:test@gmail.com");
    let list = parse_list(&data).unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].oath_type, OathType::Totp);
    assert_eq!(list[1].oath_type, OathType::Hotp);
    assert_eq!(list[1].algorithm, HashAlgorithm::Sha256);
    assert_eq!(list[1].name.parts(OathType::Hotp).issuer, Some("Google"));
    assert_eq!(encode_list(&list), data);
}

#[test]
fn parses_the_real_calculate_all_answer() {
    let mut data = vec![0x71, 0x1A];
    data.extend_from_slice(b"Microsoft:test@outlook.com");
    data.extend_from_slice(&[
        0x75, 0x15, 0x06, 0x8A, 0x9B, 0x0D, 0xF3, 0xD7, 0x18, 0x43, 0x96, 0x40, 0xA6, 0x58, 0x6F,
        0x89, 0xD4, 0x03, 0x1D, 0xC4, 0xC4, 0x9F, 0x6C, 0x71, 0x15,
    ]);
    data.extend_from_slice(b"Apple:test@icloud.com");
    data.extend_from_slice(&[0x77, 0x01, 0x06]);
    let all = parse_calculate_all(&data).unwrap();
    assert!(matches!(all[0].outcome, CalculateOutcome::Full(_)));
    assert_eq!(
        all[1].outcome,
        CalculateOutcome::Hotp {
            digits: Digits::SIX
        }
    );
    assert_eq!(encode_calculate_all(&all).as_slice(), data.as_slice());
}

#[test]
fn put_matches_the_real_trace() {
    // 5.2.4 trace: name, 73 10 21 06 9C 00.., 78 02.
    let mut name_key = vec![0x9C];
    name_key.resize(14, 0);
    let req = PutRequest {
        touch: true,
        ..PutRequest::totp(
            CredentialName::parse("Microsoft:test@outlook.com").unwrap(),
            OathSecret::from_bytes(Zeroizing::new(vec![0x9C])),
        )
    };
    let enc = req.encode();
    let mut want = vec![0x71, 0x1A];
    want.extend_from_slice(b"Microsoft:test@outlook.com");
    want.extend_from_slice(&[0x73, 0x10, 0x21, 0x06]);
    want.extend_from_slice(&name_key);
    want.extend_from_slice(&[0x78, 0x02]);
    assert_eq!(enc.as_slice(), want.as_slice());
}

#[test]
fn long_keys_are_hashed_and_short_keys_padded() {
    let long = OathSecret::from_bytes(Zeroizing::new(vec![7u8; 65]));
    let p = long.prepared(HashAlgorithm::Sha1);
    assert_eq!(p.len(), 20);
    // Same HMAC either way.
    let msg = 5u64.to_be_bytes();
    assert_eq!(
        hmac_digest(HashAlgorithm::Sha1, long.expose(), &msg),
        hmac_digest(HashAlgorithm::Sha1, p.expose(), &msg)
    );
    let long512 = OathSecret::from_bytes(Zeroizing::new(vec![7u8; 128]));
    assert_eq!(long512.prepared(HashAlgorithm::Sha512).len(), 128);
    let short = OathSecret::from_bytes(Zeroizing::new(vec![1u8; 3]));
    assert_eq!(short.prepared(HashAlgorithm::Sha256).len(), 14);
    assert_eq!(
        hmac_digest(HashAlgorithm::Sha256, short.expose(), &msg),
        hmac_digest(
            HashAlgorithm::Sha256,
            short.prepared(HashAlgorithm::Sha256).expose(),
            &msg
        )
    );
}

#[test]
fn credential_name_parts() {
    let n = CredentialName::parse("60/AWS:root@example").unwrap();
    let p = n.parts(OathType::Totp);
    assert_eq!(p.period, Some(60));
    assert_eq!(p.issuer, Some("AWS"));
    assert_eq!(p.account, "root@example");
    assert_eq!(n.parts(OathType::Hotp).issuer, Some("60/AWS"));
    let n = CredentialName::build(OathType::Totp, 30, Some("AWS"), "a@b").unwrap();
    assert_eq!(n.as_str(), "AWS:a@b");
    assert!(CredentialName::parse("").is_err());
    assert!(CredentialName::parse(&"x".repeat(65)).is_err());
    assert!(CredentialName::parse(&"x".repeat(64)).is_ok());
    assert!(matches!(
        CredentialName::build(OathType::Totp, 30, Some("a:b"), "c"),
        Err(OathError::AmbiguousName { .. })
    ));
    assert!(matches!(
        CredentialName::build(OathType::Totp, 30, None, "15/x"),
        Err(OathError::AmbiguousName { .. })
    ));
}

#[test]
fn rfc4226_vectors() {
    let secret = OathSecret::from_bytes(Zeroizing::new(b"12345678901234567890".to_vec()));
    let want = [
        "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871",
        "520489",
    ];
    for (counter, want) in want.iter().enumerate() {
        assert_eq!(
            hotp(&secret, HashAlgorithm::Sha1, counter as u64, Digits::SIX).as_str(),
            *want
        );
    }
}

#[test]
fn base32_secrets_as_providers_send_them() {
    let a = OathSecret::from_base32("gezd gnbv gy3t qojq").unwrap();
    let b = OathSecret::from_base32("GEZDGNBVGY3TQOJQ====").unwrap();
    assert_eq!(a, b);
    assert_eq!(a.expose(), b"1234567890");
    let e = OathSecret::from_base32("!!!!").unwrap_err();
    assert!(!e.to_string().contains("!!!!"));
}

/// Every form a leaked secret could take in Debug output.
fn leaks(debug: &str, secret: &[u8]) -> bool {
    let forms = [
        data_encoding::HEXUPPER.encode(secret),
        data_encoding::HEXLOWER.encode(secret),
        String::from_utf8_lossy(secret).into_owned(),
        format!("{secret:?}"),
        secret
            .iter()
            .map(|b| b.to_string())
            .collect::<Vec<_>>()
            .join(", "),
    ];
    forms
        .iter()
        .any(|f| !f.is_empty() && debug.contains(f.as_str()))
}

#[test]
fn secret_types_redact_debug() {
    let raw = b"SUPERSECRETSEED-0123456789".to_vec();
    let secret = OathSecret::from_bytes(Zeroizing::new(raw.clone()));
    let d = format!("{secret:?} {secret:#?}");
    assert!(!leaks(&d, &raw), "{d}");
    assert!(d.contains("redacted"));

    let password = Password::from("hunter2-correct-horse");
    let d = format!("{password:?}");
    assert!(!leaks(&d, b"hunter2-correct-horse"), "{d}");

    let key = AccessKey::derive(&password, &[7u8; 8]);
    let d = format!("{key:?}");
    assert!(!leaks(&d, key.expose()), "{d}");

    let code = Code::from_value(12_345_678, Digits::EIGHT);
    let d = format!("{code:?}");
    assert!(!d.contains("12345678"), "{d}");

    let full = FullResponse {
        digits: Digits::SIX,
        hmac: OathSecret::from_bytes(Zeroizing::new(vec![0xAB; 20])),
    };
    let d = format!("{full:?}");
    assert!(!leaks(&d, &[0xAB; 20]), "{d}");
}

#[test]
fn commands_carrying_secrets_redact_debug() {
    let raw = b"SUPERSECRETSEED-0123456789".to_vec();
    let put = PutRequest::totp(
        CredentialName::parse("AWS:root").unwrap(),
        OathSecret::from_bytes(Zeroizing::new(raw.clone())),
    )
    .command();
    assert!(put.sensitive);
    let d = format!("{put:?}");
    assert!(!leaks(&d, &raw), "{d}");
    // The encoded bytes do carry the key, so the check above is meaningful.
    assert!(leaks(&format!("{:?}", put.data.as_slice()), &raw));

    let key = AccessKey::derive(&Password::from("hunter2"), &[1u8; 8]);
    let set = set_code(&key, &[9u8; 8]);
    assert!(set.sensitive);
    let d = format!("{set:?}");
    assert!(!leaks(&d, key.expose()), "{d}");

    let val = validate(&key, HashAlgorithm::Sha1, &[3u8; 8], &[4u8; 8]);
    assert!(val.sensitive);
    let proof = key.respond(HashAlgorithm::Sha1, &[3u8; 8]);
    let d = format!("{val:?}");
    assert!(!leaks(&d, &proof), "{d}");
}
