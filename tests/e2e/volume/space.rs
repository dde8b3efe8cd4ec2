//! Out of space in the library: the estimate a write of known size is checked against
//! is an upper bound (the largest write it accepts fits), a write that still runs out on
//! fragmented space removes its partial object or undoes its resume (or keeps it with
//! `keep_partial`), and space a removal cut short leaves to the older slot is free for
//! the next write.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use stack_bio::{CrashMode, Device, FaultyDevice, MemDevice};
use stack_csum::Algorithm;
use stack_volume::pipeline::PlannedWrite;
use stack_volume::{
    Error, FormatOptions, NoSpaceOutcome, OpenOptions, VerifyOptions, Volume, WriteOptions,
};

fn planned(name: &str, size_bytes: u64) -> Vec<PlannedWrite> {
    vec![PlannedWrite {
        name: name.to_string(),
        size_bytes,
    }]
}

fn commit_every(bytes: u64) -> WriteOptions {
    WriteOptions {
        commit_every_bytes: bytes,
        ..WriteOptions::default()
    }
}

/// The largest size `check_space` accepts, by bisection.
fn largest_accepted(vol: &Volume, opts: &WriteOptions) -> u64 {
    let (mut lo, mut hi) = (0u64, vol.free_bytes() + 1);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if vol.check_space(&planned("x", mid), opts).is_ok() {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

#[test]
fn the_largest_write_the_estimate_accepts_fits() {
    for (bs, algorithm, every) in [
        (4096, Algorithm::Crc32c, 1 << 30),
        (4096, Algorithm::Xxh3, 64 << 10),
        (512, Algorithm::Xxh64, 1 << 20),
        (512, Algorithm::Crc32c, 64 << 10),
    ] {
        let dev = Arc::new(MemDevice::new(6 << 20));
        let fopts = FormatOptions {
            block_size_bytes: bs,
            algorithm,
            ..FormatOptions::default()
        };
        let mut vol = Volume::format_device(dev, &fopts).unwrap();
        vol.write("small", &mut &[1u8; 5000][..], &WriteOptions::default())
            .unwrap();
        let opts = commit_every(every);
        let free = vol.free_bytes();
        let size = largest_accepted(&vol, &opts);
        let what = format!("{bs} B blocks, {algorithm:?}, commit every {every}: {size} of {free}");
        let err = vol
            .write_pattern("too-big", size + bs as u64, 1, &opts)
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::NoSpace {
                    outcome: NoSpaceOutcome::NothingWritten,
                    ..
                }
            ),
            "{what}: {err}"
        );
        vol.write_pattern("x", size, 1, &opts)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        // And it is not far too cautious: little is left.
        let left = vol.free_bytes();
        assert!(
            left < free / 50 + 32 * bs as u64,
            "{what}: {left} bytes left"
        );
        assert!(vol.verify(&VerifyOptions::default()).unwrap().clean());
    }
}

/// A volume whose free space is one-block holes, so every run needs a checksum block
/// per data block: far more than the estimate assumes. Returns the volume and the
/// device; `setup` runs first on the empty volume.
fn fragmented(setup: impl FnOnce(&mut Volume)) -> (Volume, Arc<MemDevice>) {
    let dev = Arc::new(MemDevice::new(4 << 20));
    let mut vol = Volume::format_device(dev.clone(), &FormatOptions::default()).unwrap();
    setup(&mut vol);
    let mut names = Vec::new();
    for i in 0.. {
        let name = format!("s{i}");
        if vol
            .write(&name, &mut &[i as u8; 4096][..], &WriteOptions::default())
            .is_err()
        {
            let _ = vol.remove(&name);
            break;
        }
        names.push(name);
    }
    for name in names.iter().step_by(2) {
        vol.remove(name).unwrap();
    }
    (vol, dev)
}

fn reopened_free(dev: &Arc<MemDevice>) -> u64 {
    Volume::open_device(dev.clone(), &OpenOptions::default())
        .unwrap()
        .free_bytes()
}

#[test]
fn a_write_estimated_to_fit_that_runs_out_removes_its_partial_object() {
    let (mut vol, dev) = fragmented(|_| {});
    let free_before = reopened_free(&dev);
    let objects_before = vol.objects();
    let size = free_before / 10 * 7;
    let opts = commit_every(64 << 10);
    vol.check_space(&planned("big", size), &opts)
        .expect("the estimate accepts it");
    let generation = vol.generation();
    let err = vol.write_pattern("big", size, 1, &opts).unwrap_err();
    match &err {
        Error::NoSpace {
            outcome:
                NoSpaceOutcome::Removed {
                    name,
                    written_bytes,
                },
            ..
        } => {
            assert_eq!(name, "big");
            assert!(*written_bytes > 0, "{err}");
        }
        other => panic!("{other}"),
    }
    assert!(
        vol.generation() > generation,
        "committed parts were removed"
    );
    assert!(vol.object("big").is_none());
    assert_eq!(vol.objects(), objects_before);
    drop(vol);
    assert_eq!(reopened_free(&dev), free_before, "space not given back");
    let vol = Volume::open_device(dev.clone(), &OpenOptions::default()).unwrap();
    assert!(vol.verify(&VerifyOptions::default()).unwrap().clean());
    super::accounting::check(&vol, &*dev).unwrap();
}

#[test]
fn keep_partial_keeps_a_write_that_runs_out_as_an_incomplete_object() {
    let (mut vol, dev) = fragmented(|_| {});
    let size = vol.free_bytes() / 10 * 7;
    let opts = WriteOptions {
        keep_partial: true,
        ..commit_every(64 << 10)
    };
    let err = vol.write_pattern("big", size, 1, &opts).unwrap_err();
    let Error::NoSpace {
        outcome: NoSpaceOutcome::Kept { name, size_bytes },
        ..
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!(name, "big");
    let info = vol.object("big").expect("kept");
    assert!(!info.complete);
    assert_eq!(info.size_bytes, *size_bytes);
    assert!(*size_bytes > 0 && *size_bytes < size);
    drop(vol);
    let vol = Volume::open_device(dev.clone(), &OpenOptions::default()).unwrap();
    assert!(vol.verify(&VerifyOptions::default()).unwrap().clean());
    super::accounting::check(&vol, &*dev).unwrap();
}

#[test]
fn a_resume_that_runs_out_is_undone_and_the_object_stays_as_it_was() {
    let (mut vol, dev) = fragmented(|vol| {
        let cancel = Arc::new(AtomicBool::new(false));
        let flag = cancel.clone();
        let opts = WriteOptions {
            cancel: Some(cancel),
            progress: Some(Arc::new(move |p: stack_volume::Progress| {
                if p.done_bytes >= 64 << 10 {
                    flag.store(true, Ordering::Relaxed);
                }
            })),
            ..commit_every(64 << 10)
        };
        assert!(vol.write_pattern("p", 1 << 20, 7, &opts).is_err());
    });
    let before = vol.object("p").unwrap();
    assert!(!before.complete);
    let mut bytes_before = Vec::new();
    vol.read("p", &mut bytes_before).unwrap();
    let free_before = reopened_free(&dev);
    let opts = commit_every(64 << 10);
    vol.check_space(&planned("p", 1 << 20), &opts)
        .expect("the estimate accepts the rest of p");
    let err = vol.resume("p", &opts).unwrap_err();
    let Error::NoSpace {
        outcome:
            NoSpaceOutcome::ResumeUndone {
                name,
                size_bytes,
                written_bytes,
            },
        ..
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!((name.as_str(), *size_bytes), ("p", before.size_bytes));
    assert!(*written_bytes > 0);
    assert!(err.to_string().contains("stays incomplete"), "{err}");
    assert_eq!(vol.object("p").unwrap(), before);
    let mut bytes_after = Vec::new();
    vol.read("p", &mut bytes_after).unwrap();
    assert!(bytes_after == bytes_before, "p changed");
    drop(vol);
    assert_eq!(reopened_free(&dev), free_before, "space not given back");
    let vol = Volume::open_device(dev.clone(), &OpenOptions::default()).unwrap();
    assert!(vol.verify(&VerifyOptions::default()).unwrap().clean());
    super::accounting::check(&vol, &*dev).unwrap();
}

/// A removal cut between its two commits leaves the object's blocks to the older slot
/// alone: they must count as free, and a write that needs them must get them.
#[test]
fn space_a_cut_removal_leaves_to_the_older_slot_is_free_for_the_next_write() {
    let image = {
        let dev = Arc::new(MemDevice::new(4 << 20));
        let mut vol = Volume::format_device(dev.clone(), &FormatOptions::default()).unwrap();
        vol.write_pattern("old", 3 << 20, 1, &WriteOptions::default())
            .unwrap();
        drop(vol);
        dev.snapshot()
    };
    let mem: Arc<dyn Device> = Arc::new(MemDevice::from_bytes(image, 4096));
    let dev = Arc::new(
        FaultyDevice::new(mem)
            .with_crash_model()
            .unwrap()
            .failing_after_cut(),
    );
    // The first commit of the removal: table, flush, superblock, flush.
    dev.cut_at_event(4);
    let mut vol = Volume::open_device(dev.clone(), &OpenOptions::default()).unwrap();
    assert!(vol.remove("old").is_err(), "the second commit is cut");
    drop(vol);
    let image = Arc::new(dev.crash_image(CrashMode::LoseUnflushed));
    let mut vol = Volume::open_device(image.clone(), &OpenOptions::default()).unwrap();
    assert!(vol.object("old").is_none(), "the first commit is durable");
    super::accounting::check(&vol, &*image).unwrap();
    assert!(
        vol.free_bytes() > 3 << 20,
        "{} bytes free",
        vol.free_bytes()
    );
    vol.write_pattern("new", 3 << 20, 2, &WriteOptions::default())
        .unwrap();
    assert!(vol.verify(&VerifyOptions::default()).unwrap().clean());
    super::accounting::check(&vol, &*image).unwrap();
}

/// A replacement used to commit the new object, incomplete, at its first intermediate
/// commit, dropping the old one: an interrupted or failed `--replace` lost the object it
/// was to replace. The old object now stays until the commit that completes the new one.
#[test]
fn a_replacement_that_runs_out_or_is_cancelled_keeps_the_old_object() {
    let dev = Arc::new(MemDevice::new(4 << 20));
    let mut vol = Volume::format_device(dev.clone(), &FormatOptions::default()).unwrap();
    let old: Vec<u8> = (0..(1 << 20)).map(|i| (i % 251) as u8).collect();
    vol.write("x", &mut &old[..], &WriteOptions::default())
        .unwrap();
    let free_before = reopened_free(&dev);
    let generation = vol.generation();
    let opts = WriteOptions {
        replace: true,
        keep_partial: true,
        ..commit_every(64 << 10)
    };
    // Larger than the free space, read from a stream of unknown size.
    let new = vec![9u8; 3 << 20];
    let err = vol.write("x", &mut &new[..], &opts).unwrap_err();
    match &err {
        Error::NoSpace {
            outcome:
                NoSpaceOutcome::ReplaceAbandoned {
                    name,
                    written_bytes,
                },
            ..
        } => assert!(name == "x" && *written_bytes > 64 << 10, "{err}"),
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains("the old object stays"), "{err}");
    // Cancelled half-way: interrupted, and the old object is still whole.
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = cancel.clone();
    let opts = WriteOptions {
        replace: true,
        cancel: Some(cancel),
        progress: Some(Arc::new(move |p: stack_volume::Progress| {
            if p.done_bytes >= 256 << 10 {
                flag.store(true, Ordering::Relaxed);
            }
        })),
        ..commit_every(64 << 10)
    };
    let err = vol.write("x", &mut &new[..(1 << 20)], &opts).unwrap_err();
    assert!(matches!(err, Error::Interrupted), "{err}");
    assert_eq!(vol.generation(), generation, "something was committed");
    let info = vol.object("x").unwrap();
    assert!(info.complete);
    let mut back = Vec::new();
    vol.read("x", &mut back).unwrap();
    assert!(back == old, "the old object changed");
    drop(vol);
    assert_eq!(reopened_free(&dev), free_before, "space not given back");
}
