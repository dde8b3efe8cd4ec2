//! `FileDevice`: regular files and raw block devices, buffered or `O_DIRECT`.

use crate::device::{check_range, total_len};
use crate::{sys, Backing, Device, DeviceInfo, DeviceKind, Error, ReadPath, Residency};
use std::fs::File;
use std::io::{self, IoSlice, IoSliceMut};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Logical block size reported for regular files. Direct I/O on common filesystems
/// needs at most page alignment, and filesystems allocate in 4 KiB blocks.
pub const FILE_LOGICAL_BLOCK_SIZE: u32 = 4096;

/// How many `EINTR`s in a row one transfer tolerates before giving up.
const MAX_INTERRUPTS: u32 = 64;

/// An eviction drops this much around a range, aligned: the largest page-cache folio on
/// x86-64 (a PMD, 2 MiB). `POSIX_FADV_DONTNEED` keeps a folio that reaches past the
/// range, and filesystems with large folios cache a file read whole in folios of up to
/// this size; dropping neighbours costs at most their re-read.
const EVICT_SPAN_BYTES: u64 = 2 << 20;

/// Pauses before each further eviction of a range that is still cached (the first try
/// has none), 5.3 ms in all. A page a concurrent read holds cannot be dropped until that
/// read has copied it out (with 512-byte blocks, two readers' ranges share their edge
/// pages): measured on a 1 GiB verify with 512-byte blocks, back-to-back retries still
/// failed on such a page now and then, while one read takes well under a millisecond.
/// A page mapped or locked by another process stays whatever the wait.
const EVICT_RETRY_PAUSES_US: [u64; 5] = [0, 50, 250, 1000, 4000];

/// Set once `cachestat(2)` returned `ENOSYS`: residency is asked with `mincore` then.
static NO_CACHESTAT: AtomicBool = AtomicBool::new(false);

/// How to open a [`FileDevice`].
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

/// A regular file or raw block device used as a device.
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
        })
    }

    /// Bytes of `offset..offset + len` (page-aligned, non-empty) in the page cache, and
    /// of those dirty: `cachestat(2)`, else `mincore` over a mapping of the range.
    fn cached_bytes(&self, offset: u64, len: u64) -> Result<(u64, u64), Error> {
        let page = sys::page_size_bytes();
        let err = |e| self.io_err("residency check", offset, len as usize, e);
        if !NO_CACHESTAT.load(Ordering::Relaxed) {
            match sys::cachestat(&self.file, offset, len) {
                Ok(st) => return Ok((st.nr_cache * page, st.nr_dirty * page)),
                // ENOSYS before Linux 6.5; EPERM where a seccomp filter predates it.
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) => {
                    NO_CACHESTAT.store(true, Ordering::Relaxed)
                }
                Err(e) => return Err(err(e)),
            }
        }
        let pages = sys::mincore_resident_pages(&self.file, offset, len).map_err(err)?;
        Ok((pages * page, 0))
    }

    /// Records the first range an eviction could not drop, for [`DeviceInfo::reads`].
    fn note_stuck(&self, offset: u64, len: u64, cached_bytes: u64, dirty_bytes: u64) {
        let mut stuck = self.stuck.lock().unwrap_or_else(|p| p.into_inner());
        if stuck.is_none() {
            *stuck = Some(format!(
                "{cached_bytes} bytes of {len} at offset {offset} stayed in the page cache after \
                 eviction ({dirty_bytes} dirty): a process may map or lock them"
            ));
        }
    }

    /// The open file, e.g. to map it read-only for verification.
    pub fn file(&self) -> &File {
        &self.file
    }

    fn name(&self) -> &str {
        &self.info.path
    }

    fn io_err(&self, op: &'static str, offset: u64, len: usize, source: io::Error) -> Error {
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
        self.readv_at(&mut [buf], offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> Result<(), Error> {
        self.writev_at(&[buf], offset)
    }

    fn readv_at(&self, bufs: &mut [&mut [u8]], offset: u64) -> Result<(), Error> {
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
                    return Err(self.io_err("read", offset, len, eof));
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
                Err(e) => return Err(self.io_err("read", at, len - done, e)),
            }
        }
        Ok(())
    }

    fn writev_at(&self, bufs: &[&[u8]], offset: u64) -> Result<(), Error> {
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
                    return Err(self.io_err("write", offset, len, zero));
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
                Err(e) => return Err(self.io_err("write", at, len - done, e)),
            }
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), Error> {
        if self.info.read_only {
            return Ok(());
        }
        self.file
            .sync_data()
            .map_err(|e| self.io_err("flush", 0, 0, e))
    }

    fn start_writeback(&self, offset: u64, len: u64) -> Result<(), Error> {
        if self.info.direct || self.info.read_only || len == 0 {
            return Ok(());
        }
        sys::start_writeback(&self.file, offset, len).map_err(|e| {
            self.io_err(
                "start writeback",
                offset,
                usize::try_from(len).unwrap_or(usize::MAX),
                e,
            )
        })
    }

    fn evict(&self, offset: u64, len: u64) -> Result<Residency, Error> {
        if self.info.direct {
            return Ok(Residency::Direct);
        }
        if self.info.backing == Backing::Memory {
            return Ok(Residency::Memory);
        }
        check_range(self.name(), offset, len as usize, self.info.size_bytes)?;
        if len == 0 {
            return Ok(Residency::Evicted);
        }
        let page = sys::page_size_bytes();
        // Check whole pages (a partial page is cached whole), drop whole folios around.
        let start = offset / page * page;
        let end = (offset + len).next_multiple_of(page);
        let wide_start = start / EVICT_SPAN_BYTES * EVICT_SPAN_BYTES;
        let wide_end = end.next_multiple_of(EVICT_SPAN_BYTES);
        // Once a range has stayed cached the device no longer claims the drive; later
        // ranges get one try each rather than the whole wait.
        let retries = if self.stuck.lock().map_or(true, |s| s.is_some()) {
            0
        } else {
            EVICT_RETRY_PAUSES_US.len()
        };
        let mut left = (0, 0);
        for attempt in 0..=retries {
            if attempt > 0 {
                let pause_us = EVICT_RETRY_PAUSES_US[attempt - 1];
                if pause_us == 0 {
                    std::thread::yield_now();
                } else {
                    std::thread::sleep(std::time::Duration::from_micros(pause_us));
                }
            }
            sys::fadvise(
                &self.file,
                wide_start,
                wide_end - wide_start,
                libc::POSIX_FADV_DONTNEED,
            )
            .map_err(|e| self.io_err("evict", offset, len as usize, e))?;
            left = self.cached_bytes(start, end - start)?;
            if left.0 == 0 {
                return Ok(Residency::Evicted);
            }
        }
        Ok(Residency::Cached {
            cached_bytes: left.0,
            dirty_bytes: left.1,
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AlignedBuf;

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

    /// A scratch file on the crate's own filesystem (not a tmpfs /tmp), with `len`
    /// bytes written through the page cache and made durable.
    fn media_file(len: usize) -> Option<(tempfile::TempDir, PathBuf)> {
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let path = dir.path().join("evict.img");
        std::fs::write(
            &path,
            (0..len).map(|i| (i % 253) as u8).collect::<Vec<u8>>(),
        )
        .unwrap();
        let dev = FileDevice::open(&path, &opts(false, false, None)).unwrap();
        if dev.info().backing == Backing::Memory {
            eprintln!("skipping: the crate's directory is on a memory filesystem");
            return None;
        }
        dev.flush().unwrap();
        Some((dir, path))
    }

    #[test]
    fn evict_drops_a_cached_range_and_the_check_agrees() {
        let Some((_dir, path)) = media_file(8 << 20) else {
            return;
        };
        let dev = FileDevice::open(&path, &opts(false, true, None)).unwrap();
        let mut back = vec![0u8; 1 << 20];
        dev.read_at(&mut back, 3 << 20).unwrap();
        let (cached, _) = dev.cached_bytes(3 << 20, 1 << 20).unwrap();
        assert_eq!(cached, 1 << 20, "a buffered read caches its range");
        // mincore over a mapping tells the same as cachestat.
        let pages = sys::mincore_resident_pages(&dev.file, 3 << 20, 1 << 20).unwrap();
        assert_eq!(pages * sys::page_size_bytes(), 1 << 20);
        // An unaligned range: its partial pages go too.
        assert_eq!(
            dev.evict((3 << 20) + 100, 5000).unwrap(),
            Residency::Evicted
        );
        assert_eq!(dev.evict(3 << 20, 1 << 20).unwrap(), Residency::Evicted);
        assert_eq!(dev.cached_bytes(3 << 20, 1 << 20).unwrap().0, 0);
        assert_eq!(
            sys::mincore_resident_pages(&dev.file, 3 << 20, 1 << 20).unwrap(),
            0
        );
        assert!(matches!(
            dev.evict(8 << 20, 1).unwrap_err(),
            Error::OutOfRange { .. }
        ));
    }

    #[test]
    fn an_evicting_device_reads_from_the_drive_and_says_so() {
        let Some((_dir, path)) = media_file(4 << 20) else {
            return;
        };
        let dev = FileDevice::open(
            &path,
            &OpenOptions {
                read_only: true,
                evict_reads: true,
                ..OpenOptions::default()
            },
        )
        .unwrap();
        assert_eq!(dev.info().reads, ReadPath::Evicted);
        assert_eq!(dev.info().backing, Backing::Media);
        let mut back = vec![0u8; 3000];
        dev.read_at(&mut back, 12345).unwrap();
        let want: Vec<u8> = (12345..12345 + 3000).map(|i| (i % 253) as u8).collect();
        assert_eq!(back, want);
        // Of the span the read dropped, only what it read is cached (no readahead), and
        // the next read drops that first.
        let (cached, _) = dev.cached_bytes(0, 2 << 20).unwrap();
        assert!(
            cached <= 2 * sys::page_size_bytes(),
            "{cached} bytes cached"
        );
        dev.read_at(&mut back, 1 << 20).unwrap();
        assert_eq!(dev.cached_bytes(0, 1 << 20).unwrap().0, 0);
        assert_eq!(dev.info().reads, ReadPath::Evicted);
    }

    #[test]
    fn a_mapped_range_stays_cached_and_the_device_stops_claiming_the_drive() {
        let Some((_dir, path)) = media_file(4 << 20) else {
            return;
        };
        let dev = FileDevice::open(
            &path,
            &OpenOptions {
                read_only: true,
                evict_reads: true,
                ..OpenOptions::default()
            },
        )
        .unwrap();
        // Pages some process maps are not dropped by POSIX_FADV_DONTNEED.
        let map = sys::test_map(&dev.file, 1 << 20).unwrap();
        match dev.evict(0, 1 << 20).unwrap() {
            Residency::Cached { cached_bytes, .. } => assert_eq!(cached_bytes, 1 << 20),
            other => panic!("a mapped range was reported {other:?}"),
        }
        let mut back = vec![0u8; 4096];
        dev.read_at(&mut back, 8192).unwrap();
        match dev.info().reads {
            ReadPath::PageCache { stuck: Some(why) } => {
                assert!(why.contains("offset 8192"), "{why}")
            }
            other => panic!("still claims {other:?}"),
        }
        drop(map);
        assert_eq!(dev.evict(0, 1 << 20).unwrap(), Residency::Evicted);
    }

    #[test]
    fn tmpfs_is_memory_and_direct_and_buffered_paths_are_named() {
        let dir = match tempfile::tempdir_in("/dev/shm") {
            Ok(d) => d,
            Err(e) => return eprintln!("skipping: no /dev/shm: {e}"),
        };
        let path = dir.path().join("m.img");
        let dev = FileDevice::open(&path, &opts(false, false, Some(1 << 20))).unwrap();
        if sys::fs_magic(&dev.file).unwrap() != sys::TMPFS_MAGIC {
            return eprintln!("skipping: /dev/shm is not a tmpfs");
        }
        assert_eq!(dev.info().backing, Backing::Memory);
        assert_eq!(dev.info().reads, ReadPath::Memory);
        assert_eq!(dev.evict(0, 4096).unwrap(), Residency::Memory);
        let Some((_d, media)) = media_file(1 << 20) else {
            return;
        };
        let plain = FileDevice::open(&media, &opts(false, true, None)).unwrap();
        assert_eq!(plain.info().reads, ReadPath::PageCache { stuck: None });
        if let Ok(direct) = FileDevice::open(&media, &opts(true, true, None)) {
            assert_eq!(direct.info().reads, ReadPath::Direct);
            assert_eq!(direct.evict(0, 4096).unwrap(), Residency::Direct);
        }
    }
}
