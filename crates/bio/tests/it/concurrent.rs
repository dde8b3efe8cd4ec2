//! Several I/Os in flight at once: issue and stream order, overlap order, flushes as
//! barriers, exactly-once completions under errors, the bounds, and a hand-off stress.

use stack_bio::{
    Bio, BioResult, Device, DeviceInfo, EndIo, Error, FaultyDevice, InlineEndIo, MemDevice, Op,
    QueueConfig, SubmitQueue,
};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::stamped::{stamp, Stamped, BLOCK_BYTES};

/// What the device saw, in the order it saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    /// A write entered the device: offset and data.
    WriteIn(u64, Vec<u8>),
    WriteOut(u64),
    FlushIn,
    FlushOut,
}

/// A memory device that logs entries and exits, measures how many calls overlap, can
/// slow every call down and can hold writes at a gate until the test opens it.
#[derive(Debug)]
struct Probe {
    inner: MemDevice,
    log: Mutex<Vec<Event>>,
    delay: Duration,
    busy: AtomicUsize,
    busy_peak: AtomicUsize,
    gate_open: Mutex<bool>,
    gate: Condvar,
}

impl Probe {
    fn new(size: u64, delay: Duration) -> Arc<Self> {
        Arc::new(Self {
            inner: MemDevice::new(size),
            log: Mutex::new(Vec::new()),
            delay,
            busy: AtomicUsize::new(0),
            busy_peak: AtomicUsize::new(0),
            gate_open: Mutex::new(true),
            gate: Condvar::new(),
        })
    }

    fn set_gate(&self, open: bool) {
        *self.gate_open.lock().unwrap() = open;
        self.gate.notify_all();
    }

    fn log(&self) -> Vec<Event> {
        self.log.lock().unwrap().clone()
    }

    fn enter(&self, event: Event) {
        self.log.lock().unwrap().push(event);
        let now = self.busy.fetch_add(1, Ordering::SeqCst) + 1;
        self.busy_peak.fetch_max(now, Ordering::SeqCst);
    }

    fn leave(&self, event: Event) {
        self.busy.fetch_sub(1, Ordering::SeqCst);
        self.log.lock().unwrap().push(event);
    }
}

impl Device for Probe {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<(), Error> {
        self.inner.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> Result<(), Error> {
        self.writev_at(&[buf], offset)
    }
    fn writev_at(&self, bufs: &[&[u8]], offset: u64) -> Result<(), Error> {
        let data = bufs.concat();
        self.enter(Event::WriteIn(offset, data.clone()));
        let mut open = self.gate_open.lock().unwrap();
        while !*open {
            open = self.gate.wait(open).unwrap();
        }
        drop(open);
        std::thread::sleep(self.delay);
        let result = self.inner.write_at(&data, offset);
        self.leave(Event::WriteOut(offset));
        result
    }
    fn flush(&self) -> Result<(), Error> {
        self.enter(Event::FlushIn);
        std::thread::sleep(self.delay);
        self.leave(Event::FlushOut);
        Ok(())
    }
    fn size_bytes(&self) -> u64 {
        self.inner.size_bytes()
    }
    fn logical_block_size(&self) -> u32 {
        512
    }
    fn info(&self) -> DeviceInfo {
        self.inner.info()
    }
}

fn queue(dev: Arc<dyn Device>, config: QueueConfig) -> SubmitQueue {
    let end_io: Arc<dyn EndIo> = Arc::new(InlineEndIo);
    SubmitQueue::new(dev, end_io, config).unwrap()
}

fn ok(r: BioResult) {
    r.result.unwrap();
}

#[test]
fn several_in_flight_keep_issue_order_and_land_byte_exact() {
    const BIOS: u64 = 256;
    const BIO_BYTES: usize = 16 << 10;
    let dev = Probe::new(BIOS * BIO_BYTES as u64, Duration::from_micros(300));
    let q = queue(
        dev.clone(),
        QueueConfig::default()
            .with_max_io_bytes(64 << 10)
            .with_max_in_flight_bytes(1 << 20)
            .with_submitters(4),
    );
    for i in 0..BIOS {
        q.submit(Bio::write(
            i * BIO_BYTES as u64,
            vec![i as u8; BIO_BYTES],
            ok,
        ));
    }
    q.flush().unwrap();
    let stats = q.stats();
    assert_eq!(stats.bios, BIOS);
    assert_eq!(
        stats.sequential_share, 1.0,
        "one stream is issued in order: {stats:?}"
    );
    assert!(stats.mean_io_bytes >= 32.0 * 1024.0, "{stats:?}");
    let peak = dev.busy_peak.load(Ordering::SeqCst);
    assert!(
        peak >= 2,
        "several I/Os were in flight at once (peak {peak})"
    );
    assert!(peak <= 4, "never more than the submitters (peak {peak})");
    assert!(stats.in_flight_ios_peak <= 4, "{stats:?}");
    let image = dev.inner.snapshot();
    for (i, block) in image.chunks(BIO_BYTES).enumerate() {
        assert!(block.iter().all(|&b| b == i as u8), "bio {i} landed intact");
    }
}

#[test]
fn overlapping_writes_of_a_stream_reach_the_device_in_order() {
    // One writer wraps around onto its own writes still in flight (with several streams
    // the elevator sweeps on to the next stream first, so overlaps there are rarer);
    // four check the same under concurrent writers.
    for threads in [1, 4] {
        overlapping_writes_reach_the_device_in_order(threads);
    }
}

fn overlapping_writes_reach_the_device_in_order(threads: u64) {
    let w = Stamped {
        threads,
        per_thread: 300,
        slots: 6,
    };
    let dev = Probe::new(w.device_bytes(), Duration::from_micros(30));
    let q = queue(
        dev.clone(),
        QueueConfig::default()
            .with_max_in_flight_bytes(128 << 10)
            .with_max_io_bytes(16 << 10)
            .with_plug_timeout(Duration::ZERO)
            .with_submitters(4),
    );
    w.submit(&q, ok);
    q.flush().unwrap();
    // Each 4 KiB block is overwritten every `slots` bios: the device must see the
    // versions of one block in submission order (it may interleave different blocks).
    let mut last = vec![None::<u32>; (w.threads * w.slots) as usize];
    for event in dev.log() {
        let Event::WriteIn(offset, data) = event else {
            continue;
        };
        for (k, block) in data.chunks(BLOCK_BYTES).enumerate() {
            let at = (offset / BLOCK_BYTES as u64) as usize + k;
            let (_, i) = stamp(block);
            assert!(
                last[at].is_none_or(|prev| prev < i),
                "block {at}: version {i} reached the device after {:?}",
                last[at]
            );
            last[at] = Some(i);
        }
    }
    w.assert_newest(&dev.inner.snapshot());
    let stats = q.stats();
    assert!(stats.in_flight_ios_peak >= 2, "{stats:?}");
    if threads == 1 {
        assert!(
            stats.overlap_waits > 0,
            "overlaps were waited for: {stats:?}"
        );
    }
}

#[test]
fn flush_waits_for_earlier_in_flight_writes_and_holds_later_ones() {
    let dev = Probe::new(1 << 20, Duration::ZERO);
    let q = Arc::new(queue(
        dev.clone(),
        QueueConfig::default()
            .with_plug_timeout(Duration::ZERO)
            .with_submitters(4),
    ));
    dev.set_gate(false);
    // Two disjoint writes, both held inside the device.
    q.submit(Bio::write(0, vec![1u8; 4096], ok).with_stream(1));
    q.submit(Bio::write(65536, vec![2u8; 4096], ok).with_stream(2));
    let flushed = Arc::new(AtomicUsize::new(0));
    std::thread::scope(|s| {
        let (q2, f2) = (Arc::clone(&q), Arc::clone(&flushed));
        s.spawn(move || {
            q2.flush().unwrap();
            f2.store(1, Ordering::SeqCst);
        });
        // Wait until both writes are inside the device, then queue a later write.
        for _ in 0..2000 {
            if dev.busy.load(Ordering::SeqCst) == 2 {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(dev.busy.load(Ordering::SeqCst), 2, "both writes in flight");
        std::thread::sleep(Duration::from_millis(20));
        q.submit(Bio::write(8192, vec![3u8; 4096], ok).with_stream(1));
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(flushed.load(Ordering::SeqCst), 0, "the flush waits");
        assert!(
            !dev.log().contains(&Event::FlushIn),
            "the device saw no flush while earlier writes ran"
        );
        dev.set_gate(true);
    });
    q.flush().unwrap();
    assert_eq!(flushed.load(Ordering::SeqCst), 1);
    let log = dev.log();
    let at = |e: &Event| log.iter().position(|x| x == e).unwrap();
    let flush_in = at(&Event::FlushIn);
    assert!(at(&Event::WriteOut(0)) < flush_in, "{log:?}");
    assert!(at(&Event::WriteOut(65536)) < flush_in, "{log:?}");
    let later_in = log
        .iter()
        .position(|e| matches!(e, Event::WriteIn(8192, _)))
        .unwrap();
    assert!(
        later_in > at(&Event::FlushOut),
        "a write queued after the flush waits for it: {log:?}"
    );
}

#[test]
fn completions_fire_exactly_once_under_errors_with_several_in_flight() {
    let faulty = Arc::new(FaultyDevice::new(Arc::new(MemDevice::new(4 << 20))));
    // One bad 4 KiB block in each stream's region.
    for t in 0..4u64 {
        faulty.fail_writes((t << 20) + 40960..(t << 20) + 45056);
    }
    let q = Arc::new(queue(
        faulty.clone(),
        QueueConfig::default()
            .with_max_io_bytes(64 << 10)
            .with_submitters(4),
    ));
    let fired: Arc<Vec<AtomicUsize>> = Arc::new((0..4 * 64).map(|_| AtomicUsize::new(0)).collect());
    let errors = Arc::new(Mutex::new(Vec::new()));
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let (q, fired, errors) = (Arc::clone(&q), Arc::clone(&fired), Arc::clone(&errors));
            s.spawn(move || {
                for i in 0..64u64 {
                    let (fired, errors) = (Arc::clone(&fired), Arc::clone(&errors));
                    let bio = Bio::write((t << 20) + i * 4096, vec![7u8; 4096], move |r| {
                        fired[(t * 64 + i) as usize].fetch_add(1, Ordering::SeqCst);
                        if let Err(e) = r.result {
                            errors.lock().unwrap().push(e);
                        }
                    });
                    q.submit(bio.with_stream(t));
                }
            });
        }
    });
    q.flush().unwrap();
    assert!(fired.iter().all(|f| f.load(Ordering::SeqCst) == 1));
    let mut offsets: Vec<u64> = errors
        .lock()
        .unwrap()
        .iter()
        .map(|e| match e {
            Error::Io {
                offset,
                op: Op::Write,
                ..
            } => *offset,
            other => panic!("unexpected error {other}"),
        })
        .collect();
    offsets.sort_unstable();
    assert_eq!(
        offsets,
        (0..4u64).map(|t| (t << 20) + 40960).collect::<Vec<_>>()
    );
    q.shutdown();
}

#[test]
fn bounds_hold_with_several_in_flight() {
    let dev = Probe::new(8 << 20, Duration::from_micros(200));
    let bound = 256 << 10;
    let q = Arc::new(queue(
        dev.clone(),
        QueueConfig::default()
            .with_max_in_flight_bytes(bound)
            .with_max_io_bytes(64 << 10)
            .with_submitters(3),
    ));
    std::thread::scope(|s| {
        for t in 0..6u64 {
            let q = Arc::clone(&q);
            s.spawn(move || {
                for i in 0..48u64 {
                    let bio = Bio::write((t << 20) + i * 16384, vec![0u8; 16384], ok);
                    q.submit(bio.with_stream(t));
                }
            });
        }
    });
    q.flush().unwrap();
    let stats = q.stats();
    assert_eq!(stats.bios, 6 * 48);
    assert!(stats.in_flight_peak_bytes <= bound, "{stats:?}");
    assert!(stats.in_flight_ios_peak <= 3, "{stats:?}");
    assert!(dev.busy_peak.load(Ordering::SeqCst) <= 3);
    assert!(
        dev.busy_peak.load(Ordering::SeqCst) >= 2,
        "concurrency was used"
    );
}

/// Many threads, random sizes, streams, sync bios and flushes, no plugging, one to
/// four submitters: every completion fires once, every flush returns
/// only after the writes its thread queued before it completed, the data is exact.
#[test]
fn hand_off_stress() {
    for submitters in [1, 2, 4] {
        let dev = Arc::new(MemDevice::new(STRESS_DEVICE_BYTES));
        let config = stress_config().with_submitters(submitters);
        hand_off_stress_on(dev.clone(), config, || dev.snapshot());
    }
}

const STRESS_THREADS: u64 = 6;
const STRESS_REGION: u64 = 256 << 10;
/// Bytes of the device [`hand_off_stress_on`] writes to.
pub const STRESS_DEVICE_BYTES: u64 = STRESS_THREADS * STRESS_REGION;

/// The queue shape of the stress: small I/Os, a small bound, no plugging.
pub fn stress_config() -> QueueConfig {
    QueueConfig::default()
        .with_max_io_bytes(32 << 10)
        .with_max_in_flight_bytes(96 << 10)
        .with_plug_timeout(Duration::ZERO)
}

/// The stress on `dev` with `config`; `image` reads the whole device back.
pub fn hand_off_stress_on(dev: Arc<dyn Device>, config: QueueConfig, image: impl Fn() -> Vec<u8>) {
    const OPS: u64 = 400;
    let (threads, region) = (STRESS_THREADS, STRESS_REGION);
    let submitters = config.submitters;
    let bound = config.max_in_flight_bytes;
    let q = Arc::new(queue(dev, config));
    let fired = Arc::new(AtomicU64::new(0));
    let shadows: Vec<Vec<u8>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (q, fired) = (Arc::clone(&q), Arc::clone(&fired));
                s.spawn(move || {
                    let mut shadow = vec![0u8; region as usize];
                    let mut rng = t.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                    let mut next = || {
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        rng
                    };
                    let done = Arc::new(AtomicU64::new(0));
                    let mut at = 0u64;
                    for i in 0..OPS {
                        let r = next();
                        if r % 23 == 0 {
                            q.flush().unwrap();
                            assert_eq!(done.load(Ordering::SeqCst), i - flushes_before(i, t));
                            continue;
                        }
                        let len = 512 * (1 + r % 16);
                        if at + len > region {
                            at = 0;
                        }
                        let (fired, done) = (Arc::clone(&fired), Arc::clone(&done));
                        let bio = Bio::write(
                            t * region + at,
                            vec![(i % 251) as u8; len as usize],
                            move |r| {
                                r.result.unwrap();
                                fired.fetch_add(1, Ordering::SeqCst);
                                done.fetch_add(1, Ordering::SeqCst);
                            },
                        )
                        .with_stream(t % 3);
                        shadow[at as usize..(at + len) as usize].fill((i % 251) as u8);
                        at += len;
                        if r % 7 == 0 {
                            q.submit_sync(bio);
                        } else {
                            q.submit(bio);
                        }
                    }
                    shadow
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    q.flush().unwrap();
    let writes = fired.load(Ordering::SeqCst);
    assert_eq!(q.stats().bios, writes, "submitters {submitters}");
    let expected: u64 = (0..threads).map(|t| OPS - flushes_before(OPS, t)).sum();
    assert_eq!(writes, expected, "every write completed once");
    let stats = q.stats();
    assert!(stats.in_flight_peak_bytes <= bound, "{stats:?}");
    assert!(stats.in_flight_ios_peak <= submitters as u64, "{stats:?}");
    let image = image();
    for (t, shadow) in shadows.iter().enumerate() {
        let region = &image[t * region as usize..(t + 1) * region as usize];
        assert!(region == &shadow[..], "thread {t}: the newest data landed");
    }
}

/// How many of thread `t`'s first `i` ops were flushes (the same generator as above).
fn flushes_before(i: u64, t: u64) -> u64 {
    let mut rng = t.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..i)
        .filter(|_| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % 23 == 0
        })
        .count() as u64
}

#[test]
fn default_submitters_follow_the_device() {
    let mut info = MemDevice::new(4096).info();
    assert!(stack_bio::default_submitters(&info) >= 2, "memory: several");
    info.kind = stack_bio::DeviceKind::File;
    assert_eq!(
        stack_bio::default_submitters(&info),
        1,
        "a buffered file: its inode lock serialises writes anyway"
    );
    info.direct = true;
    assert!(
        stack_bio::default_submitters(&info) >= 2,
        "direct I/O: several"
    );
    info.kind = stack_bio::DeviceKind::Block;
    info.direct = false;
    assert!(
        stack_bio::default_submitters(&info) >= 2,
        "a block device: several"
    );
    assert_eq!(QueueConfig::default().submitters, 0, "chosen per device");
}
