//! `SubmitQueue`: one per device; many threads queue bios, a few submitters issue them.
//!
//! Why dedicated submitter threads rather than "whoever submits first submits": the
//! caller (the ordered step of a write pipeline) must never sit in `pwritev` while the
//! next bios pile up behind it, and merging needs someone who can wait a plug timeout
//! for a partial run to grow. The submitters pick I/Os strictly one after another (the
//! issue order) but run up to [`QueueConfig::submitters`] of them at once (`issue.rs`):
//! one at a time leaves a device idle between I/Os. (A buffered regular file gets one
//! submitter by default: its inode lock serialises the writes anyway.) Completions go
//! to an end-I/O [`Workers`] pool, never run on a submitter.

use crate::bio::Bio;
use crate::issue::{submitter, InFlight};
use crate::sched::Sched;
use crate::stats::{QueueStats, SeqCounter};
use crate::{Device, DeviceInfo, DeviceKind, Error};
use stack_async_thread::{blocking, Workers};
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering as AtomicOrdering};
use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Tuning of a [`SubmitQueue`].
///
/// Start from [`QueueConfig::default`] and change what you need with the `with_*`
/// methods (or assign the public fields); new fields may come in later versions, so the
/// struct cannot be built with a literal outside this crate. [`SubmitQueue::new`]
/// checks the values and refuses impossible ones with [`Error::Config`].
///
/// ```
/// use stack_bio::QueueConfig;
/// use std::time::Duration;
/// let config = QueueConfig::default()
///     .with_max_io_bytes(256 << 10)
///     .with_plug_timeout(Duration::ZERO)
///     .with_submitters(2);
/// assert_eq!(config.max_io_bytes, 256 << 10);
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    /// Contiguous bios merge into one I/O up to this many bytes (default 1 MiB; more
    /// than 0).
    pub max_io_bytes: usize,
    /// Bytes queued or being issued at most; [`SubmitQueue::submit`] waits while it is
    /// reached (default 64 MiB; at least `max_io_bytes`).
    pub max_in_flight_bytes: u64,
    /// How long a run shorter than `max_io_bytes` waits for the bios that would extend it
    /// when the device is idle (8 times as long while I/Os are in flight; default 2 ms).
    pub plug_timeout: Duration,
    /// How many bytes one stream may issue in a row while others wait (default 32 MiB;
    /// more than 0).
    pub stream_budget_bytes: u64,
    /// How long the device stays with the stream being served, after its last I/O
    /// completed, waiting for that stream to continue before another stream gets it
    /// (while I/Os are in flight: 8 times this after the last one was issued; default
    /// 1 ms).
    pub anticipate: Duration,
    /// Submitter threads, so at most this many I/Os in flight at once (they are still
    /// picked in order). 1 issues strictly one I/O after another. 0 (the default) lets
    /// the queue choose for its device with [`default_submitters`]. At most
    /// [`MAX_QUEUE_DEPTH`]. [`SubmitQueue::info`] says what a queue ended up with.
    pub submitters: usize,
    /// Issue through one io_uring from one thread, with up to `submitters` I/Os in flight
    /// (0: [`DEFAULT_URING_DEPTH`]), instead of one thread per I/O in flight. Same order,
    /// overlap, flush and bound rules. Needs a [`crate::FileDevice`] (a regular file or
    /// block device) and a kernel that allows io_uring: [`SubmitQueue::new`] says why
    /// when it cannot ([`Error::is_unsupported`] is then true). Default off.
    pub io_uring: bool,
    /// After each write, ask the device to start writing it back from the page cache
    /// ([`Device::start_writeback`]; nothing to do with `O_DIRECT` or on memory), so
    /// the disk works while the page cache is still being filled instead of after the
    /// final flush. On an ext4 file it made writes plus flush about 15 % faster. Turn
    /// it off for a workload that overwrites the same range soon after, which would then
    /// wait for its writeback. Default on.
    pub write_behind: bool,
}

impl QueueConfig {
    /// Sets [`QueueConfig::max_io_bytes`].
    pub fn with_max_io_bytes(mut self, bytes: usize) -> Self {
        self.max_io_bytes = bytes;
        self
    }

    /// Sets [`QueueConfig::max_in_flight_bytes`].
    pub fn with_max_in_flight_bytes(mut self, bytes: u64) -> Self {
        self.max_in_flight_bytes = bytes;
        self
    }

    /// Sets [`QueueConfig::plug_timeout`].
    pub fn with_plug_timeout(mut self, timeout: Duration) -> Self {
        self.plug_timeout = timeout;
        self
    }

    /// Sets [`QueueConfig::stream_budget_bytes`].
    pub fn with_stream_budget_bytes(mut self, bytes: u64) -> Self {
        self.stream_budget_bytes = bytes;
        self
    }

    /// Sets [`QueueConfig::anticipate`].
    pub fn with_anticipate(mut self, anticipate: Duration) -> Self {
        self.anticipate = anticipate;
        self
    }

    /// Sets [`QueueConfig::submitters`].
    pub fn with_submitters(mut self, submitters: usize) -> Self {
        self.submitters = submitters;
        self
    }

    /// Sets [`QueueConfig::io_uring`].
    pub fn with_io_uring(mut self, on: bool) -> Self {
        self.io_uring = on;
        self
    }

    /// Sets [`QueueConfig::write_behind`].
    pub fn with_write_behind(mut self, on: bool) -> Self {
        self.write_behind = on;
        self
    }

    /// Refuses values no queue can run with, naming the field.
    fn check(&self, device: &str) -> Result<(), Error> {
        let bad = |field, reason| {
            Err(Error::Config {
                device: device.to_owned(),
                field,
                reason,
            })
        };
        if self.max_io_bytes == 0 {
            return bad("max_io_bytes", "must be more than 0");
        }
        if self.max_in_flight_bytes < self.max_io_bytes as u64 {
            return bad(
                "max_in_flight_bytes",
                "must hold one full I/O (at least max_io_bytes)",
            );
        }
        if self.stream_budget_bytes == 0 {
            return bad("stream_budget_bytes", "must be more than 0");
        }
        if self.submitters > MAX_QUEUE_DEPTH {
            return bad("submitters", "more than MAX_QUEUE_DEPTH");
        }
        Ok(())
    }
}

/// The most I/Os a queue may keep in flight ([`QueueConfig::submitters`]): a bound on
/// submitter threads, and on io_uring entries.
pub const MAX_QUEUE_DEPTH: usize = 256;

/// I/Os an io_uring queue keeps in flight when [`QueueConfig::submitters`] is 0.
pub const DEFAULT_URING_DEPTH: usize = 8;

/// What [`QueueConfig::submitters`] 0 becomes for a device.
///
/// One for a regular file without `O_DIRECT`: the kernel holds the file's inode lock
/// across each buffered write, so a second writer only spins on that lock and burns the
/// CPU the threads filling the buffers need (measured on tmpfs and ext4: one submitter
/// beat two). Otherwise the machine's parallelism clamped to 2..=4, so a device (or
/// direct I/O) has several I/Os in flight and is never idle between two of them.
pub fn default_submitters(info: &DeviceInfo) -> usize {
    if info.kind == DeviceKind::File && !info.direct {
        return 1;
    }
    std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(2, MAX_SUBMITTERS)
}

/// The most submitter threads the default picks.
const MAX_SUBMITTERS: usize = 4;

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            max_io_bytes: 1 << 20,
            max_in_flight_bytes: 64 << 20,
            plug_timeout: Duration::from_millis(2),
            stream_budget_bytes: 32 << 20,
            anticipate: Duration::from_millis(1),
            submitters: 0,
            io_uring: false,
            write_behind: true,
        }
    }
}

/// Everything the queue lock guards.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) sched: Sched,
    /// Bytes queued or being issued (the bounded quantity).
    pub(crate) in_flight_bytes: u64,
    pub(crate) in_flight_peak_bytes: u64,
    /// I/Os picked and not yet completed, in no particular order.
    pub(crate) in_flight: Vec<InFlight>,
    pub(crate) in_flight_ios_peak: usize,
    /// The ticket (issue position) of the next picked I/O.
    pub(crate) next_ticket: u64,
    /// A flush is running: nothing else may be picked.
    pub(crate) barrier: bool,
    /// Pushers blocked on the in-flight bound.
    pub(crate) waiters: usize,
    /// Of those, the ones waiting on `room` (sync lane or the served stream).
    pub(crate) favoured_waiters: usize,
    /// Submitters waiting for work.
    pub(crate) sleepers: usize,
    /// Submitters waiting for an earlier overlapping I/O.
    pub(crate) overlap_waiters: usize,
    pub(crate) overlap_waits: u64,
    pub(crate) shutdown: bool,
    /// The io_uring engine waits in its ring, where only its [`Shared::ring_wake`] reaches
    /// it: a push that makes work ready signals that instead of `work`.
    pub(crate) ring_waiting: bool,
    pub(crate) seq: SeqCounter,
    pub(crate) bios: u64,
    pub(crate) merged: u64,
    pub(crate) flushes: u64,
    pub(crate) split_retries: u64,
}

/// A job the end-I/O context runs: the completions of one issued I/O.
pub type EndIoJob = Box<dyn FnOnce() + Send + 'static>;

/// Where completions run. [`Workers`] is the normal choice (the end-I/O pool of the
/// btrfs seed, kept apart from the submit-side pool so the two cannot deadlock);
/// [`InlineEndIo`] runs them on the submitter thread. Any `Arc<E>` of an `EndIo` is one
/// too, `Arc<dyn EndIo>` included, so one context can serve several queues.
pub trait EndIo: Send + Sync + fmt::Debug {
    /// Runs `job` soon, or hands it back if it cannot (the pool shut down); the queue
    /// then runs it itself so no completion is lost.
    fn run(&self, job: EndIoJob) -> Result<(), EndIoJob>;
}

impl<E: EndIo + ?Sized> EndIo for Arc<E> {
    fn run(&self, job: EndIoJob) -> Result<(), EndIoJob> {
        (**self).run(job)
    }
}

impl EndIo for Workers {
    fn run(&self, job: EndIoJob) -> Result<(), EndIoJob> {
        // `queue` consumes the closure even when it refuses it, so the job sits in a
        // cell the refused closure only borrows, and comes back out on refusal.
        let cell = Arc::new(Mutex::new(Some(job)));
        let job_cell = Arc::clone(&cell);
        let queued = self.queue(move || {
            let job = job_cell.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(job) = job {
                job();
            }
        });
        match queued {
            Ok(()) => Ok(()),
            Err(_) => cell
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
                .map_or(Ok(()), Err),
        }
    }
}

/// Runs completions on the submitter thread itself: no pool, but a slow completion
/// then stalls the device queue.
#[derive(Debug, Clone, Copy, Default)]
pub struct InlineEndIo;

impl EndIo for InlineEndIo {
    fn run(&self, job: EndIoJob) -> Result<(), EndIoJob> {
        job();
        Ok(())
    }
}

/// What every bio a queue accepted points to: the device's name (for a bio dropped
/// unissued) and the count of bios whose completion has not returned yet, in two
/// epochs, so [`SubmitQueue::wait_completions`] waits for the bios accepted before it
/// and never for later ones (SRCU's two counters).
///
/// The epoch is read and its count raised under the queue lock (in `push`), and a
/// waiter flips the epoch under the same lock, so every bio is counted in the epoch
/// its `submit` saw; counts fall without any lock (an atomic per completion), and the
/// mutex is only taken to wake a waiter when a count reaches 0.
#[derive(Debug)]
pub(crate) struct Tag {
    device: String,
    /// The epoch new bios are counted in (0 or 1); flipped under the queue lock.
    epoch: AtomicU8,
    outstanding: [AtomicU64; 2],
    /// With `drained`: a waiter sleeps until its epoch's count is 0.
    sleep: Mutex<()>,
    drained: Condvar,
    /// One waiter at a time flips the epoch and waits for the old one.
    waiter: Mutex<()>,
}

impl Tag {
    pub(crate) fn new(device: String) -> Tag {
        Tag {
            device,
            epoch: AtomicU8::new(0),
            outstanding: [AtomicU64::new(0), AtomicU64::new(0)],
            sleep: Mutex::new(()),
            drained: Condvar::new(),
            waiter: Mutex::new(()),
        }
    }

    pub(crate) fn device(&self) -> &str {
        &self.device
    }

    /// Counts a newly accepted bio; returns its epoch. Called under the queue lock.
    pub(crate) fn enter(&self) -> u8 {
        let epoch = self.epoch.load(AtomicOrdering::Relaxed);
        self.outstanding[usize::from(epoch)].fetch_add(1, AtomicOrdering::SeqCst);
        epoch
    }

    /// A bio of `epoch` finished its completion.
    pub(crate) fn done(&self, epoch: u8) {
        let before = self.outstanding[usize::from(epoch)].fetch_sub(1, AtomicOrdering::SeqCst);
        assert!(before > 0, "a bio's completion counted twice");
        if before == 1 {
            // Under the mutex, so a waiter between its check and its sleep is not missed.
            let _sleep = self.sleep.lock().unwrap_or_else(|e| e.into_inner());
            self.drained.notify_all();
        }
    }

    /// Waits until every bio counted before the call finished its completion. `flip`
    /// flips the epoch under the queue lock (see [`Tag`]).
    pub(crate) fn wait(&self, flip: impl FnOnce(&AtomicU8) -> u8) {
        let _one = self.waiter.lock().unwrap_or_else(|e| e.into_inner());
        // The other epoch is empty: the previous waiter waited for it under `waiter`.
        let old = usize::from(flip(&self.epoch));
        let mut sleep = self.sleep.lock().unwrap_or_else(|e| e.into_inner());
        while self.outstanding[old].load(AtomicOrdering::SeqCst) > 0 {
            sleep = self.drained.wait(sleep).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// Flips `epoch` (0 ↔ 1) and returns the old value.
pub(crate) fn flip_epoch(epoch: &AtomicU8) -> u8 {
    epoch.fetch_xor(1, AtomicOrdering::Relaxed)
}

/// What a queue's engine issues through.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Engine {
    /// One submitter thread per I/O in flight, each in `preadv`/`pwritev`.
    Threads,
    /// One thread keeping the I/Os in flight through an io_uring.
    IoUring,
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Engine::Threads => "threads",
            Engine::IoUring => "io_uring",
        })
    }
}

/// What a [`SubmitQueue`] runs on, after [`QueueConfig`]'s defaults were resolved for
/// its device ([`SubmitQueue::info`]).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueInfo {
    /// The device's path or name.
    pub device: String,
    /// Threads or io_uring.
    pub engine: Engine,
    /// Threads the queue started to issue I/O (the io_uring engine has one).
    pub submitter_threads: usize,
    /// The most I/Os in flight at once (the resolved [`QueueConfig::submitters`]).
    pub depth: usize,
    /// The resolved config.
    pub config: QueueConfig,
}

/// What the queue handle and its submitter threads share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) device: Arc<dyn Device>,
    pub(crate) name: String,
    pub(crate) tag: Arc<Tag>,
    pub(crate) end_io: Arc<dyn EndIo>,
    pub(crate) config: QueueConfig,
    state: Mutex<State>,
    /// Wakes submitters: new work, blocked pushers, an idle device, shutdown.
    pub(crate) work: Condvar,
    /// Wakes pushers of the sync lane and the served stream blocked on the bound.
    pub(crate) room: Condvar,
    /// Wakes the other pushers blocked on the bound.
    pub(crate) room_others: Condvar,
    /// Wakes submitters waiting for an earlier overlapping I/O to complete.
    pub(crate) done: Condvar,
    /// The io_uring engine's eventfd (`None` for the threads engine).
    pub(crate) ring_wake: Option<crate::uring::Wake>,
}

impl State {
    /// Whether one more I/O may be picked now: no flush running and fewer than
    /// `submitters` I/Os in flight.
    pub(crate) fn may_pick(&self, config: &QueueConfig) -> bool {
        !self.barrier && self.in_flight.len() < config.submitters
    }
}

impl Shared {
    /// The shared half of a queue, before any submitter starts.
    fn new(
        device: Arc<dyn Device>,
        end_io: Arc<dyn EndIo>,
        config: QueueConfig,
        ring_wake: Option<crate::uring::Wake>,
    ) -> Shared {
        let name = device.info().path;
        let tag = Arc::new(Tag::new(name.clone()));
        let sched = Sched::new(
            config.max_io_bytes as u64,
            config.plug_timeout,
            config.anticipate,
            config.stream_budget_bytes,
        );
        Shared {
            device,
            name,
            tag,
            end_io,
            config,
            state: Mutex::new(State {
                sched,
                in_flight_bytes: 0,
                in_flight_peak_bytes: 0,
                in_flight: Vec::new(),
                in_flight_ios_peak: 0,
                next_ticket: 0,
                barrier: false,
                waiters: 0,
                favoured_waiters: 0,
                sleepers: 0,
                overlap_waiters: 0,
                overlap_waits: 0,
                shutdown: false,
                ring_waiting: false,
                seq: SeqCounter::default(),
                bios: 0,
                merged: 0,
                flushes: 0,
                split_retries: 0,
            }),
            work: Condvar::new(),
            room: Condvar::new(),
            room_others: Condvar::new(),
            done: Condvar::new(),
            ring_wake,
        }
    }

    /// Queues `bio` (see [`SubmitQueue::submit`]), waiting while the bound is reached,
    /// and wakes whichever engine has something new to pick.
    fn push(&self, mut bio: Bio, sync: bool) {
        let shared = self;
        let len = bio.len() as u64;
        let bound = shared.config.max_in_flight_bytes;
        let mut state = shared.lock();
        loop {
            if state.shutdown {
                drop(state);
                let offset = bio.offset();
                bio.complete(Err(Error::Cancelled {
                    device: shared.name.clone(),
                    offset,
                }));
                return;
            }
            let favoured = sync || state.sched.active_stream() == Some(bio.stream());
            let limit = if favoured {
                bound
            } else {
                bound - shared.reserve_bytes()
            };
            if state.in_flight_bytes == 0 || state.in_flight_bytes + len <= limit {
                break;
            }
            // Waiters of the served stream and of the sync lane wait apart from the
            // others, so freed room does not wake every blocked writer at once.
            state.waiters += 1;
            state.favoured_waiters += usize::from(favoured);
            if state.sleepers > 0 {
                shared.work.notify_one();
            }
            let room = if favoured {
                &shared.room
            } else {
                &shared.room_others
            };
            // Blocking on a pool worker: let the pool run the rest of its work meanwhile.
            state = blocking(|| room.wait(state).unwrap_or_else(|e| e.into_inner()));
            state.waiters -= 1;
            state.favoured_waiters -= usize::from(favoured);
        }
        state.in_flight_bytes += len;
        state.in_flight_peak_bytes = state.in_flight_peak_bytes.max(state.in_flight_bytes);
        bio.set_tag(Arc::clone(&shared.tag), shared.tag.enter());
        let pushed = state.sched.push(bio, sync, Instant::now());
        let wake = pushed.wake && state.sleepers > 0;
        // One signal per wait is enough: the engine clears this when it looks again.
        let wake_ring = pushed.wake && std::mem::take(&mut state.ring_waiting);
        drop(state);
        if wake {
            shared.work.notify_one();
        }
        if wake_ring {
            if let Some(ring_wake) = &shared.ring_wake {
                ring_wake.signal();
            }
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Bytes of the bound kept for the stream being served, so its writer can keep it
    /// busy while the others wait (see the `sched` module).
    pub(crate) fn reserve_bytes(&self) -> u64 {
        (2 * self.config.max_io_bytes as u64).min(self.config.max_in_flight_bytes / 2)
    }
}

/// A per-device submission queue: many threads [`submit`](Self::submit) bios, a few
/// submitter threads (or one io_uring) issue them in order, merged.
///
/// - Bios of one stream ([`Bio::with_stream`]) are issued in submission order;
///   contiguous ones merge into one vectored I/O of up to [`QueueConfig::max_io_bytes`].
/// - Completions run on the end-I/O context given to [`SubmitQueue::new`], never on the
///   submitting thread. [`flush`](Self::flush) returns when data is *durable*;
///   [`wait_completions`](Self::wait_completions) when the *callbacks* have run;
///   [`flush_and_wait`](Self::flush_and_wait) does both. [`submit_wait`](Self::submit_wait)
///   and [`BioGroup`](crate::BioGroup) wait for one bio or a set of them.
/// - [`submit`](Self::submit) waits while [`QueueConfig::max_in_flight_bytes`] are
///   queued; every wait of the queue runs inside [`stack_async_thread::blocking`], so
///   a pool worker that waits lets its pool go on.
/// - [`info`](Self::info) says what the queue runs on; [`stats`](Self::stats) what it
///   did.
///
/// Between streams the queue is an anticipating C-SCAN elevator: it serves one stream
/// for up to [`QueueConfig::stream_budget_bytes`], waits [`QueueConfig::anticipate`]
/// for it to continue, then moves on to the stream with the next higher offset.
///
/// ```
/// use stack_async_thread::Workers;
/// use stack_bio::{Bio, Engine, MemDevice, QueueConfig, SubmitQueue};
/// use std::sync::Arc;
///
/// let end_io = Workers::builder("end-io").max_threads(2).build()?;
/// let queue = SubmitQueue::new(Arc::new(MemDevice::new(1 << 20)), end_io, QueueConfig::default())?;
/// let info = queue.info();
/// assert_eq!(info.engine, Engine::Threads);
/// assert!(info.depth >= 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct SubmitQueue {
    shared: Arc<Shared>,
    submitters: Mutex<Vec<JoinHandle<()>>>,
    engine: Engine,
}

impl SubmitQueue {
    /// A queue on `device` whose completions run on `end_io`: a [`Workers`] pool (the
    /// usual choice), [`InlineEndIo`], an `Arc<dyn EndIo>`, or your own [`EndIo`].
    ///
    /// `config`'s zero defaults are resolved for the device ([`default_submitters`],
    /// [`DEFAULT_URING_DEPTH`]). Nothing panics on a bad config: the errors are
    /// [`Error::Config`] (a value no queue can run with), [`Error::UringUnsupported`] and
    /// [`Error::UringSetup`] (io_uring asked for and not available; check
    /// [`Error::is_unsupported`] to fall back to threads) and [`Error::Spawn`] (a
    /// thread could not be started).
    ///
    /// ```
    /// use stack_bio::{Error, InlineEndIo, MemDevice, QueueConfig, SubmitQueue};
    /// use std::sync::Arc;
    ///
    /// let dev = Arc::new(MemDevice::new(1 << 20));
    /// let bad = QueueConfig::default().with_max_io_bytes(0);
    /// let err = SubmitQueue::new(dev.clone(), InlineEndIo, bad).unwrap_err();
    /// assert!(matches!(err, Error::Config { field: "max_io_bytes", .. }));
    ///
    /// // io_uring needs a FileDevice: refused as unsupported, so fall back.
    /// let uring = QueueConfig::default().with_io_uring(true);
    /// let queue = match SubmitQueue::new(dev.clone(), InlineEndIo, uring) {
    ///     Err(e) if e.is_unsupported() => SubmitQueue::new(dev, InlineEndIo, QueueConfig::default())?,
    ///     other => other?,
    /// };
    /// # let _ = queue;
    /// # Ok::<(), Error>(())
    /// ```
    pub fn new(
        device: Arc<dyn Device>,
        end_io: impl EndIo + 'static,
        mut config: QueueConfig,
    ) -> Result<Self, Error> {
        let end_io: Arc<dyn EndIo> = Arc::new(end_io);
        let name = device.info().path;
        config.check(&name)?;
        if config.submitters == 0 {
            config.submitters = if config.io_uring {
                DEFAULT_URING_DEPTH
            } else {
                default_submitters(&device.info())
            };
        }
        assert!(config.submitters >= 1);
        assert!(config.max_in_flight_bytes >= config.max_io_bytes as u64);
        // The ring is set up before anything starts, so a refusal is the caller's error.
        let ring = if config.io_uring {
            if device.as_file_device().is_none() {
                return Err(Error::UringUnsupported {
                    device: name,
                    reason: "io_uring needs a file or block device opened as a FileDevice",
                });
            }
            let setup_err = |source| Error::UringSetup {
                device: name.clone(),
                source,
            };
            let ring = crate::uring::new_ring(config.submitters).map_err(setup_err)?;
            Some((ring, crate::uring::Wake::new().map_err(setup_err)?))
        } else {
            None
        };
        let (ring, ring_wake) = ring.unzip();
        let engine = if ring.is_some() {
            Engine::IoUring
        } else {
            Engine::Threads
        };
        let shared = Arc::new(Shared::new(device, end_io, config, ring_wake));
        let queue = Self {
            shared: Arc::clone(&shared),
            submitters: Mutex::new(Vec::new()),
            engine,
        };
        let spawn_err = |source| Error::Spawn {
            device: name.clone(),
            source,
        };
        if let Some(ring) = ring {
            let thread_shared = Arc::clone(&shared);
            let handle = std::thread::Builder::new()
                .name(format!("bio-uring:{}", short(&name)))
                .spawn(move || {
                    let file = thread_shared
                        .device
                        .as_file_device()
                        .expect("checked before the ring was set up");
                    let wake = thread_shared
                        .ring_wake
                        .as_ref()
                        .expect("set up with the ring");
                    crate::uring::submitter(&thread_shared, file, ring, wake);
                })
                .map_err(spawn_err)?;
            queue.lock_submitters().push(handle);
            return Ok(queue);
        }
        for i in 0..shared.config.submitters {
            let thread_shared = Arc::clone(&shared);
            let handle = std::thread::Builder::new()
                .name(format!("bio-submit{i}:{}", short(&name)))
                .spawn(move || submitter(&thread_shared))
                // Dropping the queue stops the submitters already started.
                .map_err(spawn_err)?;
            queue.lock_submitters().push(handle);
        }
        Ok(queue)
    }

    /// What the queue runs on: engine, submitter threads, depth and the resolved
    /// config (its zero defaults replaced by what was chosen for the device).
    ///
    /// ```
    /// use stack_bio::{Engine, InlineEndIo, MemDevice, QueueConfig, SubmitQueue};
    /// use std::sync::Arc;
    ///
    /// let config = QueueConfig::default().with_submitters(3);
    /// let queue = SubmitQueue::new(Arc::new(MemDevice::new(1 << 20)), InlineEndIo, config)?;
    /// let info = queue.info();
    /// assert_eq!((info.engine, info.submitter_threads, info.depth), (Engine::Threads, 3, 3));
    /// # Ok::<(), stack_bio::Error>(())
    /// ```
    pub fn info(&self) -> QueueInfo {
        let depth = self.shared.config.submitters;
        QueueInfo {
            device: self.shared.name.clone(),
            engine: self.engine,
            submitter_threads: match self.engine {
                Engine::IoUring => 1,
                Engine::Threads => depth,
            },
            depth,
            config: self.shared.config.clone(),
        }
    }

    fn lock_submitters(&self) -> MutexGuard<'_, Vec<JoinHandle<()>>> {
        self.submitters.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The device this queue issues to.
    pub fn device(&self) -> &Arc<dyn Device> {
        &self.shared.device
    }

    /// Queues `bio` on the normal lane and returns; its completion runs later on the
    /// end-I/O context. Waits (inside [`blocking`]) while
    /// [`QueueConfig::max_in_flight_bytes`] are queued or in flight. On a queue that was
    /// shut down, the bio completes at once with [`Error::Cancelled`].
    pub fn submit(&self, bio: Bio) {
        self.shared.push(bio, false);
    }

    /// Queues `bio` on the sync lane, issued ahead of the normal lane (but never ahead
    /// of a flush queued before it). Waits like [`submit`](Self::submit).
    pub fn submit_sync(&self, bio: Bio) {
        self.shared.push(bio, true);
    }

    /// Queues `bio` on the sync lane and waits until it completed: its own completion
    /// callback has run (on the end-I/O context) and returned. Returns the bio's result;
    /// read the data in the callback, or build the bio with a callback that hands the
    /// buffer back (as below).
    ///
    /// Never call it from a completion callback of this queue: with [`InlineEndIo`], or
    /// an end-I/O pool whose threads are all waiting, the completion could never run.
    ///
    /// ```
    /// use stack_async_thread::Workers;
    /// use stack_bio::{Bio, MemDevice, QueueConfig, SubmitQueue};
    /// use std::sync::{mpsc, Arc};
    ///
    /// let end_io = Workers::builder("end-io").build()?;
    /// let queue = SubmitQueue::new(Arc::new(MemDevice::new(1 << 20)), end_io, QueueConfig::default())?;
    /// queue.submit_wait(Bio::write(8192, vec![7u8; 4096], |_| {}))?;
    ///
    /// let (tx, rx) = mpsc::channel();
    /// queue.submit_wait(Bio::read(8192, vec![0u8; 4096], move |r| drop(tx.send(r.buf))))?;
    /// let buf = rx.recv()?.expect("a read hands its buffer back");
    /// assert!(buf.iter().all(|&b| b == 7));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn submit_wait(&self, mut bio: Bio) -> Result<(), Error> {
        let (tx, rx) = mpsc::sync_channel(1);
        bio.wrap_completion(move |r| drop(tx.send(r.map_err(Error::duplicate))));
        let offset = bio.offset();
        self.shared.push(bio, true);
        blocking(|| rx.recv()).unwrap_or_else(|_| Err(self.cancelled(offset)))
    }

    fn cancelled(&self, offset: u64) -> Error {
        Error::Cancelled {
            device: self.shared.name.clone(),
            offset,
        }
    }

    /// Returns once every write queued before the call is **durable** (a flush bio went
    /// through the queue and the device's flush succeeded).
    ///
    /// It does **not** wait for completion callbacks: the callbacks of the bios before
    /// the flush have been handed to the end-I/O context, but may not have run yet. Use
    /// [`flush_and_wait`](Self::flush_and_wait) when they must have run, or
    /// [`wait_completions`](Self::wait_completions) alone when durability is not needed.
    ///
    /// ```
    /// use stack_async_thread::Workers;
    /// use stack_bio::{Bio, MemDevice, QueueConfig, SubmitQueue};
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    ///
    /// let end_io = Workers::builder("end-io").build()?;
    /// let queue = SubmitQueue::new(Arc::new(MemDevice::new(1 << 20)), end_io, QueueConfig::default())?;
    /// let done = Arc::new(AtomicUsize::new(0));
    /// for i in 0..8u64 {
    ///     let done = Arc::clone(&done);
    ///     queue.submit(Bio::write(i * 4096, vec![1u8; 4096], move |r| {
    ///         r.result.unwrap();
    ///         done.fetch_add(1, Ordering::SeqCst);
    ///     }));
    /// }
    /// queue.flush()?; // durable; some callbacks may still be queued on `end-io`
    /// queue.wait_completions(); // now every callback has returned
    /// assert_eq!(done.load(Ordering::SeqCst), 8);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn flush(&self) -> Result<(), Error> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.shared
            .push(Bio::flush(move |r| drop(tx.send(r.result))), false);
        blocking(|| rx.recv()).unwrap_or_else(|_| Err(self.cancelled(0)))
    }

    /// Returns once the completion callback of every bio submitted before the call has
    /// run and returned (bios submitted meanwhile are not waited for). Says nothing
    /// about durability: see [`flush`](Self::flush).
    ///
    /// Never call it from a completion callback of this queue: it would wait for
    /// itself.
    pub fn wait_completions(&self) {
        blocking(|| {
            self.shared.tag.wait(|epoch| {
                let _queue = self.shared.lock();
                flip_epoch(epoch)
            })
        });
    }

    /// [`flush`](Self::flush), then [`wait_completions`](Self::wait_completions): every
    /// write queued before the call is durable *and* every completion callback of the
    /// bios queued before it has returned.
    pub fn flush_and_wait(&self) -> Result<(), Error> {
        let flushed = self.flush();
        self.wait_completions();
        flushed
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> QueueStats {
        let s = self.shared.lock();
        QueueStats {
            ios: s.seq.ios(),
            bios: s.bios,
            merged: s.merged,
            flushes: s.flushes,
            bytes: s.seq.bytes(),
            sequential_share: s.seq.sequential_share(),
            breaks_per_gib: s.seq.breaks_per_gib(),
            mean_io_bytes: s.seq.mean_io_bytes(),
            in_flight_peak_bytes: s.in_flight_peak_bytes,
            in_flight_ios_peak: s.in_flight_ios_peak as u64,
            overlap_waits: s.overlap_waits,
            split_retries: s.split_retries,
        }
    }

    /// Issues everything queued, then stops the submitters. Bios submitted afterwards
    /// complete with [`Error::Cancelled`]. Also done on drop.
    pub fn shutdown(&self) {
        self.shared.lock().shutdown = true;
        self.shared.work.notify_all();
        self.shared.room.notify_all();
        self.shared.room_others.notify_all();
        let handles = std::mem::take(&mut *self.lock_submitters());
        for handle in handles {
            if blocking(|| handle.join()).is_err() {
                eprintln!("bio submitter of {} panicked", self.shared.name);
            }
        }
    }
}

impl Drop for SubmitQueue {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn short(name: &str) -> &str {
    let base = name.rsplit('/').next().unwrap_or(name);
    base.get(..8).unwrap_or(base)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uring::Wake;
    use crate::MemDevice;

    /// The shared half of an io_uring queue with no engine thread: the test alone reads
    /// the eventfd, and plays the engine by setting `ring_waiting`.
    fn engineless() -> Shared {
        Shared::new(
            Arc::new(MemDevice::new(1 << 20)),
            Arc::new(InlineEndIo),
            QueueConfig {
                max_io_bytes: 64 << 10,
                ..QueueConfig::default()
            },
            Some(Wake::new().expect("eventfd")),
        )
    }

    fn write(offset: u64, stream: u64) -> Bio {
        Bio::write(offset, vec![0u8; 4096], |_| {}).with_stream(stream)
    }

    fn signals(shared: &Shared) -> u64 {
        shared.ring_wake.as_ref().expect("an eventfd").take_count()
    }

    #[test]
    fn a_push_with_something_new_signals_an_engine_waiting_in_its_ring() {
        let shared = engineless();
        shared.lock().ring_waiting = true;
        shared.push(write(0, 0), false);
        assert_eq!(signals(&shared), 1, "a new head: the engine must look");
        assert!(!shared.lock().ring_waiting, "one signal per wait");

        shared.push(write(1 << 19, 1), false);
        assert_eq!(
            signals(&shared),
            0,
            "signalled once already; the engine has not waited again"
        );

        shared.lock().ring_waiting = true;
        shared.push(write(4096, 0), false);
        assert_eq!(
            signals(&shared),
            0,
            "a partial run grew: its plug is unchanged"
        );
        assert!(
            shared.lock().ring_waiting,
            "still waiting, still to be signalled"
        );

        shared.push(Bio::flush(|_| {}), false);
        assert_eq!(signals(&shared), 1, "a flush is never plugged");
    }

    /// `wait_completions` waits for the bios counted before it and returns while bios
    /// counted after it are still outstanding (else a steady writer would starve it).
    #[test]
    fn a_completion_wait_ignores_bios_counted_after_it() {
        let tag = Arc::new(Tag::new("d".into()));
        let first = tag.enter();
        let (flipped_tx, flipped_rx) = mpsc::channel();
        let waiter = {
            let tag = Arc::clone(&tag);
            std::thread::spawn(move || {
                tag.wait(|epoch| {
                    let old = flip_epoch(epoch);
                    flipped_tx.send(()).unwrap();
                    old
                })
            })
        };
        flipped_rx.recv().unwrap();
        let later = tag.enter();
        assert_ne!(first, later, "counted in the new epoch");
        tag.done(first);
        waiter.join().unwrap(); // returns with `later` still outstanding
        tag.done(later);
        tag.wait(flip_epoch);
    }

    #[test]
    fn a_push_does_not_signal_an_engine_that_is_not_in_its_ring() {
        let shared = engineless();
        shared.push(write(0, 0), false);
        shared.push(write(8192, 0), true);
        assert_eq!(
            signals(&shared),
            0,
            "it will look at the queue before it waits"
        );
    }
}
