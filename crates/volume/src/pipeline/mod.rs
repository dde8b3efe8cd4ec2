//! The write, verify and read pipelines, and the two worker pools they run on. Every
//! byte they move goes through the device's [`stack_bio::SubmitQueue`].
//!
//! Write: the caller's thread fills buffers from a bounded [`stack_bio::BufferPool`] →
//! [`stack_alloc::AllocQueue`] hands out long extents per stream → block checksums are
//! computed before the I/O (and pattern data generated) on the *submit* pool through an
//! ordered stream, under the pool's caller-runs policy (on the caller's thread while
//! every submit worker has work waiting, so a 2-core machine pays no hand-off per
//! chunk) → the ordered step hands bios to the device's queue in stream order → the
//! submitter threads record the checksums and return the buffers as each bio completes
//! → commit: the checksum streams through the same queue, then table, flush,
//! superblock, flush (`volume/commit.rs`, through the device).
//!
//! Verify and `read`: chunk read bios through the device's queue, several in flight →
//! each chunk is checked on the *end-I/O* pool as its read completes (or, when that
//! pool is saturated, on the submitter that completed it: caller-runs) → results come
//! back in order (`verify_read.rs`).
//!
//! The pools are separate, as in btrfs: submit-side work that waits for something only
//! end-I/O work gives back (a buffer, a slot) would, on one bounded pool, end with every
//! thread waiting while the completions that would free them sit behind them in the same
//! pool (`deadlock_tests.rs` shows it). Caller-runs keeps that true: what runs on a
//! caller never waits for the pool it was meant for. The write pipeline also leases its
//! buffers on the caller's thread, in stream order, so the ordered step never waits for
//! a buffer held by a later chunk.

#[cfg(test)]
mod deadlock_tests;
mod glue;
mod read;
mod ticket;
mod verify;
mod verify_chunk;
mod verify_read;
mod write;
#[cfg(test)]
mod write_tests;

use stack_async_thread::Workers;

use crate::Error;

pub(crate) use read::read_object;
pub(crate) use verify::verify;
pub(crate) use write::{check_space, run_write, space_needed};
pub use write::{PlannedWrite, Source};

/// Bytes per pipeline buffer (one bio); checksums are computed on whole buffers, so the
/// submit pool always works on at least 64 KiB unless the object is smaller.
pub const CHUNK_BYTES: usize = 1 << 20;
/// Buffers a pipeline may have out at once: bounds its memory whatever the object size.
pub const POOL_BUFFERS: usize = 16;

const _: () = assert!(CHUNK_BYTES >= 64 * 1024);
const _: () = assert!(CHUNK_BYTES % crate::format::MAX_BLOCK_BYTES as usize == 0);

/// The two worker pools of the pipelines (cheap to clone).
#[derive(Clone)]
pub struct Pools {
    /// Pre-I/O work: checksums of buffers about to be written, pattern generation.
    pub submit: Workers,
    /// Post-I/O work: bio completions (recording or checking checksums).
    pub end_io: Workers,
}

impl std::fmt::Debug for Pools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pools").finish_non_exhaustive()
    }
}

/// CPUs this process may use (2 when the system cannot say).
pub(crate) fn cpus() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

impl Pools {
    /// Two pools sized for this machine.
    pub fn new() -> Result<Pools, Error> {
        let n = cpus().clamp(2, 64);
        Ok(Pools {
            // One core fewer: the caller runs pre-I/O work too when the pool is
            // saturated (caller-runs), and a bio submitter is busy copying the data.
            submit: Workers::builder("stackctl-submit")
                .min_threads(1)
                .max_threads(n - 1)
                .build()?,
            end_io: Workers::builder("stackctl-endio")
                .min_threads(1)
                .max_threads(n)
                .build()?,
        })
    }

    /// One pool serving both sides. It can deadlock when the pool is bounded; kept to show
    /// why the two pools exist.
    pub fn shared(workers: Workers) -> Pools {
        Pools {
            submit: workers.clone(),
            end_io: workers,
        }
    }
}
