//! The superblock: 128 bytes at the start of each of the two slots, self-checksummed.

use stack_csum::Algorithm;

use super::cursor::{Cursor, Writer};
use super::{block_size_ok, FormatError, FORMAT_VERSION, MAX_TOTAL_BLOCKS, META_HEADER_BYTES};

/// `"STACKVOL"`: the superblock magic.
pub const SB_MAGIC: [u8; 8] = *b"STACKVOL";
/// Encoded length of a superblock; the rest of its block is zero.
pub const SB_BYTES: usize = 128;
/// Byte offsets of the two superblock slots.
pub const SB_SLOT_OFFSETS: [u64; 2] = [0, 64 * 1024];
/// Largest generation a superblock may carry (2^63 - 1: a commit every nanosecond would
/// take 292 years to reach it), so the next generation is always representable.
pub const MAX_GENERATION: u64 = (1 << 63) - 1;
/// Offset of the checksum field: the checksum covers every byte before it.
pub(crate) const SB_CSUM_OFFSET: usize = 120;
/// Seed of the superblock checksum (always CRC32C, whatever the volume's algorithm).
pub(crate) const SB_CSUM_SEED: u64 = 0;

const _: () = assert!(SB_CSUM_OFFSET + 8 == SB_BYTES);
const _: () = assert!(SB_SLOT_OFFSETS[1] % super::MAX_BLOCK_BYTES as u64 == 0);

/// One superblock copy: what a volume is and where its committed metadata lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Superblock {
    /// The volume's identity; also salts every checksum.
    pub uuid: [u8; 16],
    /// Block size of the volume.
    pub block_size_bytes: u32,
    /// Algorithm of the data and metadata block checksums.
    pub algorithm: Algorithm,
    /// Which slot this copy was written for (0 or 1).
    pub slot: u8,
    /// Commit generation; the newer valid copy wins.
    pub generation: u64,
    /// Volume size in blocks.
    pub total_blocks: u64,
    /// First block of the object table.
    pub meta_start_block: u64,
    /// Blocks of the object table (contiguous).
    pub meta_blocks: u64,
    /// Payload bytes of the object table stream.
    pub meta_len_bytes: u64,
    /// When the volume was formatted (Unix seconds).
    pub created_unix_secs: u64,
}

impl Superblock {
    /// Encodes into the 128-byte on-disk form, checksum included.
    pub fn encode(&self) -> [u8; SB_BYTES] {
        assert!(self.slot < 2);
        assert!(block_size_ok(u64::from(self.block_size_bytes)));
        let mut w = Writer::with_capacity(SB_BYTES);
        w.bytes(&SB_MAGIC);
        w.u32(FORMAT_VERSION);
        w.u32(SB_BYTES as u32);
        w.bytes(&self.uuid);
        w.u32(self.block_size_bytes);
        w.u8(self.algorithm.id());
        w.u8(self.slot);
        w.u16(0);
        w.u64(self.generation);
        w.u64(self.total_blocks);
        w.u64(self.meta_start_block);
        w.u64(self.meta_blocks);
        w.u64(self.meta_len_bytes);
        w.u64(self.created_unix_secs);
        w.u64(0); // feature flags
        w.bytes(&[0u8; 24]);
        assert_eq!(w.buf.len(), SB_CSUM_OFFSET);
        let csum = stack_csum::checksum(Algorithm::Crc32c, SB_CSUM_SEED, &w.buf);
        w.u64(csum);
        let mut out = [0u8; SB_BYTES];
        out.copy_from_slice(&w.buf);
        out
    }

    /// Whether `bytes` start with the superblock magic (a volume, damaged or not).
    pub fn has_magic(bytes: &[u8]) -> bool {
        bytes.len() >= SB_MAGIC.len() && bytes[..SB_MAGIC.len()] == SB_MAGIC
    }

    /// Decodes and checks the copy read from `slot` (bytes start at that slot's offset).
    ///
    /// Pass the slot's whole block: every byte after the 128 encoded ones up to the
    /// block size must be zero (bytes past the block size are ignored; a shorter slice
    /// is checked as far as it goes).
    pub fn decode(bytes: &[u8], slot: u8) -> Result<Self, FormatError> {
        assert!(slot < 2);
        let base = SB_SLOT_OFFSETS[usize::from(slot)];
        let what = "superblock";
        let mut c = Cursor::new(what, bytes, base);
        let magic: [u8; 8] = c.array("magic")?;
        if magic != SB_MAGIC {
            return Err(FormatError::BadMagic {
                what,
                offset: base,
                found: magic,
            });
        }
        if bytes.len() < SB_BYTES {
            return Err(FormatError::Truncated {
                what,
                field: "superblock",
                offset: base,
                available: bytes.len(),
            });
        }
        let mut stored = [0u8; 8];
        stored.copy_from_slice(&bytes[SB_CSUM_OFFSET..SB_BYTES]);
        let stored = u64::from_le_bytes(stored);
        let computed =
            stack_csum::checksum(Algorithm::Crc32c, SB_CSUM_SEED, &bytes[..SB_CSUM_OFFSET]);
        if stored != computed {
            return Err(FormatError::ChecksumMismatch {
                what,
                offset: base,
                stored,
                computed,
            });
        }
        let version = c.u32("version")?;
        if version != FORMAT_VERSION {
            return Err(c.bad_value("version", 4, version.into(), FORMAT_VERSION.to_string()));
        }
        let sb_len = c.u32("sb_len")?;
        if sb_len as usize != SB_BYTES {
            return Err(c.bad_value("sb_len", 4, sb_len.into(), SB_BYTES.to_string()));
        }
        let uuid: [u8; 16] = c.array("uuid")?;
        let block_size_bytes = c.u32("block_size")?;
        if !block_size_ok(block_size_bytes.into()) {
            return Err(c.bad_value(
                "block_size",
                4,
                block_size_bytes.into(),
                "a power of two in 512..=65536",
            ));
        }
        let algorithm_id = c.u8("csum_algorithm")?;
        let algorithm = Algorithm::from_id(algorithm_id).map_err(|_| {
            c.bad_value(
                "csum_algorithm",
                1,
                algorithm_id.into(),
                "1 (crc32c), 2 (xxh3) or 3 (xxh64)",
            )
        })?;
        let found_slot = c.u8("slot")?;
        if found_slot != slot {
            return Err(c.bad_value("slot", 1, found_slot.into(), slot.to_string()));
        }
        let reserved = c.u16("reserved")?;
        c.expect_zero("reserved", 2, reserved.into())?;
        let generation = c.u64("generation")?;
        // Commits add one to the highest generation seen: a forged value near 2^64 would
        // wrap around and let a new commit lose to the older copy.
        if generation > MAX_GENERATION {
            return Err(c.bad_value("generation", 8, generation, format!("<= {MAX_GENERATION}")));
        }
        let total_blocks = c.u64("total_blocks")?;
        // Both slots' blocks and at least one more must fit; above the format's limit
        // nothing may be sized from the value.
        let min_blocks = SB_SLOT_OFFSETS[1] / u64::from(block_size_bytes) + 2;
        if total_blocks < min_blocks || total_blocks > MAX_TOTAL_BLOCKS {
            return Err(c.bad_value(
                "total_blocks",
                8,
                total_blocks,
                format!("{min_blocks}..={MAX_TOTAL_BLOCKS}"),
            ));
        }
        let meta_start_block = c.u64("meta_start_block")?;
        if meta_start_block >= total_blocks {
            return Err(c.bad_value(
                "meta_start_block",
                8,
                meta_start_block,
                format!("< {total_blocks}"),
            ));
        }
        let meta_blocks = c.u64("meta_blocks")?;
        if meta_blocks == 0 || meta_blocks > total_blocks - meta_start_block {
            return Err(c.bad_value(
                "meta_blocks",
                8,
                meta_blocks,
                format!("1..={}", total_blocks - meta_start_block),
            ));
        }
        let meta_len_bytes = c.u64("meta_len_bytes")?;
        if meta_len_bytes > super::MAX_TABLE_BYTES {
            return Err(c.bad_value(
                "meta_len_bytes",
                8,
                meta_len_bytes,
                format!("<= {} (the largest table)", super::MAX_TABLE_BYTES),
            ));
        }
        let payload_per_block = u64::from(block_size_bytes) - META_HEADER_BYTES as u64;
        let max_len = meta_blocks.saturating_mul(payload_per_block);
        if meta_len_bytes > max_len || meta_len_bytes <= max_len.saturating_sub(payload_per_block) {
            return Err(c.bad_value(
                "meta_len_bytes",
                8,
                meta_len_bytes,
                format!("a length that needs exactly {meta_blocks} metadata blocks"),
            ));
        }
        let created_unix_secs = c.u64("created")?;
        let features = c.u64("features")?;
        c.expect_zero("features", 8, features)?;
        let reserved: [u8; 24] = c.array("reserved")?;
        if reserved != [0u8; 24] {
            return Err(c.bad_value("reserved", 24, 1, "all zero"));
        }
        // The checksum covers 120 bytes; the rest of the superblock's block is written as
        // zeros, so any other byte there is damage the checksum cannot see.
        let block_end = bytes.len().min(block_size_bytes as usize);
        if let Some(i) = bytes[SB_BYTES..block_end].iter().position(|&b| b != 0) {
            return Err(FormatError::BadValue {
                what,
                field: "tail",
                offset: base + (SB_BYTES + i) as u64,
                value: bytes[SB_BYTES + i].into(),
                expected: "0 (the rest of the superblock's block is zero)".into(),
            });
        }
        Ok(Superblock {
            uuid,
            block_size_bytes,
            algorithm,
            slot,
            generation,
            total_blocks,
            meta_start_block,
            meta_blocks,
            meta_len_bytes,
            created_unix_secs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Superblock {
        Superblock {
            uuid: [7; 16],
            block_size_bytes: 4096,
            algorithm: Algorithm::Crc32c,
            slot: 1,
            generation: 42,
            total_blocks: 1024,
            meta_start_block: 20,
            meta_blocks: 2,
            meta_len_bytes: 5000,
            created_unix_secs: 1_700_000_000,
        }
    }

    #[test]
    fn round_trip() {
        let sb = sample();
        let bytes = sb.encode();
        assert_eq!(Superblock::decode(&bytes, 1).unwrap(), sb);
    }

    #[test]
    fn wrong_slot_is_refused() {
        let bytes = sample().encode();
        let err = Superblock::decode(&bytes, 0).unwrap_err();
        assert!(
            matches!(
                err,
                FormatError::BadValue {
                    field: "slot",
                    offset: 37,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn every_single_bit_flip_is_caught() {
        let bytes = sample().encode();
        for bit in 0..SB_BYTES * 8 {
            let mut b = bytes;
            b[bit / 8] ^= 1 << (bit % 8);
            assert!(
                Superblock::decode(&b, 1).is_err(),
                "flip of bit {bit} not caught"
            );
        }
    }

    /// `sample()` encoded with the field at byte `at` replaced by `value` and the
    /// checksum recomputed, so the decoder's field checks (not the checksum) judge it.
    fn forged(sb: &Superblock, at: usize, value: &[u8]) -> Vec<u8> {
        let mut b = sb.encode().to_vec();
        b[at..at + value.len()].copy_from_slice(value);
        let csum = stack_csum::checksum(Algorithm::Crc32c, SB_CSUM_SEED, &b[..SB_CSUM_OFFSET]);
        b[SB_CSUM_OFFSET..].copy_from_slice(&csum.to_le_bytes());
        b
    }

    /// The field the decoder refused, or `None` when it accepted the bytes.
    fn refused(bytes: &[u8], slot: u8) -> Option<&'static str> {
        match Superblock::decode(bytes, slot) {
            Ok(_) => None,
            Err(FormatError::BadValue { field, .. }) => Some(field),
            Err(FormatError::Truncated { field, .. }) => Some(field),
            Err(FormatError::ChecksumMismatch { .. }) => Some("checksum"),
            Err(FormatError::BadMagic { .. }) => Some("magic"),
        }
    }

    fn geometry(
        bs: u32,
        total_blocks: u64,
        meta_start_block: u64,
        meta_blocks: u64,
        meta_len: u64,
    ) -> Superblock {
        Superblock {
            block_size_bytes: bs,
            total_blocks,
            meta_start_block,
            meta_blocks,
            meta_len_bytes: meta_len,
            ..sample()
        }
    }

    /// Checks each value of a u64 field at `at` in turn: accepted or refused as `field`.
    fn u64_cases(sb: &Superblock, at: usize, field: &str, cases: &[(u64, bool)]) {
        for &(v, ok) in cases {
            let got = refused(&forged(sb, at, &v.to_le_bytes()), sb.slot);
            let want = (!ok).then_some(field);
            assert_eq!(got, want, "{field} = {v}");
        }
    }

    #[test]
    fn length_boundary() {
        let b = sample().encode();
        assert_eq!(refused(&b[..SB_BYTES - 1], 1), Some("superblock"));
        assert_eq!(refused(&b[..SB_BYTES], 1), None);
        let mut longer = b.to_vec();
        longer.push(0);
        assert_eq!(refused(&longer, 1), None);
        assert_eq!(refused(&b[..7], 1), Some("magic"));
    }

    #[test]
    fn version_and_sb_len_boundaries() {
        let sb = sample();
        for (v, ok) in [
            (0u32, false),
            (FORMAT_VERSION, true),
            (FORMAT_VERSION + 1, false),
        ] {
            let got = refused(&forged(&sb, 8, &v.to_le_bytes()), 1);
            assert_eq!(got, (!ok).then_some("version"), "version {v}");
        }
        for (v, ok) in [(127u32, false), (128, true), (129, false)] {
            let got = refused(&forged(&sb, 12, &v.to_le_bytes()), 1);
            assert_eq!(got, (!ok).then_some("sb_len"), "sb_len {v}");
        }
    }

    #[test]
    fn block_size_boundaries() {
        for (v, ok) in [
            (256u32, false),
            (511, false),
            (512, true),
            (513, false),
            (4095, false),
            (4096, true),
            (4097, false),
            (65535, false),
            (65536, true),
            (65537, false),
            (131_072, false),
        ] {
            // The sample's table (2 blocks, 5000 bytes) fits every accepted block size
            // except 512 and 65536, so the geometry is adjusted per size.
            let payload = u64::from(v).saturating_sub(META_HEADER_BYTES as u64).max(1);
            let adjusted = geometry(4096, 1 << 20, 20, 1, payload.min(u64::from(v)));
            let got = refused(&forged(&adjusted, 32, &v.to_le_bytes()), 1);
            assert_eq!(got, (!ok).then_some("block_size"), "block size {v}");
        }
    }

    #[test]
    fn algorithm_slot_and_reserved_boundaries() {
        let sb = sample();
        for (v, ok) in [(0u8, false), (1, true), (3, true), (4, false), (255, false)] {
            let got = refused(&forged(&sb, 36, &[v]), 1);
            assert_eq!(got, (!ok).then_some("csum_algorithm"), "algorithm {v}");
        }
        for (v, ok) in [(0u8, false), (1, true), (2, false)] {
            assert_eq!(refused(&forged(&sb, 37, &[v]), 1), (!ok).then_some("slot"));
        }
        assert_eq!(refused(&forged(&sb, 38, &[1, 0]), 1), Some("reserved"));
        assert_eq!(refused(&forged(&sb, 39, &[0x80]), 1), Some("reserved"));
        assert_eq!(refused(&forged(&sb, 88, &[1]), 1), Some("features"));
        assert_eq!(refused(&forged(&sb, 95, &[0x80]), 1), Some("features"));
        assert_eq!(refused(&forged(&sb, 96, &[1]), 1), Some("reserved"));
        assert_eq!(refused(&forged(&sb, 119, &[1]), 1), Some("reserved"));
    }

    /// The smallest volume holds both superblock blocks and one more: 64 KiB / block size
    /// + 2 blocks (cargo-mutants left `<` -> `<=` and `+ 2` -> `* 2` alive here).
    #[test]
    fn total_blocks_boundaries() {
        for bs in [512u32, 4096, 65536] {
            let min = SB_SLOT_OFFSETS[1] / u64::from(bs) + 2;
            let sb = geometry(bs, min + 10, 0, 1, 1);
            u64_cases(
                &sb,
                48,
                "total_blocks",
                &[(0, false), (min - 1, false), (min, true), (min + 1, true)],
            );
        }
        let sb = geometry(4096, 1 << 20, 0, 1, 1);
        u64_cases(
            &sb,
            48,
            "total_blocks",
            &[
                (MAX_TOTAL_BLOCKS - 1, true),
                (MAX_TOTAL_BLOCKS, true),
                (MAX_TOTAL_BLOCKS + 1, false),
                (u64::MAX - 1, false),
                (u64::MAX, false),
            ],
        );
    }

    #[test]
    fn generation_boundaries() {
        u64_cases(
            &sample(),
            40,
            "generation",
            &[
                (0, true),
                (MAX_GENERATION - 1, true),
                (MAX_GENERATION, true),
                (MAX_GENERATION + 1, false),
                (u64::MAX, false),
                // The limit is part of the format: pinned by value.
                ((1 << 63) - 1, true),
                (1 << 63, false),
            ],
        );
    }

    #[test]
    fn meta_extent_boundaries() {
        let total = 1000;
        // meta_start_block < total_blocks.
        let sb = geometry(4096, total, 10, 1, 1);
        u64_cases(
            &sb,
            56,
            "meta_start_block",
            &[
                (0, true),
                (total - 1, true),
                (total, false),
                (total + 1, false),
                (u64::MAX, false),
            ],
        );
        // 1 <= meta_blocks <= total_blocks - meta_start_block (the payload length is
        // set to need exactly the blocks asked for where they are accepted).
        for (start, blocks, ok) in [
            (10, 0, false),
            (10, 1, true),
            (10, total - 10, true),
            (10, total - 9, false),
            (total - 1, 1, true),
            (total - 1, 2, false),
            (10, u64::MAX, false),
        ] {
            let len = blocks.saturating_sub(1).saturating_mul(4048) + 1;
            let sb = geometry(4096, total, start, 1, 1);
            let mut b = forged(&sb, 64, &blocks.to_le_bytes());
            b = {
                let mut x = b.clone();
                x[72..80].copy_from_slice(&len.to_le_bytes());
                let csum =
                    stack_csum::checksum(Algorithm::Crc32c, SB_CSUM_SEED, &x[..SB_CSUM_OFFSET]);
                x[SB_CSUM_OFFSET..].copy_from_slice(&csum.to_le_bytes());
                x
            };
            assert_eq!(
                refused(&b, 1),
                (!ok).then_some("meta_blocks"),
                "start {start}, blocks {blocks}"
            );
        }
    }

    /// `meta_len_bytes` must need exactly `meta_blocks` blocks and be at most the largest
    /// table (cargo-mutants left `meta_len_bytes > max_len` -> `==` alive here).
    #[test]
    fn meta_len_boundaries() {
        let per = 4096 - META_HEADER_BYTES as u64;
        let sb = geometry(4096, 1000, 10, 2, per + 1);
        u64_cases(
            &sb,
            72,
            "meta_len_bytes",
            &[
                (0, false),
                (per - 1, false),
                (per, false),
                (per + 1, true),
                (2 * per - 1, true),
                (2 * per, true),
                (2 * per + 1, false),
                (2 * per + 2, false),
                (u64::MAX, false),
            ],
        );
        // One block: 1..=per.
        let sb = geometry(4096, 1000, 10, 1, 1);
        u64_cases(
            &sb,
            72,
            "meta_len_bytes",
            &[(0, false), (1, true), (per, true), (per + 1, false)],
        );
        // The largest table, in exactly the blocks it needs.
        let max = crate::format::MAX_TABLE_BYTES;
        let blocks = max.div_ceil(per);
        let sb = geometry(4096, 1 << 20, 10, blocks, max);
        u64_cases(
            &sb,
            72,
            "meta_len_bytes",
            &[(max - 1, true), (max, true), (max + 1, false)],
        );
    }

    /// Bytes after the 128 encoded ones, up to the block size, must be zero; bytes past
    /// the block size belong to other blocks and are not looked at.
    #[test]
    fn tail_of_the_block_must_be_zero() {
        for bs in [512u32, 4096] {
            let sb = geometry(bs, 1 << 20, 10, 1, 1);
            let mut block = vec![0u8; bs as usize + 1];
            block[..SB_BYTES].copy_from_slice(&sb.encode());
            assert_eq!(refused(&block, 1), None);
            for at in [SB_BYTES, SB_BYTES + 1, bs as usize - 1] {
                let mut b = block.clone();
                b[at] = 1;
                let err = Superblock::decode(&b, 1).unwrap_err();
                assert!(
                    matches!(err, FormatError::BadValue { field: "tail", offset, value: 1, .. } if offset == SB_SLOT_OFFSETS[1] + at as u64),
                    "bs {bs}, byte {at}: {err}"
                );
            }
            let mut b = block.clone();
            b[bs as usize] = 1;
            assert_eq!(
                refused(&b, 1),
                None,
                "the byte after the block is not the superblock's"
            );
        }
    }

    proptest! {
        #[test]
        fn prop_round_trip(uuid in any::<[u8; 16]>(), shift in 9u32..=16, gen in 0..=MAX_GENERATION,
                           total in 200u64..1u64 << 40, start_frac in 0.0f64..0.9, blocks in 1u64..50,
                           created in any::<u64>(), alg in 0usize..3) {
            let block_size_bytes = 1u32 << shift;
            let total_blocks = total.max(SB_SLOT_OFFSETS[1] / u64::from(block_size_bytes) + 2 + 50);
            let meta_start_block = ((total_blocks - 50) as f64 * start_frac) as u64;
            let payload = u64::from(block_size_bytes) - META_HEADER_BYTES as u64;
            let sb = Superblock {
                uuid, block_size_bytes, algorithm: Algorithm::ALL[alg], slot: (gen % 2) as u8,
                generation: gen, total_blocks, meta_start_block, meta_blocks: blocks,
                meta_len_bytes: (blocks - 1) * payload + 1, created_unix_secs: created,
            };
            prop_assert_eq!(Superblock::decode(&sb.encode(), sb.slot).unwrap(), sb);
        }

        #[test]
        fn prop_random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300), magic in any::<bool>()) {
            let mut bytes = bytes;
            if magic && bytes.len() >= 8 {
                bytes[..8].copy_from_slice(&SB_MAGIC);
            }
            let _ = Superblock::decode(&bytes, 0);
            let _ = Superblock::decode(&bytes, 1);
        }
    }
}
