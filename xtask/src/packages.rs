//! `cargo xtask check-packages`: what a user of the library crates gets from crates.io
//! and docs.rs, checked before it ships.
//!
//! 1. Every library crate's Cargo metadata is complete (description, license,
//!    repository, documentation, readme, keywords, categories) and its README exists.
//! 2. `cargo doc --no-deps` with `RUSTDOCFLAGS=-D warnings` for all of them, all
//!    features on: a broken intra-doc link or a bad doc attribute fails.
//! 3. `cargo package --list` for each: the files that would be published, which must
//!    include the README and an example.
//!
//! With `--tarballs` it also builds the `.crate` files and compiles each from its
//! tarball (`cargo package`, all crates in one call so their path dependencies resolve
//! to each other; this needs the crates.io index).

use anyhow::{bail, ensure, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The crates published for other projects to use.
pub const LIBRARY_CRATES: [&str; 5] = [
    "stack-async-thread",
    "stack-bio",
    "stack-alloc",
    "stack-csum",
    "stack-volume",
];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(workspace_root());
    c
}

fn run(mut cmd: Command, what: &str) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn main(args: &[String]) -> Result<()> {
    let mut tarballs = false;
    for arg in args {
        match arg.as_str() {
            "--tarballs" => tarballs = true,
            other => bail!("check-packages: unknown option `{other}`"),
        }
    }
    check_metadata()?;
    println!("metadata: complete for {}", LIBRARY_CRATES.join(", "));

    let mut doc = cargo();
    doc.args(["doc", "--no-deps", "--all-features"])
        .env("RUSTDOCFLAGS", "-D warnings");
    for c in LIBRARY_CRATES {
        doc.args(["-p", c]);
    }
    run(doc, "cargo doc --no-deps (RUSTDOCFLAGS=-D warnings)")?;
    println!("cargo doc: no warnings");

    for c in LIBRARY_CRATES {
        let mut list = cargo();
        list.args(["package", "--list", "--allow-dirty", "-p", c]);
        let files = run(list, &format!("cargo package --list -p {c}"))?;
        let files: Vec<&str> = files.lines().collect();
        for want in ["README.md", "Cargo.toml", "src/lib.rs"] {
            ensure!(files.contains(&want), "{c}: the package lacks {want}");
        }
        ensure!(
            files.iter().any(|f| f.starts_with("examples/")),
            "{c}: the package has no example"
        );
        println!("cargo package --list -p {c}: {} files", files.len());
    }

    if tarballs {
        let mut package = cargo();
        package.args(["package", "--allow-dirty"]);
        for c in LIBRARY_CRATES {
            package.args(["-p", c]);
        }
        run(package, "cargo package")?;
        println!("cargo package: target/package/*.crate written, each built from its tarball");
    }
    Ok(())
}

/// Every library crate names what crates.io and docs.rs show.
fn check_metadata() -> Result<()> {
    let mut cmd = cargo();
    cmd.args(["metadata", "--no-deps", "--format-version", "1"]);
    let meta: serde_json::Value = serde_json::from_str(&run(cmd, "cargo metadata")?)?;
    let packages = meta["packages"]
        .as_array()
        .context("cargo metadata: no packages")?;
    for name in LIBRARY_CRATES {
        let p = packages
            .iter()
            .find(|p| p["name"] == name)
            .with_context(|| format!("{name} is not in the workspace"))?;
        let text = |field: &str| p[field].as_str().unwrap_or("").to_owned();
        for field in [
            "description",
            "license",
            "repository",
            "documentation",
            "readme",
        ] {
            ensure!(
                !text(field).is_empty(),
                "{name}: no `{field}` in Cargo.toml"
            );
        }
        ensure!(
            text("repository").starts_with("https://github.com/"),
            "{name}: repository `{}` is a placeholder",
            text("repository")
        );
        ensure!(
            text("documentation") == format!("https://docs.rs/{name}"),
            "{name}: documentation should be https://docs.rs/{name}"
        );
        for field in ["keywords", "categories"] {
            let n = p[field].as_array().map_or(0, Vec::len);
            ensure!(
                (1..=5).contains(&n),
                "{name}: {n} {field} (crates.io takes 1 to 5)"
            );
        }
        let manifest = PathBuf::from(text("manifest_path"));
        let readme = manifest
            .parent()
            .context("manifest has a directory")?
            .join(text("readme"));
        ensure!(readme.is_file(), "{name}: {} missing", readme.display());
    }
    Ok(())
}
