//! The crash model of `FaultyDevice`: bytes written apart from bytes made durable.
//!
//! Writes land in a volatile cache (the log of unflushed writes) and become durable
//! only when a flush completes. The model can be *cut* at write `n`: from then on
//! nothing more becomes durable, and the post-crash image keeps the durable bytes plus,
//! depending on [`CrashMode`], some of the unflushed writes made before the cut.

use crate::{Error, MemDevice};

/// The default bound on bytes held in the log of unflushed writes.
pub const CRASH_LOG_LIMIT_BYTES: u64 = 256 << 20;

/// Which unflushed writes (made before the cut) a crash keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashMode {
    /// Everything since the last completed flush is lost.
    LoseUnflushed,
    /// Every write before the cut reached the media (the cache was written back).
    KeepUnflushed,
    /// Each unflushed write survives with probability 1/2, chosen by a seeded generator;
    /// survivors are applied in their original order.
    RandomSubset {
        /// Seed of the choice, so a failing case can be replayed.
        seed: u64,
    },
}

#[derive(Debug)]
pub(crate) struct CrashModel {
    durable: Vec<u8>,
    /// Unflushed writes before the cut, in order: (offset, bytes that landed).
    unflushed: Vec<(u64, Vec<u8>)>,
    unflushed_bytes: u64,
    limit_bytes: u64,
    /// Writes with an index at or past this are lost (the crash happened before them).
    cut_at_write: Option<u64>,
}

impl CrashModel {
    pub(crate) fn new(durable: Vec<u8>) -> Self {
        Self {
            durable,
            unflushed: Vec::new(),
            unflushed_bytes: 0,
            limit_bytes: CRASH_LOG_LIMIT_BYTES,
            cut_at_write: None,
        }
    }

    pub(crate) fn cut_at(&mut self, write_index: u64) {
        self.cut_at_write = Some(write_index);
    }

    /// Whether the crash has happened once `writes_issued` writes have been issued.
    pub(crate) fn is_cut(&self, writes_issued: u64) -> bool {
        self.cut_at_write.is_some_and(|cut| writes_issued > cut)
    }

    /// Records bytes that landed at `offset` for write number `write_index`.
    pub(crate) fn record(
        &mut self,
        device: &str,
        write_index: u64,
        offset: u64,
        bytes: &[u8],
    ) -> Result<(), Error> {
        if self.cut_at_write.is_some_and(|cut| write_index >= cut) {
            return Ok(());
        }
        if self.unflushed_bytes + bytes.len() as u64 > self.limit_bytes {
            return Err(Error::CrashLogFull {
                device: device.to_owned(),
                limit_bytes: self.limit_bytes,
            });
        }
        assert!(offset as usize + bytes.len() <= self.durable.len());
        self.unflushed_bytes += bytes.len() as u64;
        self.unflushed.push((offset, bytes.to_vec()));
        Ok(())
    }

    /// A flush completed after `writes_issued` writes had been issued.
    pub(crate) fn flushed(&mut self, writes_issued: u64) {
        if self.cut_at_write.is_some_and(|cut| writes_issued > cut) {
            return;
        }
        for (offset, bytes) in self.unflushed.drain(..) {
            let at = offset as usize;
            self.durable[at..at + bytes.len()].copy_from_slice(&bytes);
        }
        self.unflushed_bytes = 0;
    }

    pub(crate) fn unflushed_writes(&self) -> usize {
        self.unflushed.len()
    }

    pub(crate) fn image(&self, mode: CrashMode, name: &str, logical_block_size: u32) -> MemDevice {
        let mut image = self.durable.clone();
        let mut rng = SplitMix64(match mode {
            CrashMode::RandomSubset { seed } => seed,
            _ => 0,
        });
        for (offset, bytes) in &self.unflushed {
            let keep = match mode {
                CrashMode::LoseUnflushed => false,
                CrashMode::KeepUnflushed => true,
                CrashMode::RandomSubset { .. } => rng.next() & 1 == 1,
            };
            if keep {
                let at = *offset as usize;
                image[at..at + bytes.len()].copy_from_slice(bytes);
            }
        }
        MemDevice::from_bytes(image, logical_block_size).named(format!("{name} (after crash)"))
    }
}

/// A tiny seeded generator (SplitMix64), enough to pick surviving writes reproducibly.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}
