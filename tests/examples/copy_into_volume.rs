//! All four `stack` crates together: copy a file into a volume file and read it back.
//!
//! ```text
//! cargo run --release -p stack-tests --example copy_into_volume -- [--mib 64] [--dir DIR] [--buffered] [--uring]
//! ```
//!
//! 1. Writes a source file of `--mib` MiB of pseudo-random bytes into `DIR` (a fresh
//!    temporary directory by default) and creates a volume file beside it.
//! 2. Opens the volume file as a `stack_bio::FileDevice` with `O_DIRECT`, falling back to
//!    the page cache where the filesystem refuses it (tmpfs), unless `--buffered`.
//! 3. Takes the extents for the copy from a `stack_alloc::AllocQueue`.
//! 4. Reads the source in 256 KiB chunks; a `stack_async_thread::Workers` pool computes
//!    the CRC32C of each 4 KiB block (`stack_csum::BlockCsum`, bound to its volume
//!    address) in an `Ordered` stream, whose in-order half submits the write to a
//!    `stack_bio::SubmitQueue` and keeps the checksums.
//! 5. Reads every chunk back through the queue; the end-I/O workers verify the blocks
//!    against their checksums as the reads complete.
//! 6. Flips one byte of the volume file behind the queue's back and shows that the
//!    read-back check names exactly that block.
//!
//! Exits non-zero if anything fails to verify. The test suite runs it at 8 MiB
//! (`tests/e2e/examples.rs`).

use stack_alloc::{AllocQueue, AllocRequest, Allocator, Extent};
use stack_async_thread::Workers;
use stack_bio::{
    AlignedBuf, Bio, Device, Error as BioError, FileDevice, OpenOptions, QueueConfig, SubmitQueue,
};
use stack_csum::{Algorithm, BlockCsum};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

const BLOCK: usize = 4096;
/// Blocks per chunk: one bio, one checksum work item.
const CHUNK_BLOCKS: usize = 64;
const CHUNK: usize = CHUNK_BLOCKS * BLOCK;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

struct Args {
    mib: usize,
    dir: Option<PathBuf>,
    buffered: bool,
    uring: bool,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        mib: 64,
        dir: None,
        buffered: false,
        uring: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--mib" => {
                let v = it.next().ok_or("--mib needs a number")?;
                args.mib = v
                    .parse()
                    .map_err(|_| format!("--mib: '{v}' is not a number"))?;
            }
            "--dir" => args.dir = Some(it.next().ok_or("--dir needs a directory")?.into()),
            "--buffered" => args.buffered = true,
            "--uring" => args.uring = true,
            other => return Err(format!("unknown argument '{other}'")),
        }
    }
    if args.mib == 0 {
        return Err("--mib must be at least 1".into());
    }
    Ok(args)
}

/// Deterministic bytes that differ block to block (xorshift).
fn fill(buf: &mut [u8], mut state: u64) {
    for chunk in buf.chunks_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
    }
}

/// Where chunk `i` of the copy lives: its first block on the volume.
fn chunk_addrs(extents: &[Extent]) -> Vec<u64> {
    extents
        .iter()
        .flat_map(|e| {
            (0..e.len / CHUNK_BLOCKS as u64).map(move |k| e.start + k * CHUNK_BLOCKS as u64)
        })
        .collect()
}

fn run(args: &Args) -> Result<(), BoxError> {
    let scratch = match &args.dir {
        Some(dir) => tempfile::tempdir_in(dir)?,
        None => tempfile::tempdir()?,
    };
    let bytes = args.mib << 20;
    let chunks = bytes / CHUNK;

    // 1. The source file, and a volume file with room for it and some more.
    let source = scratch.path().join("source");
    {
        let mut f = std::fs::File::create(&source)?;
        let mut chunk = vec![0u8; CHUNK];
        for i in 0..chunks {
            fill(&mut chunk, 0x9e37_79b9_7f4a_7c15 ^ i as u64);
            f.write_all(&chunk)?;
        }
    }
    let volume_bytes = (bytes + bytes / 4 + (4 << 20)) as u64;
    let volume = scratch.path().join("volume");

    // 2. The device: O_DIRECT where the filesystem takes it.
    let open = |direct| {
        let opts = OpenOptions::new()
            .direct(direct)
            .create_size_bytes(volume_bytes);
        FileDevice::open(&volume, &opts)
    };
    let device = match open(!args.buffered) {
        Err(BioError::DirectRefused { .. }) => open(false)?,
        other => other?,
    };
    let direct = device.info().direct;
    let device: Arc<dyn Device> = Arc::new(device);
    let end_io = Workers::builder("copy-end-io").max_threads(2).build()?;
    let config = QueueConfig::default().with_io_uring(args.uring);
    let queue = SubmitQueue::new(Arc::clone(&device), end_io.clone(), config)?;

    // 3. Extents: whole chunks, as long as the allocator gives them. Block 0 is kept
    //    back, as a volume keeps its superblock there.
    let allocator = Allocator::new(volume_bytes / BLOCK as u64, 1 << 10)?;
    allocator.mark_used(Extent::new(0, 1))?;
    let alloc = AllocQueue::new(allocator)?;
    let mut extents = Vec::new();
    let mut left = chunks as u64;
    while left > 0 {
        let req = AllocRequest::any(CHUNK_BLOCKS as u64)
            .with_len(CHUNK_BLOCKS as u64, left * CHUNK_BLOCKS as u64)
            .with_align(CHUNK_BLOCKS as u64);
        let e = alloc.alloc(req)?;
        // Keep whole chunks only; a tail shorter than a chunk goes back.
        let whole = e.len / CHUNK_BLOCKS as u64 * CHUNK_BLOCKS as u64;
        left -= whole / CHUNK_BLOCKS as u64;
        extents.push(Extent::new(e.start, whole));
    }
    let addrs = chunk_addrs(&extents);
    assert_eq!(addrs.len(), chunks);

    // 4. Copy: checksums on a CPU pool in an Ordered stream, writes through the queue.
    //    CPU-bound items: a low busy threshold lets the pool start its second thread.
    let csum_pool = Workers::builder("copy-csum")
        .max_threads(2)
        .busy_threshold(2)
        .build()?;
    let csum = BlockCsum::new(Algorithm::Crc32c, 0x5eed, BLOCK)?;
    let sums = Arc::new(Mutex::new(vec![0u64; chunks * CHUNK_BLOCKS]));
    let write_errors = Arc::new(AtomicU64::new(0));
    let queue = Arc::new(queue);
    let start = Instant::now();
    {
        let stream = csum_pool.ordered();
        let mut f = std::fs::File::open(&source)?;
        for (i, &addr) in addrs.iter().enumerate() {
            let mut buf = AlignedBuf::new(CHUNK, BLOCK);
            f.read_exact(&mut buf[..])?;
            let (queue, sums, write_errors) = (queue.clone(), sums.clone(), write_errors.clone());
            stream.queue(
                move || {
                    let mut chunk_sums = [0u64; CHUNK_BLOCKS];
                    csum.compute(addr, &buf, &mut chunk_sums)
                        .map(|()| (buf, chunk_sums))
                },
                move |done| {
                    let (buf, chunk_sums) = done.expect("whole blocks, one checksum each");
                    sums.lock().unwrap()[i * CHUNK_BLOCKS..(i + 1) * CHUNK_BLOCKS]
                        .copy_from_slice(&chunk_sums);
                    queue.submit(Bio::write(addr * BLOCK as u64, buf, move |r| {
                        if let Err(e) = r.result {
                            eprintln!("copy_into_volume: write failed: {e}");
                            write_errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }));
                },
            )?;
        }
        stream.flush();
    }
    // Durable, and every completion callback has run (on the end-I/O pool).
    queue.flush_and_wait()?;
    let write_ms = start.elapsed().as_millis();
    let written = queue.stats();
    if write_errors.load(Ordering::Relaxed) > 0 {
        return Err("some writes failed".into());
    }

    // 5. Read back, verifying on the end-I/O workers.
    let read_back = |addrs: &[(usize, u64)]| -> Result<Vec<u64>, BoxError> {
        let bad_blocks = Arc::new(Mutex::new(Vec::new()));
        for &(i, addr) in addrs {
            let expected: Vec<u64> =
                sums.lock().unwrap()[i * CHUNK_BLOCKS..(i + 1) * CHUNK_BLOCKS].to_vec();
            let bad_blocks = bad_blocks.clone();
            let buf = AlignedBuf::new(CHUNK, BLOCK);
            queue.submit(Bio::read(addr * BLOCK as u64, buf, move |r| {
                let mut mismatches = Vec::new();
                match (r.result, r.buf) {
                    (Ok(()), Some(buf)) => {
                        csum.verify(addr, &buf, &expected, &mut mismatches)
                            .expect("whole blocks, one checksum each");
                    }
                    (result, _) => {
                        eprintln!("copy_into_volume: read of chunk {i} failed: {result:?}");
                        bad_blocks.lock().unwrap().push(addr);
                    }
                }
                bad_blocks
                    .lock()
                    .unwrap()
                    .extend(mismatches.iter().map(|m| m.addr));
            }));
        }
        queue.flush()?;
        end_io.flush();
        let mut bad = std::mem::take(&mut *bad_blocks.lock().unwrap());
        bad.sort_unstable();
        Ok(bad)
    };
    let start = Instant::now();
    let all: Vec<(usize, u64)> = addrs.iter().copied().enumerate().collect();
    let bad = read_back(&all)?;
    let read_ms = start.elapsed().as_millis();
    if !bad.is_empty() {
        return Err(format!("{} blocks failed verification: {bad:?}", bad.len()).into());
    }
    println!(
        "copied {} MiB into {} extents ({}; {}): {} bios in {} I/Os, write {write_ms} ms, read and verify {read_ms} ms",
        args.mib,
        extents.len(),
        if direct { "O_DIRECT" } else { "page cache" },
        if args.uring { "io_uring" } else { "submitter threads" },
        written.bios,
        written.ios,
    );

    // 6. One flipped byte in the middle of the copy is found, and only that block.
    let (i, addr) = all[all.len() / 2];
    let victim = addr + 5;
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&volume)?;
        let mut byte = [0u8; 1];
        let at = victim * BLOCK as u64 + 100;
        f.read_exact_at(&mut byte, at)?;
        f.write_all_at(&[byte[0] ^ 0x40], at)?;
        f.sync_all()?;
    }
    let bad = read_back(&[(i, addr)])?;
    if bad != [victim] {
        return Err(format!("the flipped byte in block {victim} was reported as {bad:?}").into());
    }
    println!("a flipped byte in block {victim} was caught: ok");

    queue.shutdown();
    csum_pool.shutdown();
    end_io.shutdown();
    alloc.shutdown();
    Ok(())
}

fn main() {
    let args = match parse() {
        Ok(args) => args,
        Err(why) => {
            eprintln!("copy_into_volume: {why}");
            eprintln!("usage: copy_into_volume [--mib N] [--dir DIR] [--buffered] [--uring]");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&args) {
        eprintln!("copy_into_volume: {e}");
        std::process::exit(1);
    }
}
