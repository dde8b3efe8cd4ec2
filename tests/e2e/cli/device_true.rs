//! Every verdict comes from the drive: `verify`, `read`, `write` and `burn-in` read and
//! write what the device holds (`O_DIRECT`, else the range flushed and evicted from the
//! page cache first, the eviction checked), and their reports name the source. Tests
//! that need loop devices and mounting skip, saying why, where the machine refuses them.

use std::fs::OpenOptions;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::process::Command;

use super::devices::Loop;
use super::harness::Scratch;

/// A loop-mounted ext4 filesystem in a scratch directory; unmounted and detached on
/// drop (the `Loop` guard), even when the test fails.
struct Ext4 {
    lo: Loop,
    mnt: std::path::PathBuf,
}

impl Ext4 {
    fn new(s: &Scratch, size_bytes: u64) -> Result<Ext4, String> {
        let image = s.path("ext4.img");
        let file = std::fs::File::create(&image).map_err(|e| e.to_string())?;
        file.set_len(size_bytes).map_err(|e| e.to_string())?;
        drop(file);
        let mut lo = Loop::attach(&image)?;
        let mnt = s.path("mnt");
        lo.mount(&mnt)?;
        Ok(Ext4 { lo, mnt })
    }

    fn file(&self, name: &str) -> String {
        self.mnt.join(name).display().to_string()
    }
}

/// The physical extents of `file` on its filesystem's device, as `(file offset, device
/// offset, length)` in bytes, from `filefrag -v`.
fn physical_extents(file: &str) -> Result<Vec<(u64, u64, u64)>, String> {
    let out = Command::new("filefrag")
        .args(["-v", file])
        .output()
        .map_err(|e| format!("cannot run filefrag: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "filefrag failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    // "File size of F is N (B blocks of 4096 bytes)"
    let block_bytes: u64 = text
        .lines()
        .find_map(|l| {
            let at = l.find(" blocks of ")?;
            l[at + " blocks of ".len()..]
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .ok_or_else(|| format!("no block size in filefrag's output: {text}"))?;
    let range = |field: &str| -> Option<(u64, u64)> {
        let (a, b) = field.split_once("..")?;
        Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
    };
    let mut extents = Vec::new();
    for line in text.lines() {
        // "   0:        0..   16383:      34816..     51199:  16384:             last,eof"
        let fields: Vec<&str> = line.split(':').collect();
        if fields.len() < 4 || fields[0].trim().parse::<u64>().is_err() {
            continue;
        }
        let (Some((l0, l1)), Some((p0, _))) = (range(fields[1]), range(fields[2])) else {
            continue;
        };
        extents.push((
            l0 * block_bytes,
            p0 * block_bytes,
            (l1 - l0 + 1) * block_bytes,
        ));
    }
    if extents.is_empty() {
        return Err(format!("no extents in filefrag's output: {text}"));
    }
    Ok(extents)
}

/// Zeroes `len` bytes of `file`'s allocated blocks, starting `skip` bytes into them, on
/// the block device beneath the filesystem (`O_DIRECT`, so the device's own cache holds
/// nothing stale either). The file's pages in the page cache are left as they were.
fn zero_beneath(device: &str, file: &str, skip: u64, len: u64) -> Result<u64, String> {
    let dev = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(device)
        .map_err(|e| format!("cannot open {device} for writing beneath the mount: {e}"))?;
    // O_DIRECT wants an aligned buffer: a page-aligned slice of a larger one.
    let chunk = 1usize << 20;
    let raw = vec![0u8; chunk + 4096];
    let at = raw.as_ptr().align_offset(4096);
    let zeros = &raw[at..at + chunk];
    let mut skipped = 0u64;
    let mut zeroed = 0u64;
    for (_, phys, ext_len) in physical_extents(file)? {
        let mut from = 0u64;
        if skipped < skip {
            from = (skip - skipped).min(ext_len);
            skipped += from;
        }
        while from < ext_len && zeroed < len {
            let n = (ext_len - from).min(len - zeroed).min(chunk as u64);
            dev.write_all_at(&zeros[..n as usize], phys + from)
                .map_err(|e| format!("writing zeros to {device}: {e}"))?;
            from += n;
            zeroed += n;
        }
    }
    dev.sync_all().map_err(|e| e.to_string())?;
    Ok(zeroed)
}

/// Reads `file` whole, so its pages are in the page cache.
fn read_whole(file: &str) -> u64 {
    std::fs::read(file).expect("reading the volume file").len() as u64
}

fn skip(why: &str) {
    eprintln!("skipped: {why}");
}

/// Writes 64 MiB of pattern data to a volume file on a loop-mounted ext4, then zeroes
/// 32 MiB of its blocks on the device while the file's pages stay cached. Returns the
/// filesystem (keep it alive) and the volume's path.
fn damaged_beneath_the_cache(s: &Scratch, block_size: &str) -> Option<(Ext4, String)> {
    let fs = match Ext4::new(s, 256 << 20) {
        Ok(fs) => fs,
        Err(why) => {
            skip(&why);
            return None;
        }
    };
    let vol = fs.file("vol.img");
    s.expect(
        0,
        &[
            "format",
            &vol,
            "--size",
            "80MiB",
            "--block-size",
            block_size,
        ],
    );
    s.expect(
        0,
        &[
            "write",
            &vol,
            "--pattern",
            "--size",
            "64MiB",
            "--seed",
            "7",
            "--name",
            "p",
        ],
    );
    // Durable and allocated (ext4 allocates at writeback), without a system-wide sync.
    std::fs::File::open(&vol).unwrap().sync_all().unwrap();
    // Clean before the damage, whatever the path.
    assert_eq!(s.json(0, &["verify", &vol])["clean"], true);
    // Cache the whole file (an evicting verify just dropped what it read).
    assert!(read_whole(&vol) >= 80 << 20);
    match zero_beneath(fs.lo.path(), &vol, 8 << 20, 32 << 20) {
        Ok(n) => assert_eq!(n, 32 << 20),
        Err(why) => {
            skip(&why);
            return None;
        }
    }
    // The page cache still holds the old bytes: a cached read sees no damage, and says
    // it read the cache. (Clean unless the kernel reclaimed some of the file's pages
    // meanwhile, as it once did on a loaded machine; the source is what is asserted.)
    read_whole(&vol);
    let cached = s.run(&["--json", "verify", &vol, "--cached"]);
    let doc = cached.json();
    assert_eq!(doc["source"], "page-cache", "{doc}");
    if cached.code != 0 {
        eprintln!("note: some cached pages were reclaimed; --cached saw part of the damage");
    }
    Some((fs, vol))
}

/// What broke: a volume file on a mounted ext4, damaged on the device beneath the
/// filesystem while its pages were cached, was reported clean by plain `verify` (exit 0),
/// which read the page cache.
#[test]
fn verify_finds_damage_beneath_a_cached_file() {
    let s = Scratch::new();
    let Some((fs, vol)) = damaged_beneath_the_cache(&s, "4K") else {
        return;
    };
    let doc = s.json(1, &["verify", &vol]);
    assert_eq!(doc["clean"], false, "{doc}");
    assert!(!doc["damaged"].as_array().unwrap().is_empty(), "{doc}");
    assert_eq!(doc["source"], "direct", "{doc}");
    let text = s.expect(1, &["verify", &vol]);
    assert!(text.stdout.contains("direct"), "{}", text.stdout);
    // burn-in on a file of the same filesystem verifies from the drive too.
    let burn = s.json(0, &["burn-in", &fs.file("b.img"), "--size", "16MiB"]);
    assert_eq!(burn["verify"]["source"], "direct", "{burn}");
    assert_eq!(burn["write"]["source"], "direct", "{burn}");
}

/// Where `O_DIRECT` cannot serve the volume (512-byte blocks on a filesystem that wants
/// 4 KiB alignment), verify flushes and evicts each range before reading it, checks the
/// eviction took, and still finds the damage beneath the cache.
#[test]
fn evicting_verify_finds_damage_beneath_a_cached_file() {
    let s = Scratch::new();
    let Some((fs, vol)) = damaged_beneath_the_cache(&s, "512") else {
        return;
    };
    let doc = s.json(1, &["verify", &vol]);
    assert_eq!(doc["clean"], false, "{doc}");
    assert_eq!(doc["source"], "evicted", "{doc}");
    // `read` takes the same path and refuses the damaged object.
    let out = s.path("p.out");
    let run = s.expect(1, &["read", &vol, "p", "-o", out.to_str().unwrap()]);
    assert!(run.stderr.contains("damage"), "{}", run.stderr);
    // Insisting on O_DIRECT where it cannot serve is an error naming the file and why.
    let run = s.expect(3, &["verify", &vol, "--direct"]);
    assert!(run.stderr.contains(&vol), "{}", run.stderr);
    assert!(run.stderr.contains("O_DIRECT"), "{}", run.stderr);
    // burn-in with 512-byte blocks on the same filesystem verifies evicted.
    let b = fs.file("b.img");
    let burn = s.json(
        0,
        &["burn-in", &b, "--size", "16MiB", "--block-size", "512"],
    );
    assert_eq!(burn["verify"]["source"], "evicted", "{burn}");
}

/// A raw block device is read and written with `O_DIRECT` by default, and the reports
/// say so.
#[test]
fn a_block_device_is_written_and_verified_direct() {
    let s = Scratch::new();
    let image = s.path("disk.img");
    std::fs::File::create(&image)
        .unwrap()
        .set_len(32 << 20)
        .unwrap();
    let lo = match Loop::attach(&image) {
        Ok(lo) => lo,
        Err(why) => return skip(&why),
    };
    s.expect(0, &["format", lo.path()]);
    let write = s.json(
        0,
        &[
            "write",
            lo.path(),
            "--pattern",
            "--size",
            "4MiB",
            "--seed",
            "1",
        ],
    );
    assert_eq!(write["source"], "direct", "{write}");
    let verify = s.json(0, &["verify", lo.path()]);
    assert_eq!(verify["source"], "direct", "{verify}");
    let cached = s.json(0, &["verify", lo.path(), "--cached"]);
    assert_eq!(cached["source"], "page-cache", "{cached}");
    let burn = s.json(0, &["burn-in", lo.path(), "--force", "--seed", "3"]);
    assert_eq!(burn["verify"]["source"], "direct", "{burn}");
    assert_eq!(burn["write"]["source"], "direct", "{burn}");
}

/// A file on tmpfs has no drive behind it: the reports say `memory`.
#[test]
fn a_file_on_tmpfs_reports_memory() {
    let shm = Path::new("/dev/shm");
    let is_tmpfs = std::fs::read_to_string("/proc/self/mounts")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some("/dev/shm") && l.contains(" tmpfs "));
    if !is_tmpfs {
        return skip("/dev/shm is not a tmpfs here");
    }
    let dir = tempfile::tempdir_in(shm).unwrap();
    let s = Scratch::new();
    let vol = dir.path().join("vol.img").display().to_string();
    s.expect(0, &["format", &vol, "--size", "8MiB"]);
    let write = s.json(
        0,
        &["write", &vol, "--pattern", "--size", "1MiB", "--name", "p"],
    );
    assert_eq!(write["source"], "memory", "{write}");
    let verify = s.json(0, &["verify", &vol]);
    assert_eq!(verify["source"], "memory", "{verify}");
    let text = s.expect(0, &["verify", &vol]);
    assert!(text.stdout.contains("memory"), "{}", text.stdout);
    let out = s.path("p.out");
    let read = s.json(0, &["read", &vol, "p", "-o", out.to_str().unwrap()]);
    assert_eq!(read["source"], "memory", "{read}");
    let burn = s.json(
        0,
        &[
            "burn-in",
            &dir.path().join("b.img").display().to_string(),
            "--size",
            "8MiB",
        ],
    );
    assert_eq!(burn["verify"]["source"], "memory", "{burn}");
}

/// The filesystem of `path` is tmpfs or ramfs (where the reports say `memory`).
fn on_memory_fs(path: &Path) -> bool {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: an all-zero statfs is a valid value of this plain C struct.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path and `st` a live statfs on our stack.
    let rc = unsafe { libc::statfs(c.as_ptr(), &mut st) };
    assert_eq!(rc, 0, "statfs {}", path.display());
    matches!(st.f_type as u64 & 0xffff_ffff, 0x0102_1994 | 0x8584_58f6)
}

/// A shared mapping of a file's first `len` bytes, every page touched (so the kernel
/// cannot drop them from the page cache); unmapped on drop.
struct Pinned {
    addr: *mut libc::c_void,
    len: usize,
}

impl Pinned {
    fn new(file: &std::fs::File, len: usize) -> Pinned {
        use std::os::fd::AsRawFd;
        // SAFETY: a new read-only shared mapping placed by the kernel; it aliases no Rust
        // object and Drop unmaps it.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        assert_ne!(addr, libc::MAP_FAILED);
        for at in (0..len).step_by(4096) {
            // SAFETY: inside the mapping, and the file is at least `len` bytes long.
            unsafe { std::ptr::read_volatile(addr.cast::<u8>().add(at)) };
        }
        Pinned { addr, len }
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        // SAFETY: exactly the mapping made in `new`; nothing refers into it.
        unsafe { libc::munmap(self.addr, self.len) };
    }
}

/// Without root: a volume file in the scratch directory (a disk filesystem here) is
/// verified with `O_DIRECT` when its blocks fit, evicted when they do not (512-byte
/// blocks), and when a process keeps its pages mapped so the eviction cannot take, the
/// report says `page-cache` and warns why instead of claiming the drive.
#[test]
fn a_file_is_read_direct_or_evicted_and_a_stuck_eviction_is_not_called_the_drive() {
    let s = Scratch::new();
    if on_memory_fs(s.dir.path()) {
        return skip("the scratch directory is on a memory filesystem");
    }
    for (name, bs, want) in [("d.img", "4K", "direct"), ("e.img", "512", "evicted")] {
        s.expect(0, &["format", name, "--size", "16MiB", "--block-size", bs]);
        let write = s.json(
            0,
            &["write", name, "--pattern", "--size", "4MiB", "--name", "p"],
        );
        let doc = s.json(0, &["verify", name]);
        if want == "direct" && doc["source"] == "evicted" {
            // A filesystem that refuses O_DIRECT takes the eviction path: still the drive.
            assert_eq!(write["source"], "page-cache", "{write}");
            continue;
        }
        assert_eq!(doc["source"], want, "{name}: {doc}");
        assert_eq!(doc["source_warning"], serde_json::Value::Null, "{doc}");
        let out = s.path(&format!("{name}.out"));
        let read = s.json(0, &["read", name, "p", "-o", out.to_str().unwrap()]);
        assert_eq!(read["source"], want, "{name}: {read}");
        let write_want = if want == "direct" {
            "direct"
        } else {
            "page-cache"
        };
        assert_eq!(write["source"], write_want, "{name}: {write}");
        assert_eq!(write["objects"][0]["source"], write_want, "{write}");
        let cached = s.json(0, &["verify", name, "--cached"]);
        assert_eq!(cached["source"], "page-cache", "{cached}");
        assert_eq!(
            cached["source_warning"],
            serde_json::Value::Null,
            "{cached}"
        );
    }
    let file = std::fs::File::open(s.path("e.img")).unwrap();
    let pinned = Pinned::new(&file, 16 << 20);
    let doc = s.json(0, &["verify", "e.img"]);
    assert_eq!(doc["source"], "page-cache", "{doc}");
    let warning = doc["source_warning"].as_str().unwrap_or_default();
    assert!(warning.contains("did not take"), "{doc}");
    let text = s.expect(0, &["verify", "e.img"]);
    assert!(text.stdout.contains("WARNING"), "{}", text.stdout);
    assert!(text.stdout.contains("page-cache"), "{}", text.stdout);
    drop(pinned);
    assert_eq!(s.json(0, &["verify", "e.img"])["source"], "evicted");
    // Both ways at once is a usage error.
    s.expect(2, &["verify", "e.img", "--direct", "--cached"]);
}
