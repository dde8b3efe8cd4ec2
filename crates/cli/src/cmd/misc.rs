//! `ls`, `rm`, `info` and `completions`.

use anyhow::Context as _;
use clap::CommandFactory;
use serde::Serialize;
use stack_volume::Volume;

use super::args::{Cli, CompletionsArgs, RmArgs, TargetArgs};
use super::doc::{ObjectDoc, VolumeDoc};
use super::exit::Status;
use super::human;
use super::size::human_bytes;
use super::{shown, Ctx, Outcome};

fn open(ctx: &Ctx, target: &std::path::Path, read_only: bool) -> anyhow::Result<Volume> {
    super::lock::open(ctx, target, false, false, read_only)
}

/// The `ls` document.
#[derive(Debug, Serialize)]
struct LsDoc {
    target: String,
    objects: Vec<ObjectDoc>,
    /// Set when the newest superblock or its metadata is damaged and the listing comes
    /// from the previous commit: objects committed last may be missing from it.
    warning: Option<String>,
}

/// `stackctl ls`.
pub fn ls(ctx: &Ctx, args: &TargetArgs) -> anyhow::Result<Outcome> {
    let volume = open(ctx, &args.target, true)?;
    let objects: Vec<ObjectDoc> = volume.objects().iter().map(ObjectDoc::new).collect();
    let warning = volume.info().fallback_warning;
    let text = human::objects(&objects);
    // A listing from an older commit must not look like the whole truth: a damaged
    // newest generation is damage, so it is said first and the exit status is 1.
    let doc = LsDoc {
        target: shown(&args.target),
        objects,
        warning: warning.clone(),
    };
    Ok(Outcome::new(Status::Clean, "ls", &doc, text)?.with_fallback(warning))
}

/// The `rm` document.
#[derive(Debug, Serialize)]
struct RmDoc {
    target: String,
    removed: String,
    size_bytes: u64,
    free_bytes: u64,
}

/// `stackctl rm`.
pub fn rm(ctx: &Ctx, args: &RmArgs) -> anyhow::Result<Outcome> {
    let mut volume = open(ctx, &args.target, false)?;
    let fallback = volume.info().fallback_warning;
    let size_bytes = volume.object(&args.name).map_or(0, |o| o.size_bytes);
    volume.remove(&args.name).with_context(|| {
        format!(
            "removing object {:?} from {}",
            args.name,
            shown(&args.target)
        )
    })?;
    let free_bytes = volume.free_bytes();
    let text = format!(
        "removed {:?} ({}); {} free\n",
        args.name,
        human_bytes(size_bytes),
        human_bytes(free_bytes)
    );
    let doc = RmDoc {
        target: shown(&args.target),
        removed: args.name.clone(),
        size_bytes,
        free_bytes,
    };
    Ok(Outcome::new(Status::Clean, "rm", &doc, text)?.with_fallback(fallback))
}

/// `stackctl info`.
pub fn info(ctx: &Ctx, args: &TargetArgs) -> anyhow::Result<Outcome> {
    let volume = open(ctx, &args.target, true)?;
    let info = volume.info();
    let doc = VolumeDoc::new(&info);
    let text = human::volume(&doc);
    Ok(Outcome::new(Status::Clean, "info", &doc, text)?.with_fallback(info.fallback_warning))
}

/// `stackctl completions`: the script goes to stdout directly (never as JSON).
pub fn completions(args: &CompletionsArgs) -> anyhow::Result<Outcome> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "stackctl", &mut script);
    let text = String::from_utf8(script).context("the completion script is not UTF-8")?;
    let doc = serde_json::json!({ "shell": args.shell.to_string(), "script": text });
    Outcome::new(Status::Clean, "completions", &doc, text)
}
