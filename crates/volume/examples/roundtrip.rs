//! A volume on a file: format, write an object and a pattern, reopen, read back, verify,
//! then damage one byte behind the volume's back and let verify name it.
//!
//! ```text
//! cargo run --release -p stack-volume --example roundtrip -- [--mib 64] [--dir DIR]
//! ```
//!
//! The volume file (`--mib` MiB of data, twice, plus room for metadata) is created in
//! `DIR` (the system temporary directory by default) and removed at the end.

use stack_volume::{FormatOptions, OpenOptions, VerifyOptions, Volume, WriteOptions};
use std::path::PathBuf;

fn parse() -> Result<(u64, PathBuf), String> {
    let (mut mib, mut dir) = (64u64, std::env::temp_dir());
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let value = it.next().ok_or(format!("{arg} needs a value"))?;
        match arg.as_str() {
            "--mib" => {
                mib = value
                    .parse()
                    .map_err(|_| format!("--mib: '{value}' is not a number"))?
            }
            "--dir" => dir = value.into(),
            other => return Err(format!("unknown argument '{other}'")),
        }
    }
    if mib == 0 {
        return Err("--mib must be at least 1".into());
    }
    Ok((mib, dir))
}

fn run(path: &PathBuf, mib: u64) -> Result<(), Box<dyn std::error::Error>> {
    let mut state = 0x1234_5678_9abc_def1u64;
    let data: Vec<u8> = (0..mib << 20)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();

    // Format: the file is created at this size; O_DIRECT is used where it can serve.
    let format = FormatOptions {
        create_size_bytes: Some((2 * mib + 16) << 20),
        ..FormatOptions::default()
    };
    let mut vol = Volume::format(path, &format)?;
    let report = vol.write("data", &mut &data[..], &WriteOptions::default())?;
    vol.write_pattern("burn-in", mib << 20, 42, &WriteOptions::default())?;
    println!(
        "wrote {} bytes as 'data' in {} extents, and a {mib} MiB pattern",
        report.bytes, report.extents
    );
    drop(vol); // closes the volume and releases its lock

    // Reopen, read back, verify every block against its address-bound checksum.
    let vol = Volume::open(path, &OpenOptions::default())?;
    let mut back = Vec::new();
    vol.read("data", &mut back)?;
    assert!(back == data, "the object reads back byte for byte");
    let clean = vol.verify(&VerifyOptions::default())?;
    assert!(clean.clean(), "a fresh volume verifies clean");
    println!(
        "read back and verified {} blocks of {} objects",
        clean.blocks_verified, clean.objects_verified
    );
    drop(vol);

    // Flip one byte of block 5 of 'data' in the file itself (found by its contents).
    let block = 5 * 4096;
    let mut image = std::fs::read(path)?;
    let at = image
        .windows(64)
        .position(|w| w == &data[block..block + 64])
        .ok_or("block 5 of 'data' is not in the volume file")?;
    image[at + 10] ^= 0x01;
    std::fs::write(path, &image)?;

    let vol = Volume::open(path, &OpenOptions::default())?;
    let report = vol.verify(&VerifyOptions::default())?;
    let damage = report
        .damaged
        .first()
        .ok_or("verify missed the flipped byte")?;
    assert_eq!(damage.object, "data");
    assert_eq!(damage.logical_offset, block as u64);
    println!(
        "one flipped byte: verify names '{}' at offset {} ({:?}): ok",
        damage.object, damage.logical_offset, damage.cause
    );
    Ok(())
}

fn main() {
    let (mib, dir) = match parse() {
        Ok(args) => args,
        Err(why) => {
            eprintln!("roundtrip: {why}");
            eprintln!("usage: roundtrip [--mib N] [--dir DIR]");
            std::process::exit(2);
        }
    };
    let path = dir.join(format!("stack-roundtrip-{}.vol", std::process::id()));
    let result = run(&path, mib);
    let _ = std::fs::remove_file(&path);
    if let Err(e) = result {
        eprintln!("roundtrip: {e}");
        std::process::exit(1);
    }
}
