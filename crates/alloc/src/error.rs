//! The crate's error type: every failure carries the numbers a caller needs to act.

use crate::Extent;

/// Everything the allocator can refuse, with the values that explain why.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No free extent of at least `min_len` blocks (after alignment) exists.
    #[error("no space: need at least {min_len} blocks, largest free extent is {largest_free}")]
    NoSpace {
        /// The smallest length the request would accept.
        min_len: u64,
        /// The largest free extent at the time of the failure, in blocks.
        largest_free: u64,
    },
    /// The request itself is malformed (zero length, `min_len > max_len`, ...).
    #[error("invalid allocation request: {reason}")]
    InvalidRequest {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The volume geometry given to a constructor is unusable.
    #[error("invalid geometry: {total_blocks} blocks in groups of {group_blocks}: {reason}")]
    InvalidGeometry {
        /// Total blocks asked for.
        total_blocks: u64,
        /// Blocks per allocation group asked for.
        group_blocks: u64,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The extent is empty or reaches past the end of the volume.
    #[error("extent {extent:?} is empty or outside the volume of {total_blocks} blocks")]
    OutOfRange {
        /// The offending extent.
        extent: Extent,
        /// Blocks in the volume.
        total_blocks: u64,
    },
    /// `free` of blocks that are not in use: a double free, or a free of busy blocks.
    #[error("extent {extent:?} is not in use: block {block} is already free or busy")]
    NotAllocated {
        /// The extent passed to `free`.
        extent: Extent,
        /// The first block found not in use.
        block: u64,
    },
    /// `mark_used` (or a rebuild) of blocks that are not free: in use, busy or listed twice.
    #[error("extent {extent:?} is not free: block {block} is in use or busy")]
    NotFree {
        /// The extent passed to `mark_used`.
        extent: Extent,
        /// The first block found not free.
        block: u64,
    },
    /// Persisted bytes are malformed: `field` at byte `offset` is wrong.
    #[error("corrupt free-space image at byte {offset}, field `{field}`: {reason}")]
    Corrupt {
        /// Byte offset of the field inside the image.
        offset: usize,
        /// The field's name, as in the format description.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Persisted bytes do not match their checksum.
    #[error(
        "free-space image checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"
    )]
    Checksum {
        /// The checksum stored in the image.
        stored: u32,
        /// The checksum of the bytes read.
        computed: u32,
    },
    /// `check()` found a broken invariant (a bug, or memory corruption).
    #[error("allocator invariant broken in group {group}: {what}")]
    Inconsistent {
        /// The allocation group's index.
        group: u64,
        /// What does not hold.
        what: String,
    },
    /// The [`AllocQueue`](crate::AllocQueue)'s workqueue could not run the allocation
    /// (shut down, the work panicked, a thread or setting refused), with its typed
    /// error.
    #[error("allocation queue: {0}")]
    Queue(#[from] stack_async_thread::Error),
}
