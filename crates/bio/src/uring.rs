//! The io_uring engine: one thread keeps up to `submitters` I/Os in flight through one
//! ring, where the default engine runs one thread per I/O in flight.
//!
//! The rules are the threads' (`issue.rs`), through the same functions: I/Os are picked
//! one after another under the queue lock (`pick`, `register`), so the issue order is
//! the same; an I/O that overlaps an earlier one still in flight is held back until that
//! one completes (the ring never holds two I/Os that must be ordered); a flush is picked
//! only when nothing is in flight and runs alone; bytes are released and completions
//! handed on by `finish`. Only the happy path goes through the ring: a flush, an I/O the
//! device's checks refuse, and an I/O the kernel completes short or with an error run
//! again synchronously through the device (`execute`), which finishes short transfers,
//! retries `EINTR` and splits an error down to the bios it concerns, exactly as the
//! threads do.
//!
//! While I/Os are in the ring the thread waits for a completion at most [`POLL`] before
//! it looks at the queue again, so bios queued meanwhile are picked within that.
//!
//! Memory safety: the kernel reads (or writes) the bios' buffers through the iovec
//! arrays until it posts the completion. Both live in a [`Pending`] owned by the ring
//! until its completion is reaped, and dropping the ring (also when unwinding) first
//! waits for every I/O still in it.

#![allow(unsafe_code)]

use crate::bio::Op;
use crate::file::FileDevice;
use crate::issue::{execute, finish, pick, register, sleep, InFlight, Outcome};
use crate::queue::Shared;
use crate::sched::{Next, Run};
use crate::sys::IOV_MAX;
use io_uring::{opcode, types, IoUring};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// Longest the ring waits for a completion before looking at the queue again.
const POLL: Duration = Duration::from_millis(1);

/// An I/O in the ring and everything the kernel uses until its completion is reaped.
struct Pending {
    me: InFlight,
    run: Run,
    iovecs: Vec<libc::iovec>,
}

/// The ring and the I/Os in it, one slot per I/O (`user_data` is the slot).
struct Ring {
    ring: IoUring,
    slots: Vec<Option<Pending>>,
    running: usize,
}

/// Sets up a ring for `depth` I/Os in flight (the caller reports an error to the user).
pub(crate) fn new_ring(depth: usize) -> std::io::Result<IoUring> {
    let entries = u32::try_from(depth.next_power_of_two()).unwrap_or(u32::MAX);
    IoUring::new(entries)
}

/// The engine's thread: picks, submits, reaps; returns at shutdown once nothing is
/// queued or in flight.
pub(crate) fn submitter(shared: &Shared, file: &FileDevice, ring: IoUring) {
    let depth = shared.config.submitters;
    let mut ring = Ring {
        ring,
        slots: (0..depth).map(|_| None).collect(),
        running: 0,
    };
    // Picked, but overlapping an earlier I/O still in the ring.
    let mut blocked: Option<(InFlight, Run)> = None;
    loop {
        let mut state = shared.lock();
        let mut ready = Vec::new();
        let mut deadline = None;
        loop {
            if let Some((me, _)) = &blocked {
                if state.must_wait(me) {
                    break;
                }
                ready.extend(blocked.take());
                continue;
            }
            match pick(shared, &mut state, Instant::now()) {
                Next::Issue(run) => {
                    let me = register(&mut state, &run);
                    if state.must_wait(&me) {
                        state.overlap_waits += 1;
                        blocked = Some((me, run));
                        break;
                    }
                    ready.push((me, run));
                }
                Next::WaitUntil(at) => {
                    deadline = Some(at);
                    break;
                }
                Next::Idle => break,
            }
        }
        if ready.is_empty() && ring.running == 0 {
            // Only an I/O in the ring can hold one back.
            assert!(blocked.is_none(), "a held-back I/O with nothing in flight");
            if state.shutdown && state.sched.is_empty() {
                return;
            }
            drop(sleep(shared, state, deadline));
            continue;
        }
        drop(state);
        for (me, run) in ready {
            ring.start(shared, file, me, run);
        }
        ring.wait(deadline);
        ring.reap(shared);
    }
}

impl Ring {
    /// Puts `run` in the ring, or runs it here when the ring cannot take it as it is.
    fn start(&mut self, shared: &Shared, file: &FileDevice, me: InFlight, mut run: Run) {
        let len = run.len_bytes;
        let iovecs: Vec<libc::iovec> = match run.op {
            Op::Flush => Vec::new(),
            Op::Write => run
                .bios
                .iter()
                .map(|b| {
                    let buf = b.buf().map_or(&[][..], |b| &b[..]);
                    libc::iovec {
                        iov_base: buf.as_ptr().cast_mut().cast(),
                        iov_len: buf.len(),
                    }
                })
                .collect(),
            Op::Read => run
                .bios
                .iter_mut()
                .map(|b| {
                    let buf = b.buf_mut().map_or(&mut [][..], |b| &mut b[..]);
                    libc::iovec {
                        iov_base: buf.as_mut_ptr().cast(),
                        iov_len: buf.len(),
                    }
                })
                .collect(),
        };
        let checked = run.op != Op::Flush
            && !iovecs.is_empty()
            && iovecs.len() <= IOV_MAX
            && file
                .check(
                    run.offset,
                    iovecs.iter().map(|v| (v.iov_base as usize, v.iov_len)),
                    usize::try_from(len).unwrap_or(usize::MAX),
                    run.op == Op::Write,
                )
                .is_ok();
        if !checked {
            let (outcome, bios, results) = execute(shared, run);
            drop(finish(shared, me, len, outcome, bios, results));
            return;
        }
        let slot = self
            .slots
            .iter()
            .position(Option::is_none)
            .expect("a free slot: at most `submitters` I/Os are in flight");
        let pending = self.slots[slot].insert(Pending { me, run, iovecs });
        let fd = types::Fd(file.file().as_raw_fd());
        let (ptr, count) = (
            pending.iovecs.as_ptr(),
            u32::try_from(pending.iovecs.len()).expect("at most IOV_MAX iovecs"),
        );
        let entry = match pending.run.op {
            Op::Write => opcode::Writev::new(fd, ptr, count)
                .offset(pending.run.offset)
                .build(),
            _ => opcode::Readv::new(fd, ptr, count)
                .offset(pending.run.offset)
                .build(),
        }
        .user_data(slot as u64);
        loop {
            // SAFETY: the iovec array and every buffer it points to belong to the
            // `Pending` in `self.slots[slot]`, which is neither moved out nor dropped
            // until this entry's completion is reaped (`reap`, or `Drop`, which waits for
            // it); a write's buffers are only read by the kernel, a read's are borrowed by
            // nothing else meanwhile. The fd is the device's, open as long as `file`.
            let pushed = unsafe { self.ring.submission().push(&entry) };
            if pushed.is_ok() {
                break;
            }
            // The submission queue is full of entries not handed over yet.
            self.submit(0);
        }
        self.running += 1;
    }

    /// Hands queued entries to the kernel and waits for `want` completions.
    fn submit(&mut self, want: usize) {
        loop {
            match self.ring.submit_and_wait(want) {
                Ok(_) => return,
                Err(e) if retry(&e) => continue,
                // Entries stay queued; they go with the next call.
                Err(_) => return,
            }
        }
    }

    /// Submits what is queued and waits for one completion, at most until `deadline`
    /// (the scheduler's plug deadline) or [`POLL`].
    fn wait(&mut self, deadline: Option<Instant>) {
        if self.running == 0 {
            return;
        }
        let timeout = deadline
            .map_or(POLL, |at| at.saturating_duration_since(Instant::now()))
            .min(POLL);
        let timespec = types::Timespec::from(timeout);
        let args = types::SubmitArgs::new().timespec(&timespec);
        match self.ring.submitter().submit_with_args(1, &args) {
            Ok(_) => {}
            // ETIME: nothing completed in time; look at the queue again.
            Err(e) if e.raw_os_error() == Some(libc::ETIME) || retry(&e) => {}
            Err(_) => std::thread::sleep(POLL),
        }
    }

    /// Finishes every I/O whose completion the kernel posted.
    fn reap(&mut self, shared: &Shared) {
        let done: Vec<(u64, i32)> = self
            .ring
            .completion()
            .map(|c| (c.user_data(), c.result()))
            .collect();
        for (slot, result) in done {
            let pending = usize::try_from(slot)
                .ok()
                .and_then(|s| self.slots.get_mut(s))
                .and_then(Option::take)
                .expect("a completion for an I/O in the ring");
            self.running -= 1;
            let Pending { me, run, iovecs } = pending;
            drop(iovecs);
            let len = run.len_bytes;
            let whole = u64::try_from(result).is_ok_and(|n| n == len);
            let (outcome, bios, results) = if whole {
                let results = run.bios.iter().map(|_| Ok(())).collect();
                (Outcome::whole(&run), run.bios, results)
            } else {
                // Short or failed: again through the device, which finishes a short
                // transfer and gives each bio its own result.
                execute(shared, run)
            };
            drop(finish(shared, me, len, outcome, bios, results));
        }
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // The kernel may still use the buffers of I/Os in the ring: wait for them.
        let mut failures = 0;
        while self.running > 0 && failures < 1000 {
            match self.ring.submit_and_wait(1) {
                Ok(_) => failures = 0,
                Err(_) => failures += 1,
            }
            let done: Vec<u64> = self.ring.completion().map(|c| c.user_data()).collect();
            for slot in done {
                if let Some(s) = usize::try_from(slot)
                    .ok()
                    .and_then(|s| self.slots.get_mut(s))
                {
                    if s.take().is_some() {
                        self.running -= 1;
                    }
                }
            }
        }
        if self.running > 0 {
            // Never free what the kernel may still write to: leak it instead.
            std::mem::forget(std::mem::take(&mut self.slots));
        }
    }
}

/// Errors after which the same call is simply made again.
fn retry(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINTR | libc::EAGAIN | libc::EBUSY)
    )
}
