//! Who a drive is: model, vendor, serial, firmware, rotational, transport, and for a loop
//! device its backing file, read from sysfs and udev's database (no ioctls, no root).
//!
//! Each field comes from the first source that has it, most specific first: the
//! kernel's own attribute (`device/model`, `device/serial`, NVMe's `firmware_rev`,
//! virtio's `serial` on the disk itself), then udev's record
//! (`/run/udev/data/b<major>:<minor>`: `ID_SERIAL_SHORT`, `ID_MODEL_ENC`, `ID_REVISION`,
//! `ID_BUS`), which is where a SATA or USB drive's serial lives (the kernel keeps it only
//! in VPD pages). A partition is described by its disk. Everything reads through
//! [`Roots`], so tests use a fake `/sys` and `/run/udev/data`.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use serde::Serialize;

/// Where the system's tables are (`/sys`, `/run/udev/data`); tests point at a fake tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roots {
    /// The sysfs mount (`/sys`).
    pub sys: PathBuf,
    /// udev's database (`/run/udev/data`).
    pub udev_data: PathBuf,
}

impl Default for Roots {
    fn default() -> Roots {
        Roots {
            sys: PathBuf::from("/sys"),
            udev_data: PathBuf::from("/run/udev/data"),
        }
    }
}

/// What a drive says about itself. Every field is optional: a file has none of them, a
/// loop device no model, a USB bridge often no serial.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Identity {
    /// The kernel's name of the disk (`sda`, `nvme0n1`, `loop3`); for a partition, its
    /// disk's.
    pub kernel_name: Option<String>,
    /// The partition's own name (`sda1`), when the target is a partition.
    pub partition: Option<String>,
    /// Vendor (`ATA` on SATA drives behind libata, the USB bridge's vendor).
    pub vendor: Option<String>,
    /// Model.
    pub model: Option<String>,
    /// Serial number.
    pub serial: Option<String>,
    /// Firmware revision.
    pub firmware: Option<String>,
    /// World wide name, when udev knows one.
    pub wwn: Option<String>,
    /// Spinning media (`queue/rotational`); USB bridges often claim 1 for flash.
    pub rotational: Option<bool>,
    /// The kernel may see it vanish (`removable`: card readers, some USB sticks).
    pub removable: Option<bool>,
    /// How it is attached: `nvme` (`nvme-tcp`, `nvme-rdma`, `nvme-fc` over fabrics), `sata`, `sas`, `scsi`, `usb`, `virtio`, `mmc`,
    /// `loop`, `device-mapper`, `md`, `nbd`, `zram`, `ram`.
    pub transport: Option<String>,
    /// A loop device's backing file (`loop/backing_file`).
    pub backing_file: Option<String>,
}

impl Identity {
    /// `model` and `serial` in one line for tables (`-` when neither is known; a loop
    /// device shows its backing file).
    pub fn short(&self) -> String {
        match (&self.model, &self.serial, &self.backing_file) {
            (Some(m), Some(s), _) => format!("{m} {s}"),
            (Some(m), None, _) => m.clone(),
            (None, Some(s), _) => s.clone(),
            (None, None, Some(b)) => format!("loop: {b}"),
            (None, None, None) => "-".to_string(),
        }
    }
}

/// The identity of `path`: a block device's, or the empty identity for anything else
/// (a regular file, a path that cannot be read).
pub fn identify(path: &Path) -> Identity {
    identify_in(&Roots::default(), path)
}

/// [`identify`] under other roots.
pub fn identify_in(roots: &Roots, path: &Path) -> Identity {
    match fs::metadata(path) {
        Ok(meta) if meta.file_type().is_block_device() => {
            let rdev = meta.rdev();
            identify_dev(roots, libc::major(rdev), libc::minor(rdev))
        }
        _ => Identity::default(),
    }
}

fn read_attr(path: &Path) -> Option<String> {
    let text = fs::read_to_string(path).ok()?;
    // Attributes are short; padded SCSI fields end in spaces, some in NULs.
    let text = text.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    (!text.is_empty()).then(|| text.to_string())
}

fn read_flag(path: &Path) -> Option<bool> {
    match read_attr(path)?.as_str() {
        "0" => Some(false),
        "1" => Some(true),
        _ => None,
    }
}

/// One udev property (`E:KEY=value`) from a record's text.
fn udev_property<'a>(record: &'a str, key: &str) -> Option<&'a str> {
    record.lines().find_map(|line| {
        let (k, v) = line.strip_prefix("E:")?.split_once('=')?;
        (k == key && !v.trim().is_empty()).then(|| v.trim())
    })
}

/// Undoes udev's `\xNN` escapes (`ID_MODEL_ENC`: `Samsung\x20SSD\x20860`), trimmed.
fn udev_unescape(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        let hex = bytes
            .get(at..at + 4)
            .filter(|b| b[0] == b'\\' && b[1] == b'x')
            .and_then(|b| std::str::from_utf8(&b[2..]).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(byte) => {
                out.push(byte);
                at += 4;
            }
            None => {
                out.push(bytes[at]);
                at += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).trim().to_string()
}

/// The transport, from where the disk sits in the device tree, its name, and udev.
fn transport(
    disk_dir: &Path,
    name: &str,
    device_dir: &Path,
    udev_bus: Option<&str>,
) -> Option<String> {
    let path = disk_dir.to_string_lossy();
    let has = |part: &str| path.split('/').any(|c| c.starts_with(part));
    let found = if name.starts_with("loop") {
        "loop"
    } else if name.starts_with("nvme") || has("nvme") {
        // NVMe over fabrics says so in the controller's `transport` (`tcp`, `rdma`, `fc`).
        return Some(match read_attr(&device_dir.join("transport")) {
            Some(t) if t != "pcie" => format!("nvme-{t}"),
            _ => "nvme".to_string(),
        });
    } else if name.starts_with("dm-") {
        "device-mapper"
    } else if name.starts_with("md") && !has("host") {
        "md"
    } else if name.starts_with("nbd") {
        "nbd"
    } else if name.starts_with("zram") {
        "zram"
    } else if name.starts_with("ram") {
        "ram"
    } else if name.starts_with("mmcblk") || has("mmc_host") {
        "mmc"
    } else if has("usb") {
        "usb"
    } else if has("virtio") {
        "virtio"
    } else if has("ata") {
        "sata"
    } else if has("end_device-") || has("sas_") {
        "sas"
    } else if let Some(bus) = udev_bus {
        return Some(match bus {
            "ata" => "sata".to_string(),
            other => other.to_string(),
        });
    } else if device_dir.join("scsi_level").exists() || has("host") {
        "scsi"
    } else {
        return None;
    };
    Some(found.to_string())
}

/// The identity of the block device `major:minor`.
pub fn identify_dev(roots: &Roots, major: u32, minor: u32) -> Identity {
    let link = roots.sys.join(format!("dev/block/{major}:{minor}"));
    let Ok(dir) = fs::canonicalize(&link) else {
        return Identity::default();
    };
    // A partition has a `partition` attribute and sits inside its disk's directory.
    let (disk_dir, partition) = if dir.join("partition").exists() {
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned());
        match dir.parent() {
            Some(parent) => (parent.to_path_buf(), name),
            None => (dir.clone(), name),
        }
    } else {
        (dir.clone(), None)
    };
    let name = disk_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let device = disk_dir.join("device");
    // udev keys its record by the disk's numbers; a partition's own record has the same
    // ID_* properties, so the target's numbers serve either way.
    let record =
        fs::read_to_string(roots.udev_data.join(format!("b{major}:{minor}"))).unwrap_or_default();
    let udev = |key: &str| udev_property(&record, key).map(str::to_string);
    let first = |names: &[&str]| names.iter().find_map(|n| read_attr(&device.join(n)));
    let model = first(&["model", "name"])
        .or_else(|| udev_property(&record, "ID_MODEL_ENC").map(udev_unescape))
        .or_else(|| udev("ID_MODEL"));
    let serial = first(&["serial"])
        .or_else(|| read_attr(&disk_dir.join("serial")))
        .or_else(|| udev("ID_SERIAL_SHORT"));
    let firmware = first(&["firmware_rev", "rev", "fwrev"]).or_else(|| udev("ID_REVISION"));
    let vendor = first(&["vendor"])
        .filter(|v| !v.starts_with("0x"))
        .or_else(|| udev_property(&record, "ID_VENDOR_ENC").map(udev_unescape))
        .or_else(|| udev("ID_VENDOR"));
    let backing_file = read_attr(&disk_dir.join("loop/backing_file"));
    Identity {
        transport: transport(&disk_dir, &name, &device, udev_property(&record, "ID_BUS")),
        kernel_name: (!name.is_empty()).then_some(name),
        partition,
        vendor,
        model,
        serial,
        firmware,
        wwn: udev("ID_WWN"),
        rotational: read_flag(&disk_dir.join("queue/rotational")),
        removable: read_flag(&disk_dir.join("removable")),
        backing_file,
    }
}

/// The size in bytes the kernel gives the block device `path` now (`size` in sysfs,
/// in 512-byte sectors), or `None` when it is gone: the path, the device node's numbers
/// or its sysfs entry no longer exist. A drive unplugged mid-run drops out here, and a
/// reset one may come back smaller (0 while it is gone).
pub fn current_block_size_bytes(roots: &Roots, path: &Path) -> Option<u64> {
    let meta = fs::metadata(path).ok()?;
    if !meta.file_type().is_block_device() {
        return None;
    }
    let rdev = meta.rdev();
    let dir = roots.sys.join(format!(
        "dev/block/{}:{}",
        libc::major(rdev),
        libc::minor(rdev)
    ));
    let sectors: u64 = read_attr(&dir.join("size"))?.parse().ok()?;
    Some(sectors.saturating_mul(512))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A fake `/sys` and `/run/udev/data` under a temporary directory.
    struct Fake {
        dir: tempfile::TempDir,
    }

    impl Fake {
        fn new() -> Fake {
            let fake = Fake {
                dir: tempfile::tempdir().unwrap(),
            };
            fs::create_dir_all(fake.dir.path().join("sys/dev/block")).unwrap();
            fs::create_dir_all(fake.dir.path().join("udev")).unwrap();
            fake
        }

        fn roots(&self) -> Roots {
            Roots {
                sys: self.dir.path().join("sys"),
                udev_data: self.dir.path().join("udev"),
            }
        }

        /// A disk at `devices/<under>/<name>` with `dev/block/<numbers>` pointing at it.
        fn disk(&self, numbers: &str, under: &str, attrs: &[(&str, &str)]) -> PathBuf {
            let name = under.rsplit('/').next().unwrap();
            let dir = self.dir.path().join("sys/devices").join(under);
            fs::create_dir_all(&dir).unwrap();
            for (file, text) in attrs {
                let at = dir.join(file);
                fs::create_dir_all(at.parent().unwrap()).unwrap();
                fs::write(at, format!("{text}\n")).unwrap();
            }
            symlink(&dir, self.dir.path().join("sys/dev/block").join(numbers)).unwrap();
            assert!(dir.ends_with(name));
            dir
        }

        fn udev(&self, numbers: &str, lines: &str) {
            fs::write(self.dir.path().join(format!("udev/b{numbers}")), lines).unwrap();
        }
    }

    #[test]
    fn a_sata_drive_takes_model_from_sysfs_and_serial_from_udev() {
        let fake = Fake::new();
        fake.disk(
            "8:0",
            "pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0/block/sda",
            &[
                ("device/model", "Samsung SSD 860 "),
                ("device/vendor", "ATA     "),
                ("device/rev", "4B6Q"),
                ("queue/rotational", "0"),
                ("removable", "0"),
                ("size", "976773168"),
            ],
        );
        fake.udev(
            "8:0",
            "S:disk/by-id/ata-Samsung_SSD_860_S3Z9NB0K123456A\nE:ID_BUS=ata\n\
             E:ID_MODEL=Samsung_SSD_860\nE:ID_SERIAL_SHORT=S3Z9NB0K123456A\nE:ID_WWN=0x5002538e40a1b2c3\n",
        );
        let id = identify_dev(&fake.roots(), 8, 0);
        assert_eq!(id.kernel_name.as_deref(), Some("sda"));
        assert_eq!(id.model.as_deref(), Some("Samsung SSD 860"));
        assert_eq!(id.vendor.as_deref(), Some("ATA"));
        assert_eq!(id.serial.as_deref(), Some("S3Z9NB0K123456A"));
        assert_eq!(id.firmware.as_deref(), Some("4B6Q"));
        assert_eq!(id.wwn.as_deref(), Some("0x5002538e40a1b2c3"));
        assert_eq!(id.rotational, Some(false));
        assert_eq!(id.removable, Some(false));
        assert_eq!(id.transport.as_deref(), Some("sata"));
        assert_eq!(id.partition, None);
        assert_eq!(id.short(), "Samsung SSD 860 S3Z9NB0K123456A");
    }

    #[test]
    fn a_partition_is_described_by_its_disk() {
        let fake = Fake::new();
        let disk = fake.disk(
            "8:16",
            "pci0000:00/0000:00:14.0/usb2/2-1/2-1:1.0/host6/target6:0:0/6:0:0:0/block/sdb",
            &[
                ("device/model", "Flash Disk"),
                ("device/vendor", "Generic "),
                ("device/rev", "8.07"),
                ("queue/rotational", "1"),
                ("removable", "1"),
            ],
        );
        fs::create_dir_all(disk.join("sdb1")).unwrap();
        fs::write(disk.join("sdb1/partition"), "1\n").unwrap();
        symlink(
            disk.join("sdb1"),
            fake.dir.path().join("sys/dev/block/8:17"),
        )
        .unwrap();
        fake.udev("8:17", "E:ID_BUS=usb\nE:ID_SERIAL_SHORT=0123456789AB\n");
        let id = identify_dev(&fake.roots(), 8, 17);
        assert_eq!(id.kernel_name.as_deref(), Some("sdb"));
        assert_eq!(id.partition.as_deref(), Some("sdb1"));
        assert_eq!(id.model.as_deref(), Some("Flash Disk"));
        assert_eq!(id.vendor.as_deref(), Some("Generic"));
        assert_eq!(id.serial.as_deref(), Some("0123456789AB"));
        assert_eq!(id.transport.as_deref(), Some("usb"));
        assert_eq!(id.rotational, Some(true));
        assert_eq!(id.removable, Some(true));
    }

    #[test]
    fn an_nvme_namespace_reads_its_controller() {
        let fake = Fake::new();
        fake.disk(
            "259:0",
            "pci0000:00/0000:00:1d.0/0000:3d:00.0/nvme/nvme0/nvme0n1",
            &[
                ("device/model", "WDC WDS500G2B0C-00PXH0"),
                ("device/serial", "2034AB401234        "),
                ("device/firmware_rev", "211070WD"),
                ("device/transport", "pcie"),
                ("queue/rotational", "0"),
            ],
        );
        fake.disk(
            "259:1",
            "virtual/nvme-fabrics/ctl/nvme1/nvme1n1",
            &[("device/transport", "tcp"), ("device/model", "Linux")],
        );
        assert_eq!(
            identify_dev(&fake.roots(), 259, 1).transport.as_deref(),
            Some("nvme-tcp")
        );
        let id = identify_dev(&fake.roots(), 259, 0);
        assert_eq!(id.model.as_deref(), Some("WDC WDS500G2B0C-00PXH0"));
        assert_eq!(id.serial.as_deref(), Some("2034AB401234"));
        assert_eq!(id.firmware.as_deref(), Some("211070WD"));
        assert_eq!(id.transport.as_deref(), Some("nvme"));
    }

    #[test]
    fn virtio_keeps_its_serial_on_the_disk_and_udev_fills_the_model() {
        let fake = Fake::new();
        fake.disk(
            "254:0",
            "pci0000:00/0000:00:02.0/virtio1/block/vda",
            &[
                ("serial", "overlayblk"),
                ("device/vendor", "0x1af4"),
                ("queue/rotational", "1"),
            ],
        );
        fake.udev(
            "254:0",
            "E:ID_MODEL_ENC=QEMU\\x20HARDDISK\\x20\\x20\nE:ID_MODEL=QEMU_HARDDISK\n",
        );
        let id = identify_dev(&fake.roots(), 254, 0);
        assert_eq!(id.serial.as_deref(), Some("overlayblk"));
        assert_eq!(id.vendor, None, "a PCI vendor id is no vendor name");
        assert_eq!(id.model.as_deref(), Some("QEMU HARDDISK"));
        assert_eq!(id.transport.as_deref(), Some("virtio"));
    }

    #[test]
    fn a_loop_device_shows_its_backing_file() {
        let fake = Fake::new();
        fake.disk(
            "7:3",
            "virtual/block/loop3",
            &[
                ("loop/backing_file", "/dev/shm/disk a.img"),
                ("queue/rotational", "0"),
                ("size", "131072"),
            ],
        );
        let id = identify_dev(&fake.roots(), 7, 3);
        assert_eq!(id.transport.as_deref(), Some("loop"));
        assert_eq!(id.backing_file.as_deref(), Some("/dev/shm/disk a.img"));
        assert_eq!(id.model, None);
        assert_eq!(id.short(), "loop: /dev/shm/disk a.img");
    }

    #[test]
    fn missing_devices_and_files_have_no_identity() {
        let fake = Fake::new();
        assert_eq!(identify_dev(&fake.roots(), 8, 99), Identity::default());
        let file = fake.dir.path().join("plain.img");
        fs::write(&file, b"x").unwrap();
        assert_eq!(identify_in(&fake.roots(), &file), Identity::default());
        assert_eq!(current_block_size_bytes(&fake.roots(), &file), None);
        assert_eq!(Identity::default().short(), "-");
    }

    #[test]
    fn udev_escapes_and_properties() {
        assert_eq!(udev_unescape("A\\x20B\\x2fC\\x2"), "A B/C\\x2");
        let record = "S:x\nE:ID_SERIAL_SHORT=\nE:ID_SERIAL=abc\nE:ID_X=a=b\n";
        assert_eq!(udev_property(record, "ID_SERIAL_SHORT"), None);
        assert_eq!(udev_property(record, "ID_SERIAL"), Some("abc"));
        assert_eq!(udev_property(record, "ID_X"), Some("a=b"));
    }
}
