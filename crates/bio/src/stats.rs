//! How sequential an issued I/O stream was: the queue's counters, reusable for peers.

/// Bytes in a GiB, for [`SeqCounter::breaks_per_gib`].
const GIB: f64 = (1u64 << 30) as f64;

/// Counts issued I/Os in issue order and how many start where the previous one ended.
///
/// The queue keeps one for its data I/Os; a benchmark can feed one the order in which
/// plain `pwrite`s were issued to compare like with like.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeqCounter {
    ios: u64,
    bytes: u64,
    sequential: u64,
    last_end: Option<u64>,
}

impl SeqCounter {
    /// Records one issued I/O.
    pub fn record(&mut self, offset: u64, len_bytes: u64) {
        if self.last_end == Some(offset) {
            self.sequential += 1;
        }
        self.ios += 1;
        self.bytes += len_bytes;
        self.last_end = Some(offset + len_bytes);
    }

    /// I/Os recorded.
    pub fn ios(&self) -> u64 {
        self.ios
    }

    /// Bytes recorded.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// I/Os that started exactly where the previous one ended.
    pub fn sequential_ios(&self) -> u64 {
        self.sequential
    }

    /// Share of I/Os after the first that start where the previous one ended (1.0 for
    /// a single I/O or none).
    pub fn sequential_share(&self) -> f64 {
        if self.ios <= 1 {
            return 1.0;
        }
        self.sequential as f64 / (self.ios - 1) as f64
    }

    /// Non-sequential I/Os (after the first) per GiB moved.
    pub fn breaks_per_gib(&self) -> f64 {
        if self.bytes == 0 {
            return 0.0;
        }
        let breaks = self.ios.saturating_sub(1) - self.sequential;
        breaks as f64 / (self.bytes as f64 / GIB)
    }

    /// Mean I/O size in bytes.
    pub fn mean_io_bytes(&self) -> f64 {
        if self.ios == 0 {
            return 0.0;
        }
        self.bytes as f64 / self.ios as f64
    }
}

/// A snapshot of a [`crate::SubmitQueue`]'s counters (more may be added later).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq)]
pub struct QueueStats {
    /// Read and write I/Os issued to the device (after merging).
    pub ios: u64,
    /// Read and write bios completed.
    pub bios: u64,
    /// Bios that rode in another bio's I/O (`bios - ios` when nothing failed).
    pub merged: u64,
    /// Flushes issued.
    pub flushes: u64,
    /// Bytes moved by reads and writes.
    pub bytes: u64,
    /// Share of I/Os that started where the previous one ended.
    pub sequential_share: f64,
    /// Non-sequential I/Os per GiB moved.
    pub breaks_per_gib: f64,
    /// Mean I/O size in bytes.
    pub mean_io_bytes: f64,
    /// The most bytes that were in flight at once.
    pub in_flight_peak_bytes: u64,
    /// The most I/Os that were picked and not yet completed at once (at most
    /// [`crate::QueueConfig::submitters`]).
    pub in_flight_ios_peak: u64,
    /// Times an I/O waited for an earlier overlapping one to complete.
    pub overlap_waits: u64,
    /// Merged I/Os that failed and were reissued bio by bio to find the bad one.
    pub split_retries: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_sequential_share_breaks_and_mean() {
        let mut c = SeqCounter::default();
        assert_eq!(c.sequential_share(), 1.0);
        c.record(0, 100);
        c.record(100, 100);
        c.record(500, 200);
        c.record(700, 100);
        assert_eq!(c.ios(), 4);
        assert_eq!(c.sequential_ios(), 2);
        assert!((c.sequential_share() - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(c.mean_io_bytes(), 125.0);
        assert!((c.breaks_per_gib() - GIB / 500.0).abs() < 1e-3);
    }
}
