//! `AllocQueue`: allocations run on a rescuer-backed workqueue and the caller waits on a
//! completion, as XFS's `xfs_alloc_vextent` does after the allocation-workqueue commit.
//!
//! The hand-off to a worker thread costs tens of microseconds against about one for an
//! allocation, so the queue pays its way by carrying several requests per hand-off
//! ([`AllocQueue::alloc_batch`]) and by callers asking for large extents (a stream's
//! reservation, not one block at a time).
//!
//! The allocator itself never queues anything: it only locks its own groups, so it can
//! never wait on a pool that waits on it.

use crate::{AllocRequest, Allocator, Error, Extent, Stream};
use stack_async_thread::{Spawner, Stats, WorkQueue, DEFAULT_MAX_ACTIVE};
use std::sync::{Arc, Mutex, MutexGuard};

/// Most requests one `alloc_batch` hand-off may carry, so a worker is never held for an
/// unbounded time and a caller's batch stays a bounded allocation.
pub const MAX_BATCH: usize = 4096;

/// The name an [`AllocQueue`]'s workqueue (and its threads) get unless told otherwise.
pub const DEFAULT_ALLOC_QUEUE_NAME: &str = "alloc";

/// An allocator behind a workqueue with a rescuer. Cheap to clone; clones share the
/// queue.
///
/// Every call waits for its hand-off inside [`stack_async_thread::blocking`], so it
/// may be made from a pool worker. Errors are the allocator's own ([`Error::NoSpace`],
/// ...) or [`Error::Queue`] with the workqueue's typed error (shut down, panicked).
///
/// ```
/// use stack_alloc::{AllocQueue, AllocRequest, Allocator, Extent};
///
/// let allocator = Allocator::new(1 << 16, 1 << 12)?;
/// let queue = AllocQueue::builder(allocator.clone()).name("vol0-alloc").max_active(4).build()?;
/// assert_eq!(queue.alloc(AllocRequest::exact(100, 8, 8))?, Extent::new(100, 8));
/// let batch = queue.alloc_batch(vec![AllocRequest::any(4); 3])?;
/// assert!(batch.iter().all(|r| r.is_ok()));
///
/// // A stream whose allocations run on the queue.
/// let stream = queue.stream();
/// let a = stream.alloc(16, 16)?;
/// let b = stream.alloc(16, 16)?;
/// assert_eq!(b.start, a.end(), "a stream continues its run");
/// # Ok::<(), stack_alloc::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct AllocQueue {
    allocator: Allocator,
    queue: WorkQueue,
}

/// Settings of an [`AllocQueue`] ([`AllocQueue::builder`]).
#[derive(Debug, Clone)]
pub struct AllocQueueBuilder {
    allocator: Allocator,
    name: String,
    max_active: usize,
    spawner: Option<Arc<dyn Spawner>>,
}

impl AllocQueueBuilder {
    /// The workqueue's name, shown in its thread names and errors (default
    /// [`DEFAULT_ALLOC_QUEUE_NAME`]).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Most allocations running at once (default
    /// [`DEFAULT_MAX_ACTIVE`](stack_async_thread::DEFAULT_MAX_ACTIVE), 16).
    pub fn max_active(mut self, n: usize) -> Self {
        self.max_active = n;
        self
    }

    /// How threads are created (tests pass a
    /// [`FailingSpawner`](stack_async_thread::FailingSpawner)); default `std::thread`.
    pub fn spawner(mut self, spawner: Arc<dyn Spawner>) -> Self {
        self.spawner = Some(spawner);
        self
    }

    /// Creates the workqueue and its rescuer thread. A bad setting (`max_active` 0 or
    /// above the pool limit) or a thread that cannot be created is an [`Error::Queue`].
    pub fn build(self) -> Result<AllocQueue, Error> {
        let mut queue = WorkQueue::builder(self.name)
            .rescuer(true)
            .max_active(self.max_active);
        if let Some(spawner) = self.spawner {
            queue = queue.spawner(spawner);
        }
        Ok(AllocQueue {
            allocator: self.allocator,
            queue: queue.build()?,
        })
    }
}

impl AllocQueue {
    /// Starts building a queue in front of `allocator` (a cheap handle: clone yours).
    pub fn builder(allocator: Allocator) -> AllocQueueBuilder {
        AllocQueueBuilder {
            allocator,
            name: DEFAULT_ALLOC_QUEUE_NAME.to_owned(),
            max_active: DEFAULT_MAX_ACTIVE,
            spawner: None,
        }
    }

    /// A queue with the defaults: `AllocQueue::builder(allocator).build()`.
    pub fn new(allocator: Allocator) -> Result<Self, Error> {
        Self::builder(allocator).build()
    }

    /// Runs one allocation on the queue and waits for it.
    pub fn alloc(&self, req: AllocRequest) -> Result<Extent, Error> {
        let a = self.allocator.clone();
        self.queue.queue_and_wait(move || a.alloc(&req))?
    }

    /// Runs several allocations in one hand-off and waits for all of them; results come
    /// back in request order. Batches longer than [`MAX_BATCH`] are split into several
    /// hand-offs.
    ///
    /// The outer `Err` is the hand-off's own failure ([`Error::Queue`], typed): no
    /// request of the failing hand-off ran. With a batch split in several hand-offs,
    /// the ones before it did run, and their extents are freed again (uncommitted)
    /// before the error returns, so a failed call allocates nothing.
    pub fn alloc_batch(
        &self,
        reqs: Vec<AllocRequest>,
    ) -> Result<Vec<Result<Extent, Error>>, Error> {
        let mut out = Vec::with_capacity(reqs.len());
        for chunk in reqs.chunks(MAX_BATCH) {
            let chunk = chunk.to_vec();
            let n = chunk.len();
            let a = self.allocator.clone();
            let done = self
                .queue
                .queue_and_wait(move || chunk.iter().map(|r| a.alloc(r)).collect::<Vec<_>>());
            match done {
                Ok(results) => {
                    assert_eq!(results.len(), n);
                    out.extend(results);
                }
                Err(e) => {
                    for extent in out.into_iter().flatten() {
                        // Allocated by this call and never handed out: in use, so
                        // freeing cannot fail short of a bug.
                        let freed = self.allocator.free_uncommitted(extent);
                        debug_assert!(freed.is_ok(), "undoing a batch: {freed:?}");
                    }
                    return Err(Error::Queue(e));
                }
            }
        }
        assert_eq!(out.len(), reqs.len());
        Ok(out)
    }

    /// A new [`Stream`] of the allocator whose allocations run on this queue
    /// ([`QueueStream::alloc`]).
    pub fn stream(&self) -> QueueStream {
        self.wrap(self.allocator.stream())
    }

    /// [`stream`](Self::stream) reserving `reserve_blocks` ahead of its writes.
    pub fn stream_with_reserve(&self, reserve_blocks: u64) -> QueueStream {
        self.wrap(self.allocator.stream_with_reserve(reserve_blocks))
    }

    fn wrap(&self, stream: Stream) -> QueueStream {
        QueueStream {
            queue: self.clone(),
            stream: Arc::new(Mutex::new(stream)),
        }
    }

    /// The allocator behind the queue (frees and commits go to it directly: they never
    /// need a fresh stack or the rescuer).
    pub fn allocator(&self) -> &Allocator {
        &self.allocator
    }

    /// The workqueue's name.
    pub fn name(&self) -> &str {
        self.queue.name()
    }

    /// The workqueue's counters (threads, items run, rescuer runs).
    pub fn stats(&self) -> Stats {
        self.queue.stats()
    }

    /// Runs everything queued and stops the queue's threads.
    pub fn shutdown(&self) {
        self.queue.shutdown();
    }
}

/// A [`Stream`] whose allocations run on an [`AllocQueue`] (from
/// [`AllocQueue::stream`]). Cheap to clone; clones share the stream, and the
/// reservation goes back when the last one is dropped.
#[derive(Debug, Clone)]
pub struct QueueStream {
    queue: AllocQueue,
    stream: Arc<Mutex<Stream>>,
}

impl QueueStream {
    /// [`Stream::alloc`] on the queue: the next extent of the stream, between `min_len`
    /// and `max_len` blocks, continuing the previous one whenever the space after it is
    /// free.
    pub fn alloc(&self, min_len: u64, max_len: u64) -> Result<Extent, Error> {
        let stream = Arc::clone(&self.stream);
        self.queue
            .queue
            .queue_and_wait(move || lock(&stream).alloc(min_len, max_len))?
    }

    /// How many separate runs the stream handed out ([`Stream::runs`]).
    pub fn runs(&self) -> u64 {
        lock(&self.stream).runs()
    }

    /// Blocks handed out so far ([`Stream::handed_out_blocks`]).
    pub fn handed_out_blocks(&self) -> u64 {
        lock(&self.stream).handed_out_blocks()
    }

    /// The reservation held ahead of the next write ([`Stream::reserved`]).
    pub fn reserved(&self) -> Option<Extent> {
        lock(&self.stream).reserved()
    }
}

fn lock(stream: &Mutex<Stream>) -> MutexGuard<'_, Stream> {
    // A panic inside `Stream::alloc` leaves no half-made reservation worth refusing.
    stream.lock().unwrap_or_else(|e| e.into_inner())
}
