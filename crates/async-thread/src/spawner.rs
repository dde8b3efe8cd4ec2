//! Thread creation behind a trait, so tests can make it fail.

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Creates the threads of a pool. A pool never calls `std::thread` directly, so a test
/// can swap in a [`FailingSpawner`] and watch the rescuer keep the pool going.
pub trait Spawner: Send + Sync + fmt::Debug {
    /// Starts a thread called `name` running `body`. An error means no thread exists.
    fn spawn(
        &self,
        name: String,
        stack_size_bytes: Option<usize>,
        body: Box<dyn FnOnce() + Send + 'static>,
    ) -> io::Result<()>;
}

/// The real spawner: `std::thread::Builder`, threads detached (the pool counts them).
#[derive(Debug, Default, Clone, Copy)]
pub struct ThreadSpawner;

impl Spawner for ThreadSpawner {
    fn spawn(
        &self,
        name: String,
        stack_size_bytes: Option<usize>,
        body: Box<dyn FnOnce() + Send + 'static>,
    ) -> io::Result<()> {
        let mut builder = std::thread::Builder::new().name(name);
        if let Some(bytes) = stack_size_bytes {
            builder = builder.stack_size(bytes);
        }
        builder.spawn(body).map(drop)
    }
}

/// A spawner for tests: lets the first `allow` spawns through, then fails every one
/// while failing is switched on ([`set_failing`](Self::set_failing)).
#[derive(Debug)]
pub struct FailingSpawner {
    remaining: AtomicUsize,
    failing: AtomicBool,
    spawned: AtomicUsize,
    refused: AtomicUsize,
}

impl FailingSpawner {
    /// Allows `allow` successful spawns, then fails; failing starts switched on.
    pub fn new(allow: usize) -> Self {
        Self {
            remaining: AtomicUsize::new(allow),
            failing: AtomicBool::new(true),
            spawned: AtomicUsize::new(0),
            refused: AtomicUsize::new(0),
        }
    }

    /// Switches failing on or off; while off every spawn succeeds and the allowance is
    /// left untouched.
    pub fn set_failing(&self, on: bool) {
        self.failing.store(on, Ordering::SeqCst);
    }

    /// How many threads this spawner started.
    pub fn spawned(&self) -> usize {
        self.spawned.load(Ordering::SeqCst)
    }

    /// How many spawns it refused.
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }
}

impl Spawner for FailingSpawner {
    fn spawn(
        &self,
        name: String,
        stack_size_bytes: Option<usize>,
        body: Box<dyn FnOnce() + Send + 'static>,
    ) -> io::Result<()> {
        if self.failing.load(Ordering::SeqCst) {
            let allowed = self
                .remaining
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            if !allowed {
                self.refused.fetch_add(1, Ordering::SeqCst);
                return Err(io::Error::new(
                    io::ErrorKind::OutOfMemory,
                    format!("FailingSpawner refused to start `{name}`"),
                ));
            }
        }
        ThreadSpawner.spawn(name, stack_size_bytes, body)?;
        self.spawned.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn failing_spawner_allows_then_refuses_then_recovers() {
        let s = FailingSpawner::new(1);
        let (tx, rx) = mpsc::channel();
        let tx2 = tx.clone();
        s.spawn("t-0".into(), None, Box::new(move || tx.send(1).unwrap()))
            .unwrap();
        assert_eq!(rx.recv().unwrap(), 1);
        assert!(s.spawn("t-1".into(), None, Box::new(|| {})).is_err());
        assert_eq!(s.refused(), 1);
        s.set_failing(false);
        s.spawn("t-2".into(), None, Box::new(move || tx2.send(2).unwrap()))
            .unwrap();
        assert_eq!(rx.recv().unwrap(), 2);
        assert_eq!(s.spawned(), 2);
    }

    #[test]
    fn thread_spawner_names_the_thread() {
        let (tx, rx) = mpsc::channel();
        ThreadSpawner
            .spawn(
                "named-7".into(),
                Some(256 * 1024),
                Box::new(move || {
                    tx.send(std::thread::current().name().map(str::to_owned))
                        .unwrap()
                }),
            )
            .unwrap();
        assert_eq!(rx.recv().unwrap().as_deref(), Some("named-7"));
    }
}
