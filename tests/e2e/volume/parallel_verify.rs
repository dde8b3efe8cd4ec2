//! Verify's parallel positional reads on a real file: damage in volumes spanning many
//! 4 MiB chunks and 512 KiB read pieces is found at its exact offsets and reported in
//! order, buffered and with `O_DIRECT`; a file truncated before or during verify gives
//! unreadable blocks past its new end, never a crash or a false positive before it.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use stack_volume::pattern::PatternHeader;
use stack_volume::{
    Cause, DamagedRange, FormatOptions, OpenOptions, VerifyOptions, Volume, WriteOptions,
};

use super::{data, read_all, BS};

const MIB: u64 = 1 << 20;

/// A scratch volume file on the disk (O_DIRECT works there; tmpfs refuses it).
fn scratch(name: &str, size_bytes: u64) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("parallel-verify")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("scratch dir");
    let path = dir.path().join(name);
    let opts = FormatOptions {
        create_size_bytes: Some(size_bytes),
        ..FormatOptions::default()
    };
    drop(Volume::format(&path, &opts).expect("format"));
    (dir, path)
}

/// A scratch volume holding one pattern object "p" of `len` bytes.
fn scratch_with_pattern(size_bytes: u64, len: u64, seed: u64) -> (tempfile::TempDir, PathBuf) {
    let (dir, path) = scratch("vol", size_bytes);
    let mut vol = Volume::open(&path, &OpenOptions::default()).unwrap();
    vol.write_pattern("p", len, seed, &WriteOptions::default())
        .unwrap();
    (dir, path)
}

fn open(path: &Path, direct: bool) -> Option<Volume> {
    match Volume::open(
        path,
        &OpenOptions {
            direct,
            // The buffered half reads through the page cache.
            cached: !direct,
            read_only: true,
            ..OpenOptions::default()
        },
    ) {
        Ok(v) => Some(v),
        Err(e) if direct => {
            eprintln!("skipping the O_DIRECT half: {e}");
            None
        }
        Err(e) => panic!("open {}: {e}", path.display()),
    }
}

/// Physical block of every block of a pattern object, from the headers of its blocks.
fn pattern_blocks(vol: &Volume, name: &str) -> Vec<u64> {
    read_all(vol, name)
        .chunks(BS as usize)
        .map(|b| PatternHeader::parse(b).expect("pattern header").phys_block)
        .collect()
}

fn flip(path: &Path, offset: u64, mask: u8) {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, offset).unwrap();
    b[0] ^= mask;
    f.write_all_at(&b, offset).unwrap();
    f.sync_all().unwrap();
}

#[test]
fn flipped_bytes_in_many_chunks_are_found_at_exact_offsets_in_order() {
    // Two objects of 13 MiB + 3 blocks each: several runs, several 4 MiB chunks per run
    // and a short last piece, checked by several workers at once.
    let len = 13 * MIB + 3 * BS;
    let (_dir, path) = scratch("vol", 48 * MIB);
    {
        let mut vol = Volume::open(&path, &OpenOptions::default()).unwrap();
        vol.write_pattern("a", len, 7, &WriteOptions::default())
            .unwrap();
        vol.write(
            "b",
            &mut &data(len as usize, 3)[..],
            &WriteOptions::default(),
        )
        .unwrap();
    }
    let vol = open(&path, false).unwrap();
    let a = pattern_blocks(&vol, "a");
    let n = len / BS;
    assert_eq!(a.len() as u64, n);
    // "b" is user data: find its blocks by content.
    let b_data = data(len as usize, 3);
    let image = std::fs::read(&path).unwrap();
    let find = |logical: u64| -> u64 {
        let want = &b_data[(logical * BS) as usize..((logical + 1) * BS) as usize];
        let at = image
            .chunks(BS as usize)
            .position(|blk| blk == want)
            .expect("block of b in the image");
        at as u64
    };
    // Blocks in the 2nd piece of a chunk, in a later chunk, and the very last block.
    let hits: Vec<(&str, u64, u64)> = vec![
        ("a", 130, a[130]),
        ("a", 2100, a[2100]),
        ("a", n - 1, a[(n - 1) as usize]),
        ("b", 1, find(1)),
        ("b", 3000, find(3000)),
    ];
    drop(vol);
    for (_, _, phys) in &hits {
        flip(&path, phys * BS + 100, 0x10);
    }
    for direct in [false, true] {
        let Some(vol) = open(&path, direct) else {
            continue;
        };
        let seen = Arc::new(Mutex::new(Vec::<DamagedRange>::new()));
        let seen2 = Arc::clone(&seen);
        let report = vol
            .verify(&VerifyOptions {
                on_damage: Some(Arc::new(move |d: &DamagedRange| {
                    seen2.lock().unwrap().push(d.clone())
                })),
                ..VerifyOptions::default()
            })
            .unwrap();
        assert_eq!(report.blocks_verified, 2 * n, "direct={direct}");
        assert!(report.metadata_ok, "direct={direct}");
        let got: Vec<(String, u64, u64, u64, Cause)> = report
            .damaged
            .iter()
            .map(|d| {
                (
                    d.object.clone(),
                    d.logical_offset,
                    d.physical_offset,
                    d.length,
                    d.cause,
                )
            })
            .collect();
        let want: Vec<(String, u64, u64, u64, Cause)> = hits
            .iter()
            .map(|(o, l, p)| {
                // Pattern blocks are regenerated to count the flipped bits; user data
                // has no second copy to compare with.
                let cause = match *o {
                    "a" => Cause::FlippedBits { bits: 1 },
                    _ => Cause::ChecksumMismatch,
                };
                (o.to_string(), l * BS, p * BS, BS, cause)
            })
            .collect();
        assert_eq!(got, want, "direct={direct}");
        for d in &report.damaged {
            let (e, f) = (d.expected_csum.unwrap(), d.found_csum.unwrap());
            assert_ne!(e, f, "direct={direct}");
        }
        // The callback saw the same ranges in the same order, as they were found.
        assert_eq!(*seen.lock().unwrap(), report.damaged, "direct={direct}");
    }
}

/// Bytes of an object's data at or past `end` on the device.
fn bytes_past(blocks: &[u64], end: u64) -> u64 {
    blocks.iter().filter(|&&p| p * BS >= end).count() as u64 * BS
}

fn assert_only_unreadable_past(report: &stack_volume::VerifyReport, end: u64) {
    for d in &report.damaged {
        assert_eq!(d.cause, Cause::Unreadable, "{d:?}");
        assert!(d.physical_offset >= end, "{d:?} before the end {end}");
        assert_eq!(d.found_csum, None, "{d:?}");
        assert!(d.expected_csum.is_some(), "{d:?}");
    }
}

#[test]
fn file_truncated_after_open_reports_the_missing_blocks_unreadable() {
    let len = 12 * MIB;
    let (_dir, path) = scratch_with_pattern(24 * MIB, len, 5);
    let vol = open(&path, false).unwrap();
    let blocks = pattern_blocks(&vol, "p");
    // Cut the file in the middle of the object's data (block aligned).
    let end = blocks[blocks.len() / 2] * BS;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(end)
        .unwrap();
    let report = vol.verify(&VerifyOptions::default()).unwrap();
    assert_eq!(report.blocks_verified, len / BS);
    assert_only_unreadable_past(&report, end);
    let missing: u64 = report.damaged.iter().map(|d| d.length).sum();
    assert_eq!(missing, bytes_past(&blocks, end));
    assert!(missing >= len / 2, "{missing}");
}

#[test]
fn file_truncated_during_verify_is_no_crash_and_no_false_positive() {
    let len = 24 * MIB;
    let (_dir, path) = scratch_with_pattern(40 * MIB, len, 6);
    let vol = open(&path, false).unwrap();
    let blocks = pattern_blocks(&vol, "p");
    let end = blocks[blocks.len() / 4] * BS;
    let cut = Arc::new(AtomicBool::new(false));
    let (cut2, path2) = (Arc::clone(&cut), path.clone());
    let report = vol
        .verify(&VerifyOptions {
            progress: Some(Arc::new(move |_| {
                if !cut2.swap(true, Ordering::SeqCst) {
                    let f = std::fs::OpenOptions::new()
                        .write(true)
                        .open(&path2)
                        .unwrap();
                    f.set_len(end).unwrap();
                }
            })),
            ..VerifyOptions::default()
        })
        .unwrap();
    assert!(cut.load(Ordering::SeqCst));
    assert_eq!(report.blocks_verified, len / BS);
    // Whatever was read before the cut is clean; whatever after, past the end, is
    // unreadable; nothing before the end is ever reported.
    assert_only_unreadable_past(&report, end);
    let missing: u64 = report.damaged.iter().map(|d| d.length).sum();
    assert!(missing <= bytes_past(&blocks, end), "{missing}");
    // A second verify sees the whole cut.
    let again = vol.verify(&VerifyOptions::default()).unwrap();
    assert_only_unreadable_past(&again, end);
    let missing: u64 = again.damaged.iter().map(|d| d.length).sum();
    assert_eq!(missing, bytes_past(&blocks, end));
}

/// A device whose reads of one range are slow (so the chunks after it finish first), or
/// panic (a bug in a device must not hang verify).
#[derive(Debug)]
struct SlowRange {
    inner: Arc<stack_bio::MemDevice>,
    slow: std::ops::Range<u64>,
    panic: bool,
}

impl stack_bio::Device for SlowRange {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<(), stack_bio::Error> {
        if offset < self.slow.end && self.slow.start < offset + buf.len() as u64 {
            assert!(!self.panic, "test device: read of a poisoned range");
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        self.inner.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> Result<(), stack_bio::Error> {
        self.inner.write_at(buf, offset)
    }
    fn flush(&self) -> Result<(), stack_bio::Error> {
        self.inner.flush()
    }
    fn size_bytes(&self) -> u64 {
        self.inner.size_bytes()
    }
    fn logical_block_size(&self) -> u32 {
        self.inner.logical_block_size()
    }
    fn info(&self) -> stack_bio::DeviceInfo {
        self.inner.info()
    }
}

#[test]
fn damage_is_reported_in_order_when_a_later_chunk_is_checked_first() {
    use stack_bio::Device as _;
    let mem = Arc::new(stack_bio::MemDevice::new(40 * MIB));
    let len = 20 * MIB;
    {
        let mut vol = Volume::format_device(mem.clone(), &FormatOptions::default()).unwrap();
        vol.write_pattern("p", len, 11, &WriteOptions::default())
            .unwrap();
    }
    let vol = Volume::open_device(mem.clone(), &OpenOptions::default()).unwrap();
    let blocks = pattern_blocks(&vol, "p");
    drop(vol);
    // One flipped block in the first chunk (made slow), one in each later 4 MiB chunk.
    let per_chunk = 4 * MIB / BS;
    let logical: Vec<u64> = (0..len / BS / per_chunk)
        .map(|c| c * per_chunk + 17)
        .collect();
    for &l in &logical {
        let at = blocks[l as usize] * BS + 9;
        let mut b = [0u8; 1];
        mem.read_at(&mut b, at).unwrap();
        b[0] ^= 0x01;
        mem.write_at(&b, at).unwrap();
    }
    let first = blocks[0] * BS;
    let slow = Arc::new(SlowRange {
        inner: mem.clone(),
        slow: first..first + BS,
        panic: false,
    });
    let vol = Volume::open_device(slow, &OpenOptions::default()).unwrap();
    let seen = Arc::new(Mutex::new(Vec::<u64>::new()));
    let seen2 = Arc::clone(&seen);
    let report = vol
        .verify(&VerifyOptions {
            on_damage: Some(Arc::new(move |d: &DamagedRange| {
                seen2.lock().unwrap().push(d.logical_offset)
            })),
            ..VerifyOptions::default()
        })
        .unwrap();
    let want: Vec<u64> = logical.iter().map(|l| l * BS).collect();
    assert_eq!(*seen.lock().unwrap(), want);
    let got: Vec<(u64, u64, Cause)> = report
        .damaged
        .iter()
        .map(|d| (d.logical_offset, d.physical_offset, d.cause))
        .collect();
    let want: Vec<(u64, u64, Cause)> = logical
        .iter()
        .map(|&l| {
            (
                l * BS,
                blocks[l as usize] * BS,
                Cause::FlippedBits { bits: 1 },
            )
        })
        .collect();
    assert_eq!(got, want);
    assert_eq!(report.blocks_verified, len / BS);
}

#[test]
fn a_worker_that_panics_fails_the_verify_instead_of_hanging() {
    let mem = Arc::new(stack_bio::MemDevice::new(24 * MIB));
    let len = 12 * MIB;
    {
        let mut vol = Volume::format_device(mem.clone(), &FormatOptions::default()).unwrap();
        vol.write_pattern("p", len, 12, &WriteOptions::default())
            .unwrap();
    }
    let vol = Volume::open_device(mem.clone(), &OpenOptions::default()).unwrap();
    let blocks = pattern_blocks(&vol, "p");
    drop(vol);
    let poisoned = blocks[blocks.len() / 2] * BS;
    let dev = Arc::new(SlowRange {
        inner: mem,
        slow: poisoned..poisoned + BS,
        panic: true,
    });
    let vol = Volume::open_device(dev, &OpenOptions::default()).unwrap();
    let err = vol.verify(&VerifyOptions::default()).unwrap_err();
    assert!(err.to_string().contains("panicked"), "{err}");
}
