//! The crate's error type: every variant names the device and what was asked of it.

use crate::Op;
use std::borrow::Cow;
use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in `stack-bio`.
///
/// I/O failures always carry the device and the byte offset, so a caller several layers
/// up can still say *where* a disk failed; every variant names its device
/// ([`Error::device`]). Ask [`Error::raw_os_error`] for the OS error behind any variant
/// and [`Error::is_unsupported`] whether the target refused a feature (`O_DIRECT`,
/// io_uring) rather than failed.
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
        /// What failed: [`Op::Read`], [`Op::Write`] or [`Op::Flush`].
        op: Op,
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
        /// The device's path or name: the device of the queue the bio was submitted
        /// to, or [`NOT_QUEUED`] for a bio dropped before it reached any queue.
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
    /// Starting writeback of a written range ([`crate::Device::start_writeback`]) failed.
    #[error("starting writeback of {len} bytes at offset {offset} on {device} failed: {source}")]
    Writeback {
        /// The device's path or name.
        device: String,
        /// Byte offset of the range.
        offset: u64,
        /// Length of the range in bytes.
        len: u64,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Dropping a range from the page cache, or checking what stayed cached
    /// ([`crate::Device::evict`]), failed.
    #[error(
        "evicting {len} bytes at offset {offset} of {device} from the page cache failed: {source}"
    )]
    Evict {
        /// The device's path or name.
        device: String,
        /// Byte offset of the range.
        offset: u64,
        /// Length of the range in bytes.
        len: u64,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A [`crate::QueueConfig`] (or other setting) that cannot work; nothing was started.
    #[error("queue on {device}: invalid setting `{field}`: {reason}")]
    Config {
        /// The device the queue was for.
        device: String,
        /// The setting at fault (a [`crate::QueueConfig`] field name).
        field: &'static str,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A [`crate::BufferPool`] that cannot work (no buffers, or an alignment that is
    /// not a power of two); nothing was allocated.
    #[error("buffer pool: invalid setting `{field}`: {reason}")]
    BufferPool {
        /// The argument at fault (`count` or `align`).
        field: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// A queue's submitter thread could not be started.
    #[error("queue on {device}: cannot start a submitter thread: {source}")]
    Spawn {
        /// The device the queue was for.
        device: String,
        /// What `std::thread::Builder::spawn` reported.
        #[source]
        source: io::Error,
    },
    /// [`crate::QueueConfig::io_uring`] on a device that cannot take it (not a
    /// [`crate::FileDevice`]); see [`Error::is_unsupported`].
    #[error("queue on {device}: io_uring is not available: {reason}")]
    UringUnsupported {
        /// The device the queue was for.
        device: String,
        /// Why not.
        reason: &'static str,
    },
    /// Setting up the io_uring failed (the kernel lacks it, forbids it (`ENOSYS`,
    /// `EPERM`), or is out of memory); see [`Error::is_unsupported`].
    #[error("queue on {device}: setting up io_uring failed: {source}")]
    UringSetup {
        /// The device the queue was for.
        device: String,
        /// What `io_uring_setup` (or `eventfd`) reported.
        #[source]
        source: io::Error,
    },
}

/// The device name in [`Error::Cancelled`] of a bio dropped before it reached a queue.
pub const NOT_QUEUED: &str = "(not queued)";

/// What [`Error::device`] returns for an error about no device ([`Error::BufferPool`]).
pub const NO_DEVICE: &str = "(no device)";

impl Error {
    /// The OS error behind this error, whatever the variant: the `errno` of a failed
    /// I/O, open, `O_DIRECT` refusal (`EINVAL`), thread spawn or io_uring setup. `None`
    /// for errors the crate found itself (misaligned, out of range, read-only, ...).
    ///
    /// ```
    /// use stack_bio::{Error, Op};
    /// let e = Error::Io {
    ///     device: "disk".into(),
    ///     offset: 4096,
    ///     len: 512,
    ///     op: Op::Read,
    ///     source: std::io::Error::from_raw_os_error(libc::EIO),
    /// };
    /// assert_eq!(e.raw_os_error(), Some(libc::EIO));
    /// assert_eq!(e.op(), Some(Op::Read));
    /// assert_eq!(e.device(), "disk");
    /// ```
    pub fn raw_os_error(&self) -> Option<i32> {
        self.io_source().and_then(io::Error::raw_os_error)
    }

    /// The `io::Error` this error wraps, if any.
    fn io_source(&self) -> Option<&io::Error> {
        match self {
            Error::Io { source, .. }
            | Error::Open { source, .. }
            | Error::DirectRefused { source, .. }
            | Error::Writeback { source, .. }
            | Error::Evict { source, .. }
            | Error::Spawn { source, .. }
            | Error::UringSetup { source, .. } => Some(source),
            _ => None,
        }
    }

    /// Whether the target refused a *feature* rather than failed: `O_DIRECT` refused at
    /// open ([`Error::DirectRefused`]), io_uring not available ([`Error::UringUnsupported`],
    /// or [`Error::UringSetup`] with `ENOSYS`, `EPERM` or `EOPNOTSUPP`), or an operation
    /// the device does not support (`EOPNOTSUPP`). The caller can fall back (open
    /// buffered, use the threads engine) instead of failing.
    ///
    /// ```
    /// use stack_bio::{FileDevice, OpenOptions};
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("vol");
    /// let opts = OpenOptions::new().direct(true).create_size_bytes(1 << 20);
    /// let dev = match FileDevice::open(&path, &opts) {
    ///     Err(e) if e.is_unsupported() => FileDevice::open(&path, &opts.direct(false))?,
    ///     other => other?,
    /// };
    /// # let _ = dev;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_unsupported(&self) -> bool {
        match self {
            Error::DirectRefused { .. } | Error::UringUnsupported { .. } => true,
            Error::UringSetup { source, .. } => matches!(
                source.raw_os_error(),
                Some(libc::ENOSYS | libc::EPERM | libc::EOPNOTSUPP)
            ),
            _ => self.raw_os_error() == Some(libc::EOPNOTSUPP),
        }
    }

    /// The device (path or name) the error is about; every variant names one, except
    /// [`Error::BufferPool`] ([`NO_DEVICE`]).
    pub fn device(&self) -> Cow<'_, str> {
        match self {
            Error::BufferPool { .. } => Cow::Borrowed(NO_DEVICE),
            Error::Io { device, .. }
            | Error::Misaligned { device, .. }
            | Error::OutOfRange { device, .. }
            | Error::ReadOnly { device }
            | Error::Cancelled { device, .. }
            | Error::CrashLogFull { device, .. }
            | Error::Writeback { device, .. }
            | Error::Evict { device, .. }
            | Error::Config { device, .. }
            | Error::Spawn { device, .. }
            | Error::UringUnsupported { device, .. }
            | Error::UringSetup { device, .. } => Cow::Borrowed(device),
            Error::Open { path, .. }
            | Error::DirectRefused { path, .. }
            | Error::BadOptions { path, .. } => path.to_string_lossy(),
        }
    }

    /// The operation of a failed I/O ([`Error::Io`]).
    pub fn op(&self) -> Option<Op> {
        match self {
            Error::Io { op, .. } => Some(*op),
            _ => None,
        }
    }

    /// A copy of this error for a second receiver (a [`crate::BioGroup`] keeps the first
    /// failure while the bio's own completion gets the original). The `io::Error`
    /// source is rebuilt from its OS error, or from its kind and message.
    pub(crate) fn duplicate(&self) -> Error {
        let io = |e: &io::Error| match e.raw_os_error() {
            Some(code) => io::Error::from_raw_os_error(code),
            None => io::Error::new(e.kind(), e.to_string()),
        };
        match self {
            Error::Io {
                device,
                offset,
                len,
                op,
                source,
            } => Error::Io {
                device: device.clone(),
                offset: *offset,
                len: *len,
                op: *op,
                source: io(source),
            },
            Error::Misaligned {
                device,
                what,
                value,
                align,
            } => Error::Misaligned {
                device: device.clone(),
                what,
                value: *value,
                align: *align,
            },
            Error::OutOfRange {
                device,
                offset,
                len,
                size,
            } => Error::OutOfRange {
                device: device.clone(),
                offset: *offset,
                len: *len,
                size: *size,
            },
            Error::Open { path, source } => Error::Open {
                path: path.clone(),
                source: io(source),
            },
            Error::DirectRefused { path, source } => Error::DirectRefused {
                path: path.clone(),
                source: io(source),
            },
            Error::BadOptions { path, reason } => Error::BadOptions {
                path: path.clone(),
                reason,
            },
            Error::ReadOnly { device } => Error::ReadOnly {
                device: device.clone(),
            },
            Error::Cancelled { device, offset } => Error::Cancelled {
                device: device.clone(),
                offset: *offset,
            },
            Error::CrashLogFull {
                device,
                limit_bytes,
            } => Error::CrashLogFull {
                device: device.clone(),
                limit_bytes: *limit_bytes,
            },
            Error::Writeback {
                device,
                offset,
                len,
                source,
            } => Error::Writeback {
                device: device.clone(),
                offset: *offset,
                len: *len,
                source: io(source),
            },
            Error::Evict {
                device,
                offset,
                len,
                source,
            } => Error::Evict {
                device: device.clone(),
                offset: *offset,
                len: *len,
                source: io(source),
            },
            Error::Config {
                device,
                field,
                reason,
            } => Error::Config {
                device: device.clone(),
                field,
                reason,
            },
            Error::BufferPool { field, reason } => Error::BufferPool {
                field,
                reason: reason.clone(),
            },
            Error::Spawn { device, source } => Error::Spawn {
                device: device.clone(),
                source: io(source),
            },
            Error::UringUnsupported { device, reason } => Error::UringUnsupported {
                device: device.clone(),
                reason,
            },
            Error::UringSetup { device, source } => Error::UringSetup {
                device: device.clone(),
                source: io(source),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_os_error_and_is_unsupported_see_an_o_direct_refusal() {
        let e = Error::DirectRefused {
            path: "/mnt/x".into(),
            source: io::Error::from_raw_os_error(libc::EINVAL),
        };
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
        assert!(e.is_unsupported());
        assert_eq!(e.device(), "/mnt/x");
        let eio = Error::Io {
            device: "d".into(),
            offset: 0,
            len: 1,
            op: Op::Write,
            source: io::Error::from_raw_os_error(libc::EIO),
        };
        assert!(!eio.is_unsupported());
        let dup = eio.duplicate();
        assert_eq!(dup.raw_os_error(), Some(libc::EIO));
        assert_eq!(dup.to_string(), eio.to_string());
    }
}
