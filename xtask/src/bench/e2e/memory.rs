//! `memory`: peak RSS of `stackctl write` and `verify` at two sizes.

use super::proc::{sys, Measured};
use super::rows::{again, both, Res, Stats};
use super::setup::{fresh, volume_size, Env, MIB};
use crate::bench::{Ctx, Row, Sense};
use anyhow::Result;
use std::process::Command;

/// `memory`: peak RSS of `write --pattern` and `verify` at two sizes against the 64 MiB
/// bound, and how much it grows from the small size to the large one.
pub fn memory(ctx: &mut Ctx, env: &mut Env) -> Result<()> {
    const BOUND_MIB: f64 = 64.0;
    const GROWTH_MIB: f64 = 4.0;
    let small = env.bytes;
    let mut large = 4 * small;
    let free = sys::free_bytes(&env.shm)?;
    let mut note = String::new();
    while volume_size(large) > free && large > small {
        large /= 2;
        note = format!("; large size cut to {} MiB: /dev/shm short", large / MIB);
    }
    let vol = env.shm.join("mem.vol");
    let cmds = both(
        env.stackctl("format"),
        both(env.stackctl("write"), env.stackctl("verify")),
    );
    let mut peaks: Vec<(u64, [Res; 2])> = Vec::new();
    for bytes in [small, large] {
        eprintln!("  e2e: memory, {} MiB", bytes / MIB);
        let one = |cmds: &(Command, (Command, Command))| -> Result<[Stats; 2]> {
            let (format, (write, verify)) = cmds;
            fresh(&vol)?;
            let vol_size = volume_size(bytes).to_string();
            env.measure(
                again(format).arg(&vol).args(["--size", &vol_size]),
                "format",
                bytes,
            )?;
            let size = bytes.to_string();
            let w = env.measure(
                again(write)
                    .arg(&vol)
                    .args(["--pattern", "--size", &size, "--seed", "1"]),
                "stackctl write --pattern",
                bytes,
            )?;
            let v = env.measure(again(verify).arg(&vol), "stackctl verify", bytes)?;
            fresh(&vol)?;
            let stats = |m: Measured| Stats {
                wall_s: m.wall_s,
                walls_s: vec![m.wall_s],
                cpu_s: m.cpu_s,
                maxrss_kib: m.maxrss_kib,
                rss_floor_kib: m.rss_floor_kib,
            };
            Ok([stats(w), stats(v)])
        };
        let res = match &cmds {
            Ok(c) => match one(c) {
                Ok([w, v]) => [Ok(w), Ok(v)],
                Err(e) => [Err(format!("failed: {e:#}")), Err(format!("failed: {e:#}"))],
            },
            Err(why) => [
                Err(format!("skipped: {why}")),
                Err(format!("skipped: {why}")),
            ],
        };
        fresh(&vol)?;
        peaks.push((bytes, res));
    }
    let mib = |s: &Stats| s.maxrss_kib as f64 / 1024.0;
    for (bytes, res) in &peaks {
        for (what, r) in ["write", "verify"].iter().zip(res) {
            let case = format!("memory {what} {} MiB", bytes / MIB);
            let ours = r.as_ref().map(mib).unwrap_or(0.0);
            ctx.push(Row {
                group: "e2e".to_owned(),
                case,
                unit: "MiB RSS".to_owned(),
                ours,
                peer: "bound".to_owned(),
                peer_value: BOUND_MIB,
                speedup: if r.is_ok() {
                    crate::bench::frame::speedup(Sense::LowerIsBetter, ours, BOUND_MIB)
                } else {
                    0.0
                },
                target: format!("<= {BOUND_MIB} MiB"),
                target_met: r.as_ref().ok().map(|_| ours <= BOUND_MIB),
                note: match r {
                    Ok(s) => format!(
                        "peak RSS (wait4 ru_maxrss; floor {:.1} MiB = xtask's RSS at spawn), 1 run{note}",
                        s.rss_floor_kib as f64 / 1024.0
                    ),
                    Err(e) => e.clone(),
                },
            });
        }
    }
    for (i, what) in ["write", "verify"].iter().enumerate() {
        let case = format!("memory {what} growth");
        let growth = match (&peaks[0].1[i], &peaks[1].1[i]) {
            (Ok(a), Ok(b)) => Ok(mib(b) - mib(a)),
            (Err(e), _) | (_, Err(e)) => Err(e.clone()),
        };
        ctx.push(Row {
            group: "e2e".to_owned(),
            case,
            unit: "MiB".to_owned(),
            ours: *growth.as_ref().unwrap_or(&0.0),
            peer: "bound".to_owned(),
            peer_value: GROWTH_MIB,
            speedup: 0.0,
            target: format!("<= +{GROWTH_MIB} MiB"),
            target_met: growth.as_ref().ok().map(|g| *g <= GROWTH_MIB),
            note: match &growth {
                Ok(_) => format!(
                    "peak RSS at {} MiB minus at {} MiB",
                    peaks[1].0 / MIB,
                    peaks[0].0 / MIB
                ),
                Err(e) => e.clone(),
            },
        });
    }
    Ok(())
}
