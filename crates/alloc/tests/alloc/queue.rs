//! AllocQueue: results match direct calls, and every request completes when no worker
//! thread can be created (the rescuer runs them).

use stack_alloc::{AllocQueue, AllocRequest, Allocator, Error, Extent};
use stack_async_thread::FailingSpawner;
use std::sync::Arc;

#[test]
fn batch_returns_in_request_order() {
    let a = Allocator::new(1 << 16, 1 << 12).unwrap();
    let q = AllocQueue::new(a.clone()).unwrap();
    let reqs: Vec<_> = (0..100)
        .map(|i| AllocRequest::exact(i * 100, 10, 10))
        .collect();
    let got: Vec<Extent> = q
        .alloc_batch(reqs)
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    for (i, e) in got.iter().enumerate() {
        assert_eq!(*e, Extent::new(i as u64 * 100, 10));
    }
    assert!(
        q.alloc(AllocRequest::exact(0, 1, 1)).is_err(),
        "block 0 is taken"
    );
    assert_eq!(a.free_blocks(), (1 << 16) - 1000);
    a.check().unwrap();
}

#[test]
fn rescuer_completes_every_request_when_spawning_fails() {
    let a = Allocator::new(1 << 16, 1 << 12).unwrap();
    // One spawn allowed: the rescuer made at construction; every worker spawn fails.
    let spawner = Arc::new(FailingSpawner::new(1));
    let q = AllocQueue::builder(a.clone())
        .spawner(spawner.clone())
        .build()
        .unwrap();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let q = q.clone();
            std::thread::spawn(move || {
                let mut got = Vec::new();
                for _ in 0..5 {
                    got.push(q.alloc(AllocRequest::any(8)).unwrap());
                }
                for r in q.alloc_batch(vec![AllocRequest::any(4); 20]).unwrap() {
                    got.push(r.unwrap());
                }
                got
            })
        })
        .collect();
    let mut all: Vec<Extent> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    assert_eq!(all.len(), 4 * 25);
    all.sort_unstable();
    for w in all.windows(2) {
        assert!(w[0].end() <= w[1].start);
    }
    assert!(
        spawner.refused() > 0,
        "no spawn was refused: the test proves nothing"
    );
    assert!(q.stats().rescuer_runs > 0);
    a.check().unwrap();
}

/// `alloc_batch` used to turn the queue's typed error into a string in every slot
/// (`Error::QueueFailed { reason }`); the hand-off failure is now one typed
/// `Error::Queue`, naming the configured queue.
#[test]
fn a_failed_hand_off_is_one_typed_error_naming_the_queue() {
    let a = Allocator::new(1 << 16, 1 << 12).unwrap();
    let q = AllocQueue::builder(a.clone())
        .name("vol7-alloc")
        .max_active(2)
        .build()
        .unwrap();
    assert_eq!(q.name(), "vol7-alloc");
    q.shutdown();
    match q.alloc_batch(vec![AllocRequest::any(4); 3]) {
        Err(Error::Queue(stack_async_thread::Error::ShutDown { pool })) => {
            assert_eq!(pool, "vol7-alloc")
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        q.alloc(AllocRequest::any(1)),
        Err(Error::Queue(stack_async_thread::Error::ShutDown { .. }))
    ));
    assert_eq!(a.free_blocks(), 1 << 16, "nothing was allocated");
}

#[test]
fn max_active_bounds_the_queue_threads_and_zero_is_refused() {
    let a = Allocator::new(1 << 16, 1 << 12).unwrap();
    let q = AllocQueue::builder(a.clone())
        .max_active(1)
        .build()
        .unwrap();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let q = q.clone();
            std::thread::spawn(move || {
                for _ in 0..50 {
                    q.alloc(AllocRequest::any(2)).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(q.stats().threads_peak, 1);
    let err = AllocQueue::builder(a).max_active(0).build().unwrap_err();
    assert!(
        matches!(err, Error::Queue(stack_async_thread::Error::Config { .. })),
        "{err}"
    );
}

#[test]
fn a_queue_stream_continues_its_run_on_the_queue() {
    let a = Allocator::new(1 << 16, 1 << 12).unwrap();
    let q = AllocQueue::new(a.clone()).unwrap();
    let s = q.stream_with_reserve(64);
    let first = s.alloc(8, 8).unwrap();
    for _ in 0..20 {
        s.alloc(8, 8).unwrap();
    }
    assert_eq!(s.runs(), 1);
    assert_eq!(s.handed_out_blocks(), 21 * 8);
    assert_eq!(s.reserved().map(|r| r.start), Some(first.start + 21 * 8));
    drop(s);
    assert_eq!(
        a.free_blocks(),
        (1 << 16) - 21 * 8,
        "the reservation went back"
    );
    a.check().unwrap();
}

#[test]
fn a_queue_stream_counts_a_new_run_when_its_next_blocks_are_taken() {
    let a = Allocator::new(1 << 16, 1 << 12).unwrap();
    let q = AllocQueue::new(a.clone()).unwrap();
    let s = q.stream_with_reserve(0);
    let first = s.alloc(8, 8).unwrap();
    assert_eq!(s.runs(), 1);
    assert_eq!(s.reserved(), None);
    // Another writer takes the blocks the stream would go on with.
    a.alloc(&AllocRequest::exact(first.end(), 1, 64)).unwrap();
    let second = s.alloc(8, 8).unwrap();
    assert_ne!(second.start, first.end());
    assert_eq!(s.runs(), 2);
}
