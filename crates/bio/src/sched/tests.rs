//! Unit and property tests of the pick rule (`sched.rs`).

use super::*;

fn w(offset: u64, len: usize, stream: u64) -> Bio {
    Bio::write(offset, vec![0u8; len], |_| {}).with_stream(stream)
}

fn issue(s: &mut Sched, now: Instant, urgent: bool) -> Run {
    match s.next(now, urgent, false, true) {
        Next::Issue(run) => run,
        other => panic!("expected an I/O, got {other:?}"),
    }
}

#[test]
fn push_says_when_a_sleeping_submitter_has_something_new() {
    let now = Instant::now();
    let mut s = Sched::new(4096, Duration::from_millis(5), Duration::ZERO, u64::MAX);
    assert!(s.push(w(0, 1024, 0), false, now).wake, "a new head");
    assert!(
        !s.push(w(1024, 1024, 0), false, now).wake,
        "a partial run grew"
    );
    assert!(!s.push(w(2048, 1024, 0), false, now).wake);
    assert!(s.push(w(3072, 1024, 0), false, now).wake, "the run is full");
    assert!(
        s.push(w(1 << 20, 1024, 1), false, now).wake,
        "another stream"
    );
    assert!(s.push(w(8192, 512, 2), true, now).wake, "the sync lane");
    assert!(s.push(Bio::flush(|_| {}), false, now).wake, "a flush");
    assert!(
        matches!(s.next(now, false, false, false), Next::Issue(_)),
        "data of the current epoch goes while I/O is in flight"
    );
}

#[test]
fn an_idle_device_takes_half_a_run_of_the_served_stream_rather_than_wait() {
    let now = Instant::now();
    let mut s = Sched::new(
        4096,
        Duration::from_secs(10),
        Duration::from_secs(10),
        u64::MAX,
    );
    for i in 0..4 {
        s.push(w(i * 1024, 1024, 1), false, now);
    }
    s.push(w(1 << 20, 1024, 2), false, now);
    assert_eq!(
        issue(&mut s, now, false).len_bytes,
        4096,
        "stream 1 is served"
    );
    s.push(w(4096, 1024, 1), false, now);
    assert!(
        matches!(s.next(now, false, false, true), Next::WaitUntil(_)),
        "a quarter run is waited for, and stream 2 does not get the device"
    );
    assert!(s.push(w(5120, 1024, 1), false, now).wake, "half a run");
    assert!(
        matches!(s.next(now, false, false, false), Next::WaitUntil(_)),
        "while an I/O is in flight the run may still grow"
    );
    let run = issue(&mut s, now, false);
    assert_eq!(
        (run.offset, run.len_bytes),
        (4096, 2048),
        "idle: issued now"
    );
}

#[test]
fn no_waiting_for_a_stream_whose_end_another_stream_continues() {
    let now = Instant::now();
    let mut s = Sched::new(4096, Duration::ZERO, Duration::from_secs(10), u64::MAX);
    s.push(w(0, 4096, 1), false, now);
    s.push(w(1 << 20, 4096, 3), false, now);
    assert_eq!(issue(&mut s, now, false).offset, 0);
    assert!(
        matches!(s.next(now, false, false, true), Next::WaitUntil(_)),
        "stream 1 may continue: the device waits for it"
    );
    s.push(w(4096, 4096, 2), false, now);
    let run = issue(&mut s, now, false);
    assert_eq!(run.offset, 4096, "stream 2 starts where stream 1 ended");
    assert_eq!(run.bios[0].stream(), 2);
}

#[test]
fn a_due_flush_waits_for_the_device_to_go_idle() {
    let now = Instant::now();
    let mut s = Sched::new(4096, Duration::ZERO, Duration::ZERO, u64::MAX);
    s.push(w(0, 512, 0), false, now);
    s.push(Bio::flush(|_| {}), false, now);
    s.push(w(512, 512, 0), false, now);
    assert_eq!(issue(&mut s, now, false).offset, 0);
    assert!(
        matches!(s.next(now, false, false, false), Next::Idle),
        "neither the flush nor the later write goes while the first is in flight"
    );
    assert_eq!(issue(&mut s, now, false).op, Op::Flush);
    assert_eq!(issue(&mut s, now, false).offset, 512);
}

#[test]
fn merges_contiguous_up_to_max_and_plugs_partial_runs() {
    let now = Instant::now();
    let mut s = Sched::new(4096, Duration::from_millis(5), Duration::ZERO, u64::MAX);
    for i in 0..5 {
        s.push(w(i * 1024, 1024, 0), false, now);
    }
    let run = issue(&mut s, now, false);
    assert_eq!((run.offset, run.len_bytes, run.bios.len()), (0, 4096, 4));
    assert!(
        matches!(s.next(now, false, false, true), Next::WaitUntil(_)),
        "a partial run waits for more"
    );
    let run = issue(&mut s, now + Duration::from_millis(5), false);
    assert_eq!((run.offset, run.len_bytes), (4096, 1024));
    assert!(matches!(s.next(now, false, false, true), Next::Idle));
    assert!(s.is_empty());
}

#[test]
fn flush_waits_for_earlier_bios_and_holds_back_later_ones() {
    let now = Instant::now();
    let mut s = Sched::new(1 << 20, Duration::from_secs(10), Duration::ZERO, u64::MAX);
    s.push(w(0, 512, 1), false, now);
    s.push(Bio::flush(|_| {}), false, now);
    s.push(w(512, 512, 1), true, now);
    s.push(w(4096, 512, 2), false, now);
    let run = issue(&mut s, now, false);
    assert_eq!(
        (run.op, run.offset),
        (Op::Write, 0),
        "the pending flush urges the earlier write out"
    );
    assert_eq!(issue(&mut s, now, false).op, Op::Flush);
    assert_eq!(
        issue(&mut s, now, true).offset,
        512,
        "the sync lane goes first"
    );
    assert_eq!(issue(&mut s, now, true).offset, 4096);
    assert!(s.is_empty());
}

#[test]
fn keeps_serving_the_active_stream_while_it_continues() {
    let now = Instant::now();
    let mut s = Sched::new(1024, Duration::from_secs(10), Duration::ZERO, 3 * 1024);
    for i in 0..4 {
        s.push(w(i * 1024, 1024, 1), false, now);
        s.push(w((1 << 20) + i * 1024, 1024, 2), false, now);
    }
    let offsets: Vec<u64> = (0..8).map(|_| issue(&mut s, now, false).offset).collect();
    assert_eq!(
        offsets[..3],
        [0, 1024, 2048],
        "stream 1 keeps the device for its budget"
    );
    assert_eq!(offsets[3], 1 << 20, "then the next head up goes");
    let mut per_stream: Vec<u64> = offsets.iter().copied().filter(|o| *o < 1 << 20).collect();
    let sorted = {
        let mut v = per_stream.clone();
        v.sort();
        v
    };
    assert_eq!(per_stream, sorted, "order within a stream is kept");
    per_stream.clear();
}

#[test]
fn a_busy_device_lets_a_partial_run_wait_longer() {
    let t0 = Instant::now();
    let plug = Duration::from_millis(1);
    let mut s = Sched::new(4096, plug, Duration::ZERO, u64::MAX);
    s.push(w(0, 1024, 1), false, t0);
    let busy_until = t0 + plug * BUSY_WINDOW_FACTOR;
    match s.next(t0 + plug, false, false, false) {
        Next::WaitUntil(at) => assert_eq!(at, busy_until, "busy: the plug is stretched"),
        other => panic!("a partial run went to a busy device: {other:?}"),
    }
    assert!(
        matches!(s.next(t0 + plug, false, false, true), Next::Issue(_)),
        "idle: the plug has expired"
    );
    s.push(w(1 << 20, 1024, 2), false, t0);
    assert!(
        matches!(s.next(busy_until, false, false, false), Next::Issue(_)),
        "busy, but the stretched plug has expired: no starving"
    );
}

/// Streams 1 and 2 each with a full run, no plug, `anticipate`; stream 1 has just been
/// issued (at the returned instant) and has nothing more queued.
fn stream_1_served_stream_2_waiting(anticipate: Duration) -> (Sched, Instant) {
    let t0 = Instant::now();
    let mut s = Sched::new(4096, Duration::ZERO, anticipate, u64::MAX);
    s.push(w(0, 4096, 1), false, t0);
    s.push(w(1 << 20, 4096, 2), false, t0);
    assert_eq!(issue(&mut s, t0, false).bios[0].stream(), 1);
    (s, t0)
}

#[test]
fn the_served_stream_keeps_a_busy_device_longer() {
    let anticipate = Duration::from_millis(1);
    let (mut s, t0) = stream_1_served_stream_2_waiting(anticipate);
    let later = t0 + anticipate * 2;
    assert!(
        matches!(s.next(later, false, false, false), Next::WaitUntil(_)),
        "busy: stream 1 may still continue"
    );
    let run = issue(&mut s, later, false);
    assert_eq!(
        run.bios[0].stream(),
        2,
        "idle: anticipation has expired, stream 2 goes"
    );
}

#[test]
fn between_streams_the_sweep_goes_up_to_the_nearest_head_then_wraps() {
    let t0 = Instant::now();
    let mut s = Sched::new(4096, Duration::ZERO, Duration::ZERO, u64::MAX);
    let mib = 1u64 << 20;
    s.push(w(3 * mib, 4096, 2), false, t0);
    s.push(w(2 * mib, 4096, 3), false, t0);
    s.push(w(mib, 4096, 1), false, t0);
    let first = issue(&mut s, t0, false);
    s.push(w(0, 4096, 0), false, t0);
    let order: Vec<u64> = std::iter::once(first)
        .chain((0..3).map(|_| issue(&mut s, t0, false)))
        .map(|run| run.offset / mib)
        .collect();
    assert_eq!(
        order,
        [1, 2, 3, 0],
        "upwards by offset, not by age, then from the lowest"
    );
}

#[test]
fn anticipation_on_an_idle_device_counts_from_the_completion() {
    let anticipate = Duration::from_millis(1);
    let (mut s, t0) = stream_1_served_stream_2_waiting(anticipate);
    // The I/O took longer than the window; its writer may have waited for it.
    let done = t0 + anticipate * 3;
    s.went_idle(done);
    match s.next(done, false, false, true) {
        Next::WaitUntil(at) => assert_eq!(at, done + anticipate),
        other => panic!("the served stream's writer got no window: {other:?}"),
    }
    assert_eq!(
        issue(&mut s, done + anticipate, false).bios[0].stream(),
        2,
        "the window has passed"
    );
}

#[test]
fn an_idle_device_continues_the_served_stream_rather_than_start_another() {
    let t0 = Instant::now();
    let plug = Duration::from_millis(1);
    let mut s = Sched::new(4096, plug, Duration::ZERO, u64::MAX);
    s.push(w(0, 4096, 1), false, t0);
    s.push(w(1 << 20, 1024, 2), false, t0);
    assert_eq!(issue(&mut s, t0, false).offset, 0);
    // Stream 2's head has waited its plug; stream 1's quarter run has not.
    s.push(w(4096, 1024, 1), false, t0 + plug);
    let run = issue(&mut s, t0 + plug, false);
    assert_eq!(
        (run.offset, run.bios[0].stream()),
        (4096, 1),
        "a short I/O that continues beats two seeks"
    );
    assert_eq!(issue(&mut s, t0 + plug, false).bios[0].stream(), 2);
}

#[test]
fn a_full_run_elsewhere_is_not_kept_waiting_by_a_trickling_served_stream() {
    let t0 = Instant::now();
    let plug = Duration::from_millis(1);
    let mut s = Sched::new(4096, plug, Duration::ZERO, u64::MAX);
    s.push(w(0, 4096, 1), false, t0);
    assert_eq!(issue(&mut s, t0, false).offset, 0);
    s.push(w(4096, 1024, 1), false, t0);
    for i in 0..4 {
        s.push(w((2 << 20) + i * 1024, 1024, 3), false, t0);
    }
    let run = issue(&mut s, t0, false);
    assert_eq!(
        (run.bios[0].stream(), run.len_bytes),
        (3, 4096),
        "a full run is worth its seek"
    );
}

proptest::proptest! {
    /// Random pushes, flushes and picks: every bio is issued exactly once, in
    /// submission order within its stream, never across a flush, in runs that are
    /// contiguous and no larger than the maximum.
    #[test]
    fn picks_keep_stream_order_and_flush_epochs(
        ops in proptest::collection::vec((0u8..8, 0u64..3, 1usize..5, proptest::bool::ANY), 1..120)
    ) {
        let t0 = Instant::now();
        let mut s = Sched::new(4096, Duration::from_millis(1), Duration::from_micros(300), 8192);
        let mut next_off = [0u64; 3];
        let mut pushed = 0u64; // id of each data bio, stored in its first byte pair
        let mut flushes_pushed = 0u64;
        let mut flush_after: Vec<u64> = Vec::new(); // data bios pushed before each flush
        let mut issued: Vec<(u64, u64, u64)> = Vec::new(); // (stream, id, flushes issued before)
        let mut flushes_issued = 0u64;
        let mut clock = 0u64;
        let pick = |s: &mut Sched, clock: u64, urgent: bool, issued: &mut Vec<(u64, u64, u64)>, flushes_issued: &mut u64| -> Result<(), proptest::test_runner::TestCaseError> {
            if let Next::Issue(run) = s.next(t0 + Duration::from_micros(clock), urgent, false, true) {
                if run.op == Op::Flush {
                    *flushes_issued += 1;
                    return Ok(());
                }
                proptest::prop_assert!(run.len_bytes <= 4096 || run.bios.len() == 1);
                let mut end = run.offset;
                for bio in &run.bios {
                    proptest::prop_assert_eq!(bio.offset(), end);
                    end = bio.end();
                    let id = u64::from(u16::from_le_bytes([bio.buf().unwrap()[0], bio.buf().unwrap()[1]]));
                    issued.push((bio.stream(), id, *flushes_issued));
                }
            }
            Ok(())
        };
        for (kind, stream, blocks, urgent) in ops {
            clock += 200;
            match kind {
                0 => {
                    s.push(Bio::flush(|_| {}), false, t0 + Duration::from_micros(clock));
                    flushes_pushed += 1;
                    flush_after.push(pushed);
                }
                1..=4 => {
                    let len = blocks * 512;
                    let mut data = vec![0u8; len];
                    data[..2].copy_from_slice(&(pushed as u16).to_le_bytes());
                    let offset = (stream << 30) + next_off[stream as usize];
                    // Mostly contiguous, sometimes a gap.
                    next_off[stream as usize] += len as u64 + if kind == 4 { 512 } else { 0 };
                    s.push(Bio::write(offset, data, |_| {}).with_stream(stream), stream == 2 && kind == 3, t0 + Duration::from_micros(clock));
                    pushed += 1;
                }
                _ => pick(&mut s, clock, urgent, &mut issued, &mut flushes_issued)?,
            }
        }
        for _ in 0..10_000 {
            if s.is_empty() {
                break;
            }
            clock += 2000;
            pick(&mut s, clock, true, &mut issued, &mut flushes_issued)?;
        }
        proptest::prop_assert!(s.is_empty());
        proptest::prop_assert_eq!(flushes_issued, flushes_pushed);
        let mut ids: Vec<u64> = issued.iter().map(|i| i.1).collect();
        ids.sort_unstable();
        proptest::prop_assert_eq!(ids, (0..pushed).collect::<Vec<_>>(), "each bio exactly once");
        let mut last = [None::<u64>; 3];
        for &(stream, id, flushes_before) in &issued {
            // Sync-lane bios of stream 2 form their own FIFO; check the others.
            if stream != 2 {
                proptest::prop_assert!(last[stream as usize].is_none_or(|p| p < id), "stream order");
                last[stream as usize] = Some(id);
            }
            let epoch = flush_after.iter().filter(|&&n| n <= id).count() as u64;
            proptest::prop_assert_eq!(flushes_before, epoch, "bio {} issued in the wrong epoch", id);
        }
    }
}
