//! Forged superblocks: a copy whose checksum holds but whose geometry is absurd, does not
//! fit the device, or disagrees with the other copy is damaged metadata. Every read-only
//! command must agree on which slot is usable, no command may reach an assertion, and
//! the volume stays usable through the other slot (exit 1) or is refused with both
//! reasons (exit 3).

use std::path::Path;

use stack_csum::Algorithm;

use super::harness::{bytes, patch, Scratch};

/// Byte offset of the superblock field `total_blocks` (docs/FORMAT.md).
const TOTAL_BLOCKS_AT: u64 = 48;
/// Byte offset of the superblock checksum.
const CSUM_AT: usize = 120;
const SLOT_AT: [u64; 2] = [0, 64 * 1024];

/// Overwrites the u64 at `field` of superblock `slot` and recomputes its checksum, so
/// the forgery passes the checksum and reaches the geometry checks.
fn forge(path: &Path, slot: usize, field: u64, value: u64) {
    let at = SLOT_AT[slot];
    patch(path, at + field, &value.to_le_bytes());
    let image = std::fs::read(path).unwrap();
    let sb = &image[at as usize..at as usize + CSUM_AT];
    let csum = stack_csum::checksum(Algorithm::Crc32c, 0, sb);
    patch(path, at + CSUM_AT as u64, &csum.to_le_bytes());
}

/// An 8 MiB volume (2048 blocks of 4 KiB) holding object `f` in both committed states:
/// after format's two commits and two writes, slot 0 holds generation 4 (newest, `f` and
/// `g`) and slot 1 generation 3 (`f`).
fn volume(s: &Scratch) -> Vec<u8> {
    s.volume("v.img", "8MiB");
    let data = bytes(50_000, 3);
    std::fs::write(s.path("f.bin"), &data).unwrap();
    s.expect(0, &["write", "v.img", "f.bin", "--name", "f"]);
    s.expect(0, &["write", "v.img", "f.bin", "--name", "g"]);
    data
}

/// The slot states verify, info and ls report, after checking they agree; the volume
/// is usable (one slot is), and `f` reads back.
fn usable_verdict(s: &Scratch, data: &[u8]) -> [String; 2] {
    let verify = s.json(1, &["verify", "v.img"]);
    let info = s.run(&["--json", "info", "v.img"]);
    let info = info.json();
    let ls = s.json(1, &["ls", "v.img"]);
    assert!(ls["warning"].is_string(), "{ls}");
    assert!(info["fallback_warning"].is_string(), "{info}");
    let states = |doc: &serde_json::Value| -> [String; 2] {
        [0, 1].map(|i| doc["superblocks"][i]["state"].as_str().unwrap().to_string())
    };
    assert_eq!(
        states(&verify),
        states(&info),
        "verify and info disagree:\n{verify}\n{info}"
    );
    assert!(
        states(&verify).iter().any(|s| s == "damaged"),
        "a forged slot must not be ok: {verify}"
    );
    assert!(!verify["metadata_ok"].as_bool().unwrap(), "{verify}");
    // A fallback is damage for every command (docs/CLI.md): read copies the object
    // out and exits 1.
    s.expect(1, &["read", "v.img", "f", "-o", "out.bin"]);
    assert_eq!(std::fs::read(s.path("out.bin")).unwrap(), data);
    std::fs::remove_file(s.path("out.bin")).unwrap();
    states(&verify)
}

/// `verify` built the allocator from a forged `total_blocks` of 2^64-1 or 2^64-2 (whose
/// checksum was recomputed) and stopped at `assertion failed: base < end` in
/// crates/alloc/src/group.rs ("internal error"), in either slot.
#[test]
fn total_blocks_near_u64_max_is_damaged_metadata_in_either_slot() {
    for slot in [0usize, 1] {
        for total in [u64::MAX, u64::MAX - 1] {
            let s = Scratch::new();
            let data = volume(&s);
            forge(&s.path("v.img"), slot, TOTAL_BLOCKS_AT, total);
            let states = usable_verdict(&s, &data);
            assert_eq!(states[slot], "damaged", "slot {slot}, total {total}");
            assert_eq!(states[1 - slot], "ok", "slot {slot}, total {total}");
        }
    }
}

/// When the older slot claimed a geometry that does not fit the device (more blocks than
/// the 2048 it holds, or 2047: not the geometry of the newer copy), `verify` said clean
/// with both slots ok and exited 0, while `ls` warned the slot was unusable and exited 1.
#[test]
fn older_slot_with_a_geometry_that_does_not_fit_is_damaged_for_every_command() {
    for total in [4096u64, 1 << 32, 1 << 63, 2047] {
        let s = Scratch::new();
        let data = volume(&s);
        forge(&s.path("v.img"), 1, TOTAL_BLOCKS_AT, total);
        let states = usable_verdict(&s, &data);
        assert_eq!(states, ["ok", "damaged"], "total_blocks {total}");
    }
}

/// Both slots forged: nothing is usable, every command exits 3 naming both slots' reasons.
#[test]
fn both_slots_forged_is_could_not_run_with_both_reasons() {
    let s = Scratch::new();
    volume(&s);
    forge(&s.path("v.img"), 0, TOTAL_BLOCKS_AT, u64::MAX);
    forge(&s.path("v.img"), 1, TOTAL_BLOCKS_AT, 4096);
    for cmd in [
        &["verify", "v.img"][..],
        &["ls", "v.img"],
        &["info", "v.img"],
        &["read", "v.img", "f", "-o", "out.bin"],
    ] {
        let run = s.expect(3, cmd);
        assert!(
            run.stderr.contains("slot 0") && run.stderr.contains("slot 1"),
            "{cmd:?}: {}",
            run.stderr
        );
        assert!(
            run.stderr.contains("18446744073709551615") && run.stderr.contains("4096"),
            "{cmd:?} must give both reasons: {}",
            run.stderr
        );
    }
    assert!(!s.path("out.bin").exists());
}

/// Bytes after the 128 encoded ones of a superblock's block were covered by nothing: a
/// non-zero byte there went unnoticed and verify called the volume clean.
#[test]
fn non_zero_bytes_after_the_superblock_are_damage() {
    for (slot, offset) in [(0usize, 128u64), (0, 4095), (1, 200), (1, 4095)] {
        let s = Scratch::new();
        let data = volume(&s);
        patch(&s.path("v.img"), SLOT_AT[slot] + offset, &[0x5a]);
        let verify = s.json(1, &["verify", "v.img"]);
        let state = &verify["superblocks"][slot];
        assert_eq!(
            state["state"], "damaged",
            "slot {slot} byte {offset}: {verify}"
        );
        assert!(
            state["reason"].as_str().unwrap().contains("zero"),
            "slot {slot} byte {offset}: {verify}"
        );
        assert_eq!(verify["superblocks"][1 - slot]["state"], "ok", "{verify}");
        s.json(1, &["ls", "v.img"]);
        // A fallback is damage for every command (docs/CLI.md): read copies the object
        // out and exits 1.
        s.expect(1, &["read", "v.img", "f", "-o", "out.bin"]);
        assert_eq!(std::fs::read(s.path("out.bin")).unwrap(), data);
    }
}
