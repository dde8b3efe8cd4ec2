//! The cases: write and verify on `/dev/shm`, the same with `O_DIRECT` on the disk,
//! burn-in against f3, and peak memory at two sizes.

use super::proc::{sys, Measured};
use super::setup::{fresh, make_input, preread, volume_size, Env, GIB, MIB};
use crate::bench::frame::median;
use crate::bench::{Ctx, Row, Sense};
use anyhow::Result;
use std::path::Path;
use std::process::Command;

/// What one side of a case measured: medians over its runs, or why it has none.
type Res = std::result::Result<Stats, String>;

/// Medians of wall and CPU time over the runs, and the largest peak RSS.
#[derive(Debug, Clone, Copy)]
struct Stats {
    wall_s: f64,
    cpu_s: f64,
    maxrss_kib: u64,
}

/// One contender of a case: a name and one run's closure, or why it cannot run.
struct Side<'a> {
    run: std::result::Result<Box<dyn FnMut() -> Result<Measured> + 'a>, String>,
}

fn side<'a>(run: std::result::Result<impl FnMut() -> Result<Measured> + 'a, String>) -> Side<'a> {
    Side {
        run: run.map(|f| Box::new(f) as Box<dyn FnMut() -> Result<Measured> + 'a>),
    }
}

/// Runs every side `runs` times, rotating which goes first each round. A side that fails
/// once drops out with the error as its reason.
fn alternate(runs: usize, sides: &mut [Side<'_>]) -> Vec<Res> {
    assert!(runs > 0);
    let n = sides.len();
    let mut samples: Vec<Vec<Measured>> = vec![Vec::new(); n];
    let mut failed: Vec<Option<String>> = vec![None; n];
    for round in 0..runs {
        for k in 0..n {
            let i = (round + k) % n;
            if failed[i].is_some() {
                continue;
            }
            if let Ok(run) = &mut sides[i].run {
                match run() {
                    Ok(m) => samples[i].push(m),
                    Err(e) => failed[i] = Some(format!("failed: {e:#}")),
                }
            }
        }
    }
    sides
        .iter()
        .zip(samples)
        .zip(failed)
        .map(|((s, mut m), f)| {
            if let Err(why) = &s.run {
                return Err(format!("skipped: {why}"));
            }
            if let Some(why) = f {
                return Err(why);
            }
            let mut wall: Vec<f64> = m.iter().map(|x| x.wall_s).collect();
            let mut cpu: Vec<f64> = m.iter().map(|x| x.cpu_s).collect();
            let maxrss_kib = m.iter_mut().map(|x| x.maxrss_kib).max().unwrap_or(0);
            Ok(Stats {
                wall_s: median(&mut wall),
                cpu_s: median(&mut cpu),
                maxrss_kib,
            })
        })
        .collect()
}

/// A copy of `cmd` (program and arguments) to add this run's arguments to.
fn again(cmd: &Command) -> Command {
    let mut c = Command::new(cmd.get_program());
    c.args(cmd.get_args());
    c
}

fn dup(cmd: &std::result::Result<Command, String>) -> std::result::Result<Command, String> {
    cmd.as_ref().map(again).map_err(Clone::clone)
}

fn both<A, B>(
    a: std::result::Result<A, String>,
    b: std::result::Result<B, String>,
) -> std::result::Result<(A, B), String> {
    Ok((a?, b?))
}

fn gib_s(bytes: u64, s: &Stats) -> f64 {
    bytes as f64 / GIB as f64 / s.wall_s
}

fn detail(ours: &Stats, peer: &Stats, runs: usize) -> String {
    format!(
        "median of {runs}; cpu {:.2}s vs {:.2}s; rss {} vs {} MiB",
        ours.cpu_s,
        peer.cpu_s,
        ours.maxrss_kib / 1024,
        peer.maxrss_kib / 1024
    )
}

/// A GiB/s row (wall-clock throughput over `bytes`), or a row that says what was skipped.
#[allow(clippy::too_many_arguments)]
fn speed_row(
    ctx: &mut Ctx,
    case: &str,
    ours: &Res,
    peer: &str,
    theirs: &Res,
    bytes: u64,
    target: f64,
    note: &str,
) {
    match (ours, theirs) {
        (Ok(o), Ok(p)) => {
            let note = format!("{} MiB; {}{note}", bytes / MIB, detail(o, p, ctx.runs()));
            ctx.record(
                case,
                "GiB/s",
                Sense::HigherIsBetter,
                gib_s(bytes, o),
                peer,
                gib_s(bytes, p),
                Some(target),
                &note,
            );
        }
        _ => {
            let mut why = Vec::new();
            if let Err(e) = ours {
                why.push(format!("ours {e}"));
            }
            if let Err(e) = theirs {
                why.push(format!("peer {e}"));
            }
            skipped_row(
                ctx,
                case,
                "GiB/s",
                ours.as_ref().map(|o| gib_s(bytes, o)).unwrap_or(0.0),
                peer,
                theirs.as_ref().map(|p| gib_s(bytes, p)).unwrap_or(0.0),
                &format!("speedup >= {target}"),
                &why.join("; "),
            );
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn skipped_row(
    ctx: &mut Ctx,
    case: &str,
    unit: &str,
    ours: f64,
    peer: &str,
    peer_value: f64,
    target: &str,
    why: &str,
) {
    ctx.push(Row {
        group: "e2e".to_owned(),
        case: case.to_owned(),
        unit: unit.to_owned(),
        ours,
        peer: peer.to_owned(),
        peer_value,
        speedup: 0.0,
        target: target.to_owned(),
        target_met: None,
        note: why.to_owned(),
    });
}

/// Checks, on a 16 MiB file, that fio's read job with `--verify` fails on a flipped byte:
/// otherwise its figure would not be a verify at all.
fn fio_really_verifies(env: &mut Env) -> std::result::Result<(), String> {
    let fio = env.peer("fio")?;
    let file = env.shm.join("fio-check.file");
    let size = format!("--size={}", 16 * MIB);
    let file_arg = format!("--filename={}", file.display());
    let check = || -> Result<bool> {
        env.measure(
            again(&fio)
                .args(["--name=check", &file_arg, &size, "--rw=write", "--bs=1M"])
                .args(["--verify=crc32c-intel", "--do_verify=0"]),
            "fio write",
            16 * MIB,
        )?;
        let mut bytes = std::fs::read(&file)?;
        bytes[5 * MIB as usize + 123] ^= 0x40;
        std::fs::write(&file, bytes)?;
        let out = super::proc::run(
            again(&fio)
                .args(["--name=check", &file_arg, &size, "--rw=read", "--bs=1M"])
                .args(["--verify=crc32c-intel", "--iomem_align=4096"]),
            &env.shm,
            Env::limit(16 * MIB),
        )?;
        Ok(!out.status.success())
    };
    let verdict = check();
    let _ = fresh(&file);
    match verdict {
        Ok(true) => Ok(()),
        Ok(false) => Err("fio's read job passed a flipped byte: not a verify".to_owned()),
        Err(e) => Err(format!("fio verify self-check failed: {e:#}")),
    }
}

fn fio_args(name: &str, file: &Path, bytes: u64) -> Vec<String> {
    vec![
        format!("--name={name}"),
        format!("--filename={}", file.display()),
        format!("--size={bytes}"),
        "--bs=1M".to_owned(),
        "--verify=crc32c-intel".to_owned(),
    ]
}

/// `write-shm`, `verify-shm` and `cpu`.
pub fn write_verify_shm(ctx: &mut Ctx, env: &mut Env) -> Result<()> {
    let (shm, disk) = (env.shm.clone(), env.disk.clone());
    env.fit(&shm, |b| volume_size(b) + 2 * b + 64 * MIB)?;
    env.fit(&disk, |b| 2 * b + volume_size(b) + 64 * MIB)?;
    let n = env.bytes;
    let runs = env.runs;
    let input = disk.join("input.bin");
    make_input(&input, n)?;
    let (vol, dd_out, fio_file) = (shm.join("vol"), shm.join("dd.out"), shm.join("fio.file"));
    let cmds = both(env.stackctl("format"), env.stackctl("write"));
    let verify = env.stackctl("verify");
    let dd = env.peer("dd");
    let fio = env.peer("fio");
    let fio_checked = fio_really_verifies(env);
    let env = &*env;
    let vol_size = volume_size(n).to_string();
    let (input, vol, dd_out, fio_file) = (&input, &vol, &dd_out, &fio_file);
    let vol_size = &vol_size;

    eprintln!("  e2e: write-shm, {} MiB, {runs} runs per side", n / MIB);
    let mut sides = [
        side(cmds.map(|(format, write)| {
            move || {
                fresh(vol)?;
                env.measure(
                    again(&format).arg(&vol).args(["--size", &vol_size]),
                    "format",
                    n,
                )?;
                preread(&input)?;
                env.measure(again(&write).arg(&vol).arg(&input), "stackctl write", n)
            }
        })),
        side(dup(&dd).map(|dd| {
            move || {
                fresh(&dd_out)?;
                preread(&input)?;
                let (i, o) = (arg("if=", &input), arg("of=", &dd_out));
                env.measure(
                    again(&dd).args([&i, &o, "bs=1M", "conv=fsync", "status=none"]),
                    "dd write",
                    n,
                )
            }
        })),
        side(dup(&fio).map(|fio| {
            move || {
                fresh(&fio_file)?;
                preread(&input)?;
                let args = fio_args("e2e-write", &fio_file, n);
                env.measure(
                    again(&fio)
                        .args(&args)
                        .args(["--rw=write", "--do_verify=0"]),
                    "fio write",
                    n,
                )
            }
        })),
    ];
    let res = alternate(runs, &mut sides);
    drop(sides);
    speed_row(
        ctx,
        "write-shm",
        &res[0],
        "dd conv=fsync",
        &res[1],
        n,
        0.9,
        "",
    );
    speed_row(
        ctx,
        "write-shm",
        &res[0],
        "fio verify write",
        &res[2],
        n,
        2.0,
        "",
    );

    eprintln!("  e2e: verify-shm, {} MiB", n / MIB);
    // Verify what the last write run left; fio verifies the file its last write made.
    let ours_ready = res[0]
        .clone()
        .map(|_| ())
        .map_err(|e| format!("no volume: write {e}"));
    if res[2].is_err() && fio_file.exists() {
        fresh(&fio_file)?;
    }
    let fio_ready = match (&fio, &res[2]) {
        (Ok(_), Ok(_)) => fio_checked.clone(),
        (Ok(f), Err(_)) => env
            .measure(
                again(f)
                    .args(fio_args("e2e-write", &fio_file, n))
                    .args(["--rw=write", "--do_verify=0"]),
                "fio write",
                n,
            )
            .map(|_| ())
            .map_err(|e| format!("{e:#}"))
            .and(fio_checked.clone()),
        (Err(e), _) => Err(e.clone()),
    };
    let read_file = if vol.exists() {
        vol.clone()
    } else {
        fio_file.clone()
    };
    let read_file = &read_file;
    let mut sides = [
        side(both(verify, ours_ready).map(|(verify, ())| {
            move || env.measure(again(&verify).arg(&vol), "stackctl verify", n)
        })),
        side(both(dup(&fio), fio_ready).map(|(fio, ())| {
            move || {
                let args = fio_args("e2e-verify", &fio_file, n);
                env.measure(
                    again(&fio)
                        .args(&args)
                        .args(["--rw=read", "--iomem_align=4096"]),
                    "fio verify",
                    n,
                )
            }
        })),
        side(dup(&dd).map(|dd| {
            move || {
                let i = arg("if=", &read_file);
                let count = format!("count={}", n / MIB);
                env.measure(
                    again(&dd).args([&i, "of=/dev/null", "bs=1M", &count, "status=none"]),
                    "dd read",
                    n,
                )
            }
        })),
    ];
    let res = alternate(runs, &mut sides);
    drop(sides);
    speed_row(
        ctx,
        "verify-shm",
        &res[0],
        "fio verify read",
        &res[1],
        n,
        2.0,
        "",
    );
    let dd_note = format!("; dd reads {}", read_file.display());
    speed_row(
        ctx,
        "verify-shm",
        &res[0],
        "dd read",
        &res[2],
        n,
        1.0,
        &dd_note,
    );
    let per_gib = |s: &Stats| s.cpu_s / (n as f64 / GIB as f64);
    match (&res[0], &res[1]) {
        (Ok(o), Ok(p)) => ctx.record(
            "cpu (verify)",
            "CPU s/GiB",
            Sense::LowerIsBetter,
            per_gib(o),
            "fio verify read",
            per_gib(p),
            None,
            &format!("user+sys, median of {runs}, {} MiB verified", n / MIB),
        ),
        (o, p) => skipped_row(
            ctx,
            "cpu (verify)",
            "CPU s/GiB",
            o.as_ref().map(per_gib).unwrap_or(0.0),
            "fio verify read",
            p.as_ref().map(per_gib).unwrap_or(0.0),
            "",
            &[o.as_ref().err(), p.as_ref().err()]
                .into_iter()
                .flatten()
                .cloned()
                .collect::<Vec<_>>()
                .join("; "),
        ),
    }
    for f in [&vol, &dd_out, &fio_file] {
        fresh(f)?;
    }
    Ok(())
}

fn arg(prefix: &str, path: &Path) -> String {
    format!("{prefix}{}", path.display())
}

/// `write-disk` and `verify-disk`: `O_DIRECT` on a file under the target directory.
pub fn disk(ctx: &mut Ctx, env: &mut Env) -> Result<()> {
    let n = env.bytes;
    let runs = env.runs;
    let input = env.disk.join("input.bin");
    if !input.exists() {
        make_input(&input, n)?;
    }
    let (vol, dd_out) = (env.disk.join("vol"), env.disk.join("dd.out"));
    let cmds = both(env.stackctl("format"), env.stackctl("write"));
    let verify = env.stackctl("verify");
    let dd = env.peer("dd");
    let env = &*env;
    let vol_size = volume_size(n).to_string();
    let note = "; O_DIRECT, cache dropped before each run";
    let (input, vol, dd_out, vol_size) = (&input, &vol, &dd_out, &vol_size);

    eprintln!("  e2e: write-disk, {} MiB", n / MIB);
    let mut sides = [
        side(cmds.map(|(format, write)| {
            move || {
                fresh(vol)?;
                env.measure(
                    again(&format).arg(&vol).args(["--size", &vol_size]),
                    "format",
                    n,
                )?;
                sys::drop_cache(&vol)?;
                preread(&input)?;
                env.measure(
                    again(&write).arg("--direct").arg(&vol).arg(&input),
                    "stackctl write --direct",
                    n,
                )
            }
        })),
        side(dup(&dd).map(|dd| {
            move || {
                fresh(&dd_out)?;
                preread(&input)?;
                let (i, o) = (arg("if=", &input), arg("of=", &dd_out));
                env.measure(
                    again(&dd).args([&i, &o, "bs=1M", "oflag=direct", "conv=fsync", "status=none"]),
                    "dd write oflag=direct",
                    n,
                )
            }
        })),
    ];
    let res = alternate(runs, &mut sides);
    drop(sides);
    speed_row(
        ctx,
        "write-disk",
        &res[0],
        "dd oflag=direct",
        &res[1],
        n,
        0.95,
        note,
    );

    eprintln!("  e2e: verify-disk, {} MiB", n / MIB);
    let ours_ready = res[0]
        .clone()
        .map(|_| ())
        .map_err(|e| format!("no volume: write {e}"));
    let dd_ready = res[1]
        .clone()
        .map(|_| ())
        .map_err(|e| format!("no file: dd {e}"));
    let mut sides = [
        side(both(verify, ours_ready).map(|(verify, ())| {
            move || {
                sys::drop_cache(&vol)?;
                env.measure(
                    again(&verify).arg("--direct").arg(&vol),
                    "stackctl verify --direct",
                    n,
                )
            }
        })),
        side(both(dd, dd_ready).map(|(dd, ())| {
            move || {
                sys::drop_cache(&dd_out)?;
                let i = arg("if=", &dd_out);
                env.measure(
                    again(&dd).args([&i, "of=/dev/null", "bs=1M", "iflag=direct", "status=none"]),
                    "dd read iflag=direct",
                    n,
                )
            }
        })),
    ];
    let res = alternate(runs, &mut sides);
    drop(sides);
    speed_row(
        ctx,
        "verify-disk",
        &res[0],
        "dd iflag=direct",
        &res[1],
        n,
        0.95,
        note,
    );
    for f in [&vol, &dd_out, &input] {
        fresh(f)?;
    }
    Ok(())
}

/// `burn-in` against `f3write` + `f3read` over the same bytes on `/dev/shm`. f3 writes
/// whole 1 GiB files, so the size is rounded up to GiB (1 GiB under `--quick` too).
pub fn burn_in(ctx: &mut Ctx, env: &mut Env) -> Result<()> {
    let bytes = env.bytes.div_ceil(GIB) * GIB;
    let free = sys::free_bytes(&env.shm)?;
    let runs = env.runs;
    let (vol, dir) = (env.shm.join("burn.vol"), env.shm.join("f3"));
    let ours = if volume_size(bytes) + bytes > free {
        Err(format!("/dev/shm has {} MiB free", free / MIB))
    } else {
        env.stackctl("burn-in")
    };
    let f3 = both(env.peer("f3write"), env.peer("f3read"));
    let env = &*env;
    let size = bytes.to_string();
    let files = format!("--end-at={}", bytes / GIB);
    let (vol, dir, size, files) = (&vol, &dir, &size, &files);
    eprintln!("  e2e: burn-in, {} MiB", bytes / MIB);
    let mut sides = [
        side(ours.map(|burn| {
            move || {
                fresh(vol)?;
                let args = ["--size", &size, "--seed", "1"];
                env.measure(again(&burn).arg(&vol).args(args), "stackctl burn-in", bytes)
            }
        })),
        side(f3.map(|(w, r)| {
            move || {
                fresh(&dir)?;
                std::fs::create_dir(&dir)?;
                let write = env.measure(again(&w).arg(&files).arg(&dir), "f3write", bytes)?;
                let read = env.measure(again(&r).arg(&files).arg(&dir), "f3read", bytes)?;
                Ok(write.then(read))
            }
        })),
    ];
    let res = alternate(runs, &mut sides);
    drop(sides);
    let note = "; ours: a volume file of this size (payload = size - metadata)";
    speed_row(
        ctx,
        "burn-in",
        &res[0],
        "f3write+f3read",
        &res[1],
        bytes,
        1.5,
        note,
    );
    fresh(&vol)?;
    fresh(&dir)?;
    Ok(())
}

/// `memory`: peak RSS of `write --pattern` and `verify` at two sizes against the 64 MiB
/// bound, and how much it grows from the small size to the large one.
pub fn memory(ctx: &mut Ctx, env: &mut Env) -> Result<()> {
    const BOUND_MIB: f64 = 64.0;
    const GROWTH_MIB: f64 = 4.0;
    let small = env.bytes;
    let mut large = 4 * small;
    let free = sys::free_bytes(&env.shm)?;
    let mut note = String::new();
    while volume_size(large) > free && large > small {
        large /= 2;
        note = format!("; large size cut to {} MiB: /dev/shm short", large / MIB);
    }
    let vol = env.shm.join("mem.vol");
    let cmds = both(
        env.stackctl("format"),
        both(env.stackctl("write"), env.stackctl("verify")),
    );
    let mut peaks: Vec<(u64, [Res; 2])> = Vec::new();
    for bytes in [small, large] {
        eprintln!("  e2e: memory, {} MiB", bytes / MIB);
        let one = |cmds: &(Command, (Command, Command))| -> Result<[Stats; 2]> {
            let (format, (write, verify)) = cmds;
            fresh(&vol)?;
            let vol_size = volume_size(bytes).to_string();
            env.measure(
                again(format).arg(&vol).args(["--size", &vol_size]),
                "format",
                bytes,
            )?;
            let size = bytes.to_string();
            let w = env.measure(
                again(write)
                    .arg(&vol)
                    .args(["--pattern", "--size", &size, "--seed", "1"]),
                "stackctl write --pattern",
                bytes,
            )?;
            let v = env.measure(again(verify).arg(&vol), "stackctl verify", bytes)?;
            fresh(&vol)?;
            let stats = |m: Measured| Stats {
                wall_s: m.wall_s,
                cpu_s: m.cpu_s,
                maxrss_kib: m.maxrss_kib,
            };
            Ok([stats(w), stats(v)])
        };
        let res = match &cmds {
            Ok(c) => match one(c) {
                Ok([w, v]) => [Ok(w), Ok(v)],
                Err(e) => [Err(format!("failed: {e:#}")), Err(format!("failed: {e:#}"))],
            },
            Err(why) => [
                Err(format!("skipped: {why}")),
                Err(format!("skipped: {why}")),
            ],
        };
        fresh(&vol)?;
        peaks.push((bytes, res));
    }
    let mib = |s: &Stats| s.maxrss_kib as f64 / 1024.0;
    for (bytes, res) in &peaks {
        for (what, r) in ["write", "verify"].iter().zip(res) {
            let case = format!("memory {what} {} MiB", bytes / MIB);
            let ours = r.as_ref().map(mib).unwrap_or(0.0);
            ctx.push(Row {
                group: "e2e".to_owned(),
                case,
                unit: "MiB RSS".to_owned(),
                ours,
                peer: "bound".to_owned(),
                peer_value: BOUND_MIB,
                speedup: if r.is_ok() {
                    crate::bench::frame::speedup(Sense::LowerIsBetter, ours, BOUND_MIB)
                } else {
                    0.0
                },
                target: format!("<= {BOUND_MIB} MiB"),
                target_met: r.as_ref().ok().map(|_| ours <= BOUND_MIB),
                note: match r {
                    Ok(_) => format!("peak RSS (wait4 ru_maxrss), 1 run{note}"),
                    Err(e) => e.clone(),
                },
            });
        }
    }
    for (i, what) in ["write", "verify"].iter().enumerate() {
        let case = format!("memory {what} growth");
        let growth = match (&peaks[0].1[i], &peaks[1].1[i]) {
            (Ok(a), Ok(b)) => Ok(mib(b) - mib(a)),
            (Err(e), _) | (_, Err(e)) => Err(e.clone()),
        };
        ctx.push(Row {
            group: "e2e".to_owned(),
            case,
            unit: "MiB".to_owned(),
            ours: *growth.as_ref().unwrap_or(&0.0),
            peer: "bound".to_owned(),
            peer_value: GROWTH_MIB,
            speedup: 0.0,
            target: format!("<= +{GROWTH_MIB} MiB"),
            target_met: growth.as_ref().ok().map(|g| *g <= GROWTH_MIB),
            note: match &growth {
                Ok(_) => format!(
                    "peak RSS at {} MiB minus at {} MiB",
                    peaks[1].0 / MIB,
                    peaks[0].0 / MIB
                ),
                Err(e) => e.clone(),
            },
        });
    }
    Ok(())
}
