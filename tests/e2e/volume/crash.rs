//! Crash consistency: a small workload is cut at every write boundary, under several
//! models of what a disk with a write cache keeps, and the volume must then open, verify
//! clean, and hold exactly the last committed state (plus, for the operation cut short,
//! nothing, a verifiable incomplete prefix, or the whole result).
//!
//! Two runs of `FaultyDevice`'s crash model: cut before write N with the program running
//! on unaware (lose, keep or keep a random subset of the unflushed writes), and the
//! stricter power loss: cut at every write *and flush*, every I/O failing from the cut
//! on, the write in progress torn and the unflushed writes kept in reordered subsets.
//! The second is the one that catches a missing flush between the object table and the
//! superblock.

use std::sync::Arc;

use stack_bio::{CrashMode, Device, FaultyDevice, MemDevice};
use stack_volume::{FormatOptions, OpenOptions, VerifyOptions, Volume, WriteOptions};

const VOLUME_BYTES: u64 = 2 << 20;

fn content(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// One step of the workload and what it leaves when it completes.
#[derive(Debug, Clone)]
enum Op {
    Write(&'static str, Vec<u8>),
    Pattern(&'static str, u64),
    Remove(&'static str),
}

fn workload() -> Vec<Op> {
    vec![
        Op::Write("a", content(150_000, 1)),
        Op::Pattern("p", (200 << 10) + 100),
        Op::Remove("a"),
        Op::Write("b", content(5000, 2)),
        Op::Write("empty", Vec::new()),
    ]
}

fn run(vol: &mut Volume, op: &Op) -> Result<(), stack_volume::Error> {
    let opts = WriteOptions {
        commit_every_bytes: 64 << 10,
        ..WriteOptions::default()
    };
    match op {
        Op::Write(name, bytes) => vol.write(name, &mut &bytes[..], &opts).map(drop),
        Op::Pattern(name, size) => vol.write_pattern(name, *size, 9, &opts).map(drop),
        Op::Remove(name) => vol.remove(name),
    }
}

fn read(vol: &Volume, name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    vol.read(name, &mut out)
        .unwrap_or_else(|e| panic!("read {name}: {e}"));
    out
}

/// Checks the reopened volume against the ops that completed and the one cut short.
fn check(vol: &Volume, done: &[Op], cut: Option<&Op>, pattern_bytes: &[u8], what: &str) {
    let report = vol.verify(&VerifyOptions::default()).unwrap();
    assert!(report.clean(), "{what}: {report:#?}");
    let mut expect: Vec<(&str, Vec<u8>)> = Vec::new();
    for op in done {
        match op {
            Op::Write(n, b) => expect.push((n, b.clone())),
            Op::Pattern(n, _) => expect.push((n, pattern_bytes.to_vec())),
            Op::Remove(n) => expect.retain(|(m, _)| m != n),
        }
    }
    let listed: Vec<String> = vol.objects().into_iter().map(|o| o.name).collect();
    let cut_name = match cut {
        Some(Op::Write(n, _) | Op::Pattern(n, _) | Op::Remove(n)) => Some(*n),
        None => None,
    };
    for (name, bytes) in &expect {
        if Some(*name) == cut_name {
            continue; // a remove cut short may or may not have committed
        }
        let info = vol
            .object(name)
            .unwrap_or_else(|| panic!("{what}: {name} missing; have {listed:?}"));
        assert!(info.complete, "{what}: {name} incomplete");
        assert_eq!(&read(vol, name), bytes, "{what}: {name} differs");
    }
    for name in &listed {
        if expect.iter().any(|(n, _)| n == name) {
            continue;
        }
        // Anything else must be the write cut short: complete, or a prefix.
        assert_eq!(
            Some(name.as_str()),
            cut_name,
            "{what}: unexpected object {name}"
        );
        let full = match cut {
            Some(Op::Write(_, b)) => b.clone(),
            Some(Op::Pattern(..)) => pattern_bytes.to_vec(),
            _ => unreachable!(),
        };
        let got = read(vol, name);
        let info = vol.object(name).unwrap();
        if info.complete {
            assert_eq!(got, full, "{what}: {name} complete but differs");
        } else {
            assert!(
                got.len() < full.len(),
                "{what}: incomplete {name} is full size"
            );
            assert_eq!(
                got[..],
                full[..got.len()],
                "{what}: incomplete {name} is not a prefix"
            );
        }
    }
}

/// The formatted starting image, the workload's I/O count on `count`, and the pattern
/// object's bytes.
fn dry_run<D: Device + 'static>(
    make: impl FnOnce(Vec<u8>) -> Arc<D>,
    count: impl FnOnce(&D) -> u64,
) -> (Vec<u8>, u64, Vec<u8>) {
    let base = {
        let dev = Arc::new(MemDevice::new(VOLUME_BYTES));
        drop(Volume::format_device(dev.clone(), &FormatOptions::default()).unwrap());
        dev.snapshot()
    };
    let dev = make(base.clone());
    let mut vol = Volume::open_device(dev.clone(), &OpenOptions::default()).unwrap();
    for op in workload() {
        run(&mut vol, &op).unwrap();
    }
    let p = read(&vol, "p");
    drop(vol);
    let n = count(&dev);
    (base, n, p)
}

/// Reopens a crash image and checks it; then writes more to show the space taken after
/// the last commit is free again.
fn reopen_and_check(image: MemDevice, ops: &[Op], done: usize, pattern_bytes: &[u8], what: &str) {
    let image = Arc::new(image);
    let mut vol = Volume::open_device(image, &OpenOptions::default())
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    check(&vol, &ops[..done], ops.get(done), pattern_bytes, what);
    vol.write(
        "after",
        &mut &content(30_000, 7)[..],
        &WriteOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        vol.verify(&VerifyOptions::default()).unwrap().clean(),
        "{what}"
    );
}

/// A crash-modelled device over `image`, with 512-byte sectors.
fn faulty(image: Vec<u8>) -> FaultyDevice {
    let mem: Arc<dyn Device> = Arc::new(MemDevice::from_bytes(image, 512));
    FaultyDevice::new(mem).with_crash_model().unwrap()
}

#[test]
fn faulty_device_cut_at_every_write_keeps_the_last_commit() {
    let (base, total_writes, pattern_bytes) =
        dry_run(|image| Arc::new(faulty(image)), |d| d.writes_issued());
    assert!(
        total_writes > 30,
        "the workload makes {total_writes} writes"
    );
    let ops = workload();
    let modes = [
        CrashMode::LoseUnflushed,
        CrashMode::KeepUnflushed,
        CrashMode::RandomSubset { seed: 1 },
        CrashMode::RandomSubset { seed: 2 },
        CrashMode::RandomSubset { seed: 3 },
    ];
    for cut in 0..=total_writes {
        // The program does not notice the cut: run everything, note which ops had all
        // their writes (and so their final flush) before it.
        let dev = Arc::new(faulty(base.clone()));
        dev.cut_at_write(cut);
        let mut vol = Volume::open_device(dev.clone(), &OpenOptions::default()).unwrap();
        let mut done = 0;
        for op in &ops {
            run(&mut vol, op).unwrap();
            if dev.writes_issued() <= cut {
                done += 1;
            }
        }
        drop(vol);
        for mode in modes {
            let what = format!(
                "FaultyDevice cut at write {cut}/{total_writes}, {mode:?}, after {done} ops"
            );
            reopen_and_check(dev.crash_image(mode), &ops, done, &pattern_bytes, &what);
        }
    }
}

#[test]
fn power_loss_at_every_write_and_flush_keeps_the_last_commit() {
    let (base, total_writes, pattern_bytes) =
        dry_run(|image| Arc::new(faulty(image)), |d| d.events_issued());
    assert!(
        total_writes > 30,
        "the workload makes {total_writes} writes and flushes"
    );
    let ops = workload();
    let mut cases = 0;
    let modes = [
        CrashMode::LoseUnflushed,
        CrashMode::KeepUnflushed,
        CrashMode::KeepUnflushedTornCut,
        CrashMode::KeepEven,
        CrashMode::KeepOdd,
        CrashMode::KeepNewest,
    ];
    for crash_at in 0..=total_writes {
        for mode in modes {
            let dev = Arc::new(faulty(base.clone()).failing_after_cut());
            dev.cut_at_event(crash_at);
            let mut vol = Volume::open_device(dev.clone(), &OpenOptions::default()).unwrap();
            let mut done = 0;
            for op in &ops {
                if run(&mut vol, op).is_err() {
                    break;
                }
                done += 1;
            }
            drop(vol);
            let what = format!(
                "power lost at event {crash_at}/{total_writes}, {mode:?}, after {done} ops"
            );
            reopen_and_check(dev.crash_image(mode), &ops, done, &pattern_bytes, &what);
            cases += 1;
        }
    }
    assert_eq!(cases, (total_writes + 1) * modes.len() as u64);
}

/// The changes whose every step is cut: a new object, the resume of an interrupted
/// pattern write, a removal and a replacement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Write,
    Resume,
    Remove,
    Replace,
}

const STEPS: [Step; 4] = [Step::Write, Step::Resume, Step::Remove, Step::Replace];
/// Target size of the interrupted pattern object `p`.
const P_BYTES: u64 = 300 << 10;

fn step_opts() -> WriteOptions {
    WriteOptions {
        commit_every_bytes: 64 << 10,
        ..WriteOptions::default()
    }
}

fn run_step(vol: &mut Volume, step: Step) -> Result<(), stack_volume::Error> {
    match step {
        Step::Write => vol
            .write("c", &mut &content(100_000, 3)[..], &step_opts())
            .map(drop),
        Step::Resume => vol.resume("p", &step_opts()).map(drop),
        Step::Remove => vol.remove("a"),
        Step::Replace => {
            let opts = WriteOptions {
                replace: true,
                ..step_opts()
            };
            vol.write("b", &mut &content(180_000, 4)[..], &opts)
                .map(drop)
        }
    }
}

/// A formatted image holding `a`, `b` and the pattern object `p` interrupted after its
/// first commits.
fn steps_base() -> Vec<u8> {
    let dev = Arc::new(MemDevice::new(VOLUME_BYTES));
    let mut vol = Volume::format_device(dev.clone(), &FormatOptions::default()).unwrap();
    vol.write("a", &mut &content(150_000, 1)[..], &step_opts())
        .unwrap();
    vol.write("b", &mut &content(60_000, 2)[..], &step_opts())
        .unwrap();
    let cancel = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = cancel.clone();
    let opts = WriteOptions {
        cancel: Some(cancel),
        progress: Some(Arc::new(move |p: stack_volume::Progress| {
            if p.done_bytes >= 100 << 10 {
                flag.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        })),
        ..step_opts()
    };
    let err = vol.write_pattern("p", P_BYTES, 5, &opts).unwrap_err();
    assert!(matches!(err, stack_volume::Error::Interrupted), "{err}");
    assert!(!vol.object("p").unwrap().complete);
    drop(vol);
    dev.snapshot()
}

/// What each object holds after `done` steps, the one cut short aside.
fn expected_after(done: usize, p_full: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let mut objects = vec![
        ("a", content(150_000, 1)),
        ("b", content(60_000, 2)),
        ("p", Vec::new()),
    ];
    for step in &STEPS[..done] {
        match step {
            Step::Write => objects.push(("c", content(100_000, 3))),
            Step::Resume => objects[2].1 = p_full.to_vec(),
            Step::Remove => objects.retain(|(n, _)| *n != "a"),
            Step::Replace => {
                for o in &mut objects {
                    if o.0 == "b" {
                        o.1 = content(180_000, 4);
                    }
                }
            }
        }
    }
    objects
}

/// After a crash in step `done` (or after all of them): verify is clean, every block is
/// accounted for, every committed object reads back byte-exact, the step cut short shows
/// its old state, its new one or (a new object) a verifiable prefix; and once every object is
/// removed the free space is a fresh volume's.
fn check_steps(image: MemDevice, done: usize, p_full: &[u8], fresh_free: u64, what: &str) {
    let image = Arc::new(image);
    let mut vol = Volume::open_device(image.clone(), &OpenOptions::default())
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let report = vol.verify(&VerifyOptions::default()).unwrap();
    assert!(report.clean(), "{what}: {report:#?}");
    super::accounting::check(&vol, &*image).unwrap_or_else(|e| panic!("{what}: {e}"));
    let before = expected_after(done, p_full);
    let after = expected_after((done + 1).min(STEPS.len()), p_full);
    let listed: Vec<String> = vol.objects().into_iter().map(|o| o.name).collect();
    for name in ["a", "b", "c", "p"] {
        let old = before.iter().find(|(n, _)| *n == name).map(|(_, b)| b);
        let new = after.iter().find(|(n, _)| *n == name).map(|(_, b)| b);
        let Some(info) = vol.object(name) else {
            assert!(
                old.is_none() || new.is_none(),
                "{what}: {name} missing; have {listed:?}"
            );
            continue;
        };
        let got = read(&vol, name);
        let is = |b: Option<&Vec<u8>>| b.is_some_and(|b| *b == got);
        let prefix = |b: Option<&Vec<u8>>| {
            b.is_some_and(|b| got.len() < b.len() && b[..got.len()] == got[..])
        };
        if name == "p" && !info.complete {
            // Interrupted before and maybe resumed part of the way: a prefix of the whole.
            assert!(done < 2, "{what}: p incomplete after its resume");
            assert!(prefix(Some(&p_full.to_vec())), "{what}: p is not a prefix");
        } else if info.complete {
            assert!(is(old) || is(new), "{what}: {name} complete but differs");
        } else {
            // Only a new object shows a partial state; a replacement is old or new whole.
            assert!(old.is_none(), "{what}: {name} incomplete, was complete");
            assert!(
                prefix(new),
                "{what}: incomplete {name} is not a prefix of its new bytes"
            );
        }
    }
    for name in &listed {
        assert!(
            ["a", "b", "c", "p"].contains(&name.as_str()),
            "{what}: unexpected {name}"
        );
    }
    for name in listed {
        vol.remove(&name)
            .unwrap_or_else(|e| panic!("{what}: rm {name}: {e}"));
    }
    super::accounting::check(&vol, &*image).unwrap_or_else(|e| panic!("{what}: emptied: {e}"));
    assert_eq!(vol.free_bytes(), fresh_free, "{what}: space leaked");
    drop(vol);
    let vol = Volume::open_device(image.clone(), &OpenOptions::default()).unwrap();
    assert_eq!(
        vol.free_bytes(),
        fresh_free,
        "{what}: space leaked (reopened)"
    );
}

/// The soak once found an emptied volume with 91 MiB used: a removal killed between its
/// two commits left the removed object referenced by the older superblock slot alone,
/// and opening kept those blocks busy and out of the free space until some later write
/// committed, so `info` and the space check counted them as used. This cuts every I/O
/// event (each write and each flush) of a write, a resume, a removal and a replacement,
/// under every crash model, and accounts for every block after each.
#[test]
fn every_step_of_write_resume_rm_and_replace_accounts_for_every_block() {
    let base = steps_base();
    let fresh_free = {
        let dev = Arc::new(MemDevice::new(VOLUME_BYTES));
        drop(Volume::format_device(dev.clone(), &FormatOptions::default()).unwrap());
        Volume::open_device(dev, &OpenOptions::default())
            .unwrap()
            .free_bytes()
    };
    // The steps run the same way up to any cut, so `p`'s pattern blocks (which name
    // their physical block and generation) are those of the uncut run.
    let (events, p_full) = {
        let dev = Arc::new(faulty(base.clone()));
        let mut vol = Volume::open_device(dev.clone(), &OpenOptions::default()).unwrap();
        for step in STEPS {
            run_step(&mut vol, step).unwrap();
        }
        let p_full = read(&vol, "p");
        assert_eq!(p_full.len() as u64, P_BYTES);
        drop(vol);
        (dev.events_issued(), p_full)
    };
    assert!(events > 40, "the steps make {events} writes and flushes");
    let modes = [
        CrashMode::LoseUnflushed,
        CrashMode::KeepUnflushed,
        CrashMode::KeepUnflushedTornCut,
        CrashMode::KeepEven,
        CrashMode::KeepOdd,
        CrashMode::KeepNewest,
    ];
    let mut cases = 0;
    for crash_at in 0..=events {
        let dev = Arc::new(faulty(base.clone()).failing_after_cut());
        dev.cut_at_event(crash_at);
        let mut vol = Volume::open_device(dev.clone(), &OpenOptions::default()).unwrap();
        let mut done = 0;
        for step in STEPS {
            if run_step(&mut vol, step).is_err() {
                break;
            }
            done += 1;
        }
        drop(vol);
        for mode in modes {
            let what =
                format!("power lost at event {crash_at}/{events}, {mode:?}, after {done} steps");
            check_steps(dev.crash_image(mode), done, &p_full, fresh_free, &what);
            cases += 1;
        }
    }
    assert_eq!(cases, (events + 1) * modes.len() as u64);
}
