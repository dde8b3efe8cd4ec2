//! The pool's helper thread: the watchdog, and the rescuer when the pool has one.
//!
//! Watchdog: every `watchdog_interval` while work is outstanding it looks for workers
//! with pending items that started nothing since the last look (stuck in a long or
//! blocking item) and for orphaned work; it reacts by waking an idle worker or starting
//! one (either steals the stuck items) and counts a kick.
//!
//! Rescuer (cmwq's mayday): when such work waits and no new worker could be created
//! for `rescue_grace` (10 ms, as cmwq's `MAYDAY_INITIAL_TIMEOUT`), this thread, made
//! with the pool, runs the stuck items itself, one at a time, so the pool always moves
//! forward even when thread creation fails.

use super::{worker, Inner, Runner};
use crate::sync::lock;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Tick when nothing is outstanding: cheap, only to notice work that slipped by.
pub(super) const IDLE_TICK: Duration = Duration::from_millis(200);
/// Most items the rescuer runs before it looks again at the whole pool.
pub(super) const RESCUE_BATCH: usize = 64;

pub(super) fn run(pool: Arc<Inner>) {
    worker::enter_thread(&pool, None);
    let mut last_progress: Vec<u64> = vec![0; pool.slots.len()];
    let mut stuck_since: Option<Instant> = None;
    loop {
        let tick = tick(&pool);
        {
            let mut m = lock(&pool.mayday);
            if !*m {
                m = pool
                    .mayday_cv
                    .wait_timeout(m, tick)
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .0;
            }
            *m = false;
        }
        if finished(&pool) {
            break;
        }
        let stuck = check(&pool, &mut last_progress);
        if !stuck {
            stuck_since = None;
            continue;
        }
        pool.counters.watchdog_kicks.fetch_add(1, Ordering::Relaxed);
        if react(&pool) {
            stuck_since = None;
            continue;
        }
        // Nobody could be woken or created: mayday.
        let since = *stuck_since.get_or_insert_with(Instant::now);
        match mayday(&pool, since.elapsed()) {
            Mayday::Rescue => rescue(&pool),
            Mayday::WaitGrace(left) => {
                // Come back when the grace period is over.
                std::thread::sleep(left);
                pool.raise_mayday();
            }
            Mayday::Wait => {}
        }
    }
    worker::leave_thread();
    pool.thread_exited();
}

/// How long the watchdog sleeps: short while work is outstanding, else a slow tick.
pub(super) fn tick(pool: &Inner) -> Duration {
    if pool.outstanding() > 0 {
        pool.cfg.watchdog_interval
    } else {
        IDLE_TICK
    }
}

/// Whether the helper thread's work is over: the pool is closed and empty.
pub(super) fn finished(pool: &Inner) -> bool {
    pool.is_closed() && pool.outstanding() == 0
}

/// What the helper does about stuck work nobody could be woken or started for.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Mayday {
    /// Run the stuck items itself (the rescuer).
    Rescue,
    /// Sleep out the rest of the grace period, then look again.
    WaitGrace(Duration),
    /// Nothing (no rescuer): the next tick looks again.
    Wait,
}

/// The rescuer steps in once work has been stuck for `rescue_grace`.
pub(super) fn mayday(pool: &Inner, stuck_for: Duration) -> Mayday {
    if !pool.cfg.rescuer {
        Mayday::Wait
    } else if stuck_for >= pool.cfg.rescue_grace {
        Mayday::Rescue
    } else {
        Mayday::WaitGrace(pool.cfg.rescue_grace - stuck_for)
    }
}

/// True when some work waits with no progress: orphans, or a worker with pending
/// items that started nothing since the last tick.
pub(super) fn check(pool: &Inner, last_progress: &mut [u64]) -> bool {
    let mut stuck = pool.orphan_len.load(Ordering::SeqCst) > 0;
    let n = pool.high_water.load(Ordering::Acquire);
    for (i, last) in last_progress.iter_mut().enumerate().take(n) {
        let s = &pool.slots[i];
        let p = s.hot.progress.load(Ordering::Relaxed);
        if p == *last && s.has_work() {
            stuck = true;
        }
        *last = p;
    }
    stuck
}

/// Wakes an idle worker or starts one; true if either happened.
pub(super) fn react(pool: &Arc<Inner>) -> bool {
    let n = pool.high_water.load(Ordering::Acquire);
    // A sleeper with pending items missed its wake-up: kick it directly.
    let mut woke = false;
    for s in &pool.slots[..n] {
        if s.pending() > 0 && s.is_live() && s.wake() {
            woke = true;
        }
    }
    if woke || pool.wake_one_sleeper(None) {
        return true;
    }
    if pool.threads.load(Ordering::SeqCst) < pool.cfg.max_threads && !pool.spawn_cooling() {
        return pool.spawn_worker(None).is_ok();
    }
    // At max_threads every worker is busy or blocked: that is back-pressure, not a
    // failure, unless a spawn failed recently or work has no worker at all.
    !(pool.spawn_cooling() || pool.orphan_len.load(Ordering::SeqCst) > 0)
}

/// Runs stuck items on this thread: orphans first, then the head of the list of a
/// worker that is blocked or made no progress.
pub(super) fn rescue(pool: &Arc<Inner>) {
    for _ in 0..RESCUE_BATCH {
        let task = pool.pop_orphan().or_else(|| {
            let n = pool.high_water.load(Ordering::Acquire);
            let victim = (0..n)
                .filter(|&i| pool.slots[i].pending() > 0)
                .max_by_key(|&i| (pool.slots[i].is_blocked(), pool.slots[i].pending()))?;
            pool.slots[victim].steal(1).pop()
        });
        let Some(task) = task else { return };
        pool.execute(task, Runner::Rescuer);
        // A worker may be creatable again: stop rescuing as soon as one is.
        if !pool.spawn_cooling() && pool.orphan_len.load(Ordering::SeqCst) == 0 {
            return;
        }
    }
}
