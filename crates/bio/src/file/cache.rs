//! The page cache in front of a buffered `FileDevice`: dropping a range from it
//! (eviction) and checking what stayed (residency), so a read can come from the drive.

use super::FileDevice;
use crate::device::check_range;
use crate::{sys, Backing, Error, Residency};
use std::sync::atomic::{AtomicBool, Ordering};

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

impl FileDevice {
    /// The error of a failed page-cache drop or residency check of a range.
    fn evict_err(&self, offset: u64, len: u64, source: std::io::Error) -> Error {
        Error::Evict {
            device: self.name().to_owned(),
            offset,
            len,
            source,
        }
    }

    /// [`Device::evict`]: drops the range (widened to [`EVICT_SPAN_BYTES`]) and checks
    /// its pages, retrying after [`EVICT_RETRY_PAUSES_US`] while some stay.
    pub(super) fn evict_range(&self, offset: u64, len: u64) -> Result<Residency, Error> {
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
            .map_err(|e| self.evict_err(offset, len, e))?;
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

    /// Bytes of `offset..offset + len` (page-aligned, non-empty) in the page cache, and
    /// of those dirty: `cachestat(2)`, else `mincore` over a mapping of the range.
    fn cached_bytes(&self, offset: u64, len: u64) -> Result<(u64, u64), Error> {
        let page = sys::page_size_bytes();
        let err = |e| self.evict_err(offset, len, e);
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
    pub(super) fn note_stuck(&self, offset: u64, len: u64, cached_bytes: u64, dirty_bytes: u64) {
        let mut stuck = self.stuck.lock().unwrap_or_else(|p| p.into_inner());
        if stuck.is_none() {
            *stuck = Some(format!(
                "{cached_bytes} bytes of {len} at offset {offset} stayed in the page cache after \
                 eviction ({dirty_bytes} dirty): a process may map or lock them"
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::file::OpenOptions;
    use crate::{Device, ReadPath};
    use std::path::PathBuf;

    fn opts(direct: bool, read_only: bool) -> OpenOptions {
        OpenOptions {
            direct,
            read_only,
            ..OpenOptions::default()
        }
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
        let dev = FileDevice::open(&path, &opts(false, false)).unwrap();
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
        let dev = FileDevice::open(&path, &opts(false, true)).unwrap();
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
        let dev = FileDevice::open(
            &path,
            &OpenOptions {
                create_size_bytes: Some(1 << 20),
                ..opts(false, false)
            },
        )
        .unwrap();
        if sys::fs_magic(&dev.file).unwrap() != sys::TMPFS_MAGIC {
            return eprintln!("skipping: /dev/shm is not a tmpfs");
        }
        assert_eq!(dev.info().backing, Backing::Memory);
        assert_eq!(dev.info().reads, ReadPath::Memory);
        assert_eq!(dev.evict(0, 4096).unwrap(), Residency::Memory);
        let Some((_d, media)) = media_file(1 << 20) else {
            return;
        };
        let plain = FileDevice::open(&media, &opts(false, true)).unwrap();
        assert_eq!(plain.info().reads, ReadPath::PageCache { stuck: None });
        if let Ok(direct) = FileDevice::open(&media, &opts(true, true)) {
            assert_eq!(direct.info().reads, ReadPath::Direct);
            assert_eq!(direct.evict(0, 4096).unwrap(), Residency::Direct);
        }
    }
}
