//! Hostile bytes against every on-disk decoder: the superblock, metadata blocks and
//! streams, the object table, the allocator's persisted free space and the pattern block
//! header (with the damage classifiers that read it).
//!
//! Each test builds a seed corpus of valid encodings, then runs the decoder over
//! thousands of deterministic mutations of it. Half the mutations get their checksum
//! recomputed afterwards, so the fields behind the checksum are exercised too, not just
//! the checksum check. Asserted for every input: no panic, no allocation beyond a small
//! bound, errors point inside the structure, and whatever decodes re-encodes to the same
//! bytes (the decoder accepts only what the encoder can produce).

use std::panic::{catch_unwind, AssertUnwindSafe};

use stack_alloc::{AllocRequest, Allocator};
use stack_csum::Algorithm;
use stack_volume::format::{
    decode_meta_block, decode_meta_stream, encode_meta_stream, MetaKind, ObjectKind, ObjectRecord,
    ObjectTable, Run, Superblock, SB_BYTES, SB_SLOT_OFFSETS,
};
use stack_volume::pattern::{
    classify_file, classify_pattern, fill_blocks, PatternHeader, PATTERN_HEADER_BYTES,
};

use super::alloc_track::largest_allocation;
use super::mutate::{mutated, Rng};

/// Mutations per decoder in one test run.
pub const CASES: u64 = 30_000;

/// Runs `check` on `CASES` mutations of the corpus; a panic names the case that made it.
pub fn fuzz(
    name: &str,
    seed: u64,
    corpus: &[Vec<u8>],
    max_len: usize,
    mut check: impl FnMut(&mut Rng, &[u8]),
) {
    assert!(!corpus.is_empty());
    let mut rng = Rng::new(seed);
    // The unmutated seeds first: valid input must decode.
    for input in corpus {
        check(&mut rng, input);
    }
    for case in 0..CASES {
        let base = &corpus[rng.index(corpus.len())];
        let input = mutated(&mut rng, base, max_len);
        let mut case_rng = Rng::new(rng.next_u64());
        let outcome = catch_unwind(AssertUnwindSafe(|| check(&mut case_rng, &input)));
        if let Err(panic) = outcome {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!(
                "{name}: case {case} (seed {seed}) panicked: {msg}\ninput ({} bytes): {:02x?}",
                input.len(),
                &input[..input.len().min(256)]
            );
        }
    }
}

fn sb_crc_fix(bytes: &mut [u8]) {
    if bytes.len() >= SB_BYTES {
        let crc = stack_csum::checksum(Algorithm::Crc32c, 0, &bytes[..SB_BYTES - 8]);
        bytes[SB_BYTES - 8..SB_BYTES].copy_from_slice(&crc.to_le_bytes());
    }
}

fn superblock(slot: u8, bs: u32, algorithm: Algorithm, generation: u64) -> Superblock {
    let total_blocks = (16u64 << 20) / u64::from(bs);
    let meta_blocks = 3;
    Superblock {
        uuid: [slot ^ 0x5a; 16],
        block_size_bytes: bs,
        algorithm,
        slot,
        generation,
        total_blocks,
        meta_start_block: total_blocks / 2,
        meta_blocks,
        meta_len_bytes: (meta_blocks - 1) * u64::from(bs - 48) + 5,
        created_unix_secs: 1_700_000_000,
    }
}

#[test]
fn superblock_decoder_survives_hostile_bytes() {
    let mut corpus = Vec::new();
    for (i, alg) in Algorithm::ALL.into_iter().enumerate() {
        for bs in [512u32, 4096, 65536] {
            let slot = (i % 2) as u8;
            let mut b = superblock(slot, bs, alg, 7 + i as u64).encode().to_vec();
            // A slot is read as a whole logical block: the tail is zero.
            b.resize(512, 0);
            corpus.push(b);
        }
    }
    let mut accepted = 0u64;
    fuzz("superblock", 1, &corpus, 1024, |rng, input| {
        let mut input = input.to_vec();
        if rng.one_in(2) {
            sb_crc_fix(&mut input);
        }
        for slot in [0u8, 1] {
            let (result, largest) = largest_allocation(|| Superblock::decode(&input, slot));
            assert!(
                largest <= 4096,
                "superblock decode allocated {largest} bytes"
            );
            match result {
                Ok(sb) => {
                    accepted += 1;
                    assert_eq!(sb.slot, slot);
                    assert_eq!(
                        &sb.encode()[..],
                        &input[..SB_BYTES],
                        "accepted a non-canonical superblock"
                    );
                    assert!(sb.meta_start_block + sb.meta_blocks <= sb.total_blocks);
                }
                Err(e) => {
                    // Inside the slot's block: the 128 bytes, or the zero tail after them.
                    let base = SB_SLOT_OFFSETS[usize::from(slot)];
                    let block = input.len().max(SB_BYTES) as u64;
                    assert!(
                        (base..base + block).contains(&e.offset()),
                        "error offset {} outside slot {slot}: {e}",
                        e.offset()
                    );
                    assert!(!e.to_string().is_empty());
                }
            }
        }
    });
    // The corpus itself decodes (the tail after the 128 bytes must stay zero).
    assert!(accepted >= corpus.len() as u64, "{accepted}");
}

/// Object tables of several shapes (empty, files, patterns, many runs, long names).
pub fn table_corpus(total_blocks: u64, bs: u32, generation: u64) -> Vec<ObjectTable> {
    let mut tables = vec![ObjectTable::default()];
    let mut next_block = 200u64;
    let mut run = |blocks: u64, gen: u64| {
        let r = Run {
            data_start_block: next_block,
            data_blocks: blocks,
            csum_start_block: next_block + blocks,
            write_generation: gen,
        };
        next_block += blocks + 2;
        assert!(next_block < total_blocks);
        r
    };
    let objects = vec![
        ObjectRecord {
            id: 0,
            name: "a".into(),
            size_bytes: u64::from(bs) * 3 - 17,
            created_unix_secs: 1,
            kind: ObjectKind::File,
            complete: true,
            target_size_bytes: None,
            runs: vec![run(3, generation)],
        },
        ObjectRecord {
            id: 3,
            name: "pattern with spaces/and slashes é".into(),
            size_bytes: u64::from(bs) * 7,
            created_unix_secs: 2,
            kind: ObjectKind::Pattern { seed: 99 },
            complete: false,
            target_size_bytes: Some(u64::from(bs) * 100),
            runs: vec![run(2, 1), run(4, generation), run(1, generation)],
        },
        ObjectRecord {
            id: 4,
            name: "x".repeat(255),
            size_bytes: 0,
            created_unix_secs: 3,
            kind: ObjectKind::Pattern { seed: 0 },
            complete: true,
            target_size_bytes: None,
            runs: vec![],
        },
    ];
    tables.push(ObjectTable {
        next_object_id: 5,
        objects: objects.clone(),
    });
    tables.push(ObjectTable {
        next_object_id: 1,
        objects: objects[..1].to_vec(),
    });
    tables.push(ObjectTable {
        next_object_id: u64::MAX,
        objects: objects[1..].to_vec(),
    });
    tables
}

const TABLE_TOTAL_BLOCKS: u64 = 4096;
const TABLE_GEN: u64 = 9;

#[test]
fn object_table_decoder_survives_hostile_bytes() {
    let bs = 512u32;
    let corpus: Vec<Vec<u8>> = table_corpus(TABLE_TOTAL_BLOCKS, bs, TABLE_GEN)
        .iter()
        .map(ObjectTable::encode)
        .collect();
    let mut accepted = 0u64;
    fuzz("object table", 2, &corpus, 4096, |_, input| {
        let width = 4;
        let (result, largest) = largest_allocation(|| {
            ObjectTable::decode(input, TABLE_GEN, TABLE_TOTAL_BLOCKS, bs, width, 20)
        });
        assert!(
            largest <= 64 * 1024 + 4 * input.len(),
            "table decode of {} bytes allocated {largest}",
            input.len()
        );
        match result {
            Ok(t) => {
                accepted += 1;
                assert_eq!(t.encode(), input, "accepted a non-canonical table");
                for o in &t.objects {
                    for r in &o.runs {
                        assert!(r.data_start_block + r.data_blocks <= TABLE_TOTAL_BLOCKS);
                        assert!(r.write_generation <= TABLE_GEN);
                    }
                }
            }
            Err(e) => {
                // Offsets are device offsets of the stream starting at block 20.
                let start = 20 * u64::from(bs);
                assert!(
                    e.offset() >= start,
                    "offset {} before the table: {e}",
                    e.offset()
                );
            }
        }
    });
    assert!(accepted >= corpus.len() as u64);
}

fn meta_fix(block: &mut [u8], addr: u64, algorithm: Algorithm, salt: u64) {
    if block.len() < 48 {
        return;
    }
    let seed = salt ^ addr.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let head = stack_csum::checksum(algorithm, seed, &block[..40]);
    let csum = stack_csum::checksum(algorithm, head, &block[48..]);
    block[40..48].copy_from_slice(&csum.to_le_bytes());
}

#[test]
fn metadata_stream_decoder_survives_hostile_bytes() {
    let bs = 512u32;
    let salt = 0xfeed_u64;
    let start = 40u64;
    let mut corpus = Vec::new();
    let mut params = Vec::new();
    for (i, t) in table_corpus(TABLE_TOTAL_BLOCKS, bs, TABLE_GEN)
        .iter()
        .enumerate()
    {
        let alg = Algorithm::ALL[i % 3];
        let payload = t.encode();
        corpus.push(encode_meta_stream(
            MetaKind::ObjectTable,
            TABLE_GEN,
            start,
            &payload,
            bs,
            alg,
            salt,
        ));
        params.push((alg, payload.len() as u64));
    }
    let mut accepted = 0u64;
    let corpus_len = corpus.len();
    let mut which = 0usize;
    fuzz("metadata stream", 3, &corpus, 8 * 512, |rng, input| {
        // Seeds first, in order; then any parameters (a mutation may come from any seed).
        let (alg, mut len) = if which < corpus_len {
            params[which]
        } else {
            params[rng.index(params.len())]
        };
        which += 1;
        let mut input = input.to_vec();
        if rng.one_in(2) {
            for (i, block) in input.chunks_mut(bs as usize).enumerate() {
                meta_fix(block, start + i as u64, alg, salt);
            }
        }
        if rng.one_in(8) {
            // The superblock's length field is untrusted as well.
            len = [
                0,
                1,
                u64::MAX,
                u64::MAX / 2,
                len + 1,
                len.wrapping_sub(1),
                1 << 40,
            ][rng.index(7)];
        }
        let mut out = Vec::new();
        let (result, largest) = largest_allocation(|| {
            decode_meta_stream(
                &input,
                start,
                MetaKind::ObjectTable,
                TABLE_GEN,
                len,
                alg,
                salt,
                bs,
                &mut out,
            )
        });
        assert!(
            largest <= 2 * input.len() + 4096,
            "stream decode of {} bytes allocated {largest}",
            input.len()
        );
        match result {
            Ok(()) => {
                accepted += 1;
                assert_eq!(out.len() as u64, len);
                // Same headers and payload as the encoder writes (the padding after the
                // payload is covered by the block checksum, not checked for zeros).
                let again = encode_meta_stream(
                    MetaKind::ObjectTable,
                    TABLE_GEN,
                    start,
                    &out,
                    bs,
                    alg,
                    salt,
                );
                assert_eq!(again.len(), input.len());
                for (a, b) in again.chunks(bs as usize).zip(input.chunks(bs as usize)) {
                    assert_eq!(a[..40], b[..40], "accepted a non-canonical block header");
                }
            }
            Err(e) => assert!(!e.to_string().is_empty()),
        }
        // Each block alone, under both kinds and at its own and a wrong address.
        for (i, block) in input.chunks(bs as usize).enumerate() {
            for kind in [MetaKind::ObjectTable, MetaKind::Checksums] {
                let addr = if rng.one_in(4) {
                    rng.next_u64()
                } else {
                    start + i as u64
                };
                if let Ok((h, payload)) = decode_meta_block(block, addr, kind, alg, salt, bs) {
                    assert!(payload.len() == h.payload_len as usize);
                    assert!(h.index < h.count);
                    assert_eq!(h.addr, addr);
                }
            }
        }
    });
    assert!(accepted >= corpus_len as u64);
}

#[test]
fn free_space_decoder_survives_hostile_bytes() {
    let mut corpus = Vec::new();
    for (total, group) in [
        (1000u64, 256u64),
        (65536, 1024),
        (17, 17),
        (1 << 20, 1 << 14),
    ] {
        let a = Allocator::new(total, group).expect("geometry");
        corpus.push(a.encode());
        let mut rng = Rng::new(total);
        for _ in 0..20 {
            let len = rng.below((total / 20).max(1)) + 1;
            let goal = rng.below(total);
            let _ = a.alloc(&AllocRequest::near(goal, 1, len));
        }
        corpus.push(a.encode());
    }
    let mut accepted = 0u64;
    fuzz("free space", 4, &corpus, 8192, |rng, input| {
        let mut input = input.to_vec();
        if rng.one_in(2) && input.len() >= 4 {
            let at = input.len() - 4;
            let crc = crc32c(&input[..at]);
            input[at..].copy_from_slice(&crc.to_le_bytes());
        }
        let (result, largest) = largest_allocation(|| Allocator::decode(&input));
        // Allocation groups are bounded (MAX_GROUPS); nothing scales with a count read.
        assert!(
            largest <= 16 << 20,
            "free-space decode of {} bytes allocated {largest}",
            input.len()
        );
        if let Ok(a) = result {
            accepted += 1;
            a.check().expect("a decoded allocator passes its own check");
            assert!(a.free_blocks() <= a.total_blocks());
        }
    });
    assert!(accepted >= corpus.len() as u64);
}

/// CRC32C through the checksum engine (seed 0 is the plain CRC of the bytes).
fn crc32c(bytes: &[u8]) -> u32 {
    stack_csum::checksum(Algorithm::Crc32c, 0, bytes) as u32
}

#[test]
fn pattern_header_and_classifiers_survive_hostile_bytes() {
    let bs = 512usize;
    let salt = 0xabcdu64;
    let mut corpus = Vec::new();
    let mut expected = Vec::new();
    for (i, seed) in [0u64, 1, u64::MAX].into_iter().enumerate() {
        let h = PatternHeader {
            phys_block: 100 + i as u64,
            object_id: i as u64,
            logical_offset: (i * bs) as u64,
            generation: 5,
            seed,
        };
        let mut block = vec![0u8; bs];
        fill_blocks(&mut block, bs, salt, h);
        corpus.push(block.clone());
        expected.push(block);
    }
    let mut parsed = 0u64;
    fuzz("pattern header", 5, &corpus, 2 * bs, |rng, input| {
        let mut block = input.to_vec();
        if rng.one_in(2) && block.len() >= PATTERN_HEADER_BYTES {
            let csum = stack_csum::checksum(Algorithm::Xxh3, 0, &block[..56]);
            block[56..64].copy_from_slice(&csum.to_le_bytes());
        }
        if let Some(h) = PatternHeader::parse(&block) {
            parsed += 1;
            let mut again = vec![0u8; bs];
            h.fill(salt, &mut again);
            assert_eq!(PatternHeader::parse(&again), Some(h));
        }
        // The classifiers see whole blocks (the pipeline reads whole blocks).
        block.resize(bs, 0);
        let alg = Algorithm::ALL[rng.index(3)];
        let want = &expected[rng.index(expected.len())];
        let addr = rng.below(1000);
        let cause = classify_pattern(&block, want, addr, alg, salt);
        assert!(!cause.name().is_empty());
        let cause = classify_file(&block, addr, alg, salt);
        assert!(!cause.name().is_empty());
    });
    assert!(parsed >= corpus.len() as u64);
}
