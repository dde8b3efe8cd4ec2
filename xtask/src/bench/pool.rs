//! Benchmark group `pool`: `stack-async-thread` against `rayon::spawn` and a plain
//! crossbeam-channel pool with the same number of threads.
//!
//! Cases: `tiny` (ns per empty item), `csum64k` (GB/s of items that CRC32C 64 KiB),
//! `roundtrip` (queue-to-completion latency p50/p99), `blocking` (two items block
//! 200 ms while 100 tiny ones are queued: time until the tiny ones are done) and
//! `dependency` (items waiting on items queued after them; run in a child process
//! with a time-out, so a peer that deadlocks is reported as stuck).

use super::{alternate, median, quantile, Ctx, Row, Sense};
use anyhow::{bail, Context, Result};
use crossbeam_channel::{unbounded, Sender};
use stack_async_thread::{blocking, Completion, Workers};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

type Job = Box<dyn FnOnce() + Send>;

/// The peer: N threads pulling boxed closures from one unbounded crossbeam channel.
struct ChannelPool {
    tx: Option<Sender<Job>>,
    threads: Vec<JoinHandle<()>>,
}

impl ChannelPool {
    fn new(n: usize) -> Self {
        let (tx, rx) = unbounded::<Job>();
        let threads = (0..n)
            .map(|_| {
                let rx = rx.clone();
                std::thread::spawn(move || {
                    while let Ok(job) = rx.recv() {
                        job();
                    }
                })
            })
            .collect();
        Self {
            tx: Some(tx),
            threads,
        }
    }

    fn spawn(&self, f: impl FnOnce() + Send + 'static) {
        self.tx
            .as_ref()
            .expect("pool is open")
            .send(Box::new(f))
            .expect("workers alive");
    }
}

impl Drop for ChannelPool {
    fn drop(&mut self) {
        self.tx.take();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Counts items down and wakes the waiter at zero (the same for every side).
struct Latch {
    left: AtomicUsize,
    done: Mutex<bool>,
    cv: Condvar,
}

impl Latch {
    fn new(n: usize) -> Arc<Self> {
        Arc::new(Self {
            left: AtomicUsize::new(n),
            done: Mutex::new(n == 0),
            cv: Condvar::new(),
        })
    }

    fn hit(&self) {
        if self.left.fetch_sub(1, Ordering::AcqRel) == 1 {
            *self.done.lock().unwrap() = true;
            self.cv.notify_all();
        }
    }

    fn wait(&self) {
        let mut d = self.done.lock().unwrap();
        while !*d {
            d = self.cv.wait(d).unwrap();
        }
    }
}

fn threads() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from)
}

fn ours(n: usize) -> Result<Workers> {
    Ok(Workers::builder("bench")
        .min_threads(n)
        .max_threads(n)
        .build()?)
}

fn rayon_pool(n: usize) -> Result<rayon::ThreadPool> {
    Ok(rayon::ThreadPoolBuilder::new().num_threads(n).build()?)
}

pub fn run(ctx: &mut Ctx) -> Result<()> {
    let t = threads();
    tiny(ctx, t)?;
    csum64k(ctx, t)?;
    roundtrip(ctx, t)?;
    blocking_case(ctx, t)?;
    dependency(ctx, t)?;
    Ok(())
}

/// Queues `items` empty items from this thread and waits for all; ns per item.
fn tiny(ctx: &mut Ctx, t: usize) -> Result<()> {
    let items = if ctx.quick { 300_000 } else { 2_000_000 };
    let pool = ours(t)?;
    let chan = ChannelPool::new(t);
    let ray = rayon_pool(t)?;
    let per_item = |start: Instant| start.elapsed().as_nanos() as f64 / items as f64;
    let run_ours = || -> Result<f64> {
        let latch = Latch::new(items);
        let start = Instant::now();
        for _ in 0..items {
            let l = Arc::clone(&latch);
            pool.queue(move || l.hit())?;
        }
        latch.wait();
        Ok(per_item(start))
    };
    let run_chan = || -> Result<f64> {
        let latch = Latch::new(items);
        let start = Instant::now();
        for _ in 0..items {
            let l = Arc::clone(&latch);
            chan.spawn(move || l.hit());
        }
        latch.wait();
        Ok(per_item(start))
    };
    let run_rayon = || -> Result<f64> {
        let latch = Latch::new(items);
        let start = Instant::now();
        for _ in 0..items {
            let l = Arc::clone(&latch);
            ray.spawn(move || l.hit());
        }
        latch.wait();
        Ok(per_item(start))
    };
    let (a, b) = alternate(ctx.runs(), run_ours, run_chan)?;
    let note = format!("{items} items, {t} threads");
    ctx.record(
        "tiny",
        "ns/item",
        Sense::LowerIsBetter,
        a,
        "crossbeam-pool",
        b,
        Some(1.0),
        &note,
    );
    let (a, b) = alternate(ctx.runs(), run_ours, run_rayon)?;
    ctx.record(
        "tiny",
        "ns/item",
        Sense::LowerIsBetter,
        a,
        "rayon::spawn",
        b,
        Some(1.5),
        &note,
    );
    Ok(())
}

/// Items that each CRC32C a 64 KiB slice of a shared buffer; GB/s.
fn csum64k(ctx: &mut Ctx, t: usize) -> Result<()> {
    const CHUNK: usize = 64 << 10;
    let items = if ctx.quick { 4_000 } else { 32_000 };
    let buf: Arc<Vec<u8>> = Arc::new((0..CHUNK * 64).map(|i| (i * 31 % 251) as u8).collect());
    let pool = ours(t)?;
    let chan = ChannelPool::new(t);
    let sink = Arc::new(AtomicUsize::new(0));
    let gbps = |start: Instant| (items * CHUNK) as f64 / start.elapsed().as_secs_f64() / 1e9;
    let job = |i: usize, l: Arc<Latch>| {
        let buf = Arc::clone(&buf);
        let sink = Arc::clone(&sink);
        move || {
            let off = (i % 64) * CHUNK;
            let c = crc32c::crc32c(&buf[off..off + CHUNK]);
            sink.fetch_add(c as usize & 1, Ordering::Relaxed);
            l.hit();
        }
    };
    let (a, b) = alternate(
        ctx.runs(),
        || {
            let latch = Latch::new(items);
            let start = Instant::now();
            for i in 0..items {
                pool.queue(job(i, Arc::clone(&latch)))?;
            }
            latch.wait();
            Ok(gbps(start))
        },
        || {
            let latch = Latch::new(items);
            let start = Instant::now();
            for i in 0..items {
                chan.spawn(job(i, Arc::clone(&latch)));
            }
            latch.wait();
            Ok(gbps(start))
        },
    )?;
    let note = format!("{items} x 64 KiB, {t} threads");
    ctx.record(
        "csum64k",
        "GB/s",
        Sense::HigherIsBetter,
        a,
        "crossbeam-pool",
        b,
        None,
        &note,
    );
    Ok(())
}

/// One item at a time: queue it, wait for its reply; p50 and p99 in microseconds.
fn roundtrip(ctx: &mut Ctx, t: usize) -> Result<()> {
    let samples = if ctx.quick { 2_000 } else { 20_000 };
    let pool = ours(t)?;
    let chan = ChannelPool::new(t);
    let mut ours_us = Vec::new();
    let mut peer_us = Vec::new();
    for round in 0..ctx.runs() {
        for side in 0..2 {
            let mine = (round + side) % 2 == 0;
            let (tx, rx) = crossbeam_channel::bounded::<()>(1);
            for _ in 0..samples {
                let tx = tx.clone();
                let start = Instant::now();
                if mine {
                    pool.queue(move || tx.send(()).unwrap())?;
                } else {
                    chan.spawn(move || tx.send(()).unwrap());
                }
                rx.recv()?;
                let us = start.elapsed().as_nanos() as f64 / 1e3;
                if mine {
                    ours_us.push(us);
                } else {
                    peer_us.push(us);
                }
            }
        }
    }
    let note = format!("{} samples each", ours_us.len());
    for (case, q) in [("roundtrip p50", 0.5), ("roundtrip p99", 0.99)] {
        let a = quantile(&mut ours_us, q);
        let b = quantile(&mut peer_us, q);
        let target = (q == 0.5).then_some(1.0);
        ctx.record(
            case,
            "us",
            Sense::LowerIsBetter,
            a,
            "crossbeam-pool",
            b,
            target,
            &note,
        );
    }
    Ok(())
}

const BLOCK: Duration = Duration::from_millis(200);

/// Two items block 200 ms, then 100 tiny items are queued: ms until the tiny are done.
fn blocking_case(ctx: &mut Ctx, t: usize) -> Result<()> {
    let runs = ctx.runs();
    // Ours: up to 4x the cores, so blocked workers can be replaced.
    let make_ours = || -> Result<Workers> {
        Ok(Workers::builder("bench-blocking")
            .min_threads(t)
            .max_threads(4 * t)
            .build()?)
    };
    let pool = make_ours()?;
    let chan = ChannelPool::new(t);
    let measure = |queue: &dyn Fn(Job)| -> f64 {
        for _ in 0..2 {
            queue(Box::new(|| std::thread::sleep(BLOCK)));
        }
        let latch = Latch::new(100);
        let start = Instant::now();
        for _ in 0..100 {
            let l = Arc::clone(&latch);
            queue(Box::new(move || l.hit()));
        }
        latch.wait();
        start.elapsed().as_secs_f64() * 1e3
    };
    let mut hinted = Vec::new();
    let mut plain = Vec::new();
    let mut peer = Vec::new();
    for _ in 0..runs {
        // Ours with the blocking hint, as a pool user would write a blocking wait.
        hinted.push(measure(&|job: Job| {
            pool.queue(move || blocking(job)).expect("open")
        }));
        pool.drain();
        // Ours without the hint: the watchdog has to notice.
        plain.push(measure(&|job: Job| pool.queue(job).expect("open")));
        pool.drain();
        let (tx, rx) = crossbeam_channel::bounded::<()>(2);
        peer.push(measure(&|job: Job| chan.spawn(job)));
        // Let the peer's blockers finish before the next round.
        for _ in 0..2 {
            let tx = tx.clone();
            chan.spawn(move || tx.send(()).unwrap());
        }
        rx.recv()?;
        rx.recv()?;
    }
    let a = median(&mut hinted);
    let b = median(&mut peer);
    let plain = median(&mut plain);
    let limit_ms = BLOCK.as_secs_f64() * 1e3 / 10.0;
    ctx.push(Row {
        group: "pool".into(),
        case: "blocking".into(),
        unit: "ms".into(),
        ours: a,
        peer: "crossbeam-pool".into(),
        peer_value: b,
        speedup: super::frame::speedup(Sense::LowerIsBetter, a, b),
        target: format!("ours < {limit_ms} ms"),
        target_met: Some(a < limit_ms),
        note: format!("with blocking() hint; without hint (watchdog) {plain:.1} ms"),
    });
    Ok(())
}

/// Time-out of one dependency run in the child.
fn dependency_timeout(quick: bool) -> Duration {
    if quick {
        Duration::from_secs(3)
    } else {
        Duration::from_secs(10)
    }
}

fn dependency(ctx: &mut Ctx, t: usize) -> Result<()> {
    let timeout = dependency_timeout(ctx.quick);
    let mut ours_ms = Vec::new();
    for _ in 0..ctx.runs() {
        match run_child("pool-dependency-ours", timeout)? {
            Some(ms) => ours_ms.push(ms),
            None => bail!("our pool got stuck in the dependency case"),
        }
    }
    for (peer, case) in [
        ("crossbeam-pool", "pool-dependency-crossbeam"),
        ("rayon::spawn", "pool-dependency-rayon"),
    ] {
        let got = run_child(case, timeout)?;
        let ours = median(&mut ours_ms.clone());
        let (peer_value, note) = match got {
            Some(ms) => (ms, format!("{t} waiting items")),
            None => (
                timeout.as_secs_f64() * 1e3,
                format!("peer STUCK: killed after {} s", timeout.as_secs()),
            ),
        };
        ctx.push(Row {
            group: "pool".into(),
            case: "dependency".into(),
            unit: "ms".into(),
            ours,
            peer: peer.into(),
            peer_value,
            speedup: super::frame::speedup(Sense::LowerIsBetter, ours, peer_value),
            target: "ours finishes".into(),
            target_met: Some(true),
            note,
        });
    }
    Ok(())
}

/// Runs a case in a child process; `None` when it had to be killed.
fn run_child(case: &str, timeout: Duration) -> Result<Option<f64>> {
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .args([super::CHILD_TASK, case])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting a bench child")?;
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            if !status.success() {
                bail!("bench child `{case}` failed: {status}");
            }
            let mut out = String::new();
            use std::io::Read;
            child
                .stdout
                .take()
                .context("child stdout")?
                .read_to_string(&mut out)?;
            let ms: f64 = out
                .trim()
                .parse()
                .with_context(|| format!("bench child `{case}` printed `{out}`"))?;
            return Ok(Some(ms));
        }
        if start.elapsed() > timeout {
            child.kill()?;
            child.wait()?;
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Child side: as many items as the pool has threads each wait for an item queued
/// after all of them; prints the time to finish in ms (or hangs: the parent kills it).
pub fn child(case: &str, _args: &[String]) -> Result<()> {
    let t = threads();
    let gates: Vec<Completion<()>> = (0..t).map(|_| Completion::new()).collect();
    let latch = Latch::new(t);
    let start = Instant::now();
    let waiter = |g: &Completion<()>| {
        let g = g.clone();
        let l = Arc::clone(&latch);
        move || {
            g.wait().expect("gate");
            l.hit();
        }
    };
    let opener = |g: &Completion<()>| {
        let g = g.clone();
        move || g.complete(())
    };
    match case {
        "pool-dependency-ours" => {
            let pool = Workers::builder("bench-dep")
                .min_threads(t)
                .max_threads(4 * t)
                .build()?;
            gates.iter().try_for_each(|g| pool.queue(waiter(g)))?;
            gates.iter().try_for_each(|g| pool.queue(opener(g)))?;
            latch.wait();
        }
        "pool-dependency-crossbeam" => {
            let pool = ChannelPool::new(t);
            gates.iter().for_each(|g| pool.spawn(waiter(g)));
            gates.iter().for_each(|g| pool.spawn(opener(g)));
            latch.wait();
            std::mem::forget(pool);
        }
        "pool-dependency-rayon" => {
            let pool = rayon_pool(t)?;
            gates.iter().for_each(|g| pool.spawn(waiter(g)));
            gates.iter().for_each(|g| pool.spawn(opener(g)));
            latch.wait();
        }
        other => bail!("unknown pool child case `{other}`"),
    }
    println!("{}", start.elapsed().as_secs_f64() * 1e3);
    Ok(())
}
