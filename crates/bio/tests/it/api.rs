//! The queue's API contract: what each wait waits for, what a queue runs on, and how it
//! refuses a bad config.

use stack_async_thread::Workers;
use stack_bio::{
    Bio, BioGroup, Engine, Error, FileDevice, InlineEndIo, MemDevice, OpenOptions, QueueConfig,
    SubmitQueue, DEFAULT_URING_DEPTH, MAX_QUEUE_DEPTH,
};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A queue over 1 MiB of memory whose completions spread over a 4-thread pool (busy
/// threshold 1), so a flush's completion can run while earlier ones still sleep.
fn pooled_queue() -> SubmitQueue {
    let end_io = Workers::builder("api-endio")
        .min_threads(4)
        .max_threads(4)
        .busy_threshold(1)
        .build()
        .unwrap();
    SubmitQueue::new(
        Arc::new(MemDevice::new(1 << 20)),
        end_io,
        QueueConfig::default(),
    )
    .unwrap()
}

/// A write whose completion takes a while, then counts itself; a gap after each, so
/// none merge and each completes in a job of its own.
fn slow_write(i: u64, done: &Arc<AtomicUsize>) -> Bio {
    let done = Arc::clone(done);
    Bio::write(i * 8192, vec![1u8; 4096], move |r| {
        r.result.unwrap();
        std::thread::sleep(Duration::from_millis(20));
        done.fetch_add(1, Ordering::SeqCst);
    })
}

/// `flush` only promised durability: callbacks still sleeping on the end-I/O pool had
/// not run when it returned. `flush_and_wait` must return after every callback did.
#[test]
fn flush_and_wait_returns_after_every_completion_callback() {
    let q = pooled_queue();
    let done = Arc::new(AtomicUsize::new(0));
    for i in 0..8 {
        q.submit(slow_write(i, &done));
    }
    q.flush_and_wait().unwrap();
    assert_eq!(done.load(Ordering::SeqCst), 8);
}

#[test]
fn wait_completions_alone_waits_for_the_callbacks() {
    let q = pooled_queue();
    let done = Arc::new(AtomicUsize::new(0));
    for i in 0..6 {
        q.submit(slow_write(i, &done));
    }
    q.wait_completions();
    assert_eq!(done.load(Ordering::SeqCst), 6);
    // Nothing outstanding: returns at once, and again.
    q.wait_completions();
    q.wait_completions();
}

#[test]
fn submit_wait_returns_the_error_after_the_callback_ran() {
    let q = pooled_queue();
    let ran = Arc::new(AtomicUsize::new(0));
    let r = Arc::clone(&ran);
    let err = q
        .submit_wait(Bio::write(1 << 20, vec![0u8; 4096], move |res| {
            assert!(res.result.is_err());
            std::thread::sleep(Duration::from_millis(10));
            r.fetch_add(1, Ordering::SeqCst);
        }))
        .unwrap_err();
    assert!(matches!(err, Error::OutOfRange { .. }), "{err}");
    assert_eq!(err.device(), "mem");
    assert_eq!(ran.load(Ordering::SeqCst), 1, "the callback ran first");
    q.submit_wait(Bio::write(0, vec![2u8; 4096], |_| {}))
        .unwrap();
}

#[test]
fn a_group_waits_for_its_bios_only_and_keeps_the_first_failure() {
    let q = pooled_queue();
    let done = Arc::new(AtomicUsize::new(0));
    let group = BioGroup::new();
    for i in 0..5 {
        q.submit(group.add(slow_write(i, &done)));
    }
    group.wait().unwrap();
    assert_eq!(done.load(Ordering::SeqCst), 5);
    assert_eq!((group.added(), group.pending(), group.failed()), (5, 0, 0));

    // A bio dropped unsubmitted completes (cancelled): the group does not hang on it.
    let dropped = group.add(Bio::read(0, vec![0u8; 512], |_| {}));
    drop(dropped);
    let err = group.wait().unwrap_err();
    match err {
        Error::Cancelled { device, .. } => assert_eq!(device, stack_bio::NOT_QUEUED),
        other => panic!("{other}"),
    }
    assert_eq!(group.failed(), 1);
}

/// A bio submitted after `shutdown` is cancelled with the queue's device name, and
/// `submit_wait` returns that error rather than hanging.
#[test]
fn cancelled_bios_name_the_device() {
    let q = SubmitQueue::new(
        Arc::new(MemDevice::new(1 << 20).named("disk7")),
        InlineEndIo,
        QueueConfig::default(),
    )
    .unwrap();
    q.shutdown();
    let err = q
        .submit_wait(Bio::write(0, vec![0u8; 512], |_| {}))
        .unwrap_err();
    match err {
        Error::Cancelled { device, .. } => assert_eq!(device, "disk7"),
        other => panic!("{other}"),
    }
}

#[test]
fn info_says_what_the_queue_runs_on() {
    let dev = Arc::new(MemDevice::new(1 << 20));
    let q = SubmitQueue::new(dev.clone(), InlineEndIo, QueueConfig::default()).unwrap();
    let info = q.info();
    assert_eq!(info.engine, Engine::Threads);
    assert_eq!(info.device, "mem");
    assert!(info.depth >= 1, "the 0 default is resolved");
    assert_eq!(info.submitter_threads, info.depth);
    assert_eq!(info.config.submitters, info.depth);
    let q = SubmitQueue::new(dev, InlineEndIo, QueueConfig::default().with_submitters(1)).unwrap();
    assert_eq!((q.info().submitter_threads, q.info().depth), (1, 1));
}

/// A bad config used to panic inside `try_new` (an `assert!`); now every one is an
/// `Error::Config` naming the field.
#[test]
fn a_bad_config_is_an_error_naming_the_field_not_a_panic() {
    let dev = Arc::new(MemDevice::new(1 << 20));
    let cases = [
        (QueueConfig::default().with_max_io_bytes(0), "max_io_bytes"),
        (
            QueueConfig::default()
                .with_max_io_bytes(1 << 20)
                .with_max_in_flight_bytes(4096),
            "max_in_flight_bytes",
        ),
        (
            QueueConfig::default().with_stream_budget_bytes(0),
            "stream_budget_bytes",
        ),
        (
            QueueConfig::default().with_submitters(MAX_QUEUE_DEPTH + 1),
            "submitters",
        ),
    ];
    for (config, want) in cases {
        match SubmitQueue::new(dev.clone(), InlineEndIo, config) {
            Err(Error::Config { field, device, .. }) => {
                assert_eq!(field, want);
                assert_eq!(device, "mem");
            }
            other => panic!("{want}: {other:?}"),
        }
    }
}

/// An io_uring queue reports one engine thread and its ring depth; where the kernel
/// refuses io_uring the error says so through `is_unsupported` (and the test is
/// skipped).
#[test]
fn info_reports_the_io_uring_engine_or_the_refusal_is_unsupported() {
    let dir = tempfile::tempdir().unwrap();
    let opts = OpenOptions::new().create_size_bytes(1 << 20);
    let dev = Arc::new(FileDevice::open(&dir.path().join("dev.img"), &opts).unwrap());
    let config = QueueConfig::default().with_io_uring(true);
    let q = match SubmitQueue::new(dev, InlineEndIo, config) {
        Ok(q) => q,
        Err(e) => {
            assert!(e.is_unsupported() || e.raw_os_error().is_some(), "{e}");
            eprintln!("skipped: io_uring is not available here: {e}");
            return;
        }
    };
    let info = q.info();
    assert_eq!(info.engine, Engine::IoUring);
    assert_eq!(info.submitter_threads, 1);
    assert_eq!(info.depth, DEFAULT_URING_DEPTH);
    q.submit_wait(Bio::write(0, vec![3u8; 4096], |_| {}))
        .unwrap();
    q.flush_and_wait().unwrap();
}
