//! The Debug output of every composite that carries a secret (the leaf types have their own
//! tests beside them): domain inputs and outputs, genesis, and the daemon's requests and
//! answers that carry passphrases, seeds and codes. Each is formatted with `{:?}` and `{:#?}`
//! and must show none of its secrets, in raw, hex or Base32 form.

use std::num::NonZeroU32;

use mfa_custody::custody::{
    AccountId, Credentials, Enrolment, EnrolmentCodes, FactorCode, NewUser, ProviderSeed,
    ReleasedCode, RequestId, Role, Serial, UserName, UserPassphrase,
};
use mfa_custody::daemon::protocol::{Auth, Op, Reply, Request, Secret};
use mfa_custody::ledger::{Genesis, KdfParams, OfficerName, Passphrase};
use mfa_custody::token::oath::{totp, Digits, HashAlgorithm, OathSecret, TimeStep};
use zeroize::Zeroizing;

const SEED_B32: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
const SEED_RAW: &str = "12345678901234567890";
const SEED_HEX: &str = "3132333435363738393031323334353637383930";
const PASS: &str = "Horse-Battery-Staple-91";
const CODE: &str = "287082";

fn shown(v: &impl std::fmt::Debug) -> String {
    format!("{v:?} {v:#?}")
}

fn assert_clean(what: &str, text: &str) {
    for secret in [SEED_B32, &SEED_B32[..16], SEED_RAW, SEED_HEX, PASS, CODE] {
        assert!(!text.contains(secret), "{what} shows {secret:?}: {text}");
    }
}

fn code() -> mfa_custody::token::oath::Code {
    let secret = OathSecret::from_hex(SEED_HEX).expect("hex");
    // RFC 6238: 287082 at T = 59 s (step 1) for the SHA-1 seed.
    let c = totp(&secret, HashAlgorithm::Sha1, TimeStep(1), Digits::SIX);
    assert_eq!(c.as_str(), CODE);
    c
}

fn secret(s: &str) -> Secret {
    Secret::new(Zeroizing::new(s.to_owned()))
}

#[test]
fn composites_carrying_secrets_show_none_in_debug() {
    let user = UserName::parse("alice").expect("name");
    let creds = Credentials {
        user: user.clone(),
        passphrase: UserPassphrase::new_checked(Zeroizing::new(PASS.into())).expect("pass"),
        factor: Some(FactorCode::parse(CODE).expect("code")),
        uid: Some(1000),
    };
    assert_clean("Credentials", &shown(&creds));
    let new = NewUser {
        name: user,
        roles: vec![Role::Officer],
        uid: None,
        passphrase: UserPassphrase::new_checked(Zeroizing::new(PASS.into())).expect("pass"),
    };
    assert_clean("NewUser", &shown(&new));
    let enrolment = Enrolment {
        account: AccountId::parse("123456789012").expect("id"),
        primary: Serial::new(10_000_001).expect("serial"),
        backup: Serial::new(10_000_002).expect("serial"),
        seed: ProviderSeed::parse(SEED_B32).expect("seed"),
        overwrite: false,
    };
    assert_clean("Enrolment", &shown(&enrolment));
    let codes = EnrolmentCodes {
        first: code(),
        second: code(),
        first_step: 1,
    };
    assert_clean("EnrolmentCodes", &shown(&codes));
    let released = ReleasedCode {
        request: RequestId::parse("req-00000000000000aa").expect("id"),
        code: code(),
        step: 1,
        seconds_remaining: 20,
        device: Serial::new(10_000_001).expect("serial"),
        password: Some(mfa_custody::custody::RootPassword::generate().expect("generate")),
    };
    assert_clean("ReleasedCode", &shown(&released));
    let pw = released.password.as_ref().expect("password").expose();
    assert!(
        !shown(&released).contains(pw),
        "ReleasedCode shows its root password"
    );

    let officers = vec![(
        OfficerName::parse("alice").expect("name"),
        Passphrase::new_checked(Zeroizing::new(PASS.into())).expect("strong"),
    )];
    let genesis = Genesis {
        officers: &officers,
        threshold: 2,
        kdf: KdfParams::insecure_for_tests(NonZeroU32::new(1000).expect("nonzero")),
    };
    assert_clean("Genesis", &shown(&genesis));

    let auth = || Auth::new("alice", secret(PASS), Some(secret(CODE)));
    for op in [
        Op::Unseal {
            officer: "alice".into(),
            passphrase: secret(PASS),
        },
        Op::BootstrapOfficer {
            user: "alice".into(),
            keyring_passphrase: secret(PASS),
            passphrase: secret(PASS),
        },
        Op::Seal { by: auth() },
        Op::UserAdd {
            by: vec![auth()],
            name: "olga".into(),
            roles: vec![mfa_custody::custody::Role::Officer],
            uid: None,
            passphrase: secret(PASS),
        },
        Op::Approve {
            by: Some(auth()),
            request: "req-00000000000000aa".into(),
            seen: "0".repeat(64),
            signed: None,
        },
        Op::ApprovalChallenge {
            by: auth(),
            request: "req-00000000000000aa".into(),
        },
        Op::PresenceChallenge {
            by: auth(),
            digest: "0".repeat(64),
        },
        // An officer proving presence by signature: passphrase and signature in `by`.
        Op::UserSetActive {
            by: vec![Auth {
                signed: Some(mfa_custody::daemon::protocol::SignedApproval {
                    key_id: "0".repeat(64),
                    nonce: "1".repeat(64),
                    signature: "MEUCIQ==".into(),
                }),
                factor: None,
                ..auth()
            }],
            name: "oscar".into(),
            active: false,
        },
        Op::Login { by: auth() },
    ] {
        let name = op.name();
        assert_clean(
            name,
            &shown(&Request {
                v: 1,
                id: 1,
                ledger: None,
                op,
                session: None,
            }),
        );
    }
    for reply in [
        Reply::Factor {
            user: "olga".into(),
            uri: secret(&format!(
                "otpauth://totp/mfa-custody:olga?secret={SEED_B32}"
            )),
            base32: secret(SEED_B32),
        },
        Reply::Enrolled {
            first: secret(CODE),
            second: secret(CODE),
            first_step: 1,
        },
    ] {
        assert_clean("Reply", &shown(&reply));
    }
}

/// A device's OATH access key, and what carries it: the custody domain's lock of a device, the
/// SET CODE command that puts it on the card and the VALIDATE command that proves it.
#[test]
fn oath_access_keys_show_nowhere_in_debug() {
    use mfa_custody::custody::OathLock;
    use mfa_custody::token::oath::{set_code, validate, AccessKey};
    let raw: [u8; 16] = *b"access-key-16-by";
    let key = AccessKey::from_bytes(raw);
    let lock = OathLock::locked(key.clone());
    assert!(lock.required());
    let set = set_code(&key, &[7u8; 8]);
    let val = validate(&key, HashAlgorithm::Sha1, &[3u8; 8], &[4u8; 8]);
    let hex = data_encoding::HEXLOWER.encode(&raw);
    let b64 = data_encoding::BASE64.encode(&raw);
    let b32 = data_encoding::BASE32_NOPAD.encode(&raw);
    let raw_text = String::from_utf8_lossy(&raw).into_owned();
    for (what, text) in [
        ("AccessKey", shown(&key)),
        ("OathLock", shown(&lock)),
        ("SET CODE", shown(&set)),
        ("VALIDATE", shown(&val)),
    ] {
        for secret in [
            raw_text.as_str(),
            hex.as_str(),
            &hex[..16],
            b64.as_str(),
            b32.as_str(),
        ] {
            assert!(!text.contains(secret), "{what} shows {secret:?}: {text}");
        }
    }
    // The byte forms are really what a leak would look like: the key is in SET CODE's data.
    assert!(set.data.windows(raw.len()).any(|w| w == raw.as_slice()));
}

#[test]
fn piv_management_keys_show_nowhere_in_debug() {
    use mfa_custody::emulator::oath::{AutoTouch, OathState};
    use mfa_custody::emulator::SoftKey;
    use mfa_custody::token::management::FormFactor;
    use mfa_custody::token::piv::{self, ManagementAlgorithm, ManagementKey, PivSession};

    // A provisioned custody key: its random management key, the session and the outcome.
    let mut card = SoftKey::new(
        7,
        [5, 7, 1],
        FormFactor::UsbAKeychain,
        OathState::fresh(),
        Box::new(AutoTouch),
    );
    let anchors = mfa_custody::token::attestation::TrustAnchors::from_pem(
        mfa_custody::emulator::piv::attest::TEST_CA_CERT_PEM,
    )
    .expect("test CA");
    let mut session = PivSession::select(&mut card).expect("select");
    let provisioned =
        piv::provision(&mut session, 7, &anchors, jiff::Timestamp::now()).expect("provisioned");
    let raw = provisioned.management_key.expose().to_vec();
    assert_eq!(raw.len(), 24, "AES-192 on 5.7");
    let chosen: Vec<u8> = (0x31..0x49).collect();
    let key = ManagementKey::new(ManagementAlgorithm::Aes192, Zeroizing::new(chosen.clone()))
        .expect("24 bytes");
    let set = piv::set_management_key(0x0A, key.expose());
    let auth = piv::authenticate_response(0x0A, &chosen[..16], &[0; 16]);
    for (what, text, bytes) in [
        ("Provisioned", shown(&provisioned), &raw),
        ("PivSession", shown(&session), &raw),
        ("ManagementKey", shown(&key), &chosen),
        ("SET MANAGEMENT KEY", shown(&set), &chosen),
        ("GENERAL AUTHENTICATE", shown(&auth), &chosen),
    ] {
        for secret in [
            data_encoding::HEXLOWER.encode(bytes),
            data_encoding::HEXUPPER.encode(&bytes[..8]),
            data_encoding::BASE64.encode(bytes),
            format!("{:?}", &bytes[..8]),
            String::from_utf8_lossy(bytes).into_owned(),
        ] {
            assert!(!text.contains(&secret), "{what} shows {secret:?}: {text}");
        }
    }
    // The byte forms are really what a leak would look like: the key is in the command's data.
    assert!(set
        .data
        .windows(chosen.len())
        .any(|w| w == chosen.as_slice()));
}

/// A session token: random, so the test takes the one a login table hands out and looks for it
/// in every Debug form of what carries it (the token itself, the table, the request that sends
/// it, the answer to `login`).
#[test]
fn session_tokens_show_nowhere_in_debug() {
    use mfa_custody::daemon::protocol::SessionReply;
    use mfa_custody::daemon::session::SessionToken;
    let rng = ring::rand::SystemRandom::new();
    let token = SessionToken::generate(&rng).expect("token");
    let dbg_token = shown(&token);
    let wire = token.into_secret();
    let text = wire.expose().to_owned();
    assert_eq!(text.len(), 64, "256 bits in hex");
    let request = Request {
        v: 1,
        id: 7,
        ledger: None,
        op: Op::Whoami,
        session: Some(wire.clone()),
    };
    let reply = Reply::Session(SessionReply {
        token: Some(wire.clone()),
        user: "alice".into(),
        roles: vec![mfa_custody::custody::Role::Officer],
        uid: 1000,
        idle_expires_at_ms: 1,
        expires_at_ms: 2,
        as_of_ms: 0,
    });
    let response = mfa_custody::daemon::Response::ok(7, reply.clone());
    for (what, shown) in [
        ("SessionToken", dbg_token),
        ("Secret", shown(&wire)),
        ("Request", shown(&request)),
        ("Reply::Session", shown(&reply)),
        ("Response", shown(&response)),
    ] {
        assert!(
            !shown.contains(&text) && !shown.contains(&text[..16]),
            "{what} shows the token: {shown}"
        );
    }
    // The wire line carries it to its owner, once.
    let line = String::from_utf8_lossy(&response.to_line()).into_owned();
    assert!(line.contains(&text));
}

/// The continuation of a two-round authentication (random, like a session token): in the
/// refusal that hands it out and in the second round's request that sends it back with the
/// code, nothing of it (nor of the code) shows in Debug; the wire carries it.
#[test]
fn authentication_continuations_show_nowhere_in_debug() {
    use mfa_custody::daemon::protocol::{ErrorBody, ErrorCode, Outcome, RefusalCode};
    use mfa_custody::daemon::session::SessionToken;
    let rng = ring::rand::SystemRandom::new();
    let wire = SessionToken::generate(&rng).expect("token").into_secret();
    let text = wire.expose().to_owned();
    let refusal = mfa_custody::daemon::Response {
        v: 1,
        id: 3,
        result: Outcome::Err(ErrorBody {
            code: ErrorCode::Forbidden,
            reason: Some(RefusalCode::FactorCodeRequired),
            message: "the passphrase of alice is right".into(),
            continuation: Some(wire.clone()),
        }),
    };
    let mut second = Auth::new("alice", secret(PASS), Some(secret(CODE)));
    second.passphrase = None;
    second.continuation = Some(wire.clone());
    let request = Request {
        v: 1,
        id: 4,
        ledger: None,
        op: Op::Login { by: second },
        session: None,
    };
    for (what, shown) in [("refusal", shown(&refusal)), ("Request", shown(&request))] {
        assert!(
            !shown.contains(&text) && !shown.contains(&text[..16]),
            "{what} shows the continuation: {shown}"
        );
        assert_clean(what, &shown);
    }
    let line = String::from_utf8_lossy(&refusal.to_line()).into_owned();
    assert!(line.contains(&text), "the refusal carries it to the peer");
}

/// The software YubiKey's PIV secrets (PIN, PUK, management key, a slot's private key) show in
/// no Debug output of the applet's state or of the key, after they were changed from the
/// factory values through APDUs.
#[test]
fn piv_applet_secrets_show_nowhere_in_debug() {
    use mfa_custody::emulator::oath::{AutoTouch, OathState};
    use mfa_custody::emulator::piv::keys::management_encrypt;
    use mfa_custody::emulator::piv::state::DEFAULT_MANAGEMENT_KEY;
    use mfa_custody::emulator::SoftKey;
    use mfa_custody::token::management::FormFactor;

    let mut key = SoftKey::new(
        7,
        [5, 4, 3],
        FormFactor::UsbAKeychain,
        OathState::fresh(),
        Box::new(AutoTouch),
    );
    let ok = |r: &[u8]| assert!(r.ends_with(&[0x90, 0x00]), "{r:02X?}");
    ok(&key.process(&[0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0, 0x00, 0x00, 0x03, 0x08]));
    let r = key.process(&[0x00, 0x87, 0x03, 0x9B, 0x04, 0x7C, 0x02, 0x81, 0x00]);
    ok(&r);
    let challenge: [u8; 8] = r[4..12].try_into().expect("8 bytes");
    let mut auth = vec![0x00, 0x87, 0x03, 0x9B, 0x0C, 0x7C, 0x0A, 0x82, 0x08];
    auth.extend_from_slice(
        &management_encrypt(0x03, &DEFAULT_MANAGEMENT_KEY, &challenge).expect("3DES"),
    );
    ok(&key.process(&auth));
    // PIN 13572468, PUK 86427531, management key 0x31..0x48, a P-256 key in 9A.
    let mut pin = vec![0x00, 0x24, 0x00, 0x80, 0x10];
    pin.extend_from_slice(b"12345600");
    pin[5 + 6] = 0xFF;
    pin[5 + 7] = 0xFF;
    pin.extend_from_slice(b"13572468");
    ok(&key.process(&pin));
    let mut puk = vec![0x00, 0x24, 0x00, 0x81, 0x10];
    puk.extend_from_slice(b"12345678");
    puk.extend_from_slice(b"86427531");
    ok(&key.process(&puk));
    let mgm: Vec<u8> = (0x31..0x49).collect();
    let mut set = vec![0x00, 0xFF, 0xFF, 0xFF, 0x1B, 0x03, 0x9B, 0x18];
    set.extend_from_slice(&mgm);
    ok(&key.process(&set));
    ok(&key.process(&[0x00, 0x47, 0x00, 0x9A, 0x05, 0xAC, 0x03, 0x80, 0x01, 0x11]));

    let scalar = key.piv_state().keys[0].secret.expose().to_vec();
    let text = format!("{} {}", shown(key.piv_state()), shown(&key));
    for secret in [
        "13572468".to_owned(),
        "86427531".to_owned(),
        String::from_utf8(mgm.clone()).expect("ASCII"),
        data_encoding::HEXLOWER.encode(&mgm),
        data_encoding::HEXLOWER.encode(&scalar),
        data_encoding::HEXUPPER.encode(&scalar),
        format!("{:?}", &scalar[..8]),
        format!("{:?}", &b"13572468"[..]),
    ] {
        assert!(!text.contains(&secret), "Debug shows {secret:?}: {text}");
    }
}
