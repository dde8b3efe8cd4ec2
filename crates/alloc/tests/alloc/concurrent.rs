//! Several threads allocating and freeing over several groups at once.

use crate::rng::Rng;
use stack_alloc::{AllocRequest, Allocator, Extent, Mode};
use std::sync::Arc;

#[test]
fn threads_never_get_overlapping_extents() {
    let total = 1u64 << 18;
    let a = Arc::new(Allocator::new(total, 1 << 14).unwrap());
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            let a = a.clone();
            std::thread::spawn(move || {
                let mut rng = Rng::new(t + 1);
                let mut held: Vec<Extent> = Vec::new();
                for i in 0..20_000u64 {
                    if rng.below(2) == 0 || held.is_empty() {
                        let mode = [Mode::Any, Mode::Near][rng.below(2) as usize];
                        let goal = Some(rng.below(total));
                        let len = rng.range(1, 32);
                        let req = AllocRequest::new(mode, goal, 1, len);
                        held.push(a.alloc(&req).unwrap());
                    } else {
                        let e = held.swap_remove(rng.below(held.len() as u64) as usize);
                        a.free(e, i).unwrap();
                    }
                    if i % 256 == 0 {
                        // Generations are global: this releases every thread's old frees.
                        a.commit(i.saturating_sub(256));
                    }
                }
                held
            })
        })
        .collect();
    let mut all: Vec<Extent> = threads
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    all.sort_unstable();
    for w in all.windows(2) {
        assert!(w[0].end() <= w[1].start, "{:?} overlaps {:?}", w[0], w[1]);
    }
    a.check().unwrap();
    let held: u64 = all.iter().map(|e| e.len).sum();
    assert_eq!(held + a.free_blocks() + a.busy_blocks(), total);
    a.commit(u64::MAX);
    assert_eq!(held + a.free_blocks(), total);
    // Every group was used: contention spread the threads out.
    let used_groups: std::collections::BTreeSet<u64> = all.iter().map(|e| e.start >> 14).collect();
    assert!(used_groups.len() > 1);
}
