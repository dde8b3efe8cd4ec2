//! Why the pipelines run on two pools (the btrfs seed: "the two could deadlock if we
//! tried to service both from a single pool").
//!
//! Submit-side work may wait for a resource that only end-I/O work gives back: here, a
//! buffer leased from a bounded [`BufferPool`] and returned when the write completes.
//! With its own end-I/O pool the completions always find a thread. With one bounded
//! pool serving both, every thread ends up waiting for a buffer while the completions
//! that would return one sit behind them in the same pool: nothing moves again, and
//! the test sees it as a timeout. (The write pipeline also leases its buffers on the
//! caller's thread and in stream order, so even its submit pool never waits for them.)

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use stack_async_thread::{blocking, Workers};
use stack_bio::{BufferPool, MemDevice};

use super::glue::IoQueue;
use super::Pools;

const CHUNKS: usize = 64;
const CHUNK_BYTES: usize = 64 << 10;
const BUFFERS: usize = 4;
const TIMEOUT: Duration = Duration::from_secs(3);

/// Queues `CHUNKS` submit-side items that each lease a buffer, fill it and write it;
/// the completion returns the buffer. Returns whether all writes completed in time,
/// and what must be leaked if they did not (the stuck threads still use it).
fn run(pools: &Pools) -> (bool, impl Sized) {
    let device = Arc::new(MemDevice::new((CHUNKS * CHUNK_BYTES) as u64));
    let queue = IoQueue::new(device, Some(pools.end_io.clone())).expect("submission queue");
    let buffers = BufferPool::new(BUFFERS, CHUNK_BYTES, 4096).expect("buffer pool");
    let done = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::channel();
    for i in 0..CHUNKS {
        let (queue, buffers, done, tx) = (queue.clone(), buffers.clone(), done.clone(), tx.clone());
        pools
            .submit
            .queue(move || {
                // Submit side: wait for a free buffer (telling the pool we block).
                let mut buf = blocking(|| buffers.get());
                buf.fill(i as u8);
                queue.write((i * CHUNK_BYTES) as u64, buf, move |buf, result| {
                    // End-I/O side: the buffer goes back to the pool here.
                    drop(buf);
                    result.expect("memory writes succeed");
                    if done.fetch_add(1, Ordering::AcqRel) + 1 == CHUNKS {
                        let _ = tx.send(());
                    }
                });
            })
            .expect("queue submit work");
    }
    let finished = rx.recv_timeout(TIMEOUT).is_ok();
    (finished, (queue, buffers, rx))
}

fn bounded(name: &str, threads: usize) -> Workers {
    Workers::builder(name)
        .min_threads(threads)
        .max_threads(threads)
        .build()
        .expect("pool")
}

#[test]
fn separate_pools_always_finish() {
    let pools = Pools {
        submit: bounded("submit", 2),
        end_io: bounded("end-io", 2),
    };
    let (finished, _keep) = run(&pools);
    assert!(
        finished,
        "two pools did not finish {CHUNKS} writes in {TIMEOUT:?}"
    );
    pools.submit.shutdown();
    pools.end_io.shutdown();
}

#[test]
fn one_bounded_pool_serving_both_deadlocks() {
    let pools = Pools::shared(bounded("shared", 2));
    let (finished, stuck) = run(&pools);
    assert!(
        !finished,
        "one bounded pool finished: the hazard this test shows is gone"
    );
    // The pool's threads wait forever for buffers; dropping the pool would join them.
    std::mem::forget(stuck);
    std::mem::forget(pools);
}
