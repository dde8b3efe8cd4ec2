//! Latency injection for `FaultyDevice`: a slow region, a write-speed cliff after N
//! bytes (an SLC cache running out), and stalls (every Kth I/O, or the first I/O at an
//! offset).
//!
//! The plan for an I/O is made under the latency lock, but the sleep happens after the
//! I/O with no lock held, so a slow I/O delays only its caller, as on a drive with a
//! command queue.

use std::ops::Range;
use std::time::Duration;

/// How much slower an I/O gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slowdown {
    /// A fixed extra delay per I/O.
    Delay(Duration),
    /// The I/O takes `factor` times as long as the inner device took (at least 1).
    Factor(u32),
    /// The I/O takes at least its length at this many bytes per second (a drive's
    /// media speed: small I/Os stay fast, as on an SLC cache that ran out).
    BytesPerSec(u64),
}

/// A stall the device injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InjectedStall {
    /// The offset of the stalled I/O.
    pub offset: u64,
    /// Its length.
    pub len: u64,
    /// How long it was held.
    pub pause: Duration,
}

#[derive(Debug)]
struct Cliff {
    after_bytes: u64,
    written_bytes: u64,
    slowdown: Slowdown,
    started_at: Option<u64>,
}

/// What to add to one I/O.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    delay: Duration,
    factor: u32,
}

impl Plan {
    /// Sleeps what the plan adds to an I/O that took `took`.
    pub(crate) fn wait(self, took: Duration) {
        let extra = self.delay + took * self.factor.saturating_sub(1);
        if !extra.is_zero() {
            std::thread::sleep(extra);
        }
    }

    fn add(&mut self, slowdown: Slowdown, len: u64) {
        match slowdown {
            Slowdown::Delay(d) => self.delay += d,
            Slowdown::Factor(f) => self.factor = self.factor.max(f),
            Slowdown::BytesPerSec(rate) => {
                let ns = u128::from(len) * 1_000_000_000 / u128::from(rate.max(1));
                self.delay += Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX));
            }
        }
    }
}

/// The armed latency faults and what they did.
#[derive(Debug, Default)]
pub(crate) struct Latency {
    slow: Vec<(Range<u64>, Slowdown)>,
    cliff: Option<Cliff>,
    stall_every: Option<(u64, Duration)>,
    stall_at: Vec<(u64, Duration)>,
    ios: u64,
    stalls: Vec<InjectedStall>,
}

impl Latency {
    pub(crate) fn slow_region(&mut self, range: Range<u64>, slowdown: Slowdown) {
        self.slow.push((range, slowdown));
    }

    pub(crate) fn cliff_after(&mut self, after_bytes: u64, slowdown: Slowdown) {
        self.cliff = Some(Cliff {
            after_bytes,
            written_bytes: 0,
            slowdown,
            started_at: None,
        });
    }

    pub(crate) fn stall_every(&mut self, every_ios: u64, pause: Duration) {
        assert!(every_ios > 0, "a stall every 0th I/O");
        self.stall_every = Some((every_ios, pause));
    }

    pub(crate) fn stall_at(&mut self, offset: u64, pause: Duration) {
        self.stall_at.push((offset, pause));
    }

    pub(crate) fn cliff_offset(&self) -> Option<u64> {
        self.cliff.as_ref().and_then(|c| c.started_at)
    }

    pub(crate) fn stalls(&self) -> &[InjectedStall] {
        &self.stalls
    }

    /// Disarms everything (what was injected stays readable).
    pub(crate) fn clear(&mut self) {
        let stalls = std::mem::take(&mut self.stalls);
        let started = self.cliff_offset();
        *self = Latency::default();
        self.stalls = stalls;
        if let Some(at) = started {
            // Keep the answer of `cliff_offset` after a clear.
            self.cliff = Some(Cliff {
                after_bytes: u64::MAX,
                written_bytes: 0,
                slowdown: Slowdown::Factor(1),
                started_at: Some(at),
            });
        }
    }

    /// What to add to an I/O of `len` bytes at `offset` (a write when `write`).
    pub(crate) fn plan(&mut self, write: bool, offset: u64, len: usize) -> Plan {
        let len = len as u64;
        let end = offset.saturating_add(len);
        let mut plan = Plan::default();
        self.ios += 1;
        for (range, slowdown) in &self.slow {
            if offset < range.end && range.start < end {
                plan.add(*slowdown, len);
            }
        }
        if let (true, Some(cliff)) = (write, self.cliff.as_mut()) {
            // The write that crosses the threshold is the first slow one.
            if cliff.written_bytes.saturating_add(len) > cliff.after_bytes {
                cliff.started_at.get_or_insert(offset);
                plan.add(cliff.slowdown, len);
            }
            cliff.written_bytes = cliff.written_bytes.saturating_add(len);
        }
        let mut pause = Duration::ZERO;
        if let Some((every, p)) = self.stall_every {
            if self.ios % every == 0 {
                pause += p;
            }
        }
        if let Some(i) = self
            .stall_at
            .iter()
            .position(|&(at, _)| offset <= at && at < end.max(offset + 1))
        {
            pause += self.stall_at.swap_remove(i).1;
        }
        if !pause.is_zero() {
            plan.delay += pause;
            self.stalls.push(InjectedStall { offset, len, pause });
        }
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_slow_region_slows_what_overlaps_it() {
        let mut l = Latency::default();
        l.slow_region(4096..8192, Slowdown::Delay(MS));
        assert_eq!(l.plan(false, 0, 4096), Plan::default());
        assert_eq!(l.plan(true, 4095, 2).delay, MS);
        assert_eq!(l.plan(false, 8191, 1).delay, MS);
        assert_eq!(l.plan(false, 8192, 4096), Plan::default());
        l.slow_region(1 << 20..2 << 20, Slowdown::BytesPerSec(1 << 20));
        assert_eq!(
            l.plan(true, 1 << 20, 4096).delay,
            Duration::from_nanos(3_906_250)
        );
    }

    #[test]
    fn the_cliff_starts_at_the_write_that_crosses_it() {
        let mut l = Latency::default();
        l.cliff_after(10_000, Slowdown::Factor(4));
        assert_eq!(l.plan(true, 0, 8192), Plan::default());
        assert_eq!(
            l.plan(false, 0, 8192),
            Plan::default(),
            "reads do not count"
        );
        assert_eq!(l.cliff_offset(), None);
        assert_eq!(l.plan(true, 8192, 8192).factor, 4);
        assert_eq!(l.plan(true, 1 << 20, 8192).factor, 4);
        assert_eq!(l.cliff_offset(), Some(8192));
        l.clear();
        assert_eq!(l.plan(true, 1 << 20, 8192), Plan::default());
        assert_eq!(l.cliff_offset(), Some(8192), "kept after a clear");
    }

    #[test]
    fn stalls_come_every_kth_io_and_once_at_an_offset() {
        let mut l = Latency::default();
        l.stall_every(3, MS);
        l.stall_at(100_000, 2 * MS);
        let delays: Vec<Duration> = (0..6)
            .map(|i| l.plan(false, i * 4096, 4096).delay)
            .collect();
        assert_eq!(
            delays,
            [
                Duration::ZERO,
                Duration::ZERO,
                MS,
                Duration::ZERO,
                Duration::ZERO,
                MS
            ]
        );
        assert_eq!(l.plan(true, 98_304, 4096).delay, 2 * MS);
        assert_eq!(l.plan(true, 98_304, 4096).delay, Duration::ZERO, "once");
        assert_eq!(l.stalls().len(), 3);
        assert_eq!(l.stalls()[2].offset, 98_304);
    }
}
