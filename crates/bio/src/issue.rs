//! The submitter threads: pick I/Os in order, run several at once, complete them.
//!
//! Each of a queue's `submitters` threads loops: under the queue lock it asks the
//! scheduler (`sched.rs`) for the next I/O, which fixes the *issue order*, takes a
//! ticket and registers the I/O as in flight; then it runs the I/O without the lock,
//! and afterwards releases its bytes, hands the completions to the end-I/O context and
//! only then unregisters the I/O.
//! So up to `submitters` I/Os are in flight at once, picked strictly one after another:
//! on a page cache the copying runs on several cores, on a disk the device is never
//! idle between two I/Os.
//!
//! What concurrency must not break:
//! - **overlap**: an I/O that overlaps an earlier-picked I/O still in flight (and is
//!   not a read beside a read) waits for it, so overwrites land in issue order and a
//!   read sees the writes picked before it. Only lower tickets are waited for, so the
//!   lowest ticket never waits and there is no cycle;
//! - **flush**: the scheduler hands out a flush only when nothing is in flight, and
//!   while it runs (`barrier`) nothing else is picked: a flush completes after every
//!   write queued before it, and no later write reaches the device before it is done;
//! - **bound**: bytes are released only when their I/O is done;
//! - **exactly once**: every picked bio is completed by the thread that ran it.

use crate::bio::{Bio, Op};
use crate::queue::{EndIoJob, Shared, State};
use crate::sched::{Next, Run};
use crate::Error;
use std::sync::MutexGuard;
use std::time::Instant;

/// An I/O that has been picked and not yet completed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct InFlight {
    ticket: u64,
    op: Op,
    start: u64,
    end: u64,
}

impl InFlight {
    /// Whether `self` must wait for `earlier` to complete before it runs.
    fn must_wait_for(&self, earlier: &InFlight) -> bool {
        if earlier.ticket >= self.ticket {
            return false;
        }
        if self.op == Op::Flush || earlier.op == Op::Flush {
            return true;
        }
        let both_read = self.op == Op::Read && earlier.op == Op::Read;
        !both_read && self.start < earlier.end && earlier.start < self.end
    }
}

/// One submitter thread's loop; returns at shutdown once nothing is queued.
pub(crate) fn submitter(shared: &Shared) {
    let mut state = shared.lock();
    loop {
        let now = Instant::now();
        let wait = match pick(shared, &mut state, now) {
            Next::Issue(run) => {
                state = issue(shared, state, run);
                continue;
            }
            Next::WaitUntil(at) => Some(at),
            Next::Idle => None,
        };
        if state.shutdown && state.sched.is_empty() {
            return;
        }
        state = sleep(shared, state, wait);
    }
}

/// Waits, as a sleeping submitter, until woken or until `until` (the plug deadline).
pub(crate) fn sleep<'a>(
    shared: &'a Shared,
    mut state: MutexGuard<'a, State>,
    until: Option<Instant>,
) -> MutexGuard<'a, State> {
    state.sleepers += 1;
    state = match until {
        Some(at) => {
            shared
                .work
                .wait_timeout(state, at.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|e| e.into_inner())
                .0
        }
        None => shared.work.wait(state).unwrap_or_else(|e| e.into_inner()),
    };
    state.sleepers -= 1;
    state
}

/// The scheduler's next I/O if another may be in flight now (`Idle` if not).
pub(crate) fn pick(shared: &Shared, state: &mut State, now: Instant) -> Next {
    if !state.may_pick(&shared.config) {
        return Next::Idle;
    }
    let (pressure, draining) = (state.waiters > 0, state.shutdown);
    let idle = state.in_flight.is_empty();
    let served = state.sched.active_stream();
    let next = state.sched.next(now, pressure, draining, idle);
    if state.sched.active_stream() != served && state.waiters > state.favoured_waiters {
        // The newly served stream's writer may be among the others.
        shared.room_others.notify_all();
    }
    next
}

/// Registers `run` as in flight, waits for the earlier I/Os it overlaps, runs it,
/// accounts for it and hands its completions on. Returns with the lock held again.
fn issue<'a>(
    shared: &'a Shared,
    mut state: MutexGuard<'a, State>,
    run: Run,
) -> MutexGuard<'a, State> {
    let me = register(&mut state, &run);
    while state.must_wait(&me) {
        state.overlap_waits += 1;
        state.overlap_waiters += 1;
        state = shared.done.wait(state).unwrap_or_else(|e| e.into_inner());
        state.overlap_waiters -= 1;
    }
    drop(state);
    let len = run.len_bytes;
    let (outcome, bios, results) = execute(shared, run);
    finish(shared, me, len, outcome, bios, results)
}

/// Takes the next ticket for `run` (its issue position) and registers it as in flight.
pub(crate) fn register(state: &mut State, run: &Run) -> InFlight {
    let me = InFlight {
        ticket: state.next_ticket,
        op: run.op,
        start: run.offset,
        end: run.offset + run.len_bytes,
    };
    state.next_ticket += 1;
    if run.op == Op::Flush {
        assert!(state.in_flight.is_empty(), "a flush runs alone");
        assert!(!state.barrier);
        state.barrier = true;
    } else {
        state.seq.record(run.offset, run.len_bytes);
    }
    state.in_flight.push(me);
    state.in_flight_ios_peak = state.in_flight_ios_peak.max(state.in_flight.len());
    me
}

impl State {
    /// Whether `me` must wait for an earlier I/O still in flight (see the module docs).
    pub(crate) fn must_wait(&self, me: &InFlight) -> bool {
        self.in_flight
            .iter()
            .any(|earlier| me.must_wait_for(earlier))
    }
}

/// After `me` (of `len` bytes) ran: releases its bytes, counts it, hands its completions
/// on, and only then unregisters it. Returns with the lock held again.
pub(crate) fn finish(
    shared: &Shared,
    me: InFlight,
    len: u64,
    outcome: Outcome,
    bios: Vec<Bio>,
    results: Vec<Result<(), Error>>,
) -> MutexGuard<'_, State> {
    // Count and release the bytes before the completions run, so a caller that waited
    // for a completion sees counters that include its I/O.
    let mut state = shared.lock();
    assert!(state.in_flight_bytes >= len);
    state.in_flight_bytes -= len;
    outcome.account(&mut state);
    let wake_favoured = state.favoured_waiters > 0;
    let others_fit =
        state.in_flight_bytes < shared.config.max_in_flight_bytes - shared.reserve_bytes();
    let wake_others = state.waiters > state.favoured_waiters && others_fit;
    drop(state);
    if wake_favoured {
        shared.room.notify_all();
    }
    if wake_others {
        shared.room_others.notify_all();
    }
    // The I/O stays registered until its completions are handed on, so a flush picked
    // after it cannot complete before them (with inline completions, before they ran).
    complete(shared, bios, results);

    let mut state = shared.lock();
    let at = state
        .in_flight
        .iter()
        .position(|f| f.ticket == me.ticket)
        .expect("a running I/O is registered");
    state.in_flight.swap_remove(at);
    if state.in_flight.is_empty() {
        state.sched.went_idle(Instant::now());
    }
    if me.op == Op::Flush {
        assert!(state.barrier);
        state.barrier = false;
    }
    // A sleeping submitter may be waiting for a free slot, for the device to go idle
    // (a due flush) or for the barrier to lift; later overlapping I/Os wait for this one.
    if state.sleepers > 0 {
        if state.in_flight.is_empty() || me.op == Op::Flush {
            shared.work.notify_all();
        } else {
            shared.work.notify_one();
        }
    }
    if state.overlap_waiters > 0 {
        shared.done.notify_all();
    }
    state
}

/// What one run did, for the counters.
pub(crate) struct Outcome {
    op: Op,
    /// (offset, len) of each device I/O in issue order.
    ios: Vec<(u64, u64)>,
    bios: u64,
    split: bool,
}

impl Outcome {
    /// A run that went to the device as one I/O.
    pub(crate) fn whole(run: &Run) -> Outcome {
        Outcome {
            op: run.op,
            ios: vec![(run.offset, run.len_bytes)],
            bios: run.bios.len() as u64,
            split: false,
        }
    }

    fn account(self, s: &mut State) {
        if self.op == Op::Flush {
            s.flushes += 1;
            return;
        }
        if self.split {
            // The merged I/O was counted when it was picked; the bio-by-bio reissue
            // went to the device as well.
            for &(offset, len) in &self.ios {
                s.seq.record(offset, len);
            }
        }
        s.bios += self.bios;
        s.merged += self.bios - self.ios.len().min(self.bios as usize) as u64;
        s.split_retries += u64::from(self.split);
    }
}

/// Issues one run; returns what it did, its bios and each bio's result.
pub(crate) fn execute(
    shared: &Shared,
    mut run: Run,
) -> (Outcome, Vec<Bio>, Vec<Result<(), Error>>) {
    let device = &*shared.device;
    let mut outcome = Outcome::whole(&run);
    let merged = match run.op {
        Op::Flush => device.flush(),
        Op::Write => {
            let bufs: Vec<&[u8]> = run
                .bios
                .iter()
                .map(|b| b.buf().map_or(&[][..], |b| &b[..]))
                .collect();
            let written = device.writev_at(&bufs, run.offset);
            if written.is_ok() {
                write_behind(shared, &run);
            }
            written
        }
        Op::Read => {
            let mut bufs: Vec<&mut [u8]> = run
                .bios
                .iter_mut()
                .map(|b| b.buf_mut().map_or(&mut [][..], |b| &mut b[..]))
                .collect();
            device.readv_at(&mut bufs, run.offset)
        }
    };
    let results: Vec<Result<(), Error>> = match merged {
        Ok(()) => run.bios.iter().map(|_| Ok(())).collect(),
        Err(err) if run.bios.len() == 1 => vec![Err(err)],
        Err(_) => {
            // Reissue bio by bio so each gets its own result and only the bad ones fail.
            outcome.split = true;
            outcome.ios.clear();
            run.bios
                .iter_mut()
                .map(|bio| {
                    let offset = bio.offset();
                    outcome.ios.push((offset, bio.len() as u64));
                    match (run.op, bio.buf_mut()) {
                        (Op::Write, Some(buf)) => device.write_at(buf, offset),
                        (Op::Read, Some(buf)) => device.read_at(buf, offset),
                        _ => Ok(()),
                    }
                })
                .collect()
        }
    };
    assert_eq!(results.len(), run.bios.len());
    (outcome, run.bios, results)
}

/// After `run` was written whole: starts its writeback when the queue is set to
/// ([`crate::QueueConfig::write_behind`]). A failure is left to the flush, which sees
/// the same error; the write itself succeeded.
pub(crate) fn write_behind(shared: &Shared, run: &Run) {
    if run.op == Op::Write && shared.config.write_behind {
        let _ = shared.device.start_writeback(run.offset, run.len_bytes);
    }
}

/// Runs the completions on the end-I/O context, or here if it refuses work.
fn complete(shared: &Shared, bios: Vec<Bio>, results: Vec<Result<(), Error>>) {
    let job: EndIoJob = Box::new(move || {
        for (bio, result) in bios.into_iter().zip(results) {
            bio.complete(result);
        }
    });
    if let Err(job) = shared.end_io.run(job) {
        job();
    }
}
