//! One worker's place in a pool: its pending lists (high and normal) and its state.
//!
//! Slots are allocated once, `max_threads` of them, so choosing a worker never takes a
//! pool-wide lock: a producer reads the lock-free hints (`live`, `pending`, `blocked`),
//! then locks only the chosen slot and re-checks `live` under that lock.
//!
//! A worker's normal list is two queues in a row. Producers append to `q` (the tail).
//! The worker moves all of `q.normal` at once into its `batch` (the head) and runs the
//! batch under a lock only it takes in the common case, so producers and the worker
//! meet on `q`'s lock once per batch, not once per item. The batch stays stealable:
//! thieves and the rescuer take from it (under its lock) before they take from `q`,
//! so an item behind a long or blocked one still moves to an idle worker. The data
//! the worker writes per item (`Hot`) sits on its own cache lines, away from what
//! producers read and write.

use crate::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use crate::sync::{lock_model as lock, Condvar, Mutex, Padded};
use crate::work::Task;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;

/// How often (in items) the worker refreshes its batch-length hint while it runs one.
const BATCH_HINT_EVERY: usize = 16;

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

/// What producers touch: the queue, its length and the flags selection reads.
struct Shared {
    q: Mutex<SlotQueue>,
    cv: Condvar,
    /// Mirror of `q.len()`, for lock-free selection.
    queued: AtomicUsize,
    /// Mirror of `q.live`.
    live: AtomicBool,
    /// Nesting depth of `blocking` sections of the worker (0: running or idle).
    blocked: AtomicUsize,
    /// Hint of `batch.len()`, here so that selection reads one line. Set when the
    /// batch is refilled or stolen from, every `BATCH_HINT_EVERY` items of a long
    /// batch, and to 0 when the worker finds nothing: between those it may count
    /// items already run, never fewer than the batch holds.
    batch_len: AtomicUsize,
}

/// What the worker writes per item; others only read it now and then.
pub(crate) struct Hot {
    /// Items this slot's worker has started; the watchdog compares it between ticks.
    pub(crate) progress: AtomicU64,
    /// Items this slot's worker finished running.
    pub(crate) run: AtomicU64,
}

/// A worker slot.
pub(crate) struct Slot {
    shared: Padded<Shared>,
    /// Items moved from `q.normal` that the worker runs next (the head of its list).
    batch: Padded<Mutex<VecDeque<Task>>>,
    /// Hint that `q.high` holds items; written only when high items come and go.
    high_len: Padded<AtomicUsize>,
    pub(crate) hot: Padded<Hot>,
}

/// What a push found.
pub(crate) enum Pushed {
    /// The worker was asleep and has been woken.
    WokeSleeper,
    /// The worker is awake (running or about to look at its list); how many items
    /// its lists hold now.
    Awake(usize),
}

impl Slot {
    pub(crate) fn new() -> Self {
        Self {
            shared: Padded(Shared {
                q: Mutex::new(SlotQueue::default()),
                cv: Condvar::new(),
                queued: AtomicUsize::new(0),
                live: AtomicBool::new(false),
                blocked: AtomicUsize::new(0),
                batch_len: AtomicUsize::new(0),
            }),
            batch: Padded(Mutex::new(VecDeque::new())),
            high_len: Padded(AtomicUsize::new(0)),
            hot: Padded(Hot {
                progress: AtomicU64::new(0),
                run: AtomicU64::new(0),
            }),
        }
    }

    /// The slot's lock (lists and sleep flags).
    pub(crate) fn q(&self) -> &Mutex<SlotQueue> {
        &self.shared.q
    }

    /// The condvar the worker sleeps on (with `q()`'s lock).
    pub(crate) fn cv(&self) -> &Condvar {
        &self.shared.cv
    }

    /// Items waiting for this worker, its current batch included (a hint).
    pub(crate) fn pending(&self) -> usize {
        self.shared.queued.load(Ordering::Relaxed) + self.shared.batch_len.load(Ordering::Relaxed)
    }

    /// Whether items wait for this worker (exact, unlike [`pending`](Self::pending)).
    pub(crate) fn has_work(&self) -> bool {
        !lock(&self.batch).is_empty() || self.shared.queued.load(Ordering::SeqCst) > 0
    }

    /// Exact count of waiting items, for stats.
    pub(crate) fn pending_exact(&self) -> Option<usize> {
        let b = lock(&self.batch);
        let q = lock(&self.shared.q);
        q.live.then(|| q.len() + b.len())
    }

    pub(crate) fn is_live(&self) -> bool {
        self.shared.live.load(Ordering::Acquire)
    }

    pub(crate) fn is_blocked(&self) -> bool {
        self.shared.blocked.load(Ordering::Relaxed) > 0
    }

    /// Enters a `blocking` section; true for the outermost one.
    pub(crate) fn block_enter(&self) -> bool {
        self.shared.blocked.fetch_add(1, Ordering::SeqCst) == 0
    }

    /// Leaves a `blocking` section; true for the outermost one.
    pub(crate) fn block_leave(&self) -> bool {
        self.shared.blocked.fetch_sub(1, Ordering::SeqCst) == 1
    }

    fn sync(&self, q: &SlotQueue) {
        self.shared.queued.store(q.len(), Ordering::Relaxed);
        if self.high_len.load(Ordering::Relaxed) != q.high.len() {
            self.high_len.store(q.high.len(), Ordering::Relaxed);
        }
    }

    /// Claims a vacant slot for a new thread; false if it is taken.
    pub(crate) fn claim(&self) -> bool {
        let b = lock(&self.batch);
        let mut q = lock(&self.shared.q);
        if q.live {
            return false;
        }
        assert_eq!(q.len(), 0, "a vacant slot holds work");
        assert!(b.is_empty(), "a vacant slot holds a batch");
        q.live = true;
        self.shared.live.store(true, Ordering::Release);
        true
    }

    /// Marks the slot vacant and hands back whatever it still holds.
    pub(crate) fn vacate(&self) -> Vec<Task> {
        let mut b = lock(&self.batch);
        let mut q = lock(&self.shared.q);
        let mut tasks: Vec<Task> = b.drain(..).collect();
        self.shared.batch_len.store(0, Ordering::Relaxed);
        tasks.extend(self.vacate_locked(&mut q));
        tasks
    }

    /// [`vacate`](Self::vacate) for the worker, which holds `q` and has no batch.
    pub(crate) fn vacate_locked(&self, q: &mut SlotQueue) -> Vec<Task> {
        q.live = false;
        self.shared.live.store(false, Ordering::Release);
        let tasks: Vec<Task> = q.high.drain(..).chain(q.normal.drain(..)).collect();
        self.sync(q);
        tasks
    }

    /// Appends a producer's task. Fails (handing it back) when the slot is vacant.
    pub(crate) fn push(&self, task: Task, high: bool) -> Result<Pushed, Task> {
        let mut q = lock(&self.shared.q);
        if !q.live {
            return Err(task);
        }
        if high {
            q.high.push_back(task);
            self.high_len.store(q.high.len(), Ordering::Relaxed);
        } else {
            q.normal.push_back(task);
        }
        self.shared.queued.store(q.len(), Ordering::Relaxed);
        let (pushed, notify) = Self::kick_locked(&mut q);
        drop(q);
        if notify {
            // After the unlock: the woken worker does not run into our lock.
            self.shared.cv.notify_one();
        }
        Ok(pushed)
    }

    /// Appends tasks the worker moved here itself (steals, requeues): no stats.
    pub(crate) fn push_own(&self, tasks: impl IntoIterator<Item = Task>) -> Result<(), Vec<Task>> {
        let mut q = lock(&self.shared.q);
        if !q.live {
            return Err(tasks.into_iter().collect());
        }
        q.normal.extend(tasks);
        self.sync(&q);
        Ok(())
    }

    /// Marks a sleeping worker as woken; the caller notifies the condvar when told to
    /// (the flag is set under the lock, so a notify after the unlock is not lost: the
    /// worker re-checks its list and the flag before it sleeps again).
    fn kick_locked(q: &mut SlotQueue) -> (Pushed, bool) {
        if q.sleeping && !q.wake {
            q.wake = true;
            (Pushed::WokeSleeper, true)
        } else if q.sleeping {
            (Pushed::WokeSleeper, false)
        } else {
            (Pushed::Awake(q.len()), false)
        }
    }

    /// Wakes the worker if it sleeps; true if it did.
    pub(crate) fn wake(&self) -> bool {
        let mut q = lock(&self.shared.q);
        let (pushed, notify) = Self::kick_locked(&mut q);
        drop(q);
        if notify {
            self.shared.cv.notify_one();
        }
        matches!(pushed, Pushed::WokeSleeper)
    }

    /// The worker's next task: high lane first, then its batch, then (refilling the
    /// batch with all of `q.normal` under one lock) the rest of its list.
    pub(crate) fn pop(&self) -> Option<Task> {
        if self.high_len.load(Ordering::Relaxed) > 0 {
            let mut q = lock(&self.shared.q);
            if let Some(t) = q.high.pop_front() {
                self.sync(&q);
                return Some(t);
            }
        }
        let mut b = lock(&self.batch);
        if let Some(t) = b.pop_front() {
            let left = b.len();
            if left != 0 && left % BATCH_HINT_EVERY == 0 {
                self.shared.batch_len.store(left, Ordering::Relaxed);
            }
            return Some(t);
        }
        if self.shared.queued.load(Ordering::Relaxed) == 0 {
            if self.shared.batch_len.load(Ordering::Relaxed) != 0 {
                self.shared.batch_len.store(0, Ordering::Relaxed);
            }
            return None;
        }
        let mut q = lock(&self.shared.q);
        // The batch is empty: trade buffers, keeping both allocations in use.
        std::mem::swap(&mut *b, &mut q.normal);
        let t = q.high.pop_front().or_else(|| b.pop_front());
        self.shared.batch_len.store(b.len(), Ordering::Relaxed);
        self.sync(&q);
        t
    }

    /// Puts tasks (a thief's share beyond the first) at the head of the own batch.
    pub(crate) fn give_batch(&self, tasks: Vec<Task>) {
        let mut b = lock(&self.batch);
        for t in tasks.into_iter().rev() {
            b.push_front(t);
        }
        self.shared.batch_len.store(b.len(), Ordering::Relaxed);
    }

    /// Takes up to `max_count` tasks from the head of the list: high lane, then the
    /// batch, then the queue (a thief's or the rescuer's share).
    pub(crate) fn steal(&self, max_count: usize) -> Vec<Task> {
        let mut b = lock(&self.batch);
        let mut q = lock(&self.shared.q);
        let n = max_count.min(q.len() + b.len());
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            match q
                .high
                .pop_front()
                .or_else(|| b.pop_front())
                .or_else(|| q.normal.pop_front())
            {
                Some(t) => out.push(t),
                None => break,
            }
        }
        self.shared.batch_len.store(b.len(), Ordering::Relaxed);
        self.sync(&q);
        out
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::work::Job;

    fn task(tag: usize) -> Task {
        Task {
            job: Job::Once(Box::new(|| ())),
            color: tag,
        }
    }

    fn colors(ts: &[Task]) -> Vec<usize> {
        ts.iter().map(|t| t.color).collect()
    }

    #[test]
    fn batch_keeps_order_and_stays_stealable() {
        let s = Slot::new();
        assert!(s.claim());
        for i in 0..5 {
            assert!(s.push(task(i), false).is_ok());
        }
        // The first pop moves all five into the batch.
        assert_eq!(s.pop().map(|t| t.color), Some(0));
        assert_eq!(s.pending(), 4);
        assert!(s.push(task(5), false).is_ok());
        assert_eq!(s.pending(), 5);
        // A thief takes the oldest first: the batch, then the queue.
        assert_eq!(colors(&s.steal(2)), vec![1, 2]);
        assert_eq!(s.pending(), 3);
        assert_eq!(s.pending_exact(), Some(3));
        // A high item overtakes the batch.
        assert!(s.push(task(100), true).is_ok());
        let order: Vec<usize> = std::iter::from_fn(|| s.pop().map(|t| t.color)).collect();
        assert_eq!(order, vec![100, 3, 4, 5]);
        assert_eq!(s.pending(), 0);
    }

    #[test]
    fn the_batch_length_hint_is_refreshed_every_few_items_and_cleared_when_empty() {
        let s = Slot::new();
        assert!(s.claim());
        let n = 2 * BATCH_HINT_EVERY + 8;
        for i in 0..n {
            assert!(s.push(task(i), false).is_ok());
        }
        assert!(s.pop().is_some());
        assert_eq!(s.pending(), n - 1, "set when the batch is refilled");
        for _ in 0..7 {
            assert!(s.pop().is_some());
        }
        assert_eq!(s.pending(), 2 * BATCH_HINT_EVERY, "refreshed at a multiple");
        assert!(s.pop().is_some());
        assert_eq!(
            s.pending(),
            2 * BATCH_HINT_EVERY,
            "between refreshes it may count items already run"
        );
        while s.pending_exact() != Some(0) {
            assert!(s.pop().is_some());
        }
        assert!(
            s.pending() > 0,
            "the last items of a batch leave the hint behind"
        );
        assert!(s.pop().is_none());
        assert_eq!(s.pending(), 0, "a pop that finds nothing clears it");
    }

    #[test]
    fn the_high_lane_hint_follows_the_high_list() {
        let s = Slot::new();
        assert!(s.claim());
        assert!(s.push(task(1), true).is_ok());
        assert!(s.push(task(2), true).is_ok());
        assert_eq!(s.high_len.load(Ordering::Relaxed), 2);
        assert_eq!(s.pop().map(|t| t.color), Some(1));
        assert_eq!(s.high_len.load(Ordering::Relaxed), 1);
        assert_eq!(colors(&s.steal(1)), vec![2]);
        assert_eq!(s.high_len.load(Ordering::Relaxed), 0);
        assert!(s.push(task(3), true).is_ok());
        assert_eq!(colors(&s.vacate()), vec![3]);
        assert_eq!(s.high_len.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_thief_takes_what_it_asks_for_from_batch_and_queue_together() {
        let s = Slot::new();
        assert!(s.claim());
        for i in 0..3 {
            assert!(s.push(task(i), false).is_ok());
        }
        assert_eq!(s.pop().map(|t| t.color), Some(0)); // batch: 1, 2
        for i in 3..7 {
            assert!(s.push(task(i), false).is_ok()); // queue: 3..=6
        }
        assert_eq!(colors(&s.steal(5)), vec![1, 2, 3, 4, 5]);
        assert_eq!(colors(&s.steal(5)), vec![6]);
        assert!(s.steal(5).is_empty());
    }

    #[test]
    fn nested_blocking_sections_count_once() {
        let s = Slot::new();
        assert!(!s.is_blocked());
        assert!(s.block_enter(), "outermost");
        assert!(!s.block_enter());
        assert!(s.is_blocked());
        assert!(!s.block_leave(), "an inner one");
        assert!(s.is_blocked());
        assert!(s.block_leave(), "the outermost");
        assert!(!s.is_blocked());
    }

    #[test]
    fn has_work_sees_the_batch_and_the_queue() {
        let s = Slot::new();
        assert!(s.claim());
        assert!(!s.has_work());
        assert!(s.push(task(0), false).is_ok());
        assert!(s.push(task(1), false).is_ok());
        assert!(s.has_work(), "queued");
        assert!(s.pop().is_some());
        assert!(s.has_work(), "in the batch");
        assert!(s.pop().is_some());
        assert!(!s.has_work());
    }

    #[test]
    fn vacate_hands_back_batch_and_queue() {
        let s = Slot::new();
        assert!(s.claim());
        for i in 0..4 {
            assert!(s.push(task(i), false).is_ok());
        }
        assert_eq!(s.pop().map(|t| t.color), Some(0));
        assert!(s.push(task(9), true).is_ok());
        s.give_batch(vec![task(7)]);
        let left = s.vacate();
        assert_eq!(colors(&left), vec![7, 1, 2, 3, 9]);
        assert!(!s.is_live());
        assert!(s.push(task(1), false).is_err());
        assert_eq!(s.pending(), 0);
        assert!(s.claim());
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::work::Job;
    use loom::sync::Arc;

    fn task(tag: usize) -> Task {
        Task {
            job: Job::Once(Box::new(|| ())),
            color: tag,
        }
    }

    /// Model-checks the batch hand-off: a producer appends, the worker pops (moving the
    /// queue into its batch), a thief steals from batch and queue at once. Whatever the
    /// interleaving, every task is taken exactly once and the worker sees its own
    /// tasks in queue order.
    #[test]
    fn loom_push_pop_steal_take_each_task_once() {
        loom::model(|| {
            let s = Arc::new(Slot::new());
            assert!(s.claim());
            assert!(s.push(task(0), false).is_ok());
            let producer = {
                let s = Arc::clone(&s);
                loom::thread::spawn(move || {
                    for i in 1..3 {
                        assert!(s.push(task(i), false).is_ok());
                    }
                })
            };
            let thief = {
                let s = Arc::clone(&s);
                loom::thread::spawn(move || s.steal(2).iter().map(|t| t.color).collect::<Vec<_>>())
            };
            let mut mine = Vec::new();
            for _ in 0..2 {
                if let Some(t) = s.pop() {
                    mine.push(t.color);
                }
            }
            producer.join().unwrap();
            let stolen = thief.join().unwrap();
            while let Some(t) = s.pop() {
                mine.push(t.color);
            }
            assert!(mine.windows(2).all(|w| w[0] < w[1]), "{mine:?}");
            let mut all: Vec<usize> = mine.into_iter().chain(stolen).collect();
            all.sort_unstable();
            assert_eq!(all, vec![0, 1, 2]);
            assert_eq!(s.pending(), 0);
        });
    }

    /// A worker retiring (vacate) while a producer pushes: the task is either refused
    /// (the producer places it elsewhere) or handed back by `vacate`, never lost.
    #[test]
    fn loom_vacate_never_loses_a_push() {
        loom::model(|| {
            let s = Arc::new(Slot::new());
            assert!(s.claim());
            assert!(s.push(task(0), false).is_ok());
            assert_eq!(s.pop().map(|t| t.color), Some(0));
            let producer = {
                let s = Arc::clone(&s);
                loom::thread::spawn(move || s.push(task(1), false).is_err())
            };
            let back = s.vacate();
            let refused = producer.join().unwrap();
            assert_eq!(usize::from(refused) + back.len(), 1);
            assert!(!s.is_live());
        });
    }
}
