//! Fuzz target: the allocator's persisted free space (`stack_alloc::Allocator::decode`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // First byte: whether to fix the trailing CRC32C so the extent checks are reached.
    let Some((&mode, bytes)) = data.split_first() else {
        return;
    };
    let mut bytes = bytes.to_vec();
    if mode & 1 == 1 && bytes.len() >= 4 {
        let at = bytes.len() - 4;
        let crc = stack_csum::checksum(stack_csum::Algorithm::Crc32c, 0, &bytes[..at]) as u32;
        bytes[at..].copy_from_slice(&crc.to_le_bytes());
    }
    if let Ok(a) = stack_alloc::Allocator::decode(&bytes) {
        a.check().expect("a decoded allocator passes its own check");
    }
});
