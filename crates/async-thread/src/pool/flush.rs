//! Flush colours: how `flush` waits for exactly the items queued before it.
//!
//! Like the kernel's `flush_workqueue`, every queued item is counted under the current
//! colour. A flush moves new items to the next colour and waits until every other
//! colour is empty; later items cannot hold it up. Sixteen colours are reused round
//! the ring; a flush waits for a colour to be empty before reusing it.

use crate::sync::lock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// Number of flush colours.
pub(crate) const COLORS: usize = 16;
const _: () = assert!(COLORS >= 2);

/// How often a waiter re-checks even without a wake-up (belt and braces).
const RECHECK: Duration = Duration::from_millis(20);

#[derive(Debug)]
pub(crate) struct Flush {
    color: AtomicUsize,
    in_flight: [AtomicU64; COLORS],
    waiters: AtomicUsize,
    lock: Mutex<()>,
    cv: Condvar,
    flushing: Mutex<()>,
}

impl Flush {
    pub(crate) fn new() -> Self {
        Self {
            color: AtomicUsize::new(0),
            in_flight: std::array::from_fn(|_| AtomicU64::new(0)),
            waiters: AtomicUsize::new(0),
            lock: Mutex::new(()),
            cv: Condvar::new(),
            flushing: Mutex::new(()),
        }
    }

    /// Counts a new item; returns its colour.
    pub(crate) fn enter(&self) -> usize {
        let color = self.color.load(Ordering::SeqCst);
        assert!(color < COLORS);
        self.in_flight[color].fetch_add(1, Ordering::SeqCst);
        color
    }

    /// Uncounts a finished (or refused) item.
    pub(crate) fn leave(&self, color: usize) {
        let before = self.in_flight[color].fetch_sub(1, Ordering::SeqCst);
        assert!(before > 0, "flush colour {color} went negative");
        if before == 1 && self.waiters.load(Ordering::SeqCst) > 0 {
            let _g = lock(&self.lock);
            self.cv.notify_all();
        }
    }

    /// Items accepted and not yet finished.
    pub(crate) fn outstanding(&self) -> u64 {
        self.in_flight
            .iter()
            .map(|c| c.load(Ordering::SeqCst))
            .sum()
    }

    /// Waits until every item counted before the call has finished. `own` is the colour
    /// of the item the calling thread is running on this pool, if any: it is not waited
    /// for (it cannot finish while its own thread waits).
    pub(crate) fn flush(&self, own: Option<usize>) {
        let _serial = lock(&self.flushing);
        let old = self.color.load(Ordering::SeqCst);
        let new = (old + 1) % COLORS;
        // The next colour may still hold items from sixteen flushes ago: those are
        // older than this call, so waiting for them is part of this flush anyway.
        self.wait_until(|| self.count(new, own) == 0);
        self.color.store(new, Ordering::SeqCst);
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

    fn count(&self, color: usize, own: Option<usize>) -> u64 {
        let n = self.in_flight[color].load(Ordering::SeqCst);
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
        let f = Arc::new(Flush::new());
        let a = f.enter();
        let f2 = Arc::clone(&f);
        let t = std::thread::spawn(move || f2.flush(None));
        // Wait until the flusher switched colours, then add a later item.
        while f.color.load(Ordering::SeqCst) == a {
            std::thread::yield_now();
        }
        let b = f.enter();
        assert_ne!(a, b);
        f.leave(a);
        t.join().unwrap();
        assert_eq!(f.outstanding(), 1);
        f.leave(b);
        f.drain(None);
        assert_eq!(f.outstanding(), 0);
    }

    #[test]
    fn colours_wrap_round() {
        let f = Flush::new();
        for _ in 0..(COLORS * 3) {
            let c = f.enter();
            f.leave(c);
            f.flush(None);
        }
        let c = f.enter();
        f.flush(Some(c));
        assert!(!f.drain_timeout(None, Duration::from_millis(1)));
        f.leave(c);
        assert!(f.drain_timeout(None, Duration::from_millis(1)));
    }
}
