//! The crash model of `FaultyDevice`: bytes written apart from bytes made durable.
//!
//! Writes land in a volatile cache (the log of unflushed writes) and become durable
//! only when a flush completes. The model can be *cut* at write `n`, or at I/O event `n`
//! counting flushes too (power can fail while the cache drains): from then on nothing
//! more becomes durable, and the post-crash image keeps the durable bytes plus,
//! depending on [`CrashMode`], some of the unflushed writes made before the cut and
//! possibly part of the write the cut interrupted.

use crate::{Error, MemDevice};

/// The default bound on bytes held in the log of unflushed writes.
pub const CRASH_LOG_LIMIT_BYTES: u64 = 256 << 20;

/// Which unflushed writes (made before the cut) a crash keeps.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashMode {
    /// Everything since the last completed flush is lost.
    LoseUnflushed,
    /// Every write before the cut reached the media (the cache was written back).
    KeepUnflushed,
    /// Every write before the cut, and the first half of the logical blocks (at least
    /// one) of the write the crash cut: the drive was in the middle of it. A write of one
    /// block is atomic and stays lost; a cut at a flush tears nothing.
    KeepUnflushedTornCut,
    /// The even-numbered unflushed writes (the 0th, 2nd, ...): a cache that wrote back
    /// out of order.
    KeepEven,
    /// The odd-numbered unflushed writes.
    KeepOdd,
    /// Only the newest unflushed write (the cache wrote it back first).
    KeepNewest,
    /// Each unflushed write survives with probability 1/2, chosen by a seeded generator;
    /// survivors are applied in their original order, and the newest, if it survives,
    /// may be torn at a logical-block boundary.
    RandomSubset {
        /// Seed of the choice, so a failing case can be replayed.
        seed: u64,
    },
}

/// Where the crash comes.
#[derive(Debug, Clone, Copy)]
enum Cut {
    /// Right before write number n (0-based); flushes do not count.
    Write(u64),
    /// Right before I/O event number n, writes and flushes counted in issue order.
    Event(u64),
}

#[derive(Debug)]
pub(crate) struct CrashModel {
    durable: Vec<u8>,
    /// Unflushed writes before the cut, in order: (offset, bytes that landed).
    unflushed: Vec<(u64, Vec<u8>)>,
    unflushed_bytes: u64,
    limit_bytes: u64,
    cut: Option<Cut>,
    writes: u64,
    events: u64,
    /// The cut write or event has been issued: nothing becomes durable any more.
    cut_happened: bool,
    /// What [`CrashMode::KeepUnflushedTornCut`] keeps of the cut write.
    torn_cut: Option<(u64, Vec<u8>)>,
}

/// What the model makes of a write being issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteFate {
    /// Before the cut: recorded as unflushed.
    Recorded,
    /// The write the crash cuts: lost, but [`CrashModel::tear`] keeps part of it.
    Cut,
    /// After the cut: lost.
    Lost,
}

impl CrashModel {
    pub(crate) fn new(durable: Vec<u8>) -> Self {
        Self {
            durable,
            unflushed: Vec::new(),
            unflushed_bytes: 0,
            limit_bytes: CRASH_LOG_LIMIT_BYTES,
            cut: None,
            writes: 0,
            events: 0,
            cut_happened: false,
            torn_cut: None,
        }
    }

    pub(crate) fn cut_at_write(&mut self, write_index: u64) {
        self.cut = Some(Cut::Write(write_index));
    }

    pub(crate) fn cut_at_event(&mut self, event_index: u64) {
        self.cut = Some(Cut::Event(event_index));
    }

    /// Whether the crash has happened.
    pub(crate) fn is_cut(&self) -> bool {
        self.cut_happened
    }

    /// Writes and flushes issued so far.
    pub(crate) fn events(&self) -> u64 {
        self.events
    }

    /// Counts a write being issued and says what becomes of it.
    pub(crate) fn begin_write(&mut self) -> WriteFate {
        let at_cut = match self.cut {
            Some(Cut::Write(n)) => self.writes == n,
            Some(Cut::Event(n)) => self.events == n,
            None => false,
        };
        self.writes += 1;
        self.events += 1;
        if self.cut_happened {
            WriteFate::Lost
        } else if at_cut {
            self.cut_happened = true;
            WriteFate::Cut
        } else {
            WriteFate::Recorded
        }
    }

    /// Counts a flush being issued; true when it comes at or after the cut (it makes
    /// nothing durable).
    pub(crate) fn begin_flush(&mut self) -> bool {
        if matches!(self.cut, Some(Cut::Event(n)) if self.events == n) {
            self.cut_happened = true;
        }
        self.events += 1;
        self.cut_happened
    }

    /// Keeps the first half of the logical blocks of the cut write's bytes `bytes`,
    /// which were to land at `offset` (its first piece, if it wrapped).
    pub(crate) fn tear(&mut self, offset: u64, bytes: &[u8], logical_block_size: u32) {
        let block = logical_block_size.max(1) as usize;
        let blocks = bytes.len() / block;
        if self.torn_cut.is_none() && blocks > 1 {
            self.torn_cut = Some((offset, bytes[..blocks / 2 * block].to_vec()));
        }
    }

    /// Records bytes that landed at `offset` for a write before the cut.
    pub(crate) fn record(&mut self, device: &str, offset: u64, bytes: &[u8]) -> Result<(), Error> {
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

    /// A flush issued before the cut completed: everything recorded is durable.
    pub(crate) fn flushed(&mut self) {
        assert!(
            !self.cut_happened,
            "a flush after the cut made writes durable"
        );
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
        let block = logical_block_size.max(1) as usize;
        let count = self.unflushed.len();
        for (i, (offset, bytes)) in self.unflushed.iter().enumerate() {
            let newest = i + 1 == count;
            let whole = |keep: bool| if keep { bytes.len() } else { 0 };
            let keep_bytes = match mode {
                CrashMode::LoseUnflushed => 0,
                CrashMode::KeepUnflushed | CrashMode::KeepUnflushedTornCut => bytes.len(),
                CrashMode::KeepEven => whole(i % 2 == 0),
                CrashMode::KeepOdd => whole(i % 2 == 1),
                CrashMode::KeepNewest => whole(newest),
                CrashMode::RandomSubset { .. } => {
                    if rng.next() & 1 == 0 {
                        0
                    } else if newest && rng.next() & 1 == 0 {
                        let blocks = (bytes.len() / block) as u64 + 1;
                        ((rng.next() % blocks) as usize * block).min(bytes.len())
                    } else {
                        bytes.len()
                    }
                }
            };
            let at = *offset as usize;
            image[at..at + keep_bytes].copy_from_slice(&bytes[..keep_bytes]);
        }
        if mode == CrashMode::KeepUnflushedTornCut {
            if let Some((offset, bytes)) = &self.torn_cut {
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
