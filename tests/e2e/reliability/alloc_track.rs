//! A global allocator that remembers, per thread, the largest single allocation asked
//! for: the hostile-bytes tests use it to prove no decoder allocates a length it read
//! from disk without a bound.
//!
//! It wraps the system allocator and only touches a `const` thread-local cell, so it
//! costs every other test in this binary next to nothing.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Tracking;

thread_local! {
    static LARGEST_BYTES: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    // `try_with`: allocations during thread teardown must not touch a dead slot.
    let _ = LARGEST_BYTES.try_with(|c| {
        if size > c.get() {
            c.set(size);
        }
    });
}

// SAFETY: every call forwards to `System` with the caller's layout and pointer
// unchanged; the only addition is a thread-local counter update that never allocates.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: same contract as ours, forwarded unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: same contract as ours, forwarded unchanged.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` with this layout (we never allocate elsewhere).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: `ptr` came from `System` with `layout`; forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Tracking = Tracking;

/// Runs `f` and returns its result with the largest single allocation it made on this
/// thread.
pub fn largest_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST_BYTES.with(|c| c.set(0));
    let out = f();
    (out, LARGEST_BYTES.with(Cell::get))
}

#[test]
fn tracks_the_largest_allocation() {
    let ((), largest) = largest_allocation(|| {
        let v = vec![0u8; 3 << 20];
        std::hint::black_box(&v);
    });
    assert!(largest >= 3 << 20, "{largest}");
    let ((), small) = largest_allocation(|| {
        let v = vec![0u8; 100];
        std::hint::black_box(&v);
    });
    assert!(small < 4096, "{small}");
}
