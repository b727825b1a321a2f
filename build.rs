//! Stamps the binaries' `--version` with the commit and the build date:
//! `CUSTODY_BUILD_COMMIT` (12 hex digits, or `unknown` outside a git checkout or without git)
//! and `CUSTODY_BUILD_DATE` (UTC, `YYYY-MM-DD`: from `SOURCE_DATE_EPOCH` when it is set, so a
//! reproducible build stamps the same date on every machine; else today).
//!
//! Uses nothing but the standard library and, when present, the `git` command.

use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".to_owned());
    let dir = Path::new(&dir);
    println!("cargo:rerun-if-changed=build.rs");
    // Only this tree's own checkout counts: a source tree unpacked inside another repository
    // has no commit of its own.
    let own = git(dir, &["rev-parse", "--show-toplevel"])
        .and_then(|top| Path::new(&top).canonicalize().ok())
        .is_some_and(|top| dir.canonicalize().is_ok_and(|d| d == top));
    let git = |dir: &Path, args: &[&str]| if own { git(dir, args) } else { None };
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    // A new commit or a checkout changes HEAD, or the branch it names, or packed-refs. Only
    // files that exist are named: cargo reruns a build script on every build while a file it
    // names is missing.
    let mut watched = vec!["HEAD".to_owned(), "packed-refs".to_owned()];
    watched.extend(git(dir, &["symbolic-ref", "-q", "HEAD"]));
    for what in &watched {
        if let Some(p) = git(dir, &["rev-parse", "--git-path", what]) {
            let path = dir.join(p);
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
    let commit = git(dir, &["rev-parse", "--short=12", "HEAD"])
        .filter(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_hexdigit()))
        .unwrap_or_else(|| "unknown".to_owned());
    let epoch = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) => match v.trim().parse::<i64>() {
            Ok(secs) => secs,
            Err(e) => panic!("SOURCE_DATE_EPOCH={v:?} is not whole seconds since the epoch: {e}"),
        },
        Err(_) => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
    };
    println!("cargo:rustc-env=CUSTODY_BUILD_COMMIT={commit}");
    println!("cargo:rustc-env=CUSTODY_BUILD_DATE={}", civil_date(epoch));
}

/// The trimmed output of `git ARGS` run in `dir`, or `None` when git is missing, `dir` is not
/// in a checkout, or git fails.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(String::from_utf8(out.stdout).ok()?.trim().to_owned())
}

/// `YYYY-MM-DD` (proleptic Gregorian, UTC) of `secs` since the Unix epoch: the days-to-civil
/// conversion of Howard Hinnant's "chrono-Compatible Low-Level Date Algorithms", as in
/// `custody::report::utc` (a build script cannot use the crate it builds).
fn civil_date(secs: i64) -> String {
    let z = secs.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}
