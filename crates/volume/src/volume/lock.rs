//! Who may use a volume at once: `flock(2)` on the file or device node for the whole
//! life of a [`Volume`](super::Volume), plus an `O_EXCL` claim on block devices for
//! writers.
//!
//! A process that changes a volume holds the lock *exclusive*; readers hold it *shared*.
//! Readers need it too: a reader without a lock could load generation N's table and read
//! its blocks after two further commits made them free and a writer reused them. `flock`
//! locks an inode, so every path to a file (hard links, symlinks) meets the same lock; a
//! block device may have several device nodes, which is why a writer also opens it with
//! `O_EXCL`, the kernel's own per-device claim (which mounts respect too).
//!
//! Two open file descriptions of one file conflict even inside one process, so a
//! process passes its lock on ([`Volume::into_lock`](super::Volume::into_lock)) rather
//! than locking the same volume twice.

use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rustix::fs::FlockOperation;

use crate::options::LockWait;
use crate::Error;

/// How a volume is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// Readers: any number at once, never with a writer.
    Shared,
    /// A writer: alone.
    Exclusive,
}

/// Which file a path names: device and inode, and for a block device the device number
/// (two device nodes of one disk have different inodes but one device number).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId {
    /// `st_dev` of the file.
    pub dev: u64,
    /// `st_ino` of the file.
    pub ino: u64,
    /// `st_rdev` when the file is a block device.
    pub block_rdev: Option<u64>,
}

impl FileId {
    /// The identity of a file from its metadata.
    pub fn of(meta: &Metadata) -> FileId {
        FileId {
            dev: meta.dev(),
            ino: meta.ino(),
            block_rdev: meta.file_type().is_block_device().then(|| meta.rdev()),
        }
    }

    /// The identity of the file `path` resolves to (following symlinks).
    pub fn of_path(path: &Path) -> io::Result<FileId> {
        std::fs::metadata(path).map(|m| FileId::of(&m))
    }

    /// Whether the two name the same file or the same block device.
    pub fn same_as(&self, other: &FileId) -> bool {
        (self.dev == other.dev && self.ino == other.ino)
            || (self.block_rdev.is_some() && self.block_rdev == other.block_rdev)
    }
}

/// The process holding a volume, as far as the system tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// Its process id.
    pub pid: u32,
    /// Its command line (or command name), when readable.
    pub command: Option<String>,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.command {
            Some(c) => write!(f, "process {} ({c})", self.pid),
            None => write!(f, "process {}", self.pid),
        }
    }
}

/// A held lock on a volume's file or block device; released on drop.
#[derive(Debug)]
pub struct VolumeLock {
    /// The descriptor the `flock` is on (held, never read).
    _flocked: File,
    /// Block devices held exclusively: the `O_EXCL` descriptor that holds the claim.
    _claim: Option<File>,
    mode: LockMode,
    path: PathBuf,
    id: FileId,
    created: bool,
}

/// Why one attempt failed.
enum Busy {
    /// Another process holds the `flock`.
    Flock,
    /// The kernel refused `O_EXCL` on the block device (mounted or held elsewhere).
    Claimed,
}

/// How long to sleep between attempts: short first, then at most 50 ms.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(u64::from(attempt.min(10)) * 5).max(Duration::from_millis(1))
}

impl VolumeLock {
    /// Locks the file or block device at `path` in `mode`, waiting as `wait` says.
    /// `cancel`, when set while waiting, stops with [`Error::Interrupted`].
    pub fn acquire(
        path: &Path,
        mode: LockMode,
        wait: LockWait,
        cancel: Option<&AtomicBool>,
    ) -> Result<VolumeLock, Error> {
        Self::acquire_inner(path, mode, wait, cancel, false)
    }

    /// As [`acquire`](Self::acquire), but a missing `path` is created as an empty
    /// regular file (never replacing one), and [`created`](Self::created) says so.
    pub fn acquire_creating(
        path: &Path,
        mode: LockMode,
        wait: LockWait,
        cancel: Option<&AtomicBool>,
    ) -> Result<VolumeLock, Error> {
        Self::acquire_inner(path, mode, wait, cancel, true)
    }

    fn acquire_inner(
        path: &Path,
        mode: LockMode,
        wait: LockWait,
        cancel: Option<&AtomicBool>,
        create: bool,
    ) -> Result<VolumeLock, Error> {
        let open_err = |source: io::Error| {
            Error::Device(stack_bio::Error::Open {
                path: path.to_path_buf(),
                source,
            })
        };
        let mut created = false;
        let file = if create {
            // O_EXCL: a file that appears meanwhile is opened, never truncated.
            match File::options().write(true).create_new(true).open(path) {
                Ok(file) => {
                    created = true;
                    file
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => open_plain(path)?,
                Err(e) => return Err(open_err(e)),
            }
        } else {
            open_plain(path)?
        };
        let meta = file.metadata().map_err(open_err)?;
        let kind = meta.file_type();
        if !kind.is_file() && !kind.is_block_device() {
            return Err(Error::Device(stack_bio::Error::BadOptions {
                path: path.to_path_buf(),
                reason: "not a regular file or block device",
            }));
        }
        let id = FileId::of(&meta);
        let deadline = match wait {
            LockWait::NoWait => Some(Instant::now()),
            LockWait::For(limit) => Some(Instant::now() + limit),
            LockWait::Forever => None,
        };
        let start = Instant::now();
        let mut attempt = 0u32;
        loop {
            match try_lock(&file, path, mode, &id) {
                Ok(claim) => {
                    return Ok(VolumeLock {
                        _flocked: file,
                        _claim: claim,
                        mode,
                        path: path.to_path_buf(),
                        id,
                        created,
                    })
                }
                Err(Ok(busy)) => {
                    let now = Instant::now();
                    if deadline.is_some_and(|d| now >= d) {
                        let holder = match busy {
                            Busy::Flock => holder_of(&id),
                            Busy::Claimed => None,
                        };
                        return Err(Error::Locked {
                            path: path.to_path_buf(),
                            holder,
                            claimed: matches!(busy, Busy::Claimed),
                            waited: (wait != LockWait::NoWait).then(|| start.elapsed()),
                        });
                    }
                    if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
                        return Err(Error::Interrupted);
                    }
                    let mut pause = backoff(attempt);
                    if let Some(d) = deadline {
                        pause = pause.min(d - now);
                    }
                    std::thread::sleep(pause);
                    attempt += 1;
                }
                Err(Err(e)) => return Err(e),
            }
        }
    }

    /// The file or device this lock is on.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How it is held.
    pub fn mode(&self) -> LockMode {
        self.mode
    }

    /// Which file it is on.
    pub fn file_id(&self) -> FileId {
        self.id
    }

    /// Whether taking the lock created the (empty) file.
    pub fn created(&self) -> bool {
        self.created
    }

    /// Whether this lock holds an `O_EXCL` claim on a block device.
    pub fn holds_claim(&self) -> bool {
        self._claim.is_some()
    }

    /// Checks that `file` (opened by path after the lock was taken) is the locked file:
    /// a path renamed or replaced in between must not be written unlocked.
    pub(crate) fn check_same(&self, file: &File) -> Result<(), Error> {
        let meta = file.metadata().map_err(|source| {
            Error::Device(stack_bio::Error::Open {
                path: self.path.clone(),
                source,
            })
        })?;
        if FileId::of(&meta).same_as(&self.id) {
            Ok(())
        } else {
            Err(Error::Corrupt {
                what: "volume path",
                offset: 0,
                detail: format!(
                    "{} was replaced by another file while it was being opened",
                    self.path.display()
                ),
            })
        }
    }

    #[cfg(test)]
    fn descriptor(&self) -> &File {
        &self._flocked
    }
}

impl Drop for VolumeLock {
    fn drop(&mut self) {
        // Unlock explicitly rather than by closing: a child forked by another thread of
        // this process holds a copy of the descriptor until it execs, and the lock
        // would live on in that copy (LOCK_UN releases it for every copy).
        let _ = rustix::fs::flock(&self._flocked, FlockOperation::Unlock);
    }
}

fn open_plain(path: &Path) -> Result<File, Error> {
    // O_NONBLOCK: opening a FIFO named by mistake must not hang; the type is checked next.
    File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|source| {
            Error::Device(stack_bio::Error::Open {
                path: path.to_path_buf(),
                source,
            })
        })
}

/// One attempt: `Ok(claim)` when held, `Err(Ok(busy))` when another process has it.
#[allow(clippy::type_complexity)]
fn try_lock(
    file: &File,
    path: &Path,
    mode: LockMode,
    id: &FileId,
) -> Result<Option<File>, Result<Busy, Error>> {
    let op = match mode {
        LockMode::Shared => FlockOperation::NonBlockingLockShared,
        LockMode::Exclusive => FlockOperation::NonBlockingLockExclusive,
    };
    match rustix::fs::flock(file, op) {
        Ok(()) => {}
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => return Err(Ok(Busy::Flock)),
        Err(e) if e == rustix::io::Errno::INTR => return Err(Ok(Busy::Flock)),
        Err(e) => {
            return Err(Err(Error::Device(stack_bio::Error::Open {
                path: path.to_path_buf(),
                source: io::Error::from_raw_os_error(e.raw_os_error()),
            })))
        }
    }
    if mode == LockMode::Shared || id.block_rdev.is_none() {
        return Ok(None);
    }
    match File::options()
        .read(true)
        .custom_flags(libc::O_EXCL)
        .open(path)
    {
        Ok(claim) => Ok(Some(claim)),
        Err(e) => {
            // Release the flock before waiting, so the holder of the claim is not kept
            // from the lock it may want next.
            let _ = rustix::fs::flock(file, FlockOperation::Unlock);
            if e.raw_os_error() == Some(libc::EBUSY) {
                Err(Ok(Busy::Claimed))
            } else {
                Err(Err(Error::Device(stack_bio::Error::Open {
                    path: path.to_path_buf(),
                    source: e,
                })))
            }
        }
    }
}

/// `major:minor` as `/proc/locks` prints them (`%02x:%02x`), from a Linux `dev_t`.
fn proc_dev(dev: u64) -> (u64, u64) {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & 0xffff_f000);
    let minor = (dev & 0xff) | ((dev >> 12) & 0xffff_ff00);
    (major, minor)
}

/// The process holding a `flock` on the file, from `/proc/locks`.
pub(crate) fn holder_of(id: &FileId) -> Option<Holder> {
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    let pid = holder_in(&locks, id, std::process::id())?;
    Some(Holder {
        pid,
        command: command_of(pid),
    })
}

/// The pid of a granted `FLOCK` on `id` in `/proc/locks` text, other than `me`.
fn holder_in(locks: &str, id: &FileId, me: u32) -> Option<u32> {
    let (major, minor) = proc_dev(id.dev);
    let want = format!("{major:02x}:{minor:02x}:{}", id.ino);
    locks.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // "1: FLOCK ADVISORY WRITE 1234 08:01:5678 0 EOF"; waiters have "->" after the
        // index and hold nothing.
        match fields.as_slice() {
            [_, "FLOCK", _, _, pid, file, ..] if *file == want => {
                pid.parse::<u32>().ok().filter(|&p| p != 0 && p != me)
            }
            _ => None,
        }
    })
}

/// A process's command line, shortened, or its command name.
fn command_of(pid: u32) -> Option<String> {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let words: Vec<String> = cmdline
        .split(|&b| b == 0)
        .filter(|w| !w.is_empty())
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .collect();
    let text = match words.split_first() {
        Some((first, rest)) => {
            let program = Path::new(first)
                .file_name()
                .map_or(first.clone(), |n| n.to_string_lossy().into_owned());
            std::iter::once(program)
                .chain(rest.iter().cloned())
                .collect::<Vec<_>>()
                .join(" ")
        }
        None => std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .ok()?
            .trim()
            .to_string(),
    };
    let text: String = text.chars().filter(|c| !c.is_control()).collect();
    const MAX_CHARS: usize = 120;
    Some(if text.chars().count() > MAX_CHARS {
        format!("{}...", text.chars().take(MAX_CHARS).collect::<String>())
    } else {
        text
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vol");
        std::fs::write(&path, b"x").unwrap();
        (dir, path)
    }

    #[test]
    fn exclusive_excludes_everyone_and_shared_shares() {
        let (_dir, path) = scratch();
        let w = VolumeLock::acquire(&path, LockMode::Exclusive, LockWait::NoWait, None).unwrap();
        for mode in [LockMode::Shared, LockMode::Exclusive] {
            let err = VolumeLock::acquire(&path, mode, LockWait::NoWait, None).unwrap_err();
            assert!(matches!(err, Error::Locked { .. }), "{err}");
        }
        drop(w);
        let r1 = VolumeLock::acquire(&path, LockMode::Shared, LockWait::NoWait, None).unwrap();
        let r2 = VolumeLock::acquire(&path, LockMode::Shared, LockWait::NoWait, None).unwrap();
        assert!(VolumeLock::acquire(&path, LockMode::Exclusive, LockWait::NoWait, None).is_err());
        drop((r1, r2));
        VolumeLock::acquire(&path, LockMode::Exclusive, LockWait::NoWait, None).unwrap();
    }

    #[test]
    fn a_hard_link_meets_the_same_lock() {
        let (dir, path) = scratch();
        let link = dir.path().join("link");
        std::fs::hard_link(&path, &link).unwrap();
        let _w = VolumeLock::acquire(&path, LockMode::Exclusive, LockWait::NoWait, None).unwrap();
        assert!(VolumeLock::acquire(&link, LockMode::Shared, LockWait::NoWait, None).is_err());
    }

    #[test]
    fn a_bounded_wait_gives_up_and_says_it_waited() {
        let (_dir, path) = scratch();
        let _w = VolumeLock::acquire(&path, LockMode::Exclusive, LockWait::NoWait, None).unwrap();
        let err = VolumeLock::acquire(
            &path,
            LockMode::Exclusive,
            LockWait::For(Duration::from_millis(30)),
            None,
        )
        .unwrap_err();
        match err {
            Error::Locked { waited, .. } => assert!(waited.is_some()),
            other => panic!("{other}"),
        }
        let cancel = AtomicBool::new(true);
        let err = VolumeLock::acquire(&path, LockMode::Shared, LockWait::Forever, Some(&cancel))
            .unwrap_err();
        assert!(matches!(err, Error::Interrupted), "{err}");
    }

    #[test]
    fn a_waiter_gets_the_lock_when_it_is_released() {
        let (_dir, path) = scratch();
        let w = VolumeLock::acquire(&path, LockMode::Exclusive, LockWait::NoWait, None).unwrap();
        let p = path.clone();
        let waiter = std::thread::spawn(move || {
            VolumeLock::acquire(&p, LockMode::Exclusive, LockWait::Forever, None).map(|_| ())
        });
        std::thread::sleep(Duration::from_millis(20));
        drop(w);
        waiter.join().unwrap().unwrap();
    }

    #[test]
    fn creating_never_replaces_a_file() {
        let (dir, path) = scratch();
        let lock = VolumeLock::acquire_creating(&path, LockMode::Exclusive, LockWait::NoWait, None)
            .unwrap();
        assert!(!lock.created());
        assert_eq!(std::fs::read(&path).unwrap(), b"x");
        drop(lock);
        let fresh = dir.path().join("fresh");
        let lock =
            VolumeLock::acquire_creating(&fresh, LockMode::Exclusive, LockWait::NoWait, None)
                .unwrap();
        assert!(lock.created());
        assert_eq!(std::fs::metadata(&fresh).unwrap().len(), 0);
        assert!(lock.check_same(lock.descriptor()).is_ok());
        assert!(lock
            .check_same(&File::open(dir.path().join("vol")).unwrap())
            .is_err());
    }

    /// Two `Volume`s opened on one path in one process (two threads) wrote over each
    /// other's allocations without a lock; now each waits for the other.
    #[test]
    fn volumes_on_one_path_take_turns_across_threads() {
        use crate::{FormatOptions, OpenOptions, Volume, WriteOptions};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vol");
        let opts = FormatOptions {
            create_size_bytes: Some(16 << 20),
            ..FormatOptions::default()
        };
        drop(Volume::format(&path, &opts).unwrap());
        let read_only = OpenOptions {
            read_only: true,
            ..OpenOptions::default()
        };
        let writers: Vec<_> = (0..4u64)
            .map(|i| {
                let (path, read_only) = (path.clone(), read_only.clone());
                std::thread::spawn(move || {
                    let open = OpenOptions {
                        wait: LockWait::Forever,
                        ..OpenOptions::default()
                    };
                    let mut vol = Volume::open(&path, &open).unwrap();
                    // Busy for everyone else meanwhile, readers included.
                    let busy = Volume::open(&path, &read_only);
                    assert!(matches!(busy, Err(Error::Locked { .. })), "{busy:?}");
                    vol.write_pattern(&format!("o{i}"), 1 << 20, i, &WriteOptions::default())
                        .unwrap();
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        let vol = Volume::open(&path, &read_only).unwrap();
        assert_eq!(vol.objects().len(), 4);
        assert!(vol.verify(&Default::default()).unwrap().clean());
    }

    #[test]
    fn proc_locks_lines_name_the_holder() {
        let id = FileId {
            dev: (8 << 8) | 1,
            ino: 5678,
            block_rdev: None,
        };
        let text = "1: POSIX  ADVISORY  WRITE 99 08:01:5678 0 EOF\n\
                    2: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF\n\
                    2: -> FLOCK  ADVISORY  WRITE 4321 08:01:5678 0 EOF\n";
        assert_eq!(holder_in(text, &id, 1), Some(1234));
        assert_eq!(holder_in(text, &id, 1234), None);
        let other = FileId { ino: 5679, ..id };
        assert_eq!(holder_in(text, &other, 1), None);
        // Large device numbers: major 259, minor 65536 + 3.
        let dev = (259u64 << 8) | 3 | ((65536u64 >> 8) << 20);
        assert_eq!(proc_dev(dev), (259, 65539));
    }

    #[test]
    fn the_holder_of_a_lock_in_this_process_is_found_by_another_pid() {
        // /proc/locks shows our own pid for our own lock; the lookup skips it, so a
        // child process is needed to see a name. Here: our pid is filtered out.
        let (_dir, path) = scratch();
        let w = VolumeLock::acquire(&path, LockMode::Exclusive, LockWait::NoWait, None).unwrap();
        assert_eq!(holder_of(&w.file_id()), None);
        assert!(command_of(std::process::id()).unwrap().contains(
            &*std::env::args().next().map_or(String::new(), |a| {
                Path::new(&a)
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            })
        ));
    }
}
