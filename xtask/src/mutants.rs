//! `cargo xtask mutants`: mutation testing of the small library crates with cargo-mutants.
//!
//! For each crate, one after the other, runs
//!
//! ```text
//! CARGO_PROFILE_RELEASE_OPT_LEVEL=1 CARGO_PROFILE_RELEASE_DEBUG=0 CARGO_PROFILE_RELEASE_INCREMENTAL=true \
//! cargo mutants -p CRATE --profile release --all-features --gitignore true --cargo-test-arg=--tests \
//!     -j JOBS --timeout SECS --build-timeout 300 -o target/mutants/CRATE
//! ```
//!
//! `--all-features` so code behind a feature (`stack-csum`'s `parallel`) is tested, not
//! left as survivors. The release profile ships with overflow checks off, so mutants are judged as users
//! would run the code; opt-level 1 with incremental builds makes each mutant rebuild in
//! seconds. `--tests` runs the unit and integration tests, not the doc tests (each doc
//! test is its own build: minutes per mutant). Then prints, per crate, the caught,
//! missed, timed-out and unviable counts, the share of viable mutants caught (a mutant
//! that hangs the tests counts as caught: they did not pass), and every survivor.
//! `docs/MUTANTS.md` records the last run and why each survivor is left.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The crates mutated by default: small, pure, and with their own thorough tests.
const CRATES: [&str; 3] = ["stack-alloc", "stack-csum", "stack-async-thread"];

const USAGE: &str = "usage: cargo xtask mutants [--crate NAME]... [--jobs N] [--timeout SECS] \
[--shard K/N] [--report-only] [--min PERCENT] [-- CARGO_MUTANTS_ARGS...]";

struct Options {
    crates: Vec<String>,
    jobs: usize,
    timeout_secs: u64,
    shard: Option<String>,
    report_only: bool,
    min_percent: f64,
    extra: Vec<String>,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut o = Options {
        crates: Vec::new(),
        jobs: 1,
        timeout_secs: 120,
        shard: None,
        report_only: false,
        min_percent: 95.0,
        extra: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || {
            it.next()
                .with_context(|| format!("{arg} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--crate" => o.crates.push(value()?.clone()),
            "--jobs" => o.jobs = value()?.parse().context("--jobs")?,
            "--timeout" => o.timeout_secs = value()?.parse().context("--timeout")?,
            "--shard" => o.shard = Some(value()?.clone()),
            "--min" => o.min_percent = value()?.parse().context("--min")?,
            "--report-only" => o.report_only = true,
            "--" => {
                o.extra = it.by_ref().cloned().collect();
                break;
            }
            other => bail!("mutants: unknown option `{other}`\n{USAGE}"),
        }
    }
    if o.crates.is_empty() {
        o.crates = CRATES.iter().map(|c| c.to_string()).collect();
    }
    Ok(o)
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// What one crate's run found, from cargo-mutants' `mutants.out/*.txt`.
struct Tally {
    caught: Vec<String>,
    missed: Vec<String>,
    timeout: Vec<String>,
    unviable: Vec<String>,
}

impl Tally {
    fn read(out: &Path) -> Result<Tally> {
        let lines = |name: &str| -> Result<Vec<String>> {
            let path = out.join(name);
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            Ok(text
                .lines()
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect())
        };
        Ok(Tally {
            caught: lines("caught.txt")?,
            missed: lines("missed.txt")?,
            timeout: lines("timeout.txt")?,
            unviable: lines("unviable.txt")?,
        })
    }

    fn viable(&self) -> usize {
        self.caught.len() + self.missed.len() + self.timeout.len()
    }

    fn caught_percent(&self) -> f64 {
        let viable = self.viable();
        if viable == 0 {
            return 100.0;
        }
        100.0 * (self.caught.len() + self.timeout.len()) as f64 / viable as f64
    }
}

pub fn main(args: &[String]) -> Result<()> {
    let o = parse(args)?;
    let root = workspace_root();
    let mut tallies = Vec::new();
    for krate in &o.crates {
        let out_dir = root.join("target/mutants").join(krate);
        if !o.report_only {
            std::fs::create_dir_all(&out_dir)
                .with_context(|| format!("creating {}", out_dir.display()))?;
            let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
            cmd.current_dir(&root)
                .env("CARGO_PROFILE_RELEASE_OPT_LEVEL", "1")
                .env("CARGO_PROFILE_RELEASE_DEBUG", "0")
                .env("CARGO_PROFILE_RELEASE_INCREMENTAL", "true")
                .args([
                    "mutants",
                    "-p",
                    krate,
                    "--profile",
                    "release",
                    "--all-features",
                ])
                .args([
                    "--gitignore",
                    "true",
                    "--cargo-test-arg=--tests",
                    "--colors",
                    "never",
                ])
                .args(["-j", &o.jobs.to_string()])
                .args([
                    "--timeout",
                    &o.timeout_secs.to_string(),
                    "--build-timeout",
                    "300",
                ])
                .arg("-o")
                .arg(&out_dir);
            if let Some(shard) = &o.shard {
                cmd.args(["--shard", shard, "--sharding", "round-robin"]);
            }
            cmd.args(&o.extra);
            println!(
                "== {krate}: cargo mutants (output in {})",
                out_dir.display()
            );
            // cargo-mutants exits 2 when mutants were missed, 3 on timeouts: the tally
            // below says what happened; only a failure to run at all is an error here.
            let status = cmd
                .status()
                .context("running cargo mutants (install it: cargo install cargo-mutants)")?;
            if !matches!(status.code(), Some(0 | 2 | 3)) {
                bail!("cargo mutants -p {krate} failed: {status}");
            }
        }
        let tally = Tally::read(&out_dir.join("mutants.out"))?;
        tallies.push((krate.clone(), tally));
    }

    println!();
    println!("| crate | mutants | caught | missed | timeouts | unviable | caught of viable |");
    println!("|---|---|---|---|---|---|---|");
    let mut below = Vec::new();
    for (krate, t) in &tallies {
        let pct = t.caught_percent();
        println!(
            "| {krate} | {} | {} | {} | {} | {} | {pct:.1}% |",
            t.viable() + t.unviable.len(),
            t.caught.len(),
            t.missed.len(),
            t.timeout.len(),
            t.unviable.len(),
        );
        if pct < o.min_percent {
            below.push(format!("{krate} ({pct:.1}%)"));
        }
    }
    for (krate, t) in &tallies {
        if !t.missed.is_empty() {
            println!("\nsurvivors in {krate}:");
            for m in &t.missed {
                println!("  {m}");
            }
        }
    }
    if !below.is_empty() {
        bail!(
            "below {}% of viable mutants caught: {} (docs/MUTANTS.md lists the survivors accepted)",
            o.min_percent,
            below.join(", ")
        );
    }
    Ok(())
}
