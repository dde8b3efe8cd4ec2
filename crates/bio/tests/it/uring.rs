//! The io_uring engine (`QueueConfig::io_uring`): the same results and rules as the
//! threads, on real files. Skipped, with the reason printed, where the kernel refuses
//! io_uring (a seccomp filter, `kernel.io_uring_disabled`).

use stack_bio::{
    AlignedBuf, Bio, BioResult, Device, Error, FileDevice, InlineEndIo, MemDevice, OpenOptions,
    QueueConfig, SubmitQueue,
};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::concurrent::{hand_off_stress_on, stress_config, STRESS_DEVICE_BYTES};
use crate::stamped::{Stamped, BLOCK_BYTES};

/// A file of `size` bytes in a fresh directory (kept alive by the returned guard).
fn file_device(size: u64, direct: bool) -> (tempfile::TempDir, Arc<FileDevice>) {
    let dir = tempfile::tempdir().unwrap();
    let opts = OpenOptions::default()
        .direct(direct)
        .create_size_bytes(size);
    let dev = FileDevice::open(&dir.path().join("dev.img"), &opts).unwrap();
    (dir, Arc::new(dev))
}

/// An io_uring queue on `dev` with `depth` I/Os in flight, or `None` (reason printed)
/// when this kernel refuses io_uring.
fn uring_queue(dev: Arc<dyn Device>, depth: usize, max_io_bytes: usize) -> Option<SubmitQueue> {
    let config = QueueConfig::default()
        .with_io_uring(true)
        .with_submitters(depth)
        .with_max_io_bytes(max_io_bytes);
    match SubmitQueue::new(dev, InlineEndIo, config) {
        Ok(q) => Some(q),
        Err(e @ Error::UringUnsupported { .. }) => panic!("{e}"),
        Err(e) => {
            eprintln!("skipped: io_uring is not available here: {e}");
            None
        }
    }
}

fn read_all(dev: &FileDevice) -> Vec<u8> {
    let mut image = vec![0u8; dev.size_bytes() as usize];
    dev.read_at(&mut image, 0).unwrap();
    image
}

#[test]
fn uring_writes_merge_and_land_byte_exact_then_read_back() {
    let (_dir, dev) = file_device(8 << 20, false);
    let Some(q) = uring_queue(dev.clone(), 4, 256 << 10) else {
        return;
    };
    let done = Arc::new(AtomicUsize::new(0));
    let mut want = vec![0u8; 8 << 20];
    // 2048 bios of 4 KiB, in order: merged into 256 KiB I/Os, several in the ring.
    for (i, chunk) in want.chunks_mut(BLOCK_BYTES).enumerate() {
        chunk.fill((i % 251) as u8);
        chunk[..8].copy_from_slice(&(i as u64).to_le_bytes());
        let d = Arc::clone(&done);
        q.submit(Bio::write(
            (i * BLOCK_BYTES) as u64,
            chunk.to_vec(),
            move |r| {
                r.result.unwrap();
                d.fetch_add(1, Ordering::SeqCst);
            },
        ));
    }
    q.flush().unwrap();
    assert_eq!(done.load(Ordering::SeqCst), 2048);
    let stats = q.stats();
    assert_eq!(stats.bios, 2048);
    assert!(stats.mean_io_bytes >= 128.0 * 1024.0, "{stats:?}");
    assert!(stats.in_flight_ios_peak <= 4, "{stats:?}");
    assert!(
        read_all(&dev) == want,
        "the file differs from what was written"
    );

    // Reads through the ring fill every buffer.
    let back = Arc::new(Mutex::new(vec![Vec::new(); 64]));
    for i in 0..64usize {
        let b = Arc::clone(&back);
        q.submit(Bio::read((i << 17) as u64, vec![0u8; 1 << 17], move |r| {
            r.result.unwrap();
            b.lock().unwrap()[i] = r.buf.unwrap().to_vec();
        }));
    }
    q.flush().unwrap();
    let back = back.lock().unwrap().concat();
    assert!(back == want, "reads through the ring differ");
}

#[test]
fn uring_keeps_order_within_each_stream_under_many_writers() {
    let w = Stamped {
        threads: 8,
        per_thread: 400,
        slots: 16,
    };
    let (_dir, dev) = file_device(w.device_bytes(), false);
    let Some(q) = uring_queue(dev.clone(), 8, 64 << 10) else {
        return;
    };
    w.submit(&q, |r| r.result.unwrap());
    q.flush().unwrap();
    w.assert_newest(&read_all(&dev));
}

#[test]
fn uring_direct_io_and_its_errors_complete_exactly_once() {
    let (_dir, dev) = file_device(4 << 20, true);
    let Some(q) = uring_queue(dev.clone(), 4, 1 << 20) else {
        return;
    };
    let fired = Arc::new(AtomicUsize::new(0));
    let results = Arc::new(Mutex::new(Vec::new()));
    let record = |tag: &'static str| {
        let (f, r) = (Arc::clone(&fired), Arc::clone(&results));
        move |res: BioResult| {
            f.fetch_add(1, Ordering::SeqCst);
            r.lock()
                .unwrap()
                .push((tag, res.result.map_err(|e| e.to_string())));
        }
    };
    let mut data = AlignedBuf::new(64 << 10, 4096);
    data.fill(0x5a);
    q.submit(Bio::write(0, data.clone(), record("aligned")));
    // Misaligned for O_DIRECT: refused by the device's checks, with what was wrong.
    q.submit(Bio::write(1000, data.clone(), record("misaligned")));
    // Past the end of the device.
    q.submit(Bio::write(4 << 20, data, record("past end")));
    q.flush().unwrap();
    drop(q);
    assert_eq!(fired.load(Ordering::SeqCst), 3);
    let results = results.lock().unwrap();
    let of = |tag| &results.iter().find(|(t, _)| *t == tag).unwrap().1;
    assert_eq!(of("aligned"), &Ok(()));
    let misaligned = of("misaligned").as_ref().unwrap_err();
    assert!(misaligned.contains("offset 0x3e8"), "{misaligned}");
    assert!(of("past end").is_err());
    let mut back = AlignedBuf::new(64 << 10, 4096);
    dev.read_at(&mut back, 0).unwrap();
    assert!(back.iter().all(|&b| b == 0x5a));
}

#[test]
fn uring_needs_a_file_device() {
    let dev: Arc<dyn Device> = Arc::new(MemDevice::new(1 << 20));
    let config = QueueConfig::default().with_io_uring(true);
    let err = SubmitQueue::new(dev, InlineEndIo, config).unwrap_err();
    assert!(matches!(err, Error::UringUnsupported { .. }), "{err}");
    assert!(err.is_unsupported());
    assert!(err.to_string().contains("FileDevice"), "{err}");
}

#[test]
fn uring_shutdown_cancels_later_bios_and_loses_none_before() {
    let (_dir, dev) = file_device(1 << 20, false);
    let Some(q) = uring_queue(dev, 4, 64 << 10) else {
        return;
    };
    let ok = Arc::new(AtomicUsize::new(0));
    for i in 0..64u64 {
        let ok = Arc::clone(&ok);
        q.submit(Bio::write(i * 4096, vec![1u8; 4096], move |r| {
            r.result.unwrap();
            ok.fetch_add(1, Ordering::SeqCst);
        }));
    }
    q.shutdown();
    assert_eq!(ok.load(Ordering::SeqCst), 64);
    let cancelled = Arc::new(Mutex::new(None));
    let c = Arc::clone(&cancelled);
    q.submit(Bio::write(0, vec![2u8; 4096], move |r| {
        *c.lock().unwrap() = Some(r.result);
    }));
    assert!(matches!(
        cancelled.lock().unwrap().take(),
        Some(Err(Error::Cancelled { .. }))
    ));
}

#[test]
fn uring_holds_an_overwrite_back_until_the_earlier_write_is_done() {
    // O_DIRECT writes really are in flight together, so two overwrites of one block in
    // the ring at once could land in either order: the second must wait for the first.
    let (_dir, dev) = file_device(1 << 20, true);
    let Some(q) = uring_queue(dev.clone(), 4, 1 << 20) else {
        return;
    };
    let writes = 200u32;
    for i in 0..writes {
        let mut buf = AlignedBuf::new(BLOCK_BYTES, 4096);
        buf.fill((i % 251) as u8);
        buf[..4].copy_from_slice(&i.to_le_bytes());
        q.submit(Bio::write(0, buf, |r| r.result.unwrap()));
    }
    q.flush().unwrap();
    let stats = q.stats();
    assert!(
        stats.overlap_waits > 0,
        "no overwrite was held back: {stats:?}"
    );
    let mut back = AlignedBuf::new(BLOCK_BYTES, 4096);
    dev.read_at(&mut back, 0).unwrap();
    let last = u32::from_le_bytes(back[..4].try_into().unwrap());
    assert_eq!(last, writes - 1, "an earlier overwrite landed last");
}

#[test]
fn uring_hand_off_stress() {
    // The threads' stress (random sizes, streams, sync bios, flushes) through the ring.
    for depth in [1, 2, 4] {
        let (_dir, dev) = file_device(STRESS_DEVICE_BYTES, false);
        let config = stress_config().with_io_uring(true).with_submitters(depth);
        if let Err(e) = SubmitQueue::new(dev.clone(), InlineEndIo, config.clone()) {
            eprintln!("skipped: io_uring is not available here: {e}");
            return;
        }
        hand_off_stress_on(dev.clone(), config, || read_all(&dev));
    }
}
