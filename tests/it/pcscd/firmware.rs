//! Keys of different firmware through a real pcscd: `custody token scan`, the `yubikey` crate and
//! the OATH client see each as its firmware makes it (READ CONFIG tags and capabilities, OATH
//! capacity, RENAME), as `src/emulator/firmware_tests.rs` checks in-process.
//!
//! Re-runs itself inside `scripts/with-pcscd.sh` (see `support`). Needs root and the packages
//! pcscd and vsmartcard-vpcd (`make deps`).

use crate::support;

use mfa_custody::token::apdu::StatusWord;
use mfa_custody::token::identity;
use mfa_custody::token::oath::{CredentialName, OathSecret, OathSession, PutRequest, Selected};
use mfa_custody::token::pcsc::PcscContext;
use mfa_custody::token::TokenError;
use support::{custody, in_harness, wait_for_card, Emu};

fn refused_sw(r: Result<(), TokenError>) -> StatusWord {
    match r {
        Err(TokenError::Refused { sw, .. }) => sw,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn name(s: &str) -> CredentialName {
    CredentialName::parse(s).expect("valid name")
}

#[test]
fn pcscd_keys_of_firmware_5_7_0_and_5_3_0_answer_as_their_firmware() {
    if !in_harness(
        "pcscd_keys_of_firmware_5_7_0_and_5_3_0_answer_as_their_firmware",
        41790,
        1,
    ) {
        return;
    }
    let _new = Emu::start(0, &["--serial", "10000057", "--firmware", "5.7.0"]);
    let _old = Emu::start(1, &["--serial", "10000053", "--firmware", "5.3.0"]);
    let new_reader = wait_for_card(0);
    let old_reader = wait_for_card(1);

    let (code, out, err) = custody(&["--json", "token", "scan"]);
    assert_eq!(code, 0, "stderr: {err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    for (slot, serial, firmware) in [(0, 10_000_057, "5.7.0"), (1, 10_000_053, "5.3.0")] {
        let d = &v["readers"][slot]["device"];
        assert_eq!(d["serial"], serial, "{out}");
        assert_eq!(d["firmware"], firmware, "{out}");
        assert_eq!(
            d["capabilities"],
            serde_json::json!(["otp", "piv", "oath"]),
            "{out}"
        );
    }
    assert_eq!(
        identity::yubikey_serial_and_version(&new_reader),
        Some((10_000_057, "5.7.0".to_owned()))
    );

    let ctx = PcscContext::establish().expect("pcscd");
    let secret = || OathSecret::from_hex("3132333435363738393031323334353637383930").expect("hex");
    let mut card = ctx.connect(&new_reader).expect("card");
    card.with_transaction(|tx| {
        let Selected::Ready(mut s) = OathSession::select(&mut *tx).expect("select") else {
            panic!("a blank key is not locked");
        };
        for i in 0..64 {
            let put = PutRequest::totp(name(&format!("Example:user-{i:02}")), secret());
            s.put(&put).expect("64 credentials fit on 5.7.0");
        }
        let put = PutRequest::totp(name("Example:one-too-many"), secret());
        assert_eq!(refused_sw(s.put(&put)), StatusWord::NoSpace);
        s.rename(&name("Example:user-00"), &name("Example:renamed"))
            .expect("RENAME exists on 5.7.0");
    })
    .expect("transaction");

    let mut card = ctx.connect(&old_reader).expect("card");
    card.with_transaction(|tx| {
        let Selected::Ready(mut s) = OathSession::select(&mut *tx).expect("select") else {
            panic!("a blank key is not locked");
        };
        s.put(&PutRequest::totp(name("Example:user"), secret()))
            .expect("put");
        assert_eq!(
            refused_sw(s.rename(&name("Example:user"), &name("Example:renamed"))),
            StatusWord::InsNotSupported
        );
    })
    .expect("transaction");
}
