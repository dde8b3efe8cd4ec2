//! The queue's pending lists and the rule that picks the next I/O.
//!
//! Kept apart from the threads so the policy can be tested on its own. Bios wait in a
//! sync lane (served first, never plugged) and in one FIFO per stream. Flushes split
//! time into epochs: a bio queued after `k` flushes belongs to epoch `k` and is not
//! issued before flush `k` has been issued; flush `k` is issued only when no bio of an
//! earlier epoch is left *and* no I/O is in flight (the caller says so: with several
//! submitters, earlier I/Os may still be running). The queue issues nothing else while a
//! flush runs, so a flush completes after every write queued before it, and no write
//! queued after it reaches the device before it is done.
//!
//! Among streams the rule is an anticipating elevator: the stream being served keeps
//! the device while its next bio continues where the last I/O ended, up to a budget;
//! otherwise the stream with the oldest ready head goes next. A stream's head is ready
//! when a full I/O can be merged from it, or it has waited a plug timeout, or something
//! urges progress (a flush waiting, submitters blocked on the in-flight bound).

use crate::bio::{Bio, Op};
use crate::sys::IOV_MAX;
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// A queued bio with its bookkeeping.
#[derive(Debug)]
pub(crate) struct Pending {
    seq: u64,
    epoch: u64,
    arrived: Instant,
    bio: Bio,
}

/// One I/O to issue: one flush, or contiguous reads or writes merged in order.
#[derive(Debug)]
pub(crate) struct Run {
    pub op: Op,
    pub offset: u64,
    pub len_bytes: u64,
    pub bios: Vec<Bio>,
}

/// What a push changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pushed {
    /// A sleeping submitter should look now: something never plugged (a flush, a sync
    /// bio), a new head (its plug deadline is new), or a head run that became full.
    pub wake: bool,
}

/// What the submitter should do next.
#[derive(Debug)]
pub(crate) enum Next {
    Issue(Run),
    /// Nothing is ready; the earliest plug expires then.
    WaitUntil(Instant),
    /// Nothing is queued.
    Idle,
}

#[derive(Debug)]
pub(crate) struct Sched {
    max_io_bytes: u64,
    plug: Duration,
    anticipate: Duration,
    budget_bytes: u64,
    next_seq: u64,
    cur_epoch: u64,
    /// Pending data bios per epoch; `[0]` is the current epoch.
    epoch_counts: VecDeque<usize>,
    /// Flush `i` here closes epoch `cur_epoch + i`.
    flushes: VecDeque<Bio>,
    sync: VecDeque<Pending>,
    streams: BTreeMap<u64, VecDeque<Pending>>,
    active: Option<u64>,
    active_end: u64,
    active_served_bytes: u64,
    active_last_at: Instant,
}

impl Sched {
    pub(crate) fn new(
        max_io_bytes: u64,
        plug: Duration,
        anticipate: Duration,
        budget_bytes: u64,
    ) -> Self {
        assert!(max_io_bytes > 0);
        Self {
            max_io_bytes,
            plug,
            anticipate,
            budget_bytes,
            next_seq: 0,
            cur_epoch: 0,
            epoch_counts: VecDeque::from([0]),
            flushes: VecDeque::new(),
            sync: VecDeque::new(),
            streams: BTreeMap::new(),
            active: None,
            active_end: 0,
            active_served_bytes: 0,
            active_last_at: Instant::now(),
        }
    }

    /// The stream being served, whose writers get a reserve of the in-flight bound.
    pub(crate) fn active_stream(&self) -> Option<u64> {
        self.active
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.flushes.is_empty() && self.epoch_counts.iter().all(|&c| c == 0)
    }

    /// Queues `bio`; says whether that made something ready (see [`Pushed`]).
    pub(crate) fn push(&mut self, bio: Bio, sync: bool, now: Instant) -> Pushed {
        if bio.op() == Op::Flush {
            self.flushes.push_back(bio);
            self.epoch_counts.push_back(0);
            assert_eq!(self.epoch_counts.len(), self.flushes.len() + 1);
            return Pushed { wake: true };
        }
        let epoch = self.cur_epoch + (self.epoch_counts.len() as u64 - 1);
        *self
            .epoch_counts
            .back_mut()
            .expect("there is always a current epoch") += 1;
        let pending = Pending {
            seq: self.next_seq,
            epoch,
            arrived: now,
            bio,
        };
        self.next_seq += 1;
        if sync {
            self.sync.push_back(pending);
            return Pushed { wake: true };
        }
        let stream = pending.bio.stream();
        let queue = self.streams.entry(stream).or_default();
        queue.push_back(pending);
        let new_head = queue.len() == 1;
        let queue = &self.streams[&stream];
        let (bytes, full) = self.head_run_bytes(queue);
        // The served stream's run just became worth issuing on an idle device.
        let len = queue.back().map_or(0, |p| p.bio.len() as u64);
        let half = self.active == Some(stream)
            && self.worth_it(bytes)
            && !self.worth_it(bytes.saturating_sub(len));
        Pushed {
            wake: new_head || full || half,
        }
    }

    /// Bytes one I/O from the head of `queue` would move, and whether it is full.
    fn head_run_bytes(&self, queue: &VecDeque<Pending>) -> (u64, bool) {
        let Some(first) = queue.front() else {
            return (0, false);
        };
        let mut bytes = first.bio.len() as u64;
        let mut end = first.bio.end();
        for (count, p) in queue.iter().enumerate().skip(1) {
            if !self.joins(first, p, end, bytes, count) {
                return (bytes, bytes >= self.max_io_bytes || count >= IOV_MAX);
            }
            bytes += p.bio.len() as u64;
            end = p.bio.end();
        }
        (bytes, bytes >= self.max_io_bytes)
    }

    fn joins(&self, first: &Pending, p: &Pending, end: u64, bytes: u64, count: usize) -> bool {
        p.epoch == first.epoch
            && p.bio.op() == first.bio.op()
            && p.bio.offset() == end
            && bytes + p.bio.len() as u64 <= self.max_io_bytes
            && count < IOV_MAX
    }

    fn take_run(&mut self, from_sync: bool, stream: u64) -> Run {
        let queue = if from_sync {
            &mut self.sync
        } else {
            self.streams
                .get_mut(&stream)
                .expect("a chosen stream exists")
        };
        let first = queue.pop_front().expect("a chosen queue is not empty");
        let mut run = Run {
            op: first.bio.op(),
            offset: first.bio.offset(),
            len_bytes: first.bio.len() as u64,
            bios: Vec::new(),
        };
        let mut end = first.bio.end();
        let epoch = first.epoch;
        let (max_io, first_op) = (self.max_io_bytes, first.bio.op());
        run.bios.push(first.bio);
        while let Some(p) = queue.front() {
            let joins = p.epoch == epoch
                && p.bio.op() == first_op
                && p.bio.offset() == end
                && run.len_bytes + p.bio.len() as u64 <= max_io
                && run.bios.len() < IOV_MAX;
            if !joins {
                break;
            }
            let p = queue.pop_front().expect("front exists");
            end = p.bio.end();
            run.len_bytes += p.bio.len() as u64;
            run.bios.push(p.bio);
        }
        if !from_sync && queue.is_empty() {
            self.streams.remove(&stream);
        }
        assert_eq!(epoch, self.cur_epoch, "only the current epoch is issued");
        let count = &mut self.epoch_counts[0];
        assert!(*count >= run.bios.len());
        *count -= run.bios.len();
        assert_eq!(end, run.offset + run.len_bytes);
        run
    }

    /// Whether to hold the device for the active stream a little longer: its writer
    /// has not yet continued (or not yet filled a full I/O) but did so very recently.
    fn anticipating(&self, now: Instant, idle: bool) -> Option<Instant> {
        let active = self.active?;
        let until = self.active_last_at + self.anticipate;
        if now >= until || self.active_served_bytes >= self.budget_bytes {
            return None;
        }
        match self.streams.get(&active) {
            None => Some(until),
            Some(queue) => {
                let head = queue.front().expect("empty streams are removed");
                let continues =
                    head.epoch == self.cur_epoch && head.bio.offset() == self.active_end;
                let (bytes, full) = self.head_run_bytes(queue);
                // An idle device is better served by half an I/O that continues now.
                (continues && !full && !(idle && self.worth_it(bytes))).then_some(until)
            }
        }
    }

    /// Whether another stream's head starts exactly where the served stream's last I/O
    /// ended. Streams do not overlap, so the served stream cannot continue there: it has
    /// finished its sequential run, and the other stream takes over without a seek —
    /// nothing to wait for.
    fn handover(&self) -> bool {
        self.streams.iter().any(|(&stream, queue)| {
            Some(stream) != self.active
                && queue
                    .front()
                    .is_some_and(|h| h.epoch == self.cur_epoch && h.bio.offset() == self.active_end)
        })
    }

    /// Whether a partial run of the served stream is big enough to issue at once when
    /// the device is idle, rather than idle it further waiting for a full I/O.
    fn worth_it(&self, bytes: u64) -> bool {
        bytes >= self.max_io_bytes / 2
    }

    /// Picks the next I/O. `pressure` (submitters blocked on the bound) makes every head
    /// ready; `draining` (shutdown) also ends anticipation. `idle`: no I/O is in flight,
    /// without which a due flush is not issued (the caller waits for a completion).
    pub(crate) fn next(
        &mut self,
        now: Instant,
        pressure: bool,
        draining: bool,
        idle: bool,
    ) -> Next {
        let urgent = pressure || draining;
        if self.epoch_counts[0] == 0 && !self.flushes.is_empty() {
            if !idle {
                // Nothing of the current epoch is left; only the flush may go next.
                return Next::Idle;
            }
            if let Some(flush) = self.flushes.pop_front() {
                self.epoch_counts.pop_front();
                self.cur_epoch += 1;
                self.active = None;
                return Next::Issue(Run {
                    op: Op::Flush,
                    offset: 0,
                    len_bytes: 0,
                    bios: vec![flush],
                });
            }
        }
        if self.sync.front().is_some_and(|p| p.epoch == self.cur_epoch) {
            return Next::Issue(self.take_run(true, 0));
        }
        let urgent = urgent || !self.flushes.is_empty();
        if !draining && self.flushes.is_empty() {
            if let Some(until) = self.anticipating(now, idle) {
                if self.streams.keys().any(|s| Some(*s) != self.active) && !self.handover() {
                    return Next::WaitUntil(until);
                }
            }
        }
        let mut best: Option<(u64, u64)> = None; // (rank, stream) of the best ready head
        let mut earliest_plug: Option<Instant> = None;
        let mut active_ready = false;
        for (&stream, queue) in &self.streams {
            let head = queue.front().expect("empty streams are removed");
            if head.epoch != self.cur_epoch {
                continue;
            }
            let (bytes, full) = self.head_run_bytes(queue);
            let plug_end = head.arrived + self.plug;
            let served_continues =
                self.active == Some(stream) && head.bio.offset() == self.active_end;
            let half_now = idle && served_continues && self.worth_it(bytes);
            let ready = full || urgent || now >= plug_end || half_now;
            if !ready {
                earliest_plug = Some(earliest_plug.map_or(plug_end, |t| t.min(plug_end)));
                continue;
            }
            if self.active == Some(stream)
                && head.bio.offset() == self.active_end
                && self.active_served_bytes < self.budget_bytes
            {
                active_ready = true;
            }
            // A head that continues where the last I/O ended wins (an elevator's
            // sequential pick); otherwise the oldest head.
            // The active stream only gets here once its budget is spent, so it may not
            // use the sequential preference to keep the device.
            let continues = head.bio.offset() == self.active_end && self.active != Some(stream);
            let rank = if continues { 0 } else { head.seq + 1 };
            if best.is_none_or(|(r, _)| rank < r) {
                best = Some((rank, stream));
            }
        }
        let stream = if active_ready {
            self.active.expect("active_ready implies an active stream")
        } else if let Some((_, stream)) = best {
            self.active = Some(stream);
            self.active_served_bytes = 0;
            stream
        } else {
            return earliest_plug.map_or(Next::Idle, Next::WaitUntil);
        };
        let run = self.take_run(false, stream);
        self.active_end = run.offset + run.len_bytes;
        self.active_served_bytes += run.len_bytes;
        self.active_last_at = now;
        Next::Issue(run)
    }
}

#[cfg(test)]
mod tests {
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
        assert_eq!(offsets[3], 1 << 20, "then the oldest other head goes");
        let mut per_stream: Vec<u64> = offsets.iter().copied().filter(|o| *o < 1 << 20).collect();
        let sorted = {
            let mut v = per_stream.clone();
            v.sort();
            v
        };
        assert_eq!(per_stream, sorted, "order within a stream is kept");
        per_stream.clear();
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
}
