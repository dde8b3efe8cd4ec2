//! How a volume meets its device: `O_DIRECT` where it serves, else reads evicted from
//! the page cache first (checked), memory for tmpfs, the page cache when asked; and
//! what the reports call that source.

use std::path::Path;
use std::sync::Arc;

use stack_bio::{Device, FileDevice, ReadPath};

use super::{read_slot, SlotRead, Volume, VolumeLock};
use crate::report::Source;
use crate::Error;

/// How the volume meets its device: insist on `O_DIRECT`, the page cache, or the drive
/// by whichever way works (see [`crate::OpenOptions`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum IoMode {
    Direct,
    Cached,
    DeviceTrue,
}

impl IoMode {
    pub(super) fn new(direct: bool, cached: bool) -> Result<IoMode, Error> {
        match (direct, cached) {
            (true, true) => Err(Error::InvalidOption {
                option: "direct",
                reason: "O_DIRECT and the page cache were both asked for".into(),
            }),
            (true, false) => Ok(IoMode::Direct),
            (false, true) => Ok(IoMode::Cached),
            (false, false) => Ok(IoMode::DeviceTrue),
        }
    }
}

/// The block size of the newest valid superblock on `device`, if any.
fn peek_block_size(device: &dyn Device) -> Option<u32> {
    [read_slot(device, 0), read_slot(device, 1)]
        .into_iter()
        .filter_map(|r| match r {
            SlotRead::Valid(sb) => Some(sb),
            _ => None,
        })
        .max_by_key(|sb| sb.generation)
        .map(|sb| sb.block_size_bytes)
}

/// Opens the device at `path` as `mode` asks. `block_size_bytes` is the volume's when
/// known (format); otherwise it is read from the superblocks. `O_DIRECT` serves when the
/// open takes the flag, the target is not memory, and the volume's blocks are whole
/// logical blocks of the device (a 512-byte-block volume on a file wants 4 KiB).
pub(super) fn open_device(
    path: &Path,
    mode: IoMode,
    read_only: bool,
    create_size_bytes: Option<u64>,
    block_size_bytes: Option<u32>,
    lock: &VolumeLock,
) -> Result<Arc<dyn Device>, Error> {
    // The device must be the file the lock holds: the path may have been replaced
    // between locking and opening.
    let checked = |device: FileDevice| -> Result<Arc<dyn Device>, Error> {
        lock.check_same(device.file())?;
        Ok(Arc::new(device))
    };
    let buffered = |evict_reads: bool| -> Result<Arc<dyn Device>, Error> {
        let opts = stack_bio::OpenOptions::new()
            .read_only(read_only)
            .create(create_size_bytes)
            .evict_reads(evict_reads);
        checked(FileDevice::open(path, &opts)?)
    };
    if mode == IoMode::Cached {
        return buffered(false);
    }
    let impossible = |reason: String| Error::DirectImpossible {
        path: path.to_path_buf(),
        reason,
    };
    let opts = stack_bio::OpenOptions::new()
        .direct(true)
        .read_only(read_only)
        .create(create_size_bytes);
    let device = match FileDevice::open(path, &opts) {
        Ok(device) => device,
        Err(stack_bio::Error::DirectRefused { source, .. }) => {
            if mode == IoMode::Direct {
                return Err(impossible(format!("the filesystem refused it ({source})")));
            }
            return buffered(true);
        }
        Err(e) => return Err(e.into()),
    };
    let info = device.info();
    if info.backing == stack_bio::Backing::Memory && mode == IoMode::DeviceTrue {
        // No drive to reach; the page cache is the data.
        drop(device);
        return buffered(false);
    }
    let lbs = info.logical_block_size;
    let bs = block_size_bytes.or_else(|| peek_block_size(&device));
    if let Some(bs) = bs.filter(|bs| bs % lbs != 0) {
        if mode == IoMode::Direct {
            return Err(impossible(format!(
                "the volume's {bs}-byte blocks are not whole {lbs}-byte direct-I/O blocks of the {}",
                info.kind
            )));
        }
        drop(device);
        return buffered(true);
    }
    checked(device)
}

/// Opens the device at `path` for a command that writes raw blocks rather than a volume
/// (`probe`), the way a volume opens it: `O_DIRECT` where it serves (for blocks of 4 KiB
/// and whole logical blocks of the device), else buffered with each read evicted first;
/// a file on memory buffered; `cached` asks for the page cache, `direct` insists. `lock`
/// is the exclusive lock the caller took on `path`.
pub fn open_raw_device(
    path: &Path,
    direct: bool,
    cached: bool,
    lock: &VolumeLock,
) -> Result<Arc<dyn Device>, Error> {
    let mode = IoMode::new(direct, cached)?;
    open_device(path, mode, false, None, Some(4096), lock)
}

/// Where `device`'s reads came from so far, and why not from the drive when an eviction
/// did not take. Ask after the reads: a range that stayed cached turns an `Evicted`
/// device into `PageCache`.
pub fn device_read_source(device: &dyn Device) -> (Source, Option<String>) {
    let info = device.info();
    if info.backing == stack_bio::Backing::Memory {
        return (Source::Memory, None);
    }
    match info.reads {
        ReadPath::Direct => (Source::Direct, None),
        ReadPath::Evicted => (Source::Evicted, None),
        ReadPath::Memory => (Source::Memory, None),
        ReadPath::PageCache { stuck } => (
            Source::PageCache,
            stuck.map(|why| {
                format!(
                    "{}: an eviction from the page cache did not take ({why}); what was \
                     read may not be what the drive holds",
                    info.path
                )
            }),
        ),
    }
}

impl Volume {
    /// Where this volume's reads came from so far, and why not from the drive when an
    /// eviction did not take. Ask after the reads: a range that stayed cached turns an
    /// `Evicted` device into `PageCache`.
    pub fn read_source(&self) -> (Source, Option<String>) {
        device_read_source(self.device.as_ref())
    }

    /// Where this volume's writes go: `Direct` (`O_DIRECT`), `Memory`, or `PageCache`
    /// (buffered; each commit flushes them to the drive).
    pub fn write_source(&self) -> Source {
        let info = self.device.info();
        if info.backing == stack_bio::Backing::Memory {
            Source::Memory
        } else if info.direct {
            Source::Direct
        } else {
            Source::PageCache
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FormatOptions, OpenOptions};

    fn open(path: &Path, direct: bool, cached: bool) -> Result<Volume, Error> {
        Volume::open(
            path,
            &OpenOptions {
                direct,
                cached,
                read_only: true,
                ..OpenOptions::default()
            },
        )
    }

    #[test]
    fn the_mode_follows_the_target_and_the_block_size() {
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let mut paths = Vec::new();
        for bs in [4096u32, 512] {
            let path = dir.path().join(format!("v{bs}.img"));
            let opts = FormatOptions {
                block_size_bytes: bs,
                create_size_bytes: Some(4 << 20),
                ..FormatOptions::default()
            };
            let vol = Volume::format(&path, &opts).unwrap();
            if vol.device().info().backing == stack_bio::Backing::Memory {
                return eprintln!("skipping: the crate's directory is on a memory filesystem");
            }
            paths.push((bs, path));
        }
        for (bs, path) in &paths {
            let direct_ok = FileDevice::open(
                path,
                &stack_bio::OpenOptions::new().direct(true).read_only(true),
            )
            .is_ok();
            let vol = open(path, false, false).unwrap();
            let want = if direct_ok && *bs == 4096 {
                Source::Direct
            } else {
                Source::Evicted
            };
            assert_eq!(vol.read_source(), (want, None), "{bs}");
            let cached = open(path, false, true).unwrap();
            assert_eq!(cached.read_source(), (Source::PageCache, None));
            assert_eq!(cached.write_source(), Source::PageCache);
            match open(path, true, false) {
                Ok(v) => assert_eq!(v.read_source().0, Source::Direct),
                Err(Error::DirectImpossible { path: p, reason }) => {
                    assert_eq!(&p, path);
                    assert!(!direct_ok || reason.contains("512-byte blocks"), "{reason}");
                }
                Err(e) => panic!("{e}"),
            }
            assert!(matches!(
                open(path, true, true),
                Err(Error::InvalidOption { .. })
            ));
        }
    }
}
