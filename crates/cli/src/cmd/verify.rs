//! `verify`: re-read every object (or one), check every block, list each damaged range.

use std::sync::Arc;

use anyhow::{bail, Context as _};
use stack_volume::{VerifyOptions, VerifyReport, Volume};

use super::ack::{apply, read_log};
use super::args::VerifyArgs;
use super::doc::VerifyDoc;
use super::exit::Status;
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
    // The log is read first: a malformed one is refused before the drive is read.
    let acked = args.acked.as_deref().map(read_log).transpose()?;
    let volume = super::lock::open(ctx, &args.target, args.direct, args.cached, true)?;
    let (doc, report) = verify_report(ctx, &volume, args.object.as_deref(), "verify")?;
    let human = format!(
        "{}{}{}",
        human::verdict_line(&doc),
        human::verify(&doc),
        stack_volume::findings::summary(&doc.findings)
    );
    if let Some(path) = &args.report {
        let drive = super::report::drive(&args.target, &volume, &report, &doc);
        super::report::write_html(path, &[drive])?;
    }
    let mut outcome = Outcome::new(status_of(&doc), "verify", &doc, human)?;
    if let (Some((records, partial)), Some(path)) = (acked, args.acked.as_deref()) {
        let check = volume
            .check_acked_against(&records, &report)
            .with_context(|| format!("checking the ack log {}", path.display()))?;
        apply(&mut outcome, &check, partial);
    }
    Ok(outcome)
}
