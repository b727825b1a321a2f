//! `custody completions SHELL`, `custody man` and `custody generate-docs`: generated from the
//! CLI's own definitions, and needing no daemon (a socket that does not exist is never opened).
//! `docs/cli.md` must be exactly what `custody generate-docs` prints.

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
    let (code, generated, err) = custody(&["generate-docs"]);
    assert_eq!(code, 0, "{err}");
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
             Regenerate it with `make docs` (or `cargo run --bin custody -- generate-docs > docs/cli.md`); \
             hand-written prose goes in src/cli/cli_header.md.",
            line + 1,
            on_disk.lines().nth(line).unwrap_or("(end of file)"),
            generated.lines().nth(line).unwrap_or("(end of file)"),
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
    assert!(
        !generated.contains("generate-docs`\n"),
        "the hidden command is not documented"
    );
    let (code, out, err) = custody(&["--json", "generate-docs"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["name"], "cli.md");
    assert_eq!(v["content"], generated.as_str());
}
