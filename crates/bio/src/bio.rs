//! `Bio`: one block I/O request with a completion that fires exactly once.

use crate::error::NOT_QUEUED;
use crate::queue::Tag;
use crate::{AlignedBuf, Error, PooledBuf};
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

/// What a bio asks of the device (and, in [`Error::Io`], what failed).
#[non_exhaustive]
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

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
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
/// [`Error::Cancelled`] (naming the queue's device) if the bio is dropped before it was
/// issued. It runs on the queue's end-I/O context (see [`crate::EndIo`]), not on the
/// thread that submitted the bio; [`crate::SubmitQueue::submit_wait`] and
/// [`crate::BioGroup`] wait for completions. Bios of one
/// *stream* (see [`Bio::with_stream`]; 0 by default) are issued in submission order;
/// bios of different streams may be reordered against each other, so they must not
/// overlap unless a flush separates them.
pub struct Bio {
    op: Op,
    offset: u64,
    stream: u64,
    buf: Option<BioBuf>,
    on_complete: Option<OnComplete>,
    /// Set when a queue accepts the bio: names its device (for `Cancelled`) and counts
    /// the bio until its completion returned (`SubmitQueue::wait_completions`).
    tag: Option<(Arc<Tag>, u8)>,
}

impl Bio {
    fn new(op: Op, offset: u64, buf: Option<BioBuf>, on_complete: OnComplete) -> Self {
        Self {
            op,
            offset,
            stream: 0,
            buf,
            on_complete: Some(on_complete),
            tag: None,
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

    /// Marks the bio as accepted by the queue `tag` belongs to, in completion epoch
    /// `epoch`.
    pub(crate) fn set_tag(&mut self, tag: Arc<Tag>, epoch: u8) {
        debug_assert!(self.tag.is_none(), "a bio is queued once");
        self.tag = Some((tag, epoch));
    }

    /// Runs `after` once the completion returned (or panicked), with its result.
    pub(crate) fn wrap_completion(
        &mut self,
        after: impl FnOnce(Result<(), &Error>) + Send + 'static,
    ) {
        let Some(inner) = self.on_complete.take() else {
            return;
        };
        self.on_complete = Some(Box::new(move |r: BioResult| {
            let _after = After {
                after: Some(after),
                failure: r.result.as_ref().err().map(Error::duplicate),
            };
            inner(r);
        }));
    }

    /// Fires the completion with `result` and hands the buffer back.
    pub fn complete(mut self, result: Result<(), Error>) {
        self.fire(result);
    }

    fn fire(&mut self, result: Result<(), Error>) {
        let Some(on_complete) = self.on_complete.take() else {
            return;
        };
        // Counted done even if the completion panics, so a waiter is never stuck.
        let _done = self.tag.take().map(|(tag, epoch)| TagDone { tag, epoch });
        on_complete(BioResult {
            op: self.op,
            offset: self.offset,
            stream: self.stream,
            buf: self.buf.take(),
            result,
        });
    }
}

/// Runs a wrapped completion's `after` when dropped: after the completion returned,
/// or while it unwinds, so a waiter is never stuck behind a panicking callback.
struct After<F: FnOnce(Result<(), &Error>)> {
    after: Option<F>,
    failure: Option<Error>,
}

impl<F: FnOnce(Result<(), &Error>)> Drop for After<F> {
    fn drop(&mut self) {
        if let Some(after) = self.after.take() {
            after(self.failure.as_ref().map_or(Ok(()), Err));
        }
    }
}

/// Counts a tagged bio's completion as returned when dropped.
struct TagDone {
    tag: Arc<Tag>,
    epoch: u8,
}

impl Drop for TagDone {
    fn drop(&mut self) {
        self.tag.done(self.epoch);
    }
}

impl Drop for Bio {
    fn drop(&mut self) {
        if self.on_complete.is_none() {
            return;
        }
        let device = self
            .tag
            .as_ref()
            .map_or_else(|| NOT_QUEUED.to_owned(), |(tag, _)| tag.device().to_owned());
        let offset = self.offset;
        self.fire(Err(Error::Cancelled { device, offset }));
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
            match r.result {
                Err(Error::Cancelled { offset: 7, device }) => assert_eq!(device, NOT_QUEUED),
                other => panic!("{other:?}"),
            }
            f.fetch_add(1, Ordering::SeqCst);
        }));
        assert_eq!(fired.load(Ordering::SeqCst), 2);
    }

    /// A bio a queue accepted and then dropped unissued was cancelled with an empty
    /// device name; it names the queue's device, and still counts as completed.
    #[test]
    fn a_queued_bio_dropped_unissued_names_its_device() {
        let tag = Arc::new(Tag::new("/dev/sdz".into()));
        let mut bio = Bio::write(512, vec![0u8; 512], |r| match r.result {
            Err(Error::Cancelled {
                device,
                offset: 512,
            }) => assert_eq!(device, "/dev/sdz"),
            other => panic!("{other:?}"),
        });
        bio.set_tag(Arc::clone(&tag), tag.enter());
        drop(bio);
        tag.wait(crate::queue::flip_epoch); // the drop counted the bio done: no hang
    }
}
