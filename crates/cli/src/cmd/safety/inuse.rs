//! Is a block device (or any partition of it) in use: mounted, swapped on, held by
//! device-mapper/md, or is a file the backing store of a loop device?
//!
//! Reads `/proc/self/mountinfo`, `/proc/swaps` and `/sys` through [`Roots`] so tests can
//! point it at a fake tree.

use std::fs;
use std::path::{Path, PathBuf};

/// Where `/proc` and `/sys` are (the real ones, or a test fixture).
#[derive(Debug, Clone)]
pub struct Roots {
    /// Usually `/proc`.
    pub proc_dir: PathBuf,
    /// Usually `/sys`.
    pub sys_dir: PathBuf,
}

impl Default for Roots {
    fn default() -> Self {
        Roots {
            proc_dir: PathBuf::from("/proc"),
            sys_dir: PathBuf::from("/sys"),
        }
    }
}

/// A device number split into major and minor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DevNum {
    /// Major number.
    pub major: u32,
    /// Minor number.
    pub minor: u32,
}

impl DevNum {
    /// Splits a Linux `dev_t` (glibc's encoding, as `st_rdev` carries it).
    pub fn from_rdev(rdev: u64) -> DevNum {
        let major = ((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff);
        let minor = (rdev & 0xff) | ((rdev >> 12) & !0xff);
        DevNum {
            major: major as u32,
            minor: minor as u32,
        }
    }

    /// Parses `"8:1"`.
    pub fn parse(text: &str) -> Option<DevNum> {
        let (major, minor) = text.trim().split_once(':')?;
        Some(DevNum {
            major: major.parse().ok()?,
            minor: minor.parse().ok()?,
        })
    }
}

/// One line of `/proc/self/mountinfo` that matters here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The device number of the mounted filesystem.
    pub dev: DevNum,
    /// Where it is mounted.
    pub mount_point: String,
    /// The mount source (e.g. `/dev/sda1`); btrfs reports anonymous device numbers, so
    /// the source is matched too.
    pub source: String,
}

/// Undoes the octal escapes (`\040` for a space) of mountinfo and swaps.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let octal = bytes.get(index + 1..index + 4).and_then(|digits| {
            let text = std::str::from_utf8(digits).ok()?;
            u8::from_str_radix(text, 8).ok()
        });
        match (bytes[index], octal) {
            (b'\\', Some(value)) => {
                out.push(value);
                index += 4;
            }
            (byte, _) => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses `/proc/self/mountinfo`; malformed lines are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let dev = DevNum::parse(fields.get(2)?)?;
            let mount_point = unescape(fields.get(4)?);
            let separator = fields.iter().position(|&f| f == "-")?;
            let source = unescape(fields.get(separator + 2)?);
            Some(Mount {
                dev,
                mount_point,
                source,
            })
        })
        .collect()
}

/// Parses `/proc/swaps` into the swap devices' and files' paths.
pub fn parse_swaps(text: &str) -> Vec<String> {
    text.lines()
        .skip(1)
        .filter_map(|line| line.split_whitespace().next().map(unescape))
        .collect()
}

/// A block device and its partitions, as sysfs names them.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Part {
    name: String,
    dev: DevNum,
    dir: PathBuf,
}

/// The device `dev` and every partition of it, found through `/sys/dev/block/M:m`.
fn device_and_partitions(roots: &Roots, dev: DevNum) -> Vec<Part> {
    let link = roots
        .sys_dir
        .join("dev/block")
        .join(format!("{}:{}", dev.major, dev.minor));
    let dir = fs::canonicalize(&link).unwrap_or(link);
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut parts = vec![Part {
        name,
        dev,
        dir: dir.clone(),
    }];
    let Ok(entries) = fs::read_dir(&dir) else {
        return parts;
    };
    for entry in entries.flatten() {
        let sub = entry.path();
        if !sub.join("partition").exists() {
            continue;
        }
        let Some(part_dev) = fs::read_to_string(sub.join("dev"))
            .ok()
            .and_then(|t| DevNum::parse(&t))
        else {
            continue;
        };
        parts.push(Part {
            name: entry.file_name().to_string_lossy().into_owned(),
            dev: part_dev,
            dir: sub,
        });
    }
    parts.sort_by(|a, b| a.name.cmp(&b.name));
    parts
}

/// Why a block device may not be overwritten, one sentence each; empty when free.
pub fn block_device_users(roots: &Roots, dev: DevNum) -> Vec<String> {
    let mounts = fs::read_to_string(roots.proc_dir.join("self/mountinfo"))
        .map(|t| parse_mountinfo(&t))
        .unwrap_or_default();
    let swaps = fs::read_to_string(roots.proc_dir.join("swaps"))
        .map(|t| parse_swaps(&t))
        .unwrap_or_default();
    let mut users = Vec::new();
    for part in device_and_partitions(roots, dev) {
        let dev_path = format!("/dev/{}", part.name);
        for mount in &mounts {
            if mount.dev == part.dev || mount.source == dev_path {
                users.push(format!(
                    "{dev_path} ({}:{}) is mounted at {}",
                    part.dev.major, part.dev.minor, mount.mount_point
                ));
            }
        }
        for swap in &swaps {
            let same_node = fs::metadata(swap).ok().is_some_and(|m| {
                use std::os::unix::fs::{FileTypeExt, MetadataExt};
                m.file_type().is_block_device() && DevNum::from_rdev(m.rdev()) == part.dev
            });
            if same_node || *swap == dev_path {
                users.push(format!("{dev_path} is in use as swap ({swap})"));
            }
        }
        if let Ok(holders) = fs::read_dir(part.dir.join("holders")) {
            for holder in holders.flatten() {
                users.push(format!(
                    "{dev_path} is held by {} (device-mapper, md or LVM)",
                    holder.file_name().to_string_lossy()
                ));
            }
        }
    }
    users
}

/// Why a regular file may not be overwritten: swap file or loop-device backing store.
pub fn file_users(roots: &Roots, path: &Path) -> Vec<String> {
    let Ok(canonical) = fs::canonicalize(path) else {
        return Vec::new();
    };
    let mut users = Vec::new();
    let swaps = fs::read_to_string(roots.proc_dir.join("swaps"))
        .map(|t| parse_swaps(&t))
        .unwrap_or_default();
    if swaps.iter().any(|s| Path::new(s) == canonical) {
        users.push(format!("{} is in use as a swap file", canonical.display()));
    }
    if let Ok(entries) = fs::read_dir(roots.sys_dir.join("block")) {
        for entry in entries.flatten() {
            let backing = entry.path().join("loop/backing_file");
            let Ok(text) = fs::read_to_string(&backing) else {
                continue;
            };
            if Path::new(text.trim_end_matches('\n')) == canonical {
                users.push(format!(
                    "{} is the backing file of /dev/{}",
                    canonical.display(),
                    entry.file_name().to_string_lossy()
                ));
            }
        }
    }
    users
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 1 8:2 / / rw,relatime shared:1 - ext4 /dev/sda2 rw
25 22 8:1 / /boot\\040efi rw,relatime shared:2 - vfat /dev/sda1 rw
30 22 0:45 / /data rw - btrfs /dev/sdc rw
31 22 0:5 / /dev rw - devtmpfs udev rw
garbage line
";

    #[test]
    fn mountinfo_is_parsed_with_escapes() {
        let mounts = parse_mountinfo(MOUNTINFO);
        assert_eq!(mounts.len(), 4);
        assert_eq!(mounts[1].dev, DevNum { major: 8, minor: 1 });
        assert_eq!(mounts[1].mount_point, "/boot efi");
        assert_eq!(mounts[1].source, "/dev/sda1");
        assert_eq!(mounts[2].source, "/dev/sdc");
    }

    #[test]
    fn swaps_are_parsed() {
        let text = "Filename\tType\tSize\tUsed\tPriority\n/dev/sdb2 partition 100 0 -2\n/swap\\040file file 10 0 -3\n";
        assert_eq!(parse_swaps(text), vec!["/dev/sdb2", "/swap file"]);
        assert!(parse_swaps("Filename Type\n").is_empty());
    }

    #[test]
    fn rdev_splits_like_glibc() {
        assert_eq!(DevNum::from_rdev(0x0801), DevNum { major: 8, minor: 1 });
        // major 259 (NVMe partitions), minor 300
        let rdev = ((259u64 & 0xfff) << 8) | (300 & 0xff) | ((300u64 & !0xff) << 12);
        assert_eq!(
            DevNum::from_rdev(rdev),
            DevNum {
                major: 259,
                minor: 300
            }
        );
        assert_eq!(
            DevNum::parse("8:16\n"),
            Some(DevNum {
                major: 8,
                minor: 16
            })
        );
        assert_eq!(DevNum::parse("8"), None);
    }

    /// A fake /proc and /sys: sda (8:0) with sda1 (8:1, mounted) and sda2 (8:2, held by
    /// dm-0); sdb (8:16) with sdb1 in swap; sdc (8:32) mounted by name (btrfs); sdd free.
    fn fixture() -> (tempfile::TempDir, Roots) {
        let dir = tempfile::tempdir().unwrap();
        let proc_dir = dir.path().join("proc");
        let sys_dir = dir.path().join("sys");
        fs::create_dir_all(proc_dir.join("self")).unwrap();
        fs::write(
            proc_dir.join("self/mountinfo"),
            "25 22 8:1 / /boot rw - vfat /dev/sda1 rw\n30 22 0:45 / /data rw - btrfs /dev/sdc rw\n",
        )
        .unwrap();
        fs::write(
            proc_dir.join("swaps"),
            "Filename Type Size Used Priority\n/dev/sdb1 partition 1 0 -2\n",
        )
        .unwrap();
        type Disk<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);
        let disks: &[Disk] = &[
            ("sda", "8:0", &[("sda1", "8:1"), ("sda2", "8:2")]),
            ("sdb", "8:16", &[("sdb1", "8:17")]),
            ("sdc", "8:32", &[]),
            ("sdd", "8:48", &[("sdd1", "8:49")]),
        ];
        for (disk, dev, parts) in disks {
            let disk_dir = sys_dir.join("devices/block").join(disk);
            fs::create_dir_all(disk_dir.join("holders")).unwrap();
            fs::write(disk_dir.join("dev"), dev).unwrap();
            fs::create_dir_all(sys_dir.join("dev/block")).unwrap();
            std::os::unix::fs::symlink(&disk_dir, sys_dir.join("dev/block").join(dev)).unwrap();
            for (part, part_dev) in *parts {
                let part_dir = disk_dir.join(part);
                fs::create_dir_all(part_dir.join("holders")).unwrap();
                fs::write(part_dir.join("dev"), part_dev).unwrap();
                fs::write(part_dir.join("partition"), "1").unwrap();
            }
        }
        fs::create_dir_all(sys_dir.join("devices/block/sda/sda2/holders/dm-0")).unwrap();
        (dir, Roots { proc_dir, sys_dir })
    }

    #[test]
    fn users_of_each_fixture_disk() {
        let (_dir, roots) = fixture();
        let sda = block_device_users(&roots, DevNum { major: 8, minor: 0 });
        assert_eq!(sda.len(), 2, "{sda:?}");
        assert!(sda[0].contains("/dev/sda1") && sda[0].contains("mounted at /boot"));
        assert!(sda[1].contains("/dev/sda2") && sda[1].contains("held by dm-0"));
        let sdb = block_device_users(
            &roots,
            DevNum {
                major: 8,
                minor: 16,
            },
        );
        assert_eq!(sdb.len(), 1, "{sdb:?}");
        assert!(sdb[0].contains("swap"));
        let sdc = block_device_users(
            &roots,
            DevNum {
                major: 8,
                minor: 32,
            },
        );
        assert_eq!(sdc.len(), 1, "{sdc:?}");
        assert!(sdc[0].contains("mounted at /data"));
        assert!(block_device_users(
            &roots,
            DevNum {
                major: 8,
                minor: 48
            }
        )
        .is_empty());
        // A partition asked for directly.
        let sda1 = block_device_users(&roots, DevNum { major: 8, minor: 1 });
        assert!(
            sda1.iter().any(|u| u.contains("mounted at /boot")),
            "{sda1:?}"
        );
    }

    #[test]
    fn loop_backing_and_swap_files_are_found() {
        let (dir, roots) = fixture();
        let file = dir.path().join("image");
        fs::write(&file, b"x").unwrap();
        let canonical = fs::canonicalize(&file).unwrap();
        assert!(file_users(&roots, &file).is_empty());
        fs::create_dir_all(roots.sys_dir.join("block/loop3/loop")).unwrap();
        fs::write(
            roots.sys_dir.join("block/loop3/loop/backing_file"),
            format!("{}\n", canonical.display()),
        )
        .unwrap();
        fs::write(
            roots.proc_dir.join("swaps"),
            format!("Filename Type\n{} file 1 0 -2\n", canonical.display()),
        )
        .unwrap();
        let users = file_users(&roots, &file);
        assert_eq!(users.len(), 2, "{users:?}");
        assert!(users[0].contains("swap file"));
        assert!(users[1].contains("/dev/loop3"));
    }
}
