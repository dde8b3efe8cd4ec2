//! [`Ordered`]: parallel work whose second half runs strictly in queue order.

use crate::error::{panic_message, Error, Result};
use crate::sync::lock;
use crate::workers::Workers;
use std::collections::BTreeMap;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

type OrderedFn = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct State {
    /// Sequence number the next `queue` call gets.
    next_seq: u64,
    /// Sequence number whose `ordered_func` runs next.
    next_run: u64,
    /// Finished `func`s waiting for their turn; `None` when `func` panicked (or the
    /// item was refused) and there is nothing to run.
    done: BTreeMap<u64, Option<OrderedFn>>,
    /// A thread is running ordered functions now.
    running: bool,
}

struct Shared {
    state: Mutex<State>,
    cv: Condvar,
    panics: AtomicU64,
}

/// An ordered stream on a [`Workers`] pool (what btrfs added for checksummed writes
/// that must be submitted in order).
///
/// `func` runs in parallel on the pool; `ordered_func(result)` runs strictly in the
/// order `queue` was called, one at a time, each only after its own `func` finished.
/// The worker that finishes the `func` at the head of the line runs the ordered
/// functions that are ready, as btrfs's `run_ordered_completions` does. Cheap to clone;
/// clones share the stream.
#[derive(Clone)]
pub struct Ordered {
    pool: Workers,
    shared: Arc<Shared>,
}

impl fmt::Debug for Ordered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = lock(&self.shared.state);
        f.debug_struct("Ordered")
            .field("queued", &s.next_seq)
            .field("ordered_run", &s.next_run)
            .finish()
    }
}

impl Ordered {
    pub(crate) fn new(pool: Workers) -> Self {
        Self {
            pool,
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                cv: Condvar::new(),
                panics: AtomicU64::new(0),
            }),
        }
    }

    /// Queues `func` on the pool; `ordered_func` gets its result in queue order.
    ///
    /// **A panicking `func` skips its `ordered_func`:** the panic is caught and counted
    /// (in [`panics`](Self::panics) and the pool's [`Stats::panics`](crate::Stats)),
    /// and the stream goes on with the next item, so nothing in the ordered half sees
    /// the hole. When the ordered half must know (a writer that must not skip a
    /// block), use [`queue_result`](Self::queue_result). A panicking `ordered_func` is
    /// caught and counted the same way.
    pub fn queue<T: Send + 'static>(
        &self,
        func: impl FnOnce() -> T + Send + 'static,
        ordered_func: impl FnOnce(T) + Send + 'static,
    ) -> Result<()> {
        self.queue_inner(func, ordered_func, None::<fn(Error)>)
    }

    /// Like [`queue`](Self::queue), but `ordered_func` runs, in its turn, even when
    /// `func` panicked: with `Err(`[`Error::Panicked`]`)` naming the pool and the panic
    /// message instead of the value.
    ///
    /// ```
    /// use stack_async_thread::{Error, Workers};
    /// use std::sync::{Arc, Mutex};
    ///
    /// let pool = Workers::builder("csum").build()?;
    /// let stream = pool.ordered();
    /// let out = Arc::new(Mutex::new(Vec::new()));
    /// for i in 0..3u32 {
    ///     let out = Arc::clone(&out);
    ///     stream.queue_result(
    ///         move || if i == 1 { panic!("bad block {i}") } else { i },
    ///         move |r| out.lock().unwrap().push(r.map_err(|e| e.to_string())),
    ///     )?;
    /// }
    /// stream.flush();
    /// let out = out.lock().unwrap();
    /// assert_eq!(out[0], Ok(0));
    /// assert!(out[1].as_ref().unwrap_err().contains("bad block 1"));
    /// assert_eq!(out[2], Ok(2));
    /// assert_eq!(stream.panics(), 1);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn queue_result<T: Send + 'static>(
        &self,
        func: impl FnOnce() -> T + Send + 'static,
        ordered_func: impl FnOnce(Result<T>) + Send + 'static,
    ) -> Result<()> {
        let ordered_func = Arc::new(Mutex::new(Some(ordered_func)));
        let on_panic = Arc::clone(&ordered_func);
        let take = |cell: &Mutex<Option<_>>| lock(cell).take();
        self.queue_inner(
            func,
            move |v| {
                if let Some(f) = take(&ordered_func) {
                    f(Ok(v));
                }
            },
            Some(move |e| {
                if let Some(f) = take(&on_panic) {
                    f(Err(e));
                }
            }),
        )
    }

    fn queue_inner<T: Send + 'static>(
        &self,
        func: impl FnOnce() -> T + Send + 'static,
        ordered_func: impl FnOnce(T) + Send + 'static,
        on_panic: Option<impl FnOnce(Error) + Send + 'static>,
    ) -> Result<()> {
        // Take the number and queue under the lock so numbers reach the pool in order
        // and a refused item can fill its hole at once.
        let mut state = lock(&self.shared.state);
        let seq = state.next_seq;
        state.next_seq += 1;
        let shared = Arc::clone(&self.shared);
        let pool = Arc::clone(self.pool.inner());
        let job = move || {
            let entry: Option<OrderedFn> = match catch_unwind(AssertUnwindSafe(func)) {
                Ok(v) => Some(Box::new(move || ordered_func(v))),
                Err(p) => {
                    shared.panics.fetch_add(1, Ordering::Relaxed);
                    let message = panic_message(&*p);
                    pool.record_panic(message.clone());
                    let error = Error::Panicked {
                        pool: pool.name().to_owned(),
                        message,
                    };
                    on_panic.map(|f| -> OrderedFn { Box::new(move || f(error)) })
                }
            };
            finish(&shared, &pool, seq, entry);
        };
        let queued = self.pool.queue(job);
        if queued.is_err() {
            state.done.insert(seq, None);
            drop(state);
            finish_ready(&self.shared, None);
        }
        queued
    }

    /// [`queue`](Self::queue) under the pool's caller-runs policy
    /// ([`Workers::run_or_queue`]): when the pool is saturated, `func` runs on the
    /// calling thread, and so do the ordered functions that are then ready (this one
    /// among them, when every earlier item is done). Returns whether `func` ran here.
    pub fn run_or_queue<T: Send + 'static>(
        &self,
        func: impl FnOnce() -> T + Send + 'static,
        ordered_func: impl FnOnce(T) + Send + 'static,
    ) -> Result<crate::Ran> {
        if !self.pool.inner().saturated() {
            return self.queue(func, ordered_func).map(|()| crate::Ran::Queued);
        }
        let seq = {
            let mut state = lock(&self.shared.state);
            let seq = state.next_seq;
            state.next_seq += 1;
            seq
        };
        let shared = Arc::clone(&self.shared);
        let pool = Arc::clone(self.pool.inner());
        let mut entry: Option<OrderedFn> = None;
        let ran = self.pool.inner().run_on_caller(|| {
            entry = match catch_unwind(AssertUnwindSafe(func)) {
                Ok(v) => Some(Box::new(move || ordered_func(v))),
                Err(p) => {
                    shared.panics.fetch_add(1, Ordering::Relaxed);
                    pool.record_panic(panic_message(&*p));
                    None
                }
            };
        });
        // Refused (the pool shut down): the hole is filled so later items still run.
        finish(&shared, &pool, seq, entry);
        ran.map(|()| crate::Ran::Caller)
    }

    /// Waits until every `ordered_func` queued so far has run (or was skipped).
    pub fn flush(&self) {
        let state = lock(&self.shared.state);
        let target = state.next_seq;
        if state.next_run >= target {
            return;
        }
        drop(state);
        crate::blocking(|| {
            let mut state = lock(&self.shared.state);
            while state.next_run < target {
                state = self
                    .shared
                    .cv
                    .wait(state)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
        });
    }

    /// Panics caught in this stream's `func`s and `ordered_func`s.
    pub fn panics(&self) -> u64 {
        self.shared.panics.load(Ordering::Relaxed)
    }

    /// How many items were queued on this stream and how many ordered halves ran.
    pub fn progress(&self) -> (u64, u64) {
        let s = lock(&self.shared.state);
        (s.next_seq, s.next_run)
    }
}

fn finish(
    shared: &Arc<Shared>,
    pool: &Arc<crate::pool::Inner>,
    seq: u64,
    entry: Option<OrderedFn>,
) {
    {
        let mut state = lock(&shared.state);
        assert!(seq >= state.next_run, "ordered item {seq} finished twice");
        let fresh = state.done.insert(seq, entry).is_none();
        assert!(fresh, "ordered item {seq} finished twice");
    }
    finish_ready(shared, Some(pool));
}

/// Runs every ordered function whose turn has come, unless another thread already is.
fn finish_ready(shared: &Arc<Shared>, pool: Option<&Arc<crate::pool::Inner>>) {
    let mut state = lock(&shared.state);
    if state.running {
        return;
    }
    state.running = true;
    loop {
        let next = state.next_run;
        let Some(entry) = state.done.remove(&next) else {
            break;
        };
        drop(state);
        if let Some(f) = entry {
            if let Err(p) = catch_unwind(AssertUnwindSafe(f)) {
                shared.panics.fetch_add(1, Ordering::Relaxed);
                if let Some(pool) = pool {
                    pool.record_panic(panic_message(&*p));
                }
            }
        }
        state = lock(&shared.state);
        state.next_run = next + 1;
        shared.cv.notify_all();
    }
    state.running = false;
}
