//! The surface map and its findings through the whole library: a burn-in (format, fill,
//! reopen, verify) on a `FaultyDevice` with latency injected finds the slow region, the
//! write cliff at its offset (within one region) and the stalls, and a clean device
//! (bare memory, whose speed jitters most on a busy machine) gives no finding. Findings are not damage: every one of these volumes verifies clean.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use stack_bio::{FaultyDevice, MemDevice, Slowdown};
use stack_volume::findings::{find, Finding, FindingOptions};
use stack_volume::html::DriveReport;
use stack_volume::map::SurfaceMap;
use stack_volume::{FormatOptions, OpenOptions, VerifyOptions, Volume, WriteOptions};

const MIB: u64 = 1 << 20;
/// 128 MiB in 16 regions of 8 MiB: each sees several writes and more reads.
const SIZE: u64 = 128 * MIB;
const REGIONS: u32 = 16;
const REGION: u64 = SIZE / REGIONS as u64;

/// What a burn-in of `dev` found; `before_fill` and `before_verify` arm faults.
pub(crate) struct Burned {
    pub(crate) map: SurfaceMap,
    pub(crate) findings: Vec<Finding>,
    pub(crate) drive: DriveReport,
}

pub(crate) fn burn_in(
    name: &str,
    dev: &Arc<FaultyDevice>,
    regions: u32,
    before_fill: impl FnOnce(&FaultyDevice),
    before_verify: impl FnOnce(&FaultyDevice),
) -> Burned {
    // One at a time: burn-ins running together slow each other's memory copies, and
    // these tests are about the latency they inject, not about a busy CPU.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut vol = Volume::format_device(dev.clone(), &FormatOptions::default()).expect("format");
    vol.set_map_regions(regions);
    before_fill(dev);
    let opts = WriteOptions {
        canaries: false,
        ..WriteOptions::default()
    };
    let written = vol.fill("burn-in", 7, &opts).expect("fill");
    let fill = vol.surface_map();
    drop(vol);
    before_verify(dev);
    let mut vol = Volume::open_device(
        dev.clone(),
        &OpenOptions {
            read_only: true,
            ..OpenOptions::default()
        },
    )
    .expect("open");
    vol.set_map_regions(regions);
    let report = vol.verify(&VerifyOptions::default()).expect("verify");
    let map = SurfaceMap::combine(&fill, &vol.surface_map());
    let findings = find(&map, &FindingOptions::default());
    let verdict = vol.verdict(&report, None);
    let mut drive = DriveReport::from_verify(name, &vol.info(), &report, Some(&verdict));
    drive.facts.insert(
        0,
        (
            "written".into(),
            stack_volume::findings::human_bytes(written.bytes),
        ),
    );
    drive.map = Some(map.clone());
    drive.findings = findings.clone();
    Burned {
        map,
        findings,
        drive,
    }
}

fn faulty() -> Arc<FaultyDevice> {
    Arc::new(FaultyDevice::new(Arc::new(MemDevice::new(SIZE))))
}

/// Memory paced like a drive (400 MiB/s media): where a fault is injected, the test is
/// about finding it at its place, and a memory copy's jitter on a busy machine (several
/// times its speed, region to region) would blur the place.
fn drive() -> Arc<FaultyDevice> {
    let dev = faulty();
    dev.slow_region(0..SIZE, Slowdown::BytesPerSec(400 * MIB));
    dev
}

fn nothing(_: &FaultyDevice) {}

#[test]
fn a_clean_device_has_no_findings() {
    let dev = faulty();
    let b = burn_in("clean", &dev, REGIONS, nothing, nothing);
    let w = b.map.write.as_ref().expect("writes mapped");
    let r = b.map.read.as_ref().expect("reads mapped");
    assert!(
        w.regions.len() as u32 >= REGIONS - 1,
        "{:?}",
        w.regions.len()
    );
    assert!(r.bytes >= SIZE * 9 / 10);
    assert!(b.drive.is_clean());
    assert_eq!(b.findings, Vec::new(), "{:#?}", b.map);
}

#[test]
fn a_slow_region_is_found_where_it_is_for_writes_and_reads() {
    let dev = drive();
    let slow = 48 * MIB..64 * MIB;
    let b = burn_in(
        "slow",
        &dev,
        REGIONS,
        |d| d.slow_region(slow.clone(), Slowdown::BytesPerSec(4 * MIB)),
        nothing,
    );
    assert!(b.drive.is_clean(), "slowness is not damage");
    for op in ["write", "read"] {
        let found: Vec<_> = b
            .findings
            .iter()
            .filter_map(|f| match f {
                Finding::SlowRegion {
                    op: o,
                    offset_bytes,
                    len_bytes,
                    ..
                } if o == op => Some((*offset_bytes, offset_bytes + len_bytes)),
                _ => None,
            })
            .collect();
        assert_eq!(found.len(), 1, "{op}: {:#?}", b.findings);
        let (start, end) = found[0];
        // Within one region of the injected range on each side.
        assert!(
            start + REGION > slow.start && start <= slow.start,
            "{op} {start}"
        );
        assert!(end >= slow.end && end < slow.end + REGION, "{op} {end}");
    }
    assert!(
        b.findings.iter().all(|f| f.kind() == "slow-region"),
        "{:#?}",
        b.findings
    );
}

#[test]
fn a_write_cliff_is_found_at_its_offset_within_one_region() {
    let dev = drive();
    let b = burn_in(
        "cliff",
        &dev,
        REGIONS,
        |d| d.cliff_after(44 * MIB, Slowdown::BytesPerSec(20 * MIB)),
        nothing,
    );
    let injected = dev.cliff_offset().expect("the cliff was reached");
    let cliffs: Vec<u64> = b
        .findings
        .iter()
        .filter_map(|f| match f {
            Finding::WriteCliff { offset_bytes, .. } => Some(*offset_bytes),
            _ => None,
        })
        .collect();
    assert_eq!(cliffs.len(), 1, "{:#?}", b.findings);
    assert!(
        cliffs[0].abs_diff(injected) <= REGION,
        "found at {}, injected at {injected}",
        cliffs[0]
    );
    assert_eq!(b.findings.len(), 1, "only the cliff: {:#?}", b.findings);
    assert!(b.drive.is_clean());
}

#[test]
fn stalls_are_found_at_their_ios() {
    let dev = drive();
    let pause = Duration::from_millis(700);
    let b = burn_in(
        "stalls",
        &dev,
        REGIONS,
        |d| d.stall_at(40 * MIB + 4096, pause),
        |d| d.stall_at(88 * MIB + 4096, pause),
    );
    let stalls: Vec<(String, u64, u64)> = b
        .findings
        .iter()
        .filter_map(|f| match f {
            Finding::Stall {
                op,
                offset_bytes,
                len_bytes,
                ..
            } => Some((op.clone(), *offset_bytes, *len_bytes)),
            _ => None,
        })
        .collect();
    let injected = dev.stalls_injected();
    assert_eq!(injected.len(), 2);
    assert_eq!(stalls.len(), 2, "{:#?}", b.findings);
    for ((op, at), (found_op, off, len)) in [("write", 40 * MIB), ("read", 88 * MIB)]
        .iter()
        .zip(&stalls)
    {
        assert_eq!(found_op, op);
        assert!(
            *off <= at + 4096 && at + 4096 < off + len,
            "{op}: {off}+{len}"
        );
    }
    assert_eq!(
        b.findings.len(),
        2,
        "a stall is not a slow region: {:#?}",
        b.findings
    );
}
