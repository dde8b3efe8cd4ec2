//! Many processes on one volume at once, for a bounded time: pattern and stdin writes,
//! interrupted writes and their `--resume`, `rm`, `verify` and `ls`, all with `--wait`.
//! Afterwards every write that exited 0 and was not removed is listed and reads back
//! byte-exact, `verify` is clean, the space used is exactly what the live objects and
//! the two tables take, and removing everything gives back a fresh volume's free space.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::harness::{bytes, Run, Scratch};

/// How long new operations are started; the test ends once the running ones finish.
const RUN_FOR: Duration = Duration::from_secs(12);
/// Every process waits at most this long for the volume.
const WAIT: &str = "--wait=30s";
const BS: u64 = 4096;

/// What a live object must hold.
#[derive(Debug, Clone)]
enum Expect {
    Pattern { size: u64, seed: u64 },
    Bytes(Vec<u8>),
}

#[derive(Debug, Default)]
struct Model {
    /// Objects whose write (or resume) exited 0 and that no `rm` removed.
    live: BTreeMap<String, Expect>,
    /// Objects an `rm` is removing right now.
    removing: BTreeSet<String>,
    /// Counts per outcome, for the report.
    tally: BTreeMap<String, u64>,
}

impl Model {
    fn count(&mut self, what: impl Into<String>) {
        *self.tally.entry(what.into()).or_default() += 1;
    }
}

/// A small xorshift generator per worker.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Exit status 3 is allowed only for these reasons.
fn allowed_refusal(run: &Run, also: &[&str]) -> bool {
    run.code == 3
        && ["still in use", "no space"]
            .iter()
            .chain(also)
            .any(|why| run.stderr.contains(why))
}

/// The exit status and stderr of an interrupted process (whose stderr has the
/// interrupt notice besides any error).
fn interrupted_output(child: std::process::Child) -> Run {
    use std::os::unix::process::ExitStatusExt;
    let out = child.wait_with_output().expect("waiting");
    Run {
        code: out
            .status
            .code()
            .unwrap_or_else(|| 128 + out.status.signal().unwrap_or(0)),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        stdout_bytes: out.stdout,
    }
}

/// "what refused (why)" for the tally.
fn refused(what: &str, run: &Run) -> String {
    let why = if run.stderr.contains("no space") {
        "no space"
    } else if run.stderr.contains("still in use") {
        "busy"
    } else {
        "nothing to resume"
    };
    format!("{what} refused ({why})")
}

fn fail(what: &str, run: &Run) -> ! {
    panic!(
        "{what}: exit {}\nstdout: {}\nstderr: {}",
        run.code, run.stdout, run.stderr
    )
}

fn worker(s: &Scratch, v: &str, kind: usize, model: &Mutex<Model>, end: Instant) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ ((kind as u64 + 1) * 0x1234_5678_9abc));
    let mut i = 0u64;
    while Instant::now() < end {
        i += 1;
        // Writers hold back while the volume has many objects, so removals keep up and
        // the volume does not fill (a full volume only measures refusals).
        if kind < 3 && model.lock().unwrap().live.len() >= 8 {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        match kind {
            // Pattern writes.
            0 => {
                let name = format!("p{i}");
                let size = (16 + rng.below(384)) * BS + rng.below(BS);
                let seed = rng.next();
                let run = s.run(&[
                    WAIT,
                    "write",
                    v,
                    "--pattern",
                    "--size",
                    &size.to_string(),
                    "--seed",
                    &seed.to_string(),
                    "--name",
                    &name,
                    "--commit-every",
                    "256K",
                ]);
                let mut m = model.lock().unwrap();
                match run.code {
                    0 => {
                        m.live.insert(name, Expect::Pattern { size, seed });
                        m.count("pattern ok");
                    }
                    _ if allowed_refusal(&run, &[]) => m.count(refused("pattern", &run)),
                    _ => fail("pattern write", &run),
                }
            }
            // Writes from stdin.
            1 => {
                let name = format!("s{i}");
                let data = bytes(1 + rng.below(1 << 20) as usize, rng.next());
                let run = s.run_with_stdin(&[WAIT, "write", v, "-", "--name", &name], &data);
                let mut m = model.lock().unwrap();
                match run.code {
                    0 => {
                        m.live.insert(name, Expect::Bytes(data));
                        m.count("stdin ok");
                    }
                    // Out of space mid-stream may leave a partial object either way.
                    _ if allowed_refusal(&run, &[]) => m.count(refused("stdin", &run)),
                    _ => fail("stdin write", &run),
                }
            }
            // Interrupted pattern writes, then their resume.
            2 => {
                let name = format!("r{i}");
                let size = (256 + rng.below(512)) * BS;
                let seed = rng.next();
                let child = s
                    .command(&[
                        WAIT,
                        "write",
                        v,
                        "--pattern",
                        "--size",
                        &size.to_string(),
                        "--seed",
                        &seed.to_string(),
                        "--name",
                        &name,
                        "--commit-every",
                        "64K",
                    ])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("spawning a write");
                std::thread::sleep(Duration::from_millis(rng.below(150)));
                let _ = std::process::Command::new("kill")
                    .args(["-INT", &child.id().to_string()])
                    .status();
                let run = interrupted_output(child);
                assert!(!run.stderr.contains("internal error"), "{}", run.stderr);
                let mut m = model.lock().unwrap();
                match run.code {
                    0 => {
                        m.live.insert(name, Expect::Pattern { size, seed });
                        m.count("interrupted write finished");
                        continue;
                    }
                    130 => m.count("write interrupted"),
                    _ if allowed_refusal(&run, &[]) => m.count(refused("interrupted write", &run)),
                    _ => fail("interrupted write", &run),
                }
                drop(m);
                // This worker alone resumes or removes what it interrupted, so no other
                // worker races it for the object.
                if rng.below(3) == 0 {
                    let run = s.run(&[WAIT, "rm", v, &name]);
                    let mut m = model.lock().unwrap();
                    match run.code {
                        0 => m.count("rm of an interrupted write ok"),
                        _ if allowed_refusal(&run, &["no object named"]) => {
                            m.count(refused("rm of an interrupted write", &run))
                        }
                        _ => fail("rm of an interrupted write", &run),
                    }
                    continue;
                }
                let run = s.run(&[WAIT, "write", v, "--resume", "--name", &name]);
                let mut m = model.lock().unwrap();
                match run.code {
                    0 => {
                        m.live.insert(name, Expect::Pattern { size, seed });
                        m.count("resume ok");
                    }
                    // Interrupted before its first commit: nothing to resume.
                    _ if allowed_refusal(&run, &["no object named"]) => {
                        m.count(refused("resume", &run))
                    }
                    _ => fail("resume", &run),
                }
            }
            // Removals: keep the volume from filling up. A write that runs out of space
            // may leave its partial object holding the rest of the space: those go first.
            3 => {
                if remove_a_partial(s, v) {
                    continue;
                }
                let pick = {
                    let mut m = model.lock().unwrap();
                    let names: Vec<&String> = m.live.keys().collect();
                    let pick = (names.len() > 5)
                        .then(|| names[rng.below(names.len() as u64) as usize].clone());
                    if let Some(name) = &pick {
                        m.removing.insert(name.clone());
                    }
                    pick
                };
                let Some(name) = pick else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                let run = s.run(&[WAIT, "rm", v, &name]);
                let mut m = model.lock().unwrap();
                m.removing.remove(&name);
                match run.code {
                    0 => {
                        m.live.remove(&name);
                        m.count("rm ok");
                    }
                    _ if allowed_refusal(&run, &[]) => m.count(refused("rm", &run)),
                    _ => fail("rm", &run),
                }
            }
            // Readers: the whole volume verifies clean at every moment a reader gets it.
            4 => {
                std::thread::sleep(Duration::from_millis(rng.below(30)));
                let run = s.run(&["--json", WAIT, "verify", v]);
                let mut m = model.lock().unwrap();
                match run.code {
                    0 => m.count("verify clean"),
                    _ if allowed_refusal(&run, &[]) => m.count(refused("verify", &run)),
                    _ => fail("verify", &run),
                }
            }
            _ => {
                std::thread::sleep(Duration::from_millis(rng.below(30)));
                // What `ls` lists includes everything recorded before it started and
                // not removed since (a removal only starts with the volume free).
                let before: Vec<String> = model.lock().unwrap().live.keys().cloned().collect();
                let run = s.run(&["--json", WAIT, "ls", v]);
                let mut m = model.lock().unwrap();
                match run.code {
                    0 => {
                        let doc = run.json();
                        let listed: Vec<&str> = doc["objects"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|o| o["name"].as_str().unwrap())
                            .collect();
                        let kept =
                            |n: &&String| m.live.contains_key(*n) && !m.removing.contains(*n);
                        for name in before.iter().filter(kept) {
                            assert!(listed.contains(&name.as_str()), "{name} lost: {listed:?}");
                        }
                        m.count("ls ok");
                    }
                    _ if allowed_refusal(&run, &[]) => m.count(refused("ls", &run)),
                    _ => fail("ls", &run),
                }
            }
        }
    }
}

/// Removes one incomplete object left by a pattern or stdin write that was refused for
/// space (those names never become live); whether there was one.
fn remove_a_partial(s: &Scratch, v: &str) -> bool {
    let run = s.run(&["--json", WAIT, "ls", v]);
    if run.code != 0 {
        return false;
    }
    let doc = run.json();
    let partial = doc["objects"].as_array().and_then(|all| {
        all.iter()
            .filter(|o| o["complete"] == false)
            .filter_map(|o| o["name"].as_str())
            .find(|n| !n.starts_with('r'))
            .map(str::to_string)
    });
    let Some(name) = partial else {
        return false;
    };
    let run = s.run(&[WAIT, "rm", v, &name]);
    if run.code != 0 && !allowed_refusal(&run, &[]) {
        fail("rm of a partial object", &run);
    }
    true
}

/// Before locking, concurrent writers lost each other's committed objects and left
/// stale ranges; nothing here may be lost, damaged or leaked.
#[test]
fn many_processes_on_one_volume_lose_nothing_and_leak_nothing() {
    let s = Arc::new(Scratch::new());
    let v = s.volume("v.img", "64MiB");
    let fresh = s.json(0, &["info", &v]);
    let fresh_free = fresh["free_bytes"].as_u64().unwrap();
    let model = Arc::new(Mutex::new(Model::default()));
    let end = Instant::now() + RUN_FOR;
    let workers: Vec<_> = (0..6)
        .map(|kind| {
            let (s, v, model) = (Arc::clone(&s), v.clone(), Arc::clone(&model));
            std::thread::spawn(move || worker(&s, &v, kind, &model, end))
        })
        .collect();
    for w in workers {
        w.join().expect("a worker failed");
    }
    let model = Arc::try_unwrap(model).unwrap().into_inner().unwrap();
    eprintln!("stress tally: {:?}", model.tally);
    for needed in ["pattern ok", "stdin ok", "rm ok", "verify clean", "ls ok"] {
        assert!(
            model.tally.get(needed).is_some_and(|&n| n > 0),
            "no {needed:?} in {:?}",
            model.tally
        );
    }

    // Every recorded write is there, complete, with its bytes.
    let listing = s.json(0, &["ls", &v]);
    let listed: BTreeMap<String, serde_json::Value> = listing["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (o["name"].as_str().unwrap().to_string(), o.clone()))
        .collect();
    for (name, expect) in &model.live {
        let o = listed
            .get(name)
            .unwrap_or_else(|| panic!("{name} lost; listed: {:?}", listed.keys()));
        assert_eq!(o["complete"], true, "{o}");
        match expect {
            Expect::Pattern { size, seed } => {
                assert_eq!(o["size_bytes"].as_u64(), Some(*size), "{o}");
                assert_eq!(o["kind"], "pattern", "{o}");
                assert_eq!(o["seed"].as_u64(), Some(*seed), "{o}");
                s.expect(0, &["verify", &v, "--object", name]);
            }
            Expect::Bytes(data) => {
                let run = s.expect(0, &["read", &v, name, "-o", "-"]);
                assert!(run.stdout_bytes == *data, "{name}: bytes differ");
            }
        }
    }
    let doc = s.json(0, &["verify", &v]);
    assert_eq!(doc["clean"], true, "{doc}");

    // Every block is a superblock, a block of a usable slot's table, an object's data
    // or checksum block, or free: nothing leaked (the accounting the crash tests use).
    let names: Vec<String> = {
        let vol = stack_volume::Volume::open(
            &s.path(&v),
            &stack_volume::OpenOptions {
                read_only: true,
                ..stack_volume::OpenOptions::default()
            },
        )
        .expect("opening the volume after the run");
        crate::volume::accounting::check(&vol, &**vol.device())
            .unwrap_or_else(|why| panic!("space not accounted for: {why}"));
        vol.objects().into_iter().map(|o| o.name).collect()
    };

    // And removing everything gives the space of a fresh volume back.
    for name in &names {
        s.expect(0, &["rm", &v, name]);
    }
    let info = s.json(0, &["info", &v]);
    assert_eq!(info["objects"], 0, "{info}");
    assert_eq!(info["free_bytes"].as_u64(), Some(fresh_free), "{info}");
}
