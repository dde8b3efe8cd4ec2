//! Deterministic tests of placement, spawning and the watchdog's decisions.
//!
//! A [`HeldSpawner`] keeps every thread body instead of starting it, so a pool's slots
//! are live but nobody pops them and no watchdog ticks: each test sets the lists, the
//! sleep and block flags itself and checks what `select`, `place`, `check`, `react` and
//! `rescue` decide. Timing never enters; the integration tests in `tests/pool.rs` check
//! the same rules end to end with real threads.

use super::*;
use crate::work::Job;
use std::io;
use std::sync::atomic::AtomicUsize;

/// Keeps thread bodies instead of running them; refuses while `failing` is set.
#[derive(Debug, Default)]
struct HeldSpawner {
    failing: AtomicBool,
    held: Mutex<Vec<String>>,
    bodies: Mutex<Vec<Body>>,
}

struct Body(Box<dyn FnOnce() + Send>);

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Body")
    }
}

impl Spawner for HeldSpawner {
    fn spawn(
        &self,
        name: String,
        _stack_size_bytes: Option<usize>,
        body: Box<dyn FnOnce() + Send + 'static>,
    ) -> io::Result<()> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(io::Error::other(format!("refused {name}")));
        }
        lock(&self.held).push(name);
        lock(&self.bodies).push(Body(body));
        Ok(())
    }
}

struct Harness {
    pool: Arc<Inner>,
    spawner: Arc<HeldSpawner>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        // The held bodies own `Arc<Inner>`s: drop them to break the cycle.
        lock(&self.spawner.bodies).clear();
    }
}

fn harness(min: usize, max: usize, busy: usize, rescuer: bool) -> Harness {
    harness_with(min, max, busy, rescuer, |_| ())
}

fn harness_with(
    min: usize,
    max: usize,
    busy: usize,
    rescuer: bool,
    tweak: impl FnOnce(&mut Config),
) -> Harness {
    let spawner = Arc::new(HeldSpawner::default());
    let mut cfg = Config {
        name: "t".into(),
        min_threads: min,
        max_threads: max,
        busy_threshold: busy,
        idle_timeout: Duration::from_secs(3600),
        stack_size_bytes: None,
        spawner: Arc::clone(&spawner) as Arc<dyn Spawner>,
        rescuer,
        watchdog_interval: Duration::from_secs(3600),
        rescue_grace: Duration::ZERO,
    };
    tweak(&mut cfg);
    let pool = Inner::start(cfg).unwrap();
    Harness { pool, spawner }
}

fn noop() -> Task {
    Task {
        job: Job::Once(Box::new(|| ())),
        color: 0,
    }
}

/// A task counted for flush (as `submit` does) that bumps `ran` when it runs.
fn counted(pool: &Inner, ran: &Arc<AtomicUsize>) -> Task {
    let ran = Arc::clone(ran);
    Task {
        job: Job::Once(Box::new(move || {
            ran.fetch_add(1, Ordering::SeqCst);
        })),
        color: pool.flush.enter(),
    }
}

impl Harness {
    fn fill(&self, slot: usize, n: usize) {
        for _ in 0..n {
            assert!(self.pool.slots[slot].push(noop(), false).is_ok());
        }
    }

    fn pending(&self) -> Vec<usize> {
        self.pool.stats().pending_per_worker
    }

    fn set_sleeping(&self, slot: usize) {
        lock_model(self.pool.slots[slot].q()).sleeping = true;
        self.pool.sleepers.fetch_add(1, Ordering::SeqCst);
    }

    fn woken(&self, slot: usize) -> bool {
        lock_model(self.pool.slots[slot].q()).wake
    }

    fn choice(&self) -> String {
        match self.pool.select() {
            Choice::Slot(i) => format!("slot {i}"),
            Choice::Spawn => "spawn".into(),
            Choice::Orphan => "orphan".into(),
        }
    }

    fn threads(&self) -> usize {
        self.pool.threads.load(Ordering::SeqCst)
    }

    /// Starts the held body of the `k`th thread the pool made (0 is the helper) on a
    /// real thread.
    fn run_held(&self, k: usize) -> std::thread::JoinHandle<()> {
        let body = std::mem::replace(&mut lock(&self.spawner.bodies)[k], Body(Box::new(|| ())));
        std::thread::spawn(move || (body.0)())
    }

    /// Waits (no deadline: a hang is the failure) until slot `k`'s worker sleeps.
    fn until_asleep(&self, k: usize) {
        while !lock_model(self.pool.slots[k].q()).sleeping {
            std::thread::yield_now();
        }
    }

    /// Submits (as `queue` does) an item that returns `v` through a completion, and
    /// waits for it.
    fn round_trip<T: Send + 'static>(&self, v: T) -> T {
        let done = crate::Completion::new();
        let d = done.clone();
        self.pool
            .submit(Job::once(move || d.complete(v)), false)
            .unwrap();
        done.wait().unwrap()
    }

    /// Submits an item that bumps `ran`.
    fn submit_counting(&self, ran: &Arc<AtomicUsize>) {
        let r = Arc::clone(ran);
        let bump = move || {
            r.fetch_add(1, Ordering::SeqCst);
        };
        self.pool.submit(Job::once(bump), false).unwrap();
    }

    /// Runs a pending work item once as `runner` would, counted under the current colour.
    fn execute_item(&self, item: &crate::WorkItem, runner: Runner) {
        let color = self.pool.flush.enter();
        let job = Job::Item(item.clone());
        self.pool.execute(Task { job, color }, runner);
    }

    /// Closes the pool and wakes everyone, so running worker bodies return once the
    /// pool is empty.
    fn close(&self) {
        self.pool.closed.store(true, Ordering::SeqCst);
        self.pool.wake_all();
    }

    fn mayday(&self) -> bool {
        std::mem::take(&mut *lock(&self.pool.mayday))
    }
}

use crate::sync::lock_model;

#[test]
fn the_start_claims_min_threads_slots_and_one_helper() {
    let h = harness(3, 5, 4, true);
    assert_eq!(h.threads(), 3);
    assert_eq!(
        *lock(&h.spawner.held),
        ["t-rescuer", "t-0", "t-1", "t-2"],
        "the helper first, then one named worker per slot"
    );
    assert_eq!(h.pending(), [0, 0, 0]);
    let s = h.pool.stats();
    assert_eq!((s.threads, s.threads_peak), (3, 3));
}

#[test]
fn select_keeps_the_last_used_worker_while_it_is_under_the_threshold() {
    let h = harness(3, 3, 2, false);
    h.pool.last_used.store(1, Ordering::Relaxed);
    h.fill(1, 1);
    assert_eq!(h.choice(), "slot 1");
    h.fill(1, 1);
    assert_eq!(
        h.choice(),
        "slot 2",
        "the scan goes on from the last-used slot"
    );
    h.fill(2, 2);
    assert_eq!(h.choice(), "slot 0", "and wraps round to the first");
    h.fill(0, 1);
    assert_eq!(h.choice(), "slot 0");
}

#[test]
fn select_skips_blocked_and_vacant_workers() {
    let h = harness(3, 3, 2, false);
    assert!(h.pool.slots[0].block_enter());
    assert_eq!(
        h.choice(),
        "slot 1",
        "a blocked worker is not chosen though idle"
    );
    h.pool.slots[1].vacate();
    assert_eq!(h.choice(), "slot 2", "nor is a vacant slot");
}

#[test]
fn select_spawns_when_every_worker_is_at_the_threshold() {
    let h = harness(2, 3, 2, false);
    h.fill(0, 2);
    h.fill(1, 2);
    assert_eq!(h.choice(), "spawn");
    h.pool
        .spawn_failed_ms
        .store(h.pool.now_ms(), Ordering::SeqCst);
    assert_eq!(
        h.choice(),
        "slot 0",
        "while spawning cools down: the least loaded"
    );
}

#[test]
fn select_at_max_threads_takes_the_least_loaded_and_blocked_ones_last() {
    let h = harness(3, 3, 2, false);
    h.fill(0, 5);
    h.fill(1, 3);
    h.fill(2, 4);
    assert_eq!(h.choice(), "slot 1");
    assert!(h.pool.slots[1].block_enter());
    assert_eq!(h.choice(), "slot 2");
    // A blocked worker with nothing queued still counts as busier than any other.
    let h = harness(2, 2, 2, false);
    h.fill(1, 2);
    assert!(h.pool.slots[0].block_enter());
    assert_eq!(h.choice(), "slot 1");
    assert!(h.pool.slots[1].block_enter());
    h.fill(0, 1);
    assert_eq!(
        h.choice(),
        "slot 0",
        "all blocked: the least loaded of them"
    );
}

#[test]
fn select_without_any_worker_spawns_or_orphans() {
    let h = harness(0, 2, 2, false);
    assert_eq!(h.choice(), "spawn");
    h.pool
        .spawn_failed_ms
        .store(h.pool.now_ms(), Ordering::SeqCst);
    assert_eq!(h.choice(), "orphan");
}

#[test]
fn place_remembers_the_slot_it_used() {
    let h = harness(2, 2, 1, false);
    h.fill(0, 1);
    h.pool.place(noop(), false);
    assert_eq!(h.pool.last_used.load(Ordering::Relaxed), 1);
    assert_eq!(h.pending(), [1, 1]);
    h.fill(1, 1);
    h.pool.place(noop(), true);
    assert_eq!(h.pending(), [2, 2], "at max: the least loaded");
    assert_eq!(h.pool.last_used.load(Ordering::Relaxed), 0);
    h.pool.place(noop(), false);
    assert_eq!(h.pending(), [3, 2], "a tie goes to the last used");
}

#[test]
fn place_spawns_a_worker_that_gets_the_item() {
    let h = harness(1, 2, 1, false);
    h.fill(0, 1);
    h.pool.place(noop(), false);
    assert_eq!(h.threads(), 2);
    assert_eq!(h.pending(), [1, 1]);
    assert_eq!(h.pool.stats().threads_peak, 2);
}

#[test]
fn a_pile_up_behind_an_awake_worker_wakes_a_sleeper_to_steal() {
    let h = harness(2, 2, 64, false);
    h.set_sleeping(1);
    h.pool.last_used.store(0, Ordering::Relaxed);
    for n in 1..worker::STEAL_MIN_PENDING {
        h.pool.place(noop(), false);
        assert!(!h.woken(1), "{n} waiting: the awake worker keeps up alone");
    }
    h.pool.place(noop(), false);
    assert!(h.woken(1), "STEAL_MIN_PENDING waiting: a sleeper is woken");
    assert_eq!(h.pending(), [worker::STEAL_MIN_PENDING, 0]);
}

#[test]
fn no_sleeper_is_woken_when_none_sleeps() {
    let h = harness(2, 2, 64, false);
    // The flag says asleep, but the pool's sleeper count says nobody: no scan.
    lock_model(h.pool.slots[1].q()).sleeping = true;
    for _ in 0..worker::STEAL_MIN_PENDING {
        h.pool.place(noop(), false);
    }
    assert!(!h.woken(1));
}

#[test]
fn wake_one_sleeper_wakes_one_live_sleeper_other_than_the_one_named() {
    let h = harness(3, 3, 4, false);
    assert!(!h.pool.wake_one_sleeper(None), "nobody sleeps");
    h.set_sleeping(0);
    assert!(!h.pool.wake_one_sleeper(Some(0)));
    assert!(!h.woken(0));
    h.set_sleeping(2);
    assert!(h.pool.wake_one_sleeper(Some(0)));
    assert!(h.woken(2) && !h.woken(0));
    assert!(h.pool.wake_one_sleeper(None));
    assert!(h.woken(0), "the next call wakes the other one");
}

#[test]
fn a_failed_spawn_places_the_item_elsewhere_and_cools_down() {
    let h = harness(1, 2, 1, false);
    h.fill(0, 1);
    assert!(!h.pool.spawn_cooling());
    h.spawner.failing.store(true, Ordering::SeqCst);
    h.mayday();
    h.pool.place(noop(), false);
    assert_eq!(h.threads(), 1);
    assert_eq!(h.pending(), [2], "the item went to the live worker");
    let s = h.pool.stats();
    assert_eq!((s.spawn_failures, s.threads_peak, s.orphaned), (1, 2, 0));
    assert!(h.pool.spawn_cooling(), "no new try right after a failure");
    assert!(h.mayday(), "the watchdog is called");
    assert!(
        h.pool.saturated(),
        "cooling down with every worker busy is saturation"
    );
    // The cool-down ends SPAWN_COOLDOWN after the failure.
    let failed = h.pool.spawn_failed_ms.load(Ordering::SeqCst);
    let cool = SPAWN_COOLDOWN.as_millis() as u64;
    assert!(h.pool.cooling_at(failed + cool - 1));
    assert!(!h.pool.cooling_at(failed + cool));
    // A spawn that works ends it at once.
    h.spawner.failing.store(false, Ordering::SeqCst);
    h.pool.place(noop(), false);
    assert_eq!(h.pending(), [3], "still cooling down: no spawn tried");
    h.pool.spawn_worker(None).unwrap();
    assert!(!h.pool.spawn_cooling());
    assert_eq!(h.threads(), 2);
}

#[test]
fn the_pool_clock_starts_above_zero() {
    // 0 in `spawn_failed_ms` means "no failure": a failure must never be stamped 0.
    let h = harness(0, 1, 1, false);
    assert!(h.pool.now_ms() >= 1);
}

#[test]
fn a_failed_spawn_without_workers_orphans_the_item() {
    let h = harness(0, 1, 1, true);
    h.spawner.failing.store(true, Ordering::SeqCst);
    h.pool.place(noop(), false);
    let s = h.pool.stats();
    assert_eq!((s.threads, s.orphaned, s.spawn_failures), (0, 1, 1));
    assert!(h.pool.pop_orphan().is_some());
    assert!(h.pool.pop_orphan().is_none());
    assert_eq!(h.pool.stats().orphaned, 0);
}

#[test]
fn spawn_worker_refuses_at_max_threads_and_places_the_item() {
    let h = harness(2, 2, 1, false);
    h.fill(0, 3);
    assert!(h.pool.spawn_worker(Some((noop(), false))).is_err());
    assert_eq!(h.pending(), [3, 1]);
    assert_eq!(
        h.pool.stats().spawn_failures,
        0,
        "not a failure of the spawner"
    );
}

#[test]
fn saturated_needs_every_live_worker_busy_or_blocked_and_no_room_to_grow() {
    let h = harness(2, 3, 1, false);
    h.fill(0, 1);
    h.fill(1, 1);
    assert!(!h.pool.saturated(), "a third worker can still be started");
    let h = harness(2, 2, 1, false);
    assert!(!h.pool.saturated());
    h.fill(0, 1);
    assert!(!h.pool.saturated(), "worker 1 is idle");
    assert!(h.pool.slots[1].block_enter());
    assert!(h.pool.saturated(), "busy or blocked");
    let h = harness(0, 1, 1, false);
    h.pool
        .spawn_failed_ms
        .store(h.pool.now_ms(), Ordering::SeqCst);
    assert!(
        !h.pool.saturated(),
        "no live worker: nothing to wait behind"
    );
}

#[test]
fn the_watchdog_sees_pending_work_without_progress_as_stuck() {
    let h = harness(2, 2, 4, false);
    let mut last = vec![0; 2];
    assert!(!manager::check(&h.pool, &mut last), "nothing waits");
    h.fill(1, 1);
    assert!(manager::check(&h.pool, &mut last), "waits, nothing started");
    h.pool.slots[1].hot.progress.fetch_add(1, Ordering::Relaxed);
    assert!(!manager::check(&h.pool, &mut last), "it started something");
    assert_eq!(last, [0, 1]);
    assert!(manager::check(&h.pool, &mut last), "and then nothing more");
    h.pool.slots[1].steal(1);
    assert!(!manager::check(&h.pool, &mut last));
    h.pool.push_orphan(noop());
    assert!(
        manager::check(&h.pool, &mut last),
        "an orphan is stuck work"
    );
}

#[test]
fn the_watchdog_wakes_a_sleeper_with_work_first() {
    let h = harness(2, 3, 4, false);
    h.fill(1, 1);
    h.set_sleeping(1);
    assert!(manager::react(&h.pool));
    assert!(h.woken(1));
    assert_eq!(h.threads(), 2, "woken, not spawned");
    // Any sleeper, when none with work sleeps (it steals).
    let h = harness(2, 3, 4, false);
    h.fill(1, 1);
    h.set_sleeping(0);
    assert!(manager::react(&h.pool));
    assert!(h.woken(0));
    assert_eq!(h.threads(), 2);
}

#[test]
fn the_watchdog_starts_a_worker_when_nobody_sleeps() {
    let h = harness(1, 2, 4, false);
    h.fill(0, 1);
    assert!(manager::react(&h.pool));
    assert_eq!(h.threads(), 2);
    // At max_threads, all busy: back-pressure, nothing to do.
    assert!(manager::react(&h.pool));
    assert_eq!(h.threads(), 2);
}

#[test]
fn the_watchdog_calls_for_the_rescuer_when_nothing_can_move_the_work() {
    let h = harness(1, 2, 4, true);
    h.fill(0, 1);
    h.spawner.failing.store(true, Ordering::SeqCst);
    assert!(!manager::react(&h.pool), "the spawn failed");
    assert_eq!(h.pool.stats().spawn_failures, 1);
    assert!(!manager::react(&h.pool), "cooling down: no worker can come");
    assert_eq!(h.pool.stats().spawn_failures, 1, "and no new try");
    // At max_threads with work orphaned: also a case for the rescuer.
    let h = harness(1, 1, 4, true);
    h.pool.push_orphan(noop());
    assert!(!manager::react(&h.pool));
}

#[test]
fn the_rescuer_runs_orphans_first_then_the_head_of_a_stuck_list() {
    let h = harness(2, 2, 4, true);
    let ran = Arc::new(AtomicUsize::new(0));
    for _ in 0..2 {
        let t = counted(&h.pool, &ran);
        h.pool.slots[0].push(t, false).ok().unwrap();
    }
    for _ in 0..3 {
        let t = counted(&h.pool, &ran);
        h.pool.slots[1].push(t, false).ok().unwrap();
    }
    let t = counted(&h.pool, &ran);
    h.pool.push_orphan(t);
    h.pool
        .spawn_failed_ms
        .store(h.pool.now_ms(), Ordering::SeqCst);
    manager::rescue(&h.pool);
    // Cooling down: it keeps going, orphan first, then from the longest list.
    assert_eq!(ran.load(Ordering::SeqCst), 6);
    let s = h.pool.stats();
    assert_eq!((s.rescuer_runs, s.run, s.outstanding), (6, 6, 0));
    assert_eq!(h.pending(), [0, 0]);
}

#[test]
fn the_rescuer_stops_once_a_worker_can_be_started_again() {
    let h = harness(2, 2, 4, true);
    let ran = Arc::new(AtomicUsize::new(0));
    for _ in 0..3 {
        let t = counted(&h.pool, &ran);
        h.pool.slots[1].push(t, false).ok().unwrap();
    }
    let t = counted(&h.pool, &ran);
    h.pool.slots[0].push(t, false).ok().unwrap();
    assert!(h.pool.slots[0].block_enter());
    manager::rescue(&h.pool);
    assert_eq!(
        ran.load(Ordering::SeqCst),
        1,
        "one item, then it looks again"
    );
    assert_eq!(h.pending(), [0, 3], "the blocked worker's item first");
}

#[test]
fn the_rescuer_runs_at_most_a_batch_before_looking_again() {
    let h = harness(1, 1, 4, true);
    let ran = Arc::new(AtomicUsize::new(0));
    for _ in 0..manager::RESCUE_BATCH + 5 {
        let t = counted(&h.pool, &ran);
        h.pool.push_orphan(t);
    }
    manager::rescue(&h.pool);
    assert_eq!(ran.load(Ordering::SeqCst), manager::RESCUE_BATCH);
    assert_eq!(h.pool.stats().orphaned, 5);
}

#[test]
fn a_worker_requeues_on_its_own_list_others_place_it() {
    let h = harness(2, 2, 64, false);
    h.pool.last_used.store(0, Ordering::Relaxed);
    let item = crate::WorkItem::new({
        let mut first = true;
        move || {
            if std::mem::take(&mut first) {
                Step::Requeue
            } else {
                Step::Done
            }
        }
    });
    assert!(item.mark_pending());
    h.execute_item(&item, Runner::Worker(1));
    assert_eq!(
        h.pending(),
        [0, 1],
        "back on the tail of worker 1's own list"
    );
    let s = h.pool.stats();
    assert_eq!((s.requeued, s.run, s.outstanding), (1, 1, 1));
    let t = h.pool.slots[1].pop().unwrap();
    h.pool.execute(t, Runner::Rescuer);
    let s = h.pool.stats();
    assert_eq!((s.requeued, s.run, s.outstanding), (1, 2, 0));
    assert_eq!(s.rescuer_runs, 1);
}

#[test]
fn an_idle_worker_spins_doubling_then_yields_then_sleeps_then_starts_over() {
    use worker::{idle_step, Idle};
    let mut rounds = 0;
    let steps: Vec<Idle> = (0..13).map(|_| idle_step(&mut rounds)).collect();
    let spins = (0..7).map(|r| Idle::Spin(1 << r));
    let want: Vec<Idle> = spins
        .chain([Idle::Yield; 4])
        .chain([Idle::Sleep, Idle::Spin(1)])
        .collect();
    assert_eq!(steps, want);
    assert_eq!(rounds, 1);
}

#[test]
fn config_check_takes_max_threads_up_to_the_limit() {
    let cfg = |max: usize| Config {
        max_threads: max,
        ..Config::with_defaults("limits".into())
    };
    assert!(cfg(1).check().is_ok());
    assert!(cfg(MAX_THREADS).check().is_ok());
    for bad in [0, MAX_THREADS + 1] {
        let e = cfg(bad).check().unwrap_err();
        assert!(
            matches!(&e, Error::Config { pool, field: "max_threads", .. } if pool == "limits"),
            "{e}"
        );
    }
}

#[test]
fn a_requeue_is_dropped_when_the_item_was_queued_again_while_it_ran() {
    let h = harness(1, 1, 64, false);
    // The item queues itself while it runs, then asks for a requeue: one copy only.
    let runs = Arc::new(AtomicUsize::new(0));
    let cell: Arc<Mutex<Option<crate::WorkItem>>> = Arc::default();
    let (pool, r, c) = (Arc::clone(&h.pool), Arc::clone(&runs), Arc::clone(&cell));
    let me = crate::WorkItem::new(move || {
        if r.fetch_add(1, Ordering::SeqCst) == 0 {
            let me = lock(&c).clone().unwrap();
            assert_eq!(
                crate::workers::queue_work(&pool, &me, false).unwrap(),
                crate::Queued::Queued
            );
        }
        Step::Requeue
    });
    *lock(&cell) = Some(me.clone());
    assert!(me.mark_pending());
    h.execute_item(&me, Runner::Worker(0));
    let s = h.pool.stats();
    assert_eq!(h.pending(), [1], "the copy it queued, not a second one");
    assert_eq!((s.requeued, s.outstanding), (0, 1));
    lock(&cell).take();
}

#[test]
fn every_runner_leaves_on_a_lane_of_its_own() {
    // Lanes exist so that no two runners write the same cache line.
    let lanes: Vec<usize> = (0..4).map(Flush::worker_lane).collect();
    assert!(!lanes.contains(&flush::OTHER_LANE));
    let mut distinct = lanes.clone();
    distinct.dedup();
    assert_eq!(distinct, lanes);
    assert_eq!(lanes, [1, 2, 3, 4], "worker lanes follow the slots");
}

#[test]
fn the_watchdog_wakes_only_sleepers_with_work_when_there_are_any() {
    let h = harness(3, 3, 4, false);
    h.fill(1, 1);
    h.set_sleeping(0);
    h.set_sleeping(1);
    h.set_sleeping(2);
    assert!(manager::react(&h.pool));
    assert!(h.woken(1));
    assert!(!h.woken(0) && !h.woken(2), "the idle ones sleep on");
}

#[test]
fn the_rescuer_robs_a_list_that_holds_items_not_an_empty_blocked_one() {
    let h = harness(2, 2, 4, true);
    let ran = Arc::new(AtomicUsize::new(0));
    assert!(h.pool.slots[0].block_enter());
    for _ in 0..2 {
        let t = counted(&h.pool, &ran);
        h.pool.slots[1].push(t, false).ok().unwrap();
    }
    h.pool
        .spawn_failed_ms
        .store(h.pool.now_ms(), Ordering::SeqCst);
    manager::rescue(&h.pool);
    assert_eq!(ran.load(Ordering::SeqCst), 2);
}

#[test]
fn the_watchdog_ticks_fast_only_while_work_is_outstanding() {
    let h = harness(1, 1, 4, true);
    assert_eq!(manager::tick(&h.pool), manager::IDLE_TICK);
    let c = h.pool.flush.enter();
    assert_eq!(manager::tick(&h.pool), h.pool.cfg.watchdog_interval);
    assert!(!manager::finished(&h.pool));
    h.pool.closed.store(true, Ordering::SeqCst);
    assert!(!manager::finished(&h.pool), "closed, but work is left");
    h.pool.flush.leave(c, flush::OTHER_LANE);
    assert!(manager::finished(&h.pool));
    let h = harness(1, 1, 4, true);
    assert!(!manager::finished(&h.pool), "empty, but open");
}

#[test]
fn the_rescuer_steps_in_after_the_grace_period_and_only_if_there_is_one() {
    let grace = Duration::from_millis(10);
    let h = harness_with(1, 1, 4, true, |c| c.rescue_grace = grace);
    let ms = Duration::from_millis;
    assert_eq!(
        manager::mayday(&h.pool, ms(0)),
        manager::Mayday::WaitGrace(grace)
    );
    assert_eq!(
        manager::mayday(&h.pool, ms(4)),
        manager::Mayday::WaitGrace(ms(6))
    );
    assert_eq!(manager::mayday(&h.pool, grace), manager::Mayday::Rescue);
    assert_eq!(manager::mayday(&h.pool, ms(50)), manager::Mayday::Rescue);
    let h = harness(1, 1, 4, false);
    assert_eq!(manager::mayday(&h.pool, ms(50)), manager::Mayday::Wait);
}

#[test]
fn a_sleeping_worker_is_woken_by_a_push_and_exits_once_closed_and_empty() {
    // The idle timeout is an hour: only the slot's condvar can wake the worker.
    let h = harness(1, 1, 4, false);
    let worker = h.run_held(1);
    h.until_asleep(0);
    assert_eq!(h.round_trip(7), 7);
    h.pool.drain();
    let s = h.pool.stats();
    assert_eq!((s.run, s.outstanding, s.threads), (1, 0, 1));
    assert_eq!(h.pool.slots[0].hot.progress.load(Ordering::Relaxed), 1);
    h.close();
    worker.join().unwrap();
    assert_eq!(h.threads(), 0, "it gave its thread back");
    assert!(!h.pool.slots[0].is_live());
}

#[test]
fn an_idle_worker_steals_from_a_list_that_makes_no_progress() {
    let h = harness(3, 3, 64, false);
    let ran = Arc::new(AtomicUsize::new(0));
    // Workers 0 and 1 never run (their bodies stay held): 1's one item is stuck, and
    // 0 is blocked with nothing to take (a thief must look past it).
    assert!(h.pool.slots[0].block_enter());
    let t = counted(&h.pool, &ran);
    h.pool.slots[1].push(t, false).ok().unwrap();
    let worker = h.run_held(3);
    let stolen = Arc::clone(&ran);
    while stolen.load(Ordering::SeqCst) == 0 {
        std::thread::yield_now();
    }
    assert_eq!(h.pending(), [0, 0, 0]);
    h.close();
    worker.join().unwrap();
    assert_eq!(h.pool.slots[2].hot.progress.load(Ordering::Relaxed), 1);
}

#[test]
fn a_worker_body_leaves_its_thread_as_it_found_it() {
    // A spawner may run bodies on threads it keeps (a pool of its own): once a body
    // returns, the thread must no longer count as this pool's worker.
    let h = harness(1, 1, 4, false);
    h.pool.closed.store(true, Ordering::SeqCst);
    let body = std::mem::replace(&mut lock(&h.spawner.bodies)[1], Body(Box::new(|| ())));
    (body.0)();
    assert_eq!(worker::current_worker_pool(), None);
    assert!(!worker::on_pool_thread(&h.pool));
    assert_eq!(h.threads(), 0);
}

#[test]
fn shutdown_returns_once_every_thread_is_done() {
    let h = harness(2, 2, 4, true);
    let threads: Vec<_> = (0..3).map(|k| h.run_held(k)).collect();
    let ran = Arc::new(AtomicUsize::new(0));
    for _ in 0..10 {
        h.submit_counting(&ran);
    }
    h.pool.shutdown();
    assert_eq!(
        *lock(&h.pool.alive),
        0,
        "the helper and both workers are done"
    );
    assert_eq!(ran.load(Ordering::SeqCst), 10);
    assert_eq!(h.threads(), 0);
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn a_worker_above_min_woken_with_work_runs_it_rather_than_retiring() {
    // min 0: the worker may retire, but only after a whole idle timeout (an hour).
    let h = harness(0, 1, 4, false);
    h.pool.spawn_worker(None).unwrap();
    let worker = h.run_held(1);
    for round in 0..3 {
        h.until_asleep(0);
        assert_eq!(h.round_trip(round), round);
        assert_eq!(h.threads(), 1);
    }
    h.close();
    worker.join().unwrap();
}

#[test]
fn a_worker_never_sleeps_on_work_queued_while_it_backed_off() {
    // No watchdog runs and the idle timeout is an hour: an item pushed while the
    // worker backs off (no wake-up: it is not asleep yet) must still be seen before
    // it sleeps, or this test hangs.
    let h = harness(1, 1, 4, false);
    let worker = h.run_held(1);
    for i in 0..2000_u32 {
        assert_eq!(h.round_trip(i), i);
        // Vary where in the worker's back-off the next push lands.
        for _ in 0..(i % 64) {
            std::hint::spin_loop();
        }
    }
    h.close();
    worker.join().unwrap();
}

#[test]
fn a_worker_that_blocks_with_work_waiting_hands_it_on() {
    use worker::BlockGuard;
    // Work waits behind it and a worker sleeps: that one is woken, none started.
    let h = harness(2, 3, 4, false);
    h.fill(0, 1);
    h.set_sleeping(1);
    let g = BlockGuard::enter(Arc::clone(&h.pool), 0);
    assert!(h.woken(1));
    assert_eq!((h.threads(), h.pool.stats().blocked), (2, 1));
    drop(g);
    assert_eq!(h.pool.stats().blocked, 0);
    // Nobody sleeps: a worker is started.
    let h = harness(1, 2, 4, false);
    h.fill(0, 1);
    let g = BlockGuard::enter(Arc::clone(&h.pool), 0);
    assert_eq!(h.threads(), 2);
    drop(g);
    // Orphans count as waiting work too.
    let h = harness(1, 2, 4, false);
    h.pool.push_orphan(noop());
    drop(BlockGuard::enter(Arc::clone(&h.pool), 0));
    assert_eq!(h.threads(), 2);
}

#[test]
fn a_worker_that_blocks_with_nothing_waiting_or_no_room_starts_nobody() {
    use worker::BlockGuard;
    let h = harness(1, 2, 4, false);
    h.set_sleeping(0);
    let g = BlockGuard::enter(Arc::clone(&h.pool), 0);
    assert_eq!(h.threads(), 1, "nothing waits behind it");
    // Nested: only the outermost section counts and reacts.
    h.fill(0, 1);
    let inner = BlockGuard::enter(Arc::clone(&h.pool), 0);
    assert_eq!((h.threads(), h.pool.stats().blocked), (1, 1));
    drop(inner);
    assert_eq!(h.pool.stats().blocked, 1);
    drop(g);
    assert_eq!(h.pool.stats().blocked, 0);
    // At max_threads.
    let h = harness(1, 1, 4, false);
    h.fill(0, 1);
    drop(BlockGuard::enter(Arc::clone(&h.pool), 0));
    assert_eq!(h.threads(), 1);
    // While spawning cools down.
    let h = harness(1, 2, 4, false);
    h.fill(0, 1);
    h.pool
        .spawn_failed_ms
        .store(h.pool.now_ms(), Ordering::SeqCst);
    drop(BlockGuard::enter(Arc::clone(&h.pool), 0));
    assert_eq!(h.threads(), 1);
}

#[test]
fn a_thief_robs_a_busy_worker_only_when_it_falls_behind_or_stalls() {
    let h = harness(2, 2, 64, false);
    let mut look = None;
    assert!(
        worker::steal(&h.pool, 1, &mut look).is_none(),
        "nothing anywhere"
    );
    h.fill(0, worker::STEAL_MIN_PENDING - 1);
    assert!(
        worker::steal(&h.pool, 1, &mut look).is_none(),
        "first look at a worker that keeps up"
    );
    h.pool.slots[0].hot.progress.fetch_add(1, Ordering::Relaxed);
    assert!(
        worker::steal(&h.pool, 1, &mut look).is_none(),
        "it made progress since"
    );
    let t = worker::steal(&h.pool, 1, &mut look);
    assert!(t.is_some(), "no progress since the last look: stalled");
    assert_eq!(
        h.pending(),
        [1, 1],
        "half of 3, rounded up: 1 run now, 1 kept"
    );
    // Fallen behind: robbed at the first look, half of its list.
    let h = harness(2, 2, 64, false);
    h.fill(0, 2 * worker::STEAL_MIN_PENDING);
    let mut look = None;
    assert!(worker::steal(&h.pool, 1, &mut look).is_some());
    let half = worker::STEAL_MIN_PENDING;
    assert_eq!(h.pending(), [half, half - 1]);
    // Blocked: everything is taken.
    let h = harness(2, 2, 64, false);
    h.fill(0, 3);
    assert!(h.pool.slots[0].block_enter());
    assert!(worker::steal(&h.pool, 1, &mut None).is_some());
    assert_eq!(h.pending(), [0, 2]);
    // Orphans before anything else.
    let h = harness(2, 2, 64, false);
    h.fill(0, 2 * worker::STEAL_MIN_PENDING);
    h.pool.push_orphan(noop());
    assert!(worker::steal(&h.pool, 1, &mut None).is_some());
    assert_eq!(h.pool.stats().orphaned, 0);
    assert_eq!(h.pending(), [2 * worker::STEAL_MIN_PENDING, 0]);
}

#[test]
fn a_thief_takes_at_most_steal_max_from_a_busy_worker() {
    let h = harness(2, 2, 1024, false);
    h.fill(0, 200);
    assert!(worker::steal(&h.pool, 1, &mut None).is_some());
    assert_eq!(
        h.pending(),
        [200 - worker::STEAL_MAX, worker::STEAL_MAX - 1]
    );
}

#[test]
fn a_sleeper_woken_to_steal_steals_rather_than_retiring() {
    // Two workers above min 0; worker 0's body stays held (it never runs, but counts
    // as awake), worker 1 runs and sleeps. Items piling up on worker 0 wake worker 1,
    // with nothing on its own list: it must steal them, not retire.
    let h = harness(0, 2, 64, false);
    h.pool.spawn_worker(None).unwrap();
    h.pool.spawn_worker(None).unwrap();
    let worker = h.run_held(2);
    h.until_asleep(1);
    h.pool.last_used.store(0, Ordering::Relaxed);
    let ran = Arc::new(AtomicUsize::new(0));
    for _ in 0..worker::STEAL_MIN_PENDING {
        h.submit_counting(&ran);
    }
    while ran.load(Ordering::SeqCst) == 0 {
        std::thread::yield_now();
    }
    assert_eq!(h.threads(), 2);
    assert!(h.pool.slots[1].is_live());
    h.close();
    // Worker 0 never runs: what it kept is run by the closing worker 1 or left.
    lock(&h.spawner.bodies).clear();
    drop(worker);
}
