//! Benchmark group `csum`: checksum throughput of `stack-csum` against the crates it
//! wraps and against `memcpy`.
//!
//! For each algorithm, GB/s on 4 KiB, 64 KiB and 1 MiB buffers that stay in cache and on
//! 4 KiB blocks streamed over 256 MiB (64 MiB with `--quick`), on one thread and on two.
//! Every case runs three sides alternately in the same run (ours through `BlockCsum`,
//! the underlying crate called directly on the same bytes, and `memcpy` of the same
//! bytes) and records two rows: ours against the crate (the cost of our API, target
//! `speedup >= 0.95` at 1 MiB) and ours against `memcpy` (for scale). Last, the
//! runtime-dispatched XXH3 against `xxhash-rust`'s default build.

use super::{alternate, median, Ctx, Sense};
use anyhow::{ensure, Result};
use stack_csum::{Algorithm, BlockCsum};
use std::hint::black_box;
use std::time::Instant;

const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;
/// Block size of the streamed cases.
const STREAM_BLOCK_BYTES: usize = 4 * KIB;
/// A fixed volume salt for every case.
const SALT: u64 = 0x5a17_5eed_0bad_cafe;

/// One of the three sides of a case.
#[derive(Debug, Clone, Copy)]
enum Side {
    /// `BlockCsum::compute` (ours).
    Ours,
    /// `crc32c` / `xxhash-rust` called directly.
    Raw,
    /// `copy_from_slice` of the same bytes.
    Memcpy,
}

/// The work one thread does in one run.
struct Lane<'a> {
    /// The bytes this thread hashes.
    src: &'a [u8],
    /// How many passes over `src` one run makes.
    passes: usize,
    /// `memcpy` destination (`src.len()` in cache, a 64 KiB ring when streaming).
    dst: Vec<u8>,
    /// One checksum slot per block of `src`.
    out: Vec<u64>,
    /// The `BlockCsum` of the case (its block size is `src.len()` in cache).
    csum: BlockCsum,
}

impl Lane<'_> {
    fn run(&mut self, side: Side) {
        let block_bytes = self.csum.block_size_bytes();
        for pass in 0..self.passes {
            match side {
                Side::Ours => {
                    self.csum
                        .compute(pass as u64, black_box(self.src), &mut self.out)
                        .expect("shape checked when the lane was built");
                }
                Side::Raw => {
                    let algorithm = self.csum.algorithm();
                    for (slot, block) in self.out.iter_mut().zip(self.src.chunks_exact(block_bytes))
                    {
                        *slot = raw(algorithm, black_box(block));
                    }
                }
                Side::Memcpy => {
                    let ring = self.dst.len();
                    for (i, block) in self.src.chunks_exact(block_bytes.min(ring)).enumerate() {
                        let at = (i * block.len()) % ring;
                        self.dst[at..at + block.len()].copy_from_slice(black_box(block));
                    }
                }
            }
            black_box(&mut self.out);
            black_box(&mut self.dst);
        }
    }

    fn bytes(&self) -> usize {
        self.src.len() * self.passes
    }
}

/// The underlying crate on its own, as a user without `stack-csum` would call it.
fn raw(algorithm: Algorithm, data: &[u8]) -> u64 {
    match algorithm {
        Algorithm::Crc32c => u64::from(crc32c::crc32c(data)),
        Algorithm::Xxh3 => xxhash_rust::xxh3::xxh3_64(data),
        Algorithm::Xxh64 => xxhash_rust::xxh64::xxh64(data, 0),
        _ => unreachable!("a new algorithm needs a raw peer in the csum bench"),
    }
}

fn peer_name(algorithm: Algorithm) -> &'static str {
    match algorithm {
        Algorithm::Crc32c => "crc32c crate",
        _ => "xxhash-rust",
    }
}

/// Runs every lane with `side` (one thread per lane) and returns aggregate GB/s.
fn measure(lanes: &mut [Lane<'_>], side: Side) -> f64 {
    let bytes: usize = lanes.iter().map(Lane::bytes).sum();
    let start = Instant::now();
    if let [lane] = lanes {
        lane.run(side);
    } else {
        std::thread::scope(|s| {
            for lane in lanes.iter_mut() {
                s.spawn(move || lane.run(side));
            }
        });
    }
    bytes as f64 / start.elapsed().as_secs_f64() / 1e9
}

/// Runs the three sides `runs` times each, rotating who goes first, and returns the
/// medians (ours, raw, memcpy).
fn three_way(runs: usize, lanes: &mut [Lane<'_>]) -> (f64, f64, f64) {
    let sides = [Side::Ours, Side::Raw, Side::Memcpy];
    let mut samples = [Vec::new(), Vec::new(), Vec::new()];
    // One untimed warm-up of each side: page faults, frequency, lazy detection.
    for side in sides {
        measure(lanes, side);
    }
    for run in 0..runs {
        for k in 0..3 {
            let which = (run + k) % 3;
            samples[which].push(measure(lanes, sides[which]));
        }
    }
    let [mut a, mut b, mut c] = samples;
    (median(&mut a), median(&mut b), median(&mut c))
}

/// Pseudo-random bytes (xorshift), fast enough for hundreds of MiB.
fn random_bytes(len: usize, mut state: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

pub fn run(ctx: &mut Ctx) -> Result<()> {
    let runs = ctx.runs();
    // Bytes each thread hashes per timed run of an in-cache case.
    let per_run_bytes = if ctx.quick { 768 * MIB } else { 2048 * MIB };
    let stream_bytes = if ctx.quick { 64 * MIB } else { 256 * MIB };
    // Passes over the stream per run, so a run lasts tens of milliseconds.
    let stream_passes = (per_run_bytes / 2 / stream_bytes).max(1);
    let backend = stack_csum::xxh3_backend();
    eprintln!("  xxh3 backend: {backend}; {runs} runs per side, median");

    let stream = random_bytes(stream_bytes, 0x1234_5678);
    let small: Vec<Vec<u8>> = (0..2).map(|t| random_bytes(MIB, 99 + t)).collect();

    for algorithm in Algorithm::ALL {
        let peer = peer_name(algorithm);
        for (label, len) in [("4K", 4 * KIB), ("64K", 64 * KIB), ("1M", MIB)] {
            for threads in [1usize, 2] {
                let mut lanes = (0..threads)
                    .map(|t| {
                        Ok(Lane {
                            src: &small[t][..len],
                            passes: per_run_bytes / len,
                            dst: vec![0; len],
                            out: vec![0; 1],
                            csum: BlockCsum::new(algorithm, SALT, len)?,
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                let (ours, crate_gbs, memcpy_gbs) = three_way(runs, &mut lanes);
                let case = format!("{algorithm} {label} {threads}T");
                let target = (len == MIB).then_some(0.95);
                let note = if algorithm == Algorithm::Xxh3 && len > 240 {
                    format!("xxh3 backend {backend}")
                } else {
                    String::new()
                };
                ctx.record(
                    &case,
                    "GB/s",
                    Sense::HigherIsBetter,
                    ours,
                    peer,
                    crate_gbs,
                    target,
                    &note,
                );
                ctx.record(
                    &case,
                    "GB/s",
                    Sense::HigherIsBetter,
                    ours,
                    "memcpy",
                    memcpy_gbs,
                    None,
                    "",
                );
            }
        }
        for threads in [1usize, 2] {
            let share = stream_bytes / threads;
            ensure!(
                share % STREAM_BLOCK_BYTES == 0,
                "stream share not whole blocks"
            );
            let mut lanes = (0..threads)
                .map(|t| {
                    Ok(Lane {
                        src: &stream[t * share..(t + 1) * share],
                        passes: stream_passes,
                        dst: vec![0; 64 * KIB],
                        out: vec![0; share / STREAM_BLOCK_BYTES],
                        csum: BlockCsum::new(algorithm, SALT, STREAM_BLOCK_BYTES)?,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let (ours, crate_gbs, memcpy_gbs) = three_way(runs, &mut lanes);
            let case = format!("{algorithm} stream {}M {threads}T", stream_bytes / MIB);
            let note = format!("4 KiB blocks from memory, {stream_passes} passes");
            let note = note.as_str();
            ctx.record(
                &case,
                "GB/s",
                Sense::HigherIsBetter,
                ours,
                peer,
                crate_gbs,
                None,
                note,
            );
            ctx.record(
                &case,
                "GB/s",
                Sense::HigherIsBetter,
                ours,
                "memcpy",
                memcpy_gbs,
                None,
                note,
            );
        }
        compute_par_case(ctx, algorithm, &stream, stream_passes, runs)?;
    }
    dispatch_cases(ctx, &small[0], per_run_bytes, runs)
}

/// `BlockCsum::compute_par` (rayon) over the whole stream against the crate on two
/// scoped threads.
fn compute_par_case(
    ctx: &mut Ctx,
    algorithm: Algorithm,
    stream: &[u8],
    passes: usize,
    runs: usize,
) -> Result<()> {
    let csum = BlockCsum::new(algorithm, SALT, STREAM_BLOCK_BYTES)?;
    let mut out = vec![0u64; stream.len() / STREAM_BLOCK_BYTES];
    let half = stream.len() / 2;
    let mut lanes: Vec<Lane<'_>> = (0..2)
        .map(|t| {
            Ok(Lane {
                src: &stream[t * half..(t + 1) * half],
                passes,
                dst: vec![0; 64 * KIB],
                out: vec![0; half / STREAM_BLOCK_BYTES],
                csum,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let (ours, peer) = alternate(
        runs,
        || {
            let start = Instant::now();
            for pass in 0..passes {
                csum.compute_par(pass as u64, black_box(stream), &mut out)?;
            }
            Ok((stream.len() * passes) as f64 / start.elapsed().as_secs_f64() / 1e9)
        },
        || Ok(measure(&mut lanes, Side::Raw)),
    )?;
    let case = format!("{algorithm} compute_par {}M", stream.len() / MIB);
    let peer_label = format!("{} 2T", peer_name(algorithm));
    let note = format!("rayon, {} threads", rayon::current_num_threads());
    ctx.record(
        &case,
        "GB/s",
        Sense::HigherIsBetter,
        ours,
        &peer_label,
        peer,
        None,
        &note,
    );
    Ok(())
}

/// The runtime-dispatched XXH3 (`stack_csum::xxh3_64_with_seed`) against
/// `xxhash-rust`'s default build, one thread, in cache.
fn dispatch_cases(ctx: &mut Ctx, buf: &[u8], per_run_bytes: usize, runs: usize) -> Result<()> {
    let backend = stack_csum::xxh3_backend();
    for (label, len) in [
        ("256B", 256),
        ("512B", 512),
        ("4K", 4 * KIB),
        ("64K", 64 * KIB),
        ("1M", MIB),
    ] {
        let data = &buf[..len];
        ensure!(
            stack_csum::xxh3_64_with_seed(data, 7) == xxhash_rust::xxh3::xxh3_64_with_seed(data, 7),
            "dispatched XXH3 differs from xxhash-rust at {len} bytes"
        );
        let passes = per_run_bytes / len;
        let gbs = |f: &dyn Fn(&[u8]) -> u64| {
            let start = Instant::now();
            let mut acc = 0u64;
            for _ in 0..passes {
                acc ^= f(black_box(data));
            }
            black_box(acc);
            Ok((len * passes) as f64 / start.elapsed().as_secs_f64() / 1e9)
        };
        let (ours, peer) = alternate(
            runs,
            || gbs(&|d| stack_csum::xxh3_64_with_seed(d, 0)),
            || gbs(&|d| xxhash_rust::xxh3::xxh3_64_with_seed(d, 0)),
        )?;
        ctx.record(
            &format!("xxh3 dispatch {label} 1T"),
            "GB/s",
            Sense::HigherIsBetter,
            ours,
            "xxhash-rust default",
            peer,
            None,
            &if len <= 256 {
                format!("backend {backend}; <= 256 B both run xxhash-rust")
            } else {
                format!("backend {backend}")
            },
        );
    }
    Ok(())
}
