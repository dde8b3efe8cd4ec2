//! Warnings for blocking calls a pool worker makes outside [`blocking`](crate::blocking).
//!
//! A worker that blocks without saying so still counts as running: its pool neither
//! hands its queued items to another worker nor starts one, so the items behind it
//! wait (and with every worker so blocked, the pool stalls). Libraries mark their own
//! blocking calls with [`warn_unmarked_blocking`]; in a debug build (or once a hook is
//! installed) a call on a pool worker outside `blocking()` is reported once per call
//! site and thread.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::panic::Location;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::RwLock;

/// A blocking call a pool worker made outside [`blocking`](crate::blocking).
#[non_exhaustive]
#[derive(Debug, Clone)]
pub struct BlockingWarning {
    /// What blocked, as the library named it (`"FileDevice::read_at"`).
    pub what: &'static str,
    /// The pool whose worker made the call.
    pub pool: String,
    /// Where [`warn_unmarked_blocking`] was called from.
    pub location: &'static Location<'static>,
}

/// Receives [`BlockingWarning`]s instead of stderr ([`set_blocking_warning_hook`]).
pub type BlockingWarningHook = fn(&BlockingWarning);

static HOOK_SET: AtomicBool = AtomicBool::new(false);
static HOOK: RwLock<Option<BlockingWarningHook>> = RwLock::new(None);

thread_local! {
    /// How many `blocking()` calls the thread is inside.
    static MARKED: Cell<u32> = const { Cell::new(0) };
    /// Call sites already reported on this thread.
    static WARNED: RefCell<HashSet<(&'static str, u32, u32)>> = RefCell::new(HashSet::new());
}

/// The thread is inside `blocking()` while this lives.
pub(crate) struct Marked;

impl Marked {
    pub(crate) fn enter() -> Marked {
        MARKED.with(|m| m.set(m.get() + 1));
        Marked
    }
}

impl Drop for Marked {
    fn drop(&mut self) {
        MARKED.with(|m| m.set(m.get() - 1));
    }
}

/// Sends blocking warnings to `hook` instead of stderr (`None`: back to stderr).
/// Installing a hook also turns the check on in release builds, where it is off by
/// default (it costs a thread-local look-up per marked call).
///
/// ```
/// use stack_async_thread::{set_blocking_warning_hook, BlockingWarning};
/// fn log(w: &BlockingWarning) {
///     eprintln!("{} blocked pool {} at {}", w.what, w.pool, w.location);
/// }
/// set_blocking_warning_hook(Some(log));
/// # set_blocking_warning_hook(None);
/// ```
pub fn set_blocking_warning_hook(hook: Option<BlockingWarningHook>) {
    *HOOK.write().unwrap_or_else(|e| e.into_inner()) = hook;
    HOOK_SET.store(hook.is_some(), Ordering::Release);
}

/// Marks a call that may block the thread (a library calls it at the top of its
/// blocking functions). On a pool worker of this crate, outside
/// [`blocking`](crate::blocking), it reports a [`BlockingWarning`] once per call site
/// and thread: to the hook of [`set_blocking_warning_hook`], else to stderr. It does
/// nothing elsewhere, and nothing at all in a release build without a hook.
///
/// `stack-bio` marks `FileDevice`'s synchronous reads, writes and flushes.
///
/// ```
/// use stack_async_thread::{blocking, warn_unmarked_blocking, Workers};
///
/// fn read_sector() {
///     warn_unmarked_blocking("read_sector"); // warns on a pool worker
///     // ... a synchronous read ...
/// }
/// let pool = Workers::builder("demo").build()?;
/// pool.queue_and_wait(|| blocking(read_sector))?; // marked: no warning
/// # Ok::<(), stack_async_thread::Error>(())
/// ```
#[track_caller]
pub fn warn_unmarked_blocking(what: &'static str) {
    let hooked = HOOK_SET.load(Ordering::Acquire);
    if !cfg!(debug_assertions) && !hooked {
        return;
    }
    if MARKED.with(Cell::get) > 0 {
        return;
    }
    let Some(pool) = crate::pool::current_worker_pool() else {
        return;
    };
    let location = Location::caller();
    let first = WARNED.with(|w| {
        w.borrow_mut()
            .insert((location.file(), location.line(), location.column()))
    });
    if !first {
        return;
    }
    let warning = BlockingWarning {
        what,
        pool,
        location,
    };
    let hook = *HOOK.read().unwrap_or_else(|e| e.into_inner());
    match hook {
        Some(hook) => hook(&warning),
        None => eprintln!(
            "warning: {} blocks a worker of pool `{}` outside stack_async_thread::blocking() \
             (at {}); the pool cannot hand this worker's queued items to another meanwhile",
            warning.what, warning.pool, warning.location
        ),
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::{blocking, Workers};
    use std::sync::Mutex;

    static SEEN: Mutex<Vec<(&'static str, String)>> = Mutex::new(Vec::new());

    fn record(w: &BlockingWarning) {
        SEEN.lock().unwrap().push((w.what, w.pool.clone()));
    }

    fn mark(what: &'static str) {
        warn_unmarked_blocking(what);
    }

    /// The hook and `SEEN` are global: one test at a time.
    static SERIAL: Mutex<()> = Mutex::new(());

    #[test]
    fn an_unmarked_call_on_a_worker_warns_once_per_site_and_thread() {
        let _serial = SERIAL.lock().unwrap();
        SEEN.lock().unwrap().clear();
        set_blocking_warning_hook(Some(record));
        let pool = Workers::builder("warned")
            .min_threads(1)
            .max_threads(1)
            .build()
            .unwrap();
        pool.queue_and_wait(|| {
            blocking(|| mark("inside")); // marked: silent
            mark("outside");
            mark("outside"); // same call site (in `mark`), same thread: once
            mark("outside");
        })
        .unwrap();
        mark("not a worker"); // the test thread: silent
        set_blocking_warning_hook(None);
        let seen = SEEN.lock().unwrap().clone();
        assert_eq!(seen, vec![("outside", "warned".to_owned())]);
    }

    #[test]
    fn a_release_build_without_a_hook_does_not_even_look() {
        let _serial = SERIAL.lock().unwrap();
        let pool = Workers::builder("unhooked").max_threads(1).build().unwrap();
        let saw = pool
            .queue_and_wait(|| {
                SEEN.lock().unwrap().clear();
                for hooked in [false, true] {
                    if hooked {
                        set_blocking_warning_hook(Some(record));
                    }
                    mark_here("unhooked"); // one call site, twice
                }
                set_blocking_warning_hook(None);
                SEEN.lock().unwrap().len()
            })
            .unwrap();
        // A debug build warned (to stderr) at the first call and then never again at
        // that site; a release build skipped the first call entirely.
        let want = if cfg!(debug_assertions) { 0 } else { 1 };
        assert_eq!(saw, want);
    }

    fn mark_here(what: &'static str) {
        warn_unmarked_blocking(what);
    }
}
