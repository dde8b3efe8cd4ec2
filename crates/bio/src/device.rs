//! The `Device` trait every backend implements, and what a device says about itself.

use crate::file::FileDevice;
use crate::Error;
use std::fmt;

/// What kind of backing a device has.
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

/// A description of a device, for reports and for refusing the wrong target.
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
