//! `cargo xtask soak --kills N [--seed S]`: the killed-mid-write loop of
//! `tests/e2e/reliability/killed.rs` run for N kills, with a tally.
//!
//! The loop lives in the test (one implementation, run briefly by every `cargo test` and
//! at length here): this task runs it in rounds of at most [`ROUND_KILLS`] kills, each
//! on a fresh volume with its own seed, so a failure ends only its round and the tally
//! counts every failing round. Each round is the release test binary run with
//! `STACK_SOAK_KILLS` and `STACK_SOAK_SEED`; its `soak tally` line is parsed and summed.
//! After every kill the test checks verify, the listing, the contents and the space
//! accounting (every block a superblock, a usable table, a listed object's data or
//! checksums, or free), not only at the final drain.

use anyhow::{bail, Context, Result};
use std::process::Command;

/// Kills per round (one fresh volume each).
const ROUND_KILLS: u64 = 50;
/// Fewest kills in a round: a round must be long enough to see a resume.
const MIN_ROUND_KILLS: u64 = 20;
/// Default seed of the first round; round `i` uses `seed + i`.
const DEFAULT_SEED: u64 = 0x50AC_1000;
/// The test that holds the loop.
const TEST: &str = "reliability::killed::killed_writes_keep_the_committed_state";

/// Summed counters of every round.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Tally {
    kills: u64,
    completed: u64,
    clean_verifies: u64,
    resumed: u64,
    failures: u64,
}

impl Tally {
    /// Parses `... kills K, completed C, clean verifies V, resumed R, failures F`.
    fn parse(line: &str) -> Option<Tally> {
        let (_, counters) = line.split_once("): ")?;
        let mut tally = Tally::default();
        for part in counters.split(", ") {
            let (key, value) = part.rsplit_once(' ')?;
            let value: u64 = value.trim().parse().ok()?;
            match key {
                "kills" => tally.kills = value,
                "completed" => tally.completed = value,
                "clean verifies" => tally.clean_verifies = value,
                "resumed" => tally.resumed = value,
                "failures" => tally.failures = value,
                _ => return None,
            }
        }
        Some(tally)
    }

    fn add(&mut self, other: &Tally) {
        self.kills += other.kills;
        self.completed += other.completed;
        self.clean_verifies += other.clean_verifies;
        self.resumed += other.resumed;
        self.failures += other.failures;
    }
}

/// How many kills each round makes: rounds of [`ROUND_KILLS`], the remainder folded
/// into the last round when it would be shorter than [`MIN_ROUND_KILLS`].
fn rounds(kills: u64) -> Vec<u64> {
    let mut rounds = Vec::new();
    let mut left = kills;
    while left > 0 {
        let take = if left < ROUND_KILLS + MIN_ROUND_KILLS {
            left
        } else {
            ROUND_KILLS
        };
        rounds.push(take);
        left -= take;
    }
    rounds
}

fn parse_u64(flag: &str, value: Option<&String>) -> Result<u64> {
    let text = value.with_context(|| format!("{flag} needs a value"))?;
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    }
    .with_context(|| format!("{flag} {text}: not a number"))
}

/// Entry point: `soak --kills N [--seed S]`.
pub fn main(args: &[String]) -> Result<()> {
    let mut kills = 50;
    let mut seed = DEFAULT_SEED;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--kills" => kills = parse_u64("--kills", it.next())?,
            "--seed" => seed = parse_u64("--seed", it.next())?,
            other => bail!("soak: unknown option `{other}` (soak --kills N [--seed S])"),
        }
    }
    if kills == 0 {
        bail!("soak: --kills must be at least 1");
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut total = Tally::default();
    let mut failed_rounds = Vec::new();
    for (i, round_kills) in rounds(kills).into_iter().enumerate() {
        let round_seed = seed.wrapping_add(i as u64);
        let output = Command::new(&cargo)
            .args([
                "test",
                "-q",
                "--release",
                "-p",
                "stack-tests",
                "--test",
                "e2e",
                "--",
            ])
            .args([TEST, "--exact", "--nocapture", "--test-threads=1"])
            .env("STACK_SOAK_KILLS", round_kills.to_string())
            .env("STACK_SOAK_SEED", format!("{round_seed:#x}"))
            .output()
            .context("running cargo test")?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let Some(tally) = stdout.lines().find_map(|l| {
            l.starts_with("soak tally")
                .then(|| Tally::parse(l))
                .flatten()
        }) else {
            eprintln!("{stdout}{}", String::from_utf8_lossy(&output.stderr));
            bail!("round {i} (seed {round_seed:#x}) printed no tally");
        };
        for failure in stdout.lines().filter(|l| l.starts_with("soak failure")) {
            println!("  round {i}: {failure}");
        }
        let mut tally = tally;
        // A round whose test failed on a check outside the failure list (too few kills,
        // no resume) still counts as a failure.
        if !output.status.success() && tally.failures == 0 {
            tally.failures = 1;
            let stderr = String::from_utf8_lossy(&output.stderr);
            let why = stderr
                .lines()
                .find(|l| l.contains("panicked") || l.contains("assert"));
            println!(
                "  round {i}: test failed: {}",
                why.unwrap_or("see cargo test output")
            );
        }
        if tally.failures > 0 {
            failed_rounds.push(round_seed);
        }
        println!(
            "round {i:>3} seed {round_seed:#x}: kills {}, completed {}, clean verifies {}, resumed {}, failures {}",
            tally.kills, tally.completed, tally.clean_verifies, tally.resumed, tally.failures
        );
        total.add(&tally);
    }
    println!();
    println!("soak total");
    println!("  kills           {:>6}", total.kills);
    println!("  completed       {:>6}", total.completed);
    println!("  clean verifies  {:>6}", total.clean_verifies);
    println!("  resumed         {:>6}", total.resumed);
    println!("  failures        {:>6}", total.failures);
    if !failed_rounds.is_empty() {
        bail!("soak: failures in rounds with seeds {failed_rounds:x?} (replay: STACK_SOAK_SEED)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_test_tally_line() {
        let line = "soak tally (seed 0x50ac0001): kills 24, completed 17, clean verifies 44, resumed 2, failures 0";
        let tally = Tally::parse(line).expect("parses");
        assert_eq!(
            tally,
            Tally {
                kills: 24,
                completed: 17,
                clean_verifies: 44,
                resumed: 2,
                failures: 0
            }
        );
        assert_eq!(Tally::parse("soak tally (seed 1): kills x"), None);
        assert_eq!(Tally::parse("soak tally (seed 1): bogus 3"), None);
    }

    #[test]
    fn rounds_cover_every_kill_and_are_never_short() {
        for kills in [1, 19, 20, 50, 69, 70, 71, 120, 1000] {
            let rounds = rounds(kills);
            assert_eq!(rounds.iter().sum::<u64>(), kills);
            if kills >= MIN_ROUND_KILLS {
                assert!(
                    rounds.iter().all(|&r| r >= MIN_ROUND_KILLS),
                    "{kills}: {rounds:?}"
                );
            }
            assert!(
                rounds.iter().all(|&r| r < ROUND_KILLS + MIN_ROUND_KILLS),
                "{kills}: {rounds:?}"
            );
        }
    }
}
