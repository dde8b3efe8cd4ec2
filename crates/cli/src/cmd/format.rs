//! `format`: the safety checks, then a new volume (shared with `burn-in`).

use std::fs;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context as _};
use serde::Serialize;
use stack_volume::{FormatOptions, LockMode, ObjectInfo, OpenOptions, Volume};

use super::args::{CsumName, FormatArgs};
use super::doc::VolumeDoc;
use super::exit::{usage, Status};
use super::human;
use super::safety::{self, TargetKind};
use super::size::human_bytes;
use super::{shown, Ctx, Outcome};

/// What `format` did, as JSON.
#[derive(Debug, Clone, Serialize)]
pub struct FormatDoc {
    /// The target as given.
    pub target: String,
    /// The file did not exist and was created.
    pub created_file: bool,
    /// A stackctl volume was there before (its objects are gone).
    pub replaced_volume: bool,
    /// Content `--force` overwrote ("what at byte N").
    pub forced_over: Vec<String>,
    /// The new volume.
    pub volume: VolumeDoc,
}

/// The format request, from `format` or `burn-in`.
#[derive(Debug, Clone)]
pub struct FormatRequest<'a> {
    /// The file or device.
    pub target: &'a Path,
    /// `--size`.
    pub size_bytes: Option<u64>,
    /// `--block-size`.
    pub block_size_bytes: u64,
    /// `--csum`.
    pub csum: CsumName,
    /// `--force`.
    pub force: bool,
    /// `--direct`.
    pub direct: bool,
    /// `--cached`.
    pub cached: bool,
    /// The request comes from `burn-in`, which may replace its own earlier result (a
    /// volume whose only object is [`super::burn_in::BURN_IN_OBJECT`]) without `--force`.
    pub burn_in: bool,
}

/// The objects of the stackctl volume already on `target`, or why it cannot be opened.
///
/// Opened on a device of its own, read-only and without the volume lock: the caller is
/// about to overwrite the target and already holds whatever it needs.
fn existing_objects(target: &Path) -> Result<Vec<ObjectInfo>, String> {
    let opts = stack_bio::OpenOptions::new().read_only(true);
    let device = stack_bio::FileDevice::open(target, &opts).map_err(|e| e.to_string())?;
    let volume = Volume::open_device(
        Arc::new(device),
        &OpenOptions {
            read_only: true,
            ..OpenOptions::default()
        },
    )
    .map_err(|e| e.to_string())?;
    Ok(volume.objects())
}

/// Why the volume on `path` may not be overwritten by `verb` ("format", "probe")
/// without `--force`, if it may not. `burn_in`: burn-in's own earlier object may go.
pub fn volume_refusal(path: &Path, burn_in: bool, verb: &str) -> Option<String> {
    let target = shown(path);
    match existing_objects(path) {
        Err(why) => Some(format!(
            "refusing to {verb} {target}: it holds a stackctl volume that cannot be opened ({why}), so its objects cannot be listed; pass --force to overwrite it"
        )),
        Ok(objects) => {
            let kept: Vec<&ObjectInfo> = objects
                .iter()
                .filter(|o| {
                    !(burn_in
                        && o.name == super::burn_in::BURN_IN_OBJECT
                        && matches!(o.kind, stack_volume::ObjectKind::Pattern { .. }))
                })
                .collect();
            if kept.is_empty() {
                return None;
            }
            let total: u64 = kept.iter().map(|o| o.size_bytes).sum();
            let mut names: Vec<String> = kept
                .iter()
                .take(10)
                .map(|o| format!("{:?} ({})", o.name, human_bytes(o.size_bytes)))
                .collect();
            if kept.len() > names.len() {
                names.push(format!("and {} more", kept.len() - names.len()));
            }
            Some(format!(
                "refusing to {verb} {target}: it holds a stackctl volume with {} object(s), {}: {}; pass --force to destroy them",
                kept.len(),
                human_bytes(total),
                names.join(", ")
            ))
        }
    }
}

/// Takes the exclusive lock on a target about to be overwritten (creating a missing
/// file when `create`). Where the kernel refuses a block device's exclusive claim, the
/// error says who uses it (mounted, swap, held) where the system tells.
pub fn lock_for_overwrite(
    ctx: &Ctx,
    target: &Path,
    create: bool,
) -> anyhow::Result<stack_volume::VolumeLock> {
    match super::lock::lock(ctx, target, LockMode::Exclusive, create) {
        Ok(lock) => Ok(lock),
        Err(e) => {
            let claimed = e.chain().any(|c| {
                matches!(
                    c.downcast_ref(),
                    Some(stack_volume::Error::Locked { claimed: true, .. })
                )
            });
            if claimed {
                if let Some(refusal) = safety::inspect_claimed(target, false)
                    .ok()
                    .filter(|i| !i.users.is_empty())
                    .and_then(|i| i.refusal(target, true))
                {
                    bail!(refusal);
                }
            }
            Err(e)
        }
    }
}

/// A target that passed the checks, locked, not yet written.
#[derive(Debug)]
pub struct Checked {
    lock: stack_volume::VolumeLock,
    inspection: safety::Inspection,
    block_size_bytes: u32,
}

impl Checked {
    /// Gives up a checked target: a file its lock created is removed again (another
    /// target of the run was refused, so nothing is written).
    pub fn abandon(self, target: &Path) {
        if self.lock.created() {
            let _ = std::fs::remove_file(target);
        }
    }
}

/// Checks the target, then formats it.
pub fn format_target(
    ctx: &Ctx,
    request: &FormatRequest<'_>,
) -> anyhow::Result<(Volume, FormatDoc, TargetKind)> {
    let checked = check_target(ctx, request)?;
    format_checked(request, checked)
}

/// The checks before a format (block size, lock, safety, an existing volume), leaving
/// the target locked and untouched.
pub fn check_target(ctx: &Ctx, request: &FormatRequest<'_>) -> anyhow::Result<Checked> {
    let target = request.target;
    let block_size_bytes = u32::try_from(request.block_size_bytes)
        .ok()
        .filter(|&bs| stack_volume::format::block_size_ok(bs.into()))
        .ok_or_else(|| {
            usage(format!(
                "--block-size {}: not a power of two from 512 to 64K",
                request.block_size_bytes
            ))
        })?;
    let missing =
        matches!(fs::symlink_metadata(target), Err(e) if e.kind() == std::io::ErrorKind::NotFound);
    if missing && request.size_bytes.is_none() {
        bail!(
            "{}: does not exist; pass --size SIZE to create a file of that size",
            shown(target)
        );
    }
    // The lock comes first: the checks below and the format all run under it, so no
    // process can start using the target between the checks and the write.
    let lock = lock_for_overwrite(ctx, target, missing)?;
    let inspection = if lock.created() {
        safety::Inspection::missing()
    } else {
        safety::inspect_claimed(target, lock.holds_claim()).with_context(|| shown(target))?
    };
    if inspection.kind == TargetKind::BlockDevice && request.size_bytes.is_some() {
        return Err(usage(format!(
            "--size applies to files; {} is a block device and is used whole",
            shown(target)
        )));
    }
    if let Some(refusal) = inspection.refusal(target, request.force) {
        bail!(refusal);
    }
    if inspection.own_volume_at.is_some() && !request.force {
        if let Some(refusal) = volume_refusal(target, request.burn_in, "format") {
            bail!(refusal);
        }
    }
    Ok(Checked {
        lock,
        inspection,
        block_size_bytes,
    })
}

/// Formats a checked target.
pub fn format_checked(
    request: &FormatRequest<'_>,
    checked: Checked,
) -> anyhow::Result<(Volume, FormatDoc, TargetKind)> {
    let target = request.target;
    let Checked {
        lock,
        inspection,
        block_size_bytes,
    } = checked;
    let opts = FormatOptions {
        block_size_bytes,
        algorithm: request.csum.algorithm(),
        create_size_bytes: request.size_bytes,
        direct: request.direct,
        wait: stack_volume::LockWait::NoWait,
        cached: request.cached,
    };
    let volume = match Volume::format_locked(target, &opts, lock) {
        Ok(volume) => volume,
        Err(e) => {
            if inspection.kind == TargetKind::Missing {
                // Leave nothing behind: the file was ours and holds no volume.
                let _ = std::fs::remove_file(target);
            }
            return Err(anyhow::Error::new(e).context(format!("formatting {}", shown(target))));
        }
    };
    let doc = FormatDoc {
        target: shown(target),
        created_file: inspection.kind == TargetKind::Missing,
        replaced_volume: inspection.own_volume_at.is_some(),
        forced_over: inspection
            .findings
            .iter()
            .map(|f| format!("{} at byte {}", f.what, f.offset))
            .collect(),
        volume: VolumeDoc::new(&volume.info()),
    };
    Ok((volume, doc, inspection.kind))
}

/// One paragraph about a format.
pub fn summary(doc: &FormatDoc) -> String {
    let mut out = format!(
        "formatted {}: {} volume, block size {} B, checksum {}, {} free\n",
        doc.target,
        human_bytes(doc.volume.size_bytes),
        doc.volume.block_size,
        doc.volume.csum,
        human_bytes(doc.volume.free_bytes)
    );
    out.push_str(&format!(
        "  device: {}\n",
        human::device_line(&doc.volume.device)
    ));
    if doc.created_file {
        out.push_str("  (the file was created)\n");
    }
    if doc.replaced_volume {
        out.push_str("  (a previous stackctl volume was replaced)\n");
    }
    for over in &doc.forced_over {
        out.push_str(&format!("  overwrote (--force): {over}\n"));
    }
    out
}

/// `stackctl format`.
pub fn run(ctx: &Ctx, args: &FormatArgs) -> anyhow::Result<Outcome> {
    let request = FormatRequest {
        target: &args.target,
        size_bytes: args.size,
        block_size_bytes: args.block_size,
        csum: args.csum,
        force: args.force,
        direct: args.direct,
        cached: false,
        burn_in: false,
    };
    let (_volume, doc, _kind) = format_target(ctx, &request)?;
    let human = summary(&doc);
    Outcome::new(Status::Clean, "format", &doc, human)
}
