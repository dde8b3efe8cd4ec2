//! `SubmitQueue`: one per device; many threads queue bios, one submitter issues them.
//!
//! Why a dedicated submitter thread rather than "whoever submits first submits": the
//! caller (the ordered step of a write pipeline) must never sit in `pwritev` while the
//! next bios pile up behind it, and merging needs someone who can wait a plug timeout
//! for a partial run to grow. One thread per device issues I/O strictly one after
//! another, which is also what makes the flush epochs of `sched.rs` correct.
//! Completions go to an end-I/O [`Workers`] pool, never run on the submitter.

use crate::bio::{Bio, Op};
use crate::sched::{Next, Run, Sched};
use crate::stats::{QueueStats, SeqCounter};
use crate::{Device, Error};
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
    /// I/Os picked per pass before the submitter looks at its lanes again.
    pub batch_ios: usize,
    /// How long a run shorter than `max_io_bytes` waits for the bios that would extend it.
    pub plug_timeout: Duration,
    /// How many bytes one stream may issue in a row while others wait.
    pub stream_budget_bytes: u64,
    /// How long the device stays with the stream being served, after its last I/O,
    /// waiting for that stream to continue before another stream gets it.
    pub anticipate: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            max_io_bytes: 1 << 20,
            max_in_flight_bytes: 64 << 20,
            batch_ios: 16,
            plug_timeout: Duration::from_millis(2),
            stream_budget_bytes: 32 << 20,
            anticipate: Duration::from_millis(1),
        }
    }
}

#[derive(Debug)]
struct State {
    sched: Sched,
    in_flight_bytes: u64,
    in_flight_peak_bytes: u64,
    waiters: usize,
    shutdown: bool,
    seq: SeqCounter,
    bios: u64,
    merged: u64,
    flushes: u64,
    split_retries: u64,
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

#[derive(Debug)]
struct Shared {
    device: Arc<dyn Device>,
    name: String,
    end_io: Arc<dyn EndIo>,
    config: QueueConfig,
    state: Mutex<State>,
    /// Wakes the submitter: new bios, blocked submitters, shutdown.
    work: Condvar,
    /// Wakes submitters blocked on the in-flight bound.
    room: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Bytes of the bound kept for the stream being served, so its writer can keep it
    /// busy while the others wait (see `sched.rs`).
    fn reserve_bytes(&self) -> u64 {
        (2 * self.config.max_io_bytes as u64).min(self.config.max_in_flight_bytes / 2)
    }
}

/// A per-device submission queue (see the module docs and `ARCHITECTURE.md`).
#[derive(Debug)]
pub struct SubmitQueue {
    shared: Arc<Shared>,
    submitter: Mutex<Option<JoinHandle<()>>>,
}

impl SubmitQueue {
    /// A queue on `device` whose completions run on `end_io`.
    ///
    /// # Panics
    /// If the submitter thread cannot be started (see [`SubmitQueue::try_new`]) or the
    /// config has a zero size.
    pub fn new(device: Arc<dyn Device>, end_io: Workers, config: QueueConfig) -> Self {
        Self::try_new(device, Arc::new(end_io), config).expect("starting the bio submitter thread")
    }

    /// Like [`SubmitQueue::new`] with any [`EndIo`], returning the thread-spawn error
    /// instead of panicking.
    pub fn try_new(
        device: Arc<dyn Device>,
        end_io: Arc<dyn EndIo>,
        config: QueueConfig,
    ) -> std::io::Result<Self> {
        assert!(config.max_io_bytes > 0);
        assert!(config.batch_ios > 0);
        assert!(
            config.max_in_flight_bytes >= config.max_io_bytes as u64,
            "the in-flight bound must hold one full I/O"
        );
        let name = device.info().path;
        let sched = Sched::new(
            config.max_io_bytes as u64,
            config.plug_timeout,
            config.anticipate,
            config.stream_budget_bytes,
        );
        let shared = Arc::new(Shared {
            device,
            name: name.clone(),
            end_io,
            config,
            state: Mutex::new(State {
                sched,
                in_flight_bytes: 0,
                in_flight_peak_bytes: 0,
                waiters: 0,
                shutdown: false,
                seq: SeqCounter::default(),
                bios: 0,
                merged: 0,
                flushes: 0,
                split_retries: 0,
            }),
            work: Condvar::new(),
            room: Condvar::new(),
        });
        let thread_shared = Arc::clone(&shared);
        let handle = std::thread::Builder::new()
            .name(format!("bio-submit:{}", short(&name)))
            .spawn(move || submitter(&thread_shared))?;
        Ok(Self {
            shared,
            submitter: Mutex::new(Some(handle)),
        })
    }

    /// The device this queue issues to.
    pub fn device(&self) -> &Arc<dyn Device> {
        &self.shared.device
    }

    /// Queues `bio` on the normal lane; waits while the in-flight bound is reached.
    pub fn submit(&self, bio: Bio) {
        self.push(bio, false);
    }

    /// Queues `bio` on the sync lane, issued ahead of the normal lane (but never ahead
    /// of a flush queued before it).
    pub fn submit_sync(&self, bio: Bio) {
        self.push(bio, true);
    }

    /// Returns once every write queued before the call is durable.
    pub fn flush(&self) -> Result<(), Error> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.push(Bio::flush(move |r| drop(tx.send(r.result))), false);
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
            split_retries: s.split_retries,
        }
    }

    /// Issues everything queued, then stops the submitter. Bios submitted afterwards
    /// complete with [`Error::Cancelled`]. Also done on drop.
    pub fn shutdown(&self) {
        self.shared.lock().shutdown = true;
        self.shared.work.notify_all();
        self.shared.room.notify_all();
        let handle = self
            .submitter
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(handle) = handle {
            if handle.join().is_err() {
                eprintln!("bio submitter of {} panicked", self.shared.name);
            }
        }
    }

    fn push(&self, bio: Bio, sync: bool) {
        let shared = &*self.shared;
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
            state.waiters += 1;
            shared.work.notify_one();
            state = shared.room.wait(state).unwrap_or_else(|e| e.into_inner());
            state.waiters -= 1;
        }
        state.in_flight_bytes += len;
        state.in_flight_peak_bytes = state.in_flight_peak_bytes.max(state.in_flight_bytes);
        state.sched.push(bio, sync, Instant::now());
        drop(state);
        shared.work.notify_one();
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

/// The submitter thread: picks batches of I/O and issues them one after another.
fn submitter(shared: &Shared) {
    let mut state = shared.lock();
    loop {
        let now = Instant::now();
        let (pressure, draining) = (state.waiters > 0, state.shutdown);
        let mut batch = Vec::new();
        let mut wait = None;
        while batch.len() < shared.config.batch_ios {
            match state.sched.next(now, pressure, draining) {
                Next::Issue(run) => batch.push(run),
                Next::WaitUntil(at) => {
                    wait = Some(at);
                    break;
                }
                Next::Idle => break,
            }
        }
        if batch.is_empty() {
            if state.shutdown && state.sched.is_empty() {
                return;
            }
            state = match wait {
                Some(at) => {
                    shared
                        .work
                        .wait_timeout(state, at.saturating_duration_since(now))
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
                None => shared.work.wait(state).unwrap_or_else(|e| e.into_inner()),
            };
            continue;
        }
        drop(state);
        for run in batch {
            let len = run.len_bytes;
            let (outcome, bios, results) = execute(shared, run);
            // Count and release the bytes before the completions run, so a caller that
            // waited for a completion sees counters that include its I/O.
            let mut s = shared.lock();
            assert!(s.in_flight_bytes >= len);
            s.in_flight_bytes -= len;
            outcome.account(&mut s);
            drop(s);
            shared.room.notify_all();
            complete(shared, bios, results);
        }
        state = shared.lock();
    }
}

/// What one run did, for the counters.
struct Outcome {
    op: Op,
    /// (offset, len) of each device I/O in issue order.
    ios: Vec<(u64, u64)>,
    bios: u64,
    split: bool,
}

impl Outcome {
    fn account(self, s: &mut State) {
        if self.op == Op::Flush {
            s.flushes += 1;
            return;
        }
        for &(offset, len) in &self.ios {
            s.seq.record(offset, len);
        }
        s.bios += self.bios;
        s.merged += self.bios - self.ios.len().min(self.bios as usize) as u64;
        s.split_retries += u64::from(self.split);
    }
}

/// Issues one run; returns what it did, its bios and each bio's result.
fn execute(shared: &Shared, mut run: Run) -> (Outcome, Vec<Bio>, Vec<Result<(), Error>>) {
    let device = &*shared.device;
    let bios = run.bios.len() as u64;
    let mut outcome = Outcome {
        op: run.op,
        ios: vec![(run.offset, run.len_bytes)],
        bios,
        split: false,
    };
    let merged = match run.op {
        Op::Flush => device.flush(),
        Op::Write => {
            let bufs: Vec<&[u8]> = run
                .bios
                .iter()
                .map(|b| b.buf().map_or(&[][..], |b| &b[..]))
                .collect();
            device.writev_at(&bufs, run.offset)
        }
        Op::Read => {
            let mut bufs: Vec<&mut [u8]> = run
                .bios
                .iter_mut()
                .map(|b| b.buf_mut().map_or(&mut [][..], |b| &mut b[..]))
                .collect();
            device.readv_at(&mut bufs, run.offset)
        }
    };
    let results: Vec<Result<(), Error>> = match merged {
        Ok(()) => run.bios.iter().map(|_| Ok(())).collect(),
        Err(err) if run.bios.len() == 1 => vec![Err(err)],
        Err(_) => {
            // Reissue bio by bio so each gets its own result and only the bad ones fail.
            outcome.split = true;
            outcome.ios.clear();
            run.bios
                .iter_mut()
                .map(|bio| {
                    let offset = bio.offset();
                    outcome.ios.push((offset, bio.len() as u64));
                    match (run.op, bio.buf_mut()) {
                        (Op::Write, Some(buf)) => device.write_at(buf, offset),
                        (Op::Read, Some(buf)) => device.read_at(buf, offset),
                        _ => Ok(()),
                    }
                })
                .collect()
        }
    };
    assert_eq!(results.len(), run.bios.len());
    (outcome, run.bios, results)
}

/// Runs the completions on the end-I/O context, or here if it refuses work.
fn complete(shared: &Shared, bios: Vec<Bio>, results: Vec<Result<(), Error>>) {
    let job: EndIoJob = Box::new(move || {
        for (bio, result) in bios.into_iter().zip(results) {
            bio.complete(result);
        }
    });
    if let Err(job) = shared.end_io.run(job) {
        job();
    }
}
