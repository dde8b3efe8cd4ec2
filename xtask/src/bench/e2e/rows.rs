//! Alternating the sides of a case, their medians, and the rows they become.

use super::proc::Measured;
use super::setup::{GIB, MIB};
use crate::bench::frame::{median, round_spread};
use crate::bench::{Ctx, Row, Sense};
use anyhow::Result;
use std::path::Path;
use std::process::Command;

/// What one side of a case measured: medians over its runs, or why it has none.
pub type Res = std::result::Result<Stats, String>;

/// Medians of wall and CPU time over the runs, and the largest peak RSS.
#[derive(Debug, Clone)]
pub struct Stats {
    pub wall_s: f64,
    /// Every run's wall time, in round order (rounds pair the sides of a case).
    pub walls_s: Vec<f64>,
    pub cpu_s: f64,
    pub maxrss_kib: u64,
    /// The largest floor under `maxrss_kib` (the spawner's own RSS).
    pub rss_floor_kib: u64,
}

/// One contender of a case: a name and one run's closure, or why it cannot run.
pub struct Side<'a> {
    run: std::result::Result<Box<dyn FnMut() -> Result<Measured> + 'a>, String>,
}

pub fn side<'a>(
    run: std::result::Result<impl FnMut() -> Result<Measured> + 'a, String>,
) -> Side<'a> {
    Side {
        run: run.map(|f| Box::new(f) as Box<dyn FnMut() -> Result<Measured> + 'a>),
    }
}

/// Runs every side `runs` times, rotating which goes first each round. A side that fails
/// once drops out with the error as its reason.
pub fn alternate(runs: usize, sides: &mut [Side<'_>]) -> Vec<Res> {
    assert!(runs > 0);
    let n = sides.len();
    let mut samples: Vec<Vec<Measured>> = vec![Vec::new(); n];
    let mut failed: Vec<Option<String>> = vec![None; n];
    for round in 0..runs {
        for k in 0..n {
            let i = (round + k) % n;
            if failed[i].is_some() {
                continue;
            }
            if let Ok(run) = &mut sides[i].run {
                match run() {
                    Ok(m) => samples[i].push(m),
                    Err(e) => failed[i] = Some(format!("failed: {e:#}")),
                }
            }
        }
    }
    sides
        .iter()
        .zip(samples)
        .zip(failed)
        .map(|((s, m), f)| {
            if let Err(why) = &s.run {
                return Err(format!("skipped: {why}"));
            }
            if let Some(why) = f {
                return Err(why);
            }
            let mut wall: Vec<f64> = m.iter().map(|x| x.wall_s).collect();
            let mut cpu: Vec<f64> = m.iter().map(|x| x.cpu_s).collect();
            let maxrss_kib = m.iter().map(|x| x.maxrss_kib).max().unwrap_or(0);
            let rss_floor_kib = m.iter().map(|x| x.rss_floor_kib).max().unwrap_or(0);
            Ok(Stats {
                walls_s: wall.clone(),
                wall_s: median(&mut wall),
                cpu_s: median(&mut cpu),
                maxrss_kib,
                rss_floor_kib,
            })
        })
        .collect()
}

/// A copy of `cmd` (program and arguments) to add this run's arguments to.
pub fn again(cmd: &Command) -> Command {
    let mut c = Command::new(cmd.get_program());
    c.args(cmd.get_args());
    c
}

pub fn dup(cmd: &std::result::Result<Command, String>) -> std::result::Result<Command, String> {
    cmd.as_ref().map(again).map_err(Clone::clone)
}

pub fn both<A, B>(
    a: std::result::Result<A, String>,
    b: std::result::Result<B, String>,
) -> std::result::Result<(A, B), String> {
    Ok((a?, b?))
}

pub fn gib_s(bytes: u64, s: &Stats) -> f64 {
    bytes as f64 / GIB as f64 / s.wall_s
}

pub fn detail(ours: &Stats, peer: &Stats, runs: usize) -> String {
    format!(
        "median of {runs}; cpu {:.2}s vs {:.2}s; peak rss {:.1} vs {:.1} MiB (floor {:.1})",
        ours.cpu_s,
        peer.cpu_s,
        ours.maxrss_kib as f64 / 1024.0,
        peer.maxrss_kib as f64 / 1024.0,
        ours.rss_floor_kib.max(peer.rss_floor_kib) as f64 / 1024.0
    )
}

/// A GiB/s row (wall-clock throughput over `bytes`), or a row that says what was skipped.
#[allow(clippy::too_many_arguments)]
pub fn speed_row(
    ctx: &mut Ctx,
    case: &str,
    ours: &Res,
    peer: &str,
    theirs: &Res,
    bytes: u64,
    target: f64,
    note: &str,
) {
    match (ours, theirs) {
        (Ok(o), Ok(p)) => {
            let rounds = round_spread(Sense::LowerIsBetter, &o.walls_s, &p.walls_s, Some(target));
            let note = format!(
                "{} MiB; {}; {rounds}{note}",
                bytes / MIB,
                detail(o, p, o.walls_s.len())
            );
            ctx.record(
                case,
                "GiB/s",
                Sense::HigherIsBetter,
                gib_s(bytes, o),
                peer,
                gib_s(bytes, p),
                Some(target),
                &note,
            );
        }
        _ => {
            let mut why = Vec::new();
            if let Err(e) = ours {
                why.push(format!("ours {e}"));
            }
            if let Err(e) = theirs {
                why.push(format!("peer {e}"));
            }
            skipped_row(
                ctx,
                case,
                "GiB/s",
                ours.as_ref().map(|o| gib_s(bytes, o)).unwrap_or(0.0),
                peer,
                theirs.as_ref().map(|p| gib_s(bytes, p)).unwrap_or(0.0),
                &format!("speedup >= {target}"),
                &why.join("; "),
            );
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub fn skipped_row(
    ctx: &mut Ctx,
    case: &str,
    unit: &str,
    ours: f64,
    peer: &str,
    peer_value: f64,
    target: &str,
    why: &str,
) {
    ctx.push(Row {
        group: ctx.group().to_owned(),
        case: case.to_owned(),
        unit: unit.to_owned(),
        ours,
        peer: peer.to_owned(),
        peer_value,
        speedup: 0.0,
        target: target.to_owned(),
        target_met: None,
        note: why.to_owned(),
    });
}

pub fn arg(prefix: &str, path: &Path) -> String {
    format!("{prefix}{}", path.display())
}
