//! A drive's health over a run: whether it is still there (a drive unplugged or reset
//! mid-run is lost), and its SMART readings before and after (`--smart`).

use std::fs;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use stack_volume::identity;
use stack_volume::smart::{self, Snapshot};

use super::report::SmartDoc;
use crate::cmd::shown;
use crate::cmd::size::human_bytes;

/// The size of `target` now, or `None` when it is gone.
pub(super) fn size_now(target: &Path) -> Option<u64> {
    let meta = fs::metadata(target).ok()?;
    if meta.file_type().is_block_device() {
        identity::current_block_size_bytes(&identity::Roots::default(), target)
    } else {
        Some(meta.len())
    }
}

/// Why `target` counts as gone: it, or its device, no longer exists, or its size
/// changed since the start (a drive unplugged, or reset and back with another size).
pub(super) fn gone(target: &Path, size_at_start: Option<u64>) -> Option<String> {
    let start = size_at_start?;
    let block = fs::metadata(target).is_ok_and(|m| m.file_type().is_block_device());
    if !block {
        // A file grows when formatted; only a file gone or cut short is lost.
        return match fs::metadata(target) {
            Err(_) => Some(format!(
                "{} is gone (the file no longer exists)",
                shown(target)
            )),
            Ok(m) if m.len() < start => Some(format!(
                "{} was cut short from {} to {} during the run",
                shown(target),
                human_bytes(start),
                human_bytes(m.len())
            )),
            Ok(_) => None,
        };
    }
    let now = match size_now(target) {
        Some(now) if now != start => settled_size(target, Some(now)),
        now => now,
    };
    match now {
        None => Some(format!("{} is gone (no such device now)", shown(target))),
        Some(0) if start > 0 => Some(format!(
            "{} is gone: its size went from {} to 0",
            shown(target),
            human_bytes(start)
        )),
        Some(now) if now != start => Some(format!(
            "{}'s size changed from {} to {} during the run (unplugged or reset)",
            shown(target),
            human_bytes(start),
            human_bytes(now)
        )),
        Some(_) => None,
    }
}

/// The size of a block device whose size just changed, once it stops changing: a drive
/// being pulled or reset passes through other sizes on its way (a loop device whose
/// backing file is cut while writes still land in it), and the verdict names where it
/// ends. Reads every 50 ms, at most for half a second; called on a failed drive only.
fn settled_size(target: &Path, mut last: Option<u64>) -> Option<u64> {
    for _ in 0..10 {
        std::thread::sleep(std::time::Duration::from_millis(50));
        let now = size_now(target);
        if now == last {
            break;
        }
        last = now;
    }
    last
}

/// A SMART reading of `target` for the report, or the note saying why there is none.
pub(super) fn smart_read(target: &Path) -> Result<Snapshot, String> {
    let block = fs::metadata(target).is_ok_and(|m| m.file_type().is_block_device());
    if !block {
        return Err(format!("{} is not a block device: no SMART", shown(target)));
    }
    smart::read(target).map_err(|e| e.to_string())
}

/// The SMART part of a drive: the second reading and the comparison.
pub(super) fn smart_doc(target: &Path, before: Result<Snapshot, String>, lost: bool) -> SmartDoc {
    let before = match before {
        Ok(snapshot) => snapshot,
        Err(note) => {
            return SmartDoc {
                note: Some(note),
                ..SmartDoc::default()
            }
        }
    };
    let after = if lost {
        Err("the drive was lost: no reading after the run".to_string())
    } else {
        smart_read(target)
    };
    match after {
        Ok(after) => {
            let cmp = smart::compare(&before, &after);
            SmartDoc {
                note: None,
                changed: cmp.changed,
                passed_before: cmp.passed_before,
                passed_after: cmp.passed_after,
                findings: cmp.findings,
                before: Some(before),
                after: Some(after),
            }
        }
        Err(note) => SmartDoc {
            note: Some(note),
            passed_before: before.passed,
            findings: if before.passed == Some(false) {
                vec!["SMART overall health: FAILED before the run".into()]
            } else {
                Vec::new()
            },
            before: Some(before),
            ..SmartDoc::default()
        },
    }
}
