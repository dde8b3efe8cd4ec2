//! `write`: files or stdin as objects, pattern data, a fill, or a resume.

use std::fs::File;
use std::io::Read;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context as _};
use serde::Serialize;
use stack_volume::pipeline::PlannedWrite;
use stack_volume::{FileId, Volume, WriteOptions, WriteReport, DEFAULT_COMMIT_EVERY_BYTES};

use super::ack::AckLog;
use super::args::WriteArgs;
use super::doc::{kind_and_seed, WrittenDoc};
use super::exit::{usage, Status};
use super::human;
use super::progress::Reporter;
use super::{shown, Ctx, Outcome};

/// What `write` did, as JSON.
#[derive(Debug, Clone, Serialize)]
pub struct WriteDoc {
    /// The volume.
    pub target: String,
    /// Each object written, in order.
    pub objects: Vec<WrittenDoc>,
    /// Bytes written in all.
    pub bytes: u64,
    /// How the data went to the device: "direct" (O_DIRECT), "memory" (tmpfs, ramfs) or
    /// "page-cache" (buffered, flushed to the drive at each commit).
    pub source: &'static str,
}

/// A random seed, printed so the run can be repeated.
pub fn random_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    // SplitMix64 finaliser over time and pid, so two runs in one nanosecond differ.
    let mut z = nanos ^ (u64::from(std::process::id()) << 32) ^ 0x9e37_79b9_7f4a_7c15;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Write options with this command's progress phase and the Ctrl-C flag.
pub fn write_options(
    ctx: &Ctx,
    reporter: &Reporter,
    replace: bool,
    total: Option<u64>,
    commit_every_bytes: Option<u64>,
) -> (WriteOptions, super::progress::Phase) {
    let phase = reporter.phase("write", total);
    let opts = WriteOptions {
        replace,
        keep_partial: false,
        progress: phase.callback(),
        cancel: Some(Arc::clone(&ctx.cancel)),
        commit_every_bytes: commit_every_bytes.unwrap_or(DEFAULT_COMMIT_EVERY_BYTES),
        ..WriteOptions::default()
    };
    (opts, phase)
}

/// The object name of an input file: its file name.
fn name_of(input: &Path) -> anyhow::Result<String> {
    let name = input.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
        usage(format!(
            "{}: no usable file name for an object; pass --name",
            input.display()
        ))
    })?;
    Ok(name.to_string())
}

/// The single interrupted object to resume, or the one named.
fn resume_target(volume: &Volume, name: Option<&str>, target: &Path) -> anyhow::Result<String> {
    if let Some(name) = name {
        return Ok(name.to_string());
    }
    let incomplete: Vec<String> = volume
        .objects()
        .into_iter()
        .filter(|o| !o.complete)
        .map(|o| o.name)
        .collect();
    match incomplete.as_slice() {
        [] => bail!("{}: no interrupted write to resume", shown(target)),
        [one] => Ok(one.clone()),
        many => Err(usage(format!(
            "several interrupted objects ({}); pick one with --name",
            many.join(", ")
        ))),
    }
}

/// The identity of what stdin is connected to.
fn stdin_id() -> Option<FileId> {
    let fd = std::io::stdin().as_fd().try_clone_to_owned().ok()?;
    File::from(fd).metadata().ok().map(|m| FileId::of(&m))
}

/// Refuses (usage error, exit 2) an input that is the volume itself: storing a volume
/// in itself reads blocks while they are being rewritten.
fn refuse_volume_inputs(
    plan: &[(PathBuf, String)],
    volume: &FileId,
    target: &Path,
) -> anyhow::Result<()> {
    for (input, _) in plan {
        let (id, what) = if input == Path::new("-") {
            (stdin_id(), "stdin".to_string())
        } else {
            (
                FileId::of_path(input).ok(),
                format!("input {}", input.display()),
            )
        };
        if id.is_some_and(|id| id.same_as(volume)) {
            return Err(usage(format!(
                "{what} is the volume {} itself; a volume cannot store itself",
                shown(target)
            )));
        }
    }
    Ok(())
}

fn open_input(input: &Path) -> anyhow::Result<(Box<dyn Read>, Option<u64>)> {
    if input == Path::new("-") {
        return Ok((Box::new(std::io::stdin().lock()), None));
    }
    let file = File::open(input).with_context(|| format!("opening input {}", input.display()))?;
    let metadata = file
        .metadata()
        .with_context(|| format!("reading the size of input {}", input.display()))?;
    if metadata.is_dir() {
        bail!("input {}: is a directory", input.display());
    }
    let size = metadata.is_file().then_some(metadata.len());
    Ok((Box::new(file), size))
}

/// The size of `input` when it is a regular file (stdin, pipes and devices: unknown).
fn regular_file_size(input: &Path) -> Option<u64> {
    if input == Path::new("-") {
        return None;
    }
    std::fs::metadata(input)
        .ok()
        .filter(|m| m.is_file())
        .map(|m| m.len())
}

/// `stackctl write`.
pub fn run(ctx: &Ctx, args: &WriteArgs) -> anyhow::Result<Outcome> {
    let target = &args.target;
    let pattern_mode = args.pattern || args.fill || args.resume;
    if args.seed.is_some() && !(args.pattern || args.fill) {
        return Err(usage("--seed goes with --pattern or --fill"));
    }
    if !pattern_mode && args.inputs.is_empty() {
        return Err(usage(
            "nothing to write: give INPUT files (`-` for stdin), --pattern --size SIZE, --fill or --resume",
        ));
    }
    if args.name.is_some() && args.inputs.len() > 1 {
        return Err(usage("--name names one object; give one INPUT with it"));
    }
    // Every input is checked before anything is written, so a typo in the third name
    // does not leave the first two half-done.
    let mut plan: Vec<(PathBuf, String)> = Vec::new();
    for input in &args.inputs {
        let name = match (&args.name, input == Path::new("-")) {
            (Some(name), _) => name.clone(),
            (None, true) => return Err(usage("stdin (`-`) needs --name")),
            (None, false) => name_of(input)?,
        };
        if let Some(reason) = stack_volume::format::name_problem(&name) {
            return Err(usage(format!("invalid object name {name:?}: {reason}")));
        }
        if plan.iter().any(|(_, n)| *n == name) {
            return Err(usage(format!("two inputs would both be object {name:?}")));
        }
        if input != Path::new("-") {
            let metadata =
                std::fs::metadata(input).with_context(|| format!("input {}", input.display()))?;
            if metadata.is_dir() {
                bail!("input {}: is a directory", input.display());
            }
        }
        plan.push((input.clone(), name));
    }

    let ack = args
        .ack_log
        .as_deref()
        .map(|path| AckLog::open(ctx, path, target))
        .transpose()?;
    let mut volume = super::lock::open(ctx, target, args.direct, args.cached, false)?;
    if let Some(id) = volume.file_id() {
        refuse_volume_inputs(&plan, &id, target)?;
        if let Some(ack) = &ack {
            ack.refuse_volume(&id, target)?;
        }
    }
    let on_commit = ack.as_ref().map(|a| a.hook(Arc::clone(&ctx.cancel)));
    // A line that could not be written stopped the write: say so rather than "interrupted".
    let ack_ok = || ack.as_ref().map_or(Ok(()), AckLog::check);
    let fallback = volume.info().fallback_warning;
    let reporter = ctx.reporter("write");
    let mut written: Vec<WrittenDoc> = Vec::new();
    let source = volume.write_source();
    // Files of known size: the whole command is refused before any of them is written
    // when their total cannot fit (a pattern write or resume checks its own size).
    let space_opts = WriteOptions {
        replace: args.replace,
        commit_every_bytes: args.commit_every.unwrap_or(DEFAULT_COMMIT_EVERY_BYTES),
        ..WriteOptions::default()
    };
    let planned: Vec<PlannedWrite> = plan
        .iter()
        .filter_map(|(input, name)| {
            let size_bytes = regular_file_size(input)?;
            Some(PlannedWrite {
                name: name.clone(),
                size_bytes,
            })
        })
        .collect();
    if !planned.is_empty() {
        volume.check_space(&planned, &space_opts).with_context(|| {
            let names: Vec<&str> = planned.iter().map(|p| p.name.as_str()).collect();
            format!(
                "writing {} to {}",
                match names.as_slice() {
                    [one] => format!("object {one:?}"),
                    many => format!("{} objects ({})", many.len(), many.join(", ")),
                },
                shown(target)
            )
        })?;
    }
    let record = |report: WriteReport, seed: Option<u64>, written: &mut Vec<WrittenDoc>| {
        written.push(WrittenDoc::new(&report, seed, source));
    };

    if args.resume {
        let name = resume_target(&volume, args.name.as_deref(), target)?;
        let seed = volume
            .object(&name)
            .map(|o| kind_and_seed(&o.kind).1)
            .ok_or_else(|| {
                anyhow::Error::new(stack_volume::Error::ObjectNotFound { name: name.clone() })
            })
            .with_context(|| format!("resuming in {}", shown(target)))?;
        let (mut opts, phase) = write_options(ctx, &reporter, false, None, args.commit_every);
        opts.keep_partial = args.keep_partial;
        opts.on_commit.clone_from(&on_commit);
        let result = volume.resume(&name, &opts);
        phase.finish();
        ack_ok()?;
        let report =
            result.with_context(|| format!("resuming object {name:?} in {}", shown(target)))?;
        record(report, seed, &mut written);
    } else if args.fill || args.pattern {
        let seed = args.seed.unwrap_or_else(random_seed);
        let (total, default_name) = if args.fill {
            (Some(volume.free_bytes()), "fill".to_string())
        } else {
            (args.size, format!("pattern-{seed}"))
        };
        let name = args.name.clone().unwrap_or(default_name);
        let (mut opts, phase) =
            write_options(ctx, &reporter, args.replace, total, args.commit_every);
        opts.keep_partial = args.keep_partial;
        opts.on_commit.clone_from(&on_commit);
        let result = match args.size {
            Some(size) if !args.fill => volume.write_pattern(&name, size, seed, &opts),
            _ => volume.fill(&name, seed, &opts),
        };
        phase.finish();
        ack_ok()?;
        let report =
            result.with_context(|| format!("writing object {name:?} to {}", shown(target)))?;
        record(report, Some(seed), &mut written);
    } else {
        for (input, name) in &plan {
            let (mut reader, size) = open_input(input)?;
            let (mut opts, phase) =
                write_options(ctx, &reporter, args.replace, size, args.commit_every);
            opts.keep_partial = args.keep_partial;
            opts.on_commit.clone_from(&on_commit);
            let result = volume.write(name, &mut reader, &opts);
            phase.finish();
            ack_ok()?;
            let report = result.with_context(|| {
                format!(
                    "writing object {name:?} from {} to {}",
                    input.display(),
                    shown(target)
                )
            })?;
            record(report, None, &mut written);
        }
    }
    let bytes = written.iter().map(|w| w.bytes).sum();
    let human = human::written(&written);
    let doc = WriteDoc {
        target: shown(target),
        objects: written,
        bytes,
        source: source.name(),
    };
    let mut outcome = Outcome::new(Status::Clean, "write", &doc, human)?.with_fallback(fallback);
    outcome.human_on_stderr = ack.as_ref().is_some_and(AckLog::is_stdout);
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_differ_between_calls() {
        let a = random_seed();
        std::thread::sleep(std::time::Duration::from_micros(10));
        assert_ne!(a, random_seed());
    }

    #[test]
    fn input_names_are_file_names() {
        assert_eq!(name_of(Path::new("/a/b/c.bin")).unwrap(), "c.bin");
        assert!(name_of(Path::new("/")).is_err());
        assert!(name_of(Path::new("..")).is_err());
    }
}
