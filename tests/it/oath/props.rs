//! Property tests: OATH messages round-trip between the client's encoders and the applet-side
//! decoders, parsers never panic on arbitrary bytes, and the applet never panics on arbitrary
//! commands.
#![allow(clippy::unwrap_used)]

use mfa_custody::emulator::oath::{AutoTouch, OathApplet, OathCard, OathState};
use mfa_custody::token::apdu::Command;
use mfa_custody::token::oath::{
    self, AccessKey, CalculateAllEntry, CalculateOutcome, Code, CredentialName, Digits,
    FullResponse, HashAlgorithm, ListEntry, OathSecret, OathType, PutRequest, SelectInfo,
    SetCodeRequest, Version,
};
use proptest::prelude::*;
use zeroize::Zeroizing;

fn oath_type() -> impl Strategy<Value = OathType> {
    prop_oneof![Just(OathType::Hotp), Just(OathType::Totp)]
}

fn algorithm() -> impl Strategy<Value = HashAlgorithm> {
    prop_oneof![
        Just(HashAlgorithm::Sha1),
        Just(HashAlgorithm::Sha256),
        Just(HashAlgorithm::Sha512)
    ]
}

fn digits() -> impl Strategy<Value = Digits> {
    (6u8..=8).prop_map(|d| Digits::new(d).unwrap())
}

/// Any valid name: 1 to 64 bytes of UTF-8.
fn cred_name() -> impl Strategy<Value = CredentialName> {
    "\\PC{1,64}".prop_filter_map("too long", |s: String| CredentialName::parse(&s).ok())
}

fn put_request() -> impl Strategy<Value = PutRequest> {
    (
        cred_name(),
        oath_type(),
        algorithm(),
        digits(),
        any::<bool>(),
        any::<bool>(),
        any::<u32>(),
        prop::collection::vec(any::<u8>(), 14..=128),
    )
        .prop_map(|(name, t, alg, d, touch, increasing, counter, mut key)| {
            // Keys as a client sends them: at least 14 bytes, at most the block size.
            key.truncate(alg.block_size());
            PutRequest {
                name,
                oath_type: t,
                algorithm: alg,
                digits: d,
                secret: OathSecret::from_bytes(Zeroizing::new(key)),
                touch,
                increasing,
                counter: if t == OathType::Hotp { counter } else { 0 },
            }
        })
}

fn outcome() -> impl Strategy<Value = CalculateOutcome> {
    prop_oneof![
        (any::<u32>(), digits()).prop_map(|(v, d)| CalculateOutcome::Code(Code::from_value(v, d))),
        (digits(), algorithm(), any::<u8>()).prop_map(|(d, alg, b)| CalculateOutcome::Full(
            FullResponse {
                digits: d,
                hmac: OathSecret::from_bytes(Zeroizing::new(vec![b; alg.digest_len()])),
            }
        )),
        digits().prop_map(|digits| CalculateOutcome::Hotp { digits }),
        digits().prop_map(|digits| CalculateOutcome::TouchRequired { digits }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn put_round_trips(req in put_request()) {
        let decoded = PutRequest::decode(&req.encode()).unwrap();
        prop_assert_eq!(decoded, req);
    }

    #[test]
    fn put_is_accepted_by_the_applet(req in put_request()) {
        let mut applet = OathApplet::new(OathState::blank([0; 8]), [5, 4, 3], Box::new(AutoTouch));
        applet.select();
        prop_assert!(applet.process(&req.command()).sw.is_success());
        let stored = &applet.state().credentials()[0];
        prop_assert_eq!(stored.name.as_str(), req.name.as_str());
        prop_assert_eq!(stored.oath_type, req.oath_type);
        prop_assert_eq!(stored.algorithm, req.algorithm);
        prop_assert_eq!(stored.digits, req.digits.get());
        prop_assert_eq!(stored.secret.expose(), req.secret.expose());
        prop_assert_eq!(stored.touch, req.touch);
        prop_assert_eq!(stored.counter, u64::from(req.counter));
    }

    #[test]
    fn list_round_trips(entries in prop::collection::vec((cred_name(), oath_type(), algorithm()), 0..40)) {
        let entries: Vec<ListEntry> = entries
            .into_iter()
            .map(|(name, oath_type, algorithm)| ListEntry { name, oath_type, algorithm })
            .collect();
        prop_assert_eq!(oath::parse_list(&oath::encode_list(&entries)).unwrap(), entries);
    }

    #[test]
    fn calculate_answers_round_trip(value in any::<u32>(), d in digits(), alg in algorithm(), b in any::<u8>()) {
        let mut t = Vec::new();
        oath::encode_truncated(&mut t, d, value);
        prop_assert_eq!(oath::parse_calculate_truncated(&t).unwrap(), Code::from_value(value, d));
        let hmac = vec![b; alg.digest_len()];
        let mut f = Vec::new();
        oath::encode_full(&mut f, d, &hmac);
        let full = oath::parse_calculate_full(&f).unwrap();
        prop_assert_eq!(full.digits, d);
        prop_assert_eq!(full.hmac.expose(), hmac.as_slice());
    }

    #[test]
    fn calculate_all_round_trips(entries in prop::collection::vec((cred_name(), outcome()), 0..20)) {
        let entries: Vec<CalculateAllEntry> = entries
            .into_iter()
            .map(|(name, outcome)| CalculateAllEntry { name, outcome })
            .collect();
        let bytes = oath::encode_calculate_all(&entries);
        prop_assert_eq!(oath::parse_calculate_all(&bytes).unwrap(), entries);
    }

    #[test]
    fn select_round_trips(v in any::<[u8; 3]>(), salt in any::<[u8; 8]>(), challenge in any::<Option<[u8; 8]>>(), alg in algorithm()) {
        let info = SelectInfo {
            version: Version::from(v),
            salt,
            challenge,
            algorithm: challenge.map(|_| alg),
        };
        prop_assert_eq!(oath::parse_select(&info.encode()).unwrap(), info);
    }

    #[test]
    fn set_code_round_trips(key in any::<[u8; 16]>(), challenge in any::<[u8; 8]>()) {
        let key = AccessKey::from_bytes(key);
        let cmd = oath::set_code(&key, &challenge);
        match SetCodeRequest::decode(&cmd.data).unwrap() {
            SetCodeRequest::Set { algorithm, key: k, challenge: c, response } => {
                prop_assert_eq!(algorithm, HashAlgorithm::Sha1);
                prop_assert_eq!(k.expose(), key.expose().as_slice());
                prop_assert_eq!(c, challenge.to_vec());
                let expected = key.respond(HashAlgorithm::Sha1, &challenge);
                prop_assert_eq!(response.expose(), expected.as_slice());
            }
            SetCodeRequest::Remove => prop_assert!(false, "decoded as remove"),
        }
    }

    #[test]
    fn names_round_trip(name in cred_name()) {
        let again = CredentialName::parse(&name.to_string()).unwrap();
        prop_assert_eq!(&again, &name);
        prop_assert_eq!(CredentialName::from_bytes(name.as_bytes()).unwrap(), name);
    }

    #[test]
    fn name_parts_round_trip(
        t in oath_type(),
        period in 1u32..100_000,
        issuer in proptest::option::of("[^:]{1,20}"),
        account in "\\PC{1,30}",
    ) {
        if let Ok(name) = CredentialName::build(t, period, issuer.as_deref(), &account) {
            let parts = name.parts(t);
            prop_assert_eq!(parts.period, (t == OathType::Totp).then_some(period));
            prop_assert_eq!(parts.issuer, issuer.as_deref());
            prop_assert_eq!(parts.account, account.as_str());
            prop_assert_eq!(CredentialName::parse(name.as_str()).unwrap(), name);
        }
    }

    #[test]
    fn parsers_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = oath::parse_select(&bytes);
        let _ = oath::parse_list(&bytes);
        let _ = oath::parse_calculate_truncated(&bytes);
        let _ = oath::parse_calculate_full(&bytes);
        let _ = oath::parse_calculate_all(&bytes);
        let _ = oath::verify_validate(&AccessKey::from_bytes([0; 16]), HashAlgorithm::Sha1, &[0; 8], &bytes);
        let _ = PutRequest::decode(&bytes);
        let _ = SetCodeRequest::decode(&bytes);
        let _ = oath::ValidateRequest::decode(&bytes);
        let _ = oath::CalculateRequest::decode(&bytes);
        let _ = oath::decode_names("RENAME", &bytes);
        let _ = CredentialName::from_bytes(&bytes);
        let _ = oath::dynamic_truncate(&bytes);
    }

    #[test]
    fn applet_never_panics_on_raw_bytes(
        locked in any::<bool>(),
        commands in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 1..8),
    ) {
        let mut card = OathCard::new(
            OathApplet::new(locked_state(locked), [5, 4, 3], Box::new(AutoTouch)),
            "fuzz",
        );
        let select = oath::select().to_bytes(mfa_custody::token::apdu::LengthForm::Auto).unwrap();
        card.answer(&select);
        for c in commands {
            let _ = card.answer(&c);
        }
    }

    #[test]
    fn applet_never_panics_on_structured_commands(
        locked in any::<bool>(),
        commands in prop::collection::vec(
            (prop::sample::select(vec![0x01u8, 0x02, 0x03, 0x04, 0x05, 0xA1, 0xA2, 0xA3, 0xA4, 0xA5]),
             any::<u8>(), any::<u8>(), tlv_soup()),
            1..12),
    ) {
        let mut applet = OathApplet::new(locked_state(locked), [5, 4, 3], Box::new(AutoTouch));
        applet.select();
        for (ins, p1, p2, data) in commands {
            let p1 = if p1 & 1 == 0 { 0 } else { p1 };
            let p2 = if p2 & 1 == 0 { p2 & 1 } else { p2 };
            let _ = applet.process(&Command::new(0, ins, p1, p2).with_data(data));
            let _ = applet.state_changed();
        }
    }
}

/// Data made of OATH tags with plausible lengths, to get past the first checks.
fn tlv_soup() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        (
            prop::sample::select(vec![0x71u8, 0x72, 0x73, 0x74, 0x75, 0x78, 0x7A, 0x7B]),
            prop::collection::vec(any::<u8>(), 0..80),
        ),
        0..5,
    )
    .prop_map(|items| {
        let mut out = Vec::new();
        for (tag, value) in items {
            if tag == 0x78 {
                out.extend_from_slice(&[tag, value.first().copied().unwrap_or(0)]);
            } else {
                let _ = mfa_custody::token::tlv::write(&mut out, tag, &value);
            }
        }
        out
    })
}

fn locked_state(locked: bool) -> OathState {
    let mut credentials = Vec::new();
    let mut card = OathCard::new(
        OathApplet::new(OathState::blank([0; 8]), [5, 4, 3], Box::new(AutoTouch)),
        "setup",
    );
    let mut s = match oath::OathSession::select(&mut card).unwrap() {
        oath::Selected::Ready(s) => s,
        oath::Selected::Locked(_) => unreachable!(),
    };
    for (i, t) in [OathType::Totp, OathType::Hotp].into_iter().enumerate() {
        s.put(&PutRequest {
            oath_type: t,
            touch: i == 0,
            increasing: true,
            ..PutRequest::totp(
                CredentialName::parse(&format!("c{i}")).unwrap(),
                OathSecret::from_bytes(Zeroizing::new(vec![1; 20])),
            )
        })
        .unwrap();
    }
    credentials.extend_from_slice(card.applet().state().credentials());
    let key = AccessKey::from_bytes([9; 16]);
    OathState::with_credentials([0; 8], locked.then_some(&key), credentials, 4)
}
