//! Per-block checksums bound to the block's address and the volume.
//!
//! `stack-csum` computes and verifies one checksum per fixed-size block of a buffer,
//! with CRC-32C (the default), XXH3-64 or xxHash64. Every block checksum is **bound to
//! the block's physical block number and to a per-volume salt**, so a verifier catches
//! not only flipped bits but also a block written to or read from the wrong place
//! (misdirected I/O) and a block left behind by another volume or an earlier format of
//! the same device (stale data) — both of which carry a perfectly valid *plain*
//! checksum.
//!
//! # Address and salt binding
//!
//! For a volume with salt `salt` and a block with physical block number `addr`:
//!
//! ```text
//! key(salt, addr) = mix64(salt ^ 0x737461636b63736d) ^ addr      // 64 bits
//! crc32c: stored  = crc32c(data)        ^ fold32(key)             // 32 bits
//! xxh3:   stored  = XXH3_64(data, 0)    ^ key                     // 64 bits
//! xxh64:  stored  = XXH64(data, 0)      ^ key                     // 64 bits
//! ```
//!
//! where `mix64` is murmur3's `fmix64` finaliser (a bijection on `u64`), the constant
//! is ASCII `stackcsm` (so salt 0 at address 0 is bound too), and `fold32(k)` is the low
//! 32 bits of `k` XOR its high 32 bits. The salt key `mix64(salt ^ ..)` is computed once
//! in [`BlockCsum::new`]; per block the binding is one XOR (two for CRC32C) on a value
//! already in a register, nothing next to hashing 4 KiB.
//!
//! Why this always catches what it must, for the same bytes `data`:
//!
//! - **Moved block** (same salt, addresses `a != b`): the stored values differ by
//!   `key(s, a) ^ key(s, b) = a ^ b`, which is never zero. For CRC32C they differ by
//!   `fold32(a) ^ fold32(b)`, never zero when `a` and `b` share their high 32 bits — in
//!   particular for every address below 2^32 (16 TiB of 4 KiB blocks).
//! - **Other salt** (same address, salts `s != t`): they differ by
//!   `mix64(s ^ C) ^ mix64(t ^ C)`, never zero because `mix64` is a bijection. For
//!   CRC32C the 64-bit salt keys are folded to 32 bits, so two random salts collide
//!   with probability 2^-32 — the same odds as any corruption slipping past a 32-bit
//!   checksum.
//! - The raw hash is a function of the bytes alone, so these differences are exact: the
//!   binding never makes a bit flip *less* detectable than the plain algorithm.
//!
//! For unbound checksums (superblocks, metadata records) use [`checksum`] with a seed.
//!
//! # Example
//!
//! ```
//! use stack_csum::{Algorithm, BlockCsum, Mismatch};
//!
//! let algorithm: Algorithm = "xxh3".parse()?;
//! let csum = BlockCsum::new(algorithm, 0x5eed_5a17, 4096)?;
//! let mut buf = vec![7u8; 4 * 4096];
//! let mut sums = [0u64; 4];
//! csum.compute(100, &buf, &mut sums)?; // blocks 100..104
//!
//! let mut bad: Vec<Mismatch> = Vec::new();
//! assert_eq!(csum.verify(100, &buf, &sums, &mut bad)?, 0);
//!
//! // The same bytes read back from blocks 200..204 instead: every block fails.
//! assert_eq!(csum.verify(200, &buf, &sums, &mut bad)?, 4);
//! bad.clear();
//!
//! // One flipped bit in the third block: exactly that block is reported.
//! buf[2 * 4096 + 17] ^= 0x10;
//! assert_eq!(csum.verify(100, &buf, &sums, &mut bad)?, 1);
//! assert_eq!((bad[0].index, bad[0].addr), (2, 102));
//! # Ok::<(), stack_csum::Error>(())
//! ```
//!
//! # Checksum tables
//!
//! A volume stores its block checksums packed back to back: entry `i` holds the
//! checksum of block `first_addr + i` in [`Algorithm::width_bytes`] bytes, little-endian.
//! [`Algorithm::encode_table`] and [`Algorithm::decode_table`] convert whole tables (errors
//! name the entry and byte offset at fault), and [`BlockCsum::compute_table`] and
//! [`BlockCsum::verify_table`] work on the stored bytes directly:
//!
//! ```
//! use stack_csum::{Algorithm, BlockCsum};
//!
//! let csum = BlockCsum::new(Algorithm::Crc32c, 7, 4096)?;
//! let data = vec![0xa5u8; 16 * 4096];
//! let mut table = vec![0u8; Algorithm::Crc32c.table_len_bytes(16).unwrap()];
//! csum.compute_table(1000, &data, &mut table)?; // 64 bytes, ready to write
//!
//! let values = Algorithm::Crc32c.decode_table_vec(&table)?;
//! assert_eq!(values[3], csum.block(1003, &data[3 * 4096..4 * 4096]));
//! assert_eq!(csum.verify_table(1000, &data, &table, &mut Vec::new())?, 0);
//! # Ok::<(), stack_csum::Error>(())
//! ```
//!
//! # Cargo features
//!
//! - `parallel` (off by default): `BlockCsum::compute_par`, which checksums one large
//!   buffer on the rayon thread pool. Off because it pulls in rayon, and a program with
//!   its own worker pool does better calling [`BlockCsum::compute`] per buffer from
//!   there (as `stack-volume` does).
//!
//! # Modules
//!
//! - [`Algorithm`]: names, stable on-disk ids, stored widths, encoding of one checksum
//!   or a whole table.
//! - [`BlockCsum`], [`Mismatch`]: bound per-block checksums, batch compute and verify,
//!   against a `u64` slice or a stored table.
//! - [`checksum`]: plain seeded checksums.
//! - [`xxh3_64_with_seed`]: XXH3 with a runtime-dispatched AVX2 path;
//!   [`xxh3_backend`] says which path runs.
//! - [`Error`]: every failure, with the sizes, addresses and offsets involved.
//!
//! CRC-32C of a block runs as three interleaved streams over the whole block (SSE4.2,
//! detected at run time; the `crc32c` crate otherwise), bit for bit the crate's result.
//!
//! The crate does no I/O, does not allocate on its hot path, and keeps its only
//! `unsafe` code in two small modules: the AVX2 loop of XXH3 and the SSE4.2 loop of
//! CRC-32C.

#![deny(unsafe_code)]

mod algorithm;
mod block;
mod crc_block;
mod error;
mod plain;
#[cfg(test)]
mod props;
mod table;
mod xxh3;

pub use algorithm::Algorithm;
pub use block::{BlockCsum, Mismatch, MAX_BLOCK_SIZE_BYTES};
pub use error::Error;
pub use plain::checksum;
pub use xxh3::{xxh3_64_with_seed, xxh3_backend};
