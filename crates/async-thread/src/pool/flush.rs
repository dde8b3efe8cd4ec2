//! Flush colours: how `flush` waits for exactly the items queued before it.
//!
//! Like the kernel's `flush_workqueue`, every queued item is counted under the current
//! colour. A flush moves new items to the next colour and waits until every other
//! colour is empty; later items cannot hold it up. Sixteen colours are reused round
//! the ring; a flush waits for a colour to be empty before reusing it.

use crate::sync::{lock, Padded};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// Number of flush colours.
pub(crate) const COLORS: usize = 16;
const _: () = assert!(COLORS >= 2);

/// How often a waiter re-checks even without a wake-up (belt and braces).
const RECHECK: Duration = Duration::from_millis(20);

/// Lane of finishes by anyone but a worker (rescuer, shutting-down caller, refusals).
pub(crate) const OTHER_LANE: usize = 0;

/// Items entered per colour (producers only write here).
#[derive(Debug)]
struct Entered {
    color: AtomicUsize,
    count: [AtomicU64; COLORS],
}

/// Counts per colour that only grow: an item adds one to `entered` when it is queued
/// and one to its runner's `left` lane when it is done, so producers and workers never
/// write the same cache line. A colour is empty when `entered - sum(left) == 0`.
#[derive(Debug)]
pub(crate) struct Flush {
    entered: Padded<Entered>,
    /// Lane `OTHER_LANE`, then one lane per worker slot (`slot + 1`).
    left: Box<[Padded<[AtomicU64; COLORS]>]>,
    /// One past the highest lane ever used: sums stop there.
    lanes_used: AtomicUsize,
    waiters: Padded<AtomicUsize>,
    lock: Mutex<()>,
    cv: Condvar,
    flushing: Mutex<()>,
}

impl Flush {
    /// Counters for `workers` worker lanes plus the lane of other runners.
    pub(crate) fn new(workers: usize) -> Self {
        Self {
            entered: Padded(Entered {
                color: AtomicUsize::new(0),
                count: std::array::from_fn(|_| AtomicU64::new(0)),
            }),
            left: (0..=workers)
                .map(|_| Padded(std::array::from_fn(|_| AtomicU64::new(0))))
                .collect(),
            lanes_used: AtomicUsize::new(1),
            waiters: Padded(AtomicUsize::new(0)),
            lock: Mutex::new(()),
            cv: Condvar::new(),
            flushing: Mutex::new(()),
        }
    }

    /// The lane of worker slot `slot`; call [`Flush::open_lane`] before it is used.
    pub(crate) fn worker_lane(slot: usize) -> usize {
        slot + 1
    }

    /// Makes sums include `lane` from now on.
    pub(crate) fn open_lane(&self, lane: usize) {
        assert!(lane < self.left.len());
        self.lanes_used.fetch_max(lane + 1, Ordering::SeqCst);
    }

    /// Counts a new item; returns its colour.
    pub(crate) fn enter(&self) -> usize {
        let color = self.entered.color.load(Ordering::SeqCst);
        assert!(color < COLORS);
        self.entered.count[color].fetch_add(1, Ordering::SeqCst);
        color
    }

    /// Uncounts a finished (or refused) item on `lane`.
    pub(crate) fn leave(&self, color: usize, lane: usize) {
        assert!(lane < self.lanes_used.load(Ordering::Relaxed));
        self.left[lane][color].fetch_add(1, Ordering::SeqCst);
        if self.wakes_waiters(color) {
            let _g = lock(&self.lock);
            self.cv.notify_all();
        }
    }

    /// Whether a finish of `color` may be what a waiter waits for: someone waits and
    /// that colour is (nearly) empty. `<= 1`: a waiter that is itself an item of this
    /// colour waits for 1. Waiters re-check every `RECHECK` anyway, so a wrong "no"
    /// costs latency, never a hang.
    fn wakes_waiters(&self, color: usize) -> bool {
        self.waiters.load(Ordering::SeqCst) > 0 && self.count(color, None) <= 1
    }

    /// Items ever counted by [`enter`](Self::enter).
    pub(crate) fn entered_total(&self) -> u64 {
        self.entered
            .count
            .iter()
            .fold(0_u64, |sum, c| sum.wrapping_add(c.load(Ordering::Relaxed)))
    }

    /// Items accepted and not yet finished.
    pub(crate) fn outstanding(&self) -> u64 {
        (0..COLORS).map(|c| self.count(c, None)).sum()
    }

    /// Waits until every item counted before the call has finished. `own` is the colour
    /// of the item the calling thread is running on this pool, if any: it is not waited
    /// for (it cannot finish while its own thread waits).
    pub(crate) fn flush(&self, own: Option<usize>) {
        let _serial = lock(&self.flushing);
        let old = self.entered.color.load(Ordering::SeqCst);
        let new = (old + 1) % COLORS;
        // The next colour may still hold items from sixteen flushes ago: those are
        // older than this call, so waiting for them is part of this flush anyway.
        self.wait_until(|| self.count(new, own) == 0);
        self.entered.color.store(new, Ordering::SeqCst);
        self.wait_until(|| (0..COLORS).all(|c| c == new || self.count(c, own) == 0));
    }

    /// Waits until nothing is outstanding at all (apart from the caller's own item).
    pub(crate) fn drain(&self, own: Option<usize>) {
        self.wait_until(|| (0..COLORS).all(|c| self.count(c, own) == 0));
    }

    /// Waits at most `timeout` for the pool to be empty; true when it is.
    pub(crate) fn drain_timeout(&self, own: Option<usize>, timeout: Duration) -> bool {
        let done = || (0..COLORS).all(|c| self.count(c, own) == 0);
        if done() {
            return true;
        }
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let g = lock(&self.lock);
        let ok = if done() {
            true
        } else {
            drop(
                self.cv
                    .wait_timeout(g, timeout)
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            );
            done()
        };
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        ok
    }

    /// Items of `color` not finished, less the caller's own (`own`). The finishes are
    /// read before the entries: every finish read belongs to an entry that is older
    /// still, so the difference never drops below the true count at the entry read.
    fn count(&self, color: usize, own: Option<usize>) -> u64 {
        let lanes = self.lanes_used.load(Ordering::SeqCst);
        let left = self.left[..lanes].iter().fold(0_u64, |sum, lane| {
            sum.wrapping_add(lane[color].load(Ordering::SeqCst))
        });
        let entered = self.entered.count[color].load(Ordering::SeqCst);
        let n = entered.wrapping_sub(left);
        assert!(n < u64::MAX / 2, "flush colour {color} went negative");
        if own == Some(color) {
            n.saturating_sub(1)
        } else {
            n
        }
    }

    fn wait_until(&self, done: impl Fn() -> bool) {
        if done() {
            return;
        }
        self.waiters.fetch_add(1, Ordering::SeqCst);
        crate::blocking(|| {
            let mut g = lock(&self.lock);
            while !done() {
                g = self
                    .cv
                    .wait_timeout(g, RECHECK)
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .0;
            }
        });
        self.waiters.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn flush_ignores_later_items() {
        let f = Arc::new(Flush::new(1));
        let a = f.enter();
        let f2 = Arc::clone(&f);
        let t = std::thread::spawn(move || f2.flush(None));
        // Wait until the flusher switched colours, then add a later item.
        while f.entered.color.load(Ordering::SeqCst) == a {
            std::thread::yield_now();
        }
        let b = f.enter();
        assert_ne!(a, b);
        f.leave(a, OTHER_LANE);
        t.join().unwrap();
        assert_eq!(f.outstanding(), 1);
        f.leave(b, OTHER_LANE);
        f.drain(None);
        assert_eq!(f.outstanding(), 0);
    }

    #[test]
    fn a_finish_wakes_waiters_only_when_its_colour_is_nearly_empty() {
        let f = Flush::new(1);
        let c = f.enter();
        f.enter();
        f.enter();
        assert!(!f.wakes_waiters(c), "nobody waits");
        f.waiters.fetch_add(1, Ordering::SeqCst);
        assert!(!f.wakes_waiters(c), "three left");
        f.leave(c, OTHER_LANE);
        assert!(!f.wakes_waiters(c), "two left");
        f.leave(c, OTHER_LANE);
        assert!(
            f.wakes_waiters(c),
            "one left: a waiting item of this colour is done"
        );
        f.leave(c, OTHER_LANE);
        assert!(f.wakes_waiters(c));
        f.waiters.fetch_sub(1, Ordering::SeqCst);
        assert!(!f.wakes_waiters(c));
    }

    #[test]
    fn a_flush_moves_new_items_to_the_next_colour() {
        let f = Flush::new(1);
        for want in (1..COLORS).chain([0, 1]) {
            f.flush(None);
            assert_eq!(f.enter(), want);
            f.leave(want, OTHER_LANE);
        }
    }

    #[test]
    fn colours_wrap_round() {
        let f = Flush::new(1);
        for _ in 0..(COLORS * 3) {
            let c = f.enter();
            f.leave(c, OTHER_LANE);
            f.flush(None);
        }
        let c = f.enter();
        f.flush(Some(c));
        assert!(!f.drain_timeout(None, Duration::from_millis(1)));
        f.leave(c, OTHER_LANE);
        assert!(f.drain_timeout(None, Duration::from_millis(1)));
    }
}
