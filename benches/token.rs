//! SELECT + CALCULATE through the software YubiKey's card frame, in-process and through a real
//! pcscd with the vpcd driver (`custody-emu`); the PIV applet's signature and ATTEST in-process.
//!
//! The pcscd half needs the harness: when not already inside `scripts/with-pcscd.sh`, the bench
//! re-runs itself there (root and `make deps` needed, as for the pcscd tests).
#![allow(missing_docs, clippy::unwrap_used)]

use std::process::{Command as Process, Stdio};
use std::time::{Duration, Instant};

use criterion::{black_box, Criterion};
use mfa_custody::emulator::oath::{AutoTouch, OathState};
use mfa_custody::emulator::SoftKey;
use mfa_custody::token::management::FormFactor;
use mfa_custody::token::oath::{
    CredentialName, OathSecret, OathSession, PutRequest, Selected, TimeStep,
};
use mfa_custody::token::pcsc::PcscContext;
use mfa_custody::token::{CardTransport, TransportError};
use zeroize::Zeroizing;

const PORT: u16 = 41500;

fn name() -> CredentialName {
    CredentialName::parse("AWS:root@example.test").unwrap()
}

fn put<T: CardTransport>(card: T) {
    let Ok(Selected::Ready(mut s)) = OathSession::select(card) else {
        panic!("applet not ready");
    };
    s.put(&PutRequest::totp(
        name(),
        OathSecret::from_bytes(Zeroizing::new(b"12345678901234567890".to_vec())),
    ))
    .unwrap();
}

fn select_and_calculate<T: CardTransport>(card: T, name: &CredentialName) {
    let Ok(Selected::Ready(mut s)) = OathSession::select(card) else {
        panic!("applet not ready");
    };
    black_box(
        s.calculate_totp(name, TimeStep(black_box(56_666_666)))
            .unwrap(),
    );
}

fn in_process(c: &mut Criterion) {
    let mut key = SoftKey::new(
        1,
        [5, 4, 3],
        FormFactor::UsbAKeychain,
        OathState::blank([0; 8]),
        Box::new(AutoTouch),
    );
    put(&mut key);
    let name = name();
    c.bench_function("SELECT + CALCULATE, SoftKey in-process", |b| {
        b.iter(|| select_and_calculate(&mut key, &name))
    });
}

/// Sends `apdu`, collects `61xx` chunks and asserts `9000`; the answer's data.
fn ok(key: &mut SoftKey, apdu: &[u8]) -> Vec<u8> {
    let mut r = key.process(apdu).to_vec();
    let mut data = Vec::new();
    loop {
        let (body, sw) = r.split_at(r.len() - 2);
        data.extend_from_slice(body);
        match sw {
            [0x90, 0x00] => return data,
            [0x61, _] => r = key.process(&[0x00, 0xC0, 0x00, 0x00]).to_vec(),
            _ => panic!("{apdu:02X?} -> {sw:02X?}"),
        }
    }
}

fn piv_in_process(c: &mut Criterion) {
    use mfa_custody::emulator::piv::keys::management_encrypt;
    use mfa_custody::emulator::piv::state::DEFAULT_MANAGEMENT_KEY;

    let mut key = SoftKey::new(
        1,
        [5, 4, 3],
        FormFactor::UsbAKeychain,
        OathState::blank([0; 8]),
        Box::new(AutoTouch),
    );
    ok(
        &mut key,
        &[0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0, 0x00, 0x00, 0x03, 0x08],
    );
    let r = ok(
        &mut key,
        &[0x00, 0x87, 0x03, 0x9B, 0x04, 0x7C, 0x02, 0x81, 0x00],
    );
    let response = management_encrypt(0x03, &DEFAULT_MANAGEMENT_KEY, &r[4..12]).unwrap();
    let mut auth = vec![0x00, 0x87, 0x03, 0x9B, 0x0C, 0x7C, 0x0A, 0x82, 0x08];
    auth.extend_from_slice(&response);
    ok(&mut key, &auth);
    // P-256 in 9E, PIN never, touch never.
    ok(
        &mut key,
        &[0x00, 0x47, 0x00, 0x9E, 0x05, 0xAC, 0x03, 0x80, 0x01, 0x11],
    );
    let mut sign = vec![
        0x00, 0x87, 0x11, 0x9E, 0x26, 0x7C, 0x24, 0x82, 0x00, 0x81, 0x20,
    ];
    sign.extend_from_slice(&[0x5A; 32]);
    c.bench_function("PIV ECDSA P-256 signature, SoftKey in-process", |b| {
        b.iter(|| black_box(ok(&mut key, &sign)))
    });
    // The first ATTEST derives the F9 key and issues its certificate; the bench measures the
    // ones after it.
    let attest = [0x00, 0xF9, 0x9E, 0x00];
    ok(&mut key, &attest);
    c.bench_function("PIV ATTEST, SoftKey in-process", |b| {
        b.iter(|| black_box(ok(&mut key, &attest)))
    });
}

fn through_pcscd(c: &mut Criterion) {
    let mut emu = Process::new(env!("CARGO_BIN_EXE_custody-emu"))
        .args([
            "--serial",
            "20000001",
            "--vpcd",
            &format!("127.0.0.1:{PORT}"),
        ])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let reader = "Yubico YubiKey OTP+FIDO+CCID 00 00";
    let ctx = PcscContext::establish().unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut card = loop {
        match ctx.connect(reader) {
            Ok(card) => break card,
            Err(TransportError::NoCard { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Err(e) => panic!("{e}"),
        }
    };
    put(&mut card);
    let name = name();
    c.bench_function("SELECT + CALCULATE, pcscd + vpcd + custody-emu", |b| {
        b.iter(|| select_and_calculate(&mut card, &name))
    });
    c.bench_function(
        "SELECT + CALCULATE in a PC/SC transaction, pcscd + vpcd",
        |b| {
            b.iter(|| {
                card.with_transaction(|tx| select_and_calculate(tx, &name))
                    .unwrap()
            })
        },
    );
    drop(card);
    let _ = emu.kill();
    let _ = emu.wait();
}

fn main() {
    if std::env::var_os("CUSTODY_PCSCD_HARNESS").is_none() {
        let exe = std::env::current_exe().unwrap();
        let status = Process::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/with-pcscd.sh"
        ))
        .args(["--port", &PORT.to_string(), "--readers", "1", "--"])
        .arg(exe)
        .args(std::env::args_os().skip(1))
        .env_remove("CUSTODY_PCSCD_NS")
        .status()
        .expect("run scripts/with-pcscd.sh (root, `make deps`)");
        std::process::exit(status.code().unwrap_or(1));
    }
    let mut c = Criterion::default()
        .sample_size(30)
        .measurement_time(Duration::from_secs(4))
        .configure_from_args();
    in_process(&mut c);
    piv_in_process(&mut c);
    through_pcscd(&mut c);
    c.final_summary();
}
