//! The write pipeline's two ways of doing the pre-I/O work (on the caller's thread, or
//! on the submit pool with an ordered hand-off) store the same bytes and checksums.

use std::sync::Arc;

use stack_bio::MemDevice;

use super::write::FORCE_INLINE;
use crate::format::ObjectKind;
use crate::options::{FormatOptions, VerifyOptions, WriteOptions};
use crate::pattern::{fill_blocks, PatternHeader};
use crate::volume::Volume;

/// Writes a file object and a pattern object with the pre-I/O work `inline` or not,
/// then checks them: a clean verify, the file read back, and every pattern block equal
/// to the pattern definition at its address.
fn write_and_check(inline: bool) {
    FORCE_INLINE.with(|f| f.set(Some(inline)));
    let dev = Arc::new(MemDevice::new(24 << 20));
    let mut vol = Volume::format_device(dev, &FormatOptions::default()).unwrap();
    let input: Vec<u8> = (0..(5 << 20) + 123)
        .map(|i: u32| (i * 7 % 251) as u8)
        .collect();
    let opts = WriteOptions {
        commit_every_bytes: 1 << 20,
        ..WriteOptions::default()
    };
    let file = vol.write("file", &mut &input[..], &opts).unwrap();
    assert_eq!(file.size_bytes, input.len() as u64);
    let pattern = vol.write_pattern("pattern", 3 << 20, 9, &opts).unwrap();
    assert!(pattern.complete);
    FORCE_INLINE.with(|f| f.set(None));

    let report = vol.verify(&VerifyOptions::default()).unwrap();
    assert!(report.clean(), "inline {inline}: {:?}", report.damaged);
    assert_eq!(report.bytes_verified, (5 << 20) + 4096 + (3 << 20));
    let mut out = Vec::new();
    vol.read("file", &mut out).unwrap();
    assert!(out == input, "inline {inline}: file differs");

    let record = vol.find("pattern").unwrap().clone();
    let ObjectKind::Pattern { seed } = record.kind else {
        panic!("{:?}", record.kind)
    };
    let mut out = Vec::new();
    vol.read("pattern", &mut out).unwrap();
    let bs = vol.block_size_bytes() as usize;
    let mut logical = 0usize;
    for run in &record.runs {
        let len = run.data_blocks as usize * bs;
        let mut want = vec![0u8; len];
        let first = PatternHeader {
            phys_block: run.data_start_block,
            object_id: record.id,
            logical_offset: logical as u64,
            generation: run.write_generation,
            seed,
        };
        fill_blocks(&mut want, bs, vol.salt(), first);
        assert!(
            out[logical..logical + len] == want[..],
            "inline {inline}: {run:?}"
        );
        logical += len;
    }
    assert_eq!(logical, out.len());
}

#[test]
fn pre_io_on_the_callers_thread_writes_what_verifies() {
    write_and_check(true);
}

#[test]
fn pre_io_on_the_submit_pool_writes_what_verifies() {
    write_and_check(false);
}
