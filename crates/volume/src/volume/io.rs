//! Block-sized synchronous I/O helpers on a device, with aligned buffers for `O_DIRECT`.

use stack_bio::{AlignedBuf, Device};

use crate::Error;

/// Alignment of every buffer the volume hands to a device: enough for `O_DIRECT` on
/// 512-byte and 4 KiB logical blocks.
pub(crate) const IO_ALIGN_BYTES: usize = 4096;

/// Reads `count` blocks from `start_block`.
pub(crate) fn read_blocks(
    device: &dyn Device,
    start_block: u64,
    count: u64,
    block_size_bytes: u32,
) -> Result<AlignedBuf, Error> {
    let len =
        usize::try_from(count * u64::from(block_size_bytes)).expect("read larger than memory");
    let mut buf = AlignedBuf::new(len, IO_ALIGN_BYTES);
    device.read_at(&mut buf, start_block * u64::from(block_size_bytes))?;
    Ok(buf)
}

/// Writes whole blocks at `start_block`.
pub(crate) fn write_blocks(
    device: &dyn Device,
    start_block: u64,
    bytes: &[u8],
    block_size_bytes: u32,
) -> Result<(), Error> {
    assert!(bytes.len() % block_size_bytes as usize == 0);
    assert!(!bytes.is_empty());
    let buf = AlignedBuf::from_slice(bytes, IO_ALIGN_BYTES);
    device.write_at(&buf, start_block * u64::from(block_size_bytes))?;
    Ok(())
}

/// Sixteen random bytes for a volume UUID (version 4), from the kernel's generator.
pub(crate) fn new_uuid() -> [u8; 16] {
    use std::io::Read;
    let mut uuid = [0u8; 16];
    let got = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut uuid));
    if got.is_err() {
        // No /dev/urandom: derive from time, pid and an address; unique enough to salt.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let local = 0u8;
        let seed =
            nanos ^ u64::from(std::process::id()).rotate_left(32) ^ (&local as *const u8 as u64);
        let a = stack_csum::checksum(stack_csum::Algorithm::Xxh3, seed, b"stackctl-uuid-a");
        let b = stack_csum::checksum(stack_csum::Algorithm::Xxh3, seed, b"stackctl-uuid-b");
        uuid[..8].copy_from_slice(&a.to_le_bytes());
        uuid[8..].copy_from_slice(&b.to_le_bytes());
    }
    uuid[6] = (uuid[6] & 0x0f) | 0x40;
    uuid[8] = (uuid[8] & 0x3f) | 0x80;
    uuid
}

/// Seconds since the Unix epoch.
pub(crate) fn now_unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
