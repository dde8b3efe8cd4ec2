//! Benchmark group `e2e`: the `stackctl` binary against `dd`, `fio` and `f3`, whole
//! process against whole process (issue 8).
//!
//! Fairness, as fio's authors would expect it:
//! - every figure is the median of several runs (3 under `--quick`; twice as many for
//!   the disk cases, whose throughput swings most), ours and the peers alternated in the
//!   same run with the starting side rotated each round;
//! - wall time is measured from `spawn` to the reap; CPU time (user + system) and peak
//!   RSS come from `wait4`'s rusage, which includes descendants the child reaped (fio's
//!   forked job processes);
//! - the input file lives on the disk and is read through (into the page cache) right
//!   before every run of every side; every output (volume, dd's file, fio's file, f3's
//!   directory) is removed and recreated before each run, so nobody overwrites a warm,
//!   already-allocated file; `--direct` cases drop the file's cached pages first;
//! - before every measured run, xtask touches and frees a little more memory than the
//!   run needs (`setup::warm_memory`): this VM returns idle free memory to its host,
//!   and whichever side ran after a pause would otherwise pay to get it back;
//! - setup that is not the thing measured (`stackctl format`, fio's write before its
//!   verify pass) runs untimed;
//! - a case whose `stackctl` command is not there yet, or whose peer is not installed,
//!   is still listed, with `skipped: <why>` in its note.

mod cases;
pub(super) mod checks;
mod memory;
pub(super) mod proc;
pub(super) mod rows;
pub(super) mod setup;

use super::Ctx;
use anyhow::Result;

pub fn run(ctx: &mut Ctx) -> Result<()> {
    let mut env = setup::Env::new(ctx)?;
    for note in env.notes.drain(..) {
        eprintln!("  e2e: {note}");
    }
    // The machine may be shared: say how busy it was (both sides pay for it alike).
    eprintln!("  e2e: load average before: {}", setup::loadavg());
    cases::write_verify_shm(ctx, &mut env)?;
    cases::disk(ctx, &mut env)?;
    cases::burn_in(ctx, &mut env)?;
    cases::burn_in_canaries(ctx, &mut env)?;
    memory::memory(ctx, &mut env)?;
    eprintln!("  e2e: load average after: {}", setup::loadavg());
    for note in env.notes.drain(..) {
        eprintln!("  e2e: {note}");
    }
    Ok(())
}
