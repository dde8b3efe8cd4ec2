//! Unit tests of format, open, commit and the superblock fallback.

use std::sync::Arc;

use stack_bio::{Device, MemDevice};

use super::*;
use crate::format::SB_SLOT_OFFSETS;
use crate::options::WriteOptions;

fn mem(size_bytes: u64) -> Arc<MemDevice> {
    Arc::new(MemDevice::new(size_bytes))
}

#[test]
fn format_then_open_sees_generation_two_and_both_slots() {
    let dev = mem(1 << 20);
    let vol = Volume::format_device(dev.clone(), &FormatOptions::default()).unwrap();
    assert_eq!(vol.generation(), 2);
    drop(vol);
    let vol = Volume::open_device(dev, &OpenOptions::default()).unwrap();
    let info = vol.info();
    assert_eq!(info.generation, 2);
    assert_eq!(info.superblock_slot, 0);
    assert!(info.fallback_warning.is_none());
    assert_eq!(info.objects, 0);
    assert!(
        vol.slot_states.iter().all(SuperblockState::is_ok),
        "{:?}",
        vol.slot_states
    );
    assert_eq!(info.size_bytes, 1 << 20);
}

#[test]
fn too_small_and_bad_block_size_are_refused() {
    let err = Volume::format_device(mem(64 << 10), &FormatOptions::default()).unwrap_err();
    assert!(matches!(err, Error::TooSmall { .. }), "{err}");
    let opts = FormatOptions {
        block_size_bytes: 3000,
        ..FormatOptions::default()
    };
    let err = Volume::format_device(mem(1 << 20), &opts).unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidOption {
                option: "block size",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn blank_device_is_not_a_volume() {
    let err = Volume::open_device(mem(1 << 20), &OpenOptions::default()).unwrap_err();
    assert!(matches!(err, Error::NotAVolume { .. }), "{err}");
}

#[test]
fn damaged_newest_superblock_falls_back_and_says_so() {
    let dev = mem(1 << 20);
    drop(Volume::format_device(dev.clone(), &FormatOptions::default()).unwrap());
    // Generation 2 lives in slot 0: flip a byte of its generation field.
    let mut b = [0u8; 1];
    dev.read_at(&mut b, SB_SLOT_OFFSETS[0] + 40).unwrap();
    dev.write_at(&[b[0] ^ 0x10], SB_SLOT_OFFSETS[0] + 40)
        .unwrap();
    let mut vol = Volume::open_device(dev.clone(), &OpenOptions::default()).unwrap();
    assert_eq!(vol.generation(), 1);
    assert_eq!(vol.info().superblock_slot, 1);
    let warning = vol.info().fallback_warning.expect("a fallback warning");
    assert!(
        warning.contains("slot 0") && warning.contains("checksum"),
        "{warning}"
    );
    // The next commit overwrites the damaged slot, not the good one.
    vol.commit_table(vol.table.clone(), Vec::new()).unwrap();
    assert_eq!(vol.info().superblock_slot, 0);
    drop(vol);
    let vol = Volume::open_device(dev, &OpenOptions::default()).unwrap();
    assert!(vol.info().fallback_warning.is_none());
    assert_eq!(vol.generation(), 2);
}

#[test]
fn newest_superblock_with_damaged_metadata_falls_back() {
    let dev = mem(1 << 20);
    let vol = Volume::format_device(dev.clone(), &FormatOptions::default()).unwrap();
    let meta = vol.meta_extent.unwrap();
    drop(vol);
    let at = meta.start * 4096 + 100;
    dev.write_at(&[0xAA], at).unwrap();
    let vol = Volume::open_device(dev, &OpenOptions::default()).unwrap();
    assert_eq!(vol.generation(), 1);
    let warning = vol.info().fallback_warning.unwrap();
    assert!(warning.contains("metadata does not verify"), "{warning}");
    // Verify locates the damaged newer table as exactly as open did: its place on the
    // device and the byte where it breaks.
    let report = vol.verify(&crate::VerifyOptions::default()).unwrap();
    assert!(!report.clean());
    assert!(!report.metadata_ok);
    assert_eq!(
        report.metadata_damage.len(),
        1,
        "{:?}",
        report.metadata_damage
    );
    let damage = &report.metadata_damage[0];
    assert_eq!(damage.physical_offset, meta.start * 4096);
    assert!(damage.what.contains("generation 2"), "{}", damage.what);
    assert!(damage.detail.contains("byte"), "{}", damage.detail);
}

#[test]
fn both_superblocks_damaged_is_an_error_naming_both() {
    let dev = mem(1 << 20);
    drop(Volume::format_device(dev.clone(), &FormatOptions::default()).unwrap());
    for at in SB_SLOT_OFFSETS {
        dev.write_at(&[0xFF; 4], at + 16).unwrap();
    }
    let err = Volume::open_device(dev, &OpenOptions::default()).unwrap_err();
    match err {
        Error::BothSuperblocksBad { slot0, slot1, .. } => {
            assert!(slot0.contains("checksum"), "{slot0}");
            assert!(slot1.contains("checksum"), "{slot1}");
        }
        other => panic!("{other}"),
    }
}

#[test]
fn commits_alternate_slots_and_free_old_tables_one_commit_late() {
    let dev = mem(1 << 20);
    let mut vol = Volume::format_device(dev, &FormatOptions::default()).unwrap();
    let free0 = vol.alloc.free_blocks();
    for i in 0..6u64 {
        let before = vol.meta_extent.unwrap();
        vol.commit_table(vol.table.clone(), Vec::new()).unwrap();
        assert_eq!(vol.generation(), 3 + i);
        assert_eq!(u64::from(vol.sb.slot), (3 + i) % 2);
        assert_ne!(vol.meta_extent.unwrap(), before);
        vol.alloc.check().unwrap();
        // Two tables are referenced (one per slot) and one is busy at most.
        assert!(
            vol.alloc.free_blocks() + 1 >= free0,
            "{} vs {free0}",
            vol.alloc.free_blocks()
        );
    }
}

#[test]
fn read_only_refuses_changes() {
    let dev = mem(1 << 20);
    drop(Volume::format_device(dev.clone(), &FormatOptions::default()).unwrap());
    let mut vol = Volume::open_device(
        dev,
        &OpenOptions {
            read_only: true,
            ..OpenOptions::default()
        },
    )
    .unwrap();
    assert!(matches!(vol.remove("x"), Err(Error::ReadOnly)));
}

fn assert_clean(vol: &Volume) {
    let report = vol
        .verify(&crate::options::VerifyOptions::default())
        .unwrap();
    assert!(report.damaged.is_empty(), "{:?}", report.damaged);
    assert!(report.metadata_ok, "{:?}", report.metadata_damage);
}

#[test]
fn runs_between_commits_are_contiguous_and_so_are_their_checksum_streams() {
    let dev = mem(64 << 20);
    let mut vol = Volume::format_device(dev.clone(), &FormatOptions::default()).unwrap();
    vol.write_pattern("p", 30 << 20, 7, &WriteOptions::default())
        .unwrap();
    let record = vol.find("p").unwrap().clone();
    let (bs, width) = (vol.sb.block_size_bytes, vol.sb.algorithm.width_bytes());
    assert!(record.runs.len() >= 4, "{:?}", record.runs);
    // Data bios of one commit interval follow each other (they merge into long I/O).
    for pair in record.runs.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        assert_eq!(
            a.data_start_block + a.data_blocks,
            b.data_start_block,
            "{pair:?}"
        );
    }
    // The checksum streams, written at the commit, come from one area; only a renewal of
    // the table's reserve may fall between them.
    let breaks = record
        .runs
        .windows(2)
        .filter(|p| p[0].csum_start_block + p[0].csum_blocks(bs, width) != p[1].csum_start_block)
        .count();
    assert!(breaks <= 2, "{breaks} breaks: {:?}", record.runs);
    assert_clean(&vol);
    drop(vol);
    let vol = Volume::open_device(dev, &OpenOptions::default()).unwrap();
    assert_clean(&vol);
}

#[test]
fn commit_interval_commits_between_runs_whatever_the_byte_interval() {
    let dev = mem(48 << 20);
    let mut vol = Volume::format_device(dev.clone(), &FormatOptions::default()).unwrap();
    // A byte interval far beyond the write: only the final commit.
    let report = vol
        .write_pattern("slow-clock", 20 << 20, 5, &WriteOptions::default())
        .unwrap();
    assert_eq!(report.commits, 1, "{report:?}");
    // The time interval already passed at every run boundary: a commit after each run
    // (runs are at most 8 MiB), and the object as a whole is the same.
    let opts = WriteOptions {
        commit_interval: std::time::Duration::ZERO,
        ..WriteOptions::default()
    };
    let report = vol.write_pattern("fast-clock", 20 << 20, 5, &opts).unwrap();
    assert!(report.complete);
    assert!(report.commits >= 3, "{report:?}");
    assert_eq!(report.size_bytes, 20 << 20);
    assert_clean(&vol);
    drop(vol);
    let vol = Volume::open_device(dev, &OpenOptions::default()).unwrap();
    assert_eq!(vol.find("fast-clock").unwrap().size_bytes, 20 << 20);
    assert_clean(&vol);
}

#[test]
fn fill_with_short_commit_intervals_leaves_no_checksum_area_behind() {
    for commit_every_bytes in [64 << 10, 1 << 20, 64 << 20, 1 << 30] {
        let dev = mem(24 << 20);
        let mut vol = Volume::format_device(dev.clone(), &FormatOptions::default()).unwrap();
        let free_before = vol.free_bytes();
        let opts = WriteOptions {
            commit_every_bytes,
            ..WriteOptions::default()
        };
        let report = vol.fill("f", 3, &opts).unwrap();
        assert!(report.complete);
        // Everything but the table and the checksum streams holds data: no area the
        // write reserved for checksums is left allocated or unusable.
        let bs = u64::from(vol.sb.block_size_bytes);
        let record = vol.find("f").unwrap().clone();
        let width = vol.sb.algorithm.width_bytes();
        let csum_bytes: u64 = record
            .runs
            .iter()
            .map(|r| r.csum_blocks(vol.sb.block_size_bytes, width) * bs)
            .sum();
        let meta_bytes = vol.meta_extent.map_or(0, |e| e.len * bs);
        let free_after = vol.free_bytes();
        // Tables: the format's may be free again, the one the older superblock slot
        // references is still busy.
        let accounted = report.size_bytes + csum_bytes + free_after;
        assert!(
            accounted.abs_diff(free_before) <= 2 * meta_bytes,
            "interval {commit_every_bytes}: {accounted} B of {free_before} B"
        );
        assert!(
            free_after <= 16 * bs,
            "interval {commit_every_bytes}: {free_after} B free"
        );
        assert_clean(&vol);
        drop(vol);
        let vol = Volume::open_device(dev, &OpenOptions::default()).unwrap();
        assert_eq!(vol.free_bytes(), free_after);
        assert_clean(&vol);
    }
}
