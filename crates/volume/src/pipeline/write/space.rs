//! The space a write of known size needs, so one that cannot fit is refused before it
//! writes a byte.
//!
//! The estimate is an upper bound for free space that is not fragmented into pieces
//! shorter than a run (the writer's runs are `commit_every` clamped to 64 KiB..8 MiB):
//!
//! - data: `ceil(size / block)` blocks per object (for a resume, what is left of its
//!   target; a pattern object's last block is whole);
//! - checksums: one stream per run, `max(1, ceil(run_blocks * width / (block - 48)))`
//!   blocks for `ceil(data / run)` runs, plus one block and one run per 128 data blocks
//!   (and two) for runs the writer's own checksum areas cut short;
//! - object table: each commit writes the whole table copy-on-write into fresh blocks
//!   while the previous table stays busy until the commit after, and the writer holds a
//!   reserve of a quarter more (plus one block) for the next commit: three tables of the
//!   final size (every new record with all its runs, 32 bytes each), with that slack;
//!   plus one more when the space held by the older slot must first be released (see
//!   [`Volume::reclaimable_blocks`]).
//!
//! A replaced object's space is not counted as free: it is released only by the commits
//! that complete the new one. When free space is more fragmented than the bound assumes,
//! a write can still run out; it then removes its partial object (see
//! [`crate::NoSpaceOutcome`]).

use crate::format::{csum_stream_blocks, stream_blocks, ObjectRecord, RUN_BYTES};
use crate::options::WriteOptions;
use crate::volume::Volume;
use crate::{Error, NoSpaceOutcome, ObjectKind};

/// The estimate counts one cut run per this many data blocks.
const SPLIT_EVERY_BLOCKS: u64 = 128;

/// One write of known size, as the space check sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedWrite {
    /// The object's name.
    pub name: String,
    /// Bytes the write stores (for a resume: the object's target size).
    pub size_bytes: u64,
}

/// Bytes the `writes` (run one after another, with `opts`) need at most, by the
/// estimate in this module's docs. A write naming an incomplete pattern object that
/// `opts` does not replace counts as its resume: only what is left of its size.
/// A record for each new object is counted; a replaced one is not subtracted.
pub(crate) fn space_needed(vol: &Volume, writes: &[PlannedWrite], opts: &WriteOptions) -> u64 {
    let bs32 = vol.geometry().block_size_bytes;
    let bs = u64::from(bs32);
    let width = vol.geometry().algorithm.width_bytes();
    let run_max_blocks = super::run_max_blocks(opts.commit_every_bytes, bs);
    let mut data_and_csum = 0u64;
    let mut table = vol.table().clone();
    let mut extra_runs = 0usize;
    for w in writes {
        // Only an incomplete pattern object is resumed (user data cannot be).
        let resumed = vol.find(&w.name).filter(|o| {
            !o.complete && !opts.replace && matches!(o.kind, ObjectKind::Pattern { .. })
        });
        let done_blocks = resumed.map_or(0, |o| o.size_bytes / bs);
        let data_blocks = w.size_bytes.div_ceil(bs).saturating_sub(done_blocks);
        // Runs end at `run_max_blocks`; some end sooner where the writer's own
        // checksum areas cut a data extent (measured: about one per 200 blocks at
        // 512-byte blocks, rarely at 4 KiB). A cut costs one checksum block more
        // (csum(a) + csum(b) <= csum(a + b) + 1) and one table entry.
        let full_runs = data_blocks.div_ceil(run_max_blocks);
        let cuts = data_blocks / SPLIT_EVERY_BLOCKS + 2;
        let runs = full_runs + cuts;
        let csum_blocks = full_runs
            .saturating_mul(csum_stream_blocks(
                data_blocks.min(run_max_blocks),
                bs32,
                width,
            ))
            .saturating_add(cuts);
        data_and_csum = data_and_csum
            .saturating_add(data_blocks)
            .saturating_add(csum_blocks);
        extra_runs = extra_runs.saturating_add(usize::try_from(runs).unwrap_or(usize::MAX));
        if resumed.is_none() {
            table.objects.push(ObjectRecord {
                id: 0,
                name: w.name.clone(),
                size_bytes: 0,
                created_unix_secs: 0,
                kind: ObjectKind::File,
                complete: false,
                target_size_bytes: None,
                runs: Vec::new(),
            });
        }
    }
    let table_bytes = (table.encoded_len() as u64)
        .saturating_add((extra_runs as u64).saturating_mul(RUN_BYTES as u64));
    let table_blocks = stream_blocks(table_bytes, bs32);
    let with_slack = table_blocks + table_blocks / 4 + 1;
    let tables = if vol.reclaimable_blocks() > 0 { 4 } else { 3 };
    data_and_csum
        .saturating_add(with_slack.saturating_mul(tables))
        .saturating_mul(bs)
}

/// Refuses the `writes` with [`Error::NoSpace`] (nothing written) when
/// [`space_needed`] exceeds the free space.
pub(crate) fn check_space(
    vol: &Volume,
    writes: &[PlannedWrite],
    opts: &WriteOptions,
) -> Result<(), Error> {
    let needed_bytes = space_needed(vol, writes, opts);
    let free_bytes = vol.free_bytes();
    if needed_bytes > free_bytes {
        return Err(Error::NoSpace {
            needed_bytes,
            free_bytes,
            outcome: NoSpaceOutcome::NothingWritten,
        });
    }
    Ok(())
}
