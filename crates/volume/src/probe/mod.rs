//! A quick screen for fake capacity, in the spirit of f3probe: write a bounded number of
//! self-describing blocks at spread positions, defeat the drive's cache, read them back,
//! and say whether data reappears at a fixed distance (a wrapping fake) or stops sticking
//! past some offset, with the usable size refined by extra probes.
//!
//! Each probe block is a [`crate::pattern`] block whose header names its own physical
//! block and a per-run nonce, so a block read at P that names Q (written in this run) proves
//! P and Q share storage: the wrap distance divides |P − Q|. A probe that reads back as
//! zeros, other data or an earlier run's block did not stick.
//!
//! Plan (`engine.rs`): a dense run of L ≈ √n blocks at the start, then single blocks
//! every s ≤ L blocks up to the end, written from the top down. For any wrap R the first
//! probe at or above R lands within the dense run and is the last write there, so a read of
//! the dense run names it at distance exactly R. The distance is then confirmed: for each
//! prime f of it, a block written at distance R/f from an anchor must not alias. A boundary
//! past which writes do not stick is bracketed by the spread and narrowed by rounds of
//! probes placed evenly inside the bracket, to the block when the budget allows.
//!
//! A probe samples; it does not fill. A fake that remaps (keeps a table of the blocks
//! written and recycles the oldest) can pass it; `burn-in` is the proof.

mod engine;
#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use serde::Serialize;
use stack_bio::Device;

use crate::error::bytes_and_human;
use crate::Error;

/// Bytes of one probe block by default (or the device's logical block size, if larger):
/// the precision of the usable size. Fakes' real sizes are whole MiB in practice, and a
/// larger block means fewer probes for the same guarantee (see `engine.rs`).
pub const PROBE_BLOCK_BYTES: u64 = 4096;
/// The most a probe writes, whatever the device's size.
pub const MAX_PROBE_BUDGET_BYTES: u64 = 256 << 20;
/// The smallest write budget a probe can work with, in blocks.
pub const MIN_PROBE_BUDGET_BLOCKS: u64 = 64;
/// Bytes read from elsewhere between writing probes and reading them back, so a drive
/// cache (RAM or SLC) cannot serve them.
pub const DEFAULT_CACHE_DEFEAT_BYTES: u64 = 64 << 20;
/// Evidence items kept per kind in a report.
pub const MAX_EVIDENCE: usize = 8;

/// What a probe may do.
#[derive(Debug, Clone)]
pub struct ProbeOptions {
    /// Bytes of one probe block: a power of two, at least 512 and the device's logical
    /// block size. `None`: [`PROBE_BLOCK_BYTES`] or the logical block size if larger.
    pub block_bytes: Option<u64>,
    /// Most bytes the probe writes. `None`: 1% of the device or
    /// [`MAX_PROBE_BUDGET_BYTES`], whichever is smaller. Never more than that default.
    pub budget_bytes: Option<u64>,
    /// Bytes read from the drive between writing the probes of a round and reading them
    /// back (capped at the device size), beside a flush.
    pub cache_defeat_bytes: u64,
    /// The run's nonce: blocks of another run (another nonce) read as not stored.
    pub nonce: u64,
    /// Set to stop between steps with [`Error::Interrupted`].
    pub cancel: Option<Arc<AtomicBool>>,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        ProbeOptions {
            block_bytes: None,
            budget_bytes: None,
            cache_defeat_bytes: DEFAULT_CACHE_DEFEAT_BYTES,
            nonce: 0x5EED,
            cancel: None,
        }
    }
}

/// The default write budget for a device of `size_bytes`: 1% of it or 256 MiB, whichever
/// is smaller.
pub fn default_budget_bytes(size_bytes: u64) -> u64 {
    (size_bytes / 100).min(MAX_PROBE_BUDGET_BYTES)
}

/// The probe's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProbeVerdictKind {
    /// Data reappears at a fixed distance, or writes past an offset do not stick.
    FakeCapacity,
    /// Probe blocks were lost, but not past one boundary: the drive loses data (bad
    /// blocks, a remapping fake); the probe cannot say how much is usable.
    Damaged,
    /// Every probe read back right. Not a proof: see the module docs.
    NoFakeFound,
}

impl ProbeVerdictKind {
    /// `"fake-capacity"`, `"damaged"`, `"no-fake-found"`.
    pub fn name(self) -> &'static str {
        match self {
            ProbeVerdictKind::FakeCapacity => "fake-capacity",
            ProbeVerdictKind::Damaged => "damaged",
            ProbeVerdictKind::NoFakeFound => "no-fake-found",
        }
    }
}

/// What a probe block read back as, when it was not itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Found {
    /// All zeros.
    Zeros,
    /// A probe block of an earlier run at this address (the write did not stick).
    Stale,
    /// Anything else: not a probe block of this run, or a damaged one.
    OtherData,
    /// The read failed.
    Unreadable,
    /// The write failed.
    WriteFailed,
}

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Found::Zeros => "zeros",
            Found::Stale => "an earlier probe's block",
            Found::OtherData => "other data",
            Found::Unreadable => "a read error",
            Found::WriteFailed => "a write error",
        })
    }
}

/// One fact behind a verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Evidence {
    /// The block read at `read_at_bytes` is the one written for `names_bytes`.
    Reappears {
        /// Where it was read.
        read_at_bytes: u64,
        /// Where it was written.
        names_bytes: u64,
        /// The distance between them (a multiple of the real capacity).
        distance_bytes: u64,
    },
    /// A block written at `anchor_bytes + distance_bytes` did not reappear at
    /// `anchor_bytes`: the wrap is not `distance_bytes`.
    NoWrapAt {
        /// The distance tested.
        distance_bytes: u64,
    },
    /// The probe written at `at_bytes` did not read back.
    Lost {
        /// Where.
        at_bytes: u64,
        /// What came back instead.
        found: Found,
    },
    /// The boundary: the block at `last_good_bytes` reads back, the one at
    /// `first_bad_bytes` does not, and no probe between them was tried.
    Boundary {
        /// Start of the highest block below the boundary that read back right.
        last_good_bytes: Option<u64>,
        /// Start of the lowest block that did not.
        first_bad_bytes: u64,
    },
    /// Probes that read back right above a lost one: not one boundary.
    GoodAbove {
        /// A block above the lowest lost one that read back right.
        at_bytes: u64,
    },
    /// Every probe read back right.
    AllRead {
        /// Probe blocks read back.
        blocks: u64,
        /// The largest gap between two probes.
        spacing_bytes: u64,
        /// The spacing is at most the dense run at the start: a wrap at any size would
        /// have shown (false: the budget was too small for that guarantee).
        catches_every_wrap: bool,
    },
}

impl fmt::Display for Evidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Evidence::Reappears {
                read_at_bytes,
                names_bytes,
                distance_bytes,
            } => write!(
                f,
                "the block read at byte {read_at_bytes} is the one written at byte {names_bytes} \
                 ({} apart)",
                bytes_and_human(*distance_bytes)
            ),
            Evidence::NoWrapAt { distance_bytes } => write!(
                f,
                "blocks {} apart do not share storage",
                bytes_and_human(*distance_bytes)
            ),
            Evidence::Lost { at_bytes, found } => {
                write!(f, "the block written at byte {at_bytes} read back as {found}")
            }
            Evidence::Boundary {
                last_good_bytes,
                first_bad_bytes,
            } => match last_good_bytes {
                Some(good) => write!(
                    f,
                    "the block at byte {good} reads back, the one at byte {first_bad_bytes} does not"
                ),
                None => write!(
                    f,
                    "no block below byte {first_bad_bytes} was found to read back"
                ),
            },
            Evidence::GoodAbove { at_bytes } => write!(
                f,
                "the block at byte {at_bytes}, above a lost one, reads back right"
            ),
            Evidence::AllRead {
                blocks,
                spacing_bytes,
                catches_every_wrap,
            } => write!(
                f,
                "all {blocks} probe blocks read back right (at most {} apart): {}",
                bytes_and_human(*spacing_bytes),
                if *catches_every_wrap {
                    "data reappearing at any distance would have shown"
                } else {
                    "the budget was too small to catch every wrap distance"
                }
            ),
        }
    }
}

/// The probe's verdict and what it rests on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProbeVerdict {
    /// Fake capacity, damaged, or no fake found.
    pub kind: ProbeVerdictKind,
    /// Fake capacity: the bytes that really store, from the start of the device (a
    /// lower bound when `precision_bytes` is larger than one block). `None` otherwise.
    pub usable_bytes: Option<u64>,
    /// Fake capacity: the real capacity is at least `usable_bytes` and less than
    /// `usable_bytes + precision_bytes` (one probe block: exact to the block).
    pub precision_bytes: Option<u64>,
    /// The facts behind the verdict (at most [`MAX_EVIDENCE`] of each kind).
    pub evidence: Vec<Evidence>,
}

/// What a probe found, and what it cost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProbeReport {
    /// The size the device reports.
    pub advertised_bytes: u64,
    /// Bytes of one probe block.
    pub block_bytes: u64,
    /// The verdict.
    pub verdict: ProbeVerdict,
    /// Probe blocks written.
    pub blocks_written: u64,
    /// Bytes written (never more than `budget_bytes`).
    pub bytes_written: u64,
    /// The write budget.
    pub budget_bytes: u64,
    /// Bytes read (probes read back, and reads that defeat the drive's cache).
    pub bytes_read: u64,
    /// Rounds of write, cache defeat, read.
    pub rounds: u32,
}

/// Whether `block` (at least its first 64 bytes) starts with a probe block's header, of
/// any run: a target whose first block is one holds an earlier probe's result.
pub fn is_probe_block(block: &[u8]) -> bool {
    engine::is_probe_header(block)
}

/// Probes `device` for fake capacity (see the module docs). It overwrites the probe
/// positions: the caller has checked that the target may be overwritten.
pub fn probe(device: &dyn Device, opts: &ProbeOptions) -> Result<ProbeReport, Error> {
    engine::Prober::new(device, opts)?.run()
}
