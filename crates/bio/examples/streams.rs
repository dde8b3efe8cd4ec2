//! Many appending writers through one `SubmitQueue`: what the device is handed.
//!
//! Each of `--threads` writers appends 64 KiB bios to its own region of `FILE` (its own
//! stream, as `with_stream` tags it); the queue merges and orders them. Prints the
//! sequential share of the issued I/Os, their mean size and the write rate, so the
//! effect of a queue setting on the order a disk sees can be tried on a real device.
//!
//! ```text
//! cargo run --release -p stack-bio --example streams -- FILE [--threads 16] [--mib 64]
//!     [--direct] [--uring] [--runs 1] [--overwrite]
//! ```
//!
//! A missing `FILE` is created and removed afterwards. An existing one (a regular file
//! or a block device, such as a loop device) is written over, so it is refused unless
//! `--overwrite` says that is meant; it is never removed.

use stack_async_thread::Workers;
use stack_bio::{Bio, BufferPool, Device, FileDevice, OpenOptions, QueueConfig, SubmitQueue};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

const BIO_BYTES: usize = 64 << 10;

struct Args {
    path: PathBuf,
    threads: usize,
    mib: u64,
    direct: bool,
    uring: bool,
    runs: usize,
    overwrite: bool,
}

fn parse() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut args = Args {
        path: PathBuf::new(),
        threads: 16,
        mib: 64,
        direct: false,
        uring: false,
        runs: 1,
        overwrite: false,
    };
    let number = |flag: &str, v: Option<String>| -> Result<u64, String> {
        let v = v.ok_or(format!("{flag} needs a number"))?;
        v.parse()
            .map_err(|_| format!("{flag}: '{v}' is not a whole number"))
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--threads" => args.threads = number("--threads", it.next())? as usize,
            "--mib" => args.mib = number("--mib", it.next())?,
            "--runs" => args.runs = number("--runs", it.next())? as usize,
            "--direct" => args.direct = true,
            "--uring" => args.uring = true,
            "--overwrite" => args.overwrite = true,
            flag if flag.starts_with("--") => return Err(format!("unknown option {flag}")),
            path if args.path.as_os_str().is_empty() => args.path = PathBuf::from(path),
            extra => return Err(format!("one FILE only, not also '{extra}'")),
        }
    }
    if args.path.as_os_str().is_empty() {
        return Err("which FILE? (it is overwritten)".to_owned());
    }
    if args.threads == 0 || args.mib == 0 || args.runs == 0 {
        return Err("--threads, --mib and --runs must be at least 1".to_owned());
    }
    Ok(args)
}

fn run(args: &Args, create: bool) -> Result<(), Box<dyn std::error::Error>> {
    let total_bytes = args.mib << 20;
    let opts = OpenOptions::new()
        .direct(args.direct)
        .create(create.then_some(total_bytes));
    let device: Arc<dyn Device> = Arc::new(FileDevice::open(&args.path, &opts)?);
    if device.size_bytes() < total_bytes {
        return Err(format!(
            "{} bytes, fewer than the {total_bytes} of --mib {}",
            device.size_bytes(),
            args.mib
        )
        .into());
    }
    let config = QueueConfig::default()
        .with_max_in_flight_bytes(16 << 20)
        .with_io_uring(args.uring);
    let end_io = Workers::builder("streams-endio")
        .min_threads(1)
        .max_threads(2)
        .build()?;
    let queue = SubmitQueue::new(device, end_io.clone(), config.clone())?;
    let pool = BufferPool::new(
        (config.max_in_flight_bytes as usize / BIO_BYTES) + 4 * args.threads,
        BIO_BYTES,
        4096,
    )?;
    let per_stream = total_bytes / BIO_BYTES as u64 / args.threads as u64;
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..args.threads as u64 {
            let (queue, pool) = (&queue, &pool);
            s.spawn(move || {
                for k in 0..per_stream {
                    let mut buf = pool.get();
                    buf.fill((t as u8) ^ (k as u8));
                    let offset = (t * per_stream + k) * BIO_BYTES as u64;
                    queue.submit(
                        Bio::write(offset, buf, move |r| {
                            if let Err(e) = r.result {
                                eprintln!("write failed: {e}");
                            }
                        })
                        .with_stream(t),
                    );
                }
            });
        }
    });
    queue.flush()?;
    let elapsed = start.elapsed().as_secs_f64();
    let stats = queue.stats();
    println!(
        "{} streams, {} MiB{}{}: sequential share {:.3}, {} I/Os of {:.0} KiB on average, {:.2} GB/s",
        args.threads,
        stats.bytes >> 20,
        if args.direct { ", O_DIRECT" } else { "" },
        if args.uring { ", io_uring" } else { "" },
        stats.sequential_share,
        stats.ios,
        stats.mean_io_bytes / 1024.0,
        stats.bytes as f64 / elapsed / 1e9,
    );
    Ok(())
}

fn main() {
    let args = match parse() {
        Ok(args) => args,
        Err(why) => {
            eprintln!("streams: {why}");
            eprintln!(
                "usage: streams FILE [--threads N] [--mib M] [--runs R] [--direct] [--uring] [--overwrite]"
            );
            std::process::exit(2);
        }
    };
    let create = match std::fs::symlink_metadata(&args.path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(e) => {
            eprintln!("streams: {}: {e}", args.path.display());
            std::process::exit(1);
        }
        Ok(_) if !args.overwrite => {
            eprintln!(
                "streams: {} exists and would be written over; add --overwrite if that is meant",
                args.path.display()
            );
            std::process::exit(2);
        }
        Ok(_) => false,
    };
    let mut failed = false;
    for _ in 0..args.runs {
        if let Err(e) = run(&args, create) {
            eprintln!("streams: {}: {e}", args.path.display());
            failed = true;
            break;
        }
    }
    if create {
        let _ = std::fs::remove_file(&args.path);
    }
    std::process::exit(i32::from(failed));
}
