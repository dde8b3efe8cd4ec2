//! The on-disk format, byte by byte (see `docs/FORMAT.md`): superblocks, metadata blocks,
//! the object table. Only this crate knows it.
//!
//! Every decoder takes untrusted bytes and returns a [`FormatError`] naming the structure,
//! the field and the byte offset on the device; none panics, and every length read from
//! disk is checked against the bytes actually present before anything is allocated.

mod csums;
mod cursor;
pub mod fields;
mod meta;
mod superblock;
mod table;

pub use csums::{decode_csums, encode_csums};
pub use meta::{
    decode_block as decode_meta_block, decode_stream as decode_meta_stream,
    encode_stream as encode_meta_stream, payload_per_block, stream_blocks, MetaHeader, MetaKind,
    META_HEADER_BYTES, META_MAGIC,
};
pub use superblock::{Superblock, MAX_GENERATION, SB_BYTES, SB_MAGIC, SB_SLOT_OFFSETS};
pub use table::{
    csum_stream_blocks, name_problem, ObjectKind, ObjectRecord, ObjectTable, Run, MAX_NAME_BYTES,
    MAX_RUN_BYTES, RUN_BYTES,
};

/// The format version this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Smallest block size a volume may have.
pub const MIN_BLOCK_BYTES: u32 = 512;
/// Largest block size a volume may have (slot 1 sits at 64 KiB, so a block never spans it).
pub const MAX_BLOCK_BYTES: u32 = 64 * 1024;
/// Largest object table in bytes: bounds what opening a volume reads and holds.
pub const MAX_TABLE_BYTES: u64 = 64 << 20;
/// Largest volume in blocks (2^40: 512 TiB of 512-byte blocks, 4 PiB of 4 KiB ones).
/// `format` uses at most this many blocks of a larger device and the superblock decoder
/// refuses more, so nothing sized from a volume's geometry (the allocator's groups, byte
/// offsets `block * block_size`) is ever built from an absurd value or overflows: with
/// the largest block size a volume still ends below 2^56 bytes.
pub const MAX_TOTAL_BLOCKS: u64 = 1 << 40;
/// The sector size torn writes are judged against.
pub const SECTOR_BYTES: usize = 512;

const _: () = assert!(MIN_BLOCK_BYTES.is_power_of_two());
const _: () = assert!(MAX_BLOCK_BYTES.is_power_of_two());
const _: () = assert!(MIN_BLOCK_BYTES as usize >= SB_BYTES);
const _: () = assert!(MIN_BLOCK_BYTES as usize > META_HEADER_BYTES + 8);
const _: () = assert!(MIN_BLOCK_BYTES as usize % SECTOR_BYTES == 0);
const _: () = assert!(MAX_TOTAL_BLOCKS
    .checked_mul(MAX_BLOCK_BYTES as u64)
    .is_some());

/// A decoding failure: what structure, which field, where on the device.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// The bytes end before the field does.
    #[error(
        "{what}: field {field} at byte {offset} runs past the end ({available} bytes available)"
    )]
    Truncated {
        /// The structure being decoded.
        what: &'static str,
        /// The field.
        field: &'static str,
        /// Byte offset of the field on the device.
        offset: u64,
        /// Bytes that were left.
        available: usize,
    },
    /// The magic number is wrong.
    #[error("{what}: bad magic at byte {offset}: found {found:02x?}")]
    BadMagic {
        /// The structure being decoded.
        what: &'static str,
        /// Byte offset on the device.
        offset: u64,
        /// The bytes found.
        found: [u8; 8],
    },
    /// A field holds a value the format does not allow.
    #[error("{what}: field {field} at byte {offset} holds {value}, expected {expected}")]
    BadValue {
        /// The structure being decoded.
        what: &'static str,
        /// The field.
        field: &'static str,
        /// Byte offset of the field on the device.
        offset: u64,
        /// The value found.
        value: u64,
        /// What was allowed.
        expected: String,
    },
    /// The structure's own checksum does not hold.
    #[error(
        "{what}: checksum mismatch at byte {offset}: stored {stored:#x}, computed {computed:#x}"
    )]
    ChecksumMismatch {
        /// The structure being decoded.
        what: &'static str,
        /// Byte offset of the structure on the device.
        offset: u64,
        /// The checksum stored in it.
        stored: u64,
        /// The checksum of its bytes.
        computed: u64,
    },
}

impl FormatError {
    /// Byte offset on the device the error points at.
    pub fn offset(&self) -> u64 {
        match self {
            FormatError::Truncated { offset, .. }
            | FormatError::BadMagic { offset, .. }
            | FormatError::BadValue { offset, .. }
            | FormatError::ChecksumMismatch { offset, .. } => *offset,
        }
    }
}

/// The 64-bit salt the volume UUID gives every checksum: the two halves xor-ed.
pub fn uuid_salt(uuid: &[u8; 16]) -> u64 {
    let mut lo = [0u8; 8];
    let mut hi = [0u8; 8];
    lo.copy_from_slice(&uuid[..8]);
    hi.copy_from_slice(&uuid[8..]);
    u64::from_le_bytes(lo) ^ u64::from_le_bytes(hi)
}

/// Checks a block size: a power of two in `MIN_BLOCK_BYTES..=MAX_BLOCK_BYTES`.
pub fn block_size_ok(block_size_bytes: u64) -> bool {
    block_size_bytes.is_power_of_two()
        && block_size_bytes >= u64::from(MIN_BLOCK_BYTES)
        && block_size_bytes <= u64::from(MAX_BLOCK_BYTES)
}

/// Whole blocks needed for `bytes`.
pub fn blocks_for(bytes: u64, block_size_bytes: u32) -> u64 {
    assert!(block_size_bytes > 0);
    bytes.div_ceil(u64::from(block_size_bytes))
}
