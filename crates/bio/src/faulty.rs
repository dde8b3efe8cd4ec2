//! `FaultyDevice`: a wrapper that injects the failures real disks and fake flash show.
//!
//! Faults are armed on a shared device (`&self`) and stay armed until
//! [`FaultyDevice::clear_faults`]. A write passes through them in this order: EIO on a
//! failing range; ENOSPC past a space limit; bit flips; dropped (acknowledged, never
//! stored); torn (only the first sectors land); misdirected (lands elsewhere); wrapped
//! past a fake capacity. What finally lands is what the crash model records.
//!
//! The crash model ([`FaultyDevice::with_crash_model`]) is cut at a write or at an I/O
//! event (writes and flushes); the program either runs on unaware of the cut, or, with
//! [`FaultyDevice::failing_after_cut`], sees every I/O from the cut on fail, as on a
//! device that lost power. [`FaultyDevice::crash_image`] is what a reboot finds.
//!
//! Latency faults (`latency.rs`): a slow region, a write-speed cliff after N bytes, and
//! stalls, each slept after the I/O with no lock held.

mod latency;

use crate::crash::{CrashModel, WriteFate};
use crate::device::{check_range, total_len};
use crate::{AlignedBuf, CrashMode, Device, DeviceInfo, Error, MemDevice, Op};
use latency::{Latency, Plan};
use std::io;
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub use latency::{InjectedStall, Slowdown};

#[derive(Debug, Default)]
struct Faults {
    read_errors: Vec<Range<u64>>,
    write_errors: Vec<Range<u64>>,
    flip_on_write: Vec<(u64, u8)>,
    flip_on_read: Vec<(u64, u8)>,
    dropped: Vec<Range<u64>>,
    torn: Vec<(Range<u64>, u32)>,
    misdirected: Vec<(Range<u64>, u64)>,
    wrap_capacity_bytes: Option<u64>,
    space_left_bytes: Option<u64>,
    /// Flushes return success but make nothing durable (see `lie_about_flushes`).
    lying_flushes: bool,
    lost_past: Option<u64>,
}

#[derive(Debug, Default)]
struct State {
    faults: Faults,
    crash: Option<CrashModel>,
    writes_issued: u64,
    flushes: u64,
    faults_hit: u64,
}

/// A device wrapper that injects faults and models crashes.
///
/// Faults are armed on a shared device (`&self`) and stay armed until
/// [`FaultyDevice::clear_faults`]. A write passes through them in this order: EIO on a
/// failing range; ENOSPC past a space limit; bit flips; dropped (acknowledged, never
/// stored); torn (only the first sectors land); misdirected (lands elsewhere); wrapped
/// past a fake capacity. What finally lands is what the crash model records.
///
/// The crash model ([`FaultyDevice::with_crash_model`]) is cut at a write or at an I/O
/// event (writes and flushes); the program either runs on unaware of the cut, or, with
/// [`FaultyDevice::failing_after_cut`], sees every I/O from the cut on fail, as on a
/// device that lost power. [`FaultyDevice::crash_image`] is what a reboot finds.
///
/// It works over an `O_DIRECT` device: the copies it makes (vectored I/O, writes the
/// faults may edit, the crash model's snapshot) are aligned to the inner device's
/// logical block size; the caller's own buffers must still be aligned for `read_at`.
#[derive(Debug)]
pub struct FaultyDevice {
    inner: Arc<dyn Device>,
    name: String,
    state: Mutex<State>,
    /// Latency faults, apart from `state`: their sleeps hold no lock.
    latency: Mutex<Latency>,
    /// I/O from the cut on fails, as on a device that lost power.
    fail_after_cut: bool,
    /// A counterfeit: the size the device claims, larger than `inner`, whose size is all
    /// it really holds ([`FaultyDevice::counterfeit`]).
    advertised_bytes: Option<u64>,
}

fn overlaps(range: &Range<u64>, offset: u64, len: usize) -> bool {
    offset < range.end && range.start < offset + len as u64
}

/// An injected failure of `op` at `offset` with `errno`, naming `device`.
fn injected(device: &str, op: Op, offset: u64, len: usize, errno: i32) -> Error {
    Error::Io {
        device: device.to_owned(),
        offset,
        len,
        op,
        source: io::Error::from_raw_os_error(errno),
    }
}

/// The error of an I/O on a device whose power failed (see `failing_after_cut`).
fn power_lost(device: &str, op: Op, offset: u64, len: usize) -> Error {
    injected(
        &format!("{device} (power lost)"),
        op,
        offset,
        len,
        libc::EIO,
    )
}

impl FaultyDevice {
    /// Wraps `inner` with no fault armed and no crash model.
    pub fn new(inner: Arc<dyn Device>) -> Self {
        let name = format!("faulty({})", inner.info().path);
        Self {
            inner,
            name,
            state: Mutex::new(State::default()),
            latency: Mutex::new(Latency::default()),
            fail_after_cut: false,
            advertised_bytes: None,
        }
    }

    /// Counterfeit flash larger than memory allows: claims `advertised_bytes` but holds
    /// only `inner` (every offset is taken modulo its size, whatever faults are armed),
    /// so a 4 GiB fake costs the memory of its real 1 GiB.
    ///
    /// # Panics
    /// If `advertised_bytes` is smaller than `inner`.
    pub fn counterfeit(inner: Arc<dyn Device>, advertised_bytes: u64) -> Self {
        assert!(advertised_bytes >= inner.size_bytes() && inner.size_bytes() > 0);
        Self {
            advertised_bytes: Some(advertised_bytes),
            ..Self::new(inner)
        }
    }

    /// Starts the crash model: the current contents of `inner` count as durable, and
    /// from now on writes are durable only once a flush completes.
    pub fn with_crash_model(self) -> Result<Self, Error> {
        let len = usize::try_from(self.inner.size_bytes())
            .expect("a crash-modelled device fits in memory");
        let mut durable = self.bounce(len);
        self.inner.read_at(&mut durable, 0)?;
        self.lock().crash = Some(CrashModel::new(durable.to_vec()));
        Ok(self)
    }

    /// From the cut on, every read, write and flush fails with `EIO`, as on a device that
    /// lost power, so the program stops where the crash came (without this it runs on
    /// unaware, and only [`FaultyDevice::crash_image`] shows the cut).
    pub fn failing_after_cut(mut self) -> Self {
        self.fail_after_cut = true;
        self
    }

    /// A zeroed buffer of `len` bytes the inner device accepts: aligned to its logical
    /// block size, as `O_DIRECT` demands of buffer addresses.
    fn bounce(&self, len: usize) -> AlignedBuf {
        let align = (self.inner.logical_block_size().max(1) as usize).next_power_of_two();
        AlignedBuf::new(len, align)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads overlapping `range` fail with `EIO`.
    pub fn fail_reads(&self, range: Range<u64>) {
        self.lock().faults.read_errors.push(range);
    }

    /// Writes overlapping `range` fail with `EIO` and store nothing.
    pub fn fail_writes(&self, range: Range<u64>) {
        self.lock().faults.write_errors.push(range);
    }

    /// A write covering byte `offset` stores it XORed with `mask`.
    pub fn flip_on_write(&self, offset: u64, mask: u8) {
        assert_ne!(mask, 0, "a zero mask flips nothing");
        self.lock().faults.flip_on_write.push((offset, mask));
    }

    /// A read covering byte `offset` returns it XORed with `mask` (the media is intact).
    pub fn flip_on_read(&self, offset: u64, mask: u8) {
        assert_ne!(mask, 0, "a zero mask flips nothing");
        self.lock().faults.flip_on_read.push((offset, mask));
    }

    /// Writes overlapping `range` are acknowledged but never stored.
    pub fn drop_writes(&self, range: Range<u64>) {
        self.lock().faults.dropped.push(range);
    }

    /// Writes overlapping `range` store only their first `keep_sectors` logical blocks.
    pub fn tear_writes(&self, range: Range<u64>, keep_sectors: u32) {
        self.lock().faults.torn.push((range, keep_sectors));
    }

    /// Writes starting in `range` land at `to + (offset - range.start)` instead (and
    /// nowhere if that is past the end of the device).
    pub fn misdirect_writes(&self, range: Range<u64>, to: u64) {
        self.lock().faults.misdirected.push((range, to));
    }

    /// Writes fail with `ENOSPC` (storing nothing) once they would store more than
    /// `bytes` from now on: a full thin-provisioned or sparse backing store.
    pub fn limit_space(&self, bytes: u64) {
        self.lock().faults.space_left_bytes = Some(bytes);
    }

    /// Counterfeit flash: the device still claims its full size, but only
    /// `capacity_bytes` really exist; every offset is taken modulo that.
    pub fn wrap_at(&self, capacity_bytes: u64) {
        assert!(capacity_bytes > 0);
        assert!(capacity_bytes <= self.inner.size_bytes());
        self.lock().faults.wrap_capacity_bytes = Some(capacity_bytes);
    }

    /// A drive that lies about flushes: each flush returns success, but under the crash
    /// model nothing written from now on becomes durable, so a power cut
    /// ([`FaultyDevice::crash_image`] with [`CrashMode::LoseUnflushed`]) drops writes the
    /// program was told were flushed. Without a crash model it changes nothing.
    pub fn lie_about_flushes(&self) {
        self.lock().faults.lying_flushes = true;
    }

    /// Fake flash that never stores past `offset`: the part of each write at or past it
    /// is acknowledged and lost (reads there give what was there before), the part
    /// before it lands.
    pub fn lose_writes_past(&self, offset: u64) {
        self.lock().faults.lost_past = Some(offset);
    }

    /// Disarms every fault (the crash model stays).
    pub fn clear_faults(&self) {
        self.lock().faults = Faults::default();
        self.latency().clear();
    }

    fn latency(&self) -> MutexGuard<'_, Latency> {
        self.latency.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads and writes overlapping `range` are slowed (a worn or remapped region).
    pub fn slow_region(&self, range: Range<u64>, slowdown: Slowdown) {
        self.latency().slow_region(range, slowdown);
    }

    /// Writes are slowed once `written_bytes` more bytes were written (from now on): a
    /// drive whose fast (SLC) cache ran out. [`FaultyDevice::cliff_offset`] says where
    /// the first slow write landed.
    pub fn cliff_after(&self, written_bytes: u64, slowdown: Slowdown) {
        self.latency().cliff_after(written_bytes, slowdown);
    }

    /// Every `every_ios`th I/O (reads and writes, counted since the device was made) is
    /// held `pause` after it completes.
    pub fn stall_every(&self, every_ios: u64, pause: Duration) {
        self.latency().stall_every(every_ios, pause);
    }

    /// The first I/O covering byte `offset` is held `pause` after it completes.
    pub fn stall_at(&self, offset: u64, pause: Duration) {
        self.latency().stall_at(offset, pause);
    }

    /// The offset of the first write the cliff slowed, once it started.
    pub fn cliff_offset(&self) -> Option<u64> {
        self.latency().cliff_offset()
    }

    /// The stalls injected so far.
    pub fn stalls_injected(&self) -> Vec<InjectedStall> {
        self.latency().stalls().to_vec()
    }

    fn plan(&self, write: bool, offset: u64, len: usize) -> Plan {
        self.latency().plan(write, offset, len)
    }

    /// Crash right before write number `write_index` (0-based): that write, every later
    /// one, and every flush issued after the cut are lost. The running program does not
    /// notice; take the image with [`FaultyDevice::crash_image`].
    ///
    /// # Panics
    /// If the crash model was not started with [`FaultyDevice::with_crash_model`].
    pub fn cut_at_write(&self, write_index: u64) {
        self.lock()
            .crash
            .as_mut()
            .expect("cut_at_write needs with_crash_model")
            .cut_at_write(write_index);
    }

    /// Crash right before I/O event number `event_index` (0-based), writes and flushes
    /// counted together in issue order ([`FaultyDevice::events_issued`]): the power can
    /// also fail at a flush, while the cache drains, which makes nothing durable.
    ///
    /// # Panics
    /// If the crash model was not started with [`FaultyDevice::with_crash_model`].
    pub fn cut_at_event(&self, event_index: u64) {
        self.lock()
            .crash
            .as_mut()
            .expect("cut_at_event needs with_crash_model")
            .cut_at_event(event_index);
    }

    /// Whether the crash (see [`FaultyDevice::cut_at_write`]) has happened.
    pub fn is_cut(&self) -> bool {
        self.lock().crash.as_ref().is_some_and(CrashModel::is_cut)
    }

    /// Writes and flushes issued so far under the crash model (0 without one), the crash
    /// points of [`FaultyDevice::cut_at_event`].
    pub fn events_issued(&self) -> u64 {
        self.lock().crash.as_ref().map_or(0, CrashModel::events)
    }

    /// What the media holds after the crash, as a fresh device to reopen.
    ///
    /// # Panics
    /// If the crash model was not started.
    pub fn crash_image(&self, mode: CrashMode) -> MemDevice {
        let state = self.lock();
        state
            .crash
            .as_ref()
            .expect("crash_image needs with_crash_model")
            .image(mode, &self.name, self.inner.logical_block_size())
    }

    /// Writes issued so far (each `write_at`/`writev_at` is one), the crash points.
    pub fn writes_issued(&self) -> u64 {
        self.lock().writes_issued
    }

    /// Flushes completed so far.
    pub fn flushes(&self) -> u64 {
        self.lock().flushes
    }

    /// I/Os a fault has touched so far.
    pub fn faults_hit(&self) -> u64 {
        self.lock().faults_hit
    }

    /// Unflushed writes the crash model holds (0 without a crash model).
    pub fn unflushed_writes(&self) -> usize {
        self.lock()
            .crash
            .as_ref()
            .map_or(0, CrashModel::unflushed_writes)
    }

    /// Splits `[offset, offset + len)` into the pieces it occupies after wrap-around.
    fn wrap(&self, faults: &Faults, offset: u64, len: usize) -> Vec<(u64, Range<usize>)> {
        let real = self.advertised_bytes.map(|_| self.inner.size_bytes());
        let Some(cap) = faults.wrap_capacity_bytes.or(real) else {
            return vec![(offset, 0..len)];
        };
        let mut pieces = Vec::new();
        let mut done = 0usize;
        while done < len {
            let at = (offset + done as u64) % cap;
            let n = ((cap - at) as usize).min(len - done);
            pieces.push((at, done..done + n));
            done += n;
        }
        pieces
    }

    fn write_locked(
        &self,
        state: &mut State,
        mut data: AlignedBuf,
        offset: u64,
    ) -> Result<(), Error> {
        let len = data.len();
        check_range(&self.name, offset, len, self.size_bytes())?;
        state.writes_issued += 1;
        let block = self.inner.logical_block_size();
        let fate = state
            .crash
            .as_mut()
            .map_or(WriteFate::Recorded, CrashModel::begin_write);
        if fate != WriteFate::Recorded && self.fail_after_cut {
            if let (WriteFate::Cut, Some(crash)) = (fate, state.crash.as_mut()) {
                crash.tear(offset, &data, block);
            }
            return Err(power_lost(&self.name, Op::Write, offset, len));
        }
        if state
            .faults
            .write_errors
            .iter()
            .any(|r| overlaps(r, offset, len))
        {
            state.faults_hit += 1;
            return Err(injected(&self.name, Op::Write, offset, len, libc::EIO));
        }
        if let Some(left) = state.faults.space_left_bytes {
            if left < len as u64 {
                state.faults_hit += 1;
                return Err(injected(&self.name, Op::Write, offset, len, libc::ENOSPC));
            }
            state.faults.space_left_bytes = Some(left - len as u64);
        }
        let f = &state.faults;
        let mut hit = false;
        for &(at, mask) in &f.flip_on_write {
            if overlaps(&(at..at + 1), offset, len) {
                data[(at - offset) as usize] ^= mask;
                hit = true;
            }
        }
        if f.dropped.iter().any(|r| overlaps(r, offset, len)) {
            state.faults_hit += 1;
            return Ok(());
        }
        if let Some((_, keep)) = f.torn.iter().find(|(r, _)| overlaps(r, offset, len)) {
            let keep_bytes =
                (*keep as usize).saturating_mul(self.inner.logical_block_size() as usize);
            data.truncate(keep_bytes.min(len));
            hit = true;
        }
        let mut target = offset;
        if let Some((r, to)) = f.misdirected.iter().find(|(r, _)| r.contains(&offset)) {
            hit = true;
            target = to + (offset - r.start);
            if check_range(&self.name, target, data.len(), self.size_bytes()).is_err() {
                state.faults_hit += 1;
                return Ok(());
            }
        }
        if let Some(past) = f.lost_past.filter(|&p| p < target + data.len() as u64) {
            data.truncate(past.saturating_sub(target) as usize);
            hit = true;
        }
        if hit {
            state.faults_hit += 1;
        }
        for (at, piece) in self.wrap(f, target, data.len()) {
            self.inner.write_at(&data[piece.clone()], at)?;
            if let Some(crash) = state.crash.as_mut() {
                match fate {
                    WriteFate::Recorded => crash.record(&self.name, at, &data[piece])?,
                    WriteFate::Cut => crash.tear(at, &data[piece], block),
                    WriteFate::Lost => {}
                }
            }
        }
        Ok(())
    }
}

impl FaultyDevice {
    fn read_faulty(&self, buf: &mut [u8], offset: u64) -> Result<(), Error> {
        let mut state = self.lock();
        let len = buf.len();
        check_range(&self.name, offset, len, self.size_bytes())?;
        if self.fail_after_cut && state.crash.as_ref().is_some_and(CrashModel::is_cut) {
            return Err(power_lost(&self.name, Op::Read, offset, len));
        }
        if state
            .faults
            .read_errors
            .iter()
            .any(|r| overlaps(r, offset, len))
        {
            state.faults_hit += 1;
            return Err(injected(&self.name, Op::Read, offset, len, libc::EIO));
        }
        for (at, piece) in self.wrap(&state.faults, offset, len) {
            self.inner.read_at(&mut buf[piece], at)?;
        }
        let mut hit = false;
        for &(at, mask) in &state.faults.flip_on_read {
            if overlaps(&(at..at + 1), offset, len) {
                buf[(at - offset) as usize] ^= mask;
                hit = true;
            }
        }
        if hit {
            state.faults_hit += 1;
        }
        Ok(())
    }
}

impl Device for FaultyDevice {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<(), Error> {
        let plan = self.plan(false, offset, buf.len());
        let start = Instant::now();
        let out = self.read_faulty(buf, offset);
        plan.wait(start.elapsed());
        out
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> Result<(), Error> {
        // Copied (the faults edit it) into an aligned buffer, for an O_DIRECT inner device.
        let mut data = self.bounce(buf.len());
        data.copy_from_slice(buf);
        let plan = self.plan(true, offset, buf.len());
        let start = Instant::now();
        let out = self.write_locked(&mut self.lock(), data, offset);
        plan.wait(start.elapsed());
        out
    }

    fn readv_at(&self, bufs: &mut [&mut [u8]], offset: u64) -> Result<(), Error> {
        let mut whole = self.bounce(total_len(bufs));
        self.read_at(&mut whole, offset)?;
        let mut at = 0;
        for buf in bufs.iter_mut() {
            buf.copy_from_slice(&whole[at..at + buf.len()]);
            at += buf.len();
        }
        Ok(())
    }

    fn writev_at(&self, bufs: &[&[u8]], offset: u64) -> Result<(), Error> {
        let mut data = self.bounce(total_len(bufs));
        let mut at = 0;
        for buf in bufs {
            data[at..at + buf.len()].copy_from_slice(buf);
            at += buf.len();
        }
        let plan = self.plan(true, offset, data.len());
        let start = Instant::now();
        let out = self.write_locked(&mut self.lock(), data, offset);
        plan.wait(start.elapsed());
        out
    }

    fn flush(&self) -> Result<(), Error> {
        let mut state = self.lock();
        let lost = state.crash.as_mut().is_some_and(CrashModel::begin_flush);
        if lost && self.fail_after_cut {
            return Err(power_lost(&self.name, Op::Flush, 0, 0));
        }
        self.inner.flush()?;
        state.flushes += 1;
        let lying = state.faults.lying_flushes;
        if let (false, false, Some(crash)) = (lost, lying, state.crash.as_mut()) {
            crash.flushed();
        }
        Ok(())
    }

    fn size_bytes(&self) -> u64 {
        self.advertised_bytes
            .unwrap_or_else(|| self.inner.size_bytes())
    }

    fn logical_block_size(&self) -> u32 {
        self.inner.logical_block_size()
    }

    fn evict(&self, offset: u64, len: u64) -> Result<crate::Residency, Error> {
        self.inner.evict(offset, len)
    }

    fn info(&self) -> DeviceInfo {
        DeviceInfo {
            path: self.name.clone(),
            size_bytes: self.size_bytes(),
            ..self.inner.info()
        }
    }
}
