//! What goes where: the human summary and `--json` on stdout, progress on stderr only
//! when asked or on a terminal (never on a pipe), JSON-lines progress events.

use super::harness::Scratch;

#[test]
fn progress_is_silent_on_a_pipe() {
    let s = Scratch::new();
    s.volume("v.img", "8MiB");
    for args in [
        &[
            "write",
            "v.img",
            "--pattern",
            "--size",
            "3MiB",
            "--seed",
            "1",
        ][..],
        &["verify", "v.img"],
        &["write", "v.img", "--fill", "--progress", "auto"],
        &["--progress", "none", "verify", "v.img"],
    ] {
        let run = s.expect(0, args);
        assert_eq!(run.stderr, "", "{args:?}: stderr is a pipe, so no progress");
        assert!(!run.stdout.is_empty());
    }
    let run = s.expect(0, &["burn-in", "b.img", "--size", "4MiB"]);
    assert_eq!(run.stderr, "");
}

#[test]
fn progress_json_prints_json_lines_on_stderr() {
    let s = Scratch::new();
    s.volume("v.img", "8MiB");
    let run = s.expect(
        0,
        &[
            "--progress",
            "json",
            "--json",
            "write",
            "v.img",
            "--pattern",
            "--size",
            "3MiB",
            "--seed",
            "2",
        ],
    );
    // stdout is still exactly one JSON document.
    assert_eq!(run.json()["objects"][0]["bytes"], 3 << 20);
    let events: Vec<serde_json::Value> = run
        .stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(events.len() >= 2, "{}", run.stderr);
    for event in &events {
        assert_eq!(event["command"], "write");
        assert_eq!(event["phase"], "write");
        assert!(event["done_bytes"].is_u64());
        assert!(event["elapsed_secs"].is_f64());
        assert!(event["bytes_per_sec"].is_u64());
    }
    assert_eq!(events[0]["event"], "progress");
    let last = events.last().unwrap();
    assert_eq!(last["event"], "done");
    assert_eq!(last["done_bytes"], 3 << 20);
    assert_eq!(last["total_bytes"], 3 << 20);
    let done: Vec<u64> = events
        .iter()
        .map(|e| e["done_bytes"].as_u64().unwrap())
        .collect();
    assert!(done.windows(2).all(|w| w[0] <= w[1]), "{done:?}");

    let run = s.expect(0, &["--progress", "json", "verify", "v.img"]);
    let last: serde_json::Value = serde_json::from_str(run.stderr.lines().last().unwrap()).unwrap();
    assert_eq!(last["phase"], "verify");
    assert_eq!(last["event"], "done");
}

#[test]
fn human_summaries_show_bytes_time_and_throughput() {
    let s = Scratch::new();
    let format = s.expect(0, &["format", "v.img", "--size", "4MiB"]).stdout;
    assert!(
        format.contains("formatted v.img") && format.contains("4.00 MiB"),
        "{format}"
    );
    let write = s
        .expect(
            0,
            &[
                "write",
                "v.img",
                "--pattern",
                "--size",
                "1MiB",
                "--seed",
                "4",
            ],
        )
        .stdout;
    assert!(
        write.contains("1.00 MiB in") && write.contains("/s") && write.contains("seed 4"),
        "{write}"
    );
    let verify = s.expect(0, &["verify", "v.img"]).stdout;
    assert!(
        verify.contains("1.00 MiB in") && verify.contains("256 blocks"),
        "{verify}"
    );
}

#[test]
fn every_command_prints_one_json_document() {
    let s = Scratch::new();
    let docs = [
        s.json(0, &["format", "v.img", "--size", "4MiB"]),
        s.json(
            0,
            &["write", "v.img", "--pattern", "--size", "8K", "--name", "p"],
        ),
        s.json(0, &["verify", "v.img"]),
        s.json(0, &["read", "v.img", "p", "-o", "p.out"]),
        s.json(0, &["ls", "v.img"]),
        s.json(0, &["info", "v.img"]),
        s.json(0, &["rm", "v.img", "p"]),
        s.json(0, &["burn-in", "b.img", "--size", "4MiB"]),
        s.json(0, &["completions", "bash"]),
    ];
    let names = [
        "format",
        "write",
        "verify",
        "read",
        "ls",
        "info",
        "rm",
        "burn-in",
        "completions",
    ];
    for (doc, name) in docs.iter().zip(names) {
        assert_eq!(doc["command"], name);
        assert_eq!(doc["exit_status"], 0);
    }
    assert_eq!(docs[3]["bytes"], 8192);
    assert_eq!(docs[3]["output"], "p.out");
    assert!(docs[8]["script"].as_str().unwrap().contains("stackctl"));
}

/// On a terminal, the bar is drawn on stderr. `script` gives the child a pseudo-terminal;
/// where it is missing (a minimal container) the pipe case above still holds.
#[test]
fn progress_bar_on_a_terminal() {
    let has_script = std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_script {
        eprintln!("skipped: no `script` to provide a terminal");
        return;
    }
    let s = Scratch::new();
    s.volume("v.img", "16MiB");
    let command = format!(
        "{} write v.img --pattern --size 8MiB --seed 1 --name p",
        super::harness::bin().display()
    );
    let output = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .current_dir(s.dir.path())
        .output()
        .expect("running script");
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("write ["), "no bar: {text}");
    assert!(text.contains("wrote \"p\""), "{text}");
}
