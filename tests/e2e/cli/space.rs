//! Out of space: a write of known size that cannot fit is refused before it writes
//! anything (exit 3, needed and free in bytes and units, nothing changed); a stream that
//! runs out removes its partial object and gives the space back, or keeps it with
//! `--keep-partial`, and says which.

use super::harness::{bytes, Scratch};

/// (generation, free bytes, object count) as `info --json` reports them.
fn state(s: &Scratch, volume: &str) -> (u64, u64, u64) {
    let info = s.json(0, &["info", volume]);
    (
        info["generation"].as_u64().expect("generation"),
        info["free_bytes"].as_u64().expect("free_bytes"),
        info["objects"].as_u64().expect("objects"),
    )
}

fn assert_refused(stderr: &str) {
    for part in [
        "no space: ",
        " bytes (",
        "MiB) needed, ",
        " free",
        "nothing was written",
    ] {
        assert!(stderr.contains(part), "{part:?} missing from: {stderr}");
    }
}

/// Measured: `write --pattern --size 64MiB` on a 32 MiB volume exited 3 but had already
/// committed an incomplete 27.8 MiB object, taking the free space from 29.3 MiB to
/// 16 KiB, and its message (`16384 bytes needed, 0 bytes free`) did not say so.
#[test]
fn pattern_larger_than_the_volume_is_refused_before_writing() {
    let s = Scratch::new();
    s.volume("v.img", "32MiB");
    let before = state(&s, "v.img");
    let run = s.expect(
        3,
        &[
            "write",
            "v.img",
            "--pattern",
            "--size",
            "64MiB",
            "--name",
            "big",
        ],
    );
    assert_refused(&run.stderr);
    assert!(run.stderr.contains("67"), "needed bytes: {}", run.stderr);
    assert_eq!(state(&s, "v.img"), before, "the volume changed");
    // The JSON error names the same, with exit status 3.
    let doc = s.json(
        3,
        &[
            "write",
            "v.img",
            "--pattern",
            "--size",
            "64MiB",
            "--name",
            "big",
        ],
    );
    assert!(
        doc["error"]
            .as_str()
            .unwrap()
            .contains("nothing was written"),
        "{doc}"
    );
    assert_eq!(state(&s, "v.img"), before);
    // What fits is still written.
    s.expect(0, &["write", "v.img", "--pattern", "--size", "24MiB"]);
}

#[test]
fn files_whose_total_does_not_fit_are_refused_before_any_is_written() {
    let s = Scratch::new();
    s.volume("v.img", "32MiB");
    for name in ["f1", "f2", "f3"] {
        std::fs::write(s.path(name), bytes(12 << 20, name.len() as u64)).unwrap();
    }
    let before = state(&s, "v.img");
    let run = s.expect(3, &["write", "v.img", "f1", "f2", "f3"]);
    assert_refused(&run.stderr);
    assert!(
        run.stderr.contains("3 objects (f1, f2, f3)"),
        "{}",
        run.stderr
    );
    assert_eq!(state(&s, "v.img"), before, "a file was written");
    // Two of them fit.
    s.expect(0, &["write", "v.img", "f1", "f2"]);
}

#[test]
fn replace_does_not_count_the_old_objects_space() {
    let s = Scratch::new();
    s.volume("v.img", "32MiB");
    let old = bytes(20 << 20, 1);
    std::fs::write(s.path("x"), &old).unwrap();
    s.expect(0, &["write", "v.img", "x"]);
    std::fs::write(s.path("x"), bytes(20 << 20, 2)).unwrap();
    let before = state(&s, "v.img");
    let run = s.expect(3, &["write", "v.img", "x", "--replace"]);
    assert_refused(&run.stderr);
    assert_eq!(state(&s, "v.img"), before);
    s.expect(0, &["read", "v.img", "x", "-o", "back"]);
    assert!(std::fs::read(s.path("back")).unwrap() == old, "x changed");
}

#[test]
fn resume_that_cannot_fit_is_refused_and_the_object_stays() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let s = Scratch::new();
    s.volume("v.img", "32MiB");
    {
        // An interrupted 24 MiB pattern write (2 MiB committed), then a file that leaves
        // less room than the rest of it needs.
        let mut vol =
            stack_volume::Volume::open(&s.path("v.img"), &stack_volume::OpenOptions::default())
                .unwrap();
        let cancel = Arc::new(AtomicBool::new(false));
        let flag = cancel.clone();
        let opts = stack_volume::WriteOptions {
            commit_every_bytes: 1 << 20,
            cancel: Some(cancel),
            progress: Some(Arc::new(move |p: stack_volume::Progress| {
                if p.done_bytes >= 2 << 20 {
                    flag.store(true, Ordering::Relaxed);
                }
            })),
            ..stack_volume::WriteOptions::default()
        };
        assert!(vol.write_pattern("p", 24 << 20, 3, &opts).is_err());
        let filler = bytes(12 << 20, 9);
        vol.write(
            "filler",
            &mut &filler[..],
            &stack_volume::WriteOptions::default(),
        )
        .unwrap();
    }
    let before = state(&s, "v.img");
    let run = s.expect(3, &["write", "v.img", "--resume", "--name", "p"]);
    assert_refused(&run.stderr);
    assert_eq!(state(&s, "v.img"), before);
    let ls = s.json(0, &["ls", "v.img"]);
    let p = ls["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "p")
        .expect("p listed");
    assert_eq!(p["complete"], false, "{p}");
    assert_eq!(s.json(0, &["verify", "v.img"])["clean"], true);
}

#[test]
fn stdin_that_runs_out_removes_its_partial_object_and_gives_the_space_back() {
    let s = Scratch::new();
    s.volume("v.img", "8MiB");
    let (_, fresh_free, _) = state(&s, "v.img");
    let input = bytes(12 << 20, 5);
    // Commits every MiB, so the partial object is on the disk when the space runs out.
    let args = ["write", "v.img", "-", "--name", "s", "--commit-every", "1M"];
    let run = s.run_with_stdin(&args, &input);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr.contains("removed the partial object \"s\" (")
            && run.stderr.contains("bytes written); nothing kept"),
        "{}",
        run.stderr
    );
    let (generation, free, objects) = state(&s, "v.img");
    assert_eq!((free, objects), (fresh_free, 0), "space not given back");
    assert!(
        generation > 2,
        "the removal of a committed object is committed"
    );
    assert_eq!(s.json(0, &["verify", "v.img"])["clean"], true);
    // --keep-partial keeps it, incomplete, and says so.
    let keep = [&args[..], &["--keep-partial"]].concat();
    let run = s.run_with_stdin(&keep, &input);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr.contains("kept partial object \"s\", ") && run.stderr.contains("incomplete"),
        "{}",
        run.stderr
    );
    let ls = s.json(0, &["ls", "v.img"]);
    assert_eq!(ls["objects"][0]["name"], "s");
    assert_eq!(ls["objects"][0]["complete"], false);
    assert!(
        ls["objects"][0]["size_bytes"].as_u64().unwrap() > 4 << 20,
        "{ls}"
    );
    assert_eq!(s.json(0, &["verify", "v.img"])["clean"], true);
    // A fill still succeeds by filling up.
    s.expect(0, &["rm", "v.img", "s"]);
    s.expect(0, &["write", "v.img", "--fill"]);
}
