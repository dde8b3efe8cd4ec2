//! `--ack-log` (write, burn-in) and `verify --acked`: the acknowledged commits, one JSON
//! line each, sent off the machine while the drive is about to lose power.
//!
//! A line is written (and flushed out, and synced when it is a file) only after the
//! commit's last flush returned, so a killed process never has a line for a commit the
//! drive was not told to make durable: killing it can never give `lost-flushes`. The log
//! may never be the volume itself (same file or block device by any path), and `-`
//! (stdout) cannot go with `--json`, whose report owns stdout; with `-` the human summary
//! goes to stderr.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, Context as _};
use serde_json::json;
use stack_volume::{AckedCheck, CommitFn, CommitRecord, FileId, LostHow};

use super::exit::{usage, Status};
use super::human::utc_time;
use super::size::human_bytes;
use super::{shown, Ctx, Outcome};

/// Where the lines go.
enum Sink {
    Stdout,
    File(File),
}

/// An open `--ack-log`.
pub struct AckLog {
    sink: Arc<Mutex<Sink>>,
    /// The first failure to write a line; the write stops at it.
    failed: Arc<Mutex<Option<String>>>,
    shown: String,
}

/// The identity of what stdout is connected to.
fn stdout_id() -> Option<FileId> {
    let fd = std::io::stdout().as_fd().try_clone_to_owned().ok()?;
    File::from(fd).metadata().ok().map(|m| FileId::of(&m))
}

impl AckLog {
    /// Opens (creates, appends to) the log at `path` (`-`: stdout) for a command on
    /// `target`. Refuses (usage error, exit 2) `-` with `--json` and a log that is the
    /// volume.
    pub fn open(ctx: &Ctx, path: &Path, target: &Path) -> anyhow::Result<AckLog> {
        let sink = if path == Path::new("-") {
            if ctx.json {
                return Err(usage(
                    "--ack-log - writes the log on stdout, where --json writes its report; \
                     give the log a file (or a pipe) or drop --json",
                ));
            }
            Sink::Stdout
        } else {
            if let Ok(id) = FileId::of_path(target) {
                refuse_volume(path, &id, target)?;
            }
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening the ack log {}", path.display()))?;
            Sink::File(file)
        };
        let log = AckLog {
            sink: Arc::new(Mutex::new(sink)),
            failed: Arc::default(),
            shown: shown(path),
        };
        if let Ok(id) = FileId::of_path(target) {
            log.refuse_volume(&id, target)?;
        }
        Ok(log)
    }

    /// Whether the log is stdout (the human summary then goes to stderr).
    pub fn is_stdout(&self) -> bool {
        matches!(*self.lock(), Sink::Stdout)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Sink> {
        self.sink.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Refuses (usage error, exit 2) a log that is the volume `volume` (at `target`):
    /// checked again under the volume's lock, which names the file actually opened.
    pub fn refuse_volume(&self, volume: &FileId, target: &Path) -> anyhow::Result<()> {
        let id = match &*self.lock() {
            Sink::Stdout => stdout_id(),
            Sink::File(f) => f.metadata().ok().map(|m| FileId::of(&m)),
        };
        if id.is_some_and(|id| id.same_as(volume)) {
            return Err(usage(format!(
                "the ack log {} is the volume {} itself; refusing to append to it",
                self.shown,
                shown(target)
            )));
        }
        Ok(())
    }

    /// The commit hook: appends the record's line and pushes it out at once. A line that
    /// cannot be written stops the write (through `cancel`); [`AckLog::check`] then
    /// reports why.
    pub fn hook(&self, cancel: Arc<AtomicBool>) -> CommitFn {
        let sink = Arc::clone(&self.sink);
        let failed = Arc::clone(&self.failed);
        let shown = self.shown.clone();
        Arc::new(move |record: &CommitRecord| {
            if let Err(e) = append(&sink, record) {
                let mut failed = failed.lock().unwrap_or_else(|e| e.into_inner());
                failed.get_or_insert_with(|| {
                    format!(
                        "writing the ack log {shown} (generation {}): {e}",
                        record.generation
                    )
                });
                cancel.store(true, Ordering::Relaxed);
            }
        })
    }

    /// Fails when a line could not be written (the write was stopped for it).
    pub fn check(&self) -> anyhow::Result<()> {
        match self.failed.lock().unwrap_or_else(|e| e.into_inner()).take() {
            Some(why) => Err(anyhow!(why)),
            None => Ok(()),
        }
    }
}

/// One record as its log line (without the newline).
pub fn line_of(record: &CommitRecord) -> String {
    serde_json::to_string(record).unwrap_or_default()
}

fn append(sink: &Mutex<Sink>, record: &CommitRecord) -> std::io::Result<()> {
    let mut line = line_of(record);
    line.push('\n');
    let mut sink = sink.lock().unwrap_or_else(|e| e.into_inner());
    match &mut *sink {
        Sink::Stdout => {
            let mut out = std::io::stdout().lock();
            out.write_all(line.as_bytes())?;
            out.flush()
        }
        Sink::File(f) => {
            // One write call per line (O_APPEND): a reader never sees two lines mixed.
            f.write_all(line.as_bytes())?;
            // A file on another disk of the machine whose drive is cut must keep it.
            f.sync_data()
        }
    }
}

/// Refuses a log path that is the volume, before it is opened (and created).
fn refuse_volume(path: &Path, volume: &FileId, target: &Path) -> anyhow::Result<()> {
    if FileId::of_path(path).is_ok_and(|id| id.same_as(volume)) {
        return Err(usage(format!(
            "the ack log {} is the volume {} itself; refusing to append to it",
            path.display(),
            shown(target)
        )));
    }
    Ok(())
}

/// Reads an ack log (`-`: stdin). Every line must be a record; a last line without its
/// newline that does not parse was cut off in transit (the sender lost power while
/// sending it) and is skipped: losing an acknowledgement only makes the check weaker.
/// Returns the records and whether such a line was skipped.
pub fn read_log(path: &Path) -> anyhow::Result<(Vec<CommitRecord>, bool)> {
    let input: Box<dyn Read> = if path == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(
            File::open(path).with_context(|| format!("opening the ack log {}", path.display()))?,
        )
    };
    let mut reader = BufReader::new(input);
    let mut records = Vec::new();
    let mut line = String::new();
    let mut number = 0u64;
    loop {
        line.clear();
        let n = reader
            .read_line(&mut line)
            .with_context(|| format!("reading the ack log {}", path.display()))?;
        if n == 0 {
            return Ok((records, false));
        }
        number += 1;
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        match serde_json::from_str::<CommitRecord>(text) {
            Ok(record) => records.push(record),
            Err(_) if !line.ends_with('\n') => return Ok((records, true)),
            Err(e) => {
                return Err(anyhow!(
                    "ack log {}: line {number} is not a commit record: {e}",
                    path.display()
                ))
            }
        }
    }
}

/// Adds the check to verify's outcome: an `"acked"` field, and for lost flushes the
/// `"verdict": {"kind": "lost-flushes", ...}`, a summary led by `LOST FLUSHES:` and exit
/// status 1.
pub fn apply(outcome: &mut Outcome, check: &AckedCheck, partial_last_line: bool) {
    let acked_time = utc_time(check.acked_time_unix_ms / 1000);
    let mut acked = serde_json::to_value(check).unwrap_or_default();
    acked["acked_time"] = acked_time.clone().into();
    acked["partial_last_line_skipped"] = partial_last_line.into();
    outcome.json["acked"] = acked;
    let Some(lost) = &check.lost else {
        outcome.human.push_str(&format!(
            "acknowledged: {} commit(s), newest generation {} at {acked_time} UTC: all on the drive (generation {}, {} checked)\n",
            check.records,
            check.acked_generation,
            check.drive_generation,
            human_bytes(check.acked_bytes),
        ));
        return;
    };
    let mut verdict = serde_json::to_value(lost).unwrap_or_default();
    verdict["kind"] = "lost-flushes".into();
    verdict["acked_time"] = acked_time.clone().into();
    outcome.json["verdict"] = verdict;
    outcome.status = Status::Damage;
    outcome.json["exit_status"] = json!(outcome.status.code());
    let mut head = format!(
        "LOST FLUSHES: the drive acknowledged generation {} as flushed at {acked_time} UTC, ",
        lost.acked_generation
    );
    if lost.drive_generation < lost.acked_generation {
        head.push_str(&format!(
            "but holds generation {} (an older commit)\n",
            lost.drive_generation
        ));
    } else {
        head.push_str(&format!(
            "and holds generation {}, but not its data\n",
            lost.drive_generation
        ));
    }
    for o in &lost.objects {
        let what = match o.how {
            LostHow::Missing => "missing".to_string(),
            LostHow::Short => format!(
                "short: {} of {} acknowledged",
                human_bytes(o.drive_size_bytes.unwrap_or(0)),
                human_bytes(o.acked_size_bytes)
            ),
            LostHow::Stale => {
                "a different object in its place (other name, kind or seed)".to_string()
            }
            LostHow::Damaged => format!(
                "{} of its {} acknowledged bytes damaged, from offset {}",
                human_bytes(o.damaged_bytes),
                human_bytes(o.acked_size_bytes),
                o.first_damaged_offset.unwrap_or(0)
            ),
        };
        head.push_str(&format!("  object {:?} (id {}): {what}\n", o.name, o.id));
    }
    outcome.human = format!("{head}{}", outcome.human);
}

#[cfg(test)]
mod tests {
    use super::*;
    use stack_volume::AckedObject;

    /// The line format is the contract `verify --acked` and users' scripts read: every
    /// field named, in this order.
    #[test]
    fn the_line_format_is_pinned() {
        let record = CommitRecord {
            uuid: "0123abcd-0000-4000-8000-00000000beef".into(),
            generation: 7,
            time_unix_ms: 1_764_000_000_123,
            objects: vec![
                AckedObject {
                    name: "fill".into(),
                    id: 2,
                    size_bytes: 1 << 20,
                    complete: false,
                    seed: Some(42),
                },
                AckedObject {
                    name: "notes.txt".into(),
                    id: 3,
                    size_bytes: 5,
                    complete: true,
                    seed: None,
                },
            ],
        };
        let line = line_of(&record);
        assert_eq!(
            line,
            r#"{"uuid":"0123abcd-0000-4000-8000-00000000beef","generation":7,"time_unix_ms":1764000000123,"objects":[{"name":"fill","id":2,"size_bytes":1048576,"complete":false,"seed":42},{"name":"notes.txt","id":3,"size_bytes":5,"complete":true,"seed":null}]}"#
        );
        assert_eq!(serde_json::from_str::<CommitRecord>(&line).unwrap(), record);
    }

    #[test]
    fn malformed_lines_are_named_and_a_cut_off_last_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let good = r#"{"uuid":"u","generation":3,"time_unix_ms":1,"objects":[]}"#;
        let path = dir.path().join("log");
        std::fs::write(&path, format!("{good}\n\n{{\"uuid\":\"u\"}}\n{good}\n")).unwrap();
        let err = read_log(&path).unwrap_err().to_string();
        assert!(err.contains("line 3 is not a commit record"), "{err}");
        std::fs::write(&path, format!("{good}\n{good}\n{{\"uuid\":\"u\",\"gen")).unwrap();
        let (records, cut) = read_log(&path).unwrap();
        assert_eq!((records.len(), cut), (2, true));
        std::fs::write(&path, format!("{good}\n{good}")).unwrap();
        assert_eq!(read_log(&path).unwrap().0.len(), 2);
    }
}
