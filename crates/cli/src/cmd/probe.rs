//! `probe`: the safety checks of burn-in, then the library's quick fake-capacity screen
//! through the device-true path, and its verdict (exit status 1 for a fake or lost
//! blocks, 0 when none was found).

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context as _};
use serde::Serialize;
use stack_volume::probe::{self, Evidence, ProbeOptions, ProbeVerdict, ProbeVerdictKind};
use stack_volume::Source;

use super::args::ProbeArgs;
use super::drives::{self, refuse_duplicates, DriveRun, Row};
use super::exit::Status;
use super::format::{lock_for_overwrite, volume_refusal};
use super::safety::{self, TargetKind};
use super::size::human_bytes;
use super::write::random_seed;
use super::{shown, Ctx, Outcome};

/// Said in every probe's output: what a probe cannot see.
pub const PROBE_LIMIT: &str = "a probe samples the drive: a fake that remaps blocks can pass \
     it; `stackctl burn-in` (a full fill) is the proof";

/// What `probe` found, as JSON.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeDoc {
    /// The target as given.
    pub target: String,
    /// The size the target reports.
    pub advertised_bytes: u64,
    /// The verdict: `fake-capacity`, `damaged` or `no-fake-found`.
    pub verdict: ProbeVerdict,
    /// Bytes of one probe block.
    pub block_bytes: u64,
    /// Probe blocks written.
    pub blocks_written: u64,
    /// Bytes written.
    pub bytes_written: u64,
    /// The write budget.
    pub budget_bytes: u64,
    /// Bytes read back (probes and cache-defeating reads).
    pub bytes_read: u64,
    /// Rounds of write, cache defeat, read back.
    pub rounds: u32,
    /// Wall time.
    pub elapsed_secs: f64,
    /// Where the reads came from: `direct`, `evicted`, `memory`, `page-cache`.
    pub source: Source,
    /// Why the reads may not be what the drive holds, when they may not.
    pub source_warning: Option<String>,
    /// The run's nonce (blocks of other runs do not count as stored).
    pub nonce: u64,
    /// Content `--force` overwrote ("what at byte N").
    pub forced_over: Vec<String>,
    /// What a probe cannot see.
    pub limits: String,
    /// What the target holds now.
    pub after: String,
}

fn headline(doc: &ProbeDoc) -> String {
    let v = &doc.verdict;
    match (v.kind, v.usable_bytes) {
        (ProbeVerdictKind::FakeCapacity, Some(usable)) => {
            let precision = match v.precision_bytes {
                Some(p) if p == doc.block_bytes => format!("exact to the {p}-byte block"),
                Some(p) => format!("the real size is less than {} more", human_bytes(p)),
                None => "a wrap distance not confirmed; the real size divides it".to_string(),
            };
            format!(
                "FAKE CAPACITY: {} holds {} of the {} it reports ({usable} bytes; {precision})\n",
                doc.target,
                human_bytes(usable),
                human_bytes(doc.advertised_bytes)
            )
        }
        (ProbeVerdictKind::Damaged, _) => format!(
            "DAMAGED: {}: probe blocks did not read back, but not past one offset; \
             the usable size cannot be told by probing; run burn-in\n",
            doc.target
        ),
        _ => format!(
            "no fake found by probing {} ({} advertised)\n",
            doc.target,
            human_bytes(doc.advertised_bytes)
        ),
    }
}

fn human(doc: &ProbeDoc) -> String {
    let mut out = headline(doc);
    // At most 3 lines of each kind of evidence; the JSON has them all.
    let mut shown_of_kind: Vec<(std::mem::Discriminant<Evidence>, usize)> = Vec::new();
    let mut hidden = 0;
    for e in &doc.verdict.evidence {
        let kind = std::mem::discriminant(e);
        match shown_of_kind.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, n)) if *n >= 3 => hidden += 1,
            Some((_, n)) => {
                *n += 1;
                out.push_str(&format!("  {e}\n"));
            }
            None => {
                shown_of_kind.push((kind, 1));
                out.push_str(&format!("  {e}\n"));
            }
        }
    }
    if hidden > 0 {
        out.push_str(&format!("  ... and {hidden} more alike (see --json)\n"));
    }
    out.push_str(&format!(
        "  probed: {} blocks of {} B written ({} of a {} budget), {} read, {} round(s), \
         {:.1} s; reads: {}\n",
        doc.blocks_written,
        doc.block_bytes,
        human_bytes(doc.bytes_written),
        human_bytes(doc.budget_bytes),
        human_bytes(doc.bytes_read),
        doc.rounds,
        doc.elapsed_secs,
        doc.source.name()
    ));
    if let Some(w) = &doc.source_warning {
        out.push_str(&format!("  WARNING: {w}\n"));
    }
    if matches!(doc.source, Source::PageCache | Source::Memory) {
        out.push_str(&format!(
            "  note: the reads came from {}, not a drive: a fake would not show\n",
            if doc.source == Source::Memory {
                "memory"
            } else {
                "the page cache"
            }
        ));
    }
    for over in &doc.forced_over {
        out.push_str(&format!("  overwrote (--force): {over}\n"));
    }
    out.push_str(&format!("  note: {}\n", doc.limits));
    out.push_str(&format!("  note: {}\n", doc.after));
    out
}

/// The exit status of a verdict: 1 for a fake or lost blocks, 0 when none was found.
fn status_of(kind: ProbeVerdictKind) -> Status {
    match kind {
        ProbeVerdictKind::NoFakeFound => Status::Clean,
        ProbeVerdictKind::FakeCapacity | ProbeVerdictKind::Damaged => Status::Damage,
    }
}

/// Whether the first block of `target` is a probe block (an earlier probe's result).
fn holds_probe_blocks(target: &std::path::Path) -> bool {
    use std::io::Read as _;
    let mut head = [0u8; 512];
    std::fs::File::open(target)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|()| probe::is_probe_block(&head))
}

/// A target that passed the checks: its lock and what `--force` overwrites.
struct Checked {
    lock: stack_volume::VolumeLock,
    inspection: safety::Inspection,
}

/// `stackctl probe`.
pub fn run(ctx: &Ctx, args: &ProbeArgs) -> anyhow::Result<Outcome> {
    refuse_duplicates(&args.targets)?;
    let checked = drives::check_all(
        &args.targets,
        |target| Ok((target.to_path_buf(), check(ctx, args, target)?)),
        drop,
    )?;
    drives::run(
        ctx,
        "probe",
        checked,
        args.smart,
        None,
        |ctx, target, checked| probe_one(ctx, args, target, checked),
    )
}

/// The checks before a probe, leaving the target locked and untouched.
fn check(ctx: &Ctx, args: &ProbeArgs, target: &Path) -> anyhow::Result<Checked> {
    if std::fs::symlink_metadata(target).is_err() {
        bail!("{}: does not exist", shown(target));
    }
    let lock = lock_for_overwrite(ctx, target, false)?;
    let mut inspection =
        safety::inspect_claimed(target, lock.holds_claim()).with_context(|| shown(target))?;
    if holds_probe_blocks(target) {
        // An earlier probe's result: probing again destroys nothing (as burn-in may
        // replace its own volume). Foreign signatures still count.
        inspection
            .findings
            .retain(|f| !f.what.starts_with("non-zero data"));
    }
    if inspection.kind == TargetKind::Missing {
        bail!("{}: does not exist", shown(target));
    }
    if let Some(refusal) = inspection.refusal(target, args.force) {
        bail!(refusal);
    }
    if inspection.own_volume_at.is_some() && !args.force {
        if let Some(refusal) = volume_refusal(target, false, "probe") {
            bail!(refusal);
        }
    }
    Ok(Checked { lock, inspection })
}

/// Probes one checked target.
fn probe_one(
    ctx: &Ctx,
    args: &ProbeArgs,
    target: &Path,
    checked: Checked,
) -> anyhow::Result<DriveRun> {
    let Checked { lock, inspection } = checked;
    let device = stack_volume::open_raw_device(target, args.direct, args.cached, &lock)
        .with_context(|| format!("opening {}", shown(target)))?;
    let nonce = random_seed();
    let opts = ProbeOptions {
        block_bytes: None,
        budget_bytes: args.budget,
        cache_defeat_bytes: args.cache.unwrap_or(probe::DEFAULT_CACHE_DEFEAT_BYTES),
        nonce,
        cancel: Some(ctx.cancel.clone()),
    };
    let started = Instant::now();
    let report = probe::probe(device.as_ref(), &opts)
        .with_context(|| format!("probing {}", shown(target)))?;
    let elapsed_secs = started.elapsed().as_secs_f64();
    let (source, source_warning) = stack_volume::device_read_source(device.as_ref());
    let status = status_of(report.verdict.kind);
    let after = format!(
        "{} now holds probe blocks where it was probed; it is no volume (format or burn-in \
         it before use)",
        shown(target)
    );
    let doc = ProbeDoc {
        target: shown(target),
        advertised_bytes: report.advertised_bytes,
        verdict: report.verdict,
        block_bytes: report.block_bytes,
        blocks_written: report.blocks_written,
        bytes_written: report.bytes_written,
        budget_bytes: report.budget_bytes,
        bytes_read: report.bytes_read,
        rounds: report.rounds,
        elapsed_secs,
        source,
        source_warning,
        nonce,
        forced_over: inspection
            .findings
            .iter()
            .map(|f| format!("{} at byte {}", f.what, f.offset))
            .collect(),
        limits: PROBE_LIMIT.to_string(),
        after,
    };
    let text = human(&doc);
    let row = Row {
        verdict: doc.verdict.kind.name().to_string(),
        size_bytes: Some(doc.advertised_bytes),
        written_bytes: doc.bytes_written,
        write_bytes_per_sec: Some(super::doc::rate(doc.bytes_written, elapsed_secs)),
        read_bytes: doc.bytes_read,
        read_bytes_per_sec: Some(super::doc::rate(doc.bytes_read, elapsed_secs)),
        damaged_bytes: 0,
    };
    let outcome = Outcome::new(status, "probe", &doc, text)?;
    Ok(DriveRun {
        outcome,
        row,
        html: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(kind: ProbeVerdictKind, usable: Option<u64>, precision: Option<u64>) -> ProbeDoc {
        ProbeDoc {
            target: "/dev/sdz".into(),
            advertised_bytes: 1 << 30,
            verdict: ProbeVerdict {
                kind,
                usable_bytes: usable,
                precision_bytes: precision,
                evidence: vec![Evidence::Reappears {
                    read_at_bytes: 4096,
                    names_bytes: (64 << 20) + 4096,
                    distance_bytes: 64 << 20,
                }],
            },
            block_bytes: 4096,
            blocks_written: 10,
            bytes_written: 40960,
            budget_bytes: 1 << 20,
            bytes_read: 1 << 26,
            rounds: 2,
            elapsed_secs: 1.5,
            source: Source::Direct,
            source_warning: None,
            nonce: 1,
            forced_over: Vec::new(),
            limits: PROBE_LIMIT.into(),
            after: "after".into(),
        }
    }

    /// The CLI cannot reach a wrapping device on the test machines (no device-mapper),
    /// so the summary and status of a fake are pinned here.
    #[test]
    fn a_fake_leads_the_summary_and_exits_1() {
        let fake = doc(ProbeVerdictKind::FakeCapacity, Some(64 << 20), Some(4096));
        let text = human(&fake);
        assert!(
            text.starts_with(
                "FAKE CAPACITY: /dev/sdz holds 64.0 MiB of the 1.00 GiB it reports \
                 (67108864 bytes; exact to the 4096-byte block)\n"
            ),
            "{text}"
        );
        assert!(text.contains("the block read at byte 4096 is the one written at byte 67112960"));
        assert!(text.contains("burn-in"), "{text}");
        assert_eq!(status_of(fake.verdict.kind), Status::Damage);
        let rough = human(&doc(
            ProbeVerdictKind::FakeCapacity,
            Some(64 << 20),
            Some(1 << 20),
        ));
        assert!(rough.contains("less than 1.00 MiB more"), "{rough}");
        let damaged = doc(ProbeVerdictKind::Damaged, None, None);
        assert!(human(&damaged).starts_with("DAMAGED: /dev/sdz"));
        assert_eq!(status_of(damaged.verdict.kind), Status::Damage);
        let none = doc(ProbeVerdictKind::NoFakeFound, None, None);
        assert!(human(&none).starts_with("no fake found by probing /dev/sdz"));
        assert_eq!(status_of(none.verdict.kind), Status::Clean);
        let json = serde_json::to_value(&fake).unwrap();
        assert_eq!(json["verdict"]["kind"], "fake-capacity");
        assert_eq!(json["verdict"]["usable_bytes"], 64 << 20);
        assert_eq!(json["verdict"]["evidence"][0]["kind"], "reappears");
        assert_eq!(json["source"], "direct");
    }
}
