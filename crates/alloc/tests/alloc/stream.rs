//! Streams stay contiguous while several write at once, and give back their reservation.

use stack_alloc::{AllocRequest, Allocator, Extent};

#[test]
fn interleaved_streams_each_stay_contiguous() {
    let a = Allocator::new(1 << 20, 1 << 18).unwrap();
    let mut streams: Vec<_> = (0..8).map(|_| a.stream()).collect();
    for _ in 0..2000 {
        for s in &mut streams {
            s.alloc(1, 16).unwrap();
        }
    }
    for s in &streams {
        assert_eq!(s.handed_out_blocks(), 2000 * 16);
        assert!(s.runs() <= 2, "a stream broke into {} runs", s.runs());
    }
    drop(streams);
    a.check().unwrap();
}

#[test]
fn goal_only_allocation_interleaves() {
    // The failure streams fix: two writers chasing their own last block collide.
    let a = Allocator::new(1 << 16, 1 << 16).unwrap();
    let mut ends = [0u64, 0];
    let mut runs = [0u64, 0];
    for _ in 0..100 {
        for w in 0..2 {
            let e = a.alloc(&AllocRequest::near(ends[w], 1, 16)).unwrap();
            if e.start != ends[w] {
                runs[w] += 1;
            }
            ends[w] = e.end();
        }
    }
    assert!(runs[1] > 50);
}

#[test]
fn dropping_a_stream_returns_its_reservation() {
    let a = Allocator::new(10_000, 10_000).unwrap();
    let mut s = a.stream_with_reserve(500);
    let e = s.alloc(10, 10).unwrap();
    assert_eq!(a.free_blocks(), 10_000 - 500);
    assert_eq!(s.reserved().unwrap().start, e.end());
    drop(s);
    assert_eq!(a.free_blocks(), 10_000 - 10);
    a.check().unwrap();
}

#[test]
fn stream_continues_through_a_full_volume_then_reports_no_space() {
    let a = Allocator::new(1000, 250).unwrap();
    let mut s = a.stream_with_reserve(64);
    let mut got = 0;
    while let Ok(e) = s.alloc(1, 7) {
        got += e.len;
    }
    assert_eq!(got, 1000);
    assert!(s.runs() <= 4, "{} runs over 4 groups", s.runs());
}

#[test]
fn a_stream_grows_its_reservation_by_what_it_lacks_or_its_reserve() {
    let a = Allocator::new(10_000, 10_000).unwrap();
    let mut s = a.stream_with_reserve(10);
    assert_eq!(s.alloc(8, 8).unwrap(), Extent::new(0, 8));
    assert_eq!(
        s.reserved(),
        Some(Extent::new(8, 2)),
        "the reserve: 10 blocks"
    );
    // Lacks 14 of 16: grows by max(14, 10), exactly what the write takes.
    assert_eq!(s.alloc(8, 16).unwrap(), Extent::new(8, 16));
    assert_eq!(s.reserved(), None);
    // Lacks 4: grows by the reserve.
    assert_eq!(s.alloc(4, 4).unwrap(), Extent::new(24, 4));
    assert_eq!(s.reserved(), Some(Extent::new(28, 6)));
    // Holds exactly what it needs: no growth.
    assert_eq!(s.alloc(6, 6).unwrap(), Extent::new(28, 6));
    assert_eq!(s.reserved(), None);
    assert_eq!(s.runs(), 1);
    assert_eq!(s.handed_out_blocks(), 34);
    // Someone takes the blocks after the run: the stream starts a second one.
    a.alloc(&AllocRequest::exact(34, 1, 1)).unwrap();
    assert_ne!(s.alloc(4, 4).unwrap().start, 34);
    assert_eq!(s.runs(), 2);
}

#[test]
fn a_new_stream_shares_a_short_gap_from_its_start() {
    // Only [100, 115) is free and a live stream heads for 100. Its second half (8
    // blocks) cannot hold 10, so the new stream starts at 100 all the same.
    let a = Allocator::new(1000, 1000).unwrap();
    let mut s = a.stream_with_reserve(100);
    assert_eq!(s.alloc(100, 100).unwrap(), Extent::new(0, 100));
    a.alloc(&AllocRequest::exact(115, 885, 885)).unwrap();
    let mut b = a.stream_with_reserve(10);
    assert_eq!(b.alloc(10, 10).unwrap(), Extent::new(100, 10));
}

#[test]
fn a_stream_continues_in_place_rather_than_jumping_to_the_longest_gap() {
    let a = Allocator::new(10_000, 10_000).unwrap();
    let mut s = a.stream_with_reserve(10);
    assert_eq!(s.alloc(8, 8).unwrap(), Extent::new(0, 8));
    // 30 free blocks after the reservation [8, 10), and 1,000 at the end.
    a.alloc(&AllocRequest::exact(40, 8960, 8960)).unwrap();
    // Lacks 14 of 16: the stream grows in place instead of restarting in the longer gap.
    assert_eq!(s.alloc(8, 16).unwrap(), Extent::new(8, 16));
    assert_eq!(s.runs(), 1);
}
