//! Progress on stderr: an indicatif bar on a terminal, JSON lines for scripts, or nothing.
//!
//! JSON lines (`--progress json`) are one object per line on stderr, at most every
//! [`JSON_INTERVAL`], plus a final `"event": "done"` line per phase:
//! `{"event":"progress","command":"write","phase":"write","done_bytes":1048576,
//! "total_bytes":4194304,"elapsed_secs":0.21,"bytes_per_sec":4993219}`.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
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

/// The progress reporter of one command.
#[derive(Debug, Clone)]
pub struct Reporter {
    sink: Sink,
    command: &'static str,
}

/// One JSON progress line.
#[derive(Debug, Serialize)]
struct Event<'a> {
    event: &'static str,
    command: &'a str,
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
    phase: &'static str,
    start: Instant,
    state: Arc<Mutex<State>>,
}

impl Reporter {
    /// A reporter for `command`; `auto` shows a bar only when stderr is a terminal.
    pub fn new(mode: ProgressMode, command: &'static str) -> Reporter {
        let sink = match mode {
            ProgressMode::Auto if std::io::stderr().is_terminal() => Sink::Bar,
            ProgressMode::Auto | ProgressMode::None => Sink::Silent,
            ProgressMode::Json => Sink::Json,
        };
        Reporter { sink, command }
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
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style);
            }
            bar.set_prefix(phase);
            bar
        });
        Phase {
            sink: self.sink,
            command: self.command,
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
        if self.sink == Sink::Silent {
            return None;
        }
        let phase = self.clone();
        Some(Arc::new(move |progress| phase.update(progress)))
    }

    fn update(&self, progress: Progress) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        state.last = progress;
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
