//! Commit: table copy-on-write, flush, older superblock slot, flush.

use stack_alloc::{AllocRequest, Extent};

use super::{write_blocks, Volume};
use crate::format::{
    encode_meta_stream, stream_blocks, MetaKind, ObjectTable, Superblock, SB_BYTES, SB_SLOT_OFFSETS,
};
use crate::report::SuperblockState;
use crate::Error;

impl Volume {
    /// Blocks the table would take with `extra_runs` more runs than `table` has.
    pub(crate) fn table_blocks(&self, table: &ObjectTable, extra_runs: usize) -> u64 {
        let len = table.encoded_len() + extra_runs * crate::format::RUN_BYTES;
        stream_blocks(len as u64, self.sb.block_size_bytes)
    }

    /// Makes sure a table of `blocks` blocks can be written later even if data fills the
    /// volume meanwhile. Fails with `NoSpace` when it cannot.
    pub(crate) fn reserve_meta(&mut self, blocks: u64) -> Result<(), Error> {
        if self.meta_reserve.is_some_and(|r| r.len >= blocks) {
            return Ok(());
        }
        // Ask for some slack so the reserve is not renewed at every run.
        let want = blocks + blocks / 4 + 1;
        let new = self
            .alloc
            .alloc(&AllocRequest::any(want).with_len(blocks, want))
            .map_err(|e| self.no_space(e, blocks))?;
        if let Some(old) = self.meta_reserve.replace(new) {
            self.alloc.free_uncommitted(old)?;
        }
        Ok(())
    }

    pub(crate) fn no_space(&self, e: stack_alloc::Error, needed_blocks: u64) -> Error {
        match e {
            stack_alloc::Error::NoSpace { .. } => Error::NoSpace {
                needed_bytes: needed_blocks * u64::from(self.sb.block_size_bytes),
                free_bytes: self.free_bytes(),
                outcome: crate::NoSpaceOutcome::NothingWritten,
            },
            other => Error::Alloc(other),
        }
    }

    /// An extent for a table of `blocks`: the reserve when it is large enough.
    fn take_meta_extent(&mut self, blocks: u64) -> Result<Extent, Error> {
        if let Some(r) = self.meta_reserve {
            if r.len >= blocks {
                self.meta_reserve = None;
                if r.len > blocks {
                    self.alloc
                        .free_uncommitted(Extent::new(r.start + blocks, r.len - blocks))?;
                }
                return Ok(Extent::new(r.start, blocks));
            }
        }
        self.alloc
            .alloc(&AllocRequest::any(blocks))
            .map_err(|e| self.no_space(e, blocks))
    }

    /// Commits `table` as the next generation. `dropped` are extents the committed state
    /// referenced and `table` no longer does; they stay busy until the commit after this
    /// one (the older slot still references them until then).
    pub(crate) fn commit_table(
        &mut self,
        table: ObjectTable,
        dropped: Vec<Extent>,
    ) -> Result<(), Error> {
        self.check_writable()?;
        let bs = self.sb.block_size_bytes;
        let generation = self.max_seen_generation.max(self.sb.generation) + 1;
        let slot = 1 - self.sb.slot;
        let payload = table.encode();
        if payload.len() as u64 > crate::format::MAX_TABLE_BYTES {
            return Err(Error::TableFull {
                objects: table.objects.len() as u64,
                table_bytes: payload.len() as u64,
            });
        }
        let blocks = stream_blocks(payload.len() as u64, bs);
        let meta = self.take_meta_extent(blocks)?;
        assert_eq!(meta.len, blocks);
        let bytes = encode_meta_stream(
            MetaKind::ObjectTable,
            generation,
            meta.start,
            &payload,
            bs,
            self.sb.algorithm,
            self.salt,
        );
        let sb = Superblock {
            slot,
            generation,
            meta_start_block: meta.start,
            meta_blocks: blocks,
            meta_len_bytes: payload.len() as u64,
            ..self.sb
        };
        let mut sb_block = vec![0u8; bs as usize];
        sb_block[..SB_BYTES].copy_from_slice(&sb.encode());
        let sb_at = SB_SLOT_OFFSETS[usize::from(slot)] / u64::from(bs);
        let durable = (|| -> Result<(), Error> {
            write_blocks(&*self.device, meta.start, &bytes, bs)?;
            self.device.flush()?;
            write_blocks(&*self.device, sb_at, &sb_block, bs)?;
            self.device.flush()?;
            Ok(())
        })();
        if let Err(e) = durable {
            // The superblock may or may not have reached the disk: the in-memory state can
            // no longer be trusted to match. Reopening finds whichever commit is durable.
            self.broken = Some(e.to_string());
            return Err(e);
        }
        for e in dropped.iter().copied().chain(self.meta_extent) {
            self.alloc.free(e, generation)?;
        }
        // Slots now hold `generation` and the previous one: whatever only the one before
        // referenced is unreferenced now.
        self.alloc.commit(generation - 1);
        self.reclaimable_blocks = 0;
        self.sb = sb;
        self.max_seen_generation = generation;
        self.table = table;
        self.meta_extent = Some(meta);
        self.slot_states[usize::from(slot)] = SuperblockState::Ok { generation };
        Ok(())
    }
}
