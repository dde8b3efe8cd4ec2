//! Human summaries on stdout: bytes, time, throughput, and the verify damage table.

use std::fmt::Write as _;

use super::doc::{DeviceDoc, ObjectDoc, SlotDoc, VerifyDoc, VolumeDoc, WrittenDoc};
use super::size::{human_bytes, human_rate};
use stack_volume::Verdict;

/// Left-aligned text columns, each as wide as its widest cell.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (index, (cell, width)) in cells.iter().zip(&widths).enumerate() {
            if index + 1 == cells.len() {
                text.push_str(cell);
            } else {
                let _ = write!(text, "{cell:<width$}  ");
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS` UTC (Howard Hinnant's `civil_from_days`).
pub fn utc_time(unix_secs: u64) -> String {
    let days = (unix_secs / 86_400) as i64;
    let secs_of_day = unix_secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        secs_of_day / 3600,
        secs_of_day / 60 % 60,
        secs_of_day % 60
    )
}

/// `"256.0 MiB in 1.23 s (208.1 MiB/s)"`.
pub fn amount(bytes: u64, secs: f64) -> String {
    format!(
        "{} in {secs:.2} s ({})",
        human_bytes(bytes),
        human_rate(bytes, secs)
    )
}

/// One line on the device and volume.
pub fn device_line(device: &DeviceDoc) -> String {
    let mut text = format!(
        "{} ({}, {}, logical block {} B",
        device.path,
        device.kind,
        human_bytes(device.size),
        device.logical_block_size
    );
    if let Some(model) = &device.model {
        let _ = write!(text, ", model {model}");
    }
    if let Some(serial) = &device.serial {
        let _ = write!(text, ", serial {serial}");
    }
    if let Some(backing) = &device.identity.backing_file {
        let _ = write!(text, ", backing file {backing}");
    }
    let _ = write!(text, "), volume {}", device.volume_uuid);
    text
}

fn slot_text(slot: &SlotDoc) -> String {
    match (slot.generation, &slot.reason) {
        (Some(generation), _) => format!(
            "slot {} {} (generation {generation})",
            slot.slot, slot.state
        ),
        (None, Some(reason)) => format!("slot {} {}: {reason}", slot.slot, slot.state),
        (None, None) => format!("slot {} {}", slot.slot, slot.state),
    }
}

/// A source name with what it means for the verdict.
pub fn source_text(source: &str) -> String {
    let meaning = match source {
        "direct" => "read from the drive with O_DIRECT",
        "evicted" => "read from the drive, each range evicted from the page cache first",
        "memory" => "the file is in memory (tmpfs): there is no drive behind it",
        "page-cache" => "read through the page cache: not proof of what the drive holds",
        _ => "",
    };
    format!("{source} ({meaning})")
}

/// How a write reached the device, in words.
fn write_source_text(source: &str) -> &'static str {
    match source {
        "direct" => "direct (O_DIRECT)",
        "memory" => "memory (tmpfs: no drive behind it)",
        _ => "page-cache (buffered, flushed at each commit)",
    }
}

/// The line a summary leads with when the drive is a fake (empty otherwise):
/// `FAKE CAPACITY: holds 64.0 MiB of the 256.0 MiB it reports`, then the evidence.
pub fn verdict_line(doc: &VerifyDoc) -> String {
    let Some(Verdict::FakeCapacity {
        advertised_bytes,
        usable_bytes,
        evidence,
    }) = &doc.verdict
    else {
        return String::new();
    };
    let mut out = format!(
        "FAKE CAPACITY: holds {} of the {} it reports ({usable_bytes} of {advertised_bytes} \
         bytes)\n",
        human_bytes(*usable_bytes),
        human_bytes(*advertised_bytes)
    );
    for line in evidence {
        let _ = writeln!(out, "  evidence: {line}");
    }
    out
}

/// The verify summary, with the damage table.
pub fn verify(doc: &VerifyDoc) -> String {
    let mut out = String::new();
    let verdict = if doc.clean {
        "clean".to_string()
    } else if doc.interrupted {
        "INTERRUPTED (not everything was checked)".to_string()
    } else {
        format!("DAMAGE FOUND: {}", damage_summary(doc))
    };
    let _ = writeln!(out, "verify: {verdict}");
    let _ = writeln!(out, "  device:  {}", device_line(&doc.device));
    let _ = writeln!(out, "  source:  {}", source_text(doc.source));
    if let Some(warning) = &doc.source_warning {
        let _ = writeln!(out, "  WARNING: {warning}");
    }
    let _ = writeln!(
        out,
        "  checked: {} object{}, {} blocks, {}",
        doc.objects_verified,
        if doc.objects_verified == 1 { "" } else { "s" },
        doc.blocks_verified,
        amount(doc.bytes_verified, doc.elapsed_secs)
    );
    let slots: Vec<String> = doc.superblocks.iter().map(slot_text).collect();
    let _ = writeln!(out, "  superblocks: {}", slots.join("; "));
    if !doc.incomplete_objects.is_empty() {
        let _ = writeln!(
            out,
            "  incomplete (interrupted writes; committed part checked): {}",
            doc.incomplete_objects.join(", ")
        );
    }
    for meta in &doc.metadata_damage {
        let object = meta
            .object
            .as_deref()
            .map(|o| format!(" of object {o:?}"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  metadata damaged: {}{object} at byte {}: {}",
            meta.what, meta.physical_offset, meta.detail
        );
    }
    if !doc.damaged.is_empty() {
        let rows: Vec<Vec<String>> = doc
            .damaged
            .iter()
            .map(|r| {
                let mut cause = r.cause.to_string();
                if let Some(bits) = r.bits {
                    let _ = write!(cause, " ({bits} bits)");
                }
                if let Some(valid) = r.valid_bytes {
                    let _ = write!(cause, " ({valid} B new)");
                }
                if let Some(at) = r.belongs_at {
                    let _ = write!(cause, " (belongs at {at})");
                }
                vec![
                    r.object.clone(),
                    r.logical_offset.to_string(),
                    r.physical_offset.to_string(),
                    r.length.to_string(),
                    cause,
                    r.expected.clone().unwrap_or_else(|| "-".into()),
                    r.found.clone().unwrap_or_else(|| "-".into()),
                ]
            })
            .collect();
        out.push('\n');
        out.push_str(&table(
            &[
                "OBJECT", "LOGICAL", "PHYSICAL", "LENGTH", "CAUSE", "EXPECTED", "FOUND",
            ],
            &rows,
        ));
        if doc.damaged_not_listed > 0 {
            let _ = writeln!(
                out,
                "... and {} more range(s) not listed",
                doc.damaged_not_listed
            );
        }
    }
    out
}

/// What is damaged, most specific first: data ranges, metadata, superblock copies. Each
/// part appears only when there is such damage, so a damaged superblock alone never
/// reads "0 damaged range(s)".
fn damage_summary(doc: &VerifyDoc) -> String {
    let mut parts = Vec::new();
    let ranges = doc.damaged.len() as u64 + doc.damaged_not_listed;
    if ranges > 0 {
        let bytes: u64 = doc.damaged.iter().map(|r| r.length).sum();
        parts.push(format!(
            "{ranges} damaged data range(s), {}",
            human_bytes(bytes)
        ));
    }
    // Unusable superblock copies are said once, by the slot part below.
    let metadata: Vec<&str> = doc
        .metadata_damage
        .iter()
        .filter(|m| !m.what.starts_with("superblock slot"))
        .map(|m| {
            if m.what.starts_with("checksum block") {
                "checksum blocks"
            } else {
                "object table"
            }
        })
        .collect();
    if !metadata.is_empty() {
        let mut what = metadata.clone();
        what.sort_unstable();
        what.dedup();
        parts.push(format!(
            "metadata damaged ({} place(s): {})",
            metadata.len(),
            what.join(", ")
        ));
    }
    let bad_slots: Vec<String> = doc
        .superblocks
        .iter()
        .filter(|s| s.state != "ok")
        .map(|s| s.slot.to_string())
        .collect();
    if !bad_slots.is_empty() {
        let noun = if bad_slots.len() == 1 {
            "slot"
        } else {
            "slots"
        };
        parts.push(format!(
            "superblock {noun} {} unusable",
            bad_slots.join(" and ")
        ));
    }
    if ranges == 0 {
        parts.push("no damaged data found".into());
    }
    parts.join("; ")
}

/// The write summary.
pub fn written(objects: &[WrittenDoc]) -> String {
    let mut out = String::new();
    for object in objects {
        let seed = object
            .seed
            .map(|s| format!(", seed {s}"))
            .unwrap_or_default();
        let state = if object.complete { "" } else { " (incomplete)" };
        let _ = writeln!(
            out,
            "wrote {:?}{state}: {}, {} commit(s), {} extent(s){seed}, {}",
            object.name,
            amount(object.bytes, object.elapsed_secs),
            object.commits,
            object.extents,
            write_source_text(object.source)
        );
        if let Some(c) = &object.canary_failed {
            let _ = writeln!(
                out,
                "  canary at byte {} (after {} written) found {}{}",
                c.physical_offset,
                human_bytes(c.written_bytes),
                c.found,
                if object.stopped_early {
                    "; the fill stopped (--no-stop keeps filling)"
                } else {
                    ""
                }
            );
        }
    }
    if objects.len() > 1 {
        let bytes: u64 = objects.iter().map(|o| o.bytes).sum();
        let secs: f64 = objects.iter().map(|o| o.elapsed_secs).sum();
        let _ = writeln!(
            out,
            "total: {} objects, {}",
            objects.len(),
            amount(bytes, secs)
        );
    }
    out
}

/// The `ls` table.
pub fn objects(objects: &[ObjectDoc]) -> String {
    if objects.is_empty() {
        return "no objects\n".to_string();
    }
    let rows: Vec<Vec<String>> = objects
        .iter()
        .map(|o| {
            vec![
                o.name.clone(),
                o.size_bytes.to_string(),
                human_bytes(o.size_bytes),
                match o.seed {
                    Some(seed) => format!("pattern:{seed}"),
                    None => o.kind.to_string(),
                },
                o.extents.to_string(),
                if o.complete {
                    "yes"
                } else {
                    "NO (interrupted)"
                }
                .to_string(),
                utc_time(o.created),
            ]
        })
        .collect();
    table(
        &[
            "NAME", "BYTES", "SIZE", "KIND", "EXTENTS", "COMPLETE", "CREATED",
        ],
        &rows,
    )
}

/// The `info` summary.
pub fn volume(doc: &VolumeDoc) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "volume {}", doc.uuid);
    let _ = writeln!(out, "  device:      {}", device_line(&doc.device));
    let _ = writeln!(
        out,
        "  size:        {} ({} used, {} free)",
        human_bytes(doc.size_bytes),
        human_bytes(doc.used_bytes),
        human_bytes(doc.free_bytes)
    );
    let _ = writeln!(
        out,
        "  block size:  {} B, checksum {}",
        doc.block_size, doc.csum
    );
    let _ = writeln!(
        out,
        "  objects:     {} ({} incomplete)",
        doc.objects, doc.incomplete_objects
    );
    let _ = writeln!(
        out,
        "  generation:  {} (opened from slot {})",
        doc.generation, doc.superblock_slot
    );
    let slots: Vec<String> = doc.superblocks.iter().map(slot_text).collect();
    let _ = writeln!(out, "  superblocks: {}", slots.join("; "));
    if let Some(warning) = &doc.fallback_warning {
        let _ = writeln!(out, "  WARNING: {warning}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns() {
        let text = table(
            &["A", "BB"],
            &[
                vec!["long cell".into(), "x".into()],
                vec!["y".into(), "z".into()],
            ],
        );
        assert_eq!(text, "A          BB\nlong cell  x\ny          z\n");
    }

    #[test]
    fn utc_times() {
        assert_eq!(utc_time(0), "1970-01-01 00:00:00");
        assert_eq!(utc_time(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(utc_time(1_795_429_077), "2026-11-23 10:17:57");
        assert_eq!(utc_time(4_107_542_399), "2100-02-28 23:59:59");
    }

    #[test]
    fn amounts_show_bytes_time_and_rate() {
        assert_eq!(amount(1 << 20, 0.5), "1.00 MiB in 0.50 s (2.00 MiB/s)");
    }
}
