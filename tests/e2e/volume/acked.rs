//! Lost flushes: the commits a write acknowledged (its `on_commit` records) checked
//! against what a drive holds after a power cut. A drive that lies about flushes gives
//! `lost`; an honest one never does, at any crash point.

use std::sync::{Arc, Mutex};

use stack_bio::{CrashMode, Device, FaultyDevice, MemDevice};
use stack_volume::{
    CommitRecord, Error, FormatOptions, LostHow, OpenOptions, VerifyOptions, Volume, WriteOptions,
};

use super::{data, physical_blocks, BS};

const VOLUME_BYTES: u64 = 4 << 20;

/// Write options that commit every 64 KiB and collect each acknowledged commit.
fn acking() -> (WriteOptions, Arc<Mutex<Vec<CommitRecord>>>) {
    let records = Arc::new(Mutex::new(Vec::new()));
    let sink = records.clone();
    let opts = WriteOptions {
        commit_every_bytes: 64 << 10,
        on_commit: Some(Arc::new(move |r: &CommitRecord| {
            sink.lock().unwrap().push(r.clone())
        })),
        ..WriteOptions::default()
    };
    (opts, records)
}

fn formatted() -> Vec<u8> {
    let dev = Arc::new(MemDevice::new(VOLUME_BYTES));
    drop(Volume::format_device(dev.clone(), &FormatOptions::default()).unwrap());
    dev.snapshot()
}

fn crash_modelled(image: Vec<u8>) -> FaultyDevice {
    let mem: Arc<dyn Device> = Arc::new(MemDevice::from_bytes(image, 512));
    FaultyDevice::new(mem).with_crash_model().unwrap()
}

/// The workload: a file, a pattern object and a removal, each write committing often.
fn workload(vol: &mut Volume, opts: &WriteOptions) -> Result<(), Error> {
    vol.write("a", &mut &data(150_000, 1)[..], opts)?;
    vol.write_pattern("p", (900 << 10) + 100, 9, opts)?;
    vol.remove("a")?;
    vol.write("b", &mut &data(70_000, 2)[..], opts)?;
    Ok(())
}

fn check(image: MemDevice, records: &[CommitRecord]) -> stack_volume::AckedCheck {
    let vol = Volume::open_device(Arc::new(image), &OpenOptions::default()).unwrap();
    vol.check_acked(records, &VerifyOptions::default()).unwrap()
}

#[test]
fn a_drive_that_acknowledges_flushes_and_drops_them_gives_lost_flushes() {
    let base = formatted();
    let formatted_generation = Volume::open_device(
        Arc::new(MemDevice::from_bytes(base.clone(), 512)),
        &OpenOptions::default(),
    )
    .unwrap()
    .info()
    .generation;
    let dev = Arc::new(crash_modelled(base));
    dev.lie_about_flushes();
    let mut vol = Volume::open_device(dev.clone(), &OpenOptions::default()).unwrap();
    let (opts, records) = acking();
    workload(&mut vol, &opts).unwrap();
    drop(vol);
    let records = records.lock().unwrap().clone();
    assert!(records.len() > 10, "{} commits acknowledged", records.len());
    let newest = records.iter().map(|r| r.generation).max().unwrap();
    // The running program saw every commit succeed and reads back fine.
    let live = Volume::open_device(dev.clone(), &OpenOptions::default()).unwrap();
    assert!(live
        .check_acked(&records, &VerifyOptions::default())
        .unwrap()
        .lost
        .is_none());
    // The power cut: the drive holds only what was durable before it started lying.
    let got = check(dev.crash_image(CrashMode::LoseUnflushed), &records);
    let lost = got.lost.expect("lost flushes");
    assert_eq!(lost.acked_generation, newest);
    assert_eq!(
        lost.drive_generation, formatted_generation,
        "the drive holds the format's commit"
    );
    assert!(lost.drive_generation < lost.acked_generation);
}

#[test]
fn acknowledged_data_damaged_or_missing_at_the_acknowledged_generation_is_lost() {
    let dev = Arc::new(MemDevice::new(VOLUME_BYTES));
    let mut vol = Volume::format_device(dev.clone(), &FormatOptions::default()).unwrap();
    let (opts, records) = acking();
    vol.write_pattern("p", 64 * BS, 3, &opts).unwrap();
    drop(vol);
    let records = records.lock().unwrap().clone();
    assert!(check(MemDevice::from_bytes(dev.snapshot(), 512), &records)
        .lost
        .is_none());
    // The drive kept the superblock but not block 40's data: stale zeros.
    let blocks = physical_blocks(&dev, "p", 64);
    dev.write_at(&vec![0; BS as usize], blocks[40] * BS)
        .unwrap();
    let got = check(MemDevice::from_bytes(dev.snapshot(), 512), &records);
    let lost = got.lost.expect("lost flushes");
    assert_eq!(lost.acked_generation, lost.drive_generation);
    assert_eq!(lost.objects.len(), 1, "{lost:?}");
    assert_eq!(lost.objects[0].how, LostHow::Damaged);
    assert_eq!(lost.objects[0].first_damaged_offset, Some(40 * BS));
    assert_eq!(lost.objects[0].damaged_bytes, BS);
    // An acknowledged object the drive's table (same generation) does not list.
    let mut forged = records.clone();
    let last = forged.last_mut().unwrap();
    let mut ghost = last.objects[0].clone();
    ghost.id += 100;
    ghost.name = "ghost".into();
    last.objects.push(ghost);
    let got = check(MemDevice::from_bytes(dev.snapshot(), 512), &forged);
    let hows: Vec<LostHow> = got
        .lost
        .unwrap()
        .objects
        .into_iter()
        .map(|o| o.how)
        .collect();
    assert!(hows.contains(&LostHow::Missing), "{hows:?}");
    // Acknowledged as longer than the drive holds: short.
    let mut longer = records.clone();
    longer.last_mut().unwrap().objects[0].size_bytes += BS;
    let got = check(MemDevice::from_bytes(dev.snapshot(), 512), &longer);
    assert_eq!(got.lost.unwrap().objects[0].how, LostHow::Short);
}

/// A drive newer than the newest record went through commits no record covers: a write
/// or resume that ran out of space is undone (its object removed or shortened), and ids
/// may be reused. Comparing sizes there gave a false `lost` for an honest drive.
#[test]
fn a_drive_newer_than_the_log_may_have_changed_acknowledged_objects() {
    let dev = Arc::new(MemDevice::new(VOLUME_BYTES));
    let mut vol = Volume::format_device(dev.clone(), &FormatOptions::default()).unwrap();
    let (opts, records) = acking();
    vol.write_pattern("p", 64 * BS, 3, &opts).unwrap();
    let mut records = records.lock().unwrap().clone();
    let last = records.last_mut().unwrap();
    last.generation -= 1;
    last.objects[0].size_bytes += BS;
    let mut ghost = last.objects[0].clone();
    ghost.id += 100;
    ghost.name = "gone".into();
    last.objects.push(ghost);
    let got = vol
        .check_acked(&records, &VerifyOptions::default())
        .unwrap();
    assert!(got.lost.is_none(), "{got:?}");
    assert_eq!(got.changed_later, ["p", "gone"]);
    // Damage below the acknowledged size still counts at a newer generation.
    drop(vol);
    let blocks = physical_blocks(&dev, "p", 64);
    dev.write_at(&vec![0; BS as usize], blocks[3] * BS).unwrap();
    records.last_mut().unwrap().objects[0].size_bytes -= BS;
    let got = check(MemDevice::from_bytes(dev.snapshot(), 512), &records);
    assert_eq!(got.lost.unwrap().objects[0].how, LostHow::Damaged);
}

#[test]
fn records_of_another_volume_or_none_are_refused() {
    let dev = Arc::new(MemDevice::new(VOLUME_BYTES));
    let mut vol = Volume::format_device(dev.clone(), &FormatOptions::default()).unwrap();
    let (opts, records) = acking();
    vol.write("x", &mut &b"abc"[..], &opts).unwrap();
    let mut records = records.lock().unwrap().clone();
    records[0].uuid = "00000000-0000-0000-0000-000000000000".into();
    let err = vol
        .check_acked(&records, &VerifyOptions::default())
        .unwrap_err();
    assert!(matches!(err, Error::AckedOtherVolume { .. }), "{err}");
    let err = vol.check_acked(&[], &VerifyOptions::default()).unwrap_err();
    assert!(matches!(err, Error::NoAckedCommits), "{err}");
}

/// The honest crash model: power lost at every write and flush (every I/O failing from
/// there, unflushed writes kept in several orders): the acknowledged commits are always
/// on the drive, so no crash point gives `lost`.
#[test]
fn honest_power_loss_at_every_crash_point_never_loses_an_acknowledged_commit() {
    let base = formatted();
    let total = {
        let dev = Arc::new(crash_modelled(base.clone()));
        let mut vol = Volume::open_device(dev.clone(), &OpenOptions::default()).unwrap();
        workload(&mut vol, &acking().0).unwrap();
        dev.events_issued()
    };
    assert!(total >= 100, "the workload has {total} crash points");
    let modes = [
        CrashMode::LoseUnflushed,
        CrashMode::KeepUnflushedTornCut,
        CrashMode::KeepOdd,
        CrashMode::KeepNewest,
        CrashMode::RandomSubset { seed: 5 },
    ];
    let (mut checked, mut with_records) = (0u64, 0u64);
    for crash_at in 0..=total {
        let dev = Arc::new(crash_modelled(base.clone()).failing_after_cut());
        dev.cut_at_event(crash_at);
        let (opts, records) = acking();
        let mut vol = Volume::open_device(dev.clone(), &OpenOptions::default()).unwrap();
        let _ = workload(&mut vol, &opts);
        drop(vol);
        let records = records.lock().unwrap().clone();
        for mode in modes {
            checked += 1;
            if records.is_empty() {
                continue;
            }
            with_records += 1;
            let got = check(dev.crash_image(mode), &records);
            assert!(
                got.lost.is_none(),
                "power lost at event {crash_at}/{total}, {mode:?}: {got:?}"
            );
            assert!(got.drive_generation >= got.acked_generation);
        }
    }
    println!("{total} crash points x {} models: {checked} images, {with_records} with acknowledged commits", modes.len());
    assert_eq!(checked, (total + 1) * modes.len() as u64);
    assert!(
        with_records >= 100,
        "{with_records} cases had acknowledged commits"
    );
}
