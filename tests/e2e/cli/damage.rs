//! Damage found: verify lists every damaged range (object, logical and physical offset,
//! length, cause, expected and found checksum), merges adjacent blocks with one cause,
//! and exits 1; read of a damaged object exits 1 and leaves no output file.

use super::harness::{bytes, patch, pattern_blocks, Scratch};

const BLOCK: usize = 4096;

/// A volume with one pattern object of 64 blocks and one file object; returns the
/// physical offsets of the pattern blocks in object order.
pub(super) fn damaged_volume(s: &Scratch) -> Vec<usize> {
    s.volume("v.img", "8MiB");
    s.expect(
        0,
        &[
            "write",
            "v.img",
            "--pattern",
            "--size",
            "256K",
            "--seed",
            "5",
            "--name",
            "pat",
        ],
    );
    std::fs::write(s.path("f.bin"), bytes(40_960, 6)).unwrap();
    s.expect(0, &["write", "v.img", "f.bin"]);
    let image = std::fs::read(s.path("v.img")).unwrap();
    let blocks = pattern_blocks(&image, BLOCK);
    assert_eq!(blocks.len(), 64, "one header per pattern block");
    blocks
}

#[test]
fn verify_lists_each_damaged_range_field_by_field() {
    let s = Scratch::new();
    let blocks = damaged_volume(&s);
    // Block 3: one flipped bit. Blocks 10..13: zeroed (one merged range).
    let flipped_at = blocks[3] + 1000;
    let image = std::fs::read(s.path("v.img")).unwrap();
    patch(
        &s.path("v.img"),
        flipped_at as u64,
        &[image[flipped_at] ^ 0x10],
    );
    for block in &blocks[10..13] {
        patch(&s.path("v.img"), *block as u64, &[0u8; BLOCK]);
    }
    assert_eq!(
        blocks[11],
        blocks[10] + BLOCK,
        "the pattern object is contiguous here"
    );

    let doc = s.json(1, &["verify", "v.img"]);
    assert_eq!(doc["clean"], false);
    let damaged = doc["damaged"].as_array().unwrap();
    assert_eq!(damaged.len(), 2, "{damaged:?}");
    let flipped = &damaged[0];
    assert_eq!(flipped["object"], "pat");
    assert_eq!(flipped["logical_offset"], 3 * BLOCK);
    assert_eq!(flipped["physical_offset"], blocks[3]);
    assert_eq!(flipped["length"], BLOCK);
    assert_eq!(flipped["blocks"], 1);
    assert_eq!(flipped["cause"], "flipped-bits");
    assert_eq!(flipped["bits"], 1);
    let expected = flipped["expected"].as_str().unwrap();
    let found = flipped["found"].as_str().unwrap();
    assert_eq!(expected.len(), 8, "crc32c: 8 hex digits");
    assert_ne!(expected, found);
    let zeroed = &damaged[1];
    assert_eq!(zeroed["object"], "pat");
    assert_eq!(zeroed["logical_offset"], 10 * BLOCK);
    assert_eq!(zeroed["physical_offset"], blocks[10]);
    assert_eq!(zeroed["length"], 3 * BLOCK);
    assert_eq!(zeroed["blocks"], 3);
    assert_eq!(zeroed["cause"], "zeroed");
    // The rest of the report is still complete.
    assert_eq!(doc["bytes_verified"], 256 * 1024 + 40_960);
    assert_eq!(doc["metadata_ok"], true);

    let human = s.expect(1, &["verify", "v.img"]).stdout;
    assert!(human.contains("DAMAGE FOUND"), "{human}");
    for needle in [
        "OBJECT",
        "LOGICAL",
        "PHYSICAL",
        "LENGTH",
        "CAUSE",
        "EXPECTED",
        "FOUND",
        "zeroed",
        "flipped-bits",
    ] {
        assert!(human.contains(needle), "{needle}: {human}");
    }
    assert!(human.contains(&blocks[10].to_string()), "{human}");
    assert!(human.contains(expected), "{human}");

    // Only the healthy object: clean.
    assert_eq!(
        s.json(0, &["verify", "v.img", "--object", "f.bin"])["clean"],
        true
    );
    // The damaged object cannot be read; nothing is left behind.
    let run = s.expect(1, &["read", "v.img", "pat", "-o", "pat.out"]);
    assert!(
        run.stderr.contains("pat") && run.stderr.contains(&(3 * BLOCK).to_string()),
        "{}",
        run.stderr
    );
    assert!(!s.path("pat.out").exists());
}

#[test]
fn damaged_file_data_is_a_checksum_mismatch() {
    let s = Scratch::new();
    let blocks = damaged_volume(&s);
    let image = std::fs::read(s.path("v.img")).unwrap();
    let content = bytes(40_960, 6);
    // Find the file's first block by its content and flip a byte in its second block.
    let first = image
        .windows(64)
        .position(|w| w == &content[..64])
        .expect("the file's data is in the image");
    assert!(!blocks.contains(&first));
    let at = first + BLOCK + 17;
    patch(&s.path("v.img"), at as u64, &[image[at] ^ 0xff]);
    let doc = s.json(1, &["verify", "v.img"]);
    let damaged = doc["damaged"].as_array().unwrap();
    assert_eq!(damaged.len(), 1, "{damaged:?}");
    assert_eq!(damaged[0]["object"], "f.bin");
    assert_eq!(damaged[0]["logical_offset"], BLOCK);
    assert_eq!(damaged[0]["physical_offset"], first + BLOCK);
    assert_eq!(damaged[0]["cause"], "checksum-mismatch");
    s.expect(1, &["read", "v.img", "f.bin", "-o", "f.out"]);
    assert!(!s.path("f.out").exists());
    let doc = s.json(1, &["read", "v.img", "f.bin", "-o", "f.out"]);
    assert!(doc["error"].as_str().unwrap().contains("f.bin"));
}

#[test]
fn burn_in_on_a_damaging_target_is_not_clean() {
    // The damage happens between burn-in runs here (a real bad drive damages during
    // the run); a second verify of the same volume must then exit 1.
    let s = Scratch::new();
    s.expect(0, &["burn-in", "b.img", "--size", "4MiB", "--seed", "1"]);
    let image = std::fs::read(s.path("b.img")).unwrap();
    let blocks = pattern_blocks(&image, BLOCK);
    patch(
        &s.path("b.img"),
        blocks[blocks.len() / 2] as u64,
        &[0u8; BLOCK],
    );
    let doc = s.json(1, &["verify", "b.img"]);
    assert_eq!(doc["damaged"][0]["object"], "burn-in");
    assert_eq!(doc["damaged"][0]["cause"], "zeroed");
}
