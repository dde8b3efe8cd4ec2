//! Checking one chunk of a run: every block against its stored checksum, and what
//! happened to each block that fails (flipped bits, stale, torn, misdirected, unreadable).
//! The one block classification: verify reports it, `read` stops at the first.

use std::sync::Arc;

use stack_bio::Device;
use stack_csum::{Algorithm, BlockCsum};

use crate::format::{ObjectKind, ObjectRecord, Run};
use crate::pattern::{classify_file, classify_pattern, PatternHeader};
use crate::report::{Cause, DamagedRange};
use crate::volume::{Volume, IO_ALIGN_BYTES};

/// What a verify worker needs to check one chunk (consecutive blocks of a run) on its own.
#[derive(Clone)]
pub(super) struct ChunkCheck {
    pub(super) object: Arc<str>,
    pub(super) object_id: u64,
    pub(super) kind: ObjectKind,
    pub(super) run: Run,
    /// Index of the chunk's first block in the run.
    pub(super) first_index: u64,
    /// Logical offset of the run's first block.
    pub(super) run_logical: u64,
    pub(super) blocks: u64,
    pub(super) expected: Arc<Vec<u64>>,
    pub(super) csum: BlockCsum,
    pub(super) algorithm: Algorithm,
    pub(super) salt: u64,
    pub(super) device: Arc<dyn Device>,
}

impl ChunkCheck {
    /// The whole of `run` of `record` (at `run_logical` in the object), its checksums
    /// still to be given ([`ChunkCheck::with_expected`]); [`ChunkCheck::part`] cuts it
    /// into chunks.
    pub(super) fn new(
        vol: &Volume,
        record: &ObjectRecord,
        object: Arc<str>,
        run: Run,
        run_logical: u64,
    ) -> ChunkCheck {
        let view = vol.check_view();
        ChunkCheck {
            object,
            object_id: record.id,
            kind: record.kind,
            run,
            first_index: 0,
            run_logical,
            blocks: run.data_blocks,
            expected: Arc::default(),
            csum: view.csum,
            algorithm: view.algorithm,
            salt: view.salt,
            device: view.device,
        }
    }

    pub(super) fn bs(&self) -> u64 {
        self.csum.block_size_bytes() as u64
    }

    fn range(
        &self,
        index: u64,
        cause: Cause,
        expected: Option<u64>,
        found: Option<u64>,
    ) -> DamagedRange {
        let bs = self.bs();
        DamagedRange {
            object: self.object.to_string(),
            logical_offset: self.run_logical + index * bs,
            physical_offset: (self.run.data_start_block + index) * bs,
            length: bs,
            cause,
            expected_csum: expected,
            found_csum: found,
        }
    }

    /// Checks block `index` of the run (content `found`), pushing any damage.
    fn check_block(&self, index: u64, found: &[u8], out: &mut Vec<DamagedRange>) {
        let addr = self.run.data_start_block + index;
        let expected = self.expected[index as usize];
        let sum = self.csum.block(addr, found);
        if sum == expected {
            return;
        }
        let cause = self.classify(index, found);
        out.push(self.range(index, cause, Some(expected), Some(sum)));
    }

    /// The block that belongs at block `index` of the run of a pattern object.
    fn pattern_block(&self, seed: u64, index: u64, out: &mut [u8]) {
        PatternHeader {
            phys_block: self.run.data_start_block + index,
            object_id: self.object_id,
            logical_offset: self.run_logical + index * self.bs(),
            generation: self.run.write_generation,
            seed,
        }
        .fill(self.salt, out);
    }

    /// What happened to block `index` of the run, whose content `found` failed its
    /// checksum.
    fn classify(&self, index: u64, found: &[u8]) -> Cause {
        let addr = self.run.data_start_block + index;
        match self.kind {
            ObjectKind::File => classify_file(found, addr, self.algorithm, self.salt),
            ObjectKind::Pattern { seed } => {
                let mut want = vec![0u8; found.len()];
                self.pattern_block(seed, index, &mut want);
                classify_pattern(found, &want, addr, self.algorithm, self.salt)
            }
        }
    }

    /// Pattern objects survive damaged checksum blocks: the run's checksums recomputed
    /// from the blocks that belong there (`None` for user data).
    pub(super) fn rebuilt_csums(&self) -> Option<Vec<u64>> {
        let ObjectKind::Pattern { seed } = self.kind else {
            return None;
        };
        let mut block = vec![0u8; self.bs() as usize];
        Some(
            (0..self.run.data_blocks)
                .map(|i| {
                    self.pattern_block(seed, i, &mut block);
                    self.csum.block(self.run.data_start_block + i, &block)
                })
                .collect(),
        )
    }

    /// This check with the run's stored (or rebuilt) checksums.
    pub(super) fn with_expected(self, expected: Vec<u64>) -> ChunkCheck {
        assert_eq!(expected.len() as u64, self.run.data_blocks);
        ChunkCheck {
            expected: Arc::new(expected),
            ..self
        }
    }

    /// Post-I/O: checks a chunk read in one bio; after an I/O error, retries block by block
    /// so only the unreadable blocks are reported as such.
    pub(super) fn run(&self, buf: &[u8], io: Result<(), stack_bio::Error>) -> Vec<DamagedRange> {
        let bs = self.bs() as usize;
        let mut out = Vec::new();
        match io {
            Ok(()) => {
                let mut mismatches = Vec::new();
                let first = self.first_index as usize;
                let expected = &self.expected[first..first + self.blocks as usize];
                let addr = self.run.data_start_block + self.first_index;
                if self
                    .csum
                    .verify(
                        addr,
                        &buf[..self.blocks as usize * bs],
                        expected,
                        &mut mismatches,
                    )
                    .is_err()
                {
                    // Shape errors cannot happen (whole blocks, one checksum each); check
                    // block by block rather than trust it.
                    for i in 0..self.blocks {
                        self.check_block(
                            self.first_index + i,
                            &buf[i as usize * bs..(i as usize + 1) * bs],
                            &mut out,
                        );
                    }
                    return out;
                }
                for m in mismatches {
                    let index = self.first_index + m.index as u64;
                    let found = &buf[m.index * bs..(m.index + 1) * bs];
                    out.push(self.range(
                        index,
                        self.classify(index, found),
                        Some(m.expected),
                        Some(m.found),
                    ));
                }
            }
            Err(_) => {
                let mut one = stack_bio::AlignedBuf::new(bs, IO_ALIGN_BYTES);
                for i in 0..self.blocks {
                    let index = self.first_index + i;
                    match self
                        .device
                        .read_at(&mut one, (self.run.data_start_block + index) * bs as u64)
                    {
                        Ok(()) => self.check_block(index, &one, &mut out),
                        Err(_) => out.push(self.range(
                            index,
                            Cause::Unreadable,
                            Some(self.expected[index as usize]),
                            None,
                        )),
                    }
                }
            }
        }
        out
    }
}

impl ChunkCheck {
    /// Byte offset of the chunk's first block on the device.
    pub(super) fn physical_offset(&self) -> u64 {
        (self.run.data_start_block + self.first_index) * self.bs()
    }

    /// The `blocks` blocks starting `skip_blocks` into this chunk, as a chunk of their own.
    pub(super) fn part(&self, skip_blocks: u64, blocks: u64) -> ChunkCheck {
        assert!(skip_blocks < self.blocks);
        assert!(blocks <= self.blocks - skip_blocks);
        ChunkCheck {
            first_index: self.first_index + skip_blocks,
            blocks,
            ..self.clone()
        }
    }
}
