//! `stack-volume`, the library behind `stackctl`: a crash-safe volume on a file or raw block device, and
//! the write/verify pipelines that wire the four `stack` crates into one storage stack.
//!
//! A [`Volume`] holds named objects: user data (files, stdin) or a deterministic
//! [pattern] stream. Every data block has a checksum bound to its physical
//! address and salted with the volume UUID, stored apart from the data in checksum
//! blocks that the object table points to, so flipped bits, lost (stale) and misdirected
//! writes are all caught. Metadata is written copy-on-write and committed by "write the
//! table, flush, write the older superblock slot, flush": a crash at any instant leaves
//! the last commit intact. The layout is written down byte by byte in `docs/FORMAT.md`.
//!
//! ```
//! use std::sync::Arc;
//! use stack_volume::{FormatOptions, OpenOptions, Volume, VerifyOptions, WriteOptions};
//!
//! let device = Arc::new(stack_bio::MemDevice::new(4 << 20));
//! let mut vol = Volume::format_device(device.clone(), &FormatOptions::default())?;
//! vol.write("hello", &mut &b"hello, world"[..], &WriteOptions::default())?;
//! vol.write_pattern("burn-in", 1 << 20, 42, &WriteOptions::default())?;
//! drop(vol);
//!
//! let vol = Volume::open_device(device, &OpenOptions::default())?;
//! let mut out = Vec::new();
//! vol.read("hello", &mut out)?;
//! assert_eq!(out, b"hello, world");
//! assert!(vol.verify(&VerifyOptions::default())?.clean());
//! # Ok::<(), stack_volume::Error>(())
//! ```

#![forbid(unsafe_code)]

pub mod ack;
mod error;
pub mod findings;
pub mod format;
pub mod html;
pub mod identity;
pub mod map;
mod options;
pub mod pattern;
pub mod pipeline;
pub mod probe;
mod report;
pub mod smart;
mod verdict;
mod volume;

pub use ack::{AckedCheck, AckedObject, CommitFn, CommitRecord, LostFlushes, LostHow, LostObject};
pub use error::{Error, NoSpaceOutcome};
pub use format::ObjectKind;
pub use options::{
    uuid_string, CanaryFailure, DamageFn, DeviceSummary, FormatOptions, LockWait, ObjectInfo,
    OpenOptions, Progress, ProgressFn, VerifyOptions, VolumeInfo, WriteOptions, WriteReport,
    DEFAULT_COMMIT_EVERY_BYTES, DEFAULT_COMMIT_INTERVAL,
};
pub use report::{
    Cause, DamagedRange, MetadataDamage, Source, SuperblockState, VerifyReport, MAX_LISTED_RANGES,
};
pub use verdict::{judge, Verdict};
pub use volume::{
    device_read_source, open_raw_device, FileId, Holder, LockMode, Volume, VolumeLock,
    MIN_FREE_BLOCKS,
};
