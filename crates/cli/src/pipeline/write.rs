//! The write pipeline: reader → extents → pre-I/O checksums → ordered submission →
//! end-I/O recording → periodic and final commits.

use std::collections::VecDeque;
use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use stack_alloc::{AllocRequest, Extent};
use stack_bio::BufferPool;

use super::glue::{Allocs, IoQueue};
use super::ticket::{ChunkTicket, Inflight};
use super::{CHUNK_BYTES, COMMIT_INTERVAL_SECS, POOL_BUFFERS};
use crate::format::{
    csum_stream_blocks, encode_meta_stream, MetaKind, ObjectKind, ObjectRecord, ObjectTable, Run,
    MAX_RUN_BYTES,
};
use crate::options::{cancelled, Progress, WriteOptions, WriteReport};
use crate::pattern::{fill_blocks, PatternHeader};
use crate::volume::{write_blocks, Volume, IO_ALIGN_BYTES};
use crate::Error;

/// Shortest run a write makes when the commit interval is short.
const MIN_RUN_BYTES: u64 = 64 << 10;

/// Most data one checksum area serves, whatever the commit interval.
const MAX_AREA_DATA_BYTES: u64 = 1 << 30;

/// Most data whose checksums wait in memory for the commit (2 MiB of checksums for
/// 1 GiB of data), whatever the commit interval; small in tests so they reach it.
const MAX_HELD_CSUM_DATA_BYTES: u64 = if cfg!(test) { 8 << 20 } else { 1 << 30 };

/// Checksum streams written together at a commit go out in writes of at most about this.
const MAX_CSUM_WRITE_BYTES: usize = 4 << 20;

/// A run starts on a free extent of at least this much when one exists.
const LONG_EXTENT_BYTES: u64 = 1 << 20;

/// Most CPUs on which the pre-I/O work (pattern, checksums) runs on the caller's thread.
///
/// With two cores, one is busy in the submitter copying every byte into the device (the
/// page cache), so the other has nothing better to do than read and checksum: the submit
/// pool would add two thread hand-offs per chunk (a wake-up latency each on a shared
/// machine) and no parallelism. With more cores the pool checksums chunks in parallel.
const INLINE_PRE_IO_MAX_CPUS: usize = 2;

#[cfg(test)]
thread_local! {
    /// Tests: `Some(inline)` overrides [`pre_io_inline`] on this thread.
    pub(crate) static FORCE_INLINE: std::cell::Cell<Option<bool>> = const { std::cell::Cell::new(None) };
}

/// Whether this write computes its pre-I/O work on the caller's thread.
fn pre_io_inline() -> bool {
    #[cfg(test)]
    if let Some(forced) = FORCE_INLINE.with(std::cell::Cell::get) {
        return forced;
    }
    super::cpus() <= INLINE_PRE_IO_MAX_CPUS
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
    allocs: Allocs,
    data_goal: u64,
    csum_goal: u64,
}

impl Volume {
    pub(super) fn run_write(
        &mut self,
        name: &str,
        mut source: Source<'_>,
        kind: ObjectKind,
        target_size_bytes: Option<u64>,
        fill: bool,
        opts: &WriteOptions,
    ) -> Result<WriteReport, Error> {
        self.check_writable()?;
        Self::check_name(name)?;
        let started = Instant::now();
        let mut base = self.table.clone();
        let mut dropped = Vec::new();
        let resuming = matches!(source, Source::Pattern)
            && self
                .find(name)
                .is_some_and(|o| !o.complete && o.kind == kind);
        let record = match base.objects.iter().position(|o| o.name == name) {
            Some(i) if resuming => base.objects.remove(i),
            Some(i) if opts.replace => {
                let old = base.objects.remove(i);
                dropped = self.record_extents(&old);
                self.new_record(&mut base, name, kind, target_size_bytes)
            }
            Some(_) => {
                return Err(Error::ObjectExists {
                    name: name.to_string(),
                })
            }
            None => self.new_record(&mut base, name, kind, target_size_bytes),
        };
        let bs = u64::from(self.sb.block_size_bytes);
        // Runs end where commits may happen; at least 64 KiB so checksums always work on
        // large chunks, at most what one checksum stream covers.
        let run_max_blocks =
            (opts.commit_every_bytes.clamp(MIN_RUN_BYTES, MAX_RUN_BYTES) / bs).max(1);
        let last = record.runs.last().copied();
        let mut w = Writer {
            write_generation: self.max_seen_generation.max(self.sb.generation) + 1,
            logical: record.size_bytes,
            committed_bytes: record.size_bytes,
            record,
            base,
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
            allocs: Allocs::new(&self.alloc_queue),
            data_goal: last.map_or(0, |r| r.data_start_block + r.data_blocks),
            csum_goal: last.map_or(0, |r| r.csum_start_block),
            opts: opts.clone(),
            vol: self,
        };
        let bytes_before = w.logical;
        let outcome = w.pump(&mut source);
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
                };
                if complete {
                    Ok(report)
                } else {
                    Err(Error::Interrupted)
                }
            }
            Err(e) => {
                w.abort();
                Err(e)
            }
        }
    }

    fn new_record(
        &self,
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
}

impl Writer<'_> {
    fn bs(&self) -> u64 {
        u64::from(self.vol.sb.block_size_bytes)
    }

    fn width(&self) -> usize {
        self.vol.sb.algorithm.width_bytes()
    }

    /// Runs the pipeline until the input ends, the target or the end of the volume is
    /// reached (`Ok(true)`) or the write is cancelled (`Ok(false)`).
    fn pump(&mut self, source: &mut Source<'_>) -> Result<bool, Error> {
        let bs = self.bs();
        let pool = BufferPool::new(POOL_BUFFERS, CHUNK_BYTES, IO_ALIGN_BYTES);
        // Completions only record checksums and return the buffer: on the submitters.
        let queue = IoQueue::new(self.vol.device.clone(), None)?;
        let ordered = self.vol.pools.submit.ordered();
        let inline = pre_io_inline();
        let csum = self.vol.csum;
        let salt = self.vol.salt;
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
            if inline {
                post(pre());
            } else {
                ordered.queue(pre, post)?;
            }
            run.used_blocks += blocks;
            self.logical += n;
            self.since_commit_bytes += n;
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

    /// Checksum blocks for the runs until the next commit (at least the run's own): the
    /// streams' payload plus a block per run for headers and rounding, runs being at
    /// least `LONG_EXTENT_BYTES` unless the volume is fragmented (then the area is
    /// renewed sooner).
    fn csum_area_blocks(&self, want_blocks: u64) -> u64 {
        let (bs32, width) = (self.vol.sb.block_size_bytes, self.width());
        let mut until_commit = self
            .opts
            .commit_every_bytes
            .saturating_sub(self.since_commit_bytes)
            .min(MAX_AREA_DATA_BYTES);
        if let Some(t) = self.record.target_size_bytes {
            until_commit = until_commit.min(t.saturating_sub(self.logical));
        }
        let data_blocks = until_commit.div_ceil(self.bs());
        let runs = until_commit.div_ceil(LONG_EXTENT_BYTES);
        let need = csum_stream_blocks(want_blocks, bs32, width);
        (csum_stream_blocks(data_blocks, bs32, width) + runs).max(need)
    }

    /// Hands out the checksum blocks of a run of `need` blocks from the area, allocating
    /// a new area of `area_blocks` when it is short (fewer blocks than `need` when the
    /// volume is nearly full: the run is then shorter).
    fn take_csum(&mut self, need: u64, area_blocks: u64) -> Result<Extent, Error> {
        assert!(need > 0);
        match self.csum_area {
            Some(a) if a.len >= need => {
                self.csum_area = (a.len > need).then(|| Extent::new(a.start + need, a.len - need));
                return Ok(Extent::new(a.start, need));
            }
            Some(a) => {
                self.csum_area = None;
                self.vol.alloc.free_uncommitted(a)?;
            }
            None => {}
        }
        let total_blocks = self.vol.sb.total_blocks;
        let goal = if self.csum_goal < total_blocks {
            self.csum_goal
        } else {
            0
        };
        let area = self
            .allocs
            .alloc(AllocRequest::near(goal, 1, area_blocks.max(need)))
            .map_err(|e| self.vol.no_space(e, 2))?;
        self.csum_goal = area.end();
        let take = need.min(area.len);
        self.csum_area = (area.len > take).then(|| Extent::new(area.start + take, area.len - take));
        Ok(Extent::new(area.start, take))
    }

    /// Gives back the unused tail of a run's checksum blocks: to the area when it adjoins
    /// it (or there is none), else to the allocator.
    fn return_csum(&mut self, tail: Extent) -> Result<(), Error> {
        if tail.len == 0 {
            return Ok(());
        }
        match self.csum_area {
            None => self.csum_area = Some(tail),
            Some(a) if tail.end() == a.start => {
                self.csum_area = Some(Extent::new(tail.start, tail.len + a.len));
            }
            Some(_) => self.vol.alloc.free_uncommitted(tail)?,
        }
        Ok(())
    }

    /// Frees the checksum area (end of the write, or room for data on a full volume).
    fn release_csum_area(&mut self) -> Result<(), Error> {
        if let Some(a) = self.csum_area.take() {
            self.vol.alloc.free_uncommitted(a)?;
        }
        Ok(())
    }

    /// Allocates the next run: its checksum blocks first (so a full volume still has room
    /// for them), then up to `want_blocks` data blocks continuing the previous run. When
    /// the data does not fit beside a checksum area sized for a whole commit interval,
    /// the area is given back and the run takes only the checksum blocks it needs.
    fn open_run(&mut self, want_blocks: u64) -> Result<(), Error> {
        let exact = csum_stream_blocks(want_blocks, self.vol.sb.block_size_bytes, self.width());
        let area_blocks = self.csum_area_blocks(want_blocks);
        match self.try_open_run(want_blocks, area_blocks) {
            Err(Error::NoSpace { .. }) if area_blocks > exact || self.csum_area.is_some() => {
                self.release_csum_area()?;
                self.try_open_run(want_blocks, exact)
            }
            other => other,
        }
    }

    fn try_open_run(&mut self, want_blocks: u64, area_blocks: u64) -> Result<(), Error> {
        assert!(self.open.is_none());
        let bs32 = self.vol.sb.block_size_bytes;
        let width = self.width();
        // Room to commit the table with this run and the next.
        let meta_blocks = self.vol.table_blocks(
            &self.base,
            self.record.runs.len() + self.sealed.len() + self.ready.len() + 2 + 1,
        );
        self.vol.reserve_meta(meta_blocks)?;
        let csum_len = csum_stream_blocks(want_blocks, bs32, width);
        let csum = self.take_csum(csum_len, area_blocks)?;
        let covered = csum.len * crate::format::payload_per_block(bs32) as u64 / width as u64;
        let want_blocks = want_blocks.min(covered);
        let total_blocks = self.vol.sb.total_blocks;
        let data_goal = if self.data_goal < total_blocks {
            self.data_goal
        } else {
            0
        };
        // A long extent if there is one (streaming), else whatever is left.
        let long = want_blocks.min(LONG_EXTENT_BYTES / u64::from(bs32)).max(1);
        let data = self
            .allocs
            .alloc(AllocRequest::near(data_goal, long, want_blocks))
            .or_else(|e| match e {
                stack_alloc::Error::NoSpace { .. } => {
                    self.allocs
                        .alloc(AllocRequest::near(data_goal, 1, want_blocks))
                }
                other => Err(other),
            });
        let data = match data {
            Ok(d) => d,
            Err(e) => {
                self.return_csum(csum)?;
                return Err(self.vol.no_space(e, csum_len + 1));
            }
        };
        let need = csum_stream_blocks(data.len, bs32, width);
        assert!(need <= csum.len);
        self.return_csum(Extent::new(csum.start + need, csum.len - need))?;
        self.data_goal = data.end();
        self.open = Some((
            OpenRun {
                data,
                csum: Extent::new(csum.start, need),
                used_blocks: 0,
                csums: Arc::new(Mutex::new(vec![0; data.len as usize])),
                failed: Arc::default(),
            },
            Arc::default(),
        ));
        Ok(())
    }

    /// Closes the open run: trims what it did not use, queues it for its checksum blocks.
    fn seal(&mut self) -> Result<(), Error> {
        let Some((run, pending)) = self.open.take() else {
            return Ok(());
        };
        let bs32 = self.vol.sb.block_size_bytes;
        let need_csum = if run.used_blocks == 0 {
            0
        } else {
            csum_stream_blocks(run.used_blocks, bs32, self.width())
        };
        if run.used_blocks < run.data.len {
            self.vol.alloc.free_uncommitted(Extent::new(
                run.data.start + run.used_blocks,
                run.data.len - run.used_blocks,
            ))?;
        }
        self.return_csum(Extent::new(
            run.csum.start + need_csum,
            run.csum.len - need_csum,
        ))?;
        if run.used_blocks == 0 {
            return Ok(());
        }
        run.csums
            .lock()
            .expect("csums lock")
            .truncate(run.used_blocks as usize);
        self.sealed.push_back(SealedRun {
            run: Run {
                data_start_block: run.data.start,
                data_blocks: run.used_blocks,
                csum_start_block: run.csum.start,
                write_generation: self.write_generation,
            },
            csums: run.csums,
            pending,
            failed: run.failed,
        });
        // Its checksum blocks are written at the next commit, with the other runs' (the
        // pipeline is drained then, so they never contend with data bios for the device);
        // sooner only when a long commit interval would otherwise hold too many in memory.
        let held_blocks: u64 = self.sealed.iter().map(|s| s.run.data_blocks).sum();
        if held_blocks * self.bs() > MAX_HELD_CSUM_DATA_BYTES {
            self.write_done_csums()?;
        }
        Ok(())
    }

    /// Writes the checksum blocks of sealed runs whose bios are all done, in order, up to
    /// the first that is not (or failed); streams that follow each other on the device
    /// go out as one write.
    fn write_done_csums(&mut self) -> Result<(), Error> {
        let bs32 = self.vol.sb.block_size_bytes;
        let width = self.width();
        // (first block, encoded streams) of the contiguous group being gathered.
        let mut group: Option<(u64, Vec<u8>)> = None;
        let mut grouped = Vec::new();
        while let Some(front) = self.sealed.front() {
            if front.pending.load(Ordering::Acquire) != 0 || front.failed.load(Ordering::Acquire) {
                // Not done, or a bio failed: the error surfaces from `wait_idle`.
                break;
            }
            let s = self.sealed.pop_front().expect("front exists");
            let mut payload = Vec::with_capacity(s.run.data_blocks as usize * width);
            for &c in s.csums.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                crate::volume::encode_csum(c, width, &mut payload);
            }
            let v = &*self.vol;
            let bytes = encode_meta_stream(
                MetaKind::Checksums,
                s.run.write_generation,
                s.run.csum_start_block,
                &payload,
                bs32,
                v.sb.algorithm,
                v.salt,
            );
            group = match group.take() {
                Some((start, mut buf))
                    if start + (buf.len() / bs32 as usize) as u64 == s.run.csum_start_block
                        && buf.len() < MAX_CSUM_WRITE_BYTES =>
                {
                    buf.extend_from_slice(&bytes);
                    Some((start, buf))
                }
                other => {
                    if let Some((start, buf)) = other {
                        self.write_csum_group(start, &buf, &mut grouped)?;
                    }
                    Some((s.run.csum_start_block, bytes))
                }
            };
            grouped.push(s.run);
        }
        if let Some((start, buf)) = group {
            self.write_csum_group(start, &buf, &mut grouped)?;
        }
        Ok(())
    }

    /// Writes the checksum streams of `runs` (`bytes`, from block `start`); the runs are
    /// then ready to commit, or on an error given back (no commit will reference them).
    fn write_csum_group(
        &mut self,
        start: u64,
        bytes: &[u8],
        runs: &mut Vec<Run>,
    ) -> Result<(), Error> {
        let v = &*self.vol;
        match write_blocks(&*v.device, start, bytes, v.sb.block_size_bytes) {
            Ok(()) => {
                self.ready.append(runs);
                Ok(())
            }
            Err(e) => {
                let (bs32, width) = (v.sb.block_size_bytes, self.width());
                for r in runs.drain(..) {
                    let _ = v
                        .alloc
                        .free_uncommitted(Extent::new(r.data_start_block, r.data_blocks));
                    let _ = v.alloc.free_uncommitted(Extent::new(
                        r.csum_start_block,
                        r.csum_blocks(bs32, width),
                    ));
                }
                Err(e)
            }
        }
    }

    fn maybe_checkpoint(&mut self) -> Result<(), Error> {
        let due = self.since_commit_bytes >= self.opts.commit_every_bytes
            || self.last_commit.elapsed() >= Duration::from_secs(COMMIT_INTERVAL_SECS);
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
        if let Some(r) = self.vol.meta_reserve.take() {
            self.vol.alloc.free_uncommitted(r)?;
        }
        Ok(())
    }

    /// After an error: wait for the bios, give back every extent no commit references,
    /// and commit the object as incomplete with the runs that did reach the device.
    fn abort(&mut self) {
        let _ = self.inflight.wait_idle();
        // Runs whose bios all succeeded keep their data: write their checksum blocks.
        if self.vol.broken.is_none() {
            let _ = self.write_done_csums();
        }
        let bs32 = self.vol.sb.block_size_bytes;
        let width = self.width();
        let mut give_back = Vec::new();
        if let Some((run, _)) = self.open.take() {
            give_back.extend([run.data, run.csum]);
        }
        for s in std::mem::take(&mut self.sealed) {
            let r = s.run;
            give_back.extend([
                Extent::new(r.data_start_block, r.data_blocks),
                Extent::new(r.csum_start_block, r.csum_blocks(bs32, width)),
            ]);
        }
        give_back.extend(self.csum_area.take());
        give_back.extend(self.vol.meta_reserve.take());
        let keep_nothing = self.vol.broken.is_some() || self.ready.is_empty();
        if keep_nothing {
            for r in std::mem::take(&mut self.ready) {
                give_back.extend([
                    Extent::new(r.data_start_block, r.data_blocks),
                    Extent::new(r.csum_start_block, r.csum_blocks(bs32, width)),
                ]);
            }
        }
        for e in give_back {
            let _ = self.vol.alloc.free_uncommitted(e);
        }
        if keep_nothing {
            return;
        }
        // Runs in `ready` reached the device and have their checksum blocks: keep them.
        let blocks: u64 = self.ready.iter().map(|r| r.data_blocks).sum();
        self.logical = (self.committed_bytes.div_ceil(self.bs()) + blocks) * self.bs();
        let _ = self.commit(false);
    }
}
