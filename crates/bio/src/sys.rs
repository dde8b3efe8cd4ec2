//! Unsafe code (with `uring.rs`, the only): block-device ioctls and vectored positional
//! I/O.
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
