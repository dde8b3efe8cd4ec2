//! Appending writers on streams, frees that stay busy until their generation commits,
//! a persisted free-space image, and batched allocations through `AllocQueue`.
//!
//! ```text
//! cargo run --release -p stack-alloc --example allocate -- [--mib 256] [--writers 4]
//! ```
//!
//! Each of `--writers` threads appends `--mib` MiB in 64 KiB pieces (16 blocks of 4
//! KiB) to its own `Stream` on a 1 GiB-per-writer volume; the example checks that no
//! two pieces overlap and prints how few separate runs each stream took. It then frees
//! every other piece in generation 1, shows those blocks busy until `commit(1)`, saves
//! and restores the free space, and allocates a batch on the rescuer-backed queue.

use stack_alloc::{AllocQueue, AllocRequest, Allocator, Extent};

const BLOCK: u64 = 4096;
const PIECE_BLOCKS: u64 = 16;

fn parse() -> Result<(u64, u64), String> {
    let (mut mib, mut writers) = (256, 4);
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let value = it.next().ok_or(format!("{arg} needs a number"))?;
        let n: u64 = value
            .parse()
            .map_err(|_| format!("{arg}: '{value}' is not a number"))?;
        match arg.as_str() {
            "--mib" => mib = n,
            "--writers" => writers = n,
            other => return Err(format!("unknown argument '{other}'")),
        }
    }
    if mib == 0 || mib > 1024 || writers == 0 || writers > 64 {
        return Err("--mib takes 1..=1024 and --writers 1..=64".into());
    }
    Ok((mib, writers))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (mib, writers) = parse().inspect_err(|_| {
        eprintln!("usage: allocate [--mib N] [--writers W]");
    })?;
    let total_blocks = writers * (1 << 30) / BLOCK;
    // Allocation groups of 128 MiB: each has its own lock.
    let alloc = Allocator::new(total_blocks, (128 << 20) / BLOCK)?;
    let pieces_per_writer = (mib << 20) / BLOCK / PIECE_BLOCKS;

    // Appending writers, one stream each (an `Allocator` is a cheap `Clone` handle).
    let per_writer: Vec<(Vec<Extent>, u64)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..writers)
            .map(|_| {
                let mut stream = alloc.stream();
                s.spawn(move || {
                    let pieces: Vec<Extent> = (0..pieces_per_writer)
                        .map(|_| stream.alloc(PIECE_BLOCKS, PIECE_BLOCKS))
                        .collect::<Result<_, _>>()?;
                    Ok::<_, stack_alloc::Error>((pieces, stream.runs()))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("writer thread"))
            .collect::<Result<_, _>>()
    })?;
    let mut all: Vec<Extent> = per_writer.iter().flat_map(|(p, _)| p.clone()).collect();
    all.sort_by_key(|e| e.start);
    if let Some(w) = all.windows(2).find(|w| w[0].end() > w[1].start) {
        return Err(format!("{:?} and {:?} overlap", w[0], w[1]).into());
    }
    let runs: Vec<u64> = per_writer.iter().map(|(_, runs)| *runs).collect();
    println!(
        "{writers} writers x {mib} MiB in {} pieces of {} KiB: runs per stream {runs:?}",
        all.len(),
        PIECE_BLOCKS * BLOCK / 1024,
    );

    // Frees stay busy until the generation that frees them commits.
    let free_before = alloc.free_blocks();
    let freed: Vec<Extent> = all.iter().copied().step_by(2).collect();
    for &e in &freed {
        alloc.free(e, 1)?;
    }
    let freed_blocks: u64 = freed.iter().map(|e| e.len).sum();
    assert_eq!(alloc.busy_blocks(), freed_blocks);
    assert!(alloc
        .alloc(&AllocRequest::exact(freed[0].start, 1, 1))
        .is_err());
    alloc.commit(1);
    assert_eq!(alloc.busy_blocks(), 0);
    assert_eq!(alloc.free_blocks(), free_before + freed_blocks);

    // Persist the free space and restore it.
    let image = alloc.encode();
    let restored = Allocator::decode(&image)?;
    assert_eq!(restored.free_extents(), alloc.free_extents());
    println!(
        "freed {} pieces in generation 1: busy until commit, then free; free-space image {} bytes",
        freed.len(),
        image.len()
    );

    // Batched allocations on the rescuer-backed queue, in request order.
    let queue = AllocQueue::new(restored)?;
    let reqs: Vec<AllocRequest> = (0..64)
        .map(|i| AllocRequest::near(i * 1000, PIECE_BLOCKS, 4 * PIECE_BLOCKS))
        .collect();
    let got = queue
        .alloc_batch(reqs)?
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    assert_eq!(got.len(), 64);
    queue.allocator().check()?;
    queue.shutdown();
    println!("64 near allocations in one hand-off; allocator consistent: ok");
    Ok(())
}
