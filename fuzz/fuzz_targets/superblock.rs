//! Fuzz target: the superblock decoder, with and without a recomputed checksum.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stack_csum::Algorithm;
use stackctl::format::{Superblock, SB_BYTES};

fuzz_target!(|data: &[u8]| {
    // First byte: whether to fix the CRC so the fields behind it are reached.
    let Some((&mode, bytes)) = data.split_first() else {
        return;
    };
    let mut bytes = bytes.to_vec();
    if mode & 1 == 1 && bytes.len() >= SB_BYTES {
        let crc = stack_csum::checksum(Algorithm::Crc32c, 0, &bytes[..SB_BYTES - 8]);
        bytes[SB_BYTES - 8..SB_BYTES].copy_from_slice(&crc.to_le_bytes());
    }
    let slot = (mode >> 1) & 1;
    if let Ok(sb) = Superblock::decode(&bytes, slot) {
        // Whatever decodes re-encodes to the same bytes.
        assert_eq!(&sb.encode()[..], &bytes[..SB_BYTES]);
    }
});
