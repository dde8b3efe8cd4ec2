//! Model test: long random sequences of alloc, free, free_uncommitted, mark_used and
//! commit, checked against a bitmap after every step (lsm-tree style).

use crate::rng::Rng;
use stack_alloc::{AllocRequest, Allocator, Error, Extent, Mode};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Block {
    Free,
    Used,
    Busy(u64),
}

struct Model {
    blocks: Vec<Block>,
    group_blocks: u64,
}

impl Model {
    fn count(&self, want: fn(Block) -> bool) -> u64 {
        self.blocks.iter().filter(|&&b| want(b)).count() as u64
    }

    /// Free blocks from `at` to the end of its run, not crossing a group boundary.
    fn run_from(&self, at: u64) -> u64 {
        let group_end = (at / self.group_blocks + 1) * self.group_blocks;
        let end = group_end.min(self.blocks.len() as u64);
        (at..end)
            .take_while(|&b| self.blocks[b as usize] == Block::Free)
            .count() as u64
    }

    /// The free run (within its group) around `e`, which is free.
    fn run_around(&self, e: Extent) -> u64 {
        let group_start = e.start / self.group_blocks * self.group_blocks;
        let before = (group_start..e.start)
            .rev()
            .take_while(|&b| self.blocks[b as usize] == Block::Free)
            .count() as u64;
        before + self.run_from(e.start)
    }

    fn largest_run(&self) -> u64 {
        let mut best = 0;
        let mut b = 0;
        while b < self.blocks.len() as u64 {
            let r = self.run_from(b);
            best = best.max(r);
            b += r.max(1);
        }
        best
    }

    fn set(&mut self, e: Extent, to: Block) {
        for b in e.start..e.end() {
            self.blocks[b as usize] = to;
        }
    }

    fn all(&self, e: Extent, pred: impl Fn(Block) -> bool) -> bool {
        (e.start..e.end()).all(|b| pred(self.blocks[b as usize]))
    }
}

fn run(seed: u64, total: u64, group: u64, steps: usize) {
    let mut rng = Rng::new(seed);
    let a = Allocator::new(total, group).unwrap();
    let mut m = Model {
        blocks: vec![Block::Free; total as usize],
        group_blocks: group,
    };
    let mut held: Vec<Extent> = Vec::new();
    let mut gen = 1u64;
    for step in 0..steps {
        let ctx = format!("seed {seed} step {step}");
        match rng.below(100) {
            0..=44 => {
                let min = rng.range(1, 24);
                let max = min + rng.below(40);
                let align = [1, 1, 1, 2, 4, 8][rng.below(6) as usize];
                let mode = [Mode::Any, Mode::Near, Mode::Exact][rng.below(3) as usize];
                let goal = match mode {
                    Mode::Exact => Some(rng.below(total) / align * align),
                    _ => (rng.below(2) == 0).then(|| rng.below(total)),
                };
                let req = AllocRequest::new(mode, goal, min, max).with_align(align);
                match a.alloc(&req) {
                    Ok(e) => {
                        assert!(e.len >= min && e.len <= max, "{ctx}: {e:?} for {req:?}");
                        assert_eq!(e.start % align, 0, "{ctx}");
                        assert!(
                            m.all(e, |b| b == Block::Free),
                            "{ctx}: {e:?} not free in model"
                        );
                        if mode == Mode::Exact {
                            assert_eq!(Some(e.start), goal, "{ctx}");
                            assert_eq!(
                                e.len,
                                m.run_from(e.start).min(max),
                                "{ctx}: exact not longest"
                            );
                        }
                        if mode == Mode::Near && align == 1 {
                            // Near picks a free run by distance, then takes all it can of it.
                            assert_eq!(
                                e.len,
                                m.run_around(e).min(max),
                                "{ctx}: near took a short piece of {e:?} for {req:?}"
                            );
                        }
                        if mode == Mode::Any && align == 1 {
                            assert_eq!(e.len, m.largest_run().min(max), "{ctx}: any not longest");
                        }
                        m.set(e, Block::Used);
                        held.push(e);
                    }
                    Err(Error::NoSpace {
                        min_len,
                        largest_free,
                    }) => {
                        assert_eq!(min_len, min);
                        assert_eq!(largest_free, m.largest_run(), "{ctx}");
                        if mode == Mode::Exact {
                            assert!(m.run_from(goal.unwrap()) < min, "{ctx}: exact refused");
                        }
                        if align == 1 && mode != Mode::Exact {
                            assert!(largest_free < min, "{ctx}: {mode:?} refused with space");
                        }
                    }
                    Err(e) => panic!("{ctx}: {e}"),
                }
            }
            45..=69 if !held.is_empty() => {
                let e = held.swap_remove(rng.below(held.len() as u64) as usize);
                // Free a random piece or the whole extent; the rest stays held.
                let piece = if rng.below(3) == 0 && e.len > 1 {
                    let off = rng.below(e.len);
                    let len = rng.range(1, e.len - off);
                    if off > 0 {
                        held.push(Extent::new(e.start, off));
                    }
                    if off + len < e.len {
                        held.push(Extent::new(e.start + off + len, e.len - off - len));
                    }
                    Extent::new(e.start + off, len)
                } else {
                    e
                };
                if rng.below(5) == 0 {
                    a.free_uncommitted(piece).unwrap();
                    m.set(piece, Block::Free);
                } else {
                    a.free(piece, gen).unwrap();
                    m.set(piece, Block::Busy(gen));
                }
                // A second free of the same blocks is always refused.
                assert!(
                    matches!(a.free(piece, gen), Err(Error::NotAllocated { .. })),
                    "{ctx}"
                );
            }
            70..=79 => {
                let start = rng.below(total);
                let len = rng.range(1, 16).min(total - start);
                let e = Extent::new(start, len);
                let expect_ok = m.all(e, |b| b == Block::Free);
                match a.mark_used(e) {
                    Ok(()) => {
                        assert!(expect_ok, "{ctx}: mark_used of non-free {e:?}");
                        m.set(e, Block::Used);
                        held.push(e);
                    }
                    Err(Error::NotFree { block, .. }) => {
                        assert!(!expect_ok, "{ctx}: mark_used refused free {e:?}");
                        assert_ne!(m.blocks[block as usize], Block::Free, "{ctx}");
                    }
                    Err(err) => panic!("{ctx}: {err}"),
                }
            }
            80..=89 => {
                let upto = gen - rng.below(2).min(gen - 1);
                a.commit(upto);
                for b in m.blocks.iter_mut() {
                    if matches!(*b, Block::Busy(g) if g <= upto) {
                        *b = Block::Free;
                    }
                }
                gen += 1;
            }
            _ => {
                // Bad frees are refused without changing anything.
                let e = Extent::new(rng.below(total), rng.range(1, 8));
                let expect_ok = e.end() <= total && m.all(e, |b| b == Block::Used);
                if !expect_ok {
                    assert!(a.free(e, gen).is_err(), "{ctx}: bad free of {e:?} accepted");
                }
            }
        }
        assert_eq!(a.free_blocks(), m.count(|b| b == Block::Free), "{ctx}");
        assert_eq!(
            a.busy_blocks(),
            m.count(|b| matches!(b, Block::Busy(_))),
            "{ctx}"
        );
        assert_eq!(a.largest_free(), m.largest_run(), "{ctx}");
        if step % 16 == 0 {
            a.check().unwrap_or_else(|e| panic!("{ctx}: {e}"));
            let used: u64 = a.used_extents().iter().map(|e| e.len).sum();
            assert_eq!(used, m.count(|b| b == Block::Used), "{ctx}");
            for e in a.free_extents() {
                assert!(m.all(e, |b| b == Block::Free), "{ctx}");
            }
        }
    }
    a.check().unwrap();
    let rebuilt = Allocator::from_used(
        total,
        group,
        a.used_extents()
            .into_iter()
            .chain(a.busy_extents().into_iter().map(|(e, _)| e)),
    )
    .unwrap();
    assert_eq!(rebuilt.free_extents(), a.free_extents());
}

#[test]
fn random_sequences_match_a_bitmap() {
    for seed in 1..=12 {
        run(seed, 700, 128, 3000);
    }
}

#[test]
fn single_group_and_tiny_groups() {
    run(101, 300, 300, 2000);
    run(102, 97, 7, 2000);
}
