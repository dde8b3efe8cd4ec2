//! The object table: every object's name, size, kind and runs (data extent + where its
//! checksums live), encoded as the payload of an object-table metadata stream.

use super::cursor::{Cursor, Writer};
use super::meta::{payload_per_block, stream_blocks, META_HEADER_BYTES};
use super::FormatError;

/// Longest object name in bytes.
pub const MAX_NAME_BYTES: usize = 255;
/// Encoded bytes of one run.
pub const RUN_BYTES: usize = 32;
pub(crate) const TABLE_HEADER_BYTES: usize = 16;
pub(crate) const RECORD_FIXED_BYTES: usize = 48;
/// Largest run in bytes: bounds what one checksum stream covers (and what a reader holds).
pub const MAX_RUN_BYTES: u64 = 8 << 20;
/// `target_size` value meaning "no target" (user data, or a fill).
const NO_TARGET: u64 = u64::MAX;
const FLAG_COMPLETE: u8 = 1;

/// Where an object's bytes come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ObjectKind {
    /// User data (a file or stdin); damage shows as a checksum mismatch.
    File,
    /// The deterministic pattern stream of `seed`; damage can be classified.
    Pattern {
        /// The stream's seed.
        seed: u64,
    },
}

/// A contiguous piece of an object: its data blocks and the checksum blocks that cover them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Run {
    /// First data block.
    pub data_start_block: u64,
    /// Data blocks (at least 1).
    pub data_blocks: u64,
    /// First block of the checksum stream of this run.
    pub csum_start_block: u64,
    /// Generation of the write that produced it (in pattern headers and checksum blocks).
    pub write_generation: u64,
}

impl Run {
    /// Blocks of the checksum stream for this run.
    pub fn csum_blocks(&self, block_size_bytes: u32, csum_width_bytes: usize) -> u64 {
        csum_stream_blocks(self.data_blocks, block_size_bytes, csum_width_bytes)
    }
}

/// Blocks of the checksum stream covering `data_blocks` blocks.
pub fn csum_stream_blocks(data_blocks: u64, block_size_bytes: u32, csum_width_bytes: usize) -> u64 {
    stream_blocks(
        data_blocks.saturating_mul(csum_width_bytes as u64),
        block_size_bytes,
    )
}

/// One object of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRecord {
    /// Unique, never reused id (in pattern block headers).
    pub id: u64,
    /// Unique name.
    pub name: String,
    /// Bytes of the object that are committed.
    pub size_bytes: u64,
    /// Creation time (Unix seconds).
    pub created_unix_secs: u64,
    /// File or pattern.
    pub kind: ObjectKind,
    /// False while a write is in progress or was interrupted.
    pub complete: bool,
    /// Pattern writes of a given size: the size asked for (what a resume completes to);
    /// `None` for user data and for fills (which run until the volume is full).
    pub target_size_bytes: Option<u64>,
    /// The runs in logical order; their blocks add up to `size_bytes` rounded up.
    pub runs: Vec<Run>,
}

impl ObjectRecord {
    /// The runs in logical order, each with the logical offset of its first block.
    pub fn runs_with_offsets(&self, block_size_bytes: u64) -> impl Iterator<Item = (&Run, u64)> {
        self.runs.iter().scan(0u64, move |logical, run| {
            let at = *logical;
            *logical = logical.saturating_add(run.data_blocks.saturating_mul(block_size_bytes));
            Some((run, at))
        })
    }
}

/// The whole table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectTable {
    /// The id the next object gets.
    pub next_object_id: u64,
    /// Objects in creation order.
    pub objects: Vec<ObjectRecord>,
}

/// Checks an object name: 1..=255 bytes of UTF-8 without control characters.
pub fn name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("empty")
    } else if name.len() > MAX_NAME_BYTES {
        Some("longer than 255 bytes")
    } else if name.chars().any(char::is_control) {
        Some("contains a control character")
    } else {
        None
    }
}

impl ObjectTable {
    /// Encoded length in bytes.
    pub fn encoded_len(&self) -> usize {
        TABLE_HEADER_BYTES
            + self
                .objects
                .iter()
                .map(|o| RECORD_FIXED_BYTES + o.name.len() + o.runs.len() * RUN_BYTES)
                .sum::<usize>()
    }

    /// Encodes the table payload.
    pub fn encode(&self) -> Vec<u8> {
        for o in &self.objects {
            assert!(name_problem(&o.name).is_none());
            assert!(o.id < self.next_object_id);
            assert!(o.runs.iter().all(|r| r.data_blocks > 0));
        }
        self.encode_unchecked()
    }

    /// The encoding without the encoder's own checks: tests build tables the decoder
    /// must refuse with it.
    fn encode_unchecked(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(self.encoded_len());
        w.u32(u32::try_from(self.objects.len()).expect("over 2^32 objects"));
        w.u32(0);
        w.u64(self.next_object_id);
        for o in &self.objects {
            let (kind, seed) = match o.kind {
                ObjectKind::File => (0u8, 0u64),
                ObjectKind::Pattern { seed } => (1, seed),
            };
            w.u64(o.id);
            w.u64(o.size_bytes);
            w.u64(o.created_unix_secs);
            w.u64(seed);
            w.u64(o.target_size_bytes.unwrap_or(NO_TARGET));
            w.u8(kind);
            w.u8(if o.complete { FLAG_COMPLETE } else { 0 });
            w.u16(o.name.len() as u16);
            w.u32(u32::try_from(o.runs.len()).expect("over 2^32 runs"));
            w.bytes(o.name.as_bytes());
            for r in &o.runs {
                w.u64(r.data_start_block);
                w.u64(r.data_blocks);
                w.u64(r.csum_start_block);
                w.u64(r.write_generation);
            }
        }
        assert_eq!(w.buf.len(), self.encoded_len());
        w.buf
    }

    /// Decodes a table payload committed at `generation` on a volume of `total_blocks` blocks;
    /// error offsets are device offsets, the stream starting at block `start_block`.
    pub fn decode(
        payload: &[u8],
        generation: u64,
        total_blocks: u64,
        block_size_bytes: u32,
        csum_width_bytes: usize,
        start_block: u64,
    ) -> Result<Self, FormatError> {
        Self::decode_inner(
            payload,
            generation,
            total_blocks,
            block_size_bytes,
            csum_width_bytes,
        )
        .map_err(|mut e| {
            // Cursor offsets are stream offsets: map them to the device.
            let per = payload_per_block(block_size_bytes) as u64;
            let map = |off: u64| {
                (start_block + off / per) * u64::from(block_size_bytes)
                    + META_HEADER_BYTES as u64
                    + off % per
            };
            match &mut e {
                FormatError::Truncated { offset, .. }
                | FormatError::BadMagic { offset, .. }
                | FormatError::BadValue { offset, .. }
                | FormatError::ChecksumMismatch { offset, .. } => *offset = map(*offset),
            }
            e
        })
    }

    fn decode_inner(
        payload: &[u8],
        generation: u64,
        total_blocks: u64,
        block_size_bytes: u32,
        csum_width_bytes: usize,
    ) -> Result<Self, FormatError> {
        let mut c = Cursor::new("object table", payload, 0);
        let count = c.u32("object_count")?;
        if count as usize > c.remaining() / RECORD_FIXED_BYTES {
            return Err(c.bad_value(
                "object_count",
                4,
                count.into(),
                "a count that fits the table",
            ));
        }
        let reserved = c.u32("reserved")?;
        c.expect_zero("reserved", 4, reserved.into())?;
        let next_object_id = c.u64("next_object_id")?;
        let mut objects: Vec<ObjectRecord> = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let id = c.u64("id")?;
            if id >= next_object_id {
                return Err(c.bad_value("id", 8, id, format!("< next_object_id {next_object_id}")));
            }
            if objects.iter().any(|o| o.id == id) {
                return Err(c.bad_value("id", 8, id, "an id no other object has"));
            }
            let size_bytes = c.u64("size")?;
            let created_unix_secs = c.u64("created")?;
            let seed = c.u64("seed")?;
            let target = c.u64("target_size")?;
            let target_size_bytes = (target != NO_TARGET).then_some(target);
            let kind = match c.u8("kind")? {
                0 if seed == 0 => ObjectKind::File,
                1 => ObjectKind::Pattern { seed },
                k => {
                    return Err(c.bad_value("kind", 1, k.into(), "0 (file, seed 0) or 1 (pattern)"))
                }
            };
            let flags = c.u8("flags")?;
            if flags & !FLAG_COMPLETE != 0 {
                return Err(c.bad_value("flags", 1, flags.into(), "only bit 0 (complete)"));
            }
            let name_len = c.u16("name_len")?;
            let run_count = c.u32("run_count")?;
            let name_bytes = c.bytes("name", name_len.into())?;
            let name = std::str::from_utf8(name_bytes)
                .ok()
                .filter(|n| name_problem(n).is_none())
                .ok_or_else(|| {
                    c.bad_value(
                        "name",
                        name_len.into(),
                        name_len.into(),
                        "1..=255 bytes of UTF-8 without control characters",
                    )
                })?
                .to_string();
            if objects.iter().any(|o| o.name == name) {
                return Err(c.bad_value(
                    "name",
                    name_len.into(),
                    name_len.into(),
                    "a name no other object has",
                ));
            }
            if run_count as usize > c.remaining() / RUN_BYTES {
                return Err(c.bad_value(
                    "run_count",
                    4,
                    run_count.into(),
                    "a count that fits the table",
                ));
            }
            let mut runs = Vec::with_capacity(run_count as usize);
            let mut blocks_total = 0u64;
            for _ in 0..run_count {
                let run = Run {
                    data_start_block: c.u64("run.data_start")?,
                    data_blocks: c.u64("run.data_blocks")?,
                    csum_start_block: c.u64("run.csum_start")?,
                    write_generation: c.u64("run.write_generation")?,
                };
                let in_volume = |start: u64, len: u64| {
                    start
                        .checked_add(len)
                        .is_some_and(|end| end <= total_blocks)
                };
                let max_run_blocks = MAX_RUN_BYTES / u64::from(block_size_bytes);
                if run.data_blocks == 0
                    || run.data_blocks > max_run_blocks
                    || !in_volume(run.data_start_block, run.data_blocks)
                {
                    return Err(c.bad_value(
                        "run.data_blocks",
                        24,
                        run.data_blocks,
                        format!("1..={max_run_blocks} blocks inside {total_blocks} blocks"),
                    ));
                }
                if !in_volume(
                    run.csum_start_block,
                    run.csum_blocks(block_size_bytes, csum_width_bytes),
                ) {
                    return Err(c.bad_value(
                        "run.csum_start",
                        16,
                        run.csum_start_block,
                        format!("an extent inside {total_blocks} blocks"),
                    ));
                }
                if run.write_generation > generation {
                    return Err(c.bad_value(
                        "run.write_generation",
                        8,
                        run.write_generation,
                        format!("<= table generation {generation}"),
                    ));
                }
                blocks_total += run.data_blocks;
                runs.push(run);
            }
            let want = size_bytes.div_ceil(u64::from(block_size_bytes));
            if blocks_total != want {
                return Err(c.bad_value(
                    "run_count",
                    4,
                    run_count.into(),
                    format!(
                        "runs adding up to {want} blocks (size {size_bytes}), not {blocks_total}"
                    ),
                ));
            }
            objects.push(ObjectRecord {
                id,
                name,
                size_bytes,
                created_unix_secs,
                kind,
                complete: flags & FLAG_COMPLETE != 0,
                target_size_bytes,
                runs,
            });
        }
        if c.remaining() != 0 {
            return Err(c.bad_value(
                "end",
                0,
                c.remaining() as u64,
                "no bytes after the last object",
            ));
        }
        Ok(ObjectTable {
            next_object_id,
            objects,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_table() -> impl Strategy<Value = ObjectTable> {
        let run = (0u64..1000, 1u64..100, 0u64..1000, 0u64..50).prop_map(|(s, l, c, g)| Run {
            data_start_block: s,
            data_blocks: l,
            csum_start_block: c,
            write_generation: g,
        });
        let obj = (
            "[a-z0-9._-]{1,40}",
            proptest::collection::vec(run, 0..6),
            any::<u64>(),
            any::<Option<u64>>(),
            any::<bool>(),
            0u64..4096,
        );
        proptest::collection::vec(obj, 0..8).prop_map(|objs| {
            let mut seen = std::collections::HashSet::new();
            let objects: Vec<ObjectRecord> = objs
                .into_iter()
                .filter(|o| seen.insert(o.0.clone()))
                .enumerate()
                .map(|(i, (name, runs, created, seed, complete, tail))| {
                    let blocks: u64 = runs.iter().map(|r| r.data_blocks).sum();
                    let size_bytes = if blocks == 0 {
                        0
                    } else {
                        (blocks - 1) * 4096 + 1 + tail % 4096
                    };
                    ObjectRecord {
                        id: i as u64 * 3,
                        name,
                        size_bytes,
                        created_unix_secs: created,
                        kind: seed.map_or(ObjectKind::File, |seed| ObjectKind::Pattern { seed }),
                        complete,
                        target_size_bytes: seed.map(|_| size_bytes + tail),
                        runs,
                    }
                })
                .collect();
            ObjectTable {
                next_object_id: objects.len() as u64 * 3 + 1,
                objects,
            }
        })
    }

    proptest! {
        #[test]
        fn prop_round_trip(table in arb_table()) {
            let bytes = table.encode();
            let back = ObjectTable::decode(&bytes, 50, 2000, 4096, 4, 10).unwrap();
            prop_assert_eq!(back, table);
        }

        #[test]
        fn prop_random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = ObjectTable::decode(&bytes, 50, 2000, 4096, 4, 10);
        }

        #[test]
        fn prop_mutated_tables_never_panic(table in arb_table(), at in any::<usize>(), byte in any::<u8>()) {
            let mut bytes = table.encode();
            let i = at % bytes.len();
            bytes[i] = byte;
            let _ = ObjectTable::decode(&bytes, 50, 2000, 4096, 4, 10);
        }
    }

    const GEN: u64 = 5;
    const TOTAL: u64 = 10_000;
    const BS: u32 = 4096;

    /// One file object `a` of `blocks` data blocks at block 100 (checksums at 900).
    fn one(blocks: u64) -> ObjectTable {
        ObjectTable {
            next_object_id: 8,
            objects: vec![ObjectRecord {
                id: 7,
                name: "a".into(),
                size_bytes: blocks * u64::from(BS),
                created_unix_secs: 0,
                kind: ObjectKind::File,
                complete: true,
                target_size_bytes: None,
                runs: vec![Run {
                    data_start_block: 100,
                    data_blocks: blocks,
                    csum_start_block: 900,
                    write_generation: GEN,
                }],
            }],
        }
    }

    /// The field the decoder refused, or `None` when it decoded the bytes.
    fn refused(bytes: &[u8]) -> Option<&'static str> {
        match ObjectTable::decode(bytes, GEN, TOTAL, BS, 4, 10) {
            Ok(t) => {
                assert_eq!(
                    t.encode(),
                    bytes,
                    "whatever decodes re-encodes to the same bytes"
                );
                None
            }
            Err(FormatError::BadValue { field, .. } | FormatError::Truncated { field, .. }) => {
                Some(field)
            }
            Err(e) => panic!("{e}"),
        }
    }

    fn table_refused(t: &ObjectTable) -> Option<&'static str> {
        refused(&t.encode_unchecked())
    }

    /// Byte offset of the first record's fields in an encoded table.
    const REC: usize = TABLE_HEADER_BYTES;

    #[test]
    fn count_boundaries() {
        let t = one(1);
        let bytes = t.encode();
        let with_count = |n: u32| {
            let mut b = bytes.clone();
            b[..4].copy_from_slice(&n.to_le_bytes());
            refused(&b)
        };
        assert_eq!(with_count(1), None);
        assert_eq!(with_count(0), Some("end"));
        // The one record left fits one 48-byte record: 1 is the most the check lets by.
        let fits = (bytes.len() - 4) / RECORD_FIXED_BYTES;
        assert_eq!(fits, 1);
        assert_eq!(with_count(2), Some("object_count"));
        assert_eq!(with_count(u32::MAX), Some("object_count"));
        // run_count: 1 fits the 32 bytes left, 2 does not.
        let with_runs = |n: u32| {
            let mut b = bytes.clone();
            b[REC + 44..REC + 48].copy_from_slice(&n.to_le_bytes());
            refused(&b)
        };
        assert_eq!(with_runs(1), None);
        assert_eq!(with_runs(0), Some("run_count"));
        assert_eq!(with_runs(2), Some("run_count"));
        assert_eq!(with_runs(u32::MAX), Some("run_count"));
        // Trailing bytes: none allowed.
        let mut b = bytes.clone();
        b.push(0);
        assert_eq!(refused(&b), Some("end"));
        assert_eq!(refused(&bytes[..bytes.len() - 1]), Some("run_count"));
        let empty = ObjectTable::default().encode();
        assert_eq!(refused(&empty), None);
        assert_eq!(
            refused(&empty[..TABLE_HEADER_BYTES - 1]),
            Some("next_object_id")
        );
    }

    #[test]
    fn id_boundaries() {
        for (id, next, ok) in [
            (6u64, 7u64, true),
            (7, 7, false),
            (8, 7, false),
            (0, 0, false),
            (u64::MAX - 1, u64::MAX, true),
        ] {
            let mut t = one(1);
            t.next_object_id = next;
            t.objects[0].id = id;
            assert_eq!(
                table_refused(&t),
                (!ok).then_some("id"),
                "id {id}, next {next}"
            );
        }
        let mut t = one(1);
        let mut second = t.objects[0].clone();
        second.name = "b".into();
        second.runs[0].data_start_block = 200;
        second.runs[0].csum_start_block = 901;
        t.objects.push(second.clone());
        assert_eq!(table_refused(&t), Some("id"), "two objects with one id");
        t.objects[1].id = 6;
        assert_eq!(table_refused(&t), None);
        t.objects[1].name = "a".into();
        assert_eq!(table_refused(&t), Some("name"), "two objects with one name");
    }

    #[test]
    fn name_boundaries() {
        for (len, ok) in [
            (0usize, false),
            (1, true),
            (MAX_NAME_BYTES - 1, true),
            (MAX_NAME_BYTES, true),
            (MAX_NAME_BYTES + 1, false),
        ] {
            let mut t = one(1);
            t.objects[0].name = "n".repeat(len);
            assert_eq!(
                table_refused(&t),
                (!ok).then_some("name"),
                "name of {len} bytes"
            );
        }
        let mut t = one(1);
        t.objects[0].name = "a\u{1f}".into();
        assert_eq!(table_refused(&t), Some("name"));
        t.objects[0].name = "a ".into();
        assert_eq!(table_refused(&t), None);
        // Not UTF-8.
        let mut b = one(1).encode();
        b[REC + RECORD_FIXED_BYTES] = 0xff; // not UTF-8
        assert_eq!(refused(&b), Some("name"));
    }

    #[test]
    fn kind_flags_and_reserved_boundaries() {
        let bytes = one(1).encode();
        let patched = |at: usize, v: &[u8]| {
            let mut b = bytes.clone();
            b[at..at + v.len()].copy_from_slice(v);
            refused(&b)
        };
        assert_eq!(patched(4, &[1]), Some("reserved"));
        assert_eq!(patched(7, &[0x80]), Some("reserved"));
        // kind 0 needs seed 0; kind 1 takes any seed; 2 and up are unknown.
        assert_eq!(patched(REC + 24, &[1]), Some("kind"));
        assert_eq!(patched(REC + 40, &[1]), None);
        assert_eq!(patched(REC + 40, &[2]), Some("kind"));
        assert_eq!(patched(REC + 40, &[255]), Some("kind"));
        // flags: bit 0 only.
        assert_eq!(patched(REC + 41, &[0]), None);
        assert_eq!(patched(REC + 41, &[1]), None);
        assert_eq!(patched(REC + 41, &[2]), Some("flags"));
        assert_eq!(patched(REC + 41, &[3]), Some("flags"));
    }

    #[test]
    fn run_boundaries() {
        let max_run = MAX_RUN_BYTES / u64::from(BS);
        for (blocks, ok) in [
            (0u64, false),
            (1, true),
            (max_run - 1, true),
            (max_run, true),
            (max_run + 1, false),
        ] {
            let mut t = one(blocks.max(1));
            t.objects[0].runs[0].data_blocks = blocks;
            t.objects[0].size_bytes = blocks * u64::from(BS);
            assert_eq!(
                table_refused(&t),
                (!ok).then_some("run.data_blocks"),
                "{blocks} blocks"
            );
        }
        // The data extent ends at most at the volume's end.
        for (start, ok) in [
            (TOTAL - 3, true),
            (TOTAL - 2, true),
            (TOTAL - 1, false),
            (TOTAL, false),
            (u64::MAX, false),
        ] {
            let mut t = one(2);
            t.objects[0].runs[0].data_start_block = start;
            assert_eq!(
                table_refused(&t),
                (!ok).then_some("run.data_blocks"),
                "data at {start}"
            );
        }
        // So does the checksum extent (2 blocks of 4-byte checksums: one block).
        for (start, ok) in [
            (TOTAL - 2, true),
            (TOTAL - 1, true),
            (TOTAL, false),
            (u64::MAX, false),
        ] {
            let mut t = one(2);
            t.objects[0].runs[0].csum_start_block = start;
            assert_eq!(
                table_refused(&t),
                (!ok).then_some("run.csum_start"),
                "checksums at {start}"
            );
        }
        // A full run's checksums take several blocks: 2048 blocks × 4 bytes over 4048
        // payload bytes per block = 3 blocks, all inside the volume.
        assert_eq!(csum_stream_blocks(1012, BS, 4), 1);
        assert_eq!(csum_stream_blocks(1013, BS, 4), 2);
        assert_eq!(csum_stream_blocks(2048, BS, 4), 3);
        assert_eq!(csum_stream_blocks(2048, BS, 8), 5);
        for (start, ok) in [(TOTAL - 4, true), (TOTAL - 3, true), (TOTAL - 2, false)] {
            let mut t = one(max_run);
            t.objects[0].runs[0].csum_start_block = start;
            assert_eq!(t.objects[0].runs[0].csum_blocks(BS, 4), 3);
            assert_eq!(
                table_refused(&t),
                (!ok).then_some("run.csum_start"),
                "checksums at {start}"
            );
        }
        // A run's write generation is at most the table's.
        for (g, ok) in [
            (GEN - 1, true),
            (GEN, true),
            (GEN + 1, false),
            (u64::MAX, false),
        ] {
            let mut t = one(1);
            t.objects[0].runs[0].write_generation = g;
            assert_eq!(
                table_refused(&t),
                (!ok).then_some("run.write_generation"),
                "generation {g}"
            );
        }
    }

    /// The runs add up to exactly the blocks the size needs.
    #[test]
    fn size_boundaries() {
        let bs = u64::from(BS);
        for (size, ok) in [
            (bs - 1, false),
            (bs, false),
            (bs + 1, true),
            (2 * bs - 1, true),
            (2 * bs, true),
            (2 * bs + 1, false),
            (u64::MAX, false),
        ] {
            let mut t = one(2);
            t.objects[0].size_bytes = size;
            assert_eq!(
                table_refused(&t),
                (!ok).then_some("run_count"),
                "size {size}"
            );
        }
        let mut t = one(1);
        t.objects[0].runs.clear();
        t.objects[0].size_bytes = 0;
        assert_eq!(table_refused(&t), None, "an empty object has no runs");
        t.objects[0].size_bytes = 1;
        assert_eq!(table_refused(&t), Some("run_count"));
    }

    /// Errors name the device offset of the field even when the table spans several
    /// blocks: block `start + off / per`, after its 48-byte header, byte `off % per`.
    #[test]
    fn error_offsets_map_to_the_device_across_blocks() {
        let objects: Vec<ObjectRecord> = (0..20u64)
            .map(|i| ObjectRecord {
                id: i,
                name: format!("object-{i}"),
                size_bytes: 512,
                ..one(1).objects[0].clone()
            })
            .collect();
        let t = ObjectTable {
            next_object_id: 20,
            objects,
        };
        let mut bytes = t.encode();
        let per = payload_per_block(512) as u64;
        assert!(bytes.len() as u64 > 3 * per);
        let flags = crate::format::fields::table_fields(&bytes)
            .into_iter()
            .rfind(|f| f.name == "flags")
            .unwrap();
        bytes[flags.at] = 2;
        let err = ObjectTable::decode(&bytes, GEN, TOTAL, 512, 4, 10).unwrap_err();
        let off = flags.at as u64;
        assert!(off > 2 * per);
        assert_eq!(
            err.offset(),
            (10 + off / per) * 512 + 48 + off % per,
            "{err}"
        );
    }

    #[test]
    fn huge_count_is_refused_without_allocating() {
        let mut bytes = ObjectTable {
            next_object_id: 1,
            objects: vec![],
        }
        .encode();
        bytes[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        let err = ObjectTable::decode(&bytes, 1, 100, 4096, 4, 10).unwrap_err();
        assert!(
            matches!(err, FormatError::BadValue { field: "object_count", offset, .. } if offset == 10 * 4096 + 48),
            "{err}"
        );
    }

    #[test]
    fn run_outside_volume_is_refused() {
        let t = ObjectTable {
            next_object_id: 1,
            objects: vec![ObjectRecord {
                id: 0,
                name: "a".into(),
                size_bytes: 4096,
                created_unix_secs: 0,
                kind: ObjectKind::File,
                complete: true,
                target_size_bytes: None,
                runs: vec![Run {
                    data_start_block: 99,
                    data_blocks: 2,
                    csum_start_block: 5,
                    write_generation: 1,
                }],
            }],
        };
        let err = ObjectTable::decode(&t.encode(), 1, 100, 4096, 4, 0).unwrap_err();
        assert!(
            matches!(
                err,
                FormatError::BadValue {
                    field: "run.data_blocks",
                    ..
                }
            ),
            "{err}"
        );
    }
}
