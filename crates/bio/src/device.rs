//! The `Device` trait every backend implements, and what a device says about itself.

use crate::file::FileDevice;
use crate::Error;
use std::fmt;

/// What kind of backing a device has.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    /// A regular file.
    File,
    /// A raw block device (`/dev/sdb`, `/dev/loop0`, ...).
    Block,
    /// Memory ([`crate::MemDevice`], or a wrapper around one).
    Memory,
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeviceKind::File => "file",
            DeviceKind::Block => "block device",
            DeviceKind::Memory => "memory",
        })
    }
}

/// What holds a device's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backing {
    /// A drive: a block device, or a regular file on a filesystem that stores to one.
    Media,
    /// Memory only: a file on tmpfs or ramfs (by its `statfs` magic), a [`crate::MemDevice`].
    /// There is no drive behind it to check.
    Memory,
}

impl fmt::Display for Backing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backing::Media => "media",
            Backing::Memory => "memory",
        })
    }
}

/// Where a device's reads come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadPath {
    /// `O_DIRECT`: from the drive, past the page cache.
    Direct,
    /// Buffered, but every range is dropped from the page cache before it is read and the
    /// drop is checked ([`Device::evict`]): from the drive.
    Evicted,
    /// The device is memory: there is no drive to read.
    Memory,
    /// Buffered: a read may be served by the page cache. `stuck` says why an eviction
    /// did not take, when the device was asked to evict (the first range that stayed
    /// cached); `None` when it was opened buffered without eviction.
    PageCache {
        /// Why eviction failed, when it was asked for.
        stuck: Option<String>,
    },
}

impl ReadPath {
    /// `"direct"`, `"evicted"`, `"memory"` or `"page-cache"`.
    pub fn name(&self) -> &'static str {
        match self {
            ReadPath::Direct => "direct",
            ReadPath::Evicted => "evicted",
            ReadPath::Memory => "memory",
            ReadPath::PageCache { .. } => "page-cache",
        }
    }
}

/// What [`Device::evict`] left of a range in the page cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Residency {
    /// The device reads past the page cache (`O_DIRECT`): nothing to evict.
    Direct,
    /// The device is memory: nothing to evict, and no drive below.
    Memory,
    /// None of the range is cached: the next read of it comes from the drive.
    Evicted,
    /// Part of the range stayed cached (mapped or locked by some process, dirty, under
    /// writeback): a read of it may be served from memory.
    Cached {
        /// Bytes of the range still cached (whole pages).
        cached_bytes: u64,
        /// Of those, dirty (0 where only `mincore` could be asked).
        dirty_bytes: u64,
    },
}

/// A description of a device, for reports and for refusing the wrong target.
///
/// A [`Device`] of your own builds one with [`DeviceInfo::new`] and the `with_*`
/// methods (fields may be added in later versions, so there is no struct literal
/// outside this crate).
///
/// ```
/// use stack_bio::{Backing, DeviceInfo, DeviceKind, ReadPath};
/// let info = DeviceInfo::new("sparse", DeviceKind::Memory, 1 << 30, 512);
/// assert_eq!(info.backing, Backing::Memory);
/// assert_eq!(info.reads, ReadPath::Memory);
/// let file = DeviceInfo::new("/var/vol", DeviceKind::File, 1 << 30, 4096).with_direct(true);
/// assert_eq!((file.backing, file.reads), (Backing::Media, ReadPath::Direct));
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// The path it was opened at, or a name for in-memory devices.
    pub path: String,
    /// File, block device or memory.
    pub kind: DeviceKind,
    /// Usable size in bytes.
    pub size_bytes: u64,
    /// The unit of direct I/O (and of torn writes): 512 or 4096 for disks.
    pub logical_block_size: u32,
    /// Block devices: `device/model` from sysfs, when present.
    pub model: Option<String>,
    /// Block devices: `device/serial` from sysfs, when present.
    pub serial: Option<String>,
    /// Opened with `O_DIRECT`.
    pub direct: bool,
    /// Opened read-only.
    pub read_only: bool,
    /// A drive or memory.
    pub backing: Backing,
    /// Where reads come from now (a device asked to evict turns to
    /// [`ReadPath::PageCache`] once an eviction did not take).
    pub reads: ReadPath,
}

impl DeviceInfo {
    /// A device at `path` (or named so) of `kind`, `size_bytes` long, with
    /// `logical_block_size`; buffered, writable, no model or serial. Memory is backed
    /// by memory and read as such; anything else is on media and read through the page
    /// cache (without eviction).
    pub fn new(
        path: impl Into<String>,
        kind: DeviceKind,
        size_bytes: u64,
        logical_block_size: u32,
    ) -> Self {
        let memory = kind == DeviceKind::Memory;
        DeviceInfo {
            path: path.into(),
            kind,
            size_bytes,
            logical_block_size,
            model: None,
            serial: None,
            direct: false,
            read_only: false,
            backing: if memory {
                Backing::Memory
            } else {
                Backing::Media
            },
            reads: if memory {
                ReadPath::Memory
            } else {
                ReadPath::PageCache { stuck: None }
            },
        }
    }

    /// Sets [`DeviceInfo::direct`] (and, on media, [`DeviceInfo::reads`] to
    /// [`ReadPath::Direct`]).
    pub fn with_direct(mut self, direct: bool) -> Self {
        self.direct = direct;
        if direct && self.backing == Backing::Media {
            self.reads = ReadPath::Direct;
        }
        self
    }

    /// Sets [`DeviceInfo::read_only`].
    pub fn with_read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// Sets [`DeviceInfo::backing`].
    pub fn with_backing(mut self, backing: Backing) -> Self {
        self.backing = backing;
        self
    }

    /// Sets [`DeviceInfo::reads`].
    pub fn with_reads(mut self, reads: ReadPath) -> Self {
        self.reads = reads;
        self
    }

    /// Sets [`DeviceInfo::model`] and [`DeviceInfo::serial`].
    pub fn with_identity(mut self, model: Option<String>, serial: Option<String>) -> Self {
        self.model = model;
        self.serial = serial;
        self
    }
}

/// Positional I/O on something with a fixed size: a file, a block device, memory.
///
/// Every call transfers the whole buffer or returns an error naming the device and
/// offset; there are no short reads or writes. Implementations are shared between
/// threads (`&self`), so concurrent calls on disjoint ranges must be safe.
pub trait Device: Send + Sync + fmt::Debug {
    /// Fills `buf` from `offset`.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<(), Error>;

    /// Writes all of `buf` at `offset`.
    fn write_at(&self, buf: &[u8], offset: u64) -> Result<(), Error>;

    /// Fills `bufs` one after another from `offset` (one `preadv` where supported).
    fn readv_at(&self, bufs: &mut [&mut [u8]], offset: u64) -> Result<(), Error> {
        let mut at = offset;
        for buf in bufs.iter_mut() {
            self.read_at(buf, at)?;
            at += buf.len() as u64;
        }
        Ok(())
    }

    /// Writes `bufs` one after another at `offset` (one `pwritev` where supported).
    fn writev_at(&self, bufs: &[&[u8]], offset: u64) -> Result<(), Error> {
        let mut at = offset;
        for buf in bufs {
            self.write_at(buf, at)?;
            at += buf.len() as u64;
        }
        Ok(())
    }

    /// Makes every completed write durable (`fdatasync` for files and block devices).
    fn flush(&self) -> Result<(), Error>;

    /// A hint after a completed write: start writing `offset..offset + len` from the
    /// page cache to the media now, without waiting (`sync_file_range` with
    /// `SYNC_FILE_RANGE_WRITE` for a file or block device opened without `O_DIRECT`).
    /// The device then works while the page cache is still being filled, a later
    /// [`Device::flush`] has less to wait for, and dirty memory stays bounded. Not a
    /// durability promise: only `flush` is. The default does nothing (memory, direct
    /// I/O, wrappers).
    fn start_writeback(&self, offset: u64, len: u64) -> Result<(), Error> {
        let _ = (offset, len);
        Ok(())
    }

    /// Drops `offset..offset + len` from the page cache, so the next buffered read of it
    /// comes from the drive, and checks that it took: what is still cached of the range
    /// afterwards. The default (memory, wrappers, test devices) has no page cache:
    /// [`Residency::Memory`].
    fn evict(&self, offset: u64, len: u64) -> Result<Residency, Error> {
        let _ = (offset, len);
        Ok(Residency::Memory)
    }

    /// Size in bytes.
    fn size_bytes(&self) -> u64;

    /// Logical block size in bytes (a power of two).
    fn logical_block_size(&self) -> u32;

    /// A description of the device.
    fn info(&self) -> DeviceInfo;

    /// The [`FileDevice`] itself, for a queue that issues to its file descriptor through
    /// io_uring ([`crate::QueueConfig::io_uring`]); `None` (the default) for every other
    /// device, wrappers included, whose I/O must go through their own methods.
    fn as_file_device(&self) -> Option<&FileDevice> {
        None
    }

    /// The recorder of a timing wrapper ([`crate::TimedDevice`]) that hands its queue the
    /// inner file through [`Device::as_file_device`]: an engine that issues to that file
    /// directly (io_uring) times each I/O into it, so the wrapper still sees every I/O.
    /// `None` (the default) for every other device.
    fn io_recorder(&self) -> Option<&crate::IoRecorder> {
        None
    }
}

/// Refuses an I/O of `len` bytes at `offset` that does not fit in `size` bytes.
pub(crate) fn check_range(device: &str, offset: u64, len: usize, size: u64) -> Result<(), Error> {
    let fits = offset
        .checked_add(len as u64)
        .is_some_and(|end| end <= size);
    if fits {
        Ok(())
    } else {
        Err(Error::OutOfRange {
            device: device.to_owned(),
            offset,
            len,
            size,
        })
    }
}

/// Total length of a set of buffers.
pub(crate) fn total_len<B: AsRef<[u8]>>(bufs: &[B]) -> usize {
    bufs.iter().map(|b| b.as_ref().len()).sum()
}
