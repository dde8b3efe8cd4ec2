//! Fake capacity in the library: a counterfeit device that wraps around, or whose writes
//! past an offset never stick, gets the `fake-capacity` verdict with the exact size it
//! holds; the fill's canaries stop it after about that much; a good device is clean.

use std::sync::Arc;

use stack_bio::{Device, FaultyDevice, MemDevice};
use stack_volume::{
    FormatOptions, OpenOptions, Verdict, VerifyOptions, Volume, WriteOptions, WriteReport,
};

const MIB: u64 = 1 << 20;

/// Fills the volume on `dev` with `opts`, reopens it and judges a full verify: the
/// verdict and the fill's bytes.
fn fill_and_judge(dev: Arc<dyn Device>, opts: &WriteOptions) -> (Verdict, WriteReport) {
    let mut vol = Volume::format_device(dev.clone(), &FormatOptions::default()).unwrap();
    let report = vol.fill("burn-in", 7, opts).unwrap();
    drop(vol);
    let vol = Volume::open_device(dev, &OpenOptions::default()).unwrap();
    let verify = vol.verify(&VerifyOptions::default()).unwrap();
    if std::env::var("DBG").is_ok() {
        let mut seen = std::collections::BTreeMap::new();
        for d in &verify.damaged {
            let k = match d.cause {
                stack_volume::Cause::Misdirected { belongs_at } => {
                    format!("mis {}", (belongs_at as i64 - d.physical_offset as i64))
                }
                c => c.name().to_string(),
            };
            *seen.entry(k).or_insert(0u64) += d.length;
        }
        eprintln!(
            "{seen:?} verified {} not_listed {} meta {:?}",
            verify.bytes_verified,
            verify.damaged_not_listed,
            verify.metadata_damage.len()
        );
    }
    (vol.verdict(&verify, None), report)
}

fn usable(v: &Verdict) -> u64 {
    match v {
        Verdict::FakeCapacity { usable_bytes, .. } => *usable_bytes,
        other => panic!("expected fake-capacity, got {other:?}"),
    }
}

/// What broke: a 256 MiB device that holds 64 MiB was filled whole, then verify listed
/// 192 MiB of misdirected and mismatched ranges and gave no verdict and no usable size.
#[test]
fn a_wrapping_device_gets_the_fake_capacity_verdict_with_its_real_size() {
    let dev = Arc::new(FaultyDevice::counterfeit(
        Arc::new(MemDevice::new(64 * MIB)),
        256 * MIB,
    ));
    let no_stop = WriteOptions {
        stop_at_canary: false,
        ..WriteOptions::default()
    };
    let (verdict, fill) = fill_and_judge(dev, &no_stop);
    assert!(
        fill.bytes > 250 * MIB,
        "without stopping it fills all: {fill:?}"
    );
    let canary = fill.canary_failed.as_ref().expect("a canary failed");
    assert!(
        !fill.stopped_early && canary.found.contains("wraps around"),
        "{fill:?}"
    );
    assert_eq!(usable(&verdict), 64 * MIB, "{verdict:?}");
    let Verdict::FakeCapacity {
        advertised_bytes, ..
    } = verdict
    else {
        unreachable!()
    };
    assert_eq!(advertised_bytes, 256 * MIB);
}

#[test]
fn writes_that_never_stick_past_an_offset_give_that_offset() {
    let dev = Arc::new(FaultyDevice::new(Arc::new(MemDevice::new(64 * MIB))));
    // Past 40 MiB writes are acknowledged and lost: reads give zeros.
    let from = 40 * MIB;
    dev.lose_writes_past(from);
    let (verdict, _) = fill_and_judge(dev, &WriteOptions::default());
    assert_eq!(usable(&verdict), from, "{verdict:?}");
}

#[test]
fn a_good_device_is_clean() {
    let dev = Arc::new(MemDevice::new(64 * MIB));
    let (verdict, _) = fill_and_judge(dev, &WriteOptions::default());
    assert_eq!(verdict, Verdict::Clean);
}

/// A counterfeit claiming `advertised` over `real` bytes: the fill stops within one
/// canary period of the real size, and the verdict gives the real size exactly.
fn stops_early(real: u64, advertised: u64, period: u64) {
    let dev = Arc::new(FaultyDevice::counterfeit(
        Arc::new(MemDevice::new(real)),
        advertised,
    ));
    let (verdict, fill) = fill_and_judge(dev, &WriteOptions::default());
    assert!(fill.stopped_early, "{fill:?}");
    assert!(
        fill.bytes <= real + period,
        "wrote {} of {real} + {period}",
        fill.bytes
    );
    assert!(fill.canaries_read > 0 && fill.canary_failed.is_some());
    assert_eq!(usable(&verdict), real, "{verdict:?}");
    let Verdict::FakeCapacity {
        advertised_bytes, ..
    } = verdict
    else {
        unreachable!()
    };
    assert_eq!(advertised_bytes, advertised);
}

#[test]
fn a_1_gib_fake_over_64_mib_stops_after_one_canary_period() {
    stops_early(64 * MIB, 1 << 30, 64 * MIB);
}

#[test]
fn a_16_gib_fake_over_128_mib_stops_within_one_percent() {
    // The period is 1% of the free space here, more than 64 MiB.
    stops_early(
        128 * MIB,
        16 << 30,
        ((16_u64 << 30) / 100).next_multiple_of(MIB),
    );
}

#[test]
fn writes_lost_past_an_offset_stop_the_fill_and_give_the_offset() {
    let dev = Arc::new(FaultyDevice::counterfeit(
        Arc::new(MemDevice::new(200 * MIB)),
        1 << 30,
    ));
    dev.lose_writes_past(72 * MIB);
    let (verdict, fill) = fill_and_judge(dev, &WriteOptions::default());
    assert!(
        fill.stopped_early && fill.bytes <= 72 * MIB + 64 * MIB,
        "{fill:?}"
    );
    assert_eq!(usable(&verdict), 72 * MIB, "{verdict:?}");
}

#[test]
fn a_good_device_passes_its_canaries() {
    let dev = Arc::new(MemDevice::new(200 * MIB));
    let (verdict, fill) = fill_and_judge(dev, &WriteOptions::default());
    assert_eq!(verdict, Verdict::Clean);
    assert!(
        fill.canaries_read >= 16 && fill.canary_failed.is_none(),
        "{fill:?}"
    );
}
