//! Findings from a [`SurfaceMap`]: slow regions, a write-speed cliff, stalls.
//!
//! Findings are not damage: every byte may still read back right. They say where a
//! drive is slow, so a person qualifying drives can set one aside. The thresholds are
//! relative to the drive's own median (a slow HDD and a fast SSD are judged alike) and
//! each has an absolute floor of excess time, so the jitter of a fast memory or loop
//! device (a descheduled thread, a page fault) is not called a finding:
//!
//! - a **slow region**: throughput under 1/3 of the median region's *and* median latency
//!   at least twice the median region's (a region slow throughout, not one late I/O),
//!   the run of such regions costing at least 500 ms more than at the median speed, not
//!   counting its stalls; or, with at least 64 I/Os,
//!   a p99 latency over 10× the median p99 and over 50 ms. Adjacent slow regions are one
//!   finding. Only regions with at least 2 I/Os are judged, against at least 4 others.
//! - a **write cliff**: writes slower after some offset to the end of the fill (an SLC
//!   cache that ran out): the best two-level fit of the regions' throughput whose second
//!   level is at most half the first, with at least 80% of the regions after it and half
//!   of those before it on their side of 0.7× the first level, and at least 3 regions
//!   and 1 s of excess time after it (a real write cache costs minutes; a busy CPU
//!   slowing a memory device for a moment does not reach it). Its offset is the first region of the slow level. Slow write regions
//!   are then judged against their own side of the cliff.
//! - a **stall**: one I/O over 500 ms (outside a region found slow).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::map::{MapRegion, SurfaceMap};

/// Thresholds of the findings (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FindingOptions {
    /// One I/O at least this slow is a stall.
    pub stall_ms: f64,
    /// A region under this share of the median throughput may be slow.
    pub slow_throughput_fraction: f64,
    /// A region whose median latency is under this many times the median region's is
    /// not slow throughout.
    pub slow_p50_factor: f64,
    /// A region whose p99 latency is over this many times the median p99 is slow.
    pub slow_p99_factor: f64,
    /// ... and over this many ms.
    pub slow_p99_min_ms: f64,
    /// ... with at least this many I/Os (a p99 of fewer is one sample).
    pub slow_p99_min_ios: u64,
    /// Regions with fewer I/Os are not judged.
    pub min_ios: u64,
    /// A slow region costs at least this much more than at the median speed (its
    /// stalls not counted: a stall is its own finding).
    pub min_excess_ms: f64,
    /// The writes after a cliff cost at least this much more than before it.
    pub cliff_min_excess_ms: f64,
    /// After a cliff, writes are at most this share of the speed before it.
    pub cliff_drop_fraction: f64,
    /// Regions on each side of a cliff, at least.
    pub cliff_min_regions: usize,
}

impl Default for FindingOptions {
    fn default() -> Self {
        Self {
            stall_ms: 500.0,
            slow_throughput_fraction: 1.0 / 3.0,
            slow_p50_factor: 2.0,
            slow_p99_factor: 10.0,
            slow_p99_min_ms: 50.0,
            slow_p99_min_ios: 64,
            min_ios: 2,
            min_excess_ms: 500.0,
            cliff_min_excess_ms: 1000.0,
            cliff_drop_fraction: 0.5,
            cliff_min_regions: 3,
        }
    }
}

/// Something the map shows about a drive that is not damage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Finding {
    /// Regions much slower than the drive's median.
    SlowRegion {
        /// `"read"` or `"write"`.
        op: String,
        /// Where the slow regions start.
        offset_bytes: u64,
        /// How far they reach.
        len_bytes: u64,
        /// Their throughput, MiB/s.
        mib_per_s: f64,
        /// The median region's, MiB/s.
        median_mib_per_s: f64,
        /// Their worst p99 latency, µs.
        latency_us_p99: u64,
        /// The median region's p99, µs.
        median_latency_us_p99: u64,
    },
    /// Writes slow down from an offset on, to the end: a write cache that ran out.
    WriteCliff {
        /// Where the slow writes start (to within a region).
        offset_bytes: u64,
        /// Median write speed before it, MiB/s.
        before_mib_per_s: f64,
        /// Median write speed after it, MiB/s.
        after_mib_per_s: f64,
    },
    /// One I/O that took very long.
    Stall {
        /// `"read"` or `"write"`.
        op: String,
        /// Where it was.
        offset_bytes: u64,
        /// Its length.
        len_bytes: u64,
        /// How long it took, ms.
        latency_ms: f64,
    },
}

impl Finding {
    /// `"slow-region"`, `"write-cliff"` or `"stall"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Finding::SlowRegion { .. } => "slow-region",
            Finding::WriteCliff { .. } => "write-cliff",
            Finding::Stall { .. } => "stall",
        }
    }

    /// The bytes of the device it is about: (offset, length); a cliff reaches to the end
    /// of the device (`capacity_bytes`).
    pub fn range(&self, capacity_bytes: u64) -> (u64, u64) {
        match *self {
            Finding::SlowRegion {
                offset_bytes,
                len_bytes,
                ..
            }
            | Finding::Stall {
                offset_bytes,
                len_bytes,
                ..
            } => (offset_bytes, len_bytes),
            Finding::WriteCliff { offset_bytes, .. } => {
                (offset_bytes, capacity_bytes.saturating_sub(offset_bytes))
            }
        }
    }
}

/// `bytes` in binary units, e.g. `"1.5 GiB"`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn ms(us: u64) -> String {
    format!("{:.1} ms", us as f64 / 1000.0)
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::SlowRegion {
                op,
                offset_bytes,
                len_bytes,
                mib_per_s,
                median_mib_per_s,
                latency_us_p99,
                median_latency_us_p99,
            } => write!(
                f,
                "slow {op}s at {}..{} ({}): {mib_per_s:.1} MiB/s against a median of \
                 {median_mib_per_s:.1} MiB/s, p99 latency {} against {}",
                human_bytes(*offset_bytes),
                human_bytes(offset_bytes + len_bytes),
                human_bytes(*len_bytes),
                ms(*latency_us_p99),
                ms(*median_latency_us_p99)
            ),
            Finding::WriteCliff {
                offset_bytes,
                before_mib_per_s,
                after_mib_per_s,
            } => write!(
                f,
                "write cliff at {}: writes fall from {before_mib_per_s:.1} MiB/s to \
                 {after_mib_per_s:.1} MiB/s there and stay slow (a write cache running out)",
                human_bytes(*offset_bytes)
            ),
            Finding::Stall {
                op,
                offset_bytes,
                len_bytes,
                latency_ms,
            } => write!(
                f,
                "stall: one {op} of {} at {} took {latency_ms:.0} ms",
                human_bytes(*len_bytes),
                human_bytes(*offset_bytes)
            ),
        }
    }
}

/// The lines a summary shows for `findings` (empty when there are none).
pub fn summary(findings: &[Finding]) -> String {
    if findings.is_empty() {
        return String::new();
    }
    let mut out = format!(
        "findings (not damage; the data reads back as written): {}\n",
        findings.len()
    );
    for f in findings {
        out.push_str(&format!("  {f}\n"));
    }
    out
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// µs a region took beyond what `bytes` cost at `mib_per_s`.
fn excess_us(r: &MapRegion, mib_per_s: f64) -> f64 {
    if mib_per_s <= 0.0 {
        return 0.0;
    }
    r.busy_us as f64 - r.bytes as f64 / (mib_per_s * 1024.0 * 1024.0) * 1e6
}

/// Regions judged against each other fewer than this are not judged.
const MIN_REGIONS_JUDGED: usize = 4;

/// The slow regions of `regions` (one side of a cliff, or a whole series), merged.
fn slow_regions(
    op: &str,
    regions: &[&MapRegion],
    map: &SurfaceMap,
    opts: &FindingOptions,
    out: &mut Vec<Finding>,
) {
    if regions.len() < MIN_REGIONS_JUDGED {
        return;
    }
    let med_tp = median(regions.iter().map(|r| r.mib_per_s).collect());
    let med_p50 = median(regions.iter().map(|r| r.latency_us_p50 as f64).collect());
    let med_p99 = median(regions.iter().map(|r| r.latency_us_p99 as f64).collect());
    let slow = |r: &MapRegion| {
        // The region's stalls are findings of their own: their time is not counted,
        // unless most of its I/Os are that slow (then it is slow throughout).
        let stalled_us: f64 = if r.latency_us_p50 as f64 >= opts.stall_ms * 1000.0 {
            0.0
        } else {
            map.slow_ios
                .iter()
                .filter(|s| {
                    s.op == op
                        && s.latency_ms >= opts.stall_ms
                        && s.offset_bytes < r.offset_bytes + map.region_bytes
                        && r.offset_bytes < s.offset_bytes + s.len_bytes.max(1)
                })
                .map(|s| s.latency_ms * 1000.0)
                .sum()
        };
        let unstalled = MapRegion {
            busy_us: (r.busy_us as f64 - stalled_us).max(0.0) as u64,
            ..r.clone()
        };
        let by_speed = r.mib_per_s < med_tp * opts.slow_throughput_fraction
            && r.latency_us_p50 as f64 >= med_p50 * opts.slow_p50_factor;
        let by_latency = r.ios >= opts.slow_p99_min_ios
            && r.latency_us_p99 as f64 > med_p99 * opts.slow_p99_factor
            && r.latency_us_p99 as f64 >= opts.slow_p99_min_ms * 1000.0;
        (by_speed || by_latency).then(|| (excess_us(&unstalled, med_tp).max(0.0), by_latency))
    };
    // A run of slow regions is a finding when it costs the floor together (many small
    // regions of a large slow area each cost little) or one is slow by its p99.
    let mut run: Vec<&MapRegion> = Vec::new();
    let mut run_excess_us = 0.0;
    let mut run_by_latency = false;
    let flush = |run: &mut Vec<&MapRegion>,
                 excess_us: &mut f64,
                 by_latency: &mut bool,
                 out: &mut Vec<Finding>| {
        let keep = *by_latency || *excess_us >= opts.min_excess_ms * 1000.0;
        *excess_us = 0.0;
        *by_latency = false;
        let (Some(first), Some(last)) = (run.first(), run.last()) else {
            return;
        };
        if !keep {
            run.clear();
            return;
        }
        let end = (last.offset_bytes + map.region_bytes).min(map.capacity_bytes.max(1));
        let bytes: u64 = run.iter().map(|r| r.bytes).sum();
        let busy_us: u64 = run.iter().map(|r| r.busy_us).sum();
        out.push(Finding::SlowRegion {
            op: op.to_owned(),
            offset_bytes: first.offset_bytes,
            len_bytes: end.saturating_sub(first.offset_bytes),
            mib_per_s: if busy_us > 0 {
                ((bytes as f64 / 1048576.0) / (busy_us as f64 / 1e6) * 10.0).round() / 10.0
            } else {
                0.0
            },
            median_mib_per_s: (med_tp * 10.0).round() / 10.0,
            latency_us_p99: run.iter().map(|r| r.latency_us_p99).max().unwrap_or(0),
            median_latency_us_p99: med_p99 as u64,
        });
        run.clear();
    };
    for r in regions {
        if let Some((excess, by_latency)) = slow(r) {
            if run.last().is_some_and(|p| p.index + 1 != r.index) {
                flush(&mut run, &mut run_excess_us, &mut run_by_latency, out);
            }
            run.push(r);
            run_excess_us += excess;
            run_by_latency |= by_latency;
        } else {
            flush(&mut run, &mut run_excess_us, &mut run_by_latency, out);
        }
    }
    flush(&mut run, &mut run_excess_us, &mut run_by_latency, out);
}

/// The region index (into `regions`) where a write cliff starts, with the medians
/// before and after it.
fn find_cliff(regions: &[&MapRegion], opts: &FindingOptions) -> Option<(usize, f64, f64)> {
    let n = regions.len();
    let m = opts.cliff_min_regions.max(1);
    if n < 2 * m {
        return None;
    }
    // Where the levels split is fitted on the median latency, which a busy moment of
    // the CPU or a region's few metadata I/Os move far less than its throughput.
    let logs: Vec<f64> = regions
        .iter()
        .map(|r| (r.latency_us_p50.max(1) as f64).ln())
        .collect();
    let sse = |xs: &[f64]| {
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>()
    };
    let mut best: Option<(f64, usize, f64, f64)> = None;
    for k in m..=n - m {
        let before = median(regions[..k].iter().map(|r| r.mib_per_s).collect());
        let after = median(regions[k..].iter().map(|r| r.mib_per_s).collect());
        if before <= 0.0 || after > before * opts.cliff_drop_fraction {
            continue;
        }
        let line = before * 0.7;
        let slow_after = regions[k..].iter().filter(|r| r.mib_per_s < line).count();
        let fast_before = regions[..k].iter().filter(|r| r.mib_per_s >= line).count();
        if (slow_after as f64) < 0.8 * (n - k) as f64 || (fast_before as f64) < 0.5 * k as f64 {
            continue;
        }
        let excess: f64 = regions[k..].iter().map(|r| excess_us(r, before)).sum();
        if excess < opts.cliff_min_excess_ms * 1000.0 {
            continue;
        }
        let cost = sse(&logs[..k]) + sse(&logs[k..]);
        if best.is_none_or(|(c, ..)| cost < c) {
            best = Some((cost, k, before, after));
        }
    }
    best.map(|(_, k, before, after)| (k, before, after))
}

/// The findings a map shows under `opts`: a write cliff first, then slow regions and
/// stalls in offset order.
pub fn find(map: &SurfaceMap, opts: &FindingOptions) -> Vec<Finding> {
    let judged = |regions: &[MapRegion]| -> Vec<MapRegion> {
        regions
            .iter()
            .filter(|r| r.ios >= opts.min_ios && r.busy_us > 0)
            .cloned()
            .collect()
    };
    let mut out = Vec::new();
    let mut slow = Vec::new();
    if let Some(write) = &map.write {
        let owned = judged(&write.regions);
        let regions: Vec<&MapRegion> = owned.iter().collect();
        match find_cliff(&regions, opts) {
            Some((k, before, after)) => {
                out.push(Finding::WriteCliff {
                    offset_bytes: regions[k].offset_bytes,
                    before_mib_per_s: (before * 10.0).round() / 10.0,
                    after_mib_per_s: (after * 10.0).round() / 10.0,
                });
                slow_regions("write", &regions[..k], map, opts, &mut slow);
                slow_regions("write", &regions[k..], map, opts, &mut slow);
            }
            None => slow_regions("write", &regions, map, opts, &mut slow),
        }
    }
    if let Some(read) = &map.read {
        let owned = judged(&read.regions);
        let regions: Vec<&MapRegion> = owned.iter().collect();
        slow_regions("read", &regions, map, opts, &mut slow);
    }
    let in_slow_region = |op: &str, at: u64, len: u64| {
        slow.iter().any(|f| match f {
            Finding::SlowRegion {
                op: o,
                offset_bytes,
                len_bytes,
                ..
            } => o == op && *offset_bytes < at + len.max(1) && at < offset_bytes + len_bytes,
            _ => false,
        })
    };
    let mut stalls = Vec::new();
    for io in &map.slow_ios {
        // A stall inside a region found slow is part of that finding.
        if io.latency_ms >= opts.stall_ms && !in_slow_region(&io.op, io.offset_bytes, io.len_bytes)
        {
            stalls.push(Finding::Stall {
                op: io.op.clone(),
                offset_bytes: io.offset_bytes,
                len_bytes: io.len_bytes,
                latency_ms: (io.latency_ms * 10.0).round() / 10.0,
            });
        }
    }
    slow.extend(stalls);
    slow.sort_by_key(|f| f.range(map.capacity_bytes).0);
    out.extend(slow);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::map::{MapSeries, MapSlowIo};

    const REGION: u64 = 4 << 20;

    /// A series of `n` regions of 4 MiB written in 1 MiB I/Os at `speed(i)` MiB/s, each
    /// I/O taking the same time.
    fn series(n: u32, speed: impl Fn(u32) -> f64) -> MapSeries {
        let regions: Vec<MapRegion> = (0..n)
            .map(|i| {
                let s = speed(i);
                let busy_us = (4.0 / s * 1e6) as u64;
                let lat = busy_us / 4;
                MapRegion {
                    index: i,
                    offset_bytes: u64::from(i) * REGION,
                    bytes: REGION,
                    ios: 4,
                    busy_us,
                    mib_per_s: s,
                    latency_us_p50: lat,
                    latency_us_p99: lat,
                    latency_us_max: lat,
                }
            })
            .collect();
        MapSeries {
            bytes: REGION * u64::from(n),
            busy_secs: 0.0,
            mib_per_s: 0.0,
            regions,
        }
    }

    fn map(write: MapSeries, read: MapSeries, slow: Vec<MapSlowIo>) -> SurfaceMap {
        SurfaceMap {
            capacity_bytes: REGION * write.regions.len() as u64,
            region_bytes: REGION,
            regions: write.regions.len() as u32,
            write: Some(write),
            read: Some(read),
            slow_ios_total: slow.len() as u64,
            slow_ios: slow,
        }
    }

    /// Deterministic jitter: a fast device's regions vary by up to 4× and a few are
    /// much slower, but none costs 100 ms more than the median.
    fn noisy(i: u32) -> f64 {
        let wobble = [1.0, 0.6, 1.3, 0.25, 0.9, 1.1, 0.8, 0.3][(i % 8) as usize];
        2000.0 * wobble
    }

    #[test]
    fn a_noisy_fast_device_has_no_findings() {
        let m = map(series(64, noisy), series(64, |i| noisy(i + 3)), Vec::new());
        assert_eq!(find(&m, &FindingOptions::default()), Vec::new());
        // Nor does a 40-region drop of a fast device that costs under 100 ms.
        let m = map(
            series(64, |i| if i < 24 { 4000.0 } else { 1500.0 }),
            series(64, noisy),
            Vec::new(),
        );
        assert_eq!(find(&m, &FindingOptions::default()), Vec::new());
    }

    #[test]
    fn a_slow_run_of_regions_is_one_finding() {
        let m = map(
            series(32, |_| 200.0),
            series(32, |i| if (10..13).contains(&i) { 8.0 } else { 300.0 }),
            Vec::new(),
        );
        let f = find(&m, &FindingOptions::default());
        assert_eq!(f.len(), 1, "{f:?}");
        let Finding::SlowRegion {
            op,
            offset_bytes,
            len_bytes,
            ..
        } = &f[0]
        else {
            panic!("{f:?}")
        };
        assert_eq!(
            (op.as_str(), *offset_bytes, *len_bytes),
            ("read", 10 * REGION, 3 * REGION)
        );
    }

    #[test]
    fn a_cliff_is_found_at_its_region_and_not_called_slow() {
        let m = map(
            series(40, |i| if i < 13 { 900.0 } else { 60.0 }),
            series(40, |_| 1000.0),
            Vec::new(),
        );
        let f = find(&m, &FindingOptions::default());
        assert_eq!(
            f,
            vec![Finding::WriteCliff {
                offset_bytes: 13 * REGION,
                before_mib_per_s: 900.0,
                after_mib_per_s: 60.0
            }]
        );
        // Near the end (fewer regions after it than the minimum): not a cliff.
        let m = map(
            series(40, |i| if i < 38 { 900.0 } else { 60.0 }),
            series(40, |_| 1000.0),
            Vec::new(),
        );
        assert!(find(&m, &FindingOptions::default())
            .iter()
            .all(|f| f.kind() != "write-cliff"));
    }

    #[test]
    fn only_ios_over_the_threshold_are_stalls() {
        let io = |ms: f64| MapSlowIo {
            op: "write".into(),
            offset_bytes: 5 << 20,
            len_bytes: 1 << 20,
            latency_ms: ms,
            at_secs: 0.1,
        };
        let m = map(
            series(16, |_| 500.0),
            series(16, |_| 500.0),
            vec![io(800.0), io(120.0)],
        );
        let f = find(&m, &FindingOptions::default());
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].kind(), "stall");
        assert!(f[0].to_string().contains("800 ms"), "{}", f[0]);
        let lower = FindingOptions {
            stall_ms: 100.0,
            ..FindingOptions::default()
        };
        assert_eq!(find(&m, &lower).len(), 2);
    }
}
