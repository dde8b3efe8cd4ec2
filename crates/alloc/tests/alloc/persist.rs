//! Persisted images: round trips, and bad bytes always give an error, never a panic.

use proptest::prelude::*;
use stack_alloc::{AllocRequest, Allocator, Error, Extent};

fn sample() -> Allocator {
    let a = Allocator::new(5000, 1000).unwrap();
    for i in 0..40 {
        a.alloc(&AllocRequest::near(i * 117 % 5000, 3, 40)).unwrap();
    }
    a
}

#[test]
fn round_trip_keeps_free_space() {
    let a = sample();
    let b = Allocator::decode(&a.encode()).unwrap();
    b.check().unwrap();
    assert_eq!(a.free_extents(), b.free_extents());
    assert_eq!(a.used_extents(), b.used_extents());
    assert_eq!(b.encode(), a.encode());
}

/// Re-seals a modified image so the structural checks (not the checksum) are reached.
fn reseal(mut img: Vec<u8>) -> Vec<u8> {
    let n = img.len() - 4;
    let crc = crc32c::crc32c(&img[..n]);
    img[n..].copy_from_slice(&crc.to_le_bytes());
    img
}

fn put(img: &mut [u8], at: usize, v: u64) {
    img[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

#[test]
fn bad_images_name_offset_and_field() {
    let img = sample().encode();
    let field = |r: Result<Allocator, Error>| match r {
        Err(Error::Corrupt { offset, field, .. }) => (offset, field),
        other => panic!("expected Corrupt, got {other:?}"),
    };
    assert_eq!(field(Allocator::decode(&img[..10])).1, "header");
    let mut m = img.clone();
    m[0] ^= 1;
    assert_eq!(field(Allocator::decode(&m)), (0, "magic"));
    let mut m = img.clone();
    m[8] = 9;
    assert_eq!(field(Allocator::decode(&m)), (8, "version"));
    let mut m = img.clone();
    put(&mut m, 32, u64::MAX);
    assert_eq!(field(Allocator::decode(&m)), (32, "extent_count"));
    let mut m = img.clone();
    m[45] ^= 0x40;
    assert!(matches!(Allocator::decode(&m), Err(Error::Checksum { .. })));
    let mut m = img.clone();
    put(&mut m, 24, 1); // 5000 groups of one block is fine, 0 is not
    put(&mut m, 24, 0);
    assert_eq!(field(Allocator::decode(&reseal(m))).1, "total_blocks");
    let mut m = img.clone();
    put(&mut m, 48, 0);
    assert_eq!(field(Allocator::decode(&reseal(m))), (48, "extent.len"));
    let mut m = img.clone();
    put(&mut m, 40, 4999);
    assert_eq!(field(Allocator::decode(&reseal(m))), (40, "extent.start"));
    let mut m = img.clone();
    put(&mut m, 56, 0); // second extent starts before the first ends
    assert_eq!(field(Allocator::decode(&reseal(m))), (56, "extent.start"));
}

#[test]
fn from_used_rejects_overlap_and_out_of_range() {
    let used = [Extent::new(10, 5), Extent::new(12, 5)];
    assert!(matches!(
        Allocator::from_used(100, 50, used),
        Err(Error::NotFree { block: 12, .. })
    ));
    let far = [Extent::new(95, 10)];
    assert!(matches!(
        Allocator::from_used(100, 50, far),
        Err(Error::OutOfRange { .. })
    ));
    let a = Allocator::from_used(100, 50, [Extent::new(45, 10)]).unwrap();
    assert_eq!(a.used_extents(), vec![Extent::new(45, 10)]);
    assert_eq!(a.free_blocks(), 90);
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = Allocator::decode(&bytes);
    }

    #[test]
    fn mutated_images_never_panic(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        cut in any::<usize>(),
        seal in any::<bool>(),
    ) {
        let mut img = sample().encode();
        for (at, v) in edits {
            let n = img.len();
            img[at % n] = v;
        }
        if cut % 4 == 0 {
            img.truncate(cut % (img.len() + 1));
        }
        if seal && img.len() >= 4 {
            img = reseal(img);
        }
        if let Ok(a) = Allocator::decode(&img) {
            prop_assert!(a.check().is_ok());
        }
    }
}

/// Header 40 bytes (magic, version, reserved, total, group, count), 16 per extent, CRC.
const HEADER: usize = 40;
const EXTENT: usize = 16;

#[test]
fn free_space_across_group_edges_is_one_extent_in_the_image() {
    let a = Allocator::new(300, 100).unwrap();
    assert_eq!(
        a.encode().len(),
        HEADER + EXTENT + 4,
        "one extent, not three"
    );
    a.alloc(&AllocRequest::exact(150, 10, 10)).unwrap();
    assert_eq!(a.encode().len(), HEADER + 2 * EXTENT + 4);
}

#[test]
fn an_image_with_touching_extents_decodes() {
    // Another writer may leave neighbours unmerged: [0, 10) then [10, 20).
    let mut img = Allocator::new(100, 100).unwrap().encode();
    img.truncate(HEADER);
    put(&mut img, 32, 2);
    for (s, l) in [(0_u64, 10_u64), (10, 10)] {
        img.extend_from_slice(&s.to_le_bytes());
        img.extend_from_slice(&l.to_le_bytes());
    }
    img.extend_from_slice(&[0; 4]);
    let a = Allocator::decode(&reseal(img)).unwrap();
    assert_eq!(a.free_blocks(), 20);
    a.check().unwrap();
}

#[test]
fn an_image_cut_inside_its_header_or_checksum_is_a_header_error() {
    let img = Allocator::new(100, 100).unwrap().encode();
    for len in 0..HEADER + 4 {
        match Allocator::decode(&img[..len]) {
            Err(Error::Corrupt { offset, field, .. }) => {
                assert_eq!((offset, field), (len, "header"), "cut at {len}")
            }
            other => panic!("cut at {len}: {other:?}"),
        }
    }
}
