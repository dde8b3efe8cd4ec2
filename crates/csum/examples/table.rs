//! Checksum a buffer into a stored table, then catch a flipped bit and a misplaced block.
//!
//! ```text
//! cargo run --release -p stack-csum --example table -- [--mib 64] [--algorithm crc32c|xxh3|xxh64]
//! ```
//!
//! Computes the address-bound checksum of every 4 KiB block of `--mib` MiB straight into
//! a table of stored checksums (`BlockCsum::compute_table`), verifies the data against
//! it (`verify_table`), then shows what a verifier reports for one flipped bit and for
//! the same bytes read from another address.

use stack_csum::{Algorithm, BlockCsum};
use std::time::Instant;

const BLOCK: usize = 4096;

fn parse() -> Result<(usize, Algorithm), String> {
    let (mut mib, mut algorithm) = (64, Algorithm::Crc32c);
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let value = it.next().ok_or(format!("{arg} needs a value"))?;
        match arg.as_str() {
            "--mib" => {
                mib = value
                    .parse()
                    .map_err(|_| format!("--mib: '{value}' is not a number"))?
            }
            "--algorithm" => algorithm = value.parse().map_err(|e| format!("{e}"))?,
            other => return Err(format!("unknown argument '{other}'")),
        }
    }
    if mib == 0 {
        return Err("--mib must be at least 1".into());
    }
    Ok((mib, algorithm))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (mib, algorithm) = parse().inspect_err(|_| {
        eprintln!("usage: table [--mib N] [--algorithm crc32c|xxh3|xxh64]");
    })?;
    let mut data: Vec<u8> = (0..mib << 20).map(|i| (i ^ (i >> 12)) as u8).collect();
    let blocks = data.len() / BLOCK;
    let first_addr = 1 << 20; // where the data lives on the volume, in blocks

    // The salt is random per volume in practice; it binds checksums to this volume.
    let csum = BlockCsum::new(algorithm, 0x5eed_5a17, BLOCK)?;
    let table_len = algorithm.table_len_bytes(blocks).ok_or("table too large")?;
    let mut table = vec![0u8; table_len];
    let start = Instant::now();
    csum.compute_table(first_addr, &data, &mut table)?;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{algorithm}: {blocks} blocks ({mib} MiB) into a {table_len}-byte table at {:.2} GB/s",
        data.len() as f64 / secs / 1e9
    );

    // Clean data verifies.
    let mut bad = Vec::new();
    assert_eq!(csum.verify_table(first_addr, &data, &table, &mut bad)?, 0);

    // The table decodes to the per-block checksums.
    let values = algorithm.decode_table_vec(&table)?;
    assert_eq!(
        values[7],
        csum.block(first_addr + 7, &data[7 * BLOCK..8 * BLOCK])
    );

    // One flipped bit: exactly its block is reported, by index and address.
    let victim = blocks / 3;
    data[victim * BLOCK + 123] ^= 0x04;
    assert_eq!(csum.verify_table(first_addr, &data, &table, &mut bad)?, 1);
    println!("flipped bit caught: {}", bad[0]);
    assert_eq!(
        (bad[0].index, bad[0].addr),
        (victim, first_addr + victim as u64)
    );
    data[victim * BLOCK + 123] ^= 0x04;

    // The right bytes at the wrong address (a misdirected write): every block fails.
    bad.clear();
    let moved = csum.verify_table(first_addr + 1, &data, &table, &mut bad)?;
    assert_eq!(moved, blocks);
    println!("the same bytes one block off: {moved} of {blocks} blocks fail: ok");
    Ok(())
}
