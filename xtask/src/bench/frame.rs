//! Rows, medians, alternation and the results table shared by every benchmark group.

use anyhow::{Context, Result};
use serde::Serialize;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Which direction of a unit is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sense {
    /// Throughput-like units (GB/s, ops/s): larger is better.
    HigherIsBetter,
    /// Cost-like units (ns/item, ms, bytes): smaller is better.
    LowerIsBetter,
}

/// One line of the results table and one object of `results.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub group: String,
    pub case: String,
    pub unit: String,
    pub ours: f64,
    pub peer: String,
    pub peer_value: f64,
    /// How many times better ours is than the peer: above 1 means ours wins.
    pub speedup: f64,
    /// What the issue asks of this row, e.g. `speedup >= 1.5`, or empty.
    pub target: String,
    /// Whether the target is met (`null` when there is none).
    pub target_met: Option<bool>,
    /// Free text: a peer that was skipped and why, a hung peer, extra figures.
    pub note: String,
}

/// The state a benchmark run threads through the groups.
#[derive(Debug)]
pub struct Ctx {
    pub quick: bool,
    group: String,
    rows: Vec<Row>,
    failures: Vec<(String, String)>,
}

impl Ctx {
    pub fn new(quick: bool) -> Self {
        Self {
            quick,
            group: String::new(),
            rows: Vec::new(),
            failures: Vec::new(),
        }
    }

    pub fn set_group(&mut self, name: &str) {
        self.group = name.to_owned();
    }

    /// The group being measured.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// How many alternating runs of each side a case makes.
    pub fn runs(&self) -> usize {
        if self.quick {
            3
        } else {
            7
        }
    }

    /// Records a row. `speedup` is derived from `sense`; `target_speedup` is the minimum
    /// speedup the issue asks for, if any.
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &mut self,
        case: &str,
        unit: &str,
        sense: Sense,
        ours: f64,
        peer: &str,
        peer_value: f64,
        target_speedup: Option<f64>,
        note: &str,
    ) {
        let speedup = speedup(sense, ours, peer_value);
        let (target, target_met) = match target_speedup {
            Some(t) => (format!("speedup >= {t}"), Some(speedup >= t)),
            None => (String::new(), None),
        };
        self.push(Row {
            group: self.group.clone(),
            case: case.to_owned(),
            unit: unit.to_owned(),
            ours,
            peer: peer.to_owned(),
            peer_value,
            speedup,
            target,
            target_met,
            note: note.to_owned(),
        });
    }

    /// Records a row whose target is not a speedup (an absolute bound such as "at most
    /// 2 extents per GiB"); `met` says whether it holds.
    pub fn push(&mut self, row: Row) {
        eprintln!(
            "  {:<28} ours {:>12} {:<10} {:<22} {:>12}  x{:.2} {}",
            row.case,
            fmt_num(row.ours),
            row.unit,
            row.peer,
            fmt_num(row.peer_value),
            row.speedup,
            row.note
        );
        self.rows.push(row);
    }

    pub fn failed(&mut self, group: &str, err: &str) {
        self.failures.push((group.to_owned(), err.to_owned()));
    }

    /// Prints the table and writes `target/bench/results.json`.
    pub fn finish(self) -> Result<()> {
        println!();
        println!(
            "{:<8} {:<28} {:>12} {:<10} {:<24} {:>12} {:>8}  {:<18} note",
            "group", "case", "ours", "unit", "peer", "peer", "speedup", "target"
        );
        for r in &self.rows {
            let target = match r.target_met {
                Some(true) => format!("{} ok", r.target),
                Some(false) => format!("{} MISSED", r.target),
                None => r.target.clone(),
            };
            println!(
                "{:<8} {:<28} {:>12} {:<10} {:<24} {:>12} {:>8.2}  {:<18} {}",
                r.group,
                r.case,
                fmt_num(r.ours),
                r.unit,
                r.peer,
                fmt_num(r.peer_value),
                r.speedup,
                target,
                r.note
            );
        }
        for (group, err) in &self.failures {
            println!("{group:<8} FAILED: {err}");
        }
        let dir = results_dir();
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join("results.json");
        let json = serde_json::to_string_pretty(&self.rows)?;
        std::fs::write(&path, json).with_context(|| format!("writing {}", path.display()))?;
        println!("\nwrote {}", path.display());
        if !self.failures.is_empty() {
            anyhow::bail!("{} benchmark group(s) failed", self.failures.len());
        }
        Ok(())
    }
}

/// `target/bench`, under the workspace's target directory.
pub fn results_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    target.join("bench")
}

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives inside the workspace")
        .to_path_buf()
}

/// `ours / peer` for throughput, `peer / ours` for costs.
/// The per-round speedups of sides run alternately, as "rounds: lo-hi, k of n >= t".
///
/// `ours[i]` and `peer[i]` ran in the same round, next to each other; their ratio cancels
/// the machine's slow swings that a ratio of the two medians keeps, so the range shows
/// whether a target sits inside the noise. Empty when the sides have different counts.
pub fn round_spread(sense: Sense, ours: &[f64], peer: &[f64], target: Option<f64>) -> String {
    if ours.len() != peer.len() || ours.is_empty() {
        return String::new();
    }
    let ratios: Vec<f64> = ours
        .iter()
        .zip(peer)
        .map(|(&o, &p)| speedup(sense, o, p))
        .collect();
    let lo = ratios.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut text = format!("rounds {lo:.2}-{hi:.2}");
    if let Some(t) = target {
        let met = ratios.iter().filter(|&&r| r >= t).count();
        text.push_str(&format!(", {met} of {} >= {t}", ratios.len()));
    }
    text
}

pub fn speedup(sense: Sense, ours: f64, peer: f64) -> f64 {
    let (num, den) = match sense {
        Sense::HigherIsBetter => (ours, peer),
        Sense::LowerIsBetter => (peer, ours),
    };
    if den == 0.0 {
        if num == 0.0 {
            1.0
        } else {
            f64::INFINITY
        }
    } else {
        num / den
    }
}

/// The median of a set of samples (the mean of the two middle ones for an even count).
pub fn median(samples: &mut [f64]) -> f64 {
    assert!(!samples.is_empty(), "median of no samples");
    samples.sort_by(|a, b| a.total_cmp(b));
    let n = samples.len();
    if n % 2 == 1 {
        samples[n / 2]
    } else {
        (samples[n / 2 - 1] + samples[n / 2]) / 2.0
    }
}

/// A value at quantile `q` (0..=1) of already collected samples.
pub fn quantile(samples: &mut [f64], q: f64) -> f64 {
    assert!(!samples.is_empty(), "quantile of no samples");
    assert!((0.0..=1.0).contains(&q));
    samples.sort_by(|a, b| a.total_cmp(b));
    let idx = ((samples.len() - 1) as f64 * q).round() as usize;
    samples[idx]
}

/// Runs `ours` and `peer` alternately `runs` times each and returns both medians.
/// Each closure returns the figure of one run in the case's unit.
pub fn alternate(
    runs: usize,
    mut ours: impl FnMut() -> Result<f64>,
    mut peer: impl FnMut() -> Result<f64>,
) -> Result<(f64, f64)> {
    assert!(runs > 0);
    let mut a = Vec::with_capacity(runs);
    let mut b = Vec::with_capacity(runs);
    for i in 0..runs {
        // Swap who goes first each round so neither always runs on a warm machine.
        if i % 2 == 0 {
            a.push(ours()?);
            b.push(peer()?);
        } else {
            b.push(peer()?);
            a.push(ours()?);
        }
    }
    Ok((median(&mut a), median(&mut b)))
}

/// Wall time of one call.
pub fn time<R>(f: impl FnOnce() -> R) -> (Duration, R) {
    let start = Instant::now();
    let r = f();
    (start.elapsed(), r)
}

fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    let a = v.abs();
    if a == 0.0 || (0.01..100_000.0).contains(&a) {
        format!("{v:.3}")
    } else {
        format!("{v:.3e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speedup_follows_sense() {
        assert_eq!(speedup(Sense::HigherIsBetter, 2.0, 1.0), 2.0);
        assert_eq!(speedup(Sense::LowerIsBetter, 1.0, 2.0), 2.0);
        assert_eq!(speedup(Sense::LowerIsBetter, 0.0, 0.0), 1.0);
    }

    #[test]
    fn round_spread_pairs_rounds() {
        // Wall times (lower is better): round speedups 2.0, 0.5, 1.0.
        let text = round_spread(
            Sense::LowerIsBetter,
            &[1.0, 4.0, 3.0],
            &[2.0, 2.0, 3.0],
            Some(1.0),
        );
        assert_eq!(text, "rounds 0.50-2.00, 2 of 3 >= 1");
        assert_eq!(
            round_spread(Sense::HigherIsBetter, &[1.0], &[2.0], None),
            "rounds 0.50-0.50"
        );
        assert_eq!(round_spread(Sense::HigherIsBetter, &[1.0], &[], None), "");
    }

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
