//! [`Workers`]: a named pool after btrfs's async worker threads.

use crate::completion::{CompleteOnDrop, Completion};
use crate::error::{panic_message, Error, Result};
use crate::ordered::Ordered;
use crate::pool::{Config, Inner};
use crate::spawner::{Spawner, ThreadSpawner};
use crate::stats::Stats;
use crate::work::{Job, Queued, WorkItem};
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

/// Default `busy_threshold`: the seed's 64 pending items.
pub const DEFAULT_BUSY_THRESHOLD: usize = 64;
/// Default idle time after which a worker beyond `min_threads` retires.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(2);
/// Default watchdog period (also how soon stuck work is noticed).
pub const DEFAULT_WATCHDOG_INTERVAL: Duration = Duration::from_millis(10);
/// Grace before the rescuer runs work no worker could be created for (cmwq's 10 ms).
pub const RESCUE_GRACE: Duration = Duration::from_millis(10);

impl Config {
    /// A [`Workers`] pool's defaults; [`WorkQueue`](crate::WorkQueue) starts from
    /// these too and changes what makes it a workqueue.
    pub(crate) fn with_defaults(name: String) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        Config {
            name,
            min_threads: 1,
            max_threads: default_max_threads(cores),
            busy_threshold: DEFAULT_BUSY_THRESHOLD,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            stack_size_bytes: None,
            spawner: Arc::new(ThreadSpawner),
            rescuer: false,
            watchdog_interval: DEFAULT_WATCHDOG_INTERVAL,
            rescue_grace: RESCUE_GRACE,
        }
    }
}

/// A pool's default `max_threads` on a machine with `cores` CPUs: two per core (room
/// for workers that block), at least 4, at most the crate's limit.
fn default_max_threads(cores: usize) -> usize {
    (2 * cores).clamp(4, crate::pool::MAX_THREADS)
}

/// Owns the pool: the last handle dropped shuts it down (workers keep only `Inner`).
pub(crate) struct Handle {
    pub(crate) inner: Arc<Inner>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.inner.shutdown();
    }
}

/// Queues `f` on `inner` and waits for its result; panics come back as errors.
pub(crate) fn queue_and_wait<R: Send + 'static>(
    inner: &Arc<Inner>,
    f: impl FnOnce() -> R + Send + 'static,
    high: bool,
) -> Result<R> {
    let done = Completion::new();
    let guard = CompleteOnDrop {
        completion: done.clone(),
        pool: inner.name().to_owned(),
    };
    let pool = inner.name().to_owned();
    let job = move || {
        match catch_unwind(AssertUnwindSafe(f)) {
            Ok(v) => guard.completion.complete(v),
            Err(p) => {
                let message = panic_message(&*p);
                guard.completion.fail(Error::Panicked {
                    pool,
                    message: message.clone(),
                });
                // Let the pool count it too.
                std::panic::resume_unwind(p);
            }
        }
        drop(guard);
    };
    inner.submit(Job::once(job), high)?;
    done.wait()
}

/// A named pool of worker threads, each with its own pending list (btrfs 2008).
///
/// A new item goes to the last-used worker while it has fewer than `busy_threshold`
/// pending, else to any worker under the threshold, else to a new thread (up to
/// `max_threads`), else to the least-loaded worker. Idle workers steal from busy or
/// blocked ones, and retire after `idle_timeout` down to `min_threads`.
///
/// Cheap to clone; the last clone dropped shuts the pool down (running everything
/// queued first).
#[derive(Clone)]
pub struct Workers {
    handle: Arc<Handle>,
}

impl fmt::Debug for Workers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.handle.inner.fmt(f)
    }
}

impl Workers {
    /// Starts building a pool named `name` (threads are named `NAME-N`).
    pub fn builder(name: impl Into<String>) -> WorkersBuilder {
        WorkersBuilder::new(name.into())
    }

    pub(crate) fn inner(&self) -> &Arc<Inner> {
        &self.handle.inner
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        self.handle.inner.name()
    }

    /// Queues a closure on the normal lane.
    pub fn queue(&self, f: impl FnOnce() + Send + 'static) -> Result<()> {
        self.handle.inner.submit(Job::once(f), false)
    }

    /// Queues a closure, or runs it at once on the calling thread when the pool is
    /// saturated: no worker can be added and every worker already has work waiting
    /// (a thread pool's *caller-runs* policy). A producer that outpaces the pool then
    /// does the work itself instead of queueing behind it, which bounds the queue and
    /// saves the hand-off (a wake-up, and the data going cold in the producer's cache)
    /// where there are no spare cores to gain from it. Returns whether it ran here.
    ///
    /// The closure runs as a worker would run it: a panic is caught and counted
    /// ([`Stats::panics`]), and the run counts in [`Stats::caller_runs`]. Not for work
    /// that waits for other items of this pool to run: the caller would wait for them
    /// instead of queueing.
    pub fn run_or_queue(&self, f: impl FnOnce() + Send + 'static) -> Result<Ran> {
        let inner = &self.handle.inner;
        if inner.saturated() {
            inner.run_on_caller(f)?;
            return Ok(Ran::Caller);
        }
        self.queue(f).map(|()| Ran::Queued)
    }

    /// Queues a closure on the high-priority lane, served before normal work.
    pub fn queue_high(&self, f: impl FnOnce() + Send + 'static) -> Result<()> {
        self.handle.inner.submit(Job::once(f), true)
    }

    /// Queues a reusable work object; a no-op saying so if it is already pending.
    pub fn queue_work(&self, item: &WorkItem) -> Result<Queued> {
        queue_work(&self.handle.inner, item, false)
    }

    /// [`queue_work`](Self::queue_work) on the high-priority lane.
    pub fn queue_work_high(&self, item: &WorkItem) -> Result<Queued> {
        queue_work(&self.handle.inner, item, true)
    }

    /// Runs `f` on the pool and waits for its result (XFS's allocation pattern). A
    /// panic in `f` comes back as [`Error::Panicked`]. Do not hold a lock `f` needs
    /// while you wait (see [`Completion`]).
    pub fn queue_and_wait<R: Send + 'static>(
        &self,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> Result<R> {
        queue_and_wait(&self.handle.inner, f, false)
    }

    /// A new, independent ordered stream on this pool.
    pub fn ordered(&self) -> Ordered {
        Ordered::new(self.clone())
    }

    /// Waits until every item queued before the call has run (later items do not
    /// hold it up). From inside an item of this pool, that item itself is not waited for.
    pub fn flush(&self) {
        self.handle.inner.flush();
    }

    /// Waits until the pool is empty (nothing queued or running).
    pub fn drain(&self) {
        self.handle.inner.drain();
    }

    /// Refuses new work ([`Error::ShutDown`]), runs every queued item, then stops the
    /// threads and waits for them. Idempotent; also what dropping the last clone does.
    pub fn shutdown(&self) {
        self.handle.inner.shutdown();
    }

    /// Whether [`shutdown`](Self::shutdown) has begun.
    pub fn is_shut_down(&self) -> bool {
        self.handle.inner.is_closed()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        self.handle.inner.stats()
    }
}

pub(crate) fn queue_work(inner: &Arc<Inner>, item: &WorkItem, high: bool) -> Result<Queued> {
    if !item.mark_pending() {
        inner.note_already_pending();
        return Ok(Queued::AlreadyPending);
    }
    match inner.submit(Job::Item(item.clone()), high) {
        Ok(()) => Ok(Queued::Queued),
        Err(e) => {
            item.unmark_pending();
            Err(e)
        }
    }
}

/// Where [`Workers::run_or_queue`] put a closure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ran {
    /// It already ran, on the calling thread (the pool was saturated).
    Caller,
    /// It was queued on the pool.
    Queued,
}

/// Settings of a [`Workers`] pool.
#[derive(Debug, Clone)]
pub struct WorkersBuilder {
    cfg: Config,
}

impl WorkersBuilder {
    fn new(name: String) -> Self {
        Self {
            cfg: Config::with_defaults(name),
        }
    }

    /// Threads kept even when idle (default 1); started by `build`.
    pub fn min_threads(mut self, n: usize) -> Self {
        self.cfg.min_threads = n;
        self
    }

    /// Most worker threads (default twice the cores, at least 4; at most
    /// [`MAX_THREADS`](crate::MAX_THREADS), 1024).
    pub fn max_threads(mut self, n: usize) -> Self {
        self.cfg.max_threads = n;
        self
    }

    /// Pending items at which a worker counts as busy (default
    /// [`DEFAULT_BUSY_THRESHOLD`], 64). Lower it to 2–4 for CPU-bound items: see
    /// "Tuning" in the crate docs.
    pub fn busy_threshold(mut self, n: usize) -> Self {
        self.cfg.busy_threshold = n;
        self
    }

    /// Idle time after which a thread beyond `min_threads` retires (default
    /// [`DEFAULT_IDLE_TIMEOUT`], 2 s).
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.cfg.idle_timeout = timeout;
        self
    }

    /// Stack size of the pool's threads (default: the platform's).
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.cfg.stack_size_bytes = Some(bytes);
        self
    }

    /// How threads are created (tests pass a [`FailingSpawner`](crate::FailingSpawner)).
    pub fn spawner(mut self, spawner: Arc<dyn Spawner>) -> Self {
        self.cfg.spawner = spawner;
        self
    }

    /// Whether the helper thread also rescues (runs stuck work when no worker can be
    /// created). Default off for `Workers`; a [`WorkQueue`](crate::WorkQueue) asks for it.
    pub fn rescuer(mut self, on: bool) -> Self {
        self.cfg.rescuer = on;
        self
    }

    /// Watchdog period (default [`DEFAULT_WATCHDOG_INTERVAL`], 10 ms).
    ///
    /// It also bounds a latency the queue path trades for throughput: a producer wakes
    /// an idle worker to take work from a busy one only when a few items (4) wait
    /// behind it, so up to 3 items queued behind a long CPU-bound item that never
    /// calls [`blocking`](crate::blocking) may wait up to one period for the watchdog
    /// to hand them over. Items that block in this crate's waits are not affected.
    pub fn watchdog_interval(mut self, interval: Duration) -> Self {
        self.cfg.watchdog_interval = interval;
        self
    }

    /// Starts the helper thread and `min_threads` workers.
    pub fn build(self) -> Result<Workers> {
        let inner = Inner::start(self.cfg)?;
        Ok(Workers {
            handle: Arc::new(Handle { inner }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_max_threads_is_two_per_core_from_four_up_to_the_limit() {
        let got: Vec<usize> = [1, 2, 3, 8, 100, 4096]
            .into_iter()
            .map(default_max_threads)
            .collect();
        assert_eq!(got, [4, 4, 6, 16, 200, crate::pool::MAX_THREADS]);
    }
}
