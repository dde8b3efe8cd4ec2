//! Fuzz target: metadata blocks and streams (header, checksum, index/count/length checks),
//! on raw bytes and with header fields of a valid stream set to boundary or raw values.
#![no_main]

#[path = "fields.rs"]
mod fields;

use libfuzzer_sys::fuzz_target;
use stack_csum::Algorithm;
use stack_volume::format::fields::{reseal_meta_block, META_HEADER_FIELDS};
use stack_volume::format::{decode_meta_block, decode_meta_stream, encode_meta_stream, MetaKind};

const BS: usize = 512;
const START: u64 = 40;
const SALT: u64 = 0xfeed;

fuzz_target!(|data: &[u8]| {
    // Header: mode byte, then the stream length the superblock would claim.
    if data.len() < 9 {
        return;
    }
    let mode = data[0];
    let mut len = [0u8; 8];
    len.copy_from_slice(&data[1..9]);
    let len_bytes = u64::from_le_bytes(len);
    let algorithm = Algorithm::ALL[usize::from(mode % 3)];
    let mut bytes = data[9..].to_vec();
    if mode & 0x40 != 0 {
        // Structure-aware: a valid 3-block stream, then header fields of its blocks set
        // to boundary or raw values, each block resealed.
        let payload: Vec<u8> = (0..(2 * (BS - 48) + 7)).map(|i| i as u8).collect();
        let choices = std::mem::take(&mut bytes);
        bytes = encode_meta_stream(MetaKind::ObjectTable, 9, START, &payload, BS as u32, algorithm, SALT);
        for choice in choices.chunks(11) {
            let Some((&which, choice)) = choice.split_first() else {
                break;
            };
            let index = usize::from(which) % 3;
            let block = &mut bytes[index * BS..(index + 1) * BS];
            if !fields::mutate_field(block, &META_HEADER_FIELDS, choice) {
                break;
            }
            reseal_meta_block(block, START + index as u64, algorithm, SALT);
        }
    } else if mode & 0x80 != 0 {
        // Recompute each block's checksum so the header checks are reached.
        for (i, block) in bytes.chunks_mut(BS).enumerate() {
            if block.len() >= 48 {
                let seed = SALT ^ (START + i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                let head = stack_csum::checksum(algorithm, seed, &block[..40]);
                let csum = stack_csum::checksum(algorithm, head, &block[48..]);
                block[40..48].copy_from_slice(&csum.to_le_bytes());
            }
        }
    }
    let mut out = Vec::new();
    if decode_meta_stream(
        &bytes,
        START,
        MetaKind::ObjectTable,
        9,
        len_bytes,
        algorithm,
        SALT,
        BS as u32,
        &mut out,
    )
    .is_ok()
    {
        assert_eq!(out.len() as u64, len_bytes);
    }
    for (i, block) in bytes.chunks(BS).enumerate() {
        let _ = decode_meta_block(
            block,
            START + i as u64,
            MetaKind::Checksums,
            algorithm,
            SALT,
            BS as u32,
        );
    }
});
