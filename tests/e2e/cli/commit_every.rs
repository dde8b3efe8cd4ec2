//! `write --commit-every`: the interval between a write's commits, and its bounds.

use super::harness::Scratch;

fn commits(doc: &serde_json::Value) -> u64 {
    doc["objects"][0]["commits"].as_u64().expect("commits")
}

#[test]
fn commit_every_sets_how_often_a_write_commits() {
    let s = Scratch::new();
    s.volume("v.img", "32MiB");
    let pattern = [
        "write",
        "v.img",
        "--pattern",
        "--size",
        "6MiB",
        "--seed",
        "1",
    ];
    // The default interval (1 GiB or 5 s) is longer than the write: only the final commit.
    let doc = s.json(0, &[&pattern[..], &["--name", "default"]].concat());
    assert_eq!(commits(&doc), 1, "{doc}");
    // 1 MiB: a commit after every MiB, then the final one.
    let args = ["--name", "often", "--commit-every", "1M"];
    let doc = s.json(0, &[&pattern[..], &args[..]].concat());
    assert!(commits(&doc) >= 6, "{doc}");
    assert_eq!(doc["objects"][0]["size_bytes"], 6 << 20);
    // Files too.
    std::fs::write(s.path("in.bin"), vec![7u8; 3 << 20]).unwrap();
    let doc = s.json(0, &["write", "v.img", "in.bin", "--commit-every", "1MiB"]);
    assert!(commits(&doc) >= 3, "{doc}");
    assert_eq!(s.json(0, &["verify", "v.img"])["clean"], true);
}

#[test]
fn commit_every_below_64k_or_not_a_size_is_a_usage_error() {
    let s = Scratch::new();
    s.volume("v.img", "8MiB");
    for bad in ["4K", "0", "lots"] {
        let run = s.expect(
            2,
            &[
                "write",
                "v.img",
                "--pattern",
                "--size",
                "1M",
                "--commit-every",
                bad,
            ],
        );
        assert!(
            run.stderr.contains("--commit-every"),
            "{bad}: {}",
            run.stderr
        );
    }
    // Nothing was written.
    assert_eq!(
        s.json(0, &["ls", "v.img"])["objects"],
        serde_json::json!([])
    );
}
