//! The Debian package (`make deb`, scripts/build-deb.sh): built from the binaries this test run
//! built, its control fields and contents read back with `dpkg-deb`, then installed, installed
//! again, upgraded, removed and purged by `dpkg` in a throwaway root.
//!
//! The throwaway root is a directory holding a copy of the host's account files
//! (`/etc/passwd`, `group`, `shadow`, `gshadow`, `login.defs`) and a dpkg database that knows
//! only the packages the package depends on. `dpkg --root DIR --force-script-chrootless` runs
//! the maintainer scripts on the host with `DPKG_ROOT=DIR`, and they touch nothing outside DIR
//! (useradd/groupadd/userdel --prefix): no chroot, no mount, no image. The host's own account
//! files are compared before and after. dpkg must run as root to give files their owners, as
//! CI runs the tests; elsewhere this test fails and says so.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::repo;

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("run {cmd:?}: {e} (dpkg and dpkg-dev: run `make deps`)"));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn ok(cmd: &mut Command) -> String {
    let (success, text) = run(cmd);
    assert!(success, "{cmd:?} failed:\n{text}");
    text
}

/// Builds the package of VERSION into `out` from the test build's `custody` and `custodyd`.
fn build(version: &str, out: &Path) -> PathBuf {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_custody"))
        .parent()
        .expect("the binaries' directory");
    let text = ok(Command::new(repo().join("scripts/build-deb.sh"))
        .args(["--version", version, "--out"])
        .arg(out)
        .env("CUSTODY_DEB_BIN_DIR", bin_dir)
        .env("CUSTODY_DEB_COMPRESSION", "none"));
    let deb = PathBuf::from(text.lines().last().expect("the package's path").trim());
    assert!(deb.is_file(), "{text}");
    deb
}

/// A throwaway root: the host's account files and a dpkg database holding `packages` (the
/// package's dependencies) as installed, without their files.
fn throwaway_root(dir: &Path, packages: &[String]) -> PathBuf {
    let root = dir.join("root");
    let admin = root.join("var/lib/dpkg");
    for d in ["info", "updates", "triggers"] {
        std::fs::create_dir_all(admin.join(d)).expect("dpkg's database");
    }
    std::fs::write(admin.join("available"), "").expect("available");
    std::fs::create_dir_all(root.join("etc")).expect("etc");
    for f in ["passwd", "group", "shadow", "gshadow", "login.defs"] {
        std::fs::copy(Path::new("/etc").join(f), root.join("etc").join(f))
            .unwrap_or_else(|e| panic!("copy /etc/{f}: {e}"));
    }
    let mut status = String::new();
    for p in packages {
        let stanza = ok(Command::new("dpkg-query").args(["-s", p]));
        status.push_str(stanza.trim_end());
        status.push_str("\n\n");
        let name = ok(Command::new("dpkg-query").args(["-W", "-f=${binary:Package}", p]));
        std::fs::write(admin.join("info").join(format!("{}.list", name.trim())), "")
            .expect("an empty file list");
    }
    std::fs::write(admin.join("status"), status).expect("status");
    root
}

fn dpkg(root: &Path, args: &[&str]) -> String {
    ok(Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        .arg(format!("--log={}", root.join("dpkg.log").display()))
        .args(["--force-script-chrootless", "--force-confold"])
        .args(args))
}

fn installed_version(root: &Path) -> String {
    let (_, text) = run(Command::new("dpkg-query")
        .arg(format!(
            "--admindir={}",
            root.join("var/lib/dpkg").display()
        ))
        .args(["-W", "-f=${Status} ${Version}", "mfa-custody"]));
    text.trim().to_owned()
}

/// The lines of `root`'s `etc/FILE` that name `custody`.
fn entries(root: &Path, file: &str) -> Vec<String> {
    std::fs::read_to_string(root.join("etc").join(file))
        .expect("account file")
        .lines()
        .filter(|l| l.starts_with("custody:"))
        .map(str::to_owned)
        .collect()
}

fn host_accounts() -> Vec<String> {
    ["passwd", "group", "shadow", "gshadow"]
        .iter()
        .map(|f| std::fs::read_to_string(Path::new("/etc").join(f)).expect("host account file"))
        .collect()
}

#[test]
fn deb_builds_installs_upgrades_removes_and_purges_in_a_throwaway_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "dpkg gives the package's files their owners only as root, as CI runs the tests"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let v1 = build("0.1.0", &dir.path().join("v1"));
    let v2 = build("0.1.0+next", &dir.path().join("v2"));

    // The control fields.
    let field = |deb: &Path, name: &str| {
        ok(Command::new("dpkg-deb").arg("-f").arg(deb).arg(name))
            .trim()
            .to_owned()
    };
    assert_eq!(field(&v1, "Package"), "mfa-custody");
    assert_eq!(field(&v2, "Version"), "0.1.0+next");
    let depends = field(&v1, "Depends");
    let names: Vec<String> = depends
        .split(',')
        .map(|d| d.split_whitespace().next().unwrap_or_default().to_owned())
        .collect();
    for want in ["pcscd", "libc6", "libpcsclite1", "libssl3"] {
        assert!(names.iter().any(|n| n == want), "Depends: {depends}");
    }
    let info = ok(Command::new("dpkg-deb").arg("-I").arg(&v1).arg("conffiles"));
    assert_eq!(info.trim(), "/etc/custody/custody.toml");

    // The contents.
    let listing = ok(Command::new("dpkg-deb").arg("-c").arg(&v1));
    let paths: Vec<&str> = listing
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .collect();
    let mut want = vec![
        "./usr/bin/custody".to_owned(),
        "./usr/bin/custodyd".to_owned(),
        "./lib/systemd/system/custodyd.service".to_owned(),
        "./etc/custody/custody.toml".to_owned(),
        "./usr/share/polkit-1/rules.d/60-custody-pcsc.rules".to_owned(),
        "./usr/share/bash-completion/completions/custody".to_owned(),
        "./usr/share/zsh/vendor-completions/_custody".to_owned(),
        "./usr/share/fish/vendor_completions.d/custody.fish".to_owned(),
        "./usr/share/doc/mfa-custody/daemon.md".to_owned(),
        "./usr/share/doc/mfa-custody/copyright".to_owned(),
    ];
    let mut pages = Vec::new();
    mfa_custody::cli::generate::collect_page_names(
        &<mfa_custody::cli::Cli as clap::CommandFactory>::command(),
        "custody",
        &mut pages,
    );
    assert!(pages.len() > 40, "{pages:?}");
    want.extend(pages.iter().map(|p| format!("./usr/share/man/man1/{p}.gz")));
    want.push("./usr/share/man/man8/custodyd.8.gz".to_owned());
    for w in &want {
        assert!(
            paths.contains(&w.as_str()),
            "{w} in the package:\n{listing}"
        );
    }
    for p in &paths {
        assert!(
            !p.contains("custody-emu") && !p.contains("testclock") && !p.contains("hsm-fixtures"),
            "{p}: test-only files are never packaged"
        );
    }

    // Install.
    let host_before = host_accounts();
    let root = throwaway_root(dir.path(), &names);
    let said = dpkg(&root, &["-i", &v1.to_string_lossy()]);
    assert!(said.contains("run the genesis ceremony"), "{said}");
    assert_eq!(installed_version(&root), "install ok installed 0.1.0");
    let user = entries(&root, "passwd");
    assert_eq!(user.len(), 1, "{user:?}");
    let f: Vec<&str> = user[0].split(':').collect();
    let (uid, gid): (u32, u32) = (f[2].parse().expect("uid"), f[3].parse().expect("gid"));
    assert!(uid < 1000, "a system user: {}", user[0]);
    assert_eq!(f[5..], ["/var/lib/custody", "/usr/sbin/nologin"]);
    let group = entries(&root, "group");
    assert_eq!(group.len(), 1, "{group:?}");
    assert!(
        group[0].starts_with(&format!("custody:x:{gid}:")),
        "{group:?}"
    );
    let state = root.join("var/lib/custody");
    let meta = std::fs::metadata(&state).expect("the state directory");
    assert_eq!(meta.permissions().mode() & 0o7777, 0o700);
    assert_eq!((meta.uid(), meta.gid()), (uid, gid));
    let version = ok(Command::new(root.join("usr/bin/custodyd")).arg("--version"));
    assert!(version.starts_with("custodyd 0.1.0 (commit "), "{version}");
    assert_eq!(
        std::fs::read(root.join("lib/systemd/system/custodyd.service")).expect("unit"),
        std::fs::read(repo().join("packaging/custodyd.service")).expect("unit")
    );
    let installed_page = root.join("usr/share/man/man1/custody-request-code.1.gz");
    assert!(installed_page.is_file());
    // custodyd(8), from custodyd's own command line: its options, exit statuses and files.
    let daemon_page = root.join("usr/share/man/man8/custodyd.8.gz");
    let mut roff = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(std::fs::File::open(&daemon_page).expect("custodyd.8")),
        &mut roff,
    )
    .expect("a gzipped page");
    for said in [
        ".TH custodyd 8 ",
        "\\fB\\-\\-check\\-config\\fR",
        ".SH \"EXIT STATUS\"",
        "/etc/custody/custody.toml",
        "\\fBcustody\\fR(1)",
    ] {
        assert!(roff.contains(said), "{said:?} in custodyd(8):\n{roff}");
    }

    // An administrator edits the configuration; genesis makes a ledger.
    let conf = root.join("etc/custody/custody.toml");
    let mut edited = std::fs::read_to_string(&conf).expect("conffile");
    edited.push_str("\n# edited on this host\n");
    std::fs::write(&conf, &edited).expect("edit");
    let ledger = state.join("ledger");
    std::fs::create_dir(&ledger).expect("ledger dir");
    std::fs::write(ledger.join("ledger.db"), b"the ledger").expect("ledger");

    // Installing again and upgrading change neither the user nor the edits nor the ledger.
    dpkg(&root, &["-i", &v1.to_string_lossy()]);
    dpkg(&root, &["-i", &v2.to_string_lossy()]);
    assert_eq!(installed_version(&root), "install ok installed 0.1.0+next");
    assert_eq!(entries(&root, "passwd"), user, "one user, the same uid");
    assert_eq!(entries(&root, "group"), group);
    assert_eq!(std::fs::read_to_string(&conf).expect("conffile"), edited);
    assert_eq!(
        std::fs::read(ledger.join("ledger.db")).expect("ledger"),
        b"the ledger"
    );

    // Remove: the programs go; the configuration, the user and the ledger stay.
    dpkg(&root, &["-r", "mfa-custody"]);
    assert!(!root.join("usr/bin/custodyd").exists());
    assert!(!installed_page.exists());
    assert!(!daemon_page.exists(), "custodyd(8) goes with the package");
    assert_eq!(
        installed_version(&root),
        "deinstall ok config-files 0.1.0+next"
    );
    assert!(conf.is_file());
    assert_eq!(entries(&root, "passwd"), user);

    // Purge: the user, the group and the configuration go; the ledger stays, and is named.
    let said = dpkg(&root, &["-P", "mfa-custody"]);
    assert!(
        said.contains("kept") && said.contains("var/lib/custody"),
        "{said}"
    );
    for f in ["passwd", "group", "shadow", "gshadow"] {
        assert_eq!(entries(&root, f), Vec::<String>::new(), "{f} after purge");
    }
    assert!(!conf.exists(), "the conffile goes with purge");
    assert_eq!(
        std::fs::read(ledger.join("ledger.db")).expect("ledger"),
        b"the ledger"
    );

    assert_eq!(
        host_accounts(),
        host_before,
        "the host's own accounts are untouched"
    );
}
