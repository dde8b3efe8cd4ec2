//! What verify finds: damaged ranges with their cause, superblock and metadata states.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

/// What happened to a damaged block.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "cause", rename_all = "kebab-case")]
pub enum Cause {
    /// The right block with a few bits flipped.
    FlippedBits {
        /// How many bits differ.
        bits: u32,
    },
    /// The block reads as all zeros.
    Zeroed,
    /// The new content up to a sector boundary, old content after it.
    Torn {
        /// Bytes of new content at the start of the block.
        valid_bytes: u64,
    },
    /// A valid block from an earlier write at this address (a lost write).
    Stale,
    /// A valid block that belongs at another address (a misdirected write, or a device
    /// that wraps around a fake capacity).
    Misdirected {
        /// Byte offset on the device where the block found belongs.
        belongs_at: u64,
    },
    /// The device returned an I/O error.
    Unreadable,
    /// The content does not match its checksum and cannot be explained further.
    ChecksumMismatch,
}

impl Cause {
    /// Short kebab-case name: "flipped-bits", "zeroed", "torn", "stale", "misdirected",
    /// "unreadable", "checksum-mismatch".
    pub fn name(&self) -> &'static str {
        match self {
            Cause::FlippedBits { .. } => "flipped-bits",
            Cause::Zeroed => "zeroed",
            Cause::Torn { .. } => "torn",
            Cause::Stale => "stale",
            Cause::Misdirected { .. } => "misdirected",
            Cause::Unreadable => "unreadable",
            Cause::ChecksumMismatch => "checksum-mismatch",
        }
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A range of an object found damaged (consecutive blocks with the same cause merge).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DamagedRange {
    /// The object.
    pub object: String,
    /// Byte offset inside the object.
    pub logical_offset: u64,
    /// Byte offset on the device.
    pub physical_offset: u64,
    /// Length in bytes (whole blocks).
    pub length: u64,
    /// What happened.
    pub cause: Cause,
    /// The stored checksum of the first block (none when unreadable).
    pub expected_csum: Option<u64>,
    /// The checksum of the first block's content (none when unreadable).
    pub found_csum: Option<u64>,
}

impl DamagedRange {
    /// Whether `next` continues this range (same object and cause, adjacent both logically
    /// and physically); flipped bits are never merged, each block has its own count.
    pub(crate) fn try_merge(&mut self, next: &DamagedRange) -> bool {
        let mergeable = self.object == next.object
            && self.cause == next.cause
            && !matches!(
                self.cause,
                Cause::FlippedBits { .. } | Cause::Misdirected { .. } | Cause::Torn { .. }
            )
            && self.logical_offset + self.length == next.logical_offset
            && self.physical_offset + self.length == next.physical_offset;
        if mergeable {
            self.length += next.length;
        }
        mergeable
    }
}

/// The state of one superblock slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum SuperblockState {
    /// Valid and its metadata verifies.
    Ok {
        /// Its generation.
        generation: u64,
    },
    /// Valid, but it is not one of the two latest commits (cannot happen after a normal
    /// commit; kept for completeness).
    Stale {
        /// Its generation.
        generation: u64,
    },
    /// Unreadable, failing its checksum, or pointing to metadata that does not verify.
    Damaged {
        /// Why it was rejected.
        reason: String,
    },
}

impl SuperblockState {
    /// Whether the slot is usable.
    pub fn is_ok(&self) -> bool {
        matches!(self, SuperblockState::Ok { .. })
    }
}

/// Damaged metadata found by verify (object table or checksum blocks).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MetadataDamage {
    /// What structure ("checksum block", "object table block", ...).
    pub what: String,
    /// The object whose data it covers, if any.
    pub object: Option<String>,
    /// Byte offset on the device.
    pub physical_offset: u64,
    /// What is wrong.
    pub detail: String,
}

/// Where a command met the data on the device: what its verdict is about.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// `O_DIRECT`: read from (or written to) the drive, past the page cache.
    Direct,
    /// Each range was dropped from the page cache before it was read, and the drop was
    /// checked: read from the drive.
    Evicted,
    /// The device is memory (a file on tmpfs or ramfs): there is no drive behind it.
    Memory,
    /// Through the page cache: asked for (`--cached`), or an eviction did not take.
    #[default]
    PageCache,
}

impl Source {
    /// `"direct"`, `"evicted"`, `"memory"` or `"page-cache"`.
    pub fn name(self) -> &'static str {
        match self {
            Source::Direct => "direct",
            Source::Evicted => "evicted",
            Source::Memory => "memory",
            Source::PageCache => "page-cache",
        }
    }
}

/// The result of a verify pass.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    /// Data bytes read and checked.
    pub bytes_verified: u64,
    /// Data blocks read and checked.
    pub blocks_verified: u64,
    /// Objects checked.
    pub objects_verified: u64,
    /// Wall time.
    #[serde(serialize_with = "as_secs_f64")]
    pub elapsed: Duration,
    /// Damaged data ranges, in object then offset order.
    pub damaged: Vec<DamagedRange>,
    /// Damaged ranges not kept in `damaged` because the report reached its bound.
    pub damaged_not_listed: u64,
    /// Whether every metadata block verified.
    pub metadata_ok: bool,
    /// Damaged metadata.
    pub metadata_damage: Vec<MetadataDamage>,
    /// Both superblock slots.
    pub superblocks: [Option<SuperblockState>; 2],
    /// Verify was cancelled before it checked everything.
    pub interrupted: bool,
    /// Objects listed as incomplete (an interrupted write); their committed part is checked.
    pub incomplete_objects: Vec<String>,
    /// Where the blocks were read: the drive (`Direct`, `Evicted`), memory, or the page
    /// cache.
    pub source: Source,
    /// Why the source is the page cache although the drive was asked for.
    pub source_warning: Option<String>,
}

/// Most damaged ranges a report lists; the rest are counted.
pub const MAX_LISTED_RANGES: usize = 100_000;

impl VerifyReport {
    /// No damage anywhere: data, metadata and both superblocks.
    pub fn clean(&self) -> bool {
        self.damaged.is_empty()
            && !self.interrupted
            && self.damaged_not_listed == 0
            && self.metadata_ok
            && self
                .superblocks
                .iter()
                .all(|s| s.as_ref().is_some_and(SuperblockState::is_ok))
    }

    /// Records a damaged range, merging it into the previous one where it continues it.
    pub(crate) fn push_damage(&mut self, range: DamagedRange) {
        if let Some(last) = self.damaged.last_mut() {
            if last.try_merge(&range) {
                return;
            }
        }
        if self.damaged.len() < MAX_LISTED_RANGES {
            self.damaged.push(range);
        } else {
            self.damaged_not_listed += 1;
        }
    }
}

pub(crate) fn as_secs_f64<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(logical: u64, physical: u64, cause: Cause) -> DamagedRange {
        DamagedRange {
            object: "o".into(),
            logical_offset: logical,
            physical_offset: physical,
            length: 4096,
            cause,
            expected_csum: Some(1),
            found_csum: Some(2),
        }
    }

    #[test]
    fn adjacent_ranges_of_one_cause_merge() {
        let mut r = VerifyReport {
            metadata_ok: true,
            ..Default::default()
        };
        r.push_damage(range(0, 8192, Cause::Zeroed));
        r.push_damage(range(4096, 12288, Cause::Zeroed));
        r.push_damage(range(8192, 16384, Cause::Stale));
        r.push_damage(range(12288, 20480, Cause::FlippedBits { bits: 1 }));
        r.push_damage(range(16384, 24576, Cause::FlippedBits { bits: 1 }));
        r.push_damage(range(40960, 90000, Cause::Stale));
        assert_eq!(r.damaged.len(), 5);
        assert_eq!(r.damaged[0].length, 8192);
        assert!(!r.clean());
    }

    #[test]
    fn cause_names() {
        assert_eq!(Cause::Torn { valid_bytes: 512 }.to_string(), "torn");
        assert_eq!(Cause::Misdirected { belongs_at: 0 }.name(), "misdirected");
    }
}
