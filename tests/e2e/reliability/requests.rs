//! Bad requests at the library level: a volume whose metadata claims more than the
//! device holds is refused (and not by first allocating what it claims); a read-only
//! target still verifies and refuses changes with a clear error.

use std::sync::Arc;

use stack_bio::{Device, MemDevice};
use stack_csum::Algorithm;
use stack_volume::format::{Superblock, SB_BYTES, SB_SLOT_OFFSETS};
use stack_volume::{Error, FormatOptions, OpenOptions, VerifyOptions, Volume, WriteOptions};

use super::alloc_track::largest_allocation;

const BS: u32 = 512;
const DEVICE_BYTES: u64 = 512 * 1024;

/// A formatted image holding one small object.
fn image() -> Vec<u8> {
    let dev = Arc::new(MemDevice::new(DEVICE_BYTES));
    let opts = FormatOptions {
        block_size_bytes: BS,
        algorithm: Algorithm::Crc32c,
        ..FormatOptions::default()
    };
    let mut vol = Volume::format_device(dev.clone(), &opts).expect("format");
    vol.write(
        "obj",
        &mut &b"committed bytes"[..],
        &WriteOptions::default(),
    )
    .expect("write");
    drop(vol);
    dev.snapshot()
}

/// Rewrites both superblocks through `edit`, with valid checksums.
fn edit_superblocks(image: &mut [u8], edit: impl Fn(&mut Superblock)) {
    for slot in [0u8, 1] {
        let at = SB_SLOT_OFFSETS[usize::from(slot)] as usize;
        let mut sb = Superblock::decode(&image[at..at + 512], slot).expect("superblock");
        edit(&mut sb);
        image[at..at + SB_BYTES].copy_from_slice(&sb.encode());
    }
}

fn open(image: Vec<u8>) -> (Result<Volume, Error>, usize) {
    let dev: Arc<dyn Device> = Arc::new(MemDevice::from_bytes(image, 512));
    largest_allocation(|| Volume::open_device(dev, &OpenOptions::default()))
}

#[test]
fn superblock_claiming_more_blocks_than_the_device_is_refused() {
    let mut img = image();
    edit_superblocks(&mut img, |sb| sb.total_blocks *= 4);
    let (result, _) = open(img);
    match result {
        Err(e) => assert!(!e.to_string().is_empty()),
        Ok(vol) => panic!(
            "opened a volume of {} bytes on a {DEVICE_BYTES}-byte device",
            vol.info().size_bytes
        ),
    }
}

#[test]
fn image_cut_short_is_refused() {
    let mut img = image();
    // Both superblocks and the table survive; the device is half what they describe.
    img.truncate(DEVICE_BYTES as usize / 2);
    let (result, _) = open(img);
    assert!(result.is_err(), "opened a volume larger than its device");
}

#[test]
fn metadata_length_claimed_by_the_superblock_is_not_allocated_blindly() {
    let mut img = image();
    // 2^23 table blocks of 512 bytes: a 4 GiB read request on a 512 KiB device.
    edit_superblocks(&mut img, |sb| {
        sb.total_blocks = 1 << 24;
        sb.meta_blocks = 1 << 23;
        sb.meta_len_bytes = (sb.meta_blocks - 1) * u64::from(BS - 48) + 1;
    });
    let (result, largest) = open(img);
    assert!(
        result.is_err(),
        "opened a volume whose table is larger than its device"
    );
    assert!(
        largest <= 16 << 20,
        "open allocated {largest} bytes for a table length read from disk"
    );
}

#[test]
fn read_only_target_verifies_and_refuses_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("vol.img");
    let opts = FormatOptions {
        create_size_bytes: Some(1 << 20),
        ..FormatOptions::default()
    };
    let mut vol = Volume::format(&path, &opts).expect("format");
    vol.write(
        "kept",
        &mut &b"read-only data"[..],
        &WriteOptions::default(),
    )
    .expect("write");
    drop(vol);
    let mut vol = Volume::open(
        &path,
        &OpenOptions {
            read_only: true,
            ..OpenOptions::default()
        },
    )
    .expect("open read-only");
    assert!(vol
        .verify(&VerifyOptions::default())
        .expect("verify")
        .clean());
    let err = vol
        .write("new", &mut &b"x"[..], &WriteOptions::default())
        .expect_err("write on a read-only volume");
    assert!(matches!(err, Error::ReadOnly), "{err:?}");
    assert!(err.to_string().contains("read-only"), "{err}");
    let err = vol
        .remove("kept")
        .expect_err("remove on a read-only volume");
    assert!(matches!(err, Error::ReadOnly), "{err:?}");
    let err = vol
        .write_pattern("p", 4096, 1, &WriteOptions::default())
        .expect_err("pattern write on read-only");
    assert!(matches!(err, Error::ReadOnly), "{err:?}");
    let mut out = Vec::new();
    vol.read("kept", &mut out).expect("read");
    assert_eq!(out, b"read-only data");
    assert_eq!(vol.objects().len(), 1);
}
