//! Layers only look down: the token layer, the ledger and the emulator never name the custody
//! domain, the daemon or the CLI; the daemon never names the CLI; the token layer and the ledger
//! never name the emulator (a software key must never take part in a trust decision), and neither
//! do production custody and daemon code.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn violations(layer: &str, forbidden: &[&str]) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src")
        .join(layer);
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    assert!(!files.is_empty(), "no Rust files under {}", root.display());
    let mut found = Vec::new();
    for file in files {
        // In-crate test modules may drive the emulator; production code may not.
        if file
            .strip_prefix(&root)
            .is_ok_and(|rel| rel.components().any(|c| c.as_os_str() == "tests"))
        {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("read source");
        for (n, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            for f in forbidden {
                if code.contains(&format!("crate::{f}"))
                    || code.contains(&format!("mfa_custody::{f}"))
                {
                    found.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
                }
            }
        }
    }
    found
}

#[test]
fn lower_layers_never_look_up() {
    let mut all = Vec::new();
    all.extend(violations(
        "token",
        &["custody", "daemon", "cli", "emulator", "ledger"],
    ));
    all.extend(violations(
        "ledger",
        &["custody", "daemon", "cli", "emulator", "token"],
    ));
    all.extend(violations(
        "emulator",
        &["custody", "daemon", "cli", "ledger"],
    ));
    all.extend(violations("custody", &["daemon", "cli", "emulator"]));
    all.extend(violations("daemon", &["cli", "emulator"]));
    assert!(all.is_empty(), "layering violations:\n{}", all.join("\n"));
}
