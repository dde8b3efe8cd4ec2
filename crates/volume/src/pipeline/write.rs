//! The write pipeline: reader → extents → pre-I/O checksums → ordered submission →
//! end-I/O recording → periodic and final commits.

use std::collections::VecDeque;
use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use stack_alloc::Extent;
use stack_bio::BufferPool;

use super::glue::{Allocs, IoQueue};
use super::ticket::{ChunkTicket, Inflight};
use super::{CHUNK_BYTES, POOL_BUFFERS};
use crate::format::{ObjectKind, ObjectRecord, ObjectTable, Run, MAX_RUN_BYTES};
use crate::options::{cancelled, Progress, WriteOptions, WriteReport};
use crate::pattern::{fill_blocks, PatternHeader};
use crate::volume::{Volume, IO_ALIGN_BYTES};
use crate::{Error, NoSpaceOutcome};

mod canary;
mod runs;
mod space;

pub use space::PlannedWrite;
pub(crate) use space::{check_space, space_needed};

/// Shortest run a write makes when the commit interval is short.
const MIN_RUN_BYTES: u64 = 64 << 10;

/// Most data one checksum area serves, whatever the commit interval.
const MAX_AREA_DATA_BYTES: u64 = 1 << 30;

/// Most data whose checksums wait in memory for the commit (512 KiB of checksums for
/// 256 MiB of data), whatever the commit interval; small in tests so they reach it.
/// With 1 GiB held, a write's peak RSS grew with its size under the 1 GiB default
/// commit interval (22.7, 24.8, 25.9 MiB for 1, 2, 4 GiB: the freed checksum vectors
/// and stream buffers fragment the heap); with 256 MiB it stays at 21.9-22.5 MiB.
const MAX_HELD_CSUM_DATA_BYTES: u64 = if cfg!(test) { 8 << 20 } else { 256 << 20 };

/// Checksum streams written together at a commit go out in writes of at most about this.
const MAX_CSUM_WRITE_BYTES: usize = 4 << 20;

/// A run starts on a free extent of at least this much when one exists.
const LONG_EXTENT_BYTES: u64 = 1 << 20;

#[cfg(test)]
thread_local! {
    /// Tests: `Some(true)` runs the pre-I/O work on the caller's thread always,
    /// `Some(false)` always on the submit pool; `None` lets the pool's caller-runs
    /// policy choose (the product).
    pub(crate) static FORCE_INLINE: std::cell::Cell<Option<bool>> = const { std::cell::Cell::new(None) };
}

/// Hands a chunk's pre-I/O work to the submit pool's ordered stream: on the pool while
/// a worker is free, on the caller's thread when the pool is saturated (caller-runs).
/// On two cores, where one is busy in the submitter copying every byte into the page
/// cache, that is mostly the caller, with no hand-off per chunk; with more cores the
/// pool checksums chunks in parallel.
fn pre_io<T: Send + 'static>(
    ordered: &stack_async_thread::Ordered,
    pre: impl FnOnce() -> T + Send + 'static,
    post: impl FnOnce(T) + Send + 'static,
) -> Result<(), Error> {
    #[cfg(test)]
    match FORCE_INLINE.with(std::cell::Cell::get) {
        Some(true) => {
            ordered.flush();
            post(pre());
            return Ok(());
        }
        Some(false) => return Ok(ordered.queue(pre, post)?),
        None => {}
    }
    ordered.run_or_queue(pre, post)?;
    Ok(())
}

/// A chunk after its pre-I/O work: buffer, block checksums, whether they could be
/// computed, and its ticket.
type Prepared = (
    stack_bio::PooledBuf,
    Vec<u64>,
    Result<(), stack_csum::Error>,
    ChunkTicket,
);

/// Where a write's bytes come from.
pub enum Source<'a> {
    /// User data: read until end of input.
    Reader(&'a mut dyn Read),
    /// The pattern stream of the object (its seed is in the record).
    Pattern,
}

impl std::fmt::Debug for Source<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Source::Reader(_) => "Source::Reader",
            Source::Pattern => "Source::Pattern",
        })
    }
}

/// A run being written: its extents and the checksums the end-I/O pool records.
struct OpenRun {
    data: Extent,
    csum: Extent,
    used_blocks: u64,
    csums: Arc<Mutex<Vec<u64>>>,
    failed: Arc<AtomicBool>,
}

/// A run whose data is all queued; its checksum blocks are written once its bios are done.
struct SealedRun {
    run: Run,
    csums: Arc<Mutex<Vec<u64>>>,
    pending: Arc<AtomicUsize>,
    failed: Arc<AtomicBool>,
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The state of one write call.
struct Writer<'v> {
    vol: &'v mut Volume,
    opts: WriteOptions,
    /// The committed table minus the object being written.
    base: ObjectTable,
    record: ObjectRecord,
    /// Extents the first commit drops (a replaced object).
    dropped: Vec<Extent>,
    /// Replacing an existing object: it stays until the commit that completes the new
    /// one, so there are no intermediate commits, and an interrupted or failed write
    /// commits nothing (the old object stays, the new one's blocks are given back).
    replacing: bool,
    write_generation: u64,
    fill: bool,
    /// Logical bytes queued so far.
    logical: u64,
    /// Logical bytes in committed runs.
    committed_bytes: u64,
    since_commit_bytes: u64,
    last_commit: Instant,
    commits: u64,
    run_max_blocks: u64,
    open: Option<(OpenRun, Arc<AtomicUsize>)>,
    /// Blocks allocated for the checksum streams of the next runs, not handed out yet:
    /// one extent per commit interval, so the runs' data extents follow each other
    /// without checksum blocks between them (whole, merged bios) and their checksum
    /// streams are written together at the commit.
    csum_area: Option<Extent>,
    sealed: VecDeque<SealedRun>,
    /// Runs whose checksum blocks are written, not committed yet.
    ready: Vec<Run>,
    inflight: Arc<Inflight>,
    /// The device's queue: every data bio and the checksum streams go through it.
    queue: IoQueue,
    allocs: Allocs,
    data_goal: u64,
    csum_goal: u64,
    /// A fill's canaries (see `canary.rs`).
    canary: Option<Canaries>,
}

/// The canary state of a fill.
struct Canaries {
    /// Writes are buffered: flush before reading (asked once: `info()` costs ms).
    flush_first: bool,
    period_bytes: u64,
    next_at: u64,
    rounds: u64,
    read: u64,
    failed: Option<crate::options::CanaryFailure>,
    stopped: bool,
    elapsed: std::time::Duration,
}

pub(crate) fn run_write(
    vol: &mut Volume,
    name: &str,
    mut source: Source<'_>,
    kind: ObjectKind,
    target_size_bytes: Option<u64>,
    fill: bool,
    opts: &WriteOptions,
) -> Result<WriteReport, Error> {
    vol.check_writable()?;
    Volume::check_name(name)?;
    let started = Instant::now();
    let resuming = matches!(source, Source::Pattern)
        && vol
            .find(name)
            .is_some_and(|o| !o.complete && o.kind == kind);
    if vol.find(name).is_some() && !resuming && !opts.replace {
        return Err(Error::ObjectExists {
            name: name.to_string(),
        });
    }
    // A write of known size that cannot fit is refused before it changes anything.
    if let (Some(size_bytes), false) = (target_size_bytes, fill) {
        let plan = PlannedWrite {
            name: name.to_string(),
            size_bytes,
        };
        vol.check_space(std::slice::from_ref(&plan), opts)?;
    }
    // Space only the older slot still holds (a removal cut short by a crash) is
    // counted free; one commit makes it so before the write allocates.
    if vol.reclaimable_blocks() > 0 {
        vol.commit_table(vol.table().clone(), Vec::new())?;
    }
    let mut base = vol.table().clone();
    let mut dropped = Vec::new();
    let mut resumed_from = None;
    let record = match base.objects.iter().position(|o| o.name == name) {
        Some(i) if resuming => {
            let record = base.objects.remove(i);
            resumed_from = Some(record.clone());
            record
        }
        Some(i) => {
            let old = base.objects.remove(i);
            dropped = vol.record_extents(&old);
            new_record(&mut base, name, kind, target_size_bytes)
        }
        None => new_record(&mut base, name, kind, target_size_bytes),
    };
    let bs = u64::from(vol.geometry().block_size_bytes);
    let run_max_blocks = run_max_blocks(opts.commit_every_bytes, bs);
    let last = record.runs.last().copied();
    let allocs = Allocs::new(vol.alloc_queue()?);
    let canary = (fill && opts.canaries && matches!(kind, ObjectKind::Pattern { .. })).then(|| {
        let period_bytes = canary::period_bytes(vol.free_bytes());
        Canaries {
            flush_first: !vol.device().info().direct,
            period_bytes,
            next_at: (record.size_bytes / period_bytes + 1) * period_bytes,
            rounds: 0,
            read: 0,
            failed: None,
            stopped: false,
            elapsed: std::time::Duration::ZERO,
        }
    });
    let mut w = Writer {
        canary,
        write_generation: vol.next_generation(),
        logical: record.size_bytes,
        committed_bytes: record.size_bytes,
        record,
        base,
        replacing: !dropped.is_empty(),
        dropped,
        fill,
        since_commit_bytes: 0,
        last_commit: Instant::now(),
        commits: 0,
        run_max_blocks,
        open: None,
        csum_area: None,
        sealed: VecDeque::new(),
        ready: Vec::new(),
        inflight: Arc::default(),
        // Completions only record checksums and return the buffer: on the submitters.
        queue: IoQueue::new(vol.device().clone(), None)?,
        allocs,
        data_goal: last.map_or(0, |r| r.data_start_block + r.data_blocks),
        csum_goal: last.map_or(0, |r| r.csum_start_block),
        opts: opts.clone(),
        vol,
    };
    let bytes_before = w.logical;
    let outcome = w.pump(&mut source);
    if w.replacing && matches!(outcome, Ok(false)) {
        // Cancelled: the old object stays as it was.
        w.give_back(false);
        return Err(Error::Interrupted);
    }
    let outcome = outcome.and_then(|complete| w.finish(complete).map(|()| complete));
    match outcome {
        Ok(complete) => {
            let report = WriteReport {
                name: name.to_string(),
                bytes: w.record.size_bytes - bytes_before,
                size_bytes: w.record.size_bytes,
                elapsed: started.elapsed(),
                commits: w.commits,
                extents: w.record.runs.len() as u64,
                complete,
                canaries_read: w.canary.as_ref().map_or(0, |c| c.read),
                canary_failed: w.canary.as_ref().and_then(|c| c.failed.clone()),
                stopped_early: w.canary.as_ref().is_some_and(|c| c.stopped),
                canary_elapsed: w.canary.as_ref().map_or(Default::default(), |c| c.elapsed),
            };
            if complete {
                Ok(report)
            } else {
                Err(Error::Interrupted)
            }
        }
        Err(Error::NoSpace {
            needed_bytes,
            free_bytes,
            ..
        }) if w.replacing => {
            let written_bytes = w.logical - bytes_before;
            w.give_back(false);
            Err(Error::NoSpace {
                needed_bytes,
                free_bytes,
                outcome: NoSpaceOutcome::ReplaceAbandoned {
                    name: name.to_string(),
                    written_bytes,
                },
            })
        }
        Err(Error::NoSpace {
            needed_bytes,
            free_bytes,
            ..
        }) if !w.opts.keep_partial => {
            let outcome = w.remove_partial(resumed_from, bytes_before)?;
            Err(Error::NoSpace {
                needed_bytes,
                free_bytes,
                outcome,
            })
        }
        Err(Error::NoSpace {
            needed_bytes,
            free_bytes,
            ..
        }) => {
            let written_bytes = w.logical - bytes_before;
            w.abort();
            // Nothing reached the device whole: there is no partial object to keep.
            let outcome = match w.vol.find(name) {
                Some(o) if o.id == w.record.id => NoSpaceOutcome::Kept {
                    name: name.to_string(),
                    size_bytes: o.size_bytes,
                },
                _ => NoSpaceOutcome::Removed {
                    name: name.to_string(),
                    written_bytes,
                },
            };
            Err(Error::NoSpace {
                needed_bytes,
                free_bytes,
                outcome,
            })
        }
        Err(e) => {
            w.abort();
            Err(e)
        }
    }
}

fn new_record(
    base: &mut ObjectTable,
    name: &str,
    kind: ObjectKind,
    target_size_bytes: Option<u64>,
) -> ObjectRecord {
    let id = base.next_object_id;
    base.next_object_id += 1;
    ObjectRecord {
        id,
        name: name.to_string(),
        size_bytes: 0,
        created_unix_secs: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        kind,
        complete: false,
        target_size_bytes,
        runs: Vec::new(),
    }
}

impl Writer<'_> {
    fn bs(&self) -> u64 {
        u64::from(self.vol.geometry().block_size_bytes)
    }

    fn width(&self) -> usize {
        self.vol.geometry().algorithm.width_bytes()
    }

    /// Runs the pipeline until the input ends, the target or the end of the volume is
    /// reached (`Ok(true)`) or the write is cancelled (`Ok(false)`).
    fn pump(&mut self, source: &mut Source<'_>) -> Result<bool, Error> {
        let bs = self.bs();
        let pool = BufferPool::new(POOL_BUFFERS, CHUNK_BYTES, IO_ALIGN_BYTES)?;
        let queue = self.queue.clone();
        let ordered = self.vol.pools()?.submit.ordered();
        let csum = self.vol.csum();
        let salt = self.vol.salt();
        let (object_id, seed) = match self.record.kind {
            ObjectKind::Pattern { seed } => (self.record.id, Some(seed)),
            ObjectKind::File => (self.record.id, None),
        };
        let generation = self.write_generation;
        let result = loop {
            if cancelled(&self.opts.cancel) {
                break Ok(false);
            }
            let left = self
                .record
                .target_size_bytes
                .map(|t| t.saturating_sub(self.logical));
            if left == Some(0) {
                break Ok(true);
            }
            if self
                .open
                .as_ref()
                .is_none_or(|(r, _)| r.used_blocks == r.data.len)
            {
                self.seal()?;
                self.maybe_checkpoint()?;
                let want = left.map_or(self.run_max_blocks, |l| {
                    l.div_ceil(bs).min(self.run_max_blocks)
                });
                match self.open_run(want) {
                    Ok(()) => {}
                    Err(Error::NoSpace { .. }) if self.fill => break Ok(true),
                    Err(e) => break Err(e),
                }
            }
            let (run, pending) = self.open.as_mut().expect("an open run");
            let room_blocks = (CHUNK_BYTES as u64 / bs).min(run.data.len - run.used_blocks);
            let mut room_bytes = room_blocks * bs;
            if let Some(l) = left {
                room_bytes = room_bytes.min(l);
            }
            if let Some(c) = &self.canary {
                // A chunk ends where a canary round is due, so the round comes after
                // exactly each period.
                room_bytes = room_bytes.min(c.next_at.saturating_sub(self.logical).max(bs));
            }
            let mut buf = pool.get();
            let n = match source {
                Source::Reader(r) => {
                    read_full(*r, &mut buf[..room_bytes as usize]).map_err(|source| {
                        Error::Input {
                            name: self.record.name.clone(),
                            offset: self.logical,
                            source,
                        }
                    })? as u64
                }
                Source::Pattern => room_bytes,
            };
            if n == 0 {
                break Ok(true);
            }
            let blocks = n.div_ceil(bs);
            buf[n as usize..(blocks * bs) as usize].fill(0);
            buf.set_len((blocks * bs) as usize);
            let phys = run.data.start + run.used_blocks;
            let index = run.used_blocks as usize;
            let logical = self.logical;
            let csums = run.csums.clone();
            let ticket = ChunkTicket::new(&self.inflight, pending, &run.failed);
            let queue = queue.clone();
            let pre = move || {
                // Pre-I/O (on the submit pool, in parallel, or inline): generate
                // pattern data, checksum every block.
                if let Some(seed) = seed {
                    let first = PatternHeader {
                        phys_block: phys,
                        object_id,
                        logical_offset: logical,
                        generation,
                        seed,
                    };
                    fill_blocks(&mut buf, bs as usize, salt, first);
                }
                let mut sums = vec![0u64; blocks as usize];
                let computed = csum.compute(phys, &buf, &mut sums);
                (buf, sums, computed, ticket)
            };
            let post = move |(buf, sums, computed, ticket): Prepared| {
                if let Err(e) = computed {
                    ticket.finish(Err(Error::Csum(e)));
                    return;
                }
                // In stream order: hand the bio to the device queue.
                queue.write(phys * bs, buf, move |buf, result| {
                    // End-I/O: record the checksums, return the buffer.
                    drop(buf);
                    if result.is_ok() {
                        csums.lock().unwrap_or_else(|e| e.into_inner())[index..index + sums.len()]
                            .copy_from_slice(&sums);
                    }
                    ticket.finish(result.map_err(Error::Device));
                });
            };
            pre_io(&ordered, pre, post)?;
            run.used_blocks += blocks;
            self.logical += n;
            self.since_commit_bytes += n;
            if self.canary_round()? {
                break Ok(true);
            }
            if let Some(p) = &self.opts.progress {
                p(Progress {
                    done_bytes: self.logical,
                    total_bytes: self.record.target_size_bytes,
                });
            }
            if n < room_bytes && matches!(source, Source::Reader(_)) {
                break Ok(true);
            }
        };
        ordered.flush();
        result
    }

    /// Reads a round of canaries when one is due; `true` when the fill must stop.
    fn canary_round(&mut self) -> Result<bool, Error> {
        let (ObjectKind::Pattern { seed }, Some(c)) = (self.record.kind, &self.canary) else {
            return Ok(false);
        };
        if self.logical < c.next_at || c.failed.is_some() {
            return Ok(false);
        }
        let started = Instant::now();
        // The canaries must come from the drive, so they are sampled only from runs
        // whose bios are all done (committed, ready, or sealed with none pending): no
        // drain of the pipeline. Buffered writes are flushed first, since an eviction
        // cannot drop dirty pages; `O_DIRECT` writes are on the drive already.
        if c.flush_first {
            self.vol.device().flush()?;
        }
        let bs = self.bs();
        let mut written = canary::Written::default();
        let mut logical = 0;
        let done_sealed = self
            .sealed
            .iter()
            .take_while(|s| {
                s.pending.load(Ordering::Acquire) == 0 && !s.failed.load(Ordering::Acquire)
            })
            .map(|s| &s.run);
        for r in self
            .record
            .runs
            .iter()
            .chain(&self.ready)
            .chain(done_sealed)
        {
            written.push(
                r.data_start_block,
                logical,
                r.data_blocks,
                r.write_generation,
                bs,
            );
            logical += r.data_blocks * bs;
        }
        let stream = canary::Stream {
            object_id: self.record.id,
            seed,
            salt: self.vol.salt(),
            block_size_bytes: self.bs(),
        };
        let c = self.canary.as_mut().expect("checked above");
        let (failed, read) = canary::check(
            &**self.vol.device(),
            &written,
            stream,
            c.rounds,
            self.logical,
        );
        c.rounds += 1;
        c.read += read;
        c.elapsed += started.elapsed();
        c.next_at = (self.logical / c.period_bytes + 1) * c.period_bytes;
        if failed.is_some() {
            c.failed = failed;
            c.stopped = self.opts.stop_at_canary;
        }
        Ok(c.stopped)
    }

    fn maybe_checkpoint(&mut self) -> Result<(), Error> {
        if self.replacing {
            return Ok(());
        }
        let due = self.since_commit_bytes >= self.opts.commit_every_bytes
            || self.last_commit.elapsed() >= self.opts.commit_interval;
        if due && self.since_commit_bytes > 0 {
            self.commit(false)?;
        }
        Ok(())
    }

    /// Waits for every bio, writes the remaining checksum blocks and commits the table
    /// with the object as it stands (`complete` or not).
    fn commit(&mut self, complete: bool) -> Result<(), Error> {
        self.seal()?;
        self.inflight.wait_idle()?;
        self.write_done_csums()?;
        assert!(self.sealed.is_empty());
        let mut record = self.record.clone();
        record.runs.extend(self.ready.iter().copied());
        record.size_bytes = self.logical;
        record.complete = complete;
        let mut table = self.base.clone();
        table.objects.push(record.clone());
        self.vol
            .commit_table(table, std::mem::take(&mut self.dropped))?;
        // Only now, after the superblock's flush returned, is the commit acknowledged.
        if let Some(hook) = &self.opts.on_commit {
            hook(&crate::ack::CommitRecord::of(self.vol));
        }
        self.record = record;
        self.ready.clear();
        self.committed_bytes = self.logical;
        self.since_commit_bytes = 0;
        self.last_commit = Instant::now();
        self.commits += 1;
        Ok(())
    }

    fn finish(&mut self, complete: bool) -> Result<(), Error> {
        self.commit(complete)?;
        self.release_csum_area()?;
        self.vol.release_meta_reserve()
    }

    /// After an error: wait for the bios, give back every extent no commit references,
    /// and commit the object as incomplete with the runs that did reach the device (a
    /// replacement commits nothing: the old object stays).
    fn abort(&mut self) {
        if !self.give_back(!self.replacing) {
            return;
        }
        // Runs in `ready` reached the device and have their checksum blocks: keep them.
        let blocks: u64 = self.ready.iter().map(|r| r.data_blocks).sum();
        self.logical = (self.committed_bytes.div_ceil(self.bs()) + blocks) * self.bs();
        let _ = self.commit(false);
    }

    /// Waits for the bios and gives back every extent no commit references, and the
    /// table reserve: all of them, or with `keep_ready` all but the runs whose data and
    /// checksum blocks reached the device. Returns whether such runs are kept.
    fn give_back(&mut self, keep_ready: bool) -> bool {
        let _ = self.inflight.wait_idle();
        // Runs whose bios all succeeded keep their data: write their checksum blocks.
        if keep_ready && !self.vol.is_broken() {
            let _ = self.write_done_csums();
        }
        let mut give_back = Vec::new();
        if let Some((run, _)) = self.open.take() {
            give_back.extend([run.data, run.csum]);
        }
        for s in std::mem::take(&mut self.sealed) {
            give_back.extend(self.vol.run_extents(&s.run));
        }
        give_back.extend(self.csum_area.take());
        give_back.extend(self.vol.take_meta_reserve());
        let keep = keep_ready && !self.vol.is_broken() && !self.ready.is_empty();
        if !keep {
            for r in std::mem::take(&mut self.ready) {
                give_back.extend(self.vol.run_extents(&r));
            }
        }
        for e in give_back {
            let _ = self.vol.free_uncommitted(e);
        }
        keep
    }

    /// The write ran out of space: give back everything it allocated and remove what it
    /// committed, so the volume holds what it held before (a resumed object goes back to
    /// `resumed_from`). The removal commits twice, as `Volume::remove`, so no durable
    /// superblock references the space afterwards.
    fn remove_partial(
        &mut self,
        resumed_from: Option<ObjectRecord>,
        bytes_before: u64,
    ) -> Result<NoSpaceOutcome, Error> {
        let name = self.record.name.clone();
        let written_bytes = self.logical - bytes_before;
        self.give_back(false);
        if self.commits > 0 {
            let mut table = self.base.clone();
            let kept_runs = resumed_from.as_ref().map_or(0, |r| r.runs.len());
            let dropped: Vec<Extent> = self.record.runs[kept_runs..]
                .iter()
                .flat_map(|r| self.vol.run_extents(r))
                .collect();
            table.objects.extend(resumed_from.clone());
            self.vol.commit_released(table, dropped)?;
            // The undo is durable too: acknowledge it, so the log shows the object gone.
            if let Some(hook) = &self.opts.on_commit {
                hook(&crate::ack::CommitRecord::of(self.vol));
            }
        }
        Ok(match resumed_from {
            Some(before) => NoSpaceOutcome::ResumeUndone {
                name,
                size_bytes: before.size_bytes,
                written_bytes,
            },
            None => NoSpaceOutcome::Removed {
                name,
                written_bytes,
            },
        })
    }
}

/// Blocks per run: runs end where commits may happen; at least 64 KiB so checksums
/// always work on large chunks, at most what one checksum stream covers.
pub(crate) fn run_max_blocks(commit_every_bytes: u64, bs: u64) -> u64 {
    (commit_every_bytes.clamp(MIN_RUN_BYTES, MAX_RUN_BYTES) / bs).max(1)
}
