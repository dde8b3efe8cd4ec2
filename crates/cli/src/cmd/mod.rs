//! The `stackctl` binary: parses the command line, runs one command, prints its summary
//! (or `--json` document) and maps the outcome to an exit status.

mod ack;
pub mod args;
mod burn_in;
mod doc;
mod drives;
mod exit;
mod format;
mod human;
mod lock;
mod misc;
mod probe;
mod progress;
mod read;
mod report;
pub mod safety;
mod signal;
pub mod size;
mod verify;
mod write;

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use serde::Serialize;

use self::args::{Cli, Command, ProgressMode};
use self::exit::Status;
use self::progress::Reporter;

/// What every command gets.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// `--json`.
    pub json: bool,
    /// `--progress`.
    pub progress: ProgressMode,
    /// Set by Ctrl-C.
    pub cancel: Arc<AtomicBool>,
    /// `--wait`: what to do while another process uses the volume.
    pub wait: stack_volume::LockWait,
    /// Set on the context of one drive in a run over several (`drives/`).
    pub drive: Option<DriveCtx>,
}

/// What a command running on one of several drives reports through.
#[derive(Debug, Clone)]
pub struct DriveCtx {
    /// The target as given (tags its progress).
    pub target: String,
    /// The terminal's bars, when drawn.
    pub board: Option<progress::Board>,
    /// What its phases reached.
    pub tally: Arc<progress::Tally>,
}

impl Ctx {
    /// A progress reporter for `command`.
    pub fn reporter(&self, command: &'static str) -> Reporter {
        let reporter = Reporter::new(self.progress, command);
        match &self.drive {
            Some(d) => reporter.for_drive(
                d.target.clone(),
                d.board.clone(),
                Some(Arc::clone(&d.tally)),
            ),
            None => reporter,
        }
    }
}

/// What a command produced.
#[derive(Debug)]
pub struct Outcome {
    /// The exit status.
    pub status: Status,
    /// The `--json` document.
    pub json: serde_json::Value,
    /// The human summary.
    pub human: String,
    /// Print the human summary on stderr: stdout carries data (`--ack-log -`).
    pub human_on_stderr: bool,
}

impl Outcome {
    /// An outcome whose document is `doc` (with a `"command"` field added first).
    pub fn new(
        status: Status,
        command: &str,
        doc: &impl Serialize,
        human: String,
    ) -> anyhow::Result<Outcome> {
        let mut json = serde_json::json!({ "command": command });
        let value = serde_json::to_value(doc).context("encoding the JSON report")?;
        if let (Some(out), serde_json::Value::Object(fields)) = (json.as_object_mut(), value) {
            out.extend(fields);
        }
        json["exit_status"] = status.code().into();
        Ok(Outcome {
            status,
            json,
            human,
            human_on_stderr: false,
        })
    }
}

impl Outcome {
    /// Applies a volume opened from its older superblock copy (`warning` from
    /// `VolumeInfo::fallback_warning`): the command did its work, but a damaged newest
    /// copy is damage, so the human output starts with `WARNING:`, the document gets a
    /// `"warning"` field, and a clean status becomes 1 (docs/CLI.md, exit statuses).
    pub fn with_fallback(mut self, warning: Option<String>) -> Outcome {
        let Some(warning) = warning else {
            return self;
        };
        if self.status == Status::Clean {
            self.status = Status::Damage;
        }
        self.json["exit_status"] = self.status.code().into();
        self.json["warning"] = warning.clone().into();
        if self.human.is_empty() {
            // The output is data (`read -o -`): the warning goes to stderr.
            eprintln!("WARNING: {warning}");
        } else if !self.human.starts_with("WARNING:") {
            self.human = format!("WARNING: {warning}\n{}", self.human);
        }
        self
    }
}

/// Writes to stdout, ignoring a closed pipe (`stackctl ls | head`).
fn print_stdout(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// The name a command has in the JSON documents.
fn command_name(command: &Command) -> &'static str {
    match command {
        Command::Format(_) => "format",
        Command::Write(_) => "write",
        Command::Verify(_) => "verify",
        Command::Read(_) => "read",
        Command::Ls(_) => "ls",
        Command::Rm(_) => "rm",
        Command::Info(_) => "info",
        Command::BurnIn(_) => "burn-in",
        Command::Probe(_) => "probe",
        Command::Completions(_) => "completions",
    }
}

fn dispatch(ctx: &Ctx, command: &Command) -> anyhow::Result<Outcome> {
    match command {
        Command::Format(a) => format::run(ctx, a),
        Command::Write(a) => write::run(ctx, a),
        Command::Verify(a) => verify::run(ctx, a),
        Command::Read(a) => read::run(ctx, a),
        Command::Ls(a) => misc::ls(ctx, a),
        Command::Rm(a) => misc::rm(ctx, a),
        Command::Info(a) => misc::info(ctx, a),
        Command::BurnIn(a) => burn_in::run(ctx, a),
        Command::Probe(a) => probe::run(ctx, a),
        Command::Completions(a) => misc::completions(a),
    }
}

/// A one-line description of `path` for error contexts.
pub fn shown(path: &Path) -> String {
    path.display().to_string()
}

/// Runs the binary and returns its exit status.
pub fn main() -> ExitCode {
    // A panic is a bug; say so in one line, without a backtrace, and exit 3.
    std::panic::set_hook(Box::new(|info| {
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        eprintln!("stackctl: internal error{place}: {message} (this is a bug; please report it)");
    }));
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(Status::Usage.code()));
        }
    };
    let ctx = Ctx {
        json: cli.json,
        progress: cli.progress,
        cancel: signal::install(),
        wait: cli.wait.unwrap_or_default(),
        drive: None,
    };
    let name = command_name(&cli.command);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        dispatch(&ctx, &cli.command)
    }));
    let result = result.unwrap_or_else(|_| Err(anyhow::anyhow!("internal error in {name}")));
    match result {
        Ok(outcome) => {
            if ctx.json {
                let text = serde_json::to_string_pretty(&outcome.json).unwrap_or_default();
                print_stdout(&format!("{text}\n"));
            } else if outcome.human_on_stderr {
                eprint!("{}", outcome.human);
            } else {
                print_stdout(&outcome.human);
            }
            ExitCode::from(outcome.status.code())
        }
        Err(error) => {
            let status = exit::classify(&error);
            let message = exit::describe(&error);
            eprintln!("stackctl {name}: {message}");
            if ctx.json {
                let doc = serde_json::json!({
                    "command": name,
                    "error": message,
                    "exit_status": status.code(),
                });
                print_stdout(&format!(
                    "{}\n",
                    serde_json::to_string_pretty(&doc).unwrap_or_default()
                ));
            }
            ExitCode::from(status.code())
        }
    }
}
