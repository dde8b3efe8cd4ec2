//! [`Stats`]: a snapshot of a pool's counters.

/// Counters of a [`Workers`](crate::Workers) pool or a [`WorkQueue`](crate::WorkQueue),
/// read without stopping it (each field is exact; fields are not one atomic cut).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Worker threads now (the rescuer/watchdog thread is not counted).
    pub threads: usize,
    /// Most worker threads ever alive at once.
    pub threads_peak: usize,
    /// Items accepted (closures, work objects, ordered halves, high lane included).
    pub queued: u64,
    /// Of `queued`, those on the high-priority lane.
    pub queued_high: u64,
    /// Items [`Workers::run_or_queue`](crate::Workers::run_or_queue)
    /// ran on its caller because the pool was saturated (also counted in `run`, not in
    /// `queued`).
    pub caller_runs: u64,
    /// Item runs finished, by workers, the rescuer, a shutting-down caller or a
    /// caller-runs caller.
    pub run: u64,
    /// Times a work object went back to the tail of its list ([`Step::Requeue`](crate::Step)).
    pub requeued: u64,
    /// Times a work object was queued while already pending (a no-op).
    pub already_pending: u64,
    /// Items that panicked (caught; the pool went on).
    pub panics: u64,
    /// Items the rescuer ran because no worker could be created.
    pub rescuer_runs: u64,
    /// Times the watchdog found waiting work with no progress and reacted.
    pub watchdog_kicks: u64,
    /// Thread creations that failed.
    pub spawn_failures: u64,
    /// Workers inside a [`blocking`](crate::blocking) section now.
    pub blocked: usize,
    /// Items accepted and not finished yet (running ones included).
    pub outstanding: u64,
    /// Items waiting with no worker (thread creation failed).
    pub orphaned: usize,
    /// Pending items of each live worker, in slot order.
    pub pending_per_worker: Vec<usize>,
    /// The message of the most recent panic.
    pub last_panic: Option<String>,
}
