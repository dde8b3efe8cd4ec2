//! Ctrl-C during a write: SIGINT to the child stops it cleanly, exit status 130; what
//! was committed stays (an incomplete object), the rest is not visible, verify is clean,
//! and an interrupted pattern write can be resumed. Ctrl-C during a verify stops it with
//! status 130 and a report of what it checked, and changes nothing.

use std::io::{BufRead, BufReader, Write};
use std::process::{Output, Stdio};
use std::time::Duration;

use super::harness::{bytes, Run, Scratch};

fn sigint(pid: u32) {
    let pid = libc::pid_t::try_from(pid).expect("a pid");
    // SAFETY: `kill` has no memory effects; the pid is our own child, not yet reaped.
    let sent = unsafe { libc::kill(pid, libc::SIGINT) };
    assert_eq!(sent, 0, "kill: {}", std::io::Error::last_os_error());
}

/// Runs `stackctl --json --progress json ARGS`, sends SIGINT at its first progress event
/// (the work is under way), and returns the later stderr lines and the output.
fn interrupted_at_first_progress(s: &Scratch, args: &[&str]) -> (Vec<String>, Output) {
    let mut child = s
        .command(&[&["--json", "--progress", "json"], args].concat())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning stackctl");
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let first = lines.next().expect("a progress event").unwrap();
    assert!(first.contains("\"progress\""), "{first}");
    sigint(child.id());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    (rest, child.wait_with_output().unwrap())
}

#[test]
fn sigint_during_a_stdin_write_commits_what_was_written() {
    let s = Scratch::new();
    s.volume("v.img", "16MiB");
    let mut child = s
        .command(&["write", "v.img", "-", "--name", "stream"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning stackctl");
    let mut input = child.stdin.take().unwrap();
    let chunk = bytes(1 << 20, 9);
    input.write_all(&chunk).unwrap();
    input.write_all(&chunk).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    sigint(child.id());
    std::thread::sleep(Duration::from_millis(200));
    // The writer is blocked reading stdin; more input lets it see the flag. It may
    // already have stopped reading: a closed pipe is fine.
    let _ = input.write_all(&chunk);
    drop(input);
    let output = child.wait_with_output().unwrap();
    let run = Run::from_output(output, &["write".into()]);
    assert_eq!(run.code, 130, "stderr: {}", run.stderr);
    assert!(run.stderr.contains("interrupt"), "{}", run.stderr);

    let ls = s.json(0, &["ls", "v.img"]);
    let objects = ls["objects"].as_array().unwrap();
    assert_eq!(objects.len(), 1, "{ls}");
    assert_eq!(objects[0]["name"], "stream");
    assert_eq!(objects[0]["complete"], false);
    let kept = objects[0]["size_bytes"].as_u64().unwrap();
    assert!(((2 << 20)..=(3 << 20)).contains(&kept), "kept {kept}");
    let doc = s.json(0, &["verify", "v.img"]);
    assert_eq!(doc["clean"], true);
    assert_eq!(doc["incomplete_objects"][0], "stream");
    // What was committed reads back as written.
    s.expect(0, &["read", "v.img", "stream", "-o", "stream.out"]);
    let out = std::fs::read(s.path("stream.out")).unwrap();
    assert_eq!(out.len() as u64, kept);
    assert_eq!(&out[..1 << 20], &chunk[..]);
    assert_eq!(&out[1 << 20..2 << 20], &chunk[..]);
}

#[test]
fn sigint_during_a_pattern_write_then_resume() {
    let s = Scratch::new();
    s.volume("v.img", "64MiB");
    let (rest, output) = interrupted_at_first_progress(
        &s,
        &[
            "write",
            "v.img",
            "--pattern",
            "--size",
            "48MiB",
            "--seed",
            "3",
            "--name",
            "p",
        ],
    );
    assert_eq!(output.status.code(), Some(130), "{rest:?}");
    // --json: the error document says what happened and the status.
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(doc["command"], "write");
    assert_eq!(doc["exit_status"], 130);
    assert!(
        doc["error"].as_str().unwrap().contains("interrupted"),
        "{doc}"
    );

    let object = s.json(0, &["ls", "v.img"])["objects"][0].clone();
    assert_eq!(object["complete"], false);
    assert!(object["size_bytes"].as_u64().unwrap() < 48 << 20);
    assert_eq!(s.json(0, &["verify", "v.img"])["clean"], true);

    let doc = s.json(0, &["write", "v.img", "--resume"]);
    assert_eq!(doc["objects"][0]["name"], "p");
    assert_eq!(doc["objects"][0]["complete"], true);
    assert_eq!(doc["objects"][0]["size_bytes"], 48 << 20);
    assert_eq!(doc["objects"][0]["seed"], 3);
    let verify = s.json(0, &["verify", "v.img"]);
    assert_eq!(verify["clean"], true);
    assert_eq!(verify["bytes_verified"], 48 << 20);
    // Nothing left to resume.
    let run = s.expect(3, &["write", "v.img", "--resume"]);
    assert!(
        run.stderr.contains("nothing") || run.stderr.contains("no interrupted"),
        "{}",
        run.stderr
    );
}

#[test]
fn sigint_during_verify_stops_it_and_reports_what_was_checked() {
    let s = Scratch::new();
    s.volume("v.img", "300MiB");
    let size = 256u64 << 20;
    let doc = s.json(
        0,
        &[
            "write",
            "v.img",
            "--pattern",
            "--size",
            "256MiB",
            "--seed",
            "5",
            "--name",
            "p",
        ],
    );
    assert_eq!(doc["objects"][0]["size_bytes"], size);
    // `--direct` reads from the disk, so the verify lasts long after its first progress
    // event (256 MiB; the disk reads at most a few GiB/s even from the host's cache).
    let (rest, output) = interrupted_at_first_progress(&s, &["verify", "--direct", "v.img"]);
    assert_eq!(output.status.code(), Some(130), "{rest:?}");
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(doc["command"], "verify");
    assert_eq!(doc["exit_status"], 130);
    assert_eq!(doc["interrupted"], true, "{doc}");
    assert_eq!(
        doc["clean"], false,
        "an interrupted verify is not a clean one: {doc}"
    );
    assert_eq!(doc["damaged"].as_array().unwrap().len(), 0, "{doc}");
    let checked = doc["bytes_verified"].as_u64().unwrap();
    assert!(checked < size, "checked {checked} of {size}: {doc}");

    // Nothing changed: a whole verify afterwards checks everything, clean.
    let doc = s.json(0, &["verify", "v.img"]);
    assert_eq!(doc["clean"], true);
    assert_eq!(doc["bytes_verified"], size);
}
