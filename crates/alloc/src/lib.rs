//! An extent allocator with allocation groups and busy extents, behind a rescuer-backed
//! workqueue.
//!
//! The volume's blocks are split into **allocation groups**, each with its own lock and
//! its free space indexed twice, as XFS does with its bnobt and cntbt: by start block (for
//! "near block B" and exact lookups) and by length (for "at least N blocks"), so both are
//! logarithmic. Requests carry a length range, an alignment, a goal and a [`Mode`];
//! the allocator returns the longest extent it can up to `max_len` (for [`Mode::Near`],
//! the longest piece of the closest free extent holding `min_len`), never below
//! `min_len`, and [`Error::NoSpace`] says how large the largest free extent is.
//!
//! Freed extents stay **busy** until the generation that frees them commits, so a crash
//! never finds new data in blocks that durable metadata still points to. [`Stream`]s keep
//! appending writers contiguous. The free space can be persisted ([`Allocator::encode`])
//! or rebuilt from the used extents ([`Allocator::from_used`]). [`AllocQueue`] runs
//! allocations on a rescuer-backed workqueue, the XFS seed, with batches per hand-off.
//!
//! ```
//! use stack_alloc::{AllocRequest, Allocator, Extent};
//!
//! let a = Allocator::new(1 << 20, 1 << 16)?; // 1 Mi blocks in 16 groups
//! let e = a.alloc(&AllocRequest::near(5000, 8, 64))?;
//! assert_eq!(e, Extent::new(5000, 64));
//! a.free(e, 7)?; // freed by generation 7: busy, not reusable yet
//! assert!(a.alloc(&AllocRequest::exact(5000, 1, 1)).is_err());
//! a.commit(7); // generation 7 is durable
//! assert_eq!(a.alloc(&AllocRequest::exact(5000, 1, 1))?, Extent::new(5000, 1));
//! a.check()?;
//! # Ok::<(), stack_alloc::Error>(())
//! ```
#![forbid(unsafe_code)]

mod allocator;
mod error;
mod extent;
mod group;
mod persist;
mod queue;
mod stream;

pub use allocator::{Allocator, MAX_GROUPS};
pub use error::Error;
pub use extent::{AllocRequest, Extent, Mode};
pub use persist::{FORMAT_VERSION, MAGIC};
pub use queue::{AllocQueue, AllocQueueBuilder, QueueStream, DEFAULT_ALLOC_QUEUE_NAME, MAX_BATCH};
pub use stream::{Stream, DEFAULT_STREAM_RESERVE_BLOCKS};
