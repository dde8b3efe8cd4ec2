//! The busy-threshold experiment of the crate docs: CPU-bound items (a checksum of
//! 64 KiB each) queued by one producer that keeps at most 16 in flight (like a
//! pipeline with 16 buffers), onto a pool of 1 to 4 threads, with the default busy
//! threshold (64) and with 2.
//!
//! `cargo run --release -p stack-async-thread --example busy_threshold [ITEMS]`
//!
//! With 64, a new item goes to the one worker while it has fewer than 64 pending; with
//! 16 in flight it never has, so the pool never starts a second thread and the
//! checksums run on one core. With 2, the worker counts as busy at 2 pending and the
//! pool starts threads up to `max_threads`.

use stack_async_thread::{Workers, DEFAULT_BUSY_THRESHOLD};
use std::hint::black_box;
use std::sync::{mpsc, Arc};
use std::time::Instant;

const ITEM_BYTES: usize = 64 << 10;
/// Items the producer keeps in flight (a pipeline's buffers).
const IN_FLIGHT: usize = 16;

/// A CPU-bound item: FNV-1a over `data`, the kind of work a checksum pool does.
fn checksum(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

fn run(
    threshold: usize,
    items: usize,
    data: &Arc<Vec<u8>>,
) -> Result<(), Box<dyn std::error::Error>> {
    let pool = Workers::builder("csum")
        .min_threads(1)
        .max_threads(4)
        .busy_threshold(threshold)
        .build()?;
    // A token per buffer: the producer waits for one before queueing an item, and the
    // item hands it back when done.
    let (give_back, tokens) = mpsc::sync_channel(IN_FLIGHT);
    for _ in 0..IN_FLIGHT {
        give_back.send(())?;
    }
    let start = Instant::now();
    for _ in 0..items {
        tokens.recv()?;
        let data = Arc::clone(data);
        let give_back = give_back.clone();
        pool.queue(move || {
            black_box(checksum(&data));
            let _ = give_back.send(());
        })?;
    }
    pool.flush();
    let elapsed = start.elapsed();
    let stats = pool.stats();
    println!(
        "busy_threshold {threshold:>2}: {items} items in {:>6.1} ms, threads started {} (peak {})",
        elapsed.as_secs_f64() * 1e3,
        stats.threads,
        stats.threads_peak
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let items: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(2000);
    let data = Arc::new((0..ITEM_BYTES).map(|i| i as u8).collect::<Vec<u8>>());
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    println!(
        "{cores} cores; {items} items of {} KiB each, {IN_FLIGHT} in flight",
        ITEM_BYTES >> 10
    );
    for threshold in [DEFAULT_BUSY_THRESHOLD, 2] {
        run(threshold, items, &data)?;
    }
    Ok(())
}
