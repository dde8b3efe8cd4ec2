//! Killed mid-write: the `stackctl` binary SIGKILLed at random (seeded) moments during
//! pattern writes, file writes and removals, then checked against a model of what was
//! committed.
//!
//! After every kill: `verify` exits 0 and reports the volume clean; `ls --json` shows
//! exactly the committed objects as complete, each with its full size; every committed
//! object reads back (files byte for byte against their input, pattern objects checked
//! block by block by `read` and byte-identical to their first read); an interrupted
//! pattern write left incomplete is finished by `write --resume`; every block is
//! accounted for (a superblock, a usable slot's table, a listed object's data or
//! checksums, or free: `volume::accounting`). At the end every object is removed and the
//! free space must equal a fresh volume's: nothing leaked.
//!
//! `STACK_SOAK_KILLS` sets the number of kills (default 24) and `STACK_SOAK_SEED` the
//! seed; `cargo xtask soak --kills N` runs this test with them and prints its tally.

use super::mutate::Rng;
use crate::cli::harness::{Run, Scratch};
use crate::volume::accounting;
use stack_bio::{Device, FileDevice};
use stack_volume::{OpenOptions, Volume};
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

/// Environment variable: number of kills to make.
const ENV_KILLS: &str = "STACK_SOAK_KILLS";
/// Environment variable: the seed of the kill schedule.
const ENV_SEED: &str = "STACK_SOAK_SEED";
/// Kills in the normal test run.
const DEFAULT_KILLS: u64 = 24;
/// Seed in the normal test run.
const DEFAULT_SEED: u64 = 0x50AC_0001;
/// Operations per wanted kill before giving up (a bound on the loop).
const MAX_OPS_PER_KILL: u64 = 10;
const VOLUME: &str = "vol";
const VOLUME_SIZE: &str = "320MiB";
const MIB: u64 = 1 << 20;
/// Most `ls` polls while waiting for a first commit (2 ms apart).
const MAX_POLLS: u32 = 2_500;
/// Most bytes kept in committed objects, so every write has room.
const MODEL_LIMIT_BYTES: u64 = 180 * MIB;
/// Input files for file writes: (name, length in bytes). Odd lengths end mid-block.
const INPUTS: [(&str, usize); 3] = [
    ("in-a", 1_000_003),
    ("in-b", 3 * 1024 * 1024),
    ("in-c", 4_500_001),
];

/// What one soak run saw.
#[derive(Debug, Default)]
pub struct Tally {
    /// Processes actually killed (they had not finished yet).
    pub kills: u64,
    /// Operations that finished before their kill came.
    pub completed: u64,
    /// `verify` runs after an operation that exited 0 and reported a clean volume.
    pub clean_verifies: u64,
    /// Interrupted pattern writes finished by `write --resume`.
    pub resumed: u64,
    /// Everything that broke a promise, one line each.
    pub failures: Vec<String>,
}

impl Tally {
    /// One line: `kills K, completed C, clean verifies V, resumed R, failures F`.
    pub fn line(&self) -> String {
        format!(
            "kills {}, completed {}, clean verifies {}, resumed {}, failures {}",
            self.kills,
            self.completed,
            self.clean_verifies,
            self.resumed,
            self.failures.len()
        )
    }
}

/// A committed object as the model knows it.
#[derive(Debug, Clone)]
enum Expect {
    /// Stored from input file `INPUTS[index]`.
    File { input: usize },
    /// Pattern data of `size_bytes`; `digest` of its content once read.
    Pattern {
        size_bytes: u64,
        digest: Option<u64>,
    },
}

impl Expect {
    fn size_bytes(&self) -> u64 {
        match self {
            Expect::File { input } => INPUTS[*input].1 as u64,
            Expect::Pattern { size_bytes, .. } => *size_bytes,
        }
    }
}

/// The operation a child process runs.
#[derive(Debug, Clone)]
enum Op {
    Write { name: String, expect: Expect },
    Remove { name: String },
}

/// When the child is killed.
#[derive(Debug, Clone, Copy)]
enum Kill {
    /// After a random delay of `min_us + below(spread_us)`.
    After { min_us: u64, spread_us: u64 },
    /// As soon as the object it writes is listed (its first commit): most likely
    /// leaves an incomplete object for `--resume`.
    OnFirstCommit,
}

impl Kill {
    fn within(min_us: u64, max_us: u64) -> Kill {
        assert!(max_us > min_us);
        Kill::After {
            min_us,
            spread_us: max_us - min_us,
        }
    }
}

/// The kill loop on one volume.
struct Soak {
    scratch: Scratch,
    rng: Rng,
    model: BTreeMap<String, Expect>,
    inputs: Vec<Vec<u8>>,
    fresh_free_bytes: u64,
    tally: Tally,
}

fn digest(data: &[u8]) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    data.hash(&mut hasher);
    hasher.finish()
}

impl Soak {
    fn new(seed: u64) -> Soak {
        let scratch = Scratch::new();
        let inputs: Vec<Vec<u8>> = INPUTS
            .iter()
            .enumerate()
            .map(|(i, (name, len))| {
                let mut data = vec![0; *len];
                Rng::new(seed ^ (i as u64 + 1)).fill(&mut data);
                std::fs::write(scratch.path(name), &data).expect("writing an input file");
                data
            })
            .collect();
        scratch.expect(
            0,
            &[
                "format",
                VOLUME,
                "--size",
                VOLUME_SIZE,
                "--progress",
                "none",
            ],
        );
        let info = scratch.json(0, &["info", VOLUME]);
        let fresh_free_bytes = info["free_bytes"].as_u64().expect("info has free_bytes");
        Soak {
            scratch,
            rng: Rng::new(seed),
            model: BTreeMap::new(),
            inputs,
            fresh_free_bytes,
            tally: Tally::default(),
        }
    }

    fn model_bytes(&self) -> u64 {
        self.model.values().map(Expect::size_bytes).sum()
    }

    /// The next operation and when to kill it.
    fn next_op(&mut self, serial: u64) -> (Op, Kill) {
        let remove = !self.model.is_empty() && (self.model.len() >= 5 || self.rng.one_in(4));
        if remove || self.model_bytes() + 120 * MIB > MODEL_LIMIT_BYTES {
            let names: Vec<&String> = self.model.keys().collect();
            let name = names[self.rng.index(names.len())].clone();
            return (Op::Remove { name }, Kill::within(0, 25_000));
        }
        match self.rng.below(3) {
            // Longer than one commit interval, so a kill can leave an incomplete object.
            0 => {
                let size_bytes = (72 + self.rng.below(40)) * MIB;
                let expect = Expect::Pattern {
                    size_bytes,
                    digest: None,
                };
                // Until one resume was seen, every big write is killed at its first commit.
                let kill = if self.rng.one_in(2) || self.tally.resumed == 0 {
                    Kill::OnFirstCommit
                } else {
                    Kill::within(50_000, 400_000)
                };
                (
                    Op::Write {
                        name: format!("big{serial}"),
                        expect,
                    },
                    kill,
                )
            }
            1 => {
                let size_bytes = (1 + self.rng.below(6)) * MIB + self.rng.below(2) * 12_345;
                let expect = Expect::Pattern {
                    size_bytes,
                    digest: None,
                };
                (
                    Op::Write {
                        name: format!("pat{serial}"),
                        expect,
                    },
                    Kill::within(0, 50_000),
                )
            }
            _ => {
                let input = self.rng.index(INPUTS.len());
                let expect = Expect::File { input };
                (
                    Op::Write {
                        name: format!("file{serial}"),
                        expect,
                    },
                    Kill::within(0, 40_000),
                )
            }
        }
    }

    fn args(op: &Op) -> Vec<String> {
        let mut args: Vec<String> = Vec::new();
        match op {
            Op::Write {
                name,
                expect: Expect::File { input },
            } => {
                args.extend(["write", VOLUME, INPUTS[*input].0, "--name", name].map(String::from));
            }
            Op::Write {
                name,
                expect: Expect::Pattern { size_bytes, .. },
            } => {
                args.extend(["write", VOLUME, "--pattern", "--name", name].map(String::from));
                args.extend(["--size".to_string(), size_bytes.to_string()]);
            }
            Op::Remove { name } => args.extend(["rm", VOLUME, name].map(String::from)),
        }
        if matches!(op, Op::Write { .. }) {
            // Several commits inside a big write (the default interval is longer than
            // these writes take), so kills land between them.
            args.extend(["--commit-every", "16M"].map(String::from));
        }
        args.extend(["--progress", "none"].map(String::from));
        args
    }

    /// Runs `op` in a child and SIGKILLs it when `kill` says.
    /// Returns true when the child finished (exit 0 checked) before the kill.
    fn run_and_kill(&mut self, op: &Op, kill: Kill) -> Result<bool, String> {
        let args = Self::args(op);
        let mut child = self
            .scratch
            .command(&args.iter().map(String::as_str).collect::<Vec<_>>())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("spawning {args:?}: {e}"))?;
        match (kill, op) {
            (Kill::After { min_us, spread_us }, _) => {
                std::thread::sleep(Duration::from_micros(min_us + self.rng.below(spread_us)));
            }
            (Kill::OnFirstCommit, Op::Write { .. }) => {
                // Bounded poll: the write's first commit (which lists its object) moves
                // the superblock generation on. Read from the raw image: `ls` is refused
                // while the writer holds the volume.
                let before = self.committed_generation();
                for _ in 0..MAX_POLLS {
                    if child
                        .try_wait()
                        .map_err(|e| format!("waiting: {e}"))?
                        .is_some()
                        || self.committed_generation() > before
                    {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
            (Kill::OnFirstCommit, Op::Remove { .. }) => {}
        }
        let finished = child
            .try_wait()
            .map_err(|e| format!("waiting: {e}"))?
            .is_some();
        if !finished {
            // Sends SIGKILL; a child that exits in between is reaped below all the same.
            child.kill().map_err(|e| format!("killing: {e}"))?;
        }
        let output = child
            .wait_with_output()
            .map_err(|e| format!("waiting: {e}"))?;
        let run = Run::from_output(output, &args);
        if finished {
            if run.code != 0 {
                return Err(format!("{args:?} exited {}: {}", run.code, run.stderr));
            }
            self.tally.completed += 1;
        } else if run.code == 128 + libc::SIGKILL {
            self.tally.kills += 1;
        } else if run.code == 0 {
            self.tally.completed += 1;
            return Ok(true);
        } else {
            return Err(format!(
                "{args:?} exited {} before its kill: {}",
                run.code, run.stderr
            ));
        }
        Ok(finished)
    }

    /// The highest generation of a superblock slot whose checksum holds, read from the
    /// image without a lock (a test may; `stackctl` never does).
    fn committed_generation(&self) -> u64 {
        use stack_volume::format::{Superblock, SB_SLOT_OFFSETS};
        use std::io::{Read, Seek, SeekFrom};
        let Ok(mut file) = std::fs::File::open(self.scratch.path(VOLUME)) else {
            return 0;
        };
        let mut best = 0;
        for slot in [0u8, 1] {
            let mut buf = vec![0u8; 4096];
            let read = file
                .seek(SeekFrom::Start(SB_SLOT_OFFSETS[usize::from(slot)]))
                .and_then(|_| file.read_exact(&mut buf));
            if let (Ok(()), Ok(sb)) = (read, Superblock::decode(&buf, slot)) {
                best = best.max(sb.generation);
            }
        }
        best
    }

    /// `ls --json` as (name → (complete, size)).
    fn listing(&self) -> Result<BTreeMap<String, (bool, u64)>, String> {
        let run = self.scratch.run(&["--json", "ls", VOLUME]);
        if run.code != 0 {
            return Err(format!("ls exited {}: {}", run.code, run.stderr));
        }
        let doc = run.json();
        let objects = doc["objects"]
            .as_array()
            .ok_or("ls --json without objects")?;
        let mut listing = BTreeMap::new();
        for object in objects {
            let name = object["name"]
                .as_str()
                .ok_or("object without a name")?
                .to_string();
            let complete = object["complete"]
                .as_bool()
                .ok_or("object without complete")?;
            let size = object["size_bytes"]
                .as_u64()
                .ok_or("object without size_bytes")?;
            if listing.insert(name.clone(), (complete, size)).is_some() {
                return Err(format!("ls lists {name} twice"));
            }
        }
        Ok(listing)
    }

    fn verify_clean(&mut self, when: &str) -> Result<(), String> {
        let run = self
            .scratch
            .run(&["--json", "verify", VOLUME, "--progress", "none"]);
        if run.code != 0 || run.json()["clean"] != true {
            return Err(format!(
                "verify {when} exited {}: {}{}",
                run.code, run.stdout, run.stderr
            ));
        }
        self.tally.clean_verifies += 1;
        Ok(())
    }

    /// Reads `name` back and checks it against the model (recording a pattern's digest).
    fn read_back(&mut self, name: &str) -> Result<(), String> {
        let out = self.scratch.path("readback.bin");
        let out_str = out.to_str().expect("utf-8 temp path");
        let run = self
            .scratch
            .run(&["read", VOLUME, name, "-o", out_str, "--progress", "none"]);
        if run.code != 0 {
            return Err(format!("read {name} exited {}: {}", run.code, run.stderr));
        }
        let data = std::fs::read(&out).map_err(|e| format!("reading {out_str}: {e}"))?;
        let expect = self
            .model
            .get_mut(name)
            .ok_or_else(|| format!("{name} not in the model"))?;
        if data.len() as u64 != expect.size_bytes() {
            return Err(format!(
                "{name}: read {} bytes, committed {}",
                data.len(),
                expect.size_bytes()
            ));
        }
        match expect {
            Expect::File { input } => {
                if data != self.inputs[*input] {
                    return Err(format!("{name}: content differs from {}", INPUTS[*input].0));
                }
            }
            Expect::Pattern { digest: known, .. } => {
                let now = digest(&data);
                if known.is_some_and(|d| d != now) {
                    return Err(format!(
                        "{name}: pattern content changed since its first read"
                    ));
                }
                *known = Some(now);
            }
        }
        Ok(())
    }

    /// Every block of the volume is a superblock, a usable slot's object table, a data
    /// or checksum block of a listed object, or counted free (`volume::accounting`).
    fn check_accounting(&self, when: &str) -> Result<(), String> {
        let path = self.scratch.path(VOLUME);
        let device: Arc<dyn Device> = Arc::new(
            FileDevice::open(&path, &stack_bio::OpenOptions::new().read_only(true))
                .map_err(|e| format!("opening the volume file: {e}"))?,
        );
        let vol = Volume::open_device(
            device.clone(),
            &OpenOptions {
                read_only: true,
                ..OpenOptions::default()
            },
        )
        .map_err(|e| format!("opening the volume: {e}"))?;
        accounting::check(&vol, &*device).map_err(|e| format!("space {when}: {e}"))
    }

    /// After `op` (finished or killed): settle the object it touched, then compare the
    /// whole listing with the model and read objects back.
    fn check(&mut self, op: &Op, finished: bool, read_all: bool) -> Result<(), String> {
        self.verify_clean("after the kill")?;
        self.check_accounting("after the kill")?;
        let mut listing = self.listing()?;
        match op {
            Op::Write { name, expect } => match listing.remove(name) {
                Some((true, size)) => {
                    if size != expect.size_bytes() {
                        return Err(format!(
                            "{name} complete with {size} of {} bytes",
                            expect.size_bytes()
                        ));
                    }
                    self.model.insert(name.clone(), expect.clone());
                }
                Some((false, _)) if finished => {
                    return Err(format!("{name} incomplete after exit 0"))
                }
                Some((false, _)) => self.settle_incomplete(name, expect)?,
                None if finished => return Err(format!("{name} missing after exit 0")),
                None => {}
            },
            Op::Remove { name } => match listing.remove(name) {
                Some(_) if finished => {
                    return Err(format!("{name} still listed after rm exited 0"))
                }
                Some((true, size)) if size == self.model[name].size_bytes() => {}
                Some(state) => return Err(format!("{name} listed as {state:?} after a killed rm")),
                None => {
                    self.model.remove(name);
                }
            },
        }
        let touched = match op {
            Op::Write { name, .. } | Op::Remove { name } => name.clone(),
        };
        for (name, expect) in &self.model {
            if *name == touched {
                continue;
            }
            match listing.remove(name) {
                Some((true, size)) if size == expect.size_bytes() => {}
                other => return Err(format!("committed {name} listed as {other:?}")),
            }
        }
        if let Some((name, state)) = listing.into_iter().next() {
            return Err(format!("{name} listed as {state:?} but never committed"));
        }
        let names: Vec<String> = self.model.keys().cloned().collect();
        for name in names {
            if read_all || name == touched {
                self.read_back(&name)?;
            }
        }
        Ok(())
    }

    /// An interrupted write left `name` incomplete: a pattern is resumed, a file removed.
    fn settle_incomplete(&mut self, name: &str, expect: &Expect) -> Result<(), String> {
        match expect {
            Expect::Pattern { .. } => {
                let run = self.scratch.run(&[
                    "write",
                    VOLUME,
                    "--resume",
                    "--name",
                    name,
                    "--progress",
                    "none",
                ]);
                if run.code != 0 {
                    return Err(format!(
                        "resume of {name} exited {}: {}",
                        run.code, run.stderr
                    ));
                }
                match self.listing()?.get(name) {
                    Some(&(true, size)) if size == expect.size_bytes() => {}
                    other => return Err(format!("{name} after --resume: {other:?}")),
                }
                self.tally.resumed += 1;
                self.model.insert(name.to_string(), expect.clone());
                self.verify_clean("after a resume")
            }
            Expect::File { .. } => {
                let run = self
                    .scratch
                    .run(&["rm", VOLUME, name, "--progress", "none"]);
                if run.code != 0 {
                    return Err(format!(
                        "rm of incomplete {name} exited {}: {}",
                        run.code, run.stderr
                    ));
                }
                Ok(())
            }
        }
    }

    /// Removes everything; the free space must be a fresh volume's.
    fn drain(&mut self) -> Result<(), String> {
        let names: Vec<String> = self.model.keys().cloned().collect();
        for name in names {
            self.read_back(&name)?;
            let run = self
                .scratch
                .run(&["rm", VOLUME, &name, "--progress", "none"]);
            if run.code != 0 {
                return Err(format!(
                    "final rm {name} exited {}: {}",
                    run.code, run.stderr
                ));
            }
            self.model.remove(&name);
        }
        self.verify_clean("after removing everything")?;
        self.check_accounting("after removing everything")?;
        let info = self.scratch.json(0, &["info", VOLUME]);
        let free = info["free_bytes"]
            .as_u64()
            .ok_or("info without free_bytes")?;
        if free != self.fresh_free_bytes || info["objects"] != 0 || info["incomplete_objects"] != 0
        {
            return Err(format!(
                "leak: empty volume has {free} bytes free, fresh had {}: {info}",
                self.fresh_free_bytes
            ));
        }
        Ok(())
    }
}

/// Runs the kill loop until `kills` processes were killed (or the loop bound), then
/// drains the volume. Stops at the first failure: later checks would only echo it.
pub fn soak(kills: u64, seed: u64) -> Tally {
    let mut soak = Soak::new(seed);
    let mut serial = 0;
    while soak.tally.kills < kills && serial < kills * MAX_OPS_PER_KILL {
        serial += 1;
        let (op, kill) = soak.next_op(serial);
        let step = soak
            .run_and_kill(&op, kill)
            .and_then(|finished| soak.check(&op, finished, serial % 4 == 0));
        if let Err(e) = step {
            soak.tally
                .failures
                .push(format!("seed {seed:#x} op {serial} {op:?}: {e}"));
            return soak.tally;
        }
    }
    if soak.tally.kills < kills {
        soak.tally.failures.push(format!(
            "only {} kills in {serial} operations",
            soak.tally.kills
        ));
    }
    if let Err(e) = soak.drain() {
        soak.tally
            .failures
            .push(format!("seed {seed:#x} drain: {e}"));
    }
    soak.tally
}

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(text) => {
            let text = text.trim();
            let parsed = match text.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => text.parse(),
            };
            parsed.unwrap_or_else(|e| panic!("{name}={text}: {e}"))
        }
        Err(_) => default,
    }
}

#[test]
fn killed_writes_keep_the_committed_state() {
    let kills = env_u64(ENV_KILLS, DEFAULT_KILLS);
    let seed = env_u64(ENV_SEED, DEFAULT_SEED);
    let tally = soak(kills, seed);
    println!("soak tally (seed {seed:#x}): {}", tally.line());
    for failure in &tally.failures {
        println!("soak failure: {failure}");
    }
    assert!(tally.failures.is_empty(), "{:#?}", tally.failures);
    assert!(tally.kills >= kills, "{}", tally.line());
    assert!(tally.clean_verifies >= tally.kills, "{}", tally.line());
    assert!(
        tally.resumed >= 1,
        "no interrupted write was resumed: {}",
        tally.line()
    );
}
