//! [`WorkQueue`]: a queue with `max_active` and a rescuer, after cmwq and XFS.

use crate::error::Result;
use crate::pool::{Config, Inner};
use crate::spawner::Spawner;
use crate::stats::Stats;
use crate::work::{Job, Queued, WorkItem};
use crate::workers::{queue_and_wait, queue_work, Handle};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Default `max_active`, as the kernel's `WQ_DFL_ACTIVE` is per CPU: a small bound.
pub const DEFAULT_MAX_ACTIVE: usize = 16;

/// A workqueue: at most `max_active` items run at once, each on a worker created on
/// demand through the [`Spawner`]; with a rescuer (made at construction), work still
/// runs when no worker can be created (cmwq's mayday after
/// [`RESCUE_GRACE`](crate::RESCUE_GRACE), 10 ms). This is
/// what XFS moved allocation to: fill in the arguments, `queue_and_wait`.
///
/// Cheap to clone; the last clone dropped shuts it down, running everything queued.
#[derive(Clone)]
pub struct WorkQueue {
    handle: Arc<Handle>,
}

impl fmt::Debug for WorkQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.handle.inner.fmt(f)
    }
}

impl WorkQueue {
    /// Starts building a workqueue named `name`.
    pub fn builder(name: impl Into<String>) -> WorkQueueBuilder {
        WorkQueueBuilder::new(name.into())
    }

    fn inner(&self) -> &Arc<Inner> {
        &self.handle.inner
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        self.inner().name()
    }

    /// Queues a closure.
    pub fn queue(&self, f: impl FnOnce() + Send + 'static) -> Result<()> {
        self.inner().submit(Job::once(f), false)
    }

    /// Queues a closure ahead of normal work.
    pub fn queue_high(&self, f: impl FnOnce() + Send + 'static) -> Result<()> {
        self.inner().submit(Job::once(f), true)
    }

    /// Queues a reusable work object; a no-op saying so if already pending.
    pub fn queue_work(&self, item: &WorkItem) -> Result<Queued> {
        queue_work(self.inner(), item, false)
    }

    /// Runs `f` on the queue and waits for its result; panics come back as
    /// [`Error::Panicked`](crate::Error::Panicked). Never hold a lock `f` needs while
    /// waiting (XFS's lesson, see [`Completion`](crate::Completion)).
    pub fn queue_and_wait<R: Send + 'static>(
        &self,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> Result<R> {
        queue_and_wait(self.inner(), f, false)
    }

    /// Waits for every item queued before the call.
    pub fn flush(&self) {
        self.inner().flush();
    }

    /// Waits until the queue is empty.
    pub fn drain(&self) {
        self.inner().drain();
    }

    /// Refuses new work, runs everything queued, stops the threads. Idempotent.
    pub fn shutdown(&self) {
        self.inner().shutdown();
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        self.inner().stats()
    }
}

/// Settings of a [`WorkQueue`].
#[derive(Debug, Clone)]
pub struct WorkQueueBuilder {
    cfg: Config,
}

impl WorkQueueBuilder {
    fn new(name: String) -> Self {
        Self {
            cfg: Config {
                min_threads: 0,
                max_threads: DEFAULT_MAX_ACTIVE,
                // One pending item makes a worker busy: the next item gets another
                // worker, as cmwq starts one when none is idle.
                busy_threshold: 1,
                rescuer: true,
                ..Config::with_defaults(name)
            },
        }
    }

    /// Most items running at once, i.e. most worker threads (default
    /// [`DEFAULT_MAX_ACTIVE`], 16).
    pub fn max_active(mut self, n: usize) -> Self {
        self.cfg.max_threads = n;
        self
    }

    /// Whether a rescuer thread is made with the queue (default on, as for a
    /// `WQ_MEM_RECLAIM` queue).
    pub fn rescuer(mut self, on: bool) -> Self {
        self.cfg.rescuer = on;
        self
    }

    /// How threads are created (tests pass a [`FailingSpawner`](crate::FailingSpawner)).
    pub fn spawner(mut self, spawner: Arc<dyn Spawner>) -> Self {
        self.cfg.spawner = spawner;
        self
    }

    /// Idle time after which a worker retires (default 2 s).
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.cfg.idle_timeout = timeout;
        self
    }

    /// Stack size of the queue's threads.
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.cfg.stack_size_bytes = Some(bytes);
        self
    }

    /// Creates the queue and its rescuer (or watchdog) thread; fails with
    /// [`Error::Spawn`](crate::Error::Spawn) if that thread cannot be made.
    pub fn build(self) -> Result<WorkQueue> {
        let inner = Inner::start(self.cfg)?;
        Ok(WorkQueue {
            handle: Arc::new(Handle { inner }),
        })
    }
}
