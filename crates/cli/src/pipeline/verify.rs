//! The verify pipeline: ordered read bios → the end-I/O pool checks every block → results
//! reported in order. Superblocks and all metadata are checked too.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use stack_bio::{BufferPool, Device};
use stack_csum::{Algorithm, BlockCsum};

use super::glue::IoQueue;
use super::{CHUNK_BYTES, POOL_BUFFERS};
use crate::format::{ObjectKind, ObjectRecord, Run};
use crate::options::{cancelled, Progress, VerifyOptions};
use crate::pattern::{classify_file, classify_pattern, PatternHeader};
use crate::report::{Cause, DamagedRange, MetadataDamage, SuperblockState, VerifyReport};
use crate::volume::{load_table, read_slot, SlotRead, Volume, IO_ALIGN_BYTES};
use crate::Error;

/// What the end-I/O pool needs to check one chunk on its own.
#[derive(Clone)]
struct ChunkCheck {
    object: Arc<str>,
    object_id: u64,
    kind: ObjectKind,
    run: Run,
    /// Index of the chunk's first block in the run.
    first_index: u64,
    /// Logical offset of the run's first block.
    run_logical: u64,
    blocks: u64,
    expected: Arc<Vec<u64>>,
    csum: BlockCsum,
    algorithm: Algorithm,
    salt: u64,
    device: Arc<dyn Device>,
}

/// The outcome of one chunk.
struct ChunkResult {
    seq: u64,
    blocks: u64,
    damaged: Vec<DamagedRange>,
}

impl ChunkCheck {
    fn bs(&self) -> u64 {
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

    fn classify(&self, index: u64, found: &[u8]) -> Cause {
        let addr = self.run.data_start_block + index;
        match self.kind {
            ObjectKind::File => classify_file(found, addr, self.algorithm, self.salt),
            ObjectKind::Pattern { seed } => {
                let mut want = vec![0u8; found.len()];
                PatternHeader {
                    phys_block: addr,
                    object_id: self.object_id,
                    logical_offset: self.run_logical + index * self.bs(),
                    generation: self.run.write_generation,
                    seed,
                }
                .fill(self.salt, &mut want);
                classify_pattern(found, &want, addr, self.algorithm, self.salt)
            }
        }
    }

    /// Post-I/O: checks a chunk read in one bio; after an I/O error, retries block by block
    /// so only the unreadable blocks are reported as such.
    fn run(&self, buf: &[u8], io: Result<(), stack_bio::Error>) -> Vec<DamagedRange> {
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

impl Volume {
    /// Re-reads and checks the superblocks, the object table, every checksum block and
    /// every data block of every object (or of `opts.object`), and reports all damage in
    /// order. Free space is not read.
    pub fn verify(&self, opts: &VerifyOptions) -> Result<VerifyReport, Error> {
        let started = Instant::now();
        let mut report = VerifyReport {
            metadata_ok: true,
            ..VerifyReport::default()
        };
        self.verify_superblocks(&mut report);
        if let Err(e) = load_table(&*self.device, &self.sb).and_then(|t| {
            if t == self.table {
                Ok(())
            } else {
                Err(Error::Corrupt {
                    what: "object table",
                    offset: self.sb.meta_start_block * u64::from(self.sb.block_size_bytes),
                    detail: "differs from the table read at open".into(),
                })
            }
        }) {
            report.metadata_ok = false;
            report.metadata_damage.push(MetadataDamage {
                what: "object table".into(),
                object: None,
                physical_offset: self.sb.meta_start_block * u64::from(self.sb.block_size_bytes),
                detail: e.to_string(),
            });
        }
        let objects: Vec<&ObjectRecord> = match &opts.object {
            Some(name) => vec![self
                .find(name)
                .ok_or_else(|| Error::ObjectNotFound { name: name.clone() })?],
            None => self.table.objects.iter().collect(),
        };
        let total: u64 = objects.iter().map(|o| o.size_bytes).sum();
        let bs = u64::from(self.sb.block_size_bytes);
        let pool = BufferPool::new(POOL_BUFFERS, CHUNK_BYTES, IO_ALIGN_BYTES);
        let queue = IoQueue::new(self.device.clone(), self.pools.end_io.clone())?;
        let (tx, rx) = crossbeam_channel::unbounded::<ChunkResult>();
        let mut waiting: BTreeMap<u64, ChunkResult> = BTreeMap::new();
        let mut next_seq = 0u64;
        let mut seq = 0u64;
        let mut done_bytes = 0u64;
        let chunk_blocks = CHUNK_BYTES as u64 / bs;
        let mut emit = |r: ChunkResult, report: &mut VerifyReport| {
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
        };
        'objects: for record in objects {
            report.objects_verified += 1;
            if !record.complete {
                report.incomplete_objects.push(record.name.clone());
            }
            let object: Arc<str> = Arc::from(record.name.as_str());
            let mut run_logical = 0u64;
            for run in &record.runs {
                let expected = match self.load_run_csums(run) {
                    Ok(c) => c,
                    Err(e) => {
                        report.metadata_ok = false;
                        report.metadata_damage.push(MetadataDamage {
                            what: "checksum block".into(),
                            object: Some(record.name.clone()),
                            physical_offset: run.csum_start_block * bs,
                            detail: format!(
                                "checksums of logical bytes {}..{}: {e}",
                                run_logical,
                                run_logical + run.data_blocks * bs
                            ),
                        });
                        match self.rebuild_pattern_csums(record, run, run_logical) {
                            Some(c) => c,
                            None => {
                                // User data without its checksums cannot be checked.
                                run_logical += run.data_blocks * bs;
                                continue;
                            }
                        }
                    }
                };
                let expected = Arc::new(expected);
                let mut index = 0u64;
                while index < run.data_blocks {
                    if cancelled(&opts.cancel) {
                        report.interrupted = true;
                        break 'objects;
                    }
                    while let Ok(r) = rx.try_recv() {
                        waiting.insert(r.seq, r);
                    }
                    while let Some(r) = waiting.remove(&next_seq) {
                        emit(r, &mut report);
                        next_seq += 1;
                    }
                    let n = chunk_blocks.min(run.data_blocks - index);
                    let check = ChunkCheck {
                        object: object.clone(),
                        object_id: record.id,
                        kind: record.kind,
                        run: *run,
                        first_index: index,
                        run_logical,
                        blocks: n,
                        expected: expected.clone(),
                        csum: self.csum,
                        algorithm: self.sb.algorithm,
                        salt: self.salt,
                        device: self.device.clone(),
                    };
                    let mut buf = pool.get();
                    buf.set_len((n * bs) as usize);
                    let tx = tx.clone();
                    let my_seq = seq;
                    seq += 1;
                    queue.read((run.data_start_block + index) * bs, buf, move |buf, io| {
                        let damaged = check.run(&buf, io);
                        drop(buf);
                        let _ = tx.send(ChunkResult {
                            seq: my_seq,
                            blocks: check.blocks,
                            damaged,
                        });
                    });
                    index += n;
                }
                run_logical += run.data_blocks * bs;
            }
        }
        drop(tx);
        while next_seq < seq {
            let r = rx.recv().map_err(|_| Error::Corrupt {
                what: "verify pipeline",
                offset: 0,
                detail: "a chunk result was lost".into(),
            })?;
            waiting.insert(r.seq, r);
            while let Some(r) = waiting.remove(&next_seq) {
                emit(r, &mut report);
                next_seq += 1;
            }
        }
        report.bytes_verified = report.blocks_verified * bs;
        report.elapsed = started.elapsed();
        Ok(report)
    }

    /// Pattern objects survive damaged checksum blocks: the checksums are recomputed from
    /// the blocks that belong there.
    fn rebuild_pattern_csums(
        &self,
        record: &ObjectRecord,
        run: &Run,
        run_logical: u64,
    ) -> Option<Vec<u64>> {
        let ObjectKind::Pattern { seed } = record.kind else {
            return None;
        };
        let bs = self.sb.block_size_bytes as usize;
        let mut block = vec![0u8; bs];
        Some(
            (0..run.data_blocks)
                .map(|i| {
                    self.expected_pattern_block(
                        record,
                        run,
                        run_logical + i * bs as u64,
                        i,
                        seed,
                        &mut block,
                    );
                    self.csum.block(run.data_start_block + i, &block)
                })
                .collect(),
        )
    }

    fn verify_superblocks(&self, report: &mut VerifyReport) {
        for slot in 0..2u8 {
            let state = match read_slot(&*self.device, slot) {
                SlotRead::Empty(why) | SlotRead::Bad(why) => {
                    SuperblockState::Damaged { reason: why }
                }
                SlotRead::Valid(sb) if sb.uuid != self.sb.uuid => SuperblockState::Damaged {
                    reason: "belongs to another volume".into(),
                },
                SlotRead::Valid(sb) if sb.generation == self.sb.generation => {
                    if sb == self.sb {
                        SuperblockState::Ok {
                            generation: sb.generation,
                        }
                    } else {
                        SuperblockState::Damaged {
                            reason: "differs from the copy in use".into(),
                        }
                    }
                }
                SlotRead::Valid(sb) if sb.generation > self.sb.generation => {
                    // Open fell back past this copy; say where its metadata breaks, so
                    // the report locates the damage as exactly as `info` does.
                    let detail = match load_table(&*self.device, &sb) {
                        Err(e) => e.to_string(),
                        Ok(_) => "its metadata verifies now but did not when the volume was opened"
                            .into(),
                    };
                    report.metadata_ok = false;
                    report.metadata_damage.push(MetadataDamage {
                        what: format!(
                            "object table of generation {} (superblock slot {slot})",
                            sb.generation
                        ),
                        object: None,
                        physical_offset: sb
                            .meta_start_block
                            .saturating_mul(u64::from(sb.block_size_bytes)),
                        detail: detail.clone(),
                    });
                    SuperblockState::Damaged {
                        reason: format!(
                            "generation {} is newer than the state in use but its metadata does not verify: {detail}",
                            sb.generation
                        ),
                    }
                }
                SlotRead::Valid(sb) => match load_table(&*self.device, &sb) {
                    Ok(_) => SuperblockState::Ok {
                        generation: sb.generation,
                    },
                    Err(e) => SuperblockState::Damaged {
                        reason: format!(
                            "generation {}: metadata does not verify: {e}",
                            sb.generation
                        ),
                    },
                },
            };
            report.superblocks[usize::from(slot)] = Some(state);
        }
    }
}
