//! The JSON documents `--json` prints: the CLI's own stable schema (docs/CLI.md), mapped
//! from the library's reports so a change inside the library does not rename a field.

use serde::Serialize;
use stack_volume::identity::{self, Identity};
use stack_volume::{
    CanaryFailure, Cause, DamagedRange, ObjectInfo, ObjectKind, Source, SuperblockState, Verdict,
    VerifyReport, VolumeInfo, WriteReport,
};

/// The device and volume a command ran on.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceDoc {
    /// Path as given.
    pub path: String,
    /// "file" or "block device".
    pub kind: String,
    /// Device size in bytes.
    pub size: u64,
    /// Logical block size of the device in bytes.
    pub logical_block_size: u32,
    /// Model, when the kernel reports one.
    pub model: Option<String>,
    /// Serial number, when the kernel or udev reports one.
    pub serial: Option<String>,
    /// The volume's UUID.
    pub volume_uuid: String,
    /// Everything sysfs and udev say about the drive (vendor, firmware, rotational,
    /// transport, a loop device's backing file); all null for a file.
    pub identity: Identity,
}

impl DeviceDoc {
    /// From a volume's info.
    pub fn new(info: &VolumeInfo) -> DeviceDoc {
        // The device's own sysfs attributes know no SATA or USB serial (udev has it)
        // and no virtio serial (it sits on the disk): the identity reader fills them.
        let identity = identity::identify(std::path::Path::new(&info.device.path));
        DeviceDoc {
            path: info.device.path.clone(),
            kind: info.device.kind.clone(),
            size: info.device.size_bytes,
            logical_block_size: info.device.logical_block_size,
            model: info.device.model.clone().or_else(|| identity.model.clone()),
            serial: info
                .device
                .serial
                .clone()
                .or_else(|| identity.serial.clone()),
            volume_uuid: info.uuid.clone(),
            identity,
        }
    }
}

/// One damaged range (adjacent blocks of one object with the same cause merged).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RangeDoc {
    /// The object.
    pub object: String,
    /// Byte offset inside the object.
    pub logical_offset: u64,
    /// Byte offset on the device.
    pub physical_offset: u64,
    /// Bytes.
    pub length: u64,
    /// Volume blocks in the range.
    pub blocks: u64,
    /// "flipped-bits", "zeroed", "torn", "stale", "misdirected", "unreadable",
    /// "checksum-mismatch".
    pub cause: &'static str,
    /// flipped-bits: bits that differ, summed over the range.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bits: Option<u64>,
    /// torn: bytes of new content at the start of the first block.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_bytes: Option<u64>,
    /// misdirected: device byte offset where the first block belongs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub belongs_at: Option<u64>,
    /// Stored checksum of the first block, hex; null when unreadable.
    pub expected: Option<String>,
    /// Checksum of the first block's content, hex; null when unreadable.
    pub found: Option<String>,
}

/// Hex of a checksum at the algorithm's stored width.
pub fn csum_hex(value: Option<u64>, width_bytes: usize) -> Option<String> {
    value.map(|v| format!("{v:0width$x}", width = width_bytes * 2))
}

/// Stored checksum width of the volume's algorithm (8 when the name is unknown).
pub fn csum_width(info: &VolumeInfo) -> usize {
    info.algorithm
        .parse::<stack_csum::Algorithm>()
        .map_or(8, |a| a.width_bytes())
}

/// Whether `next` continues `last`: same object and cause, adjacent logically and
/// physically, and for misdirected blocks, adjacent where they belong too.
fn continues(last: &RangeDoc, last_belongs_end: Option<u64>, next: &DamagedRange) -> bool {
    let adjacent = last.object == next.object
        && last.cause == next.cause.name()
        && last.logical_offset + last.length == next.logical_offset
        && last.physical_offset + last.length == next.physical_offset;
    match next.cause {
        Cause::Misdirected { belongs_at } => adjacent && last_belongs_end == Some(belongs_at),
        _ => adjacent,
    }
}

/// Merges the library's ranges (which keeps flipped-bits, torn and misdirected blocks
/// apart) into the ranges the table shows: adjacent blocks with the same cause.
pub fn merge_ranges(
    ranges: &[DamagedRange],
    block_size_bytes: u32,
    width_bytes: usize,
) -> Vec<RangeDoc> {
    let block = u64::from(block_size_bytes.max(1));
    let mut out: Vec<RangeDoc> = Vec::new();
    let mut belongs_end: Option<u64> = None;
    for range in ranges {
        if let Some(last) = out.last_mut() {
            if continues(last, belongs_end, range) {
                last.length += range.length;
                last.blocks = last.length.div_ceil(block);
                if let (Some(bits), Cause::FlippedBits { bits: more }) =
                    (last.bits.as_mut(), range.cause)
                {
                    *bits += u64::from(more);
                }
                belongs_end = belongs_end.map(|end| end + range.length);
                continue;
            }
        }
        let (bits, valid_bytes, belongs_at) = match range.cause {
            Cause::FlippedBits { bits } => (Some(u64::from(bits)), None, None),
            Cause::Torn { valid_bytes } => (None, Some(valid_bytes), None),
            Cause::Misdirected { belongs_at } => (None, None, Some(belongs_at)),
            _ => (None, None, None),
        };
        belongs_end = belongs_at.map(|at| at + range.length);
        out.push(RangeDoc {
            object: range.object.clone(),
            logical_offset: range.logical_offset,
            physical_offset: range.physical_offset,
            length: range.length,
            blocks: range.length.div_ceil(block),
            cause: range.cause.name(),
            bits,
            valid_bytes,
            belongs_at,
            expected: csum_hex(range.expected_csum, width_bytes),
            found: csum_hex(range.found_csum, width_bytes),
        });
    }
    out
}

/// One superblock slot.
#[derive(Debug, Clone, Serialize)]
pub struct SlotDoc {
    /// 0 or 1.
    pub slot: u8,
    /// "ok", "stale", "damaged" or "unchecked".
    pub state: &'static str,
    /// Generation, when the slot is valid.
    pub generation: Option<u64>,
    /// Why the slot was rejected.
    pub reason: Option<String>,
}

/// Maps a slot state.
pub fn slot_doc(slot: u8, state: Option<&SuperblockState>) -> SlotDoc {
    let (state, generation, reason) = match state {
        Some(SuperblockState::Ok { generation }) => ("ok", Some(*generation), None),
        Some(SuperblockState::Stale { generation }) => ("stale", Some(*generation), None),
        Some(SuperblockState::Damaged { reason }) => ("damaged", None, Some(reason.clone())),
        None => ("unchecked", None, None),
    };
    SlotDoc {
        slot,
        state,
        generation,
        reason,
    }
}

/// Damaged metadata.
#[derive(Debug, Clone, Serialize)]
pub struct MetaDoc {
    /// Which structure.
    pub what: String,
    /// The object whose data it covers.
    pub object: Option<String>,
    /// Byte offset on the device.
    pub physical_offset: u64,
    /// What is wrong.
    pub detail: String,
}

/// `verify` (also the `verify` part of `burn-in`).
#[derive(Debug, Clone, Serialize)]
pub struct VerifyDoc {
    /// No damage anywhere: data, metadata, both superblocks; not interrupted.
    pub clean: bool,
    /// Data bytes read and checked.
    pub bytes_verified: u64,
    /// Data blocks read and checked.
    pub blocks_verified: u64,
    /// Objects checked.
    pub objects_verified: u64,
    /// Wall time in seconds.
    pub elapsed_secs: f64,
    /// Data bytes checked per second.
    pub bytes_per_sec: u64,
    /// Every damaged range.
    pub damaged: Vec<RangeDoc>,
    /// Ranges beyond the report's bound, counted only.
    pub damaged_not_listed: u64,
    /// Whether all metadata verified.
    pub metadata_ok: bool,
    /// Damaged metadata.
    pub metadata_damage: Vec<MetaDoc>,
    /// Both superblock slots.
    pub superblocks: Vec<SlotDoc>,
    /// Objects left incomplete by an interrupted write (their committed part is checked).
    pub incomplete_objects: Vec<String>,
    /// Verify was interrupted before it checked everything.
    pub interrupted: bool,
    /// Where the blocks were read: "direct" (O_DIRECT), "evicted" (each range dropped
    /// from the page cache first, checked), "memory" (tmpfs or ramfs: no drive), or
    /// "page-cache" (`--cached`, or an eviction did not take: see `source_warning`).
    pub source: &'static str,
    /// Why the source is the page cache although the drive was asked for.
    pub source_warning: Option<String>,
    /// The device and volume.
    pub device: DeviceDoc,
    /// What the findings say about the drive: `clean`, `fake-capacity` (with the
    /// advertised and usable sizes and the evidence), `damaged` or `unreadable`; null
    /// when verify was interrupted before it found anything.
    pub verdict: Option<Verdict>,
    /// Throughput and latency per region of the device (burn-in puts its map, with the
    /// fill's writes, at the top of its document instead).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub map: Option<stack_volume::map::SurfaceMap>,
    /// What the map shows: slow regions, a write cliff, stalls. Not damage.
    pub findings: Vec<stack_volume::findings::Finding>,
}

/// Bytes per second, 0 when no time passed.
pub fn rate(bytes: u64, secs: f64) -> u64 {
    if secs > 0.0 {
        (bytes as f64 / secs) as u64
    } else {
        0
    }
}

impl VerifyDoc {
    /// From a report and the volume it was made on.
    pub fn new(report: &VerifyReport, info: &VolumeInfo, verdict: Verdict) -> VerifyDoc {
        let nothing_found = report.interrupted && report.damaged.is_empty() && report.metadata_ok;
        let elapsed_secs = report.elapsed.as_secs_f64();
        VerifyDoc {
            clean: report.clean(),
            bytes_verified: report.bytes_verified,
            blocks_verified: report.blocks_verified,
            objects_verified: report.objects_verified,
            elapsed_secs,
            bytes_per_sec: rate(report.bytes_verified, elapsed_secs),
            damaged: merge_ranges(&report.damaged, info.block_size_bytes, csum_width(info)),
            damaged_not_listed: report.damaged_not_listed,
            metadata_ok: report.metadata_ok,
            metadata_damage: report
                .metadata_damage
                .iter()
                .map(|m| MetaDoc {
                    what: m.what.clone(),
                    object: m.object.clone(),
                    physical_offset: m.physical_offset,
                    detail: m.detail.clone(),
                })
                .collect(),
            superblocks: (0u8..2)
                .map(|slot| slot_doc(slot, report.superblocks[usize::from(slot)].as_ref()))
                .collect(),
            incomplete_objects: report.incomplete_objects.clone(),
            interrupted: report.interrupted,
            source: report.source.name(),
            source_warning: report.source_warning.clone(),
            device: DeviceDoc::new(info),
            verdict: (!nothing_found).then_some(verdict),
            map: None,
            findings: Vec::new(),
        }
    }
}

/// One object written.
#[derive(Debug, Clone, Serialize)]
pub struct WrittenDoc {
    /// Object name.
    pub name: String,
    /// Bytes written by this command.
    pub bytes: u64,
    /// Object size afterwards.
    pub size_bytes: u64,
    /// Wall time in seconds.
    pub elapsed_secs: f64,
    /// Bytes per second.
    pub bytes_per_sec: u64,
    /// Commits made.
    pub commits: u64,
    /// Data extents.
    pub extents: u64,
    /// Whether the object is complete.
    pub complete: bool,
    /// "file" or "pattern".
    pub kind: &'static str,
    /// Pattern seed (null for file data).
    pub seed: Option<u64>,
    /// How the data went to the device ("direct", "memory" or "page-cache").
    pub source: &'static str,
    /// Canary blocks a fill re-read from the device (0 for other writes).
    pub canaries_read: u64,
    /// The first canary that did not read back what was written, if any.
    pub canary_failed: Option<CanaryFailure>,
    /// The fill stopped at that canary.
    pub stopped_early: bool,
    /// Seconds spent on canaries (waiting for the writes, flushing, reading).
    pub canary_secs: f64,
}

impl WrittenDoc {
    /// From a write report and the way the volume writes (`Volume::write_source`).
    pub fn new(report: &WriteReport, seed: Option<u64>, source: Source) -> WrittenDoc {
        let elapsed_secs = report.elapsed.as_secs_f64();
        WrittenDoc {
            name: report.name.clone(),
            bytes: report.bytes,
            size_bytes: report.size_bytes,
            elapsed_secs,
            bytes_per_sec: rate(report.bytes, elapsed_secs),
            commits: report.commits,
            extents: report.extents,
            complete: report.complete,
            kind: if seed.is_some() { "pattern" } else { "file" },
            seed,
            source: source.name(),
            canaries_read: report.canaries_read,
            canary_failed: report.canary_failed.clone(),
            stopped_early: report.stopped_early,
            canary_secs: report.canary_elapsed.as_secs_f64(),
        }
    }
}

/// One object as `ls` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectDoc {
    /// Name.
    pub name: String,
    /// Unique id.
    pub id: u64,
    /// Committed bytes.
    pub size_bytes: u64,
    /// Creation time, Unix seconds.
    pub created: u64,
    /// False for an interrupted write.
    pub complete: bool,
    /// Data extents.
    pub extents: u64,
    /// "file" or "pattern".
    pub kind: &'static str,
    /// Pattern seed (null for file data).
    pub seed: Option<u64>,
}

/// Kind name and seed of an object.
pub fn kind_and_seed(kind: &ObjectKind) -> (&'static str, Option<u64>) {
    match kind {
        ObjectKind::Pattern { seed } => ("pattern", Some(*seed)),
        _ => ("file", None),
    }
}

impl ObjectDoc {
    /// From the library's listing.
    pub fn new(object: &ObjectInfo) -> ObjectDoc {
        let (kind, seed) = kind_and_seed(&object.kind);
        ObjectDoc {
            name: object.name.clone(),
            id: object.id,
            size_bytes: object.size_bytes,
            created: object.created,
            complete: object.complete,
            extents: object.extents,
            kind,
            seed,
        }
    }
}

/// The volume as `info` (and `format`) show it.
#[derive(Debug, Clone, Serialize)]
pub struct VolumeDoc {
    /// UUID.
    pub uuid: String,
    /// Committed generation.
    pub generation: u64,
    /// Volume block size.
    pub block_size: u32,
    /// Checksum algorithm.
    pub csum: String,
    /// Volume size in bytes.
    pub size_bytes: u64,
    /// Bytes in use.
    pub used_bytes: u64,
    /// Bytes free for data.
    pub free_bytes: u64,
    /// Objects.
    pub objects: u64,
    /// Objects left incomplete.
    pub incomplete_objects: u64,
    /// Format time, Unix seconds.
    pub created: u64,
    /// Slot the volume was opened from.
    pub superblock_slot: u8,
    /// Set when the newest superblock was unusable.
    pub fallback_warning: Option<String>,
    /// Both slots.
    pub superblocks: Vec<SlotDoc>,
    /// The device.
    pub device: DeviceDoc,
}

impl VolumeDoc {
    /// From the library's info.
    pub fn new(info: &VolumeInfo) -> VolumeDoc {
        VolumeDoc {
            uuid: info.uuid.clone(),
            generation: info.generation,
            block_size: info.block_size_bytes,
            csum: info.algorithm.clone(),
            size_bytes: info.size_bytes,
            used_bytes: info.used_bytes,
            free_bytes: info.free_bytes,
            objects: info.objects,
            incomplete_objects: info.incomplete_objects,
            created: info.created,
            superblock_slot: info.superblock_slot,
            fallback_warning: info.fallback_warning.clone(),
            superblocks: (0u8..2)
                .map(|slot| slot_doc(slot, Some(&info.superblocks[usize::from(slot)])))
                .collect(),
            device: DeviceDoc::new(info),
        }
    }
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
            expected_csum: Some(0xab),
            found_csum: Some(0xcd),
        }
    }

    #[test]
    fn adjacent_blocks_with_one_cause_merge() {
        let ranges = [
            range(0, 65536, Cause::FlippedBits { bits: 1 }),
            range(4096, 69632, Cause::FlippedBits { bits: 2 }),
            range(8192, 73728, Cause::Zeroed),
            range(16384, 81920, Cause::Zeroed), // a gap: not merged
            range(
                20480,
                86016,
                Cause::Misdirected {
                    belongs_at: 1 << 20,
                },
            ),
            range(
                24576,
                90112,
                Cause::Misdirected {
                    belongs_at: (1 << 20) + 4096,
                },
            ),
            range(28672, 94208, Cause::Misdirected { belongs_at: 0 }), // does not continue
        ];
        let merged = merge_ranges(&ranges, 4096, 4);
        assert_eq!(merged.len(), 5, "{merged:?}");
        assert_eq!(merged[0].cause, "flipped-bits");
        assert_eq!(merged[0].length, 8192);
        assert_eq!(merged[0].blocks, 2);
        assert_eq!(merged[0].bits, Some(3));
        assert_eq!(merged[0].expected.as_deref(), Some("000000ab"));
        assert_eq!(merged[0].found.as_deref(), Some("000000cd"));
        assert_eq!(merged[1].cause, "zeroed");
        assert_eq!(merged[1].length, 4096);
        assert_eq!(merged[2].logical_offset, 16384);
        assert_eq!(merged[3].length, 8192);
        assert_eq!(merged[3].belongs_at, Some(1 << 20));
        assert_eq!(merged[4].belongs_at, Some(0));
    }

    #[test]
    fn other_objects_never_merge() {
        let mut second = range(4096, 69632, Cause::Zeroed);
        second.object = "p".into();
        let merged = merge_ranges(&[range(0, 65536, Cause::Zeroed), second], 4096, 8);
        assert_eq!(merged.len(), 2);
        assert_eq!(csum_hex(None, 8), None);
        assert_eq!(csum_hex(Some(1), 8).as_deref(), Some("0000000000000001"));
    }
}
