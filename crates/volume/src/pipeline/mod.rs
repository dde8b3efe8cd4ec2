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
//! The device queue's engine is chosen in one place, `start_queue`: on an `O_DIRECT`
//! device, io_uring with [`DIRECT_URING_DEPTH`] I/Os in flight, so a fast device always
//! has the next I/Os queued; elsewhere (a page-cache copy, a wrapped device) or when
//! the kernel refuses io_uring, submitter threads, with the reason in [`Engine`].
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

use std::sync::Arc;

use stack_async_thread::Workers;
use stack_bio::{Device, EndIo, QueueConfig, SubmitQueue};

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

/// I/Os the io_uring engine keeps in flight on an `O_DIRECT` device. With the
/// pipelines' 1 MiB bios that is up to 16 MiB in flight (the in-flight byte bound and the
/// buffer pool bound it too): a fast device always has the next I/Os queued behind the
/// one it is serving, where the threads engine has one per submitter thread (2 on a
/// 2-core machine) and `dd` has one.
pub const DIRECT_URING_DEPTH: usize = 16;

/// Environment variable that overrides the engine choice of the pipelines' queue: `threads`
/// or `io_uring` (for A/B measurements, `docs/PERFORMANCE.md`); anything else is
/// ignored.
pub const ENGINE_ENV: &str = "STACK_IO_ENGINE";

/// Which engine a pipeline queue runs, and why not io_uring when it does not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Engine {
    /// One thread keeps `depth` I/Os in flight through an io_uring.
    Uring {
        /// I/Os in flight at most.
        depth: usize,
    },
    /// Submitter threads, one I/O in flight each; `why` says why not io_uring when it
    /// was wanted (`O_DIRECT`) but could not be had.
    Threads {
        /// The reason io_uring was not used, when it was wanted.
        why: Option<String>,
    },
}

impl std::fmt::Display for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Engine::Uring { depth } => write!(f, "io_uring, {depth} I/Os in flight"),
            Engine::Threads { why: None } => f.write_str("submitter threads"),
            Engine::Threads { why: Some(why) } => write!(f, "submitter threads ({why})"),
        }
    }
}

/// Whether a queue on `device` should use io_uring: it is a [`stack_bio::FileDevice`]
/// opened `O_DIRECT` (where queue depth is what keeps a fast device busy; buffered
/// I/O is a page-cache copy that io_uring would only punt to its own workers), unless
/// [`ENGINE_ENV`] says otherwise.
fn wants_uring(device: &dyn Device, env: Option<&str>) -> Result<bool, String> {
    match env {
        Some("threads") => return Ok(false),
        Some("io_uring") => {}
        _ if !device.info().direct => return Ok(false),
        _ => {}
    }
    if device.as_file_device().is_none() {
        return Err("io_uring needs a file or block device, not a wrapped device".into());
    }
    Ok(true)
}

/// Starts the device queue the pipelines use: `config` with io_uring and
/// [`DIRECT_URING_DEPTH`] I/Os in flight on an `O_DIRECT` file or block device, falling
/// back to submitter threads (with the reason in [`Engine::Threads`]) when io_uring is
/// refused (an old kernel, `io_uring_disabled`, a seccomp filter, a wrapped device).
pub(crate) fn start_queue(
    device: &Arc<dyn Device>,
    end_io: Arc<dyn EndIo>,
    config: QueueConfig,
) -> Result<(SubmitQueue, Engine), stack_bio::Error> {
    let env = std::env::var(ENGINE_ENV).ok();
    let why = match wants_uring(device.as_ref(), env.as_deref()) {
        Ok(false) => None,
        Ok(true) => {
            let uring = config
                .clone()
                .with_io_uring(true)
                .with_submitters(DIRECT_URING_DEPTH);
            match SubmitQueue::new(device.clone(), end_io.clone(), uring) {
                Ok(queue) => {
                    let depth = DIRECT_URING_DEPTH;
                    return Ok((queue, Engine::Uring { depth }));
                }
                Err(e) => Some(format!("io_uring unavailable: {e}")),
            }
        }
        Err(why) => Some(why),
    };
    let queue = SubmitQueue::new(device.clone(), end_io, config)?;
    Ok((queue, Engine::Threads { why }))
}

#[cfg(test)]
mod engine_tests {
    use super::*;
    use stack_bio::{FaultyDevice, FileDevice, InlineEndIo, MemDevice, OpenOptions};

    fn file_device(direct: bool) -> Option<(tempfile::TempDir, Arc<dyn Device>)> {
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let opts = OpenOptions::new().direct(direct).create_size_bytes(8 << 20);
        match FileDevice::open(&dir.path().join("dev.img"), &opts) {
            Ok(d) => Some((dir, Arc::new(d))),
            Err(e) => {
                eprintln!("skipped: cannot open a file here (direct {direct}): {e}");
                None
            }
        }
    }

    /// `O_DIRECT` file devices get io_uring (where the kernel allows it) and every
    /// other device the threads; a wrapped device says why not.
    #[test]
    fn direct_devices_get_io_uring_and_others_threads() {
        if let Some((_dir, dev)) = file_device(true) {
            let (_q, engine) =
                start_queue(&dev, Arc::new(InlineEndIo), QueueConfig::default()).unwrap();
            match &engine {
                Engine::Uring { depth } => assert_eq!(*depth, DIRECT_URING_DEPTH),
                Engine::Threads { why: Some(why) } => {
                    assert!(why.contains("io_uring unavailable"), "{why}");
                    eprintln!("io_uring refused here: {why}");
                }
                other => panic!("an O_DIRECT file must try io_uring: {other}"),
            }
            assert!(wants_uring(dev.as_ref(), None).unwrap());
            assert!(!wants_uring(dev.as_ref(), Some("threads")).unwrap());
        }
        if let Some((_dir, dev)) = file_device(false) {
            assert!(!wants_uring(dev.as_ref(), None).unwrap());
            assert!(wants_uring(dev.as_ref(), Some("io_uring")).unwrap());
        }
        let mem: Arc<dyn Device> = Arc::new(MemDevice::new(1 << 20));
        assert!(!wants_uring(mem.as_ref(), None).unwrap());
        let (_q, engine) =
            start_queue(&mem, Arc::new(InlineEndIo), QueueConfig::default()).unwrap();
        assert_eq!(engine, Engine::Threads { why: None });
        let faulty: Arc<dyn Device> =
            Arc::new(FaultyDevice::new(Arc::new(MemDevice::new(1 << 20))));
        assert!(wants_uring(faulty.as_ref(), Some("io_uring")).is_err());
    }
}
