//! The probe's rounds: plan the spread, write, defeat the cache, read back, then confirm a
//! wrap distance or narrow a boundary inside the write budget.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use stack_bio::{AlignedBuf, Device};

use super::{
    default_budget_bytes, Evidence, Found, ProbeOptions, ProbeReport, ProbeVerdict,
    ProbeVerdictKind, MAX_EVIDENCE, MIN_PROBE_BUDGET_BLOCKS, PROBE_BLOCK_BYTES,
};
use crate::pattern::PatternHeader;
use crate::Error;

/// `"STKPROBE"`: the object id probe blocks carry in their pattern header.
const PROBE_OBJECT_ID: u64 = u64::from_le_bytes(*b"STKPROBE");
/// Salts the probe's pattern stream apart from volume data.
const PROBE_SALT: u64 = 0x7072_6f62_6573_616c;
/// Blocks per write or read of the dense run (and of the cache-defeating reads).
const CHUNK_BLOCKS: u64 = 256;
/// Probes per narrowing round: each round shrinks the bracket about 16 times.
const NARROW_PER_ROUND: u64 = 15;
/// Most rounds that confirm a wrap distance (each removes at least one prime factor).
const MAX_CONFIRM_ROUNDS: u32 = 64;

pub(super) fn is_probe_header(block: &[u8]) -> bool {
    PatternHeader::parse(block).is_some_and(|h| h.object_id == PROBE_OBJECT_ID)
}

/// What one probe block read back as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Read {
    /// Its own block, of the expected round.
    Good,
    /// A block of this run written for another position (block number).
    Alias(u64),
    /// Not its block.
    Lost(Found),
}

/// Where the first round's probes go: a dense run of `dense` blocks from block 0, then
/// one block every `spacing` blocks from `dense` on, and the last block.
#[derive(Debug, Clone, Copy)]
struct Plan {
    blocks: u64,
    dense: u64,
    spacing: u64,
    /// Blocks kept back for confirming a wrap or narrowing a boundary.
    reserve: u64,
}

impl Plan {
    fn new(blocks: u64, budget_blocks: u64) -> Plan {
        let reserve = (budget_blocks / 4).clamp(32, 512).min(budget_blocks / 2);
        let spread = budget_blocks - reserve;
        let dense = isqrt(blocks).clamp(1, (spread / 2).max(1));
        let spacing = (blocks.saturating_sub(dense))
            .div_ceil(spread.saturating_sub(dense + 1).max(1))
            .max(dense)
            .max(1);
        Plan {
            blocks,
            dense,
            spacing,
            reserve,
        }
    }

    /// The first probe at or above any wrap lands in the dense run (see the module
    /// docs): the spacing is at most the run.
    fn catches_every_wrap(&self) -> bool {
        self.spacing <= self.dense
    }

    fn high(&self) -> Vec<u64> {
        let mut high: Vec<u64> = (self.dense..self.blocks)
            .step_by(self.spacing as usize)
            .collect();
        if high.last() != Some(&(self.blocks - 1)) {
            high.push(self.blocks - 1);
        }
        high
    }
}

pub(super) struct Prober<'a> {
    dev: &'a dyn Device,
    block_bytes: u64,
    blocks: u64,
    budget_blocks: u64,
    written_blocks: u64,
    read_bytes: u64,
    rounds: u32,
    nonce: u64,
    salt: u64,
    generation: u64,
    cache_defeat_bytes: u64,
    cancel: Option<Arc<AtomicBool>>,
}

/// Greatest common divisor.
fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Integer square root.
fn isqrt(n: u64) -> u64 {
    let mut r = (n as f64).sqrt() as u64;
    while r.saturating_mul(r) > n {
        r -= 1;
    }
    while (r + 1).saturating_mul(r + 1) <= n {
        r += 1;
    }
    r
}

/// The distinct prime factors of `n` (trial division: `n` is a block count).
fn prime_factors(mut n: u64) -> Vec<u64> {
    let mut out = Vec::new();
    let mut f = 2u64;
    while f.saturating_mul(f) <= n {
        if n % f == 0 {
            out.push(f);
            while n % f == 0 {
                n /= f;
            }
        }
        f += if f == 2 { 1 } else { 2 };
    }
    if n > 1 {
        out.push(n);
    }
    out
}

impl<'a> Prober<'a> {
    pub(super) fn new(dev: &'a dyn Device, opts: &ProbeOptions) -> Result<Self, Error> {
        let size = dev.size_bytes();
        let default = default_budget_bytes(size);
        let budget_bytes = opts.budget_bytes.unwrap_or(default).min(default);
        let lbs = u64::from(dev.logical_block_size());
        let mut block_bytes = opts.block_bytes.unwrap_or(PROBE_BLOCK_BYTES).max(lbs);
        if opts.block_bytes.is_none() {
            // Smaller blocks where 4 KiB ones leave too few in the budget to catch every
            // wrap (small devices): the budget holds 2√n blocks sooner.
            while block_bytes / 2 >= lbs.max(512)
                && !Plan::new(size / block_bytes, budget_bytes / block_bytes).catches_every_wrap()
            {
                block_bytes /= 2;
            }
        }
        if !block_bytes.is_power_of_two() || !(512..=1 << 20).contains(&block_bytes) {
            return Err(Error::InvalidOption {
                option: "block_bytes",
                reason: format!("{block_bytes}: not a power of two from 512 to 1 MiB"),
            });
        }
        let budget_blocks = budget_bytes / block_bytes;
        if budget_blocks < MIN_PROBE_BUDGET_BLOCKS {
            return Err(Error::ProbeBudget {
                device: dev.info().path,
                size_bytes: size,
                budget_bytes,
                min_bytes: MIN_PROBE_BUDGET_BLOCKS * block_bytes,
            });
        }
        assert!(block_bytes % lbs == 0);
        Ok(Prober {
            dev,
            block_bytes,
            blocks: size / block_bytes,
            budget_blocks,
            written_blocks: 0,
            read_bytes: 0,
            rounds: 0,
            nonce: opts.nonce,
            salt: opts.nonce ^ PROBE_SALT,
            generation: 0,
            cache_defeat_bytes: opts.cache_defeat_bytes,
            cancel: opts.cancel.clone(),
        })
    }

    fn check_cancel(&self) -> Result<(), Error> {
        if self
            .cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Relaxed))
        {
            return Err(Error::Interrupted);
        }
        Ok(())
    }

    fn budget_left(&self) -> u64 {
        self.budget_blocks - self.written_blocks
    }

    fn header(&self, block: u64) -> PatternHeader {
        PatternHeader {
            phys_block: block,
            object_id: PROBE_OBJECT_ID,
            logical_offset: block * self.block_bytes,
            generation: self.generation,
            seed: self.nonce,
        }
    }

    fn buf(&self, blocks: u64) -> AlignedBuf {
        let bs = self.block_bytes as usize;
        AlignedBuf::new(blocks as usize * bs, bs.max(4096))
    }

    /// Writes the probe blocks `start..start + count` (one round's generation).
    fn write_run(&mut self, start: u64, count: u64) -> Result<(), Error> {
        assert!(self.written_blocks + count <= self.budget_blocks);
        assert!(start + count <= self.blocks);
        let mut at = start;
        while at < start + count {
            self.check_cancel()?;
            let n = CHUNK_BLOCKS.min(start + count - at);
            let mut buf = self.buf(n);
            for (i, block) in buf.chunks_exact_mut(self.block_bytes as usize).enumerate() {
                self.header(at + i as u64).fill(self.salt, block);
            }
            self.dev.write_at(&buf, at * self.block_bytes)?;
            self.written_blocks += n;
            at += n;
        }
        Ok(())
    }

    /// Writes one probe block; a failed write is a lost block, not the end of the probe.
    fn write_one(&mut self, block: u64) -> Result<Option<Found>, Error> {
        assert!(self.written_blocks < self.budget_blocks);
        assert!(block < self.blocks);
        self.check_cancel()?;
        let mut buf = self.buf(1);
        self.header(block).fill(self.salt, &mut buf);
        self.written_blocks += 1;
        Ok(match self.dev.write_at(&buf, block * self.block_bytes) {
            Ok(()) => None,
            Err(_) => Some(Found::WriteFailed),
        })
    }

    /// What the bytes read at `block` are, for a probe written in this round.
    fn classify(&self, found: &[u8], block: u64) -> Read {
        if found.iter().all(|&b| b == 0) {
            return Read::Lost(Found::Zeros);
        }
        let Some(h) = PatternHeader::parse(found) else {
            return Read::Lost(Found::OtherData);
        };
        if h.object_id != PROBE_OBJECT_ID
            || h.phys_block >= self.blocks
            || h.logical_offset != h.phys_block.wrapping_mul(self.block_bytes)
        {
            return Read::Lost(Found::OtherData);
        }
        if h.seed != self.nonce {
            return Read::Lost(if h.phys_block == block {
                Found::Stale
            } else {
                Found::OtherData
            });
        }
        let mut want = vec![0u8; found.len()];
        h.fill(self.salt, &mut want);
        if want != found {
            return Read::Lost(Found::OtherData);
        }
        match (h.phys_block == block, h.generation == self.generation) {
            (true, true) => Read::Good,
            (true, false) => Read::Lost(Found::Stale),
            (false, _) => Read::Alias(h.phys_block),
        }
    }

    fn read_one(&mut self, block: u64) -> Result<Read, Error> {
        self.check_cancel()?;
        let mut buf = self.buf(1);
        self.read_bytes += self.block_bytes;
        Ok(match self.dev.read_at(&mut buf, block * self.block_bytes) {
            Ok(()) => self.classify(&buf, block),
            Err(_) => Read::Lost(Found::Unreadable),
        })
    }

    /// Reads `start..start + count` back, block by block where a chunk fails.
    fn read_run(
        &mut self,
        start: u64,
        count: u64,
        out: &mut Vec<(u64, Read)>,
    ) -> Result<(), Error> {
        let bs = self.block_bytes as usize;
        let mut at = start;
        while at < start + count {
            self.check_cancel()?;
            let n = CHUNK_BLOCKS.min(start + count - at);
            let mut buf = self.buf(n);
            self.read_bytes += n * self.block_bytes;
            if self.dev.read_at(&mut buf, at * self.block_bytes).is_ok() {
                for (i, block) in buf.chunks_exact(bs).enumerate() {
                    out.push((at + i as u64, self.classify(block, at + i as u64)));
                }
            } else {
                for b in at..at + n {
                    out.push((b, self.read_one(b)?));
                }
            }
            at += n;
        }
        Ok(())
    }

    /// Flushes, then reads `cache_defeat_bytes` from `from_block` on (wrapping to the
    /// start), so what the probes read next comes from the media, not a drive cache.
    fn defeat_cache(&mut self, from_block: u64) -> Result<(), Error> {
        self.dev.flush()?;
        let total = self
            .cache_defeat_bytes
            .div_ceil(self.block_bytes)
            .min(self.blocks);
        let mut buf = self.buf(CHUNK_BLOCKS);
        let mut done = 0;
        let mut at = from_block % self.blocks;
        while done < total {
            self.check_cancel()?;
            let n = CHUNK_BLOCKS.min(total - done).min(self.blocks - at);
            let len = (n * self.block_bytes) as usize;
            // Errors are the fake's business here: the point is only to evict.
            let _ = self.dev.read_at(&mut buf[..len], at * self.block_bytes);
            self.read_bytes += n * self.block_bytes;
            done += n;
            at = (at + n) % self.blocks;
        }
        Ok(())
    }

    pub(super) fn run(mut self) -> Result<ProbeReport, Error> {
        let plan = Plan::new(self.blocks, self.budget_blocks);
        let (dense, spacing) = (plan.dense, plan.spacing);
        let high = plan.high();
        assert!(dense + high.len() as u64 + plan.reserve <= self.budget_blocks);

        self.generation = 1;
        self.rounds = 1;
        self.write_run(0, dense)?;
        let mut results = Vec::with_capacity(dense as usize + high.len());
        let mut failed = Vec::new();
        // From the top down: the last write to a shared place is the lowest alias.
        for &b in high.iter().rev() {
            if let Some(found) = self.write_one(b)? {
                failed.push((b, Read::Lost(found)));
            }
        }
        self.defeat_cache(dense)?;
        self.read_run(0, dense, &mut results)?;
        for &b in &high {
            if !failed.iter().any(|&(f, _)| f == b) {
                let r = self.read_one(b)?;
                results.push((b, r));
            }
        }
        results.extend(failed);
        results.sort_by_key(|&(b, _)| b);

        let verdict = if results.iter().any(|(_, r)| matches!(r, Read::Alias(_))) {
            self.wrap(&results)?
        } else if results.iter().any(|(_, r)| matches!(r, Read::Lost(_))) {
            self.boundary(results)?
        } else {
            ProbeVerdict {
                kind: ProbeVerdictKind::NoFakeFound,
                usable_bytes: None,
                precision_bytes: None,
                evidence: vec![Evidence::AllRead {
                    blocks: dense + high.len() as u64,
                    spacing_bytes: spacing * self.block_bytes,
                    catches_every_wrap: plan.catches_every_wrap(),
                }],
            }
        };
        assert!(self.written_blocks <= self.budget_blocks);
        Ok(ProbeReport {
            advertised_bytes: self.dev.size_bytes(),
            block_bytes: self.block_bytes,
            verdict,
            blocks_written: self.written_blocks,
            bytes_written: self.written_blocks * self.block_bytes,
            budget_bytes: self.budget_blocks * self.block_bytes,
            bytes_read: self.read_bytes,
            rounds: self.rounds,
        })
    }

    fn reappears(&self, read_at: u64, names: u64) -> Evidence {
        Evidence::Reappears {
            read_at_bytes: read_at * self.block_bytes,
            names_bytes: names * self.block_bytes,
            distance_bytes: read_at.abs_diff(names) * self.block_bytes,
        }
    }

    /// Data reappears: the wrap divides every distance seen. Confirms the smallest
    /// candidate by testing each distance `g / f` (f a prime of `g`) from an anchor.
    fn wrap(&mut self, results: &[(u64, Read)]) -> Result<ProbeVerdict, Error> {
        let mut seen: Vec<(u64, u64)> = results
            .iter()
            .filter_map(|&(b, r)| match r {
                Read::Alias(names) => Some((b, names)),
                _ => None,
            })
            .collect();
        seen.sort_by_key(|&(b, names)| (b.abs_diff(names), b));
        let mut g = seen
            .iter()
            .fold(0, |g, &(b, names)| gcd(g, b.abs_diff(names)));
        let mut evidence: Vec<Evidence> = seen
            .iter()
            .take(MAX_EVIDENCE)
            .map(|&(b, names)| self.reappears(b, names))
            .collect();
        let mut confirmed = false;
        for _ in 0..MAX_CONFIRM_ROUNDS {
            let tests: Vec<u64> = prime_factors(g).into_iter().map(|f| g / f).collect();
            if tests.is_empty() {
                confirmed = true;
                break;
            }
            if self.budget_left() < 2 * tests.len() as u64 {
                break;
            }
            self.generation += 1;
            self.rounds += 1;
            // Tests from the farthest down, anchors from the highest down: partners
            // `anchor + distance` then fall strictly, so no two land on one block, and
            // each is at least 2^(k-1) >= k, above every anchor. Partners go after
            // every anchor. Any block that reappears is evidence, whichever test it was.
            let mut tests = tests;
            tests.sort_unstable_by(|a, b| b.cmp(a));
            let k = tests.len() as u64;
            self.write_run(0, k)?;
            let mut untestable = false;
            for (i, &t) in tests.iter().enumerate() {
                let partner = (k - 1 - i as u64) + t;
                if partner < self.blocks {
                    self.write_one(partner)?;
                } else {
                    untestable = true;
                }
            }
            self.defeat_cache(k)?;
            let mut back = Vec::new();
            self.read_run(0, k, &mut back)?;
            let mut next = 0;
            let mut all_clear = !untestable;
            for &(a, r) in &back {
                match r {
                    Read::Good => {}
                    Read::Alias(names) => {
                        next = gcd(next, a.abs_diff(names));
                        if evidence.len() < 2 * MAX_EVIDENCE {
                            evidence.push(self.reappears(a, names));
                        }
                        all_clear = false;
                    }
                    // An anchor that did not stick proves nothing about its distance.
                    Read::Lost(_) => all_clear = false,
                }
            }
            if next != 0 {
                g = gcd(g, next);
                continue;
            }
            if untestable {
                break;
            }
            if all_clear {
                evidence.extend(tests.iter().map(|&t| Evidence::NoWrapAt {
                    distance_bytes: t * self.block_bytes,
                }));
                confirmed = true;
                break;
            }
        }
        Ok(ProbeVerdict {
            kind: ProbeVerdictKind::FakeCapacity,
            usable_bytes: Some(g * self.block_bytes),
            precision_bytes: confirmed.then_some(self.block_bytes),
            evidence,
        })
    }

    /// No data reappears, but probes were lost: a boundary past which writes do not
    /// stick, narrowed by rounds of probes inside it; or scattered losses (damaged).
    fn boundary(&mut self, mut results: Vec<(u64, Read)>) -> Result<ProbeVerdict, Error> {
        let lost_evidence = |results: &[(u64, Read)], bs: u64| -> Vec<Evidence> {
            results
                .iter()
                .filter_map(|&(b, r)| match r {
                    Read::Lost(found) => Some(Evidence::Lost {
                        at_bytes: b * bs,
                        found,
                    }),
                    _ => None,
                })
                .take(MAX_EVIDENCE)
                .collect()
        };
        let mut evidence = lost_evidence(&results, self.block_bytes);
        loop {
            let first_bad = results
                .iter()
                .find(|(_, r)| matches!(r, Read::Lost(_)))
                .map(|&(b, _)| b)
                .expect("boundary() runs with a lost probe");
            let good_above: Vec<u64> = results
                .iter()
                .filter(|&&(b, r)| b > first_bad && r == Read::Good)
                .map(|&(b, _)| b)
                .take(MAX_EVIDENCE)
                .collect();
            if !good_above.is_empty() {
                evidence.extend(good_above.iter().map(|&b| Evidence::GoodAbove {
                    at_bytes: b * self.block_bytes,
                }));
                return Ok(ProbeVerdict {
                    kind: ProbeVerdictKind::Damaged,
                    usable_bytes: None,
                    precision_bytes: None,
                    evidence,
                });
            }
            let last_good = results
                .iter()
                .rev()
                .find(|&&(b, r)| b < first_bad && r == Read::Good)
                .map(|&(b, _)| b);
            // Probes strictly between the bracket's ends.
            let lo = last_good.map_or(0, |g| g + 1);
            let between = first_bad - lo;
            let count = NARROW_PER_ROUND.min(between).min(self.budget_left());
            if count == 0 {
                evidence.insert(
                    0,
                    Evidence::Boundary {
                        last_good_bytes: last_good.map(|g| g * self.block_bytes),
                        first_bad_bytes: first_bad * self.block_bytes,
                    },
                );
                return Ok(ProbeVerdict {
                    kind: ProbeVerdictKind::FakeCapacity,
                    usable_bytes: Some(lo * self.block_bytes),
                    precision_bytes: Some((first_bad - lo + 1) * self.block_bytes),
                    evidence,
                });
            }
            let mut inside: Vec<u64> = (1..=count)
                .map(|k| lo + (between * k) / (count + 1))
                .collect();
            if count == between {
                inside = (lo..first_bad).collect();
            }
            inside.dedup();
            self.generation += 1;
            self.rounds += 1;
            let mut round = Vec::new();
            for &b in &inside {
                if let Some(found) = self.write_one(b)? {
                    round.push((b, Read::Lost(found)));
                }
            }
            self.defeat_cache(first_bad)?;
            for &b in &inside {
                if !round.iter().any(|&(f, _)| f == b) {
                    let r = self.read_one(b)?;
                    round.push((b, r));
                }
            }
            if round.iter().any(|(_, r)| matches!(r, Read::Alias(_))) {
                return self.wrap(&round);
            }
            results.extend(round);
            results.sort_by_key(|&(b, _)| b);
        }
    }
}
