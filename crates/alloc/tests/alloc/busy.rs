//! Busy extents: a freed block is never handed out again before its generation commits.

use crate::rng::Rng;
use stack_alloc::{AllocRequest, Allocator, Extent, Mode};

#[test]
fn no_early_reuse_in_a_million_ops() {
    let ops = if cfg!(debug_assertions) {
        100_000
    } else {
        1_000_000
    };
    let total = 1u64 << 16;
    let a = Allocator::new(total, 1 << 12).unwrap();
    let mut rng = Rng::new(42);
    // Per block: u64::MAX free or used, else the generation that freed it.
    let mut busy_gen = vec![u64::MAX; total as usize];
    let mut held: Vec<Extent> = Vec::new();
    let mut gen = 1;
    let mut committed = 0;
    for op in 0..ops {
        match rng.below(16) {
            0..=7 => {
                let len = rng.range(1, 64);
                let mode = if rng.below(2) == 0 {
                    Mode::Any
                } else {
                    Mode::Near
                };
                let goal = Some(rng.below(total));
                let req = AllocRequest::new(mode, goal, 1, len);
                if let Ok(e) = a.alloc(&req) {
                    for b in e.start..e.end() {
                        let g = busy_gen[b as usize];
                        assert!(
                            g == u64::MAX || g <= committed,
                            "op {op}: busy block {b} reused"
                        );
                        busy_gen[b as usize] = u64::MAX;
                    }
                    held.push(e);
                }
            }
            8..=14 if !held.is_empty() => {
                let e = held.swap_remove(rng.below(held.len() as u64) as usize);
                a.free(e, gen).unwrap();
                for b in e.start..e.end() {
                    busy_gen[b as usize] = gen;
                }
            }
            _ => {
                // Commit lags behind: only generations two behind become durable.
                committed = gen.saturating_sub(2);
                a.commit(committed);
                gen += 1;
            }
        }
    }
    a.check().unwrap();
}

#[test]
fn busy_extent_is_invisible_until_commit() {
    let a = Allocator::new(64, 64).unwrap();
    let e = a.alloc(&AllocRequest::any(64)).unwrap();
    a.free(e, 3).unwrap();
    assert_eq!(a.free_blocks(), 0);
    assert_eq!(a.busy_blocks(), 64);
    assert!(a.alloc(&AllocRequest::any(1)).is_err());
    a.commit(2);
    assert!(
        a.alloc(&AllocRequest::any(1)).is_err(),
        "generation 2 must not release 3"
    );
    assert_eq!(a.commit(3), 64);
    assert_eq!(a.alloc(&AllocRequest::any(64)).unwrap(), e);
}

#[test]
fn encode_for_commit_writes_committed_busy_as_free() {
    let a = Allocator::new(100, 100).unwrap();
    let e = a.alloc(&AllocRequest::any(100)).unwrap();
    a.free(Extent::new(e.start, 10), 5).unwrap();
    a.free(Extent::new(e.start + 10, 10), 6).unwrap();
    assert_eq!(Allocator::decode(&a.encode()).unwrap().free_blocks(), 0);
    let img = Allocator::decode(&a.encode_for_commit(5)).unwrap();
    assert_eq!(img.free_extents(), vec![Extent::new(e.start, 10)]);
}
