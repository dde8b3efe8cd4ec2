//! The surface map of a drive: write and read throughput and latency per region of the
//! capacity, from the timings [`stack_bio::TimedDevice`] records at the device.
//!
//! Every volume's device is wrapped in a `TimedDevice` when it is formatted or opened,
//! so every I/O the volume does (fill, verify, metadata) is timed where it meets the
//! device. [`crate::Volume::surface_map`] takes what was recorded so far; a burn-in combines the
//! fill's writes with the verify pass's reads ([`SurfaceMap::combine`]).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use stack_bio::{Device, IoKind, IoSnapshot, RegionTiming, TimedDevice};

pub use stack_bio::DEFAULT_REGIONS;

/// One region's figures for one kind of I/O.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MapRegion {
    /// The region's number (0 at the start of the device).
    pub index: u32,
    /// Where it starts on the device.
    pub offset_bytes: u64,
    /// Bytes transferred inside it.
    pub bytes: u64,
    /// I/Os that touched it.
    pub ios: u64,
    /// Device time charged to it (overlapping I/Os share their time), in µs.
    pub busy_us: u64,
    /// `bytes` over `busy_us`, in MiB/s.
    pub mib_per_s: f64,
    /// Median I/O latency, µs (a histogram bucket's bound: within 12%).
    pub latency_us_p50: u64,
    /// 99th percentile I/O latency, µs.
    pub latency_us_p99: u64,
    /// The slowest I/O, µs.
    pub latency_us_max: u64,
}

/// Every region that saw I/O of one kind, in offset order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MapSeries {
    /// Bytes transferred in all regions.
    pub bytes: u64,
    /// Device time charged, in seconds.
    pub busy_secs: f64,
    /// `bytes` over `busy_secs`, in MiB/s.
    pub mib_per_s: f64,
    /// The regions that saw I/O (a region with none is left out).
    pub regions: Vec<MapRegion>,
}

/// One I/O slower than 50 ms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MapSlowIo {
    /// `"read"` or `"write"`.
    pub op: String,
    /// Where it was on the device.
    pub offset_bytes: u64,
    /// Its length.
    pub len_bytes: u64,
    /// How long it took, ms.
    pub latency_ms: f64,
    /// When it started, seconds after the map began.
    pub at_secs: f64,
}

/// Throughput and latency per region of a drive, for writes and reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SurfaceMap {
    /// The device size the regions cover.
    pub capacity_bytes: u64,
    /// Bytes per region (the last one may be shorter).
    pub region_bytes: u64,
    /// Number of regions.
    pub regions: u32,
    /// Writes (a fill), when there were any.
    pub write: Option<MapSeries>,
    /// Reads (a verify), when there were any.
    pub read: Option<MapSeries>,
    /// The slowest I/Os over 50 ms (at most 64), slowest first.
    pub slow_ios: Vec<MapSlowIo>,
    /// Every I/O over 50 ms, including those not listed.
    pub slow_ios_total: u64,
}

const MIB: f64 = 1024.0 * 1024.0;

fn us(ns: u64) -> u64 {
    ns / 1000
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn series(cells: &[RegionTiming], region_bytes: u64) -> Option<MapSeries> {
    let regions: Vec<MapRegion> = cells
        .iter()
        .enumerate()
        .filter(|(_, r)| r.ios > 0)
        .map(|(i, r)| MapRegion {
            index: i as u32,
            offset_bytes: i as u64 * region_bytes,
            bytes: r.bytes,
            ios: r.ios,
            busy_us: us(r.busy_ns),
            mib_per_s: round1(r.bytes_per_sec().unwrap_or(0.0) / MIB),
            latency_us_p50: us(r.p50_ns),
            latency_us_p99: us(r.p99_ns),
            latency_us_max: us(r.max_ns),
        })
        .collect();
    if regions.is_empty() {
        return None;
    }
    let bytes: u64 = cells.iter().map(|r| r.bytes).sum();
    let busy_ns: u64 = cells.iter().map(|r| r.busy_ns).sum();
    let busy_secs = busy_ns as f64 / 1e9;
    Some(MapSeries {
        bytes,
        busy_secs,
        mib_per_s: if busy_ns > 0 {
            round1(bytes as f64 / MIB / busy_secs)
        } else {
            0.0
        },
        regions,
    })
}

impl SurfaceMap {
    /// The map of what a recorder holds.
    pub fn from_snapshot(s: &IoSnapshot) -> SurfaceMap {
        SurfaceMap {
            capacity_bytes: s.size_bytes,
            region_bytes: s.region_bytes,
            regions: s.write.len() as u32,
            write: series(&s.write, s.region_bytes),
            read: series(&s.read, s.region_bytes),
            slow_ios: s
                .slow_ios
                .iter()
                .map(|io| MapSlowIo {
                    op: io.kind.name().to_owned(),
                    offset_bytes: io.offset,
                    len_bytes: io.len,
                    latency_ms: io.latency_ns as f64 / 1e6,
                    at_secs: io.started_ns as f64 / 1e9,
                })
                .collect(),
            slow_ios_total: s.slow_ios_total,
        }
    }

    /// A burn-in's map: the writes of `fill` (format and fill) and the reads of
    /// `verify` (the verify pass on the reopened volume), each with its slow I/Os.
    pub fn combine(fill: &SurfaceMap, verify: &SurfaceMap) -> SurfaceMap {
        let kept = |m: &SurfaceMap, op: IoKind| -> Vec<MapSlowIo> {
            m.slow_ios
                .iter()
                .filter(|s| s.op == op.name())
                .cloned()
                .collect()
        };
        let mut slow_ios = kept(fill, IoKind::Write);
        slow_ios.extend(kept(verify, IoKind::Read));
        slow_ios.sort_by(|a, b| b.latency_ms.total_cmp(&a.latency_ms));
        let total = |m: &SurfaceMap, op: IoKind| {
            // The unlisted ones cannot be told apart by kind: count them with the listed.
            let listed = m.slow_ios.iter().filter(|s| s.op == op.name()).count() as u64;
            listed + m.slow_ios_total.saturating_sub(m.slow_ios.len() as u64) / 2
        };
        SurfaceMap {
            write: fill.write.clone(),
            read: verify.read.clone(),
            slow_ios_total: total(fill, IoKind::Write) + total(verify, IoKind::Read),
            slow_ios,
            ..fill.clone()
        }
    }

    /// The series of one kind of I/O.
    pub fn series(&self, op: IoKind) -> Option<&MapSeries> {
        match op {
            IoKind::Read => self.read.as_ref(),
            IoKind::Write => self.write.as_ref(),
        }
    }
}

/// Wraps a volume's device so its I/O is timed into about `regions` regions.
pub(crate) fn timed(device: Arc<dyn Device>, regions: u32) -> Arc<TimedDevice> {
    Arc::new(TimedDevice::new(device, regions))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FormatOptions, VerifyOptions, Volume, WriteOptions};

    #[test]
    fn a_fill_and_a_verify_are_mapped_across_the_volume() {
        let dev = Arc::new(stack_bio::MemDevice::new(16 << 20));
        let mut vol = Volume::format_device(dev, &FormatOptions::default()).unwrap();
        vol.set_map_regions(8);
        let before = vol.surface_map();
        assert_eq!(before.regions, 8);
        assert!(before.write.is_none() && before.read.is_none());
        vol.fill("f", 1, &WriteOptions::default()).unwrap();
        let fill = vol.surface_map();
        let w = fill.write.as_ref().expect("writes were mapped");
        assert!(w.bytes >= 12 << 20, "{}", w.bytes);
        assert!(w.regions.len() >= 7, "the fill reached most regions");
        assert!(w
            .regions
            .iter()
            .all(|r| r.offset_bytes == r.index as u64 * (2 << 20)));
        vol.reset_map();
        assert!(vol.surface_map().write.is_none());
        vol.verify(&VerifyOptions::default()).unwrap();
        let verify = vol.surface_map();
        let r = verify.read.as_ref().expect("reads were mapped");
        assert!(r.bytes >= 12 << 20);
        let both = SurfaceMap::combine(&fill, &verify);
        assert_eq!(both.write, fill.write);
        assert_eq!(both.read, verify.read);
        let json = serde_json::to_string(&both).unwrap();
        let back: SurfaceMap = serde_json::from_str(&json).unwrap();
        assert_eq!(back, both);
    }
}
