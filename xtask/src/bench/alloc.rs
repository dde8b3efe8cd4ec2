//! Benchmark group `alloc`: the extent allocator against `offset-allocator` and against
//! naive goal-only allocation.
//!
//! Units: one allocator unit is one 4 KiB block on both sides, so "4 KiB..1 MiB extents"
//! are requests of 1..256 units. `offset-allocator` rounds each request up to its
//! floating-point size bins (up to ~12% over), ours gives exactly what was asked.

use super::{alternate, time, Ctx, Row, Sense};
use anyhow::{ensure, Context, Result};
use stack_alloc::{AllocQueue, AllocRequest, Allocator, Extent};

const BLOCK_BYTES: u64 = 4096;
const GIB_BLOCKS: u64 = (1 << 30) / BLOCK_BYTES;
/// 64 KiB appends.
const APPEND_BLOCKS: u64 = (64 << 10) / BLOCK_BYTES;
/// Largest request: 1 MiB.
const MAX_REQ_BLOCKS: u64 = (1 << 20) / BLOCK_BYTES;

pub fn run(ctx: &mut Ctx) -> Result<()> {
    pairs(ctx)?;
    queue(ctx)?;
    streams(ctx)?;
    churn_ratio(ctx)?;
    Ok(())
}

/// xorshift64*: the same request sequence for both sides.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// A log-uniform request size from 1 block (4 KiB) to 256 blocks (1 MiB).
    fn size(&mut self) -> u64 {
        let k = self.below(9);
        ((1 << k) + self.below(1 << k)).min(MAX_REQ_BLOCKS)
    }
}

/// Fills `a` to half full with random sizes, then replaces `churn` random extents.
fn age(a: &Allocator, rng: &mut Rng, churn: usize) -> Result<Vec<Extent>> {
    let mut held = Vec::new();
    let mut gen = 1;
    while a.free_blocks() > a.total_blocks() / 2 {
        held.push(a.alloc(&AllocRequest::any(rng.size()))?);
    }
    for i in 0..churn {
        let e = held.swap_remove(rng.below(held.len() as u64) as usize);
        a.free(e, gen)?;
        held.push(a.alloc(&AllocRequest::any(rng.size()))?);
        if i % 64 == 63 {
            a.commit(gen);
            gen += 1;
        }
    }
    a.commit(gen);
    Ok(held)
}

/// CPU time of the calling thread. The pairs case is single-threaded and this machine is
/// shared by several builds at once, so CPU time (not wall time) is what both sides are
/// timed by there.
fn thread_cpu_secs() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call, and
    // CLOCK_THREAD_CPUTIME_ID is supported by every Linux kernel we run on.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Alloc+free pairs per CPU-second at 50% full.
fn pairs(ctx: &mut Ctx) -> Result<()> {
    let total = 4 * GIB_BLOCKS; // 4 GiB
    let ops = if ctx.quick { 200_000 } else { 1_000_000 };
    let ours = || -> Result<f64> {
        let a = Allocator::new(total, total / 4)?;
        let mut rng = Rng(7);
        let mut held = age(&a, &mut rng, 0)?;
        let mut gen = 1;
        let t0 = thread_cpu_secs();
        let r = (|| -> Result<()> {
            for i in 0..ops {
                let e = held.swap_remove(rng.below(held.len() as u64) as usize);
                a.free(e, gen)?;
                held.push(a.alloc(&AllocRequest::any(rng.size()))?);
                if i % 64 == 63 {
                    a.commit(gen);
                    gen += 1;
                }
            }
            Ok(())
        })();
        let dt = thread_cpu_secs() - t0;
        r?;
        Ok(ops as f64 / dt)
    };
    let peer = || -> Result<f64> {
        let mut a: offset_allocator::Allocator =
            offset_allocator::Allocator::with_max_allocs(total as u32, 1 << 20);
        let mut rng = Rng(7);
        let mut held = Vec::new();
        let mut used = 0u64;
        while used < total / 2 {
            let s = rng.size();
            let x = a
                .allocate(s as u32)
                .context("offset-allocator: fill failed")?;
            used += s;
            held.push(x);
        }
        let mut failed = 0u64;
        let t0 = thread_cpu_secs();
        {
            for _ in 0..ops {
                let x = held.swap_remove(rng.below(held.len() as u64) as usize);
                a.free(x);
                match a.allocate(rng.size() as u32) {
                    Some(x) => held.push(x),
                    None => failed += 1,
                }
            }
        }
        let dt = thread_cpu_secs() - t0;
        ensure!(failed == 0, "offset-allocator failed {failed} allocations");
        Ok(ops as f64 / dt)
    };
    let (o, p) = alternate(ctx.runs(), ours, peer)?;
    push(
        ctx,
        "pairs 4K-1M @50%",
        "pairs/cpu-s",
        Sense::HigherIsBetter,
        o,
        "offset-allocator",
        p,
        Some(("pairs/cpu-s >= 1e6", o >= 1e6)),
        "thread CPU time; 1 unit = 1 4 KiB block; ours frees busy, commits every 64",
    );
    Ok(())
}

/// AllocQueue with batches against direct calls, same requests.
fn queue(ctx: &mut Ctx) -> Result<()> {
    let total = 4 * GIB_BLOCKS;
    let reqs = if ctx.quick { 100_000 } else { 400_000 };
    const BATCH: usize = 256;
    let run = |queued: bool| -> Result<f64> {
        let a = Allocator::new(total, total / 4)?;
        let q = AllocQueue::new(a.clone())?;
        let mut rng = Rng(11);
        let mut held: Vec<Extent> = Vec::with_capacity(reqs);
        let (dt, r) = time(|| -> Result<()> {
            let mut done = 0;
            while done < reqs {
                let batch: Vec<AllocRequest> = (0..BATCH)
                    .map(|_| AllocRequest::any(rng.size().min(16)))
                    .collect();
                if queued {
                    for r in q.alloc_batch(batch)? {
                        held.push(r?);
                    }
                } else {
                    for r in &batch {
                        held.push(a.alloc(r)?);
                    }
                }
                done += BATCH;
                if held.len() >= 4096 {
                    for e in held.drain(..) {
                        a.free_uncommitted(e)?;
                    }
                }
            }
            Ok(())
        });
        r?;
        Ok(reqs as f64 / dt.as_secs_f64())
    };
    let (o, p) = alternate(ctx.runs(), || run(true), || run(false))?;
    ctx.record(
        "queue batch256 vs direct",
        "allocs/s",
        Sense::HigherIsBetter,
        o,
        "direct calls",
        p,
        Some(0.5),
        "alloc_batch of 256 requests (1-16 blocks) per hand-off",
    );
    Ok(())
}

/// Extents per GiB per stream, ours (streams) against naive goal-only allocation.
fn streams(ctx: &mut Ctx) -> Result<()> {
    let total = 64 * GIB_BLOCKS; // 64 GiB in 16 groups of 4 GiB
    let group = 4 * GIB_BLOCKS;
    let churn = if ctx.quick { 100_000 } else { 400_000 };
    let fresh = Allocator::new(total, group)?.encode();
    let aged = {
        let a = Allocator::new(total, group)?;
        age(&a, &mut Rng(3), churn)?;
        a.encode()
    };
    for (label, image, target) in [("fresh", &fresh, 2.0), ("aged 50%", &aged, 16.0)] {
        for n in [4usize, 16] {
            let a = Allocator::decode(image)?;
            let ours = stream_runs(&a, n)?;
            let a = Allocator::decode(image)?;
            let peer = naive_runs(&a, n)?;
            push(
                ctx,
                &format!("streams {n} {label}"),
                "ext/GiB",
                Sense::LowerIsBetter,
                ours.0,
                "goal-only near",
                peer.0,
                Some((&format!("ext/GiB <= {target}"), ours.0 <= target)),
                &format!(
                    "1 GiB per stream in 64 KiB appends; worst stream {:.0} (peer {:.0})",
                    ours.1, peer.1
                ),
            );
        }
    }
    Ok(())
}

/// Mean and worst extents per GiB over `n` interleaved streams writing 1 GiB each.
fn stream_runs(a: &Allocator, n: usize) -> Result<(f64, f64)> {
    let mut streams: Vec<_> = (0..n).map(|_| a.stream()).collect();
    for _ in 0..GIB_BLOCKS / APPEND_BLOCKS {
        for s in &mut streams {
            s.alloc(APPEND_BLOCKS, APPEND_BLOCKS)?;
        }
    }
    let runs: Vec<f64> = streams.iter().map(|s| s.runs() as f64).collect();
    Ok(mean_max(&runs))
}

/// The peer: each writer asks for the block after its last extent, all starting at 0.
fn naive_runs(a: &Allocator, n: usize) -> Result<(f64, f64)> {
    let mut ends = vec![0u64; n];
    let mut runs = vec![0f64; n];
    for _ in 0..GIB_BLOCKS / APPEND_BLOCKS {
        for w in 0..n {
            let goal = ends[w].min(a.total_blocks() - 1);
            let e = a.alloc(&AllocRequest::near(goal, APPEND_BLOCKS, APPEND_BLOCKS))?;
            if e.start != ends[w] || runs[w] == 0.0 {
                runs[w] += 1.0;
            }
            ends[w] = e.end();
        }
    }
    Ok(mean_max(&runs))
}

fn mean_max(v: &[f64]) -> (f64, f64) {
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    (mean, v.iter().copied().fold(0.0, f64::max))
}

/// Largest free extent over total free after random churn at 50% full.
fn churn_ratio(ctx: &mut Ctx) -> Result<()> {
    let total = 4 * GIB_BLOCKS;
    let churn = if ctx.quick { 200_000 } else { 1_000_000 };
    // One group, so the ratio measures fragmentation, not the group size cap.
    let a = Allocator::new(total, total)?;
    age(&a, &mut Rng(5), churn)?;
    a.check()?;
    let ours = a.largest_free() as f64 / a.free_blocks() as f64;
    let mut p: offset_allocator::Allocator =
        offset_allocator::Allocator::with_max_allocs(total as u32, 1 << 20);
    let mut rng = Rng(5);
    let mut held = Vec::new();
    let mut used = 0u64;
    while used < total / 2 {
        let s = rng.size();
        held.push((
            p.allocate(s as u32)
                .context("offset-allocator: fill failed")?,
            s,
        ));
        used += s;
    }
    for _ in 0..churn {
        let (x, _) = held.swap_remove(rng.below(held.len() as u64) as usize);
        p.free(x);
        let s = rng.size();
        held.push((
            p.allocate(s as u32)
                .context("offset-allocator: churn failed")?,
            s,
        ));
    }
    let r = p.storage_report();
    let peer = f64::from(r.largest_free_region) / f64::from(r.total_free_space);
    push(
        ctx,
        "largest/free after churn",
        "ratio",
        Sense::HigherIsBetter,
        ours,
        "offset-allocator",
        peer,
        Some(("ratio >= 0.9", ours >= 0.9)),
        &format!(
            "{churn} random free+alloc at 50% full, one group; peer's largest is its bin floor"
        ),
    );
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn push(
    ctx: &mut Ctx,
    case: &str,
    unit: &str,
    sense: Sense,
    ours: f64,
    peer: &str,
    peer_value: f64,
    target: Option<(&str, bool)>,
    note: &str,
) {
    ctx.push(Row {
        group: "alloc".to_owned(),
        case: case.to_owned(),
        unit: unit.to_owned(),
        ours,
        peer: peer.to_owned(),
        peer_value,
        speedup: super::frame::speedup(sense, ours, peer_value),
        target: target.map_or(String::new(), |t| t.0.to_owned()),
        target_met: target.map(|t| t.1),
        note: note.to_owned(),
    });
}
