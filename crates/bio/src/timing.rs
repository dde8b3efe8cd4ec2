//! `TimedDevice`: times every I/O at the device and records it per region of the
//! capacity (bytes, busy time, a latency histogram), for a map of the drive's surface.
//!
//! The wrapper sits at the [`Device`] layer, so it sees every I/O whoever issues it (the
//! submission queue's submitters, verify's reader threads, metadata reads and writes).
//! Recording is lock-free on the hot path: a few relaxed atomic adds into fixed
//! per-region cells (no allocation per I/O); only an I/O slower than
//! [`IoRecorder::SLOW_IO_FLOOR_NS`] takes a mutex, to enter the list of slowest I/Os.
//!
//! Busy time: I/Os overlap (several submitters, several reads in flight), so summing
//! their latencies would count the same wall time several times. Each I/O is charged its
//! latency divided by the mean number of I/Os in flight at its start and end, so the
//! charges of overlapping I/Os add up to about the wall time the device was busy, and a
//! region's throughput is its bytes over its charged time.

use crate::{Device, DeviceInfo, Error, Residency};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Latencies below 2^`MIN_SHIFT` ns (1 µs) share the first bucket.
const MIN_SHIFT: u32 = 10;
/// Sub-buckets per power of two: 2 bits of mantissa, ±12% at worst.
const SUB_BITS: u32 = 2;
/// Powers of two above the first bucket: up to 2^42 ns (73 minutes).
const OCTAVES: u32 = 32;
/// Buckets of one region's latency histogram.
pub const LATENCY_BUCKETS: usize = 1 + (OCTAVES << SUB_BITS) as usize;
/// The smallest region a recorder makes, so each region sees several I/Os.
pub const MIN_REGION_BYTES: u64 = 64 << 10;
/// Regions of a map when nobody says otherwise.
pub const DEFAULT_REGIONS: u32 = 256;
/// Most slow I/Os kept (the slowest; the rest are counted).
pub const MAX_SLOW_IOS: usize = 64;

/// The histogram bucket of a latency.
fn bucket(ns: u64) -> usize {
    if ns < 1 << MIN_SHIFT {
        return 0;
    }
    let exp = 63 - ns.leading_zeros();
    let sub = (ns >> (exp - SUB_BITS)) & ((1 << SUB_BITS) - 1);
    let octave = (exp - MIN_SHIFT).min(OCTAVES - 1);
    let sub = if exp - MIN_SHIFT >= OCTAVES {
        (1 << SUB_BITS) - 1
    } else {
        sub
    };
    1 + ((octave << SUB_BITS) + sub as u32) as usize
}

/// The largest latency bucket `index` holds (its upper bound, inclusive).
fn bucket_upper_ns(index: usize) -> u64 {
    if index == 0 {
        return (1 << MIN_SHIFT) - 1;
    }
    let i = (index - 1) as u32;
    let exp = MIN_SHIFT + (i >> SUB_BITS);
    let sub = u64::from(i & ((1 << SUB_BITS) - 1));
    let step = 1u64 << (exp - SUB_BITS);
    (1u64 << exp) + (sub + 1) * step - 1
}

/// What kind of I/O.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IoKind {
    /// A read (`read_at`, `readv_at`).
    Read,
    /// A write (`write_at`, `writev_at`).
    Write,
}

impl IoKind {
    /// `"read"` or `"write"`.
    pub fn name(self) -> &'static str {
        match self {
            IoKind::Read => "read",
            IoKind::Write => "write",
        }
    }
}

/// One region's counters for one kind of I/O.
#[derive(Debug)]
struct Cells {
    bytes: AtomicU64,
    busy_ns: AtomicU64,
    ios: AtomicU64,
    max_ns: AtomicU64,
    hist: [AtomicU32; LATENCY_BUCKETS],
}

impl Cells {
    fn new() -> Self {
        Self {
            bytes: AtomicU64::new(0),
            busy_ns: AtomicU64::new(0),
            ios: AtomicU64::new(0),
            max_ns: AtomicU64::new(0),
            hist: std::array::from_fn(|_| AtomicU32::new(0)),
        }
    }

    fn reset(&self) {
        self.bytes.store(0, Relaxed);
        self.busy_ns.store(0, Relaxed);
        self.ios.store(0, Relaxed);
        self.max_ns.store(0, Relaxed);
        for h in &self.hist {
            h.store(0, Relaxed);
        }
    }

    fn snapshot(&self) -> RegionTiming {
        let counts: Vec<u64> = self
            .hist
            .iter()
            .map(|h| u64::from(h.load(Relaxed)))
            .collect();
        let max_ns = self.max_ns.load(Relaxed);
        let total: u64 = counts.iter().sum();
        // The smallest bucket bound with at least `q` of the samples at or below it,
        // capped by the true maximum (the last bucket's bound can be far above it).
        let quantile = |q: f64| -> u64 {
            if total == 0 {
                return 0;
            }
            let want = ((total as f64 * q).ceil() as u64).max(1);
            let mut seen = 0;
            for (i, &c) in counts.iter().enumerate() {
                seen += c;
                if seen >= want {
                    return bucket_upper_ns(i).min(max_ns);
                }
            }
            max_ns
        };
        RegionTiming {
            bytes: self.bytes.load(Relaxed),
            busy_ns: self.busy_ns.load(Relaxed),
            ios: self.ios.load(Relaxed),
            p50_ns: quantile(0.50),
            p99_ns: quantile(0.99),
            max_ns,
        }
    }
}

/// One region's figures for one kind of I/O, as [`IoRecorder::snapshot`] found them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RegionTiming {
    /// Bytes transferred inside the region.
    pub bytes: u64,
    /// Device time charged to the region (overlapping I/Os share their time).
    pub busy_ns: u64,
    /// I/Os that touched the region.
    pub ios: u64,
    /// Median latency of those I/Os (histogram bucket bound, within 12%).
    pub p50_ns: u64,
    /// 99th percentile latency.
    pub p99_ns: u64,
    /// The slowest.
    pub max_ns: u64,
}

impl RegionTiming {
    /// Throughput in bytes per second over the charged time (`None` before any I/O).
    pub fn bytes_per_sec(&self) -> Option<f64> {
        (self.busy_ns > 0).then(|| self.bytes as f64 * 1e9 / self.busy_ns as f64)
    }
}

/// One I/O slower than [`IoRecorder::SLOW_IO_FLOOR_NS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlowIo {
    /// Read or write.
    pub kind: IoKind,
    /// Byte offset on the device.
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
    /// How long it took.
    pub latency_ns: u64,
    /// When it started, in ns after the recorder was made (or last reset).
    pub started_ns: u64,
}

/// Everything a recorder holds at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IoSnapshot {
    /// The device size the regions cover.
    pub size_bytes: u64,
    /// Bytes per region (the last region may be shorter).
    pub region_bytes: u64,
    /// Per region, reads.
    pub read: Vec<RegionTiming>,
    /// Per region, writes.
    pub write: Vec<RegionTiming>,
    /// The slowest I/Os (at most [`MAX_SLOW_IOS`]), slowest first.
    pub slow_ios: Vec<SlowIo>,
    /// Every I/O over the floor, including those not kept.
    pub slow_ios_total: u64,
    /// Flushes.
    pub flushes: u64,
    /// The slowest flush.
    pub flush_max_ns: u64,
}

#[derive(Debug, Default)]
struct SlowList {
    kept: Vec<SlowIo>,
    total: u64,
}

/// Per-region timing of every I/O a [`TimedDevice`] passes on (see the module docs).
#[derive(Debug)]
pub struct IoRecorder {
    size_bytes: u64,
    region_bytes: u64,
    read: Box<[Cells]>,
    write: Box<[Cells]>,
    in_flight: AtomicU64,
    slow: Mutex<SlowList>,
    flushes: AtomicU64,
    flush_max_ns: AtomicU64,
    epoch: Mutex<Instant>,
}

impl IoRecorder {
    /// An I/O at least this slow (50 ms) enters the slow-I/O list.
    pub const SLOW_IO_FLOOR_NS: u64 = 50_000_000;

    /// A recorder for a device of `size_bytes` split into about `regions` equal regions
    /// (at least one, each at least [`MIN_REGION_BYTES`] and a whole number of 4 KiB).
    pub fn new(size_bytes: u64, regions: u32) -> Self {
        let want = u64::from(regions.max(1));
        let region_bytes = size_bytes
            .div_ceil(want)
            .max(MIN_REGION_BYTES)
            .next_multiple_of(4096);
        let count = size_bytes.div_ceil(region_bytes).max(1) as usize;
        assert!(count as u64 <= want.max(1));
        Self {
            size_bytes,
            region_bytes,
            read: (0..count).map(|_| Cells::new()).collect(),
            write: (0..count).map(|_| Cells::new()).collect(),
            in_flight: AtomicU64::new(0),
            slow: Mutex::new(SlowList::default()),
            flushes: AtomicU64::new(0),
            flush_max_ns: AtomicU64::new(0),
            epoch: Mutex::new(Instant::now()),
        }
    }

    /// Bytes per region.
    pub fn region_bytes(&self) -> u64 {
        self.region_bytes
    }

    /// Number of regions.
    pub fn regions(&self) -> usize {
        self.read.len()
    }

    /// Forgets everything recorded so far (counters of I/Os in flight keep running).
    pub fn reset(&self) {
        for c in self.read.iter().chain(self.write.iter()) {
            c.reset();
        }
        *self.slow.lock().unwrap_or_else(|e| e.into_inner()) = SlowList::default();
        self.flushes.store(0, Relaxed);
        self.flush_max_ns.store(0, Relaxed);
        *self.epoch.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    /// Marks an I/O as started; returns the number in flight with it.
    pub(crate) fn begin(&self) -> u64 {
        self.in_flight.fetch_add(1, Relaxed) + 1
    }

    /// Records an I/O of `kind` over `offset..offset + len` that took `latency_ns`,
    /// with `started_with` I/Os in flight when it began (from [`IoRecorder::begin`]).
    pub(crate) fn end(
        &self,
        kind: IoKind,
        offset: u64,
        len: u64,
        start: Instant,
        started_with: u64,
    ) {
        let latency_ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let ended_with = self.in_flight.fetch_sub(1, Relaxed).max(1);
        let charged_ns = latency_ns.saturating_mul(2) / (started_with + ended_with).max(1);
        self.record(kind, offset, len, latency_ns, charged_ns);
        if latency_ns >= Self::SLOW_IO_FLOOR_NS {
            let started_ns = {
                let epoch = *self.epoch.lock().unwrap_or_else(|e| e.into_inner());
                u64::try_from(start.saturating_duration_since(epoch).as_nanos()).unwrap_or(0)
            };
            self.note_slow(SlowIo {
                kind,
                offset,
                len,
                latency_ns,
                started_ns,
            });
        }
    }

    /// Adds one I/O to the regions it touches: bytes and charged time split in
    /// proportion to the bytes in each, the latency counted in each.
    pub fn record(&self, kind: IoKind, offset: u64, len: u64, latency_ns: u64, charged_ns: u64) {
        let cells = match kind {
            IoKind::Read => &self.read,
            IoKind::Write => &self.write,
        };
        let last = cells.len() - 1;
        let first_region = ((offset / self.region_bytes) as usize).min(last);
        let end = offset.saturating_add(len.max(1));
        let last_region = (((end - 1) / self.region_bytes) as usize).min(last);
        let b = bucket(latency_ns);
        for (i, c) in cells
            .iter()
            .enumerate()
            .take(last_region + 1)
            .skip(first_region)
        {
            let lo = (i as u64 * self.region_bytes).max(offset);
            let hi = ((i as u64 + 1) * self.region_bytes).min(end);
            let part = hi.saturating_sub(lo).min(len);
            let share = if len == 0 {
                charged_ns
            } else {
                (u128::from(charged_ns) * u128::from(part) / u128::from(len)) as u64
            };
            c.bytes.fetch_add(part, Relaxed);
            c.busy_ns.fetch_add(share, Relaxed);
            c.ios.fetch_add(1, Relaxed);
            c.max_ns.fetch_max(latency_ns, Relaxed);
            c.hist[b].fetch_add(1, Relaxed);
        }
    }

    fn note_slow(&self, io: SlowIo) {
        let mut slow = self.slow.lock().unwrap_or_else(|e| e.into_inner());
        slow.total += 1;
        if slow.kept.len() < MAX_SLOW_IOS {
            slow.kept.push(io);
        } else if let Some(min) = slow
            .kept
            .iter_mut()
            .min_by_key(|s| s.latency_ns)
            .filter(|m| m.latency_ns < io.latency_ns)
        {
            *min = io;
        }
    }

    /// What was recorded so far.
    pub fn snapshot(&self) -> IoSnapshot {
        let (mut slow_ios, slow_ios_total) = {
            let slow = self.slow.lock().unwrap_or_else(|e| e.into_inner());
            (slow.kept.clone(), slow.total)
        };
        slow_ios.sort_by_key(|s| std::cmp::Reverse(s.latency_ns));
        IoSnapshot {
            size_bytes: self.size_bytes,
            region_bytes: self.region_bytes,
            read: self.read.iter().map(Cells::snapshot).collect(),
            write: self.write.iter().map(Cells::snapshot).collect(),
            slow_ios,
            slow_ios_total,
            flushes: self.flushes.load(Relaxed),
            flush_max_ns: self.flush_max_ns.load(Relaxed),
        }
    }
}

/// A device wrapper that times every read, write and flush of the device it wraps into
/// an [`IoRecorder`] (see the module docs).
///
/// It is not a [`crate::FileDevice`] ([`Device::as_file_device`] is `None`): an io_uring
/// queue would issue past it, untimed, so such a queue refuses it.
#[derive(Debug)]
pub struct TimedDevice {
    inner: Arc<dyn Device>,
    recorder: Arc<IoRecorder>,
}

impl TimedDevice {
    /// Wraps `inner`, recording into about `regions` regions of its size.
    pub fn new(inner: Arc<dyn Device>, regions: u32) -> Self {
        let recorder = Arc::new(IoRecorder::new(inner.size_bytes(), regions));
        Self { inner, recorder }
    }

    /// The recorder (shared: snapshots may be taken while I/O runs).
    pub fn recorder(&self) -> &Arc<IoRecorder> {
        &self.recorder
    }

    /// The wrapped device.
    pub fn inner(&self) -> &Arc<dyn Device> {
        &self.inner
    }

    fn timed<T>(&self, kind: IoKind, offset: u64, len: usize, io: impl FnOnce() -> T) -> T {
        let with = self.recorder.begin();
        let start = Instant::now();
        let out = io();
        self.recorder.end(kind, offset, len as u64, start, with);
        out
    }
}

impl Device for TimedDevice {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<(), Error> {
        let len = buf.len();
        self.timed(IoKind::Read, offset, len, || {
            self.inner.read_at(buf, offset)
        })
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> Result<(), Error> {
        self.timed(IoKind::Write, offset, buf.len(), || {
            self.inner.write_at(buf, offset)
        })
    }

    fn readv_at(&self, bufs: &mut [&mut [u8]], offset: u64) -> Result<(), Error> {
        let len = bufs.iter().map(|b| b.len()).sum();
        self.timed(IoKind::Read, offset, len, || {
            self.inner.readv_at(bufs, offset)
        })
    }

    fn writev_at(&self, bufs: &[&[u8]], offset: u64) -> Result<(), Error> {
        let len = bufs.iter().map(|b| b.len()).sum();
        self.timed(IoKind::Write, offset, len, || {
            self.inner.writev_at(bufs, offset)
        })
    }

    fn flush(&self) -> Result<(), Error> {
        let start = Instant::now();
        let out = self.inner.flush();
        let ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.recorder.flushes.fetch_add(1, Relaxed);
        self.recorder.flush_max_ns.fetch_max(ns, Relaxed);
        out
    }

    fn start_writeback(&self, offset: u64, len: u64) -> Result<(), Error> {
        self.inner.start_writeback(offset, len)
    }

    fn evict(&self, offset: u64, len: u64) -> Result<Residency, Error> {
        self.inner.evict(offset, len)
    }

    fn size_bytes(&self) -> u64 {
        self.inner.size_bytes()
    }

    fn logical_block_size(&self) -> u32 {
        self.inner.logical_block_size()
    }

    fn as_file_device(&self) -> Option<&crate::FileDevice> {
        // io_uring issues to the inner file and times each I/O into `io_recorder`.
        self.inner.as_file_device()
    }

    fn io_recorder(&self) -> Option<&IoRecorder> {
        Some(&self.recorder)
    }

    fn info(&self) -> DeviceInfo {
        self.inner.info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemDevice;

    #[test]
    fn buckets_are_ordered_and_bound_their_values() {
        let mut last = 0;
        for ns in (0..40).map(|s| 1u64 << s) {
            assert!(bucket(ns) >= last, "buckets grow with the latency");
            last = bucket(ns);
        }
        for ns in (0..40)
            .map(|s| 1u64 << s)
            .chain([3, 999, 1500, 12_345_678, u64::MAX])
        {
            let b = bucket(ns);
            assert!(b < LATENCY_BUCKETS);
            if ns < 1 << 42 {
                assert!(bucket_upper_ns(b) >= ns, "{ns} in {b}");
                assert!(b == 0 || bucket_upper_ns(b - 1) < ns, "{ns} in {b}");
            }
        }
        // Within 25% above the value (2 bits of mantissa).
        let ns = 5_000_000;
        assert!(bucket_upper_ns(bucket(ns)) <= ns + ns / 4);
    }

    #[test]
    fn regions_cover_the_device_and_split_a_straddling_io() {
        let rec = IoRecorder::new(10 << 20, 10);
        assert_eq!(rec.regions(), 10);
        assert_eq!(rec.region_bytes(), 1 << 20);
        // 1.5 MiB from 0.5 MiB: half a MiB in region 0, a whole MiB in region 1.
        rec.record(IoKind::Write, 512 << 10, 3 << 19, 3_000_000, 3_000_000);
        let s = rec.snapshot();
        assert_eq!(s.write[0].bytes, 512 << 10);
        assert_eq!(s.write[1].bytes, 1 << 20);
        assert_eq!(s.write[0].busy_ns, 1_000_000);
        assert_eq!(s.write[1].busy_ns, 2_000_000);
        assert_eq!((s.write[0].ios, s.write[1].ios, s.write[2].ios), (1, 1, 0));
        assert_eq!(s.write[1].max_ns, 3_000_000);
        assert!(s.write[1].p50_ns <= 3_000_000 && s.write[1].p50_ns >= 2_500_000);
        assert_eq!(s.read[1], RegionTiming::default());
        // A tiny device has one region; an I/O past its end lands in the last one.
        let tiny = IoRecorder::new(4096, 256);
        assert_eq!(tiny.regions(), 1);
        tiny.record(IoKind::Read, 1 << 40, 4096, 10, 10);
        assert_eq!(tiny.snapshot().read[0].ios, 1);
    }

    #[test]
    fn quantiles_follow_the_samples() {
        let rec = IoRecorder::new(1 << 20, 1);
        for _ in 0..98 {
            rec.record(IoKind::Read, 0, 4096, 100_000, 100_000);
        }
        rec.record(IoKind::Read, 0, 4096, 40_000_000, 0);
        rec.record(IoKind::Read, 0, 4096, 90_000_000, 0);
        let r = rec.snapshot().read[0];
        assert!(r.p50_ns >= 100_000 && r.p50_ns < 125_000, "{r:?}");
        assert!(r.p99_ns >= 40_000_000 && r.p99_ns < 50_000_000, "{r:?}");
        assert_eq!(r.max_ns, 90_000_000);
        assert_eq!(r.ios, 100);
    }

    #[test]
    fn the_device_passes_bytes_through_and_counts_them() {
        let dev = TimedDevice::new(Arc::new(MemDevice::new(1 << 20)), 4);
        dev.write_at(&[7u8; 8192], 4096).unwrap();
        dev.writev_at(&[&[1u8; 4096], &[2u8; 4096]], 256 << 10)
            .unwrap();
        let mut back = vec![0u8; 8192];
        dev.read_at(&mut back, 4096).unwrap();
        assert!(back.iter().all(|&b| b == 7));
        dev.flush().unwrap();
        let s = dev.recorder().snapshot();
        assert_eq!(s.write[0].bytes, 8192);
        assert_eq!(s.write[1].bytes, 8192);
        assert_eq!(s.write[1].ios, 1);
        assert_eq!(s.read[0].bytes, 8192);
        assert_eq!(s.flushes, 1);
        assert!(
            dev.read_at(&mut back, 1 << 20).is_err(),
            "errors pass through"
        );
        dev.recorder().reset();
        assert_eq!(dev.recorder().snapshot().write[0], RegionTiming::default());
    }

    #[test]
    fn only_the_slowest_ios_are_kept() {
        let rec = IoRecorder::new(1 << 20, 1);
        for i in 0..(MAX_SLOW_IOS as u64 + 10) {
            rec.note_slow(SlowIo {
                kind: IoKind::Write,
                offset: i,
                len: 1,
                latency_ns: 1000 + i,
                started_ns: 0,
            });
        }
        let s = rec.snapshot();
        assert_eq!(s.slow_ios_total, MAX_SLOW_IOS as u64 + 10);
        assert_eq!(s.slow_ios.len(), MAX_SLOW_IOS);
        assert_eq!(s.slow_ios[0].offset, MAX_SLOW_IOS as u64 + 9);
        assert_eq!(s.slow_ios.last().unwrap().offset, 10);
    }
}
