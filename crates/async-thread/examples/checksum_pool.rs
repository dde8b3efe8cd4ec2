//! CPU-bound work on a `Workers` pool, results in order through an `Ordered` stream.
//!
//! ```text
//! cargo run --release -p stack-async-thread --example checksum_pool -- [--mib 64] [--threads 4]
//! ```
//!
//! Hashes `--mib` MiB in 64 KiB pieces on a pool of up to `--threads` threads and folds
//! the piece hashes, in piece order, into one digest on the stream's ordered half; then
//! checks the digest against a serial run. The pool is built for CPU-bound items: with
//! the default busy threshold (64 queued items per worker before another is woken) a
//! producer that queues quickly keeps one thread busy while the rest sleep; a threshold
//! of 2 spreads the items at once. Then a long job (a second digest of the whole buffer)
//! runs as a reusable `WorkItem` that hashes one slice per run and returns
//! `Step::Requeue`, so items queued behind it get the CPU between its slices (btrfs's
//! requeue), while a `queue_high` item jumps the normal lane and reads its progress. The
//! last step asks a `WorkQueue` with a rescuer for an answer and waits for it
//! (`queue_and_wait`), the XFS pattern.

use stack_async_thread::{Completion, Step, WorkItem, WorkQueue, Workers};
use std::sync::{Arc, Mutex};
use std::time::Instant;

const PIECE: usize = 64 << 10;

/// A 64-bit FNV-1a over 8-byte words: cheap, deterministic, order-sensitive.
fn hash(data: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for word in data.chunks(8) {
        let mut w = [0u8; 8];
        w[..word.len()].copy_from_slice(word);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Folds piece hashes in order (not commutative: a reordering changes the digest).
fn fold(digest: u64, piece: u64) -> u64 {
    (digest ^ piece)
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .rotate_left(29)
}

fn parse() -> Result<(usize, usize), String> {
    let (mut mib, mut threads) = (64, 4);
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let value = it.next().ok_or(format!("{arg} needs a number"))?;
        let n: usize = value
            .parse()
            .map_err(|_| format!("{arg}: '{value}' is not a number"))?;
        match arg.as_str() {
            "--mib" => mib = n,
            "--threads" => threads = n,
            other => return Err(format!("unknown argument '{other}'")),
        }
    }
    if mib == 0 || threads == 0 {
        return Err("--mib and --threads must be at least 1".into());
    }
    Ok((mib, threads))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (mib, threads) = parse().inspect_err(|_| {
        eprintln!("usage: checksum_pool [--mib N] [--threads T]");
    })?;
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let data: Arc<Vec<u8>> = Arc::new(
        (0..mib << 20)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect(),
    );
    let pieces = data.len() / PIECE;

    let pool = Workers::builder("checksum")
        .min_threads(1)
        .max_threads(threads)
        .busy_threshold(2) // CPU-bound items: wake another thread early
        .build()?;
    let digest = Arc::new(Mutex::new(0u64));
    let start = Instant::now();
    let stream = pool.ordered();
    for i in 0..pieces {
        let data = Arc::clone(&data);
        let digest = Arc::clone(&digest);
        stream.queue(
            move || hash(&data[i * PIECE..(i + 1) * PIECE]), // on any worker
            move |h| {
                // In queue order, one at a time.
                let mut d = digest.lock().unwrap();
                *d = fold(*d, h);
            },
        )?;
    }
    stream.flush(); // every ordered half has run
    let elapsed = start.elapsed();
    let parallel = *digest.lock().unwrap();

    let serial = data.chunks(PIECE).map(hash).fold(0, fold);
    if parallel != serial || stream.panics() != 0 {
        return Err(format!("digest {parallel:#x} on the pool, {serial:#x} serially").into());
    }
    let stats = pool.stats();
    println!(
        "{mib} MiB in {pieces} pieces on up to {threads} threads ({} started): digest {parallel:#018x} in {:.1} ms",
        stats.threads_peak,
        elapsed.as_secs_f64() * 1e3,
    );

    // A long job that yields: one slice per run, then back to the tail of the list.
    let one = Workers::builder("long-job").max_threads(1).build()?;
    let done = Completion::new();
    let (slice_data, slice_done) = (Arc::clone(&data), done.clone());
    let (mut next, mut long_digest) = (0usize, 0u64);
    let slices = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = Arc::clone(&slices);
    let long_job = WorkItem::new(move || {
        long_digest = fold(
            long_digest,
            hash(&slice_data[next * PIECE..(next + 1) * PIECE]),
        );
        next += 1;
        seen.store(next, std::sync::atomic::Ordering::Relaxed);
        if next < pieces {
            return Step::Requeue; // let what is queued behind run first
        }
        slice_done.complete(long_digest);
        Step::Done
    });
    let _ = one.queue_work(&long_job)?;
    // High lane: runs before the normal lane's next entry, between two slices.
    let (progress, high_ran) = (Arc::clone(&slices), Completion::new());
    let high_done = high_ran.clone();
    one.queue_high(move || {
        high_done.complete(progress.load(std::sync::atomic::Ordering::Relaxed));
    })?;
    let at = high_ran.wait()?;
    let long = done.wait()?;
    if long != serial || long_job.runs() != pieces as u64 {
        return Err(format!(
            "the requeued job gave {long:#x} in {} runs; want {serial:#x} in {pieces}",
            long_job.runs()
        )
        .into());
    }
    if at >= pieces {
        return Err("the high-lane item waited for the whole long job".into());
    }
    println!(
        "long job: {pieces} requeued slices, same digest; the high-lane item ran with {at} of {pieces} slices done"
    );
    one.shutdown();

    // The XFS pattern: hand a job to a queue that always moves forward (its rescuer
    // runs work when no thread can be started), and sleep until it answers.
    let queue = WorkQueue::builder("answer").rescuer(true).build()?;
    let data2 = Arc::clone(&data);
    let first = queue.queue_and_wait(move || hash(&data2[..PIECE]))?;
    if first != hash(&data[..PIECE]) {
        return Err("queue_and_wait returned another value".into());
    }
    queue.shutdown();
    pool.shutdown();
    println!("ordered digest equals the serial one: ok");
    Ok(())
}
