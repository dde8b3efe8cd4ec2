//! `cargo xtask`: the workspace's own tasks (benchmarks, soaks, fault matrices, package
//! checks, mutation testing).
//!
//! Run through the alias in `.cargo/config.toml`, so `cargo xtask bench` builds this in
//! release mode and runs it from the workspace root.

mod bench;
mod faults;
mod mutants;
mod packages;
mod soak;

use anyhow::{bail, Result};

const USAGE: &str = "\
usage: cargo xtask <task> [options]

tasks:
  bench [--quick] [--only GROUP[,GROUP...]]
        run the benchmark groups, print one table of ratios against peers measured in
        the same run, and write target/bench/results.json
  faults
        inject each kind of damage into a small volume file for each checksum
        algorithm and print what `stackctl verify` detected, located and explained
  check-packages [--tarballs]
        what the library crates publish: complete Cargo metadata and READMEs,
        `cargo doc --no-deps` with RUSTDOCFLAGS=-D warnings (broken intra-doc links
        fail), `cargo package --list` per crate; --tarballs also writes the .crate files
        and builds each from its tarball
  mutants [--crate NAME]... [--jobs N] [--timeout SECS] [--shard K/N] [--report-only]
        cargo-mutants over stack-alloc, stack-csum and stack-async-thread (release
        profile), then caught/missed/timeouts/unviable per crate and the survivors;
        fails below 95% of viable mutants caught (--min P). Slow: not in CI
  soak [--kills N] [--seed S]
        SIGKILL `stackctl` mid-write N times (default 50), check the volume after each
        kill, print the tally (kills, clean verifies, resumed, failures)
";

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let Some(task) = args.next() else {
        eprint!("{USAGE}");
        bail!("no task given");
    };
    let rest: Vec<String> = args.collect();
    match task.as_str() {
        "bench" => bench::main(&rest),
        "soak" => soak::main(&rest),
        "faults" => faults::main(&rest),
        "check-packages" => packages::main(&rest),
        "mutants" => mutants::main(&rest),
        // Cases that can hang run in a child process of this binary with a time-out.
        bench::CHILD_TASK => bench::child_main(&rest),
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(())
        }
        other => {
            eprint!("{USAGE}");
            bail!("unknown task `{other}`")
        }
    }
}
