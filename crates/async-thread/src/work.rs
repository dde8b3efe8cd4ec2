//! Work items: one-shot closures and reusable [`WorkItem`]s that can requeue themselves.

use crate::inline::InlineFn;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// What a [`WorkItem`]'s function asks for when it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Finished for now; the item is idle until queued again.
    Done,
    /// Not finished: put the item back at the tail of this worker's list, so items
    /// queued behind it get the CPU first (btrfs's `btrfs_requeue_work`).
    Requeue,
}

/// What queueing a [`WorkItem`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Queued {
    /// The item is now pending.
    Queued,
    /// It was already pending; nothing changed (btrfs's `test_and_set_bit` no-op).
    AlreadyPending,
}

type ItemFn = Box<dyn FnMut() -> Step + Send>;

struct ItemInner {
    pending: AtomicBool,
    runs: AtomicU64,
    func: Mutex<ItemFn>,
}

/// A reusable work object: queue it as often as you like; while it is pending, queueing
/// it again is a no-op that says so ([`Queued::AlreadyPending`]).
///
/// The pending flag is cleared just before the function runs, so an event that arrives
/// while it runs queues it once more (it is never lost). The function never runs on
/// two threads at once. Cheap to clone; clones are the same item.
#[derive(Clone)]
pub struct WorkItem {
    inner: Arc<ItemInner>,
}

impl fmt::Debug for WorkItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkItem")
            .field("pending", &self.is_pending())
            .field("runs", &self.runs())
            .finish()
    }
}

impl WorkItem {
    /// A work object running `func` each time it is dequeued.
    pub fn new(func: impl FnMut() -> Step + Send + 'static) -> Self {
        Self {
            inner: Arc::new(ItemInner {
                pending: AtomicBool::new(false),
                runs: AtomicU64::new(0),
                func: Mutex::new(Box::new(func)),
            }),
        }
    }

    /// Whether it sits in a pending list now.
    pub fn is_pending(&self) -> bool {
        self.inner.pending.load(Ordering::SeqCst)
    }

    /// How many times its function has run (requeued runs included).
    pub fn runs(&self) -> u64 {
        self.inner.runs.load(Ordering::SeqCst)
    }

    /// Sets the pending flag; `false` when it was set already.
    pub(crate) fn mark_pending(&self) -> bool {
        !self.inner.pending.swap(true, Ordering::SeqCst)
    }

    /// Undoes [`mark_pending`](Self::mark_pending) when the queueing failed.
    pub(crate) fn unmark_pending(&self) {
        self.inner.pending.store(false, Ordering::SeqCst);
    }

    /// Runs the function once: clears pending first, as btrfs does.
    pub(crate) fn run(&self) -> Step {
        self.inner.pending.store(false, Ordering::SeqCst);
        let mut func = self
            .inner
            .func
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.inner.runs.fetch_add(1, Ordering::SeqCst);
        (func)()
    }
}

/// The body of a queued entry.
pub(crate) enum Job {
    /// A small closure stored in place (no allocation).
    Inline(InlineFn),
    Once(Box<dyn FnOnce() + Send>),
    Item(WorkItem),
}

impl Job {
    /// A one-shot closure: in place when it is small, else boxed.
    pub(crate) fn once(f: impl FnOnce() + Send + 'static) -> Self {
        match InlineFn::new(f) {
            Ok(inline) => Job::Inline(inline),
            Err(f) => Job::Once(Box::new(f)),
        }
    }
}

/// A queued entry: its body and the flush colour it was counted under.
pub(crate) struct Task {
    pub(crate) job: Job,
    pub(crate) color: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_flag_is_test_and_set() {
        let item = WorkItem::new(|| Step::Done);
        assert!(item.mark_pending());
        assert!(!item.mark_pending());
        assert_eq!(item.run(), Step::Done);
        assert!(!item.is_pending());
        assert_eq!(item.runs(), 1);
        assert!(item.mark_pending());
        item.unmark_pending();
        assert!(!item.is_pending());
    }
}
