//! Reading objects back, every block verified, and what verify and read share: loading a
//! run's checksums and saying what happened to a damaged block.

use std::io::Write;

use stack_bio::AlignedBuf;

use super::{read_blocks, Volume};
use crate::format::{decode_csums, decode_meta_stream, MetaKind, Run};
use crate::Error;

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
        let csum = self.run_extents(run)[1];
        let bytes = read_blocks(
            &*self.device,
            csum.start,
            csum.len,
            self.sb.block_size_bytes,
        )?;
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
        let csum = self.run_extents(run)[1];
        let (start, blocks) = (csum.start, csum.len);
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
        Ok(decode_csums(&payload, width))
    }

    /// Writes object `name` to `out`, verifying every block first; a damaged block is an
    /// [`Error::Damaged`] naming the object and offset. Returns the bytes written.
    pub fn read(&self, name: &str, out: &mut dyn Write) -> Result<u64, Error> {
        let record = self.find(name).ok_or_else(|| Error::ObjectNotFound {
            name: name.to_string(),
        })?;
        crate::pipeline::read_object(self, record, out)
    }
}
