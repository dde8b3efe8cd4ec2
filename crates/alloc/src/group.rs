//! One allocation group: its free space indexed twice (by start and by length, XFS's
//! bnobt and cntbt) and its busy extents, all behind the group's own lock.
//!
//! Busy extents are kept apart from the free indexes, so a search can never return one:
//! "no allocation returns a busy block" holds by construction, not by trimming.

use crate::extent::{align_down, align_up};
use crate::{AllocRequest, Error, Extent};
use std::collections::{BTreeMap, BTreeSet};

/// How many free extents a near search walks on each side of the goal before it falls
/// back to the by-length index; bounds the cost when many tiny extents sit near the goal.
const NEAR_WALK_STEPS: usize = 64;
/// How many too-small-after-alignment candidates a size search skips before it gives up
/// on a group (only alignment > 1 can make a long-enough extent unusable).
const SIZE_SCAN_STEPS: usize = 256;

/// The free-space state of one group. All positions are absolute block numbers.
#[derive(Debug, Default)]
pub(crate) struct GroupSpace {
    /// First block of the group.
    pub base: u64,
    /// One past the last block of the group.
    pub end: u64,
    /// Free extents, start -> len. Adjacent free extents are always merged.
    by_start: BTreeMap<u64, u64>,
    /// The same free extents as (len, start), for "at least N blocks" lookups.
    by_len: BTreeSet<(u64, u64)>,
    /// Busy extents (freed, not yet committed), start -> (len, generation).
    busy: BTreeMap<u64, (u64, u64)>,
    /// The same busy extents' starts by generation, so commit finds them in order (few
    /// generations are pending at once, so this map stays tiny).
    busy_by_gen: BTreeMap<u64, Vec<u64>>,
    free_blocks: u64,
    busy_blocks: u64,
    /// Mutations so far; debug builds check the group on a sample of them.
    mutations: u64,
}

impl GroupSpace {
    /// A group covering `[base, end)` with nothing free.
    pub fn empty(base: u64, end: u64) -> Self {
        assert!(base < end);
        Self {
            base,
            end,
            ..Self::default()
        }
    }

    pub fn free_blocks(&self) -> u64 {
        self.free_blocks
    }

    pub fn busy_blocks(&self) -> u64 {
        self.busy_blocks
    }

    /// The longest free extent's length (0 when full).
    pub fn longest(&self) -> u64 {
        self.by_len.last().map_or(0, |&(len, _)| len)
    }

    /// The longest free extent.
    pub fn longest_extent(&self) -> Option<Extent> {
        self.by_len
            .last()
            .map(|&(len, start)| Extent::new(start, len))
    }

    pub fn free_extents(&self) -> impl Iterator<Item = Extent> + '_ {
        self.by_start.iter().map(|(&s, &l)| Extent::new(s, l))
    }

    pub fn busy_extents(&self) -> impl Iterator<Item = (Extent, u64)> + '_ {
        self.busy.iter().map(|(&s, &(l, g))| (Extent::new(s, l), g))
    }

    /// The first block of `[start, end)` that is free, if any.
    pub fn first_free_in(&self, start: u64, end: u64) -> Option<u64> {
        first_overlap(&self.by_start, start, end, |&l| l)
    }

    /// The first block of `[start, end)` that is busy, if any.
    pub fn first_busy_in(&self, start: u64, end: u64) -> Option<u64> {
        first_overlap(&self.busy, start, end, |&(l, _)| l)
    }

    /// Adds `[start, start+len)` to the free indexes, merging with its neighbours.
    /// The caller has checked that none of it is free or busy.
    pub fn insert_free(&mut self, start: u64, len: u64) {
        assert!(len > 0);
        assert!(start >= self.base);
        assert!(start + len <= self.end);
        debug_assert!(self.first_free_in(start, start + len).is_none());
        debug_assert!(self.first_busy_in(start, start + len).is_none());
        // Merge with the neighbours, touching each index as few times as possible (this
        // is the hot path of free and commit).
        let end = start + len;
        let next = self.by_start.remove(&end);
        if let Some(nl) = next {
            let removed = self.by_len.remove(&(nl, end));
            assert!(removed);
        }
        let merged = len + next.unwrap_or(0);
        match self.by_start.range_mut(..start).next_back() {
            Some((&ps, pl)) if ps + *pl == start => {
                let removed = self.by_len.remove(&(*pl, ps));
                assert!(removed);
                *pl += merged;
                let fresh = self.by_len.insert((*pl, ps));
                assert!(fresh);
            }
            _ => self.insert_index(start, merged),
        }
        self.free_blocks += len;
        self.mutated();
    }

    /// Takes `[start, start+len)` out of the free extent starting at `source` (known
    /// from the search, so no predecessor lookup is needed).
    fn take_from(&mut self, source: u64, start: u64, len: u64) {
        assert!(len > 0);
        let end = start + len;
        let fl = self
            .by_start
            .get_mut(&source)
            .expect("take: source not free");
        let fe = source + *fl;
        assert!(source <= start);
        assert!(end <= fe, "take: range not inside its source extent");
        let removed = self.by_len.remove(&(*fl, source));
        assert!(removed);
        if start > source {
            *fl = start - source;
            let fresh = self.by_len.insert((start - source, source));
            assert!(fresh);
        } else {
            self.by_start.remove(&source);
        }
        if end < fe {
            self.insert_index(end, fe - end);
        }
        self.free_blocks -= len;
        self.mutated();
    }

    /// Takes `[start, start+len)` out of the free extent that contains it.
    pub fn take(&mut self, start: u64, len: u64) {
        assert!(len > 0);
        let end = start + len;
        let (&fs, fl) = self
            .by_start
            .range_mut(..=start)
            .next_back()
            .expect("take: no free extent before start");
        let fe = fs + *fl;
        assert!(fs <= start);
        assert!(end <= fe, "take: range not inside one free extent");
        let removed = self.by_len.remove(&(*fl, fs));
        assert!(removed);
        if start > fs {
            // The left remainder keeps its start: update it in place.
            *fl = start - fs;
            let fresh = self.by_len.insert((start - fs, fs));
            assert!(fresh);
        } else {
            self.by_start.remove(&fs);
        }
        if end < fe {
            self.insert_index(end, fe - end);
        }
        self.free_blocks -= len;
        self.mutated();
    }

    /// Records `extent` (currently in use) as busy until generation `gen` commits.
    pub fn insert_busy(&mut self, extent: Extent, gen: u64) {
        assert!(extent.len > 0);
        debug_assert!(self.first_free_in(extent.start, extent.end()).is_none());
        debug_assert!(self.first_busy_in(extent.start, extent.end()).is_none());
        self.busy.insert(extent.start, (extent.len, gen));
        self.busy_by_gen.entry(gen).or_default().push(extent.start);
        self.busy_blocks += extent.len;
        self.mutated();
    }

    /// Moves every busy extent freed in a generation `<= gen` into free space.
    /// Returns how many blocks became free.
    pub fn commit(&mut self, gen: u64) -> u64 {
        let mut released = 0;
        while let Some(entry) = self.busy_by_gen.first_entry() {
            if *entry.key() > gen {
                break;
            }
            let (g, starts) = entry.remove_entry();
            // Take the whole generation out of the busy map first, so the group is
            // consistent (those blocks look in use) at every insert_free below.
            let extents: Vec<Extent> = starts
                .into_iter()
                .map(|start| {
                    let (len, bg) = self.busy.remove(&start).expect("busy indexes disagree");
                    assert_eq!(bg, g);
                    self.busy_blocks -= len;
                    Extent::new(start, len)
                })
                .collect();
            for e in extents {
                self.insert_free(e.start, e.len);
                released += e.len;
            }
        }
        released
    }

    /// Finds and takes an extent for `req`, `goal` already clamped into this group.
    pub fn alloc(&mut self, req: &AllocRequest, goal: Option<u64>) -> Option<Extent> {
        let found = match req.mode {
            crate::Mode::Exact => self.find_exact(req, goal?),
            crate::Mode::Near => match goal {
                Some(g) => self.find_near(req, g).or_else(|| self.find_size(req)),
                None => self.find_size(req),
            },
            crate::Mode::Any => self.find_size(req),
        }?;
        let (found, source) = found;
        assert!(found.len >= req.min_len);
        assert!(found.len <= req.max_len);
        assert_eq!(found.start % req.align, 0);
        self.take_from(source, found.start, found.len);
        Some(found)
    }

    /// Exactly at `goal`: the longest run up to `max_len` starting there.
    fn find_exact(&self, req: &AllocRequest, goal: u64) -> Option<(Extent, u64)> {
        let (&s, &l) = self.by_start.range(..=goal).next_back()?;
        if s + l <= goal {
            return None;
        }
        let len = (s + l - goal).min(req.max_len);
        (len >= req.min_len).then_some((Extent::new(goal, len), s))
    }

    /// Best fit by length: the smallest free extent that holds `max_len`, else the
    /// longest one if it holds at least `min_len`.
    fn find_size(&self, req: &AllocRequest) -> Option<(Extent, u64)> {
        for &(l, s) in self.by_len.range((req.max_len, 0)..).take(SIZE_SCAN_STEPS) {
            if let Some(e) = fit_tail(s, s + l, req) {
                if e.len == req.max_len {
                    return Some((e, s));
                }
            }
        }
        for &(l, s) in self.by_len.iter().rev().take(SIZE_SCAN_STEPS) {
            if l < req.min_len {
                break;
            }
            if let Some(e) = fit_tail(s, s + l, req) {
                return Some((e, s));
            }
        }
        None
    }

    /// The free space closest to `goal` that holds at least `min_len`, walking outwards
    /// from the goal a bounded number of extents on each side. Of two pieces as close,
    /// the lower address wins: left of the goal, a later (lower) extent may tie and
    /// win; right of it, only a strictly closer one does.
    fn find_near(&self, req: &AllocRequest, goal: u64) -> Option<(Extent, u64)> {
        let mut best: Option<(u64, Extent, u64)> = None;
        let mut left = self.by_start.range(..=goal).rev();
        let mut right = self.by_start.range(goal + 1..);
        let (mut left_done, mut right_done) = (false, false);
        for _ in 0..NEAR_WALK_STEPS {
            if left_done && right_done {
                break;
            }
            if !left_done {
                match left.next() {
                    Some((&s, &l))
                        if best.is_none_or(|(d, _, _)| goal.saturating_sub(s + l) <= d) =>
                    {
                        if let Some(c) = near_candidate(s, s + l, goal, req) {
                            if best.is_none_or(|(d, _, _)| c.0 <= d) {
                                best = Some((c.0, c.1, s));
                            }
                        }
                    }
                    _ => left_done = true,
                }
            }
            if !right_done {
                match right.next() {
                    Some((&s, &l)) if best.is_none_or(|(d, _, _)| s - goal < d) => {
                        if let Some(c) = near_candidate(s, s + l, goal, req) {
                            if best.is_none_or(|(d, _, _)| c.0 < d) {
                                best = Some((c.0, c.1, s));
                            }
                        }
                    }
                    _ => right_done = true,
                }
            }
        }
        best.map(|(_, e, s)| (e, s))
    }

    /// Verifies every invariant of the group; `index` names it in the error.
    pub fn check(&self, index: u64) -> Result<(), Error> {
        let bad = |what: String| Err(Error::Inconsistent { group: index, what });
        if self.by_start.len() != self.by_len.len() {
            return bad(format!(
                "by-start index has {} extents, by-length {}",
                self.by_start.len(),
                self.by_len.len()
            ));
        }
        let mut free = 0u64;
        let mut prev_end: Option<u64> = None;
        for (&s, &l) in &self.by_start {
            if l == 0 || s < self.base || s + l > self.end {
                return bad(format!("free extent {s}+{l} empty or outside the group"));
            }
            if let Some(pe) = prev_end {
                if s <= pe {
                    return bad(format!(
                        "free extent at {s} overlaps or touches the previous"
                    ));
                }
            }
            if !self.by_len.contains(&(l, s)) {
                return bad(format!(
                    "free extent {s}+{l} missing from the by-length index"
                ));
            }
            if let Some(b) = self.first_busy_in(s, s + l) {
                return bad(format!("block {b} is both free and busy"));
            }
            prev_end = Some(s + l);
            free += l;
        }
        if free != self.free_blocks {
            return bad(format!(
                "free extents sum to {free}, counter says {}",
                self.free_blocks
            ));
        }
        let mut busy = 0u64;
        let mut prev_end = self.base;
        for (&s, &(l, _)) in &self.busy {
            if l == 0 || s < prev_end || s + l > self.end {
                return bad(format!("busy extent {s}+{l} empty, overlapping or outside"));
            }
            prev_end = s + l;
            busy += l;
        }
        let mut indexed = BTreeSet::new();
        for (&g, starts) in &self.busy_by_gen {
            for &s in starts {
                if self.busy.get(&s).map(|&(_, bg)| bg) != Some(g) {
                    return bad(format!("generation index lists {s} under {g} wrongly"));
                }
                indexed.insert(s);
            }
        }
        if indexed.len() != self.busy.len() {
            return bad("busy extents missing from the generation index".to_owned());
        }
        if busy != self.busy_blocks {
            return bad(format!(
                "busy extents sum to {busy}, counter says {}",
                self.busy_blocks
            ));
        }
        Ok(())
    }

    fn insert_index(&mut self, start: u64, len: u64) {
        let fresh = self.by_start.insert(start, len).is_none();
        assert!(fresh, "free extent at {start} already indexed");
        let fresh = self.by_len.insert((len, start));
        assert!(fresh);
    }

    /// Debug builds check the whole group while it is small, then on a sample of
    /// mutations, so tests catch a broken index close to where it broke.
    fn mutated(&mut self) {
        self.mutations = self.mutations.wrapping_add(1);
        if cfg!(debug_assertions) && (self.by_start.len() < 32 || self.mutations % 256 == 0) {
            if let Err(e) = self.check(u64::MAX) {
                panic!("allocation group at {}: {e}", self.base);
            }
        }
    }
}

/// The first block of `[start, end)` covered by an extent of `map` (start -> value).
fn first_overlap<V>(
    map: &BTreeMap<u64, V>,
    start: u64,
    end: u64,
    len: impl Fn(&V) -> u64,
) -> Option<u64> {
    if let Some((&s, v)) = map.range(..=start).next_back() {
        if s + len(v) > start {
            return Some(start);
        }
    }
    map.range(start..end).next().map(|(&s, _)| s)
}

/// The longest aligned extent (up to `max_len`, at least `min_len`) at the end of free
/// `[s, e)`. Taking the tail keeps the free extent's start, so the by-start index is
/// updated in place, and it leaves the head of a gap to a stream that starts there.
fn fit_tail(s: u64, e: u64, req: &AllocRequest) -> Option<Extent> {
    let first = align_up(s, req.align)?;
    if first >= e {
        return None;
    }
    let len = (e - first).min(req.max_len);
    if len < req.min_len {
        return None;
    }
    // `first <= e - len`, so the piece never starts before `first` and always ends by
    // `e`: it holds all `len` blocks.
    let start = align_down(e - len, req.align).max(first);
    Some(Extent::new(start, len))
}

/// The best placement in free `[s, e)` for `goal`, with its distance from the goal: the
/// longest aligned piece it holds (up to `max_len`, at least `min_len`), placed as close
/// to the goal as it can be (at the goal if it fits there, else sliding back so it ends
/// at `e`, or starting at `s` when the goal lies before). Distance: 0 if the piece
/// covers the goal, else from the goal to its start (after) or to its end (before).
fn near_candidate(s: u64, e: u64, goal: u64, req: &AllocRequest) -> Option<(u64, Extent)> {
    let first = align_up(s, req.align)?;
    if first >= e {
        return None;
    }
    let len = (e - first).min(req.max_len);
    if len < req.min_len {
        return None;
    }
    // The latest aligned start that still fits `len` (at least `first`).
    let last = align_down(e - len, req.align).max(first);
    // At or after the goal if the piece fits there (a stream keeps going forward), else
    // as late as it fits, ending nearest a goal past it.
    let start = if goal <= first {
        first
    } else {
        match align_up(goal, req.align) {
            Some(up) if up <= last => up,
            _ => last,
        }
    };
    let x = Extent::new(start, len);
    let distance = if x.start >= goal {
        x.start - goal
    } else {
        goal.saturating_sub(x.end())
    };
    Some((distance, x))
}

impl GroupSpace {
    /// The first block of `[start, end)` that is not free, if any.
    pub fn first_not_free(&self, start: u64, end: u64) -> Option<u64> {
        match self.by_start.range(..=start).next_back() {
            Some((&s, &l)) if s + l > start => (s + l < end).then_some(s + l),
            _ => Some(start),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Mode;

    fn space(free: &[(u64, u64)]) -> GroupSpace {
        let mut g = GroupSpace::empty(0, 1000);
        for &(s, l) in free {
            g.insert_free(s, l);
        }
        g.check(0).unwrap();
        g
    }

    #[test]
    fn adjacent_frees_merge_in_both_indexes() {
        let g = space(&[(10, 5), (20, 5), (15, 5)]);
        assert_eq!(
            g.free_extents().collect::<Vec<_>>(),
            vec![Extent::new(10, 15)]
        );
        assert_eq!(g.longest(), 15);
    }

    #[test]
    fn near_prefers_the_closest_fit_on_either_side() {
        let mut g = space(&[(100, 10), (180, 50), (300, 100)]);
        // Goal 175: the extent at 180 is 5 away, the one ending at 110 is 65 away.
        let e = g.alloc(&AllocRequest::near(175, 8, 8), Some(175)).unwrap();
        assert_eq!(e, Extent::new(180, 8));
        // Goal 125 with nothing fitting at or after it nearby on the left: the left
        // extent's tail ends 15 before the goal, the right one starts 63 after.
        let e = g.alloc(&AllocRequest::near(125, 4, 4), Some(125)).unwrap();
        assert_eq!(e, Extent::new(106, 4));
        g.check(0).unwrap();
    }

    /// The left walk's pruning bound is the extent's end (`s + l`); an extent at block 0
    /// must still be reached behind a nearer one that does not fit.
    #[test]
    fn near_walk_reaches_a_free_extent_at_block_0() {
        let mut g = space(&[(0, 10), (20, 3), (55, 10)]);
        // Goal 30: (20, 3) is too short, (55, 10) is 25 away, (0, 10)'s tail 20 away.
        let e = g.alloc(&AllocRequest::near(30, 5, 5), Some(30)).unwrap();
        assert_eq!(e, Extent::new(5, 5));
        g.check(0).unwrap();
    }

    #[test]
    fn size_is_best_fit_then_longest() {
        let mut g = space(&[(0, 30), (100, 12), (200, 500)]);
        let req = AllocRequest::any(10);
        assert_eq!(
            g.alloc(&req, None),
            Some(Extent::new(102, 10)),
            "smallest that fits, tail"
        );
        let req = AllocRequest::any(600).with_len(1, 600);
        assert_eq!(
            g.alloc(&req, None),
            Some(Extent::new(200, 500)),
            "longest when none fits"
        );
        assert_eq!(g.alloc(&AllocRequest::any(31), None), None);
        g.check(0).unwrap();
    }

    #[test]
    fn alignment_is_respected_and_can_refuse() {
        let mut g = space(&[(3, 6)]);
        let req = AllocRequest::any(4).with_align(4);
        assert_eq!(g.alloc(&req, None), Some(Extent::new(4, 4)));
        let mut g = space(&[(5, 6)]);
        let req = AllocRequest {
            mode: Mode::Any,
            ..AllocRequest::any(4).with_align(8)
        };
        assert_eq!(
            g.alloc(&req, None),
            None,
            "only 3 blocks after the aligned start 8"
        );
    }

    #[test]
    fn commit_releases_only_old_generations() {
        let mut g = space(&[]);
        g.insert_busy(Extent::new(0, 10), 4);
        g.insert_busy(Extent::new(10, 10), 5);
        assert_eq!(g.commit(4), 10);
        assert_eq!(g.free_blocks(), 10);
        assert_eq!(g.busy_blocks(), 10);
        assert_eq!(g.first_busy_in(0, 20), Some(10));
        g.check(0).unwrap();
    }
}

#[cfg(test)]
#[path = "group_edge_tests.rs"]
mod edge_tests;
