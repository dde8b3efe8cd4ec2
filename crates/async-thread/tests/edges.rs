//! Tests that pin behaviour mutation testing (`cargo xtask mutants`) found unpinned:
//! `Ordered::progress` and `Stats::outstanding` while work is held.
//! `docs/MUTANTS.md` lists the mutants each one kills.

use stack_async_thread::Workers;
use std::sync::mpsc;
use std::sync::{Arc, Barrier};

#[test]
fn ordered_progress_counts_queued_items_and_ordered_halves_run() {
    let pool = Workers::builder("progress").max_threads(2).build().unwrap();
    let stream = pool.ordered();
    assert_eq!(stream.progress(), (0, 0));
    // The first item waits for the test, so the ordered halves of all three wait too.
    let (release, held) = mpsc::channel::<()>();
    let started = Arc::new(Barrier::new(2));
    let s2 = Arc::clone(&started);
    stream
        .queue(
            move || {
                s2.wait();
                held.recv().unwrap();
            },
            |()| {},
        )
        .unwrap();
    stream.queue(|| (), |()| {}).unwrap();
    stream.queue(|| (), |()| {}).unwrap();
    started.wait();
    assert_eq!(
        stream.progress(),
        (3, 0),
        "queued 3, none of the ordered halves ran"
    );
    release.send(()).unwrap();
    stream.flush();
    assert_eq!(stream.progress(), (3, 3));
    pool.shutdown();
}

#[test]
fn outstanding_counts_work_accepted_and_not_finished() {
    let pool = Workers::builder("outstanding")
        .max_threads(1)
        .build()
        .unwrap();
    assert_eq!(pool.stats().outstanding, 0);
    let (release, held) = mpsc::channel::<()>();
    let started = Arc::new(Barrier::new(2));
    let s2 = Arc::clone(&started);
    pool.queue(move || {
        s2.wait();
        held.recv().unwrap();
    })
    .unwrap();
    pool.queue(|| ()).unwrap();
    started.wait();
    assert_eq!(
        pool.stats().outstanding,
        2,
        "one running, one queued behind it"
    );
    release.send(()).unwrap();
    pool.flush();
    assert_eq!(pool.stats().outstanding, 0);
    pool.shutdown();
}
