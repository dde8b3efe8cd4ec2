//! Unbound checksums of bytes with a seed, and the raw per-algorithm hash functions.

#![forbid(unsafe_code)]

use crate::{xxh3, Algorithm};

/// Plain checksum of `data` with `seed`, not bound to any address: for superblocks,
/// metadata records and anything that is not a data block.
///
/// - `crc32c`: `crc32c_append(fold32(seed), data)`, where `fold32(s)` is the low 32 bits
///   of `s` XOR its high 32 bits; seed 0 gives the standard CRC-32C. The result is in the
///   low 32 bits.
/// - `xxh3`: `XXH3_64bits_withSeed(data, seed)`.
/// - `xxh64`: `XXH64(data, seed)`.
///
/// ```
/// use stack_csum::{checksum, Algorithm};
/// assert_eq!(checksum(Algorithm::Crc32c, 0, b"123456789"), 0xE306_9283);
/// assert_eq!(checksum(Algorithm::Xxh64, 0, b""), 0xEF46_DB37_51D8_E999);
/// assert_eq!(checksum(Algorithm::Xxh3, 0, b""), 0x2D06_8005_38D3_94C2);
/// ```
pub fn checksum(algorithm: Algorithm, seed: u64, data: &[u8]) -> u64 {
    match algorithm {
        Algorithm::Crc32c => u64::from(crc32c::crc32c_append(fold32(seed), data)),
        Algorithm::Xxh3 => xxh3::xxh3_64_with_seed(data, seed),
        Algorithm::Xxh64 => xxhash_rust::xxh64::xxh64(data, seed),
    }
}

/// The low 32 bits of `x` XOR its high 32 bits. Injective on any set of values that
/// share their high 32 bits (for block addresses: any 2^32 consecutive blocks that do
/// not straddle a multiple of 2^32, in particular every address below 2^32).
#[inline(always)]
pub(crate) const fn fold32(x: u64) -> u32 {
    (x as u32) ^ ((x >> 32) as u32)
}

/// murmur3's `fmix64` finaliser: a bijection on `u64` (each step, `x ^= x >> 33` and
/// multiplication by an odd constant, is invertible) that spreads every input bit over
/// the whole word.
#[inline(always)]
pub(crate) const fn mix64(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^= x >> 33;
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fold32_mixes_both_halves() {
        assert_eq!(fold32(0), 0);
        assert_eq!(fold32(0x1234_5678), 0x1234_5678);
        assert_eq!(fold32(0x1234_5678_0000_0000), 0x1234_5678);
        assert_eq!(fold32(0xffff_ffff_ffff_ffff), 0);
    }

    #[test]
    fn mix64_is_not_the_identity_and_is_deterministic() {
        assert_eq!(mix64(0), 0);
        assert_ne!(mix64(1), 1);
        assert_eq!(mix64(42), mix64(42));
        // Distinct inputs, distinct outputs (it is a bijection; spot-check a range).
        let mut seen: Vec<u64> = (0..4096u64).map(mix64).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 4096);
    }

    #[test]
    fn crc32c_seed_zero_is_standard() {
        assert_eq!(checksum(Algorithm::Crc32c, 0, b"123456789"), 0xE306_9283);
        assert_ne!(checksum(Algorithm::Crc32c, 1, b"123456789"), 0xE306_9283);
        // The high half of the seed is not ignored.
        assert_ne!(
            checksum(Algorithm::Crc32c, 1 << 32, b"123456789"),
            0xE306_9283
        );
    }
}
