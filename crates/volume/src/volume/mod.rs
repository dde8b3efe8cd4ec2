//! The volume: format, open, commit, list, remove, and verify's metadata half
//! (`check.rs`). Writes, reads and verify's data half live in [`crate::pipeline`], which
//! reaches the volume only through `seam.rs` and the crate-visible methods here.
//!
//! Commit protocol: write the new object table copy-on-write into fresh blocks, flush,
//! write the *older* superblock slot with the next generation, flush. The previous
//! generation's table and every extent it alone references stay busy until the commit
//! after this one, so both slots always describe intact states and falling back to the
//! older copy is always safe.

mod api;
mod check;
mod commit;
mod device;
mod io;
mod lock;
mod open;
mod read;
mod seam;
mod timing;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use stack_alloc::{AllocQueue, Allocator, Extent};
use stack_bio::Device;
use stack_csum::BlockCsum;

use crate::format::{
    block_size_ok, name_problem, uuid_salt, ObjectRecord, ObjectTable, Run, Superblock,
    MAX_BLOCK_BYTES, MAX_TOTAL_BLOCKS, SB_SLOT_OFFSETS,
};
use crate::options::{
    uuid_string, DeviceSummary, FormatOptions, ObjectInfo, OpenOptions, VolumeInfo,
};
use crate::pipeline::Pools;
use crate::report::SuperblockState;
use crate::Error;
use device::{open_device, IoMode};

pub use device::{device_read_source, open_raw_device};
pub(crate) use io::{read_blocks, write_blocks, IO_ALIGN_BYTES};
pub use lock::{FileId, Holder, LockMode, VolumeLock};
pub(crate) use open::{judge_slots, load_table, read_slot, Rejected, SlotRead};
pub(crate) use read::CsumWindow;

/// Blocks of free space a volume has at least, besides its superblocks.
pub const MIN_FREE_BLOCKS: u64 = 16;

/// A volume opened on a file, a block device or any [`Device`].
pub struct Volume {
    path: PathBuf,
    device: Arc<dyn Device>,
    /// `device` itself: the timing wrapper every I/O passes ([`crate::map`]).
    timed: Arc<stack_bio::TimedDevice>,
    read_only: bool,
    /// The superblock of the committed state in use.
    sb: Superblock,
    salt: u64,
    csum: BlockCsum,
    /// The committed object table.
    table: ObjectTable,
    /// Where the committed table lives (`None` only while formatting).
    meta_extent: Option<Extent>,
    /// Highest generation any slot with a valid checksum carries.
    max_seen_generation: u64,
    slot_states: [SuperblockState; 2],
    fallback_warning: Option<String>,
    alloc: Allocator,
    /// Allocations of the write pipeline go through this queue (it shares `alloc`);
    /// started by the first write, so read-only commands start no threads for it.
    alloc_queue: OnceLock<AllocQueue>,
    /// The pipelines' worker pools, likewise started by the first write.
    pools: OnceLock<Pools>,
    /// A table extent allocated ahead, so a full volume can still commit.
    meta_reserve: Option<Extent>,
    /// Set when a commit failed half-way: the in-memory state may not match the disk.
    broken: Option<String>,
    /// Data and checksum blocks only the older slot's table references (a removal or
    /// replacement whose second commit a crash cut off). They stay busy, so the fallback
    /// stays intact, but count as free: the next commit releases them, and a write makes
    /// that commit before it allocates.
    reclaimable_blocks: u64,
    /// The lock on the file or device (`None` for devices opened with `open_device`).
    /// Declared last, so it is released only after the device and pools are gone.
    lock: Option<VolumeLock>,
}

impl std::fmt::Debug for Volume {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Volume")
            .field("path", &self.path)
            .field("generation", &self.sb.generation)
            .field("slot", &self.sb.slot)
            .field("objects", &self.table.objects.len())
            .finish_non_exhaustive()
    }
}

/// Allocation group size for a volume of `total_blocks`: about 64 groups.
pub(crate) fn group_blocks(total_blocks: u64) -> u64 {
    total_blocks.div_ceil(64).max(256).min(total_blocks)
}

/// The blocks the two superblock slots occupy.
pub(crate) fn superblock_extents(block_size_bytes: u32) -> [Extent; 2] {
    let bs = u64::from(block_size_bytes);
    [
        Extent::new(SB_SLOT_OFFSETS[0] / bs, 1),
        Extent::new(SB_SLOT_OFFSETS[1] / bs, 1),
    ]
}

/// The smallest volume for a block size, in blocks.
pub(crate) fn min_blocks(block_size_bytes: u32) -> u64 {
    SB_SLOT_OFFSETS[1] / u64::from(block_size_bytes) + 1 + MIN_FREE_BLOCKS
}

/// The blocks a run holds: its data extent and its checksum stream's extent. The one
/// mapping from a run to extents (allocation, release, accounting all use it).
pub(crate) fn run_extents(run: &Run, block_size_bytes: u32, width_bytes: usize) -> [Extent; 2] {
    [
        Extent::new(run.data_start_block, run.data_blocks),
        Extent::new(
            run.csum_start_block,
            run.csum_blocks(block_size_bytes, width_bytes),
        ),
    ]
}

/// Every extent a committed table references: its own blocks, data and checksum runs.
pub(crate) fn table_refs(
    table: &ObjectTable,
    meta: Extent,
    block_size_bytes: u32,
    width_bytes: usize,
) -> Vec<Extent> {
    let runs = table.objects.iter().flat_map(|o| &o.runs);
    std::iter::once(meta)
        .chain(runs.flat_map(|r| run_extents(r, block_size_bytes, width_bytes)))
        .collect()
}

impl Volume {
    /// Formats the file or block device at `path` (a missing regular file is created at
    /// `opts.create_size_bytes`). Whatever was there is lost. The target is locked
    /// exclusively first (waiting as `opts.wait` says) and stays locked while the
    /// returned volume lives.
    pub fn format(path: &Path, opts: &FormatOptions) -> Result<Volume, Error> {
        let lock = if opts.create_size_bytes.is_some() {
            VolumeLock::acquire_creating(path, LockMode::Exclusive, opts.wait, None)?
        } else {
            VolumeLock::acquire(path, LockMode::Exclusive, opts.wait, None)?
        };
        Self::format_locked(path, opts, lock)
    }

    /// Formats under a lock the caller already holds exclusively (so checks made
    /// before formatting ran under it too).
    pub fn format_locked(
        path: &Path,
        opts: &FormatOptions,
        lock: VolumeLock,
    ) -> Result<Volume, Error> {
        if lock.mode() != LockMode::Exclusive {
            return Err(Error::InvalidOption {
                option: "lock",
                reason: "formatting needs the volume locked exclusively".into(),
            });
        }
        let mode = IoMode::new(opts.direct, opts.cached)?;
        let device = open_device(
            path,
            mode,
            false,
            opts.create_size_bytes,
            Some(opts.block_size_bytes),
            &lock,
        )?;
        let mut vol = Self::format_device(device, opts)?;
        vol.lock = Some(lock);
        Ok(vol)
    }

    /// Formats any device (in-memory or fault-injecting ones in tests).
    pub fn format_device(device: Arc<dyn Device>, opts: &FormatOptions) -> Result<Volume, Error> {
        let timed = crate::map::timed(device, crate::map::DEFAULT_REGIONS);
        let device: Arc<dyn Device> = timed.clone();
        let bs = opts.block_size_bytes;
        let path = PathBuf::from(device.info().path);
        if !block_size_ok(bs.into()) {
            return Err(Error::InvalidOption {
                option: "block size",
                reason: format!("{bs} is not a power of two from 512 to {MAX_BLOCK_BYTES}"),
            });
        }
        // Only direct I/O needs whole logical blocks; buffered files take any block size.
        let lbs = device.logical_block_size();
        if device.info().direct && (lbs == 0 || bs % lbs != 0) {
            return Err(Error::InvalidOption {
                option: "block size",
                reason: format!("{bs} is not a multiple of the device's logical block size {lbs}"),
            });
        }
        let size_bytes = device.size_bytes();
        // A device beyond the format's limit gets a volume of the limit's size.
        let total_blocks = (size_bytes / u64::from(bs)).min(MAX_TOTAL_BLOCKS);
        if total_blocks < min_blocks(bs) {
            return Err(Error::TooSmall {
                path,
                size_bytes,
                min_bytes: min_blocks(bs) * u64::from(bs),
            });
        }
        let uuid = io::new_uuid();
        let salt = uuid_salt(&uuid);
        let alloc = Allocator::from_used(
            total_blocks,
            group_blocks(total_blocks),
            superblock_extents(bs),
        )?;
        // Generation 0 in slot 0 stands for "nothing yet": the first commit writes
        // generation 1 into slot 1, the second generation 2 into slot 0.
        let sb = Superblock {
            uuid,
            block_size_bytes: bs,
            algorithm: opts.algorithm,
            slot: 0,
            generation: 0,
            total_blocks,
            meta_start_block: 0,
            meta_blocks: 0,
            meta_len_bytes: 0,
            created_unix_secs: io::now_unix_secs(),
        };
        let mut vol = Volume {
            path,
            read_only: false,
            csum: BlockCsum::new(opts.algorithm, salt, bs as usize)?,
            salt,
            sb,
            table: ObjectTable::default(),
            meta_extent: None,
            max_seen_generation: 0,
            slot_states: [
                SuperblockState::Damaged {
                    reason: "being formatted".into(),
                },
                SuperblockState::Damaged {
                    reason: "being formatted".into(),
                },
            ],
            fallback_warning: None,
            alloc_queue: OnceLock::new(),
            alloc,
            pools: OnceLock::new(),
            meta_reserve: None,
            broken: None,
            reclaimable_blocks: 0,
            device,
            timed,
            lock: None,
        };
        // Wipe both slots first: an older volume's superblocks must not outlive a format
        // that is interrupted half-way.
        let zero = vec![0u8; bs as usize];
        for e in superblock_extents(bs) {
            write_blocks(&*vol.device, e.start, &zero, bs)?;
        }
        vol.device.flush()?;
        vol.commit_table(ObjectTable::default(), Vec::new())?;
        vol.commit_table(ObjectTable::default(), Vec::new())?;
        Ok(vol)
    }

    /// Opens the volume on the file or block device at `path`, locked shared when
    /// `opts.read_only` and exclusively otherwise, before anything is read; the lock
    /// lives as long as the volume. A volume in use is refused with
    /// [`Error::Locked`] or waited for, as `opts.wait` says.
    pub fn open(path: &Path, opts: &OpenOptions) -> Result<Volume, Error> {
        let mode = if opts.read_only {
            LockMode::Shared
        } else {
            LockMode::Exclusive
        };
        let lock = VolumeLock::acquire(path, mode, opts.wait, None)?;
        Self::open_locked(path, opts, lock)
    }

    /// Opens the volume under a lock the caller holds (from [`VolumeLock::acquire`] or
    /// [`Volume::into_lock`]); an exclusive lock also serves a read-only open.
    pub fn open_locked(path: &Path, opts: &OpenOptions, lock: VolumeLock) -> Result<Volume, Error> {
        if !opts.read_only && lock.mode() != LockMode::Exclusive {
            return Err(Error::InvalidOption {
                option: "lock",
                reason: "changing a volume needs it locked exclusively".into(),
            });
        }
        let mode = IoMode::new(opts.direct, opts.cached)?;
        let device = open_device(path, mode, opts.read_only, None, None, &lock)?;
        let mut vol = Self::open_device(device, opts)?;
        vol.path = path.to_path_buf();
        vol.lock = Some(lock);
        Ok(vol)
    }

    /// Closes the volume and hands its lock on (e.g. to reopen it read-only without
    /// letting another process in between); `None` for a volume without one.
    pub fn into_lock(mut self) -> Option<VolumeLock> {
        self.lock.take()
    }

    /// The file the volume's lock is on (`None` for devices opened without a path).
    pub fn file_id(&self) -> Option<FileId> {
        self.lock.as_ref().map(VolumeLock::file_id)
    }

    /// Opens the volume on any device.
    pub fn open_device(device: Arc<dyn Device>, opts: &OpenOptions) -> Result<Volume, Error> {
        open::open(device, opts.read_only)
    }

    /// Runs this volume's pipelines on `pools` instead of its own (to share pools between
    /// volumes, or to size them).
    pub fn with_pools(mut self, pools: Pools) -> Volume {
        self.pools = OnceLock::from(pools);
        self
    }

    /// The device the volume lives on.
    pub fn device(&self) -> &Arc<dyn Device> {
        &self.device
    }

    /// Facts about the volume.
    pub fn info(&self) -> VolumeInfo {
        let bs = u64::from(self.sb.block_size_bytes);
        let device_info = self.device.info();
        VolumeInfo {
            uuid: uuid_string(&self.sb.uuid),
            generation: self.sb.generation,
            block_size_bytes: self.sb.block_size_bytes,
            algorithm: self.sb.algorithm.name().to_string(),
            size_bytes: self.sb.total_blocks * bs,
            used_bytes: self.sb.total_blocks * bs - self.free_bytes(),
            free_bytes: self.free_bytes(),
            objects: self.table.objects.len() as u64,
            incomplete_objects: self.table.objects.iter().filter(|o| !o.complete).count() as u64,
            created: self.sb.created_unix_secs,
            superblock_slot: self.sb.slot,
            fallback_warning: self.fallback_warning.clone(),
            device: DeviceSummary::from(&device_info),
            device_info,
            superblocks: self.slot_states.clone(),
        }
    }

    /// The objects, in creation order.
    pub fn objects(&self) -> Vec<ObjectInfo> {
        self.table.objects.iter().map(object_info).collect()
    }

    /// One object by name.
    pub fn object(&self, name: &str) -> Option<ObjectInfo> {
        self.find(name).map(object_info)
    }

    /// Bytes free for new data and its checksums (including what only the older
    /// superblock slot still holds, which the next commit releases).
    pub fn free_bytes(&self) -> u64 {
        (self.alloc.free_blocks() + self.reclaimable_blocks) * u64::from(self.sb.block_size_bytes)
    }

    /// Removes an object and commits; its blocks are free for new writes when this returns.
    pub fn remove(&mut self, name: &str) -> Result<(), Error> {
        self.check_writable()?;
        let index = self
            .table
            .objects
            .iter()
            .position(|o| o.name == name)
            .ok_or_else(|| Error::ObjectNotFound {
                name: name.to_string(),
            })?;
        let mut table = self.table.clone();
        let record = table.objects.remove(index);
        let dropped = self.record_extents(&record);
        self.commit_released(table, dropped)
    }

    /// Commits `table` without the `dropped` extents, then commits once more: the older
    /// slot moves past the change too, so no durable superblock references the dropped
    /// blocks and they can be reused now. A crash between the two commits leaves them
    /// held by the older slot only; they count as free then ([`Volume::free_bytes`]) and
    /// the next commit releases them.
    pub(crate) fn commit_released(
        &mut self,
        table: ObjectTable,
        dropped: Vec<Extent>,
    ) -> Result<(), Error> {
        self.commit_table(table, dropped)?;
        self.commit_table(self.table.clone(), Vec::new())
    }

    pub(crate) fn find(&self, name: &str) -> Option<&ObjectRecord> {
        self.table.objects.iter().find(|o| o.name == name)
    }

    /// The data and checksum extents of a record.
    pub(crate) fn record_extents(&self, record: &ObjectRecord) -> Vec<Extent> {
        record
            .runs
            .iter()
            .flat_map(|r| self.run_extents(r))
            .collect()
    }

    /// [`run_extents`] in this volume's geometry.
    pub(crate) fn run_extents(&self, run: &Run) -> [Extent; 2] {
        run_extents(
            run,
            self.sb.block_size_bytes,
            self.sb.algorithm.width_bytes(),
        )
    }

    pub(crate) fn check_writable(&self) -> Result<(), Error> {
        if self.read_only {
            return Err(Error::ReadOnly);
        }
        if let Some(why) = &self.broken {
            return Err(Error::Corrupt {
                what: "volume state",
                offset: 0,
                detail: format!("an earlier commit failed ({why}); reopen the volume"),
            });
        }
        Ok(())
    }

    pub(crate) fn check_name(name: &str) -> Result<(), Error> {
        match name_problem(name) {
            Some(reason) => Err(Error::InvalidName {
                name: name.to_string(),
                reason,
            }),
            None => Ok(()),
        }
    }

    /// The block size.
    pub fn block_size_bytes(&self) -> u32 {
        self.sb.block_size_bytes
    }

    /// The committed generation.
    pub fn generation(&self) -> u64 {
        self.sb.generation
    }
}

fn object_info(o: &ObjectRecord) -> ObjectInfo {
    ObjectInfo {
        name: o.name.clone(),
        id: o.id,
        size_bytes: o.size_bytes,
        created: o.created_unix_secs,
        complete: o.complete,
        extents: o.runs.len() as u64,
        kind: o.kind,
    }
}

#[cfg(test)]
mod tests;
