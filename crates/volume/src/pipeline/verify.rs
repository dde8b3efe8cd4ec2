//! The verify pipeline: the superblocks and the object table are checked by the volume
//! (`volume/check.rs`); every run's checksum blocks are read through the device here
//! (a window at a time); the data blocks are read through the device's
//! queue by `verify_read.rs` in chunks, checked by `verify_chunk.rs` on the end-I/O pool
//! as each read completes, and come back in order, so damage is reported in object and
//! offset order whatever the number of reads in flight.

use std::sync::Arc;
use std::time::Instant;

use super::verify_chunk::ChunkCheck;
use super::verify_read::{ChunkResult, Reads};
use crate::format::ObjectRecord;
use crate::options::{cancelled, Progress, VerifyOptions};
use crate::report::{MetadataDamage, VerifyReport};
use crate::volume::{CsumWindow, Volume};
use crate::Error;

/// Verify's data half and the report (the metadata half is `Volume::verify_metadata`):
/// see [`Volume::verify`].
pub(crate) fn verify(vol: &Volume, opts: &VerifyOptions) -> Result<VerifyReport, Error> {
    let started = Instant::now();
    let mut report = VerifyReport {
        metadata_ok: true,
        ..VerifyReport::default()
    };
    vol.verify_metadata(&mut report);
    let objects: Vec<&ObjectRecord> = match &opts.object {
        Some(name) => vec![vol
            .find(name)
            .ok_or_else(|| Error::ObjectNotFound { name: name.clone() })?],
        None => vol.table().objects.iter().collect(),
    };
    let total: u64 = objects.iter().map(|o| o.size_bytes).sum();
    let bs = u64::from(vol.geometry().block_size_bytes);
    let mut reads = Reads::new(vol.device().clone(), vol.pools()?.end_io.clone(), false)?;
    let chunk_blocks = reads.chunk_blocks(bs);
    let mut done_bytes = 0u64;
    let mut emit = |r: ChunkResult| {
        report.blocks_verified += r.blocks;
        done_bytes += r.blocks * bs;
        for d in r.damaged {
            if let Some(f) = &opts.on_damage {
                f(&d);
            }
            report.push_damage(d);
        }
        if let Some(p) = &opts.progress {
            p(Progress {
                done_bytes: done_bytes.min(total),
                total_bytes: Some(total),
            });
        }
        Ok(())
    };
    let mut interrupted = false;
    let mut incomplete = Vec::new();
    let mut objects_verified = 0u64;
    let mut csum_damage = Vec::new();
    let mut csum_window = CsumWindow::default();
    'objects: for record in objects {
        objects_verified += 1;
        if !record.complete {
            incomplete.push(record.name.clone());
        }
        let object: Arc<str> = Arc::from(record.name.as_str());
        for (run, run_logical) in record.runs_with_offsets(bs) {
            let check = ChunkCheck::new(vol, record, object.clone(), *run, run_logical);
            let expected = match vol.load_run_csums_via(&mut csum_window, run) {
                Ok(c) => c,
                Err(e) => {
                    csum_damage.push(MetadataDamage {
                        what: "checksum block".into(),
                        object: Some(record.name.clone()),
                        physical_offset: run.csum_start_block * bs,
                        detail: format!(
                            "checksums of logical bytes {}..{}: {e}",
                            run_logical,
                            run_logical + run.data_blocks * bs
                        ),
                    });
                    match check.rebuilt_csums() {
                        Some(c) => c,
                        // User data without its checksums cannot be checked.
                        None => continue,
                    }
                }
            };
            let run_check = check.with_expected(expected);
            let mut index = 0u64;
            while index < run.data_blocks {
                if cancelled(&opts.cancel) {
                    interrupted = true;
                    break 'objects;
                }
                let n = chunk_blocks.min(run.data_blocks - index);
                reads.submit(run_check.part(index, n), &mut emit)?;
                index += n;
            }
        }
    }
    reads.finish(&mut emit)?;
    report.interrupted |= interrupted;
    report.objects_verified += objects_verified;
    report.incomplete_objects.extend(incomplete);
    if !csum_damage.is_empty() {
        report.metadata_ok = false;
        report.metadata_damage.extend(csum_damage);
    }
    report.bytes_verified = report.blocks_verified * bs;
    // After every read: an eviction that did not take turns the source to the cache.
    (report.source, report.source_warning) = vol.read_source();
    report.elapsed = started.elapsed();
    Ok(report)
}
