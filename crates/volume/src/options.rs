//! Options and results of the volume's operations.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use stack_csum::Algorithm;

use crate::format::ObjectKind;
use crate::report::{as_secs_f64, DamagedRange};

/// How to format a volume.
#[derive(Debug, Clone)]
pub struct FormatOptions {
    /// Block size: a power of two from 512 to 65536, at least the device's logical block
    /// size. Default 4096.
    pub block_size_bytes: u32,
    /// Checksum algorithm of data and metadata blocks. Default CRC32C.
    pub algorithm: Algorithm,
    /// Regular files: create the file at this size if it is missing (or shorter).
    pub create_size_bytes: Option<u64>,
    /// Insist on `O_DIRECT` ([`crate::Error::DirectImpossible`] where it cannot serve).
    /// Without it or `cached`, `O_DIRECT` is used where it can serve (see [`OpenOptions`]).
    pub direct: bool,
    /// Whether to wait while another process uses the target (see [`LockWait`]).
    pub wait: LockWait,
    /// Go through the page cache.
    pub cached: bool,
}

impl Default for FormatOptions {
    fn default() -> Self {
        FormatOptions {
            block_size_bytes: 4096,
            algorithm: Algorithm::Crc32c,
            create_size_bytes: None,
            direct: false,
            wait: LockWait::NoWait,
            cached: false,
        }
    }
}

/// What opening a volume another process uses does: [`Volume::open`](crate::Volume::open)
/// takes a shared lock for a read-only volume and an exclusive one otherwise.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LockWait {
    /// Refuse at once with [`crate::Error::Locked`].
    #[default]
    NoWait,
    /// Wait at most this long, then refuse.
    For(Duration),
    /// Wait until the volume is free.
    Forever,
}

/// How to open a volume.
///
/// By default (neither `direct` nor `cached`) reads and writes meet the drive: `O_DIRECT`
/// on a block device or a file whose filesystem takes it, when the volume's blocks fit
/// its alignment; elsewhere buffered, each read evicting its range from the page cache
/// first and checking that it took ([`stack_bio::OpenOptions::evict_reads`]). A file on
/// tmpfs or ramfs is memory and is read buffered. [`crate::Volume::read_source`] says
/// which it was.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// Insist on `O_DIRECT`: [`crate::Error::DirectImpossible`] where it cannot serve.
    pub direct: bool,
    /// Go through the page cache (no `O_DIRECT`, no eviction).
    pub cached: bool,
    /// Refuse every change (verify, read, ls, info); the volume is then locked shared,
    /// otherwise exclusive.
    pub read_only: bool,
    /// Whether to wait while another process uses the volume.
    pub wait: LockWait,
}

/// Progress of a long operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Progress {
    /// Bytes done so far.
    pub done_bytes: u64,
    /// Bytes in all, when known.
    pub total_bytes: Option<u64>,
}

/// A progress callback (called from the caller's thread, in order).
pub type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;

/// Default byte interval between the commits of a long write.
///
/// Large, so that on a fast device commits (each drains the pipeline and flushes the
/// device twice) cost little; [`DEFAULT_COMMIT_INTERVAL`] bounds the time between them
/// on a slow one. On this project's VM disk a 512 MiB `--direct` write took a median
/// 1566 ms with 1 GiB commits against 1800 ms with the former 64 MiB (4 alternated runs).
pub const DEFAULT_COMMIT_EVERY_BYTES: u64 = 1 << 30;

/// Default time between the commits of a long write, whatever its byte interval: what a
/// crash may lose on a slow device (ext4 commits its journal every 5 s by default too).
pub const DEFAULT_COMMIT_INTERVAL: Duration = Duration::from_secs(5);

/// How to write an object.
#[derive(Clone)]
pub struct WriteOptions {
    /// Replace an existing object of the same name (removed in the commit that completes
    /// the new one; until then there is no intermediate commit, and an interrupted or
    /// failed replacement leaves the old object as it was).
    pub replace: bool,
    /// Commit at least every this many bytes, so a crash loses at most this much
    /// (rounded up to the pipeline's extent size). Default [`DEFAULT_COMMIT_EVERY_BYTES`].
    pub commit_every_bytes: u64,
    /// Commit at least this often too (checked between runs of at most 8 MiB). Default
    /// [`DEFAULT_COMMIT_INTERVAL`]; zero commits after every run.
    pub commit_interval: Duration,
    /// Progress callback.
    pub progress: Option<ProgressFn>,
    /// Set to stop: what was written is committed as an incomplete object and the
    /// write returns [`crate::Error::Interrupted`].
    pub cancel: Option<Arc<AtomicBool>>,
    /// When the volume runs out of space during the write, commit what was stored as an
    /// incomplete object instead of removing it (the default gives the space back; see
    /// [`crate::NoSpaceOutcome`]). A fill is not affected: running out is its end.
    pub keep_partial: bool,
    /// Called after each durable commit of the write (its superblock's flush returned)
    /// with the committed table: the acknowledgement `stackctl write --ack-log` logs.
    pub on_commit: Option<crate::ack::CommitFn>,
    /// A fill re-reads canaries from the device as it goes: sampled blocks of what it
    /// already wrote, at least every max(64 MiB, 1% of the free space). Default on.
    pub canaries: bool,
    /// A fill stops at the first canary that does not read back what was written (a
    /// fake capacity wrapping or losing writes); off keeps filling. Default on.
    pub stop_at_canary: bool,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            replace: false,
            commit_every_bytes: DEFAULT_COMMIT_EVERY_BYTES,
            commit_interval: DEFAULT_COMMIT_INTERVAL,
            progress: None,
            cancel: None,
            keep_partial: false,
            on_commit: None,
            canaries: true,
            stop_at_canary: true,
        }
    }
}

impl fmt::Debug for WriteOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteOptions")
            .field("replace", &self.replace)
            .field("commit_every_bytes", &self.commit_every_bytes)
            .field("commit_interval", &self.commit_interval)
            .field("progress", &self.progress.is_some())
            .field("cancel", &self.cancel)
            .field("keep_partial", &self.keep_partial)
            .field("on_commit", &self.on_commit.is_some())
            .field("canaries", &self.canaries)
            .field("stop_at_canary", &self.stop_at_canary)
            .finish()
    }
}

/// A callback for each damaged range verify finds.
pub type DamageFn = Arc<dyn Fn(&DamagedRange) + Send + Sync>;

/// How to verify.
#[derive(Clone, Default)]
pub struct VerifyOptions {
    /// Only this object (the superblocks and the object table are always checked).
    pub object: Option<String>,
    /// Progress callback.
    pub progress: Option<ProgressFn>,
    /// Set to stop early; the report covers what was checked.
    pub cancel: Option<Arc<AtomicBool>>,
    /// Called for each damaged range as it is found, in order (before merging).
    pub on_damage: Option<DamageFn>,
}

impl fmt::Debug for VerifyOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyOptions")
            .field("object", &self.object)
            .field("progress", &self.progress.is_some())
            .field("cancel", &self.cancel)
            .field("on_damage", &self.on_damage.is_some())
            .finish()
    }
}

pub(crate) fn cancelled(cancel: &Option<Arc<AtomicBool>>) -> bool {
    cancel.as_ref().is_some_and(|c| c.load(Ordering::Relaxed))
}

/// What a write did.
#[derive(Debug, Clone, Serialize)]
pub struct WriteReport {
    /// The object.
    pub name: String,
    /// Bytes written by this call.
    pub bytes: u64,
    /// Size of the object afterwards.
    pub size_bytes: u64,
    /// Wall time.
    #[serde(serialize_with = "as_secs_f64")]
    pub elapsed: Duration,
    /// Commits made (periodic and final).
    pub commits: u64,
    /// Data extents the object has.
    pub extents: u64,
    /// Whether the object is complete (false after an interruption).
    pub complete: bool,
    /// Canary blocks a fill re-read from the device.
    pub canaries_read: u64,
    /// The first canary that did not read back what was written, if any.
    pub canary_failed: Option<CanaryFailure>,
    /// The fill stopped at that canary (without `stop_at_canary` it went on).
    pub stopped_early: bool,
    /// Wall time spent on canaries (waiting for the writes, flushing, reading).
    #[serde(serialize_with = "as_secs_f64")]
    pub canary_elapsed: Duration,
}

/// A canary block that did not read back what the fill wrote there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CanaryFailure {
    /// Byte offset on the device of the block.
    pub physical_offset: u64,
    /// Byte offset of the block in the object.
    pub logical_offset: u64,
    /// Bytes the fill had written when it read the canary.
    pub written_bytes: u64,
    /// What the block held instead, in words.
    pub found: String,
}

/// One object as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObjectInfo {
    /// Name.
    pub name: String,
    /// Unique id.
    pub id: u64,
    /// Committed bytes.
    pub size_bytes: u64,
    /// Creation time (Unix seconds).
    pub created: u64,
    /// False for an interrupted write.
    pub complete: bool,
    /// Data extents.
    pub extents: u64,
    /// File or pattern (with its seed).
    pub kind: ObjectKind,
}

/// Device facts for [`VolumeInfo`].
#[derive(Debug, Clone, Serialize)]
pub struct DeviceSummary {
    /// Path or name.
    pub path: String,
    /// "file", "block device" or "memory".
    pub kind: String,
    /// Size in bytes.
    pub size_bytes: u64,
    /// Logical block size.
    pub logical_block_size: u32,
    /// Model, for block devices.
    pub model: Option<String>,
    /// Serial, for block devices.
    pub serial: Option<String>,
    /// Opened with `O_DIRECT`.
    pub direct: bool,
}

impl From<&stack_bio::DeviceInfo> for DeviceSummary {
    fn from(d: &stack_bio::DeviceInfo) -> Self {
        DeviceSummary {
            path: d.path.clone(),
            kind: d.kind.to_string(),
            size_bytes: d.size_bytes,
            logical_block_size: d.logical_block_size,
            model: d.model.clone(),
            serial: d.serial.clone(),
            direct: d.direct,
        }
    }
}

/// What `info` shows.
#[derive(Debug, Clone, Serialize)]
pub struct VolumeInfo {
    /// The volume UUID, as 32 hex digits with dashes.
    pub uuid: String,
    /// The committed generation.
    pub generation: u64,
    /// Block size.
    pub block_size_bytes: u32,
    /// Checksum algorithm name.
    pub algorithm: String,
    /// Volume size (whole blocks).
    pub size_bytes: u64,
    /// Bytes in use (data, checksums, metadata, superblocks).
    pub used_bytes: u64,
    /// Bytes free for new data.
    pub free_bytes: u64,
    /// Objects in the table.
    pub objects: u64,
    /// Objects left incomplete by an interrupted write.
    pub incomplete_objects: u64,
    /// Formatting time (Unix seconds).
    pub created: u64,
    /// The superblock slot the volume was opened from.
    pub superblock_slot: u8,
    /// Set when the newest superblock was unusable and the other copy was used.
    pub fallback_warning: Option<String>,
    /// The device.
    pub device: DeviceSummary,
    /// The device, as the device layer describes it.
    #[serde(skip)]
    pub device_info: stack_bio::DeviceInfo,
    /// The state of both superblock slots as found at open.
    pub superblocks: [crate::report::SuperblockState; 2],
}

/// Formats a UUID as 8-4-4-4-12 hex digits.
pub fn uuid_string(uuid: &[u8; 16]) -> String {
    let hex: String = uuid.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}
