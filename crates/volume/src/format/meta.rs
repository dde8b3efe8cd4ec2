//! Metadata blocks: a 48-byte self-checksummed header bound to the block's address and
//! generation, then payload. Object tables and checksum arrays are streams of them.

use stack_csum::Algorithm;

use super::cursor::{Cursor, Writer};
use super::FormatError;

/// `"STKMETA\0"`: the metadata block magic.
pub const META_MAGIC: [u8; 8] = *b"STKMETA\0";
/// Bytes of the header at the start of every metadata block.
pub const META_HEADER_BYTES: usize = 48;
const CSUM_FIELD: std::ops::Range<usize> = 40..48;

/// What a metadata block stream holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaKind {
    /// The object table (one stream per commit).
    ObjectTable,
    /// The checksums of one data run.
    Checksums,
}

impl MetaKind {
    fn id(self) -> u8 {
        match self {
            MetaKind::ObjectTable => 1,
            MetaKind::Checksums => 2,
        }
    }
    fn name(self) -> &'static str {
        match self {
            MetaKind::ObjectTable => "object table block",
            MetaKind::Checksums => "checksum block",
        }
    }
}

/// The decoded header of one metadata block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetaHeader {
    /// What the stream holds.
    pub kind: MetaKind,
    /// Payload bytes in this block.
    pub payload_len: u32,
    /// Generation that wrote it.
    pub generation: u64,
    /// Its own physical block number.
    pub addr: u64,
    /// Index of the block in its stream.
    pub index: u32,
    /// Blocks in the stream.
    pub count: u32,
}

/// Seed of a metadata block checksum: the volume salt mixed with the block's address.
fn meta_seed(salt: u64, addr: u64) -> u64 {
    salt ^ addr.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

pub(crate) fn block_checksum(algorithm: Algorithm, salt: u64, addr: u64, block: &[u8]) -> u64 {
    let head = stack_csum::checksum(algorithm, meta_seed(salt, addr), &block[..CSUM_FIELD.start]);
    stack_csum::checksum(algorithm, head, &block[CSUM_FIELD.end..])
}

/// Payload bytes one metadata block carries.
pub fn payload_per_block(block_size_bytes: u32) -> usize {
    block_size_bytes as usize - META_HEADER_BYTES
}

/// Blocks a stream of `len_bytes` payload takes (at least one).
pub fn stream_blocks(len_bytes: u64, block_size_bytes: u32) -> u64 {
    len_bytes
        .div_ceil(payload_per_block(block_size_bytes) as u64)
        .max(1)
}

/// Encodes `payload` as a stream of metadata blocks written at `start_block..`.
pub fn encode_stream(
    kind: MetaKind,
    generation: u64,
    start_block: u64,
    payload: &[u8],
    block_size_bytes: u32,
    algorithm: Algorithm,
    salt: u64,
) -> Vec<u8> {
    let bs = block_size_bytes as usize;
    let per = payload_per_block(block_size_bytes);
    let count = stream_blocks(payload.len() as u64, block_size_bytes);
    let count_u32 = u32::try_from(count).expect("metadata stream over 2^32 blocks");
    let mut out = vec![0u8; bs * count as usize];
    for (index, block) in out.chunks_exact_mut(bs).enumerate() {
        let chunk = payload
            .get(index * per..)
            .map_or(&[][..], |p| &p[..p.len().min(per)]);
        let addr = start_block + index as u64;
        let mut w = Writer::with_capacity(META_HEADER_BYTES);
        w.bytes(&META_MAGIC);
        w.u8(kind.id());
        w.u8(0);
        w.u16(0);
        w.u32(chunk.len() as u32);
        w.u64(generation);
        w.u64(addr);
        w.u32(index as u32);
        w.u32(count_u32);
        w.u64(0);
        assert_eq!(w.buf.len(), META_HEADER_BYTES);
        block[..META_HEADER_BYTES].copy_from_slice(&w.buf);
        block[META_HEADER_BYTES..META_HEADER_BYTES + chunk.len()].copy_from_slice(chunk);
        let csum = block_checksum(algorithm, salt, addr, block);
        block[CSUM_FIELD].copy_from_slice(&csum.to_le_bytes());
    }
    out
}

/// Decodes one metadata block read from physical block `addr`; returns its header and payload.
pub fn decode_block(
    block: &[u8],
    addr: u64,
    kind: MetaKind,
    algorithm: Algorithm,
    salt: u64,
    block_size_bytes: u32,
) -> Result<(MetaHeader, &[u8]), FormatError> {
    let what = kind.name();
    let base = addr.saturating_mul(u64::from(block_size_bytes));
    if block.len() != block_size_bytes as usize {
        return Err(FormatError::Truncated {
            what,
            field: "block",
            offset: base,
            available: block.len(),
        });
    }
    let mut c = Cursor::new(what, block, base);
    let magic: [u8; 8] = c.array("magic")?;
    if magic != META_MAGIC {
        return Err(FormatError::BadMagic {
            what,
            offset: base,
            found: magic,
        });
    }
    let mut stored = [0u8; 8];
    stored.copy_from_slice(&block[CSUM_FIELD]);
    let stored = u64::from_le_bytes(stored);
    let computed = block_checksum(algorithm, salt, addr, block);
    if stored != computed {
        return Err(FormatError::ChecksumMismatch {
            what,
            offset: base,
            stored,
            computed,
        });
    }
    let kind_id = c.u8("kind")?;
    if kind_id != kind.id() {
        return Err(c.bad_value("kind", 1, kind_id.into(), kind.id().to_string()));
    }
    let r8 = c.u8("reserved")?;
    c.expect_zero("reserved", 1, r8.into())?;
    let r16 = c.u16("reserved")?;
    c.expect_zero("reserved", 2, r16.into())?;
    let payload_len = c.u32("payload_len")?;
    if payload_len as usize > payload_per_block(block_size_bytes) {
        return Err(c.bad_value(
            "payload_len",
            4,
            payload_len.into(),
            format!("<= {}", payload_per_block(block_size_bytes)),
        ));
    }
    let generation = c.u64("generation")?;
    let found_addr = c.u64("addr")?;
    if found_addr != addr {
        return Err(c.bad_value("addr", 8, found_addr, addr.to_string()));
    }
    let index = c.u32("index")?;
    let count = c.u32("count")?;
    if index >= count {
        return Err(c.bad_value("index", 4, index.into(), format!("< count {count}")));
    }
    let payload = &block[META_HEADER_BYTES..META_HEADER_BYTES + payload_len as usize];
    let header = MetaHeader {
        kind,
        payload_len,
        generation,
        addr,
        index,
        count,
    };
    Ok((header, payload))
}

/// Decodes a whole stream read from `start_block..` into `out` (cleared first); checks each
/// block's index, count and generation and that the payload adds up to `len_bytes`.
#[allow(clippy::too_many_arguments)]
pub fn decode_stream(
    bytes: &[u8],
    start_block: u64,
    kind: MetaKind,
    generation: u64,
    len_bytes: u64,
    algorithm: Algorithm,
    salt: u64,
    block_size_bytes: u32,
    out: &mut Vec<u8>,
) -> Result<(), FormatError> {
    let bs = block_size_bytes as usize;
    let what = kind.name();
    let base = start_block.saturating_mul(bs as u64);
    let count = bytes.len() / bs;
    if count == 0
        || bytes.len() % bs != 0
        || stream_blocks(len_bytes, block_size_bytes) != count as u64
    {
        return Err(FormatError::BadValue {
            what,
            field: "stream length",
            offset: base,
            value: len_bytes,
            expected: format!("a length that fills exactly {count} blocks"),
        });
    }
    out.clear();
    out.reserve(len_bytes as usize);
    for (index, block) in bytes.chunks_exact(bs).enumerate() {
        let addr = start_block + index as u64;
        let block_offset = addr.saturating_mul(bs as u64);
        let (h, payload) = decode_block(block, addr, kind, algorithm, salt, block_size_bytes)?;
        let bad =
            |field: &'static str, at: u64, value: u64, expected: String| FormatError::BadValue {
                what,
                field,
                offset: block_offset + at,
                value,
                expected,
            };
        if h.generation != generation {
            return Err(bad("generation", 16, h.generation, generation.to_string()));
        }
        if h.index as usize != index {
            return Err(bad("index", 32, h.index.into(), index.to_string()));
        }
        if h.count as usize != count {
            return Err(bad("count", 36, h.count.into(), count.to_string()));
        }
        let want = (len_bytes - out.len() as u64).min(payload_per_block(block_size_bytes) as u64);
        if u64::from(h.payload_len) != want {
            return Err(bad(
                "payload_len",
                12,
                h.payload_len.into(),
                want.to_string(),
            ));
        }
        out.extend_from_slice(payload);
    }
    assert_eq!(out.len() as u64, len_bytes);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn stream_round_trip_and_misplaced_block() {
        let payload: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
        let bytes = encode_stream(
            MetaKind::ObjectTable,
            9,
            100,
            &payload,
            4096,
            Algorithm::Crc32c,
            5,
        );
        assert_eq!(bytes.len(), 3 * 4096);
        let mut out = Vec::new();
        decode_stream(
            &bytes,
            100,
            MetaKind::ObjectTable,
            9,
            10_000,
            Algorithm::Crc32c,
            5,
            4096,
            &mut out,
        )
        .unwrap();
        assert_eq!(out, payload);
        // The same bytes read from another address do not verify (misdirected metadata).
        let err = decode_stream(
            &bytes,
            101,
            MetaKind::ObjectTable,
            9,
            10_000,
            Algorithm::Crc32c,
            5,
            4096,
            &mut out,
        )
        .unwrap_err();
        assert!(
            matches!(err, FormatError::ChecksumMismatch { offset, .. } if offset == 101 * 4096),
            "{err}"
        );
        // An older generation is refused (stale metadata).
        let err = decode_stream(
            &bytes,
            100,
            MetaKind::ObjectTable,
            10,
            10_000,
            Algorithm::Crc32c,
            5,
            4096,
            &mut out,
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                FormatError::BadValue {
                    field: "generation",
                    ..
                }
            ),
            "{err}"
        );
        // Another volume (salt) does not verify.
        assert!(decode_stream(
            &bytes,
            100,
            MetaKind::ObjectTable,
            9,
            10_000,
            Algorithm::Crc32c,
            6,
            4096,
            &mut out
        )
        .is_err());
    }

    #[test]
    fn empty_stream_takes_one_block() {
        let bytes = encode_stream(MetaKind::Checksums, 1, 7, &[], 512, Algorithm::Xxh3, 0);
        assert_eq!(bytes.len(), 512);
        let mut out = vec![1];
        decode_stream(
            &bytes,
            7,
            MetaKind::Checksums,
            1,
            0,
            Algorithm::Xxh3,
            0,
            512,
            &mut out,
        )
        .unwrap();
        assert!(out.is_empty());
    }

    const BS: u32 = 1024;
    const PER: u64 = BS as u64 - META_HEADER_BYTES as u64;
    const ALG: Algorithm = Algorithm::Crc32c;
    const SALT: u64 = 77;
    const GEN: u64 = 9;
    const START: u64 = 40;

    /// A stream of `len` payload bytes at `START`.
    fn stream(len: u64) -> Vec<u8> {
        let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        encode_stream(MetaKind::ObjectTable, GEN, START, &payload, BS, ALG, SALT)
    }

    /// Sets header field `at` of block `index` of `bytes` and recomputes that block's
    /// checksum, so the field checks (not the checksum) judge it.
    fn forge(bytes: &mut [u8], index: usize, at: usize, value: &[u8]) {
        let bs = BS as usize;
        let block = &mut bytes[index * bs..(index + 1) * bs];
        block[at..at + value.len()].copy_from_slice(value);
        let csum = block_checksum(ALG, SALT, START + index as u64, block);
        block[CSUM_FIELD].copy_from_slice(&csum.to_le_bytes());
    }

    /// The field `decode_stream` refused, or `None` when it accepted the stream.
    fn stream_refused(bytes: &[u8], len: u64) -> Option<&'static str> {
        let mut out = Vec::new();
        match decode_stream(
            bytes,
            START,
            MetaKind::ObjectTable,
            GEN,
            len,
            ALG,
            SALT,
            BS,
            &mut out,
        ) {
            Ok(()) => {
                assert_eq!(out.len() as u64, len);
                None
            }
            Err(FormatError::BadValue { field, .. } | FormatError::Truncated { field, .. }) => {
                Some(field)
            }
            Err(FormatError::ChecksumMismatch { .. }) => Some("checksum"),
            Err(FormatError::BadMagic { .. }) => Some("magic"),
        }
    }

    fn block_refused(block: &[u8], addr: u64) -> Option<&'static str> {
        match decode_block(block, addr, MetaKind::ObjectTable, ALG, SALT, BS) {
            Ok(_) => None,
            Err(FormatError::BadValue { field, .. } | FormatError::Truncated { field, .. }) => {
                Some(field)
            }
            Err(FormatError::ChecksumMismatch { .. }) => Some("checksum"),
            Err(FormatError::BadMagic { .. }) => Some("magic"),
        }
    }

    /// The block checksum is on-disk data: computed here from docs/FORMAT.md alone
    /// (`seed = salt ^ addr * 0x9E3779B97F4A7C15`), not through the encoder's helpers.
    #[test]
    fn block_checksum_is_pinned_to_the_format() {
        let b = stream(10);
        let seed = SALT ^ START.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let head = stack_csum::checksum(ALG, seed, &b[..40]);
        let want = stack_csum::checksum(ALG, head, &b[48..BS as usize]);
        assert_eq!(b[40..48], want.to_le_bytes());
    }

    /// Errors name the kind of block that failed, as users read it.
    #[test]
    fn errors_name_the_block_kind() {
        let b = stream(10);
        for (kind, name) in [
            (MetaKind::ObjectTable, "object table block"),
            (MetaKind::Checksums, "checksum block"),
        ] {
            let err = decode_block(&b[..10], START, kind, ALG, SALT, BS).unwrap_err();
            assert!(
                matches!(err, FormatError::Truncated { what, .. } if what == name),
                "{err}"
            );
        }
    }

    #[test]
    fn block_length_boundary() {
        let b = stream(10);
        let bs = BS as usize;
        assert_eq!(block_refused(&b[..bs - 1], START), Some("block"));
        assert_eq!(block_refused(&b[..bs], START), None);
        let mut longer = b.clone();
        longer.push(0);
        assert_eq!(block_refused(&longer, START), Some("block"));
    }

    #[test]
    fn header_field_boundaries() {
        let one = |at: usize, v: &[u8]| {
            let mut b = stream(10);
            forge(&mut b, 0, at, v);
            block_refused(&b, START)
        };
        // kind: the one asked for only.
        assert_eq!(one(8, &[MetaKind::ObjectTable.id()]), None);
        assert_eq!(one(8, &[MetaKind::Checksums.id()]), Some("kind"));
        assert_eq!(one(8, &[0]), Some("kind"));
        assert_eq!(one(8, &[3]), Some("kind"));
        // reserved bytes: zero only.
        assert_eq!(one(9, &[1]), Some("reserved"));
        assert_eq!(one(10, &[0, 1]), Some("reserved"));
        assert_eq!(one(10, &[1, 0]), Some("reserved"));
        // payload_len <= payload per block.
        let per = PER as u32;
        assert_eq!(one(12, &(per - 1).to_le_bytes()), None);
        assert_eq!(one(12, &per.to_le_bytes()), None);
        assert_eq!(one(12, &(per + 1).to_le_bytes()), Some("payload_len"));
        assert_eq!(one(12, &u32::MAX.to_le_bytes()), Some("payload_len"));
        // addr: the block's own address only (the checksum is recomputed for the address
        // the block is read from, so the field check is what refuses it).
        assert_eq!(one(24, &(START + 1).to_le_bytes()), Some("addr"));
        assert_eq!(one(24, &(START - 1).to_le_bytes()), Some("addr"));
        // index < count.
        assert_eq!(one(36, &2u32.to_le_bytes()), None); // index 0 < 2
        let mut b = stream(10);
        forge(&mut b, 0, 32, &1u32.to_le_bytes());
        assert_eq!(block_refused(&b, START), Some("index"), "index == count");
        forge(&mut b, 0, 36, &2u32.to_le_bytes());
        assert_eq!(block_refused(&b, START), None, "index 1 < count 2");
        forge(&mut b, 0, 32, &3u32.to_le_bytes());
        assert_eq!(block_refused(&b, START), Some("index"), "index > count");
        forge(&mut b, 0, 36, &0u32.to_le_bytes());
        forge(&mut b, 0, 32, &0u32.to_le_bytes());
        assert_eq!(block_refused(&b, START), Some("index"), "count 0");
    }

    /// The stream's length must need exactly the blocks present: one below, at and one
    /// above each block boundary.
    #[test]
    fn stream_length_boundaries() {
        let two = stream(PER + 1);
        assert_eq!(two.len(), 2 * BS as usize);
        for (len, ok) in [
            (PER - 1, false),
            (PER, false),
            (PER + 1, true),
            (2 * PER - 1, true),
            (2 * PER, true),
            (2 * PER + 1, false),
            (u64::MAX, false),
        ] {
            // A stream encoded for `len` where it fits, so only the claimed length differs.
            let bytes = if ok { stream(len) } else { two.clone() };
            let want = (!ok).then_some("stream length");
            assert_eq!(stream_refused(&bytes, len), want, "len {len}");
        }
        assert_eq!(stream_refused(&[], 0), Some("stream length"));
        assert_eq!(
            stream_refused(&two[..2 * BS as usize - 1], PER + 1),
            Some("stream length")
        );
        let mut three = two.clone();
        three.extend_from_slice(&[0u8; BS as usize]);
        assert_eq!(stream_refused(&three, PER + 1), Some("stream length"));
        // Whole blocks only: a byte past the last block is refused, not ignored.
        let mut ragged = two.clone();
        ragged.push(0);
        assert_eq!(stream_refused(&ragged, PER + 1), Some("stream length"));
        assert_eq!(stream_refused(&stream(0), 0), None);
        assert_eq!(stream_refused(&stream(PER), PER), None);
    }

    #[test]
    fn stream_header_boundaries() {
        let len = PER + 10;
        let case = |index: usize, at: usize, v: &[u8]| {
            let mut b = stream(len);
            forge(&mut b, index, at, v);
            stream_refused(&b, len)
        };
        for index in [0usize, 1] {
            // generation: the table's own only.
            assert_eq!(
                case(index, 16, &(GEN - 1).to_le_bytes()),
                Some("generation")
            );
            assert_eq!(case(index, 16, &GEN.to_le_bytes()), None);
            assert_eq!(
                case(index, 16, &(GEN + 1).to_le_bytes()),
                Some("generation")
            );
            // count: the blocks present only.
            assert_eq!(
                case(index, 36, &1u32.to_le_bytes()),
                Some(if index == 1 { "index" } else { "count" })
            );
            assert_eq!(case(index, 36, &2u32.to_le_bytes()), None);
            assert_eq!(case(index, 36, &3u32.to_le_bytes()), Some("count"));
        }
        // Errors point at the field of the block that holds it.
        let mut b = stream(len);
        forge(&mut b, 1, 16, &(GEN + 1).to_le_bytes());
        let mut out = Vec::new();
        let err = decode_stream(
            &b,
            START,
            MetaKind::ObjectTable,
            GEN,
            len,
            ALG,
            SALT,
            BS,
            &mut out,
        )
        .unwrap_err();
        assert_eq!(err.offset(), (START + 1) * u64::from(BS) + 16, "{err}");
        // index: the block's position only.
        assert_eq!(case(0, 32, &1u32.to_le_bytes()), Some("index"));
        assert_eq!(case(1, 32, &0u32.to_le_bytes()), Some("index"));
        // payload_len: a full block, then the rest.
        let per = PER as u32;
        assert_eq!(case(0, 12, &(per - 1).to_le_bytes()), Some("payload_len"));
        assert_eq!(case(1, 12, &9u32.to_le_bytes()), Some("payload_len"));
        assert_eq!(case(1, 12, &10u32.to_le_bytes()), None);
        assert_eq!(case(1, 12, &11u32.to_le_bytes()), Some("payload_len"));
    }

    proptest! {
        #[test]
        fn prop_stream_round_trip(payload in proptest::collection::vec(any::<u8>(), 0..5000),
                                  gen in any::<u64>(), start in 0u64..1 << 40, salt in any::<u64>(), alg in 0usize..3) {
            let alg = Algorithm::ALL[alg];
            let bytes = encode_stream(MetaKind::ObjectTable, gen, start, &payload, 1024, alg, salt);
            let mut out = Vec::new();
            decode_stream(&bytes, start, MetaKind::ObjectTable, gen, payload.len() as u64, alg, salt, 1024, &mut out).unwrap();
            prop_assert_eq!(out, payload);
        }

        #[test]
        fn prop_random_bytes_never_panic(mut block in proptest::collection::vec(any::<u8>(), 0..1100),
                                         fix in any::<bool>(), len in any::<u64>()) {
            if fix && block.len() == 1024 {
                block[..8].copy_from_slice(&META_MAGIC);
                let csum = block_checksum(Algorithm::Crc32c, 0, 3, &block);
                block[CSUM_FIELD].copy_from_slice(&csum.to_le_bytes());
            }
            let _ = decode_block(&block, 3, MetaKind::ObjectTable, Algorithm::Crc32c, 0, 1024);
            let mut out = Vec::new();
            let _ = decode_stream(&block, 3, MetaKind::ObjectTable, 0, len % 4096, Algorithm::Crc32c, 0, 1024, &mut out);
        }
    }
}
