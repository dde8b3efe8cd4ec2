//! The engine under [`Workers`](crate::Workers) and [`WorkQueue`](crate::WorkQueue).
//!
//! A pool is a fixed array of worker slots (`max_threads` of them), an orphan list for
//! work that found no worker, flush colours, and one helper thread that is the
//! watchdog and, when asked for, the rescuer. Producers pick a slot with the btrfs
//! rule (`select`), workers pop their own list, steal from others when theirs is empty,
//! and retire after the idle timeout.

mod flush;
mod manager;
mod slot;
mod worker;

pub use worker::blocking;
pub(crate) use worker::current_worker_pool;

use crate::error::{panic_message, Error, Result};
use crate::spawner::Spawner;
use crate::stats::Stats;
use crate::sync::{lock, Padded};
use crate::work::{Job, Step, Task};
use flush::Flush;
use slot::{Pushed, Slot};
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Upper bound on `max_threads` of any pool.
pub(crate) const MAX_THREADS: usize = 1024;
/// After a failed thread creation, producers do not try again for this long
/// (the kernel's `CREATE_COOLDOWN` is 1 s; a user-space spawn fails faster).
const SPAWN_COOLDOWN: Duration = Duration::from_millis(100);
/// How many times a producer re-selects when the chosen worker retired under it.
const PLACE_ATTEMPTS: usize = 8;

/// Everything a pool is built from.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) name: String,
    pub(crate) min_threads: usize,
    pub(crate) max_threads: usize,
    pub(crate) busy_threshold: usize,
    pub(crate) idle_timeout: Duration,
    pub(crate) stack_size_bytes: Option<usize>,
    pub(crate) spawner: Arc<dyn Spawner>,
    pub(crate) rescuer: bool,
    pub(crate) watchdog_interval: Duration,
    pub(crate) rescue_grace: Duration,
}

impl Config {
    pub(crate) fn check(&self) -> Result<()> {
        let bad = |field, reason: String| {
            Err(Error::Config {
                pool: self.name.clone(),
                field,
                reason,
            })
        };
        if self.max_threads == 0 || self.max_threads > MAX_THREADS {
            return bad("max_threads", format!("must be 1..={MAX_THREADS}"));
        }
        if self.min_threads > self.max_threads {
            return bad("min_threads", "must not exceed max_threads".into());
        }
        if self.busy_threshold == 0 {
            return bad("busy_threshold", "must be at least 1".into());
        }
        if self.watchdog_interval.is_zero() {
            return bad("watchdog_interval", "must be above zero".into());
        }
        if self.name.is_empty() {
            return bad("name", "must not be empty".into());
        }
        Ok(())
    }
}

#[derive(Debug, Default)]
struct Counters {
    requeued: AtomicU64,
    already_pending: AtomicU64,
    panics: AtomicU64,
    rescuer_runs: AtomicU64,
    watchdog_kicks: AtomicU64,
    spawn_failures: AtomicU64,
    /// Runs by the rescuer or a shutting-down caller (workers count in their slot).
    other_runs: AtomicU64,
    /// Items refused after `enter` (pool closed): `queued` is entered less these.
    refused: AtomicU64,
    queued_high: AtomicU64,
    /// Items `run_or_queue` ran on the caller because the pool was saturated.
    caller_runs: AtomicU64,
}

/// Who runs a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Runner {
    Worker(usize),
    Rescuer,
    Caller,
}

/// The shared state of one pool.
pub(crate) struct Inner {
    pub(crate) cfg: Config,
    slots: Box<[Slot]>,
    /// One past the highest slot ever claimed: scans stop there.
    high_water: AtomicUsize,
    threads: AtomicUsize,
    threads_peak: AtomicUsize,
    next_thread_id: AtomicU64,
    /// Written by producers (only when it changes).
    last_used: Padded<AtomicUsize>,
    /// Written by workers as they go to sleep and wake up.
    sleepers: Padded<AtomicUsize>,
    blocked: AtomicUsize,
    closed: AtomicBool,
    orphans: Mutex<VecDeque<Task>>,
    orphan_len: AtomicUsize,
    flush: Flush,
    /// Mostly written by producers (`queued_high`).
    counters: Padded<Counters>,
    last_panic: Mutex<Option<String>>,
    /// Milliseconds after `epoch` of the last failed spawn, 0 when the last one worked.
    spawn_failed_ms: AtomicU64,
    epoch: Instant,
    /// Wakes the watchdog/rescuer early (mayday).
    mayday: Mutex<bool>,
    mayday_cv: Condvar,
    /// Threads of this pool still running (workers and the helper).
    alive: Mutex<usize>,
    alive_cv: Condvar,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("name", &self.cfg.name)
            .field("threads", &self.threads.load(Ordering::Relaxed))
            .field("closed", &self.closed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Inner {
    /// Builds the pool: `min_threads` workers and the helper thread.
    pub(crate) fn start(cfg: Config) -> Result<Arc<Self>> {
        cfg.check()?;
        let slots = (0..cfg.max_threads).map(|_| Slot::new()).collect();
        let cfg_max = cfg.max_threads;
        let inner = Arc::new(Self {
            cfg,
            slots,
            high_water: AtomicUsize::new(0),
            threads: AtomicUsize::new(0),
            threads_peak: AtomicUsize::new(0),
            next_thread_id: AtomicU64::new(0),
            last_used: Padded(AtomicUsize::new(0)),
            sleepers: Padded(AtomicUsize::new(0)),
            blocked: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            orphans: Mutex::new(VecDeque::new()),
            orphan_len: AtomicUsize::new(0),
            flush: Flush::new(cfg_max),
            counters: Padded(Counters::default()),
            last_panic: Mutex::new(None),
            spawn_failed_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            mayday: Mutex::new(false),
            mayday_cv: Condvar::new(),
            alive: Mutex::new(0),
            alive_cv: Condvar::new(),
        });
        let role = if inner.cfg.rescuer {
            "rescuer"
        } else {
            "watchdog"
        };
        *lock(&inner.alive) += 1;
        let helper = Arc::clone(&inner);
        let spawned = inner.cfg.spawner.spawn(
            format!("{}-{role}", inner.cfg.name),
            inner.cfg.stack_size_bytes,
            Box::new(move || manager::run(helper)),
        );
        if let Err(source) = spawned {
            inner.thread_exited();
            inner.shutdown();
            return Err(Error::Spawn {
                pool: inner.cfg.name.clone(),
                source,
            });
        }
        for _ in 0..inner.cfg.min_threads {
            if let Err(source) = inner.spawn_worker(None) {
                inner.shutdown();
                return Err(Error::Spawn {
                    pool: inner.cfg.name.clone(),
                    source,
                });
            }
        }
        Ok(inner)
    }

    pub(crate) fn name(&self) -> &str {
        &self.cfg.name
    }

    fn shut_down_error(&self) -> Error {
        Error::ShutDown {
            pool: self.cfg.name.clone(),
        }
    }

    /// Accepts a job: counts it for flush, then places it on a worker.
    pub(crate) fn submit(self: &Arc<Self>, job: Job, high: bool) -> Result<()> {
        let color = self.flush.enter();
        if self.closed.load(Ordering::SeqCst) {
            self.counters.refused.fetch_add(1, Ordering::Relaxed);
            self.flush.leave(color, flush::OTHER_LANE);
            return Err(self.shut_down_error());
        }
        if high {
            self.counters.queued_high.fetch_add(1, Ordering::Relaxed);
        }
        self.place(Task { job, color }, high);
        Ok(())
    }

    /// Whether an item queued now would wait behind others: no worker can be added
    /// (at `max_threads`, or spawning failed a moment ago) and every live worker already
    /// has work waiting or is blocked. A hint (lock-free reads), for the caller-runs
    /// policy of `Workers::run_or_queue`.
    pub(crate) fn saturated(&self) -> bool {
        if self.threads.load(Ordering::SeqCst) < self.cfg.max_threads && !self.spawn_cooling() {
            return false;
        }
        let n = self.high_water.load(Ordering::Acquire);
        let mut live = false;
        for s in &self.slots[..n] {
            if !s.is_live() {
                continue;
            }
            live = true;
            if !s.is_blocked() && s.pending() == 0 {
                return false;
            }
        }
        live
    }

    /// Runs `f` on the calling thread as if a worker ran it: a panic is caught and
    /// counted, never unwound into the caller. Refused once the pool is shut down.
    pub(crate) fn run_on_caller(&self, f: impl FnOnce()) -> Result<()> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(self.shut_down_error());
        }
        if let Err(p) = catch_unwind(AssertUnwindSafe(f)) {
            self.record_panic(panic_message(&*p));
        }
        self.counters.caller_runs.fetch_add(1, Ordering::Relaxed);
        self.counters.other_runs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    pub(crate) fn note_already_pending(&self) {
        self.counters
            .already_pending
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Puts a counted task on some worker's list, starting one if the rule says so;
    /// work that finds no worker at all goes to the orphan list and raises a mayday.
    fn place(self: &Arc<Self>, mut task: Task, high: bool) {
        for _ in 0..PLACE_ATTEMPTS {
            match self.select() {
                Choice::Slot(i) => match self.slots[i].push(task, high) {
                    Ok(pushed) => {
                        if self.last_used.load(Ordering::Relaxed) != i {
                            self.last_used.store(i, Ordering::Relaxed);
                        }
                        if matches!(pushed, Pushed::Awake(n) if n >= worker::STEAL_MIN_PENDING)
                            && self.sleepers.load(Ordering::SeqCst) > 0
                        {
                            // Work piles up behind the chosen worker; let an idle one
                            // steal. Below that an awake worker keeps up on its own,
                            // and waking a helper would only take CPU from producers.
                            self.wake_one_sleeper(Some(i));
                        }
                        return;
                    }
                    Err(t) => task = t,
                },
                Choice::Spawn => match self.spawn_worker(Some((task, high))) {
                    // On failure spawn_worker re-placed the task itself.
                    Ok(()) | Err(_) => return,
                },
                Choice::Orphan => break,
            }
        }
        self.push_orphan(task);
    }

    fn push_orphan(&self, task: Task) {
        let mut o = lock(&self.orphans);
        o.push_back(task);
        self.orphan_len.store(o.len(), Ordering::SeqCst);
        drop(o);
        self.raise_mayday();
    }

    pub(crate) fn pop_orphan(&self) -> Option<Task> {
        if self.orphan_len.load(Ordering::SeqCst) == 0 {
            return None;
        }
        let mut o = lock(&self.orphans);
        let t = o.pop_front();
        self.orphan_len.store(o.len(), Ordering::SeqCst);
        t
    }

    pub(crate) fn raise_mayday(&self) {
        let mut m = lock(&self.mayday);
        *m = true;
        self.mayday_cv.notify_all();
    }

    /// The btrfs rule: the last-used worker while it has fewer than `busy_threshold`
    /// pending, else any worker under the threshold, else a new thread below max, else
    /// the least-loaded worker. Workers inside `blocking` count as busy.
    fn select(&self) -> Choice {
        let busy = self.cfg.busy_threshold;
        let n = self.high_water.load(Ordering::Acquire);
        // One pass from the last-used slot on: the first live, unblocked worker under
        // the threshold wins; meanwhile remember the least loaded (blocked ones last).
        let mut least: Option<(usize, (bool, usize))> = None;
        // `last_used` is always a slot below `high_water`: producers store only slots
        // they chose here or that were live, and `high_water` never shrinks.
        let last = self.last_used.load(Ordering::Relaxed);
        for k in 0..n {
            let i = if last + k < n { last + k } else { last + k - n };
            let s = &self.slots[i];
            if !s.is_live() {
                continue;
            }
            let pending = s.pending();
            let blocked = s.is_blocked();
            if !blocked && pending < busy {
                return Choice::Slot(i);
            }
            let load = (blocked, pending);
            if least.is_none_or(|(_, l)| load < l) {
                least = Some((i, load));
            }
        }
        if self.threads.load(Ordering::SeqCst) < self.cfg.max_threads && !self.spawn_cooling() {
            return Choice::Spawn;
        }
        least.map_or(Choice::Orphan, |(i, _)| Choice::Slot(i))
    }

    /// True while a recent spawn failed.
    pub(crate) fn spawn_cooling(&self) -> bool {
        self.cooling_at(self.now_ms())
    }

    /// Whether spawning still cools down at `now_ms` (the pool's clock).
    fn cooling_at(&self, now_ms: u64) -> bool {
        let failed = self.spawn_failed_ms.load(Ordering::SeqCst);
        failed != 0 && now_ms.saturating_sub(failed) < SPAWN_COOLDOWN.as_millis() as u64
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// Starts a worker thread in a vacant slot, optionally with a first task. On
    /// failure every task in the slot (the first one too) is placed elsewhere.
    pub(crate) fn spawn_worker(
        self: &Arc<Self>,
        first: Option<(Task, bool)>,
    ) -> std::io::Result<()> {
        let reserved = self
            .threads
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| {
                (t < self.cfg.max_threads).then_some(t + 1)
            });
        let Ok(before) = reserved else {
            if let Some((t, high)) = first {
                self.place_no_spawn(t, high);
            }
            return Err(std::io::Error::other("pool is at max_threads"));
        };
        self.threads_peak.fetch_max(before + 1, Ordering::SeqCst);
        let idx = (0..self.slots.len())
            .find(|&i| self.slots[i].claim())
            .expect("fewer threads than max_threads leaves a vacant slot");
        self.flush.open_lane(Flush::worker_lane(idx));
        self.high_water.fetch_max(idx + 1, Ordering::AcqRel);
        if let Some((t, high)) = first {
            if let Err(t) = self.slots[idx].push(t, high) {
                unreachable!("a freshly claimed slot is live: {:p}", &t);
            }
        }
        *lock(&self.alive) += 1;
        let id = self.next_thread_id.fetch_add(1, Ordering::Relaxed);
        let me = Arc::clone(self);
        let spawned = self.cfg.spawner.spawn(
            format!("{}-{id}", self.cfg.name),
            self.cfg.stack_size_bytes,
            Box::new(move || worker::run(me, idx)),
        );
        match spawned {
            Ok(()) => {
                self.spawn_failed_ms.store(0, Ordering::SeqCst);
                Ok(())
            }
            Err(e) => {
                self.counters.spawn_failures.fetch_add(1, Ordering::Relaxed);
                self.spawn_failed_ms.store(self.now_ms(), Ordering::SeqCst);
                let tasks = self.slots[idx].vacate();
                self.threads.fetch_sub(1, Ordering::SeqCst);
                self.thread_exited();
                for t in tasks {
                    self.place_no_spawn(t, false);
                }
                self.raise_mayday();
                Err(e)
            }
        }
    }

    /// Places a task on an existing worker (least loaded) or the orphan list.
    fn place_no_spawn(&self, task: Task, high: bool) {
        let n = self.high_water.load(Ordering::Acquire);
        let mut task = task;
        for _ in 0..PLACE_ATTEMPTS {
            let best = (0..n)
                .filter(|&i| self.slots[i].is_live())
                .min_by_key(|&i| (self.slots[i].is_blocked(), self.slots[i].pending()));
            let Some(i) = best else { break };
            match self.slots[i].push(task, high) {
                Ok(_) => return,
                Err(t) => task = t,
            }
        }
        self.push_orphan(task);
    }

    /// Wakes one sleeping worker other than `except`; true if one was woken.
    pub(crate) fn wake_one_sleeper(&self, except: Option<usize>) -> bool {
        let n = self.high_water.load(Ordering::Acquire);
        (0..n)
            .filter(|&i| Some(i) != except && self.slots[i].is_live())
            .any(|i| self.slots[i].wake())
    }

    fn wake_all(&self) {
        let n = self.high_water.load(Ordering::Acquire);
        for s in &self.slots[..n] {
            s.wake();
        }
        self.raise_mayday();
    }

    /// Runs one task and does its bookkeeping: panics, requeue, counters, flush colour.
    pub(crate) fn execute(self: &Arc<Self>, task: Task, runner: Runner) {
        let Task { job, color } = task;
        worker::set_running_color(Some(color));
        let requeue = match job {
            Job::Inline(f) => {
                if let Err(p) = catch_unwind(AssertUnwindSafe(|| f.call())) {
                    self.record_panic(panic_message(&*p));
                }
                None
            }
            Job::Once(f) => {
                if let Err(p) = catch_unwind(AssertUnwindSafe(f)) {
                    self.record_panic(panic_message(&*p));
                }
                None
            }
            Job::Item(item) => match catch_unwind(AssertUnwindSafe(|| item.run())) {
                Ok(Step::Done) => None,
                // Someone queued it while it ran: that copy runs it again.
                Ok(Step::Requeue) if !item.mark_pending() => None,
                Ok(Step::Requeue) => Some(item),
                Err(p) => {
                    self.record_panic(panic_message(&*p));
                    None
                }
            },
        };
        worker::set_running_color(None);
        match runner {
            Runner::Worker(i) => {
                self.slots[i].hot.run.fetch_add(1, Ordering::Relaxed);
            }
            Runner::Rescuer => {
                self.counters.rescuer_runs.fetch_add(1, Ordering::Relaxed);
                self.counters.other_runs.fetch_add(1, Ordering::Relaxed);
            }
            Runner::Caller => {
                self.counters.other_runs.fetch_add(1, Ordering::Relaxed);
            }
        }
        match requeue {
            Some(item) => {
                self.counters.requeued.fetch_add(1, Ordering::Relaxed);
                let t = Task {
                    job: Job::Item(item),
                    color,
                };
                // Still counted under its colour: a flush waits until it is done.
                match runner {
                    Runner::Worker(i) => {
                        if let Err(ts) = self.slots[i].push_own([t]) {
                            ts.into_iter().for_each(|t| self.place(t, false));
                        }
                    }
                    _ => self.place(t, false),
                }
            }
            None => self.flush.leave(
                color,
                match runner {
                    Runner::Worker(i) => Flush::worker_lane(i),
                    Runner::Rescuer | Runner::Caller => flush::OTHER_LANE,
                },
            ),
        }
    }

    pub(crate) fn record_panic(&self, message: String) {
        self.counters.panics.fetch_add(1, Ordering::Relaxed);
        *lock(&self.last_panic) = Some(message);
    }

    pub(crate) fn thread_exited(&self) {
        let mut a = lock(&self.alive);
        assert!(*a > 0, "thread count went negative");
        *a -= 1;
        self.alive_cv.notify_all();
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    pub(crate) fn outstanding(&self) -> u64 {
        self.flush.outstanding()
    }

    /// Waits for every item accepted before the call.
    pub(crate) fn flush(&self) {
        self.flush.flush(worker::own_color(self));
    }

    /// Waits until no item is outstanding.
    pub(crate) fn drain(&self) {
        self.flush.drain(worker::own_color(self));
    }

    /// Refuses new work, runs everything accepted (on the caller when no worker can),
    /// then stops and waits for every thread. From one of the pool's own threads it
    /// only closes: threads exit once the last item finished.
    pub(crate) fn shutdown(self: &Arc<Self>) {
        self.closed.store(true, Ordering::SeqCst);
        self.wake_all();
        if worker::on_pool_thread(self) {
            return;
        }
        while !self.flush.drain_timeout(None, Duration::from_millis(10)) {
            // Work no worker can take (no thread could be created) runs here, so
            // nothing accepted is dropped.
            if self.threads.load(Ordering::SeqCst) == 0 {
                while let Some(t) = self.pop_orphan() {
                    self.execute(t, Runner::Caller);
                }
            }
            self.wake_all();
        }
        loop {
            self.wake_all();
            // Look after the wake-up, under the lock: a thread that exited meanwhile
            // has already notified, and waiting for that notification would cost a
            // whole extra 10 ms per pool (1 run in 60 of a 1 MiB verify took 14.7 ms
            // instead of 3.3-5.5).
            let alive = lock(&self.alive);
            if *alive == 0 {
                break;
            }
            drop(
                self.alive_cv
                    .wait_timeout(alive, Duration::from_millis(10))
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            );
        }
        assert_eq!(self.outstanding(), 0);
    }

    pub(crate) fn stats(&self) -> Stats {
        let n = self.high_water.load(Ordering::Acquire);
        let mut run = self.counters.other_runs.load(Ordering::Relaxed);
        let c = &self.counters;
        let mut pending_per_worker = Vec::new();
        for s in &self.slots[..n] {
            if let Some(p) = s.pending_exact() {
                pending_per_worker.push(p);
            }
            run += s.hot.run.load(Ordering::Relaxed);
        }
        Stats {
            threads: self.threads.load(Ordering::SeqCst),
            threads_peak: self.threads_peak.load(Ordering::SeqCst),
            queued: self
                .flush
                .entered_total()
                .wrapping_sub(c.refused.load(Ordering::Relaxed)),
            queued_high: c.queued_high.load(Ordering::Relaxed),
            caller_runs: c.caller_runs.load(Ordering::Relaxed),
            run,
            requeued: c.requeued.load(Ordering::Relaxed),
            already_pending: c.already_pending.load(Ordering::Relaxed),
            panics: c.panics.load(Ordering::Relaxed),
            rescuer_runs: c.rescuer_runs.load(Ordering::Relaxed),
            watchdog_kicks: c.watchdog_kicks.load(Ordering::Relaxed),
            spawn_failures: c.spawn_failures.load(Ordering::Relaxed),
            blocked: self.blocked.load(Ordering::SeqCst),
            outstanding: self.outstanding(),
            orphaned: self.orphan_len.load(Ordering::SeqCst),
            pending_per_worker,
            last_panic: lock(&self.last_panic).clone(),
        }
    }
}

enum Choice {
    Slot(usize),
    Spawn,
    Orphan,
}

#[cfg(all(test, not(loom)))]
mod tests;
