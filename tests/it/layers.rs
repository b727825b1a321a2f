//! Layers only look down: the token layer, the ledger and the emulator never name the custody
//! domain, the daemon or the CLI; the daemon never names the CLI; the token layer and the ledger
//! never name the emulator (a software key must never take part in a trust decision), and neither
//! do production custody and daemon code.
//!
//! Every source file is parsed as Rust: `use` trees (grouped or nested), paths in code and
//! types, and `super::` chains are all resolved to the crate's top-level module they name.

use std::path::{Path, PathBuf};

use syn::visit::Visit;

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

/// The module path of a file below `src/` (`src/daemon/ops.rs` → `daemon::ops`,
/// `src/custody/mod.rs` → `custody`).
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).expect("below src");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|c| c.to_string_lossy().into_owned())
        .collect();
    if let Some(last) = parts.pop() {
        let stem = last.trim_end_matches(".rs").to_owned();
        if stem != "mod" && stem != "lib" {
            parts.push(stem);
        }
    }
    parts
}

/// The crate's top-level module a path starting with these segments names, if any.
fn top_module(segments: &[String], module: &[String]) -> Option<String> {
    let first = segments.first()?;
    match first.as_str() {
        "crate" | "mfa_custody" => segments.get(1).cloned(),
        "super" => {
            let ups = segments.iter().take_while(|s| *s == "super").count();
            let base = module.len().checked_sub(ups)?;
            match module.get(..base) {
                Some([top, ..]) => Some(top.clone()),
                // At the crate root: the segment after the `super`s is the top module.
                _ => segments.get(ups).cloned(),
            }
        }
        "self" => module.first().cloned(),
        _ => None,
    }
}

struct Names<'a> {
    module: &'a [String],
    /// (top-level module, the path as written).
    found: Vec<(String, String)>,
}

impl Names<'_> {
    fn note(&mut self, segments: &[String]) {
        if let Some(top) = top_module(segments, self.module) {
            self.found.push((top, segments.join("::")));
        }
    }

    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => {
                prefix.push(n.ident.to_string());
                self.note(prefix);
                prefix.pop();
            }
            syn::UseTree::Rename(r) => {
                prefix.push(r.ident.to_string());
                self.note(prefix);
                prefix.pop();
            }
            syn::UseTree::Glob(_) => {
                prefix.push("*".to_owned());
                self.note(prefix);
                prefix.pop();
            }
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    self.use_tree(prefix, t);
                }
            }
        }
    }
}

impl<'ast> Visit<'ast> for Names<'_> {
    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        let mut prefix = Vec::new();
        self.use_tree(&mut prefix, &u.tree);
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        let segments: Vec<String> = p.segments.iter().map(|s| s.ident.to_string()).collect();
        self.note(&segments);
        syn::visit::visit_path(self, p);
    }

    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        // An in-file test module may drive the emulator; production code may not.
        let is_test = m.attrs.iter().any(|a| {
            a.path().is_ident("cfg") && a.parse_args::<syn::Ident>().is_ok_and(|i| i == "test")
        });
        if !is_test {
            syn::visit::visit_item_mod(self, m);
        }
    }
}

/// Every (top-level module, path as written) a file names.
fn names_in(src: &Path, file: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(file).expect("read source");
    let ast = syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let module = module_of(src, file);
    let mut v = Names {
        module: &module,
        found: Vec::new(),
    };
    v.visit_file(&ast);
    v.found
}

fn violations(layer: &str, forbidden: &[&str]) -> Vec<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let root = src.join(layer);
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
        for (top, path) in names_in(&src, &file) {
            if forbidden.contains(&top.as_str()) {
                found.push(format!("{}: {path} names {top}", file.display()));
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

#[test]
fn every_way_of_naming_a_module_is_seen() {
    let src = Path::new("/src");
    let file = Path::new("/src/token/oath.rs");
    let module = module_of(src, file);
    assert_eq!(module, ["token", "oath"]);
    let text = r#"
        use crate::{apdu, custody::Custody};
        use super::super::daemon::Daemon;
        use self::inner::X;
        fn f() -> mfa_custody::cli::Thing { crate::ledger::open() }
        #[cfg(test)]
        mod tests { use crate::emulator::SoftKey; }
    "#;
    let ast = syn::parse_file(text).expect("parse");
    let mut v = Names {
        module: &module,
        found: Vec::new(),
    };
    v.visit_file(&ast);
    let mut tops: Vec<String> = v.found.into_iter().map(|(t, _)| t).collect();
    tops.sort();
    tops.dedup();
    assert_eq!(
        tops,
        ["apdu", "cli", "custody", "daemon", "ledger", "token"]
    );
}
