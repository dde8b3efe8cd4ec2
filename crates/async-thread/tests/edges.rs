//! Tests that pin behaviour mutation testing (`cargo xtask mutants`) found unpinned:
//! `Ordered::progress` and `Stats::outstanding` while work is held, and `Debug` output.
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

/// `Debug` output is what a user sees in a log or a failed assertion: it names the type
/// and its state.
#[test]
fn debug_output_names_the_type_and_its_state() {
    let c = stack_async_thread::Completion::<u32>::new();
    assert_eq!(format!("{c:?}"), r#"Completion { state: "pending" }"#);
    c.complete(7);
    assert_eq!(format!("{c:?}"), r#"Completion { state: "ready" }"#);
    assert_eq!(c.wait().unwrap(), 7);
    assert_eq!(format!("{c:?}"), r#"Completion { state: "taken" }"#);

    let pool = Workers::builder("debugged").max_threads(1).build().unwrap();
    let stream = pool.ordered();
    stream.queue(|| 1, |_| {}).unwrap();
    stream.flush();
    assert_eq!(
        format!("{stream:?}"),
        "Ordered { queued: 1, ordered_run: 1 }"
    );
    let item = stack_async_thread::WorkItem::new(|| stack_async_thread::Step::Done);
    assert_eq!(format!("{item:?}"), "WorkItem { pending: false, runs: 0 }");
    assert!(format!("{pool:?}").contains("debugged"), "{pool:?}");
    pool.shutdown();
}

#[test]
fn a_workqueues_high_lane_runs_its_items() {
    let queue = stack_async_thread::WorkQueue::builder("high")
        .build()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    for i in 0..3 {
        let tx = tx.clone();
        queue.queue_high(move || tx.send(i).unwrap()).unwrap();
    }
    queue.flush();
    let mut got: Vec<i32> = rx.try_iter().collect();
    got.sort_unstable();
    assert_eq!(got, [0, 1, 2]);
    assert_eq!(queue.stats().queued_high, 3);
    queue.shutdown();
}
