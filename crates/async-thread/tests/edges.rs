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

/// Records every thread a pool starts (name, stack size) and every one that ended.
#[derive(Debug, Default)]
struct Recording {
    started: std::sync::Mutex<Vec<(String, Option<usize>)>>,
    ended: Arc<std::sync::atomic::AtomicUsize>,
}

impl stack_async_thread::Spawner for Recording {
    fn spawn(
        &self,
        name: String,
        stack_size_bytes: Option<usize>,
        body: Box<dyn FnOnce() + Send + 'static>,
    ) -> std::io::Result<()> {
        self.started
            .lock()
            .unwrap()
            .push((name.clone(), stack_size_bytes));
        let ended = Arc::clone(&self.ended);
        stack_async_thread::ThreadSpawner.spawn(
            name,
            stack_size_bytes,
            Box::new(move || {
                body();
                ended.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }),
        )
    }
}

use stack_async_thread::Spawner as _;

#[test]
fn names_and_shut_down_state_are_what_the_builder_and_shutdown_made() {
    let pool = Workers::builder("named-pool").build().unwrap();
    assert_eq!(pool.name(), "named-pool");
    assert!(!pool.is_shut_down());
    pool.shutdown();
    assert!(pool.is_shut_down());
    assert!(pool.queue(|| ()).is_err());

    let queue = stack_async_thread::WorkQueue::builder("named-queue")
        .build()
        .unwrap();
    assert_eq!(queue.name(), "named-queue");
    assert!(format!("{queue:?}").contains("named-queue"), "{queue:?}");
    queue.shutdown();
    let refused = queue.queue(|| ()).unwrap_err();
    assert!(
        matches!(&refused, stack_async_thread::Error::ShutDown { pool } if pool == "named-queue"),
        "{refused}"
    );
}

#[test]
fn every_thread_of_a_pool_gets_the_stack_size_and_ends_after_shutdown() {
    let spawner = Arc::new(Recording::default());
    let pool = Workers::builder("stacked")
        .min_threads(2)
        .max_threads(3)
        .stack_size(512 << 10)
        .spawner(Arc::clone(&spawner) as Arc<dyn stack_async_thread::Spawner>)
        .build()
        .unwrap();
    pool.queue_and_wait(|| ()).unwrap();
    pool.shutdown();
    let started = spawner.started.lock().unwrap().clone();
    assert!(
        started.len() >= 3,
        "the helper and two workers: {started:?}"
    );
    assert!(
        started.iter().all(|(_, s)| *s == Some(512 << 10)),
        "{started:?}"
    );
    ended_all(&spawner, started.len());

    let spawner = Arc::new(Recording::default());
    let queue = stack_async_thread::WorkQueue::builder("stacked-q")
        .rescuer(true)
        .stack_size(256 << 10)
        .spawner(Arc::clone(&spawner) as Arc<dyn stack_async_thread::Spawner>)
        .build()
        .unwrap();
    queue.queue_and_wait(|| ()).unwrap();
    queue.shutdown();
    let started = spawner.started.lock().unwrap().clone();
    assert!(
        started.iter().all(|(_, s)| *s == Some(256 << 10)),
        "{started:?}"
    );
    assert!(
        started.iter().any(|(n, _)| n == "stacked-q-rescuer"),
        "{started:?}"
    );
    ended_all(&spawner, started.len());
}

/// Every thread the pool started returns from its body (each is past the pool's own
/// accounting once `shutdown` returned: only the last instructions of the wrapper may
/// still be running, so wait for those; a thread that never ends hangs the test).
fn ended_all(spawner: &Recording, started: usize) {
    while spawner.ended.load(std::sync::atomic::Ordering::SeqCst) < started {
        std::thread::yield_now();
    }
}

#[test]
fn a_workqueues_drain_waits_for_items_queued_meanwhile() {
    let queue = stack_async_thread::WorkQueue::builder("drained")
        .build()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let q2 = queue.clone();
    queue
        .queue(move || {
            // Queued after the drain began: drain (unlike flush) waits for it too.
            q2.queue(move || tx.send(()).unwrap()).unwrap();
        })
        .unwrap();
    queue.drain();
    assert_eq!(queue.stats().outstanding, 0);
    assert!(rx.try_recv().is_ok());
    queue.shutdown();
}

#[test]
fn a_failing_spawner_counts_each_refusal() {
    let s = stack_async_thread::FailingSpawner::new(0);
    for n in 1..=3 {
        assert!(s.spawn(format!("t{n}"), None, Box::new(|| ())).is_err());
        assert_eq!(s.refused(), n);
    }
    assert_eq!(s.spawned(), 0);
}

#[test]
fn a_pool_built_with_defaults_takes_two_threads_per_core_and_at_least_four() {
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    let want = (2 * cores).max(4);
    let pool = Workers::builder("defaults").build().unwrap();
    // Every item blocks (marked) until the test lets go: each waiting item makes the
    // pool start another worker, up to max_threads.
    let (release, held) = mpsc::channel::<()>();
    let held = Arc::new(std::sync::Mutex::new(held));
    for _ in 0..want + 2 {
        let held = Arc::clone(&held);
        pool.queue(move || {
            stack_async_thread::blocking(|| {
                let _ = held.lock().unwrap().recv();
            })
        })
        .unwrap();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while pool.stats().threads < want && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let s = pool.stats();
    assert_eq!((s.threads, s.threads_peak), (want, want), "{s:?}");
    drop(release);
    pool.shutdown();
    assert_eq!(
        pool.stats().threads_peak,
        want,
        "never more than max_threads"
    );
}

#[test]
fn an_item_may_flush_and_drain_its_own_pool() {
    // The item's own colour is not waited for: it cannot finish while it waits.
    let pool = Workers::builder("self-flush")
        .max_threads(2)
        .build()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let p = pool.clone();
    pool.queue(move || {
        let (inner_tx, inner_rx) = mpsc::channel();
        p.queue(move || inner_tx.send(()).unwrap()).unwrap();
        p.flush();
        assert!(
            inner_rx.try_recv().is_ok(),
            "flush waited for the earlier item"
        );
        p.drain();
        tx.send(()).unwrap();
    })
    .unwrap();
    rx.recv().unwrap();
    let q = stack_async_thread::WorkQueue::builder("self-flush-q")
        .build()
        .unwrap();
    let q2 = q.clone();
    q.queue_and_wait(move || q2.flush()).unwrap();
    pool.shutdown();
    q.shutdown();
}
