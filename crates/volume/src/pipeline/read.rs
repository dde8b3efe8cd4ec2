//! `read`: an object's blocks through the device's queue, each chunk checked on the
//! end-I/O pool as its read completes (as verify does), written out in order; the first
//! damaged block stops it.

use std::io::Write;
use std::sync::Arc;

use super::verify_chunk::ChunkCheck;
use super::verify_read::{ChunkResult, Reads};
use crate::format::ObjectRecord;
use crate::volume::{CsumWindow, Volume};
use crate::Error;

/// Writes `record`'s bytes to `out`, every block verified before it is written.
pub(crate) fn read_object(
    vol: &Volume,
    record: &ObjectRecord,
    out: &mut dyn Write,
) -> Result<u64, Error> {
    let bs = u64::from(vol.block_size_bytes());
    let mut reads = Reads::new(vol.device().clone(), vol.pools()?.end_io.clone(), true)?;
    let chunk_blocks = reads.chunk_blocks(bs);
    let mut logical = 0u64;
    let mut emit = |r: ChunkResult| -> Result<(), Error> {
        if let Some(d) = r.damaged.first() {
            return Err(Error::Damaged {
                object: record.name.clone(),
                logical_offset: d.logical_offset,
                physical_offset: d.physical_offset,
                cause: d.cause,
            });
        }
        let data = r.data.expect("reads asked to keep the data");
        let take = (r.blocks * bs).min(record.size_bytes - logical);
        out.write_all(&data[..take as usize])
            .map_err(|source| Error::Output {
                name: record.name.clone(),
                offset: logical,
                source,
            })?;
        logical += take;
        Ok(())
    };
    let object: Arc<str> = Arc::from(record.name.as_str());
    let mut csum_window = CsumWindow::default();
    for (run, run_logical) in record.runs_with_offsets(bs) {
        let csums =
            vol.load_run_csums_via(&mut csum_window, run)
                .map_err(|e| Error::DamagedChecksums {
                    object: record.name.clone(),
                    logical_offset: run_logical,
                    logical_end: run_logical + run.data_blocks * bs,
                    physical_offset: run.csum_start_block * bs,
                    detail: e.to_string(),
                })?;
        let check =
            ChunkCheck::new(vol, record, object.clone(), *run, run_logical).with_expected(csums);
        let mut index = 0u64;
        while index < run.data_blocks {
            let n = chunk_blocks.min(run.data_blocks - index);
            reads.submit(check.part(index, n), &mut emit)?;
            index += n;
        }
    }
    reads.finish(&mut emit)?;
    assert_eq!(logical, record.size_bytes);
    Ok(logical)
}
