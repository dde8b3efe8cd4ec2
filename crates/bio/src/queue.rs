//! `SubmitQueue`: one per device; many threads queue bios, a few submitters issue them.
//!
//! Why dedicated submitter threads rather than "whoever submits first submits": the
//! caller (the ordered step of a write pipeline) must never sit in `pwritev` while the
//! next bios pile up behind it, and merging needs someone who can wait a plug timeout
//! for a partial run to grow. The submitters pick I/Os strictly one after another (the
//! issue order) but run up to [`QueueConfig::submitters`] of them at once (`issue.rs`):
//! one at a time leaves a device idle between I/Os. (A buffered regular file gets one
//! submitter by default: its inode lock serialises the writes anyway.) Completions go to an end-I/O [`Workers`] pool, never run on a submitter.

use crate::bio::Bio;
use crate::issue::{submitter, InFlight};
use crate::sched::Sched;
use crate::stats::{QueueStats, SeqCounter};
use crate::{Device, DeviceInfo, DeviceKind, Error};
use stack_async_thread::Workers;
use std::fmt;
use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Tuning of a [`SubmitQueue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    /// Contiguous bios merge into one I/O up to this many bytes.
    pub max_io_bytes: usize,
    /// Bytes queued or being issued at most; submitters wait while it is reached.
    pub max_in_flight_bytes: u64,
    /// How long a run shorter than `max_io_bytes` waits for the bios that would extend it
    /// when the device is idle (8 times as long while I/Os are in flight).
    pub plug_timeout: Duration,
    /// How many bytes one stream may issue in a row while others wait.
    pub stream_budget_bytes: u64,
    /// How long the device stays with the stream being served, after its last I/O
    /// completed, waiting for that stream to continue before another stream gets it
    /// (while I/Os are in flight: 8 times this after the last one was issued).
    pub anticipate: Duration,
    /// Submitter threads, so at most this many I/Os in flight at once (they are still
    /// picked in order). 1 issues strictly one I/O after another. 0 (the default) lets
    /// the queue choose for its device with [`default_submitters`].
    pub submitters: usize,
    /// Issue through one io_uring from one thread, with up to `submitters` I/Os in flight
    /// (0: [`DEFAULT_URING_DEPTH`]), instead of one thread per I/O in flight. Same order,
    /// overlap, flush and bound rules. Needs a [`crate::FileDevice`] (a regular file or
    /// block device) and a kernel that allows io_uring: [`SubmitQueue::try_new`] says
    /// why when it cannot.
    pub io_uring: bool,
    /// After each write, ask the device to start writing it back from the page cache
    /// ([`Device::start_writeback`]; nothing to do with `O_DIRECT` or on memory), so
    /// the disk works while the page cache is still being filled instead of after the
    /// final flush. On the bench's ext4 file it made writes plus flush about 15 %
    /// faster (`docs/PERFORMANCE.md`, round 6). Turn it off for a workload that
    /// overwrites the same range soon after, which would then wait for its writeback.
    pub write_behind: bool,
}

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
/// [`InlineEndIo`] runs them on the submitter thread.
pub trait EndIo: Send + Sync + fmt::Debug {
    /// Runs `job` soon, or hands it back if it cannot (the pool shut down); the queue
    /// then runs it itself so no completion is lost.
    fn run(&self, job: EndIoJob) -> Result<(), EndIoJob>;
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

/// What the queue handle and its submitter threads share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) device: Arc<dyn Device>,
    pub(crate) name: String,
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
        let sched = Sched::new(
            config.max_io_bytes as u64,
            config.plug_timeout,
            config.anticipate,
            config.stream_budget_bytes,
        );
        Shared {
            device,
            name,
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
    fn push(&self, bio: Bio, sync: bool) {
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
            state = room.wait(state).unwrap_or_else(|e| e.into_inner());
            state.waiters -= 1;
            state.favoured_waiters -= usize::from(favoured);
        }
        state.in_flight_bytes += len;
        state.in_flight_peak_bytes = state.in_flight_peak_bytes.max(state.in_flight_bytes);
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
    /// busy while the others wait (see `sched.rs`).
    pub(crate) fn reserve_bytes(&self) -> u64 {
        (2 * self.config.max_io_bytes as u64).min(self.config.max_in_flight_bytes / 2)
    }
}

/// A per-device submission queue (see the module docs and `ARCHITECTURE.md`).
#[derive(Debug)]
pub struct SubmitQueue {
    shared: Arc<Shared>,
    submitters: Mutex<Vec<JoinHandle<()>>>,
}

impl SubmitQueue {
    /// A queue on `device` whose completions run on `end_io`.
    ///
    /// # Panics
    /// If a submitter thread cannot be started (see [`SubmitQueue::try_new`]) or the
    /// config has a zero size.
    pub fn new(device: Arc<dyn Device>, end_io: Workers, config: QueueConfig) -> Self {
        Self::try_new(device, Arc::new(end_io), config).expect("starting the bio submitter thread")
    }

    /// Like [`SubmitQueue::new`] with any [`EndIo`], returning the thread-spawn error
    /// instead of panicking.
    pub fn try_new(
        device: Arc<dyn Device>,
        end_io: Arc<dyn EndIo>,
        mut config: QueueConfig,
    ) -> std::io::Result<Self> {
        assert!(config.max_io_bytes > 0);
        if config.submitters == 0 {
            config.submitters = if config.io_uring {
                DEFAULT_URING_DEPTH
            } else {
                default_submitters(&device.info())
            };
        }
        // The ring is set up before anything starts, so a refusal is the caller's error.
        let ring = if config.io_uring {
            if device.as_file_device().is_none() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::Unsupported,
                    format!(
                        "io_uring needs a file or block device opened as a FileDevice, not {}",
                        device.info().path
                    ),
                ));
            }
            let setup_err = |e: std::io::Error| {
                let device = device.info().path;
                std::io::Error::new(e.kind(), format!("setting up io_uring for {device}: {e}"))
            };
            let ring = crate::uring::new_ring(config.submitters).map_err(setup_err)?;
            Some((ring, crate::uring::Wake::new().map_err(setup_err)?))
        } else {
            None
        };
        let (ring, ring_wake) = ring.unzip();
        assert!(
            config.max_in_flight_bytes >= config.max_io_bytes as u64,
            "the in-flight bound must hold one full I/O"
        );
        let shared = Arc::new(Shared::new(device, end_io, config, ring_wake));
        let name = shared.name.clone();
        let queue = Self {
            shared: Arc::clone(&shared),
            submitters: Mutex::new(Vec::new()),
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
                })?;
            queue.lock_submitters().push(handle);
            return Ok(queue);
        }
        for i in 0..shared.config.submitters {
            let thread_shared = Arc::clone(&shared);
            let handle = std::thread::Builder::new()
                .name(format!("bio-submit{i}:{}", short(&name)))
                .spawn(move || submitter(&thread_shared));
            match handle {
                Ok(handle) => queue.lock_submitters().push(handle),
                // Dropping the queue stops the submitters already started.
                Err(err) => return Err(err),
            }
        }
        Ok(queue)
    }

    fn lock_submitters(&self) -> MutexGuard<'_, Vec<JoinHandle<()>>> {
        self.submitters.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The device this queue issues to.
    pub fn device(&self) -> &Arc<dyn Device> {
        &self.shared.device
    }

    /// Queues `bio` on the normal lane; waits while the in-flight bound is reached.
    pub fn submit(&self, bio: Bio) {
        self.shared.push(bio, false);
    }

    /// Queues `bio` on the sync lane, issued ahead of the normal lane (but never ahead
    /// of a flush queued before it).
    pub fn submit_sync(&self, bio: Bio) {
        self.shared.push(bio, true);
    }

    /// Returns once every write queued before the call is durable.
    pub fn flush(&self) -> Result<(), Error> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.shared
            .push(Bio::flush(move |r| drop(tx.send(r.result))), false);
        let cancelled = || Error::Cancelled {
            device: self.shared.name.clone(),
            offset: 0,
        };
        rx.recv().unwrap_or_else(|_| Err(cancelled()))
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
            if handle.join().is_err() {
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
