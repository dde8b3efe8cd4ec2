//! Several drives in one run (`burn-in`, `verify`, `probe` take one or more targets).
//!
//! Every target is checked first (the safety checks, its lock), in order, and a refusal
//! of any stops the run before anything is written. Then each drive runs on its own
//! thread with its own device queue and volume (the pipelines' worker pools are
//! shared), its progress tagged with its target. A drive's error, damage or
//! disappearance ends only that drive: the others run on, and the summary has one row
//! per drive plus a total. The exit status is the worst over the drives, in the order
//! 1 (damage) > 2 > 3 (could not run, lost) > 130 (interrupted) > 0.
//!
//! A drive that fails and whose device is then gone, or came back with another size (a
//! USB drive unplugged, a disk reset), is `lost`, with what was written and checked
//! before. With `--smart`, SMART health is read before and after each drive
//! (`stack_volume::smart`); a worsening is a finding, a FAILED health is status 1.

mod health;
mod report;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::anyhow;
use stack_volume::identity::{self, Identity};

use self::health::{gone, size_now, smart_doc, smart_read};
use self::report::{notes, smart_text, table};
pub use self::report::{DriveDoc, LostDoc, TotalDoc};
use super::exit::{self, usage, Status};
use super::progress::{Board, Tally};
use super::{shown, Ctx, DriveCtx, Outcome};

/// What one drive's command produced: its own document and summary (a single-target
/// run prints exactly these) and the figures of its summary row.
#[derive(Debug)]
pub struct DriveRun {
    /// The single-target outcome.
    pub outcome: Outcome,
    /// The row.
    pub row: Row,
    /// The drive's part of the `--report` page, when one was asked for.
    pub html: Option<stack_volume::html::DriveReport>,
}

/// The figures of one drive's summary row.
#[derive(Debug, Clone, Default)]
pub struct Row {
    /// `clean`, `fake-capacity`, `damaged`, `unreadable`, `no-fake-found`,
    /// `interrupted`.
    pub verdict: String,
    /// The target's size.
    pub size_bytes: Option<u64>,
    /// Bytes written.
    pub written_bytes: u64,
    /// Write throughput.
    pub write_bytes_per_sec: Option<u64>,
    /// Bytes read back and checked.
    pub read_bytes: u64,
    /// Read throughput.
    pub read_bytes_per_sec: Option<u64>,
    /// Damaged bytes found.
    pub damaged_bytes: u64,
}

/// How bad a status is when drives are combined.
fn severity(status: Status) -> u8 {
    match status {
        Status::Clean => 0,
        Status::Interrupted => 1,
        Status::CouldNotRun => 2,
        Status::Usage => 3,
        Status::Damage => 4,
    }
}

/// The worst of two statuses.
pub fn worst(a: Status, b: Status) -> Status {
    if severity(b) > severity(a) {
        b
    } else {
        a
    }
}

/// What identifies a target for "named twice": the device, the inode, or (a file to be
/// created) its absolute path.
fn same_key(path: &Path) -> String {
    match fs::metadata(path) {
        Ok(m) if m.file_type().is_block_device() => format!("b{}", m.rdev()),
        Ok(m) => format!("f{}:{}", m.dev(), m.ino()),
        Err(_) => std::path::absolute(path)
            .map_or_else(|_| path.display().to_string(), |p| p.display().to_string()),
    }
}

/// Refuses a target named twice (also by two paths to one device or file).
pub fn refuse_duplicates(targets: &[PathBuf]) -> anyhow::Result<()> {
    let keys: Vec<String> = targets.iter().map(|t| same_key(t)).collect();
    for (i, key) in keys.iter().enumerate() {
        if let Some(j) = keys[..i].iter().position(|k| k == key) {
            return Err(usage(format!(
                "{} and {} are the same target; name each drive once",
                shown(&targets[j]),
                shown(&targets[i])
            )));
        }
    }
    Ok(())
}

/// Runs `check` on every target in order; any refusal ends the run before anything is
/// written (`undo` runs on the ones already checked, e.g. to remove files their lock
/// created), naming every refused target.
pub fn check_all<P>(
    targets: &[PathBuf],
    mut check: impl FnMut(&Path) -> anyhow::Result<P>,
    undo: impl Fn(P),
) -> anyhow::Result<Vec<P>> {
    let mut passed = Vec::new();
    let mut refused: Vec<(usize, anyhow::Error)> = Vec::new();
    for (index, target) in targets.iter().enumerate() {
        match check(target) {
            Ok(p) => passed.push(p),
            Err(e) => refused.push((index, e)),
        }
    }
    if refused.is_empty() {
        return Ok(passed);
    }
    for p in passed {
        undo(p);
    }
    if targets.len() == 1 {
        let (_, error) = refused.remove(0);
        return Err(error);
    }
    let status = refused
        .iter()
        .map(|(_, e)| exit::classify(e))
        .fold(Status::Clean, worst);
    let text = refused
        .iter()
        .map(|(i, e)| {
            let message = exit::describe(e);
            let name = shown(&targets[*i]);
            if message.contains(&name) {
                message
            } else {
                format!("{name}: {message}")
            }
        })
        .collect::<Vec<_>>()
        .join("; ");
    let message = format!(
        "{} of {} targets refused, nothing was written: {text}",
        refused.len(),
        targets.len()
    );
    Err(match status {
        Status::Usage => usage(message),
        Status::Interrupted => {
            anyhow::Error::new(stack_volume::Error::Interrupted).context(message)
        }
        _ => anyhow!(message),
    })
}

/// Runs `body` on every checked target, each on its own thread, and combines them.
pub fn run<P: Send>(
    ctx: &Ctx,
    command: &'static str,
    targets: Vec<(PathBuf, P)>,
    smart_wanted: bool,
    report: Option<&Path>,
    body: impl Fn(&Ctx, &Path, P) -> anyhow::Result<DriveRun> + Sync,
) -> anyhow::Result<Outcome> {
    let count = targets.len();
    let board = if count > 1 {
        Board::new(ctx.progress, count)
    } else {
        None
    };
    let started = Instant::now();
    let body = &body;
    let results: Vec<(DriveDoc, Option<DriveRun>, Option<anyhow::Error>)> =
        std::thread::scope(|scope| {
            let handles: Vec<_> = targets
                .into_iter()
                .map(|(target, prepared)| {
                    let tally = Arc::new(Tally::default());
                    let drive_ctx = Ctx {
                        drive: Some(DriveCtx {
                            target: shown(&target),
                            board: board.clone(),
                            tally: Arc::clone(&tally),
                        }),
                        ..ctx.clone()
                    };
                    let name = shown(&target);
                    let handle = std::thread::Builder::new()
                        .name(format!("drive {name}"))
                        .spawn_scoped(scope, move || {
                            one(
                                &drive_ctx,
                                command,
                                &target,
                                prepared,
                                smart_wanted,
                                &tally,
                                body,
                            )
                        });
                    (name, handle)
                })
                .collect();
            handles
                .into_iter()
                .map(|(name, handle)| {
                    let joined = handle
                        .map_err(|e| anyhow!("cannot start a thread for {name}: {e}"))
                        .and_then(|h| {
                            h.join().map_err(|_| {
                                anyhow!("internal error on {name} (a bug; please report it)")
                            })
                        });
                    match joined {
                        Ok(result) => result,
                        Err(e) => (failed_doc(&name, &e), None, Some(e)),
                    }
                })
                .collect()
        });
    if let Some(board) = &board {
        board.finish();
    }
    let elapsed_secs = started.elapsed().as_secs_f64();
    let mut results = results;
    let page: Vec<_> = results.iter_mut().map(page_drive).collect();
    let mut outcome = combine(command, results, elapsed_secs)?;
    if let Some(path) = report {
        // The drives are done and their verdicts stand: a page that cannot be written is
        // said, and makes the status at least "could not run", but loses no verdict.
        if let Err(e) = super::report::write_html(path, &page) {
            eprintln!("stackctl {command}: {e:#}");
            outcome.status = worst(outcome.status, Status::CouldNotRun);
            outcome.json["exit_status"] = outcome.status.code().into();
        }
    }
    Ok(outcome)
}

/// One drive's part of the `--report` page: what its run drew, with the identity and
/// SMART health the drive thread read; a drive that failed or was lost gets its verdict
/// and why, on the same axis as the others.
fn page_drive(
    (doc, run, _): &mut (DriveDoc, Option<DriveRun>, Option<anyhow::Error>),
) -> stack_volume::html::DriveReport {
    let mut drive = run.as_mut().and_then(|r| r.html.take()).unwrap_or_else(|| {
        stack_volume::html::DriveReport {
            target: doc.target.clone(),
            capacity_bytes: doc.size_bytes.unwrap_or(0),
            verdict: doc.verdict.clone(),
            verdict_detail: Vec::new(),
            facts: Vec::new(),
            identity: Vec::new(),
            health: Vec::new(),
            map: None,
            findings: Vec::new(),
            damaged: Vec::new(),
            damaged_bytes: doc.damaged_bytes,
        }
    });
    drive.verdict.clone_from(&doc.verdict);
    if let Some(lost) = &doc.lost {
        drive.verdict_detail.push(lost.detail.clone());
    }
    if let Some(error) = &doc.error {
        drive.verdict_detail.push(error.clone());
    }
    let id = &doc.identity;
    let fields = [
        ("vendor", id.vendor.clone()),
        ("model", id.model.clone()),
        ("serial", id.serial.clone()),
        ("firmware", id.firmware.clone()),
        ("transport", id.transport.clone()),
        ("rotational", id.rotational.map(|r| r.to_string())),
        ("backing file", id.backing_file.clone()),
    ];
    for (key, value) in fields {
        if let Some(value) = value {
            if !drive.identity.iter().any(|(k, _)| k == key) {
                drive.identity.push((key.to_owned(), value));
            }
        }
    }
    if let Some(smart) = &doc.smart {
        let passed = |p: Option<bool>| match p {
            Some(true) => "PASSED",
            Some(false) => "FAILED",
            None => "-",
        };
        drive.health.push((
            "SMART health".to_owned(),
            format!(
                "{} → {}",
                passed(smart.passed_before),
                passed(smart.passed_after)
            ),
        ));
        for change in &smart.changed {
            let n = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
            drive.health.push((
                change.name.clone(),
                format!("{} → {}", n(change.before), n(change.after)),
            ));
        }
        if let Some(note) = &smart.note {
            drive.health.push(("note".to_owned(), note.clone()));
        }
    }
    drive
}

/// Bytes of a drive's damaged ranges (`verify.damaged` of burn-in, `damaged` of verify)
/// that are unreadable, and of every other cause.
fn damage_by_kind(report: Option<&serde_json::Value>) -> (u64, u64) {
    let Some(report) = report else {
        return (0, 0);
    };
    let ranges = report
        .pointer("/verify/damaged")
        .or_else(|| report.get("damaged"))
        .and_then(serde_json::Value::as_array);
    let mut unreadable = 0;
    let mut other = 0;
    for range in ranges.into_iter().flatten() {
        let length = range["length"].as_u64().unwrap_or(0);
        if range["cause"] == "unreadable" {
            unreadable += length;
        } else {
            other += length;
        }
    }
    (unreadable, other)
}

pub(super) fn failed_doc(target: &str, error: &anyhow::Error) -> DriveDoc {
    DriveDoc {
        target: target.to_string(),
        verdict: "failed".into(),
        exit_status: exit::classify(error).code(),
        identity: Identity::default(),
        size_bytes: None,
        written_bytes: 0,
        write_bytes_per_sec: None,
        read_bytes: 0,
        read_bytes_per_sec: None,
        damaged_bytes: 0,
        elapsed_secs: 0.0,
        error: Some(exit::describe(error)),
        lost: None,
        smart: None,
        report: None,
    }
}

/// One drive, on its own thread.
fn one<P>(
    ctx: &Ctx,
    command: &'static str,
    target: &Path,
    prepared: P,
    smart_wanted: bool,
    tally: &Tally,
    body: &(impl Fn(&Ctx, &Path, P) -> anyhow::Result<DriveRun> + Sync),
) -> (DriveDoc, Option<DriveRun>, Option<anyhow::Error>) {
    let name = shown(target);
    let identity = identity::identify(target);
    let size_at_start = size_now(target);
    let before = smart_wanted.then(|| smart_read(target));
    let started = Instant::now();
    let result =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(ctx, target, prepared)))
            .unwrap_or_else(|_| {
                Err(anyhow!(
                    "internal error on {name} (a bug; please report it)"
                ))
            });
    let elapsed_secs = started.elapsed().as_secs_f64();
    let (mut doc, run, error) = match result {
        Ok(run) => {
            let row = &run.row;
            let doc = DriveDoc {
                target: name.clone(),
                verdict: row.verdict.clone(),
                exit_status: run.outcome.status.code(),
                identity,
                size_bytes: row.size_bytes.or(size_at_start),
                written_bytes: row.written_bytes,
                write_bytes_per_sec: row.write_bytes_per_sec,
                read_bytes: row.read_bytes,
                read_bytes_per_sec: row.read_bytes_per_sec,
                damaged_bytes: row.damaged_bytes,
                elapsed_secs,
                error: None,
                lost: None,
                smart: None,
                report: Some(run.outcome.json.clone()),
            };
            (doc, Some(run), None)
        }
        Err(error) => {
            let status = exit::classify(&error);
            let verdict = if status == Status::Interrupted {
                "interrupted"
            } else {
                "failed"
            };
            let mut doc = failed_doc(&name, &error);
            doc.verdict = verdict.into();
            doc.identity = identity;
            doc.size_bytes = size_at_start;
            doc.written_bytes = tally.done("write");
            doc.read_bytes = tally.done("verify");
            doc.elapsed_secs = elapsed_secs;
            (doc, None, Some(error))
        }
    };
    // A failure, or unreadable blocks, on a device that is no longer there: lost.
    if error.is_some() || matches!(doc.verdict.as_str(), "damaged" | "unreadable") {
        if let Some(detail) = gone(target, size_at_start) {
            // Blocks that stopped reading when the drive went are the loss, not damage;
            // damage of any other cause was found on what was read before.
            let (unreadable, other) = damage_by_kind(doc.report.as_ref());
            doc.damaged_bytes = other;
            doc.lost = Some(LostDoc {
                // A probe has no progress phases: it is lost while probing.
                phase: tally.last_phase().unwrap_or(command).to_string(),
                written_bytes: tally.done("write").max(doc.written_bytes),
                verified_bytes: doc
                    .read_bytes
                    .max(tally.done("verify"))
                    .saturating_sub(unreadable),
                detail,
            });
            doc.verdict = "lost".into();
            doc.exit_status = if other > 0 {
                Status::Damage.code()
            } else {
                Status::CouldNotRun.code()
            };
        }
    }
    if let Some(before) = before {
        let smart = smart_doc(target, before, doc.lost.is_some());
        if smart.passed_after == Some(false) {
            doc.exit_status = worst(status_of_code(doc.exit_status), Status::Damage).code();
        }
        doc.smart = Some(smart);
    }
    (doc, run, error)
}

fn status_of_code(code: u8) -> Status {
    match code {
        0 => Status::Clean,
        1 => Status::Damage,
        2 => Status::Usage,
        130 => Status::Interrupted,
        _ => Status::CouldNotRun,
    }
}

fn combine(
    command: &'static str,
    mut results: Vec<(DriveDoc, Option<DriveRun>, Option<anyhow::Error>)>,
    elapsed_secs: f64,
) -> anyhow::Result<Outcome> {
    let status = results
        .iter()
        .map(|(d, _, _)| status_of_code(d.exit_status))
        .fold(Status::Clean, worst);
    let drives: Vec<DriveDoc> = results.iter().map(|(d, _, _)| d.clone()).collect();
    let mut verdicts = std::collections::BTreeMap::new();
    for d in &drives {
        *verdicts.entry(d.verdict.clone()).or_insert(0) += 1;
    }
    let total = TotalDoc {
        drives: drives.len(),
        verdicts,
        written_bytes: drives.iter().map(|d| d.written_bytes).sum(),
        read_bytes: drives.iter().map(|d| d.read_bytes).sum(),
        damaged_bytes: drives.iter().map(|d| d.damaged_bytes).sum(),
        elapsed_secs,
        exit_status: status.code(),
    };
    if results.len() == 1 {
        // One target: today's document and summary, with `drives` and `total` added.
        let (doc, run, error) = results.remove(0);
        let Some(run) = run else {
            let error = error.unwrap_or_else(|| anyhow!("{}: failed", doc.target));
            return Err(match &doc.lost {
                Some(lost) => error.context(format!("the drive was lost: {}", lost.detail)),
                None => error,
            });
        };
        let mut outcome = run.outcome;
        outcome.status = status;
        outcome.json["exit_status"] = status.code().into();
        outcome.json["drives"] = serde_json::to_value(&drives)?;
        outcome.json["total"] = serde_json::to_value(&total)?;
        if let Some(smart) = &doc.smart {
            outcome.human.push_str(&smart_text(&doc.target, smart));
        }
        return Ok(outcome);
    }
    // Errors go to stderr in one line, as a single-target run's would.
    let failed: Vec<String> = drives
        .iter()
        .filter_map(|d| d.error.as_ref().map(|e| format!("{}: {e}", d.target)))
        .collect();
    if !failed.is_empty() {
        eprintln!(
            "stackctl {command}: {} of {} drives did not finish: {}",
            failed.len(),
            drives.len(),
            failed.join("; ")
        );
    }
    let mut human = String::new();
    for (doc, run, _) in &results {
        human.push_str(&format!("== {} ==\n", doc.target));
        if let Some(run) = run {
            human.push_str(&run.outcome.human);
        }
        human.push_str(&notes(doc));
        human.push('\n');
    }
    human.push_str(&table(&drives, &total));
    let document = serde_json::json!({ "drives": drives, "total": total });
    Outcome::new(status, command, &document, human)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_status_wins() {
        let all = [
            Status::Clean,
            Status::Interrupted,
            Status::CouldNotRun,
            Status::Damage,
        ];
        assert_eq!(
            all.iter().copied().fold(Status::Clean, worst),
            Status::Damage
        );
        assert_eq!(
            worst(Status::Interrupted, Status::CouldNotRun),
            Status::CouldNotRun
        );
        assert_eq!(
            worst(Status::Clean, Status::Interrupted),
            Status::Interrupted
        );
        for code in [0u8, 1, 2, 3, 130] {
            assert_eq!(status_of_code(code).code(), code);
        }
    }

    #[test]
    fn a_target_named_twice_is_a_usage_error() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.img");
        fs::write(&a, b"x").unwrap();
        let same = dir.path().join(".").join("a.img");
        let err = refuse_duplicates(&[a.clone(), dir.path().join("b.img"), same]).unwrap_err();
        assert_eq!(exit::classify(&err), Status::Usage);
        assert!(refuse_duplicates(&[a, dir.path().join("b.img")]).is_ok());
    }
}
