//! Streams: an appending writer keeps getting extents that continue its last one.
//!
//! A goal alone ("near my last block") fails as soon as two writers meet: each takes the
//! block the other wanted next and both end up interleaved. A stream therefore
//! 1. starts where nobody else is heading: at the start of the longest free extent, or in
//!    its middle when another stream is already growing into that extent (so with a
//!    fresh volume each stream gets its own group, then each half of the largest gap);
//! 2. holds a reservation ahead of the write, extended exactly at its end while the
//!    blocks after it are free, so other allocations cannot land in front of it.
//!
//! The unused part of the reservation goes back (as never-durable, immediately free
//! space) when the stream is dropped.

use crate::{AllocRequest, Allocator, Error, Extent};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Blocks a stream reserves ahead of its writes unless told otherwise.
pub const DEFAULT_STREAM_RESERVE_BLOCKS: u64 = 1024;
/// How many times a stream retries picking a fresh start when another thread takes the
/// chosen spot between the look and the allocation.
const START_ATTEMPTS: usize = 8;
/// A head value meaning "this stream has no reservation yet".
const NO_HEAD: u64 = u64::MAX;

/// The blocks active streams will grow into next, so new streams start elsewhere.
#[derive(Debug, Default)]
pub(crate) struct StreamRegistry {
    heads: Mutex<Vec<(u64, Arc<AtomicU64>)>>,
    next_id: AtomicU64,
}

impl StreamRegistry {
    fn register(&self) -> (u64, Arc<AtomicU64>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let head = Arc::new(AtomicU64::new(NO_HEAD));
        self.lock().push((id, head.clone()));
        (id, head)
    }

    fn unregister(&self, id: u64) {
        self.lock().retain(|(i, _)| *i != id);
    }

    /// Whether a stream other than `me` will grow into `block` next.
    fn someone_heads_for(&self, block: u64, me: u64) -> bool {
        self.lock()
            .iter()
            .any(|(id, h)| *id != me && h.load(Ordering::Relaxed) == block)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(u64, Arc<AtomicU64>)>> {
        self.heads.lock().expect("stream registry poisoned")
    }
}

/// An appending writer's allocation context. Create with [`Allocator::stream`].
#[derive(Debug)]
pub struct Stream {
    alloc: Allocator,
    id: u64,
    head: Arc<AtomicU64>,
    reserve_blocks: u64,
    /// Blocks allocated to the stream and not yet handed out; starts at the next block.
    reserved: Option<Extent>,
    last_end: Option<u64>,
    runs: u64,
    handed_out_blocks: u64,
}

impl Allocator {
    /// A new stream reserving [`DEFAULT_STREAM_RESERVE_BLOCKS`] ahead of its writes.
    pub fn stream(&self) -> Stream {
        self.stream_with_reserve(DEFAULT_STREAM_RESERVE_BLOCKS)
    }

    /// A new stream reserving `reserve_blocks` (at least 1) ahead of its writes.
    pub fn stream_with_reserve(&self, reserve_blocks: u64) -> Stream {
        let (id, head) = self.inner.streams.register();
        Stream {
            alloc: self.clone(),
            id,
            head,
            reserve_blocks: reserve_blocks.max(1),
            reserved: None,
            last_end: None,
            runs: 0,
            handed_out_blocks: 0,
        }
    }
}

impl Stream {
    /// The next extent of the stream, between `min_len` and `max_len` blocks, continuing
    /// the previous one whenever the space after it is free.
    pub fn alloc(&mut self, min_len: u64, max_len: u64) -> Result<Extent, Error> {
        AllocRequest::any(min_len)
            .with_len(min_len, max_len)
            .validate(u64::MAX)?;
        let have = self.reserved.map_or(0, |r| r.len);
        if have < max_len {
            self.extend(max_len - have);
        }
        let have = self.reserved.map_or(0, |r| r.len);
        if have < min_len {
            self.restart(min_len, max_len)?;
        }
        let r = self.reserved.expect("a reservation of at least min_len");
        assert!(r.len >= min_len);
        let out = Extent::new(r.start, r.len.min(max_len));
        self.reserved = (r.len > out.len).then(|| Extent::new(out.end(), r.len - out.len));
        if self.last_end != Some(out.start) {
            self.runs += 1;
        }
        self.last_end = Some(out.end());
        self.handed_out_blocks += out.len;
        Ok(out)
    }

    /// Grows the reservation exactly at its end by up to `max(need, reserve)` blocks.
    fn extend(&mut self, need: u64) {
        let Some(at) = self.reserved.map(|r| r.end()).or(self.last_end) else {
            return;
        };
        if at >= self.alloc.total_blocks() {
            return;
        }
        let req = AllocRequest::exact(at, 1, need.max(self.reserve_blocks));
        if let Ok(e) = self.alloc.alloc(&req) {
            assert_eq!(e.start, at);
            self.reserved = Some(match self.reserved {
                Some(r) => Extent::new(r.start, r.len + e.len),
                None => e,
            });
            self.head.store(e.end(), Ordering::Relaxed);
        }
    }

    /// The run is broken: give back the too-short reservation and start a new run where
    /// no other stream is heading.
    fn restart(&mut self, min_len: u64, max_len: u64) -> Result<(), Error> {
        if let Some(r) = self.reserved.take() {
            self.alloc.free_uncommitted(r)?;
        }
        let want = max_len.max(self.reserve_blocks);
        let mut got = None;
        for _ in 0..START_ATTEMPTS {
            let Some(start) = self.pick_start(min_len) else {
                break;
            };
            if let Ok(e) = self.alloc.alloc(&AllocRequest::exact(start, min_len, want)) {
                got = Some(e);
                break;
            }
        }
        let e = match got {
            Some(e) => e,
            None => self
                .alloc
                .alloc(&AllocRequest::any(min_len).with_len(min_len, want))?,
        };
        self.head.store(e.end(), Ordering::Relaxed);
        self.reserved = Some(e);
        Ok(())
    }

    /// The start of the longest free extent, or its middle if a stream grows into it.
    fn pick_start(&self, min_len: u64) -> Option<u64> {
        let groups = &self.alloc.inner.groups;
        let g = groups.iter().max_by_key(|g| g.longest())?;
        let e = g.lock().longest_extent()?;
        if e.len < min_len {
            return None;
        }
        if !self.alloc.inner.streams.someone_heads_for(e.start, self.id) {
            return Some(e.start);
        }
        let mid = e.start + e.len / 2;
        Some(if e.end() - mid >= min_len {
            mid
        } else {
            e.start
        })
    }

    /// How many separate runs (extents not continuing the previous one) it handed out.
    pub fn runs(&self) -> u64 {
        self.runs
    }

    /// Blocks handed out so far.
    pub fn handed_out_blocks(&self) -> u64 {
        self.handed_out_blocks
    }

    /// The reservation held ahead of the next write, if any.
    pub fn reserved(&self) -> Option<Extent> {
        self.reserved
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        if let Some(r) = self.reserved.take() {
            // The reservation was allocated by this stream and never handed out, so it is
            // in use and freeing it cannot fail short of a bug.
            let freed = self.alloc.free_uncommitted(r);
            debug_assert!(freed.is_ok(), "returning a stream reservation: {freed:?}");
        }
        self.alloc.inner.streams.unregister(self.id);
    }
}
