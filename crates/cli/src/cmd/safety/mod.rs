//! What `format` and `burn-in` check before they overwrite a target.
//!
//! A block device is refused when it (or any partition of it) is mounted, used as swap,
//! held by device-mapper/md, or cannot be opened exclusively. A device or an existing
//! file is refused when it carries a known signature (see [`signature`]) or any
//! non-zero byte in its first or last MiB, unless that content is a stackctl volume
//! (our superblock magic in slot 0 or 1): re-formatting our own volume, e.g. running
//! `burn-in` again, is allowed. `--force` skips the content checks, never the in-use
//! checks: overwriting a mounted filesystem corrupts it under the kernel's feet.

pub mod inuse;
pub mod signature;

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use stack_volume::format::{SB_MAGIC, SB_SLOT_OFFSETS};

use self::inuse::{DevNum, Roots};
use self::signature::{first_non_zero, known_signatures, Finding, HEAD_BYTES};

/// What the target is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    /// It does not exist (format creates a file).
    Missing,
    /// A regular file.
    File,
    /// A block device.
    BlockDevice,
}

/// What the checks found.
#[derive(Debug, Clone)]
pub struct Inspection {
    /// What the target is.
    pub kind: TargetKind,
    /// Users that forbid overwriting even with `--force`.
    pub users: Vec<String>,
    /// Content that forbids overwriting without `--force`.
    pub findings: Vec<Finding>,
    /// The target already holds a stackctl volume (at this superblock slot offset).
    pub own_volume_at: Option<u64>,
}

impl Inspection {
    /// The refusal message for `--force` = `force`, or `None` when the target may be
    /// overwritten.
    pub fn refusal(&self, path: &Path, force: bool) -> Option<String> {
        if !self.users.is_empty() {
            return Some(format!(
                "refusing to overwrite {}: {} (not overridable with --force; unmount or release it first)",
                path.display(),
                self.users.join("; ")
            ));
        }
        if self.findings.is_empty() || force {
            return None;
        }
        let found: Vec<String> = self
            .findings
            .iter()
            .map(|f| format!("{} at byte {}", f.what, f.offset))
            .collect();
        Some(format!(
            "refusing to overwrite {}: found {}; pass --force to overwrite it",
            path.display(),
            found.join(", ")
        ))
    }
}

/// Reads up to `len` bytes at `offset` (fewer at the end).
fn read_region(file: &mut File, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    file.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::with_capacity(len);
    file.take(len as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

/// The size of an open block device (its end, as seek reports it).
fn block_device_size(file: &mut File) -> io::Result<u64> {
    file.seek(SeekFrom::End(0))
}

impl Inspection {
    /// A target that does not exist yet (or that taking its lock just created, empty).
    pub fn missing() -> Inspection {
        Inspection {
            kind: TargetKind::Missing,
            users: Vec::new(),
            findings: Vec::new(),
            own_volume_at: None,
        }
    }
}

/// Inspects `path` with the real `/proc` and `/sys`.
#[cfg(test)]
pub fn inspect(path: &Path) -> io::Result<Inspection> {
    inspect_with(path, &Roots::default())
}

/// Inspects `path` while this process holds its lock; `claimed`: the lock holds the
/// block device's `O_EXCL` claim, which already proved the kernel lets us have it (a
/// second exclusive open of ours would fail on our own claim).
pub fn inspect_claimed(path: &Path, claimed: bool) -> io::Result<Inspection> {
    inspect_impl(path, &Roots::default(), claimed)
}

/// Inspects `path`, reading kernel state under `roots`.
#[cfg(test)]
pub fn inspect_with(path: &Path, roots: &Roots) -> io::Result<Inspection> {
    inspect_impl(path, roots, false)
}

fn inspect_impl(path: &Path, roots: &Roots, claimed: bool) -> io::Result<Inspection> {
    let metadata = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok(Inspection {
                kind: TargetKind::Missing,
                users: Vec::new(),
                findings: Vec::new(),
                own_volume_at: None,
            })
        }
        Err(e) => return Err(e),
    };
    let file_type = metadata.file_type();
    let (kind, users) = if file_type.is_block_device() {
        let mut users = inuse::block_device_users(roots, DevNum::from_rdev(metadata.rdev()));
        if users.is_empty() && !claimed {
            // The kernel refuses O_EXCL on a block device that is mounted or held: the
            // last word when /proc or /sys are not what we expect.
            let exclusive = fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_EXCL)
                .open(path);
            if let Err(e) = exclusive {
                if e.raw_os_error() == Some(libc::EBUSY) {
                    users.push(format!(
                        "{} is busy (the kernel refused an exclusive open: mounted, swap or held)",
                        path.display()
                    ));
                }
            }
        }
        (TargetKind::BlockDevice, users)
    } else if file_type.is_file() {
        (TargetKind::File, inuse::file_users(roots, path))
    } else if file_type.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "is a directory; a target is a file or a block device",
        ));
    } else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "is neither a regular file nor a block device",
        ));
    };

    let mut file = File::open(path)?;
    let size_bytes = match kind {
        TargetKind::BlockDevice => block_device_size(&mut file)?,
        _ => metadata.len(),
    };
    let head = read_region(&mut file, 0, HEAD_BYTES)?;
    let own_volume_at = SB_SLOT_OFFSETS.iter().copied().find(|&offset| {
        let start = offset as usize;
        head.get(start..start + SB_MAGIC.len()) == Some(&SB_MAGIC[..])
    });

    let mut findings = known_signatures(&head);
    if own_volume_at.is_some() {
        // Our data area can hold any bytes, including a stored ZFS image whose
        // uberblocks land in the ring window; every other signature sits where our
        // superblock blocks keep zeros, so it is foreign.
        findings.retain(|f| !f.what.contains("ZFS"));
    } else if findings.is_empty() {
        let tail_start = size_bytes
            .saturating_sub(HEAD_BYTES as u64)
            .max(head.len() as u64);
        let non_zero = match first_non_zero(&head, 0) {
            Some(offset) => Some(offset),
            None if tail_start < size_bytes => {
                let tail = read_region(&mut file, tail_start, HEAD_BYTES)?;
                first_non_zero(&tail, tail_start)
            }
            None => None,
        };
        if let Some(offset) = non_zero {
            findings.push(Finding {
                what: "non-zero data that is not a stackctl volume".to_string(),
                offset,
            });
        }
    }
    Ok(Inspection {
        kind,
        users,
        findings,
        own_volume_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_with(len: usize, at: &[(usize, &[u8])]) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("target");
        let mut bytes = vec![0u8; len];
        for &(offset, data) in at {
            bytes[offset..offset + data.len()].copy_from_slice(data);
        }
        fs::write(&path, bytes).unwrap();
        (dir, path)
    }

    #[test]
    fn missing_empty_and_zero_files_are_free() {
        let dir = tempfile::tempdir().unwrap();
        let missing = inspect(&dir.path().join("nope")).unwrap();
        assert_eq!(missing.kind, TargetKind::Missing);
        assert!(missing.refusal(Path::new("nope"), false).is_none());
        for len in [0, 4096, 3 << 20] {
            let (_dir, path) = file_with(len, &[]);
            let found = inspect(&path).unwrap();
            assert_eq!(found.kind, TargetKind::File);
            assert!(found.refusal(&path, false).is_none(), "{len}: {found:?}");
        }
    }

    #[test]
    fn foreign_content_is_refused_with_its_offset_unless_forced() {
        let (_dir, path) = file_with(2 << 20, &[(1080, &[0x53, 0xef])]);
        let found = inspect(&path).unwrap();
        let message = found.refusal(&path, false).unwrap();
        assert!(message.contains("ext2/3/4"), "{message}");
        assert!(message.contains("at byte 1080"), "{message}");
        assert!(message.contains("--force"), "{message}");
        assert!(found.refusal(&path, true).is_none());

        let (_dir, path) = file_with(2 << 20, &[(777, b"x")]);
        let message = inspect(&path).unwrap().refusal(&path, false).unwrap();
        assert!(
            message.contains("non-zero data") && message.contains("byte 777"),
            "{message}"
        );

        // Content only near the end (a backup GPT, an md 0.90 superblock).
        let (_dir, path) = file_with(3 << 20, &[((3 << 20) - 100, b"y")]);
        let message = inspect(&path).unwrap().refusal(&path, false).unwrap();
        assert!(
            message.contains(&format!("byte {}", (3 << 20) - 100)),
            "{message}"
        );
    }

    #[test]
    fn our_own_volume_may_be_formatted_again() {
        for slot in SB_SLOT_OFFSETS {
            let (_dir, path) =
                file_with(2 << 20, &[(slot as usize, &SB_MAGIC), (300_000, b"data")]);
            let found = inspect(&path).unwrap();
            assert_eq!(found.own_volume_at, Some(slot));
            assert!(found.refusal(&path, false).is_none(), "{found:?}");
        }
        // But a filesystem made over it is foreign (mkfs.ext4 keeps the first KiB).
        let (_dir, path) = file_with(2 << 20, &[(0, &SB_MAGIC), (1080, &[0x53, 0xef])]);
        assert!(inspect(&path).unwrap().refusal(&path, false).is_some());
    }

    #[test]
    fn directories_are_not_targets() {
        let dir = tempfile::tempdir().unwrap();
        let err = inspect(dir.path()).unwrap_err();
        assert!(err.to_string().contains("directory"));
    }
}
