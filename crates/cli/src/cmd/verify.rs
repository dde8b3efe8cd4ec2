//! `verify`: re-read every object (or one), check every block, list each damaged range;
//! several volumes side by side (`drives/`).

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context as _};
use stack_volume::{VerifyOptions, VerifyReport, Volume};

use super::ack::{apply, read_log};
use super::args::VerifyArgs;
use super::burn_in::verdict_name;
use super::doc::VerifyDoc;
use super::drives::{self, refuse_duplicates, DriveRun, Row};
use super::exit::{usage, Status};
use super::human;
use super::{Ctx, Outcome};

/// Verifies an open volume and builds its document, with the library's report too.
pub fn verify_report(
    ctx: &Ctx,
    volume: &Volume,
    object: Option<&str>,
    command: &'static str,
) -> anyhow::Result<(VerifyDoc, VerifyReport)> {
    let info = volume.info();
    if let Some(name) = object {
        if volume.object(name).is_none() {
            bail!("{}: no object named {name:?}", info.device.path);
        }
    }
    let total = match object {
        Some(name) => volume.object(name).map(|o| o.size_bytes),
        None => Some(volume.objects().iter().map(|o| o.size_bytes).sum()),
    };
    let phase = ctx.reporter(command).phase("verify", total);
    let opts = VerifyOptions {
        object: object.map(str::to_string),
        progress: phase.callback(),
        cancel: Some(Arc::clone(&ctx.cancel)),
        on_damage: None,
    };
    let result = volume.verify(&opts);
    phase.finish();
    let report = result.with_context(|| format!("verifying {}", info.device.path))?;
    let verdict = volume.verdict(&report, object);
    let mut doc = VerifyDoc::new(&report, &info, verdict);
    super::report::set_map(&mut doc, volume.surface_map());
    Ok((doc, report))
}

/// The exit status of a verify document.
pub fn status_of(doc: &VerifyDoc) -> Status {
    if doc.clean {
        Status::Clean
    } else if doc.interrupted && doc.damaged.is_empty() && doc.metadata_ok {
        Status::Interrupted
    } else {
        Status::Damage
    }
}

/// `stackctl verify`.
pub fn run(ctx: &Ctx, args: &VerifyArgs) -> anyhow::Result<Outcome> {
    refuse_duplicates(&args.targets)?;
    if args.acked.is_some() && args.targets.len() > 1 {
        return Err(usage(
            "--acked takes one target (an ack log belongs to one volume)",
        ));
    }
    // The log is read first: a malformed one is refused before the drive is read.
    let acked = args.acked.as_deref().map(read_log).transpose()?;
    // Reading takes no safety checks: every target goes to its own thread at once, and
    // one that cannot be opened fails alone.
    let targets = args
        .targets
        .iter()
        .map(|t| (t.clone(), ()))
        .collect::<Vec<_>>();
    let acked = std::sync::Mutex::new(acked);
    drives::run(
        ctx,
        "verify",
        targets,
        args.smart,
        args.report.as_deref(),
        |ctx, target, ()| {
            let acked = acked.lock().map(|mut a| a.take()).unwrap_or(None);
            verify_one(ctx, args, target, acked)
        },
    )
}

/// Verifies one target.
fn verify_one(
    ctx: &Ctx,
    args: &VerifyArgs,
    target: &Path,
    acked: Option<(Vec<stack_volume::CommitRecord>, bool)>,
) -> anyhow::Result<DriveRun> {
    let volume = super::lock::open(ctx, target, args.direct, args.cached, true)?;
    let (doc, report) = verify_report(ctx, &volume, args.object.as_deref(), "verify")?;
    let human = format!(
        "{}{}{}",
        human::verdict_line(&doc),
        human::verify(&doc),
        stack_volume::findings::summary(&doc.findings)
    );
    let html = args
        .report
        .as_ref()
        .map(|_| super::report::drive(target, &volume, &report, &doc));
    let row = Row {
        verdict: verdict_name(&doc),
        size_bytes: Some(doc.device.size),
        written_bytes: 0,
        write_bytes_per_sec: None,
        read_bytes: doc.bytes_verified,
        read_bytes_per_sec: Some(doc.bytes_per_sec),
        damaged_bytes: doc.damaged.iter().map(|r| r.length).sum(),
    };
    let mut outcome = Outcome::new(status_of(&doc), "verify", &doc, human)?;
    if let (Some((records, partial)), Some(path)) = (acked, args.acked.as_deref()) {
        let check = volume
            .check_acked_against(&records, &report)
            .with_context(|| format!("checking the ack log {}", path.display()))?;
        apply(&mut outcome, &check, partial);
    }
    Ok(DriveRun { outcome, row, html })
}
