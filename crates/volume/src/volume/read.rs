//! Reading objects back, every block verified, and what verify and read share: loading a
//! run's checksums and saying what happened to a damaged block.

use std::io::Write;

use stack_bio::AlignedBuf;

use super::{read_blocks, Volume};
use crate::format::{decode_meta_stream, MetaKind, ObjectKind, ObjectRecord, Run};
use crate::pattern::{classify_file, classify_pattern, PatternHeader};
use crate::report::Cause;
use crate::Error;

/// Blocks read per I/O by `read`.
const READ_CHUNK_BYTES: u64 = 1 << 20;

/// Bytes of checksum blocks one read of a [`CsumWindow`] covers.
const CSUM_WINDOW_BYTES: u64 = 1 << 20;

/// Checksum blocks read ahead for the next runs of an object.
///
/// The checksum streams of the runs written in one commit interval lie next to each
/// other (`docs/FORMAT.md`), so one read of a window serves many runs. A read per run
/// (4-12 KiB for a run of a few MiB) is synchronous and, under `O_DIRECT`, waits behind
/// every data read in flight: for a 1 GiB object, 186 of them kept verify's main thread
/// from queueing data reads for 0.5 s of a 1.5 s run (strace -T).
#[derive(Debug, Default)]
pub(crate) struct CsumWindow {
    start_block: u64,
    bytes: Option<AlignedBuf>,
}

impl CsumWindow {
    /// The bytes of blocks `start..end` if the window holds all of them.
    fn get(&self, start: u64, end: u64, block_size_bytes: u64) -> Option<&[u8]> {
        let bytes = self.bytes.as_ref()?;
        let held_end = self.start_block + bytes.len() as u64 / block_size_bytes;
        if start < self.start_block || end > held_end {
            return None;
        }
        let from = usize::try_from((start - self.start_block) * block_size_bytes).ok()?;
        let to = usize::try_from((end - self.start_block) * block_size_bytes).ok()?;
        Some(&bytes[from..to])
    }
}

impl Volume {
    /// The stored checksums of a run's data blocks, from its checksum blocks.
    pub(crate) fn load_run_csums(&self, run: &Run) -> Result<Vec<u64>, Error> {
        let bs = self.sb.block_size_bytes;
        let blocks = run.csum_blocks(bs, self.sb.algorithm.width_bytes());
        let bytes = read_blocks(&*self.device, run.csum_start_block, blocks, bs)?;
        self.decode_run_csums(run, &bytes)
    }

    /// [`Volume::load_run_csums`] through `window`, which reads [`CSUM_WINDOW_BYTES`] at a
    /// time. A window that cannot be read (a bad sector somewhere in it, the end of the
    /// volume) falls back to reading the run's own blocks, so damage next to a run's
    /// checksums is never blamed on them.
    pub(crate) fn load_run_csums_via(
        &self,
        window: &mut CsumWindow,
        run: &Run,
    ) -> Result<Vec<u64>, Error> {
        let bs = u64::from(self.sb.block_size_bytes);
        let blocks = run.csum_blocks(self.sb.block_size_bytes, self.sb.algorithm.width_bytes());
        let start = run.csum_start_block;
        let Some(end) = start.checked_add(blocks) else {
            return self.load_run_csums(run);
        };
        if window.get(start, end, bs).is_none() {
            window.bytes = None;
            let window_end = start
                .saturating_add((CSUM_WINDOW_BYTES / bs).max(blocks))
                .min(self.sb.total_blocks);
            if window_end < end {
                return self.load_run_csums(run);
            }
            match read_blocks(
                &*self.device,
                start,
                window_end - start,
                self.sb.block_size_bytes,
            ) {
                Ok(bytes) => {
                    window.start_block = start;
                    window.bytes = Some(bytes);
                }
                Err(_) => return self.load_run_csums(run),
            }
        }
        match window.get(start, end, bs) {
            Some(bytes) => self.decode_run_csums(run, bytes),
            None => self.load_run_csums(run),
        }
    }

    fn decode_run_csums(&self, run: &Run, bytes: &[u8]) -> Result<Vec<u64>, Error> {
        let width = self.sb.algorithm.width_bytes();
        let mut payload = Vec::new();
        decode_meta_stream(
            bytes,
            run.csum_start_block,
            MetaKind::Checksums,
            run.write_generation,
            run.data_blocks * width as u64,
            self.sb.algorithm,
            self.salt,
            self.sb.block_size_bytes,
            &mut payload,
        )?;
        Ok(payload.chunks_exact(width).map(decode_csum).collect())
    }

    /// The block that belongs at block `index` of `run` of a pattern object.
    pub(crate) fn expected_pattern_block(
        &self,
        record: &ObjectRecord,
        run: &Run,
        logical_offset: u64,
        index: u64,
        seed: u64,
        out: &mut [u8],
    ) {
        PatternHeader {
            phys_block: run.data_start_block + index,
            object_id: record.id,
            logical_offset,
            generation: run.write_generation,
            seed,
        }
        .fill(self.salt, out);
    }

    /// What happened to block `index` of `run` (at `logical_offset` in the object), whose
    /// content `found` failed its checksum.
    pub(crate) fn classify(
        &self,
        record: &ObjectRecord,
        run: &Run,
        logical_offset: u64,
        index: u64,
        found: &[u8],
    ) -> Cause {
        let addr = run.data_start_block + index;
        match record.kind {
            ObjectKind::File => classify_file(found, addr, self.sb.algorithm, self.salt),
            ObjectKind::Pattern { seed } => {
                let mut expected = vec![0u8; found.len()];
                self.expected_pattern_block(
                    record,
                    run,
                    logical_offset,
                    index,
                    seed,
                    &mut expected,
                );
                classify_pattern(found, &expected, addr, self.sb.algorithm, self.salt)
            }
        }
    }

    /// Writes object `name` to `out`, verifying every block first; a damaged block is an
    /// [`Error::Damaged`] naming the object and offset. Returns the bytes written.
    pub fn read(&self, name: &str, out: &mut dyn Write) -> Result<u64, Error> {
        let record = self.find(name).ok_or_else(|| Error::ObjectNotFound {
            name: name.to_string(),
        })?;
        let bs = u64::from(self.sb.block_size_bytes);
        let chunk_blocks = (READ_CHUNK_BYTES / bs).max(1);
        let mut logical = 0u64;
        let mut mismatches = Vec::new();
        let mut csum_window = CsumWindow::default();
        for run in &record.runs {
            let csums = self
                .load_run_csums_via(&mut csum_window, run)
                .map_err(|e| Error::DamagedChecksums {
                    object: record.name.clone(),
                    logical_offset: logical,
                    logical_end: logical + run.data_blocks * bs,
                    physical_offset: run.csum_start_block * bs,
                    detail: e.to_string(),
                })?;
            assert_eq!(csums.len() as u64, run.data_blocks);
            let mut index = 0u64;
            while index < run.data_blocks {
                let n = chunk_blocks.min(run.data_blocks - index);
                let buf = read_blocks(
                    &*self.device,
                    run.data_start_block + index,
                    n,
                    self.sb.block_size_bytes,
                )
                .map_err(|e| match e {
                    // A block the device cannot return is damage, as verify reports it;
                    // block by block, so the report names the first unreadable one.
                    Error::Device(stack_bio::Error::Io { .. }) => {
                        let first = (0..n)
                            .find(|&i| {
                                read_blocks(
                                    &*self.device,
                                    run.data_start_block + index + i,
                                    1,
                                    self.sb.block_size_bytes,
                                )
                                .is_err()
                            })
                            .unwrap_or(0);
                        Error::Damaged {
                            object: record.name.clone(),
                            logical_offset: logical + first * bs,
                            physical_offset: (run.data_start_block + index + first) * bs,
                            cause: Cause::Unreadable,
                        }
                    }
                    other => other,
                })?;
                mismatches.clear();
                let range = index as usize..(index + n) as usize;
                self.csum.verify(
                    run.data_start_block + index,
                    &buf,
                    &csums[range],
                    &mut mismatches,
                )?;
                if let Some(m) = mismatches.first() {
                    let i = m.index as u64;
                    let block = &buf[(i * bs) as usize..((i + 1) * bs) as usize];
                    let block_logical = logical + i * bs;
                    return Err(Error::Damaged {
                        object: record.name.clone(),
                        logical_offset: block_logical,
                        physical_offset: (run.data_start_block + index + i) * bs,
                        cause: self.classify(record, run, block_logical, index + i, block),
                    });
                }
                let take = (n * bs).min(record.size_bytes - logical);
                out.write_all(&buf[..take as usize])
                    .map_err(|source| Error::Output {
                        name: record.name.clone(),
                        offset: logical,
                        source,
                    })?;
                logical += take;
                index += n;
            }
        }
        assert_eq!(logical, record.size_bytes);
        Ok(logical)
    }
}

/// A stored checksum (4 or 8 bytes, little-endian) as a `u64`.
pub(crate) fn decode_csum(bytes: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b[..bytes.len()].copy_from_slice(bytes);
    u64::from_le_bytes(b)
}

/// Appends a checksum in its stored width.
pub(crate) fn encode_csum(value: u64, width_bytes: usize, out: &mut Vec<u8>) {
    out.extend_from_slice(&value.to_le_bytes()[..width_bytes]);
}
