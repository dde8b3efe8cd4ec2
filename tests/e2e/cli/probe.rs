//! `probe`: a good file and a loop device show no fake (exit 0) within the write budget
//! and say that burn-in is the proof; the target afterwards is no volume; the refusals of
//! burn-in hold (signatures and a volume with objects unless `--force`, a mounted device
//! and a locked target always); a target too small to probe cannot run (exit 3).
//!
//! No wrapping device exists at this level: device-mapper (a linear table repeating one
//! loop device) would be one, but the test machines have no dm driver, so the wrap is
//! proven on `FaultyDevice` and sparse fakes in the library's tests (`probe::tests`).

use std::path::Path;

use super::devices::{image, Loop};
use super::harness::Scratch;

const MIB: u64 = 1 << 20;

/// A sparse file of `size_bytes`.
fn sparse(s: &Scratch, name: &str, size_bytes: u64) -> String {
    let file = std::fs::File::create(s.path(name)).unwrap();
    file.set_len(size_bytes).unwrap();
    name.to_string()
}

/// Checks a no-fake document of a target of `size_bytes`.
fn assert_no_fake(doc: &serde_json::Value, target: &str, size_bytes: u64) {
    assert_eq!(doc["command"], "probe");
    assert_eq!(doc["target"], target);
    assert_eq!(doc["advertised_bytes"], size_bytes);
    assert_eq!(doc["verdict"]["kind"], "no-fake-found", "{doc}");
    assert!(doc["verdict"]["usable_bytes"].is_null(), "{doc}");
    let evidence = doc["verdict"]["evidence"].as_array().unwrap();
    assert_eq!(evidence[0]["kind"], "all-read", "{doc}");
    let written = doc["bytes_written"].as_u64().unwrap();
    let blocks = doc["blocks_written"].as_u64().unwrap();
    assert!(written > 0 && written <= size_bytes / 100, "{doc}");
    assert!(written <= 256 * MIB);
    assert_eq!(written, blocks * doc["block_bytes"].as_u64().unwrap());
    assert!(doc["elapsed_secs"].as_f64().unwrap() >= 0.0);
    let source = doc["source"].as_str().unwrap();
    assert!(
        ["direct", "evicted", "memory"].contains(&source),
        "{source}"
    );
    assert!(doc["limits"].as_str().unwrap().contains("burn-in"));
}

#[test]
fn a_good_file_shows_no_fake_within_budget_and_is_no_volume_after() {
    let s = Scratch::new();
    let target = sparse(&s, "good.img", 256 * MIB);
    let run = s.expect(0, &["probe", &target]);
    assert!(
        run.stdout.starts_with("no fake found by probing good.img"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("remaps"), "{}", run.stdout);
    assert!(run.stdout.contains("burn-in"), "{}", run.stdout);
    assert!(run.stdout.contains("no volume"), "{}", run.stdout);
    // Its own result may be probed again without --force.
    let doc = s.json(0, &["probe", &target]);
    assert_no_fake(&doc, &target, 256 * MIB);
    assert!(doc["forced_over"].as_array().unwrap().is_empty());
    // A smaller budget is kept to; a larger one is not granted.
    let doc = s.json(0, &["probe", &target, "--budget", "400K"]);
    assert!(doc["bytes_written"].as_u64().unwrap() <= 400 << 10, "{doc}");
    let doc = s.json(0, &["probe", &target, "--budget", "1G", "--cache", "1M"]);
    assert!(
        doc["bytes_written"].as_u64().unwrap() <= 256 * MIB / 100,
        "{doc}"
    );
    // What it leaves is no volume.
    let run = s.expect(3, &["ls", &target]);
    assert!(run.stderr.contains("stackctl probe"), "{}", run.stderr);
}

#[test]
fn a_loop_device_shows_no_fake_from_the_drive() {
    let s = Scratch::new();
    let disk = image(&s, "disk.img", 128 * MIB, &[]);
    let lo = match Loop::attach(&disk) {
        Ok(lo) => lo,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let doc = s.json(0, &["probe", lo.path()]);
    assert_no_fake(&doc, lo.path(), 128 * MIB);
    assert_eq!(doc["source"], "direct", "{doc}");
}

#[test]
fn content_is_refused_unless_forced() {
    let s = Scratch::new();
    let ext4 = image(&s, "ext4.img", 128 * MIB, &[(1080, &[0x53, 0xef])]);
    let ext4 = ext4.to_str().unwrap();
    let run = s.expect(3, &["probe", ext4]);
    assert!(run.stderr.contains("ext2/3/4"), "{}", run.stderr);
    assert!(run.stderr.contains("--force"), "{}", run.stderr);
    let doc = s.json(0, &["probe", ext4, "--force"]);
    assert!(doc["forced_over"][0].as_str().unwrap().contains("ext2/3/4"));

    let data = image(&s, "data.img", 128 * MIB, &[(300_000, b"precious")]);
    let _ = &data;
    let run = s.expect(3, &["probe", "data.img"]);
    assert!(run.stderr.contains("non-zero data"), "{}", run.stderr);
}

#[test]
fn a_volume_with_objects_is_refused_unless_forced_an_empty_one_is_not() {
    let s = Scratch::new();
    s.volume("vol.img", "128MiB");
    s.expect(
        0,
        &[
            "write",
            "vol.img",
            "--pattern",
            "--size",
            "1MiB",
            "--name",
            "keep",
        ],
    );
    let run = s.expect(3, &["probe", "vol.img"]);
    assert!(run.stderr.contains("refusing to probe"), "{}", run.stderr);
    assert!(run.stderr.contains("\"keep\""), "{}", run.stderr);
    s.expect(0, &["probe", "vol.img", "--force"]);
    s.expect(3, &["ls", "vol.img"]);
    s.volume("empty.img", "128MiB");
    s.expect(0, &["probe", "empty.img"]);
}

#[test]
fn missing_small_locked_and_misused_targets() {
    let s = Scratch::new();
    let run = s.expect(3, &["probe", "nope.img"]);
    assert!(run.stderr.contains("does not exist"), "{}", run.stderr);
    assert!(!s.path("nope.img").exists());
    let small = sparse(&s, "small.img", 4 * MIB);
    let run = s.expect(3, &["probe", &small]);
    assert!(run.stderr.contains("cannot probe"), "{}", run.stderr);
    s.expect(2, &["probe", &small, "--direct", "--cached"]);
    s.expect(2, &["probe", &small, "--budget", "lots"]);
    s.expect(2, &["probe"]);

    let target = sparse(&s, "held.img", 128 * MIB);
    let held = stack_volume::VolumeLock::acquire(
        Path::new(&s.path(&target)),
        stack_volume::LockMode::Shared,
        stack_volume::LockWait::NoWait,
        None,
    )
    .unwrap();
    let run = s.expect(3, &["probe", &target]);
    assert!(run.stderr.contains("in use"), "{}", run.stderr);
    drop(held);
    s.expect(0, &["probe", &target]);
}

#[test]
fn a_mounted_device_is_refused_even_with_force() {
    let s = Scratch::new();
    let disk = image(&s, "fs.img", 128 * MIB, &[]);
    let mut lo = match Loop::attach(&disk) {
        Ok(lo) => lo,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    if let Err(why) = lo.mount(&s.path("mnt")) {
        eprintln!("skipped: {why}");
        return;
    }
    let run = s.expect(3, &["probe", lo.path(), "--force"]);
    assert!(run.stderr.contains("not overridable"), "{}", run.stderr);
}
