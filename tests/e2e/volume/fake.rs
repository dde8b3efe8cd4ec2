//! Fake capacity in the library: a counterfeit device that wraps around, or whose writes
//! past an offset never stick, gets the `fake-capacity` verdict with the exact size it
//! holds; the fill's canaries stop it after about that much; a good device is clean.

use std::sync::Arc;

use stack_bio::{Device, FaultyDevice, MemDevice};
use stackctl::{FormatOptions, OpenOptions, Verdict, VerifyOptions, Volume, WriteOptions};

const MIB: u64 = 1 << 20;

/// Fills the volume on `dev` with `opts`, reopens it and judges a full verify: the
/// verdict and the fill's bytes.
fn fill_and_judge(dev: Arc<dyn Device>, opts: &WriteOptions) -> (Verdict, u64) {
    let mut vol = Volume::format_device(dev.clone(), &FormatOptions::default()).unwrap();
    let report = vol.fill("burn-in", 7, opts).unwrap();
    drop(vol);
    let vol = Volume::open_device(dev, &OpenOptions::default()).unwrap();
    let verify = vol.verify(&VerifyOptions::default()).unwrap();
    if std::env::var("DBG").is_ok() {
        let mut seen = std::collections::BTreeMap::new();
        for d in &verify.damaged {
            let k = match d.cause {
                stackctl::Cause::Misdirected { belongs_at } => {
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
    (vol.verdict(&verify, None), report.bytes)
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
    let (verdict, _) = fill_and_judge(dev, &WriteOptions::default());
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
