//! The crate's error type.

#![forbid(unsafe_code)]

use crate::Algorithm;

/// Everything that can go wrong in `stack-csum`.
///
/// Each variant carries what a caller needs to report or act on it; none carries a
/// free-form string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A name that is not one of [`Algorithm::ALL`].
    #[error("unknown checksum algorithm `{name}` (known: {known})")]
    UnknownAlgorithm {
        /// The name as given.
        name: String,
        /// The known names, comma-separated.
        known: &'static str,
    },
    /// An on-disk algorithm id that is not one of [`Algorithm::ALL`].
    #[error("unknown checksum algorithm id {id} (known: {known})")]
    UnknownAlgorithmId {
        /// The id as read.
        id: u8,
        /// The known ids and names.
        known: &'static str,
    },
    /// A block size of zero or above [`crate::MAX_BLOCK_SIZE_BYTES`].
    #[error("block size of {block_size_bytes} bytes is outside 1..={max_bytes}")]
    InvalidBlockSize {
        /// The block size asked for.
        block_size_bytes: usize,
        /// The largest block size accepted.
        max_bytes: usize,
    },
    /// A buffer whose length is not a whole number of blocks.
    #[error("buffer of {len_bytes} bytes is not a whole number of {block_size_bytes}-byte blocks")]
    PartialBlock {
        /// The buffer's length.
        len_bytes: usize,
        /// The block size.
        block_size_bytes: usize,
    },
    /// A checksum slice whose length differs from the number of blocks in the buffer.
    #[error("buffer holds {blocks} blocks but {checksums} checksums were given")]
    CountMismatch {
        /// Blocks in the buffer.
        blocks: usize,
        /// Length of the checksum slice.
        checksums: usize,
    },
    /// `first_addr + blocks - 1` does not fit in a `u64`.
    #[error("block addresses overflow: {blocks} blocks from address {first_addr}")]
    AddressOverflow {
        /// Address of the first block.
        first_addr: u64,
        /// Number of blocks.
        blocks: usize,
    },
    /// A stored checksum field of the wrong length for the algorithm.
    #[error("{algorithm} stores {width_bytes}-byte checksums, got {len_bytes} bytes")]
    WidthMismatch {
        /// The algorithm whose width applies.
        algorithm: Algorithm,
        /// Length of the field given.
        len_bytes: usize,
        /// The algorithm's stored width.
        width_bytes: usize,
    },
    /// A checksum value with bits set above the algorithm's stored width.
    #[error("checksum {value:#x} does not fit the {width_bytes}-byte width of {algorithm}")]
    ValueTooWide {
        /// The algorithm whose width applies.
        algorithm: Algorithm,
        /// The value that does not fit.
        value: u64,
        /// The algorithm's stored width.
        width_bytes: usize,
    },
    /// One block's checksum did not match (from [`crate::BlockCsum::check`]).
    #[error("checksum mismatch at block {addr}: expected {expected:#x}, found {found:#x}")]
    Mismatch {
        /// Physical block number.
        addr: u64,
        /// The stored checksum.
        expected: u64,
        /// The checksum of the bytes as read.
        found: u64,
    },
    /// A checksum table (or the buffer for one) whose length does not match its
    /// number of entries.
    #[error("a {algorithm} checksum table of {entries} entries takes {} bytes, got {len_bytes}", match expected_bytes { Some(n) => n.to_string(), None => "more than usize::MAX".to_owned() })]
    TableSize {
        /// The algorithm whose width applies.
        algorithm: Algorithm,
        /// Entries wanted (values to encode, or slots to decode into).
        entries: usize,
        /// Length of the table given.
        len_bytes: usize,
        /// The length it should have (`None` if that overflows a `usize`).
        expected_bytes: Option<usize>,
    },
    /// A checksum table that is not a whole number of entries.
    #[error("a {algorithm} checksum table of {len_bytes} bytes ends in a partial {width_bytes}-byte entry at byte offset {offset_bytes}")]
    TablePartialEntry {
        /// The algorithm whose width applies.
        algorithm: Algorithm,
        /// Byte offset in the table where the cut-off entry starts.
        offset_bytes: usize,
        /// Length of the table given.
        len_bytes: usize,
        /// The algorithm's stored width.
        width_bytes: usize,
    },
    /// A value to put in a checksum table with bits set above the algorithm's width.
    #[error("checksum {value:#x} at table entry {index} (byte offset {offset_bytes}) does not fit the {width_bytes}-byte width of {algorithm}")]
    TableValueTooWide {
        /// The algorithm whose width applies.
        algorithm: Algorithm,
        /// Index of the value.
        index: usize,
        /// Byte offset of its entry in the table.
        offset_bytes: usize,
        /// The value that does not fit.
        value: u64,
        /// The algorithm's stored width.
        width_bytes: usize,
    },
}
