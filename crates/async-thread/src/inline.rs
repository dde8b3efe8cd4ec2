//! Small closures stored inside the queued entry, so queueing one does not allocate.
//!
//! A pool's hot path is "allocate a box, hand it to another thread, free it there".
//! The free on a worker and the next allocation on the producer meet in the
//! allocator's shared free lists, and that costs more than the rest of a queueing
//! (measured with `perf` on the `pool/tiny` bench). A closure of at most
//! `INLINE_WORDS` machine words with at most word alignment (an `Arc` or two and an
//! index, the usual end-I/O callback) is stored in place instead; bigger ones are
//! boxed by the caller. This is the crate's only `unsafe` code.

use std::mem::{align_of, size_of, ManuallyDrop, MaybeUninit};

/// Words of closure state stored in place.
pub(crate) const INLINE_WORDS: usize = 3;

type Storage = MaybeUninit<[usize; INLINE_WORDS]>;

/// A type-erased `FnOnce() + Send` stored in place.
pub(crate) struct InlineFn {
    data: Storage,
    /// Calls (`true`) or drops (`false`) the closure in `data`, which is then gone.
    op: unsafe fn(*mut u8, bool),
}

// SAFETY: an `InlineFn` is only built from an `F: Send` (see `new`), and it owns that
// value and nothing else, so moving it to another thread moves an `F`.
unsafe impl Send for InlineFn {}

impl std::fmt::Debug for InlineFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InlineFn")
    }
}

impl InlineFn {
    /// Whether an `F` fits in place.
    pub(crate) const fn fits<F>() -> bool {
        size_of::<F>() <= size_of::<Storage>() && align_of::<F>() <= align_of::<Storage>()
    }

    /// Stores `f` in place; hands it back when it does not fit.
    pub(crate) fn new<F: FnOnce() + Send + 'static>(f: F) -> Result<Self, F> {
        if !Self::fits::<F>() {
            return Err(f);
        }
        let mut data = Storage::uninit();
        // SAFETY: `data` is valid for a write of `F`: `fits` checked that `F` is no
        // larger and no more aligned than the storage.
        unsafe { data.as_mut_ptr().cast::<F>().write(f) };
        Ok(Self {
            data,
            op: run_or_drop::<F>,
        })
    }

    /// Runs the closure (consuming it; a panic unwinds out after dropping it).
    pub(crate) fn call(self) {
        let mut me = ManuallyDrop::new(self);
        let op = me.op;
        // SAFETY: `data` holds the `F` that `new` wrote for this `op`, and it has not
        // been moved out: `call` takes `self` by value and `ManuallyDrop` keeps `Drop`
        // from touching it again after `op` moved it out.
        unsafe { op(me.data.as_mut_ptr().cast(), true) };
    }
}

impl Drop for InlineFn {
    fn drop(&mut self) {
        // SAFETY: `data` still holds the `F` that `new` wrote for this `op`: the only
        // other way out is `call`, which consumes `self` without running this.
        unsafe { (self.op)(self.data.as_mut_ptr().cast(), false) };
    }
}

/// Moves the `F` out of `p` and calls it (`call`) or drops it.
///
/// # Safety
/// `p` points to a valid, aligned `F` that nobody uses afterwards.
unsafe fn run_or_drop<F: FnOnce()>(p: *mut u8, call: bool) {
    // SAFETY: the caller guarantees a valid `F` at `p` that is ours to move out.
    let f = unsafe { p.cast::<F>().read() };
    if call {
        f();
    } else {
        drop(f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// Counts its drops.
    struct Tracked(Arc<AtomicUsize>);
    impl Drop for Tracked {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn runs_once_and_drops_once() {
        let drops = Arc::new(AtomicUsize::new(0));
        let runs = Arc::new(AtomicUsize::new(0));
        let (t, r) = (Tracked(Arc::clone(&drops)), Arc::clone(&runs));
        let f = InlineFn::new(move || {
            let _keep = &t;
            r.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap_or_else(|_| panic!("two words fit"));
        // Moving the entry around (as queues do) moves the closure with it.
        let moved = vec![f].pop().unwrap();
        assert_eq!(drops.load(Ordering::SeqCst), 0);
        moved.call();
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn debug_names_the_type_only() {
        let f = InlineFn::new(|| ()).ok().unwrap();
        assert_eq!(format!("{f:?}"), "InlineFn");
        f.call();
    }

    #[test]
    fn dropped_unrun_drops_the_closure_once() {
        let drops = Arc::new(AtomicUsize::new(0));
        let t = Tracked(Arc::clone(&drops));
        let f = InlineFn::new(move || drop(t)).unwrap_or_else(|_| panic!("fits"));
        drop(f);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn panic_drops_the_closure_once() {
        let drops = Arc::new(AtomicUsize::new(0));
        let t = Tracked(Arc::clone(&drops));
        let f = InlineFn::new(move || {
            let _keep = &t;
            panic!("boom");
        })
        .unwrap_or_else(|_| panic!("fits"));
        let res = catch_unwind(AssertUnwindSafe(|| f.call()));
        assert!(res.is_err());
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn too_big_or_too_aligned_is_handed_back() {
        let big = [7_u64; INLINE_WORDS + 1];
        let f = move || assert_eq!(big.len(), INLINE_WORDS + 1);
        let back = InlineFn::new(f).expect_err("too big for the storage");
        back();
        let wide = 7_u128;
        let g = move || assert_eq!(wide, 7);
        assert_eq!(
            InlineFn::fits::<u128>(),
            align_of::<u128>() <= align_of::<usize>()
        );
        match InlineFn::new(g) {
            Ok(f) => f.call(),
            Err(g) => g(),
        }
        // Zero-sized closures fit.
        let hit = Arc::new(AtomicUsize::new(0));
        InlineFn::new(|| ())
            .unwrap_or_else(|_| panic!("zst fits"))
            .call();
        let h = Arc::clone(&hit);
        InlineFn::new(move || {
            h.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap_or_else(|_| panic!("one word fits"))
        .call();
        assert_eq!(hit.load(Ordering::SeqCst), 1);
    }
}
