//! Benchmark group `many`: one `stackctl burn-in` over N drives at once against the same
//! N burn-ins one after another (issue 19), on loop devices over files on `/dev/shm`.
//!
//! For N = 1, 2, 4 (`--quick`: 1, 2) the group attaches N loop devices of the same size
//! (256 MiB each; `--quick` 128 MiB), each backing file allocated whole first, and
//! alternates the two sides, starting side rotating each round, median of the runs
//! (`e2e::rows::alternate`). Rows:
//! - `together N=k`: aggregate throughput (N × the device size over the wall time) of
//!   the one run against the runs one after another; target ≥ 0.95× (N = 1 is the same
//!   command against itself: it shows the noise, with no target);
//! - `memory N=k`: the one run's peak RSS against the bound 64 MiB + 16 MiB per extra
//!   drive.
//!
//! It needs root, `/dev/loop-control` and `losetup` (`fastdev`'s checks and its
//! detach-on-drop [`LoopDev`] guard); without them every row is listed, skipped, with
//! the reason.

use super::e2e::rows::{again, alternate, side, skipped_row, speed_row, Res};
use super::e2e::setup::{fresh, Env, MIB};
use super::fastdev::{allocated_file, why_no_loop, LoopDev};
use super::{Ctx, Row};
use anyhow::Result;
use std::path::PathBuf;

/// Peak RSS allowed for one drive, and for each drive more (issue 19).
const RSS_BASE_MIB: f64 = 64.0;
const RSS_PER_DRIVE_MIB: f64 = 16.0;

fn counts(quick: bool) -> &'static [usize] {
    if quick {
        &[1, 2]
    } else {
        &[1, 2, 4]
    }
}

fn skip_all(ctx: &mut Ctx, quick: bool, why: &str) {
    eprintln!("  many: skipped: {why}");
    for &n in counts(quick) {
        let target = if n > 1 { "speedup >= 0.95" } else { "" };
        skipped_row(
            ctx,
            &format!("together N={n}"),
            "GiB/s",
            0.0,
            "one after another",
            0.0,
            target,
            &format!("skipped: {why}"),
        );
    }
}

pub fn run(ctx: &mut Ctx) -> Result<()> {
    let quick = ctx.quick;
    if let Some(why) = why_no_loop() {
        skip_all(ctx, quick, &why);
        return Ok(());
    }
    let mut env = Env::new(ctx)?;
    let runs = env.runs;
    let shm = env.shm.clone();
    let each = if quick { 128 * MIB } else { 256 * MIB };
    let burn = env.stackctl("burn-in");
    for &n in counts(quick) {
        let images: Vec<PathBuf> = (0..n).map(|i| shm.join(format!("many-{i}.img"))).collect();
        for img in &images {
            allocated_file(img, each)?;
        }
        let mut devs = Vec::new();
        for img in &images {
            match LoopDev::attach(img) {
                Ok(d) => devs.push(d),
                Err(why) => {
                    drop(devs);
                    for img in &images {
                        fresh(img)?;
                    }
                    skip_all(ctx, quick, &format!("no loop device: {why}"));
                    return Ok(());
                }
            }
        }
        let paths: Vec<PathBuf> = devs.iter().map(|d| d.dev.clone()).collect();
        eprintln!(
            "  many: N={n}, {} MiB each, on {}",
            each / MIB,
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(" ")
        );
        let total = each * n as u64;
        let env = &env;
        let paths = &paths;
        let mut sides = [
            side(burn.as_ref().map_err(Clone::clone).map(|burn| {
                move || {
                    env.measure(
                        again(burn).args(["--force", "--seed", "1"]).args(paths),
                        "stackctl burn-in (together)",
                        total,
                    )
                }
            })),
            side(burn.as_ref().map_err(Clone::clone).map(|burn| {
                move || {
                    let mut all: Option<super::e2e::proc::Measured> = None;
                    for p in paths {
                        let one = env.measure(
                            again(burn).args(["--force", "--seed", "1"]).arg(p),
                            "stackctl burn-in (one drive)",
                            each,
                        )?;
                        all = Some(match all {
                            Some(a) => a.then(one),
                            None => one,
                        });
                    }
                    Ok(all.expect("at least one drive"))
                }
            })),
        ];
        let res: Vec<Res> = alternate(runs, &mut sides);
        drop(sides);
        let case = format!("together N={n}");
        let note = format!("; {n} loop devices over /dev/shm, one run vs {n} runs in a row");
        if n > 1 {
            speed_row(
                ctx,
                &case,
                &res[0],
                "one after another",
                &res[1],
                total,
                0.95,
                &note,
            );
        } else {
            super::fastdev::info_row(ctx, &case, &res[0], "one after another", &res[1], total);
        }
        let bound = RSS_BASE_MIB + RSS_PER_DRIVE_MIB * (n as f64 - 1.0);
        let peak = res[0].as_ref().map(|s| s.maxrss_kib as f64 / 1024.0);
        ctx.push(Row {
            group: "many".to_owned(),
            case: format!("memory N={n}"),
            unit: "MiB".to_owned(),
            ours: *peak.as_ref().unwrap_or(&0.0),
            peer: "bound".to_owned(),
            peer_value: bound,
            speedup: 0.0,
            target: format!("<= {bound} MiB"),
            target_met: peak.as_ref().ok().map(|p| *p <= bound),
            note: match &peak {
                Ok(_) => format!("peak RSS of the one burn-in over {n} drives"),
                Err(e) => (*e).clone(),
            },
        });
        drop(devs);
        for img in &images {
            fresh(img)?;
        }
    }
    Ok(())
}
