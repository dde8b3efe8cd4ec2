//! The worker loop, stealing, and blocking awareness (`blocking`).

use super::{Inner, Runner};
use crate::sync::lock_model;
use crate::work::Task;
use std::cell::{Cell, RefCell};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// How often a worker re-checks while the pool is shutting down.
const CLOSING_POLL: Duration = Duration::from_millis(10);
/// Most tasks a thief takes from a busy (not blocked) worker at once.
pub(super) const STEAL_MAX: usize = 32;
/// Waiting items at which an idle worker robs a busy one that still makes progress
/// (and at which a producer wakes a sleeping helper for it).
pub(super) const STEAL_MIN_PENDING: usize = 4;
/// Idle rounds spent spinning (1, 2, 4 .. 2^6 spin hints), then yielding, before a
/// worker sleeps on its condvar (crossbeam's `Backoff` limits). Few yields: on a
/// loaded machine a yielding worker waits for a whole time slice, while a sleeping
/// one is woken at once.
const SPIN_ROUNDS: u32 = 7;
const YIELD_ROUNDS: u32 = 4;

struct Current {
    pool: Arc<Inner>,
    /// The worker slot, or `None` on the helper (watchdog/rescuer) thread.
    slot: Option<usize>,
}

thread_local! {
    static CURRENT: RefCell<Option<Current>> = const { RefCell::new(None) };
    static RUNNING_COLOR: Cell<Option<usize>> = const { Cell::new(None) };
}

/// Marks this thread as belonging to `pool` (slot `None` for the helper thread).
pub(super) fn enter_thread(pool: &Arc<Inner>, slot: Option<usize>) {
    CURRENT.with(|c| {
        *c.borrow_mut() = Some(Current {
            pool: Arc::clone(pool),
            slot,
        })
    });
}

pub(super) fn leave_thread() {
    CURRENT.with(|c| c.borrow_mut().take());
}

pub(super) fn set_running_color(color: Option<usize>) {
    RUNNING_COLOR.with(|c| c.set(color));
}

/// The name of the pool whose *worker* the calling thread is (not its helper thread).
pub(crate) fn current_worker_pool() -> Option<String> {
    CURRENT.with(|c| {
        c.borrow()
            .as_ref()
            .filter(|cur| cur.slot.is_some())
            .map(|cur| cur.pool.name().to_owned())
    })
}

/// Whether the calling thread is one of `pool`'s own threads.
pub(super) fn on_pool_thread(pool: &Inner) -> bool {
    CURRENT.with(|c| {
        c.borrow()
            .as_ref()
            .is_some_and(|cur| std::ptr::eq(Arc::as_ptr(&cur.pool), pool))
    })
}

/// The flush colour of the item this thread runs for `pool`, if any.
pub(super) fn own_color(pool: &Inner) -> Option<usize> {
    if on_pool_thread(pool) {
        RUNNING_COLOR.with(Cell::get)
    } else {
        None
    }
}

/// Body of a worker thread owning slot `idx`.
pub(super) fn run(pool: Arc<Inner>, idx: usize) {
    enter_thread(&pool, Some(idx));
    let slot = &pool.slots[idx];
    let mut idle_rounds = 0_u32;
    let mut look: Look = None;
    loop {
        if let Some(t) = slot.pop().or_else(|| steal(&pool, idx, &mut look)) {
            idle_rounds = 0;
            look = None;
            slot.hot.progress.fetch_add(1, Ordering::Relaxed);
            pool.execute(t, Runner::Worker(idx));
            continue;
        }
        // Back off briefly before sleeping, as crossbeam's `Backoff` does: a burst of
        // work then costs no futex wake-up per item, and a reply comes sooner.
        match idle_step(&mut idle_rounds) {
            Idle::Spin(n) => {
                (0..n).for_each(|_| std::hint::spin_loop());
                continue;
            }
            Idle::Yield => {
                std::thread::yield_now();
                continue;
            }
            Idle::Sleep => {}
        }
        let mut q = lock_model(slot.q());
        if q.len() > 0 {
            continue;
        }
        let closed = pool.is_closed();
        if closed && pool.outstanding() == 0 {
            let left = slot.vacate_locked(&mut q);
            assert!(left.is_empty());
            pool.threads.fetch_sub(1, Ordering::SeqCst);
            break;
        }
        q.sleeping = true;
        q.wake = false;
        pool.sleepers.fetch_add(1, Ordering::SeqCst);
        let timeout = if closed {
            CLOSING_POLL
        } else {
            pool.cfg.idle_timeout
        };
        let (g, res) = slot
            .cv()
            .wait_timeout(q, timeout)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        q = g;
        q.sleeping = false;
        pool.sleepers.fetch_sub(1, Ordering::SeqCst);
        let woken = std::mem::take(&mut q.wake);
        if res.timed_out() && !woken && q.len() == 0 && !pool.is_closed() {
            // Idle for a whole timeout: retire unless that would go below min.
            let min = pool.cfg.min_threads;
            let retired = pool
                .threads
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| {
                    (t > min).then(|| t - 1)
                })
                .is_ok();
            if retired {
                let left = slot.vacate_locked(&mut q);
                assert!(left.is_empty());
                break;
            }
        }
    }
    leave_thread();
    pool.thread_exited();
}

/// What an idle worker does next after finding nothing to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Idle {
    /// Spin this many hints, then look again.
    Spin(u32),
    /// Give up the time slice, then look again.
    Yield,
    /// Sleep on the slot's condvar (until woken or the idle timeout).
    Sleep,
}

/// The back-off after `rounds` fruitless looks in a row: spins doubling from 1 to
/// 2^(SPIN_ROUNDS-1), then YIELD_ROUNDS yields, then sleep (which starts over).
pub(super) fn idle_step(rounds: &mut u32) -> Idle {
    let r = *rounds;
    if r >= SPIN_ROUNDS + YIELD_ROUNDS {
        *rounds = 0;
        return Idle::Sleep;
    }
    *rounds = r + 1;
    if r < SPIN_ROUNDS {
        Idle::Spin(1 << r)
    } else {
        Idle::Yield
    }
}

/// What an idle worker saw at its last look at a victim: (slot, its progress).
pub(super) type Look = Option<(usize, u64)>;

/// Takes work for an idle worker: orphans first, then from a blocked worker (all of
/// its list: its items are stuck behind it), else half of the busiest list. A busy
/// worker is only robbed when it falls behind (`STEAL_MIN_PENDING` waiting) or
/// started nothing since this thief's last look (`look`): one that keeps up does its
/// own work, so an idle thief goes to sleep instead of taking CPU from producers.
pub(super) fn steal(pool: &Arc<Inner>, idx: usize, look: &mut Look) -> Option<Task> {
    if let Some(t) = pool.pop_orphan() {
        return Some(t);
    }
    let n = pool.high_water.load(Ordering::Acquire);
    let victim = (0..n)
        .filter(|&i| i != idx && pool.slots[i].pending() > 0)
        .max_by_key(|&i| (pool.slots[i].is_blocked(), pool.slots[i].pending()))?;
    let v = &pool.slots[victim];
    let progress = v.hot.progress.load(Ordering::Relaxed);
    let stuck = look.replace((victim, progress)) == Some((victim, progress));
    let share = if v.is_blocked() {
        v.pending()
    } else if stuck || v.pending() >= STEAL_MIN_PENDING {
        v.pending().div_ceil(2).min(STEAL_MAX)
    } else {
        return None;
    };
    let mut tasks = v.steal(share.max(1)).into_iter();
    let first = tasks.next()?;
    let rest: Vec<Task> = tasks.collect();
    if !rest.is_empty() {
        pool.slots[idx].give_batch(rest);
    }
    Some(first)
}

/// Tells the pool that the calling thread is about to block in `f`, then runs `f`.
///
/// On a worker thread of this crate's pools, the worker counts as blocked until `f`
/// returns: producers stop choosing it, and if work waits behind it the pool wakes an
/// idle worker or starts a new one (below `max_threads`) that takes that work over.
/// That is how an item waiting for an item queued behind it still finishes.
/// [`Completion::wait`](crate::Completion::wait), `flush` and `drain` call it for you,
/// as do the waits of `stack-bio` and `stack-alloc`. Elsewhere it just runs `f`.
///
/// Wrap your own waits in it when they run on a pool worker: a lock another item
/// holds, a channel receive, synchronous disk I/O. A library can flag a blocking call
/// made without it with [`warn_unmarked_blocking`](crate::warn_unmarked_blocking).
pub fn blocking<R>(f: impl FnOnce() -> R) -> R {
    let _marked = crate::warn::Marked::enter();
    let ctx = CURRENT.with(|c| {
        c.borrow()
            .as_ref()
            .and_then(|cur| cur.slot.map(|s| (Arc::clone(&cur.pool), s)))
    });
    let Some((pool, idx)) = ctx else {
        return f();
    };
    let _guard = BlockGuard::enter(pool, idx);
    f()
}

pub(super) struct BlockGuard {
    pool: Arc<Inner>,
    idx: usize,
}

impl BlockGuard {
    pub(super) fn enter(pool: Arc<Inner>, idx: usize) -> Self {
        let slot = &pool.slots[idx];
        if slot.block_enter() {
            pool.blocked.fetch_add(1, Ordering::SeqCst);
            if slot.has_work() || pool.orphan_len.load(Ordering::SeqCst) > 0 {
                // Like cmwq when nr_running drops to zero with work pending: wake an
                // idle worker, else start one (`spawn_worker` refuses at max_threads);
                // the watchdog covers the rest.
                if !pool.wake_one_sleeper(Some(idx)) && !pool.spawn_cooling() {
                    // A failure is counted and raises a mayday for the rescuer.
                    let _ = pool.spawn_worker(None);
                }
            }
        }
        Self { pool, idx }
    }
}

impl Drop for BlockGuard {
    fn drop(&mut self) {
        let slot = &self.pool.slots[self.idx];
        if slot.block_leave() {
            self.pool.blocked.fetch_sub(1, Ordering::SeqCst);
        }
    }
}
