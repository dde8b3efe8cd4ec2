//! End-to-end tests of the `stackctl` binary: every command, option and exit status,
//! JSON parsed back field by field, progress silent on a pipe, each refusal, Ctrl-C
//! during a write, and the bad-input table.

mod acked;
mod bad_input;
mod commands;
mod commit_every;
mod concurrency;
mod damage;
mod device_true;
pub(crate) mod devices;
mod exit_status;
mod fake;
mod forged;
pub(crate) mod harness;
mod many;
mod output;
mod probe;
mod refusals;
mod report_html;
mod signals;
mod space;
mod stress;
