//! `burn-in`: format, fill with pattern data, verify from the device, report.
//!
//! The verify pass reopens the volume and reads from the drive, not the page cache
//! (`O_DIRECT`, else each range evicted first; a fake-capacity or caching drive is caught
//! there), unless `--cached`; its report names the source. Several targets run side by
//! side (`drives/`), on shared worker pools.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use serde::Serialize;
use stack_volume::map::SurfaceMap;
use stack_volume::pipeline::Pools;
use stack_volume::{CanaryFailure, OpenOptions, Verdict, Volume};

use super::ack::AckLog;
use super::args::BurnInArgs;
use super::doc::{VerifyDoc, WrittenDoc};
use super::drives::{self, refuse_duplicates, DriveRun, Row};
use super::exit::usage;
use super::format::{check_target, format_checked, summary, Checked, FormatDoc, FormatRequest};
use super::human;
use super::verify::{status_of, verify_report};
use super::write::{random_seed, write_options};
use super::{shown, Ctx, Outcome};

/// Name of the object burn-in fills the volume with.
pub const BURN_IN_OBJECT: &str = "burn-in";

/// What `burn-in` did, as JSON.
#[derive(Debug, Clone, Serialize)]
pub struct BurnInDoc {
    /// No damage found.
    pub clean: bool,
    /// The verdict on the drive (the verify step's, with the canary that stopped the
    /// fill among a fake capacity's evidence).
    pub verdict: Option<Verdict>,
    /// The pattern seed.
    pub seed: u64,
    /// The format step.
    pub format: FormatDoc,
    /// The fill step.
    pub write: WrittenDoc,
    /// The verify step.
    pub verify: VerifyDoc,
    /// Throughput and latency per region: the fill's writes, the verify's reads.
    pub map: Option<stack_volume::map::SurfaceMap>,
    /// What the map shows: slow regions, a write cliff, stalls. Not damage.
    pub findings: Vec<stack_volume::findings::Finding>,
}

/// The canary that failed during the fill, as evidence.
fn canary_evidence(canary: &CanaryFailure, stopped: bool) -> String {
    format!(
        "a canary read back during the fill, after {} bytes were written, found {} at byte \
         {}{}",
        canary.written_bytes,
        canary.found,
        canary.physical_offset,
        if stopped {
            "; the fill stopped there"
        } else {
            ""
        }
    )
}

/// What the checks leave for one target: its lock, and the ack log (one target only).
struct Prepared {
    checked: Checked,
    ack: Option<AckLog>,
}

/// The request for `target`.
fn request<'a>(args: &BurnInArgs, target: &'a Path) -> FormatRequest<'a> {
    FormatRequest {
        target,
        size_bytes: args.size,
        block_size_bytes: args.block_size,
        csum: args.csum,
        force: args.force,
        direct: args.direct,
        cached: args.cached,
        burn_in: true,
    }
}

/// Worker pools shared by the drives' pipelines. A drive whose device hangs can hold
/// at most its share: the pools get one thread more per drive than one drive needs.
fn shared_pools(drives: usize) -> anyhow::Result<Pools> {
    let n = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(2, 64)
        + drives.saturating_sub(1);
    let pool = |name: &str| {
        stack_async_thread::Workers::builder(name)
            .min_threads(1)
            .max_threads(n)
            .build()
            .context("starting the worker pools")
    };
    Ok(Pools {
        submit: pool("stackctl-submit")?,
        end_io: pool("stackctl-endio")?,
    })
}

/// `stackctl burn-in`.
pub fn run(ctx: &Ctx, args: &BurnInArgs) -> anyhow::Result<Outcome> {
    refuse_duplicates(&args.targets)?;
    if args.ack_log.is_some() && args.targets.len() > 1 {
        return Err(usage(
            "--ack-log takes one target (each volume needs its own log); run one burn-in per drive",
        ));
    }
    let prepared = drives::check_all(
        &args.targets,
        |target| {
            // The log is opened (and refused) before the format overwrites anything.
            let ack = args
                .ack_log
                .as_deref()
                .map(|path| AckLog::open(ctx, path, target))
                .transpose()?;
            let checked = check_target(ctx, &request(args, target))?;
            Ok((target.to_path_buf(), Prepared { checked, ack }))
        },
        |(target, p): (PathBuf, Prepared)| p.checked.abandon(&target),
    )?;
    let pools = shared_pools(prepared.len())?;
    drives::run(
        ctx,
        "burn-in",
        prepared,
        args.smart,
        args.report.as_deref(),
        |ctx, target, p| burn_in_one(ctx, args, target, p, &pools),
    )
}

/// Burns in one checked target.
fn burn_in_one(
    ctx: &Ctx,
    args: &BurnInArgs,
    target: &Path,
    prepared: Prepared,
    pools: &Pools,
) -> anyhow::Result<DriveRun> {
    let Prepared { checked, ack } = prepared;
    let (volume, format_doc, _kind) = format_checked(&request(args, target), checked)?;
    let mut volume = volume.with_pools(pools.clone());
    if let (Some(ack), Some(id)) = (&ack, volume.file_id()) {
        ack.refuse_volume(&id, target)?;
    }
    let seed = args.seed.unwrap_or_else(random_seed);
    let reporter = ctx.reporter("burn-in");
    let (mut opts, phase) = write_options(ctx, &reporter, false, Some(volume.free_bytes()), None);
    opts.on_commit = ack.as_ref().map(|a| a.hook(Arc::clone(&ctx.cancel)));
    opts.canaries = !args.no_canaries;
    opts.stop_at_canary = !args.no_stop;
    let result = volume.fill(BURN_IN_OBJECT, seed, &opts);
    phase.finish();
    if let Some(ack) = &ack {
        ack.check()?;
    }
    let report = result
        .with_context(|| format!("filling {} with pattern data (seed {seed})", shown(target)))?;
    let write = WrittenDoc::new(&report, Some(seed), volume.write_source());
    let fill_map = volume.surface_map();
    // The exclusive lock passes from the fill to the verify: no other process may change
    // the volume in between (a second lock on the same file would conflict with ours).
    let lock = volume
        .into_lock()
        .context("the formatted volume holds no lock")?;
    let volume = Volume::open_locked(
        target,
        &OpenOptions {
            direct: args.direct,
            cached: args.cached,
            read_only: true,
            wait: stack_volume::LockWait::NoWait,
        },
        lock,
    )
    .with_context(|| format!("reopening {} to verify", shown(target)))?;
    let (mut verify, verify_report) = verify_report(ctx, &volume, None, "burn-in")?;
    let map = verify
        .map
        .take()
        .map(|read| SurfaceMap::combine(&fill_map, &read));
    if let Some(map) = map.clone() {
        super::report::set_map(&mut verify, map);
    }
    let findings = std::mem::take(&mut verify.findings);
    if let (Some(Verdict::FakeCapacity { evidence, .. }), Some(canary)) =
        (verify.verdict.as_mut(), &write.canary_failed)
    {
        evidence.push(canary_evidence(canary, write.stopped_early));
    }
    let status = status_of(&verify);
    let mut text = human::verdict_line(&verify);
    text.push_str(&summary(&format_doc));
    text.push_str(&human::written(std::slice::from_ref(&write)));
    text.push_str(&human::verify(&verify));
    text.push_str(&stack_volume::findings::summary(&findings));
    let html = args.report.as_ref().map(|_| {
        let mut drive = super::report::drive(target, &volume, &verify_report, &verify);
        drive.map.clone_from(&map);
        drive.findings.clone_from(&findings);
        drive.facts.insert(
            0,
            (
                "written".into(),
                stack_volume::findings::human_bytes(write.bytes),
            ),
        );
        drive
    });
    verify.map = None;
    let row = Row {
        verdict: verdict_name(&verify),
        size_bytes: Some(format_doc.volume.device.size),
        written_bytes: write.bytes,
        write_bytes_per_sec: Some(write.bytes_per_sec),
        read_bytes: verify.bytes_verified,
        read_bytes_per_sec: Some(verify.bytes_per_sec),
        damaged_bytes: verify.damaged.iter().map(|r| r.length).sum(),
    };
    let doc = BurnInDoc {
        clean: verify.clean,
        verdict: verify.verdict.clone(),
        seed,
        format: format_doc,
        write,
        verify,
        map,
        findings,
    };
    let mut outcome = Outcome::new(status, "burn-in", &doc, text)?;
    outcome.human_on_stderr = ack.as_ref().is_some_and(AckLog::is_stdout);
    Ok(DriveRun { outcome, row, html })
}

/// The row's verdict of a verify document.
pub fn verdict_name(verify: &VerifyDoc) -> String {
    match &verify.verdict {
        Some(v) if !(verify.interrupted && verify.clean) => v.name().to_string(),
        _ if verify.interrupted => "interrupted".to_string(),
        Some(v) => v.name().to_string(),
        None => "interrupted".to_string(),
    }
}
