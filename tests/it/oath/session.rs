//! The YKOATH client session against the emulator's OATH applet, in-process: every operation and
//! every refusal.
#![allow(clippy::unwrap_used)]

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use mfa_custody::emulator::oath::{
    AutoTouch, DenyTouch, OathApplet, OathCard, OathImage, OathImageError, OathState, TouchSource,
};
use mfa_custody::token::apdu::{Command, StatusWord};
use mfa_custody::token::oath::{
    self, AccessKey, CalculateOutcome, CredentialName, Digits, HashAlgorithm, OathSecret,
    OathSession, OathType, Password, PutRequest, Selected, TimeStep,
};
use mfa_custody::token::{CardTransport, TokenError, TransportError};
use zeroize::Zeroizing;

const READER: &str = "Yubico YubiKey OTP+FIDO+CCID 00 00";

fn card(state: OathState, touch: Box<dyn TouchSource + Send>) -> OathCard {
    OathCard::new(OathApplet::new(state, [5, 4, 3], touch), READER)
}

fn blank() -> OathCard {
    card(
        OathState::blank([1, 2, 3, 4, 5, 6, 7, 8]),
        Box::new(AutoTouch),
    )
}

fn name(s: &str) -> CredentialName {
    CredentialName::parse(s).unwrap()
}

fn secret(bytes: &[u8]) -> OathSecret {
    OathSecret::from_bytes(Zeroizing::new(bytes.to_vec()))
}

fn ready<T: CardTransport>(t: T) -> OathSession<T> {
    match OathSession::select(t).unwrap() {
        Selected::Ready(s) => s,
        Selected::Locked(_) => panic!("expected an unlocked applet"),
    }
}

fn refused_sw<V: std::fmt::Debug>(r: Result<V, TokenError>) -> StatusWord {
    match r {
        Err(TokenError::Refused { sw, reader, .. }) => {
            assert_eq!(reader, READER);
            sw
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// A transport shared between a session and the test, to act on the card behind the session's
/// back (power cycles, another host's SELECT).
#[derive(Clone)]
struct Shared(Rc<RefCell<OathCard>>);

impl CardTransport for Shared {
    fn transmit(&mut self, command: &[u8]) -> Result<Zeroizing<Vec<u8>>, TransportError> {
        self.0.borrow_mut().transmit(command)
    }
    fn reader(&self) -> &str {
        READER
    }
}

#[test]
fn select_reports_version_salt_and_device_id() {
    let mut c = blank();
    let s = ready(&mut c);
    assert_eq!(s.info().version.to_string(), "5.4.3");
    assert_eq!(s.info().salt, [1, 2, 3, 4, 5, 6, 7, 8]);
    assert!(!s.info().locked());
    let id = s.info().device_id();
    assert_eq!(id, c.applet().state().device_id());
}

#[test]
fn put_list_calculate_rename_delete() {
    let mut c = blank();
    let mut s = ready(&mut c);
    let aws = name("AWS:root@example.com");
    let req = PutRequest {
        touch: false,
        ..PutRequest::totp(aws.clone(), secret(b"12345678901234567890"))
    };
    s.put(&req).unwrap();
    let hotp = PutRequest {
        oath_type: OathType::Hotp,
        algorithm: HashAlgorithm::Sha256,
        digits: Digits::EIGHT,
        counter: 5,
        ..PutRequest::totp(name("Example:hotp"), secret(b"hotp-seed"))
    };
    s.put(&hotp).unwrap();

    let list = s.list().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].name, aws);
    assert_eq!(list[0].oath_type, OathType::Totp);
    assert_eq!(list[1].oath_type, OathType::Hotp);
    assert_eq!(list[1].algorithm, HashAlgorithm::Sha256);

    let step = TimeStep(1_111_111_109 / 30);
    let code = s.calculate_totp(&aws, step).unwrap();
    assert_eq!(code.as_str(), "081804");
    let full = s.calculate_full(&aws, &step.challenge()).unwrap();
    assert_eq!(full.hmac.len(), 20);
    assert_eq!(full.code(), code);

    // HOTP starts at the IMF and moves on.
    let h5 = oath::hotp(
        &secret(b"hotp-seed"),
        HashAlgorithm::Sha256,
        5,
        Digits::EIGHT,
    );
    let h6 = oath::hotp(
        &secret(b"hotp-seed"),
        HashAlgorithm::Sha256,
        6,
        Digits::EIGHT,
    );
    assert_eq!(s.calculate_hotp(&hotp.name).unwrap(), h5);
    assert_eq!(s.calculate_hotp(&hotp.name).unwrap(), h6);

    let renamed = name("AWS:renamed@example.com");
    s.rename(&aws, &renamed).unwrap();
    assert_eq!(s.calculate_totp(&renamed, step).unwrap().as_str(), "081804");
    s.delete(&renamed).unwrap();
    assert_eq!(s.list().unwrap().len(), 1);
    assert_eq!(c.applet().state().credentials()[0].counter, 7);
}

#[test]
fn put_overwrites_a_credential_of_the_same_name() {
    let mut c = blank();
    let mut s = ready(&mut c);
    let n = name("same");
    s.put(&PutRequest::totp(n.clone(), secret(b"first-seed-0000")))
        .unwrap();
    s.put(&PutRequest {
        digits: Digits::EIGHT,
        ..PutRequest::totp(n.clone(), secret(b"12345678901234567890"))
    })
    .unwrap();
    assert_eq!(s.list().unwrap().len(), 1);
    assert_eq!(
        s.calculate_totp(&n, TimeStep(59 / 30)).unwrap().as_str(),
        "94287082"
    );
}

#[test]
fn calculate_all_codes_hotp_and_touch_over_a_long_answer() {
    let mut c = blank();
    let mut s = ready(&mut c);
    // 32 credentials with long names: several hundred bytes, several 61xx rounds.
    for i in 0..30 {
        let n = name(&format!("{:02}-{}", i, "x".repeat(60)));
        s.put(&PutRequest::totp(n, secret(b"12345678901234567890")))
            .unwrap();
    }
    s.put(&PutRequest {
        oath_type: OathType::Hotp,
        ..PutRequest::totp(name("hotp"), secret(b"12345678901234567890"))
    })
    .unwrap();
    s.put(&PutRequest {
        touch: true,
        ..PutRequest::totp(name("touch"), secret(b"12345678901234567890"))
    })
    .unwrap();
    let all = s.calculate_all(TimeStep(59 / 30)).unwrap();
    assert_eq!(all.len(), 32);
    for e in &all[..30] {
        match &e.outcome {
            CalculateOutcome::Code(code) => assert_eq!(code.as_str(), "287082"),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        all[30].outcome,
        CalculateOutcome::Hotp {
            digits: Digits::SIX
        }
    );
    assert_eq!(
        all[31].outcome,
        CalculateOutcome::TouchRequired {
            digits: Digits::SIX
        }
    );
    // The touch credential calculates on its own (AutoTouch).
    assert_eq!(
        s.calculate_totp(&name("touch"), TimeStep(1))
            .unwrap()
            .as_str(),
        "287082"
    );
}

#[test]
fn password_set_validate_and_remove() {
    let mut c = blank();
    let salt = {
        let mut s = ready(&mut c);
        let key = AccessKey::derive(&Password::from("correct horse"), &s.info().salt);
        s.set_code(&key).unwrap();
        // The session that set the key stays usable.
        s.put(&PutRequest::totp(
            name("a"),
            secret(b"12345678901234567890"),
        ))
        .unwrap();
        s.info().salt
    };
    let key = AccessKey::derive(&Password::from("correct horse"), &salt);
    let wrong = AccessKey::derive(&Password::from("wrong"), &salt);

    // Locked: a wrong key is refused with 6A80.
    let Selected::Locked(locked) = OathSession::select(&mut c).unwrap() else {
        panic!("expected a locked applet");
    };
    assert!(locked.info().locked());
    assert_eq!(locked.info().algorithm, Some(HashAlgorithm::Sha1));
    assert_eq!(refused_sw(locked.validate(&wrong)), StatusWord::WrongData);

    // No key for a locked applet: 6982.
    let selected = OathSession::select(&mut c).unwrap();
    assert_eq!(
        refused_sw(selected.unlock(None)),
        StatusWord::SecurityStatusNotSatisfied
    );

    let Selected::Locked(locked) = OathSession::select(&mut c).unwrap() else {
        panic!("expected a locked applet");
    };
    let mut s = locked.validate(&key).unwrap();
    assert_eq!(s.list().unwrap().len(), 1);
    s.unset_code().unwrap();
    let s = ready(&mut c);
    assert_eq!(s.info().challenge, None);
}

#[test]
fn auth_required_surfaces_as_6982() {
    let shared = Shared(Rc::new(RefCell::new(blank())));
    let mut s = ready(shared.clone());
    let key = AccessKey::derive(&Password::from("pw"), &s.info().salt);
    s.set_code(&key).unwrap();
    // The card is power-cycled and re-selected behind the session's back: it is locked again.
    shared.0.borrow_mut().power_cycle();
    let select = oath::select()
        .to_bytes(mfa_custody::token::apdu::LengthForm::Auto)
        .unwrap();
    shared.0.borrow_mut().answer(&select);
    assert_eq!(refused_sw(s.list()), StatusWord::SecurityStatusNotSatisfied);
    assert_eq!(
        refused_sw(s.put(&PutRequest::totp(name("x"), secret(b"k")))),
        StatusWord::SecurityStatusNotSatisfied
    );
}

#[test]
fn validate_without_a_password_is_6984() {
    let mut c = blank();
    let _ = ready(&mut c);
    let key = AccessKey::from_bytes([0; 16]);
    let cmd = oath::validate(&key, HashAlgorithm::Sha1, &[0; 8], &[1; 8]);
    assert_eq!(
        refused_sw(oath::transact(&mut c, &cmd)),
        StatusWord::NoSuchObject
    );
}

#[test]
fn no_touch_is_6982() {
    let mut c = card(
        OathState::blank([0; 8]),
        Box::new(DenyTouch {
            timeout: Duration::from_millis(1),
        }),
    );
    let mut s = ready(&mut c);
    let n = name("touch");
    s.put(&PutRequest {
        touch: true,
        ..PutRequest::totp(n.clone(), secret(b"12345678901234567890"))
    })
    .unwrap();
    assert_eq!(
        refused_sw(s.calculate_totp(&n, TimeStep(1))),
        StatusWord::SecurityStatusNotSatisfied
    );
}

#[test]
fn missing_credentials_are_6984_and_name_clashes_6a80() {
    let mut c = blank();
    let mut s = ready(&mut c);
    let (a, b) = (name("a"), name("b"));
    assert_eq!(refused_sw(s.delete(&a)), StatusWord::NoSuchObject);
    assert_eq!(refused_sw(s.rename(&a, &b)), StatusWord::NoSuchObject);
    assert_eq!(
        refused_sw(s.calculate_totp(&a, TimeStep(1))),
        StatusWord::NoSuchObject
    );
    s.put(&PutRequest::totp(a.clone(), secret(b"k"))).unwrap();
    s.put(&PutRequest::totp(b.clone(), secret(b"k"))).unwrap();
    assert_eq!(refused_sw(s.rename(&a, &b)), StatusWord::WrongData);
}

#[test]
fn a_full_applet_is_6a84() {
    let state = OathState::with_credentials([0; 8], None, Vec::new(), 2);
    let mut c = card(state, Box::new(AutoTouch));
    let mut s = ready(&mut c);
    s.put(&PutRequest::totp(name("1"), secret(b"k"))).unwrap();
    s.put(&PutRequest::totp(name("2"), secret(b"k"))).unwrap();
    assert_eq!(
        refused_sw(s.put(&PutRequest::totp(name("3"), secret(b"k")))),
        StatusWord::NoSpace
    );
    // Overwriting still works when full.
    s.put(&PutRequest::totp(name("2"), secret(b"k2"))).unwrap();
}

fn put_raw(data: &[u8]) -> Command {
    Command::new(0, oath::ins::PUT, 0, 0).with_data(data.to_vec())
}

#[test]
fn bad_put_syntax_is_6a80() {
    let mut c = blank();
    let _ = ready(&mut c);
    let key = |type_alg: u8, digits: u8| {
        let mut d = vec![0x71, 1, b'x', 0x73, 16, type_alg, digits];
        d.extend_from_slice(&[0xAA; 14]);
        d
    };
    let mut long_name = vec![0x71, 65];
    long_name.extend_from_slice(&[b'n'; 65]);
    long_name.extend_from_slice(&key(0x21, 6)[3..]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("digits 9", key(0x21, 9)),
        ("digits 5", key(0x21, 5)),
        ("algorithm 4", key(0x24, 6)),
        ("type 3", key(0x31, 6)),
        ("name of 65 bytes", long_name),
        ("no key", vec![0x71, 1, b'x']),
        ("no name", key(0x21, 6)[3..].to_vec()),
        (
            "unknown property",
            [key(0x21, 6), vec![0x78, 0x04]].concat(),
        ),
        ("truncated", vec![0x71, 9, b'x']),
    ];
    for (what, data) in cases {
        assert_eq!(
            refused_sw(oath::transact(&mut c, &put_raw(&data))),
            StatusWord::WrongData,
            "{what}"
        );
    }
    // A key longer than the block size is accepted as is.
    let mut long_key = vec![0x71, 1, b'y', 0x73, 102, 0x21, 6];
    long_key.extend_from_slice(&[0x55; 100]);
    oath::transact(&mut c, &put_raw(&long_key)).unwrap();
}

#[test]
fn unknown_instruction_is_6d00_and_wrong_parameters_6a86() {
    let mut c = blank();
    let _ = ready(&mut c);
    for ins in [0x00, 0x06, 0x20, 0xA0, 0xA6, 0xCA, 0xFD] {
        assert_eq!(
            refused_sw(oath::transact(&mut c, &Command::new(0, ins, 0, 0))),
            StatusWord::InsNotSupported,
            "INS {ins:02X}"
        );
    }
    let wrong = [
        Command::new(0, oath::ins::LIST, 1, 0),
        Command::new(0, oath::ins::RESET, 0, 0),
        Command::new(0, oath::ins::CALCULATE, 0, 2),
        Command::new(0, oath::ins::CALCULATE_ALL, 0, 2),
        Command::new(0, oath::ins::CALCULATE_ALL, 2, 1),
        Command::new(0, oath::ins::PUT, 0, 1),
        Command::new(0, oath::ins::DELETE, 1, 1),
        Command::new(0, oath::ins::RENAME, 0, 3),
        Command::new(0, oath::ins::SET_CODE, 0, 1),
        Command::new(0, oath::ins::VALIDATE, 1, 0),
    ];
    for cmd in wrong {
        assert_eq!(
            refused_sw(oath::transact(&mut c, &cmd)),
            StatusWord::IncorrectP1P2,
            "{cmd:?}"
        );
    }
}

#[test]
fn reset_works_locked_and_changes_the_salt() {
    let mut c = blank();
    {
        let mut s = ready(&mut c);
        s.put(&PutRequest::totp(name("a"), secret(b"k"))).unwrap();
        let key = AccessKey::derive(&Password::from("pw"), &s.info().salt);
        s.set_code(&key).unwrap();
    }
    let Selected::Locked(locked) = OathSession::select(&mut c).unwrap() else {
        panic!("expected a locked applet");
    };
    let old_id = locked.info().device_id();
    let mut s = locked.reset().unwrap();
    assert_ne!(s.info().device_id(), old_id);
    assert!(s.list().unwrap().is_empty());
    let s = s.reset().unwrap();
    assert!(!s.info().locked());
}

#[test]
fn extended_and_chained_commands_reach_the_applet() {
    let mut c = blank();
    {
        let mut s = ready(&mut c);
        s.put(&PutRequest::totp(
            name("a"),
            secret(b"12345678901234567890"),
        ))
        .unwrap();
    }
    // CALCULATE ALL in extended form, as some clients send it.
    let mut ext = vec![0x00, 0xA4, 0x00, 0x01, 0x00, 0x00, 0x0A, 0x74, 0x08];
    ext.extend_from_slice(&TimeStep(1).challenge());
    let r = c.answer(&ext);
    assert_eq!(r.sw, StatusWord::Success);
    let all = oath::parse_calculate_all(&r.data).unwrap();
    assert!(matches!(&all[0].outcome, CalculateOutcome::Code(code) if code.as_str() == "287082"));

    // A PUT split by command chaining.
    let put = PutRequest::totp(name("chained"), secret(b"12345678901234567890")).encode();
    let (head, tail) = put.split_at(10);
    let mut first = vec![0x10, 0x01, 0x00, 0x00, head.len() as u8];
    first.extend_from_slice(head);
    assert_eq!(c.answer(&first).sw, StatusWord::Success);
    let mut last = vec![0x00, 0x01, 0x00, 0x00, tail.len() as u8];
    last.extend_from_slice(tail);
    assert_eq!(c.answer(&last).sw, StatusWord::Success);
    let mut s = ready(&mut c);
    assert_eq!(
        s.calculate_totp(&name("chained"), TimeStep(1))
            .unwrap()
            .as_str(),
        "287082"
    );
}

#[test]
fn state_changes_are_reported_once_and_persist() {
    let mut c = blank();
    {
        let mut s = ready(&mut c);
        s.list().unwrap();
    }
    assert!(!c.applet_mut().state_changed());
    {
        let mut s = ready(&mut c);
        s.put(&PutRequest {
            oath_type: OathType::Hotp,
            ..PutRequest::totp(name("h"), secret(b"12345678901234567890"))
        })
        .unwrap();
    }
    assert!(c.applet_mut().state_changed());
    assert!(!c.applet_mut().state_changed());
    {
        let mut s = ready(&mut c);
        s.calculate_hotp(&name("h")).unwrap();
    }
    assert!(c.applet_mut().state_changed());

    // Save and reload: the counter carries on.
    let json = serde_json::to_string(c.applet().state()).unwrap();
    let state: OathState = serde_json::from_str(&json).unwrap();
    assert_eq!(&state, c.applet().state());
    let mut c2 = card(state, Box::new(AutoTouch));
    let mut s = ready(&mut c2);
    assert_eq!(s.calculate_hotp(&name("h")).unwrap().as_str(), "287082");
}

#[test]
fn state_debug_redacts_secrets() {
    let image: OathImage = toml::from_str(
        r#"
        password = "fixture-password"
        salt_hex = "0001020304050607"
        [[credentials]]
        name = "AWS:root"
        secret_hex = "5345435245542d5345454421"
        "#,
    )
    .unwrap();
    let state = image.to_state().unwrap();
    let d = format!("{state:?} {image:?}");
    assert!(!d.contains("5345435245542d5345454421"), "{d}");
    assert!(
        !d.to_uppercase().contains("5345435245542D5345454421"),
        "{d}"
    );
    assert!(!d.contains("SECRET-SEED!"), "{d}");
    assert!(!d.contains("fixture-password"), "{d}");
    assert!(!d.contains("83, 69, 67"), "{d}");
}

#[test]
fn device_images_become_states() {
    let image: OathImage = toml::from_str(
        r#"
        password = "test"
        salt_hex = "0000000000000000"
        capacity = 4
        [[credentials]]
        name = "AWS:root@example.com"
        type = "totp"
        algorithm = "sha1"
        digits = 6
        secret_base32 = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        touch = true
        [[credentials]]
        name = "hotp"
        type = "hotp"
        algorithm = "sha256"
        digits = 8
        secret_hex = "3132333435363738393031323334353637383930"
        counter = 3
        "#,
    )
    .unwrap();
    let state = image.to_state().unwrap();
    assert!(state.has_password());
    assert_eq!(state.capacity(), Some(4));
    assert_eq!(state.credentials().len(), 2);
    assert_eq!(state.credentials()[1].counter, 3);
    let mut c = card(state, Box::new(AutoTouch));
    let Selected::Locked(locked) = OathSession::select(&mut c).unwrap() else {
        panic!("expected a locked applet");
    };
    let key = AccessKey::derive(&Password::from("test"), &[0; 8]);
    let mut s = locked.validate(&key).unwrap();
    let code = s
        .calculate_totp(&name("AWS:root@example.com"), TimeStep(1))
        .unwrap();
    assert_eq!(code.as_str(), "287082");

    let bad = |text: &str| OathImage::to_state(&toml::from_str::<OathImage>(text).unwrap());
    let e = bad("[[credentials]]\nname = \"x\"\ndigits = 9\nsecret_hex = \"00\"").unwrap_err();
    assert!(
        matches!(
            e,
            OathImageError::BadCredential {
                field: "digits",
                index: 0,
                ..
            }
        ),
        "{e}"
    );
    let e = bad("[[credentials]]\nname = \"x\"").unwrap_err();
    assert!(
        matches!(
            e,
            OathImageError::BadCredential {
                field: "secret_hex",
                ..
            }
        ),
        "{e}"
    );
    let e = bad("[[credentials]]\nname = \"x\"\nsecret_base32 = \"!!\"").unwrap_err();
    assert!(
        matches!(
            e,
            OathImageError::BadCredential {
                field: "secret_base32",
                ..
            }
        ),
        "{e}"
    );
    assert!(!e.to_string().contains("!!"));
    let e = bad(&format!(
        "[[credentials]]\nname = \"{}\"\nsecret_hex = \"00\"",
        "n".repeat(65)
    ))
    .unwrap_err();
    assert!(
        matches!(e, OathImageError::BadCredential { field: "name", .. }),
        "{e}"
    );
    let e = bad("salt_hex = \"00\"").unwrap_err();
    assert!(matches!(e, OathImageError::BadSalt { .. }), "{e}");
    let e = bad("capacity = 0\n[[credentials]]\nname = \"x\"\nsecret_hex = \"00\"").unwrap_err();
    assert!(matches!(e, OathImageError::OverCapacity { .. }), "{e}");
    let e = toml::from_str::<OathImage>("[[credentials]]\nname = \"x\"\nalgorithm = \"md5\"")
        .unwrap_err();
    assert!(e.to_string().contains("md5"), "{e}");
}

#[test]
fn select_with_a_password_has_the_yubikey_shape_and_power_loss_locks() {
    let key = AccessKey::derive(&Password::from("pw"), &[0; 8]);
    let state = OathState::with_credentials([0; 8], Some(&key), Vec::new(), 32);
    let mut applet = OathApplet::new(state, [5, 2, 4], Box::new(AutoTouch));
    let r = applet.select();
    // 79 03 05 02 04, 71 08 <salt>, 74 08 <challenge>, 7B 01 21
    assert_eq!(r.data.len(), 5 + 10 + 10 + 3);
    assert_eq!(r.data.get(..5), Some(&[0x79, 0x03, 0x05, 0x02, 0x04][..]));
    assert_eq!(r.data.get(15..17), Some(&[0x74, 0x08][..]));
    assert_eq!(r.data.get(25..), Some(&[0x7B, 0x01, 0x21][..]));
    let info = oath::parse_select(&r.data).unwrap();
    let host = [5u8; 8];
    let v = oath::validate(&key, HashAlgorithm::Sha1, &info.challenge.unwrap(), &host);
    let answer = applet.process(&v);
    assert_eq!(answer.sw, StatusWord::Success);
    oath::verify_validate(&key, HashAlgorithm::Sha1, &host, &answer.data).unwrap();
    assert_eq!(applet.process(&oath::list()).sw, StatusWord::Success);
    // A second SELECT challenge is needed for a second VALIDATE.
    assert_eq!(applet.process(&v).sw, StatusWord::WrongData);
    applet.reset_volatile();
    assert_eq!(
        applet.process(&oath::list()).sw,
        StatusWord::SecurityStatusNotSatisfied
    );
}

#[test]
fn reading_with_an_access_key_lists_only_after_validate() {
    use mfa_custody::token::identity::{read_oath_with, OathAccess};
    let key = AccessKey::from_bytes([9u8; 16]);
    let other = AccessKey::from_bytes([8u8; 16]);
    let mut c = blank();
    ready(&mut c)
        .put(&PutRequest::totp(
            name("a"),
            secret(b"12345678901234567890"),
        ))
        .unwrap();
    let read = |c: &mut OathCard, k: Option<&AccessKey>| {
        let (_, access, creds) = read_oath_with(c, k).unwrap().unwrap();
        (access, creds.len())
    };
    assert_eq!(read(&mut c, None), (OathAccess::NotOffered, 1));
    assert_eq!(
        read(&mut c, Some(&key)),
        (OathAccess::NotSet, 0),
        "a key offered to an applet that asks for none: nothing listed"
    );
    ready(&mut c).set_code(&key).unwrap();
    assert_eq!(read(&mut c, None), (OathAccess::NotOffered, 0));
    assert_eq!(read(&mut c, Some(&other)), (OathAccess::Failed, 0));
    assert_eq!(read(&mut c, Some(&key)), (OathAccess::Validated, 1));
}
