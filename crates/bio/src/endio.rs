//! [`CallerRunsEndIo`]: completions on an end-I/O [`Workers`] pool under its caller-runs
//! policy.
//!
//! Why: a completion that checks what a read brought in (btrfs's post-I/O side) is
//! about as cheap as handing it to another thread when the data is still in the
//! submitter's cache. On a machine with few cores whose end-I/O workers are all busy,
//! queueing it only adds a wake-up and a cold cache; running it on the submitter that
//! just completed the I/O costs neither. While a worker is free it still goes to the
//! pool, so the submitter goes straight back to the device.

use crate::queue::{EndIo, EndIoJob};
use stack_async_thread::{Ran, Workers};
use std::sync::{Arc, Mutex};

/// Runs completions on `Workers` with [`Workers::run_or_queue`]: on the pool while it
/// has room, else on the submitter thread that completed the I/O.
#[derive(Debug, Clone)]
pub struct CallerRunsEndIo(pub Workers);

impl EndIo for CallerRunsEndIo {
    fn run(&self, job: EndIoJob) -> Result<(), EndIoJob> {
        // As `impl EndIo for Workers`: the closure only borrows the job through a cell,
        // so a refused one (the pool shut down) comes back to the queue.
        let cell = Arc::new(Mutex::new(Some(job)));
        let job_cell = Arc::clone(&cell);
        match self.0.run_or_queue(move || {
            let job = job_cell.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(job) = job {
                job();
            }
        }) {
            Ok(Ran::Caller | Ran::Queued) => Ok(()),
            Err(_) => cell
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
                .map_or(Ok(()), Err),
        }
    }
}
