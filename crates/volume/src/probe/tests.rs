//! Probes of fakes built in memory: wrapping (through `FaultyDevice` and a sparse model
//! for sizes beyond memory), writes that stop sticking past an offset, scattered losses,
//! a drive cache, and honest devices.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use stack_bio::{Device, DeviceInfo, DeviceKind, FaultyDevice, MemDevice};

use super::*;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// What a sparse fake does with bytes past its real capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Past {
    /// Nothing: an honest device.
    Honest,
    /// Offset o is stored at o mod real (counterfeit flash).
    Wrap(u64),
    /// Writes past `real` are acknowledged and dropped; reads there return zeros.
    Zeros(u64),
    /// Writes past `real` are dropped; reads there return what was there before (old
    /// non-zero data where nothing was).
    OldData(u64),
}

/// A sparse in-memory device of any advertised size, with a fake capacity and an
/// optional LRU drive cache that serves recently written or read blocks.
#[derive(Debug)]
struct Sparse {
    size_bytes: u64,
    lbs: u64,
    past: Mutex<Past>,
    media: Mutex<HashMap<u64, Vec<u8>>>,
    cache: Mutex<VecDeque<(u64, Vec<u8>)>>,
    cache_blocks: usize,
    bad_blocks: Vec<u64>,
    bytes_written: Mutex<u64>,
}

impl Sparse {
    fn new(size_bytes: u64, past: Past) -> Sparse {
        Sparse {
            size_bytes,
            lbs: 512,
            past: Mutex::new(past),
            media: Mutex::default(),
            cache: Mutex::default(),
            cache_blocks: 0,
            bad_blocks: Vec::new(),
            bytes_written: Mutex::new(0),
        }
    }

    fn with_cache(mut self, bytes: u64) -> Sparse {
        self.cache_blocks = (bytes / self.lbs) as usize;
        self
    }

    fn with_lbs(mut self, lbs: u64) -> Sparse {
        self.lbs = lbs;
        self
    }

    /// Where block-aligned `offset` lives, or `None` where writes do not stick.
    fn place(&self, offset: u64) -> Option<u64> {
        match *self.past.lock().unwrap() {
            Past::Honest => Some(offset),
            Past::Wrap(real) => Some(offset % real),
            Past::Zeros(real) | Past::OldData(real) => (offset < real).then_some(offset),
        }
        .filter(|o| !self.bad_blocks.contains(&(o / self.lbs)))
    }

    fn remember(&self, offset: u64, data: &[u8]) {
        if self.cache_blocks == 0 {
            return;
        }
        let mut cache = self.cache.lock().unwrap();
        cache.retain(|(o, _)| *o != offset);
        cache.push_back((offset, data.to_vec()));
        while cache.len() > self.cache_blocks {
            cache.pop_front();
        }
    }
}

impl Device for Sparse {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<(), stack_bio::Error> {
        assert!(offset + buf.len() as u64 <= self.size_bytes);
        let lbs = self.lbs as usize;
        for (i, block) in buf.chunks_mut(lbs).enumerate() {
            let at = offset + (i * lbs) as u64;
            let cached = self
                .cache
                .lock()
                .unwrap()
                .iter()
                .find(|(o, _)| *o == at)
                .map(|(_, d)| d.clone());
            let data = cached.unwrap_or_else(|| match self.place(at) {
                Some(p) => self
                    .media
                    .lock()
                    .unwrap()
                    .get(&p)
                    .cloned()
                    .unwrap_or_else(|| vec![0; lbs]),
                None if matches!(*self.past.lock().unwrap(), Past::OldData(_)) => self
                    .media
                    .lock()
                    .unwrap()
                    .get(&at)
                    .cloned()
                    .unwrap_or_else(|| vec![0x5a; lbs]),
                None => vec![0; lbs],
            });
            block.copy_from_slice(&data);
            self.remember(at, &data);
        }
        Ok(())
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> Result<(), stack_bio::Error> {
        assert!(offset + buf.len() as u64 <= self.size_bytes);
        *self.bytes_written.lock().unwrap() += buf.len() as u64;
        let lbs = self.lbs as usize;
        for (i, block) in buf.chunks(lbs).enumerate() {
            let at = offset + (i * lbs) as u64;
            if let Some(p) = self.place(at) {
                self.media.lock().unwrap().insert(p, block.to_vec());
            }
            self.remember(at, block);
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), stack_bio::Error> {
        Ok(())
    }

    fn size_bytes(&self) -> u64 {
        self.size_bytes
    }

    fn logical_block_size(&self) -> u32 {
        self.lbs as u32
    }

    fn info(&self) -> DeviceInfo {
        DeviceInfo::new(
            "sparse",
            DeviceKind::Memory,
            self.size_bytes,
            self.lbs as u32,
        )
    }
}

/// Probes with the defaults and checks what every probe must hold: within budget, and
/// a fake verdict's precision present only with a usable size.
fn run(device: &dyn Device) -> ProbeReport {
    run_with(device, None)
}

/// [`run`] with probe blocks of `block_bytes` (default 4 KiB).
fn run_with(device: &dyn Device, block_bytes: Option<u64>) -> ProbeReport {
    let opts = ProbeOptions {
        block_bytes,
        ..ProbeOptions::default()
    };
    let report = probe(device, &opts).unwrap();
    let budget = default_budget_bytes(device.size_bytes());
    assert!(report.bytes_written <= budget, "{report:#?}");
    assert!(report.budget_bytes <= budget);
    assert_eq!(
        report.bytes_written,
        report.blocks_written * report.block_bytes
    );
    assert_eq!(report.advertised_bytes, device.size_bytes());
    report
}

fn assert_fake(report: &ProbeReport, usable_bytes: u64) {
    let v = &report.verdict;
    assert_eq!(v.kind, ProbeVerdictKind::FakeCapacity, "{report:#?}");
    assert_eq!(v.usable_bytes, Some(usable_bytes), "{report:#?}");
    assert_eq!(v.precision_bytes, Some(report.block_bytes), "{report:#?}");
}

#[test]
fn a_wrap_of_1_gib_over_64_mib_is_found_exactly_within_budget() {
    let dev = Sparse::new(GIB, Past::Wrap(64 * MIB));
    let report = run(&dev);
    assert_fake(&report, 64 * MIB);
    assert!(*dev.bytes_written.lock().unwrap() <= GIB / 100);
    assert!(report.verdict.evidence.iter().any(
        |e| matches!(e, Evidence::Reappears { distance_bytes, .. } if *distance_bytes == 64 * MIB)
    ));
    assert!(report.verdict.evidence.iter().any(
        |e| matches!(e, Evidence::NoWrapAt { distance_bytes } if *distance_bytes == 32 * MIB)
    ));
}

#[test]
fn wraps_of_other_ratios_and_sizes_are_exact() {
    for (advertised, real) in [
        (4 * GIB, GIB),
        (GIB, 37 * MIB + 12 * 1024),
        (GIB, 1000 * MIB + 512),
        (GIB, 3 * MIB),
        (GIB, 200 * 1024),
        (2 * GIB, 1536 * MIB),
        (256 * MIB, 255 * MIB),
        (GIB, GIB - 512),
    ] {
        let dev = Sparse::new(advertised, Past::Wrap(real));
        let report = run_with(&dev, Some(512));
        assert_eq!(report.block_bytes, 512);
        assert_fake(&report, real);
    }
}

#[test]
fn faulty_devices_wrap_around_is_found() {
    let faulty = FaultyDevice::new(Arc::new(MemDevice::new(256 * MIB)));
    faulty.wrap_at(64 * MIB);
    let report = run(&faulty);
    assert_fake(&report, 64 * MIB);
    let faulty = FaultyDevice::new(Arc::new(MemDevice::new(192 * MIB)));
    faulty.wrap_at(50 * MIB + 4096);
    let report = run(&faulty);
    assert_fake(&report, 50 * MIB + 4096);
}

#[test]
fn a_4k_sector_wrap_is_exact_to_its_block() {
    let dev = Sparse::new(GIB, Past::Wrap(77 * MIB + 8192)).with_lbs(4096);
    let report = run(&dev);
    assert_eq!(report.block_bytes, 4096);
    assert_fake(&report, 77 * MIB + 8192);
}

#[test]
fn honest_devices_show_no_fake_and_claim_nothing() {
    let sparse = Sparse::new(4 * GIB, Past::Honest);
    let mem = MemDevice::new(64 * MIB);
    let faulty = FaultyDevice::new(Arc::new(MemDevice::new(32 * MIB)));
    for dev in [&sparse as &dyn Device, &mem, &faulty] {
        let report = run(dev);
        let v = &report.verdict;
        assert_eq!(v.kind, ProbeVerdictKind::NoFakeFound, "{report:#?}");
        assert_eq!(v.usable_bytes, None);
        assert_eq!(v.precision_bytes, None);
        assert!(matches!(v.evidence[..], [Evidence::AllRead { .. }]));
    }
}

#[test]
fn writes_that_stop_sticking_past_an_offset_give_that_offset() {
    for real in [64 * MIB, 333 * MIB + 1536, 4096, GIB - 512] {
        let zeros = Sparse::new(GIB, Past::Zeros(real));
        assert_fake(&run_with(&zeros, Some(512)), real);
        let old = Sparse::new(GIB, Past::OldData(real));
        let report = run_with(&old, Some(512));
        assert_fake(&report, real);
        assert!(report.verdict.evidence.iter().any(|e| matches!(
            e,
            Evidence::Lost {
                found: Found::OtherData,
                ..
            }
        )));
    }
}

#[test]
fn an_earlier_probes_blocks_do_not_pass_for_this_ones() {
    let dev = Sparse::new(GIB, Past::Honest);
    let first = probe(&dev, &ProbeOptions::default()).unwrap();
    assert_eq!(first.verdict.kind, ProbeVerdictKind::NoFakeFound);
    *dev.past.lock().unwrap() = Past::OldData(100 * MIB);
    let opts = ProbeOptions {
        nonce: 77,
        ..ProbeOptions::default()
    };
    let report = probe(&dev, &opts).unwrap();
    assert_fake(&report, 100 * MIB);
    assert!(report.verdict.evidence.iter().any(|e| matches!(
        e,
        Evidence::Lost {
            found: Found::Stale,
            ..
        }
    )));
}

#[test]
fn scattered_losses_are_damage_not_a_size() {
    let report = run(&Sparse::new(GIB, Past::Honest));
    let spacing_bytes = match report.verdict.evidence[0] {
        Evidence::AllRead { spacing_bytes, .. } => spacing_bytes,
        ref e => panic!("{e:?}"),
    };
    // On 1 GiB the dense run is as long as the spacing, so the fourth high probe is at
    // 4 spacings: a bad 4 KiB there, with good probes above it.
    let mut dev = Sparse::new(GIB, Past::Honest);
    let first = 4 * spacing_bytes / dev.lbs;
    dev.bad_blocks = (first..first + report.block_bytes / dev.lbs).collect();
    let report = run(&dev);
    assert_eq!(
        report.verdict.kind,
        ProbeVerdictKind::Damaged,
        "{report:#?}"
    );
    assert_eq!(report.verdict.usable_bytes, None);
    assert!(report.verdict.evidence.contains(&Evidence::Lost {
        at_bytes: 4 * spacing_bytes,
        found: Found::Zeros
    }));
    assert!(report
        .verdict
        .evidence
        .iter()
        .any(|e| matches!(e, Evidence::GoodAbove { .. })));
}

/// A drive cache that serves recent blocks hides a fake unless the probe reads enough
/// elsewhere before reading its blocks back.
#[test]
fn the_drive_cache_is_defeated() {
    let cached = || Sparse::new(GIB, Past::Zeros(300 * MIB)).with_cache(8 * MIB);
    let blind = ProbeOptions {
        cache_defeat_bytes: 0,
        ..ProbeOptions::default()
    };
    let report = probe(&cached(), &blind).unwrap();
    assert_eq!(
        report.verdict.kind,
        ProbeVerdictKind::NoFakeFound,
        "{report:#?}"
    );
    assert_fake(&run(&cached()), 300 * MIB);
}

#[test]
fn a_budget_is_never_exceeded_and_a_small_one_costs_precision() {
    let dev = Sparse::new(GIB, Past::Zeros(321 * MIB + 512));
    let opts = ProbeOptions {
        budget_bytes: Some(600 * 512),
        block_bytes: Some(512),
        ..ProbeOptions::default()
    };
    let report = probe(&dev, &opts).unwrap();
    assert!(report.bytes_written <= 600 * 512, "{report:#?}");
    let v = &report.verdict;
    assert_eq!(v.kind, ProbeVerdictKind::FakeCapacity);
    let usable = v.usable_bytes.unwrap();
    let precision = v.precision_bytes.unwrap();
    assert!(
        usable <= 321 * MIB + 512 && 321 * MIB + 512 < usable + precision,
        "{v:?}"
    );
    // More than the default is never taken.
    let opts = ProbeOptions {
        budget_bytes: Some(u64::MAX),
        ..ProbeOptions::default()
    };
    assert!(probe(&dev, &opts).unwrap().bytes_written <= GIB / 100);
}

#[test]
fn too_small_a_device_is_refused() {
    let dev = MemDevice::new(2 * MIB);
    let err = probe(&dev, &ProbeOptions::default()).unwrap_err();
    assert!(
        matches!(err, Error::ProbeBudget { size_bytes, .. } if size_bytes == 2 * MIB),
        "{err}"
    );
    // The smallest device that can be probed, just above.
    let ok = MemDevice::new(MIN_PROBE_BUDGET_BLOCKS * PROBE_BLOCK_BYTES * 100);
    assert!(probe(&ok, &ProbeOptions::default()).is_ok());
    let opts = ProbeOptions {
        block_bytes: Some(3000),
        ..ProbeOptions::default()
    };
    assert!(matches!(
        probe(&ok, &opts),
        Err(Error::InvalidOption { .. })
    ));
}

#[test]
fn cancel_stops_the_probe() {
    let dev = Sparse::new(GIB, Past::Honest);
    let opts = ProbeOptions {
        cancel: Some(Arc::new(std::sync::atomic::AtomicBool::new(true))),
        ..ProbeOptions::default()
    };
    assert!(matches!(probe(&dev, &opts), Err(Error::Interrupted)));
}
