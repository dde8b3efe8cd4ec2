//! Progress on stderr: an indicatif bar on a terminal, JSON lines for scripts, or nothing.
//!
//! JSON lines (`--progress json`) are one object per line on stderr, at most every
//! [`JSON_INTERVAL`], plus a final `"event": "done"` line per phase:
//! `{"event":"progress","command":"write","target":"v.img","phase":"write",
//! "done_bytes":1048576,"total_bytes":4194304,"elapsed_secs":0.21,"bytes_per_sec":4993219}`.
//!
//! Several drives in one run (`burn-in a b c`): every line names its `target`, and a
//! terminal shows one bar per drive plus a total ([`Board`], indicatif's
//! `MultiProgress`). Each drive's [`Tally`] keeps what its phases reached, so a drive
//! lost mid-run can say what was written and checked before.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use stack_volume::{Progress, ProgressFn};

use super::args::ProgressMode;

/// Least time between two JSON progress lines of one phase.
pub const JSON_INTERVAL: Duration = Duration::from_millis(200);

/// How progress is shown, after `auto` was resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sink {
    Bar,
    Json,
    Silent,
}

/// The progress reporter of one command (of one drive, in a run over several).
#[derive(Debug, Clone)]
pub struct Reporter {
    sink: Sink,
    command: &'static str,
    target: Option<String>,
    board: Option<Board>,
    tally: Option<Arc<Tally>>,
}

/// Bytes each phase of one drive reached (the last progress seen).
#[derive(Debug, Default)]
pub struct Tally {
    done: Mutex<Vec<(&'static str, u64)>>,
}

impl Tally {
    fn record(&self, phase: &'static str, done_bytes: u64) {
        let Ok(mut done) = self.done.lock() else {
            return;
        };
        match done.iter_mut().find(|(p, _)| *p == phase) {
            Some((_, bytes)) => *bytes = done_bytes,
            None => done.push((phase, done_bytes)),
        }
    }

    /// The last bytes done in `phase` (0 when it never started).
    pub fn done(&self, phase: &str) -> u64 {
        self.done.lock().map_or(0, |done| {
            done.iter()
                .find(|(p, _)| *p == phase)
                .map_or(0, |(_, bytes)| *bytes)
        })
    }

    /// The phase that started last.
    pub fn last_phase(&self) -> Option<&'static str> {
        self.done.lock().ok()?.last().map(|(p, _)| *p)
    }
}

/// One drive's phase on the board: target, phase, done bytes, total bytes.
type Part = (String, &'static str, u64, Option<u64>);

/// The terminal's bars of a run over several drives: one per drive plus a total.
#[derive(Debug, Clone)]
pub struct Board {
    multi: MultiProgress,
    total: ProgressBar,
    /// Every (target, phase) seen, with its done and total bytes.
    parts: Arc<Mutex<Vec<Part>>>,
}

impl Board {
    /// A board on stderr, or `None` when progress is not drawn as bars.
    pub fn new(mode: ProgressMode, drives: usize) -> Option<Board> {
        if resolve(mode) != Sink::Bar {
            return None;
        }
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let total = multi.add(ProgressBar::new(0));
        if let Ok(style) = ProgressStyle::with_template(
            "{prefix:>24} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {bytes_per_sec}",
        ) {
            total.set_style(style);
        }
        total.set_prefix(format!("total ({drives} drives)"));
        Some(Board {
            multi,
            total,
            parts: Arc::new(Mutex::new(Vec::new())),
        })
    }

    fn update(&self, target: &str, phase: &'static str, progress: Progress) {
        let Ok(mut parts) = self.parts.lock() else {
            return;
        };
        match parts
            .iter_mut()
            .find(|(t, p, _, _)| t == target && *p == phase)
        {
            Some(part) => {
                part.2 = progress.done_bytes;
                part.3 = progress.total_bytes;
            }
            None => parts.push((
                target.to_string(),
                phase,
                progress.done_bytes,
                progress.total_bytes,
            )),
        }
        let done: u64 = parts.iter().map(|p| p.2).sum();
        let total: u64 = parts.iter().map(|p| p.3.unwrap_or(p.2)).sum();
        self.total.set_length(total);
        self.total.set_position(done);
    }

    /// Ends the total bar.
    pub fn finish(&self) {
        self.total.finish_and_clear();
    }
}

fn resolve(mode: ProgressMode) -> Sink {
    match mode {
        ProgressMode::Auto if std::io::stderr().is_terminal() => Sink::Bar,
        ProgressMode::Auto | ProgressMode::None => Sink::Silent,
        ProgressMode::Json => Sink::Json,
    }
}

/// One JSON progress line.
#[derive(Debug, Serialize)]
struct Event<'a> {
    event: &'static str,
    command: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<&'a str>,
    phase: &'a str,
    done_bytes: u64,
    total_bytes: Option<u64>,
    elapsed_secs: f64,
    bytes_per_sec: u64,
}

#[derive(Debug)]
struct State {
    bar: Option<ProgressBar>,
    last_json: Option<Instant>,
    last: Progress,
}

/// The progress of one phase (write, verify, ...).
#[derive(Debug, Clone)]
pub struct Phase {
    sink: Sink,
    command: &'static str,
    target: Option<String>,
    board: Option<Board>,
    tally: Option<Arc<Tally>>,
    phase: &'static str,
    start: Instant,
    state: Arc<Mutex<State>>,
}

impl Reporter {
    /// A reporter for `command`; `auto` shows a bar only when stderr is a terminal.
    pub fn new(mode: ProgressMode, command: &'static str) -> Reporter {
        Reporter {
            sink: resolve(mode),
            command,
            target: None,
            board: None,
            tally: None,
        }
    }

    /// The reporter of one drive: its lines name `target`, its bars go on `board`, and
    /// `tally` keeps what its phases reached.
    pub fn for_drive(
        mut self,
        target: String,
        board: Option<Board>,
        tally: Option<Arc<Tally>>,
    ) -> Reporter {
        self.target = Some(target);
        self.board = board;
        self.tally = tally;
        self
    }

    /// Starts a phase; `total_bytes` sizes the bar when known.
    pub fn phase(&self, phase: &'static str, total_bytes: Option<u64>) -> Phase {
        let bar = (self.sink == Sink::Bar).then(|| {
            let bar = match total_bytes {
                Some(total) => ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr()),
                None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
            };
            let template = if total_bytes.is_some() {
                "{prefix:>7} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}"
            } else {
                "{prefix:>7} [{elapsed_precise}] {spinner} {bytes} {bytes_per_sec}"
            };
            let template = match &self.board {
                Some(_) => template.replacen("{prefix:>7}", "{prefix:>24}", 1),
                None => template.to_string(),
            };
            if let Ok(style) = ProgressStyle::with_template(&template) {
                bar.set_style(style);
            }
            match (&self.board, &self.target) {
                (Some(board), Some(target)) => {
                    bar.set_prefix(format!("{target} {phase}"));
                    board.multi.insert_before(&board.total, bar)
                }
                _ => {
                    bar.set_prefix(phase);
                    bar
                }
            }
        });
        if let (Some(board), Some(target)) = (&self.board, &self.target) {
            let start = Progress {
                done_bytes: 0,
                total_bytes,
            };
            board.update(target, phase, start);
        }
        Phase {
            sink: self.sink,
            command: self.command,
            target: self.target.clone(),
            board: self.board.clone(),
            tally: self.tally.clone(),
            phase,
            start: Instant::now(),
            state: Arc::new(Mutex::new(State {
                bar,
                last_json: None,
                last: Progress {
                    done_bytes: 0,
                    total_bytes,
                },
            })),
        }
    }
}

impl Phase {
    /// The callback to hand to the library.
    pub fn callback(&self) -> Option<ProgressFn> {
        if self.sink == Sink::Silent && self.tally.is_none() {
            return None;
        }
        let phase = self.clone();
        Some(Arc::new(move |progress| phase.update(progress)))
    }

    fn update(&self, progress: Progress) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        // A fill reports no total; the phase keeps the one it started with.
        let progress = Progress {
            done_bytes: progress.done_bytes,
            total_bytes: progress.total_bytes.or(state.last.total_bytes),
        };
        state.last = progress;
        if let Some(tally) = &self.tally {
            tally.record(self.phase, progress.done_bytes);
        }
        if let (Some(board), Some(target)) = (&self.board, &self.target) {
            board.update(target, self.phase, progress);
        }
        if let Some(bar) = &state.bar {
            if let Some(total) = progress.total_bytes {
                bar.set_length(total);
            }
            bar.set_position(progress.done_bytes);
        }
        if self.sink == Sink::Json {
            let due = state
                .last_json
                .is_none_or(|at| at.elapsed() >= JSON_INTERVAL);
            if due {
                state.last_json = Some(Instant::now());
                self.emit("progress", progress);
            }
        }
    }

    fn emit(&self, event: &'static str, progress: Progress) {
        let elapsed_secs = self.start.elapsed().as_secs_f64();
        let bytes_per_sec = if elapsed_secs > 0.0 {
            (progress.done_bytes as f64 / elapsed_secs) as u64
        } else {
            0
        };
        let line = Event {
            event,
            command: self.command,
            target: self.target.as_deref(),
            phase: self.phase,
            done_bytes: progress.done_bytes,
            total_bytes: progress.total_bytes,
            elapsed_secs,
            bytes_per_sec,
        };
        if let Ok(text) = serde_json::to_string(&line) {
            // Progress is best effort: a closed stderr must not fail the command.
            let _ = writeln!(std::io::stderr().lock(), "{text}");
        }
    }

    /// Ends the phase: clears the bar, or prints the final JSON line.
    pub fn finish(&self) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        if let Some(bar) = state.bar.take() {
            bar.finish_and_clear();
        }
        if self.sink == Sink::Json {
            self.emit("done", state.last);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silent_phases_hand_out_no_callback() {
        let reporter = Reporter::new(ProgressMode::None, "verify");
        let phase = reporter.phase("verify", Some(10));
        assert!(phase.callback().is_none());
        phase.finish();
    }

    #[test]
    fn a_drive_tally_keeps_each_phase_and_a_fill_keeps_its_total() {
        let tally = Arc::new(Tally::default());
        let reporter = Reporter::new(ProgressMode::None, "burn-in").for_drive(
            "/dev/sdz".into(),
            None,
            Some(Arc::clone(&tally)),
        );
        let write = reporter.phase("write", Some(100));
        let callback = write.callback().expect("a drive's tally wants progress");
        callback(Progress {
            done_bytes: 40,
            total_bytes: None,
        });
        assert_eq!(write.state.lock().unwrap().last.total_bytes, Some(100));
        write.finish();
        let verify = reporter.phase("verify", Some(40));
        verify.callback().unwrap()(Progress {
            done_bytes: 8,
            total_bytes: Some(40),
        });
        assert_eq!(tally.done("write"), 40);
        assert_eq!(tally.done("verify"), 8);
        assert_eq!(tally.done("probe"), 0);
        assert_eq!(tally.last_phase(), Some("verify"));
    }

    #[test]
    fn json_phases_remember_the_last_progress() {
        let reporter = Reporter::new(ProgressMode::Json, "write");
        let phase = reporter.phase("write", None);
        let callback = phase.callback().expect("json mode reports");
        callback(Progress {
            done_bytes: 7,
            total_bytes: Some(9),
        });
        assert_eq!(phase.state.lock().unwrap().last.done_bytes, 7);
        phase.finish();
    }
}
