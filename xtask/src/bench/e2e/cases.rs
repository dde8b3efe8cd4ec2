//! The speed cases: write and verify on `/dev/shm`, the same with `O_DIRECT` on the
//! disk, and burn-in against f3.

use super::checks::{fio_args, fio_really_verifies, stackctl_really_verifies};
use super::proc::sys;
use super::rows::{again, alternate, arg, both, dup, side, skipped_row, speed_row, Stats};
use super::setup::{burn_in_volume_size, fresh, make_input, preread, volume_size, Env, GIB, MIB};
use crate::bench::{Ctx, Sense};
use anyhow::Result;

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
    let ours_checked = stackctl_really_verifies(env);
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
                    again(&format).arg(vol).args(["--size", vol_size]),
                    "format",
                    n,
                )?;
                preread(input)?;
                env.measure(again(&write).arg(vol).arg(input), "stackctl write", n)
            }
        })),
        side(dup(&dd).map(|dd| {
            move || {
                fresh(dd_out)?;
                preread(input)?;
                let (i, o) = (arg("if=", input), arg("of=", dd_out));
                env.measure(
                    again(&dd).args([&i, &o, "bs=1M", "conv=fsync", "status=none"]),
                    "dd write",
                    n,
                )
            }
        })),
        side(dup(&fio).map(|fio| {
            move || {
                fresh(fio_file)?;
                preread(input)?;
                let args = fio_args("e2e-write", fio_file, n);
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
        .map_err(|e| format!("no volume: write {e}"))
        .and(ours_checked);
    if res[2].is_err() && fio_file.exists() {
        fresh(fio_file)?;
    }
    let fio_ready = match (&fio, &res[2]) {
        (Ok(_), Ok(_)) => fio_checked.clone(),
        (Ok(f), Err(_)) => env
            .measure(
                again(f)
                    .args(fio_args("e2e-write", fio_file, n))
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
            move || env.measure(again(&verify).arg(vol), "stackctl verify", n)
        })),
        side(both(dup(&fio), fio_ready).map(|(fio, ())| {
            move || {
                let args = fio_args("e2e-verify", fio_file, n);
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
                let i = arg("if=", read_file);
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

/// `write-disk` and `verify-disk`: `O_DIRECT` on a file under the target directory.
pub fn disk(ctx: &mut Ctx, env: &mut Env) -> Result<()> {
    let n = env.bytes;
    // The VM's disk is served from the host's cache, and the same dd or fio job swings
    // from 0.6 to 2.2 GiB/s from one run to the next (docs/PERFORMANCE.md): twice the
    // rounds of the other cases, so one slow minute moves the median less.
    let runs = env.runs * 2;
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

    eprintln!("  e2e: write-disk, {} MiB, {runs} runs per side", n / MIB);
    let mut sides = [
        side(cmds.map(|(format, write)| {
            move || {
                fresh(vol)?;
                env.measure(
                    again(&format).arg(vol).args(["--size", vol_size]),
                    "format",
                    n,
                )?;
                sys::drop_cache(vol)?;
                preread(input)?;
                env.measure(
                    again(&write).arg("--direct").arg(vol).arg(input),
                    "stackctl write --direct",
                    n,
                )
            }
        })),
        side(dup(&dd).map(|dd| {
            move || {
                fresh(dd_out)?;
                preread(input)?;
                let (i, o) = (arg("if=", input), arg("of=", dd_out));
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
                sys::drop_cache(vol)?;
                env.measure(
                    again(&verify).arg("--direct").arg(vol),
                    "stackctl verify --direct",
                    n,
                )
            }
        })),
        side(both(dd, dd_ready).map(|(dd, ())| {
            move || {
                sys::drop_cache(dd_out)?;
                let i = arg("if=", dd_out);
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
    // f3 writes and reads exactly `bytes`; our volume is sized so that its fill (the
    // volume minus checksums and tables) holds at least that much, and we are credited
    // with `bytes` only.
    let vol_bytes = burn_in_volume_size(bytes);
    let ours = if vol_bytes + bytes > free {
        Err(format!("/dev/shm has {} MiB free", free / MIB))
    } else {
        env.stackctl("burn-in")
    };
    let f3 = both(env.peer("f3write"), env.peer("f3read"));
    let env = &*env;
    let size = vol_bytes.to_string();
    let files = format!("--end-at={}", bytes / GIB);
    let (vol, dir, size, files) = (&vol, &dir, &size, &files);
    eprintln!("  e2e: burn-in, {} MiB", bytes / MIB);
    let mut sides = [
        side(ours.map(|burn| {
            move || {
                fresh(vol)?;
                let args = ["--size", size, "--seed", "1"];
                env.measure(again(&burn).arg(vol).args(args), "stackctl burn-in", bytes)
            }
        })),
        side(f3.map(|(w, r)| {
            move || {
                fresh(dir)?;
                std::fs::create_dir(dir)?;
                let write = env.measure(again(&w).arg(files).arg(dir), "f3write", bytes)?;
                let read = env.measure(again(&r).arg(files).arg(dir), "f3read", bytes)?;
                Ok(write.then(read))
            }
        })),
    ];
    let res = alternate(runs, &mut sides);
    drop(sides);
    let note = format!(
        "; ours: a {} MiB volume, filled (payload >= {} MiB)",
        vol_bytes / MIB,
        bytes / MIB
    );
    speed_row(
        ctx,
        "burn-in",
        &res[0],
        "f3write+f3read",
        &res[1],
        bytes,
        1.5,
        &note,
    );
    fresh(vol)?;
    fresh(dir)?;
    Ok(())
}

/// `burn-in-canaries`: burn-in with its canaries (the default) against `--no-canaries`,
/// on a file on the disk (the canaries flush and read past the page cache there), to
/// show they cost at most 3% of burn-in's time on a good device.
pub fn burn_in_canaries(ctx: &mut Ctx, env: &mut Env) -> Result<()> {
    let bytes = env.bytes;
    let runs = env.runs;
    let vol = env.disk.join("canary.vol");
    let burn = env.stackctl("burn-in");
    let env = &*env;
    let size = burn_in_volume_size(bytes).to_string();
    let (vol, size) = (&vol, &size);
    eprintln!("  e2e: burn-in-canaries, {} MiB", bytes / MIB);
    let run = |burn: std::process::Command, canaries: bool| {
        move || {
            fresh(vol)?;
            let mut cmd = again(&burn);
            cmd.arg(vol).args(["--size", size, "--seed", "1"]);
            if !canaries {
                cmd.arg("--no-canaries");
            }
            env.measure(&mut cmd, "stackctl burn-in", bytes)
        }
    };
    let mut sides = [
        side(dup(&burn).map(|b| run(b, true))),
        side(burn.map(|b| run(b, false))),
    ];
    let res = alternate(runs, &mut sides);
    drop(sides);
    speed_row(
        ctx,
        "burn-in-canaries",
        &res[0],
        "burn-in --no-canaries",
        &res[1],
        bytes,
        0.97,
        "; on the disk; target: canaries cost <= 3%",
    );
    fresh(vol)?;
    Ok(())
}
