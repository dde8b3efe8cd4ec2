//! AllocQueue: results match direct calls, and every request completes when no worker
//! thread can be created (the rescuer runs them).

use stack_alloc::{AllocQueue, AllocRequest, Allocator, Extent};
use stack_async_thread::FailingSpawner;
use std::sync::Arc;

#[test]
fn batch_returns_in_request_order() {
    let a = Arc::new(Allocator::new(1 << 16, 1 << 12).unwrap());
    let q = AllocQueue::new(a.clone()).unwrap();
    let reqs: Vec<_> = (0..100)
        .map(|i| AllocRequest::exact(i * 100, 10, 10))
        .collect();
    let got: Vec<Extent> = q
        .alloc_batch(reqs)
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
    let a = Arc::new(Allocator::new(1 << 16, 1 << 12).unwrap());
    // One spawn allowed: the rescuer made at construction; every worker spawn fails.
    let spawner = Arc::new(FailingSpawner::new(1));
    let q = AllocQueue::with_spawner(a.clone(), spawner.clone()).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let q = q.clone();
            std::thread::spawn(move || {
                let mut got = Vec::new();
                for _ in 0..5 {
                    got.push(q.alloc(AllocRequest::any(8)).unwrap());
                }
                for r in q.alloc_batch(vec![AllocRequest::any(4); 20]) {
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
