//! The verdict on a drive from what verify found: clean, damaged, unreadable, or fake
//! capacity with the size it really holds.
//!
//! Fake capacity shows in two ways. A drive that wraps around stores byte `o` at
//! `o mod D`: the block read at physical `P` belongs at `P + k·D` (`k` may be negative), every such distance is
//! a multiple of one `D`, and at most `D` bytes of data read back right. A drive whose
//! writes past some offset never stick reads zeros or old data from there on while
//! everything before reads right. Both give the usable size exactly: `D`, or the offset
//! of the first data block that does not stick.

use serde::Serialize;

use crate::report::{Cause, SuperblockState, VerifyReport};
use crate::volume::Volume;

/// Data reappearing this close is a misdirected write, not a capacity.
const MIN_WRAP_BYTES: u64 = 1 << 20;

/// Writes that never stick past an offset: at least this much data past it is lost.
const MIN_LOST_TAIL_BYTES: u64 = 1 << 20;

/// What verify's findings say about the drive.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Verdict {
    /// Every block, the metadata and both superblocks verify.
    Clean,
    /// The drive holds less than it reports.
    FakeCapacity {
        /// The size the drive reports.
        advertised_bytes: u64,
        /// What it really holds: the wrap distance, or the offset past which writes do
        /// not stick.
        usable_bytes: u64,
        /// Why, in sentences.
        evidence: Vec<String>,
    },
    /// Damage that is neither fake capacity nor only unreadable blocks (see the ranges).
    Damaged,
    /// All damage is blocks the drive could not read.
    Unreadable,
}

impl Verdict {
    /// `"clean"`, `"fake-capacity"`, `"damaged"` or `"unreadable"`.
    pub fn name(&self) -> &'static str {
        match self {
            Verdict::Clean => "clean",
            Verdict::FakeCapacity { .. } => "fake-capacity",
            Verdict::Damaged => "damaged",
            Verdict::Unreadable => "unreadable",
        }
    }
}

impl Volume {
    /// The verdict on this volume's device from `report`, a verify of `object` (or of
    /// every object) on it.
    pub fn verdict(&self, report: &VerifyReport, object: Option<&str>) -> Verdict {
        let bs = u64::from(self.geometry().block_size_bytes);
        let extents: Vec<(u64, u64)> = self
            .table()
            .objects
            .iter()
            .filter(|o| object.is_none_or(|name| o.name == name))
            .flat_map(|o| o.runs.iter())
            .map(|r| (r.data_start_block * bs, r.data_blocks * bs))
            .collect();
        judge(report, self.device().size_bytes(), &extents)
    }
}

/// Judges a verify report of a device that reports `advertised_bytes`, whose verified
/// data lies in `data_extents` (byte ranges on the device, `(start, len)`).
pub fn judge(report: &VerifyReport, advertised_bytes: u64, data_extents: &[(u64, u64)]) -> Verdict {
    if report.clean() {
        return Verdict::Clean;
    }
    let wraps = superblock_notes(report);
    if let Some(v) = wrap(report, advertised_bytes, &wraps) {
        return v;
    }
    if let Some(v) = lost_tail(report, advertised_bytes, data_extents, &wraps) {
        return v;
    }
    let all_unreadable = !report.damaged.is_empty()
        && report
            .damaged
            .iter()
            .all(|d| matches!(d.cause, Cause::Unreadable));
    if all_unreadable && report.metadata_ok {
        Verdict::Unreadable
    } else {
        Verdict::Damaged
    }
}

/// Superblock slots that hold a data block written far beyond (`read_slot`'s note).
fn superblock_notes(report: &VerifyReport) -> Vec<String> {
    report
        .superblocks
        .iter()
        .enumerate()
        .filter_map(|(slot, s)| match s {
            Some(SuperblockState::Damaged { reason }) if reason.contains("wraps around") => {
                Some(format!("superblock slot {slot} {reason}"))
            }
            _ => None,
        })
        .collect()
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

fn damaged_bytes(report: &VerifyReport) -> u64 {
    report.damaged.iter().map(|d| d.length).sum()
}

/// Wrap-around: every misdirected block belongs `k·D` away, and no more than `D`
/// bytes read back right.
fn wrap(report: &VerifyReport, advertised_bytes: u64, notes: &[String]) -> Option<Verdict> {
    let mut distance = 0u64;
    let mut blocks = 0u64;
    let mut example = None;
    for d in &report.damaged {
        let Cause::Misdirected { belongs_at } = d.cause else {
            continue;
        };
        // The last write to an address wins, wherever the fill's order put it: the
        // data found may belong before or after the block that holds it.
        let step = belongs_at.abs_diff(d.physical_offset);
        distance = gcd(distance, step);
        blocks += 1;
        example.get_or_insert((d.physical_offset, belongs_at));
    }
    if blocks == 0 || distance < MIN_WRAP_BYTES || distance >= advertised_bytes {
        return None;
    }
    // A real capacity of D keeps at most D bytes: more data reading right means these
    // are misdirected writes on a drive that does hold what it says.
    let good_bytes = report.bytes_verified.saturating_sub(damaged_bytes(report));
    if good_bytes > distance {
        return None;
    }
    let (at, belongs) = example?;
    let mut evidence = vec![
        format!(
            "{blocks} blocks read back data written elsewhere, each a multiple of {distance} \
             bytes away (e.g. the block at byte {at} holds the data written for byte \
             {belongs}): the drive wraps around every {distance} bytes"
        ),
        format!("{good_bytes} bytes of data read back right, no more than {distance}"),
    ];
    evidence.extend(notes.iter().cloned());
    Some(Verdict::FakeCapacity {
        advertised_bytes,
        usable_bytes: distance,
        evidence,
    })
}

/// Writes that never stick: past the first damaged block, every data block reads zeros
/// or old data; before it, everything reads right.
fn lost_tail(
    report: &VerifyReport,
    advertised_bytes: u64,
    data_extents: &[(u64, u64)],
    notes: &[String],
) -> Option<Verdict> {
    let lost = |c: &Cause| {
        matches!(
            c,
            Cause::Zeroed | Cause::Stale | Cause::ChecksumMismatch | Cause::Misdirected { .. }
        )
    };
    if report.damaged_not_listed > 0 || !report.damaged.iter().all(|d| lost(&d.cause)) {
        return None;
    }
    let from = report.damaged.iter().map(|d| d.physical_offset).min()?;
    let data_past: u64 = data_extents
        .iter()
        .map(|&(start, len)| (start + len).saturating_sub(start.max(from)))
        .sum();
    let data_before: u64 = data_extents
        .iter()
        .map(|&(start, len)| (start + len).min(from).saturating_sub(start))
        .sum();
    let lost_bytes = damaged_bytes(report);
    if lost_bytes != data_past || lost_bytes < MIN_LOST_TAIL_BYTES || data_before == 0 {
        return None;
    }
    let mut evidence = vec![format!(
        "every data block from byte {from} on ({lost_bytes} bytes) reads back zeros or \
             old data, and the {data_before} bytes before it read back right: writes past \
             byte {from} do not stick"
    )];
    evidence.extend(notes.iter().cloned());
    Some(Verdict::FakeCapacity {
        advertised_bytes,
        usable_bytes: from,
        evidence,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::DamagedRange;

    fn range(physical: u64, length: u64, cause: Cause) -> DamagedRange {
        DamagedRange {
            object: "o".into(),
            logical_offset: physical,
            physical_offset: physical,
            length,
            cause,
            expected_csum: Some(1),
            found_csum: Some(2),
        }
    }

    fn report(damaged: Vec<DamagedRange>, bytes_verified: u64) -> VerifyReport {
        VerifyReport {
            bytes_verified,
            damaged,
            metadata_ok: true,
            superblocks: [
                Some(SuperblockState::Ok { generation: 2 }),
                Some(SuperblockState::Ok { generation: 1 }),
            ],
            ..Default::default()
        }
    }

    const MIB: u64 = 1 << 20;

    #[test]
    fn data_reappearing_at_multiples_of_one_distance_is_a_wrap() {
        let mut damaged = Vec::new();
        for k in 1..4 {
            for b in 0..4 {
                let p = b * 4096 + (k - 1) * 64 * MIB;
                let belongs_at = p + (4 - k) * 64 * MIB;
                damaged.push(range(p, 4096, Cause::Misdirected { belongs_at }));
            }
        }
        let v = judge(&report(damaged, 16 * 4096 + 20 * MIB), 256 * MIB, &[]);
        let Verdict::FakeCapacity {
            usable_bytes,
            advertised_bytes,
            evidence,
        } = v
        else {
            panic!("{v:?}");
        };
        assert_eq!((usable_bytes, advertised_bytes), (64 * MIB, 256 * MIB));
        assert!(
            evidence[0].contains("wraps around every 67108864 bytes"),
            "{evidence:?}"
        );
    }

    #[test]
    fn a_misdirected_write_on_a_full_drive_is_damage() {
        let damaged = vec![range(
            0,
            4096,
            Cause::Misdirected {
                belongs_at: 8 * MIB,
            },
        )];
        assert_eq!(
            judge(&report(damaged, 200 * MIB), 256 * MIB, &[]),
            Verdict::Damaged
        );
    }

    #[test]
    fn zeros_past_an_offset_are_writes_that_never_stick() {
        let extents = [(MIB, 9 * MIB)];
        let damaged = vec![range(6 * MIB, 4 * MIB, Cause::Zeroed)];
        let v = judge(&report(damaged, 9 * MIB), 64 * MIB, &extents);
        assert!(
            matches!(v, Verdict::FakeCapacity { usable_bytes, .. } if usable_bytes == 6 * MIB),
            "{v:?}"
        );
        // A hole in the middle (good data after it) is damage, not a capacity.
        let damaged = vec![range(6 * MIB, 2 * MIB, Cause::Zeroed)];
        assert_eq!(
            judge(&report(damaged, 9 * MIB), 64 * MIB, &extents),
            Verdict::Damaged
        );
    }

    #[test]
    fn unreadable_clean_and_names() {
        let damaged = vec![range(0, 4096, Cause::Unreadable)];
        assert_eq!(judge(&report(damaged, MIB), MIB, &[]), Verdict::Unreadable);
        assert_eq!(judge(&report(vec![], MIB), MIB, &[]), Verdict::Clean);
        assert_eq!(Verdict::Unreadable.name(), "unreadable");
    }
}
