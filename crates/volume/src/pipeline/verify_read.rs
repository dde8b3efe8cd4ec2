//! The read side of verify and `read`: chunk bios through the device's `SubmitQueue`,
//! each chunk checked by its completion on the end-I/O pool as the read completes
//! (btrfs's post-I/O side), results handed back in submission order.
//!
//! The queue runs several submitters, so several reads are in flight: under `O_DIRECT`
//! the disk always has [`direct_depth`] whole-chunk reads queued where `dd` has one; on
//! a buffered (page-cache) volume each submitter copies its own chunk, so the copy runs
//! on every core. Completions go through [`stack_bio::CallerRunsEndIo`]: to the end-I/O
//! pool while one of its workers has no work waiting, else on the submitter that
//! finished the read, while the piece is still in its CPU cache (buffered reads go in
//! pieces of [`PIECE_BYTES`] for that reason). On a 2-core machine that is what the old
//! reader threads did (read and check on one thread) without a hand-off per piece.
//!
//! Why not a mapping of the page cache (no copy at all): measured on the project's 2-core
//! machine (`/dev/shm` is tmpfs with 4 KiB pages, 1 GiB volume, whole process, min of 5
//! alternated runs), a mapped verify cost 0.22 CPU s/GiB against 0.18–0.19 for reads:
//! filling and clearing page-table entries costs about what the copy saves, and a page
//! the kernel cannot fill becomes a `SIGBUS`. Reads cost less and fail as errors: a
//! failed or short read is retried block by block (`ChunkCheck::run`) and only the
//! blocks that cannot be read are reported `unreadable`.
//!
//! Memory is bounded whatever the volume's size: a pool of [`buffers`] chunk buffers,
//! and at most [`WINDOW_PER_SUBMITTER`] chunks per submitter checked but not yet
//! reported.

use std::collections::BTreeMap;
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};
use stack_async_thread::Workers;
use stack_bio::{
    Bio, BioBuf, BufferPool, CallerRunsEndIo, Device, PooledBuf, QueueConfig, SubmitQueue,
};

use super::verify_chunk::ChunkCheck;
use crate::format::MAX_BLOCK_BYTES;
use crate::report::DamagedRange;
use crate::volume::IO_ALIGN_BYTES;
use crate::Error;

/// Bytes of a run one bio reads under `O_DIRECT`.
pub(super) const TASK_BYTES: usize = 4 << 20;
/// Bytes of a run one bio reads on the buffered path: small enough that the copy is
/// still in the CPU's cache when it is checksummed.
pub(super) const PIECE_BYTES: usize = 512 << 10;
/// Most submitters, whatever the machine.
const MAX_SUBMITTERS: usize = 8;
/// Reads kept in flight under `O_DIRECT` at least, even on a machine with fewer cores:
/// the submitters mostly wait for the disk.
const MIN_DIRECT_DEPTH: usize = 4;
/// Chunks per submitter that may be queued or checked ahead of the next one reported.
const WINDOW_PER_SUBMITTER: u64 = 4;

const _: () = assert!(PIECE_BYTES % MAX_BLOCK_BYTES as usize == 0);
const _: () = assert!(TASK_BYTES % PIECE_BYTES == 0);
const _: () = assert!(PIECE_BYTES % IO_ALIGN_BYTES == 0);

/// Reads in flight on a buffered volume: one per core (the work is copying and
/// checksumming).
fn buffered_depth() -> usize {
    super::cpus().clamp(2, MAX_SUBMITTERS)
}

/// Reads in flight under `O_DIRECT`.
fn direct_depth() -> usize {
    super::cpus().clamp(MIN_DIRECT_DEPTH, MAX_SUBMITTERS)
}

/// Chunk buffers of a read pipeline with `depth` reads in flight: one per read, and two
/// more being checked (or waiting to be written out) or queued, so a submitter finds its
/// next read at once. Under `O_DIRECT` on 8 cores: 10 × 4 MiB.
fn buffers(depth: usize) -> usize {
    depth + 2
}

/// The outcome of one chunk.
pub(super) struct ChunkResult {
    pub(super) blocks: u64,
    pub(super) damaged: Vec<DamagedRange>,
    /// The bytes read (only when the reads were asked to keep them, for `read`).
    pub(super) data: Option<PooledBuf>,
}

type Done = (u64, Result<ChunkResult, Error>);

/// Ordered, checked reads of chunks of runs through the device's queue.
pub(super) struct Reads {
    queue: SubmitQueue,
    bufs: BufferPool,
    chunk_bytes: usize,
    keep_data: bool,
    tx: Sender<Done>,
    rx: Receiver<Done>,
    waiting: BTreeMap<u64, ChunkResult>,
    next_seq: u64,
    seq: u64,
    window: u64,
}

impl Reads {
    /// A read pipeline on `device` whose checks run on `end_io` (caller-runs when it is
    /// saturated). `keep_data` hands every chunk's bytes back with its result.
    pub(super) fn new(
        device: Arc<dyn Device>,
        end_io: Workers,
        keep_data: bool,
    ) -> Result<Reads, Error> {
        let (chunk_bytes, depth) = if device.info().direct {
            (TASK_BYTES, direct_depth())
        } else {
            (PIECE_BYTES, buffered_depth())
        };
        let count = buffers(depth);
        // One chunk per I/O: a buffered piece must not grow past the CPU cache, and a
        // direct chunk is already large. Chunks come in order and at once: no plug wait.
        let config = QueueConfig::default()
            .with_submitters(depth)
            .with_max_io_bytes(chunk_bytes)
            .with_max_in_flight_bytes((chunk_bytes * count) as u64)
            .with_plug_timeout(std::time::Duration::ZERO);
        // The engine is chosen in one place (io_uring under O_DIRECT, else threads).
        let (queue, _engine) =
            super::start_queue(&device, Arc::new(CallerRunsEndIo(end_io)), config)?;
        let (tx, rx) = crossbeam_channel::unbounded();
        let bufs = BufferPool::new(count, chunk_bytes, IO_ALIGN_BYTES)?;
        Ok(Reads {
            queue,
            bufs,
            chunk_bytes,
            keep_data,
            tx,
            rx,
            waiting: BTreeMap::new(),
            next_seq: 0,
            seq: 0,
            window: depth as u64 * WINDOW_PER_SUBMITTER,
        })
    }

    /// Blocks of `block_size_bytes` one chunk holds.
    pub(super) fn chunk_blocks(&self, block_size_bytes: u64) -> u64 {
        (self.chunk_bytes as u64 / block_size_bytes).max(1)
    }

    /// Reports every finished chunk that is next in order.
    fn emit_ready(
        &mut self,
        emit: &mut impl FnMut(ChunkResult) -> Result<(), Error>,
    ) -> Result<(), Error> {
        while let Some(r) = self.waiting.remove(&self.next_seq) {
            self.next_seq += 1;
            emit(r)?;
        }
        Ok(())
    }

    /// Waits for one more result.
    fn wait_one(&mut self) -> Result<(), Error> {
        let (seq, r) = self.rx.recv().map_err(|_| lost())?;
        self.waiting.insert(seq, r?);
        Ok(())
    }

    /// Queues a read of `check`'s blocks; blocks while the window of unreported chunks
    /// or the buffers are all taken, reporting what finished meanwhile.
    pub(super) fn submit(
        &mut self,
        check: ChunkCheck,
        emit: &mut impl FnMut(ChunkResult) -> Result<(), Error>,
    ) -> Result<(), Error> {
        while let Ok((seq, r)) = self.rx.try_recv() {
            self.waiting.insert(seq, r?);
        }
        self.emit_ready(emit)?;
        while self.seq - self.next_seq >= self.window {
            self.wait_one()?;
            self.emit_ready(emit)?;
        }
        // A buffer comes back when its chunk is checked (or, kept, reported): never wait
        // for one without taking results, or `read` would wait for itself.
        let mut buf = loop {
            if let Some(b) = self.bufs.try_get() {
                break b;
            }
            self.wait_one()?;
            self.emit_ready(emit)?;
        };
        let len = usize::try_from(check.blocks * check.bs()).expect("a chunk fits a buffer");
        assert!(len <= self.chunk_bytes);
        buf.set_len(len);
        let (seq, tx, keep) = (self.seq, self.tx.clone(), self.keep_data);
        let offset = check.physical_offset();
        self.queue.submit(Bio::read(offset, buf, move |r| {
            // Post-I/O, on the end-I/O pool or the submitter (caller-runs).
            let buf = match r.buf {
                Some(BioBuf::Pooled(b)) => Some(b),
                _ => None,
            };
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let damaged = match &buf {
                    Some(b) => check.run(b, r.result),
                    None => check.run(
                        &[],
                        Err(r
                            .result
                            .err()
                            .unwrap_or_else(|| stack_bio::Error::Cancelled {
                                device: String::new(),
                                offset,
                            })),
                    ),
                };
                ChunkResult {
                    blocks: check.blocks,
                    damaged,
                    data: None,
                }
            }));
            let result = match result {
                Ok(mut done) => {
                    if keep {
                        done.data = buf;
                    } else {
                        // Back to the pool before the result wakes the submitting thread.
                        drop(buf);
                    }
                    Ok(done)
                }
                Err(_) => Err(Error::WorkLost { stage: "verify" }),
            };
            let _ = tx.send((seq, result));
        }));
        self.seq += 1;
        Ok(())
    }

    /// Waits for every queued chunk and reports the rest, then stops the queue.
    pub(super) fn finish(
        mut self,
        emit: &mut impl FnMut(ChunkResult) -> Result<(), Error>,
    ) -> Result<(), Error> {
        while self.next_seq < self.seq {
            self.wait_one()?;
            self.emit_ready(emit)?;
        }
        self.queue.shutdown();
        Ok(())
    }
}

fn lost() -> Error {
    Error::WorkLost { stage: "verify" }
}
