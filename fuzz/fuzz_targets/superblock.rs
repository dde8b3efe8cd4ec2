//! Fuzz target: the superblock decoder, with and without a recomputed checksum, and one
//! field of a valid superblock set to a boundary or raw value behind a resealed checksum.
#![no_main]

#[path = "fields.rs"]
mod fields;

use libfuzzer_sys::fuzz_target;
use stack_csum::Algorithm;
use stack_volume::format::fields::{reseal_superblock, SUPERBLOCK_FIELDS};
use stack_volume::format::{Superblock, SB_BYTES};

fn check(bytes: &[u8], slot: u8) {
    if let Ok(sb) = Superblock::decode(bytes, slot) {
        // Whatever decodes re-encodes to the same bytes.
        assert_eq!(&sb.encode()[..], &bytes[..SB_BYTES]);
    }
}

fuzz_target!(|data: &[u8]| {
    // First byte: whether to fix the CRC so the fields behind it are reached, the slot,
    // and whether to mutate fields of a valid superblock instead.
    let Some((&mode, bytes)) = data.split_first() else {
        return;
    };
    let slot = (mode >> 1) & 1;
    if mode & 4 != 0 {
        let sb = Superblock {
            uuid: [5; 16],
            block_size_bytes: 512,
            algorithm: Algorithm::Xxh3,
            slot,
            generation: 9,
            total_blocks: 4096,
            meta_start_block: 200,
            meta_blocks: 2,
            meta_len_bytes: 600,
            created_unix_secs: 1,
        };
        let mut block = vec![0u8; 512];
        block[..SB_BYTES].copy_from_slice(&sb.encode());
        for choice in bytes.chunks(10) {
            if !fields::mutate_field(&mut block, &SUPERBLOCK_FIELDS, choice) {
                break;
            }
        }
        reseal_superblock(&mut block);
        check(&block, slot);
        return;
    }
    let mut bytes = bytes.to_vec();
    if mode & 1 == 1 && bytes.len() >= SB_BYTES {
        reseal_superblock(&mut bytes);
    }
    check(&bytes, slot);
});
