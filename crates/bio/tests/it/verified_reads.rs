//! Reuse without `stack-volume`: reads through the `SubmitQueue` whose block checksums
//! are verified on a `stack-async-thread` end-I/O pool as each read completes (btrfs's
//! post-I/O side), with the pool's caller-runs policy (`CallerRunsEndIo`).

use stack_async_thread::Workers;
use stack_bio::{Bio, CallerRunsEndIo, Device, FaultyDevice, MemDevice, QueueConfig, SubmitQueue};
use std::collections::BTreeMap;
use std::sync::mpsc;
use std::sync::Arc;

const BLOCK: usize = 4096;
const BLOCKS: u64 = 256;
const BIO_BLOCKS: u64 = 16;

/// A block checksum bound to its address (FNV-1a 64; any checksum serves here).
fn sum(addr: u64, data: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ addr;
    for &b in data {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    h
}

/// What one read's completion found: the blocks that failed their checksum, or the
/// I/O error, and the thread it ran on.
struct Checked {
    bad: Vec<u64>,
    io_error: bool,
    thread: String,
}

/// Writes the device, then reads every block back through a queue whose completions
/// check the checksums on `end_io`; returns each read's outcome by first block.
fn read_back(dev: Arc<dyn Device>, end_io: Workers) -> BTreeMap<u64, Checked> {
    let mut sums = Vec::new();
    for b in 0..BLOCKS {
        let block: Vec<u8> = (0..BLOCK).map(|i| (b as usize * 31 + i) as u8).collect();
        sums.push(sum(b, &block));
        dev.write_at(&block, b * BLOCK as u64).unwrap();
    }
    let sums = Arc::new(sums);
    let config = QueueConfig::default()
        .with_submitters(2)
        .with_max_io_bytes(BIO_BLOCKS as usize * BLOCK);
    let queue = SubmitQueue::new(dev, CallerRunsEndIo(end_io), config).unwrap();
    let (tx, rx) = mpsc::channel();
    for first in (0..BLOCKS).step_by(BIO_BLOCKS as usize) {
        let (tx, sums) = (tx.clone(), Arc::clone(&sums));
        let buf = vec![0u8; BIO_BLOCKS as usize * BLOCK];
        queue.submit(Bio::read(first * BLOCK as u64, buf, move |r| {
            let thread = std::thread::current().name().unwrap_or("").to_string();
            let buf = r.buf.expect("a read's buffer comes back");
            let bad = (0..BIO_BLOCKS)
                .filter(|i| {
                    let i = *i as usize;
                    r.result.is_ok()
                        && sum(first + i as u64, &buf[i * BLOCK..(i + 1) * BLOCK])
                            != sums[first as usize + i]
                })
                .map(|i| first + i)
                .collect();
            let io_error = r.result.is_err();
            tx.send((
                first,
                Checked {
                    bad,
                    io_error,
                    thread,
                },
            ))
            .unwrap();
        }));
    }
    drop(tx);
    let out: BTreeMap<_, _> = rx.iter().collect();
    queue.shutdown();
    out
}

#[test]
fn reads_are_verified_on_the_end_io_pool_as_they_complete() {
    let faulty = Arc::new(FaultyDevice::new(Arc::new(MemDevice::new(
        BLOCKS * BLOCK as u64,
    ))));
    faulty.flip_on_read(37 * BLOCK as u64 + 100, 0x10);
    faulty.fail_reads(200 * BLOCK as u64..200 * BLOCK as u64 + 1);
    let pool = Workers::builder("verify-endio")
        .max_threads(2)
        .build()
        .unwrap();
    let out = read_back(faulty, pool.clone());
    assert_eq!(
        out.len() as u64,
        BLOCKS / BIO_BLOCKS,
        "every read completed once"
    );
    let bad: Vec<u64> = out.values().flat_map(|c| c.bad.clone()).collect();
    assert_eq!(bad, vec![37], "the flipped block, and only it");
    let failed: Vec<u64> = out
        .iter()
        .filter(|(_, c)| c.io_error)
        .map(|(f, _)| *f)
        .collect();
    assert_eq!(failed, vec![192], "the read holding the unreadable byte");
    for c in out.values() {
        assert!(
            c.thread.starts_with("verify-endio") || c.thread.starts_with("bio-submit"),
            "a completion ran on {:?}",
            c.thread
        );
    }
    pool.flush();
    let stats = pool.stats();
    assert_eq!(
        stats.run,
        BLOCKS / BIO_BLOCKS,
        "pool or caller-runs ran each once"
    );
}

/// With every end-I/O worker busy and work waiting, completions run on the submitter
/// that finished the read (caller-runs) instead of queueing behind them.
#[test]
fn a_saturated_end_io_pool_verifies_on_the_submitters() {
    let pool = Workers::builder("busy-endio")
        .min_threads(1)
        .max_threads(1)
        .build()
        .unwrap();
    let (release, held) = mpsc::channel::<()>();
    let (started, running) = mpsc::channel();
    pool.queue(move || {
        started.send(()).unwrap();
        let _ = held.recv();
    })
    .unwrap();
    running.recv().unwrap();
    pool.queue(|| {}).unwrap();
    let dev = Arc::new(MemDevice::new(BLOCKS * BLOCK as u64));
    let out = read_back(dev, pool.clone());
    assert!(out.values().all(|c| c.bad.is_empty() && !c.io_error));
    assert!(
        out.values().all(|c| c.thread.starts_with("bio-submit")),
        "{:?}",
        out.values().map(|c| &c.thread).collect::<Vec<_>>()
    );
    assert_eq!(pool.stats().caller_runs, BLOCKS / BIO_BLOCKS);
    drop(release);
}
