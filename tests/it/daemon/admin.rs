//! What an administrator meets before the daemon serves anyone: `custodyd --check-config`,
//! `--version` on both binaries (version, commit, build date), and a startup error said once.

use std::path::Path;
use std::process::{Command, Output};

use crate::support::repo;

fn run(program: &str, args: &[&str]) -> (i32, String, String) {
    let out: Output = Command::new(program)
        .args(args)
        .env_remove("CUSTODY_SOCKET")
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn custodyd(args: &[&str]) -> (i32, String, String) {
    run(env!("CARGO_BIN_EXE_custodyd"), args)
}

#[test]
fn check_config_accepts_the_shipped_file() {
    let shipped = repo().join("packaging/custody.toml");
    let (code, out, err) = custodyd(&["--check-config", &shipped.to_string_lossy()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("custody.toml is valid"), "{out}");
    assert!(
        out.contains("policy.approval_proof = \"either\""),
        "--check-config shows the approval proof policy: {out}"
    );
    assert_eq!(err, "", "nothing on standard error for a valid file");
}

#[test]
fn check_config_lists_every_problem_once_and_exits_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("custody.toml");
    std::fs::write(
        &file,
        "ledger_dir = \"/var/lib/custody/ledger\"\nsocket = \"custodyd.sock\"\n\
         max_conections = 4\nsession_idle_secs = 0\nsocket_group = \"no-such-group-here\"\n\
         [policy]\napprovals = 1\nticket_max_digits = \"ten\"\n",
    )
    .expect("config");
    let (code, out, err) = custodyd(&["--check-config", &file.to_string_lossy()]);
    assert_eq!(code, 2, "{out}{err}");
    assert_eq!(out, "", "problems go to standard error only");
    let lines: Vec<&str> = err.lines().collect();
    assert!(
        lines[0].ends_with("custody.toml is not valid (5 problems):"),
        "{err}"
    );
    for key in [
        "max_conections: unknown key (did you mean max_connections?)",
        "socket: is \"custodyd.sock\", a relative path",
        "session_idle_secs: is 0; it must be from 1 to session_absolute_secs",
        "policy.approvals: is 1; dual control needs at least 2 approvals",
        "policy.ticket_max_digits: is \"ten\" (a string); it must be a whole number",
    ] {
        let hits = lines
            .iter()
            .filter(|l| l.trim_start().starts_with(key))
            .count();
        assert_eq!(hits, 1, "{key:?} exactly once in:\n{err}");
    }
    // The host's part (the socket's group) is judged only once the file itself is valid.
    assert!(!err.contains("socket_group"), "{err}");
    std::fs::write(
        &file,
        "ledger_dir = \"/var/lib/custody/ledger\"\nsocket = \"/run/custody/custodyd.sock\"\n\
         socket_group = \"no-such-group-here\"\n",
    )
    .expect("config");
    let (code, _, err) = custodyd(&["--check-config", &file.to_string_lossy()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("socket_group: is \"no-such-group-here\", which is not a group of this host"),
        "{err}"
    );
    // A missing file and a file that is not TOML are one problem each.
    let (code, _, err) = custodyd(&["--check-config", "/nonexistent/custody.toml"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("cannot read /nonexistent/custody.toml"),
        "{err}"
    );
    std::fs::write(&file, "ledger_dir = [\n").expect("config");
    let (code, _, err) = custodyd(&["--check-config", &file.to_string_lossy()]);
    assert_eq!(code, 2);
    assert!(
        err.contains("(1 problem):") && err.contains("line 1"),
        "{err}"
    );
}

#[test]
fn check_config_names_a_test_attestation_ca_it_cannot_read_and_accepts_the_fixture() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("custody.toml");
    let base =
        "ledger_dir = \"/var/lib/custody/ledger\"\nsocket = \"/run/custody/custodyd.sock\"\n";
    let missing = dir.path().join("no-such-ca.pem");
    std::fs::write(
        &file,
        format!(
            "{base}piv_attestation_test_ca = \"{}\"\n",
            missing.display()
        ),
    )
    .expect("config");
    let (code, out, err) = custodyd(&["--check-config", &file.to_string_lossy()]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("piv_attestation_test_ca: cannot read") && err.contains("no-such-ca.pem"),
        "{err}"
    );
    let ca = repo().join("hsm-fixtures/piv-test-ca.pem");
    std::fs::write(
        &file,
        format!("{base}piv_attestation_test_ca = \"{}\"\n", ca.display()),
    )
    .expect("config");
    let (code, out, err) = custodyd(&["--check-config", &file.to_string_lossy()]);
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn check_config_shows_whether_devices_must_be_attested_and_by_which_anchors() {
    let shipped = repo().join("packaging/custody.toml");
    let (code, out, err) = custodyd(&["--check-config", &shipped.to_string_lossy()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("policy.require_attested_devices = false")
            && out.contains("unattested keys are accepted")
            && out.contains("Yubico's published PIV attestation roots"),
        "{out}"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("custody.toml");
    let ca = repo().join("hsm-fixtures/piv-test-ca.pem");
    std::fs::write(
        &file,
        format!(
            "ledger_dir = \"/var/lib/custody/ledger\"\nsocket = \"/run/custody/custodyd.sock\"\n\
             piv_attestation_test_ca = \"{}\"\n[policy]\nrequire_attested_devices = true\n",
            ca.display()
        ),
    )
    .expect("config");
    let (code, out, err) = custodyd(&["--check-config", &file.to_string_lossy()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("policy.require_attested_devices = true")
            && out.contains("unattested keys are refused")
            && out.contains("piv-test-ca.pem (tests and demos only)"),
        "{out}"
    );
}

#[test]
fn check_config_and_config_together_are_a_usage_error() {
    let shipped = repo().join("packaging/custody.toml");
    let s = shipped.to_string_lossy();
    let (code, _, err) = custodyd(&["--check-config", &s, "--config", &s]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot be used with"), "{err}");
    let (code, _, err) = custodyd(&[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--config <FILE>"), "{err}");
}

/// `NAME 0.1.0 (commit 0123456789ab, built 2026-12-02)`, the commit being this checkout's.
fn assert_version(name: &str, text: &str) {
    let line = text.trim();
    let want = format!("{name} {} (commit ", env!("CARGO_PKG_VERSION"));
    assert!(line.starts_with(&want), "{line:?}");
    let rest = &line[want.len()..];
    let (commit, date) = rest
        .strip_suffix(')')
        .and_then(|r| r.split_once(", built "))
        .unwrap_or_else(|| panic!("{line:?}"));
    let head = Command::new("git")
        .args([
            "-C",
            &repo().to_string_lossy(),
            "rev-parse",
            "--short=12",
            "HEAD",
        ])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    match head {
        // The binaries are built from this tree; its HEAD may have moved on since.
        Some(_) => assert!(
            commit.len() == 12 && commit.bytes().all(|b| b.is_ascii_hexdigit()),
            "{line:?}"
        ),
        None => assert_eq!(commit, "unknown", "{line:?}"),
    }
    let d: Vec<&str> = date.split('-').collect();
    assert!(
        d.len() == 3 && [4, 2, 2] == [d[0].len(), d[1].len(), d[2].len()],
        "{line:?}"
    );
}

#[test]
fn both_binaries_print_version_commit_and_build_date() {
    let (code, out, err) = custodyd(&["--version"]);
    assert_eq!(code, 0, "{err}");
    assert_version("custodyd", &out);
    let (code, out, err) = run(env!("CARGO_BIN_EXE_custody"), &["--version"]);
    assert_eq!(code, 0, "{err}");
    assert_version("custody", &out);
}

/// The build script itself, compiled and run as cargo runs it, in a source tree without `.git`
/// and with `SOURCE_DATE_EPOCH` set: the commit is `unknown`, the date is the epoch's.
#[test]
fn build_stamp_without_git_and_with_source_date_epoch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = dir.path().join("build-script");
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = Command::new(&rustc)
        .args(["--edition", "2021", "-O", "-o"])
        .arg(&exe)
        .arg(repo().join("build.rs"))
        .output()
        .expect("run rustc");
    assert!(
        out.status.success(),
        "compiling build.rs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = dir.path().join("src-tree");
    std::fs::create_dir(&tree).expect("tree");
    let stamp = |epoch: &str, tree: &Path| {
        let out = Command::new(&exe)
            .env("CARGO_MANIFEST_DIR", tree)
            .env("SOURCE_DATE_EPOCH", epoch)
            .env("GIT_CEILING_DIRECTORIES", dir.path())
            .output()
            .expect("run the build script");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, out, err) = stamp("1796169600", &tree);
    assert!(ok, "{err}");
    assert!(
        out.contains("cargo:rustc-env=CUSTODY_BUILD_COMMIT=unknown\n"),
        "{out}"
    );
    assert!(
        out.contains("cargo:rustc-env=CUSTODY_BUILD_DATE=2026-12-02\n"),
        "{out}"
    );
    let (_, out, _) = stamp("951782400", &tree);
    assert!(out.contains("CUSTODY_BUILD_DATE=2000-02-29\n"), "{out}");
    let (ok, _, err) = stamp("yesterday", &tree);
    assert!(
        !ok && err.contains("SOURCE_DATE_EPOCH=\"yesterday\""),
        "{err}"
    );
}

/// A daemon that cannot start says why once, on standard error (the journal under systemd).
#[test]
fn a_startup_error_is_printed_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("no-ledger");
    let config = crate::support::custodyd::config(
        dir.path(),
        &missing,
        &dir.path().join("custodyd.sock"),
        "watch_readers = false\n",
    );
    let (code, _, err) = custodyd(&["--config", &config.to_string_lossy()]);
    assert_eq!(code, 4, "a missing ledger directory: {err}");
    let said = format!("ledger directory {}", missing.display());
    assert_eq!(err.matches(&said).count(), 1, "said once:\n{err}");
    std::fs::write(&config, "ledger_dir = 1\n").expect("config");
    let (code, _, err) = custodyd(&["--config", &config.to_string_lossy()]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(
        err.matches("ledger_dir: is 1").count(),
        1,
        "said once:\n{err}"
    );
    assert_eq!(
        err.matches("socket: missing").count(),
        1,
        "said once:\n{err}"
    );
}
