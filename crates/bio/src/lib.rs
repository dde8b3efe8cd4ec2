//! Devices and an order-keeping block-I/O submission queue.
//!
//! The bottom of the `stack` I/O path. A [`Device`] is anything with positional reads
//! and writes and a fixed size: a regular file or raw block device ([`FileDevice`],
//! optionally `O_DIRECT`), memory ([`MemDevice`]), or a fault-injecting wrapper
//! ([`FaultyDevice`]) that fails, corrupts, tears, drops, misdirects or wraps writes and
//! models what a crash keeps.
//!
//! ```
//! use stack_bio::{Device, MemDevice};
//!
//! let dev = MemDevice::new(1 << 20);
//! dev.write_at(b"hello", 4096)?;
//! let mut back = [0u8; 5];
//! dev.read_at(&mut back, 4096)?;
//! assert_eq!(&back, b"hello");
//! # Ok::<(), stack_bio::Error>(())
//! ```

#![deny(missing_docs)]

mod bio;
mod buf;
mod crash;
mod device;
mod error;
mod faulty;
mod file;
mod mem;
mod queue;
mod sched;
mod stats;
mod sys;

pub use bio::{Bio, BioBuf, BioResult, OnComplete, Op};
pub use buf::{AlignedBuf, BufferPool, PooledBuf};
pub use crash::{CrashMode, CRASH_LOG_LIMIT_BYTES};
pub use device::{Device, DeviceInfo, DeviceKind};
pub use error::Error;
pub use faulty::FaultyDevice;
pub use file::{FileDevice, OpenOptions, FILE_LOGICAL_BLOCK_SIZE};
pub use mem::{MemDevice, MEM_LOGICAL_BLOCK_SIZE};
pub use queue::{EndIo, EndIoJob, InlineEndIo, QueueConfig, SubmitQueue};
pub use stats::{QueueStats, SeqCounter};
