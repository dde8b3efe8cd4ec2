//! Adapters between the pipelines and the lower crates' queues: bios on the device's
//! `SubmitQueue` with completions on the end-I/O `Workers` pool, and allocations.
use crate::volume::IO_ALIGN_BYTES;
use crate::Error;
use stack_alloc::{AllocQueue, AllocRequest, Extent};
use stack_async_thread::Workers;
use stack_bio::{
    AlignedBuf, Bio, BioBuf, BioResult, Device, EndIo, EndIoJob, InlineEndIo, PooledBuf,
    QueueConfig, SubmitQueue,
};
use std::sync::{Arc, Mutex};

/// Runs a submission queue's completions on a `Workers` pool (the end-I/O pool).
#[derive(Debug)]
struct PoolEndIo(Workers);

impl EndIo for PoolEndIo {
    fn run(&self, job: EndIoJob) -> Result<(), EndIoJob> {
        // `queue` consumes the closure; keep the job reachable so a refused one (the pool
        // shut down) goes back to the queue, which then runs it itself.
        let slot = Arc::new(Mutex::new(Some(job)));
        let mine = Arc::clone(&slot);
        let queued = self.0.queue(move || {
            let job = mine.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(job) = job {
                job();
            }
        });
        match queued {
            Ok(()) => Ok(()),
            Err(_) => match slot.lock().unwrap_or_else(|e| e.into_inner()).take() {
                Some(job) => Err(job),
                None => Ok(()),
            },
        }
    }
}

/// The device's submission queue as the pipelines use it: a bio per pooled buffer, the
/// buffer handed back to the completion.
#[derive(Clone, Debug)]
pub(crate) struct IoQueue {
    queue: Arc<SubmitQueue>,
    /// The engine the queue runs (`super::start_queue` chose it).
    #[allow(dead_code)]
    pub(crate) engine: super::Engine,
}

fn take_pooled(r: &mut BioResult) -> PooledBuf {
    match r.buf.take() {
        Some(BioBuf::Pooled(b)) => b,
        _ => unreachable!("pipeline bios carry pooled buffers"),
    }
}

impl IoQueue {
    /// A queue whose completions run on the `end_io` pool, or (`None`) on the submitter
    /// threads themselves: right for completions that only record a result and return a
    /// buffer, since a pool would add a thread hand-off (a futex wake on a busy machine)
    /// per bio for nothing.
    pub(crate) fn new(device: Arc<dyn Device>, end_io: Option<Workers>) -> Result<Self, Error> {
        // The pipelines hand over whole chunks in stream order: nothing to wait for, so no
        // plugging; merging still joins chunks that are queued together.
        let config = QueueConfig::default()
            .with_max_io_bytes(super::CHUNK_BYTES * 4)
            .with_max_in_flight_bytes((super::CHUNK_BYTES * super::POOL_BUFFERS * 2) as u64)
            .with_plug_timeout(std::time::Duration::ZERO);
        let end_io: Arc<dyn EndIo> = match end_io {
            Some(pool) => Arc::new(PoolEndIo(pool)),
            None => Arc::new(InlineEndIo),
        };
        let (queue, engine) = super::start_queue(&device, end_io, config)?;
        Ok(IoQueue {
            queue: Arc::new(queue),
            engine,
        })
    }

    /// Queues a write of `buf` at `offset`; `done` runs on the end-I/O pool.
    pub(crate) fn write(
        &self,
        offset: u64,
        buf: PooledBuf,
        done: impl FnOnce(PooledBuf, Result<(), stack_bio::Error>) + Send + 'static,
    ) {
        self.queue.submit(Bio::write(offset, buf, move |mut r| {
            let buf = take_pooled(&mut r);
            done(buf, r.result)
        }));
    }
}

impl IoQueue {
    /// Writes `bytes` at `offset` through the queue (after the bios queued before it, on
    /// the sync lane) and waits for it: the checksum streams, so every byte of a write
    /// reaches the device through its queue.
    pub(crate) fn write_and_wait(&self, offset: u64, bytes: &[u8]) -> Result<(), Error> {
        let buf = AlignedBuf::from_slice(bytes, IO_ALIGN_BYTES);
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.queue
            .submit_sync(Bio::write(offset, buf, move |r| drop(tx.send(r.result))));
        let cancelled = || stack_bio::Error::Cancelled {
            device: self.queue.device().info().path,
            offset,
        };
        Ok(rx.recv().unwrap_or_else(|_| Err(cancelled()))?)
    }
}

/// Allocation through the volume's `AllocQueue` (the XFS seed: the request runs on a
/// rescuer-backed workqueue and the caller waits for the answer).
pub(crate) struct Allocs {
    queue: AllocQueue,
}

impl Allocs {
    pub(crate) fn new(queue: &AllocQueue) -> Self {
        Allocs {
            queue: queue.clone(),
        }
    }

    pub(crate) fn alloc(&self, req: AllocRequest) -> Result<Extent, stack_alloc::Error> {
        self.queue.alloc(req)
    }
}
