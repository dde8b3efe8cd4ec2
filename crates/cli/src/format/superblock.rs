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
/// Offset of the checksum field: the checksum covers every byte before it.
const SB_CSUM_OFFSET: usize = 120;
/// Seed of the superblock checksum (always CRC32C, whatever the volume's algorithm).
const SB_CSUM_SEED: u64 = 0;

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

    proptest! {
        #[test]
        fn prop_round_trip(uuid in any::<[u8; 16]>(), shift in 9u32..=16, gen in any::<u64>(),
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
