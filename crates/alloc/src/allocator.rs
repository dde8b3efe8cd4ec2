//! The `Allocator`: allocation groups, each behind its own lock, and the operations that
//! pick a group, search it and keep the lock-free summaries (free, longest) current.

use crate::group::GroupSpace;
use crate::stream::StreamRegistry;
use crate::{AllocRequest, Error, Extent, Mode};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Upper bound on the number of allocation groups, so a hostile geometry (from persisted
/// bytes or a caller) cannot make the constructor allocate without limit.
pub const MAX_GROUPS: u64 = 1 << 16;

/// One allocation group: its space behind a lock, plus summaries readable without it.
#[derive(Debug)]
pub(crate) struct Group {
    space: Mutex<GroupSpace>,
    /// Length of the longest free extent (a hint for skipping groups; exact under the lock).
    longest: AtomicU64,
    free: AtomicU64,
    busy: AtomicU64,
}

impl Group {
    pub fn lock(&self) -> MutexGuard<'_, GroupSpace> {
        self.space
            .lock()
            .expect("allocation group lock poisoned by an earlier panic")
    }

    fn try_lock(&self) -> Option<MutexGuard<'_, GroupSpace>> {
        self.space.try_lock().ok()
    }

    /// Refreshes the summaries; called with the lock held after every mutation.
    pub fn publish(&self, space: &GroupSpace) {
        self.longest.store(space.longest(), Ordering::Release);
        self.free.store(space.free_blocks(), Ordering::Release);
        self.busy.store(space.busy_blocks(), Ordering::Release);
    }

    pub fn longest(&self) -> u64 {
        self.longest.load(Ordering::Acquire)
    }
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub total_blocks: u64,
    pub group_blocks: u64,
    pub groups: Vec<Group>,
    pub streams: StreamRegistry,
    /// The highest generation passed to `commit`.
    committed: AtomicU64,
}

/// An extent allocator over `total_blocks` blocks split into allocation groups.
///
/// Thread-safe: every method takes `&self`, and each group has its own lock, so
/// allocations in different groups run in parallel. `Allocator` is a cheap handle:
/// clones share the same free space (streams keep one to return their reservation).
#[derive(Debug, Clone)]
pub struct Allocator {
    pub(crate) inner: Arc<Inner>,
}

impl Allocator {
    /// An allocator with every block free.
    pub fn new(total_blocks: u64, group_blocks: u64) -> Result<Self, Error> {
        let a = Self::with_nothing_free(total_blocks, group_blocks)?;
        for g in &a.inner.groups {
            let mut s = g.lock();
            let (base, end) = (s.base, s.end);
            s.insert_free(base, end - base);
            g.publish(&s);
        }
        Ok(a)
    }

    /// Rebuilds the free space from the extents in use: every block not listed is free.
    ///
    /// This is how a volume opens: its committed object table lists the extents it
    /// references, and whatever was allocated after the last commit (never referenced by
    /// durable metadata) simply comes back as free. Overlapping extents are an error, and
    /// so is a geometry the allocator cannot hold (`InvalidGeometry`): the caller may pass
    /// values read from disk, so nothing here asserts on them.
    pub fn from_used(
        total_blocks: u64,
        group_blocks: u64,
        used: impl IntoIterator<Item = Extent>,
    ) -> Result<Self, Error> {
        let a = Self::new(total_blocks, group_blocks)?;
        for e in used {
            a.mark_used(e)?;
        }
        Ok(a)
    }

    /// An allocator with the given geometry and no free space (decoding fills it).
    pub(crate) fn with_nothing_free(total_blocks: u64, group_blocks: u64) -> Result<Self, Error> {
        let bad = |reason| {
            Err(Error::InvalidGeometry {
                total_blocks,
                group_blocks,
                reason,
            })
        };
        if total_blocks == 0 {
            return bad("the volume has no blocks");
        }
        if group_blocks == 0 {
            return bad("groups have no blocks");
        }
        let count = total_blocks.div_ceil(group_blocks);
        if count > MAX_GROUPS {
            return bad("too many allocation groups (at most 65536)");
        }
        // The last group's end is `base + group_blocks` clipped to the volume; with a
        // geometry near 2^64 (from persisted bytes) that sum overflows, so it saturates:
        // every group is then non-empty and ends inside the volume.
        let groups = (0..count)
            .map(|i| {
                let base = i * group_blocks;
                let end = base.saturating_add(group_blocks).min(total_blocks);
                Group {
                    space: Mutex::new(GroupSpace::empty(base, end)),
                    longest: AtomicU64::new(0),
                    free: AtomicU64::new(0),
                    busy: AtomicU64::new(0),
                }
            })
            .collect();
        Ok(Self {
            inner: Arc::new(Inner {
                total_blocks,
                group_blocks,
                groups,
                streams: StreamRegistry::default(),
                committed: AtomicU64::new(0),
            }),
        })
    }

    /// Allocates between `req.min_len` and `req.max_len` blocks: the longest it can find
    /// up to `max_len`, placed as `req.mode` says (for [`Mode::Near`], the longest piece
    /// of the closest free extent that holds `min_len`; a longer extent further away is
    /// not sought).
    pub fn alloc(&self, req: &AllocRequest) -> Result<Extent, Error> {
        req.validate(self.inner.total_blocks)?;
        let found = match req.mode {
            Mode::Exact => {
                let goal = req.goal.expect("validated: exact has a goal");
                let g = &self.inner.groups[self.group_index(goal)];
                let mut s = g.lock();
                let e = s.alloc(req, Some(goal));
                g.publish(&s);
                e
            }
            Mode::Near if req.goal.is_some() => self.alloc_near(req),
            Mode::Near | Mode::Any => self.alloc_any(req),
        };
        let e = found.ok_or_else(|| self.no_space(req.min_len))?;
        assert!(e.end() <= self.inner.total_blocks);
        assert_eq!(self.group_index(e.start), self.group_index(e.end() - 1));
        Ok(e)
    }

    /// Near: the goal's group first (closest free space, then best fit there), then the
    /// other groups in order of distance, each searched from its edge facing the goal.
    fn alloc_near(&self, req: &AllocRequest) -> Option<Extent> {
        let goal = req.goal?;
        let home = self.group_index(goal);
        let n = self.inner.groups.len();
        for step in 0..2 * n {
            let offset = step.div_ceil(2);
            let index = if step % 2 == 1 {
                home.checked_add(offset).filter(|&i| i < n)
            } else {
                home.checked_sub(offset)
            };
            // Step 0 is the goal's own group; every later step is `offset` >= 1 away.
            let Some(index) = index else { continue };
            let g = &self.inner.groups[index];
            if g.longest() < req.min_len {
                continue;
            }
            let mut s = g.lock();
            let clamped = goal.clamp(s.base, s.end - 1);
            let e = s.alloc(req, Some(clamped));
            g.publish(&s);
            if e.is_some() {
                return e;
            }
        }
        None
    }

    /// Any: the first group (from the goal's, or group 0) able to give `max_len`, trying
    /// uncontended groups first; else the longest fit of at least `min_len`.
    fn alloc_any(&self, req: &AllocRequest) -> Option<Extent> {
        let n = self.inner.groups.len();
        let first = req.goal.map_or(0, |g| self.group_index(g));
        let order = (0..n).map(|i| (first + i) % n);
        for pass in 0..2 {
            for index in order.clone() {
                let g = &self.inner.groups[index];
                if g.longest() < req.max_len {
                    continue;
                }
                let guard = if pass == 0 {
                    g.try_lock()
                } else {
                    Some(g.lock())
                };
                let Some(mut s) = guard else { continue };
                let e = s.alloc(req, None);
                g.publish(&s);
                if e.is_some() {
                    return e;
                }
            }
        }
        // No group holds `max_len`: the longest extent anywhere is the best answer, so
        // try groups from the longest down (the summaries may move under us; the
        // attempts are bounded by the group count).
        let mut by_longest: Vec<usize> = (0..n)
            .filter(|&i| self.inner.groups[i].longest() >= req.min_len)
            .collect();
        by_longest.sort_by_key(|&i| std::cmp::Reverse(self.inner.groups[i].longest()));
        for index in by_longest {
            let g = &self.inner.groups[index];
            let mut s = g.lock();
            let e = s.alloc(req, None);
            g.publish(&s);
            if e.is_some() {
                return e;
            }
        }
        None
    }

    fn no_space(&self, min_len: u64) -> Error {
        Error::NoSpace {
            min_len,
            largest_free: self.largest_free(),
        }
    }

    /// Reserves a known range (it must be free, not busy).
    pub fn mark_used(&self, extent: Extent) -> Result<(), Error> {
        self.with_parts(
            extent,
            |space, part| match space.first_not_free(part.start, part.end()) {
                Some(block) => Err(Error::NotFree { extent, block }),
                None => Ok(()),
            },
            |space, part| space.take(part.start, part.len),
        )
    }

    /// Frees `extent` in generation `gen`: it stays busy (never handed out) until
    /// `commit(g)` with `g >= gen`. Every block of it must be in use.
    pub fn free(&self, extent: Extent, gen: u64) -> Result<(), Error> {
        self.with_parts(
            extent,
            |space, part| used_or_err(space, part, extent),
            |space, part| space.insert_busy(part, gen),
        )
    }

    /// Frees an allocation that was never made durable (an error path, an unused
    /// reservation): its blocks are reusable at once, since no metadata points to them.
    pub fn free_uncommitted(&self, extent: Extent) -> Result<(), Error> {
        self.with_parts(
            extent,
            |space, part| used_or_err(space, part, extent),
            |space, part| space.insert_free(part.start, part.len),
        )
    }

    /// Metadata of generation `gen` is durable: extents freed in generations `<= gen`
    /// become free. Returns how many blocks that released.
    pub fn commit(&self, gen: u64) -> u64 {
        self.inner.committed.fetch_max(gen, Ordering::AcqRel);
        let mut released = 0;
        for g in &self.inner.groups {
            if g.busy.load(Ordering::Acquire) == 0 {
                continue;
            }
            let mut s = g.lock();
            released += s.commit(gen);
            g.publish(&s);
        }
        released
    }

    /// Splits `extent` at group boundaries, locks those groups in index order, checks
    /// every part with `verify` and only then applies `apply` to each: all or nothing.
    fn with_parts(
        &self,
        extent: Extent,
        verify: impl Fn(&GroupSpace, Extent) -> Result<(), Error>,
        apply: impl Fn(&mut GroupSpace, Extent),
    ) -> Result<(), Error> {
        let total = self.inner.total_blocks;
        if extent.len == 0 || extent.start >= total || extent.len > total - extent.start {
            return Err(Error::OutOfRange {
                extent,
                total_blocks: total,
            });
        }
        let first = self.group_index(extent.start);
        let last = self.group_index(extent.end() - 1);
        if first == last {
            // The common case, without the vectors.
            let g = &self.inner.groups[first];
            let mut s = g.lock();
            verify(&s, extent)?;
            apply(&mut s, extent);
            g.publish(&s);
            return Ok(());
        }
        let mut guards: Vec<_> = (first..=last)
            .map(|i| self.inner.groups[i].lock())
            .collect();
        let parts: Vec<Extent> = guards
            .iter()
            .map(|s| {
                let start = extent.start.max(s.base);
                Extent::new(start, extent.end().min(s.end) - start)
            })
            .collect();
        for (s, &part) in guards.iter().zip(&parts) {
            verify(s, part)?;
        }
        for ((s, &part), index) in guards.iter_mut().zip(&parts).zip(first..) {
            apply(s, part);
            self.inner.groups[index].publish(s);
        }
        Ok(())
    }

    /// Blocks in the volume.
    pub fn total_blocks(&self) -> u64 {
        self.inner.total_blocks
    }

    /// Blocks per allocation group (the last group may be shorter).
    pub fn group_blocks(&self) -> u64 {
        self.inner.group_blocks
    }

    /// Number of allocation groups.
    pub fn group_count(&self) -> usize {
        self.inner.groups.len()
    }

    /// Blocks free now (busy blocks are not free).
    pub fn free_blocks(&self) -> u64 {
        self.inner
            .groups
            .iter()
            .map(|g| g.free.load(Ordering::Acquire))
            .sum()
    }

    /// Blocks freed but waiting for their generation to commit.
    pub fn busy_blocks(&self) -> u64 {
        self.inner
            .groups
            .iter()
            .map(|g| g.busy.load(Ordering::Acquire))
            .sum()
    }

    /// The longest free extent's length (extents never cross a group boundary).
    pub fn largest_free(&self) -> u64 {
        self.inner
            .groups
            .iter()
            .map(Group::longest)
            .max()
            .unwrap_or(0)
    }

    /// The highest generation committed so far.
    pub fn committed_generation(&self) -> u64 {
        self.inner.committed.load(Ordering::Acquire)
    }

    /// Every free extent, in block order (a snapshot; groups are read one at a time).
    pub fn free_extents(&self) -> Vec<Extent> {
        let mut out = Vec::new();
        for g in &self.inner.groups {
            out.extend(g.lock().free_extents());
        }
        out
    }

    /// Every busy extent with the generation that freed it, in block order.
    pub fn busy_extents(&self) -> Vec<(Extent, u64)> {
        let mut out = Vec::new();
        for g in &self.inner.groups {
            out.extend(g.lock().busy_extents());
        }
        out
    }

    /// The extents in use (neither free nor busy), in block order, merged across group
    /// boundaries.
    pub fn used_extents(&self) -> Vec<Extent> {
        let mut out: Vec<Extent> = Vec::new();
        let mut push = |start: u64, end: u64| {
            if start >= end {
                return;
            }
            match out.last_mut() {
                Some(last) if last.end() == start => last.len += end - start,
                _ => out.push(Extent::new(start, end - start)),
            }
        };
        for g in &self.inner.groups {
            let s = g.lock();
            let mut holes: Vec<Extent> = s.free_extents().collect();
            holes.extend(s.busy_extents().map(|(e, _)| e));
            holes.sort_unstable();
            let mut at = s.base;
            for h in holes {
                push(at, h.start);
                at = h.end();
            }
            push(at, s.end);
        }
        out
    }

    /// Verifies every invariant: each group's two free indexes agree, extents are merged,
    /// inside their group and disjoint from busy ones, counters add up, the lock-free
    /// summaries match, and free + busy + used = total.
    pub fn check(&self) -> Result<(), Error> {
        let mut accounted = 0u64;
        for (i, g) in self.inner.groups.iter().enumerate() {
            let s = g.lock();
            s.check(i as u64)?;
            let bad = |what: String| {
                Err(Error::Inconsistent {
                    group: i as u64,
                    what,
                })
            };
            if g.longest() != s.longest() {
                return bad(format!(
                    "summary longest {} != {}",
                    g.longest(),
                    s.longest()
                ));
            }
            if g.free.load(Ordering::Acquire) != s.free_blocks() {
                return bad("summary free count is stale".to_owned());
            }
            if g.busy.load(Ordering::Acquire) != s.busy_blocks() {
                return bad("summary busy count is stale".to_owned());
            }
            let expect_base = i as u64 * self.inner.group_blocks;
            if s.base != expect_base || s.end <= s.base {
                return bad(format!("group covers {}..{}", s.base, s.end));
            }
            accounted += s.end - s.base;
        }
        if accounted != self.inner.total_blocks {
            return Err(Error::Inconsistent {
                group: 0,
                what: format!(
                    "groups cover {accounted} blocks of {}",
                    self.inner.total_blocks
                ),
            });
        }
        Ok(())
    }

    pub(crate) fn group_index(&self, block: u64) -> usize {
        debug_assert!(block < self.inner.total_blocks);
        (block / self.inner.group_blocks) as usize
    }
}

fn used_or_err(space: &GroupSpace, part: Extent, extent: Extent) -> Result<(), Error> {
    let (s, e) = (part.start, part.end());
    let block = match (space.first_free_in(s, e), space.first_busy_in(s, e)) {
        (None, None) => return Ok(()),
        (Some(a), Some(b)) => a.min(b),
        (Some(a), None) | (None, Some(a)) => a,
    };
    Err(Error::NotAllocated { extent, block })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A geometry near 2^64 (a forged `total_blocks` of 2^64-1 or 2^64-2 in a volume's
    /// superblock) overflowed the last group's end and stopped at `assertion failed:
    /// base < end` in `GroupSpace::empty`; every geometry must give an allocator or an
    /// error.
    #[test]
    fn geometry_near_u64_max_gives_an_allocator_or_an_error() {
        for total in [u64::MAX, u64::MAX - 1, u64::MAX - 255, 1 << 63] {
            for group in [
                total.div_ceil(64),
                total.div_ceil(64) + 1,
                total / 2,
                total,
                u64::MAX,
            ] {
                let a = Allocator::from_used(total, group, [Extent::new(total - 1, 1)])
                    .unwrap_or_else(|e| panic!("{total} blocks in groups of {group}: {e}"));
                assert_eq!(a.free_blocks(), total - 1);
                a.check().unwrap();
            }
        }
    }

    #[test]
    fn bad_geometry_is_an_error_not_a_panic() {
        for (total, group) in [(0, 1), (1, 0), (u64::MAX, 1), (MAX_GROUPS + 1, 1)] {
            let e = Allocator::from_used(total, group, []).unwrap_err();
            assert!(matches!(e, Error::InvalidGeometry { .. }), "{e}");
        }
        assert!(Allocator::from_used(MAX_GROUPS, 1, []).is_ok());
    }

    /// `alloc_near` clamped a goal past a group to that group's last block, and the group
    /// search then started the extent at that block: a near request spilling into a lower
    /// group got 1 block (`Extent(99, 1)`) while 100 were free. The same happened inside
    /// the goal's own group whenever the free run at the goal was short but reached back
    /// before it. Near now takes the longest piece (up to `max_len`) of the free extent it
    /// picks, placed as close to the goal as it can be.
    #[test]
    fn near_takes_the_longest_piece_of_the_free_extent_it_picks() {
        let a = Allocator::new(200, 100).unwrap();
        a.mark_used(Extent::new(100, 100)).unwrap();
        let e = a.alloc(&AllocRequest::near(150, 1, 50)).unwrap();
        assert_eq!(
            e,
            Extent::new(50, 50),
            "ends at the group's end, nearest the goal"
        );
        // Spilling into a higher group starts at its first block.
        let a = Allocator::new(200, 100).unwrap();
        a.mark_used(Extent::new(0, 100)).unwrap();
        assert_eq!(
            a.alloc(&AllocRequest::near(30, 1, 50)).unwrap(),
            Extent::new(100, 50)
        );
        // Inside the goal's group: the free run [0, 100) ends one block past the goal.
        let a = Allocator::new(200, 200).unwrap();
        a.mark_used(Extent::new(100, 100)).unwrap();
        assert_eq!(
            a.alloc(&AllocRequest::near(99, 1, 50)).unwrap(),
            Extent::new(50, 50)
        );
        // Aligned: the longest aligned piece, as close to the goal as alignment allows.
        let a = Allocator::new(200, 100).unwrap();
        a.mark_used(Extent::new(100, 100)).unwrap();
        let e = a
            .alloc(&AllocRequest::near(150, 1, 30).with_align(8))
            .unwrap();
        assert_eq!(e, Extent::new(64, 30));
        // Where the goal's run is long enough, the extent still starts at the goal.
        let a = Allocator::new(200, 100).unwrap();
        assert_eq!(
            a.alloc(&AllocRequest::near(20, 1, 50)).unwrap(),
            Extent::new(20, 50)
        );
        a.check().unwrap();
    }

    /// `alloc_any` skips a group whose longest extent is below `max_len` in its first
    /// passes; a group whose longest equals `max_len` must be taken there (not left to
    /// the longest-first fallback, which would pick the longer group 1).
    #[test]
    fn any_takes_the_first_group_whose_longest_equals_max_len() {
        let a = Allocator::new(300, 100).unwrap();
        a.mark_used(Extent::new(10, 90)).unwrap();
        assert_eq!(a.alloc(&AllocRequest::any(10)).unwrap(), Extent::new(0, 10));
    }

    #[test]
    fn committed_generation_is_the_highest_committed() {
        let a = Allocator::new(100, 100).unwrap();
        assert_eq!(a.committed_generation(), 0);
        let e = a.alloc(&AllocRequest::any(10)).unwrap();
        a.free(e, 4).unwrap();
        assert_eq!(a.commit(5), 10);
        assert_eq!(a.committed_generation(), 5);
        a.commit(3);
        assert_eq!(
            a.committed_generation(),
            5,
            "an older commit does not go back"
        );
        a.commit(9);
        assert_eq!(a.committed_generation(), 9);
    }
}

#[cfg(test)]
#[path = "allocator_edge_tests.rs"]
mod edge_tests;
