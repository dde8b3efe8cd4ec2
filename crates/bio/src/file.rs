//! `FileDevice`: regular files and raw block devices, buffered or `O_DIRECT`.

use crate::device::{check_range, total_len};
use crate::{sys, Backing, Device, DeviceInfo, DeviceKind, Error, Op, ReadPath, Residency};
use std::fs::File;
use std::io::{self, IoSlice, IoSliceMut};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

mod cache;

/// Logical block size reported for regular files. Direct I/O on common filesystems
/// needs at most page alignment, and filesystems allocate in 4 KiB blocks.
pub const FILE_LOGICAL_BLOCK_SIZE: u32 = 4096;

/// How many `EINTR`s in a row one transfer tolerates before giving up.
const MAX_INTERRUPTS: u32 = 64;

/// How to open a [`FileDevice`].
///
/// Start from [`OpenOptions::new`] (everything off) and chain the setters; fields may
/// be added in later versions, so there is no struct literal outside this crate.
///
/// ```
/// use stack_bio::OpenOptions;
/// let opts = OpenOptions::new().direct(true).create_size_bytes(64 << 20);
/// assert!(opts.direct && !opts.read_only);
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenOptions {
    /// Open with `O_DIRECT`: buffers, offsets and lengths must then be multiples of the
    /// logical block size (see [`crate::AlignedBuf`]).
    pub direct: bool,
    /// Open read-only; writes fail with [`Error::ReadOnly`].
    pub read_only: bool,
    /// Regular files only: create the file if missing and extend it to this size if it
    /// is shorter (never shrinks it).
    pub create_size_bytes: Option<u64>,
    /// Without `direct`, on media: make every read come from the drive anyway. Open
    /// writes back the dirty pages once (`fdatasync`, also read-only) and turns off
    /// readahead (`POSIX_FADV_RANDOM`), and each read first drops its range from the
    /// page cache and checks the drop took ([`Device::evict`]). A range that stays
    /// cached is still read, and [`DeviceInfo::reads`] turns to
    /// [`ReadPath::PageCache`] naming it. Ignored with `direct` and on memory.
    pub evict_reads: bool,
}

impl OpenOptions {
    /// Buffered, read-write, no create, no eviction: the same as `default()`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`OpenOptions::direct`].
    pub fn direct(mut self, on: bool) -> Self {
        self.direct = on;
        self
    }

    /// Sets [`OpenOptions::read_only`].
    pub fn read_only(mut self, on: bool) -> Self {
        self.read_only = on;
        self
    }

    /// Sets [`OpenOptions::create_size_bytes`] to `Some(bytes)`.
    pub fn create_size_bytes(mut self, bytes: u64) -> Self {
        self.create_size_bytes = Some(bytes);
        self
    }

    /// Sets [`OpenOptions::create_size_bytes`] (`None`: never create or extend).
    pub fn create(mut self, size_bytes: Option<u64>) -> Self {
        self.create_size_bytes = size_bytes;
        self
    }

    /// Sets [`OpenOptions::evict_reads`].
    pub fn evict_reads(mut self, on: bool) -> Self {
        self.evict_reads = on;
        self
    }
}

/// A regular file or raw block device used as a device.
///
/// Its reads, writes and flushes are synchronous system calls: on a worker of a
/// `stack-async-thread` pool, call them inside [`stack_async_thread::blocking`] (a
/// debug build warns once per call site and thread otherwise; see
/// [`stack_async_thread::warn_unmarked_blocking`]). Through a [`crate::SubmitQueue`]
/// they run on the queue's own submitter threads instead.
///
/// A block device's size and logical block size come from the kernel (`BLKGETSIZE64`,
/// `BLKSSZGET`); a regular file's size is its length at open and its logical block size
/// is [`FILE_LOGICAL_BLOCK_SIZE`]. The size is fixed: I/O past it is refused.
#[derive(Debug)]
pub struct FileDevice {
    file: File,
    info: DeviceInfo,
    /// Reads evict their range first (`OpenOptions::evict_reads` on buffered media).
    evict_reads: bool,
    /// The first range an eviction could not drop, said as a sentence.
    stuck: Mutex<Option<String>>,
    /// Block devices: the largest I/O the kernel hands the driver whole (see
    /// [`FileDevice::max_unsplit_bytes`]); `None` for regular files or when sysfs does
    /// not say.
    max_unsplit_bytes: Option<usize>,
}

impl FileDevice {
    /// Opens `path` as a device.
    pub fn open(path: &Path, opts: &OpenOptions) -> Result<Self, Error> {
        let open_err = |source: io::Error| Error::Open {
            path: path.to_path_buf(),
            source,
        };
        if opts.read_only && opts.create_size_bytes.is_some() {
            return Err(Error::BadOptions {
                path: path.to_path_buf(),
                reason: "create_size_bytes with read_only",
            });
        }
        let mut std_opts = std::fs::OpenOptions::new();
        std_opts
            .read(true)
            .write(!opts.read_only)
            .create(opts.create_size_bytes.is_some());
        if opts.direct {
            std_opts.custom_flags(libc::O_DIRECT);
        }
        let file = std_opts.open(path).map_err(|source| {
            // A filesystem without direct I/O refuses the flag itself at open.
            if opts.direct && source.raw_os_error() == Some(libc::EINVAL) {
                Error::DirectRefused {
                    path: path.to_path_buf(),
                    source,
                }
            } else {
                open_err(source)
            }
        })?;
        let meta = file.metadata().map_err(open_err)?;
        let file_type = meta.file_type();
        let mut max_unsplit_bytes = None;
        let (kind, size_bytes, logical_block_size, model, serial) = if file_type.is_block_device() {
            if opts.create_size_bytes.is_some() {
                return Err(Error::BadOptions {
                    path: path.to_path_buf(),
                    reason: "create_size_bytes on a block device",
                });
            }
            let size = sys::block_size_bytes(&file).map_err(open_err)?;
            let lbs = sys::block_logical_size(&file).map_err(open_err)?;
            let (model, serial) = sysfs_identity(meta.rdev());
            max_unsplit_bytes = sysfs_unsplit_bytes(meta.rdev(), lbs);
            (DeviceKind::Block, size, lbs, model, serial)
        } else if file_type.is_file() {
            let mut size = meta.len();
            if let Some(want) = opts.create_size_bytes {
                if size < want {
                    file.set_len(want).map_err(open_err)?;
                    size = want;
                }
            }
            (DeviceKind::File, size, FILE_LOGICAL_BLOCK_SIZE, None, None)
        } else {
            return Err(Error::BadOptions {
                path: path.to_path_buf(),
                reason: "not a regular file or block device",
            });
        };
        assert!(logical_block_size.is_power_of_two());
        // A block device's fstatfs names the filesystem of /dev (devtmpfs, a tmpfs), not
        // what holds the device: only a regular file's filesystem says "memory".
        let backing = if kind == DeviceKind::File {
            match sys::fs_magic(&file).map_err(open_err)? {
                sys::TMPFS_MAGIC | sys::RAMFS_MAGIC => Backing::Memory,
                _ => Backing::Media,
            }
        } else {
            Backing::Media
        };
        let evict_reads = opts.evict_reads && !opts.direct && backing == Backing::Media;
        if evict_reads {
            // Dirty pages cannot be dropped: write them back once, here. Without
            // readahead a read caches only what it asked for, so a range is never
            // cached by a neighbour's read before its own eviction.
            file.sync_data().map_err(open_err)?;
            sys::fadvise(&file, 0, 0, libc::POSIX_FADV_RANDOM).map_err(open_err)?;
        }
        let reads = if opts.direct {
            ReadPath::Direct
        } else if backing == Backing::Memory {
            ReadPath::Memory
        } else if evict_reads {
            ReadPath::Evicted
        } else {
            ReadPath::PageCache { stuck: None }
        };
        let info = DeviceInfo {
            path: path.display().to_string(),
            kind,
            size_bytes,
            logical_block_size,
            model,
            serial,
            direct: opts.direct,
            read_only: opts.read_only,
            backing,
            reads,
        };
        Ok(Self {
            file,
            info,
            evict_reads,
            stuck: Mutex::new(None),
            max_unsplit_bytes,
        })
    }

    /// The open file, e.g. to map it read-only for verification.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Block devices: the largest I/O the kernel passes to the driver without splitting
    /// it, for a buffer whose pages are not physically contiguous: `max_sectors_kb`, and
    /// `max_segments` pages (a loop device: 128 segments, so 512 KiB). The io_uring
    /// engine issues larger runs as several parts of at most this: a split of a
    /// non-blocking (`REQ_NOWAIT`) I/O fails with `EAGAIN`, and io_uring then hands the
    /// whole I/O to one of its worker threads (every 1 MiB write to a loop device went
    /// that way, `docs/PERFORMANCE.md` round 8).
    pub(crate) fn max_unsplit_bytes(&self) -> Option<usize> {
        self.max_unsplit_bytes
    }

    /// Tests: pretend the kernel splits I/Os above `bytes` (a regular file has no limit).
    #[cfg(test)]
    pub(crate) fn set_max_unsplit_bytes(&mut self, bytes: Option<usize>) {
        self.max_unsplit_bytes = bytes;
    }

    fn name(&self) -> &str {
        &self.info.path
    }

    fn io_err(&self, op: Op, offset: u64, len: usize, source: io::Error) -> Error {
        Error::Io {
            device: self.name().to_owned(),
            offset,
            len,
            op,
            source,
        }
    }

    /// Range, read-only and (for `O_DIRECT`) alignment checks before a transfer.
    pub(crate) fn check(
        &self,
        offset: u64,
        addrs_lens: impl Iterator<Item = (usize, usize)>,
        len: usize,
        write: bool,
    ) -> Result<(), Error> {
        if write && self.info.read_only {
            return Err(Error::ReadOnly {
                device: self.name().to_owned(),
            });
        }
        check_range(self.name(), offset, len, self.info.size_bytes)?;
        if self.info.direct {
            let align = u64::from(self.info.logical_block_size);
            let misaligned = |what, value: u64| Error::Misaligned {
                device: self.name().to_owned(),
                what,
                value,
                align,
            };
            if offset % align != 0 {
                return Err(misaligned("offset", offset));
            }
            for (addr, buf_len) in addrs_lens {
                if addr as u64 % align != 0 {
                    return Err(misaligned("buffer address", addr as u64));
                }
                if buf_len as u64 % align != 0 {
                    return Err(misaligned("length", buf_len as u64));
                }
            }
        }
        Ok(())
    }
}

impl Device for FileDevice {
    fn as_file_device(&self) -> Option<&FileDevice> {
        Some(self)
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<(), Error> {
        stack_async_thread::warn_unmarked_blocking("FileDevice::read_at");
        self.readv_at(&mut [buf], offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> Result<(), Error> {
        stack_async_thread::warn_unmarked_blocking("FileDevice::write_at");
        self.writev_at(&[buf], offset)
    }

    fn readv_at(&self, bufs: &mut [&mut [u8]], offset: u64) -> Result<(), Error> {
        stack_async_thread::warn_unmarked_blocking("FileDevice::readv_at");
        let len = total_len(bufs);
        self.check(
            offset,
            bufs.iter().map(|b| (b.as_ptr() as usize, b.len())),
            len,
            false,
        )?;
        if self.evict_reads && len > 0 {
            if let Residency::Cached {
                cached_bytes,
                dirty_bytes,
            } = self.evict(offset, len as u64)?
            {
                // Read anyway; the device now says its reads may come from the cache.
                self.note_stuck(offset, len as u64, cached_bytes, dirty_bytes);
            }
        }
        let mut slices: Vec<IoSliceMut<'_>> = bufs.iter_mut().map(|b| IoSliceMut::new(b)).collect();
        let mut slices = &mut slices[..];
        let mut done = 0usize;
        let mut interrupts = 0;
        while done < len {
            let at = offset + done as u64;
            match sys::preadv(&self.file, slices, at) {
                Ok(0) => {
                    let eof = io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("end of file after {done} bytes"),
                    );
                    return Err(self.io_err(Op::Read, offset, len, eof));
                }
                Ok(n) => {
                    done += n;
                    assert!(done <= len);
                    IoSliceMut::advance_slices(&mut slices, n);
                    interrupts = 0;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted && interrupts < MAX_INTERRUPTS => {
                    interrupts += 1
                }
                Err(e) => return Err(self.io_err(Op::Read, at, len - done, e)),
            }
        }
        Ok(())
    }

    fn writev_at(&self, bufs: &[&[u8]], offset: u64) -> Result<(), Error> {
        stack_async_thread::warn_unmarked_blocking("FileDevice::writev_at");
        let len = total_len(bufs);
        self.check(
            offset,
            bufs.iter().map(|b| (b.as_ptr() as usize, b.len())),
            len,
            true,
        )?;
        let mut slices: Vec<IoSlice<'_>> = bufs.iter().map(|b| IoSlice::new(b)).collect();
        let mut slices = &mut slices[..];
        let mut done = 0usize;
        let mut interrupts = 0;
        while done < len {
            let at = offset + done as u64;
            match sys::pwritev(&self.file, slices, at) {
                Ok(0) => {
                    let zero = io::Error::new(
                        io::ErrorKind::WriteZero,
                        format!("wrote nothing after {done} bytes"),
                    );
                    return Err(self.io_err(Op::Write, offset, len, zero));
                }
                Ok(n) => {
                    done += n;
                    assert!(done <= len);
                    IoSlice::advance_slices(&mut slices, n);
                    interrupts = 0;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted && interrupts < MAX_INTERRUPTS => {
                    interrupts += 1
                }
                Err(e) => return Err(self.io_err(Op::Write, at, len - done, e)),
            }
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), Error> {
        stack_async_thread::warn_unmarked_blocking("FileDevice::flush");
        if self.info.read_only {
            return Ok(());
        }
        self.file
            .sync_data()
            .map_err(|e| self.io_err(Op::Flush, 0, 0, e))
    }

    fn start_writeback(&self, offset: u64, len: u64) -> Result<(), Error> {
        if self.info.direct || self.info.read_only || len == 0 {
            return Ok(());
        }
        sys::start_writeback(&self.file, offset, len).map_err(|source| Error::Writeback {
            device: self.name().to_owned(),
            offset,
            len,
            source,
        })
    }

    fn evict(&self, offset: u64, len: u64) -> Result<Residency, Error> {
        self.evict_range(offset, len)
    }

    fn size_bytes(&self) -> u64 {
        self.info.size_bytes
    }

    fn logical_block_size(&self) -> u32 {
        self.info.logical_block_size
    }

    fn info(&self) -> DeviceInfo {
        let mut info = self.info.clone();
        if self.evict_reads {
            let stuck = self.stuck.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(why) = stuck.as_ref() {
                info.reads = ReadPath::PageCache {
                    stuck: Some(why.clone()),
                };
            }
        }
        info
    }
}

/// Model and serial of the block device `rdev`, from sysfs. A partition has no
/// `device/` directory of its own; its parent disk's is used.
fn sysfs_identity(rdev: u64) -> (Option<String>, Option<String>) {
    let dev_dir = PathBuf::from(format!(
        "/sys/dev/block/{}:{}",
        libc::major(rdev),
        libc::minor(rdev)
    ));
    let Ok(dev_dir) = std::fs::canonicalize(dev_dir) else {
        return (None, None);
    };
    let mut candidates = vec![dev_dir.join("device")];
    if let Some(parent) = dev_dir.parent() {
        candidates.push(parent.join("device"));
    }
    let read = |name: &str| {
        candidates.iter().find_map(|dir| {
            let text = std::fs::read_to_string(dir.join(name)).ok()?;
            let text = text.trim();
            (!text.is_empty()).then(|| text.to_owned())
        })
    };
    (read("model"), read("serial"))
}

/// The block device's queue limits from sysfs (the partition's parent disk holds them
/// for a partition) as the largest unsplit I/O for 4 KiB pages, a multiple of `lbs`.
fn sysfs_unsplit_bytes(rdev: u64, lbs: u32) -> Option<usize> {
    let dev_dir = PathBuf::from(format!(
        "/sys/dev/block/{}:{}",
        libc::major(rdev),
        libc::minor(rdev)
    ));
    let dev_dir = std::fs::canonicalize(dev_dir).ok()?;
    let queue = [Some(dev_dir.as_path()), dev_dir.parent()]
        .into_iter()
        .flatten()
        .map(|d| d.join("queue"))
        .find(|q| q.is_dir())?;
    let read = |name: &str| -> Option<usize> {
        std::fs::read_to_string(queue.join(name))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    unsplit_bytes(read("max_sectors_kb")?, read("max_segments")?, lbs)
}

/// The largest I/O no limit splits: `max_sectors_kb` KiB and `max_segments` 4 KiB pages,
/// rounded down to whole `lbs` blocks; `None` when the limits make no sense.
fn unsplit_bytes(max_sectors_kb: usize, max_segments: usize, lbs: u32) -> Option<usize> {
    const PAGE: usize = 4096;
    let bytes = max_sectors_kb
        .checked_mul(1024)?
        .min(max_segments.checked_mul(PAGE)?);
    let lbs = usize::try_from(lbs).ok()?.max(PAGE);
    let bytes = bytes / lbs * lbs;
    (bytes > 0).then_some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AlignedBuf;

    #[test]
    fn unsplit_size_is_the_tighter_limit_in_whole_blocks() {
        // A loop device: 1280 KiB per request, 128 segments of one page each.
        assert_eq!(unsplit_bytes(1280, 128, 512), Some(512 << 10));
        // An NVMe drive: 128 KiB per request is the tighter limit.
        assert_eq!(unsplit_bytes(128, 127, 4096), Some(128 << 10));
        assert_eq!(unsplit_bytes(0, 128, 512), None);
        assert_eq!(unsplit_bytes(1, 128, 4096), None);
    }

    fn opts(direct: bool, read_only: bool, create: Option<u64>) -> OpenOptions {
        OpenOptions {
            direct,
            read_only,
            create_size_bytes: create,
            evict_reads: false,
        }
    }

    #[test]
    fn regular_file_create_write_read_vectored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dev.img");
        let dev = FileDevice::open(&path, &opts(false, false, Some(1 << 20))).unwrap();
        assert_eq!(dev.size_bytes(), 1 << 20);
        assert_eq!(dev.info().kind, DeviceKind::File);
        let parts: Vec<Vec<u8>> = (0..1500u32).map(|i| vec![(i % 251) as u8; 3]).collect();
        let refs: Vec<&[u8]> = parts.iter().map(|p| &p[..]).collect();
        dev.writev_at(&refs, 7).unwrap();
        let mut back = vec![0u8; 4500];
        dev.read_at(&mut back, 7).unwrap();
        assert_eq!(back, parts.concat());
        dev.flush().unwrap();
        let err = dev.write_at(&[1; 10], (1 << 20) - 5).unwrap_err();
        assert!(matches!(err, Error::OutOfRange { .. }), "{err}");
        drop(dev);
        let ro = FileDevice::open(&path, &opts(false, true, None)).unwrap();
        assert!(matches!(
            ro.write_at(&[1], 0).unwrap_err(),
            Error::ReadOnly { .. }
        ));
        let mut one = [0u8; 3];
        ro.read_at(&mut one, 7).unwrap();
        assert_eq!(one, [0, 0, 0]);
        assert!(matches!(
            FileDevice::open(&path, &opts(false, true, Some(4096))).unwrap_err(),
            Error::BadOptions { .. }
        ));
    }

    #[test]
    fn create_never_shrinks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dev.img");
        FileDevice::open(&path, &opts(false, false, Some(8192))).unwrap();
        let dev = FileDevice::open(&path, &opts(false, false, Some(4096))).unwrap();
        assert_eq!(dev.size_bytes(), 8192);
    }

    #[test]
    fn start_writeback_leaves_the_data_and_is_a_no_op_where_nothing_is_cached() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wb.img");
        let dev = FileDevice::open(&path, &opts(false, false, Some(1 << 20))).unwrap();
        dev.write_at(&[7u8; 8192], 4096).unwrap();
        dev.start_writeback(4096, 8192).unwrap();
        dev.start_writeback(0, 0).unwrap();
        dev.flush().unwrap();
        let mut back = [0u8; 8192];
        dev.read_at(&mut back, 4096).unwrap();
        assert_eq!(back, [7u8; 8192]);
        drop(dev);
        for (direct, read_only) in [(true, false), (false, true)] {
            let dev = FileDevice::open(&path, &opts(direct, read_only, None)).unwrap();
            dev.start_writeback(0, 1 << 20).unwrap();
        }
    }

    #[test]
    fn direct_io_refuses_misalignment_and_names_it() {
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let path = dir.path().join("direct.img");
        let dev = match FileDevice::open(&path, &opts(true, false, Some(1 << 20))) {
            Ok(dev) => dev,
            Err(err) => {
                eprintln!("skipping: this filesystem refuses O_DIRECT: {err}");
                return;
            }
        };
        let mut buf = AlignedBuf::new(8192, 4096);
        buf.fill(0x5a);
        dev.write_at(&buf, 4096).unwrap();
        let mut back = AlignedBuf::new(8192, 4096);
        dev.read_at(&mut back, 4096).unwrap();
        assert_eq!(&back[..], &buf[..]);
        let what = |err: Error| match err {
            Error::Misaligned { what, align, .. } => {
                assert_eq!(align, 4096);
                what
            }
            other => panic!("expected Misaligned, got {other}"),
        };
        assert_eq!(what(dev.write_at(&buf, 100).unwrap_err()), "offset");
        assert_eq!(what(dev.write_at(&buf[..100], 0).unwrap_err()), "length");
        let big = AlignedBuf::new(8192 + 4096, 4096);
        assert_eq!(
            what(dev.write_at(&big[1..4097], 0).unwrap_err()),
            "buffer address"
        );
        assert_eq!(
            what(dev.read_at(&mut back[..512], 0).unwrap_err()),
            "length"
        );
    }
}
