//! The narrow interface the pipelines (`crate::pipeline`) use: what they may read of a
//! volume and the few state changes a write makes outside a commit. The volume's fields
//! are private to `volume/`; nothing else reaches them.

use std::sync::Arc;

use stack_alloc::{AllocQueue, Extent};
use stack_bio::Device;
use stack_csum::{Algorithm, BlockCsum};

use super::Volume;
use crate::format::ObjectTable;
use crate::pipeline::Pools;
use crate::Error;

/// A volume's fixed geometry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Geometry {
    pub(crate) block_size_bytes: u32,
    pub(crate) total_blocks: u64,
    pub(crate) algorithm: Algorithm,
}

/// What checking data blocks needs of a volume, owned, so a check can run on any thread.
#[derive(Clone)]
pub(crate) struct CheckView {
    pub(crate) device: Arc<dyn Device>,
    pub(crate) csum: BlockCsum,
    pub(crate) algorithm: Algorithm,
    pub(crate) salt: u64,
}

impl Volume {
    /// The volume's geometry.
    pub(crate) fn geometry(&self) -> Geometry {
        Geometry {
            block_size_bytes: self.sb.block_size_bytes,
            total_blocks: self.sb.total_blocks,
            algorithm: self.sb.algorithm,
        }
    }

    /// What the pipelines need to check data blocks.
    pub(crate) fn check_view(&self) -> CheckView {
        CheckView {
            device: self.device.clone(),
            csum: self.csum,
            algorithm: self.sb.algorithm,
            salt: self.salt,
        }
    }

    /// The volume salt (pattern headers and checksums are bound to it).
    pub(crate) fn salt(&self) -> u64 {
        self.salt
    }

    /// The block checksummer.
    pub(crate) fn csum(&self) -> BlockCsum {
        self.csum
    }

    /// The committed object table.
    pub(crate) fn table(&self) -> &ObjectTable {
        &self.table
    }

    /// The generation a write started now stamps into its blocks: above every
    /// generation any slot was seen with, so a block it writes is never mistaken for an
    /// older one.
    pub(crate) fn next_generation(&self) -> u64 {
        self.max_seen_generation.max(self.sb.generation) + 1
    }

    /// Blocks only the older slot's table holds (freed by the next commit).
    pub(crate) fn reclaimable_blocks(&self) -> u64 {
        self.reclaimable_blocks
    }

    /// Whether a commit failed half-way (the in-memory state may not match the disk).
    pub(crate) fn is_broken(&self) -> bool {
        self.broken.is_some()
    }

    /// Gives back an extent no commit references.
    pub(crate) fn free_uncommitted(&self, extent: Extent) -> Result<(), Error> {
        Ok(self.alloc.free_uncommitted(extent)?)
    }

    /// Gives back the table reserve, if any.
    pub(crate) fn release_meta_reserve(&mut self) -> Result<(), Error> {
        match self.meta_reserve.take() {
            Some(r) => self.free_uncommitted(r),
            None => Ok(()),
        }
    }

    /// Takes the table reserve (to give it back with other extents).
    pub(crate) fn take_meta_reserve(&mut self) -> Option<Extent> {
        self.meta_reserve.take()
    }

    /// The pipelines' pools, started on first use.
    pub(crate) fn pools(&self) -> Result<&Pools, Error> {
        if let Some(p) = self.pools.get() {
            return Ok(p);
        }
        let pools = Pools::new()?;
        Ok(self.pools.get_or_init(|| pools))
    }

    /// The allocation queue of the write pipeline, started on first use.
    pub(crate) fn alloc_queue(&self) -> Result<&AllocQueue, Error> {
        if let Some(q) = self.alloc_queue.get() {
            return Ok(q);
        }
        let queue = AllocQueue::new(self.alloc.clone())?;
        Ok(self.alloc_queue.get_or_init(|| queue))
    }
}
