//! Tree-tidiness checks that run as ordinary tests: every Rust source file opens with a
//! `//!` line, no `dbg!` is left behind, and every `unsafe` block carries a `// SAFETY:`
//! comment just above it.

use std::path::{Path, PathBuf};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives inside the workspace")
        .to_path_buf()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if path.is_dir() {
            if name == "target" || name.starts_with("target-") || name.starts_with('.') {
                continue;
            }
            rust_files(&path, out);
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

fn sources() -> Vec<(PathBuf, String)> {
    let root = workspace_root();
    let mut files = Vec::new();
    for top in ["crates", "xtask", "tests", "fuzz"] {
        rust_files(&root.join(top), &mut files);
    }
    assert!(
        !files.is_empty(),
        "no Rust sources found under {}",
        root.display()
    );
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("source is readable UTF-8");
            (p, text)
        })
        .collect()
}

#[test]
fn every_module_starts_with_a_doc_line() {
    let bad: Vec<_> = sources()
        .into_iter()
        .filter(|(_, text)| !text.trim_start().starts_with("//!"))
        .map(|(p, _)| p.display().to_string())
        .collect();
    assert!(
        bad.is_empty(),
        "files without a leading `//!` line: {bad:#?}"
    );
}

#[test]
fn no_dbg_macro() {
    let needle = concat!("dbg", "!(");
    let bad: Vec<_> = sources()
        .into_iter()
        .filter(|(_, text)| text.contains(needle))
        .map(|(p, _)| p.display().to_string())
        .collect();
    assert!(
        bad.is_empty(),
        "files with a leftover debug macro: {bad:#?}"
    );
}

#[test]
fn every_unsafe_block_has_a_safety_comment() {
    let mut bad = Vec::new();
    for (path, text) in sources() {
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            // The needles are split so this file does not flag itself.
            let kw = concat!("un", "safe");
            let opens_block = code.contains(&format!("{kw} {{")) || code.trim_end().ends_with(kw);
            if !opens_block
                || code.contains(&format!("{kw} fn"))
                || code.contains(&format!("{kw} impl"))
            {
                continue;
            }
            // The comment may sit on the same line or on one of the few lines above,
            // possibly with a multi-line explanation in between.
            let window = lines[i.saturating_sub(6)..=i].join("\n");
            if !window.contains("SAFETY:") {
                bad.push(format!("{}:{}", path.display(), i + 1));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "`unsafe` blocks without `// SAFETY:`: {bad:#?}"
    );
}
