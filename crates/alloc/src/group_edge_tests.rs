//! Tests that pin behaviour of `GroupSpace` which mutation testing (`cargo xtask
//! mutants`) found unpinned: every inconsistency `check` must report, and the bounds of
//! `find_near`'s walk. `docs/MUTANTS.md` lists the mutants each one kills.

use super::*;

/// A group `[0, 1000)` with free `[10, 20)`, `[50, 60)` and busy `[30, 35)` (gen 4).
fn sample() -> GroupSpace {
    let mut g = GroupSpace::empty(0, 1000);
    g.insert_free(10, 10);
    g.insert_free(50, 10);
    g.insert_busy(Extent::new(30, 5), 4);
    g.check(7).unwrap();
    g
}

/// `check` on `g` after `corrupt` reports group 7 and says `what`.
#[track_caller]
fn reports(what: &str, corrupt: impl FnOnce(&mut GroupSpace)) {
    let mut g = sample();
    corrupt(&mut g);
    match g.check(7) {
        Err(Error::Inconsistent { group: 7, what: w }) => {
            assert!(w.contains(what), "expected '{what}', got '{w}'")
        }
        other => panic!("expected an inconsistency '{what}', got {other:?}"),
    }
}

#[test]
fn check_reports_every_kind_of_broken_group() {
    reports("by-start index has 3 extents, by-length 2", |g| {
        g.by_start.insert(100, 1);
    });
    reports("empty or outside", |g| {
        g.by_start.insert(100, 0);
        g.by_len.insert((0, 100));
    });
    reports("empty or outside", |g| g.base = 20);
    reports("empty or outside", |g| g.end = 55);
    reports("overlaps or touches", |g| {
        g.by_start.insert(20, 5);
        g.by_len.insert((5, 20));
        g.free_blocks += 5;
    });
    reports("missing from the by-length index", |g| {
        g.by_len.remove(&(10, 50));
        g.by_len.insert((9, 50));
    });
    reports("block 32 is both free and busy", |g| {
        g.by_start.insert(32, 1);
        g.by_len.insert((1, 32));
        g.free_blocks += 1;
    });
    reports("free extents sum to 20, counter says 21", |g| {
        g.free_blocks = 21
    });
    reports("busy extent 40+0 empty, overlapping or outside", |g| {
        g.busy.insert(40, (0, 4));
    });
    reports("busy extent 33+4 empty, overlapping or outside", |g| {
        g.busy.insert(33, (4, 4));
        g.busy_by_gen.get_mut(&4).unwrap().push(33);
    });
    reports("busy extent 998+5 empty, overlapping or outside", |g| {
        g.busy.insert(998, (5, 4));
        g.busy_by_gen.get_mut(&4).unwrap().push(998);
    });
    reports("generation index lists 30 under 5 wrongly", |g| {
        let starts = g.busy_by_gen.remove(&4).unwrap();
        g.busy_by_gen.insert(5, starts);
    });
    reports("busy extents missing from the generation index", |g| {
        g.busy_by_gen.clear();
    });
    reports("busy extents sum to 5, counter says 6", |g| {
        g.busy_blocks = 6
    });
    // Touching the group's edges is fine.
    let mut g = GroupSpace::empty(100, 200);
    g.insert_free(100, 10);
    g.insert_busy(Extent::new(195, 5), 1);
    g.insert_free(190, 5);
    g.check(0).unwrap();
}

#[test]
fn near_walks_64_extents_to_the_right_not_counting_one_at_the_goal() {
    // Free: [0, 1) at the goal, then 63 one-block extents (too short), then [128, 139)
    // as the 64th extent right of the goal, and [500, 510) far away. min = max = 10.
    let mut g = GroupSpace::empty(0, 1000);
    g.insert_free(0, 1);
    for i in 1..64 {
        g.insert_free(2 * i, 1);
    }
    g.insert_free(128, 11);
    g.insert_free(500, 10);
    let req = AllocRequest::near(0, 10, 10);
    // The walk reaches the 64th extent and takes its head, nearest the goal; a walk
    // that spent a step on the extent at the goal would fall back to best fit by
    // length ([500, 510)).
    assert_eq!(g.alloc(&req, Some(0)), Some(Extent::new(128, 10)));
}

#[test]
fn near_prunes_the_left_walk_by_where_an_extent_ends() {
    // Goal 100. Left of it: [97, 98) (too short), then [90, 96), whose end is 4 blocks
    // from the goal; right of it: [110, 200), 10 blocks away. The left extent is
    // closer and must not be pruned for its start being further than the right one.
    let mut g = GroupSpace::empty(0, 1000);
    g.insert_free(90, 6);
    g.insert_free(97, 1);
    g.insert_free(110, 90);
    let req = AllocRequest::near(100, 5, 5);
    assert_eq!(g.alloc(&req, Some(100)), Some(Extent::new(91, 5)));
}

#[test]
fn first_overlap_names_the_first_covered_block_not_a_neighbour() {
    // [0, 10) and [15, 20): a query [10, 20) touches the first and overlaps the second.
    let map: BTreeMap<u64, u64> = [(0, 10), (15, 5)].into_iter().collect();
    let len = |&l: &u64| l;
    assert_eq!(first_overlap(&map, 10, 20, len), Some(15));
    assert_eq!(first_overlap(&map, 10, 15, len), None, "both only touch it");
    assert_eq!(first_overlap(&map, 5, 12, len), Some(5), "inside the first");
    assert_eq!(first_overlap(&map, 9, 10, len), Some(9));
    assert_eq!(first_overlap(&map, 20, 30, len), None);
    assert_eq!(first_overlap(&BTreeMap::new(), 0, 10, len), None);
}

#[test]
fn near_prefers_the_lower_address_when_two_pieces_are_as_close() {
    // Goal 100; free [90, 95) ends 5 before it, [105, 110) starts 5 after it.
    let mut g = GroupSpace::empty(0, 1000);
    g.insert_free(90, 5);
    g.insert_free(105, 5);
    let req = AllocRequest::near(100, 5, 5);
    assert_eq!(
        g.find_near(&req, 100).map(|(e, _)| e),
        Some(Extent::new(90, 5))
    );
    // The walk meets the right one first when the nearest extent on the left is too
    // short: [98, 99) is one block, then [85, 95) ends 5 before the goal, as [105,
    // 110) starts 5 after it.
    let mut g = GroupSpace::empty(0, 1000);
    g.insert_free(85, 10);
    g.insert_free(98, 1);
    g.insert_free(105, 5);
    assert_eq!(
        g.find_near(&req, 100).map(|(e, _)| e),
        Some(Extent::new(90, 5))
    );
    // Alignment makes a piece after the goal as far as one before it although its
    // free extent starts closer: [92, 96) ends 4 before 100, [103, 110) aligned to 4
    // gives [104, 108).
    let mut g = GroupSpace::empty(0, 1000);
    g.insert_free(90, 6);
    g.insert_free(103, 7);
    let req = AllocRequest::near(100, 4, 4).with_align(4);
    assert_eq!(
        g.find_near(&req, 100).map(|(e, _)| e),
        Some(Extent::new(92, 4))
    );
}

#[test]
fn fit_tail_takes_the_aligned_tail_of_a_free_extent() {
    let req = |min, max, align| AllocRequest::any(1).with_len(min, max).with_align(align);
    assert_eq!(fit_tail(10, 30, &req(1, 8, 1)), Some(Extent::new(22, 8)));
    assert_eq!(fit_tail(10, 30, &req(1, 8, 4)), Some(Extent::new(20, 8)));
    assert_eq!(fit_tail(10, 30, &req(1, 100, 4)), Some(Extent::new(12, 18)));
    assert_eq!(fit_tail(10, 13, &req(1, 100, 16)), None);
    assert_eq!(fit_tail(10, 30, &req(25, 100, 1)), None);
}

#[test]
fn first_not_free_is_none_when_the_range_is_free_to_its_end() {
    let mut g = GroupSpace::empty(0, 100);
    g.insert_free(10, 20); // [10, 30)
    assert_eq!(g.first_not_free(10, 30), None);
    assert_eq!(g.first_not_free(15, 30), None);
    assert_eq!(g.first_not_free(10, 31), Some(30));
    assert_eq!(g.first_not_free(5, 20), Some(5));
    assert_eq!(g.first_not_free(30, 40), Some(30));
}
