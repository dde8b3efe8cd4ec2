//! Benchmark group `bio`: the submission queue against plain concurrent `pwrite`.
//!
//! Cases: a file on `/dev/shm`, a file on disk (under the target dir) written through
//! the page cache, and the same disk file with `O_DIRECT` on both sides (`disk-direct`:
//! every I/O reaches the device as issued, so the I/O sizes and order the queue makes
//! are what the disk sees), and `disk-direct-uring`, the same with our queue issuing
//! through io_uring (`QueueConfig::io_uring`) instead of submitter threads; 4 and 16
//! writer threads, two workloads. `one-stream`: the threads share one sequential
//! stream; each takes the next 64 KiB bio, checksums it (crc32c) and writes it, so they
//! finish out of order; ours hands the bios to the queue in stream order through
//! `async-thread` ordered work, as the write pipeline does. `many-streams`: each thread
//! appends 64 KiB bios to its own region. Both sides end with a flush (`fdatasync`).
//!
//! Thread pools and buffers are set up before the clock starts on both sides (a
//! pipeline's outlive one file): the clock measures writing, not thread start-up.
//!
//! Rows per case: throughput (speedup >= 1.0), the sequential share of issued I/Os
//! (ours >= 0.9) and the mean I/O size (ours >= 512 KiB). For the peer the same counters
//! come from the order in which its `pwrite`s were issued. Each buffered place also
//! gets a `copy-ceiling` row (see [`copy_ceiling`]): what one thread's copy into the
//! page cache costs from queued buffers against from a hot one, the bound a queue's
//! buffered throughput meets on a 2-core machine.

use super::frame::{median, results_dir, round_spread, speedup, Row, Sense};
use super::Ctx;
use anyhow::{Context, Result};
use stack_async_thread::Workers;
use stack_bio::{
    AlignedBuf, Bio, BufferPool, Device, FileDevice, OpenOptions, QueueConfig, SeqCounter,
    SubmitQueue,
};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

const BIO_BYTES: usize = 64 << 10;

/// What one run measured.
#[derive(Debug, Clone, Copy)]
struct Sample {
    gb_per_s: f64,
    sequential_share: f64,
    mean_io_kib: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Workload {
    OneStream,
    ManyStreams,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::OneStream => "one-stream",
            Workload::ManyStreams => "many-streams",
        }
    }
}

pub fn run(ctx: &mut Ctx) -> Result<()> {
    let total_bytes: u64 = if ctx.quick { 64 << 20 } else { 256 << 20 };
    // (name, file, O_DIRECT, our queue on io_uring)
    let mut places: Vec<(&str, PathBuf, bool, bool)> = Vec::new();
    if Path::new("/dev/shm").is_dir() {
        places.push((
            "shm",
            PathBuf::from(format!(
                "/dev/shm/stack-bio-bench-{}.img",
                std::process::id()
            )),
            false,
            false,
        ));
    } else {
        eprintln!("  /dev/shm is missing: the shm cases are skipped");
    }
    let dir = results_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let disk = dir.join(format!("bio-bench-{}.img", std::process::id()));
    places.push(("disk", disk.clone(), false, false));
    places.push(("disk-direct", disk.clone(), true, false));
    places.push(("disk-direct-uring", disk, true, true));
    for &(place, ref path, direct, uring) in &places {
        let _cleanup = RemoveOnDrop(path.clone());
        if !direct {
            copy_ceiling(ctx, place, path, total_bytes)?;
        }
        if uring {
            if let Err(why) = uring_available(path) {
                eprintln!("  {place}: skipped, io_uring is not available here: {why}");
                continue;
            }
        }
        for threads in [4usize, 16] {
            for workload in [Workload::OneStream, Workload::ManyStreams] {
                let case = format!("{place} {} t{threads}", workload.name());
                let case_run = Case {
                    path,
                    direct,
                    uring,
                    total_bytes,
                    threads,
                    workload,
                };
                let mut ours = Vec::new();
                let mut peer = Vec::new();
                for round in 0..ctx.runs() {
                    // Alternate who goes first so neither always runs on a warm machine.
                    if round % 2 == 0 {
                        ours.push(run_ours(case_run)?);
                        peer.push(run_peer(case_run)?);
                    } else {
                        peer.push(run_peer(case_run)?);
                        ours.push(run_ours(case_run)?);
                    }
                }
                record(ctx, &case, &ours, &peer);
            }
        }
    }
    Ok(())
}

/// Whether this kernel lets us set up an io_uring on `path` (a seccomp filter or
/// `kernel.io_uring_disabled` may refuse it).
fn uring_available(path: &Path) -> Result<()> {
    let dev: Arc<dyn Device> = Arc::new(open_fresh(path, false, 4096)?);
    let config = QueueConfig::default().with_io_uring(true);
    SubmitQueue::new(dev, stack_bio::InlineEndIo, config)?;
    Ok(())
}

fn record(ctx: &mut Ctx, case: &str, ours: &[Sample], peer: &[Sample]) {
    let med =
        |s: &[Sample], f: fn(&Sample) -> f64| median(&mut s.iter().map(f).collect::<Vec<_>>());
    let (o_tp, p_tp) = (med(ours, |s| s.gb_per_s), med(peer, |s| s.gb_per_s));
    let per_run = |s: &[Sample]| s.iter().map(|s| s.gb_per_s).collect::<Vec<_>>();
    ctx.record(
        case,
        "GB/s",
        Sense::HigherIsBetter,
        o_tp,
        "concurrent pwrite",
        p_tp,
        Some(1.0),
        &format!(
            "median of {}; {}",
            ours.len(),
            round_spread(
                Sense::HigherIsBetter,
                &per_run(ours),
                &per_run(peer),
                Some(1.0)
            )
        ),
    );
    let (o_seq, p_seq) = (
        med(ours, |s| s.sequential_share),
        med(peer, |s| s.sequential_share),
    );
    push(
        ctx,
        &format!("{case} seq-share"),
        "share",
        o_seq,
        p_seq,
        "ours >= 0.9",
        o_seq >= 0.9,
    );
    let (o_kib, p_kib) = (med(ours, |s| s.mean_io_kib), med(peer, |s| s.mean_io_kib));
    push(
        ctx,
        &format!("{case} mean-io"),
        "KiB",
        o_kib,
        p_kib,
        "ours >= 512 KiB",
        o_kib >= 512.0,
    );
}

fn push(
    ctx: &mut Ctx,
    case: &str,
    unit: &str,
    ours: f64,
    peer_value: f64,
    target: &str,
    met: bool,
) {
    ctx.push(Row {
        group: "bio".to_owned(),
        case: case.to_owned(),
        unit: unit.to_owned(),
        ours,
        peer: "concurrent pwrite".to_owned(),
        peer_value,
        speedup: speedup(Sense::HigherIsBetter, ours, peer_value),
        target: target.to_owned(),
        target_met: Some(met),
        note: String::new(),
    });
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The copy into the page cache is what a buffered case is bound by, and one thread
/// does all of it: the kernel's inode lock serialises a file's buffered writes whoever
/// issues them. The peer copies each 64 KiB from a buffer its own thread just filled,
/// still in that core's cache; a queue copies bios other threads filled a while ago.
/// This row measures that difference alone, one thread and no other work: 1 MiB
/// `pwritev`s of 64 KiB buffers cycling through the 16 MiB a queue holds in flight,
/// against 64 KiB `pwrite`s from one hot buffer. Its ratio is about the most any queue
/// that merges other threads' buffers can reach against the peer on this place (no
/// target: it is a bound, not a result).
fn copy_ceiling(ctx: &mut Ctx, place: &str, path: &Path, total_bytes: u64) -> Result<()> {
    const QUEUED_BYTES: usize = 16 << 20;
    const IO_BIOS: usize = 16;
    let queued: Vec<AlignedBuf> = (0..QUEUED_BYTES / BIO_BYTES)
        .map(|i| {
            let mut buf = AlignedBuf::new(BIO_BYTES, 4096);
            buf.fill(i as u8 | 1);
            buf
        })
        .collect();
    let hot = &queued[0];
    let (mut merged, mut single) = (Vec::new(), Vec::new());
    for round in 0..ctx.runs() * 2 {
        let merged_first = round % 2 == 0;
        for merged_side in [merged_first, !merged_first] {
            let device = open_fresh(path, false, total_bytes)?;
            let start = Instant::now();
            if merged_side {
                let bios = (total_bytes / BIO_BYTES as u64) as usize;
                for (io, first) in (0..bios).step_by(IO_BIOS).enumerate() {
                    let iov: Vec<&[u8]> = (first..(first + IO_BIOS).min(bios))
                        .map(|b| &queued[b % queued.len()][..])
                        .collect();
                    device.writev_at(&iov, (io * IO_BIOS * BIO_BYTES) as u64)?;
                }
            } else {
                for k in 0..total_bytes / BIO_BYTES as u64 {
                    device.write_at(hot, k * BIO_BYTES as u64)?;
                }
            }
            device.flush()?;
            let gb_per_s = total_bytes as f64 / start.elapsed().as_secs_f64() / 1e9;
            if merged_side {
                merged.push(gb_per_s);
            } else {
                single.push(gb_per_s);
            }
        }
    }
    ctx.record(
        &format!("{place} copy-ceiling"),
        "GB/s",
        Sense::HigherIsBetter,
        median(&mut merged.clone()),
        "pwrite, hot 64 KiB",
        median(&mut single.clone()),
        None,
        &format!(
            "one thread, 1 MiB pwritev of queued buffers; {}",
            round_spread(Sense::HigherIsBetter, &merged, &single, None)
        ),
    );
    Ok(())
}

/// Real work per bio: a deterministic fill and its crc32c.
fn fill_and_sum(buf: &mut [u8], index: u64) -> u32 {
    for (w, chunk) in buf.chunks_exact_mut(8).enumerate() {
        chunk
            .copy_from_slice(&(index.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ w as u64).to_le_bytes());
    }
    crc32c::crc32c(buf)
}

/// Where bio `k` of thread `t` (or of the shared stream) goes.
fn bio_offset(workload: Workload, total_bios: u64, threads: usize, thread: usize, k: u64) -> u64 {
    match workload {
        Workload::OneStream => k * BIO_BYTES as u64,
        Workload::ManyStreams => {
            let per_thread = total_bios / threads as u64;
            (thread as u64 * per_thread + k) * BIO_BYTES as u64
        }
    }
}

fn open_fresh(path: &Path, direct: bool, total_bytes: u64) -> Result<FileDevice> {
    let _ = std::fs::remove_file(path);
    let opts = OpenOptions::new()
        .direct(direct)
        .create_size_bytes(total_bytes);
    FileDevice::open(path, &opts).with_context(|| format!("opening {}", path.display()))
}

/// One run of one case, for either side.
#[derive(Debug, Clone, Copy)]
struct Case<'a> {
    path: &'a Path,
    direct: bool,
    /// Our queue issues through io_uring (the peer is plain `pwrite` either way).
    uring: bool,
    total_bytes: u64,
    threads: usize,
    workload: Workload,
}

fn run_ours(case: Case<'_>) -> Result<Sample> {
    let Case {
        path,
        direct,
        uring,
        total_bytes,
        threads,
        workload,
    } = case;
    let device: Arc<dyn Device> = Arc::new(open_fresh(path, direct, total_bytes)?);
    let total_bios = total_bytes / BIO_BYTES as u64;
    // 16 MiB in flight: the memory a pipeline would give one device.
    let config = QueueConfig::default()
        .with_max_in_flight_bytes(16 << 20)
        .with_io_uring(uring);
    let end_io = Workers::builder("bench-endio")
        .min_threads(1)
        .max_threads(2)
        .build()?;
    let queue = Arc::new(
        SubmitQueue::new(device, end_io.clone(), config.clone())
            .context("starting our submission queue")?,
    );
    let in_flight_bufs = (config.max_in_flight_bytes / BIO_BYTES as u64) as usize;
    let pool = BufferPool::new(in_flight_bufs + 4 * threads, BIO_BYTES, 4096)
        .context("making the buffer pool")?;
    // A pipeline's pool outlives one file: fault its pages in before the clock starts,
    // as the peer's per-thread buffers are reused from their first write on.
    drop((0..pool.count()).map(|_| pool.get()).collect::<Vec<_>>());
    let sums = Arc::new(AtomicU64::new(0));
    // A pipeline's checksum pool outlives one file too: its threads start before the
    // clock, as the peer's threads do (see `run_peer`).
    let csum = match workload {
        Workload::OneStream => Some(
            Workers::builder("bench-csum")
                .min_threads(threads)
                .max_threads(threads)
                .build()?,
        ),
        Workload::ManyStreams => None,
    };
    let start = Instant::now();
    match (workload, &csum) {
        (Workload::OneStream, Some(csum)) => {
            let ordered = csum.ordered();
            for k in 0..total_bios {
                let mut buf = pool.get();
                let (q, sums) = (Arc::clone(&queue), Arc::clone(&sums));
                ordered.queue(
                    move || {
                        let sum = fill_and_sum(&mut buf, k);
                        (buf, sum)
                    },
                    move |(buf, sum)| {
                        let offset = bio_offset(workload, total_bios, threads, 0, k);
                        q.submit(Bio::write(offset, buf, move |r| {
                            r.result.expect("bench write");
                            sums.fetch_add(u64::from(sum), Ordering::Relaxed);
                        }));
                    },
                )?;
            }
            ordered.flush();
        }
        (Workload::OneStream, None) => unreachable!("one stream has a checksum pool"),
        (Workload::ManyStreams, _) => {
            std::thread::scope(|s| {
                for t in 0..threads {
                    let (q, pool, sums) = (&queue, &pool, &sums);
                    s.spawn(move || {
                        for k in 0..total_bios / threads as u64 {
                            let mut buf = pool.get();
                            let sum = fill_and_sum(&mut buf, k);
                            let sums = Arc::clone(sums);
                            let offset = bio_offset(workload, total_bios, threads, t, k);
                            q.submit(
                                Bio::write(offset, buf, move |r| {
                                    r.result.expect("bench write");
                                    sums.fetch_add(u64::from(sum), Ordering::Relaxed);
                                })
                                .with_stream(t as u64),
                            );
                        }
                    });
                }
            });
        }
    }
    queue.flush()?;
    let elapsed = start.elapsed().as_secs_f64();
    if let Some(csum) = csum {
        csum.shutdown();
    }
    end_io.flush();
    let stats = queue.stats();
    let expected_bios = match workload {
        Workload::OneStream => total_bios,
        Workload::ManyStreams => total_bios / threads as u64 * threads as u64,
    };
    anyhow::ensure!(stats.bios == expected_bios, "bios lost: {stats:?}");
    Ok(Sample {
        gb_per_s: stats.bytes as f64 / elapsed / 1e9,
        sequential_share: stats.sequential_share,
        mean_io_kib: stats.mean_io_bytes / 1024.0,
    })
}

fn run_peer(case: Case<'_>) -> Result<Sample> {
    let Case {
        path,
        direct,
        uring: _,
        total_bytes,
        threads,
        workload,
    } = case;
    let device = open_fresh(path, direct, total_bytes)?;
    let file = device.file();
    let total_bios = total_bytes / BIO_BYTES as u64;
    let issued: Vec<AtomicU64> = (0..total_bios).map(|_| AtomicU64::new(u64::MAX)).collect();
    let ticket = AtomicUsize::new(0);
    let next = AtomicU64::new(0);
    // Threads start (and fault their buffer in) before the clock, like ours' pools.
    let ready = std::sync::Barrier::new(threads + 1);
    let mut start = Instant::now();
    std::thread::scope(|s| -> Result<()> {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (issued, ticket, next, ready) = (&issued, &ticket, &next, &ready);
                s.spawn(move || -> std::io::Result<u64> {
                    // Aligned, as `O_DIRECT` needs; the same kind of buffer either way.
                    let mut buf = AlignedBuf::new(BIO_BYTES, 4096);
                    buf.fill(1);
                    ready.wait();
                    let mut sums = 0u64;
                    let mut k_own = 0u64;
                    loop {
                        let offset = match workload {
                            Workload::OneStream => {
                                let k = next.fetch_add(1, Ordering::Relaxed);
                                if k >= total_bios {
                                    break;
                                }
                                sums += u64::from(fill_and_sum(&mut buf, k));
                                bio_offset(workload, total_bios, threads, t, k)
                            }
                            Workload::ManyStreams => {
                                if k_own >= total_bios / threads as u64 {
                                    break;
                                }
                                sums += u64::from(fill_and_sum(&mut buf, k_own));
                                k_own += 1;
                                bio_offset(workload, total_bios, threads, t, k_own - 1)
                            }
                        };
                        let slot = ticket.fetch_add(1, Ordering::Relaxed);
                        issued[slot].store(offset, Ordering::Relaxed);
                        file.write_all_at(&buf, offset)?;
                    }
                    Ok(sums)
                })
            })
            .collect();
        ready.wait();
        start = Instant::now();
        for h in handles {
            h.join().expect("peer writer panicked")?;
        }
        Ok(())
    })?;
    file.sync_data()?;
    let elapsed = start.elapsed().as_secs_f64();
    let mut seq = SeqCounter::default();
    for slot in issued.iter().take(ticket.load(Ordering::Relaxed)) {
        seq.record(slot.load(Ordering::Relaxed), BIO_BYTES as u64);
    }
    Ok(Sample {
        gb_per_s: seq.bytes() as f64 / elapsed / 1e9,
        sequential_share: seq.sequential_share(),
        mean_io_kib: seq.mean_io_bytes() / 1024.0,
    })
}
