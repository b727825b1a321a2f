//! A two-officer operation signed by both officers' own YubiKeys through the production path:
//! a private pcscd with the vpcd driver, two `custody-emu` keys side by side (carol's and
//! frank's), a real `custodyd` whose policy takes signatures only, and the `custody` binary.
//! Each officer registers an approval key (the other witnessing, by TOTP: a key is how one
//! comes to sign); then `custody user suspend dave --by carol --by frank --sign carol --sign
//! frank` is refused without the signatures and done with them, each card found by the key
//! custodyd names; the exported ledger verifies offline with both signatures checked.

use crate::support;

use serde_json::Value;
use support::cli::{output, Custody};
use support::daemon::{user_pass, world_with_policy, Run, World};
use support::{in_harness, wait_for_card, Emu};

const CAROL_KEY: u32 = 10_000_951;
const FRANK_KEY: u32 = 10_000_952;
/// The emulator's factory PIV PIN.
const PIN: &str = "123456";

fn register(w: &mut World, officer: &str, witness: &str, serial: u32) -> Run {
    let (co, cw) = (w.code(officer), w.code(witness));
    let serial = serial.to_string();
    w.custody4(
        &[
            "--json",
            "user",
            "key",
            "register",
            officer,
            "--witness",
            witness,
            "--serial",
            &serial,
            "--generate",
            "--passphrase-fd",
            "3",
            "--totp-fd",
            "4",
        ],
        &format!("{}\n{}\n", user_pass(officer), user_pass(witness)),
        &format!("{co}\n{cw}\n"),
    )
}

/// `custody user suspend dave --by carol --by frank` with `extra`, passphrases on 3, codes
/// on 4 and PINs on 5.
fn suspend(w: &World, extra: &[&str], codes: &str) -> Run {
    set_active(w, "suspend", extra, codes)
}

/// `custody user VERB dave --by carol --by frank` (suspend or reinstate), as [`suspend`].
fn set_active(w: &World, verb: &str, extra: &[&str], codes: &str) -> Run {
    let args: Vec<&str> = [
        "--json", "user", verb, "dave", "--by", "carol", "--by", "frank",
    ]
    .into_iter()
    .chain(extra.iter().copied())
    .chain(["--passphrase-fd", "3", "--totp-fd", "4", "--pin-fd", "5"])
    .collect();
    Custody::new(&args)
        .socket(&w.socket)
        .fd3(&format!("{}\n{}\n", user_pass("carol"), user_pass("frank")))
        .fd4(codes)
        .fd5(&format!("{PIN}\n{PIN}\n"))
        .files_in(w.dir.path())
        .runtime_dir(&w.runtime_dir)
        .run()
}

#[test]
fn pcscd_two_officers_sign_a_suspension_with_their_own_yubikeys_and_the_export_verifies() {
    if !in_harness(
        "pcscd_two_officers_sign_a_suspension_with_their_own_yubikeys_and_the_export_verifies",
        45320,
        1,
    ) {
        return;
    }
    let _carol = Emu::start(0, &["--serial", &CAROL_KEY.to_string()]);
    let _frank = Emu::start(1, &["--serial", &FRANK_KEY.to_string()]);
    wait_for_card(0);
    wait_for_card(1);
    let ca = support::fixture("piv-test-ca.pem");
    let mut w = world_with_policy(
        &format!("piv_attestation_test_ca = \"{}\"", ca.display()),
        "approval_proof = \"signature\"",
    );
    for (officer, witness, serial) in [("carol", "frank", CAROL_KEY), ("frank", "carol", FRANK_KEY)]
    {
        let r = register(&mut w, officer, witness, serial);
        assert_eq!(r.code, 0, "register {officer}:\n{}\n{}", r.out, r.err);
    }

    // By TOTP codes: the policy takes signatures only.
    let codes = format!("{}\n{}\n", w.code("carol"), w.code("frank"));
    let r = suspend(&w, &[], &codes);
    assert_ne!(r.code, 0, "suspended by TOTP:\n{}", r.out);
    assert_eq!(
        r.json()["error"]["reason"],
        "approval_proof_required",
        "{}\n{}",
        r.out,
        r.err
    );

    // Both sign, each on their own YubiKey, found by the key custodyd names.
    let r = suspend(&w, &["--sign", "carol", "--sign", "frank"], "");
    assert_eq!(r.code, 0, "suspend --sign:\n{}\n{}", r.out, r.err);
    assert!(r.err.contains("Signing: user_set_active"), "{}", r.err);
    for (officer, serial) in [("carol", CAROL_KEY), ("frank", FRANK_KEY)] {
        assert!(
            r.err
                .contains(&format!("{officer}: touch your YubiKey {serial}")),
            "whose key to touch: {}",
            r.err
        );
    }
    let shown = format!("{}{}", r.out, r.err);
    assert!(!shown.contains(&user_pass("carol")), "{shown}");
    assert!(
        !shown.contains(&format!("{PIN}\n")),
        "a PIN was echoed: {shown}"
    );
    assert_eq!(r.json()["user"]["active"], false, "{}", r.out);

    // The figure: the signed operation end to end (the command's start to its answer: two
    // challenges, two cards found, two PINs and signatures, custodyd's checks and record).
    let sign = ["--sign", "carol", "--sign", "frank"];
    let mut ms = Vec::new();
    for verb in ["reinstate", "suspend", "reinstate", "suspend", "reinstate"] {
        let t = std::time::Instant::now();
        let r = set_active(&w, verb, &sign, "");
        ms.push(t.elapsed().as_millis());
        assert_eq!(r.code, 0, "{verb} --sign:\n{}\n{}", r.out, r.err);
    }
    ms.sort_unstable();
    println!(
        "presence: two-officer operation signed by both officers, CLI start to answer: median {} ms over {} runs (min {}, max {})",
        ms[ms.len() / 2],
        ms.len(),
        ms[0],
        ms[ms.len() - 1]
    );
    // Leave dave suspended, as the export's check below expects.
    let r = suspend(&w, &sign, "");
    assert_eq!(r.code, 0, "{}\n{}", r.out, r.err);

    // Offline: the export verifies, both presence signatures checked against the keys.
    let _ = w.stop_and_verify();
    let out = w.export();
    let o = output(
        &[
            "--json",
            "audit",
            "verify",
            out.to_str().expect("utf8"),
            "--pubkey",
            &w.public_key,
            "--piv-test-ca",
            ca.to_str().expect("utf8"),
        ],
        "",
    );
    assert_eq!(o.status.code(), Some(0), "{}", support::cli::describe(&o));
    let report: Value = serde_json::from_slice(&o.stdout).expect("verify --json");
    assert_eq!(
        report["presence_signed"], 14,
        "two officers, seven operations: {report}"
    );
    let suspended: Vec<Value> = std::fs::read_to_string(&out)
        .expect("export")
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["kind"] == "user.suspended")
        .collect();
    let presence = suspended[0]["body"]["presence"]
        .as_array()
        .expect("presence in the event");
    let officers: Vec<&str> = presence
        .iter()
        .filter_map(|p| p["officer"].as_str())
        .collect();
    assert_eq!(officers, ["carol", "frank"]);
}
