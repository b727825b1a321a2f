//! `custody completions SHELL`, `custody man` and `docs/cli.md` (`make docs`): generated from the
//! CLI's own definitions, and needing no daemon (a socket that does not exist is never opened).
//! `docs/cli.md` must be exactly what `make docs` prints; every command's help ends with an
//! example; completions offer the allowed values of arguments that have them and no hidden
//! command; every manual page another one names exists.

use std::process::Command;

fn custody(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_custody"))
        .args(["--socket", "/nonexistent/custodyd.sock"])
        .args(args)
        .env_remove("CUSTODY_SOCKET")
        .output()
        .expect("run custody");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn cli_completions_bash_names_the_commands() {
    let (code, out, err) = custody(&["completions", "bash"]);
    assert_eq!(code, 0, "{err}");
    for word in ["custody", "unseal", "approve", "set-status", "completions"] {
        assert!(out.contains(word), "{word} in the bash completion");
    }
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let (code, out, err) = custody(&["completions", shell]);
        assert_eq!(code, 0, "{shell}: {err}");
        assert!(out.contains("unseal"), "{shell}");
    }
    let (code, out, err) = custody(&["--json", "completions", "bash"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["ok"], true);
    assert_eq!(v["shell"], "bash");
    assert!(v["content"].as_str().expect("content").contains("unseal"));
    let (code, _, err) = custody(&["completions", "tcsh"]);
    assert_eq!(code, 2, "an unknown shell is a usage error: {err}");
}

#[test]
fn cli_man_is_roff() {
    let (code, out, err) = custody(&["man"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with(".ie") || out.contains("\n.TH"), "{out}");
    assert!(out.contains(".TH custody 1"), "{out}");
    assert!(out.contains("unseal"), "the subcommands are listed");
    let (code, out, err) = custody(&["--json", "man"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["name"], "custody.1");
    assert!(v["content"].as_str().expect("content").contains(".TH"));
}

#[test]
fn docs_cli_md_is_generated_from_the_cli_definitions() {
    let generated = mfa_custody::cli::generate::cli_markdown();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/cli.md");
    let on_disk = std::fs::read_to_string(&path).expect("docs/cli.md");
    if on_disk != generated {
        let line = on_disk
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| on_disk.lines().count().min(generated.lines().count()));
        panic!(
            "docs/cli.md differs from the CLI definitions (first at line {}: {:?} on disk, {:?} generated).\n\
             Regenerate it with {}; hand-written prose goes in src/cli/cli_header.md.",
            line + 1,
            on_disk.lines().nth(line).unwrap_or("(end of file)"),
            generated.lines().nth(line).unwrap_or("(end of file)"),
            mfa_custody::cli::generate::REGENERATE_DOCS,
        );
    }
    // Every command and its examples are in it, and the hand-written prose is kept.
    for want in [
        "### `custody audit report`",
        "### `custody user bootstrap`",
        "### `custody device checkout`",
        "| `--pubkey <KEY>` |",
        "custody completions bash > /etc/bash_completion.d/custody",
        "## Exit statuses",
        "## Commands that talk to `custodyd`",
        "Secrets (passphrases, seeds) are never taken from the command line",
    ] {
        assert!(generated.contains(want), "{want} in docs/cli.md");
    }
    // The generator is a program of its own (make docs), not a hidden command of custody.
    let (code, _, err) = custody(&["generate-docs"]);
    assert_eq!(code, 2, "not a command: {err}");
}

/// Every command `--help` shows, as `custody a b` paths.
fn visible_commands() -> Vec<(String, clap::Command)> {
    fn walk(cmd: &clap::Command, path: &str, out: &mut Vec<(String, clap::Command)>) {
        for sub in cmd.get_subcommands() {
            if sub.is_hide_set() || sub.get_name() == "help" {
                continue;
            }
            let p = format!("{path} {}", sub.get_name());
            out.push((p.clone(), sub.clone()));
            walk(sub, &p, out);
        }
    }
    let mut cmd = <mfa_custody::cli::Cli as clap::CommandFactory>::command();
    cmd.build();
    let mut out = Vec::new();
    walk(&cmd, "custody", &mut out);
    out
}

#[test]
fn every_command_help_ends_with_an_example_of_itself() {
    let mut missing = Vec::new();
    for (path, cmd) in visible_commands() {
        let after = cmd
            .get_after_help()
            .or_else(|| cmd.get_after_long_help())
            .map(ToString::to_string)
            .unwrap_or_default();
        let example = after
            .split_once("Example")
            .map(|(_, e)| e.to_owned())
            .unwrap_or_default();
        // A group's example runs one of its commands; a command's example runs itself (as the
        // service user, or with --json, as it may be).
        let runs_itself = example.lines().any(|l| {
            let l = l.trim_start();
            let l = l.strip_prefix("sudo -u custody ").unwrap_or(l);
            l.replace(" --json", "").starts_with(&format!("{path} "))
                || l.replace(" --json", "") == path
        });
        if !runs_itself {
            missing.push(path);
        }
    }
    assert!(
        missing.is_empty(),
        "commands whose --help has no example of themselves (after_help \"Example:\\n  ...\"):\n{}",
        missing.join("\n")
    );
    // As a person sees it: the example is at the end of --help.
    let (code, out, err) = custody(&["request", "code", "--help"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Example:\n  custody request code "), "{out}");
}

#[test]
fn completions_offer_allowed_values_and_no_hidden_command() {
    let tasks: Vec<String> = mfa_custody::custody::policy::default_catalogue()
        .into_iter()
        .map(|t| t.id)
        .collect();
    let (code, bash, err) = custody(&["completions", "bash"]);
    assert_eq!(code, 0, "{err}");
    assert!(!bash.contains("generate-docs"), "no hidden command");
    // bash: each option's value list is a `compgen -W "..."` line under the option.
    let values_of = |option: &str| -> Vec<String> {
        let mut lines = bash.lines();
        let mut found = Vec::new();
        while let Some(l) = lines.next() {
            if l.trim() == format!("{option})") {
                if let Some(v) = lines.next() {
                    found.push(v.trim().to_owned());
                }
            }
        }
        found
    };
    for (option, want) in [
        (
            "--task",
            tasks.iter().map(String::as_str).collect::<Vec<_>>(),
        ),
        ("--role", vec!["officer", "operator", "auditor"]),
        ("--provider", vec!["aws", "aws-us-gov", "aws-cn"]),
    ] {
        let found = values_of(option);
        assert!(!found.is_empty(), "{option} in the bash completion");
        for line in &found {
            assert!(
                !line.contains("compgen -f"),
                "{option} completes file names: {line}"
            );
        }
        for v in want {
            assert!(
                found
                    .iter()
                    .any(|l| l.contains("compgen -W") && l.split(['"', ' ']).any(|w| w == v)),
                "{option} offers {v}: {found:?}"
            );
        }
    }
    let (_, zsh, _) = custody(&["completions", "zsh"]);
    let (_, fish, _) = custody(&["completions", "fish"]);
    for (shell, text) in [("zsh", &zsh), ("fish", &fish)] {
        assert!(
            !text.contains("generate-docs"),
            "{shell}: no hidden command"
        );
        assert!(
            text.contains("change-root-password"),
            "{shell}: task values"
        );
        assert!(text.contains("aws-us-gov"), "{shell}: provider values");
    }
}

#[test]
fn man_out_writes_a_page_per_command_and_every_page_named_exists() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().to_string_lossy().into_owned();
    let (code, out, err) = custody(&["man", "--out", &d]);
    assert_eq!(code, 0, "{err}");
    let commands = visible_commands();
    for (path, _) in &commands {
        let page = format!("{}.1", path.replace(' ', "-"));
        assert!(dir.path().join(&page).is_file(), "{page} written");
        assert!(out.contains(&page), "{page} listed: {out}");
    }
    let pages: Vec<_> = std::fs::read_dir(dir.path())
        .expect("read the pages")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        pages.len(),
        commands.len() + 1,
        "custody.1 and one per command"
    );
    // Every custody-*(1) a page refers to is one of the pages written.
    for page in &pages {
        let text = std::fs::read_to_string(dir.path().join(page)).expect("page");
        assert!(text.contains(".TH "), "{page} is roff");
        for (i, _) in text.match_indices("(1)") {
            let start = text[..i]
                .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '\\'))
                .map_or(0, |s| s + 1);
            let name = text[start..i].replace("\\-", "-");
            if name.starts_with("custody") {
                assert!(
                    pages.contains(&format!("{name}.1")),
                    "{page} names {name}(1), which is not written"
                );
            }
        }
    }
    assert!(
        !pages.iter().any(|p| p.contains("generate-docs")),
        "{pages:?}"
    );
    let (code, _, err) = custody(&["man", "--out", "/nonexistent/man1"]);
    assert_eq!(code, 5, "{err}");
    assert!(
        err.contains("/nonexistent/man1") && err.contains("create the directory"),
        "{err}"
    );
}
