//! `Bio`: one block I/O request with a completion that fires exactly once.

use crate::{AlignedBuf, Error, PooledBuf};
use std::fmt;
use std::ops::{Deref, DerefMut};

/// What a bio asks of the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// Fill the buffer from the offset.
    Read,
    /// Write the buffer at the offset.
    Write,
    /// Make every write queued before it durable.
    Flush,
}

impl Op {
    /// `"read"`, `"write"` or `"flush"`, as in [`Error::Io`].
    pub fn name(self) -> &'static str {
        match self {
            Op::Read => "read",
            Op::Write => "write",
            Op::Flush => "flush",
        }
    }
}

/// The buffer a bio carries; it comes back in the [`BioResult`].
#[derive(Debug)]
pub enum BioBuf {
    /// An aligned buffer (needed for `O_DIRECT`).
    Aligned(AlignedBuf),
    /// A buffer leased from a [`crate::BufferPool`]; dropping it returns it.
    Pooled(PooledBuf),
    /// A plain vector (buffered devices only).
    Vec(Vec<u8>),
}

impl Deref for BioBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            BioBuf::Aligned(b) => b,
            BioBuf::Pooled(b) => b,
            BioBuf::Vec(b) => b,
        }
    }
}

impl DerefMut for BioBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        match self {
            BioBuf::Aligned(b) => b,
            BioBuf::Pooled(b) => b,
            BioBuf::Vec(b) => b,
        }
    }
}

impl From<AlignedBuf> for BioBuf {
    fn from(b: AlignedBuf) -> Self {
        BioBuf::Aligned(b)
    }
}

impl From<PooledBuf> for BioBuf {
    fn from(b: PooledBuf) -> Self {
        BioBuf::Pooled(b)
    }
}

impl From<Vec<u8>> for BioBuf {
    fn from(b: Vec<u8>) -> Self {
        BioBuf::Vec(b)
    }
}

/// What a completion receives: the outcome, and the buffer back (none for a flush).
#[derive(Debug)]
pub struct BioResult {
    /// The bio's op.
    pub op: Op,
    /// The bio's offset (0 for a flush).
    pub offset: u64,
    /// The bio's stream.
    pub stream: u64,
    /// The buffer (filled, for a successful read).
    pub buf: Option<BioBuf>,
    /// `Ok`, or the error naming device and offset.
    pub result: Result<(), Error>,
}

/// A completion callback.
pub type OnComplete = Box<dyn FnOnce(BioResult) + Send + 'static>;

/// A block I/O request: op, offset, buffer, stream and completion.
///
/// The completion fires exactly once: when the I/O is done, or with
/// [`Error::Cancelled`] if the bio is dropped before it was issued. Bios of one
/// *stream* (see [`Bio::with_stream`]; 0 by default) are issued in submission order;
/// bios of different streams may be reordered against each other, so they must not
/// overlap unless a flush separates them.
pub struct Bio {
    op: Op,
    offset: u64,
    stream: u64,
    buf: Option<BioBuf>,
    on_complete: Option<OnComplete>,
}

impl Bio {
    fn new(op: Op, offset: u64, buf: Option<BioBuf>, on_complete: OnComplete) -> Self {
        Self {
            op,
            offset,
            stream: 0,
            buf,
            on_complete: Some(on_complete),
        }
    }

    /// Reads `buf.len()` bytes at `offset` into `buf`.
    pub fn read(
        offset: u64,
        buf: impl Into<BioBuf>,
        on_complete: impl FnOnce(BioResult) + Send + 'static,
    ) -> Self {
        Self::new(Op::Read, offset, Some(buf.into()), Box::new(on_complete))
    }

    /// Writes `buf` at `offset`.
    pub fn write(
        offset: u64,
        buf: impl Into<BioBuf>,
        on_complete: impl FnOnce(BioResult) + Send + 'static,
    ) -> Self {
        Self::new(Op::Write, offset, Some(buf.into()), Box::new(on_complete))
    }

    /// Completes after every write queued before it is durable.
    pub fn flush(on_complete: impl FnOnce(BioResult) + Send + 'static) -> Self {
        Self::new(Op::Flush, 0, None, Box::new(on_complete))
    }

    /// Puts the bio in `stream`: order is kept within a stream, not across streams.
    pub fn with_stream(mut self, stream: u64) -> Self {
        self.stream = stream;
        self
    }

    /// The op.
    pub fn op(&self) -> Op {
        self.op
    }

    /// The byte offset (0 for a flush).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The stream.
    pub fn stream(&self) -> u64 {
        self.stream
    }

    /// Length in bytes (0 for a flush).
    pub fn len(&self) -> usize {
        self.buf.as_ref().map_or(0, |b| b.len())
    }

    /// Whether the bio moves no bytes (a flush, or an empty buffer).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Offset one past the last byte.
    pub fn end(&self) -> u64 {
        self.offset + self.len() as u64
    }

    /// The buffer.
    pub fn buf(&self) -> Option<&BioBuf> {
        self.buf.as_ref()
    }

    pub(crate) fn buf_mut(&mut self) -> Option<&mut BioBuf> {
        self.buf.as_mut()
    }

    /// Fires the completion with `result` and hands the buffer back.
    pub fn complete(mut self, result: Result<(), Error>) {
        self.fire(result);
    }

    fn fire(&mut self, result: Result<(), Error>) {
        let Some(on_complete) = self.on_complete.take() else {
            return;
        };
        on_complete(BioResult {
            op: self.op,
            offset: self.offset,
            stream: self.stream,
            buf: self.buf.take(),
            result,
        });
    }
}

impl Drop for Bio {
    fn drop(&mut self) {
        let offset = self.offset;
        self.fire(Err(Error::Cancelled {
            device: String::new(),
            offset,
        }));
    }
}

impl fmt::Debug for Bio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bio")
            .field("op", &self.op)
            .field("offset", &self.offset)
            .field("len", &self.len())
            .field("stream", &self.stream)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn completion_fires_once_and_drop_cancels() {
        let fired = Arc::new(AtomicUsize::new(0));
        let f = fired.clone();
        let bio = Bio::write(4096, vec![1u8; 10], move |r| {
            assert!(r.result.is_ok());
            assert_eq!(r.buf.unwrap().len(), 10);
            f.fetch_add(1, Ordering::SeqCst);
        });
        assert_eq!(bio.end(), 4106);
        bio.complete(Ok(()));
        assert_eq!(fired.load(Ordering::SeqCst), 1);
        let f = fired.clone();
        drop(Bio::read(7, vec![0u8; 1], move |r| {
            assert!(matches!(r.result, Err(Error::Cancelled { offset: 7, .. })));
            f.fetch_add(1, Ordering::SeqCst);
        }));
        assert_eq!(fired.load(Ordering::SeqCst), 2);
    }
}
