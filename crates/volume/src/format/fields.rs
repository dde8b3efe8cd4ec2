//! Field maps of the on-disk structures (byte offset and width of every field, as in
//! `docs/FORMAT.md`) and the checksum re-sealers: what structure-aware hostile-bytes
//! tests and fuzz targets need to change one field and still pass the checksum, so the
//! decoders' field checks, not the checksums, are what they exercise.

use stack_csum::Algorithm;

use super::meta::{block_checksum, payload_per_block, META_HEADER_BYTES};
use super::superblock::{SB_CSUM_OFFSET, SB_CSUM_SEED};
use super::table::{RECORD_FIXED_BYTES, RUN_BYTES, TABLE_HEADER_BYTES};
use crate::pattern::{HEADER_CSUM_AT, PATTERN_HEADER_BYTES};

/// One little-endian field of a structure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// Its name in `docs/FORMAT.md`.
    pub name: &'static str,
    /// Byte offset inside the structure.
    pub at: usize,
    /// Width in bytes (1, 2, 4 or 8; wider fields are byte arrays).
    pub width: usize,
}

const fn f(name: &'static str, at: usize, width: usize) -> Field {
    Field { name, at, width }
}

/// The superblock's fields (the checksum at 120..128 is left out: reseal recomputes it).
pub const SUPERBLOCK_FIELDS: [Field; 16] = [
    f("magic", 0, 8),
    f("version", 8, 4),
    f("sb_len", 12, 4),
    f("uuid.lo", 16, 8),
    f("uuid.hi", 24, 8),
    f("block_size", 32, 4),
    f("csum_algorithm", 36, 1),
    f("slot", 37, 1),
    f("reserved", 38, 2),
    f("generation", 40, 8),
    f("total_blocks", 48, 8),
    f("meta_start_block", 56, 8),
    f("meta_blocks", 64, 8),
    f("meta_len_bytes", 72, 8),
    f("created", 80, 8),
    f("features", 88, 8),
];

/// A metadata block header's fields (the checksum at 40..48 is left out).
pub const META_HEADER_FIELDS: [Field; 9] = [
    f("magic", 0, 8),
    f("kind", 8, 1),
    f("reserved", 9, 1),
    f("reserved16", 10, 2),
    f("payload_len", 12, 4),
    f("generation", 16, 8),
    f("addr", 24, 8),
    f("index", 32, 4),
    f("count", 36, 4),
];

/// A pattern block header's fields (the checksum at 56..64 is left out).
pub const PATTERN_HEADER_FIELDS: [Field; 7] = [
    f("magic", 0, 8),
    f("phys_block", 8, 8),
    f("object_id", 16, 8),
    f("logical_offset", 24, 8),
    f("generation", 32, 8),
    f("seed", 40, 8),
    f("reserved", 48, 8),
];

/// The fields of an encoded object-table payload, walked by the layout alone (no value
/// is checked, and the walk stops where the bytes end): header, then per record its
/// fixed fields, name and runs. Offsets are payload offsets.
pub fn table_fields(payload: &[u8]) -> Vec<Field> {
    let u = |at: usize, width: usize| -> Option<u64> {
        let b = payload.get(at..at + width)?;
        let mut v = [0u8; 8];
        v[..width].copy_from_slice(b);
        Some(u64::from_le_bytes(v))
    };
    let mut out = vec![
        f("object_count", 0, 4),
        f("reserved", 4, 4),
        f("next_object_id", 8, 8),
    ];
    let Some(count) = u(0, 4) else {
        return Vec::new();
    };
    let mut at = TABLE_HEADER_BYTES;
    for _ in 0..count {
        if at + RECORD_FIXED_BYTES > payload.len() {
            break;
        }
        out.extend([
            f("id", at, 8),
            f("size", at + 8, 8),
            f("created", at + 16, 8),
            f("seed", at + 24, 8),
            f("target_size", at + 32, 8),
            f("kind", at + 40, 1),
            f("flags", at + 41, 1),
            f("name_len", at + 42, 2),
            f("run_count", at + 44, 4),
        ]);
        let (Some(name_len), Some(runs)) = (u(at + 42, 2), u(at + 44, 4)) else {
            break;
        };
        at += RECORD_FIXED_BYTES + name_len as usize;
        for _ in 0..runs {
            if at + RUN_BYTES > payload.len() {
                break;
            }
            out.extend([
                f("run.data_start", at, 8),
                f("run.data_blocks", at + 8, 8),
                f("run.csum_start", at + 16, 8),
                f("run.write_generation", at + 24, 8),
            ]);
            at += RUN_BYTES;
        }
    }
    out
}

/// Reads field `field` of `bytes` (little-endian; 0 where the bytes end).
pub fn get(bytes: &[u8], field: Field) -> u64 {
    let mut v = [0u8; 8];
    let w = field.width.min(8);
    if let Some(b) = bytes.get(field.at..field.at + w) {
        v[..w].copy_from_slice(b);
    }
    u64::from_le_bytes(v)
}

/// Writes `value` into field `field` of `bytes` (truncated to the field's width; nothing
/// where the bytes end).
pub fn set(bytes: &mut [u8], field: Field, value: u64) {
    let w = field.width.min(8);
    if let Some(b) = bytes.get_mut(field.at..field.at + w) {
        b.copy_from_slice(&value.to_le_bytes()[..w]);
    }
}

/// Values that probe a field holding `value`: the edges of its width, off-by-one around
/// the value, and doubling/halving.
pub fn probe_values(value: u64, width: usize) -> Vec<u64> {
    let max = if width >= 8 {
        u64::MAX
    } else {
        (1u64 << (8 * width)) - 1
    };
    let mut out = vec![
        0,
        1,
        max,
        max - 1,
        max / 2 + 1,
        value.wrapping_sub(1) & max,
        value.wrapping_add(1) & max,
        value.wrapping_mul(2) & max,
        value / 2,
    ];
    out.sort_unstable();
    out.dedup();
    out.retain(|&v| v != value);
    out
}

/// Recomputes the superblock checksum of `bytes` (a slot's bytes, at least 128).
pub fn reseal_superblock(bytes: &mut [u8]) {
    if bytes.len() < SB_CSUM_OFFSET + 8 {
        return;
    }
    let csum = stack_csum::checksum(Algorithm::Crc32c, SB_CSUM_SEED, &bytes[..SB_CSUM_OFFSET]);
    bytes[SB_CSUM_OFFSET..SB_CSUM_OFFSET + 8].copy_from_slice(&csum.to_le_bytes());
}

/// Recomputes the checksum of a metadata block read from block `addr` of a volume with
/// `algorithm` and `salt` (`block` is the whole block).
pub fn reseal_meta_block(block: &mut [u8], addr: u64, algorithm: Algorithm, salt: u64) {
    if block.len() < META_HEADER_BYTES {
        return;
    }
    let csum = block_checksum(algorithm, salt, addr, block);
    block[40..48].copy_from_slice(&csum.to_le_bytes());
}

/// Recomputes a pattern block header's checksum.
pub fn reseal_pattern_header(block: &mut [u8]) {
    if block.len() < PATTERN_HEADER_BYTES {
        return;
    }
    let csum = stack_csum::checksum(Algorithm::Xxh3, 0, &block[..HEADER_CSUM_AT]);
    block[HEADER_CSUM_AT..PATTERN_HEADER_BYTES].copy_from_slice(&csum.to_le_bytes());
}

/// Where byte `offset` of a metadata stream's payload lies, for a stream starting at
/// block `start_block`: (block number, byte inside that block).
pub fn payload_position(offset: usize, start_block: u64, block_size_bytes: u32) -> (u64, usize) {
    let per = payload_per_block(block_size_bytes);
    (
        start_block + (offset / per) as u64,
        META_HEADER_BYTES + offset % per,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{
        decode_meta_block, encode_meta_stream, MetaKind, ObjectKind, ObjectRecord, ObjectTable,
        Run, Superblock,
    };
    use crate::pattern::PatternHeader;

    fn sample_sb() -> Superblock {
        Superblock {
            uuid: [9; 16],
            block_size_bytes: 4096,
            algorithm: Algorithm::Xxh3,
            slot: 1,
            generation: 7,
            total_blocks: 2048,
            meta_start_block: 30,
            meta_blocks: 1,
            meta_len_bytes: 100,
            created_unix_secs: 5,
        }
    }

    /// The field map is the encoder's layout: every field read back is the value the
    /// encoder wrote, and a resealed copy still decodes.
    #[test]
    fn superblock_map_matches_the_encoder() {
        let sb = sample_sb();
        let mut b = sb.encode().to_vec();
        let by = |name| {
            SUPERBLOCK_FIELDS
                .iter()
                .copied()
                .find(|f| f.name == name)
                .unwrap()
        };
        assert_eq!(get(&b, by("total_blocks")), 2048);
        assert_eq!(get(&b, by("generation")), 7);
        assert_eq!(get(&b, by("meta_start_block")), 30);
        assert_eq!(get(&b, by("meta_len_bytes")), 100);
        assert_eq!(get(&b, by("block_size")), 4096);
        assert_eq!(get(&b, by("slot")), 1);
        assert_eq!(get(&b, by("csum_algorithm")), 2);
        set(&mut b, by("generation"), 8);
        assert!(Superblock::decode(&b, 1).is_err());
        reseal_superblock(&mut b);
        assert_eq!(Superblock::decode(&b, 1).unwrap().generation, 8);
    }

    #[test]
    fn meta_and_table_maps_match_the_encoders() {
        let table = ObjectTable {
            next_object_id: 3,
            objects: vec![ObjectRecord {
                id: 2,
                name: "abc".into(),
                size_bytes: 5000,
                created_unix_secs: 1,
                kind: ObjectKind::Pattern { seed: 11 },
                complete: true,
                target_size_bytes: Some(6000),
                runs: vec![Run {
                    data_start_block: 100,
                    data_blocks: 2,
                    csum_start_block: 200,
                    write_generation: 4,
                }],
            }],
        };
        let payload = table.encode();
        let fields = table_fields(&payload);
        let value = |name| get(&payload, *fields.iter().find(|f| f.name == name).unwrap());
        assert_eq!(value("object_count"), 1);
        assert_eq!(value("next_object_id"), 3);
        assert_eq!(value("seed"), 11);
        assert_eq!(value("target_size"), 6000);
        assert_eq!(value("name_len"), 3);
        assert_eq!(value("run.data_start"), 100);
        assert_eq!(value("run.write_generation"), 4);
        assert_eq!(fields.len(), 3 + 9 + 4);

        let mut stream = encode_meta_stream(
            MetaKind::ObjectTable,
            4,
            30,
            &payload,
            512,
            Algorithm::Crc32c,
            6,
        );
        let (block, at) = payload_position(fields[12].at, 30, 512);
        assert_eq!(block, 30);
        stream[at] ^= 1; // run.data_start 100 -> 101
        let field = META_HEADER_FIELDS[5];
        assert_eq!(get(&stream, field), 4);
        assert!(decode_meta_block(
            &stream[..512],
            30,
            MetaKind::ObjectTable,
            Algorithm::Crc32c,
            6,
            512
        )
        .is_err());
        reseal_meta_block(&mut stream[..512], 30, Algorithm::Crc32c, 6);
        decode_meta_block(
            &stream[..512],
            30,
            MetaKind::ObjectTable,
            Algorithm::Crc32c,
            6,
            512,
        )
        .unwrap();
    }

    #[test]
    fn pattern_map_matches_the_encoder() {
        let mut b = vec![0u8; 512];
        let h = PatternHeader {
            phys_block: 1,
            object_id: 2,
            logical_offset: 3,
            generation: 4,
            seed: 5,
        };
        h.fill(0, &mut b);
        for (i, field) in PATTERN_HEADER_FIELDS[1..6].iter().enumerate() {
            assert_eq!(get(&b, *field), i as u64 + 1);
        }
        set(&mut b, PATTERN_HEADER_FIELDS[2], 9);
        assert!(PatternHeader::parse(&b).is_none());
        reseal_pattern_header(&mut b);
        assert_eq!(PatternHeader::parse(&b).unwrap().object_id, 9);
    }

    #[test]
    fn probe_values_cover_the_edges() {
        assert_eq!(probe_values(4, 1), vec![0, 1, 2, 3, 5, 8, 128, 254, 255]);
        let v = probe_values(2048, 8);
        for want in [0, 1, 2047, 2049, 4096, u64::MAX, u64::MAX - 1] {
            assert!(v.contains(&want), "{want}");
        }
        assert!(!v.contains(&2048));
    }
}
