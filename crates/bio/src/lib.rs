//! Devices and an order-keeping block-I/O submission queue.
//!
//! The bottom of the `stack` I/O path. A [`Device`] is anything with positional reads
//! and writes and a fixed size: a regular file or raw block device ([`FileDevice`],
//! optionally `O_DIRECT`), memory ([`MemDevice`]), or a fault-injecting wrapper
//! ([`FaultyDevice`]) that fails, corrupts, tears, drops, misdirects or wraps writes and
//! models what a crash keeps (and slows: a slow region, a write cliff, stalls), or a
//! timing wrapper ([`TimedDevice`]) that records throughput and latency per region of
//! the capacity for a map of the drive.
//!
//! On top sits the [`SubmitQueue`], after the bio queueing of the btrfs seed: many
//! threads hand it [`Bio`]s, a few submitters per device pick them in order and run
//! several at once, merging contiguous bios into large vectored I/O, with a bound on the
//! bytes in flight, and completions run on an end-I/O
//! [`Workers`](stack_async_thread::Workers) pool ([`CallerRunsEndIo`] runs them on the
//! submitter instead while that pool is saturated). Without it, N threads writing one
//! stream (or N streams) send the disk a shuffle of small writes. With
//! [`QueueConfig::io_uring`] one thread keeps the I/Os in flight through an io_uring
//! instead of one submitter thread per I/O, under the same rules
//! ([`SubmitQueue::info`] says which engine a queue got). Between streams the queue is
//! an anticipating C-SCAN elevator (see [`SubmitQueue`]), and after each buffered write
//! it starts that range's writeback ([`QueueConfig::write_behind`]), so the disk works
//! while the page cache fills. The package's `examples/streams.rs` shows what a device
//! is handed when N writers append through one queue.
//!
//! What the calls wait for:
//!
//! | call | returns when |
//! |---|---|
//! | [`SubmitQueue::submit`] | the bio is queued (waits while the in-flight bound is reached) |
//! | [`SubmitQueue::submit_wait`] | the bio's completion callback has returned |
//! | [`BioGroup::wait`] | every bio added to the group has completed |
//! | [`SubmitQueue::flush`] | earlier writes are durable (callbacks may still run) |
//! | [`SubmitQueue::wait_completions`] | earlier bios' callbacks have returned |
//! | [`SubmitQueue::flush_and_wait`] | both of the above |
//!
//! Every wait runs inside [`stack_async_thread::blocking`], so it may be called from a
//! pool worker (never from a completion callback of the same queue). Errors are one
//! typed [`Error`] naming the device; [`Error::is_unsupported`] tells a refused feature
//! (`O_DIRECT`, io_uring) from a failure.
//!
//! ```
//! use stack_async_thread::Workers;
//! use stack_bio::{Bio, Device, MemDevice, QueueConfig, SubmitQueue};
//! use std::sync::Arc;
//!
//! let dev = Arc::new(MemDevice::new(1 << 20));
//! let end_io = Workers::builder("end-io").max_threads(2).build().unwrap();
//! let queue = SubmitQueue::new(dev.clone(), end_io, QueueConfig::default())?;
//! for i in 0..16u64 {
//!     let bio = Bio::write(i * 4096, vec![i as u8; 4096], |done| done.result.unwrap());
//!     queue.submit(bio);
//! }
//! queue.flush_and_wait()?; // durable, and every completion above has run
//! let stats = queue.stats();
//! assert_eq!(stats.bios, 16);
//! assert!(stats.ios < 16, "contiguous bios were merged");
//! let mut back = [0u8; 1];
//! dev.read_at(&mut back, 15 * 4096)?;
//! assert_eq!(back, [15]);
//! # Ok::<(), stack_bio::Error>(())
//! ```

#![deny(missing_docs)]
// Unsafe code lives in `sys.rs` (system calls) and `uring.rs` (the ring) only.
#![deny(unsafe_code)]

mod bio;
mod buf;
mod crash;
mod device;
mod endio;
mod error;
mod faulty;
mod file;
mod group;
mod issue;
mod mem;
mod queue;
mod sched;
mod stats;
#[allow(unsafe_code)]
mod sys;
mod timing;
mod uring;

pub use bio::{Bio, BioBuf, BioResult, OnComplete, Op};
pub use buf::{AlignedBuf, BufferPool, PooledBuf};
pub use crash::{CrashMode, CRASH_LOG_LIMIT_BYTES};
pub use device::{Backing, Device, DeviceInfo, DeviceKind, ReadPath, Residency};
pub use endio::CallerRunsEndIo;
pub use error::{Error, NOT_QUEUED, NO_DEVICE};
pub use faulty::{FaultyDevice, InjectedStall, Slowdown};
pub use file::{FileDevice, OpenOptions, FILE_LOGICAL_BLOCK_SIZE};
pub use group::BioGroup;
pub use mem::{MemDevice, MEM_LOGICAL_BLOCK_SIZE};
pub use queue::{
    default_submitters, EndIo, EndIoJob, Engine, InlineEndIo, QueueConfig, QueueInfo, SubmitQueue,
    DEFAULT_URING_DEPTH, MAX_QUEUE_DEPTH,
};
pub use stats::{QueueStats, SeqCounter};
pub use timing::{
    IoKind, IoRecorder, IoSnapshot, RegionTiming, SlowIo, TimedDevice, DEFAULT_REGIONS,
    LATENCY_BUCKETS, MAX_SLOW_IOS, MIN_REGION_BYTES,
};
