//! Every example of every crate builds and runs, as a user runs it, on MiB sizes.
//!
//! Cargo builds a package's examples for its own `cargo test` only to see that they
//! compile, and never runs them; this module builds them all (one `cargo build
//! --workspace --examples` for the profile the tests run in) and runs each binary with small
//! arguments. Each example checks its own results and exits non-zero when they are
//! wrong.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The library crates and `stack-tests` (the cross-crate example): every package with
/// an `examples/` directory, each of which must have one.
const PACKAGES: [(&str, &str); 6] = [
    ("stack-async-thread", "crates/async-thread"),
    ("stack-bio", "crates/bio"),
    ("stack-alloc", "crates/alloc"),
    ("stack-csum", "crates/csum"),
    ("stack-volume", "crates/volume"),
    ("stack-tests", "tests"),
];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives inside the workspace")
        .to_path_buf()
}

/// `target/<profile>/examples`, after building every example in the workspace for the
/// profile this test binary was built with (a no-op when they are fresh). Without
/// cargo (the test binary run by hand) the examples must already be there.
fn examples_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    // The whole workspace, so features unify as in `cargo test --workspace` and the
    // libraries already built for it are reused.
    DIR.get_or_init(|| {
        crate::cli::harness::cargo_build("the examples", &["--workspace", "--examples"])
            .join("examples")
    })
}

/// Runs example `name` with `args`; returns its standard output.
fn run(name: &str, args: &[&str]) -> String {
    let bin = examples_dir().join(name);
    assert!(bin.exists(), "{} missing", bin.display());
    let out = Command::new(&bin)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", bin.display()));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "example {name} {args:?} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout.trim().is_empty(), "example {name} printed nothing");
    stdout
}

/// Every `examples/*.rs` of [`PACKAGES`] has a test below: adding an example without
/// running it fails here.
#[test]
fn every_example_is_run_by_a_test() {
    let this = include_str!("examples.rs");
    let mut found = 0;
    for (package, dir) in PACKAGES {
        let dir = workspace_root().join(dir).join("examples");
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{package} has no examples/ ({}): {e}", dir.display()));
        for entry in entries.flatten() {
            let file = entry.file_name().to_string_lossy().into_owned();
            let Some(name) = file.strip_suffix(".rs") else {
                continue;
            };
            found += 1;
            assert!(
                this.contains(&format!("\"{name}\",")),
                "{package}'s example {name} is not run by tests/e2e/examples.rs"
            );
        }
    }
    assert!(found >= PACKAGES.len(), "only {found} examples found");
}

/// The crate docs' tuning experiment: with the default busy threshold and 16 items in
/// flight, the pool never starts a second thread (what the docs say it shows).
#[test]
fn async_thread_busy_threshold() {
    let out = run("busy_threshold", &["200"]);
    let default = out
        .lines()
        .find(|l| l.starts_with("busy_threshold 64:"))
        .unwrap_or_else(|| panic!("no line for the default threshold: {out}"));
    assert!(default.ends_with("(peak 1)"), "{out}");
    assert!(out.contains("busy_threshold  2:"), "{out}");
}

#[test]
fn async_thread_checksum_pool() {
    let out = run("checksum_pool", &["--mib", "8"]);
    assert!(out.contains("ok"), "{out}");
}

#[test]
fn bio_streams() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("streams.img");
    let out = run(
        "streams",
        &[file.to_str().unwrap(), "--mib", "8", "--threads", "4"],
    );
    assert!(out.contains("sequential share"), "{out}");
    assert!(!file.exists(), "the example removes the file it created");
}

#[test]
fn alloc_allocate() {
    let out = run("allocate", &["--mib", "64"]);
    assert!(out.contains("ok"), "{out}");
}

#[test]
fn csum_table() {
    let out = run("table", &["--mib", "8"]);
    assert!(out.contains("ok"), "{out}");
}

#[test]
fn volume_roundtrip() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        "roundtrip",
        &["--mib", "8", "--dir", dir.path().to_str().unwrap()],
    );
    assert!(out.contains("ok"), "{out}");
}

/// The cross-crate trial (bio + async-thread + alloc + csum), at 8 MiB, with
/// `O_DIRECT` where the filesystem takes it and through the page cache.
#[test]
fn cross_crate_copy_into_volume() {
    let out = run("copy_into_volume", &["--mib", "8"]);
    assert!(out.contains("was caught: ok"), "{out}");
    let out = run("copy_into_volume", &["--mib", "8", "--buffered", "--uring"]);
    assert!(out.contains("page cache"), "{out}");
    assert!(out.contains("was caught: ok"), "{out}");
}
