//! `burn-in`: format, fill with pattern data, verify from the device, report.
//!
//! The verify pass reopens the volume and reads from the drive, not the page cache
//! (`O_DIRECT`, else each range evicted first; a fake-capacity or caching drive is caught
//! there), unless `--cached`; its report names the source.

use std::sync::Arc;

use anyhow::Context as _;
use serde::Serialize;
use stack_volume::map::SurfaceMap;
use stack_volume::{CanaryFailure, OpenOptions, Verdict, Volume};

use super::ack::AckLog;
use super::args::BurnInArgs;
use super::doc::{VerifyDoc, WrittenDoc};
use super::format::{format_target, summary, FormatDoc, FormatRequest};
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

/// `stackctl burn-in`.
pub fn run(ctx: &Ctx, args: &BurnInArgs) -> anyhow::Result<Outcome> {
    let target = &args.target;
    let request = FormatRequest {
        target,
        size_bytes: args.size,
        block_size_bytes: args.block_size,
        csum: args.csum,
        force: args.force,
        direct: args.direct,
        cached: args.cached,
        burn_in: true,
    };
    // The log is opened (and refused) before the format overwrites anything.
    let ack = args
        .ack_log
        .as_deref()
        .map(|path| AckLog::open(ctx, path, target))
        .transpose()?;
    let (mut volume, format_doc, _kind) = format_target(ctx, &request)?;
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
    if let Some(path) = &args.report {
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
        super::report::write_html(path, &[drive])?;
    }
    verify.map = None;
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
    Ok(outcome)
}
