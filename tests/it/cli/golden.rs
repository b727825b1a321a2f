//! Golden CLI scenarios: one file per user story in `tests/golden/`, run against a real
//! `custodyd` on a temporary directory, so the words of the CLI are reviewed like code. The
//! daemon is `custodyd-testclock` on the scenario's clock: where an officer would wait for a
//! fresh second-factor step, the clock moves to it.
//!
//! A scenario `NAME.toml` is a list of steps:
//!
//! ```toml
//! daemon = true            # false: no daemon is started (usage errors, offline commands)
//! [[step]]
//! args = ["user", "add", "frank", "--role", "officer", "--by", "alice", "--by", "bob",
//!         "--passphrase-fd", "3", "--totp-fd", "4"]
//! fd3 = "{pass:alice}\n{pass:bob}\n{pass:frank}\n"   # optional; also `stdin`, `fd4`
//! fd4 = "{totp:alice}\n{totp:bob}\n"
//! status = 0               # the exit status, always checked
//! [[step]]
//! edit = { file = "{tmp}/export.jsonl", find = "a", replace = "b" }   # instead of args
//! ```
//!
//! Inputs (args, stdin, fd3, fd4, edit) may use: `{pass:NAME}` the user passphrase of NAME,
//! `{totp:NAME}` a fresh second-factor code of officer NAME (never one already used),
//! `{totp-used:NAME}` the code NAME gave last (its step spent),
//! `{tmp}` the scenario's directory, `{pubkey}` the ledger's checkpoint key, `{req:N}` the Nth
//! request id seen in the output so far. Officers alice, bob and carol exist at the start (see
//! [`unsealed_room`]); a seed printed by `user add` is remembered for `{totp:NAME}`.
//!
//! The whole transcript, normalized, must equal `NAME.out`: each step is `$ custody ARGS`,
//! then `> ` standard output lines, `! ` standard error lines and `= exit N`. Normalized:
//! the temporary directory → `<TMP>`, request and incident ids → `<REQ-n>` / `<INC-n>`
//! (numbered by first appearance), 13-digit millisecond times → `<MS>`, RFC 3339 times
//! (`2026-12-01T18:47:45Z`, `...+01:00`) → `<TIME>`, hex runs of 32
//! characters or more → `<HEX>`, key fingerprints (`3de4:fc96:…`) → `<FINGERPRINT>`, Base32
//! seeds → `<BASE32>`, `otpauth://` URIs → `<OTPAUTH>`.
//! A difference prints a line diff; `GOLDEN_UPDATE=1 cargo test --features test-clock --test
//! golden` rewrites the `.out` files (exit statuses are still checked).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use serde::Deserialize;

use crate::support::clock;

use clock::{custodyd_testclock, totp, TestClock};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Scenario {
    #[serde(default = "yes")]
    daemon: bool,
    step: Vec<Step>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Step {
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    stdin: String,
    #[serde(default)]
    fd3: String,
    #[serde(default)]
    fd4: String,
    #[serde(default)]
    edit: Option<Edit>,
    #[serde(default)]
    status: i32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Edit {
    file: String,
    find: String,
    replace: String,
}

/// Keyring passphrases of the officers who unseal.
const UNSEAL: &[(&str, &str)] = &[
    ("alice", "alice-Unseal-Phrase-1"),
    ("bob", "bob-Unseal-Phrase-22"),
    ("carol", "carol-Unseal-Phrase-333"),
];

/// The user passphrase of `name` in every scenario.
fn user_pass(name: &str) -> String {
    format!("{name}-User-Phrase-9")
}

struct Daemon {
    _process: Process,
    socket: PathBuf,
}

/// One scenario's world: its directory, its daemon, the officers' second-factor seeds and the
/// last step each used.
struct Room {
    dir: tempfile::TempDir,
    daemon: Option<Daemon>,
    /// The scenario's time: custodyd's, and the officers' authenticators'.
    clock: TestClock,
    pubkey: String,
    seeds: BTreeMap<String, String>,
    last_step: BTreeMap<String, u64>,
    requests: Vec<String>,
}

use crate::support::cli::{Custody, Run as Out};
use crate::support::custodyd::{config, spawn_listening, Process};

/// Runs `custody` with `stdin` and the given contents on descriptors 3 and 4.
fn custody(args: &[String], stdin: &str, fd3: &str, fd4: &str, room: &Room) -> Out {
    let tmp = room.dir.path();
    let mut custody = Custody::new(args)
        .stdin(stdin)
        .fd3(fd3)
        .fd4(fd4)
        .files_in(tmp)
        // `custody login` keeps its session in the scenario's own directory.
        .runtime_dir(&tmp.join("run"));
    if let Some(d) = &room.daemon {
        custody = custody.env("CUSTODY_SOCKET", &d.socket);
    }
    custody.run()
}

fn strings(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| (*s).to_owned()).collect()
}

/// The world every daemon scenario starts from: `custody init` with keyring officers alice,
/// bob and carol (threshold 2), a `custodyd` on it, unsealed by alice and bob, and the three
/// bootstrapped as custody officers with the passphrases of [`user_pass`].
fn unsealed_room(room: &mut Room) {
    let ledger = room.dir.path().join("ledger");
    let socket = room.dir.path().join("custodyd.sock");
    let l = ledger.to_string_lossy().into_owned();
    let mut args = strings(&["--json", "init", "--ledger", &l]);
    for (who, _) in UNSEAL {
        args.extend(strings(&["--officer", who]));
    }
    args.extend(strings(&[
        "--passphrase-fd",
        "0",
        "--insecure-test-kdf-iterations",
        "1000",
    ]));
    let pass: String = UNSEAL.iter().map(|(_, p)| format!("{p}\n")).collect();
    let init = custody(&args, &pass, "", "", room);
    assert_eq!(init.code, 0, "init: {}{}", init.out, init.err);
    let v: serde_json::Value = serde_json::from_str(&init.out).expect("init JSON");
    room.pubkey = v["public_key"].as_str().expect("public key").to_owned();
    let config = config(
        room.dir.path(),
        &ledger,
        &socket,
        "watch_readers = false\n\n[policy]\npassphrase_kdf_iterations = 1000\n",
    );
    let mut cmd = Command::new(custodyd_testclock());
    cmd.args(["--config", &config.to_string_lossy()])
        .args(room.clock.args());
    let child = spawn_listening(cmd, &socket, &room.dir.path().join("custodyd.log"));
    room.daemon = Some(Daemon {
        _process: Process(child),
        socket,
    });
    for (who, pass) in &UNSEAL[..2] {
        let r = custody(
            &strings(&["unseal", "--officer", who, "--passphrase-fd", "0"]),
            &format!("{pass}\n"),
            "",
            "",
            room,
        );
        assert_eq!(r.code, 0, "unseal {who}: {}{}", r.out, r.err);
    }
    for (who, keyring) in UNSEAL {
        // The keyring passphrase proves the officer; then the new user passphrase, twice.
        let pass = user_pass(who);
        let r = custody(
            &strings(&["--json", "user", "bootstrap", who, "--passphrase-fd", "0"]),
            &format!("{keyring}\n{pass}\n{pass}\n"),
            "",
            "",
            room,
        );
        assert_eq!(r.code, 0, "bootstrap {who}: {}{}", r.out, r.err);
        let v: serde_json::Value = serde_json::from_str(&r.out).expect("bootstrap JSON");
        let seed = v["factor"]["base32"].as_str().expect("seed").to_owned();
        room.seeds.insert((*who).to_owned(), seed);
    }
}

impl Room {
    /// A code of `officer`'s second factor that the daemon will accept: the oldest step it
    /// still accepts (the previous one) that this officer has not used, moving the clock to the
    /// next step when both were used, and never within 3 s of a step's end.
    fn totp(&mut self, officer: &str) -> String {
        let seed = self
            .seeds
            .get(officer)
            .unwrap_or_else(|| panic!("no second factor known for {officer:?}"))
            .clone();
        // Never within 3 s of a step's end.
        let step = self
            .clock
            .unused_step(self.last_step.get(officer).copied(), 4);
        self.last_step.insert(officer.to_owned(), step);
        totp(&seed, step)
    }

    /// The code of the step `officer` used last: one custodyd has spent.
    fn totp_used(&self, officer: &str) -> String {
        let step = self
            .last_step
            .get(officer)
            .unwrap_or_else(|| panic!("{{totp-used:{officer}}}: {officer} gave no code yet"));
        totp(&self.seeds[officer], *step)
    }

    /// Expands the input placeholders.
    fn expand(&mut self, text: &str) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            let Some(close) = rest[open..].find('}') else {
                break;
            };
            let inner = &rest[open + 1..open + close];
            let value = match inner.split_once(':') {
                Some(("pass", who)) => Some(user_pass(who)),
                Some(("totp", who)) => Some(self.totp(who)),
                Some(("totp-used", who)) => Some(self.totp_used(who)),
                Some(("req", n)) => {
                    let n: usize = n.parse().expect("{req:N} takes a number");
                    Some(
                        self.requests
                            .get(n.wrapping_sub(1))
                            .unwrap_or_else(|| panic!("{{req:{n}}}: no such request seen yet"))
                            .clone(),
                    )
                }
                None if inner == "tmp" => Some(self.dir.path().to_string_lossy().into_owned()),
                None if inner == "pubkey" => Some(self.pubkey.clone()),
                _ => None,
            };
            out.push_str(&rest[..open]);
            match value {
                Some(v) => out.push_str(&v),
                None => out.push_str(&rest[open..=open + close]),
            }
            rest = &rest[open + close + 1..];
        }
        out.push_str(rest);
        out
    }

    /// Remembers request ids and printed second-factor seeds (`user add` of an officer).
    fn learn(&mut self, args: &[String], text: &str) {
        for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')) {
            if is_id(word, "req-") && !self.requests.iter().any(|r| r == word) {
                self.requests.push(word.to_owned());
            }
        }
        if args.iter().any(|a| a == "add") {
            if let (Some(pos), Some(seed)) = (
                args.iter().position(|a| a == "add"),
                text.lines()
                    .find_map(|l| l.trim().strip_prefix("base32: "))
                    .map(str::to_owned)
                    .or_else(|| {
                        serde_json::from_str::<serde_json::Value>(text)
                            .ok()
                            .and_then(|v| v["factor"]["base32"].as_str().map(str::to_owned))
                    }),
            ) {
                if let Some(name) = args.get(pos + 1) {
                    self.seeds.insert(name.clone(), seed);
                }
            }
        }
    }
}

fn is_id(word: &str, prefix: &str) -> bool {
    word.strip_prefix(prefix)
        .is_some_and(|h| h.len() == 16 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Whether `w` is an RFC 3339 time to the second, `2026-12-01T18:47:45Z` or with an offset
/// `+01:00`.
fn is_rfc3339(w: &str) -> bool {
    let b = w.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|s| s.iter().all(u8::is_ascii_digit));
    let shape = digits(0..4)
        && b.get(4) == Some(&b'-')
        && digits(5..7)
        && b.get(7) == Some(&b'-')
        && digits(8..10)
        && b.get(10) == Some(&b'T')
        && digits(11..13)
        && b.get(13) == Some(&b':')
        && digits(14..16)
        && b.get(16) == Some(&b':')
        && digits(17..19);
    shape
        && match b.get(19..) {
            Some(b"Z") => true,
            Some([sign, ..]) if (*sign == b'+' || *sign == b'-') && b.len() == 25 => {
                digits(20..22) && b.get(22) == Some(&b':') && digits(23..25)
            }
            _ => false,
        }
}

/// Replaces the volatile parts of a transcript with placeholders (see the module docs).
fn normalize(text: &str, tmp: &str, ids: &mut BTreeMap<String, String>) -> String {
    let text = text.replace(tmp, "<TMP>");
    // Key fingerprints: four or more colon-separated groups of four hex digits.
    let text: String = text
        .split_inclusive(char::is_whitespace)
        .map(|t| {
            let word = t.trim_end();
            let groups: Vec<&str> = word.split(':').collect();
            if groups.len() >= 4
                && groups
                    .iter()
                    .all(|g| g.len() == 4 && g.bytes().all(|b| b.is_ascii_hexdigit()))
            {
                format!("<FINGERPRINT>{}", &t[word.len()..])
            } else if let Some(time) = word
                .split(|c: char| "()[],;\"".contains(c))
                .find(|w| is_rfc3339(w.trim_end_matches('.')))
            {
                t.replacen(time.trim_end_matches('.'), "<TIME>", 1)
            } else {
                t.to_owned()
            }
        })
        .collect();
    let mut out = String::new();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String, ids: &mut BTreeMap<String, String>| {
        if word.is_empty() {
            return;
        }
        let w = std::mem::take(word);
        let replaced = if w.starts_with("otpauth://") {
            "<OTPAUTH>".to_owned()
        } else if is_id(&w, "req-") || is_id(&w, "inc-") {
            let kind = if w.starts_with("req-") { "REQ" } else { "INC" };
            let n = ids
                .values()
                .filter(|v| v.starts_with(&format!("<{kind}-")))
                .count()
                + 1;
            ids.entry(w.clone())
                .or_insert_with(|| format!("<{kind}-{n}>"))
                .clone()
        } else if w.len() == 13 && w.bytes().all(|b| b.is_ascii_digit()) {
            "<MS>".to_owned()
        } else if w.len() >= 32 && w.bytes().all(|b| b.is_ascii_hexdigit()) {
            "<HEX>".to_owned()
        } else if w.len() >= 26
            && w.bytes()
                .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b) || b == b'=')
        {
            "<BASE32>".to_owned()
        } else {
            w
        };
        out.push_str(&replaced);
    };
    for c in text.chars() {
        let in_uri = word.starts_with("otpauth:");
        if c.is_ascii_alphanumeric()
            || c == '-'
            || (in_uri && !c.is_whitespace() && c != '"')
            || (c == ':' && word == "otpauth")
        {
            word.push(c);
        } else {
            flush(&mut word, &mut out, ids);
            out.push(c);
        }
    }
    flush(&mut word, &mut out, ids);
    out
}

fn shell_words(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if a.is_empty() || a.contains([' ', '"', '\'', '\\']) {
                format!("{a:?}")
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A line diff (longest common subsequence), `-` expected, `+` actual, with two lines of
/// context around each change.
fn diff(expected: &str, actual: &str) -> String {
    let a: Vec<&str> = expected.lines().collect();
    let b: Vec<&str> = actual.lines().collect();
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut ops: Vec<(char, &str)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            ops.push((' ', a[i]));
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            ops.push(('-', a[i]));
            i += 1;
        } else {
            ops.push(('+', b[j]));
            j += 1;
        }
    }
    let near = |k: usize| {
        ops[k.saturating_sub(2)..(k + 3).min(ops.len())]
            .iter()
            .any(|(c, _)| *c != ' ')
    };
    let mut out = String::new();
    let mut skipped = false;
    for (k, (c, line)) in ops.iter().enumerate() {
        if near(k) {
            if skipped {
                out.push_str("  ...\n");
                skipped = false;
            }
            out.push_str(&format!("{c} {line}\n"));
        } else {
            skipped = true;
        }
    }
    out
}

/// Runs one scenario; returns its normalized transcript, or panics on a wrong exit status.
fn play(name: &str, scenario: Scenario) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut room = Room {
        clock: TestClock::create(dir.path()),
        dir,
        daemon: None,
        pubkey: String::new(),
        seeds: BTreeMap::new(),
        last_step: BTreeMap::new(),
        requests: Vec::new(),
    };
    if scenario.daemon {
        unsealed_room(&mut room);
    }
    let tmp = room.dir.path().to_string_lossy().into_owned();
    let mut ids = BTreeMap::new();
    let mut transcript = String::new();
    let secrets: Vec<String> = UNSEAL
        .iter()
        .map(|(_, p)| (*p).to_owned())
        .chain(["alice", "bob", "carol", "dave", "erin", "frank"].map(user_pass))
        .collect();
    for (n, step) in scenario.step.iter().enumerate() {
        if let Some(e) = &step.edit {
            let file = room.expand(&e.file);
            let text = std::fs::read_to_string(&file)
                .unwrap_or_else(|err| panic!("{name} step {}: {file}: {err}", n + 1));
            assert!(
                text.contains(&e.find),
                "{name} step {}: {:?} not in {file}",
                n + 1,
                e.find
            );
            std::fs::write(&file, text.replacen(&e.find, &e.replace, 1)).expect("edit");
            transcript.push_str(&format!(
                "# edit {}: {:?} -> {:?}\n",
                normalize(&file, &tmp, &mut ids),
                e.find,
                e.replace
            ));
            continue;
        }
        let args: Vec<String> = step.args.iter().map(|a| room.expand(a)).collect();
        let stdin = room.expand(&step.stdin);
        let fd3 = room.expand(&step.fd3);
        let fd4 = room.expand(&step.fd4);
        let out = custody(&args, &stdin, &fd3, &fd4, &room);
        room.learn(&args, &out.out);
        room.learn(&args, &out.err);
        for s in &secrets {
            assert!(
                !out.out.contains(s.as_str()) && !out.err.contains(s.as_str()),
                "{name} step {}: a passphrase was printed",
                n + 1
            );
        }
        transcript.push_str(&format!(
            "$ custody {}\n",
            normalize(&shell_words(&step.args), &tmp, &mut ids)
        ));
        for l in normalize(&out.out, &tmp, &mut ids).lines() {
            transcript.push_str(&format!("> {l}\n").replace("> \n", ">\n"));
        }
        for l in normalize(&out.err, &tmp, &mut ids).lines() {
            transcript.push_str(&format!("! {l}\n").replace("! \n", "!\n"));
        }
        transcript.push_str(&format!("= exit {}\n", out.code));
        assert_eq!(
            out.code,
            step.status,
            "{name} step {} (custody {}): exit status\nstdout:\n{}\nstderr:\n{}",
            n + 1,
            shell_words(&step.args),
            out.out,
            out.err
        );
    }
    transcript
}

#[test]
fn golden_cli_scenarios() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/golden")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "scenarios missing in {}", dir.display());
    let update = std::env::var_os("GOLDEN_UPDATE").is_some_and(|v| v == "1");
    let only = std::env::var("GOLDEN_ONLY").ok();
    // Each scenario has its own daemon: run them side by side.
    let runs: Vec<_> = files
        .into_iter()
        .filter(|f| {
            only.as_deref()
                .map_or(true, |o| f.file_stem().is_some_and(|s| s == o))
        })
        .map(|file| {
            std::thread::spawn(move || {
                let name = file
                    .file_stem()
                    .expect("name")
                    .to_string_lossy()
                    .into_owned();
                let text = std::fs::read_to_string(&file).expect("scenario");
                let scenario: Scenario =
                    toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
                let actual = play(&name, scenario);
                (file, name, actual)
            })
        })
        .collect();
    let mut failures = Vec::new();
    for run in runs {
        let (file, name, actual) = match run.join() {
            Ok(r) => r,
            Err(e) => {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                failures.push(msg);
                continue;
            }
        };
        let golden = file.with_extension("out");
        if update {
            std::fs::write(&golden, &actual).expect("write golden");
            eprintln!("updated {}", golden.display());
            continue;
        }
        let expected = std::fs::read_to_string(&golden).unwrap_or_default();
        if expected != actual {
            failures.push(format!(
                "{name}: the output differs from {} (- expected, + actual; GOLDEN_UPDATE=1 rewrites it):\n{}",
                golden.display(),
                diff(&expected, &actual)
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

#[test]
fn golden_normalizer_and_diff() {
    let mut ids = BTreeMap::new();
    let t = normalize(
        "req-00000000000000a1 at 1795000000000 in /tmp/x/y key 0123456789abcdef0123456789abcdef \
         otpauth://totp/custody:alice?secret=ABC&issuer=custody JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP \
         req-00000000000000b2 req-00000000000000a1 inc-00000000000000c3 by 3de4:fc96:551f:f04e \
         until 2026-12-01T18:47:45Z. (at 2026-12-01T19:47:45+01:00) 2026-12-01 18:47:45Z",
        "/tmp/x",
        &mut ids,
    );
    assert_eq!(
        t,
        "<REQ-1> at <MS> in <TMP>/y key <HEX> <OTPAUTH> <BASE32> <REQ-2> <REQ-1> <INC-1> by \
         <FINGERPRINT> until <TIME>. (at <TIME>) 2026-12-01 18:47:45Z"
    );
    let d = diff("a\nb\nc\n", "a\nB\nc\n");
    assert_eq!(d, "  a\n- b\n+ B\n  c\n");
}
