//! Every fault of `FaultyDevice`, and the crash model at every crash point.

use stack_bio::{CrashMode, Device, Error, FaultyDevice, MemDevice};
use std::sync::Arc;

const SIZE: u64 = 64 * 1024;

fn faulty() -> (Arc<MemDevice>, FaultyDevice) {
    let mem = Arc::new(MemDevice::new(SIZE));
    let dev = FaultyDevice::new(mem.clone()).with_crash_model().unwrap();
    (mem, dev)
}

fn read(dev: &dyn Device, offset: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    dev.read_at(&mut buf, offset).unwrap();
    buf
}

#[test]
fn eio_on_chosen_read_and_write_ranges() {
    let (_, dev) = faulty();
    dev.fail_writes(4096..8192);
    dev.fail_reads(16384..16385);
    let err = dev.write_at(&[1; 512], 8000).unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Io {
                offset: 8000,
                op: "write",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(err.raw_os_error(), Some(libc::EIO));
    dev.write_at(&[1; 512], 8192).unwrap();
    let err = dev.read_at(&mut [0; 4096], 12289).unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Io {
                offset: 12289,
                op: "read",
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("faulty(mem)"),
        "the error names the device: {err}"
    );
    dev.read_at(&mut [0; 4096], 16385).unwrap();
    assert_eq!(
        read(&dev, 7488, 512),
        vec![0; 512],
        "a failed write stores nothing"
    );
    assert_eq!(dev.faults_hit(), 2);
    dev.clear_faults();
    dev.write_at(&[1; 512], 8000).unwrap();
}

#[test]
fn bit_flips_on_write_reach_the_media_and_on_read_do_not() {
    let (mem, dev) = faulty();
    dev.flip_on_write(100, 0x01);
    dev.write_at(&[0xf0; 200], 0).unwrap();
    assert_eq!(read(&*mem, 100, 1), [0xf1]);
    assert_eq!(read(&*mem, 99, 1), [0xf0]);
    dev.clear_faults();
    dev.flip_on_read(5, 0x80);
    assert_eq!(
        read(&dev, 0, 8),
        [0xf0, 0xf0, 0xf0, 0xf0, 0xf0, 0x70, 0xf0, 0xf0]
    );
    assert_eq!(read(&*mem, 5, 1), [0xf0], "the media is intact");
}

#[test]
fn torn_write_keeps_only_first_sectors() {
    let (mem, dev) = faulty();
    dev.tear_writes(0..SIZE, 2);
    dev.writev_at(&[&[7; 1024], &[8; 1024]], 4096).unwrap();
    assert_eq!(read(&*mem, 4096, 1024), vec![7; 1024]);
    assert_eq!(
        read(&*mem, 5120, 1024),
        vec![0; 1024],
        "sectors past the tear never landed"
    );
}

#[test]
fn dropped_write_is_acknowledged_but_not_stored() {
    let (mem, dev) = faulty();
    dev.drop_writes(8192..8193);
    dev.write_at(&[9; 4096], 8192).unwrap();
    assert_eq!(read(&*mem, 8192, 4096), vec![0; 4096]);
    dev.write_at(&[9; 4096], 12288).unwrap();
    assert_eq!(read(&*mem, 12288, 4096), vec![9; 4096]);
}

#[test]
fn misdirected_write_lands_elsewhere() {
    let (mem, dev) = faulty();
    dev.misdirect_writes(4096..8192, 32768);
    dev.write_at(&[3; 512], 4608).unwrap();
    assert_eq!(read(&*mem, 4608, 512), vec![0; 512]);
    assert_eq!(read(&*mem, 33280, 512), vec![3; 512]);
    dev.misdirect_writes(0..1, SIZE - 10);
    dev.write_at(&[4; 512], 0).unwrap();
    assert_eq!(
        read(&*mem, 0, 512),
        vec![0; 512],
        "past the end it lands nowhere"
    );
}

#[test]
fn counterfeit_capacity_wraps_offsets() {
    let (mem, dev) = faulty();
    dev.wrap_at(16384);
    assert_eq!(
        dev.size_bytes(),
        SIZE,
        "the device still claims its full size"
    );
    dev.write_at(&[5; 1024], 16384 + 15872).unwrap();
    assert_eq!(read(&*mem, 15872, 512), vec![5; 512]);
    assert_eq!(
        read(&*mem, 0, 512),
        vec![5; 512],
        "the write wrapped across the fake end"
    );
    dev.write_at(&[6; 8], 2 * 16384 + 100).unwrap();
    assert_eq!(
        read(&dev, 100, 8),
        vec![6; 8],
        "reading the low address sees the overwrite"
    );
    assert_eq!(read(&dev, 16384 + 100, 8), vec![6; 8]);
}

/// A workload of writes and flushes; returns, for each write index, the flush count
/// that had completed before it.
fn workload(dev: &FaultyDevice) {
    for i in 0..6u8 {
        dev.write_at(&[i + 1; 512], u64::from(i) * 512).unwrap();
        if i % 2 == 1 {
            dev.flush().unwrap();
        }
    }
}

#[test]
fn crash_at_every_write_keeps_exactly_the_flushed_prefix() {
    for cut in 0..=6u64 {
        let (_, dev) = faulty();
        dev.cut_at_write(cut);
        workload(&dev);
        assert_eq!(dev.is_cut(), cut < 6);
        let durable_writes = if cut == 0 { 0 } else { (cut / 2) * 2 };
        let lost = dev.crash_image(CrashMode::LoseUnflushed);
        let kept = dev.crash_image(CrashMode::KeepUnflushed);
        for i in 0..6u64 {
            let sector = read(&lost, i * 512, 512);
            let want = if i < durable_writes {
                vec![i as u8 + 1; 512]
            } else {
                vec![0; 512]
            };
            assert_eq!(sector, want, "cut {cut}, sector {i}, lose-unflushed");
            let sector = read(&kept, i * 512, 512);
            let want = if i < cut {
                vec![i as u8 + 1; 512]
            } else {
                vec![0; 512]
            };
            assert_eq!(sector, want, "cut {cut}, sector {i}, keep-unflushed");
        }
    }
}

#[test]
fn random_subset_is_seeded_and_between_the_extremes() {
    let (_, dev) = faulty();
    for i in 0..64u64 {
        dev.write_at(&[1; 512], i * 512).unwrap();
    }
    assert_eq!(dev.unflushed_writes(), 64);
    let a = dev
        .crash_image(CrashMode::RandomSubset { seed: 7 })
        .snapshot();
    let b = dev
        .crash_image(CrashMode::RandomSubset { seed: 7 })
        .snapshot();
    let c = dev
        .crash_image(CrashMode::RandomSubset { seed: 8 })
        .snapshot();
    assert_eq!(a, b, "same seed, same survivors");
    assert_ne!(a, c);
    let survivors = a.chunks(512).take(64).filter(|s| s[0] == 1).count();
    assert!((10..54).contains(&survivors), "{survivors} of 64 survived");
    dev.flush().unwrap();
    assert_eq!(dev.unflushed_writes(), 0);
    assert_eq!(
        dev.crash_image(CrashMode::LoseUnflushed).snapshot()[..64 * 512],
        vec![1; 64 * 512][..]
    );
}

#[test]
fn faults_compose_with_the_crash_model() {
    let (_, dev) = faulty();
    dev.tear_writes(0..512, 1);
    dev.write_at(&[2; 1024], 0).unwrap();
    dev.flush().unwrap();
    let image = dev.crash_image(CrashMode::LoseUnflushed);
    assert_eq!(read(&image, 0, 512), vec![2; 512]);
    assert_eq!(
        read(&image, 512, 512),
        vec![0; 512],
        "the crash image holds what landed"
    );
    assert_eq!(image.size_bytes(), SIZE);
}
