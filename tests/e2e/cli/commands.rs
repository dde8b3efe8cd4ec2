//! Every command and option on a healthy volume: format, write (files, stdin, --name,
//! --replace, --pattern, --seed, --fill, --direct), verify, read, ls, rm, info, burn-in,
//! completions.

use super::harness::{bytes, Scratch};

#[test]
fn format_reports_the_new_volume_field_by_field() {
    let s = Scratch::new();
    let doc = s.json(0, &["format", "v.img", "--size", "4MiB"]);
    assert_eq!(doc["command"], "format");
    assert_eq!(doc["target"], "v.img");
    assert_eq!(doc["created_file"], true);
    assert_eq!(doc["replaced_volume"], false);
    assert_eq!(doc["forced_over"].as_array().unwrap().len(), 0);
    let volume = &doc["volume"];
    assert_eq!(volume["block_size"], 4096);
    assert_eq!(volume["csum"], "crc32c");
    assert_eq!(volume["size_bytes"], 4 << 20);
    assert_eq!(volume["objects"], 0);
    assert!(volume["free_bytes"].as_u64().unwrap() > 3 << 20);
    assert_eq!(volume["device"]["size"], 4 << 20);
    assert_eq!(volume["device"]["kind"], "file");
    assert_eq!(volume["device"]["volume_uuid"].as_str().unwrap().len(), 36);
    assert_eq!(volume["device"]["volume_uuid"], volume["uuid"]);
    assert_eq!(std::fs::metadata(s.path("v.img")).unwrap().len(), 4 << 20);

    // Formatting our own volume again is allowed, and says so.
    let again = s.json(0, &["format", "v.img"]);
    assert_eq!(again["created_file"], false);
    assert_eq!(again["replaced_volume"], true);
    assert_ne!(again["volume"]["uuid"], volume["uuid"]);
}

#[test]
fn format_options_reach_the_volume() {
    let s = Scratch::new();
    for (csum, block) in [("crc32c", "512"), ("xxh3", "8K"), ("xxh64", "64KiB")] {
        s.expect(
            0,
            &[
                "format",
                "v.img",
                "--size",
                "8MiB",
                "--block-size",
                block,
                "--csum",
                csum,
                "--force",
            ],
        );
        let info = s.json(0, &["info", "v.img"]);
        assert_eq!(info["csum"], csum);
        let want: u64 = match block {
            "512" => 512,
            "8K" => 8192,
            _ => 65536,
        };
        assert_eq!(info["block_size"], want);
        s.expect(
            0,
            &[
                "write",
                "v.img",
                "--pattern",
                "--size",
                "100K",
                "--seed",
                "3",
            ],
        );
        assert_eq!(s.json(0, &["verify", "v.img"])["clean"], true);
        std::fs::remove_file(s.path("v.img")).unwrap();
    }
    // Not a power of two, or out of range: a usage error.
    for bad in ["3000", "256", "128K"] {
        let run = s.expect(
            2,
            &["format", "v.img", "--size", "4MiB", "--block-size", bad],
        );
        assert!(run.stderr.contains("--block-size"), "{}", run.stderr);
    }
    assert!(
        !s.path("v.img").exists(),
        "a refused format creates nothing"
    );
}

#[test]
fn write_files_stdin_names_and_replace() {
    let s = Scratch::new();
    s.volume("v.img", "8MiB");
    let a = bytes(300_000, 1);
    let b = bytes(5000, 2);
    std::fs::write(s.path("a.bin"), &a).unwrap();
    std::fs::write(s.path("b.bin"), &b).unwrap();
    let doc = s.json(0, &["write", "v.img", "a.bin", "b.bin"]);
    assert_eq!(doc["command"], "write");
    assert_eq!(doc["bytes"], 305_000);
    let objects = doc["objects"].as_array().unwrap();
    assert_eq!(objects.len(), 2);
    assert_eq!(objects[0]["name"], "a.bin");
    assert_eq!(objects[0]["bytes"], 300_000);
    assert_eq!(objects[0]["size_bytes"], 300_000);
    assert_eq!(objects[0]["complete"], true);
    assert_eq!(objects[0]["kind"], "file");
    assert_eq!(objects[0]["seed"], serde_json::Value::Null);
    assert!(objects[0]["commits"].as_u64().unwrap() >= 1);
    assert!(objects[0]["extents"].as_u64().unwrap() >= 1);
    assert!(objects[0]["elapsed_secs"].as_f64().unwrap() >= 0.0);
    assert_eq!(objects[1]["name"], "b.bin");

    // A name that exists is refused, and the object is untouched.
    let run = s.expect(3, &["write", "v.img", "b.bin"]);
    assert!(
        run.stderr.contains("b.bin") && run.stderr.contains("exists"),
        "{}",
        run.stderr
    );
    std::fs::write(s.path("b.bin"), b"replaced").unwrap();
    s.expect(0, &["write", "v.img", "b.bin", "--replace"]);
    s.expect(0, &["read", "v.img", "b.bin", "-o", "b.out"]);
    assert_eq!(std::fs::read(s.path("b.out")).unwrap(), b"replaced");

    // --name for one input, stdin with --name.
    s.expect(0, &["write", "v.img", "a.bin", "--name", "renamed"]);
    let run = s.run_with_stdin(&["write", "v.img", "-", "--name", "from-stdin"], &b);
    assert_eq!(run.code, 0, "{}", run.stderr);
    s.expect(0, &["read", "v.img", "from-stdin", "-o", "stdin.out"]);
    assert_eq!(std::fs::read(s.path("stdin.out")).unwrap(), b);
    s.expect(0, &["read", "v.img", "renamed", "-o", "renamed.out"]);
    assert_eq!(std::fs::read(s.path("renamed.out")).unwrap(), a);

    let names: Vec<String> = s.json(0, &["ls", "v.img"])["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["a.bin", "b.bin", "renamed", "from-stdin"]);
}

#[test]
fn write_usage_errors() {
    let s = Scratch::new();
    s.volume("v.img", "4MiB");
    std::fs::write(s.path("a"), b"a").unwrap();
    std::fs::write(s.path("b"), b"b").unwrap();
    for args in [
        &["write", "v.img"][..],
        &["write", "v.img", "-"],
        &["write", "v.img", "a", "b", "--name", "x"],
        &["write", "v.img", "a", "--seed", "1"],
        &["write", "v.img", "--pattern"],
        &["write", "v.img", "--size", "1M"],
        &["write", "v.img", "a", "--fill"],
        &["write", "v.img", "--fill", "--resume"],
        &["write", "v.img", "a", "./a"],
    ] {
        let run = s.expect(2, args);
        assert!(!run.stderr.is_empty(), "{args:?}");
    }
    assert_eq!(
        s.json(0, &["ls", "v.img"])["objects"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    // A missing input is found before anything is written.
    let run = s.expect(3, &["write", "v.img", "a", "no-such-input"]);
    assert!(run.stderr.contains("no-such-input"), "{}", run.stderr);
    assert_eq!(
        s.json(0, &["ls", "v.img"])["objects"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
}

#[test]
fn pattern_seed_fill_and_direct() {
    let s = Scratch::new();
    s.volume("v.img", "8MiB");
    let doc = s.json(
        0,
        &[
            "write",
            "v.img",
            "--pattern",
            "--size",
            "1MiB",
            "--seed",
            "9",
        ],
    );
    let object = &doc["objects"][0];
    assert_eq!(object["name"], "pattern-9");
    assert_eq!(object["bytes"], 1 << 20);
    assert_eq!(object["kind"], "pattern");
    assert_eq!(object["seed"], 9);
    // Without --seed a random one is chosen and reported.
    let doc = s.json(
        0,
        &[
            "write",
            "v.img",
            "--pattern",
            "--size",
            "64K",
            "--name",
            "p",
        ],
    );
    assert!(doc["objects"][0]["seed"].is_u64());
    let ls = s.json(0, &["ls", "v.img"]);
    assert_eq!(ls["objects"][0]["seed"], 9);
    assert_eq!(ls["objects"][1]["name"], "p");

    let free = s.json(0, &["info", "v.img"])["free_bytes"]
        .as_u64()
        .unwrap();
    let doc = s.json(0, &["write", "v.img", "--fill", "--seed", "5"]);
    let filled = doc["objects"][0]["bytes"].as_u64().unwrap();
    assert_eq!(doc["objects"][0]["name"], "fill");
    assert!(
        filled > free / 2 && filled <= free,
        "filled {filled} of {free}"
    );
    assert_eq!(s.json(0, &["verify", "v.img"])["clean"], true);

    // --direct: O_DIRECT where the filesystem has it (tmpfs does not: then exit 3
    // with the reason, never a silent fallback).
    let s = Scratch::new();
    s.volume("d.img", "4MiB");
    let run = s.run(&[
        "write",
        "d.img",
        "--pattern",
        "--size",
        "256K",
        "--seed",
        "1",
        "--direct",
    ]);
    if run.code == 0 {
        assert_eq!(
            s.expect(0, &["--json", "verify", "d.img", "--direct"])
                .json()["clean"],
            true
        );
    } else {
        assert_eq!(run.code, 3, "{}", run.stderr);
        assert!(run.stderr.contains("d.img"), "{}", run.stderr);
    }
}

#[test]
fn verify_clean_and_one_object() {
    let s = Scratch::new();
    s.volume("v.img", "8MiB");
    std::fs::write(s.path("f"), bytes(10_000, 4)).unwrap();
    s.expect(0, &["write", "v.img", "f"]);
    s.expect(
        0,
        &[
            "write",
            "v.img",
            "--pattern",
            "--size",
            "256K",
            "--seed",
            "2",
        ],
    );
    let doc = s.json(0, &["verify", "v.img"]);
    assert_eq!(doc["command"], "verify");
    assert_eq!(doc["clean"], true);
    assert_eq!(doc["objects_verified"], 2);
    assert_eq!(doc["bytes_verified"], 12288 + 262_144);
    assert_eq!(doc["blocks_verified"], 3 + 64);
    assert_eq!(doc["damaged"].as_array().unwrap().len(), 0);
    assert_eq!(doc["damaged_not_listed"], 0);
    assert_eq!(doc["metadata_ok"], true);
    assert_eq!(doc["interrupted"], false);
    let slots = doc["superblocks"].as_array().unwrap();
    assert_eq!(slots.len(), 2);
    for (index, slot) in slots.iter().enumerate() {
        assert_eq!(slot["slot"], index);
        assert_eq!(slot["state"], "ok");
        assert!(slot["generation"].is_u64());
    }
    let device = &doc["device"];
    assert_eq!(device["path"], "v.img");
    assert_eq!(device["size"], 8 << 20);
    assert!(device["logical_block_size"].as_u64().unwrap() >= 512);
    assert!(device.get("model").is_some() && device.get("serial").is_some());
    assert_eq!(device["volume_uuid"], s.json(0, &["info", "v.img"])["uuid"]);

    let one = s.json(0, &["verify", "v.img", "--object", "f"]);
    assert_eq!(one["objects_verified"], 1);
    assert_eq!(one["bytes_verified"], 12288);
    let run = s.expect(3, &["verify", "v.img", "--object", "nope"]);
    assert!(run.stderr.contains("nope"), "{}", run.stderr);

    let human = s.expect(0, &["verify", "v.img"]).stdout;
    assert!(human.contains("verify: clean"), "{human}");
    assert!(
        human.contains("MiB/s") || human.contains("KiB/s") || human.contains("GiB/s"),
        "{human}"
    );
}

#[test]
fn read_ls_rm_info() {
    let s = Scratch::new();
    s.volume("v.img", "4MiB");
    let data = bytes(70_000, 8);
    std::fs::write(s.path("in.bin"), &data).unwrap();
    s.expect(0, &["write", "v.img", "in.bin", "--name", "obj"]);

    // Default: a file named after the object in the current directory.
    let doc = s.json(0, &["read", "v.img", "obj"]);
    assert_eq!(doc["object"], "obj");
    assert_eq!(doc["bytes"], 70_000);
    assert_eq!(std::fs::read(s.path("obj")).unwrap(), data);
    // To stdout.
    let run = s.expect(0, &["read", "v.img", "obj", "-o", "-"]);
    assert_eq!(run.stdout_bytes, data);
    assert!(run.stderr.contains("every block verified"));
    // Into a directory.
    std::fs::create_dir(s.path("out")).unwrap();
    s.expect(0, &["read", "v.img", "obj", "-o", "out"]);
    assert_eq!(std::fs::read(s.path("out/obj")).unwrap(), data);
    // An explicit file is replaced.
    std::fs::write(s.path("explicit"), b"old").unwrap();
    s.expect(0, &["read", "v.img", "obj", "-o", "explicit"]);
    assert_eq!(std::fs::read(s.path("explicit")).unwrap(), data);
    let run = s.expect(3, &["read", "v.img", "missing-object", "-o", "x"]);
    assert!(run.stderr.contains("missing-object"), "{}", run.stderr);
    assert!(!s.path("x").exists());

    let ls = s.json(0, &["ls", "v.img"]);
    let object = &ls["objects"][0];
    assert_eq!(object["name"], "obj");
    assert_eq!(object["size_bytes"], 70_000);
    assert_eq!(object["complete"], true);
    assert_eq!(object["kind"], "file");
    assert!(object["created"].as_u64().unwrap() > 1_600_000_000);
    assert!(object["id"].is_u64());
    assert!(s.expect(0, &["ls", "v.img"]).stdout.contains("obj"));

    let info = s.json(0, &["info", "v.img"]);
    assert_eq!(info["objects"], 1);
    assert_eq!(info["incomplete_objects"], 0);
    assert!(info["used_bytes"].as_u64().unwrap() >= 70_000);
    assert_eq!(info["fallback_warning"], serde_json::Value::Null);
    let free_before = info["free_bytes"].as_u64().unwrap();
    assert!(s.expect(0, &["info", "v.img"]).stdout.contains("crc32c"));

    let rm = s.json(0, &["rm", "v.img", "obj"]);
    assert_eq!(rm["removed"], "obj");
    assert_eq!(rm["size_bytes"], 70_000);
    assert!(rm["free_bytes"].as_u64().unwrap() > free_before);
    let run = s.expect(3, &["rm", "v.img", "obj"]);
    assert!(run.stderr.contains("obj"), "{}", run.stderr);
    assert_eq!(
        s.json(0, &["ls", "v.img"])["objects"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert!(s.expect(0, &["ls", "v.img"]).stdout.contains("no objects"));
}

#[test]
fn burn_in_formats_fills_and_verifies() {
    let s = Scratch::new();
    let doc = s.json(0, &["burn-in", "b.img", "--size", "6MiB", "--seed", "11"]);
    assert_eq!(doc["command"], "burn-in");
    assert_eq!(doc["clean"], true);
    assert_eq!(doc["seed"], 11);
    assert_eq!(doc["format"]["created_file"], true);
    assert_eq!(doc["write"]["name"], "burn-in");
    let written = doc["write"]["bytes"].as_u64().unwrap();
    assert!(written > 5 << 20, "{written}");
    assert_eq!(doc["verify"]["bytes_verified"], written);
    assert_eq!(doc["verify"]["clean"], true);
    assert_eq!(doc["verify"]["device"]["size"], 6 << 20);
    // Again on the same file: our own volume, no --force needed.
    let again = s.json(0, &["burn-in", "b.img"]);
    assert_eq!(again["format"]["replaced_volume"], true);
    let human = s
        .expect(
            0,
            &["burn-in", "b.img", "--csum", "xxh64", "--block-size", "16K"],
        )
        .stdout;
    assert!(
        human.contains("formatted b.img") && human.contains("verify: clean"),
        "{human}"
    );
    let run = s.expect(3, &["burn-in", "new.img"]);
    assert!(
        run.stderr.contains("new.img") && run.stderr.contains("--size"),
        "{}",
        run.stderr
    );
}

#[test]
fn completions_help_and_version() {
    let s = Scratch::new();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let run = s.expect(0, &["completions", shell]);
        assert!(run.stdout.contains("stackctl"), "{shell}");
        assert!(run.stdout.contains("burn-in"), "{shell}");
    }
    s.expect(2, &["completions", "tcsh"]);
    let help = s.expect(0, &["--help"]).stdout;
    for needle in [
        "Exit status",
        "130",
        "could not run",
        "damage found",
        "burn-in",
        "--json",
        "--progress",
    ] {
        assert!(help.contains(needle), "{needle}: {help}");
    }
    let verify_help = s.expect(0, &["verify", "--help"]).stdout;
    assert!(verify_help.contains("--object") && verify_help.contains("Exit status"));
    assert!(s.expect(0, &["--version"]).stdout.starts_with("stackctl "));
    s.expect(2, &[]);
    s.expect(2, &["frobnicate"]);
}
