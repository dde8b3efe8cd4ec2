//! The exit-status rule table of docs/CLI.md, one test per row: every command × outcome
//! (clean, damage including a fallback to the older superblock copy, usage including
//! invalid object names, could not run) exits with the documented status. Interrupted
//! (130) is proved by `signals.rs`.

use super::harness::{bytes, patch, Scratch};

const BLOCK: usize = 4096;
/// Byte offsets of the two superblock slots.
const SLOTS: [u64; 2] = [0, 64 * 1024];

/// A volume with a pattern object "pat" and a file object "f.bin" (damage.rs's).
fn populated(s: &Scratch) {
    super::damage::damaged_volume(s);
}

/// Physical offsets of the metadata blocks of `kind` (1 object table, 2 checksums).
fn meta_blocks(s: &Scratch, kind: u8) -> Vec<usize> {
    let image = std::fs::read(s.path("v.img")).unwrap();
    (0..image.len() / BLOCK)
        .map(|i| i * BLOCK)
        .filter(|&at| image[at..].starts_with(b"STKMETA\0") && image[at + 8] == kind)
        .collect()
}

/// The slot the volume was opened from.
fn slot_in_use(s: &Scratch) -> usize {
    s.json(0, &["info", "v.img"])["superblock_slot"]
        .as_u64()
        .unwrap() as usize
}

/// Regression: `info` exited 0 with `fallback_warning` set while `ls` exited 1, and a
/// garbage newest superblock alone was summarised as "0 damaged range(s), 0 B".
#[test]
fn a_fallback_to_the_older_superblock_is_1_for_every_command() {
    let s = Scratch::new();
    populated(&s);
    let newest = slot_in_use(&s);
    // Garbage after the magic: the copy is there but does not decode.
    patch(&s.path("v.img"), SLOTS[newest] + 8, &bytes(120, 9));

    let verify = s.expect(1, &["verify", "v.img"]);
    let first = verify.stdout.lines().next().unwrap_or_default();
    assert!(
        first.contains(&format!("superblock slot {newest} unusable"))
            && first.contains("no damaged data")
            && !first.contains("0 damaged")
            && !first.contains("object table"),
        "{first}"
    );
    let doc = s.json(1, &["verify", "v.img"]);
    assert_eq!(doc["superblocks"][newest]["state"], "damaged", "{doc}");

    for command in ["ls", "info"] {
        let run = s.expect(1, &[command, "v.img"]);
        assert!(
            run.stdout.starts_with("WARNING:"),
            "{command}: {}",
            run.stdout
        );
        let doc = s.json(1, &[command, "v.img"]);
        let warning = doc
            .get("warning")
            .or_else(|| doc.get("fallback_warning"))
            .unwrap();
        assert!(
            warning.as_str().unwrap().contains("unusable"),
            "{command}: {doc}"
        );
    }
    // read still copies a readable object out, and says what it met.
    let run = s.expect(1, &["read", "v.img", "pat", "-o", "pat.out"]);
    assert!(run.stdout.starts_with("WARNING:"), "{}", run.stdout);
    assert_eq!(
        std::fs::metadata(s.path("pat.out")).unwrap().len(),
        256 * 1024
    );
    let run = s.expect(1, &["read", "v.img", "pat", "-o", "-"]);
    assert_eq!(run.stdout_bytes.len(), 256 * 1024);
    assert!(run.stderr.contains("WARNING:"), "{}", run.stderr);

    // A change commits into the damaged slot: it reports the damage it met, and the
    // volume is whole again afterwards.
    std::fs::write(s.path("g.bin"), bytes(5000, 1)).unwrap();
    let doc = s.json(1, &["write", "v.img", "g.bin"]);
    assert!(
        doc["warning"].as_str().unwrap().contains("unusable"),
        "{doc}"
    );
    s.expect(0, &["ls", "v.img"]);
    s.expect(0, &["verify", "v.img"]);

    let newest = slot_in_use(&s);
    patch(&s.path("v.img"), SLOTS[newest] + 8, &bytes(120, 10));
    // (g.bin was committed in the generation that is now damaged: only the older
    // copy's objects are left, and pat is one of them.)
    let doc = s.json(1, &["rm", "v.img", "pat"]);
    assert_eq!(doc["removed"], "pat");
    s.expect(0, &["info", "v.img"]);
}

/// Regression: `read` of an object whose checksum block is damaged exited 3 (could not
/// run); it is damage, like a damaged data block.
#[test]
fn damaged_checksums_or_data_are_1_for_verify_and_read() {
    let s = Scratch::new();
    populated(&s);
    let csums = meta_blocks(&s, 2);
    assert_eq!(csums.len(), 2, "one checksum block per object's run");
    for at in &csums {
        patch(&s.path("v.img"), (*at + 100) as u64, b"\xde\xad");
    }
    let run = s.expect(1, &["read", "v.img", "f.bin", "-o", "f.out"]);
    assert!(
        run.stderr.contains("f.bin") && run.stderr.contains("checksums"),
        "{}",
        run.stderr
    );
    assert!(!s.path("f.out").exists());
    let doc = s.json(1, &["verify", "v.img"]);
    assert_eq!(doc["metadata_ok"], false);
    let first = s.expect(1, &["verify", "v.img"]).stdout;
    assert!(first.contains("checksum blocks"), "{first}");
    // ls and info read no data: they have nothing to report.
    s.expect(0, &["ls", "v.img"]);
    s.expect(0, &["info", "v.img"]);
}

#[test]
fn clean_is_0_for_every_command() {
    let s = Scratch::new();
    s.expect(0, &["format", "v.img", "--size", "8MiB"]);
    std::fs::write(s.path("f.bin"), bytes(9000, 2)).unwrap();
    s.expect(0, &["write", "v.img", "f.bin"]);
    s.expect(0, &["write", "v.img", "--pattern", "--size", "64K"]);
    let run = s.run_with_stdin(&["write", "v.img", "-", "--name", "in"], &bytes(100, 3));
    assert_eq!(run.code, 0, "{}", run.stderr);
    s.expect(0, &["verify", "v.img"]);
    s.expect(0, &["read", "v.img", "f.bin", "-o", "out"]);
    s.expect(0, &["ls", "v.img"]);
    s.expect(0, &["info", "v.img"]);
    s.expect(0, &["rm", "v.img", "f.bin"]);
    s.expect(0, &["burn-in", "b.img", "--size", "4MiB"]);
    s.expect(0, &["completions", "bash"]);
}

/// Regression: invalid object names (empty, over 255 bytes, control characters) exited 3;
/// a name the user typed is a usage error.
#[test]
fn usage_errors_are_2_for_every_command() {
    let s = Scratch::new();
    populated(&s);
    let long = "n".repeat(256);
    for name in ["", "a\tb", "a\nb", long.as_str()] {
        let run = s.expect(
            2,
            &[
                "write",
                "v.img",
                "--pattern",
                "--size",
                "4K",
                "--name",
                name,
            ],
        );
        assert!(run.stderr.contains("invalid object name"), "{}", run.stderr);
        s.expect(2, &["write", "v.img", "f.bin", "--name", name]);
    }
    for command in [
        "format",
        "write",
        "verify",
        "read",
        "ls",
        "info",
        "rm",
        "burn-in",
        "completions",
    ] {
        s.expect(2, &[command, "--no-such-option"]);
    }
    s.expect(2, &["format", "x.img", "--size", "lots"]);
    s.expect(2, &["burn-in", "x.img", "--size", "4MiB", "--csum", "md5"]);
    s.expect(2, &["write", "v.img", "--pattern"]);
    s.expect(2, &["--json", "read", "v.img", "pat", "-o", "-"]);
    // Nothing above changed the volume.
    assert_eq!(
        s.json(0, &["ls", "v.img"])["objects"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn could_not_run_is_3_for_every_command() {
    let s = Scratch::new();
    populated(&s);
    std::fs::write(s.path("junk.img"), vec![0u8; 1 << 20]).unwrap();
    for args in [
        &["verify", "junk.img"][..],
        &["ls", "junk.img"],
        &["info", "junk.img"],
        &["read", "junk.img", "x", "-o", "x"],
        &["rm", "junk.img", "x"],
        &["write", "junk.img", "f.bin"],
    ] {
        let run = s.expect(3, args);
        assert!(
            run.stderr.contains("not a stackctl volume"),
            "{args:?}: {}",
            run.stderr
        );
    }
    // A volume with objects is not formatted over without --force.
    let run = s.expect(3, &["format", "v.img"]);
    assert!(
        run.stderr.contains("\"pat\"") && run.stderr.contains("\"f.bin\""),
        "{}",
        run.stderr
    );
    s.expect(3, &["burn-in", "v.img"]);
    s.expect(3, &["read", "v.img", "nothing", "-o", "x"]);
    s.expect(3, &["rm", "v.img", "nothing"]);
    s.expect(3, &["write", "v.img", "f.bin"]);
    // Both superblocks unusable.
    for slot in SLOTS {
        patch(&s.path("v.img"), slot + 8, &bytes(120, slot));
    }
    for command in ["verify", "ls", "info"] {
        let run = s.expect(3, &[command, "v.img"]);
        assert!(run.stderr.contains("both superblocks"), "{}", run.stderr);
    }
}

/// `format` over a volume that holds objects needs `--force` and lists them; `burn-in`
/// may replace its own earlier result, nothing else.
#[test]
fn format_over_objects_needs_force_and_lists_them() {
    let s = Scratch::new();
    s.expect(0, &["burn-in", "b.img", "--size", "4MiB"]);
    s.expect(0, &["burn-in", "b.img"]);
    let run = s.expect(3, &["format", "b.img"]);
    assert!(
        run.stderr.contains("1 object(s)") && run.stderr.contains("\"burn-in\""),
        "{}",
        run.stderr
    );
    s.volume("e.img", "4MiB");
    s.expect(0, &["format", "e.img"]);
    std::fs::write(s.path("f.bin"), bytes(10, 1)).unwrap();
    s.expect(0, &["write", "e.img", "f.bin"]);
    let run = s.expect(3, &["burn-in", "e.img"]);
    assert!(run.stderr.contains("\"f.bin\""), "{}", run.stderr);
    let objects = |img: &str| s.json(0, &["ls", img])["objects"].as_array().unwrap().len();
    assert_eq!(objects("e.img"), 1);
    s.expect(0, &["format", "e.img", "--force"]);
    assert_eq!(objects("e.img"), 0);
}
