//! `AllocQueue`: allocations run on a rescuer-backed workqueue and the caller waits on a
//! completion, as XFS's `xfs_alloc_vextent` does after the allocation-workqueue commit.
//!
//! The hand-off to a worker thread costs tens of microseconds against about one for an
//! allocation, so the queue pays its way by carrying several requests per hand-off
//! ([`AllocQueue::alloc_batch`]) and by callers asking for large extents (a stream's
//! reservation, not one block at a time).
//!
//! The allocator itself never queues anything: it only locks its own groups, so it can
//! never wait on a pool that waits on it.

use crate::{AllocRequest, Allocator, Error, Extent};
use stack_async_thread::{Spawner, Stats, WorkQueue};
use std::sync::Arc;

/// Most requests one `alloc_batch` hand-off may carry, so a worker is never held for an
/// unbounded time and a caller's batch stays a bounded allocation.
pub const MAX_BATCH: usize = 4096;

/// An allocator behind a workqueue with a rescuer. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AllocQueue {
    allocator: Arc<Allocator>,
    queue: WorkQueue,
}

impl AllocQueue {
    /// A queue named `alloc` with a rescuer, creating threads with `std::thread`.
    pub fn new(allocator: Arc<Allocator>) -> Result<Self, Error> {
        let queue = WorkQueue::builder("alloc").rescuer(true).build()?;
        Ok(Self { allocator, queue })
    }

    /// The same, creating threads through `spawner` (tests pass a failing one).
    pub fn with_spawner(
        allocator: Arc<Allocator>,
        spawner: Arc<dyn Spawner>,
    ) -> Result<Self, Error> {
        let queue = WorkQueue::builder("alloc")
            .rescuer(true)
            .spawner(spawner)
            .build()?;
        Ok(Self { allocator, queue })
    }

    /// Runs one allocation on the queue and waits for it.
    pub fn alloc(&self, req: AllocRequest) -> Result<Extent, Error> {
        let a = self.allocator.clone();
        self.queue.queue_and_wait(move || a.alloc(&req))?
    }

    /// Runs several allocations in one hand-off and waits for all of them; results come
    /// back in request order. If the hand-off itself fails, every slot says why. Batches
    /// longer than [`MAX_BATCH`] are split into several hand-offs.
    pub fn alloc_batch(&self, reqs: Vec<AllocRequest>) -> Vec<Result<Extent, Error>> {
        if reqs.len() > MAX_BATCH {
            let mut out = Vec::with_capacity(reqs.len());
            for chunk in reqs.chunks(MAX_BATCH) {
                out.extend(self.alloc_batch(chunk.to_vec()));
            }
            return out;
        }
        let n = reqs.len();
        let a = self.allocator.clone();
        let done = self
            .queue
            .queue_and_wait(move || reqs.iter().map(|r| a.alloc(r)).collect::<Vec<_>>());
        match done {
            Ok(results) => {
                assert_eq!(results.len(), n);
                results
            }
            Err(e) => {
                let reason = e.to_string();
                (0..n)
                    .map(|_| {
                        Err(Error::QueueFailed {
                            reason: reason.clone(),
                        })
                    })
                    .collect()
            }
        }
    }

    /// The allocator behind the queue (frees and commits go to it directly: they never
    /// need a fresh stack or the rescuer).
    pub fn allocator(&self) -> &Arc<Allocator> {
        &self.allocator
    }

    /// The workqueue's counters (threads, items run, rescuer runs).
    pub fn stats(&self) -> Stats {
        self.queue.stats()
    }

    /// Runs everything queued and stops the queue's threads.
    pub fn shutdown(&self) {
        self.queue.shutdown();
    }
}
