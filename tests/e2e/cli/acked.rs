//! `--ack-log` and `verify --acked`: the log's lines, its refusals, a drive image older
//! than the log (what a drive that dropped flushes leaves), and SIGKILLed writes, which
//! must never look like lost flushes.

use std::process::Stdio;
use std::time::Duration;

use super::harness::Scratch;

fn lines(scratch: &Scratch, log: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(scratch.path(log))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn each_commit_appends_one_line_naming_what_is_durable() {
    let s = Scratch::new();
    let v = s.volume("v.img", "16MiB");
    let args = [
        "write",
        &v,
        "--pattern",
        "--size",
        "1MiB",
        "--name",
        "p",
        "--seed",
        "7",
        "--commit-every",
        "256K",
        "--ack-log",
        "log",
    ];
    let run = s.expect(0, &args);
    let uuid = s.json(0, &["info", &v])["uuid"].clone();
    let got = lines(&s, "log");
    assert_eq!(got.len() as u64, 4, "one line per commit: {got:?}");
    let mut generation = 0;
    for (i, line) in got.iter().enumerate() {
        let keys: Vec<&str> = line
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ["generation", "objects", "time_unix_ms", "uuid"]);
        assert_eq!(line["uuid"], uuid);
        assert!(line["generation"].as_u64().unwrap() > generation);
        generation = line["generation"].as_u64().unwrap();
        assert!(line["time_unix_ms"].as_u64().unwrap() > 1_700_000_000_000);
        let o = &line["objects"][0];
        assert_eq!(o["name"], "p");
        assert_eq!(o["seed"], 7);
        assert_eq!(o["size_bytes"], (i as u64 + 1) * (256 << 10));
        assert_eq!(o["complete"], i == 3);
    }
    assert_eq!(s.json(0, &["info", &v])["generation"], generation);
    assert!(run.stdout.contains("wrote \"p\""), "{}", run.stdout);
    // `-`: the lines alone on stdout, the summary on stderr.
    let run = s.expect(
        0,
        &[
            "write",
            &v,
            "--pattern",
            "--size",
            "64K",
            "--name",
            "q",
            "--ack-log",
            "-",
        ],
    );
    let line: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(line["objects"][1]["name"], "q");
    assert!(run.stderr.contains("wrote \"q\""), "{}", run.stderr);
    let doc = s.json(0, &["verify", &v, "--acked", "log"]);
    assert_eq!(doc["acked"]["records"], 4);
    assert!(doc["acked"]["lost"].is_null());
    assert!(
        doc.get("verdict")
            .is_none_or(|v| v["kind"] != "lost-flushes"),
        "{doc}"
    );
}

#[test]
fn ack_log_refusals_and_bad_logs() {
    let s = Scratch::new();
    let v = s.volume("v.img", "8MiB");
    let pattern = ["--pattern", "--size", "64K"];
    let mut args = vec!["--json", "write", &v];
    args.extend(pattern);
    args.extend(["--ack-log", "-"]);
    let run = s.expect(2, &args);
    assert!(
        run.stderr.contains("--ack-log - writes the log on stdout"),
        "{}",
        run.stderr
    );
    std::os::unix::fs::symlink("v.img", s.path("link")).unwrap();
    for log in ["v.img", "link"] {
        let mut args = vec!["write", &v];
        args.extend(pattern);
        args.extend(["--ack-log", log]);
        let run = s.expect(2, &args);
        assert!(
            run.stderr.contains("is the volume v.img itself"),
            "{}",
            run.stderr
        );
        let run = s.expect(2, &["burn-in", "v.img", "--force", "--ack-log", log]);
        assert!(
            run.stderr.contains("is the volume v.img itself"),
            "{}",
            run.stderr
        );
    }
    assert_eq!(s.json(0, &["ls", &v])["objects"], serde_json::json!([]));
    // Another volume's log: exit 3, naming both volumes.
    let w = s.volume("w.img", "8MiB");
    s.expect(
        0,
        &[
            "write",
            &w,
            "--pattern",
            "--size",
            "64K",
            "--ack-log",
            "w.log",
        ],
    );
    let run = s.expect(3, &["verify", &v, "--acked", "w.log"]);
    assert!(run.stderr.contains("are of volume"), "{}", run.stderr);
    // A malformed line: exit 3, naming its number.
    let good = std::fs::read_to_string(s.path("w.log")).unwrap();
    std::fs::write(
        s.path("bad.log"),
        format!("{good}{{\"generation\": \"x\"}}\n"),
    )
    .unwrap();
    let run = s.expect(3, &["verify", &w, "--acked", "bad.log"]);
    assert!(
        run.stderr.contains("line 2 is not a commit record"),
        "{}",
        run.stderr
    );
    std::fs::write(s.path("empty.log"), "").unwrap();
    s.expect(3, &["verify", &w, "--acked", "empty.log"]);
    // The log on stdin.
    let run = s.run_with_stdin(&["--json", "verify", &w, "--acked", "-"], good.as_bytes());
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json()["acked"]["records"], 1);
    // A log that cannot be written stops the write: status 3, naming the log; what was
    // committed stays and verifies.
    if std::path::Path::new("/dev/full").exists() {
        let args = ["write", &w, "--pattern", "--size", "256K", "--name", "full"];
        let mut args = args.to_vec();
        args.extend(["--commit-every", "64K", "--ack-log", "/dev/full"]);
        let run = s.expect(3, &args);
        assert!(
            run.stderr.contains("writing the ack log /dev/full"),
            "{}",
            run.stderr
        );
        s.expect(0, &["verify", &w]);
    }
}

/// The image a drive that dropped acknowledged flushes leaves: an older state of the
/// volume under a log that goes further. Also acknowledged data damaged at the
/// acknowledged generation.
#[test]
fn an_image_older_than_the_log_is_lost_flushes() {
    let s = Scratch::new();
    let v = s.volume("v.img", "16MiB");
    s.expect(
        0,
        &[
            "write",
            &v,
            "--pattern",
            "--size",
            "1MiB",
            "--name",
            "a",
            "--ack-log",
            "log",
        ],
    );
    std::fs::copy(s.path("v.img"), s.path("before.img")).unwrap();
    let info = s.json(0, &["info", &v]);
    s.expect(
        0,
        &[
            "burn-in",
            &v,
            "--force",
            "--seed",
            "3",
            "--ack-log",
            "burn.log",
        ],
    );
    s.expect(0, &["verify", &v, "--acked", "burn.log"]);
    // burn-in formatted anew: its log is of another volume than "before".
    std::fs::copy(s.path("before.img"), s.path("v.img")).unwrap();
    s.expect(
        0,
        &[
            "write",
            &v,
            "--pattern",
            "--size",
            "2MiB",
            "--name",
            "b",
            "--commit-every",
            "512K",
            "--ack-log",
            "log",
        ],
    );
    let acked = lines(&s, "log").last().unwrap()["generation"]
        .as_u64()
        .unwrap();
    std::fs::copy(s.path("before.img"), s.path("v.img")).unwrap();
    let doc = s.json(1, &["verify", &v, "--acked", "log"]);
    let verdict = &doc["verdict"];
    assert_eq!(verdict["kind"], "lost-flushes", "{doc}");
    assert_eq!(verdict["acked_generation"], acked);
    assert_eq!(verdict["drive_generation"], info["generation"]);
    assert_eq!(verdict["objects"][0]["name"], "b");
    assert_eq!(verdict["objects"][0]["how"], "missing");
    let run = s.expect(1, &["verify", &v, "--acked", "log"]);
    assert!(
        run.stdout.starts_with(&format!(
            "LOST FLUSHES: the drive acknowledged generation {acked}"
        )),
        "{}",
        run.stdout
    );
    // Back to the acknowledged state, then one block of "b" (block 100) goes stale.
    std::fs::copy(s.path("before.img"), s.path("v.img")).unwrap();
    std::fs::remove_file(s.path("log")).unwrap();
    s.expect(
        0,
        &[
            "write",
            &v,
            "--pattern",
            "--size",
            "2MiB",
            "--name",
            "b",
            "--ack-log",
            "log",
        ],
    );
    s.expect(0, &["verify", &v, "--acked", "log"]);
    let image = std::fs::read(s.path("v.img")).unwrap();
    let block = image
        .chunks(4096)
        .position(|b| {
            stack_volume::pattern::PatternHeader::parse(b)
                .is_some_and(|h| h.seed != 0 && h.logical_offset == 100 * 4096 && h.object_id == 1)
        })
        .expect("block 100 of b");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(s.path("v.img"))
        .unwrap();
    std::os::unix::fs::FileExt::write_all_at(&file, &[0; 4096], block as u64 * 4096).unwrap();
    drop(file);
    let doc = s.json(1, &["verify", &v, "--acked", "log"]);
    assert_eq!(doc["verdict"]["kind"], "lost-flushes", "{doc}");
    assert_eq!(doc["verdict"]["objects"][0]["how"], "damaged");
    assert_eq!(
        doc["verdict"]["objects"][0]["first_damaged_offset"],
        100 * 4096
    );
}

/// SIGKILL (not a power cut) at several points of a write with `--ack-log`: the page
/// cache keeps every write the process made, and a line is written only after its
/// commit's flush, so `verify --acked` never says lost-flushes.
#[test]
fn killed_writes_never_give_lost_flushes() {
    let s = Scratch::new();
    let v = s.volume("v.img", "64MiB");
    let mut killed = 0;
    let mut checked_lines = 0;
    for i in 0..12u64 {
        let name = format!("p{i}");
        let log = format!("log{i}");
        let args = [
            "write",
            &v,
            "--pattern",
            "--size",
            "24MiB",
            "--name",
            &name,
            "--commit-every",
            "64K",
            "--ack-log",
            &log,
            "--progress",
            "none",
        ];
        let mut child = s
            .command(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Kill once the log has 1 to 12 lines (or the write ended): bounded polling.
        let want = i + 1;
        for _ in 0..5000 {
            if child.try_wait().unwrap().is_some() || lines(&s, &log).len() as u64 >= want {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            killed += 1;
        }
        child.wait().unwrap();
        let records = lines(&s, &log).len();
        if records == 0 {
            continue;
        }
        checked_lines += records;
        let doc = s.json(0, &["verify", &v, "--acked", &log]);
        assert!(doc["acked"]["lost"].is_null(), "kill {i}: {doc}");
        assert!(
            doc["acked"]["drive_generation"].as_u64() >= doc["acked"]["acked_generation"].as_u64()
        );
        s.expect(0, &["rm", &v, &name]);
    }
    assert!(killed >= 6, "only {killed} writes were killed mid-way");
    assert!(
        checked_lines >= 20,
        "{checked_lines} acknowledged lines checked"
    );
}
