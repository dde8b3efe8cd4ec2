//! Worker pools after btrfs's async threads, and workqueues with a rescuer.
//!
//! The idea comes from two kernel commits. btrfs (2008) gave each worker thread its own
//! pending list: new work goes to the last-used worker until it has `busy_threshold`
//! (64) items, then to a less busy one, then to a new thread up to a maximum; long work
//! can requeue itself to the tail. XFS (2012) moved allocation onto a workqueue with a
//! *rescuer*: a thread made in advance that runs queued work when no new worker can be
//! created, so the queue always moves forward. On top of that this crate adds what
//! Linux's concurrency-managed workqueues learned: a worker that blocks in this crate's
//! waits ([`Completion::wait`], [`blocking`]) lets the pool start or wake another, and
//! a watchdog notices work that makes no progress.
//!
//! - [`Workers`]: the btrfs pool (min/max threads, per-worker lists, high lane,
//!   idle retirement, [`Ordered`] streams, reusable [`WorkItem`]s that can requeue).
//! - Caller-runs: [`Workers::run_or_queue`] and [`Ordered::run_or_queue`] run an item on
//!   the calling thread when the pool is saturated (no worker can be added, every
//!   worker has work waiting), so a producer that outpaces the pool pays no hand-off.
//! - [`WorkQueue`]: `max_active` workers created on demand plus an optional rescuer.
//! - [`Completion`] and `queue_and_wait`: queue, then sleep until done (the XFS
//!   pattern; never hold a lock the worker needs while you wait).
//! - [`Spawner`]: thread creation that tests can make fail ([`FailingSpawner`]).
//! - [`blocking`]: tell the pool a worker is about to wait;
//!   [`warn_unmarked_blocking`] lets a library flag waits made without it.
//!
//! The queue path is built for tiny items: a worker takes its whole list in one lock
//! and runs it as a batch (still stealable), flush accounting and hot counters never
//! share a cache line between producers and workers, and a closure of up to three
//! words is stored in the queued entry instead of a `Box` (the crate's one `unsafe`
//! module).
//!
//! ```
//! use stack_async_thread::{Workers, Step, WorkItem, Queued};
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::sync::Arc;
//!
//! let pool = Workers::builder("csum").min_threads(1).max_threads(4).build()?;
//! let sum = Arc::new(AtomicU32::new(0));
//! for i in 1..=10 {
//!     let sum = Arc::clone(&sum);
//!     pool.queue(move || { sum.fetch_add(i, Ordering::Relaxed); })?;
//! }
//! pool.flush();
//! assert_eq!(sum.load(Ordering::Relaxed), 55);
//!
//! // The XFS pattern: run on the pool, wait for the answer.
//! assert_eq!(pool.queue_and_wait(|| 6 * 7)?, 42);
//!
//! // In-order completion of parallel work.
//! let out = Arc::new(std::sync::Mutex::new(Vec::new()));
//! let stream = pool.ordered();
//! for i in 0..5 {
//!     let out = Arc::clone(&out);
//!     stream.queue(move || i * 10, move |v| out.lock().unwrap().push(v))?;
//! }
//! stream.flush();
//! assert_eq!(*out.lock().unwrap(), vec![0, 10, 20, 30, 40]);
//!
//! // A reusable work object: queueing it while pending is a no-op that says so.
//! let item = WorkItem::new(|| Step::Done);
//! let first = pool.queue_work(&item)?;
//! assert!(matches!(first, Queued::Queued | Queued::AlreadyPending));
//! pool.shutdown();
//! # Ok::<(), stack_async_thread::Error>(())
//! ```
//!
//! # Defaults
//!
//! | setting | default | constant |
//! |---|---|---|
//! | [`WorkersBuilder::busy_threshold`] | 64 pending items | [`DEFAULT_BUSY_THRESHOLD`] |
//! | [`WorkersBuilder::idle_timeout`] | 2 s | [`DEFAULT_IDLE_TIMEOUT`] |
//! | [`WorkersBuilder::watchdog_interval`] | 10 ms | [`DEFAULT_WATCHDOG_INTERVAL`] |
//! | rescuer grace before a mayday | 10 ms | [`RESCUE_GRACE`] |
//! | [`WorkersBuilder::max_threads`] | twice the cores, at least 4 | at most [`MAX_THREADS`] |
//! | [`WorkQueueBuilder::max_active`] | 16 | [`DEFAULT_MAX_ACTIVE`] |
//!
//! # Tuning: I/O-bound and CPU-bound items
//!
//! The busy threshold decides when a pool spreads work: a new item goes to the
//! last-used worker until that worker has `busy_threshold` items pending, and only then
//! to another worker or a new thread.
//!
//! - **I/O-bound or short items** (completions, bookkeeping, items that wait in
//!   [`blocking`]): keep the default 64. One warm worker runs long batches without
//!   hand-offs, and a worker that blocks is bypassed anyway.
//! - **CPU-bound items** (checksums, compression, encoding): set the threshold low (2
//!   to 4) and `max_threads` to the cores you want busy. With 64, a producer that keeps
//!   fewer than 64 items in flight (a pipeline with a bounded buffer pool) never makes
//!   the pool start its second thread, and all the computing runs on one core.
//! - A `WorkQueue` already uses threshold 1: every item that finds no idle worker
//!   gets its own thread, up to `max_active`.
//!
//! The package's `examples/busy_threshold.rs` is the experiment: 2000 checksums of
//! 64 KiB each, 16 in flight, on a pool of 1 to 4 threads
//! (`cargo run --release -p stack-async-thread --example busy_threshold`). With
//! threshold 64 the pool ran them on 1 thread; with 2 it started 4. On a loaded
//! 2-core machine that took the run from about 170 ms to 145–160 ms; with more free
//! cores the gap grows with the cores (an outside trial saw a write phase go from
//! about 420 to 300 ms).
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod completion;
mod error;
#[allow(unsafe_code)]
mod inline;
mod ordered;
mod pool;
mod spawner;
mod stats;
mod sync;
mod warn;
mod work;
mod workers;
mod workqueue;

pub use completion::Completion;
pub use error::{Error, Result};
pub use ordered::Ordered;
pub use pool::blocking;
pub use spawner::{FailingSpawner, Spawner, ThreadSpawner};
pub use stats::Stats;
pub use warn::{
    set_blocking_warning_hook, warn_unmarked_blocking, BlockingWarning, BlockingWarningHook,
};
pub use work::{Queued, Step, WorkItem};
pub use workers::{
    Ran, Workers, WorkersBuilder, DEFAULT_BUSY_THRESHOLD, DEFAULT_IDLE_TIMEOUT,
    DEFAULT_WATCHDOG_INTERVAL, RESCUE_GRACE,
};
pub use workqueue::{WorkQueue, WorkQueueBuilder, DEFAULT_MAX_ACTIVE};

/// The most worker threads one pool may have ([`WorkersBuilder::max_threads`]).
pub const MAX_THREADS: usize = pool::MAX_THREADS;
