//! Integration tests of the pools through the public API: stress, ordering, rescuer,
//! blocking awareness, panics, shutdown and idle retirement.

use stack_async_thread::*;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Polls `cond` for up to `limit`; true when it held.
fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    cond()
}

/// Queues `count` items through `queue`; each sleeps `nap` (if any), then counts itself
/// in the returned counter.
fn queue_counted(
    count: usize,
    nap: Duration,
    mut queue: impl FnMut(Box<dyn FnOnce() + Send>),
) -> Arc<AtomicUsize> {
    let n = Arc::new(AtomicUsize::new(0));
    for _ in 0..count {
        let n = Arc::clone(&n);
        queue(Box::new(move || {
            if !nap.is_zero() {
                std::thread::sleep(nap);
            }
            n.fetch_add(1, Ordering::SeqCst);
        }));
    }
    n
}

/// Several producers, a million tiny items (in release): each runs exactly once.
#[test]
fn stress_every_item_runs_exactly_once() {
    let producers = 4;
    let per_producer = if cfg!(debug_assertions) {
        50_000
    } else {
        300_000
    };
    let total = producers * per_producer;
    let pool = Workers::builder("stress")
        .min_threads(2)
        .max_threads(4)
        .build()
        .unwrap();
    let hits: Arc<Vec<AtomicU8>> = Arc::new((0..total).map(|_| AtomicU8::new(0)).collect());
    std::thread::scope(|s| {
        for p in 0..producers {
            let pool = pool.clone();
            let hits = Arc::clone(&hits);
            s.spawn(move || {
                for i in 0..per_producer {
                    let idx = p * per_producer + i;
                    let hits = Arc::clone(&hits);
                    let job = move || {
                        hits[idx].fetch_add(1, Ordering::Relaxed);
                    };
                    // Mix the lanes so the high lane is stressed too.
                    if i % 97 == 0 {
                        pool.queue_high(job).unwrap();
                    } else {
                        pool.queue(job).unwrap();
                    }
                }
            });
        }
    });
    pool.drain();
    let bad = hits
        .iter()
        .enumerate()
        .find(|(_, h)| h.load(Ordering::Relaxed) != 1);
    assert!(bad.is_none(), "item ran a wrong number of times: {bad:?}");
    let s = pool.stats();
    assert_eq!(s.queued, total as u64);
    assert_eq!(s.run, total as u64);
    assert_eq!(s.outstanding, 0);
    assert!(s.threads_peak <= 4);
}

/// `ordered_func`s run strictly in queue order and one at a time, each after its own
/// `func`, even though the `func`s finish in random order.
#[test]
fn ordered_order_under_random_delays() {
    let pool = Workers::builder("ordered")
        .min_threads(4)
        .max_threads(4)
        .busy_threshold(2)
        .build()
        .unwrap();
    let stream = pool.ordered();
    let out = Arc::new(Mutex::new(Vec::new()));
    let inside = Arc::new(AtomicBool::new(false));
    let n = 300_u64;
    let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
    for i in 0..n {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay_us = seed % 500;
        let func_done = Arc::new(AtomicBool::new(false));
        let fd = Arc::clone(&func_done);
        let out = Arc::clone(&out);
        let inside = Arc::clone(&inside);
        stream
            .queue(
                move || {
                    std::thread::sleep(Duration::from_micros(delay_us));
                    fd.store(true, Ordering::SeqCst);
                    i
                },
                move |v| {
                    assert!(!inside.swap(true, Ordering::SeqCst), "two ordered at once");
                    assert!(func_done.load(Ordering::SeqCst));
                    out.lock().unwrap().push(v);
                    inside.store(false, Ordering::SeqCst);
                },
            )
            .unwrap();
    }
    stream.flush();
    assert_eq!(*out.lock().unwrap(), (0..n).collect::<Vec<_>>());
    assert_eq!(stream.panics(), 0);
    assert_eq!(pool.stats().panics, 0);
}

/// A panicking `func` skips its own ordered half but not the stream.
#[test]
fn ordered_survives_a_panicking_func() {
    let pool = Workers::builder("ord-panic")
        .max_threads(2)
        .build()
        .unwrap();
    let stream = pool.ordered();
    let out = Arc::new(Mutex::new(Vec::new()));
    for i in 0..10_u32 {
        let out = Arc::clone(&out);
        stream
            .queue(
                move || {
                    assert!(i != 4, "func {i} fails");
                    i
                },
                move |v| out.lock().unwrap().push(v),
            )
            .unwrap();
    }
    stream.flush();
    assert_eq!(*out.lock().unwrap(), vec![0, 1, 2, 3, 5, 6, 7, 8, 9]);
    assert_eq!(stream.panics(), 1);
    assert_eq!(pool.stats().panics, 1);
}

/// A panicking `func` used to leave its ordered half silently skipped; with
/// `queue_result` the ordered half runs in its turn and gets `Error::Panicked`.
#[test]
fn ordered_queue_result_reports_a_panicking_func_in_order() {
    let pool = Workers::builder("ord-result")
        .max_threads(2)
        .build()
        .unwrap();
    let stream = pool.ordered();
    let out = Arc::new(Mutex::new(Vec::new()));
    for i in 0..10_u32 {
        let out = Arc::clone(&out);
        stream
            .queue_result(
                move || {
                    assert!(i != 4, "func {i} fails");
                    i
                },
                move |r| {
                    let v = match r {
                        Ok(v) => Ok(v),
                        Err(Error::Panicked { pool, message }) => Err((pool, message)),
                        Err(other) => panic!("{other}"),
                    };
                    out.lock().unwrap().push(v);
                },
            )
            .unwrap();
    }
    stream.flush();
    let out = out.lock().unwrap();
    assert_eq!(out.len(), 10, "every ordered half ran");
    for (i, v) in out.iter().enumerate() {
        match v {
            Ok(v) => assert_eq!(*v as usize, i),
            Err((pool, message)) => {
                assert_eq!(i, 4);
                assert_eq!(pool, "ord-result");
                assert!(message.contains("func 4 fails"), "{message}");
            }
        }
    }
    assert_eq!(stream.panics(), 1);
}

/// Only the rescuer thread can be created: every item still runs, by the rescuer,
/// and `queue_and_wait` returns.
#[test]
fn rescuer_runs_work_when_spawning_fails() {
    let spawner = Arc::new(FailingSpawner::new(1));
    let wq = WorkQueue::builder("rescue")
        .max_active(4)
        .spawner(spawner.clone())
        .build()
        .unwrap();
    let n = queue_counted(50, Duration::ZERO, |f| wq.queue(f).unwrap());
    let start = Instant::now();
    assert_eq!(wq.queue_and_wait(|| 99).unwrap(), 99);
    assert!(start.elapsed() < Duration::from_secs(5));
    wq.flush();
    assert_eq!(n.load(Ordering::SeqCst), 50);
    let s = wq.stats();
    assert_eq!(s.threads, 0);
    assert!(s.rescuer_runs >= 51, "rescuer ran {}", s.rescuer_runs);
    assert!(s.spawn_failures >= 1);
    assert!(spawner.refused() >= 1);
    // Thread creation works again: workers take over from the rescuer.
    spawner.set_failing(false);
    std::thread::sleep(Duration::from_millis(150));
    let before = wq.stats().rescuer_runs;
    for _ in 0..20 {
        wq.queue_and_wait(|| ()).unwrap();
    }
    let s = wq.stats();
    assert!(s.threads >= 1);
    assert_eq!(s.rescuer_runs, before);
}

/// Without a rescuer and without threads, shutdown runs the orphaned work itself.
#[test]
fn shutdown_runs_orphans_when_no_thread_can_start() {
    let spawner = Arc::new(FailingSpawner::new(1));
    let pool = Workers::builder("orphans")
        .min_threads(0)
        .max_threads(2)
        .spawner(spawner)
        .build()
        .unwrap();
    let n = queue_counted(10, Duration::ZERO, |f| pool.queue(f).unwrap());
    assert_eq!(pool.stats().orphaned, 10);
    pool.shutdown();
    assert_eq!(n.load(Ordering::SeqCst), 10);
}

/// Point 7: as many items as the pool has threads each wait for an item queued after
/// all of them. Blocking awareness hands the later items to new workers.
#[test]
fn items_waiting_on_later_items_finish() {
    let pool = Workers::builder("dep")
        .min_threads(2)
        .max_threads(8)
        .build()
        .unwrap();
    let n = 2;
    let gates: Vec<Completion<u32>> = (0..n).map(|_| Completion::new()).collect();
    let results: Vec<Completion<u32>> = (0..n).map(|_| Completion::new()).collect();
    let (started_tx, started) = std::sync::mpsc::channel();
    for i in 0..n {
        let gate = gates[i].clone();
        let res = results[i].clone();
        let started_tx = started_tx.clone();
        pool.queue(move || {
            started_tx.send(()).unwrap();
            res.complete(gate.wait().unwrap() + 1)
        })
        .unwrap();
    }
    // Both items wait before the gates are queued: every worker is blocked, so the
    // gates need a new one (else a worker could run a gate before its item started).
    for _ in 0..n {
        started.recv().unwrap();
    }
    for (i, gate) in gates.iter().enumerate() {
        let gate = gate.clone();
        pool.queue(move || gate.complete(i as u32)).unwrap();
    }
    for (i, r) in results.iter().enumerate() {
        assert_eq!(
            r.wait_timeout(Duration::from_secs(10)).unwrap(),
            i as u32 + 1
        );
    }
    assert!(pool.stats().threads_peak > n);
}

/// Same with `queue_and_wait` from inside an item and the explicit `blocking` hint.
#[test]
fn nested_queue_and_wait_and_blocking_hint() {
    let pool = Workers::builder("nested")
        .min_threads(1)
        .max_threads(4)
        .build()
        .unwrap();
    let p2 = pool.clone();
    let v = pool
        .queue_and_wait(move || p2.queue_and_wait(|| 5).unwrap() * 2)
        .unwrap();
    assert_eq!(v, 10);
    let flag = Arc::new(AtomicBool::new(false));
    let f2 = Arc::clone(&flag);
    let f3 = Arc::clone(&flag);
    pool.queue(move || {
        blocking(|| {
            while !f2.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    })
    .unwrap();
    pool.queue(move || f3.store(true, Ordering::SeqCst))
        .unwrap();
    assert!(eventually(Duration::from_secs(10), || flag.load(Ordering::SeqCst)));
    pool.drain();
}

/// A worker stuck in a plain (unhinted) sleep: the watchdog notices the waiting items
/// and starts or wakes another worker.
#[test]
fn watchdog_moves_work_off_a_stuck_worker() {
    let pool = Workers::builder("wd")
        .min_threads(1)
        .max_threads(2)
        .build()
        .unwrap();
    let release = Arc::new(AtomicBool::new(false));
    let r = Arc::clone(&release);
    pool.queue(move || {
        while !r.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(1));
        }
    })
    .unwrap();
    let done = Completion::new();
    let d = done.clone();
    pool.queue(move || d.complete(())).unwrap();
    done.wait_timeout(Duration::from_secs(5)).unwrap();
    release.store(true, Ordering::SeqCst);
    assert!(pool.stats().watchdog_kicks >= 1);
}

/// Panics are caught, counted, and reach a waiter with their message.
#[test]
fn panics_are_counted_and_delivered() {
    let pool = Workers::builder("panics").max_threads(2).build().unwrap();
    for _ in 0..5 {
        pool.queue(|| panic!("plain")).unwrap();
    }
    let e = pool
        .queue_and_wait(|| -> u32 { panic!("with {}", "format") })
        .unwrap_err();
    match e {
        Error::Panicked { pool, message } => {
            assert_eq!(pool, "panics");
            assert_eq!(message, "with format");
        }
        other => panic!("unexpected {other}"),
    }
    pool.drain();
    assert_eq!(pool.queue_and_wait(|| 1).unwrap(), 1);
    let s = pool.stats();
    assert_eq!(s.panics, 6);
    assert!(s.last_panic.is_some());
}

/// Shutdown with a backlog runs every item, then refuses new ones; Drop does the same.
#[test]
fn shutdown_runs_pending_work() {
    let pool = Workers::builder("shut")
        .min_threads(1)
        .max_threads(2)
        .build()
        .unwrap();
    let n = queue_counted(500, Duration::from_micros(50), |f| pool.queue(f).unwrap());
    pool.shutdown();
    assert_eq!(n.load(Ordering::SeqCst), 500);
    assert!(matches!(pool.queue(|| {}), Err(Error::ShutDown { .. })));
    assert_eq!(pool.stats().threads, 0);
    pool.shutdown();

    let n2 = Arc::new(AtomicUsize::new(0));
    {
        let pool = Workers::builder("drop").build().unwrap();
        for _ in 0..100 {
            let n2 = Arc::clone(&n2);
            pool.queue(move || {
                n2.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
        }
    }
    assert_eq!(n2.load(Ordering::SeqCst), 100);
}

/// Dropping the last handle inside one of the pool's own items must not deadlock.
#[test]
fn last_handle_dropped_inside_an_item() {
    let pool = Workers::builder("selfdrop").build().unwrap();
    let done = Completion::new();
    let d = done.clone();
    let p = pool.clone();
    drop(pool);
    let inner = p.clone();
    p.queue(move || {
        drop(inner);
        d.complete(());
    })
    .unwrap();
    drop(p);
    done.wait_timeout(Duration::from_secs(5)).unwrap();
}

/// Threads beyond min retire after the idle timeout.
#[test]
fn idle_threads_retire_back_to_min() {
    let pool = Workers::builder("idle")
        .min_threads(1)
        .max_threads(4)
        .busy_threshold(1)
        .idle_timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    let gate = Completion::new();
    for _ in 0..4 {
        let g = gate.clone();
        pool.queue(move || {
            let _ = g.wait_timeout(Duration::from_millis(200));
        })
        .unwrap();
    }
    assert!(eventually(Duration::from_secs(5), || pool.stats().threads == 4));
    gate.complete(());
    assert!(eventually(Duration::from_secs(5), || pool.stats().threads == 1));
    // The last one stays, however long it idles (it slept through three timeouts).
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(pool.stats().threads, 1);
    assert_eq!(pool.stats().threads_peak, 4);
    // Still works after retiring.
    assert_eq!(pool.queue_and_wait(|| 3).unwrap(), 3);
}

/// Threads are named `NAME-N` and get the configured stack size.
#[test]
fn thread_names_and_stack_size() {
    let pool = Workers::builder("named")
        .min_threads(1)
        .stack_size(4 << 20)
        .build()
        .unwrap();
    let name = pool
        .queue_and_wait(|| std::thread::current().name().map(str::to_owned))
        .unwrap()
        .unwrap();
    assert!(name.starts_with("named-"), "{name}");
    assert!(name["named-".len()..].parse::<u64>().is_ok(), "{name}");
    // A deep recursion that needs more than a small default stack.
    let depth = pool
        .queue_and_wait(|| {
            fn rec(n: u32) -> u32 {
                let buf = [n as u8; 1024];
                if n == 0 {
                    0
                } else {
                    rec(n - 1) + u32::from(std::hint::black_box(buf)[0] > 0)
                }
            }
            rec(2000)
        })
        .unwrap();
    assert!(depth > 0);
}

/// Reusable work objects: queueing a pending one is a no-op that says so; a requeue
/// goes to the tail and items queued behind it run first.
#[test]
fn work_items_and_requeue() {
    let pool = Workers::builder("items")
        .min_threads(1)
        .max_threads(1)
        .build()
        .unwrap();
    let gate = Completion::new();
    let g = gate.clone();
    pool.queue(move || {
        g.wait().unwrap();
    })
    .unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let o = Arc::clone(&order);
    let mut rounds = 0;
    let item = WorkItem::new(move || {
        rounds += 1;
        o.lock().unwrap().push(format!("item{rounds}"));
        if rounds < 3 {
            Step::Requeue
        } else {
            Step::Done
        }
    });
    assert_eq!(pool.queue_work(&item).unwrap(), Queued::Queued);
    assert_eq!(pool.queue_work(&item).unwrap(), Queued::AlreadyPending);
    assert!(item.is_pending());
    let o = Arc::clone(&order);
    pool.queue(move || o.lock().unwrap().push("other".into()))
        .unwrap();
    gate.complete(());
    pool.flush();
    assert_eq!(
        *order.lock().unwrap(),
        vec!["item1", "other", "item2", "item3"]
    );
    assert_eq!(item.runs(), 3);
    assert!(!item.is_pending());
    let s = pool.stats();
    assert_eq!(s.requeued, 2);
    assert_eq!(s.already_pending, 1);
    assert_eq!(pool.queue_work(&item).unwrap(), Queued::Queued);
    pool.drain();
}

/// The high lane is served before normal work already waiting.
#[test]
fn high_lane_goes_first() {
    let pool = Workers::builder("high")
        .min_threads(1)
        .max_threads(1)
        .build()
        .unwrap();
    let gate = Completion::new();
    let g = gate.clone();
    pool.queue(move || {
        g.wait().unwrap();
    })
    .unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    for i in 0..3 {
        let o = Arc::clone(&order);
        pool.queue(move || o.lock().unwrap().push(i)).unwrap();
    }
    let o = Arc::clone(&order);
    pool.queue_high(move || o.lock().unwrap().push(100))
        .unwrap();
    gate.complete(());
    pool.drain();
    assert_eq!(*order.lock().unwrap(), vec![100, 0, 1, 2]);
    assert_eq!(pool.stats().queued_high, 1);
}

/// `flush` waits for earlier items only; a later item that never ends does not hold it.
#[test]
fn flush_waits_for_earlier_items_only() {
    let pool = Workers::builder("flush")
        .min_threads(2)
        .max_threads(4)
        .build()
        .unwrap();
    // 20 x 10 ms on at most 4 workers: the flush below still waits after 50 ms.
    let n = queue_counted(20, Duration::from_millis(10), |f| pool.queue(f).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let long_done = Arc::new(AtomicBool::new(false));
    let p = pool.clone();
    let flusher = std::thread::spawn(move || {
        p.flush();
    });
    // Queue a long item after the flush began: the flusher thread needs microseconds
    // to switch colours, so 50 ms covers even a loaded machine.
    std::thread::sleep(Duration::from_millis(50));
    let (s2, d2) = (Arc::clone(&stop), Arc::clone(&long_done));
    pool.queue(move || {
        // Bounded, so a flush that wrongly waits for it fails instead of hanging.
        let start = Instant::now();
        while !s2.load(Ordering::SeqCst) && start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(1));
        }
        d2.store(true, Ordering::SeqCst);
    })
    .unwrap();
    flusher.join().unwrap();
    assert_eq!(n.load(Ordering::SeqCst), 20);
    assert!(
        !long_done.load(Ordering::SeqCst),
        "flush waited for an item queued after it"
    );
    stop.store(true, Ordering::SeqCst);
    pool.drain();
    assert!(long_done.load(Ordering::SeqCst));
}

/// Builder settings that cannot work are refused with a structured error.
#[test]
fn bad_settings_are_refused() {
    let e = Workers::builder("bad")
        .min_threads(5)
        .max_threads(2)
        .build();
    assert!(matches!(
        e,
        Err(Error::Config {
            field: "min_threads",
            ..
        })
    ));
    let e = Workers::builder("bad").busy_threshold(0).build();
    assert!(matches!(
        e,
        Err(Error::Config {
            field: "busy_threshold",
            ..
        })
    ));
    let e = WorkQueue::builder("bad").max_active(0).build();
    assert!(matches!(
        e,
        Err(Error::Config {
            field: "max_threads",
            ..
        })
    ));
    let e = WorkQueue::builder("nospawn")
        .spawner(Arc::new(FailingSpawner::new(0)))
        .build();
    assert!(matches!(e, Err(Error::Spawn { .. })));
}

/// Keeps a worker busy in a plain spin (no blocking hint, so the pool does not see
/// it as blocked) until dropped: what is queued meanwhile waits in its list and is
/// taken into its batch at once when the hold ends.
struct Hold(Arc<AtomicBool>);

impl Hold {
    fn new(pool: &Workers) -> Self {
        let flag = Arc::new(AtomicBool::new(false));
        let f = Arc::clone(&flag);
        pool.queue(move || {
            while !f.load(Ordering::SeqCst) {
                std::thread::yield_now();
            }
        })
        .unwrap();
        Self(flag)
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// The dependency case inside one worker's batch: a waiter and, behind it, the item
/// it waits for are taken by the worker in one batch; when the waiter blocks, a helper
/// takes the rest of the batch over (the watchdog is slowed down so it cannot be the
/// one that saves the day).
#[test]
fn batch_behind_a_blocked_item_moves_to_a_helper() {
    let pool = Workers::builder("batch-dep")
        .min_threads(1)
        .max_threads(2)
        .watchdog_interval(Duration::from_secs(60))
        .build()
        .unwrap();
    let hold = Hold::new(&pool);
    let gate: Completion<u32> = Completion::new();
    let result: Completion<u32> = Completion::new();
    let (g, r) = (gate.clone(), result.clone());
    pool.queue(move || r.complete(g.wait().unwrap() + 1))
        .unwrap();
    let g = gate.clone();
    pool.queue(move || g.complete(41)).unwrap();
    drop(hold);
    assert_eq!(result.wait_timeout(Duration::from_secs(10)).unwrap(), 42);
    assert_eq!(pool.stats().threads_peak, 2);
    assert_eq!(pool.stats().watchdog_kicks, 0);
}

/// `flush` counts items a worker already moved into its batch: it returns only after
/// they ran.
#[test]
fn flush_waits_for_a_workers_batch() {
    let pool = Workers::builder("batch-flush")
        .min_threads(1)
        .max_threads(1)
        .build()
        .unwrap();
    let hold = Hold::new(&pool);
    let ran = queue_counted(50, Duration::from_micros(200), |f| pool.queue(f).unwrap());
    drop(hold);
    // Let the worker take the 50 into its batch and start on them.
    assert!(eventually(Duration::from_secs(5), || ran
        .load(Ordering::SeqCst)
        > 0));
    pool.flush();
    assert_eq!(ran.load(Ordering::SeqCst), 50);
    let s = pool.stats();
    assert_eq!(s.outstanding, 0);
    assert_eq!(s.run, 51);
    assert_eq!(s.queued, 51);
}

/// A worker stuck in a long item (no blocking hint) with a batch behind it: the
/// watchdog wakes the idle worker, which robs the batch, so the item behind does not
/// wait for the long one.
#[test]
fn idle_worker_robs_a_stuck_workers_batch() {
    let pool = Workers::builder("batch-rob")
        .min_threads(2)
        .max_threads(2)
        .build()
        .unwrap();
    let hold = Hold::new(&pool);
    let long = Hold::new(&pool);
    let done = Completion::new();
    let d = done.clone();
    pool.queue(move || d.complete(())).unwrap();
    drop(hold);
    let got = done.wait_timeout(Duration::from_secs(5));
    drop(long);
    got.unwrap();
    pool.drain();
}

/// A pool whose one worker is held inside an item until the returned sender is
/// dropped, with one more item waiting behind it: saturated.
fn saturated_pool() -> (Workers, std::sync::mpsc::Sender<()>) {
    let pool = Workers::builder("sat")
        .min_threads(1)
        .max_threads(1)
        .build()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    pool.queue(move || {
        started_tx.send(()).unwrap();
        let _ = rx.recv();
    })
    .unwrap();
    started_rx.recv().unwrap();
    pool.queue(|| {}).unwrap();
    assert!(eventually(Duration::from_secs(5), || pool
        .stats()
        .pending_per_worker
        == vec![1]));
    (pool, tx)
}

/// Caller-runs: a saturated pool runs the closure on the caller (panics caught and
/// counted), an idle one queues it; both run it exactly once.
#[test]
fn run_or_queue_runs_on_the_caller_only_when_saturated() {
    let idle = Workers::builder("idle").max_threads(2).build().unwrap();
    let me = std::thread::current().id();
    let (tx, rx) = std::sync::mpsc::channel();
    assert_eq!(
        idle.run_or_queue(move || tx.send(std::thread::current().id()).unwrap())
            .unwrap(),
        Ran::Queued
    );
    assert_ne!(rx.recv().unwrap(), me);
    assert_eq!(idle.stats().caller_runs, 0);

    let (pool, release) = saturated_pool();
    let (tx, rx) = std::sync::mpsc::channel();
    assert_eq!(
        pool.run_or_queue(move || tx.send(std::thread::current().id()).unwrap())
            .unwrap(),
        Ran::Caller
    );
    assert_eq!(
        rx.try_recv().unwrap(),
        me,
        "ran before returning, on the caller"
    );
    assert_eq!(pool.run_or_queue(|| panic!("boom")).unwrap(), Ran::Caller);
    let stats = pool.stats();
    assert_eq!((stats.caller_runs, stats.panics), (2, 1));
    drop(release);
    pool.shutdown();
    assert!(matches!(
        pool.run_or_queue(|| {}),
        Err(Error::ShutDown { .. })
    ));
}

/// An ordered stream mixing queued and caller-run items keeps queue order.
#[test]
fn ordered_run_or_queue_keeps_order() {
    let (pool, release) = saturated_pool();
    let stream = pool.ordered();
    let out = Arc::new(Mutex::new(Vec::new()));
    let o = Arc::clone(&out);
    // Queued behind the held worker...
    stream
        .queue(|| 0, move |v| o.lock().unwrap().push(v))
        .unwrap();
    // ...so these run on the caller, and their ordered halves wait for item 0.
    for i in 1..4 {
        let o = Arc::clone(&out);
        let ran = stream
            .run_or_queue(move || i, move |v| o.lock().unwrap().push(v))
            .unwrap();
        assert_eq!(ran, Ran::Caller);
    }
    assert!(out.lock().unwrap().is_empty());
    drop(release);
    stream.flush();
    assert_eq!(*out.lock().unwrap(), vec![0, 1, 2, 3]);
}
