//! Unsafe code (with `uring.rs`, the only): block-device ioctls, vectored positional
//! I/O, and the huge-page mapping under large buffers.
//!
//! Everything here is a thin wrapper over one system call; the callers in `file.rs`
//! handle short transfers, `EINTR` and errors.

use std::fs::File;
use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::AsRawFd;

/// `_IOR(0x12, 114, size_t)`: size of a block device in bytes. `libc` does not export it.
const BLKGETSIZE64: libc::Ioctl = (2 << 30) | (8 << 16) | (0x12 << 8) | 114;
const _: () = assert!(BLKGETSIZE64 == 0x8008_1272);
const _: () = assert!(std::mem::size_of::<libc::size_t>() == 8);

/// The most iovecs one `preadv`/`pwritev` call takes (Linux `UIO_MAXIOV`).
pub const IOV_MAX: usize = 1024;

/// Size in bytes of the block device open as `file` (`BLKGETSIZE64`).
pub fn block_size_bytes(file: &File) -> io::Result<u64> {
    let mut size: u64 = 0;
    // SAFETY: BLKGETSIZE64 writes one u64 through the pointer, which points at a live,
    // properly aligned u64 on our stack; the fd is open for the duration of the call.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), BLKGETSIZE64, &mut size as *mut u64) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(size)
}

/// Logical block (sector) size in bytes of the block device open as `file` (`BLKSSZGET`).
pub fn block_logical_size(file: &File) -> io::Result<u32> {
    let mut size: libc::c_int = 0;
    // SAFETY: BLKSSZGET writes one c_int through the pointer, which points at a live,
    // properly aligned c_int on our stack; the fd is open for the duration of the call.
    let rc = unsafe {
        libc::ioctl(
            file.as_raw_fd(),
            libc::BLKSSZGET,
            &mut size as *mut libc::c_int,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    u32::try_from(size)
        .ok()
        .filter(|s| s.is_power_of_two())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "BLKSSZGET returned a bad size"))
}

/// One `preadv` call: reads into `bufs` from `offset`, returns the bytes read.
pub fn preadv(file: &File, bufs: &mut [IoSliceMut<'_>], offset: u64) -> io::Result<usize> {
    let count = bufs.len().min(IOV_MAX);
    let offset = libc::off_t::try_from(offset)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset too large"))?;
    // SAFETY: IoSliceMut is guaranteed ABI-compatible with `struct iovec` on Unix; the
    // slices are live, exclusively borrowed for the call, and `count` never exceeds
    // `bufs.len()`, so the kernel writes only into memory we own.
    let rc = unsafe {
        libc::preadv(
            file.as_raw_fd(),
            bufs.as_mut_ptr().cast::<libc::iovec>(),
            count as libc::c_int,
            offset,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc as usize)
}

/// One `pwritev` call: writes `bufs` at `offset`, returns the bytes written.
pub fn pwritev(file: &File, bufs: &[IoSlice<'_>], offset: u64) -> io::Result<usize> {
    let count = bufs.len().min(IOV_MAX);
    let offset = libc::off_t::try_from(offset)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset too large"))?;
    // SAFETY: IoSlice is guaranteed ABI-compatible with `struct iovec` on Unix; the
    // slices are live and borrowed for the call, and `count` never exceeds `bufs.len()`;
    // the kernel only reads from them.
    let rc = unsafe {
        libc::pwritev(
            file.as_raw_fd(),
            bufs.as_ptr().cast::<libc::iovec>(),
            count as libc::c_int,
            offset,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc as usize)
}

/// One `sync_file_range(SYNC_FILE_RANGE_WRITE)`: starts writeback of the dirty pages in
/// `offset..offset + len` without waiting for it.
pub fn start_writeback(file: &File, offset: u64, len: u64) -> io::Result<()> {
    let (Ok(offset), Ok(len)) = (
        libc::off64_t::try_from(offset),
        libc::off64_t::try_from(len),
    ) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "range too large",
        ));
    };
    // SAFETY: sync_file_range takes no pointers; the fd is open for the duration of the
    // call.
    let rc = unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE)
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `statfs` magic of tmpfs (`TMPFS_MAGIC`).
pub const TMPFS_MAGIC: u64 = 0x0102_1994;
/// `statfs` magic of ramfs (`RAMFS_MAGIC`).
pub const RAMFS_MAGIC: u64 = 0x8584_58f6;

/// The `f_type` magic of the filesystem holding `file` (`fstatfs`).
pub fn fs_magic(file: &File) -> io::Result<u64> {
    // SAFETY: an all-zero `statfs` is a valid value of this plain C struct.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: fstatfs writes one `struct statfs` through the pointer, which points at a
    // live, properly aligned one on our stack; the fd is open for the call.
    let rc = unsafe { libc::fstatfs(file.as_raw_fd(), &mut st) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // f_type is a signed word; the magics are compared as their bit patterns.
    Ok(st.f_type as u64 & 0xffff_ffff)
}

/// The page size of the page cache.
pub fn page_size_bytes() -> u64 {
    // SAFETY: sysconf takes no pointers and only reads a constant of the process.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(n)
        .ok()
        .filter(|n| n.is_power_of_two())
        .unwrap_or(4096)
}

fn off_t(value: u64) -> io::Result<libc::off_t> {
    libc::off_t::try_from(value)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset too large"))
}

/// One `posix_fadvise(fd, offset, len, advice)`.
pub fn fadvise(file: &File, offset: u64, len: u64, advice: libc::c_int) -> io::Result<()> {
    let (offset, len) = (off_t(offset)?, off_t(len)?);
    // SAFETY: posix_fadvise takes no pointers; the fd is open for the call.
    let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), offset, len, advice) };
    if rc != 0 {
        // posix_fadvise returns the error number instead of setting errno.
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

/// `cachestat(2)`'s system call number on x86-64 and the generic table (Linux 6.5+).
const SYS_CACHESTAT: libc::c_long = 451;

/// `struct cachestat_range`.
#[repr(C)]
struct CachestatRange {
    off: u64,
    len: u64,
}

/// `struct cachestat`: page counts of a range.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct Cachestat {
    /// Pages in the page cache.
    pub nr_cache: u64,
    /// Of those, dirty.
    pub nr_dirty: u64,
    /// Of those, under writeback.
    pub nr_writeback: u64,
    /// Evicted pages (workingset shadows).
    pub nr_evicted: u64,
    /// Recently evicted pages.
    pub nr_recently_evicted: u64,
}

/// `cachestat(fd, {offset, len}, &out, 0)`: what of the range is in the page cache.
/// `ENOSYS` on kernels before 6.5.
pub fn cachestat(file: &File, offset: u64, len: u64) -> io::Result<Cachestat> {
    assert!(
        len > 0,
        "a zero length means 'to the end of the file' to cachestat"
    );
    let range = CachestatRange { off: offset, len };
    let mut out = Cachestat::default();
    // SAFETY: cachestat reads one `struct cachestat_range` and writes one `struct
    // cachestat` (both `#[repr(C)]` with the kernel's layout: five or two u64s); both
    // point at live, aligned values on our stack; the fd is open for the call.
    let rc = unsafe {
        libc::syscall(
            SYS_CACHESTAT,
            file.as_raw_fd() as libc::c_uint,
            &range as *const CachestatRange,
            &mut out as *mut Cachestat,
            0 as libc::c_uint,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(out)
}

/// Pages of `offset..offset + len` (page-aligned) that are resident, by mapping the
/// range read-only and asking `mincore`: the fallback where `cachestat` is missing.
pub fn mincore_resident_pages(file: &File, offset: u64, len: u64) -> io::Result<u64> {
    let page = page_size_bytes();
    assert!(offset % page == 0);
    assert!(len % page == 0);
    assert!(len > 0);
    let map_len = usize::try_from(len)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "range too large"))?;
    // SAFETY: a new shared read-only mapping of the fd's range, placed by the kernel (no
    // fixed address), so it aliases no Rust object; it is unmapped below on every path.
    let addr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            map_len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            off_t(offset)?,
        )
    };
    if addr == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    let pages = map_len / page as usize;
    let mut vec = vec![0u8; pages];
    // SAFETY: `addr..addr + map_len` is the mapping made above; mincore writes one byte
    // per page of it into `vec`, which has exactly that many bytes. It never touches the
    // mapped pages, so no page is read in by asking.
    let rc = unsafe { libc::mincore(addr, map_len, vec.as_mut_ptr()) };
    let err = (rc < 0).then(io::Error::last_os_error);
    // SAFETY: unmaps exactly the mapping made above; nothing refers into it.
    unsafe { libc::munmap(addr, map_len) };
    if let Some(e) = err {
        return Err(e);
    }
    Ok(vec.iter().filter(|&&b| b & 1 != 0).count() as u64)
}

/// A test's shared read-only mapping of a file's first bytes, every page touched so it
/// is resident and mapped; unmapped on drop.
#[cfg(test)]
pub struct TestMap {
    addr: *mut libc::c_void,
    len: usize,
}

/// Maps and touches the first `len` bytes of `file` (a multiple of the page size).
#[cfg(test)]
pub fn test_map(file: &File, len: usize) -> io::Result<TestMap> {
    let page = page_size_bytes() as usize;
    assert!(len % page == 0);
    // SAFETY: a new shared read-only mapping placed by the kernel; it aliases no Rust
    // object and `TestMap`'s drop unmaps it.
    let addr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        )
    };
    if addr == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    let map = TestMap { addr, len };
    for at in (0..len).step_by(page) {
        // SAFETY: `at < len`, inside the readable mapping made above; the file is at
        // least `len` bytes long (the caller's contract), so no SIGBUS.
        unsafe { std::ptr::read_volatile(addr.cast::<u8>().add(at)) };
    }
    Ok(map)
}

#[cfg(test)]
impl Drop for TestMap {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping `test_map` made; nothing refers into it.
        unsafe { libc::munmap(self.addr, self.len) };
    }
}

/// Bytes of a transparent huge page on x86-64 and arm64 with 4 KiB pages.
pub const HUGE_PAGE_BYTES: usize = 2 << 20;

/// Zeroed anonymous memory of `len` bytes starting on a huge-page boundary, with
/// transparent huge pages asked for (`MADV_HUGEPAGE`; the kernel may still use small
/// pages). Owned like a `Vec<u8>`: unmapped on drop.
///
/// Why: `O_DIRECT` pins a buffer's pages for every I/O (`get_user_pages`): with 4 KiB
/// pages that was a fifth of `stackctl verify`'s CPU on a loop device, and each page is
/// one segment of the request, so a 1 MiB I/O exceeds a loop device's 128 segments. A
/// huge page is pinned at once and makes 64 KiB segments.
#[derive(Debug)]
pub struct HugeMap {
    /// The whole mapping (for `munmap`).
    base: std::ptr::NonNull<u8>,
    map_len: usize,
    /// The buffer inside it.
    start: usize,
    len: usize,
}

// SAFETY: the mapping is owned by this value alone (like a `Vec<u8>`'s heap block);
// shared references only read it.
unsafe impl Send for HugeMap {}
// SAFETY: as above; `&HugeMap` gives only `&[u8]`.
unsafe impl Sync for HugeMap {}

impl HugeMap {
    /// A mapping of `len` bytes (`len > 0`), or `None` when the kernel refuses one.
    pub fn new(len: usize) -> Option<HugeMap> {
        let map_len = len.checked_add(HUGE_PAGE_BYTES)?;
        // SAFETY: an anonymous private mapping at an address of the kernel's choosing
        // touches no existing memory.
        let raw = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if raw == libc::MAP_FAILED || len == 0 {
            return None;
        }
        let base = std::ptr::NonNull::new(raw.cast::<u8>())?;
        let start = base.as_ptr().align_offset(HUGE_PAGE_BYTES);
        let map = HugeMap {
            base,
            map_len,
            start,
            len,
        };
        let huge_len = len / HUGE_PAGE_BYTES * HUGE_PAGE_BYTES;
        if huge_len > 0 {
            // SAFETY: the range lies inside the mapping just made; advice changes no
            // content. A refusal (THP off) leaves small pages, which work as well.
            unsafe {
                libc::madvise(
                    map.base.as_ptr().add(start).cast(),
                    huge_len,
                    libc::MADV_HUGEPAGE,
                );
            }
        }
        Some(map)
    }

    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `start + len <= map_len` bytes are mapped readable and owned by self.
        unsafe { std::slice::from_raw_parts(self.base.as_ptr().add(self.start), self.len) }
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`, and `&mut self` makes the borrow unique.
        unsafe { std::slice::from_raw_parts_mut(self.base.as_ptr().add(self.start), self.len) }
    }
}

/// Disjoint pieces of one [`HugeMap`], each owned by one value: buffers shorter than a
/// huge page share one (two 1 MiB pool buffers per 2 MiB page) and still get its pinning.
#[derive(Debug)]
pub struct HugePiece {
    map: std::sync::Arc<HugeMap>,
    start: usize,
    len: usize,
}

impl HugePiece {
    /// `count` pieces of `len` bytes each, back to back in one new mapping (the mapping
    /// lives until the last piece is dropped); `None` when the kernel refuses it.
    pub fn split(len: usize, count: usize) -> Option<Vec<HugePiece>> {
        let map = std::sync::Arc::new(HugeMap::new(len.checked_mul(count)?)?);
        Some(
            (0..count)
                .map(|i| HugePiece {
                    map: std::sync::Arc::clone(&map),
                    start: i * len,
                    len,
                })
                .collect(),
        )
    }

    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: the range lies inside the mapping (`split` made it so), which the `Arc`
        // keeps mapped; no other piece covers these bytes, and a `&mut` to them exists
        // only through `&mut self`, which this `&self` excludes.
        unsafe {
            std::slice::from_raw_parts(
                self.map.base.as_ptr().add(self.map.start + self.start),
                self.len,
            )
        }
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`; pieces are disjoint and not `Clone`, so `&mut self`
        // is the only way to these bytes. The mapping is writable (`PROT_WRITE`).
        unsafe {
            std::slice::from_raw_parts_mut(
                self.map.base.as_ptr().add(self.map.start + self.start),
                self.len,
            )
        }
    }
}

impl Drop for HugeMap {
    fn drop(&mut self) {
        // SAFETY: `base`/`map_len` are exactly the mapping `new` made; no slice of it
        // outlives `self`.
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.map_len);
        }
    }
}
