//! [`BioGroup`]: wait for a set of bios (a latch), and learn whether any failed.

use crate::{Bio, Error};
use stack_async_thread::blocking;
use std::fmt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

#[derive(Default)]
struct State {
    /// Bios added whose completion has not returned yet.
    pending: u64,
    added: u64,
    failed: u64,
    /// The first failure, in completion order.
    first_error: Option<Error>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    all_done: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A latch over a set of bios: [`add`](Self::add) each bio before submitting it, then
/// [`wait`](Self::wait) until every added bio's completion callback has run and
/// returned. The bios may go to different queues and devices.
///
/// The group keeps a copy of the first failure (in completion order) and counts the
/// failures; the bios' own callbacks still get their results. Cheap to clone; clones
/// share the group, so a bio added through a clone is waited for too.
///
/// ```
/// use stack_async_thread::Workers;
/// use stack_bio::{Bio, BioGroup, MemDevice, QueueConfig, SubmitQueue};
/// use std::sync::Arc;
///
/// let end_io = Workers::builder("end-io").build()?;
/// let queue = SubmitQueue::new(Arc::new(MemDevice::new(1 << 20)), end_io, QueueConfig::default())?;
/// let group = BioGroup::new();
/// for i in 0..16u64 {
///     queue.submit(group.add(Bio::write(i * 4096, vec![i as u8; 4096], |_| {})));
/// }
/// group.wait()?; // all 16 callbacks have returned, none failed
/// assert_eq!(group.added(), 16);
///
/// // A failure: past the end of the 1 MiB device.
/// queue.submit(group.add(Bio::write(1 << 20, vec![0u8; 4096], |_| {})));
/// let err = group.wait().unwrap_err();
/// assert_eq!(err.device(), "mem"); // MemDevice's default name
/// assert_eq!(group.failed(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Default)]
pub struct BioGroup {
    shared: Arc<Shared>,
}

impl fmt::Debug for BioGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.shared.lock();
        f.debug_struct("BioGroup")
            .field("added", &s.added)
            .field("pending", &s.pending)
            .field("failed", &s.failed)
            .finish()
    }
}

impl BioGroup {
    /// An empty group ([`wait`](Self::wait) returns at once).
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes `bio` part of the group and hands it back to be submitted. A bio dropped
    /// unsubmitted still completes (with [`Error::Cancelled`]), so the group never waits
    /// forever for it.
    pub fn add(&self, mut bio: Bio) -> Bio {
        {
            let mut s = self.shared.lock();
            s.pending += 1;
            s.added += 1;
        }
        let shared = Arc::clone(&self.shared);
        bio.wrap_completion(move |result| {
            let mut s = shared.lock();
            if let Err(e) = result {
                s.failed += 1;
                if s.first_error.is_none() {
                    s.first_error = Some(e.duplicate());
                }
            }
            s.pending -= 1;
            if s.pending == 0 {
                shared.all_done.notify_all();
            }
        });
        bio
    }

    /// Waits (inside [`blocking`]) until every bio added so far has completed and its
    /// callback returned; `Err` with a copy of the first failure if any bio of the
    /// group failed (now or in an earlier wait). Never call it from a completion
    /// callback of a bio in the group.
    pub fn wait(&self) -> Result<(), Error> {
        let mut s = self.shared.lock();
        if s.pending > 0 {
            drop(s);
            s = blocking(|| {
                let mut s = self.shared.lock();
                while s.pending > 0 {
                    s = self
                        .shared
                        .all_done
                        .wait(s)
                        .unwrap_or_else(|e| e.into_inner());
                }
                s
            });
        }
        match &s.first_error {
            Some(e) => Err(e.duplicate()),
            None => Ok(()),
        }
    }

    /// Bios added so far.
    pub fn added(&self) -> u64 {
        self.shared.lock().added
    }

    /// Bios added whose completion has not returned yet.
    pub fn pending(&self) -> u64 {
        self.shared.lock().pending
    }

    /// Bios of the group that completed with an error.
    pub fn failed(&self) -> u64 {
        self.shared.lock().failed
    }
}
