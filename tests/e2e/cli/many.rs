//! Several drives in one run (`burn-in`/`verify`/`probe` with many targets): a row and a
//! `drives` entry per drive, progress lines tagged with their target, the worst status,
//! checks on every target before any is written, drive identity (a loop device's
//! backing file), a drive lost mid-run (a loop device whose capacity drops to 0) while
//! the others finish, and `--smart` with no smartctl, and with a recorded one.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::devices::Loop;
use super::harness::{patch, Scratch};

fn targets(doc: &serde_json::Value) -> Vec<String> {
    doc["drives"]
        .as_array()
        .expect("a drives array")
        .iter()
        .map(|d| d["target"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn three_files_are_burned_in_in_one_run_each_with_its_row_and_tagged_progress() {
    let s = Scratch::new();
    let run = s.expect(
        0,
        &[
            "--json",
            "--progress",
            "json",
            "burn-in",
            "a.img",
            "b.img",
            "c.img",
            "--size",
            "16M",
        ],
    );
    let doc = run.json();
    assert_eq!(doc["command"], "burn-in");
    assert_eq!(doc["exit_status"], 0);
    assert_eq!(targets(&doc), ["a.img", "b.img", "c.img"]);
    for drive in doc["drives"].as_array().unwrap() {
        assert_eq!(drive["verdict"], "clean", "{drive}");
        assert_eq!(drive["exit_status"], 0);
        assert_eq!(drive["size_bytes"], 16 << 20);
        assert!(
            drive["written_bytes"].as_u64().unwrap() > 15 << 20,
            "{drive}"
        );
        assert_eq!(drive["read_bytes"], drive["written_bytes"]);
        assert_eq!(drive["damaged_bytes"], 0);
        assert!(drive["lost"].is_null());
        // Each drive carries its single-target document.
        assert_eq!(drive["report"]["verify"]["clean"], true, "{drive}");
        assert_eq!(drive["report"]["format"]["target"], drive["target"]);
    }
    assert_eq!(doc["total"]["drives"], 3);
    assert_eq!(doc["total"]["verdicts"]["clean"], 3);
    // Every progress line names its target; every target has a write and a verify phase.
    let mut seen = BTreeSet::new();
    for line in run.stderr.lines().filter(|l| l.starts_with('{')) {
        let event: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        let target = event["target"]
            .as_str()
            .unwrap_or_else(|| panic!("untagged: {line}"));
        seen.insert((
            target.to_string(),
            event["phase"].as_str().unwrap().to_string(),
        ));
    }
    for t in ["a.img", "b.img", "c.img"] {
        for phase in ["write", "verify"] {
            assert!(
                seen.contains(&(t.to_string(), phase.to_string())),
                "{seen:?}"
            );
        }
    }
    // The human summary: a detail section per drive, then the table and a total.
    let text = s.expect(0, &["burn-in", "a.img", "b.img", "c.img"]).stdout;
    let table: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("TARGET"))
        .collect();
    assert_eq!(table.len(), 5, "{text}");
    assert!(
        table[0].contains("MODEL/SERIAL") && table[0].contains("DAMAGED"),
        "{text}"
    );
    for (line, name) in table[1..4].iter().zip(["a.img", "b.img", "c.img"]) {
        assert!(line.starts_with(name) && line.contains("CLEAN"), "{text}");
    }
    assert!(table[4].starts_with("total: 3 drives (3 clean)"), "{text}");
    assert!(text.contains("== b.img =="), "{text}");
}

#[test]
fn one_damaged_and_one_missing_volume_never_stop_the_others_and_the_worst_status_wins() {
    let s = Scratch::new();
    s.expect(0, &["burn-in", "a.img", "b.img", "c.img", "--size", "8M"]);
    // Flip bytes in the middle of b.img's data.
    patch(&s.path("b.img"), 4 << 20, &[0xff; 64]);
    let doc = s.json(1, &["verify", "a.img", "b.img", "c.img", "gone.img"]);
    assert_eq!(targets(&doc), ["a.img", "b.img", "c.img", "gone.img"]);
    let drives = doc["drives"].as_array().unwrap();
    assert_eq!(drives[0]["verdict"], "clean");
    assert_eq!(drives[1]["verdict"], "damaged");
    assert_eq!(drives[1]["exit_status"], 1);
    assert_eq!(drives[1]["damaged_bytes"], 4096);
    assert_eq!(drives[2]["verdict"], "clean");
    assert!(drives[2]["read_bytes"].as_u64().unwrap() > 7 << 20);
    assert_eq!(drives[3]["verdict"], "failed");
    assert_eq!(drives[3]["exit_status"], 3);
    assert!(
        drives[3]["error"].as_str().unwrap().contains("gone.img"),
        "{doc}"
    );
    assert_eq!(doc["total"]["verdicts"]["clean"], 2);
    // Without the damage the worst is the missing volume's 3.
    let doc = s.json(3, &["verify", "a.img", "c.img", "gone.img"]);
    assert_eq!(doc["total"]["exit_status"], 3);
}

#[test]
fn a_refused_target_stops_the_run_before_any_target_is_written() {
    let s = Scratch::new();
    let mut foreign = vec![0u8; 4 << 20];
    foreign[1000] = 1;
    std::fs::write(s.path("data.img"), &foreign).unwrap();
    let run = s.expect(3, &["burn-in", "new.img", "data.img", "--size", "4M"]);
    assert!(
        run.stderr
            .contains("1 of 2 targets refused, nothing was written"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("data.img"), "{}", run.stderr);
    assert!(
        !s.path("new.img").exists(),
        "the file the checks created is removed again"
    );
    assert_eq!(std::fs::read(s.path("data.img")).unwrap(), foreign);
    // A target named twice (here by two paths) is a usage error.
    s.expect(2, &["burn-in", "new.img", "./new.img", "--size", "4M"]);
    s.expect(2, &["verify", "data.img", "data.img"]);
    // --ack-log and --acked belong to one volume.
    s.expect(
        2,
        &[
            "burn-in",
            "x.img",
            "y.img",
            "--size",
            "4M",
            "--ack-log",
            "log",
        ],
    );
    s.expect(2, &["verify", "x.img", "y.img", "--acked", "log"]);
}

#[test]
fn one_target_keeps_its_document_and_adds_the_drives_array() {
    let s = Scratch::new();
    let doc = s.json(0, &["burn-in", "v.img", "--size", "32M", "--smart"]);
    // Today's single-target fields stay where they were.
    assert_eq!(doc["clean"], true);
    assert_eq!(doc["verify"]["clean"], true);
    assert_eq!(doc["format"]["target"], "v.img");
    assert_eq!(targets(&doc), ["v.img"]);
    assert_eq!(doc["drives"][0]["report"]["verify"]["clean"], true);
    // --smart on a file: a note, not an error.
    let note = doc["drives"][0]["smart"]["note"].as_str().unwrap();
    assert!(note.contains("not a block device"), "{note}");
    let doc = s.json(0, &["probe", "v.img", "--force"]);
    assert_eq!(doc["verdict"]["kind"], "no-fake-found");
    assert_eq!(doc["drives"][0]["verdict"], "no-fake-found");
}

#[test]
fn ctrl_c_stops_every_drive_with_130() {
    let s = Scratch::new();
    let mut child = s
        .command(&[
            "--json",
            "--progress",
            "json",
            "burn-in",
            "a.img",
            "b.img",
            "--size",
            "2G",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning stackctl");
    let stderr = BufReader::new(child.stderr.take().unwrap());
    // Read at once: a document with surface maps outgrows the pipe, and a stackctl
    // blocked writing it never closes stderr.
    let stdout = drain(child.stdout.take().unwrap());
    let mut seen = BTreeSet::new();
    let mut lines = stderr.lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) {
            seen.insert(event["target"].as_str().unwrap_or("").to_string());
        }
        if seen.len() == 2 {
            break;
        }
    }
    // SAFETY: `kill` has no memory effects; the pid is our own child, not yet reaped.
    let sent = unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    assert_eq!(sent, 0);
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let output = std::process::Output {
        status: child.wait().unwrap(),
        stdout: stdout.join().unwrap(),
        stderr: Vec::new(),
    };
    assert_eq!(output.status.code(), Some(130), "{rest:?}");
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(doc["exit_status"], 130);
    for drive in doc["drives"].as_array().unwrap() {
        assert_eq!(drive["verdict"], "interrupted", "{drive}");
        assert_eq!(drive["exit_status"], 130);
    }
}

/// All of `pipe`, read on a thread of its own.
fn drain(mut pipe: impl std::io::Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut all = Vec::new();
        let _ = pipe.read_to_end(&mut all);
        all
    })
}

/// A loop device over a file in `/dev/shm` (memory: fast, and safe to shrink).
fn shm_loop(dir: &Path, name: &str, size_bytes: u64) -> Result<(PathBuf, Loop), String> {
    let image = dir.join(name);
    let file = std::fs::File::create(&image).map_err(|e| e.to_string())?;
    file.set_len(size_bytes).map_err(|e| e.to_string())?;
    let device = Loop::attach(&image)?;
    Ok((image, device))
}

fn shm_dir() -> Result<tempfile::TempDir, String> {
    tempfile::Builder::new()
        .prefix("stack-many-")
        .tempdir_in("/dev/shm")
        .map_err(|e| format!("no /dev/shm: {e}"))
}

#[test]
fn a_loop_device_shows_its_backing_file() {
    let dir = match shm_dir() {
        Ok(d) => d,
        Err(why) => return eprintln!("skipped: {why}"),
    };
    let (image, device) = match shm_loop(dir.path(), "ident.img", 16 << 20) {
        Ok(x) => x,
        Err(why) => return eprintln!("skipped: loop devices unavailable: {why}"),
    };
    let s = Scratch::new();
    let doc = s.json(0, &["burn-in", device.path(), "--force"]);
    let identity = &doc["drives"][0]["identity"];
    assert_eq!(identity["transport"], "loop", "{identity}");
    assert_eq!(
        identity["backing_file"],
        image.to_str().unwrap(),
        "{identity}"
    );
    assert_eq!(
        identity["kernel_name"],
        device.path().trim_start_matches("/dev/")
    );
    assert_eq!(identity["rotational"], false, "{identity}");
    // The device document every command shows carries it too.
    let device_doc = &doc["drives"][0]["report"]["verify"]["device"];
    assert_eq!(
        device_doc["identity"]["backing_file"],
        image.to_str().unwrap()
    );
    let info = s.json(0, &["info", device.path()]);
    assert_eq!(info["device"]["identity"]["transport"], "loop", "{info}");
    // The table shows the backing file where a drive shows model and serial.
    let run = s.expect(3, &["verify", device.path(), "none.img"]);
    let row = run
        .stdout
        .lines()
        .find(|l| l.starts_with(device.path()))
        .unwrap_or_else(|| panic!("no row: {}", run.stdout));
    assert!(row.contains(&format!("loop: {}", image.display())), "{row}");
    assert!(row.contains("CLEAN"), "{row}");
    assert!(run.stderr.contains("none.img"), "{}", run.stderr);
}

/// Shrinks the loop device's capacity to 0 as a drive unplugged mid-run does: the
/// backing file is cut and the loop told to re-read its size (a write still in flight
/// may grow the file again, so it is repeated until the size stays 0).
fn pull(device: &str, image: &Path) -> Result<(), String> {
    let name = device.trim_start_matches("/dev/");
    for _ in 0..20 {
        std::fs::File::options()
            .write(true)
            .open(image)
            .and_then(|f| f.set_len(0))
            .map_err(|e| e.to_string())?;
        let ok = Command::new("losetup")
            .args(["-c", device])
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return Err("losetup -c failed".into());
        }
        let size = std::fs::read_to_string(format!("/sys/block/{name}/size")).unwrap_or_default();
        if size.trim() == "0" {
            return Ok(());
        }
    }
    Err("the capacity never stayed 0".into())
}

#[test]
fn three_loop_devices_one_pulled_mid_run_the_others_finish_clean_and_it_is_lost() {
    pulled_mid_phase("write");
}

/// Pulled while it is read back, the drive's unreadable blocks are the loss, not damage.
#[test]
fn a_drive_pulled_during_its_verify_is_lost_not_damaged() {
    pulled_mid_phase("verify");
}

/// Burns in three loop devices and pulls the third (1 GiB) 32 MiB into `phase`.
fn pulled_mid_phase(phase: &str) {
    let dir = match shm_dir() {
        Ok(d) => d,
        Err(why) => return eprintln!("skipped: {why}"),
    };
    let mut loops = Vec::new();
    for (name, size) in [
        ("a.img", 64u64 << 20),
        ("b.img", 64 << 20),
        ("c.img", 1 << 30),
    ] {
        match shm_loop(dir.path(), name, size) {
            Ok(x) => loops.push(x),
            Err(why) => return eprintln!("skipped: loop devices unavailable: {why}"),
        }
    }
    let paths: Vec<&str> = loops.iter().map(|(_, l)| l.path()).collect();
    let victim = paths[2].to_string();
    let s = Scratch::new();
    let mut args = vec!["--json", "--progress", "json", "burn-in", "--force"];
    args.extend(&paths);
    let mut child = s
        .command(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning stackctl");
    let stderr = BufReader::new(child.stderr.take().unwrap());
    // Read at once: a document with surface maps outgrows the pipe, and a stackctl
    // blocked writing it never closes stderr.
    let stdout = drain(child.stdout.take().unwrap());
    let mut pulled = false;
    let mut rest = Vec::new();
    for line in stderr.lines().map_while(Result::ok) {
        if !pulled {
            let event: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            // 32 MiB into the 1 GiB drive's phase: well before its end.
            if event["target"] == victim.as_str()
                && event["phase"] == phase
                && event["done_bytes"].as_u64().unwrap_or(0) >= 32 << 20
            {
                if let Err(why) = pull(&victim, &loops[2].0) {
                    let _ = child.kill();
                    let _ = child.wait();
                    return eprintln!("skipped: cannot shrink a loop device here: {why}");
                }
                pulled = true;
            }
        }
        rest.push(line);
    }
    let output = std::process::Output {
        status: child.wait().unwrap(),
        stdout: stdout.join().unwrap(),
        stderr: Vec::new(),
    };
    assert!(
        pulled,
        "the drive finished before it could be pulled: {rest:?}"
    );
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stdout)));
    assert_eq!(output.status.code(), Some(3), "{doc}");
    assert_eq!(doc["exit_status"], 3);
    let drives = doc["drives"].as_array().unwrap();
    for clean in &drives[..2] {
        assert_eq!(clean["verdict"], "clean", "{clean}");
        assert_eq!(clean["exit_status"], 0);
        assert_eq!(clean["report"]["verify"]["clean"], true);
        assert_eq!(clean["read_bytes"], clean["written_bytes"]);
    }
    let lost = &drives[2];
    assert_eq!(lost["target"], victim.as_str());
    assert_eq!(lost["verdict"], "lost", "{lost}");
    assert_eq!(lost["exit_status"], 3);
    assert_eq!(lost["size_bytes"], 1u64 << 30);
    assert_eq!(lost["lost"]["phase"], phase, "{lost}");
    assert!(
        lost["lost"]["written_bytes"].as_u64().unwrap() >= 32 << 20,
        "{lost}"
    );
    assert_eq!(lost["damaged_bytes"], 0, "the loss is no damage: {lost}");
    if phase == "verify" {
        // What was read before the loss was checked, and it was clean.
        let verified = lost["lost"]["verified_bytes"].as_u64().unwrap();
        assert!(verified >= 32 << 20, "{lost}");
        assert!(verified < 1 << 30, "{lost}");
    }
    assert!(
        lost["lost"]["detail"].as_str().unwrap().contains("gone"),
        "{lost}"
    );
    // The fill fails with the write's error; the verify runs to its end, reading
    // nothing more from the drive.
    assert_eq!(lost["error"].is_string(), phase == "write", "{lost}");
    assert_eq!(doc["total"]["verdicts"]["clean"], 2);
    assert_eq!(doc["total"]["verdicts"]["lost"], 1);
}

/// A directory holding a fake `smartctl` that prints recorded readings: the first call
/// `first`, every later one `second`.
fn fake_smartctl(s: &Scratch, first: &str, second: &str) -> PathBuf {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/smart");
    let bin = s.path("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = format!(
        "#!/bin/sh\nstate='{state}'\nif [ -e \"$state\" ]; then exec /bin/cat '{second}'; else : > \"$state\"; exec /bin/cat '{first}'; fi\n",
        state = s.path("smartctl-called").display(),
        first = data.join(first).display(),
        second = data.join(second).display(),
    );
    let path = bin.join("smartctl");
    std::fs::write(&path, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

#[test]
fn smart_without_smartctl_is_a_note_and_a_failing_reading_is_a_finding() {
    let dir = match shm_dir() {
        Ok(d) => d,
        Err(why) => return eprintln!("skipped: {why}"),
    };
    let (_image, device) = match shm_loop(dir.path(), "smart.img", 16 << 20) {
        Ok(x) => x,
        Err(why) => return eprintln!("skipped: loop devices unavailable: {why}"),
    };
    let s = Scratch::new();
    // No smartctl on PATH: a note, status 0.
    let empty = s.path("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let run = s
        .command(&["--json", "burn-in", device.path(), "--force", "--smart"])
        .env("PATH", &empty)
        .output()
        .unwrap();
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let note = doc["drives"][0]["smart"]["note"].as_str().unwrap();
    assert!(note.contains("smartctl is not installed"), "{note}");
    // A recorded drive whose pending sectors grow and whose health turns FAILED.
    let bin = fake_smartctl(&s, "usb-sat-hdd.json", "usb-sat-hdd-after.json");
    let run = s
        .command(&["verify", device.path(), "--smart"])
        .env("PATH", &bin)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&run.stdout);
    assert_eq!(
        run.status.code(),
        Some(1),
        "FAILED health is status 1: {text}"
    );
    assert!(
        text.contains("finding: SMART overall health: FAILED after the run"),
        "{text}"
    );
    assert!(
        text.contains("pending sectors (Current_Pending_Sector) went from 8 to 24"),
        "{text}"
    );
    // Only worsening counters: the same reading twice is no finding, status 0.
    std::fs::remove_file(s.path("smartctl-called")).unwrap();
    let bin = fake_smartctl(&s, "usb-sat-hdd.json", "usb-sat-hdd.json");
    let run = s
        .command(&["--json", "verify", device.path(), "--smart"])
        .env("PATH", &bin)
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(0));
    let doc: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let smart = &doc["drives"][0]["smart"];
    assert_eq!(smart["findings"].as_array().unwrap().len(), 0, "{smart}");
    assert_eq!(smart["before"]["model"], "ST2000LM015-2E8174");
}
