//! Chunk accounting of the write pipeline: what is in flight, and a ticket per chunk
//! that reports lost work when a stage drops it.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use crate::Error;

/// Chunks in flight and the first error any of them met.
#[derive(Default)]
pub(super) struct Inflight {
    state: Mutex<(usize, Option<Error>)>,
    cv: Condvar,
}

impl Inflight {
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, (usize, Option<Error>)> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn done(&self, result: Result<(), Error>) {
        let mut s = self.lock();
        assert!(s.0 > 0);
        s.0 -= 1;
        if let Err(e) = result {
            s.1.get_or_insert(e);
        }
        // Only `wait_idle` waits, and only for zero: waking it earlier is a system call
        // per chunk (a futex wake, whether or not anyone waits) for nothing.
        if s.0 == 0 {
            self.cv.notify_all();
        }
    }

    /// Waits until nothing is in flight; returns the first error.
    pub(super) fn wait_idle(&self) -> Result<(), Error> {
        let mut s = self.lock();
        while s.0 > 0 {
            s = self.cv.wait(s).unwrap_or_else(|e| e.into_inner());
        }
        match s.1.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// One chunk on its way through the pipeline. It must be finished exactly once; if a
/// stage drops it instead (a panicking work item, a skipped ordered step, a cancelled
/// bio) the drop reports the loss, so waiting for the pipeline to drain never hangs.
pub(super) struct ChunkTicket {
    inflight: Arc<Inflight>,
    run_pending: Arc<AtomicUsize>,
    run_failed: Arc<AtomicBool>,
    finished: bool,
}

impl ChunkTicket {
    pub(super) fn new(
        inflight: &Arc<Inflight>,
        run_pending: &Arc<AtomicUsize>,
        run_failed: &Arc<AtomicBool>,
    ) -> Self {
        inflight.lock().0 += 1;
        run_pending.fetch_add(1, Ordering::AcqRel);
        ChunkTicket {
            inflight: Arc::clone(inflight),
            run_pending: Arc::clone(run_pending),
            run_failed: Arc::clone(run_failed),
            finished: false,
        }
    }

    pub(super) fn finish(mut self, result: Result<(), Error>) {
        self.finished = true;
        if result.is_err() {
            self.run_failed.store(true, Ordering::Release);
        }
        self.run_pending.fetch_sub(1, Ordering::AcqRel);
        self.inflight.done(result);
    }
}

impl Drop for ChunkTicket {
    fn drop(&mut self) {
        if !self.finished {
            self.run_failed.store(true, Ordering::Release);
            self.run_pending.fetch_sub(1, Ordering::AcqRel);
            self.inflight.done(Err(Error::WorkLost {
                stage: "write pipeline",
            }));
        }
    }
}
