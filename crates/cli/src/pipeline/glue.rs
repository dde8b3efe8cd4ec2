//! Adapters between the pipelines and the lower crates' queues.
//!
//! Temporary: until `stack-async-thread` (`Workers`, `Ordered`), `stack-bio`
//! (`SubmitQueue`) and `stack-alloc` (`AllocQueue`) land, this module carries minimal
//! stand-ins with the same shape, so the pipelines run and can be tested now.
use crate::Error;
use stack_alloc::{AllocRequest, Allocator, Extent};
use stack_bio::{Bio, BioBuf, BioResult, Device, PooledBuf, QueueConfig, SubmitQueue};
use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex};

type Job = Box<dyn FnOnce() + Send>;
/// A fixed pool of threads.
#[derive(Clone, Debug)]
pub struct Workers {
    tx: crossbeam_channel::Sender<Job>,
}
impl Workers {
    /// `n` threads.
    pub fn new(n: usize) -> Self {
        let (tx, rx) = crossbeam_channel::unbounded::<Job>();
        for _ in 0..n {
            let rx = rx.clone();
            std::thread::spawn(move || {
                while let Ok(j) = rx.recv() {
                    j()
                }
            });
        }
        Workers { tx }
    }
    /// Runs `f` on a thread.
    pub fn queue(&self, f: impl FnOnce() + Send + 'static) {
        self.tx.send(Box::new(f)).unwrap();
    }
    /// A new ordered stream.
    pub fn ordered(&self) -> Ordered {
        Ordered {
            pool: self.clone(),
            st: Arc::new((Mutex::new(OState::default()), Condvar::new())),
        }
    }
}
#[derive(Default)]
struct OState {
    next_in: u64,
    next_out: u64,
    ready: BTreeMap<u64, Job>,
    running: bool,
}
/// Parallel work whose second step runs in queue order.
#[derive(Clone)]
pub struct Ordered {
    pool: Workers,
    st: Arc<(Mutex<OState>, Condvar)>,
}
impl std::fmt::Debug for Ordered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ordered")
    }
}
impl Ordered {
    /// Queues `func` (parallel) then `of` (in order).
    pub fn queue<T: Send + 'static>(
        &self,
        func: impl FnOnce() -> T + Send + 'static,
        of: impl FnOnce(T) + Send + 'static,
    ) -> Result<(), Error> {
        let seq = {
            let mut s = self.st.0.lock().unwrap();
            let q = s.next_in;
            s.next_in += 1;
            q
        };
        let st = self.st.clone();
        self.pool.queue(move || {
            let t = func();
            let mut s = st.0.lock().unwrap();
            s.ready.insert(seq, Box::new(move || of(t)));
            if s.running {
                return;
            }
            s.running = true;
            loop {
                let n = s.next_out;
                let Some(j) = s.ready.remove(&n) else { break };
                drop(s);
                j();
                s = st.0.lock().unwrap();
                s.next_out += 1;
            }
            s.running = false;
            st.1.notify_all();
        });
        Ok(())
    }
    /// Waits for every queued `of`.
    pub fn flush(&self) {
        let mut s = self.st.0.lock().unwrap();
        while s.next_out < s.next_in {
            s = self.st.1.wait(s).unwrap();
        }
    }
}
impl stack_bio::EndIo for Workers {
    fn run(&self, job: stack_bio::EndIoJob) -> Result<(), stack_bio::EndIoJob> {
        self.queue(job);
        Ok(())
    }
}

/// The device's submission queue as the pipelines use it: a bio per pooled buffer, the
/// buffer handed back to the completion.
#[derive(Clone, Debug)]
pub(crate) struct IoQueue {
    queue: Arc<SubmitQueue>,
}

fn take_pooled(r: &mut BioResult) -> PooledBuf {
    match r.buf.take() {
        Some(BioBuf::Pooled(b)) => b,
        _ => unreachable!("pipeline bios carry pooled buffers"),
    }
}

impl IoQueue {
    pub(crate) fn new(device: Arc<dyn Device>, end_io: Workers) -> Result<Self, Error> {
        // The pipelines hand over whole chunks in stream order: nothing to wait for, so no
        // plugging; merging still joins chunks that are queued together.
        let config = QueueConfig {
            max_io_bytes: super::CHUNK_BYTES * 4,
            max_in_flight_bytes: (super::CHUNK_BYTES * super::POOL_BUFFERS * 2) as u64,
            plug_timeout: std::time::Duration::ZERO,
            ..QueueConfig::default()
        };
        let queue =
            SubmitQueue::try_new(device.clone(), Arc::new(end_io), config).map_err(|source| {
                Error::Device(stack_bio::Error::Io {
                    device: device.info().path,
                    offset: 0,
                    len: 0,
                    op: "start submitter",
                    source,
                })
            })?;
        Ok(IoQueue {
            queue: Arc::new(queue),
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

    /// Queues a read into `buf` from `offset`; `done` runs on the end-I/O pool.
    pub(crate) fn read(
        &self,
        offset: u64,
        buf: PooledBuf,
        done: impl FnOnce(PooledBuf, Result<(), stack_bio::Error>) + Send + 'static,
    ) {
        self.queue.submit(Bio::read(offset, buf, move |mut r| {
            let buf = take_pooled(&mut r);
            done(buf, r.result)
        }));
    }
}

pub(crate) struct Allocs {
    a: Allocator,
}
impl Allocs {
    pub(crate) fn new(a: &Allocator) -> Result<Self, Error> {
        Ok(Allocs { a: a.clone() })
    }
    pub(crate) fn alloc(&self, req: AllocRequest) -> Result<Extent, stack_alloc::Error> {
        self.a.alloc(&req)
    }
}
