//! Yubico's own tools against the software YubiKey's PIV applet through a real pcscd:
//! `yubico-piv-tool -a status`, `ykman piv info`, `ykman piv keys generate` and `attest`, the
//! chain checked with `openssl verify` up to the test attestation CA, a self-signed certificate
//! ykman makes with the key and stores, and an AES-256 management key set and used by ykman.
//!
//! ykman is given `--device SERIAL`: it counts Yubico-named readers, card or not
//! (`ykman/device.py`, `scan_devices`), and vpcd always presents two.
//!
//! Re-runs itself inside `scripts/with-pcscd.sh` (see `support`). Needs root, pcscd,
//! vsmartcard-vpcd, yubico-piv-tool, yubikey-manager and openssl (`make deps`); a missing tool
//! fails the test.

use std::path::Path;
use std::process::Command;

use der::{DecodePem, Encode};
use x509_cert::Certificate;

use crate::support::{in_harness, repo, wait_for_card, Emu};

const SERIAL: &str = "10000077";

/// Runs a tool; its stdout, after asserting it succeeded.
fn run(tool: &str, args: &[&str]) -> String {
    let out = match Command::new(tool).args(args).output() {
        Ok(o) => o,
        Err(e) => panic!("{tool} is not installed or not runnable ({e}): run `make deps`"),
    };
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{tool} {args:?} failed ({}): {stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn ykman(args: &[&str]) -> String {
    let mut all = vec!["--device", SERIAL];
    all.extend_from_slice(args);
    run("ykman", &all)
}

fn pem_cert(path: &Path) -> Certificate {
    let pem = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Certificate::from_pem(&pem).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn pcscd_yubico_piv_tool_and_ykman_drive_the_piv_applet() {
    if !in_harness(
        "pcscd_yubico_piv_tool_and_ykman_drive_the_piv_applet",
        44710,
        1,
    ) {
        return;
    }
    let _emu = Emu::start(0, &["--serial", SERIAL, "--firmware", "5.4.3"]);
    wait_for_card(0);

    let status = run("yubico-piv-tool", &["-a", "status"]);
    assert!(status.contains("Version:\t5.4.3"), "{status}");
    assert!(
        status.contains(&format!("Serial Number:\t{SERIAL}")),
        "{status}"
    );
    assert!(status.contains("PIN tries left:\t3"), "{status}");

    let info = ykman(&["piv", "info"]);
    assert!(info.contains("PIV version: 5.4.3"), "{info}");
    assert!(info.contains("PIN tries remaining: 3/3"), "{info}");
    assert!(info.contains("Using default Management key"), "{info}");
    assert!(info.contains("Management key algorithm: TDES"), "{info}");

    let dir = tempfile::tempdir().expect("tempdir");
    let file = |name: &str| dir.path().join(name);
    let path = |name: &str| file(name).to_str().expect("utf-8 path").to_owned();
    ykman(&[
        "piv",
        "keys",
        "generate",
        "--management-key",
        "010203040506070801020304050607080102030405060708",
        "--algorithm",
        "ECCP256",
        "--pin-policy",
        "ONCE",
        "--touch-policy",
        "NEVER",
        "9a",
        &path("pub.pem"),
    ]);
    ykman(&["piv", "keys", "attest", "9a", &path("att.pem")]);
    ykman(&["piv", "certificates", "export", "f9", &path("f9.pem")]);

    let public = std::fs::read_to_string(file("pub.pem")).expect("public key");
    let public = spki::SubjectPublicKeyInfoOwned::from_pem(public.as_bytes()).expect("SPKI");
    let att = pem_cert(&file("att.pem"));
    assert_eq!(
        att.tbs_certificate
            .subject_public_key_info
            .to_der()
            .expect("der"),
        public.to_der().expect("der"),
        "the attested key is the generated one"
    );
    assert_eq!(
        att.tbs_certificate.subject.to_string(),
        "CN=YubiKey PIV Attestation 9a"
    );

    let ca = repo().join("hsm-fixtures/piv-test-ca.pem");
    let verified = run(
        "openssl",
        &[
            "verify",
            "-CAfile",
            ca.to_str().expect("utf-8 path"),
            "-untrusted",
            &path("f9.pem"),
            &path("att.pem"),
        ],
    );
    assert!(verified.contains(": OK"), "{verified}");

    // ykman signs a certificate for the key with it (GENERAL AUTHENTICATE with the PIN) and
    // stores it (PUT DATA); both tools then show it in slot 9a.
    ykman(&[
        "piv",
        "certificates",
        "generate",
        "--management-key",
        "010203040506070801020304050607080102030405060708",
        "--pin",
        "123456",
        "--subject",
        "CN=officer-one",
        "9a",
        &path("pub.pem"),
    ]);
    let info = ykman(&["piv", "info"]);
    assert!(info.contains("Subject DN:\tCN=officer-one"), "{info}");
    let status = run("yubico-piv-tool", &["-a", "status"]);
    assert!(status.contains("Slot 9a:"), "{status}");
    assert!(status.contains("CN=officer-one"), "{status}");
    ykman(&["piv", "certificates", "export", "9a", &path("cert9a.pem")]);
    let cert = pem_cert(&file("cert9a.pem"));
    assert_eq!(
        cert.tbs_certificate.subject_public_key_info,
        att.tbs_certificate.subject_public_key_info
    );

    // yubico-piv-tool attests the same key too.
    let again = run("yubico-piv-tool", &["-a", "attest", "-s", "9a"]);
    let again = Certificate::from_pem(again.as_bytes()).expect("PEM certificate");
    assert_eq!(
        again.tbs_certificate.subject_public_key_info,
        att.tbs_certificate.subject_public_key_info
    );
    assert_ne!(
        again.tbs_certificate.serial_number, att.tbs_certificate.serial_number,
        "each attestation has a fresh random serial"
    );

    // An AES-256 management key (firmware 5.4), set and then used by ykman.
    let aes = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    ykman(&[
        "piv",
        "access",
        "change-management-key",
        "--algorithm",
        "AES256",
        "--management-key",
        "010203040506070801020304050607080102030405060708",
        "--new-management-key",
        aes,
        "--force",
    ]);
    let info = ykman(&["piv", "info"]);
    assert!(info.contains("Management key algorithm: AES256"), "{info}");
    assert!(!info.contains("Using default Management key"), "{info}");
    ykman(&[
        "piv",
        "keys",
        "generate",
        "--management-key",
        aes,
        "--algorithm",
        "ECCP256",
        "9c",
        &path("pub9c.pem"),
    ]);
}
