//! End-to-end tests of the volume and its pipelines across all four crates: round trips,
//! removal and reuse, every kind of damage, superblock fallback, crashes at every write
//! boundary, and a raw loop device.

pub(crate) mod accounting;
mod acked;
mod crash;
mod fake;
pub(crate) mod findings;
mod parallel_verify;
mod space;
mod through_bio;

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Arc;

use stack_bio::{Device, FaultyDevice, MemDevice};
use stack_volume::pattern::PatternHeader;
use stack_volume::{Cause, Error, FormatOptions, OpenOptions, VerifyOptions, Volume, WriteOptions};

const BS: u64 = 4096;

fn mem(size_bytes: u64) -> Arc<MemDevice> {
    Arc::new(MemDevice::new(size_bytes))
}

fn format(dev: &Arc<MemDevice>) -> Volume {
    Volume::format_device(dev.clone(), &FormatOptions::default()).expect("format")
}

fn reopen(dev: &Arc<MemDevice>) -> Volume {
    Volume::open_device(dev.clone(), &OpenOptions::default()).expect("open")
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn read_all(vol: &Volume, name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    vol.read(name, &mut out).expect("read");
    out
}

fn small_commits() -> WriteOptions {
    WriteOptions {
        commit_every_bytes: 64 << 10,
        ..WriteOptions::default()
    }
}

#[test]
fn round_trips_of_every_edge_size() {
    let dev = mem(32 << 20);
    let mut vol = format(&dev);
    let sizes = [0, 1, BS - 1, BS, BS + 1, 5 << 20, (3 << 20) + 17];
    for (i, &size) in sizes.iter().enumerate() {
        let bytes = data(size as usize, i as u64 + 1);
        let report = vol
            .write(
                &format!("obj-{size}"),
                &mut &bytes[..],
                &WriteOptions::default(),
            )
            .unwrap();
        assert_eq!(report.bytes, size);
        assert!(report.complete);
    }
    drop(vol);
    let vol = reopen(&dev);
    for (i, &size) in sizes.iter().enumerate() {
        let want = data(size as usize, i as u64 + 1);
        assert_eq!(
            read_all(&vol, &format!("obj-{size}")),
            want,
            "object of {size} bytes"
        );
        let info = vol.object(&format!("obj-{size}")).unwrap();
        assert_eq!(info.size_bytes, size);
        assert!(info.complete);
    }
    let report = vol.verify(&VerifyOptions::default()).unwrap();
    assert!(report.clean(), "{report:?}");
    assert_eq!(
        report.bytes_verified,
        sizes.iter().map(|s| s.div_ceil(BS) * BS).sum::<u64>()
    );
}

#[test]
fn pattern_objects_round_trip_and_verify() {
    let dev = mem(16 << 20);
    let mut vol = format(&dev);
    vol.write_pattern("p", (2 << 20) + 5, 7, &small_commits())
        .unwrap();
    let bytes = read_all(&vol, "p");
    assert_eq!(bytes.len(), (2 << 20) + 5);
    let h = PatternHeader::parse(&bytes[BS as usize..2 * BS as usize]).expect("a pattern header");
    assert_eq!(h.logical_offset, BS);
    assert_eq!(h.seed, 7);
    let report = vol.verify(&VerifyOptions::default()).unwrap();
    assert!(report.clean(), "{report:?}");
}

#[test]
fn many_objects_survive_reopen() {
    let dev = mem(16 << 20);
    let mut vol = format(&dev);
    for i in 0..150u64 {
        let bytes = data((i * 97 % 9000) as usize, i);
        vol.write(
            &format!("f{i:03}"),
            &mut &bytes[..],
            &WriteOptions::default(),
        )
        .unwrap();
    }
    drop(vol);
    let vol = reopen(&dev);
    assert_eq!(vol.objects().len(), 150);
    for i in 0..150u64 {
        assert_eq!(
            read_all(&vol, &format!("f{i:03}")),
            data((i * 97 % 9000) as usize, i)
        );
    }
    assert!(vol.verify(&VerifyOptions::default()).unwrap().clean());
}

#[test]
fn names_are_unique_unless_replacing() {
    let dev = mem(4 << 20);
    let mut vol = format(&dev);
    vol.write("a", &mut &b"one"[..], &WriteOptions::default())
        .unwrap();
    let err = vol
        .write("a", &mut &b"two"[..], &WriteOptions::default())
        .unwrap_err();
    assert!(matches!(err, Error::ObjectExists { .. }), "{err}");
    vol.write(
        "a",
        &mut &b"three"[..],
        &WriteOptions {
            replace: true,
            ..WriteOptions::default()
        },
    )
    .unwrap();
    assert_eq!(read_all(&vol, "a"), b"three");
    assert!(matches!(
        vol.read("nope", &mut Vec::new()),
        Err(Error::ObjectNotFound { .. })
    ));
    assert!(matches!(
        vol.remove("nope"),
        Err(Error::ObjectNotFound { .. })
    ));
}

#[test]
fn removed_space_is_reused() {
    let dev = mem(8 << 20);
    let mut vol = format(&dev);
    let free_empty = vol.free_bytes();
    let first = vol.fill("fill-1", 1, &WriteOptions::default()).unwrap();
    assert!(first.bytes > 6 << 20, "{first:?}");
    assert!(
        vol.free_bytes() < 64 << 10,
        "{} bytes free after a fill",
        vol.free_bytes()
    );
    let err = vol
        .write_pattern("more", 1 << 20, 1, &WriteOptions::default())
        .unwrap_err();
    assert!(matches!(err, Error::NoSpace { .. }), "{err}");
    vol.remove("more").ok();
    vol.remove("fill-1").unwrap();
    assert_eq!(vol.free_bytes(), free_empty);
    let second = vol.fill("fill-2", 2, &WriteOptions::default()).unwrap();
    assert!(second.bytes >= first.bytes, "{second:?} after {first:?}");
    drop(vol);
    let vol = reopen(&dev);
    assert!(vol.verify(&VerifyOptions::default()).unwrap().clean());
}

#[test]
fn cancelled_write_is_incomplete_and_resumable() {
    let dev = mem(16 << 20);
    let mut vol = format(&dev);
    let cancel = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let c2 = cancel.clone();
    let opts = WriteOptions {
        commit_every_bytes: 1 << 20,
        cancel: Some(cancel.clone()),
        progress: Some(Arc::new(move |p: stack_volume::Progress| {
            if p.done_bytes >= 3 << 20 {
                c2.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        })),
        ..WriteOptions::default()
    };
    let err = vol.write_pattern("p", 8 << 20, 3, &opts).unwrap_err();
    assert!(matches!(err, Error::Interrupted), "{err}");
    let info = vol.object("p").unwrap();
    assert!(!info.complete);
    assert!(
        info.size_bytes >= 3 << 20 && info.size_bytes < 8 << 20,
        "{info:?}"
    );
    drop(vol);
    let mut vol = reopen(&dev);
    let report = vol.verify(&VerifyOptions::default()).unwrap();
    assert!(report.clean(), "{report:?}");
    assert_eq!(report.incomplete_objects, vec!["p".to_string()]);
    cancel.store(false, std::sync::atomic::Ordering::Relaxed);
    let done = vol.resume("p", &WriteOptions::default()).unwrap();
    assert!(done.complete);
    assert_eq!(vol.object("p").unwrap().size_bytes, 8 << 20);
    assert!(vol.verify(&VerifyOptions::default()).unwrap().clean());
    // A file object cannot be resumed.
    vol.write("f", &mut &b"x"[..], &WriteOptions::default())
        .unwrap();
    assert!(matches!(
        vol.resume("f", &WriteOptions::default()),
        Err(Error::NotResumable { .. })
    ));
}

/// Physical block numbers of an object's blocks, in logical order.
fn physical_blocks(dev: &Arc<MemDevice>, name: &str, blocks: u64) -> Vec<u64> {
    // Pattern headers name their own address: read them back.
    let vol = reopen(dev);
    let bytes = read_all(&vol, name);
    assert_eq!(bytes.len() as u64, blocks * BS);
    bytes
        .chunks(BS as usize)
        .map(|b| PatternHeader::parse(b).unwrap().phys_block)
        .collect()
}

fn block_at(dev: &MemDevice, block: u64) -> Vec<u8> {
    let mut b = vec![0u8; BS as usize];
    dev.read_at(&mut b, block * BS).unwrap();
    b
}

#[test]
fn every_damage_kind_is_found_at_the_right_block() {
    let dev = mem(16 << 20);
    let mut vol = format(&dev);
    vol.write_pattern("old", 64 * BS, 1, &WriteOptions::default())
        .unwrap();
    vol.write_pattern("p", 64 * BS, 2, &WriteOptions::default())
        .unwrap();
    vol.write(
        "user",
        &mut &data(8 * BS as usize, 9)[..],
        &WriteOptions::default(),
    )
    .unwrap();
    drop(vol);
    let old = physical_blocks(&dev, "old", 64);
    let p = physical_blocks(&dev, "p", 64);
    let snapshot = dev.snapshot();
    // User data blocks are found by their content: no other place holds these bytes.
    let user_block = |i: usize| {
        let want = data(8 * BS as usize, 9);
        let want = &want[i * BS as usize..(i + 1) * BS as usize];
        (0..snapshot.len() as u64 / BS)
            .find(|&b| &snapshot[(b * BS) as usize..((b + 1) * BS) as usize] == want)
            .unwrap()
    };
    let user2 = user_block(2);

    // Flipped bits: 3 bits of block 5.
    let mut b = block_at(&dev, p[5]);
    b[700] ^= 0b1001;
    b[3000] ^= 0x80;
    dev.write_at(&b, p[5] * BS).unwrap();
    // Zeroed: block 9.
    dev.write_at(&vec![0; BS as usize], p[9] * BS).unwrap();
    // Torn: block 12 keeps its first 2 sectors, the rest is what "old" had there.
    let mut b = block_at(&dev, p[12]);
    b[1024..].copy_from_slice(&block_at(&dev, old[12])[1024..]);
    dev.write_at(&b, p[12] * BS).unwrap();
    // Stale: block 20 holds a valid block of an earlier write at this address.
    let mut stale = vec![0u8; BS as usize];
    PatternHeader {
        phys_block: p[20],
        object_id: 99,
        logical_offset: 0,
        generation: 1,
        seed: 5,
    }
    .fill(salt(&dev), &mut stale);
    dev.write_at(&stale, p[20] * BS).unwrap();
    // Misdirected: block 30 holds the block that belongs at block 31's address.
    dev.write_at(&block_at(&dev, p[31]), p[30] * BS).unwrap();
    // User data: one byte of block 2.
    let mut b = block_at(&dev, user2);
    b[10] ^= 1;
    dev.write_at(&b, user2 * BS).unwrap();

    let vol = reopen(&dev);
    let report = vol.verify(&VerifyOptions::default()).unwrap();
    let found: BTreeMap<(String, u64), (Cause, u64, u64)> = report
        .damaged
        .iter()
        .map(|d| {
            (
                (d.object.clone(), d.logical_offset),
                (d.cause, d.physical_offset, d.length),
            )
        })
        .collect();
    let want: BTreeMap<(String, u64), (Cause, u64, u64)> = [
        (
            ("p".to_string(), 5 * BS),
            (Cause::FlippedBits { bits: 3 }, p[5] * BS, BS),
        ),
        (("p".to_string(), 9 * BS), (Cause::Zeroed, p[9] * BS, BS)),
        (
            ("p".to_string(), 12 * BS),
            (Cause::Torn { valid_bytes: 1024 }, p[12] * BS, BS),
        ),
        (("p".to_string(), 20 * BS), (Cause::Stale, p[20] * BS, BS)),
        (
            ("p".to_string(), 30 * BS),
            (
                Cause::Misdirected {
                    belongs_at: p[31] * BS,
                },
                p[30] * BS,
                BS,
            ),
        ),
        (
            ("user".to_string(), 2 * BS),
            (Cause::ChecksumMismatch, user2 * BS, BS),
        ),
    ]
    .into_iter()
    .collect();
    assert_eq!(found, want, "{report:#?}");
    assert!(report.metadata_ok);
    assert!(!report.clean());
    // Reading a damaged object names the first damaged block.
    match vol.read("p", &mut Vec::new()) {
        Err(Error::Damaged {
            object,
            logical_offset,
            cause,
            ..
        }) => {
            assert_eq!(object, "p");
            assert_eq!(logical_offset, 5 * BS);
            assert_eq!(cause, Cause::FlippedBits { bits: 3 });
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(read_all(&vol, "old").len() as u64, 64 * BS);
}

fn salt(dev: &Arc<MemDevice>) -> u64 {
    let mut sb = [0u8; 128];
    dev.read_at(&mut sb, 0).unwrap();
    let mut uuid = [0u8; 16];
    uuid.copy_from_slice(&sb[16..32]);
    stack_volume::format::uuid_salt(&uuid)
}

#[test]
fn damaged_checksum_blocks_are_metadata_damage_and_pattern_data_is_still_checked() {
    let dev = mem(8 << 20);
    let mut vol = format(&dev);
    vol.write_pattern("p", 16 * BS, 2, &WriteOptions::default())
        .unwrap();
    drop(vol);
    let p = physical_blocks(&dev, "p", 16);
    // The checksum stream follows no fixed place: find it by its magic and kind.
    let snap = dev.snapshot();
    let csum_block = (0..snap.len() as u64 / BS)
        .find(|&b| {
            let s = &snap[(b * BS) as usize..];
            s[..8] == *b"STKMETA\0" && s[8] == 2
        })
        .unwrap();
    dev.write_at(&[0xEE; 16], csum_block * BS + 60).unwrap();
    dev.write_at(&vec![0; BS as usize], p[3] * BS).unwrap();
    let vol = reopen(&dev);
    let report = vol.verify(&VerifyOptions::default()).unwrap();
    assert!(!report.metadata_ok);
    assert_eq!(report.metadata_damage.len(), 1, "{report:#?}");
    assert_eq!(report.metadata_damage[0].physical_offset, csum_block * BS);
    assert_eq!(report.damaged.len(), 1, "{report:#?}");
    assert_eq!(report.damaged[0].cause, Cause::Zeroed);
    assert_eq!(report.damaged[0].logical_offset, 3 * BS);
}

#[test]
fn damaged_newest_superblock_falls_back_and_verify_reports_it() {
    let dev = mem(8 << 20);
    let mut vol = format(&dev);
    vol.write("a", &mut &b"first"[..], &WriteOptions::default())
        .unwrap();
    vol.write("b", &mut &b"second"[..], &WriteOptions::default())
        .unwrap();
    let info = vol.info();
    drop(vol);
    let slot_at = [0u64, 64 << 10][usize::from(info.superblock_slot)];
    dev.write_at(&[0x5A; 8], slot_at + 48).unwrap();
    let vol = reopen(&dev);
    let after = vol.info();
    assert_eq!(after.generation, info.generation - 1);
    assert!(after
        .fallback_warning
        .as_deref()
        .unwrap()
        .contains(&format!("slot {}", info.superblock_slot)));
    // The older commit does not have "b" yet; "a" is intact.
    assert!(vol.object("b").is_none());
    assert_eq!(read_all(&vol, "a"), b"first");
    let report = vol.verify(&VerifyOptions::default()).unwrap();
    assert!(report.damaged.is_empty());
    assert!(!report.clean());
    assert!(!report.superblocks[usize::from(info.superblock_slot)]
        .as_ref()
        .unwrap()
        .is_ok());
}

#[test]
fn fake_capacity_shows_as_misdirected_blocks() {
    // A device that claims 16 MiB but keeps only 8: writes past 8 MiB wrap to the start.
    let dev = Arc::new(FaultyDevice::new(mem(16 << 20)));
    dev.wrap_at(8 << 20);
    let mut vol = Volume::format_device(dev.clone(), &FormatOptions::default()).unwrap();
    let _ = vol.fill("f3", 11, &WriteOptions::default());
    drop(vol);
    match Volume::open_device(dev, &OpenOptions::default()) {
        Ok(vol) => {
            let report = vol.verify(&VerifyOptions::default()).unwrap();
            assert!(!report.clean());
            assert!(report.damaged.iter().any(|d| matches!(d.cause, Cause::Misdirected { belongs_at } if belongs_at >= 8 << 20)), "{report:#?}");
        }
        Err(e) => {
            // Wrapped writes may also have destroyed both superblocks: the error says so.
            assert!(e.to_string().contains("wraps around"), "{e}");
        }
    }
}

#[test]
fn unreadable_range_is_reported_and_verify_goes_on() {
    let dev = mem(8 << 20);
    let mut vol = format(&dev);
    vol.write_pattern("p", 512 * BS, 4, &WriteOptions::default())
        .unwrap();
    drop(vol);
    let p = physical_blocks(&dev, "p", 512);
    let faulty = Arc::new(FaultyDevice::new(dev.clone()));
    faulty.fail_reads(p[300] * BS..p[302] * BS);
    let vol = Volume::open_device(faulty, &OpenOptions::default()).unwrap();
    let report = vol.verify(&VerifyOptions::default()).unwrap();
    assert_eq!(report.damaged.len(), 1, "{report:#?}");
    assert_eq!(report.damaged[0].cause, Cause::Unreadable);
    assert_eq!(report.damaged[0].logical_offset, 300 * BS);
    assert_eq!(report.damaged[0].length, 2 * BS);
    assert_eq!(report.blocks_verified, 512);
}

#[test]
fn input_errors_leave_the_volume_consistent() {
    struct Failing(u64);
    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0 == 0 {
                return Err(std::io::Error::other("input broke"));
            }
            let n = buf.len().min(self.0 as usize);
            buf[..n].fill(7);
            self.0 -= n as u64;
            Ok(n)
        }
    }
    let dev = mem(8 << 20);
    let mut vol = format(&dev);
    let err = vol
        .write("x", &mut Failing(3 << 20), &small_commits())
        .unwrap_err();
    assert!(matches!(err, Error::Input { .. }), "{err}");
    drop(vol);
    let vol = reopen(&dev);
    assert!(vol.verify(&VerifyOptions::default()).unwrap().clean());
    if let Some(info) = vol.object("x") {
        assert!(!info.complete);
        assert_eq!(read_all(&vol, "x"), vec![7u8; info.size_bytes as usize]);
    }
}

/// Detaches the loop device on drop, whatever the test did.
struct LoopDevice {
    path: std::path::PathBuf,
}

impl LoopDevice {
    /// Attaches `image` to a free loop device; `Err` says why that cannot work here.
    fn attach(image: &std::path::Path) -> Result<LoopDevice, String> {
        let out = std::process::Command::new("losetup")
            .args(["-f", "--show"])
            .arg(image)
            .output()
            .map_err(|e| format!("cannot run losetup: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "losetup failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let path =
            std::path::PathBuf::from(String::from_utf8_lossy(&out.stdout).trim().to_string());
        if path.as_os_str().is_empty() {
            return Err("losetup printed no device".into());
        }
        Ok(LoopDevice { path })
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let status = std::process::Command::new("losetup")
            .arg("-d")
            .arg(&self.path)
            .status();
        if !status.is_ok_and(|s| s.success()) {
            eprintln!("warning: could not detach {}", self.path.display());
        }
    }
}

#[test]
fn raw_loop_device_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("disk.img");
    std::fs::File::create(&image)
        .unwrap()
        .set_len(24 << 20)
        .unwrap();
    let lo = match LoopDevice::attach(&image) {
        Ok(lo) => lo,
        Err(why) => {
            eprintln!("skipping raw_loop_device_end_to_end: {why}");
            return;
        }
    };
    for direct in [false, true] {
        let mut vol = Volume::format(
            &lo.path,
            &FormatOptions {
                direct,
                ..FormatOptions::default()
            },
        )
        .unwrap();
        assert_eq!(vol.info().device.kind, "block device");
        let bytes = data((3 << 20) + 123, 5);
        vol.write("file", &mut &bytes[..], &small_commits())
            .unwrap();
        vol.write_pattern("pattern", 4 << 20, 8, &small_commits())
            .unwrap();
        drop(vol);
        let vol = Volume::open(
            &lo.path,
            &OpenOptions {
                direct,
                cached: !direct,
                read_only: true,
                ..OpenOptions::default()
            },
        )
        .unwrap();
        assert_eq!(read_all(&vol, "file"), bytes);
        let report = vol.verify(&VerifyOptions::default()).unwrap();
        assert!(report.clean(), "direct={direct}: {report:?}");
        assert_eq!(report.bytes_verified, ((3 << 20) + BS) + (4 << 20));
    }
    drop(lo);
}

#[test]
fn regular_file_is_created_at_the_given_size() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vol.img");
    let opts = FormatOptions {
        create_size_bytes: Some(6 << 20),
        ..FormatOptions::default()
    };
    let mut vol = Volume::format(&path, &opts).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 6 << 20);
    vol.write("x", &mut &b"persisted"[..], &WriteOptions::default())
        .unwrap();
    drop(vol);
    let vol = Volume::open(&path, &OpenOptions::default()).unwrap();
    assert_eq!(read_all(&vol, "x"), b"persisted");
    assert_eq!(vol.info().device.kind, "file");
}

/// Physical blocks of a pattern object, from the headers of its blocks.
fn pattern_blocks(vol: &Volume, name: &str) -> Vec<u64> {
    read_all(vol, name)
        .chunks(BS as usize)
        .map(|b| PatternHeader::parse(b).unwrap().phys_block)
        .collect()
}

#[test]
fn lost_and_misdirected_writes_injected_by_faulty_device_are_named() {
    const N: u64 = 16;
    let opts = WriteOptions::default();
    let dev = mem(8 << 20);
    let mut vol = format(&dev);
    vol.write_pattern("r", N * BS, 3, &opts).unwrap();
    vol.write_pattern("old", N * BS, 1, &opts).unwrap();
    let old = pattern_blocks(&vol, "old");
    vol.remove("old").unwrap();
    drop(vol);
    // A fault-free rehearsal on a copy (same UUID, same allocations) shows where "p" and
    // "q" will land.
    let (p, q) = {
        let copy = Arc::new(MemDevice::from_bytes(dev.snapshot(), 512));
        let mut vol = Volume::open_device(copy, &OpenOptions::default()).unwrap();
        vol.write_pattern("p", N * BS, 2, &opts).unwrap();
        vol.write_pattern("q", N * BS, 4, &opts).unwrap();
        (pattern_blocks(&vol, "p"), pattern_blocks(&vol, "q"))
    };
    assert!(p.windows(2).all(|w| w[1] == w[0] + 1) && q.windows(2).all(|w| w[1] == w[0] + 1));
    let vol_r = pattern_blocks(&reopen(&dev), "r");
    let faulty = Arc::new(FaultyDevice::new(dev.clone()));
    // "p"'s data write is acknowledged and lost; "q"'s lands on "r"'s blocks.
    faulty.drop_writes(p[0] * BS..(p[0] + N) * BS);
    faulty.misdirect_writes(q[0] * BS..q[0] * BS + 1, vol_r[0] * BS);
    let mut vol = Volume::open_device(faulty.clone(), &OpenOptions::default()).unwrap();
    vol.write_pattern("p", N * BS, 2, &opts).unwrap();
    vol.write_pattern("q", N * BS, 4, &opts).unwrap();
    assert!(faulty.faults_hit() >= 2);
    faulty.clear_faults();
    let report = vol.verify(&VerifyOptions::default()).unwrap();
    let got: Vec<(String, u64, u64, Cause)> = report
        .damaged
        .iter()
        .map(|d| (d.object.clone(), d.logical_offset, d.length, d.cause))
        .collect();
    // The lost write left the removed object's blocks behind: valid, but stale.
    assert_eq!(p, old, "the new object reuses the removed one's blocks");
    let mut want = vec![
        ("p".to_string(), 0, N * BS, Cause::Stale),
        ("q".to_string(), 0, N * BS, Cause::Zeroed),
    ];
    for i in 0..N {
        want.push((
            "r".to_string(),
            i * BS,
            BS,
            Cause::Misdirected {
                belongs_at: (q[0] + i) * BS,
            },
        ));
    }
    want.sort_by_key(|a| (a.0.clone(), a.1));
    let mut got_sorted = got.clone();
    got_sorted.sort_by_key(|a| (a.0.clone(), a.1));
    assert_eq!(got_sorted, want, "{report:#?}");
}

/// Blocks holding checksum streams (found by their magic and kind, as they have no fixed
/// place).
fn checksum_blocks(dev: &MemDevice) -> Vec<u64> {
    let snap = dev.snapshot();
    (0..snap.len() as u64 / BS)
        .filter(|&b| {
            let s = &snap[(b * BS) as usize..];
            s[..8] == *b"STKMETA\0" && s[8] == 2
        })
        .collect()
}

#[test]
fn an_unreadable_block_next_to_the_checksums_is_not_blamed_on_them() {
    // Verify and read fetch checksum streams in windows of many blocks; a block in such
    // a window that cannot be read, but holds no checksums, must not make the runs'
    // checksums look damaged.
    let dev = mem(8 << 20);
    let mut vol = format(&dev);
    vol.write_pattern("p", 600 * BS, 6, &small_commits())
        .unwrap();
    drop(vol);
    let data_blocks = physical_blocks(&dev, "p", 600);
    let csum_blocks = checksum_blocks(&dev);
    assert!(csum_blocks.len() > 1, "several runs: {csum_blocks:?}");
    let first = csum_blocks[0];
    let bad = (first + 1..first + 64)
        .find(|b| !csum_blocks.contains(b) && !data_blocks.contains(b))
        .expect("a block beside the checksums that is neither checksums nor data");
    let faulty = Arc::new(FaultyDevice::new(dev.clone()));
    faulty.fail_reads(bad * BS..(bad + 1) * BS);
    let vol = Volume::open_device(faulty.clone(), &OpenOptions::default()).unwrap();
    let report = vol.verify(&VerifyOptions::default()).unwrap();
    assert!(report.metadata_ok, "{:#?}", report.metadata_damage);
    assert!(report.damaged.is_empty(), "{:#?}", report.damaged);
    assert_eq!(report.blocks_verified, 600);
    assert_eq!(read_all(&vol, "p").len() as u64, 600 * BS);
    assert!(faulty.faults_hit() > 0, "the window did cover block {bad}");
}
