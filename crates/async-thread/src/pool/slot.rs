//! One worker's place in a pool: its pending lists (high and normal) and its state.
//!
//! Slots are allocated once, `max_threads` of them, so choosing a worker never takes a
//! pool-wide lock: a producer reads the lock-free hints (`live`, `pending`, `blocked`),
//! then locks only the chosen slot and re-checks `live` under that lock.

use crate::sync::lock;
use crate::work::Task;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

/// The lists and flags guarded by a slot's lock.
#[derive(Default)]
pub(crate) struct SlotQueue {
    /// A thread owns this slot (or is being started for it).
    pub(crate) live: bool,
    pub(crate) high: VecDeque<Task>,
    pub(crate) normal: VecDeque<Task>,
    /// The worker sleeps on the slot's condvar.
    pub(crate) sleeping: bool,
    /// Someone woke it on purpose (not a time-out).
    pub(crate) wake: bool,
}

impl SlotQueue {
    pub(crate) fn len(&self) -> usize {
        self.high.len() + self.normal.len()
    }
}

/// A worker slot.
pub(crate) struct Slot {
    pub(crate) q: Mutex<SlotQueue>,
    pub(crate) cv: Condvar,
    /// Mirror of `q.len()`, for lock-free selection.
    pending: AtomicUsize,
    /// Mirror of `q.live`.
    live: AtomicBool,
    /// Nesting depth of `blocking` sections of the worker (0: running or idle).
    pub(crate) blocked: AtomicUsize,
    /// Items this slot's worker has started; the watchdog compares it between ticks.
    pub(crate) progress: AtomicU64,
    /// Items this slot's worker finished running.
    pub(crate) run: AtomicU64,
}

/// What a push found.
pub(crate) enum Pushed {
    /// The worker was asleep and has been woken.
    WokeSleeper,
    /// The worker is awake (running or about to look at its list).
    Awake,
}

impl Slot {
    pub(crate) fn new() -> Self {
        Self {
            q: Mutex::new(SlotQueue::default()),
            cv: Condvar::new(),
            pending: AtomicUsize::new(0),
            live: AtomicBool::new(false),
            blocked: AtomicUsize::new(0),
            progress: AtomicU64::new(0),
            run: AtomicU64::new(0),
        }
    }

    pub(crate) fn pending(&self) -> usize {
        self.pending.load(Ordering::Relaxed)
    }

    pub(crate) fn is_live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }

    pub(crate) fn is_blocked(&self) -> bool {
        self.blocked.load(Ordering::Relaxed) > 0
    }

    fn sync(&self, q: &SlotQueue) {
        self.pending.store(q.len(), Ordering::Relaxed);
    }

    /// Claims a vacant slot for a new thread; false if it is taken.
    pub(crate) fn claim(&self) -> bool {
        let mut q = lock(&self.q);
        if q.live {
            return false;
        }
        assert_eq!(q.len(), 0, "a vacant slot holds work");
        q.live = true;
        self.live.store(true, Ordering::Release);
        true
    }

    /// Marks the slot vacant and hands back whatever it still holds.
    pub(crate) fn vacate(&self) -> Vec<Task> {
        let mut q = lock(&self.q);
        self.vacate_locked(&mut q)
    }

    pub(crate) fn vacate_locked(&self, q: &mut SlotQueue) -> Vec<Task> {
        q.live = false;
        self.live.store(false, Ordering::Release);
        let tasks: Vec<Task> = q.high.drain(..).chain(q.normal.drain(..)).collect();
        self.sync(q);
        tasks
    }

    /// Appends a producer's task. Fails (handing it back) when the slot is vacant.
    pub(crate) fn push(&self, task: Task, high: bool) -> Result<Pushed, Task> {
        let mut q = lock(&self.q);
        if !q.live {
            return Err(task);
        }
        if high {
            q.high.push_back(task);
        } else {
            q.normal.push_back(task);
        }
        self.sync(&q);
        Ok(self.kick_locked(&mut q))
    }

    /// Appends tasks the worker moved here itself (steals, requeues): no stats.
    pub(crate) fn push_own(&self, tasks: impl IntoIterator<Item = Task>) -> Result<(), Vec<Task>> {
        let mut q = lock(&self.q);
        if !q.live {
            return Err(tasks.into_iter().collect());
        }
        q.normal.extend(tasks);
        self.sync(&q);
        Ok(())
    }

    fn kick_locked(&self, q: &mut SlotQueue) -> Pushed {
        if q.sleeping && !q.wake {
            q.wake = true;
            self.cv.notify_one();
            Pushed::WokeSleeper
        } else if q.sleeping {
            Pushed::WokeSleeper
        } else {
            Pushed::Awake
        }
    }

    /// Wakes the worker if it sleeps; true if it did.
    pub(crate) fn wake(&self) -> bool {
        let mut q = lock(&self.q);
        matches!(self.kick_locked(&mut q), Pushed::WokeSleeper)
    }

    /// Takes the next task: high lane first.
    pub(crate) fn pop(&self) -> Option<Task> {
        if self.pending() == 0 {
            return None;
        }
        let mut q = lock(&self.q);
        let t = q.high.pop_front().or_else(|| q.normal.pop_front());
        self.sync(&q);
        t
    }

    /// Takes up to `max_count` tasks from the head, high lane first (a thief's share).
    pub(crate) fn steal(&self, max_count: usize) -> Vec<Task> {
        let mut q = lock(&self.q);
        let n = max_count.min(q.len());
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            match q.high.pop_front().or_else(|| q.normal.pop_front()) {
                Some(t) => out.push(t),
                None => break,
            }
        }
        self.sync(&q);
        out
    }
}
