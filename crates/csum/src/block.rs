//! `BlockCsum`: per-block checksums bound to the physical block number and a volume salt.
//!
//! How the binding works, and why it always catches a moved block or another salt, is in
//! the crate documentation ("Address and salt binding").

#![forbid(unsafe_code)]

use crate::crc_block::BlockCrc;
use crate::plain::{fold32, mix64};
use crate::{xxh3, Algorithm, Error};
use std::fmt;

/// The largest block size [`BlockCsum::new`] accepts (1 GiB).
pub const MAX_BLOCK_SIZE_BYTES: usize = 1 << 30;

/// Separates the salt key from a bare `mix64(salt)` (ASCII `stackcsm`), so that salt 0
/// at address 0 still binds.
const SALT_DOMAIN: u64 = u64::from_be_bytes(*b"stackcsm");

/// Computes and verifies per-block checksums for one volume.
///
/// Built once per volume from its algorithm, salt and block size; `Copy` and cheap to
/// hand to every worker. Nothing here allocates, except [`verify`](BlockCsum::verify)
/// pushing a [`Mismatch`] into the caller's `Vec`, and nothing does I/O.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockCsum {
    algorithm: Algorithm,
    salt: u64,
    /// `mix64(salt ^ SALT_DOMAIN)`, computed once.
    salt_key: u64,
    block_size_bytes: usize,
}

/// One block whose checksum did not match, as found by [`BlockCsum::verify`].
///
/// `#[non_exhaustive]`: read its fields; only this crate makes one, so a later field
/// (the algorithm, say) is not a breaking change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Mismatch {
    /// Index of the block within the buffer (0 for the first block).
    pub index: usize,
    /// Physical block number (`first_addr + index`).
    pub addr: u64,
    /// The checksum the caller expected (as stored).
    pub expected: u64,
    /// The checksum of the bytes in the buffer.
    pub found: u64,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "block {} (index {}): expected {:#x}, found {:#x}",
            self.addr, self.index, self.expected, self.found
        )
    }
}

impl BlockCsum {
    /// A checksummer for blocks of `block_size_bytes` (1 ..= [`MAX_BLOCK_SIZE_BYTES`])
    /// on a volume whose salt is `salt` (pick it at random when the volume is formatted
    /// and store it in the superblock).
    pub fn new(algorithm: Algorithm, salt: u64, block_size_bytes: usize) -> Result<Self, Error> {
        if block_size_bytes == 0 || block_size_bytes > MAX_BLOCK_SIZE_BYTES {
            return Err(Error::InvalidBlockSize {
                block_size_bytes,
                max_bytes: MAX_BLOCK_SIZE_BYTES,
            });
        }
        Ok(Self {
            algorithm,
            salt,
            salt_key: mix64(salt ^ SALT_DOMAIN),
            block_size_bytes,
        })
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The volume salt given to [`new`](BlockCsum::new).
    pub fn salt(&self) -> u64 {
        self.salt
    }

    /// The block size.
    pub fn block_size_bytes(&self) -> usize {
        self.block_size_bytes
    }

    /// The 64-bit binding key of block `addr`: `mix64(salt ^ DOMAIN) ^ addr`.
    #[inline(always)]
    fn key(&self, addr: u64) -> u64 {
        self.salt_key ^ addr
    }

    /// Binds a raw (unseeded) hash of a block's bytes to its address and the salt.
    #[inline(always)]
    fn bind(&self, addr: u64, raw: u64) -> u64 {
        match self.algorithm {
            Algorithm::Crc32c => raw ^ u64::from(fold32(self.key(addr))),
            Algorithm::Xxh3 | Algorithm::Xxh64 => raw ^ self.key(addr),
        }
    }

    /// The checksum of one block stored at physical block number `addr`.
    ///
    /// # Panics
    /// If `data.len() != self.block_size_bytes()` (a caller bug, never disk content).
    pub fn block(&self, addr: u64, data: &[u8]) -> u64 {
        assert_eq!(
            data.len(),
            self.block_size_bytes,
            "BlockCsum::block takes exactly one block"
        );
        let raw = match self.algorithm {
            Algorithm::Crc32c => {
                u64::from(BlockCrc::for_block_len(self.block_size_bytes).crc(data))
            }
            Algorithm::Xxh3 => xxh3::xxh3_64_with_seed(data, 0),
            Algorithm::Xxh64 => xxhash_rust::xxh64::xxh64(data, 0),
        };
        self.bind(addr, raw)
    }

    /// Checks one block against its stored checksum.
    ///
    /// # Panics
    /// If `data.len() != self.block_size_bytes()`.
    pub fn check(&self, addr: u64, data: &[u8], expected: u64) -> Result<(), Error> {
        let found = self.block(addr, data);
        if found == expected {
            Ok(())
        } else {
            Err(Error::Mismatch {
                addr,
                expected,
                found,
            })
        }
    }

    /// Checksums every block of `buf` (a whole number of blocks; block `i` lives at
    /// physical block number `first_addr + i`) into `out`, which must have one slot per
    /// block.
    pub fn compute(&self, first_addr: u64, buf: &[u8], out: &mut [u64]) -> Result<(), Error> {
        self.check_shape(first_addr, buf, out.len())?;
        match self.algorithm {
            Algorithm::Crc32c => {
                // Pick the CRC path once per batch, not once per block.
                let crc = BlockCrc::for_block_len(self.block_size_bytes);
                self.compute_with(first_addr, buf, out, |d| u64::from(crc.crc(d)))
            }
            Algorithm::Xxh3 => {
                // Pick the XXH3 backend once per batch, not once per block.
                let backend = xxh3::Backend::get();
                self.compute_with(first_addr, buf, out, |d| backend.hash(d, 0))
            }
            Algorithm::Xxh64 => {
                self.compute_with(first_addr, buf, out, |d| xxhash_rust::xxh64::xxh64(d, 0))
            }
        }
        Ok(())
    }

    /// Checks every block of `buf` against `expected` (one checksum per block), pushes a
    /// [`Mismatch`] for **every** block that differs, in block order, and returns how
    /// many did. `mismatches` is only appended to, and only on a mismatch.
    pub fn verify(
        &self,
        first_addr: u64,
        buf: &[u8],
        expected: &[u64],
        mismatches: &mut Vec<Mismatch>,
    ) -> Result<usize, Error> {
        self.check_shape(first_addr, buf, expected.len())?;
        let bad = match self.algorithm {
            Algorithm::Crc32c => {
                let crc = BlockCrc::for_block_len(self.block_size_bytes);
                self.verify_with(first_addr, buf, expected, mismatches, |d| {
                    u64::from(crc.crc(d))
                })
            }
            Algorithm::Xxh3 => {
                let backend = xxh3::Backend::get();
                self.verify_with(first_addr, buf, expected, mismatches, |d| {
                    backend.hash(d, 0)
                })
            }
            Algorithm::Xxh64 => self.verify_with(first_addr, buf, expected, mismatches, |d| {
                xxhash_rust::xxh64::xxh64(d, 0)
            }),
        };
        Ok(bad)
    }

    /// Like [`compute`](BlockCsum::compute), spread over the rayon thread pool: for
    /// library users with one large buffer. (The stack's own pipelines parallelise
    /// through their worker pools and call `compute` per buffer.)
    ///
    /// Only with the `parallel` feature (off by default; it pulls in rayon).
    #[cfg(feature = "parallel")]
    pub fn compute_par(&self, first_addr: u64, buf: &[u8], out: &mut [u64]) -> Result<(), Error> {
        use rayon::prelude::*;
        self.check_shape(first_addr, buf, out.len())?;
        // At least 256 KiB per rayon task so splitting costs nothing next to hashing.
        let min_blocks = ((256 << 10) / self.block_size_bytes).max(1);
        buf.par_chunks_exact(self.block_size_bytes)
            .zip(out.par_iter_mut())
            .enumerate()
            .with_min_len(min_blocks)
            .for_each(|(index, (data, slot))| {
                *slot = self.block(first_addr + index as u64, data);
            });
        Ok(())
    }

    /// Checks that `buf` is whole blocks, that there are `checksums` of them and that
    /// their addresses fit in a `u64`; returns the number of blocks.
    pub(crate) fn check_shape(
        &self,
        first_addr: u64,
        buf: &[u8],
        checksums: usize,
    ) -> Result<usize, Error> {
        let block_size_bytes = self.block_size_bytes;
        // Block sizes are nearly always powers of two: a shift and a mask instead of
        // two 64-bit divisions keeps a one-block call as cheap as the bare hash.
        let (blocks, rest_bytes) = if block_size_bytes.is_power_of_two() {
            (
                buf.len() >> block_size_bytes.trailing_zeros(),
                buf.len() & (block_size_bytes - 1),
            )
        } else {
            (buf.len() / block_size_bytes, buf.len() % block_size_bytes)
        };
        if rest_bytes != 0 {
            return Err(Error::PartialBlock {
                len_bytes: buf.len(),
                block_size_bytes,
            });
        }
        if blocks != checksums {
            return Err(Error::CountMismatch { blocks, checksums });
        }
        if blocks > 0 && first_addr.checked_add(blocks as u64 - 1).is_none() {
            return Err(Error::AddressOverflow { first_addr, blocks });
        }
        Ok(blocks)
    }

    #[inline(always)]
    fn compute_with(
        &self,
        first_addr: u64,
        buf: &[u8],
        out: &mut [u64],
        raw: impl Fn(&[u8]) -> u64,
    ) {
        debug_assert_eq!(buf.len(), out.len() * self.block_size_bytes);
        let mut addr = first_addr;
        for (data, slot) in buf.chunks_exact(self.block_size_bytes).zip(out.iter_mut()) {
            *slot = self.bind(addr, raw(data));
            // Cannot overflow past the last block: `check_shape` proved it fits.
            addr = addr.wrapping_add(1);
        }
    }

    #[inline(always)]
    fn verify_with(
        &self,
        first_addr: u64,
        buf: &[u8],
        expected: &[u64],
        mismatches: &mut Vec<Mismatch>,
        raw: impl Fn(&[u8]) -> u64,
    ) -> usize {
        debug_assert_eq!(buf.len(), expected.len() * self.block_size_bytes);
        let mut bad = 0;
        let blocks = buf.chunks_exact(self.block_size_bytes).zip(expected);
        for (index, (data, &want)) in blocks.enumerate() {
            let addr = first_addr.wrapping_add(index as u64);
            let found = self.bind(addr, raw(data));
            if found != want {
                bad += 1;
                mismatches.push(Mismatch {
                    index,
                    addr,
                    expected: want,
                    found,
                });
            }
        }
        bad
    }
}
