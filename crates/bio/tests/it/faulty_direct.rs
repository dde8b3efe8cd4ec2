//! `FaultyDevice` over an `O_DIRECT` `FileDevice`: direct calls and queued bios.

use stack_bio::{
    AlignedBuf, Bio, BioResult, CrashMode, Device, FaultyDevice, FileDevice, InlineEndIo, Op,
    OpenOptions, QueueConfig, SubmitQueue,
};
use std::sync::mpsc;
use std::sync::Arc;

const SIZE: u64 = 1 << 20;

/// `FaultyDevice::readv_at`, `writev_at` and `write_at` copied through an unaligned
/// `Vec`, so over an `O_DIRECT` `FileDevice` every merged queue I/O (and every direct
/// vectored call or plain write) failed with `Error::Misaligned` on the buffer address.
/// They now bounce through buffers aligned to the inner device's logical block size.
#[test]
fn faulty_device_over_o_direct_serves_direct_calls_and_the_queue() {
    // Not tmpfs: it refuses O_DIRECT, and the crate dir is on the build disk.
    let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
    let opts = OpenOptions::default().direct(true).create_size_bytes(SIZE);
    let file = match FileDevice::open(&dir.path().join("direct.img"), &opts) {
        Ok(file) => file,
        Err(err) => {
            eprintln!("skipping: this filesystem refuses O_DIRECT: {err}");
            return;
        }
    };
    assert!(file.info().direct);
    let block = file.logical_block_size() as usize;
    let dev = Arc::new(
        FaultyDevice::new(Arc::new(file))
            .with_crash_model()
            .unwrap(),
    );
    let pattern = |seed: usize, len: usize| -> Vec<u8> {
        (0..len).map(|i| (i * 7 + seed * 13) as u8).collect()
    };

    // Direct calls, with the caller's buffers aligned as O_DIRECT asks.
    let a = AlignedBuf::from_slice(&pattern(1, block), block);
    let b = AlignedBuf::from_slice(&pattern(2, 2 * block), block);
    dev.write_at(&a, 0).unwrap();
    dev.writev_at(&[&a, &b], block as u64).unwrap();
    let mut x = AlignedBuf::new(block, block);
    let mut y = AlignedBuf::new(2 * block, block);
    dev.readv_at(&mut [&mut x, &mut y], block as u64).unwrap();
    assert_eq!(&x[..], &a[..]);
    assert_eq!(&y[..], &b[..]);
    let mut whole = AlignedBuf::new(block, block);
    dev.read_at(&mut whole, 0).unwrap();
    assert_eq!(&whole[..], &a[..]);
    dev.flush().unwrap();
    assert_eq!(dev.writes_issued(), 2);

    // Queued bios: contiguous ones merge into vectored I/Os.
    let q = SubmitQueue::new(dev.clone(), InlineEndIo, QueueConfig::default()).unwrap();
    let (tx, rx) = mpsc::channel::<BioResult>();
    let base = 16 * block as u64;
    let bios = 32usize;
    for i in 0..bios {
        let tx = tx.clone();
        let buf = AlignedBuf::from_slice(&pattern(i, block), block);
        let offset = base + (i * block) as u64;
        q.submit(Bio::write(offset, buf, move |r| drop(tx.send(r))));
    }
    q.flush().unwrap();
    for i in 0..bios {
        let tx = tx.clone();
        let offset = base + (i * block) as u64;
        q.submit(Bio::read(offset, AlignedBuf::new(block, block), move |r| {
            drop(tx.send(r))
        }));
    }
    q.flush().unwrap();
    drop(tx);
    let mut reads = 0;
    for r in rx.iter().take(2 * bios) {
        if let Err(err) = &r.result {
            panic!("{:?} at {} failed: {err}", r.op, r.offset);
        }
        if r.op == Op::Read {
            let i = ((r.offset - base) / block as u64) as usize;
            assert_eq!(&r.buf.unwrap()[..], &pattern(i, block)[..], "block {i}");
            reads += 1;
        }
    }
    assert_eq!(reads, bios);
    let stats = q.stats();
    assert!(stats.ios < stats.bios, "bios were merged: {stats:?}");
    drop(q);

    // The crash model saw the queued writes land and flushed.
    let image = dev.crash_image(CrashMode::LoseUnflushed);
    let mut back = vec![0u8; block];
    image.read_at(&mut back, base).unwrap();
    assert_eq!(back, pattern(0, block));
}
