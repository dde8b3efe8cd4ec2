//! Runs and their checksum streams: each run's data extent continues the previous one,
//! its checksum blocks come from one area per commit interval (so data stays contiguous
//! on the device), and the checksum streams of sealed runs are written together at the
//! commit, before the table that references them.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use stack_alloc::{AllocRequest, Extent};

use super::{
    OpenRun, SealedRun, Writer, LONG_EXTENT_BYTES, MAX_AREA_DATA_BYTES, MAX_CSUM_WRITE_BYTES,
    MAX_HELD_CSUM_DATA_BYTES,
};
use crate::format::{csum_stream_blocks, encode_csums, encode_meta_stream, MetaKind, Run};
use crate::Error;

impl Writer<'_> {
    /// Checksum blocks for the runs until the next commit (at least the run's own): the
    /// streams' payload plus a block per run for headers and rounding, runs being at
    /// least `LONG_EXTENT_BYTES` unless the volume is fragmented (then the area is
    /// renewed sooner).
    fn csum_area_blocks(&self, want_blocks: u64) -> u64 {
        let (bs32, width) = (self.vol.geometry().block_size_bytes, self.width());
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
                self.vol.free_uncommitted(a)?;
            }
            None => {}
        }
        let total_blocks = self.vol.geometry().total_blocks;
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
            Some(_) => self.vol.free_uncommitted(tail)?,
        }
        Ok(())
    }

    /// Frees the checksum area (end of the write, or room for data on a full volume).
    pub(super) fn release_csum_area(&mut self) -> Result<(), Error> {
        if let Some(a) = self.csum_area.take() {
            self.vol.free_uncommitted(a)?;
        }
        Ok(())
    }

    /// Allocates the next run: its checksum blocks first (so a full volume still has room
    /// for them), then up to `want_blocks` data blocks continuing the previous run. When
    /// the data does not fit beside a checksum area sized for a whole commit interval,
    /// the area is given back and the run takes only the checksum blocks it needs.
    pub(super) fn open_run(&mut self, want_blocks: u64) -> Result<(), Error> {
        let exact = csum_stream_blocks(
            want_blocks,
            self.vol.geometry().block_size_bytes,
            self.width(),
        );
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
        let bs32 = self.vol.geometry().block_size_bytes;
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
        let total_blocks = self.vol.geometry().total_blocks;
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
    pub(super) fn seal(&mut self) -> Result<(), Error> {
        let Some((run, pending)) = self.open.take() else {
            return Ok(());
        };
        let bs32 = self.vol.geometry().block_size_bytes;
        let need_csum = if run.used_blocks == 0 {
            0
        } else {
            csum_stream_blocks(run.used_blocks, bs32, self.width())
        };
        if run.used_blocks < run.data.len {
            self.vol.free_uncommitted(Extent::new(
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
    pub(super) fn write_done_csums(&mut self) -> Result<(), Error> {
        let bs32 = self.vol.geometry().block_size_bytes;
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
            let mut payload = Vec::new();
            encode_csums(
                &s.csums.lock().unwrap_or_else(|e| e.into_inner()),
                width,
                &mut payload,
            );
            let v = &*self.vol;
            let bytes = encode_meta_stream(
                MetaKind::Checksums,
                s.run.write_generation,
                s.run.csum_start_block,
                &payload,
                bs32,
                v.geometry().algorithm,
                v.salt(),
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
        let at = start * u64::from(v.geometry().block_size_bytes);
        match self.queue.write_and_wait(at, bytes) {
            Ok(()) => {
                self.ready.append(runs);
                Ok(())
            }
            Err(e) => {
                for r in runs.drain(..) {
                    for extent in v.run_extents(&r) {
                        let _ = v.free_uncommitted(extent);
                    }
                }
                Err(e)
            }
        }
    }
}
