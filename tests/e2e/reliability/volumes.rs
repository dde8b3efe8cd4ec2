//! Thousands of mutated small volumes: damage in the superblocks, the object table,
//! checksum blocks and data, with and without recomputed checksums; each one opened and
//! verified. Every case must end in an error or a report (never a panic, a hang, or an
//! allocation sized by an untrusted length), and damage to a block the committed state
//! references must never verify clean.
//!
//! The cases run in a child process of this test binary (the `volume_cases_child` test,
//! started with an environment variable naming the case range): a decoder that asked for
//! terabytes would abort the process rather than panic, and the parent must still name
//! the case. Inside the child every case also runs on its own thread with a time bound.

use std::collections::BTreeSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::Command;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use stack_bio::{Device, MemDevice};
use stack_csum::Algorithm;
use stack_volume::format::{
    decode_meta_stream, uuid_salt, MetaKind, ObjectTable, Superblock, SB_BYTES, SB_SLOT_OFFSETS,
};
use stack_volume::{FormatOptions, OpenOptions, VerifyOptions, Volume, WriteOptions};

use super::alloc_track::largest_allocation;
use super::mutate::{mutate_once, Rng};

const BS: u32 = 512;
const DEVICE_BYTES: u64 = 320 * 1024;
/// Cases in the normal test run.
const CASES: u64 = 3000;
/// Time bound of one open + verify.
const CASE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest single allocation open + verify may make on a 320 KiB volume.
const MAX_ALLOC_BYTES: usize = 64 << 20;
const ENV_RANGE: &str = "STACK_RELIABILITY_VOLUME_CASES";

/// A seed image and what its committed state references.
struct Seed {
    image: Vec<u8>,
    algorithm: Algorithm,
}

/// Small volumes: empty, and with files, a pattern and a removal, for each algorithm.
fn seeds() -> Vec<Seed> {
    let mut out = Vec::new();
    for algorithm in Algorithm::ALL {
        let opts = FormatOptions {
            block_size_bytes: BS,
            algorithm,
            ..FormatOptions::default()
        };
        let dev = Arc::new(MemDevice::new(DEVICE_BYTES));
        drop(Volume::format_device(dev.clone(), &opts).expect("format"));
        out.push(Seed {
            image: dev.snapshot(),
            algorithm,
        });

        let dev = Arc::new(MemDevice::new(DEVICE_BYTES));
        let mut vol = Volume::format_device(dev.clone(), &opts).expect("format");
        let w = WriteOptions::default();
        let file: Vec<u8> = (0..3000u32).map(|i| (i * 31 % 251) as u8).collect();
        vol.write("file-a", &mut &file[..], &w)
            .expect("seed write file-a");
        vol.write_pattern("pattern", 24 * 1024, 7, &w)
            .expect("seed write pattern");
        vol.write("gone", &mut &b"short-lived"[..], &w)
            .expect("seed write gone");
        vol.remove("gone").expect("seed remove");
        vol.write("file-b", &mut &file[..700], &w)
            .expect("seed write file-b");
        drop(vol);
        out.push(Seed {
            image: dev.snapshot(),
            algorithm,
        });
    }
    out
}

/// Byte ranges of the image by role: superblock fields, table blocks, checksum and data
/// blocks the newest committed state references.
#[derive(Debug, Default)]
struct Layout {
    /// Ranges any change to which must not verify clean.
    must_detect: Vec<(u64, u64)>,
    /// Ranges worth aiming at (the above plus anything else the volume uses).
    targets: Vec<(u64, u64)>,
    /// Metadata blocks (checksum recomputable): (block, kind).
    meta_blocks: BTreeSet<u64>,
}

fn layout(image: &[u8], algorithm: Algorithm) -> Layout {
    let bs = u64::from(BS);
    let mut l = Layout::default();
    let mut newest: Option<(Superblock, ObjectTable)> = None;
    for slot in [0u8, 1] {
        let at = SB_SLOT_OFFSETS[usize::from(slot)];
        l.must_detect.push((at, at + SB_BYTES as u64));
        l.targets.push((at, at + SB_BYTES as u64));
        let sb = Superblock::decode(&image[at as usize..at as usize + 512], slot)
            .expect("seed superblock");
        let start = sb.meta_start_block;
        let bytes = &image[(start * bs) as usize..((start + sb.meta_blocks) * bs) as usize];
        let mut payload = Vec::new();
        let salt = uuid_salt(&sb.uuid);
        decode_meta_stream(
            bytes,
            start,
            MetaKind::ObjectTable,
            sb.generation,
            sb.meta_len_bytes,
            algorithm,
            salt,
            BS,
            &mut payload,
        )
        .expect("seed table");
        let table = ObjectTable::decode(
            &payload,
            sb.generation,
            sb.total_blocks,
            BS,
            algorithm.width_bytes(),
            start,
        )
        .expect("seed table");
        for b in start..start + sb.meta_blocks {
            l.meta_blocks.insert(b);
        }
        l.must_detect
            .push((start * bs, (start + sb.meta_blocks) * bs));
        if newest
            .as_ref()
            .is_none_or(|(n, _)| n.generation < sb.generation)
        {
            newest = Some((sb, table));
        }
    }
    let (_, table) = newest.expect("a newest slot");
    for o in &table.objects {
        for r in &o.runs {
            let csum_blocks = r.csum_blocks(BS, algorithm.width_bytes());
            for b in r.csum_start_block..r.csum_start_block + csum_blocks {
                l.meta_blocks.insert(b);
            }
            l.must_detect.push((
                r.csum_start_block * bs,
                (r.csum_start_block + csum_blocks) * bs,
            ));
            l.must_detect.push((
                r.data_start_block * bs,
                (r.data_start_block + r.data_blocks) * bs,
            ));
        }
    }
    l.targets.extend(l.must_detect.iter().copied());
    l
}

fn fix_meta_block(image: &mut [u8], block: u64, algorithm: Algorithm, salt: u64) {
    let bs = BS as usize;
    let b = &mut image[block as usize * bs..(block as usize + 1) * bs];
    let seed = salt ^ block.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let head = stack_csum::checksum(algorithm, seed, &b[..40]);
    let csum = stack_csum::checksum(algorithm, head, &b[48..]);
    b[40..48].copy_from_slice(&csum.to_le_bytes());
}

/// Mutates `image` in one or two regions; returns whether bytes the committed state
/// protects changed behind an intact checksum (so verify must not call it clean). A
/// mutation whose checksum was recomputed is a valid-looking structure: it must not
/// crash anything, but it may legitimately pass.
fn mutate_image(
    rng: &mut Rng,
    image: &mut [u8],
    l: &Layout,
    algorithm: Algorithm,
    salt: u64,
) -> bool {
    let before = image.to_vec();
    let mut fixed = false;
    for _ in 0..=rng.below(2) {
        let (start, end) = l.targets[rng.index(l.targets.len())];
        let len = (end - start) as usize;
        let mut region = image[start as usize..end as usize].to_vec();
        mutate_once(rng, &mut region, len);
        region.resize(len, 0);
        image[start as usize..end as usize].copy_from_slice(&region);
        if rng.one_in(2) {
            fixed = true;
            // Recompute checksums so open reaches the fields behind them.
            for slot_at in SB_SLOT_OFFSETS {
                let at = slot_at as usize;
                if (slot_at..slot_at + SB_BYTES as u64).contains(&start) {
                    let crc =
                        stack_csum::checksum(Algorithm::Crc32c, 0, &image[at..at + SB_BYTES - 8]);
                    image[at + SB_BYTES - 8..at + SB_BYTES].copy_from_slice(&crc.to_le_bytes());
                }
            }
            let first = start / u64::from(BS);
            if l.meta_blocks.contains(&first) {
                fix_meta_block(image, first, algorithm, salt);
            }
        }
    }
    !fixed
        && l.must_detect
            .iter()
            .any(|&(s, e)| image[s as usize..e as usize] != before[s as usize..e as usize])
}

/// What one case ended in.
fn run_case(image: Vec<u8>) -> Result<String, String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let dev: Arc<dyn Device> = Arc::new(MemDevice::from_bytes(image, 512));
            let (opened, largest) =
                largest_allocation(|| Volume::open_device(dev, &OpenOptions::default()));
            if largest > MAX_ALLOC_BYTES {
                return Err(format!("open allocated {largest} bytes at once"));
            }
            match opened {
                Err(e) => Ok(format!("error: {e}")),
                // The slot open chose must fit the device (the other slot may claim
                // more: open refuses it and falls back).
                Ok(vol) if vol.info().size_bytes > DEVICE_BYTES => Err(format!(
                    "opened a volume of {} bytes on a {DEVICE_BYTES}-byte device",
                    vol.info().size_bytes
                )),
                Ok(vol) => match vol.verify(&VerifyOptions::default()) {
                    Err(e) => Ok(format!("verify error: {e}")),
                    Ok(r) if r.clean() => Ok("clean".to_string()),
                    Ok(r) => Ok(format!(
                        "damage: {} ranges, metadata ok {}",
                        r.damaged.len(),
                        r.metadata_ok
                    )),
                },
            }
        }));
        let _ = tx.send(outcome.unwrap_or_else(|p| {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err(format!("panicked: {msg}"))
        }));
    });
    match rx.recv_timeout(CASE_TIMEOUT) {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {CASE_TIMEOUT:?} (hang)")),
    }
}

/// The case generator: case `n` is the same image in every run.
fn case_image(seeds: &[(Seed, Layout)], n: u64) -> (Vec<u8>, bool) {
    let mut rng = Rng::new(0x5151 ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let (seed, l) = &seeds[rng.index(seeds.len())];
    let mut image = seed.image.clone();
    let sb = Superblock::decode(&image[..512], 0).expect("seed slot 0");
    let must = mutate_image(&mut rng, &mut image, l, seed.algorithm, uuid_salt(&sb.uuid));
    (image, must)
}

/// Runs cases `from..to` and prints one line per case: `case N ok|FAIL ...`.
#[test]
#[ignore = "started by mutated_volumes_never_panic_hang_or_pass_damage_as_clean in a child process"]
fn volume_cases_child() {
    let Ok(range) = std::env::var(ENV_RANGE) else {
        return;
    };
    let (from, to) = range.split_once("..").expect("range");
    let (from, to): (u64, u64) = (from.parse().expect("from"), to.parse().expect("to"));
    let seeds: Vec<(Seed, Layout)> = seeds()
        .into_iter()
        .map(|s| {
            let l = layout(&s.image, s.algorithm);
            (s, l)
        })
        .collect();
    for n in from..to {
        println!("case {n} start");
        let (image, must_detect) = case_image(&seeds, n);
        match run_case(image) {
            Ok(outcome) if must_detect && outcome == "clean" => {
                println!("case {n} FAIL damage to committed bytes verified clean");
            }
            Ok(outcome) => println!("case {n} ok {outcome}"),
            Err(why) => {
                println!("case {n} FAIL {why}");
                if why.contains("hang") {
                    // The stuck thread would outlive the rest; stop here.
                    std::process::exit(3);
                }
            }
        }
    }
    println!("range done");
}

/// Runs `from..to` in a child; returns the failures, restarting after a case that kills
/// the child.
fn run_range(from: u64, to: u64) -> Vec<String> {
    let exe = std::env::current_exe().expect("test binary");
    let mut failures = Vec::new();
    let mut next = from;
    while next < to {
        let out = Command::new(&exe)
            .args([
                "--exact",
                "reliability::volumes::volume_cases_child",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ENV_RANGE, format!("{next}..{to}"))
            .output()
            .expect("run the child");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let mut last_started = None;
        for line in stdout.lines() {
            if let Some(rest) = line.strip_prefix("case ") {
                let n: u64 = rest
                    .split_whitespace()
                    .next()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(next);
                if rest.contains(" FAIL ") {
                    failures.push(line.to_string());
                }
                last_started = Some(n);
            }
        }
        if stdout.contains("range done") {
            break;
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let Some(dead) = last_started else {
            let tail: String = stderr
                .lines()
                .filter(|l| !l.trim().is_empty())
                .rev()
                .take(6)
                .collect::<Vec<_>>()
                .join(" | ");
            failures.push(format!(
                "cases {next}..{to}: the child did not start ({}): {tail}",
                out.status
            ));
            break;
        };
        // The child died in a case: record it and go on after it.
        if !failures
            .iter()
            .any(|f| f.starts_with(&format!("case {dead} ")))
        {
            let tail: String = stderr.lines().rev().take(3).collect::<Vec<_>>().join(" | ");
            failures.push(format!(
                "case {dead} FAIL child died ({}): {tail}",
                out.status
            ));
        }
        next = dead + 1;
    }
    failures
}

#[test]
fn mutated_volumes_never_panic_hang_or_pass_damage_as_clean() {
    // Two children share the cases (the machine has two cores).
    let half = CASES / 2;
    let other = std::thread::spawn(move || run_range(half, CASES));
    let mut failures = run_range(0, half);
    failures.extend(other.join().expect("second range"));
    assert!(
        failures.is_empty(),
        "{} of {CASES} mutated volumes failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
