//! What a run over several drives reports: the `drives` entries and `total` of the JSON
//! document, and the summary table with a line per lost drive and per SMART finding.

use serde::Serialize;
use stack_volume::identity::Identity;
use stack_volume::smart::{Change, Snapshot};

use crate::cmd::human;
use crate::cmd::size::{human_bytes, human_rate};

/// A drive that disappeared mid-run.
#[derive(Debug, Clone, Serialize)]
pub struct LostDoc {
    /// The phase it was lost in (`write`, `verify`; `probe` for a probe).
    pub phase: String,
    /// Bytes written before.
    pub written_bytes: u64,
    /// Bytes read back and checked before.
    pub verified_bytes: u64,
    /// Why it counts as gone.
    pub detail: String,
}

/// SMART before and after the run (`--smart`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct SmartDoc {
    /// Why a reading is missing (no smartctl, no SMART on this device, a file).
    pub note: Option<String>,
    /// The reading before the run.
    pub before: Option<Snapshot>,
    /// The reading after the run.
    pub after: Option<Snapshot>,
    /// Counters that differ.
    pub changed: Vec<Change>,
    /// Overall health before (`false`: FAILED).
    pub passed_before: Option<bool>,
    /// Overall health after.
    pub passed_after: Option<bool>,
    /// One sentence per worsening; a FAILED health first.
    pub findings: Vec<String>,
}

/// One drive of a run, as the JSON `drives` array holds it.
///
/// `burn-in`'s per-drive map (`map`) and its findings are added here by the map work.
#[derive(Debug, Clone, Serialize)]
pub struct DriveDoc {
    /// The target as given.
    pub target: String,
    /// `clean`, `fake-capacity`, `damaged`, `unreadable`, `no-fake-found` (probe),
    /// `interrupted`, `lost`, `failed` (an error; see `error`).
    pub verdict: String,
    /// This drive's own status (the run exits with the worst).
    pub exit_status: u8,
    /// What the drive says about itself (sysfs, udev; a loop device's backing file).
    pub identity: Identity,
    /// The target's size.
    pub size_bytes: Option<u64>,
    /// Bytes written.
    pub written_bytes: u64,
    /// Write throughput.
    pub write_bytes_per_sec: Option<u64>,
    /// Bytes read back and checked.
    pub read_bytes: u64,
    /// Read throughput.
    pub read_bytes_per_sec: Option<u64>,
    /// Damaged bytes found.
    pub damaged_bytes: u64,
    /// Wall time of this drive.
    pub elapsed_secs: f64,
    /// The error that ended it, when one did.
    pub error: Option<String>,
    /// Set when the drive disappeared mid-run.
    pub lost: Option<LostDoc>,
    /// `--smart`: health before and after.
    pub smart: Option<SmartDoc>,
    /// The command's single-target document for this drive (null after an error).
    pub report: Option<serde_json::Value>,
}

/// The `total` of a run.
#[derive(Debug, Clone, Serialize)]
pub struct TotalDoc {
    /// Drives in the run.
    pub drives: usize,
    /// How many drives had each verdict, e.g. `{"clean": 2, "lost": 1}`.
    pub verdicts: std::collections::BTreeMap<String, usize>,
    /// Bytes written over all drives.
    pub written_bytes: u64,
    /// Bytes read back over all drives.
    pub read_bytes: u64,
    /// Damaged bytes over all drives.
    pub damaged_bytes: u64,
    /// Wall time of the run.
    pub elapsed_secs: f64,
    /// The worst status (what the process exits with).
    pub exit_status: u8,
}

pub(super) fn rate_text(rate: Option<u64>) -> String {
    rate.map_or_else(|| "-".into(), |r| human_rate(r, 1.0))
}

/// The summary table: one row per drive and a total line.
pub fn table(drives: &[DriveDoc], total: &TotalDoc) -> String {
    let rows: Vec<Vec<String>> = drives
        .iter()
        .map(|d| {
            vec![
                d.target.clone(),
                d.identity.short(),
                d.size_bytes.map_or_else(|| "-".into(), human_bytes),
                d.verdict.to_uppercase(),
                rate_text(d.write_bytes_per_sec),
                rate_text(d.read_bytes_per_sec),
                human_bytes(d.damaged_bytes),
                format!("{:.1} s", d.elapsed_secs),
            ]
        })
        .collect();
    let mut out = human::table(
        &[
            "TARGET",
            "MODEL/SERIAL",
            "SIZE",
            "VERDICT",
            "WRITE",
            "READ",
            "DAMAGED",
            "TIME",
        ],
        &rows,
    );
    let verdicts: Vec<String> = total
        .verdicts
        .iter()
        .map(|(v, n)| format!("{n} {v}"))
        .collect();
    out.push_str(&format!(
        "total: {} drives ({}), {} written, {} read, {} damaged, {:.1} s; exit status {}\n",
        total.drives,
        verdicts.join(", "),
        human_bytes(total.written_bytes),
        human_bytes(total.read_bytes),
        human_bytes(total.damaged_bytes),
        total.elapsed_secs,
        total.exit_status
    ));
    out
}

/// Lines about a drive beyond its row: lost, error, SMART.
pub(super) fn notes(d: &DriveDoc) -> String {
    let mut out = String::new();
    if let Some(lost) = &d.lost {
        out.push_str(&format!(
            "{}: LOST during {}: {}; before that {} written and {} read back and checked\n",
            d.target,
            lost.phase,
            lost.detail,
            human_bytes(lost.written_bytes),
            human_bytes(lost.verified_bytes)
        ));
        if let Some(error) = &d.error {
            out.push_str(&format!("  the error: {error}\n"));
        }
    } else if let Some(error) = &d.error {
        out.push_str(&format!(
            "{}: {}: {error}\n",
            d.target,
            d.verdict.to_uppercase()
        ));
    }
    if let Some(smart) = &d.smart {
        out.push_str(&smart_text(&d.target, smart));
    }
    out
}

/// The SMART lines of one drive.
pub fn smart_text(target: &str, smart: &SmartDoc) -> String {
    let mut out = String::new();
    if let Some(note) = &smart.note {
        out.push_str(&format!("{target}: SMART note: {note}\n"));
    }
    for finding in &smart.findings {
        out.push_str(&format!("{target}: finding: {finding}\n"));
    }
    for change in smart.changed.iter().filter(|c| !c.worse) {
        out.push_str(&format!(
            "{target}: SMART {} ({}) changed from {} to {}\n",
            change.key.replace('_', " "),
            change.name,
            change.before.map_or_else(|| "-".into(), |v| v.to_string()),
            change.after.map_or_else(|| "-".into(), |v| v.to_string()),
        ));
    }
    if smart.note.is_none() && smart.changed.is_empty() && smart.findings.is_empty() {
        let health = match smart.passed_after {
            Some(true) => "PASSED",
            Some(false) => "FAILED",
            None => "not reported",
        };
        out.push_str(&format!(
            "{target}: SMART unchanged over the run (health {health})\n"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::drives::failed_doc;
    use anyhow::anyhow;

    #[test]
    fn the_table_has_a_row_per_drive_and_a_total() {
        let mut clean = failed_doc("/dev/loop1", &anyhow!("x"));
        clean.verdict = "clean".into();
        clean.error = None;
        clean.size_bytes = Some(64 << 20);
        clean.write_bytes_per_sec = Some(100 << 20);
        clean.identity.backing_file = Some("/dev/shm/a.img".into());
        let lost = failed_doc("/dev/loop2", &anyhow!("I/O error"));
        let total = TotalDoc {
            drives: 2,
            verdicts: [("clean".to_string(), 1), ("lost".to_string(), 1)].into(),
            written_bytes: 64 << 20,
            read_bytes: 0,
            damaged_bytes: 0,
            elapsed_secs: 1.0,
            exit_status: 3,
        };
        let text = table(&[clean, lost], &total);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(lines[0].starts_with("TARGET"), "{text}");
        assert!(
            lines[1].contains("loop: /dev/shm/a.img") && lines[1].contains("CLEAN"),
            "{text}"
        );
        assert!(lines[1].contains("100.0 MiB/s"), "{text}");
        assert!(lines[2].contains("FAILED"), "{text}");
        assert!(
            lines[3].starts_with("total: 2 drives (1 clean, 1 lost)"),
            "{text}"
        );
    }
}
