//! `cargo xtask faults`: the fault matrix. Each kind of damage is injected into a small
//! volume file, for each checksum algorithm, by editing the file's bytes at offsets found
//! from the format (docs/FORMAT.md: superblock slots, `STKPATT` pattern blocks, the
//! object table); `stackctl verify --json` must find it, run on the file and (when
//! `losetup` works) on a loop device over it, attached per run and always detached.
//! "Unreadable range" needs a device that returns EIO (dm-error), which neither target
//! can give: its rows say so instead of pretending.
//!
//! "Lost flushes" logs a write with `--ack-log`, then puts the image from before it back
//! (a drive that dropped the flushes it acknowledged): `verify --acked` must say so.
//!
//! Fake capacity as a whole drive (rows `lib/mem`, through `stackctl`'s library on
//! in-memory `FaultyDevice`s, once, not per algorithm): a counterfeit that wraps, filled
//! with canaries as burn-in does, then verified and judged; one whose writes past an
//! offset are lost; and `stack_volume::probe` on the same counterfeit. The verdict must be
//! `fake-capacity` with the exact usable size, the fill must stop early, and the probe
//! must stay within its budget; a good device must be judged clean.
//!
//! Columns: injected, detected (verify exits non-zero and reports it), located exactly
//! (the reported byte range is the damaged one), cause right (the reported cause is the
//! injected kind), false positives (reported ranges that were not damaged, or damage
//! reported on the undamaged baseline).

use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use stack_bio::{Device, FaultyDevice, MemDevice};
use stack_volume::probe::{default_budget_bytes, ProbeOptions, ProbeVerdictKind};
use stack_volume::{
    FormatOptions, OpenOptions, Verdict, VerifyOptions, Volume, WriteOptions, WriteReport,
};

const ALGORITHMS: [&str; 3] = ["crc32c", "xxh3", "xxh64"];
const BLOCK: usize = 4096;
const SB_SLOTS: [usize; 2] = [0, 65536];

/// One injected case and what verify said.
#[derive(Debug, Default)]
struct Row {
    detected: bool,
    located: bool,
    cause_right: bool,
    false_positives: usize,
    note: String,
}

/// The volume before damage: image, the pattern block offsets of object `a`, and the
/// image from before `a` reused the space of a removed object.
struct Setup {
    dir: PathBuf,
    image: Vec<u8>,
    earlier: Vec<u8>,
    /// Offsets of `a`'s blocks whose address held a different pattern block earlier.
    reused: Vec<usize>,
    /// Verify through a loop device over the file instead of the file itself.
    on_loop: bool,
}

/// A loop device attached to a file, detached on drop.
struct Loop(String);

impl Loop {
    fn attach(file: &Path) -> Result<Loop> {
        let out = Command::new("losetup")
            .arg("-f")
            .arg("--show")
            .arg(file)
            .output()?;
        let dev = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !out.status.success() || !dev.starts_with("/dev/loop") {
            bail!("losetup: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(Loop(dev))
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.0).status();
    }
}

fn stackctl_path() -> Result<PathBuf> {
    // The release binary sits in `<target>/release/`; this process is either
    // `<target>/release/xtask` or a test binary in `<target>/<profile>/deps/`.
    let exe = std::env::current_exe()?;
    let target = exe
        .ancestors()
        .find(|dir| {
            dir.file_name()
                .is_some_and(|name| name == "release" || name == "debug")
        })
        .and_then(Path::parent)
        .context("xtask's executable is not inside a cargo target directory")?
        .to_path_buf();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let status = Command::new(cargo)
        .args([
            "build",
            "-q",
            "--release",
            "-p",
            "stackctl",
            "--bin",
            "stackctl",
        ])
        .env("CARGO_TARGET_DIR", &target)
        .status()?;
    if !status.success() {
        bail!("building stackctl failed");
    }
    Ok(target.join("release").join("stackctl"))
}

fn run(bin: &Path, dir: &Path, args: &[&str]) -> Result<(i32, String)> {
    let out = Command::new(bin).args(args).current_dir(dir).output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("panicked") {
        bail!("stackctl {args:?} panicked: {stderr}");
    }
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    ))
}

fn ok(bin: &Path, dir: &Path, args: &[&str]) -> Result<()> {
    let (code, out) = run(bin, dir, args)?;
    if code != 0 {
        bail!("stackctl {args:?} exited {code}: {out}");
    }
    Ok(())
}

fn pattern_blocks(image: &[u8]) -> Vec<usize> {
    (0..image.len() / BLOCK)
        .map(|i| i * BLOCK)
        .filter(|&o| image[o..].starts_with(b"STKPATT\0"))
        .collect()
}

fn setup(bin: &Path, csum: &str) -> Result<Setup> {
    let dir = std::env::temp_dir().join(format!("xtask-faults-{}-{csum}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let _ = std::fs::remove_file(dir.join("vol"));
    let quiet = ["--progress", "none"];
    let pattern = |name: &str, size: &str, seed: &str| -> Result<()> {
        let mut args = vec![
            "write",
            "vol",
            "--pattern",
            "--name",
            name,
            "--size",
            size,
            "--seed",
            seed,
        ];
        args.extend(quiet);
        ok(bin, &dir, &args)
    };
    ok(
        bin,
        &dir,
        &[
            "format",
            "vol",
            "--size",
            "8MiB",
            "--csum",
            csum,
            "--progress",
            "none",
        ],
    )?;
    pattern("old", "1MiB", "9")?;
    let earlier = std::fs::read(dir.join("vol"))?;
    ok(bin, &dir, &["rm", "vol", "old", "--progress", "none"])?;
    // One more commit, so the space of `old` (still referenced by the previous table) frees.
    pattern("tick", "4KiB", "5")?;
    pattern("a", "1MiB", "3")?;
    let image = std::fs::read(dir.join("vol"))?;
    let reused: Vec<usize> = pattern_blocks(&image)
        .into_iter()
        .filter(|&o| {
            earlier[o..].starts_with(b"STKPATT\0") && earlier[o..o + BLOCK] != image[o..o + BLOCK]
        })
        .collect();
    if reused.len() < 64 {
        bail!(
            "{csum}: only {} reused blocks; the allocator layout changed",
            reused.len()
        );
    }
    Ok(Setup {
        dir,
        image,
        earlier,
        reused,
        on_loop: false,
    })
}

/// Data damage: expected (offset, length, cause name) ranges.
type Expected = Vec<(u64, u64, &'static str)>;

/// Injects `kind` into a copy of the image; returns the damaged image and what verify
/// should report (data ranges), or `None` for superblock / metadata kinds.
fn inject(kind: &str, s: &Setup) -> Option<(Vec<u8>, Expected)> {
    let mut img = s.image.clone();
    let r = &s.reused;
    let b = BLOCK as u64;
    let expected: Expected = match kind {
        "flipped bits" => {
            img[r[3] + 100] ^= 0x04;
            img[r[3] + 3000] ^= 0x80;
            vec![(r[3] as u64, b, "flipped-bits")]
        }
        "zeroed block" => {
            img[r[4]..r[4] + BLOCK].fill(0);
            vec![(r[4] as u64, b, "zeroed")]
        }
        "torn write" => {
            let o = r[7] + BLOCK / 2;
            img[o..r[7] + BLOCK].copy_from_slice(&s.earlier[o..r[7] + BLOCK]);
            vec![(r[7] as u64, b, "torn")]
        }
        "dropped write" => {
            // A whole run of 8 blocks never reached the medium: the old blocks remain.
            let o = r[16];
            if r[23] != o + 7 * BLOCK {
                return None;
            }
            img[o..o + 8 * BLOCK].copy_from_slice(&s.earlier[o..o + 8 * BLOCK]);
            vec![(o as u64, 8 * b, "stale")]
        }
        "stale block" => {
            img[r[30]..r[30] + BLOCK].copy_from_slice(&s.earlier[r[30]..r[30] + BLOCK]);
            vec![(r[30] as u64, b, "stale")]
        }
        "misdirected write" => {
            img.copy_within(r[40]..r[40] + BLOCK, r[50]);
            vec![(r[50] as u64, b, "misdirected")]
        }
        "fake capacity" => {
            // A device that wraps at 128 KiB: the write for r[60] landed 128 KiB lower.
            let high = *r.last()?;
            let low = high.checked_sub(128 << 10)?;
            if !r.contains(&low) {
                return None;
            }
            img.copy_within(high..high + BLOCK, low);
            vec![(low as u64, b, "misdirected")]
        }
        _ => return None,
    };
    Some((img, expected))
}

fn ranges(doc: &Value) -> Vec<(u64, u64, String)> {
    doc["damaged"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|d| {
                    (
                        d["physical_offset"].as_u64().unwrap_or(u64::MAX),
                        d["length"].as_u64().unwrap_or(0),
                        d["cause"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn verify(bin: &Path, s: &Setup) -> Result<(i32, Value)> {
    let device = if s.on_loop {
        Some(Loop::attach(&s.dir.join("vol"))?)
    } else {
        None
    };
    let (code, out) = match &device {
        Some(dev) => run(
            bin,
            &s.dir,
            &["--json", "verify", &dev.0, "--direct", "--progress", "none"],
        )?,
        None => run(
            bin,
            &s.dir,
            &["--json", "verify", "vol", "--progress", "none"],
        )?,
    };
    drop(device);
    let doc: Value = serde_json::from_str(&out).with_context(|| format!("verify output: {out}"))?;
    Ok((code, doc))
}

fn data_row(bin: &Path, s: &Setup, img: &[u8], expected: &Expected) -> Result<Row> {
    std::fs::write(s.dir.join("vol"), img)?;
    let (code, doc) = verify(bin, s)?;
    let found = ranges(&doc);
    let covered = |o: u64, l: u64| {
        expected
            .iter()
            .any(|&(eo, el, _)| o >= eo && o + l <= eo + el)
    };
    let mut row = Row {
        detected: code == 1 && !found.is_empty(),
        false_positives: found.iter().filter(|(o, l, _)| !covered(*o, *l)).count(),
        ..Row::default()
    };
    row.located = expected.iter().all(|&(eo, el, _)| {
        let sum: u64 = found
            .iter()
            .filter(|(o, l, _)| covered(*o, *l) && *o >= eo && o + l <= eo + el)
            .map(|f| f.1)
            .sum();
        sum == el
    });
    row.cause_right = row.located
        && found
            .iter()
            .filter(|(o, l, _)| covered(*o, *l))
            .all(|(_, _, c)| expected.iter().any(|e| e.2 == c));
    if !row.cause_right || !row.located {
        row.note = format!("found {found:?}");
    }
    Ok(row)
}

fn meta_row(bin: &Path, s: &Setup, kind: &str) -> Result<Row> {
    let mut img = s.image.clone();
    let generation = |slot: usize| {
        u64::from_le_bytes(s.image[slot + 40..slot + 48].try_into().unwrap_or([0; 8]))
    };
    let newest = usize::from(generation(SB_SLOTS[1]) > generation(SB_SLOTS[0]));
    let sb = SB_SLOTS[newest];
    let newest_generation = generation(sb);
    let meta = u64::from_le_bytes(img[sb + 56..sb + 64].try_into()?) as usize * BLOCK;
    if meta + BLOCK > img.len() {
        bail!("superblock slot {newest}: object table at {meta} is past the end");
    }
    if kind == "damaged superblock" {
        img[sb + 50] ^= 0x01;
    } else {
        img[meta + 60] ^= 0x20;
    }
    std::fs::write(s.dir.join("vol"), &img)?;
    let (code, doc) = verify(bin, s)?;
    let mut row = Row {
        false_positives: ranges(&doc).len(),
        ..Row::default()
    };
    if kind == "damaged superblock" {
        let slot = &doc["superblocks"][newest];
        row.detected = slot["state"] != "ok";
        row.located = slot["slot"] == newest as u64;
        row.cause_right = slot["reason"]
            .as_str()
            .is_some_and(|r| r.contains("checksum"));
        row.note = format!("exit {code}, slot {newest}: {slot}");
    } else {
        // The newest table is damaged: verify must say so (falling back to the previous
        // commit is allowed, passing it off as clean is not).
        let damage = doc["metadata_damage"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let slot = &doc["superblocks"][newest];
        let reason = slot["reason"].as_str().unwrap_or("");
        let gen_text = format!("generation {newest_generation}");
        row.detected = code == 1 && (!damage.is_empty() || slot["state"] != "ok");
        let damage_text = Value::Array(damage).to_string();
        row.located = damage_text.contains(&meta.to_string()) || reason.contains(&gen_text);
        row.cause_right = damage_text.contains("checksum") || reason.contains("metadata");
        row.note = format!("exit {code}: {damage_text} {reason}");
    }
    Ok(row)
}

const DATA_KINDS: [&str; 7] = [
    "flipped bits",
    "zeroed block",
    "torn write",
    "dropped write",
    "stale block",
    "misdirected write",
    "fake capacity",
];

/// Entry point: `faults`.
pub fn main(args: &[String]) -> Result<()> {
    if let Some(arg) = args.first() {
        bail!("faults: unknown option `{arg}` (faults takes none)");
    }
    let bad = matrix()?;
    if bad > 0 {
        bail!("faults: {bad} shortfall(s) in the matrix");
    }
    Ok(())
}

/// Runs and prints the whole matrix; returns how many rows fall short (a missed
/// detection, location or cause, or a false positive).
fn matrix() -> Result<usize> {
    let bin = stackctl_path()?;
    println!(
        "{:<12} {:<20} {:>8} {:>8} {:>8} {:>6} {:>6}  note",
        "csum/target", "damage", "injected", "detected", "located", "cause", "false+"
    );
    let mut bad = 0;
    let loop_ok = {
        let probe = std::env::temp_dir().join(format!("xtask-faults-probe-{}", std::process::id()));
        std::fs::write(&probe, vec![0u8; 1 << 20])?;
        let attached = Loop::attach(&probe);
        let _ = std::fs::remove_file(&probe);
        match attached {
            Ok(_) => true,
            Err(e) => {
                println!("loop device: not run ({e})");
                false
            }
        }
    };
    let targets: &[bool] = if loop_ok { &[false, true] } else { &[false] };
    for (csum_name, &on_loop) in ALGORITHMS
        .iter()
        .flat_map(|c| targets.iter().map(move |t| (c, t)))
    {
        let label = format!("{csum_name}/{}", if on_loop { "loop" } else { "file" });
        let csum = label.as_str();
        let mut s = setup(&bin, csum_name)?;
        s.on_loop = on_loop;
        std::fs::write(s.dir.join("vol"), &s.image)?;
        let (code, doc) = verify(&bin, &s)?;
        let baseline = ranges(&doc).len() + usize::from(code != 0);
        let note = "clean volume: every report is a false positive";
        let clean = Row {
            note: note.into(),
            ..Row::default()
        };
        print_row(
            csum,
            "none (baseline)",
            false,
            &Row {
                false_positives: baseline,
                ..clean
            },
        );
        bad += baseline;
        for kind in DATA_KINDS {
            let row = match inject(kind, &s) {
                Some((img, expected)) => data_row(&bin, &s, &img, &expected)?,
                None => {
                    print_row(
                        csum,
                        kind,
                        false,
                        &Row {
                            note: "layout gave no place to inject".into(),
                            ..Row::default()
                        },
                    );
                    bad += 1;
                    continue;
                }
            };
            bad += usize::from(!row.detected || !row.located || !row.cause_right)
                + row.false_positives;
            print_row(csum, kind, true, &row);
        }
        for kind in ["damaged superblock", "damaged metadata"] {
            let row = meta_row(&bin, &s, kind)?;
            bad += usize::from(!row.detected || !row.located || !row.cause_right)
                + row.false_positives;
            print_row(csum, kind, true, &row);
        }
        bad += lost_flush_rows(&bin, &s, csum)?;
        print_row(
            csum,
            "unreadable range",
            false,
            &Row {
                note: "needs a device that returns EIO (dm-error); a file cannot".into(),
                ..Row::default()
            },
        );
        let _ = std::fs::remove_dir_all(&s.dir);
    }
    bad += fake_capacity_rows()?;
    Ok(bad)
}

const MIB: u64 = 1 << 20;
/// The counterfeit: a 64 MiB device advertised as 256 MiB.
const REAL: u64 = 64 * MIB;
const ADVERTISED: u64 = 256 * MIB;
/// The fill's canary period on it: 64 MiB or 1% of the free space, whichever is larger
/// (`pipeline/write/canary.rs`).
const CANARY_PERIOD: u64 = 64 * MIB;

fn counterfeit() -> Arc<FaultyDevice> {
    Arc::new(FaultyDevice::counterfeit(
        Arc::new(MemDevice::new(REAL)),
        ADVERTISED,
    ))
}

/// Formats `dev`, fills it with canaries on (as burn-in does), reopens it and judges a
/// full verify: the verdict and the fill's report.
fn fill_and_judge(dev: Arc<dyn Device>) -> Result<(Verdict, WriteReport)> {
    let mut vol = Volume::format_device(dev.clone(), &FormatOptions::default())?;
    let fill = vol.fill("burn-in", 7, &WriteOptions::default())?;
    drop(vol);
    let vol = Volume::open_device(dev, &OpenOptions::default())?;
    let verify = vol.verify(&VerifyOptions::default())?;
    Ok((vol.verdict(&verify, None), fill))
}

/// A fill row: the verdict must be `fake-capacity` naming `advertised` with `usable`
/// exactly; with `stop`, the fill must also have stopped early at a canary, within one
/// period of `usable`.
fn fill_row(
    verdict: &Verdict,
    fill: &WriteReport,
    usable: u64,
    advertised: u64,
    stop: bool,
) -> Row {
    let (found, adv) = match verdict {
        Verdict::FakeCapacity {
            usable_bytes,
            advertised_bytes,
            ..
        } => (Some(*usable_bytes), *advertised_bytes),
        _ => (None, 0),
    };
    let stopped = fill.stopped_early && fill.bytes <= usable + CANARY_PERIOD;
    Row {
        detected: *verdict != Verdict::Clean && (!stop || stopped),
        located: found == Some(usable),
        cause_right: found.is_some() && adv == advertised,
        false_positives: 0,
        note: format!(
            "{}: usable {} MiB of {} MiB; fill wrote {} MiB{}",
            verdict.name(),
            found.unwrap_or(0) / MIB,
            advertised / MIB,
            fill.bytes / MIB,
            if fill.stopped_early {
                ", stopped early"
            } else {
                ""
            }
        ),
    }
}

/// The fake-capacity rows (see the module doc). Returns shortfalls.
fn fake_capacity_rows() -> Result<usize> {
    let label = "lib/mem";
    let shortfall =
        |r: &Row| usize::from(!r.detected || !r.located || !r.cause_right) + r.false_positives;
    let mut bad = 0;

    let (verdict, fill) = fill_and_judge(Arc::new(MemDevice::new(REAL)))?;
    let clean = Row {
        false_positives: usize::from(verdict != Verdict::Clean || fill.canary_failed.is_some()),
        note: format!("good {} MiB device: {}", REAL / MIB, verdict.name()),
        ..Row::default()
    };
    print_row(label, "none (good device)", false, &clean);
    bad += clean.false_positives;

    let (verdict, fill) = fill_and_judge(counterfeit())?;
    let row = fill_row(&verdict, &fill, REAL, ADVERTISED, true);
    print_row(label, "fake cap: fill", true, &row);
    bad += shortfall(&row);

    // Past 40 MiB writes are acknowledged and lost: reads give what was there before.
    let lost_from = 40 * MIB;
    let dev = Arc::new(FaultyDevice::new(Arc::new(MemDevice::new(REAL))));
    dev.lose_writes_past(lost_from);
    let (verdict, fill) = fill_and_judge(dev)?;
    let row = fill_row(&verdict, &fill, lost_from, REAL, false);
    print_row(label, "fake cap: lost past", true, &row);
    bad += shortfall(&row);

    let dev = counterfeit();
    let report = stack_volume::probe::probe(dev.as_ref(), &ProbeOptions::default())?;
    let budget = default_budget_bytes(dev.size_bytes());
    let v = &report.verdict;
    let fake = v.kind == ProbeVerdictKind::FakeCapacity;
    let row = Row {
        detected: v.kind != ProbeVerdictKind::NoFakeFound && report.bytes_written <= budget,
        located: v.usable_bytes == Some(REAL),
        cause_right: fake && report.advertised_bytes == ADVERTISED,
        false_positives: 0,
        note: format!(
            "usable {} MiB of {} MiB; wrote {} KiB of a {} KiB budget",
            v.usable_bytes.unwrap_or(0) / MIB,
            report.advertised_bytes / MIB,
            report.bytes_written >> 10,
            budget >> 10
        ),
    };
    print_row(label, "fake cap: probe", true, &row);
    bad += shortfall(&row);
    Ok(bad)
}

/// `verify --acked acks` on the volume (through the loop device when `s.on_loop`).
fn verify_acked(bin: &Path, s: &Setup) -> Result<(i32, Value)> {
    let device = if s.on_loop {
        Some(Loop::attach(&s.dir.join("vol"))?)
    } else {
        None
    };
    let target = device.as_ref().map_or("vol", |d| d.0.as_str());
    let mut args = vec!["--json", "verify", target, "--acked", "acks"];
    args.extend(["--progress", "none"]);
    if s.on_loop {
        args.push("--direct");
    }
    let (code, out) = run(bin, &s.dir, &args)?;
    drop(device);
    let doc: Value = serde_json::from_str(&out).with_context(|| format!("verify output: {out}"))?;
    Ok((code, doc))
}

/// Lost flushes: a pattern write logged with `--ack-log`; kept, `verify --acked` must give
/// no verdict (a false positive otherwise); with the image from before the write put
/// back (the drive dropped the flushes it acknowledged) it must give `lost-flushes`
/// naming the acknowledged generation and the one the drive holds. Returns shortfalls.
fn lost_flush_rows(bin: &Path, s: &Setup, csum: &str) -> Result<usize> {
    let vol = s.dir.join("vol");
    std::fs::write(&vol, &s.image)?;
    let generation = |slot: usize| {
        u64::from_le_bytes(s.image[slot + 40..slot + 48].try_into().unwrap_or([0; 8]))
    };
    let held = generation(SB_SLOTS[0]).max(generation(SB_SLOTS[1]));
    let _ = std::fs::remove_file(s.dir.join("acks"));
    ok(
        bin,
        &s.dir,
        &[
            "write",
            "vol",
            "--pattern",
            "--name",
            "acked",
            "--size",
            "512KiB",
            "--commit-every",
            "128K",
            "--ack-log",
            "acks",
            "--progress",
            "none",
        ],
    )?;
    let log = std::fs::read_to_string(s.dir.join("acks"))?;
    let acked = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|l| l["generation"].as_u64())
        .max()
        .context("the ack log has no line")?;
    let (code, doc) = verify_acked(bin, s)?;
    let kept = Row {
        false_positives: usize::from(code != 0 || doc["verdict"]["kind"] == "lost-flushes")
            + ranges(&doc).len(),
        note: format!("exit {code}: every acknowledged commit kept"),
        ..Row::default()
    };
    print_row(csum, "flushes kept", false, &kept);
    std::fs::write(&vol, &s.image)?;
    let (code, doc) = verify_acked(bin, s)?;
    let verdict = &doc["verdict"];
    let row = Row {
        detected: code == 1 && verdict["kind"] == "lost-flushes",
        located: verdict["acked_generation"] == acked && verdict["drive_generation"] == held,
        cause_right: verdict["objects"][0]["how"] == "missing",
        false_positives: ranges(&doc).len(),
        note: format!("exit {code}: acknowledged generation {acked}, drive holds {held}"),
    };
    print_row(csum, "lost flushes", true, &row);
    Ok(kept.false_positives
        + usize::from(!row.detected || !row.located || !row.cause_right)
        + row.false_positives)
}

fn print_row(csum: &str, kind: &str, injected: bool, row: &Row) {
    let yes = |b: bool| if b { "yes" } else { "NO" };
    println!(
        "{csum:<12} {kind:<20} {:>8} {:>8} {:>8} {:>6} {:>6}  {}",
        yes(injected),
        if injected { yes(row.detected) } else { "-" },
        if injected { yes(row.located) } else { "-" },
        if injected { yes(row.cause_right) } else { "-" },
        row.false_positives,
        row.note
    );
}

#[cfg(test)]
mod tests {
    /// The normal test run covers every row of the matrix (the volumes are a few MiB):
    /// each damage kind for each checksum algorithm, on a file and, where losetup
    /// works, on a loop device.
    #[test]
    fn every_fault_is_detected_located_and_named_without_false_positives() {
        let bad = super::matrix().expect("the fault matrix runs");
        assert_eq!(bad, 0, "fault matrix shortfalls (see the table above)");
    }
}
