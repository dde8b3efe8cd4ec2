//! [`Completion`]: the XFS pattern of "queue it, then sleep until the worker says done".

use crate::error::{Error, Result};
use crate::sync::{lock_model as lock, Arc, Condvar, Mutex};
use std::fmt;
use std::time::{Duration, Instant};

enum State<T> {
    Pending,
    Ready(Result<T>),
    Taken,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    cv: Condvar,
}

/// A one-shot result that one side completes and the other waits for.
///
/// It is the user-space form of the kernel's `struct completion` as XFS used it for
/// allocation: the caller fills in the arguments, queues the work, and sleeps on the
/// completion until a worker has done it. Waiting counts as blocking (see
/// [`blocking`](crate::blocking)), so a worker that waits here lets its pool start or
/// wake another worker.
///
/// **XFS's later lesson:** never hold a lock the worker needs while you wait. XFS
/// queued allocation work while holding the AGF buffer lock and the allocation worker
/// needed that same lock, so the waiter and the worker deadlocked; a waiter that holds
/// a lock the work item takes makes the pool's blocking awareness useless, because no
/// number of extra workers can take a lock the sleeper holds. Drop such locks (or pass
/// what they protect into the item) before [`wait`](Self::wait).
///
/// The value goes to the first waiter; a later `wait` on a clone gets
/// [`Error::AlreadyTaken`]. Completing twice keeps the first value.
pub struct Completion<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Clone for Completion<T> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<T> fmt::Debug for Completion<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match *lock(&self.shared.state) {
            State::Pending => "pending",
            State::Ready(Ok(_)) => "ready",
            State::Ready(Err(_)) => "failed",
            State::Taken => "taken",
        };
        f.debug_struct("Completion").field("state", &state).finish()
    }
}

impl<T: Send> Default for Completion<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Send> Completion<T> {
    /// A completion nobody has completed yet.
    pub fn new() -> Self {
        Self {
            shared: Arc::new(Shared {
                state: Mutex::new(State::Pending),
                cv: Condvar::new(),
            }),
        }
    }

    /// Completes with `value` and wakes every waiter. A second completion is ignored.
    pub fn complete(&self, value: T) {
        self.finish(Ok(value));
    }

    /// Completes with an error (a panicked or cancelled item) instead of a value.
    pub fn fail(&self, error: Error) {
        self.finish(Err(error));
    }

    /// Whether it was completed (or failed) already.
    pub fn is_complete(&self) -> bool {
        !matches!(*lock(&self.shared.state), State::Pending)
    }

    fn finish(&self, result: Result<T>) -> bool {
        let mut state = lock(&self.shared.state);
        if !matches!(*state, State::Pending) {
            return false;
        }
        *state = State::Ready(result);
        drop(state);
        self.shared.cv.notify_all();
        true
    }

    fn take(state: &mut State<T>) -> Option<Result<T>> {
        match std::mem::replace(state, State::Taken) {
            State::Pending => {
                *state = State::Pending;
                None
            }
            State::Ready(r) => Some(r),
            State::Taken => Some(Err(Error::AlreadyTaken)),
        }
    }

    /// Sleeps until completed and returns the value (or the item's error).
    pub fn wait(&self) -> Result<T> {
        let mut state = lock(&self.shared.state);
        if let Some(r) = Self::take(&mut state) {
            return r;
        }
        drop(state);
        crate::blocking(|| {
            let mut state = lock(&self.shared.state);
            loop {
                if let Some(r) = Self::take(&mut state) {
                    return r;
                }
                state = self
                    .shared
                    .cv
                    .wait(state)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
        })
    }

    /// Like [`wait`](Self::wait) but gives up after `timeout` with [`Error::TimedOut`].
    pub fn wait_timeout(&self, timeout: Duration) -> Result<T> {
        let start = Instant::now();
        let Some(deadline) = start.checked_add(timeout) else {
            // Past the clock's range: no deadline at all.
            return self.wait();
        };
        let mut state = lock(&self.shared.state);
        if let Some(r) = Self::take(&mut state) {
            return r;
        }
        drop(state);
        crate::blocking(|| {
            let mut state = lock(&self.shared.state);
            loop {
                if let Some(r) = Self::take(&mut state) {
                    return r;
                }
                let now = Instant::now();
                if now >= deadline {
                    let waited = now.duration_since(start);
                    return Err(Error::TimedOut {
                        waited_ms: u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
                    });
                }
                state = self
                    .shared
                    .cv
                    .wait_timeout(state, deadline.duration_since(now))
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .0;
            }
        })
    }
}

/// Fails a completion with [`Error::ShutDown`] if dropped before it was completed, so a
/// waiter never sleeps forever on work that was dropped unrun.
pub(crate) struct CompleteOnDrop<T: Send> {
    pub(crate) completion: Completion<T>,
    pub(crate) pool: String,
}

impl<T: Send> Drop for CompleteOnDrop<T> {
    fn drop(&mut self) {
        self.completion.finish(Err(Error::ShutDown {
            pool: std::mem::take(&mut self.pool),
        }));
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn complete_then_wait() {
        let c = Completion::new();
        assert!(!c.is_complete());
        c.complete(5);
        c.complete(6);
        assert!(c.is_complete());
        assert_eq!(c.wait().unwrap(), 5);
        assert!(matches!(c.wait(), Err(Error::AlreadyTaken)));
    }

    #[test]
    fn wait_across_threads() {
        let c = Completion::new();
        let c2 = c.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            c2.complete("done");
        });
        assert_eq!(c.wait().unwrap(), "done");
        t.join().unwrap();
    }

    #[test]
    fn wait_timeout_times_out_then_succeeds() {
        let c: Completion<u8> = Completion::new();
        let e = c.wait_timeout(Duration::from_millis(30)).unwrap_err();
        match e {
            Error::TimedOut { waited_ms } => assert!(waited_ms >= 30),
            other => panic!("unexpected {other}"),
        }
        c.complete(1);
        assert_eq!(c.wait_timeout(Duration::from_millis(1)).unwrap(), 1);
        let c = Completion::new();
        c.complete(2);
        assert_eq!(c.wait_timeout(Duration::MAX).unwrap(), 2, "no overflow");
    }

    #[test]
    fn dropped_guard_fails_the_waiter() {
        let c: Completion<u8> = Completion::new();
        drop(CompleteOnDrop {
            completion: c.clone(),
            pool: "p".into(),
        });
        assert!(matches!(c.wait(), Err(Error::ShutDown { .. })));
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;

    /// Model-checks the hand-off: whatever the interleaving, the waiter gets the one
    /// value and a second completion never overwrites it.
    #[test]
    fn completion_hand_off() {
        loom::model(|| {
            let c = Completion::new();
            let a = c.clone();
            let b = c.clone();
            let t1 = loom::thread::spawn(move || a.complete(1));
            let t2 = loom::thread::spawn(move || b.complete(2));
            let v = c.wait().unwrap();
            assert!(v == 1 || v == 2);
            t1.join().unwrap();
            t2.join().unwrap();
            assert!(matches!(c.wait(), Err(Error::AlreadyTaken)));
        });
    }
}
