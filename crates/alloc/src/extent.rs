//! Extents and allocation requests: the allocator's vocabulary, all in blocks.

use crate::Error;

/// A run of `len` blocks starting at block `start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Extent {
    /// First block.
    pub start: u64,
    /// Number of blocks (never 0 for an extent the allocator hands out).
    pub len: u64,
}

impl Extent {
    /// An extent of `len` blocks from `start`.
    pub const fn new(start: u64, len: u64) -> Self {
        Self { start, len }
    }

    /// One past the last block (saturating, so a hostile extent cannot overflow).
    pub const fn end(&self) -> u64 {
        self.start.saturating_add(self.len)
    }

    /// Whether `block` lies inside the extent.
    pub const fn contains(&self, block: u64) -> bool {
        block >= self.start && block < self.end()
    }
}

/// Where an allocation may be placed relative to its goal.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Exactly at the goal block, or fail.
    Exact,
    /// As close to the goal as possible: its own group first, then the nearest groups.
    /// The closest free extent holding `min_len` is picked, and of it the longest piece up
    /// to `max_len`: at the goal if that fits, else ending as close to the goal as it can
    /// (a goal past a group gets that group's last free blocks, not one block).
    Near,
    /// Anywhere: the best-fitting free extent (the goal, if any, picks the first group).
    Any,
}

/// What the caller wants: between `min_len` and `max_len` blocks, the start a multiple of
/// `align`, placed by `mode` relative to `goal`.
///
/// Build one with [`any`](Self::any), [`near`](Self::near), [`exact`](Self::exact) or
/// [`new`](Self::new) and the `with_*` methods (fields may be added later, so there is
/// no struct literal outside this crate).
///
/// ```
/// use stack_alloc::{AllocRequest, Mode};
/// let req = AllocRequest::new(Mode::Near, Some(5000), 8, 64).with_align(8);
/// assert_eq!(req, AllocRequest::near(5000, 8, 64).with_align(8));
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllocRequest {
    /// The shortest extent the caller accepts (at least 1).
    pub min_len: u64,
    /// The longest extent the caller wants; the allocator returns the longest it can
    /// where `mode` lets it look (see [`Mode::Near`]).
    pub max_len: u64,
    /// The start block is a multiple of this (at least 1).
    pub align: u64,
    /// The block the caller would like to start at (required for `Exact`).
    pub goal: Option<u64>,
    /// How the goal is used.
    pub mode: Mode,
}

impl AllocRequest {
    /// Between `min_len` and `max_len` blocks placed by `mode` relative to `goal`,
    /// unaligned.
    pub const fn new(mode: Mode, goal: Option<u64>, min_len: u64, max_len: u64) -> Self {
        Self {
            min_len,
            max_len,
            align: 1,
            goal,
            mode,
        }
    }

    /// The same request with another goal.
    pub const fn with_goal(mut self, goal: Option<u64>) -> Self {
        self.goal = goal;
        self
    }

    /// The same request with another mode.
    pub const fn with_mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// `len` blocks anywhere, unaligned.
    pub const fn any(len: u64) -> Self {
        Self {
            min_len: len,
            max_len: len,
            align: 1,
            goal: None,
            mode: Mode::Any,
        }
    }

    /// Between `min_len` and `max_len` blocks as close to `goal` as possible.
    pub const fn near(goal: u64, min_len: u64, max_len: u64) -> Self {
        Self {
            min_len,
            max_len,
            align: 1,
            goal: Some(goal),
            mode: Mode::Near,
        }
    }

    /// Between `min_len` and `max_len` blocks starting exactly at `goal`.
    pub const fn exact(goal: u64, min_len: u64, max_len: u64) -> Self {
        Self {
            min_len,
            max_len,
            align: 1,
            goal: Some(goal),
            mode: Mode::Exact,
        }
    }

    /// The same request with a length range.
    pub const fn with_len(mut self, min_len: u64, max_len: u64) -> Self {
        self.min_len = min_len;
        self.max_len = max_len;
        self
    }

    /// The same request with the start aligned to `align` blocks.
    pub const fn with_align(mut self, align: u64) -> Self {
        self.align = align;
        self
    }

    /// Checks the request against a volume of `total_blocks`.
    pub(crate) fn validate(&self, total_blocks: u64) -> Result<(), Error> {
        let bad = |reason| Err(Error::InvalidRequest { reason });
        if self.min_len == 0 {
            return bad("min_len is 0");
        }
        if self.min_len > self.max_len {
            return bad("min_len is greater than max_len");
        }
        if self.align == 0 {
            return bad("align is 0");
        }
        match (self.mode, self.goal) {
            (Mode::Exact, None) => bad("exact allocation without a goal"),
            (Mode::Exact, Some(g)) if g % self.align != 0 => bad("exact goal is not aligned"),
            (_, Some(g)) if g >= total_blocks => bad("goal is past the end of the volume"),
            _ => Ok(()),
        }
    }
}

/// `x` rounded up to a multiple of `align`, or `None` on overflow.
pub(crate) fn align_up(x: u64, align: u64) -> Option<u64> {
    debug_assert!(align > 0);
    match x % align {
        0 => Some(x),
        r => x.checked_add(align - r),
    }
}

/// `x` rounded down to a multiple of `align`.
pub(crate) fn align_down(x: u64, align: u64) -> u64 {
    debug_assert!(align > 0);
    x - x % align
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alignment_helpers() {
        assert_eq!(align_up(0, 8), Some(0));
        assert_eq!(align_up(1, 8), Some(8));
        assert_eq!(align_up(8, 8), Some(8));
        assert_eq!(align_up(u64::MAX, 8), None);
        assert_eq!(align_down(15, 8), 8);
        assert_eq!(align_up(7, 3), Some(9));
    }

    #[test]
    fn requests_are_validated() {
        assert!(AllocRequest::any(0).validate(10).is_err());
        assert!(AllocRequest::any(4).with_len(5, 4).validate(10).is_err());
        assert!(AllocRequest::any(4).with_align(0).validate(10).is_err());
        assert!(AllocRequest::exact(3, 1, 1)
            .with_align(2)
            .validate(10)
            .is_err());
        assert!(AllocRequest::near(10, 1, 1).validate(10).is_err());
        assert!(AllocRequest::near(9, 1, 1).validate(10).is_ok());
        assert_eq!(Extent::new(u64::MAX, 5).end(), u64::MAX);
    }
}
