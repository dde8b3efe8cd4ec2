//! Self-checks that each verifier really verifies: a flipped byte must fail it.

use super::rows::again;
use super::setup::{fresh, make_input, volume_size, Env, MIB};
use anyhow::Result;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Checks, on a 16 MiB file, that fio's read job with `--verify` fails on a flipped byte:
/// otherwise its figure would not be a verify at all.
pub fn fio_really_verifies(env: &mut Env) -> std::result::Result<(), String> {
    let fio = env.peer("fio")?;
    let file = env.shm.join("fio-check.file");
    let size = format!("--size={}", 16 * MIB);
    let file_arg = format!("--filename={}", file.display());
    let check = || -> Result<bool> {
        env.measure(
            again(&fio)
                .args(["--name=check", &file_arg, &size, "--rw=write", "--bs=1M"])
                .args([
                    "--verify=crc32c-intel",
                    "--do_verify=0",
                    "--verify_state_save=0",
                ]),
            "fio write",
            16 * MIB,
        )?;
        flip_byte(&file, 5 * MIB + 123)?;
        let out = super::proc::run(
            again(&fio)
                .args(["--name=check", &file_arg, &size, "--rw=read", "--bs=1M"])
                .args([
                    "--verify=crc32c-intel",
                    "--iomem_align=4096",
                    "--verify_state_save=0",
                ]),
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

pub fn fio_args(name: &str, file: &Path, bytes: u64) -> Vec<String> {
    vec![
        format!("--name={name}"),
        format!("--filename={}", file.display()),
        format!("--size={bytes}"),
        "--bs=1M".to_owned(),
        "--verify=crc32c-intel".to_owned(),
        // Otherwise fio leaves `*-verify.state` files in the working directory.
        "--verify_state_save=0".to_owned(),
    ]
}

/// Checks, on a 16 MiB object, that `stackctl verify` exits 1 after one byte of the
/// object's data (found in the volume by content) is flipped.
pub fn stackctl_really_verifies(env: &mut Env) -> std::result::Result<(), String> {
    let (format, write, verify) = (
        env.stackctl("format")?,
        env.stackctl("write")?,
        env.stackctl("verify")?,
    );
    let (vol, input) = (env.shm.join("check.vol"), env.shm.join("check.in"));
    let bytes = 16 * MIB;
    let check = || -> Result<std::result::Result<(), String>> {
        make_input(&input, bytes)?;
        let size = volume_size(bytes).to_string();
        env.measure(
            again(&format).arg(&vol).args(["--size", &size]),
            "format",
            bytes,
        )?;
        env.measure(again(&write).arg(&vol).arg(&input), "stackctl write", bytes)?;
        let clean = super::proc::run(again(&verify).arg(&vol), &env.shm, Env::limit(bytes))?;
        if !clean.status.success() {
            return Ok(Err(format!(
                "a clean volume failed verify: {}",
                super::proc::tail(&clean.stdout, 2)
            )));
        }
        let Some(at) = flip_block_of(&vol, &input, 8 * MIB)? else {
            return Ok(Err("input block not found in the volume".to_owned()));
        };
        let out = super::proc::run(again(&verify).arg(&vol), &env.shm, Env::limit(bytes))?;
        Ok(match out.status.code() {
            Some(1) => Ok(()),
            _ => Err(format!(
                "stackctl verify gave {} after a flipped byte at volume offset {at}",
                super::proc::describe(out.status)
            )),
        })
    };
    let verdict = check();
    let _ = fresh(&vol);
    let _ = fresh(&input);
    match verdict {
        Ok(v) => v,
        Err(e) => Err(format!("stackctl verify self-check failed: {e:#}")),
    }
}

/// Finds the 4 KiB block of `input` at `input_offset` in `vol` (4 KiB aligned), flips one
/// byte of it there, and returns the volume offset of the flipped byte.
///
/// Streams both files through 4 KiB buffers: reading them whole would leave this process
/// with a large heap, and its resident set is the floor under every child's peak RSS.
fn flip_block_of(vol: &Path, input: &Path, input_offset: u64) -> Result<Option<u64>> {
    const BLOCK: usize = 4096;
    let mut want = [0u8; BLOCK];
    std::fs::File::open(input)?.read_exact_at(&mut want, input_offset)?;
    let f = std::fs::File::open(vol)?;
    let len = f.metadata()?.len();
    let mut block = [0u8; BLOCK];
    let mut offset = 0u64;
    while offset + BLOCK as u64 <= len {
        f.read_exact_at(&mut block, offset)?;
        if block == want {
            let at = offset + 1000;
            flip_byte(vol, at)?;
            return Ok(Some(at));
        }
        offset += BLOCK as u64;
    }
    Ok(None)
}

/// Flips one bit of the byte at `offset` of `path`, in place.
fn flip_byte(path: &Path, offset: u64) -> Result<()> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)?;
    let mut byte = [0u8; 1];
    f.read_exact_at(&mut byte, offset)?;
    byte[0] ^= 0x40;
    f.write_all_at(&byte, offset)?;
    f.sync_all()?;
    Ok(())
}
