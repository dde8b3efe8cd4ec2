//! The crate's error type: every variant names the device and what was asked of it.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in `stack-bio`.
///
/// I/O failures always carry the device and the byte offset, so a caller several layers
/// up can still say *where* a disk failed.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The operating system (or a fault injector) failed an I/O.
    #[error("{op} of {len} bytes at offset {offset} on {device} failed: {source}")]
    Io {
        /// The device's path or name.
        device: String,
        /// Byte offset of the failed I/O.
        offset: u64,
        /// Length of the failed I/O in bytes.
        len: usize,
        /// `"read"`, `"write"` or `"flush"`.
        op: &'static str,
        /// The underlying error (`EIO` for injected faults).
        #[source]
        source: io::Error,
    },
    /// A direct-I/O request whose buffer address, offset or length is not a multiple of
    /// the device's logical block size.
    #[error("direct I/O on {device}: {what} {value:#x} is not aligned to {align} bytes")]
    Misaligned {
        /// The device's path or name.
        device: String,
        /// `"buffer address"`, `"offset"` or `"length"`.
        what: &'static str,
        /// The misaligned value.
        value: u64,
        /// The required alignment in bytes.
        align: u64,
    },
    /// An I/O that reaches past the end of the device.
    #[error("I/O of {len} bytes at offset {offset} is past the end of {device} ({size} bytes)")]
    OutOfRange {
        /// The device's path or name.
        device: String,
        /// Byte offset of the I/O.
        offset: u64,
        /// Length of the I/O in bytes.
        len: usize,
        /// Size of the device in bytes.
        size: u64,
    },
    /// Opening (or creating, or sizing) a file or block device failed.
    #[error("cannot open {path}: {source}")]
    Open {
        /// The path that was opened.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The filesystem (or device) refused `O_DIRECT` at open (`EINVAL`).
    #[error("cannot open {path} with O_DIRECT: the filesystem refused it ({source})")]
    DirectRefused {
        /// The path that was opened.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Options that contradict each other or the target (e.g. `create_size_bytes` on a
    /// block device, or together with `read_only`).
    #[error("cannot open {path}: {reason}")]
    BadOptions {
        /// The path that was opened.
        path: PathBuf,
        /// What is wrong.
        reason: &'static str,
    },
    /// A write on a device opened read-only.
    #[error("{device} is open read-only")]
    ReadOnly {
        /// The device's path or name.
        device: String,
    },
    /// A bio that was dropped before it was issued (its queue shut down); its completion
    /// still fires, with this error.
    #[error("bio at offset {offset} on {device} was cancelled before it was issued")]
    Cancelled {
        /// The device's path or name (empty when the bio never reached a queue).
        device: String,
        /// Byte offset of the bio.
        offset: u64,
    },
    /// The crash model of a `FaultyDevice` holds more unflushed bytes than its bound.
    #[error("crash model of {device}: more than {limit_bytes} unflushed bytes; flush more often")]
    CrashLogFull {
        /// The device's name.
        device: String,
        /// The bound on unflushed bytes.
        limit_bytes: u64,
    },
}

impl Error {
    /// The OS error of an [`Error::Io`], if this is one.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}
