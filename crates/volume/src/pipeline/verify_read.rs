//! Verify's data path: several workers each read (`pread`) and check whole chunks straight
//! from the device, taken in order from a bounded queue; results are put back in order.
//!
//! Why not the device's `SubmitQueue`: there one submitter thread issues every read, so
//! on a page-cached volume one core copies every byte out of the page cache while the
//! checksums wait on other cores, with a hand-off per MiB in between; `dd` only copies.
//! Here each worker copies *and* checks its own chunks, so the copy itself runs on every
//! core, and the block just copied is checksummed while it is still in the CPU cache
//! (buffered reads go in pieces of [`PIECE_BYTES`]). With `O_DIRECT` every worker keeps
//! one whole-chunk read in flight, so the disk always has [`direct_workers`] reads queued
//! where `dd` has one, and never idles between them.
//!
//! Why not a mapping of the page cache (no copy at all): measured on the project's 2-core
//! machine (`/dev/shm` is tmpfs with 4 KiB pages, 1 GiB volume, whole process, min of 5
//! alternated runs), a mapped verify — the file mapped once, each 4 MiB window filled
//! with `MADV_POPULATE_READ` and dropped with `MADV_DONTNEED` so the resident set stays
//! bounded — cost 0.22 CPU s/GiB against 0.18–0.19 for these reads: filling and
//! clearing page-table entries (`follow_page_pte`, rmap accounting, `zap_page_range`)
//! costs about what the copy saves, and the checksum then reads DRAM instead of a piece
//! still in the cache. It would also turn a page the kernel cannot fill (a file truncated
//! under us, a swap error; a bad sector if ever used off tmpfs) into a `SIGBUS`, which
//! needs a process-wide signal handler to survive. Reads cost less and fail as errors:
//! a failed or short read is retried block by block and only the blocks that cannot be
//! read are reported `unreadable` (a file truncated under verify included).
//!
//! Memory is bounded whatever the volume's size: a buffer per worker, at most
//! [`WINDOW_PER_WORKER`] chunks per worker queued or finished but not yet reported.

use std::collections::BTreeMap;

use crossbeam_channel::{Receiver, Sender};
use stack_bio::AlignedBuf;

use super::verify_chunk::{ChunkCheck, ChunkResult};
use crate::format::MAX_BLOCK_BYTES;
use crate::report::DamagedRange;
use crate::volume::IO_ALIGN_BYTES;
use crate::Error;

/// Bytes of a run a worker takes at once (one read under `O_DIRECT`).
pub(super) const TASK_BYTES: usize = 4 << 20;
/// Bytes per read on the buffered path: small enough that the copy is still in the CPU's
/// cache when it is checksummed.
pub(super) const PIECE_BYTES: usize = 512 << 10;
/// Most workers, whatever the machine (each holds a buffer).
const MAX_WORKERS: usize = 8;
/// Reads kept in flight under `O_DIRECT` at least, even on a machine with fewer cores:
/// the workers mostly wait for the disk.
const MIN_DIRECT_WORKERS: usize = 4;
/// Chunks per worker that may be queued or checked ahead of the next one reported.
pub(super) const WINDOW_PER_WORKER: u64 = 4;

const _: () = assert!(PIECE_BYTES % MAX_BLOCK_BYTES as usize == 0);
const _: () = assert!(TASK_BYTES % PIECE_BYTES == 0);
const _: () = assert!(PIECE_BYTES % IO_ALIGN_BYTES == 0);

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Workers for a buffered verify: one per core (the work is copying and checksumming).
pub(super) fn buffered_workers() -> usize {
    cpus().clamp(2, MAX_WORKERS)
}

/// Workers (reads in flight) for an `O_DIRECT` verify.
pub(super) fn direct_workers() -> usize {
    cpus().clamp(MIN_DIRECT_WORKERS, MAX_WORKERS)
}

/// One chunk to read and check.
struct Task {
    seq: u64,
    check: ChunkCheck,
}

/// The handle the verify loop submits chunks to; results come back through `emit` in
/// submission order.
pub(super) struct Readers {
    tasks: Option<Sender<Task>>,
    results: Receiver<Result<ChunkResult, Error>>,
    waiting: BTreeMap<u64, ChunkResult>,
    next_seq: u64,
    seq: u64,
    window: u64,
}

fn lost() -> Error {
    Error::Corrupt {
        what: "verify pipeline",
        offset: 0,
        detail: "a verify worker stopped before its chunk was checked".into(),
    }
}

impl Readers {
    /// Reports every finished chunk that is next in order.
    fn emit_ready(&mut self, emit: &mut impl FnMut(ChunkResult)) {
        while let Some(r) = self.waiting.remove(&self.next_seq) {
            emit(r);
            self.next_seq += 1;
        }
    }

    /// Waits for one more result.
    fn wait_one(&mut self) -> Result<(), Error> {
        let r = self.results.recv().map_err(|_| lost())??;
        self.waiting.insert(r.seq, r);
        Ok(())
    }

    /// Queues a chunk; blocks while the window of unreported chunks is full.
    pub(super) fn submit(
        &mut self,
        check: ChunkCheck,
        emit: &mut impl FnMut(ChunkResult),
    ) -> Result<(), Error> {
        while let Ok(r) = self.results.try_recv() {
            let r = r?;
            self.waiting.insert(r.seq, r);
        }
        self.emit_ready(emit);
        while self.seq - self.next_seq >= self.window {
            self.wait_one()?;
            self.emit_ready(emit);
        }
        let task = Task {
            seq: self.seq,
            check,
        };
        self.tasks
            .as_ref()
            .ok_or_else(lost)?
            .send(task)
            .map_err(|_| lost())?;
        self.seq += 1;
        Ok(())
    }

    /// Waits for every queued chunk and reports the rest.
    pub(super) fn finish(&mut self, emit: &mut impl FnMut(ChunkResult)) -> Result<(), Error> {
        self.tasks = None;
        while self.next_seq < self.seq {
            self.wait_one()?;
            self.emit_ready(emit);
        }
        Ok(())
    }
}

/// Runs `body` with `workers` reader threads, each reading `piece_bytes` at a time.
/// The threads end when `body` returns.
pub(super) fn with_readers<R>(
    workers: usize,
    piece_bytes: usize,
    body: impl FnOnce(&mut Readers) -> R,
) -> Result<R, Error> {
    assert!(workers >= 1);
    assert!(workers <= MAX_WORKERS);
    assert!(piece_bytes % IO_ALIGN_BYTES == 0);
    assert!(piece_bytes >= MAX_BLOCK_BYTES as usize);
    std::thread::scope(|s| {
        let (task_tx, task_rx) = crossbeam_channel::bounded::<Task>(workers);
        let (res_tx, res_rx) = crossbeam_channel::unbounded::<Result<ChunkResult, Error>>();
        for i in 0..workers {
            let rx = task_rx.clone();
            let tx = res_tx.clone();
            std::thread::Builder::new()
                .name(format!("stackctl-verify-{i}"))
                .spawn_scoped(s, move || worker(&rx, &tx, piece_bytes))
                .map_err(|e| Error::Corrupt {
                    what: "verify pipeline",
                    offset: 0,
                    detail: format!("cannot start a verify worker: {e}"),
                })?;
        }
        drop(task_rx);
        drop(res_tx);
        let mut readers = Readers {
            tasks: Some(task_tx),
            results: res_rx,
            waiting: BTreeMap::new(),
            next_seq: 0,
            seq: 0,
            window: workers as u64 * WINDOW_PER_WORKER,
        };
        Ok(body(&mut readers))
    })
}

fn worker(
    tasks: &Receiver<Task>,
    results: &Sender<Result<ChunkResult, Error>>,
    piece_bytes: usize,
) {
    let mut buf = AlignedBuf::new(piece_bytes, IO_ALIGN_BYTES);
    while let Ok(task) = tasks.recv() {
        // A panic here is a bug, but it must not leave the verify loop waiting forever
        // for this chunk while the other workers wait for more work: say so and stop.
        let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            check_chunk(&task.check, &mut buf)
        }));
        let done = checked
            .map(|damaged| ChunkResult {
                seq: task.seq,
                blocks: task.check.blocks,
                damaged,
            })
            .map_err(|_| Error::Corrupt {
                what: "verify pipeline",
                offset: task.check.physical_offset(),
                detail: "a verify worker panicked while checking this chunk".into(),
            });
        let failed = done.is_err();
        if results.send(done).is_err() || failed {
            return;
        }
    }
}

/// Reads `check`'s blocks in pieces of `buf.len()` and checks each piece.
fn check_chunk(check: &ChunkCheck, buf: &mut [u8]) -> Vec<DamagedRange> {
    let bs = check.bs();
    let piece_blocks = (buf.len() as u64 / bs).max(1);
    let mut out = Vec::new();
    let mut done = 0u64;
    while done < check.blocks {
        let n = piece_blocks.min(check.blocks - done);
        let part = check.part(done, n);
        let piece = &mut buf[..(n * bs) as usize];
        let io = check.device.read_at(piece, part.physical_offset());
        out.extend(part.run(piece, io));
        done += n;
    }
    out
}
