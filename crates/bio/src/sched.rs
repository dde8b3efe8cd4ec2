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
//! otherwise the ready head nearest above the last I/O goes next, or the lowest when
//! none is above (a C-SCAN sweep, so writers of adjacent regions hand over to each
//! other without a seek). A stream's head is ready
//! when a full I/O can be merged from it, or it has waited a plug timeout, or something
//! urges progress (a flush waiting, submitters blocked on the in-flight bound).
//!
//! Every stream the queue leaves unfinished costs two seeks: one away, one back. So
//! while I/Os are in flight the plug and anticipation windows are
//! [`BUSY_WINDOW_FACTOR`] times longer (the device has work; nothing is lost by
//! waiting); on an idle device the anticipation window counts from the completion of
//! the served stream's last I/O (its writer may have been waiting for it), and the
//! device goes on with the served stream's partial run rather than start another
//! stream's partial run (a full run elsewhere is worth its seek). Without that, 16
//! writers that start together time out together and each gets started in turn: the
//! bio bench's many-streams t16 case fell to a sequential share of 0.85 on io_uring,
//! which keeps 8 I/Os in flight.

use crate::bio::{Bio, Op};
use crate::sys::IOV_MAX;
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// How much longer plug and anticipation windows are while the device is busy (see
/// [`busy_scaled`]): long enough for a writer sharing the CPUs with many others
/// to fill its next run, short enough that a partial run is not starved.
const BUSY_WINDOW_FACTOR: u32 = 8;

/// A plug or anticipation window, stretched while the device is busy. Going on to
/// another stream's partial run, or away from the served stream, only starts a
/// stream to leave it soon after, two seeks each, and while I/Os are in flight the
/// device loses nothing by waiting. It matters when many writers start at once:
/// their heads all time out together, and each would be started in turn. A
/// completion that leaves the device idle wakes the submitter, which then sees the
/// short window again.
fn busy_scaled(window: Duration, idle: bool) -> Duration {
    if idle {
        window
    } else {
        window.saturating_mul(BUSY_WINDOW_FACTOR)
    }
}

/// A queued bio with its bookkeeping.
#[derive(Debug)]
pub(crate) struct Pending {
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
    /// When the device last went idle (its last I/O in flight completed), if ever.
    idle_since: Option<Instant>,
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
            cur_epoch: 0,
            epoch_counts: VecDeque::from([0]),
            flushes: VecDeque::new(),
            sync: VecDeque::new(),
            streams: BTreeMap::new(),
            active: None,
            active_end: 0,
            active_served_bytes: 0,
            active_last_at: Instant::now(),
            idle_since: None,
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
            epoch,
            arrived: now,
            bio,
        };
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

    /// The caller's news that its last I/O in flight has completed, at `at`.
    pub(crate) fn went_idle(&mut self, at: Instant) {
        self.idle_since = Some(at);
    }

    /// Whether to hold the device for the active stream a little longer: its writer
    /// has not yet continued (or not yet filled a full I/O) but did so very recently.
    fn anticipating(&self, now: Instant, idle: bool) -> Option<Instant> {
        let active = self.active?;
        // As in anticipatory scheduling, the writer gets its window after its I/O is
        // done, not after it was issued: it may be waiting for that completion.
        let until = if idle {
            self.idle_since
                .map_or(self.active_last_at, |at| at.max(self.active_last_at))
                + self.anticipate
        } else {
            self.active_last_at + busy_scaled(self.anticipate, false)
        };
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
        // (rank, stream, full run) of the best ready head
        let mut best: Option<((u8, u64), u64, bool)> = None;
        let mut earliest_plug: Option<Instant> = None;
        // The served stream has a bio right where its last I/O ended, and budget left.
        let mut active_continues = false;
        let mut active_ready = false;
        for (&stream, queue) in &self.streams {
            let head = queue.front().expect("empty streams are removed");
            if head.epoch != self.cur_epoch {
                continue;
            }
            let (bytes, full) = self.head_run_bytes(queue);
            let plug_end = head.arrived + busy_scaled(self.plug, idle);
            let served_continues =
                self.active == Some(stream) && head.bio.offset() == self.active_end;
            let served_goes_on = served_continues && self.active_served_bytes < self.budget_bytes;
            active_continues |= served_goes_on;
            let half_now = idle && served_continues && self.worth_it(bytes);
            let ready = full || urgent || now >= plug_end || half_now;
            if !ready {
                earliest_plug = Some(earliest_plug.map_or(plug_end, |t| t.min(plug_end)));
                continue;
            }
            active_ready |= served_goes_on;
            // A head that continues where the last I/O ended wins (an elevator's
            // sequential pick); otherwise the sweep goes on upwards to the nearest head
            // ahead, and wraps to the lowest when none is (C-SCAN). Sweeping in offset
            // order makes the next stream's start likely to be where the previous
            // stream's region ended. The active stream only gets here once its budget is
            // spent, so it may not use the sequential preference to keep the device.
            let offset = head.bio.offset();
            let continues = offset == self.active_end && self.active != Some(stream);
            let rank = match (continues, offset > self.active_end) {
                (true, _) => (0, 0),
                (false, true) => (1, offset),
                (false, false) => (2, offset),
            };
            if best.is_none_or(|(r, _, _)| rank < r) {
                best = Some((rank, stream, full));
            }
        }
        let partial_elsewhere = best.is_some_and(|(_, _, full)| !full);
        let stream = if active_ready || (idle && partial_elsewhere && active_continues) {
            // On an idle device, rather than start another stream with a partial run, the
            // served one goes on with whatever it has: a shorter I/O costs less than two
            // seeks (there and, later, back). A full run elsewhere is worth its seek, and a
            // served stream that trickles must not keep it waiting.
            self.active
                .expect("the served stream is ready or continues")
        } else if let Some((_, stream, _)) = best {
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
mod tests;
