//! Every fault of `FaultyDevice`, and the crash model at every crash point.

use stack_bio::{CrashMode, Device, Error, FaultyDevice, MemDevice, Op};
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
                op: Op::Write,
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
                op: Op::Read,
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
fn a_lying_drive_acknowledges_flushes_and_loses_them_at_the_cut() {
    let (_, dev) = faulty();
    dev.write_at(&[1; 512], 0).unwrap();
    dev.flush().unwrap();
    dev.lie_about_flushes();
    dev.write_at(&[2; 512], 512).unwrap();
    dev.flush().unwrap();
    assert_eq!(dev.flushes(), 2, "the lying flush succeeds");
    assert_eq!(
        read(&dev, 512, 512),
        vec![2; 512],
        "and reads see the write"
    );
    let image = dev.crash_image(CrashMode::LoseUnflushed);
    assert_eq!(read(&image, 0, 512), vec![1; 512], "an honest flush held");
    assert_eq!(
        read(&image, 512, 512),
        vec![0; 512],
        "the acknowledged write is lost"
    );
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

/// What one I/O event of a test workload is.
#[derive(Clone, Copy)]
enum Event {
    Write(u64),
    Flush,
}

#[test]
fn crash_at_every_event_counts_flushes_as_crash_points() {
    // W0 W1 F W2 W3 F W4 W5 F: a cut at a flush makes that flush lose its writes.
    let mut events = Vec::new();
    for i in 0..6u64 {
        events.push(Event::Write(i));
        if i % 2 == 1 {
            events.push(Event::Flush);
        }
    }
    for cut in 0..=events.len() as u64 {
        let (_, dev) = faulty();
        dev.cut_at_event(cut);
        workload(&dev);
        assert_eq!(dev.events_issued(), events.len() as u64);
        assert_eq!(dev.is_cut(), cut < events.len() as u64, "cut at {cut}");
        let (mut issued, mut durable) = (Vec::new(), Vec::new());
        for event in &events[..cut as usize] {
            match *event {
                Event::Write(i) => issued.push(i),
                Event::Flush => durable.clone_from(&issued),
            }
        }
        for (mode, survivors) in [
            (CrashMode::LoseUnflushed, &durable),
            (CrashMode::KeepUnflushed, &issued),
        ] {
            let image = dev.crash_image(mode);
            for i in 0..6u64 {
                let want = if survivors.contains(&i) {
                    i as u8 + 1
                } else {
                    0
                };
                assert_eq!(
                    read(&image, i * 512, 512),
                    vec![want; 512],
                    "cut at event {cut}, sector {i}, {mode:?}"
                );
            }
        }
    }
}

#[test]
fn a_torn_cut_keeps_the_first_half_of_the_blocks_of_the_cut_write() {
    for fail in [false, true] {
        let (_, dev) = faulty();
        let dev = if fail { dev.failing_after_cut() } else { dev };
        dev.cut_at_write(1);
        dev.write_at(&[1; 4096], 0).unwrap();
        assert_eq!(dev.write_at(&[2; 4096], 8192).is_err(), fail);
        let torn = dev.crash_image(CrashMode::KeepUnflushedTornCut);
        assert_eq!(read(&torn, 0, 4096), vec![1; 4096]);
        assert_eq!(read(&torn, 8192, 2048), vec![2; 2048], "fail {fail}");
        assert_eq!(read(&torn, 8192 + 2048, 2048), vec![0; 2048], "fail {fail}");
        let whole = dev.crash_image(CrashMode::KeepUnflushed);
        assert_eq!(
            read(&whole, 8192, 4096),
            vec![0; 4096],
            "the cut write is lost"
        );
    }
    // A one-block write is atomic: the cut loses it whole.
    let (_, dev) = faulty();
    dev.cut_at_write(0);
    dev.write_at(&[3; 512], 0).unwrap();
    let torn = dev.crash_image(CrashMode::KeepUnflushedTornCut);
    assert_eq!(read(&torn, 0, 512), vec![0; 512]);
}

#[test]
fn reordering_modes_keep_even_odd_or_newest_unflushed_writes() {
    let (_, dev) = faulty();
    dev.write_at(&[9; 512], 0).unwrap();
    dev.flush().unwrap();
    for i in 1..=5u64 {
        dev.write_at(&[i as u8; 512], i * 512).unwrap();
    }
    // Unflushed writes 0..5 are sectors 1..=5.
    for (mode, kept) in [
        (CrashMode::KeepEven, vec![1, 3, 5]),
        (CrashMode::KeepOdd, vec![2, 4]),
        (CrashMode::KeepNewest, vec![5]),
    ] {
        let image = dev.crash_image(mode);
        assert_eq!(
            read(&image, 0, 512),
            vec![9; 512],
            "{mode:?}: flushed stays"
        );
        for i in 1..=5u64 {
            let want = if kept.contains(&i) { i as u8 } else { 0 };
            assert_eq!(
                read(&image, i * 512, 512),
                vec![want; 512],
                "{mode:?}, sector {i}"
            );
        }
    }
}

#[test]
fn random_subset_sometimes_tears_the_newest_write() {
    let (_, dev) = faulty();
    dev.write_at(&[1; 512], 0).unwrap();
    dev.write_at(&[2; 4096], 4096).unwrap();
    let mut kinds = std::collections::BTreeSet::new();
    for seed in 0..64 {
        let image = dev.crash_image(CrashMode::RandomSubset { seed });
        let newest = read(&image, 4096, 4096);
        let kept = newest.iter().filter(|&&b| b == 2).count();
        assert_eq!(kept % 512, 0, "torn at a block boundary, seed {seed}");
        assert!(
            newest[..kept].iter().all(|&b| b == 2),
            "a prefix survives, seed {seed}"
        );
        kinds.insert(match kept {
            0 => "lost",
            4096 => "whole",
            _ => "torn",
        });
    }
    assert_eq!(kinds.len(), 3, "over 64 seeds: {kinds:?}");
}

#[test]
fn failing_after_cut_fails_every_io_from_the_cut_on_and_names_it() {
    // Cut at event 2, the first flush: it fails and makes nothing durable.
    let (_, dev) = faulty();
    let dev = dev.failing_after_cut();
    dev.cut_at_event(2);
    dev.write_at(&[1; 512], 0).unwrap();
    dev.write_at(&[2; 512], 512).unwrap();
    let err = dev.flush().expect_err("the power failed at the flush");
    assert!(err.to_string().contains("power lost"), "{err}");
    let err = dev.write_at(&[3; 512], 1024).expect_err("no power");
    match &err {
        Error::Io { offset, op, .. } => assert_eq!((*offset, *op), (1024, Op::Write)),
        other => panic!("not an I/O error: {other}"),
    }
    let mut buf = [0u8; 512];
    assert!(dev.read_at(&mut buf, 0).is_err(), "reads fail too");
    assert!(dev.is_cut());
    let image = dev.crash_image(CrashMode::LoseUnflushed);
    assert_eq!(read(&image, 0, 1536), vec![0; 1536]);
    let image = dev.crash_image(CrashMode::KeepUnflushed);
    assert_eq!(read(&image, 0, 512), vec![1; 512]);
    assert_eq!(read(&image, 512, 512), vec![2; 512]);
    assert_eq!(read(&image, 1024, 512), vec![0; 512]);
}

#[test]
fn limit_space_fails_writes_with_enospc_and_stores_nothing() {
    let (mem, dev) = faulty();
    dev.limit_space(1024);
    dev.write_at(&[1; 512], 0).unwrap();
    let err = dev.write_at(&[2; 1024], 4096).expect_err("past the space");
    match &err {
        Error::Io { source, offset, .. } => {
            assert_eq!(source.raw_os_error(), Some(libc::ENOSPC));
            assert_eq!(*offset, 4096);
        }
        other => panic!("not an I/O error: {other}"),
    }
    assert_eq!(read(&*mem, 4096, 1024), vec![0; 1024], "nothing stored");
    dev.write_at(&[3; 512], 512).unwrap();
    assert!(
        dev.write_at(&[4; 512], 1024).is_err(),
        "the space is used up"
    );
    assert_eq!(dev.faults_hit(), 2);
    dev.clear_faults();
    dev.write_at(&[4; 512], 1024).unwrap();
}

#[test]
fn a_counterfeit_claims_more_than_it_holds_and_wraps() {
    let mem = Arc::new(MemDevice::new(16384));
    let dev = FaultyDevice::counterfeit(mem.clone(), 1 << 30);
    assert_eq!(dev.size_bytes(), 1 << 30, "it claims the advertised size");
    assert_eq!(dev.info().size_bytes, 1 << 30);
    dev.write_at(&[7; 512], (1 << 29) + 1024).unwrap();
    assert_eq!(
        read(&*mem, 1024, 512),
        vec![7; 512],
        "stored modulo the real size"
    );
    assert_eq!(read(&dev, 1024, 512), vec![7; 512]);
    assert!(
        dev.write_at(&[7; 512], 1 << 30).is_err(),
        "past the claim is refused"
    );
}

#[test]
fn writes_past_an_offset_are_lost_and_the_part_before_lands() {
    let (mem, dev) = faulty();
    dev.lose_writes_past(4096);
    dev.write_at(&[9; 1024], 3584).unwrap();
    assert_eq!(
        read(&*mem, 3584, 512),
        vec![9; 512],
        "the part before lands"
    );
    assert_eq!(
        read(&*mem, 4096, 512),
        vec![0; 512],
        "the part past is lost"
    );
    dev.write_at(&[9; 512], 8192).unwrap();
    assert_eq!(read(&dev, 8192, 512), vec![0; 512]);
}
