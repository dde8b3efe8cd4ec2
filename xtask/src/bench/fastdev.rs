//! Benchmark group `fastdev`: `stackctl` on a fast block device (a loop device over a
//! file on `/dev/shm`) against `dd` with `O_DIRECT` and fio with io_uring (issue 17).
//!
//! The bench attaches the loop devices itself and detaches them when it is done, also
//! on an error or a panic ([`LoopDev`] is a guard). It needs root, `/dev/loop-control`
//! and `losetup`; without them every row is still listed, skipped, with the reason. fio
//! rows are skipped (with the reason) when fio is absent and cannot be installed.
//!
//! Fairness follows the `e2e` group, whose machinery this reuses (`e2e::proc`,
//! `e2e::rows`, `e2e::setup`): ours and the peers alternate, the starting side rotating
//! each round, and each figure is a median; CPU time is user + system from `wait4`'s
//! rusage (fio's forked job included); memory is warmed before each run. Each loop
//! device's backing file is allocated whole before the first run, so no side pays for
//! tmpfs allocating pages. Ours and `dd` share one loop device (the volume); fio gets a
//! second one of the same kind, since its verify needs the headers its own write left.
//!
//! Cases (1 GiB; `--quick` 256 MiB and 3 rounds):
//! - `write-direct`: `stackctl write --direct` of a file on `/dev/shm` (after an untimed
//!   `format --force`) against `dd oflag=direct conv=fsync` of the same file, and fio's
//!   write (`--verify=crc32c-intel --ioengine=io_uring --iodepth=16 --direct=1`);
//! - `verify-direct`: plain `stackctl verify` (device-true: `O_DIRECT` on a block device,
//!   checked once from its JSON `source`) against `dd iflag=direct` of the same device
//!   and fio's verify read of the same size;
//! - `burn-in`: `stackctl burn-in` of the whole device against `dd` writing then reading
//!   the whole device with `O_DIRECT` (both credited with the device's size);
//! - `cpu (write)`, `cpu (verify)`: CPU s/GiB of ours against fio's;
//! - rows against `ours, threads engine`: the same `stackctl` with `STACK_IO_ENGINE=threads`
//!   (submitter threads instead of io_uring), alternated in the same run, so the
//!   engine's effect is measured apart from the machine's swings.

use super::e2e::checks::fio_really_verifies;
use super::e2e::proc;
use super::e2e::rows::{again, alternate, arg, both, dup, side, skipped_row, speed_row, Res};
use super::e2e::setup::{self, fresh, make_input, preread, volume_size, Env, GIB, MIB};
use super::{Ctx, Sense};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The engine override `stackctl` honours (`stack_volume::pipeline::ENGINE_ENV`).
const ENGINE_ENV: &str = stack_volume::pipeline::ENGINE_ENV;

/// The peer name of ours on the threads engine.
const THREADS_PEER: &str = "ours, threads engine";

/// fio's arguments shared by its write and its verify read: the issue's configuration.
fn fio_args(name: &str, dev: &Path, bytes: u64) -> Vec<String> {
    vec![
        format!("--name={name}"),
        format!("--filename={}", dev.display()),
        format!("--size={bytes}"),
        "--bs=1M".to_owned(),
        "--direct=1".to_owned(),
        "--ioengine=io_uring".to_owned(),
        "--iodepth=16".to_owned(),
        "--verify=crc32c-intel".to_owned(),
        "--verify_state_save=0".to_owned(),
    ]
}

/// A loop device attached over a file; detached when dropped (on error and unwinding
/// too), so the bench never leaves one behind.
#[derive(Debug)]
pub struct LoopDev {
    pub dev: PathBuf,
}

impl LoopDev {
    /// `losetup --find --show FILE`.
    pub fn attach(file: &Path) -> std::result::Result<LoopDev, String> {
        let out = Command::new("losetup")
            .arg("--find")
            .arg("--show")
            .arg(file)
            .output()
            .map_err(|e| format!("running losetup: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "losetup --find --show {}: {}",
                file.display(),
                proc::tail(&String::from_utf8_lossy(&out.stderr), 1)
            ));
        }
        let dev = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if !dev.starts_with("/dev/loop") {
            return Err(format!("losetup printed `{dev}`, not a loop device"));
        }
        Ok(LoopDev {
            dev: PathBuf::from(dev),
        })
    }
}

impl Drop for LoopDev {
    fn drop(&mut self) {
        match Command::new("losetup").arg("-d").arg(&self.dev).output() {
            Ok(o) if o.status.success() => {}
            Ok(o) => eprintln!(
                "  fastdev: losetup -d {} failed: {}",
                self.dev.display(),
                proc::tail(&String::from_utf8_lossy(&o.stderr), 1)
            ),
            Err(e) => eprintln!("  fastdev: losetup -d {}: {e}", self.dev.display()),
        }
    }
}

/// Why loop devices cannot be used here, or `None` when they can.
pub(super) fn why_no_loop() -> Option<String> {
    // SAFETY: geteuid has no preconditions and touches no memory.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root (attaching a loop device needs it)".to_owned());
    }
    if !Path::new("/dev/loop-control").exists() {
        return Some("no loop support (/dev/loop-control is missing)".to_owned());
    }
    if which("losetup").is_none() {
        return Some("losetup not found in PATH".to_owned());
    }
    None
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Creates `path` with `bytes` allocated (tmpfs hands out its pages now, not during a
/// measured run).
pub(super) fn allocated_file(path: &Path, bytes: u64) -> Result<()> {
    use std::os::unix::io::AsRawFd;
    let f = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let len = libc::off_t::try_from(bytes)?;
    // SAFETY: the fd is open for the duration of the call; no memory is passed.
    let rc = unsafe { libc::posix_fallocate(f.as_raw_fd(), 0, len) };
    if rc != 0 {
        anyhow::bail!(
            "posix_fallocate({}, {bytes}): {}",
            path.display(),
            std::io::Error::from_raw_os_error(rc)
        );
    }
    Ok(())
}

/// Every row of the group, as skipped rows carrying `why`.
fn skip_all(ctx: &mut Ctx, why: &str) {
    eprintln!("  fastdev: skipped: {why}");
    for (case, unit, peer, target) in [
        ("write-direct", "GiB/s", "dd oflag=direct", "speedup >= 0.9"),
        ("write-direct", "GiB/s", "fio write io_uring", ""),
        ("write-direct", "GiB/s", THREADS_PEER, ""),
        (
            "verify-direct",
            "GiB/s",
            "dd iflag=direct",
            "speedup >= 0.95",
        ),
        ("verify-direct", "GiB/s", "fio verify read", "speedup >= 1"),
        ("verify-direct", "GiB/s", THREADS_PEER, ""),
        ("burn-in", "GiB/s", "dd write+read", "speedup >= 0.9"),
        ("cpu (write)", "CPU s/GiB", "fio write io_uring", ""),
        ("cpu (verify)", "CPU s/GiB", "fio verify read", ""),
    ] {
        skipped_row(
            ctx,
            case,
            unit,
            0.0,
            peer,
            0.0,
            target,
            &format!("skipped: {why}"),
        );
    }
}

pub fn run(ctx: &mut Ctx) -> Result<()> {
    if let Some(why) = why_no_loop() {
        skip_all(ctx, &why);
        return Ok(());
    }
    let mut env = Env::new(ctx)?;
    let shm = env.shm.clone();
    // The volume's device, fio's device and the input file, all on /dev/shm.
    env.fit(&shm, |b| 2 * volume_size(b) + b + 64 * MIB)?;
    let n = env.bytes;
    let dev_bytes = volume_size(n);
    let (ours_img, fio_img, input) = (
        shm.join("fastdev-ours.img"),
        shm.join("fastdev-fio.img"),
        shm.join("input.bin"),
    );
    allocated_file(&ours_img, dev_bytes)?;
    allocated_file(&fio_img, dev_bytes)?;
    make_input(&input, n)?;
    let ours_dev = match LoopDev::attach(&ours_img) {
        Ok(d) => d,
        Err(why) => {
            skip_all(ctx, &format!("no loop device: {why}"));
            return Ok(());
        }
    };
    let fio_dev = LoopDev::attach(&fio_img);
    eprintln!(
        "  fastdev: {} over {} ({} MiB), fio on {}; load average before: {}",
        ours_dev.dev.display(),
        ours_img.display(),
        dev_bytes / MIB,
        fio_dev
            .as_ref()
            .map_or_else(|e| e.clone(), |d| d.dev.display().to_string()),
        setup::loadavg()
    );
    let fio_dev_path = fio_dev
        .as_ref()
        .map(|d| d.dev.clone())
        .map_err(|e| format!("no loop device for fio: {e}"));
    let res = cases(ctx, &mut env, &ours_dev.dev, fio_dev_path, &input, n);
    eprintln!("  fastdev: load average after: {}", setup::loadavg());
    for note in env.notes.drain(..) {
        eprintln!("  fastdev: {note}");
    }
    // Detach before the backing files go (the guards would anyway, on any path).
    drop(fio_dev);
    drop(ours_dev);
    for f in [&ours_img, &fio_img, &input] {
        fresh(f)?;
    }
    res
}

/// Ours, dd and fio, alternated, on the attached devices.
fn cases(
    ctx: &mut Ctx,
    env: &mut Env,
    dev: &Path,
    fio_dev: std::result::Result<PathBuf, String>,
    input: &Path,
    n: u64,
) -> Result<()> {
    let runs = env.runs;
    let dev_bytes = volume_size(n);
    let (format, write_cmd) = (env.stackctl("format"), env.stackctl("write"));
    let verify = env.stackctl("verify");
    let burn = env.stackctl("burn-in");
    let dd = env.peer("dd");
    let fio = both(env.peer("fio"), fio_dev).and_then(|(fio, d)| {
        fio_really_verifies(env)?;
        Ok((fio, d))
    });
    let env = &*env;
    let count = format!("count={}", n / MIB);
    let count = count.as_str();
    let of = arg("of=", dev);
    let of = of.as_str();
    let if_dev = arg("if=", dev);
    let if_dev = if_dev.as_str();

    eprintln!(
        "  fastdev: write-direct, {} MiB, {runs} runs per side",
        n / MIB
    );
    let mut sides = [
        side(both(dup(&format), dup(&write_cmd)).map(|(format, write)| {
            move || {
                let fmt = env.measure(again(&format).arg("--force").arg(dev), "format", n);
                fmt?;
                preread(input)?;
                env.measure(
                    again(&write).arg("--direct").arg(dev).arg(input),
                    "stackctl write --direct",
                    n,
                )
            }
        })),
        side(dup(&dd).map(|dd| {
            move || {
                preread(input)?;
                let i = arg("if=", input);
                env.measure(
                    again(&dd).args([&i, of, "bs=1M", count, "oflag=direct", "conv=fsync"]),
                    "dd write oflag=direct",
                    n,
                )
            }
        })),
        side(dup_fio(&fio).map(|(fio, d)| {
            move || {
                env.measure(
                    again(&fio)
                        .args(fio_args("fastdev-write", &d, n))
                        .args(["--rw=write", "--do_verify=0"]),
                    "fio write",
                    n,
                )
            }
        })),
        // Ours again on the threads engine: what io_uring brings, in the same run.
        side(both(dup(&format), dup(&write_cmd)).map(|(format, write)| {
            move || {
                let fmt = env.measure(again(&format).arg("--force").arg(dev), "format", n);
                fmt?;
                preread(input)?;
                env.measure(
                    again(&write)
                        .env(ENGINE_ENV, "threads")
                        .arg("--direct")
                        .arg(dev)
                        .arg(input),
                    "stackctl write --direct (threads)",
                    n,
                )
            }
        })),
    ];
    let write = alternate(runs, &mut sides);
    drop(sides);
    let note = "; loop device over /dev/shm";
    speed_row(
        ctx,
        "write-direct",
        &write[0],
        "dd oflag=direct",
        &write[1],
        n,
        0.9,
        note,
    );
    info_row(
        ctx,
        "write-direct",
        &write[0],
        "fio write io_uring",
        &write[2],
        n,
    );

    info_row(ctx, "write-direct", &write[0], THREADS_PEER, &write[3], n);

    eprintln!("  fastdev: verify-direct, {} MiB", n / MIB);
    // dd may have written the device last: write the volume again, untimed.
    let ours_ready = write[0]
        .clone()
        .map(|_| ())
        .map_err(|e| format!("no volume: write {e}"))
        .and_then(|()| {
            let (format, write) = both(dup(&format), dup(&write_cmd))?;
            env.measure(again(&format).arg("--force").arg(dev), "format", n)
                .and_then(|_| {
                    let mut w = again(&write);
                    env.measure(w.arg("--direct").arg(dev).arg(input), "stackctl write", n)
                })
                .map_err(|e| format!("writing the volume to verify: {e:#}"))?;
            verify_is_direct(env, dev)
        });
    let fio_ready = match (&fio, &write[2]) {
        (Ok(_), Ok(_)) => Ok(()),
        (Ok((f, d)), Err(_)) => env
            .measure(
                again(f)
                    .args(fio_args("fastdev-write", d, n))
                    .args(["--rw=write", "--do_verify=0"]),
                "fio write",
                n,
            )
            .map(|_| ())
            .map_err(|e| format!("{e:#}")),
        (Err(e), _) => Err(e.clone()),
    };
    let mut sides = [
        side(both(dup(&verify), ours_ready.clone()).map(|(verify, ())| {
            move || env.measure(again(&verify).arg(dev), "stackctl verify", n)
        })),
        side(dup(&dd).map(|dd| {
            move || {
                env.measure(
                    again(&dd).args([if_dev, "of=/dev/null", "bs=1M", count, "iflag=direct"]),
                    "dd read iflag=direct",
                    n,
                )
            }
        })),
        side(both(dup_fio(&fio), fio_ready).map(|((fio, d), ())| {
            move || {
                env.measure(
                    again(&fio)
                        .args(fio_args("fastdev-verify", &d, n))
                        .args(["--rw=read", "--iomem_align=4096"]),
                    "fio verify read",
                    n,
                )
            }
        })),
        side(both(dup(&verify), ours_ready.clone()).map(|(verify, ())| {
            move || {
                env.measure(
                    again(&verify).env(ENGINE_ENV, "threads").arg(dev),
                    "stackctl verify (threads)",
                    n,
                )
            }
        })),
    ];
    let read = alternate(runs, &mut sides);
    drop(sides);
    speed_row(
        ctx,
        "verify-direct",
        &read[0],
        "dd iflag=direct",
        &read[1],
        n,
        0.95,
        note,
    );
    speed_row(
        ctx,
        "verify-direct",
        &read[0],
        "fio verify read",
        &read[2],
        n,
        1.0,
        note,
    );

    info_row(ctx, "verify-direct", &read[0], THREADS_PEER, &read[3], n);

    let dev_count = format!("count={}", dev_bytes / MIB);
    let dev_count = dev_count.as_str();
    eprintln!(
        "  fastdev: burn-in, {} MiB (the whole device)",
        dev_bytes / MIB
    );
    let mut sides = [
        side(burn.map(|burn| {
            move || {
                let args = ["--force", "--seed", "1"];
                env.measure(
                    again(&burn).args(args).arg(dev),
                    "stackctl burn-in",
                    dev_bytes,
                )
            }
        })),
        side(dup(&dd).map(|dd| {
            move || {
                let write = env.measure(
                    again(&dd)
                        .args(["if=/dev/zero", of, "bs=1M", dev_count])
                        .args(["oflag=direct", "conv=fsync"]),
                    "dd write",
                    dev_bytes,
                )?;
                let read = env.measure(
                    again(&dd).args([if_dev, "of=/dev/null", "bs=1M", dev_count, "iflag=direct"]),
                    "dd read",
                    dev_bytes,
                )?;
                Ok(write.then(read))
            }
        })),
    ];
    let burn_in = alternate(runs, &mut sides);
    drop(sides);
    let note = format!(
        "; the whole {} MiB device: burn-in fills it, dd writes /dev/zero then reads",
        dev_bytes / MIB
    );
    speed_row(
        ctx,
        "burn-in",
        &burn_in[0],
        "dd write+read",
        &burn_in[1],
        dev_bytes,
        0.9,
        &note,
    );

    cpu_row(
        ctx,
        "cpu (write)",
        &write[0],
        "fio write io_uring",
        &write[2],
        n,
        runs,
    );
    cpu_row(
        ctx,
        "cpu (verify)",
        &read[0],
        "fio verify read",
        &read[2],
        n,
        runs,
    );
    Ok(())
}

type Fio = std::result::Result<(Command, PathBuf), String>;

/// A copy of fio's command and device for one more side.
fn dup_fio(fio: &Fio) -> Fio {
    fio.as_ref()
        .map(|(f, d)| (again(f), d.clone()))
        .map_err(Clone::clone)
}

/// Checks that plain `stackctl verify` reads the block device with `O_DIRECT` (its JSON
/// report's `source`): the rows compare it with `dd iflag=direct`.
fn verify_is_direct(env: &Env, dev: &Path) -> std::result::Result<(), String> {
    let mut env_verify = Command::new(
        env.stackctl_path()
            .map_err(|e| format!("stackctl unavailable: {e}"))?,
    );
    env_verify
        .args(["--json", "--progress", "none", "verify"])
        .arg(dev);
    let out = proc::run(&mut env_verify, &env.shm, Duration::from_secs(120))
        .map_err(|e| format!("stackctl --json verify: {e:#}"))?;
    let json: serde_json::Value = serde_json::from_str(&out.stdout)
        .map_err(|e| format!("stackctl --json verify printed no JSON ({e})"))?;
    match json.get("source").and_then(|s| s.as_str()) {
        Some("direct") => Ok(()),
        Some(other) => Err(format!(
            "plain verify read the loop device from `{other}`, not `direct`"
        )),
        None => Err(format!(
            "stackctl --json verify gave {} and no source: {}",
            proc::describe(out.status),
            proc::tail(&out.stdout, 3)
        )),
    }
}

/// A throughput row against a peer the issue sets no target for.
pub(super) fn info_row(ctx: &mut Ctx, case: &str, ours: &Res, peer: &str, theirs: &Res, n: u64) {
    match (ours, theirs) {
        (Ok(o), Ok(p)) => {
            let gib = n as f64 / GIB as f64;
            let note = format!(
                "{} MiB; median of {}; cpu {:.2}s vs {:.2}s; no target",
                n / MIB,
                o.walls_s.len(),
                o.cpu_s,
                p.cpu_s
            );
            ctx.record(
                case,
                "GiB/s",
                Sense::HigherIsBetter,
                gib / o.wall_s,
                peer,
                gib / p.wall_s,
                None,
                &note,
            );
        }
        _ => speed_row_skipped(ctx, case, ours, peer, theirs),
    }
}

fn speed_row_skipped(ctx: &mut Ctx, case: &str, ours: &Res, peer: &str, theirs: &Res) {
    let why: Vec<String> = [("ours", ours), ("peer", theirs)]
        .into_iter()
        .filter_map(|(who, r)| r.as_ref().err().map(|e| format!("{who} {e}")))
        .collect();
    skipped_row(ctx, case, "GiB/s", 0.0, peer, 0.0, "", &why.join("; "));
}

/// CPU seconds (user + system, median) per GiB of ours against the peer's.
fn cpu_row(ctx: &mut Ctx, case: &str, ours: &Res, peer: &str, theirs: &Res, n: u64, runs: usize) {
    let per_gib = |cpu_s: f64| cpu_s / (n as f64 / GIB as f64);
    match (ours, theirs) {
        (Ok(o), Ok(p)) => ctx.record(
            case,
            "CPU s/GiB",
            Sense::LowerIsBetter,
            per_gib(o.cpu_s),
            peer,
            per_gib(p.cpu_s),
            None,
            &format!(
                "user+sys of the whole process tree, median of {runs}, {} MiB",
                n / MIB
            ),
        ),
        _ => {
            let why: Vec<String> = [("ours", ours), ("peer", theirs)]
                .into_iter()
                .filter_map(|(who, r)| r.as_ref().err().map(|e| format!("{who} {e}")))
                .collect();
            skipped_row(ctx, case, "CPU s/GiB", 0.0, peer, 0.0, "", &why.join("; "));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fio_runs_the_issues_engine_and_depth() {
        let args = fio_args("x", Path::new("/dev/loop9"), GIB);
        for want in [
            "--ioengine=io_uring",
            "--iodepth=16",
            "--verify=crc32c-intel",
            "--direct=1",
            "--size=1073741824",
        ] {
            assert!(args.iter().any(|a| a == want), "{want} missing: {args:?}");
        }
    }

    /// Loop devices attached over `file` (`losetup -j`).
    fn attached_over(file: &Path) -> String {
        let out = Command::new("losetup")
            .arg("-j")
            .arg(file)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// The guard detaches its loop device when dropped, also when a panic unwinds past
    /// it (the bench must never leave a loop device behind).
    #[test]
    fn the_loop_guard_detaches_on_drop_and_on_panic() {
        if let Some(why) = why_no_loop() {
            return eprintln!("skipped: {why}");
        }
        let dir = std::env::temp_dir().join(format!("fastdev-guard-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("back.img");
        allocated_file(&file, 4 * MIB).unwrap();
        let dev = match LoopDev::attach(&file) {
            Ok(d) => d,
            Err(why) => return eprintln!("skipped: {why}"),
        };
        assert!(!attached_over(&file).is_empty(), "attached");
        drop(dev);
        assert_eq!(attached_over(&file), "", "detached on drop");
        let unwound = std::panic::catch_unwind(|| {
            let _dev = LoopDev::attach(&file).unwrap();
            assert!(!attached_over(&file).is_empty());
            panic!("a case failed");
        });
        assert!(unwound.is_err());
        assert_eq!(attached_over(&file), "", "detached while unwinding");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_allocated_file_has_its_size() {
        let path = std::env::temp_dir().join(format!("fastdev-alloc-{}", std::process::id()));
        allocated_file(&path, 3 * MIB).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 3 * MIB);
        fresh(&path).unwrap();
    }
}
