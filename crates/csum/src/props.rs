//! Property tests of the address and salt binding (proptest).
//!
//! They live inside the crate because the CRC32C salt property depends on the 32-bit
//! fold of the salt key, which is internal.

#![forbid(unsafe_code)]

use crate::plain::{fold32, mix64};
use crate::{Algorithm, BlockCsum};
use proptest::prelude::*;

fn algorithm() -> impl Strategy<Value = Algorithm> {
    prop::sample::select(Algorithm::ALL.to_vec())
}

/// A block size and that many bytes of data.
fn block() -> impl Strategy<Value = Vec<u8>> {
    prop::sample::select(vec![1usize, 7, 64, 241, 512, 1000, 4096])
        .prop_flat_map(|len| prop::collection::vec(any::<u8>(), len))
}

/// What `BlockCsum` derives from a salt (kept in sync with `block.rs` by the test
/// `salt_key_model_matches` below).
fn salt_key(salt: u64) -> u64 {
    mix64(salt ^ u64::from_be_bytes(*b"stackcsm"))
}

#[test]
fn salt_key_model_matches() {
    for salt in [0, 1, u64::MAX, 0x1234_5678_9abc_def0] {
        let csum = BlockCsum::new(Algorithm::Xxh64, salt, 1).unwrap();
        let raw = xxhash_rust::xxh64::xxh64(&[9], 0);
        assert_eq!(csum.block(77, &[9]) ^ raw, salt_key(salt) ^ 77);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// The three-stream CRC-32C of a whole block is the `crc32c` crate's, bit for bit,
    /// for every block size a volume may have and any bytes.
    #[test]
    fn block_crc_matches_the_crate(
        data in prop::sample::select(vec![512usize, 1024, 2048, 4096, 8192, 16384, 32768, 65536])
            .prop_flat_map(|len| prop::collection::vec(any::<u8>(), len)),
    ) {
        let path = crate::crc_block::BlockCrc::for_block_len(data.len());
        prop_assert_eq!(path.crc(&data), crc32c::crc32c(&data));
    }

    /// Any single flipped bit anywhere in a block changes its checksum.
    #[test]
    fn single_bit_flip_is_caught(
        algorithm in algorithm(),
        data in block(),
        salt in any::<u64>(),
        addr in any::<u64>(),
        bit in any::<prop::sample::Index>(),
    ) {
        let csum = BlockCsum::new(algorithm, salt, data.len()).unwrap();
        let good = csum.block(addr, &data);
        let bit = bit.index(data.len() * 8);
        let mut bad = data.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        prop_assert_ne!(csum.block(addr, &bad), good);
    }

    /// A block moved to any other address fails there. For CRC32C the guarantee is for
    /// addresses that share their high 32 bits (every address below 2^32), so the
    /// strategy keeps `b` in `a`'s 2^32-block window.
    #[test]
    fn moved_block_is_caught(
        algorithm in algorithm(),
        data in block(),
        salt in any::<u64>(),
        a in any::<u64>(),
        b_low in any::<u32>(),
    ) {
        let b = (a & !0xffff_ffff) | u64::from(b_low);
        prop_assume!(a != b);
        let csum = BlockCsum::new(algorithm, salt, data.len()).unwrap();
        let stored = csum.block(a, &data);
        prop_assert_ne!(csum.block(b, &data), stored);
        prop_assert!(csum.check(b, &data, stored).is_err());
        prop_assert!(csum.check(a, &data, stored).is_ok());
    }

    /// For the 64-bit algorithms a block moved to ANY other address fails.
    #[test]
    fn moved_block_is_caught_anywhere_by_64_bit_algorithms(
        data in block(),
        salt in any::<u64>(),
        a in any::<u64>(),
        b in any::<u64>(),
    ) {
        prop_assume!(a != b);
        for algorithm in [Algorithm::Xxh3, Algorithm::Xxh64] {
            let csum = BlockCsum::new(algorithm, salt, data.len()).unwrap();
            prop_assert_ne!(csum.block(a, &data), csum.block(b, &data));
        }
    }

    /// A block written under another salt (another volume, an earlier format) fails
    /// at the same address. For CRC32C this holds whenever the 32-bit folds of the two
    /// salt keys differ (all but 2^-32 of salt pairs); the strategy assumes that.
    #[test]
    fn other_salt_is_caught(
        algorithm in algorithm(),
        data in block(),
        s in any::<u64>(),
        t in any::<u64>(),
        addr in any::<u64>(),
    ) {
        prop_assume!(s != t);
        if algorithm == Algorithm::Crc32c {
            prop_assume!(fold32(salt_key(s)) != fold32(salt_key(t)));
        }
        let ours = BlockCsum::new(algorithm, s, data.len()).unwrap();
        let theirs = BlockCsum::new(algorithm, t, data.len()).unwrap();
        prop_assert_ne!(ours.block(addr, &data), theirs.block(addr, &data));
    }

    /// Neighbouring salts (a format counter, say) are caught too: `mix64` spreads a
    /// one-bit salt change over the whole key (for CRC32C, after folding, all but a
    /// 2^-32 share of pairs; for the 64-bit algorithms, always).
    #[test]
    fn adjacent_salts_are_caught(
        algorithm in algorithm(),
        data in block(),
        s in 0u64..u64::MAX,
        addr in 0u64..(1 << 32),
    ) {
        let ours = BlockCsum::new(algorithm, s, data.len()).unwrap();
        let next = BlockCsum::new(algorithm, s + 1, data.len()).unwrap();
        prop_assert_ne!(ours.block(addr, &data), next.block(addr, &data));
    }

    /// Verify reports exactly the damaged blocks, every one of them, in order.
    #[test]
    fn verify_reports_every_damaged_block(
        algorithm in algorithm(),
        seed in any::<u64>(),
        blocks in 1usize..40,
        damaged in prop::collection::btree_set(0usize..40, 0..40),
        first_addr in any::<u32>(),
    ) {
        const BS: usize = 512;
        let csum = BlockCsum::new(algorithm, seed, BS).unwrap();
        let mut buf: Vec<u8> = (0..blocks * BS).map(|i| (i as u64 ^ seed).to_le_bytes()[i % 8]).collect();
        let mut sums = vec![0; blocks];
        csum.compute(u64::from(first_addr), &buf, &mut sums).unwrap();
        let damaged: Vec<usize> = damaged.into_iter().filter(|&i| i < blocks).collect();
        for &i in &damaged {
            buf[i * BS + (seed as usize % BS)] ^= 0x80;
        }
        let mut found = Vec::new();
        let n = csum.verify(u64::from(first_addr), &buf, &sums, &mut found).unwrap();
        prop_assert_eq!(n, damaged.len());
        prop_assert_eq!(found.iter().map(|m| m.index).collect::<Vec<_>>(), damaged.clone());
        for m in &found {
            prop_assert_eq!(m.addr, u64::from(first_addr) + m.index as u64);
            prop_assert_eq!(m.expected, sums[m.index]);
            prop_assert_eq!(m.found, csum.block(m.addr, &buf[m.index * BS..][..BS]));
        }
    }
}
