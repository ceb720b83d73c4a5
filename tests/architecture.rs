// SPDX-License-Identifier: MPL-2.0
//! `docs/architecture.md` is kept true: every source file is listed there,
//! every file it lists exists, and no file of `src/` is longer than 600
//! lines before its tests.

use std::path::{Path, PathBuf};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read_dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn source_files() -> Vec<String> {
    let mut files = Vec::new();
    rust_files(&repo().join("src"), &mut files);
    let mut names: Vec<String> = files
        .iter()
        .map(|p| p.strip_prefix(repo()).expect("in repo").display().to_string())
        .collect();
    names.sort();
    names
}

/// The `src/...rs` paths named (in backquotes) in architecture.md.
fn listed_files() -> Vec<String> {
    let text = std::fs::read_to_string(repo().join("docs/architecture.md")).expect("docs/architecture.md");
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter(|s| s.starts_with("src/") && s.ends_with(".rs"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_source_file_is_listed_and_every_listed_file_exists() {
    let sources = source_files();
    let listed = listed_files();
    let missing: Vec<_> = sources.iter().filter(|s| !listed.contains(s)).collect();
    let stale: Vec<_> = listed.iter().filter(|l| !sources.contains(l)).collect();
    assert!(missing.is_empty(), "not in docs/architecture.md: {missing:?}");
    assert!(
        stale.is_empty(),
        "docs/architecture.md lists files that do not exist: {stale:?}"
    );
}

#[test]
fn no_source_file_is_longer_than_600_lines_before_its_tests() {
    let mut long = Vec::new();
    for name in source_files() {
        let text = std::fs::read_to_string(repo().join(&name)).expect("source");
        // A file of tests only (`tests.rs`) counts as all tests.
        if name.ends_with("/tests.rs") {
            continue;
        }
        let before_tests = text.lines().take_while(|l| *l != "#[cfg(test)]").count();
        if before_tests > 600 {
            long.push(format!("{name}: {before_tests}"));
        }
    }
    assert!(
        long.is_empty(),
        "files longer than 600 lines before their tests: {long:?}"
    );
}
