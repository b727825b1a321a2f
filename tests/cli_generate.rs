//! `custody completions SHELL` and `custody man`: generated from the CLI's own definitions,
//! and needing no daemon (a socket that does not exist is never opened).

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
