//! Tests that pin behaviour of `Allocator` which mutation testing (`cargo xtask mutants`)
//! found unpinned: group order for near and any, range checks on frees and reservations,
//! `check` catching a broken group, `group_count`, `Extent::contains`, and exact
//! requests without a goal. `docs/MUTANTS.md` lists the mutants each one kills.

use super::*;

/// Three groups of 100 blocks with the middle one full.
fn middle_full() -> Allocator {
    let a = Allocator::new(300, 100).unwrap();
    a.mark_used(Extent::new(100, 100)).unwrap();
    a
}

#[test]
fn near_spills_to_the_group_whose_edge_is_closer_to_the_goal() {
    // Goal 190: block 200 (group 2) is 10 away, block 99 (group 0) 91 away. At equal
    // group distance the higher group is tried first.
    let a = middle_full();
    assert_eq!(
        a.alloc(&AllocRequest::near(190, 1, 20)).unwrap(),
        Extent::new(200, 20)
    );
    // With group 2 full as well, group 0 is next, and its piece ends at its end.
    a.mark_used(Extent::new(220, 80)).unwrap();
    assert_eq!(
        a.alloc(&AllocRequest::near(190, 1, 20)).unwrap(),
        Extent::new(80, 20)
    );
}

#[test]
fn any_tries_groups_in_order_from_the_goals_group() {
    // Group 0 holds 5 blocks, group 1 holds 50, group 2 is free. No goal: the first
    // group able to give max_len is group 1, not the longest (group 2).
    let a = Allocator::new(300, 100).unwrap();
    a.mark_used(Extent::new(5, 95)).unwrap();
    a.mark_used(Extent::new(150, 50)).unwrap();
    assert_eq!(
        a.alloc(&AllocRequest::any(20)).unwrap(),
        Extent::new(130, 20)
    );
    // A goal in the full middle group: the next group up (2) comes before group 0,
    // wrapping around only after the last group.
    let a = middle_full();
    let req = AllocRequest {
        goal: Some(150),
        ..AllocRequest::any(10)
    };
    assert_eq!(a.alloc(&req).unwrap().start / 100, 2);
    let a = Allocator::new(300, 100).unwrap();
    a.mark_used(Extent::new(200, 100)).unwrap();
    let req = AllocRequest {
        goal: Some(250),
        ..AllocRequest::any(10)
    };
    assert_eq!(a.alloc(&req).unwrap().start / 100, 0, "wraps to group 0");
}

#[test]
fn frees_and_reservations_outside_the_volume_are_refused() {
    let a = Allocator::new(200, 100).unwrap();
    let out_of_range = |r: Result<(), Error>| matches!(r, Err(Error::OutOfRange { .. }));
    for bad in [
        Extent::new(0, 0),
        Extent::new(200, 1),
        Extent::new(250, 1),
        Extent::new(190, 11),
        Extent::new(150, 51),
        Extent::new(u64::MAX, 1),
    ] {
        assert!(out_of_range(a.mark_used(bad)), "mark_used {bad:?}");
        assert!(out_of_range(a.free(bad, 1)), "free {bad:?}");
        assert!(
            out_of_range(a.free_uncommitted(bad)),
            "free_uncommitted {bad:?}"
        );
    }
    // Right up to the end is fine, across a group boundary too.
    a.mark_used(Extent::new(190, 10)).unwrap();
    a.mark_used(Extent::new(150, 10)).unwrap();
    a.mark_used(Extent::new(95, 10)).unwrap();
    a.mark_used(Extent::new(5, 5)).unwrap();
    assert_eq!(a.free_blocks(), 200 - 35);
    a.check().unwrap();
}

#[test]
fn group_count_counts_a_short_last_group() {
    assert_eq!(Allocator::new(250, 100).unwrap().group_count(), 3);
    assert_eq!(Allocator::new(100, 100).unwrap().group_count(), 1);
    assert_eq!(Allocator::new(1000, 10).unwrap().group_count(), 100);
}

#[test]
fn check_reports_stale_summaries_and_misplaced_groups() {
    let a = Allocator::new(300, 100).unwrap();
    a.check().unwrap();
    let g = &a.inner.groups[1];
    g.free.store(7, Ordering::Release);
    assert!(matches!(
        a.check(),
        Err(Error::Inconsistent { group: 1, .. })
    ));
    g.publish(&g.lock());
    a.check().unwrap();
    g.busy.store(3, Ordering::Release);
    assert!(matches!(
        a.check(),
        Err(Error::Inconsistent { group: 1, .. })
    ));
    g.publish(&g.lock());
    g.longest.store(1, Ordering::Release);
    assert!(matches!(
        a.check(),
        Err(Error::Inconsistent { group: 1, .. })
    ));
    g.publish(&g.lock());
    a.check().unwrap();

    // A group that does not start where its index says.
    let a = Allocator::with_nothing_free(300, 100).unwrap();
    {
        let mut s = a.inner.groups[2].lock();
        s.base = 150;
    }
    assert!(matches!(
        a.check(),
        Err(Error::Inconsistent { group: 2, .. })
    ));
}

#[test]
fn extent_contains_its_blocks_only() {
    let e = Extent::new(10, 5);
    assert!(!e.contains(9));
    assert!(e.contains(10));
    assert!(e.contains(14));
    assert!(!e.contains(15));
    assert!(!Extent::new(10, 0).contains(10));
}

#[test]
fn exact_without_a_goal_is_an_invalid_request() {
    let a = Allocator::new(100, 100).unwrap();
    let req = AllocRequest {
        goal: None,
        ..AllocRequest::exact(5, 1, 1)
    };
    assert!(matches!(
        a.alloc(&req),
        Err(Error::InvalidRequest { reason }) if reason.contains("without a goal")
    ));
}

#[test]
fn a_dropped_stream_no_longer_steers_new_streams_away() {
    let a = Allocator::new(10_000, 10_000).unwrap();
    {
        // Uses its whole reservation [0, 100): its head stays at 100 while it lives.
        let mut s = a.stream_with_reserve(100);
        assert_eq!(s.alloc(100, 100).unwrap(), Extent::new(0, 100));
        let mut other = a.stream_with_reserve(10);
        assert_eq!(
            other.alloc(10, 10).unwrap().start,
            5050,
            "a live stream heads for 100: the next one starts mid-gap"
        );
    }
    // Both dropped: a new stream starts at the head of the longest free extent.
    let mut b = a.stream_with_reserve(10);
    assert_eq!(b.alloc(10, 10).unwrap(), Extent::new(100, 10));
}

#[test]
fn dropping_one_stream_leaves_the_others_steering() {
    let a = Allocator::new(10_000, 10_000).unwrap();
    let mut s = a.stream_with_reserve(100);
    assert_eq!(s.alloc(100, 100).unwrap(), Extent::new(0, 100));
    drop(a.stream_with_reserve(10)); // registered, then gone
    let mut b = a.stream_with_reserve(10);
    assert_eq!(
        b.alloc(10, 10).unwrap().start,
        5050,
        "`s` still heads for 100: the new one starts mid-gap"
    );
}

#[test]
fn a_stream_heading_elsewhere_does_not_steer_a_new_one() {
    let a = Allocator::new(10_000, 10_000).unwrap();
    let mut s = a.stream_with_reserve(100);
    assert_eq!(s.alloc(100, 100).unwrap(), Extent::new(0, 100));
    // Block 100 (where `s` heads) taken by someone else: the longest free extent now
    // starts at 101, where no stream heads.
    a.mark_used(Extent::new(100, 1)).unwrap();
    let mut b = a.stream_with_reserve(10);
    assert_eq!(b.alloc(10, 10).unwrap(), Extent::new(101, 10));
}

#[test]
fn a_batch_of_exactly_max_batch_requests_is_one_hand_off() {
    let q = crate::AllocQueue::new(Allocator::new(10_000, 10_000).unwrap()).unwrap();
    let got = q
        .alloc_batch(vec![AllocRequest::any(1); crate::MAX_BATCH])
        .unwrap();
    assert_eq!(got.len(), crate::MAX_BATCH);
    assert!(got.iter().all(Result::is_ok));
    let got = q
        .alloc_batch(vec![AllocRequest::any(1); crate::MAX_BATCH + 1])
        .unwrap();
    assert_eq!(
        got.iter().filter(|r| r.is_ok()).count(),
        crate::MAX_BATCH + 1
    );
    q.shutdown();
}

#[test]
fn any_steps_around_a_group_another_thread_holds() {
    // Group 0 is locked (by this test, as by another allocation in flight): `any`
    // takes group 1 instead of waiting, although group 0 comes first.
    let a = Allocator::new(200, 100).unwrap();
    let (locked, is_locked) = std::sync::mpsc::channel();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let a2 = a.clone();
    let held = std::thread::spawn(move || {
        let _g = a2.inner.groups[0].lock();
        locked.send(()).unwrap();
        // Held until the allocation below returned (one that waits for it hangs).
        let _ = released.recv();
    });
    is_locked.recv().unwrap();
    let e = a.alloc(&AllocRequest::any(10)).unwrap();
    drop(release);
    held.join().unwrap();
    assert!(e.start >= 100, "took {e:?} from the held group");
    // Free again: group 0 first.
    assert!(a.alloc(&AllocRequest::any(10)).unwrap().start < 100);
}
