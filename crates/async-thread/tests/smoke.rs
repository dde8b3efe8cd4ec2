//! Quick end-to-end checks of the public API (the heavy ones live in `tests/pool.rs`).

use stack_async_thread::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

#[test]
fn basic_api() {
    let pool = Workers::builder("smoke")
        .min_threads(1)
        .max_threads(3)
        .build()
        .unwrap();
    let n = Arc::new(AtomicUsize::new(0));
    for _ in 0..1000 {
        let n = Arc::clone(&n);
        pool.queue(move || {
            n.fetch_add(1, Ordering::Relaxed);
        })
        .unwrap();
    }
    pool.flush();
    assert_eq!(n.load(Ordering::Relaxed), 1000);
    assert_eq!(pool.queue_and_wait(|| 7).unwrap(), 7);
    let e = pool
        .queue_and_wait(|| -> u8 { panic!("kaboom") })
        .unwrap_err();
    assert!(matches!(e, Error::Panicked { ref message, .. } if message == "kaboom"));
    let wq = WorkQueue::builder("wq").max_active(2).build().unwrap();
    assert_eq!(wq.queue_and_wait(|| 1 + 1).unwrap(), 2);
    wq.shutdown();
    pool.shutdown();
    assert!(matches!(pool.queue(|| {}), Err(Error::ShutDown { .. })));
    let s = pool.stats();
    assert_eq!(s.panics, 1);
    assert_eq!(s.run, s.queued);
}
