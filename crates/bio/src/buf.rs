//! Aligned buffers and a bounded pool of them, so a pipeline's memory has a limit.

use crate::Error;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// A zeroed heap buffer whose first byte sits at a multiple of `align` (what `O_DIRECT`
/// asks of buffers). Its length is fixed at creation.
///
/// A small buffer over-allocates a `Vec` by `align` bytes and starts at the first
/// aligned byte (a `Vec`'s heap block never moves when the `Vec` itself moves). A buffer
/// of `HUGE_BUF_BYTES` (2 MiB) or more is its own mapping on a huge-page boundary with
/// transparent huge pages asked for (`sys::HugeMap`): `O_DIRECT` then pins it a huge
/// page at a time.
pub struct AlignedBuf {
    storage: Storage,
    start: usize,
    len: usize,
    align: usize,
}

/// Buffers at least this long are mapped with huge pages (see [`AlignedBuf`]).
pub const HUGE_BUF_BYTES: usize = crate::sys::HUGE_PAGE_BYTES;

enum Storage {
    Heap(Vec<u8>),
    Huge(crate::sys::HugeMap),
    /// A pool buffer sharing a huge page with its siblings (see [`BufferPool`]).
    Piece(crate::sys::HugePiece),
}

impl Storage {
    fn bytes(&self) -> &[u8] {
        match self {
            Storage::Heap(v) => v,
            Storage::Huge(m) => m.as_slice(),
            Storage::Piece(p) => p.as_slice(),
        }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        match self {
            Storage::Heap(v) => v,
            Storage::Huge(m) => m.as_mut_slice(),
            Storage::Piece(p) => p.as_mut_slice(),
        }
    }
}

/// Pool buffers from this size up to half a huge page share huge pages.
const PIECE_MIN_BYTES: usize = 256 << 10;

impl AlignedBuf {
    /// A zeroed buffer of `len` bytes aligned to `align`.
    ///
    /// # Panics
    /// If `align` is not a power of two.
    pub fn new(len: usize, align: usize) -> Self {
        assert!(
            align.is_power_of_two(),
            "alignment {align} is not a power of two"
        );
        let huge = (len >= HUGE_BUF_BYTES && align <= HUGE_BUF_BYTES)
            .then(|| crate::sys::HugeMap::new(len))
            .flatten();
        let (storage, start) = match huge {
            // Starts on a huge-page boundary, so on a multiple of `align` too.
            Some(map) => (Storage::Huge(map), 0),
            None => {
                let storage = vec![0u8; len + align];
                let start = storage.as_ptr().align_offset(align);
                (Storage::Heap(storage), start)
            }
        };
        assert!(start < align);
        assert!(start + len <= storage.bytes().len());
        let buf = Self {
            storage,
            start,
            len,
            align,
        };
        debug_assert_eq!(buf.as_ptr() as usize % align, 0);
        buf
    }

    /// Buffers of `len` bytes aligned to `align`, as many as share one huge page (at
    /// most `max`), or `None` when they would not (too small, too large, or not
    /// `align`-multiples) or the kernel refuses the mapping.
    fn huge_pieces(len: usize, align: usize, max: usize) -> Option<Vec<AlignedBuf>> {
        let fits = (PIECE_MIN_BYTES..=HUGE_BUF_BYTES / 2).contains(&len)
            && align.is_power_of_two()
            && len % align == 0;
        if !fits {
            return None;
        }
        let count = (HUGE_BUF_BYTES / len).min(max).max(1);
        let pieces = crate::sys::HugePiece::split(len, count)?;
        Some(
            pieces
                .into_iter()
                .map(|p| AlignedBuf {
                    storage: Storage::Piece(p),
                    start: 0,
                    len,
                    align,
                })
                .collect(),
        )
    }

    /// An aligned copy of `data`.
    pub fn from_slice(data: &[u8], align: usize) -> Self {
        let mut buf = Self::new(data.len(), align);
        buf.copy_from_slice(data);
        buf
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Shortens the buffer to `len` bytes (no-op if it is not longer); the start, and so
    /// the alignment, stays.
    pub(crate) fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// The alignment the buffer was made with.
    pub fn align(&self) -> usize {
        self.align
    }
}

impl Deref for AlignedBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.storage.bytes()[self.start..self.start + self.len]
    }
}

impl DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.storage.bytes_mut()[self.start..self.start + self.len]
    }
}

impl Clone for AlignedBuf {
    fn clone(&self) -> Self {
        Self::from_slice(self, self.align)
    }
}

impl fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlignedBuf")
            .field("len", &self.len)
            .field("align", &self.align)
            .finish()
    }
}

struct PoolInner {
    free: Mutex<PoolState>,
    returned: Condvar,
    count: usize,
    buf_len: usize,
    align: usize,
}

struct PoolState {
    free: Vec<AlignedBuf>,
    /// Buffers allocated so far (they are made on first demand, never more than `count`).
    created: usize,
    /// Threads blocked in [`BufferPool::get`].
    waiting: usize,
}

/// A bounded pool of `count` aligned buffers of `buf_len` bytes.
///
/// [`BufferPool::get`] blocks while every buffer is out; a buffer goes back to the pool
/// when its [`PooledBuf`] lease is dropped, wherever that happens (typically in a bio's
/// completion). Buffers are allocated on first demand, so an idle pool costs nothing.
///
/// **Contents are not cleared:** a buffer comes back from [`get`](Self::get) with
/// whatever its previous lease left in it (a new one is zeroed). Overwrite all of it
/// before writing it out, or call [`PooledBuf::zero`].
///
/// ```
/// use stack_bio::BufferPool;
/// let pool = BufferPool::new(1, 4096, 4096)?;
/// let mut buf = pool.get();
/// buf.fill(0xAB);
/// drop(buf); // back to the pool, contents kept
/// let mut again = pool.get();
/// assert_eq!(again[0], 0xAB);
/// again.zero();
/// assert!(again.iter().all(|&b| b == 0));
/// assert!(BufferPool::new(0, 4096, 4096).is_err());
/// # Ok::<(), stack_bio::Error>(())
/// ```
#[derive(Clone)]
pub struct BufferPool {
    inner: Arc<PoolInner>,
}

impl BufferPool {
    /// A pool of at most `count` buffers of `buf_len` bytes aligned to `align`.
    ///
    /// [`Error::BufferPool`] if `count` is zero or `align` is not a power of two.
    pub fn new(count: usize, buf_len: usize, align: usize) -> Result<Self, Error> {
        if count == 0 {
            return Err(Error::BufferPool {
                field: "count",
                reason: "a buffer pool needs at least one buffer".into(),
            });
        }
        if !align.is_power_of_two() {
            return Err(Error::BufferPool {
                field: "align",
                reason: format!("alignment {align} is not a power of two"),
            });
        }
        Ok(Self {
            inner: Arc::new(PoolInner {
                free: Mutex::new(PoolState {
                    free: Vec::with_capacity(count),
                    created: 0,
                    waiting: 0,
                }),
                returned: Condvar::new(),
                count,
                buf_len,
                align,
            }),
        })
    }

    /// A buffer (holding its previous lease's bytes), waiting while all `count` are
    /// out. The wait runs inside [`stack_async_thread::blocking`], so a pool worker
    /// that waits here lets its pool run other work meanwhile.
    pub fn get(&self) -> PooledBuf {
        let mut state = self.lock();
        loop {
            if let Some(buf) = self.take(&mut state) {
                return buf;
            }
            state.waiting += 1;
            state = stack_async_thread::blocking(|| {
                self.inner
                    .returned
                    .wait(state)
                    .unwrap_or_else(|e| e.into_inner())
            });
            state.waiting -= 1;
        }
    }

    /// A buffer if one is free now.
    pub fn try_get(&self) -> Option<PooledBuf> {
        let mut state = self.lock();
        self.take(&mut state)
    }

    /// How many buffers the pool holds at most.
    pub fn count(&self) -> usize {
        self.inner.count
    }

    /// Capacity of each buffer in bytes.
    pub fn buf_len(&self) -> usize {
        self.inner.buf_len
    }

    /// How many buffers are leased out right now.
    pub fn outstanding(&self) -> usize {
        let state = self.lock();
        state.created - state.free.len()
    }

    fn lock(&self) -> MutexGuard<'_, PoolState> {
        self.inner.free.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn take(&self, state: &mut PoolState) -> Option<PooledBuf> {
        let buf = match state.free.pop() {
            Some(buf) => buf,
            None if state.created < self.inner.count => {
                let (len, align) = (self.inner.buf_len, self.inner.align);
                let room = self.inner.count - state.created;
                // Buffers shorter than a huge page come several per huge page: `O_DIRECT`
                // pins them a huge page at a time (see `AlignedBuf`).
                match AlignedBuf::huge_pieces(len, align, room) {
                    Some(mut bufs) => {
                        state.created += bufs.len();
                        let first = bufs.pop().expect("at least one piece");
                        state.free.extend(bufs);
                        first
                    }
                    None => {
                        state.created += 1;
                        AlignedBuf::new(len, align)
                    }
                }
            }
            None => return None,
        };
        assert!(state.created <= self.inner.count);
        assert_eq!(buf.len(), self.inner.buf_len);
        Some(PooledBuf {
            len: buf.len(),
            buf: Some(buf),
            pool: Arc::clone(&self.inner),
        })
    }
}

impl fmt::Debug for BufferPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufferPool")
            .field("count", &self.inner.count)
            .field("buf_len", &self.inner.buf_len)
            .field("align", &self.inner.align)
            .finish()
    }
}

/// A buffer leased from a [`BufferPool`]; it returns to the pool on drop.
///
/// Its visible length starts at the pool's `buf_len` and can be shortened with
/// [`PooledBuf::set_len`] (a last, partial chunk); it is reset when the buffer returns.
pub struct PooledBuf {
    buf: Option<AlignedBuf>,
    len: usize,
    pool: Arc<PoolInner>,
}

impl PooledBuf {
    /// Sets the visible length.
    ///
    /// # Panics
    /// If `len` exceeds [`PooledBuf::capacity`].
    pub fn set_len(&mut self, len: usize) {
        assert!(
            len <= self.capacity(),
            "length {len} exceeds the buffer's capacity {}",
            self.capacity()
        );
        self.len = len;
    }

    /// Sets every byte of the visible length to 0 (a pooled buffer keeps its previous
    /// lease's bytes).
    pub fn zero(&mut self) {
        self.fill(0);
    }

    /// The pool's buffer size in bytes.
    pub fn capacity(&self) -> usize {
        self.pool.buf_len
    }

    fn full(&self) -> &AlignedBuf {
        self.buf
            .as_ref()
            .expect("a leased buffer is present until drop")
    }
}

impl Deref for PooledBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.full()[..self.len]
    }
}

impl DerefMut for PooledBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        let len = self.len;
        &mut self
            .buf
            .as_mut()
            .expect("a leased buffer is present until drop")[..len]
    }
}

impl Drop for PooledBuf {
    fn drop(&mut self) {
        if let Some(buf) = self.buf.take() {
            let mut state = self.pool.free.lock().unwrap_or_else(|e| e.into_inner());
            state.free.push(buf);
            assert!(state.free.len() <= state.created);
            // A notify is a system call even with nobody waiting: skip it then.
            let waiting = state.waiting > 0;
            drop(state);
            if waiting {
                self.pool.returned.notify_one();
            }
        }
    }
}

impl fmt::Debug for PooledBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PooledBuf")
            .field("len", &self.len)
            .field("capacity", &self.capacity())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_buffer_is_huge_page_aligned_zeroed_and_writable() {
        let mut buf = AlignedBuf::new(HUGE_BUF_BYTES + 4096, 4096);
        assert_eq!(buf.len(), HUGE_BUF_BYTES + 4096);
        assert_eq!(
            buf.as_ptr() as usize % HUGE_BUF_BYTES,
            0,
            "mapped on a huge page"
        );
        assert!(buf.iter().all(|&b| b == 0));
        buf[HUGE_BUF_BYTES + 4095] = 7;
        let copy = buf.clone();
        assert_eq!(copy[HUGE_BUF_BYTES + 4095], 7);
        assert_eq!(copy.align(), 4096);
        let pool = BufferPool::new(3, 1 << 20, 4096).unwrap();
        let (mut a, mut b) = (pool.get(), pool.get());
        assert_eq!(pool.outstanding(), 2);
        a.fill(1);
        b.fill(2);
        assert!(
            a.iter().all(|&x| x == 1) && b.iter().all(|&x| x == 2),
            "pieces overlap"
        );
        let pair = [a.as_ptr() as usize, b.as_ptr() as usize];
        let low = pair[0].min(pair[1]);
        assert_eq!(
            low % HUGE_BUF_BYTES,
            0,
            "two 1 MiB buffers share a huge page"
        );
        assert_eq!(pair[0].abs_diff(pair[1]), 1 << 20);
        let c = pool.get();
        assert_eq!(
            c.as_ptr() as usize % HUGE_BUF_BYTES,
            0,
            "the third starts a new page"
        );
        assert!(pool.try_get().is_none(), "never more than count");
        drop((a, b, c));
        assert_eq!(pool.outstanding(), 0);
        let small = AlignedBuf::new(64 << 10, 4096);
        assert_eq!(small.as_ptr() as usize % 4096, 0);
    }
    use std::time::Duration;

    #[test]
    fn aligned_buf_is_aligned_and_zeroed() {
        for align in [1, 512, 4096] {
            let buf = AlignedBuf::new(10_000, align);
            assert_eq!(buf.as_ptr() as usize % align, 0);
            assert_eq!(buf.len(), 10_000);
            assert!(buf.iter().all(|&b| b == 0));
            let moved = Box::new(buf);
            assert_eq!(moved.as_ptr() as usize % align, 0);
        }
        let copy = AlignedBuf::from_slice(b"hello", 4096).clone();
        assert_eq!(&copy[..], b"hello");
        assert_eq!(copy.as_ptr() as usize % 4096, 0);
    }

    #[test]
    fn a_pool_without_buffers_or_with_a_bad_alignment_is_an_error() {
        for (count, align, field) in [(0, 4096, "count"), (1, 3000, "align"), (1, 0, "align")] {
            match BufferPool::new(count, 4096, align) {
                Err(e @ Error::BufferPool { .. }) => {
                    assert!(matches!(e, Error::BufferPool { field: f, .. } if f == field));
                    assert_eq!(e.device(), crate::NO_DEVICE);
                    assert!(e.to_string().contains(field), "{e}");
                }
                Err(other) => panic!("{count}, {align}: {other}"),
                Ok(_) => panic!("{count}, {align}: accepted"),
            }
        }
    }

    #[test]
    fn pool_blocks_while_all_out_and_refills_on_drop() {
        let pool = BufferPool::new(2, 4096, 4096).unwrap();
        let a = pool.get();
        let mut b = pool.get();
        assert_eq!(pool.outstanding(), 2);
        assert!(pool.try_get().is_none());
        b.set_len(100);
        assert_eq!(b.len(), 100);
        let p2 = pool.clone();
        let waiter = std::thread::spawn(move || p2.get().len());
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            !waiter.is_finished(),
            "get() returned while every buffer was out"
        );
        drop(b);
        assert_eq!(
            waiter.join().unwrap(),
            4096,
            "a returned buffer has its full length again"
        );
        drop(a);
        assert_eq!(pool.outstanding(), 0);
    }
}
