//! Canaries: during a fill, sampled blocks of what was already written are read back
//! from the device, so a drive that wraps around or loses writes past its real capacity
//! is caught after about that capacity plus one canary period, not at the end.
//!
//! Only blocks whose bios are done are sampled (the pipeline is not drained: that cost
//! about 9 ms a round), and buffered writes are flushed first, so the read goes to the
//! drive: the volume's device reads past the page cache (`O_DIRECT`, or evicting the
//! range, which needs it clean) unless `--cached` was asked for.

use stack_bio::{AlignedBuf, Device};

use crate::options::CanaryFailure;
use crate::pattern::PatternHeader;
use crate::volume::IO_ALIGN_BYTES;

/// A canary round comes at least every this much written...
const MIN_PERIOD_BYTES: u64 = 64 << 20;

/// ...or every this fraction (1/N) of the fill's target, whichever is more.
const PERIOD_FRACTION: u64 = 100;

/// Blocks each round reads, spread over everything written so far.
const SAMPLES: u64 = 8;

/// The bytes between canary rounds for a fill of `target_bytes` (whole MiB, so rounds
/// fall on chunk and block boundaries).
pub(crate) fn period_bytes(target_bytes: u64) -> u64 {
    MIN_PERIOD_BYTES.max((target_bytes / PERIOD_FRACTION).next_multiple_of(1 << 20))
}

/// Where the fill's blocks went, to sample from.
#[derive(Debug, Default)]
pub(crate) struct Written {
    /// `(first physical block, logical offset, blocks, write generation)`, contiguous
    /// both ways.
    extents: Vec<(u64, u64, u64, u64)>,
    blocks: u64,
}

impl Written {
    /// Records `blocks` written at physical block `phys` for logical offset `logical` by
    /// the write of `generation`.
    pub(crate) fn push(&mut self, phys: u64, logical: u64, blocks: u64, generation: u64, bs: u64) {
        self.blocks += blocks;
        if let Some(last) = self.extents.last_mut() {
            if last.0 + last.2 == phys && last.1 + last.2 * bs == logical && last.3 == generation {
                last.2 += blocks;
                return;
            }
        }
        self.extents.push((phys, logical, blocks, generation));
    }

    /// The `index`th block written: its physical block, logical offset and generation.
    fn nth(&self, mut index: u64, bs: u64) -> Option<(u64, u64, u64)> {
        for &(phys, logical, blocks, generation) in &self.extents {
            if index < blocks {
                return Some((phys + index, logical + index * bs, generation));
            }
            index -= blocks;
        }
        None
    }

    /// The blocks round `round` reads: one in each of [`SAMPLES`] equal slices of what
    /// was written, at a position that moves from round to round.
    fn samples(&self, round: u64, bs: u64) -> Vec<(u64, u64, u64)> {
        let n = SAMPLES.min(self.blocks);
        if n == 0 {
            return Vec::new();
        }
        let slice = self.blocks / n;
        (0..n)
            .filter_map(|i| {
                let jitter = mix(round.wrapping_mul(SAMPLES).wrapping_add(i)) % slice;
                self.nth(i * slice + jitter, bs)
            })
            .collect()
    }
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// What the fill wrote: the identity of its pattern blocks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stream {
    pub(crate) object_id: u64,
    pub(crate) seed: u64,
    pub(crate) salt: u64,
    pub(crate) block_size_bytes: u64,
}

/// Reads round `round`'s canaries from `device` (their writes done and flushed) and
/// returns the first that does not hold what was written, and how many were read.
pub(crate) fn check(
    device: &dyn Device,
    written: &Written,
    stream: Stream,
    round: u64,
    written_bytes: u64,
) -> (Option<CanaryFailure>, u64) {
    let bs = stream.block_size_bytes;
    let samples = written.samples(round, bs);
    let reads = read_all(device, &samples, bs);
    let mut expected = vec![0u8; bs as usize];
    for (&(phys, logical, generation), read) in samples.iter().zip(&reads) {
        let header = PatternHeader {
            phys_block: phys,
            object_id: stream.object_id,
            logical_offset: logical,
            generation,
            seed: stream.seed,
        };
        let what = match read {
            Err(e) => Some(format!("could not be read ({e})")),
            Ok(found) => {
                header.fill(stream.salt, &mut expected);
                (found[..] != expected[..]).then(|| describe(found, &header, bs))
            }
        };
        if let Some(found) = what {
            let failure = CanaryFailure {
                physical_offset: phys * bs,
                logical_offset: logical,
                written_bytes,
                found,
            };
            return (Some(failure), samples.len() as u64);
        }
    }
    (None, samples.len() as u64)
}

/// Reads the sampled blocks, all at once: one at a time, a round of 16 random reads
/// took 11 ms on a VM's disk (8% of a burn-in); in parallel about one read's latency.
fn read_all(
    device: &dyn Device,
    samples: &[(u64, u64, u64)],
    bs: u64,
) -> Vec<Result<AlignedBuf, stack_bio::Error>> {
    let read = |phys: u64| {
        let mut buf = AlignedBuf::new(bs as usize, IO_ALIGN_BYTES);
        device.read_at(&mut buf, phys * bs).map(|()| buf)
    };
    std::thread::scope(|s| {
        let handles: Vec<_> = samples
            .iter()
            .map(|&(phys, _, _)| {
                std::thread::Builder::new()
                    .name("stackctl-canary".into())
                    .spawn_scoped(s, move || read(phys))
            })
            .collect();
        handles
            .into_iter()
            .zip(samples)
            .map(|(h, &(phys, _, _))| match h {
                // A read that panicked or a thread that could not start: read here.
                Ok(h) => h.join().unwrap_or_else(|_| read(phys)),
                Err(_) => read(phys),
            })
            .collect()
    })
}

/// Says what a canary block holds instead of `want`.
fn describe(found: &[u8], want: &PatternHeader, bs: u64) -> String {
    if found.iter().all(|&b| b == 0) {
        return "zeros".to_string();
    }
    match PatternHeader::parse(found) {
        Some(h) if h.phys_block != want.phys_block => format!(
            "the block written for byte {} (data written elsewhere: the device wraps around?)",
            h.phys_block.saturating_mul(bs)
        ),
        Some(h) if h.generation != want.generation || h.object_id != want.object_id => {
            "an older block written there (the write did not stick)".to_string()
        }
        _ => "other data than was written".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_spread_over_everything_written() {
        let mut w = Written::default();
        w.push(10, 0, 100, 1, 4096);
        w.push(110, 100 * 4096, 60, 1, 4096);
        w.push(500, 160 * 4096, 40, 1, 4096);
        assert_eq!(w.extents.len(), 2, "contiguous pushes merge");
        for round in 0..5 {
            let s = w.samples(round, 4096);
            assert_eq!(s.len(), 8);
            // One in each eighth of the 200 blocks: the first early, the last late.
            assert!(s[0].1 < 25 * 4096 && s[7].1 >= 175 * 4096, "{s:?}");
            for (phys, logical, _) in s {
                let i = logical / 4096;
                let want = if i < 160 { 10 + i } else { 500 + i - 160 };
                assert_eq!(phys, want);
            }
        }
        assert!(Written::default().samples(0, 4096).is_empty());
    }

    #[test]
    fn the_period_is_64_mib_or_one_percent() {
        assert_eq!(period_bytes(1 << 30), 64 << 20);
        assert_eq!(period_bytes(100 << 30), 1 << 30);
        assert_eq!(period_bytes((100 << 30) + 100), (1 << 30) + (1 << 20));
    }
}
