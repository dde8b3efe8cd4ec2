//! The bad-input table: each case exits with the documented status and names what is
//! wrong (file, option, offset), in one or two lines, with `--json` an error document.

use super::harness::{bytes, patch, Scratch};

#[test]
fn missing_target() {
    let s = Scratch::new();
    for command in ["verify", "ls", "info"] {
        let run = s.expect(3, &[command, "missing.img"]);
        assert!(run.stderr.contains("missing.img"), "{}", run.stderr);
    }
    s.expect(3, &["read", "missing.img", "x", "-o", "x"]);
    s.expect(3, &["rm", "missing.img", "x"]);
    s.expect(3, &["write", "missing.img", "--pattern", "--size", "4K"]);
    let run = s.expect(3, &["format", "missing.img"]);
    assert!(
        run.stderr.contains("does not exist") && run.stderr.contains("--size"),
        "{}",
        run.stderr
    );
    let doc = s.json(3, &["verify", "missing.img"]);
    assert_eq!(doc["command"], "verify");
    assert!(doc["error"].as_str().unwrap().contains("missing.img"));
}

#[test]
fn directory_as_target() {
    let s = Scratch::new();
    std::fs::create_dir(s.path("dir")).unwrap();
    for args in [
        &["verify", "dir"][..],
        &["format", "dir", "--size", "4MiB"],
        &["burn-in", "dir"],
        &["ls", "dir"],
    ] {
        let run = s.expect(3, args);
        assert!(run.stderr.contains("dir"), "{args:?}: {}", run.stderr);
    }
}

#[test]
fn target_too_small() {
    let s = Scratch::new();
    let run = s.expect(3, &["format", "tiny.img", "--size", "16K"]);
    assert!(
        run.stderr.contains("too small") && run.stderr.contains("tiny.img"),
        "{}",
        run.stderr
    );
    assert!(
        !s.path("tiny.img").exists(),
        "a failed format leaves no file it created"
    );
    std::fs::write(s.path("small.img"), vec![0u8; 8192]).unwrap();
    let run = s.expect(3, &["burn-in", "small.img"]);
    assert!(run.stderr.contains("too small"), "{}", run.stderr);
}

#[test]
fn unformatted_file_for_verify() {
    let s = Scratch::new();
    std::fs::write(s.path("plain.bin"), bytes(1 << 20, 3)).unwrap();
    let run = s.expect(3, &["verify", "plain.bin"]);
    assert!(
        run.stderr.contains("not a stackctl volume") && run.stderr.contains("plain.bin"),
        "{}",
        run.stderr
    );
    std::fs::write(s.path("empty.bin"), b"").unwrap();
    s.expect(3, &["verify", "empty.bin"]);
}

#[test]
fn both_superblocks_damaged() {
    let s = Scratch::new();
    s.volume("v.img", "4MiB");
    s.expect(
        0,
        &[
            "write",
            "v.img",
            "--pattern",
            "--size",
            "64K",
            "--seed",
            "1",
        ],
    );
    // Flip a byte inside each superblock's checksummed fields (the generation).
    patch(&s.path("v.img"), 40, &[0xff]);
    patch(&s.path("v.img"), 65536 + 40, &[0xff]);
    let run = s.expect(3, &["verify", "v.img"]);
    assert!(run.stderr.contains("both superblocks"), "{}", run.stderr);
    assert!(run.stderr.contains("v.img"), "{}", run.stderr);
    // One damaged copy: the other is used, and verify reports the damaged slot.
    let s = Scratch::new();
    s.volume("w.img", "4MiB");
    s.expect(
        0,
        &[
            "write",
            "w.img",
            "--pattern",
            "--size",
            "64K",
            "--seed",
            "1",
        ],
    );
    patch(&s.path("w.img"), 65536 + 40, &[0xff]);
    let doc = s.json(1, &["verify", "w.img"]);
    assert_eq!(doc["clean"], false);
    assert!(doc["superblocks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|slot| slot["state"] == "damaged"));
    // The newest commit (the one holding the object) is in the damaged slot: `ls` lists
    // the previous commit, and must say so and exit 1 rather than print a clean, empty
    // listing.
    let doc = s.json(1, &["ls", "w.img"]);
    assert!(doc["warning"].as_str().unwrap().contains("slot 1"), "{doc}");
    assert_eq!(doc["objects"].as_array().unwrap().len(), 0);
    let run = s.expect(1, &["ls", "w.img"]);
    assert!(run.stdout.starts_with("WARNING:"), "{}", run.stdout);
}

#[test]
fn unknown_checksum_name() {
    let s = Scratch::new();
    for command in ["format", "burn-in"] {
        let run = s.expect(2, &[command, "v.img", "--size", "4MiB", "--csum", "md5"]);
        assert!(
            run.stderr.contains("md5") && run.stderr.contains("crc32c"),
            "{}",
            run.stderr
        );
    }
    assert!(!s.path("v.img").exists());
}

#[test]
fn bad_size() {
    let s = Scratch::new();
    for bad in ["12Q", "-1", "1.5B", "K", "", "99999999999999999999"] {
        let arg = format!("--size={bad}");
        let run = s.expect(2, &["format", "v.img", &arg]);
        assert!(
            run.stderr.contains("64MiB"),
            "{bad}: the error shows an accepted form: {}",
            run.stderr
        );
    }
    s.expect(2, &["burn-in", "v.img", "--size", "4 parsecs"]);
    s.volume("ok.img", "4MiB");
    s.expect(2, &["write", "ok.img", "--pattern", "--size", "lots"]);
    assert!(!s.path("v.img").exists());
}

#[test]
fn full_volume() {
    let s = Scratch::new();
    s.volume("v.img", "4MiB");
    std::fs::write(s.path("big.bin"), bytes(5 << 20, 1)).unwrap();
    let run = s.expect(3, &["write", "v.img", "big.bin"]);
    assert!(
        run.stderr.contains("no space") || run.stderr.contains("No space"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("big.bin"), "{}", run.stderr);
    s.expect(0, &["write", "v.img", "--fill", "--seed", "2"]);
    let run = s.expect(
        3,
        &[
            "write",
            "v.img",
            "--pattern",
            "--size",
            "1MiB",
            "--seed",
            "3",
        ],
    );
    assert!(
        run.stderr.to_lowercase().contains("no space"),
        "{}",
        run.stderr
    );
    // What is there stays intact.
    assert_eq!(s.json(0, &["verify", "v.img"])["clean"], true);
}
