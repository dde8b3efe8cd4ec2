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
//! While I/Os are in the ring the thread waits in the ring for a completion, not on the
//! queue's condition variable, so a push cannot wake it that way: the ring also polls the
//! queue's [`Wake`] eventfd, which a push that makes work ready writes while the thread
//! waits there (`State::ring_waiting`). Bios queued meanwhile are picked at once, not
//! when the next I/O completes.
//!
//! Memory safety: the kernel reads (or writes) the bios' buffers through the iovec
//! arrays until it posts the completion. Both live in a [`Pending`] owned by the ring
//! until its completion is reaped, and dropping the ring (also when unwinding) first
//! waits for every I/O still in it.

#![allow(unsafe_code)]

use crate::bio::Op;
use crate::file::FileDevice;
use crate::issue::{execute, finish, pick, register, sleep, write_behind, InFlight, Outcome};
use crate::queue::Shared;
use crate::sched::{Next, Run};
use crate::sys::IOV_MAX;
use io_uring::{opcode, types, IoUring};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// How long the thread backs off after an unexpected error from the ring's wait.
const ERROR_BACKOFF: Duration = Duration::from_millis(1);

/// The `user_data` of the wake poll's completion (I/Os use their slot number).
const WAKE_TOKEN: u64 = u64::MAX;

/// The eventfd a push writes to end the engine's wait in the ring.
#[derive(Debug)]
pub(crate) struct Wake {
    fd: File,
}

impl Wake {
    pub(crate) fn new() -> std::io::Result<Wake> {
        // SAFETY: eventfd takes no pointers; it returns a new descriptor or -1.
        let raw = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if raw < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `raw` is a descriptor eventfd just opened, owned by nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        Ok(Wake { fd: File::from(fd) })
    }

    /// Ends the engine's wait in the ring (or its next one).
    pub(crate) fn signal(&self) {
        // EAGAIN: the counter is full, so a wake is pending anyway. Nothing else can fail
        // on an eventfd written with 8 bytes.
        let _ = (&self.fd).write(&1u64.to_ne_bytes());
    }

    /// The signals since the last read, and resets the count (for tests).
    #[cfg(test)]
    pub(crate) fn take_count(&self) -> u64 {
        let mut count = [0u8; 8];
        match (&self.fd).read(&mut count) {
            Ok(8) => u64::from_ne_bytes(count),
            _ => 0,
        }
    }

    /// Resets the counter after the poll fired (EAGAIN: it was already zero).
    fn drain(&self) {
        let mut count = [0u8; 8];
        let _ = (&self.fd).read(&mut count);
    }
}

/// An I/O in the ring and everything the kernel uses until its last part's completion
/// is reaped.
struct Pending {
    me: InFlight,
    run: Run,
    /// The iovecs of each part (one submission entry each), in device order.
    parts: Vec<Vec<libc::iovec>>,
    /// Bytes of each part.
    part_lens: Vec<u64>,
    /// Parts whose completion is not reaped yet.
    left: usize,
    /// Every part reaped so far moved all its bytes.
    whole: bool,
    /// When it was handed to the ring, and the I/Os the device's recorder counted in
    /// flight then (`Device::io_recorder`), for a timing wrapper to see it.
    timer: Option<(Instant, u64)>,
}

/// The ring and the I/Os in it, one slot per I/O; a part's `user_data` is its slot in
/// the high half and its index in the low half.
struct Ring {
    ring: IoUring,
    slots: Vec<Option<Pending>>,
    running: usize,
    /// A poll of the wake eventfd is in the ring (queued or submitted).
    wake_armed: bool,
    /// Largest part the device takes without splitting it (see
    /// [`FileDevice::max_unsplit_bytes`]); `None`: a run goes as one entry.
    part_limit: Option<usize>,
}

/// Submission entries per I/O in flight the ring is sized for: a run of up to 4 MiB in
/// 512 KiB parts needs 8; more only wait for room in the submission queue.
const ENTRIES_PER_IO: usize = 8;

/// Sets up a ring for `depth` I/Os in flight (the caller reports an error to the user).
pub(crate) fn new_ring(depth: usize) -> std::io::Result<IoUring> {
    let want = depth.saturating_mul(ENTRIES_PER_IO).clamp(1, 4096);
    let entries = u32::try_from(want.next_power_of_two()).unwrap_or(4096);
    IoUring::new(entries)
}

/// `user_data` of part `part` of the I/O in `slot`.
fn token(slot: usize, part: usize) -> u64 {
    ((slot as u64) << 32) | part as u64
}

/// The slot and part a `user_data` names.
fn untoken(user_data: u64) -> (usize, usize) {
    (
        (user_data >> 32) as usize,
        (user_data & 0xffff_ffff) as usize,
    )
}

/// `iovecs` cut into parts of at most `limit` bytes each (a cut may fall inside a
/// buffer), or one part when there is no limit. A cut is a multiple of `limit` bytes
/// from the start, so with aligned buffers and a block-multiple limit every part is
/// aligned for `O_DIRECT`.
fn split_parts(iovecs: Vec<libc::iovec>, limit: Option<usize>) -> Vec<Vec<libc::iovec>> {
    let Some(limit) = limit.filter(|&l| l > 0) else {
        return vec![iovecs];
    };
    let total: usize = iovecs.iter().map(|v| v.iov_len).sum();
    if total <= limit {
        return vec![iovecs];
    }
    let mut parts = Vec::with_capacity(total.div_ceil(limit));
    let mut part: Vec<libc::iovec> = Vec::new();
    let mut room = limit;
    for v in iovecs {
        let (mut base, mut len) = (v.iov_base.cast::<u8>(), v.iov_len);
        while len > 0 {
            let take = len.min(room);
            part.push(libc::iovec {
                iov_base: base.cast(),
                iov_len: take,
            });
            // Stays inside the buffer `v` describes: `take <= len`.
            base = base.wrapping_add(take);
            len -= take;
            room -= take;
            if room == 0 {
                parts.push(std::mem::take(&mut part));
                room = limit;
            }
        }
    }
    if !part.is_empty() {
        parts.push(part);
    }
    parts
}

/// The engine's thread: picks, submits, reaps; returns at shutdown once nothing is
/// queued or in flight.
pub(crate) fn submitter(shared: &Shared, file: &FileDevice, ring: IoUring, wake: &Wake) {
    let depth = shared.config.submitters;
    let mut ring = Ring {
        ring,
        slots: (0..depth).map(|_| None).collect(),
        running: 0,
        wake_armed: false,
        part_limit: file.max_unsplit_bytes(),
    };
    // Picked, but overlapping an earlier I/O still in the ring.
    let mut blocked: Option<(InFlight, Run)> = None;
    loop {
        ring.arm_wake(wake);
        let mut state = shared.lock();
        state.ring_waiting = false;
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
        // From here until the next look at the queue, a push signals `wake`.
        state.ring_waiting = true;
        drop(state);
        for (me, run) in ready {
            ring.start(shared, file, me, run);
        }
        ring.wait(deadline);
        ring.reap(shared, wake);
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
        let parts = split_parts(iovecs, self.part_limit);
        let part_lens: Vec<u64> = parts
            .iter()
            .map(|p| p.iter().map(|v| v.iov_len as u64).sum())
            .collect();
        let pending = self.slots[slot].insert(Pending {
            me,
            run,
            left: parts.len(),
            parts,
            part_lens,
            whole: true,
            timer: shared
                .device
                .io_recorder()
                .map(|r| (Instant::now(), r.begin())),
        });
        let fd = types::Fd(file.file().as_raw_fd());
        let (op, mut offset) = (pending.run.op, pending.run.offset);
        let entries: Vec<_> = pending
            .parts
            .iter()
            .zip(&pending.part_lens)
            .enumerate()
            .map(|(i, (part, &len))| {
                let (ptr, count) = (
                    part.as_ptr(),
                    u32::try_from(part.len()).expect("at most IOV_MAX iovecs"),
                );
                let entry = match op {
                    Op::Write => opcode::Writev::new(fd, ptr, count).offset(offset).build(),
                    _ => opcode::Readv::new(fd, ptr, count).offset(offset).build(),
                };
                offset += len;
                entry.user_data(token(slot, i))
            })
            .collect();
        for entry in &entries {
            loop {
                // SAFETY: each part's iovec array and every buffer it points to belong
                // to the `Pending` in `self.slots[slot]`, which is neither moved out nor
                // dropped until the completions of all its parts are reaped (`reap`, or
                // `Drop`, which waits for them); the parts cover disjoint bytes; a
                // write's buffers are only read by the kernel, a read's are borrowed by
                // nothing else meanwhile. The fd is the device's, open as long as `file`.
                let pushed = unsafe { self.ring.submission().push(entry) };
                if pushed.is_ok() {
                    break;
                }
                // The submission queue is full of entries not handed over yet.
                self.submit(0);
            }
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

    /// Queues a poll of the wake eventfd unless one is in the ring already; it goes to
    /// the kernel with the next submission.
    fn arm_wake(&mut self, wake: &Wake) {
        if self.wake_armed {
            return;
        }
        let entry = opcode::PollAdd::new(types::Fd(wake.fd.as_raw_fd()), libc::POLLIN as u32)
            .build()
            .user_data(WAKE_TOKEN);
        loop {
            // SAFETY: a poll entry points at no memory of ours; the eventfd it names is
            // open as long as the queue, which outlives this thread and its ring.
            if unsafe { self.ring.submission().push(&entry) }.is_ok() {
                break;
            }
            self.submit(0);
        }
        self.wake_armed = true;
    }

    /// Submits what is queued and waits for one completion (an I/O's or the wake poll's),
    /// at most until `deadline`, the scheduler's plug deadline. With I/Os in the ring a
    /// completion always comes, so no other time-out is needed.
    fn wait(&mut self, deadline: Option<Instant>) {
        if self.running == 0 {
            return;
        }
        let waited = match deadline {
            Some(at) => {
                let timespec = types::Timespec::from(at.saturating_duration_since(Instant::now()));
                let args = types::SubmitArgs::new().timespec(&timespec);
                self.ring.submitter().submit_with_args(1, &args)
            }
            None => self.ring.submit_and_wait(1),
        };
        match waited {
            Ok(_) => {}
            // ETIME: the plug deadline passed; look at the queue again.
            Err(e) if e.raw_os_error() == Some(libc::ETIME) || retry(&e) => {}
            Err(_) => std::thread::sleep(ERROR_BACKOFF),
        }
    }

    /// Finishes every I/O whose completion the kernel posted; a fired wake poll is reset
    /// (and armed again at the top of the engine's loop).
    fn reap(&mut self, shared: &Shared, wake: &Wake) {
        let done: Vec<(u64, i32)> = self
            .ring
            .completion()
            .map(|c| (c.user_data(), c.result()))
            .collect();
        for (user_data, result) in done {
            if user_data == WAKE_TOKEN {
                wake.drain();
                self.wake_armed = false;
                continue;
            }
            let (slot, part) = untoken(user_data);
            let entry = self
                .slots
                .get_mut(slot)
                .expect("a completion for an I/O in the ring");
            let pending = entry.as_mut().expect("a completion for an I/O in the ring");
            let part_len = pending.part_lens[part];
            pending.whole &= u64::try_from(result).is_ok_and(|n| n == part_len);
            pending.left -= 1;
            if pending.left > 0 {
                continue;
            }
            let pending = entry.take().expect("checked above");
            self.running -= 1;
            let Pending {
                me,
                run,
                parts,
                whole,
                timer,
                ..
            } = pending;
            drop(parts);
            let len = run.len_bytes;
            if let (Some((start, with)), Some(recorder)) = (timer, shared.device.io_recorder()) {
                let kind = if run.op == Op::Write {
                    crate::IoKind::Write
                } else {
                    crate::IoKind::Read
                };
                recorder.end(kind, run.offset, len, start, with);
            }
            let (outcome, bios, results) = if whole {
                write_behind(shared, &run);
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
            for user_data in done {
                if user_data == WAKE_TOKEN {
                    continue;
                }
                let (slot, _) = untoken(user_data);
                let Some(entry) = self.slots.get_mut(slot) else {
                    continue;
                };
                let last = entry.as_mut().is_some_and(|p| {
                    p.left -= 1;
                    p.left == 0
                });
                if last {
                    entry.take();
                    self.running -= 1;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A ring for tests, or `None` (with the reason printed) where io_uring is refused.
    fn test_ring() -> Option<Ring> {
        match new_ring(1) {
            Ok(ring) => Some(Ring {
                ring,
                slots: vec![None],
                running: 0,
                wake_armed: false,
                part_limit: None,
            }),
            Err(e) => {
                eprintln!("skipped: io_uring is not available here: {e}");
                None
            }
        }
    }

    fn iov(base: usize, len: usize) -> libc::iovec {
        libc::iovec {
            iov_base: base as *mut libc::c_void,
            iov_len: len,
        }
    }

    fn spans(parts: &[Vec<libc::iovec>]) -> Vec<Vec<(usize, usize)>> {
        parts
            .iter()
            .map(|p| p.iter().map(|v| (v.iov_base as usize, v.iov_len)).collect())
            .collect()
    }

    #[test]
    fn a_run_is_cut_into_parts_of_at_most_the_limit_inside_and_across_buffers() {
        const K: usize = 1024;
        // Two 12 KiB buffers, cut every 8 KiB: the second cut falls across the buffers.
        let parts = split_parts(
            vec![iov(0x10000, 12 * K), iov(0x40000, 12 * K)],
            Some(8 * K),
        );
        assert_eq!(
            spans(&parts),
            vec![
                vec![(0x10000, 8 * K)],
                vec![(0x10000 + 8 * K, 4 * K), (0x40000, 4 * K)],
                vec![(0x40000 + 4 * K, 8 * K)],
            ]
        );
        // Within the limit, or without one: one part, untouched.
        let one = vec![iov(0x10000, 8 * K), iov(0x40000, 8 * K)];
        assert_eq!(split_parts(one.clone(), Some(16 * K)).len(), 1);
        assert_eq!(split_parts(one, None).len(), 1);
        // A 1 MiB bio on a loop device (512 KiB unsplit): two parts, no bytes lost.
        let parts = split_parts(vec![iov(0x200000, 1 << 20)], Some(512 * K));
        assert_eq!(
            spans(&parts),
            vec![
                vec![(0x200000, 512 * K)],
                vec![(0x200000 + 512 * K, 512 * K)]
            ]
        );
    }

    #[test]
    fn tokens_name_slot_and_part() {
        assert_eq!(untoken(token(15, 7)), (15, 7));
        assert_ne!(token(u32::MAX as usize - 1, 0), WAKE_TOKEN);
    }

    /// A run cut into parts (a device that splits above 8 KiB) lands byte-exact, is read
    /// back byte-exact, and completes every bio once.
    #[test]
    fn runs_cut_into_parts_write_and_read_back_exactly() {
        use crate::{Bio, Device, FileDevice, InlineEndIo, OpenOptions, QueueConfig, SubmitQueue};
        use std::sync::{Arc, Mutex};
        let dir = tempfile::tempdir().unwrap();
        let opts = OpenOptions {
            create_size_bytes: Some(1 << 20),
            ..OpenOptions::default()
        };
        let mut dev = FileDevice::open(&dir.path().join("dev.img"), &opts).unwrap();
        dev.set_max_unsplit_bytes(Some(8 << 10));
        let dev = Arc::new(dev);
        let config = QueueConfig {
            io_uring: true,
            submitters: 4,
            max_io_bytes: 64 << 10,
            ..QueueConfig::default()
        };
        let q = match SubmitQueue::new(dev.clone(), Arc::new(InlineEndIo), config) {
            Ok(q) => q,
            Err(e) => return eprintln!("skipped: io_uring is not available here: {e}"),
        };
        let want: Vec<u8> = (0..256u32 << 10).map(|i| (i * 7 % 251) as u8).collect();
        // 12 KiB bios: merged runs of up to 64 KiB, cut every 8 KiB across bios.
        for (i, chunk) in want.chunks(12 << 10).enumerate() {
            let offset = (i * (12 << 10)) as u64;
            q.submit(Bio::write(offset, chunk.to_vec(), |r| r.result.unwrap()));
        }
        q.flush().unwrap();
        let mut image = vec![0u8; want.len()];
        dev.read_at(&mut image, 0).unwrap();
        assert!(image == want, "the written image differs");
        let got = Arc::new(Mutex::new(vec![0u8; want.len()]));
        for i in 0..want.len() / (20 << 10) {
            let (got, at) = (Arc::clone(&got), i * (20 << 10));
            q.submit(Bio::read(at as u64, vec![0u8; 20 << 10], move |mut r| {
                r.result.unwrap();
                let buf = r.buf.take().unwrap();
                got.lock().unwrap()[at..at + buf.len()].copy_from_slice(&buf);
            }));
        }
        q.flush().unwrap();
        let got = got.lock().unwrap();
        let n = want.len() / (20 << 10) * (20 << 10);
        assert!(got[..n] == want[..n], "what was read back differs");
        let stats = q.stats();
        assert_eq!(stats.split_retries, 0, "no part came back short: {stats:?}");
    }

    /// The engine waits in the ring only with I/Os in it; pretend one is there so
    /// `wait` really waits, up to a deadline far beyond the signal (a hang guard, not a
    /// timing: the assertion is on which completion ended the wait).
    /// Regression: a `TimedDevice` was no `FileDevice`, so a queue over it refused
    /// io_uring, and the product's O_DIRECT queues fell back to threads once every
    /// volume's device was timed. The wrapper now hands over its file, and the engine
    /// times each I/O into the wrapper's recorder.
    #[test]
    fn io_uring_over_a_timed_device_uses_the_file_and_times_every_io() {
        use crate::{Bio, Device, FileDevice, InlineEndIo, OpenOptions, QueueConfig};
        use crate::{Engine, SubmitQueue, TimedDevice};
        use std::sync::Arc;
        let dir = tempfile::tempdir().unwrap();
        let opts = OpenOptions::new().create_size_bytes(4 << 20);
        let file: Arc<dyn Device> =
            Arc::new(FileDevice::open(&dir.path().join("dev.img"), &opts).unwrap());
        let config = QueueConfig::default()
            .with_io_uring(true)
            .with_submitters(4);
        if let Err(e) = SubmitQueue::new(file.clone(), InlineEndIo, config.clone()) {
            return eprintln!("skipped: io_uring is not available here: {e}");
        }
        let timed = Arc::new(TimedDevice::new(file, 16));
        let q = SubmitQueue::new(timed.clone(), InlineEndIo, config)
            .expect("a timed file device takes io_uring where its file does");
        assert!(matches!(q.info().engine, Engine::IoUring), "{:?}", q.info());
        for i in 0..16u64 {
            q.submit(Bio::write(i << 18, vec![i as u8; 256 << 10], |r| {
                r.result.unwrap()
            }));
        }
        q.flush_and_wait().unwrap();
        for i in 0..16u64 {
            q.submit(Bio::read(i << 18, vec![0u8; 256 << 10], |r| {
                r.result.unwrap()
            }));
        }
        q.flush_and_wait().unwrap();
        let snap = timed.recorder().snapshot();
        let bytes = |rs: &[crate::RegionTiming]| rs.iter().map(|r| r.bytes).sum::<u64>();
        assert_eq!(bytes(&snap.write), 4 << 20, "every byte written is timed");
        assert_eq!(bytes(&snap.read), 4 << 20, "every byte read is timed");
        assert!(
            snap.read.iter().all(|r| r.ios > 0),
            "every region saw its reads"
        );
    }

    fn wait_as_if_busy(ring: &mut Ring) -> Vec<u64> {
        ring.running = 1;
        ring.wait(Some(Instant::now() + Duration::from_secs(30)));
        ring.running = 0;
        ring.ring.completion().map(|c| c.user_data()).collect()
    }

    #[test]
    fn a_signal_ends_the_wait_in_the_ring() {
        let Some(mut ring) = test_ring() else { return };
        let wake = Wake::new().expect("eventfd");
        ring.arm_wake(&wake);
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(20));
                wake.signal();
            });
            assert_eq!(wait_as_if_busy(&mut ring), vec![WAKE_TOKEN]);
        });
    }

    #[test]
    fn a_signal_before_the_wait_is_not_lost_and_a_drained_one_does_not_fire_again() {
        let Some(mut ring) = test_ring() else { return };
        let wake = Wake::new().expect("eventfd");
        // Signalled twice between a look at the queue and the wait: one wake.
        wake.signal();
        wake.signal();
        ring.arm_wake(&wake);
        assert_eq!(wait_as_if_busy(&mut ring), vec![WAKE_TOKEN]);
        wake.drain();
        ring.wake_armed = false;
        ring.arm_wake(&wake);
        ring.submit(0);
        assert!(
            ring.ring.completion().is_empty(),
            "a drained eventfd must not end the next wait"
        );
        wake.signal();
        assert_eq!(wait_as_if_busy(&mut ring), vec![WAKE_TOKEN]);
    }
}
