//! Reading objects back, every block verified, and what verify and read share: loading a
//! run's checksums and saying what happened to a damaged block.

use std::io::Write;

use super::{read_blocks, Volume};
use crate::format::{decode_meta_stream, MetaKind, ObjectKind, ObjectRecord, Run};
use crate::pattern::{classify_file, classify_pattern, PatternHeader};
use crate::report::Cause;
use crate::Error;

/// Blocks read per I/O by `read`.
const READ_CHUNK_BYTES: u64 = 1 << 20;

impl Volume {
    /// The stored checksums of a run's data blocks, from its checksum blocks.
    pub(crate) fn load_run_csums(&self, run: &Run) -> Result<Vec<u64>, Error> {
        let bs = self.sb.block_size_bytes;
        let width = self.sb.algorithm.width_bytes();
        let blocks = run.csum_blocks(bs, width);
        let bytes = read_blocks(&*self.device, run.csum_start_block, blocks, bs)?;
        let mut payload = Vec::new();
        decode_meta_stream(
            &bytes,
            run.csum_start_block,
            MetaKind::Checksums,
            run.write_generation,
            run.data_blocks * width as u64,
            self.sb.algorithm,
            self.salt,
            bs,
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
        for run in &record.runs {
            let csums = self.load_run_csums(run)?;
            assert_eq!(csums.len() as u64, run.data_blocks);
            let mut index = 0u64;
            while index < run.data_blocks {
                let n = chunk_blocks.min(run.data_blocks - index);
                let buf = read_blocks(
                    &*self.device,
                    run.data_start_block + index,
                    n,
                    self.sb.block_size_bytes,
                )?;
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
