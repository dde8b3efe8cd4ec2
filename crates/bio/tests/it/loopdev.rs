//! A real block device: a loop device over a temp file, through `FileDevice`.
//!
//! Skipped (with the reason printed) when `losetup` is missing or refuses, e.g. in a
//! container without loop devices; the device is always detached, even on failure.

use stack_bio::{AlignedBuf, Device, DeviceKind, Error, FileDevice, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::Command;

const SIZE: u64 = 8 << 20;

/// Detaches the loop device on drop, whatever happened in between.
struct LoopGuard(PathBuf);

impl Drop for LoopGuard {
    fn drop(&mut self) {
        match Command::new("losetup").arg("-d").arg(&self.0).status() {
            Ok(status) if status.success() => {}
            other => eprintln!("WARNING: could not detach {}: {other:?}", self.0.display()),
        }
    }
}

fn attach(file: &Path) -> Result<LoopGuard, String> {
    let out = Command::new("losetup")
        .args(["-f", "--show"])
        .arg(file)
        .output()
        .map_err(|e| format!("cannot run losetup: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "losetup -f --show failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let dev = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if dev.is_empty() {
        return Err("losetup printed no device".to_owned());
    }
    Ok(LoopGuard(PathBuf::from(dev)))
}

fn sysfs_logical_block_size(dev: &Path) -> Option<u32> {
    let name = dev.file_name()?.to_str()?;
    std::fs::read_to_string(format!("/sys/block/{name}/queue/logical_block_size"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[test]
fn loop_device_through_file_device() {
    let dir = tempfile::tempdir().unwrap();
    let backing = dir.path().join("loop.img");
    std::fs::File::create(&backing)
        .unwrap()
        .set_len(SIZE)
        .unwrap();
    let guard = match attach(&backing) {
        Ok(guard) => guard,
        Err(why) => {
            eprintln!("SKIPPED loop_device_through_file_device: {why}");
            return;
        }
    };
    let path = guard.0.clone();

    let dev = FileDevice::open(&path, &OpenOptions::default()).unwrap();
    let info = dev.info();
    assert_eq!(info.kind, DeviceKind::Block);
    assert_eq!(dev.size_bytes(), SIZE, "BLKGETSIZE64");
    let lbs = dev.logical_block_size();
    assert!(lbs.is_power_of_two());
    if let Some(sysfs) = sysfs_logical_block_size(&path) {
        assert_eq!(lbs, sysfs, "BLKSSZGET agrees with sysfs");
    }
    let pattern: Vec<u8> = (0..65536u32).map(|i| (i * 7 % 251) as u8).collect();
    dev.writev_at(&[&pattern[..1000], &pattern[1000..]], 3)
        .unwrap();
    dev.flush().unwrap();
    let mut back = vec![0u8; pattern.len()];
    dev.read_at(&mut back, 3).unwrap();
    assert_eq!(back, pattern);
    assert!(matches!(
        dev.write_at(&[0; 2], SIZE - 1).unwrap_err(),
        Error::OutOfRange { .. }
    ));
    drop(dev);

    let direct = FileDevice::open(&path, &OpenOptions::new().direct(true)).unwrap();
    assert!(direct.info().direct);
    let align = lbs as usize;
    let buf = AlignedBuf::from_slice(&pattern, align.max(4096));
    direct.write_at(&buf, 1 << 20).unwrap();
    let mut back = AlignedBuf::new(pattern.len(), align.max(4096));
    direct.read_at(&mut back, 1 << 20).unwrap();
    assert_eq!(&back[..], &pattern[..]);
    let err = direct.write_at(&buf, u64::from(lbs) / 2).unwrap_err();
    assert!(
        matches!(err, Error::Misaligned { what: "offset", .. }),
        "{err}"
    );
    drop(direct);

    let ro = FileDevice::open(&path, &OpenOptions::new().read_only(true)).unwrap();
    let mut head = vec![0u8; 10];
    ro.read_at(&mut head, 1 << 20).unwrap();
    assert_eq!(head, pattern[..10]);
    assert!(matches!(
        ro.write_at(&head, 0).unwrap_err(),
        Error::ReadOnly { .. }
    ));
    drop(ro);
    drop(guard);
    let bytes = std::fs::read(&backing).unwrap();
    assert_eq!(
        &bytes[3..3 + pattern.len()],
        &pattern[..],
        "the writes reached the backing file"
    );
}
