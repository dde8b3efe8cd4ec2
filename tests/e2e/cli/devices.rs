//! Raw block devices (loop devices, where the machine lets us attach them): a signature
//! on a device is refused, `--force` burns it in, and a mounted device is refused even
//! with `--force`. Skipped, saying why, where loop devices or mounting are unavailable.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::harness::Scratch;

/// A loop device detached on drop (after its mount, if any, is undone).
pub(crate) struct Loop {
    device: PathBuf,
    mount_point: Option<PathBuf>,
}

impl Loop {
    pub(crate) fn attach(image: &Path) -> Result<Loop, String> {
        let out = Command::new("losetup")
            .args(["-f", "--show"])
            .arg(image)
            .output()
            .map_err(|e| format!("cannot run losetup: {e}"))?;
        let device = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !out.status.success() || device.is_empty() {
            return Err(format!(
                "losetup failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Loop {
            device: PathBuf::from(device),
            mount_point: None,
        })
    }

    pub(crate) fn path(&self) -> &str {
        self.device.to_str().expect("loop device paths are ASCII")
    }

    pub(super) fn mount(&mut self, at: &Path) -> Result<(), String> {
        let mkfs = Command::new("mkfs.ext4")
            .args(["-q", "-F"])
            .arg(&self.device)
            .output();
        if !mkfs.as_ref().is_ok_and(|o| o.status.success()) {
            return Err("mkfs.ext4 unavailable or failed".into());
        }
        std::fs::create_dir_all(at).map_err(|e| e.to_string())?;
        let mount = Command::new("mount").arg(&self.device).arg(at).output();
        if !mount.as_ref().is_ok_and(|o| o.status.success()) {
            return Err("mount is not permitted here".into());
        }
        self.mount_point = Some(at.to_path_buf());
        Ok(())
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        if let Some(at) = &self.mount_point {
            let _ = Command::new("umount").arg(at).status();
        }
        let detached = Command::new("losetup").arg("-d").arg(&self.device).status();
        if !detached.is_ok_and(|s| s.success()) {
            eprintln!("warning: could not detach {}", self.device.display());
        }
    }
}

pub(crate) fn image(s: &Scratch, name: &str, size_bytes: u64, at: &[(u64, &[u8])]) -> PathBuf {
    let path = s.path(name);
    let mut bytes = vec![0u8; size_bytes as usize];
    for &(offset, data) in at {
        bytes[offset as usize..offset as usize + data.len()].copy_from_slice(data);
    }
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn a_device_with_a_signature_is_refused_then_burned_in_with_force() {
    let s = Scratch::new();
    let disk = image(
        &s,
        "disk.img",
        16 << 20,
        &[(512, b"EFI PART"), (510, &[0x55, 0xaa])],
    );
    let lo = match Loop::attach(&disk) {
        Ok(lo) => lo,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let run = s.expect(3, &["format", lo.path()]);
    assert!(
        run.stderr.contains("GPT partition table at byte 512"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("MBR partition table at byte 510"),
        "{}",
        run.stderr
    );
    let run = s.expect(3, &["burn-in", lo.path()]);
    assert!(run.stderr.contains(lo.path()), "{}", run.stderr);

    let run = s.expect(2, &["burn-in", lo.path(), "--force", "--size", "8MiB"]);
    assert!(run.stderr.contains("block device"), "{}", run.stderr);
    let doc = s.json(0, &["burn-in", lo.path(), "--force", "--seed", "4"]);
    assert_eq!(doc["clean"], true);
    assert_eq!(doc["verify"]["device"]["kind"], "block device");
    assert_eq!(doc["verify"]["device"]["path"], lo.path());
    assert_eq!(doc["verify"]["device"]["size"], 16 << 20);
    assert!(doc["verify"]["bytes_verified"].as_u64().unwrap() > 15 << 20);
    // Our own volume now: burn-in may replace its own result without --force, but
    // format lists the object it would destroy and wants --force.
    s.expect(0, &["burn-in", lo.path(), "--seed", "5"]);
    let run = s.expect(3, &["format", lo.path()]);
    assert!(run.stderr.contains("\"burn-in\""), "{}", run.stderr);
    s.expect(0, &["format", lo.path(), "--force"]);
    s.expect(
        0,
        &[
            "write",
            lo.path(),
            "--pattern",
            "--size",
            "1MiB",
            "--seed",
            "1",
        ],
    );
    assert_eq!(s.json(0, &["verify", lo.path(), "--direct"])["clean"], true);
}

#[test]
fn a_mounted_device_is_refused_even_with_force() {
    let s = Scratch::new();
    let disk = image(&s, "fs.img", 16 << 20, &[]);
    let mut lo = match Loop::attach(&disk) {
        Ok(lo) => lo,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    if let Err(why) = lo.mount(&s.path("mnt")) {
        eprintln!("skipped: {why}");
        return;
    }
    for command in ["format", "burn-in"] {
        let run = s.expect(3, &[command, lo.path(), "--force"]);
        assert!(run.stderr.contains("is mounted at"), "{}", run.stderr);
        assert!(run.stderr.contains("not overridable"), "{}", run.stderr);
    }
    // The filesystem is untouched: its magic is still where ext4 keeps it.
    let mut head = vec![0u8; 2048];
    use std::io::Read;
    std::fs::File::open(lo.path())
        .unwrap()
        .read_exact(&mut head)
        .unwrap();
    assert_eq!(&head[1080..1082], &[0x53, 0xef]);
}
