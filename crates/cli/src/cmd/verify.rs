//! `verify`: re-read every object (or one), check every block, list each damaged range.

use std::sync::Arc;

use anyhow::{bail, Context as _};
use stackctl::{VerifyOptions, Volume};

use super::args::VerifyArgs;
use super::doc::VerifyDoc;
use super::exit::Status;
use super::human;
use super::{Ctx, Outcome};

/// Verifies an open volume and builds its document.
pub fn verify_volume(
    ctx: &Ctx,
    volume: &Volume,
    object: Option<&str>,
    command: &'static str,
) -> anyhow::Result<VerifyDoc> {
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
    Ok(VerifyDoc::new(&report, &info, verdict))
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
    let volume = super::lock::open(ctx, &args.target, args.direct, args.cached, true)?;
    let doc = verify_volume(ctx, &volume, args.object.as_deref(), "verify")?;
    let human = format!("{}{}", human::verdict_line(&doc), human::verify(&doc));
    Outcome::new(status_of(&doc), "verify", &doc, human)
}
