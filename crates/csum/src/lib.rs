//! Per-block checksums bound to the block's address and the volume.
//!
//! Filled by the checksum-engine issue.
