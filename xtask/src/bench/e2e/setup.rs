//! The scratch directories, the binaries (ours built, peers found or installed), the
//! sizes scaled to the free space, and the small file helpers the cases share.

use super::proc::{self, sys, Measured};
use crate::bench::frame::workspace_root;
use crate::bench::Ctx;
use anyhow::{Context, Result};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub const MIB: u64 = 1 << 20;
pub const GIB: u64 = 1 << 30;

/// Everything the cases need; removes its scratch directories when dropped.
#[derive(Debug)]
pub struct Env {
    /// `stackctl`, or why it is not there.
    stackctl: std::result::Result<PathBuf, String>,
    /// Which `stackctl` commands answer `--help` (cached).
    commands: HashMap<String, std::result::Result<(), String>>,
    /// Peers found (or why not), by name.
    peers: HashMap<String, std::result::Result<PathBuf, String>>,
    /// Whether `apt-get install` was tried already.
    install_tried: Option<String>,
    /// Scratch directory on `/dev/shm`.
    pub shm: PathBuf,
    /// Scratch directory on the disk, under the target directory.
    pub disk: PathBuf,
    /// Bytes per speed case (1 GiB, `--quick` 256 MiB, less when space is short).
    pub bytes: u64,
    /// Runs per side.
    pub runs: usize,
    /// Remarks printed once (scaling, install attempts).
    pub notes: Vec<String>,
}

impl Env {
    pub fn new(ctx: &Ctx) -> Result<Env> {
        let tag = format!("stack-e2e-{}", std::process::id());
        let shm = PathBuf::from("/dev/shm").join(&tag);
        let disk = super::super::frame::results_dir().join(&tag);
        for dir in [&shm, &disk] {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let mut env = Env {
            stackctl: Err(String::new()),
            commands: HashMap::new(),
            peers: HashMap::new(),
            install_tried: None,
            shm,
            disk,
            bytes: if ctx.quick { 256 * MIB } else { GIB },
            runs: ctx.runs(),
            notes: Vec::new(),
        };
        env.stackctl = build_stackctl();
        if let Err(why) = &env.stackctl {
            env.notes.push(format!("stackctl unavailable: {why}"));
        }
        Ok(env)
    }

    /// A time limit generous enough for `bytes` at 50 MiB/s, plus a minute.
    pub fn limit(bytes: u64) -> Duration {
        Duration::from_secs(60 + bytes / (50 * MIB))
    }

    /// The `stackctl` binary, or why there is none.
    pub fn stackctl_path(&self) -> std::result::Result<PathBuf, String> {
        self.stackctl.clone()
    }

    /// `stackctl SUB` as a command, or why it cannot run (binary missing, or the
    /// command does not answer `--help` with status 0 yet).
    pub fn stackctl(&mut self, sub: &str) -> std::result::Result<Command, String> {
        let bin = self.stackctl.clone()?;
        if !self.commands.contains_key(sub) {
            let probe = proc::run(
                Command::new(&bin).args([sub, "--help"]),
                &self.shm,
                Duration::from_secs(30),
            );
            let verdict = match probe {
                Ok(o) if o.status.success() => Ok(()),
                Ok(o) => Err(format!(
                    "`stackctl {sub} --help` gave {}: {}",
                    proc::describe(o.status),
                    proc::tail(&o.stderr, 1)
                )),
                Err(e) => Err(format!("`stackctl {sub} --help`: {e:#}")),
            };
            self.commands.insert(sub.to_owned(), verdict);
        }
        self.commands[sub].clone()?;
        let mut cmd = Command::new(bin);
        cmd.args(["--progress", "none", sub]);
        Ok(cmd)
    }

    /// A peer program by name, installing `fio` and `f3` with apt-get once if missing.
    pub fn peer(&mut self, name: &str) -> std::result::Result<Command, String> {
        if !self.peers.contains_key(name) {
            let mut found = which(name);
            if found.is_none() && (name == "fio" || name.starts_with("f3")) {
                let tried = self.install_tried.get_or_insert_with(apt_install).clone();
                found = which(name);
                if found.is_none() {
                    self.notes.push(format!("{name}: {tried}"));
                    self.peers.insert(
                        name.to_owned(),
                        Err(format!("{name} not installed ({tried})")),
                    );
                }
            }
            let verdict = found.ok_or_else(|| format!("{name} not found in PATH"));
            self.peers.entry(name.to_owned()).or_insert(verdict);
        }
        let path = self.peers[name].clone()?;
        Ok(Command::new(path))
    }

    /// Runs `cmd` to completion, on a warmed memory (see [`warm_memory`]); its
    /// measurement when it exited 0.
    pub fn measure(&self, cmd: &mut Command, what: &str, bytes: u64) -> Result<Measured> {
        warm_memory(bytes + bytes / 8 + 64 * MIB);
        proc::run(cmd, &self.shm, Self::limit(bytes))?.ok(what)
    }

    /// Scales `self.bytes` down (halving, not below 32 MiB) until `need(bytes)` fits in
    /// the free space of `dir`; notes it when it had to.
    pub fn fit(&mut self, dir: &Path, need: impl Fn(u64) -> u64) -> Result<()> {
        let free = sys::free_bytes(dir)?;
        let wanted = self.bytes;
        while need(self.bytes) > free && self.bytes > 32 * MIB {
            self.bytes /= 2;
        }
        if self.bytes != wanted {
            self.notes.push(format!(
                "{} has {} MiB free: cases scaled from {} MiB to {} MiB",
                dir.display(),
                free / MIB,
                wanted / MIB,
                self.bytes / MIB
            ));
        }
        anyhow::ensure!(
            need(self.bytes) <= free,
            "{} has only {} MiB free",
            dir.display(),
            free / MIB
        );
        Ok(())
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for dir in [&self.shm, &self.disk] {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Touches and frees `bytes` of memory, so the process measured next finds that much
/// recently freed memory that the host backs.
///
/// This VM hands free memory back to its host (virtio-balloon free-page reporting, on
/// here): pages left free for a few seconds are reported and discarded, and the next
/// process to get them pays a host fault per page. A 1 GiB `dd` into `/dev/shm` took
/// 1.31 and 1.50 s after 6 s idle against 0.50-0.54 s right after such a warm-up: the
/// side that happened to run after a pause (setup, a slow sibling) lost up to 3x, for
/// reasons outside both programs. Warming before every measured run puts every side on
/// the same footing.
pub fn warm_memory(bytes: u64) {
    let Ok(len) = usize::try_from(bytes) else {
        return;
    };
    let mut block: Vec<u8> = Vec::new();
    // A machine short of memory skips the warm-up rather than abort the benchmark.
    if block.try_reserve_exact(len).is_err() {
        return;
    }
    block.resize(len, 1);
    std::hint::black_box(&block);
}

/// `/proc/loadavg`'s three averages, or `unknown`.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Size of a volume that holds `bytes` of data with room for its metadata.
pub fn volume_size(bytes: u64) -> u64 {
    (bytes + bytes / 16 + 32 * MIB).div_ceil(MIB) * MIB
}

/// Size of a volume whose fill holds at least `bytes` of pattern data: the checksums
/// take 4 bytes per 4 KiB block plus a header block per run (under 1/256 of the data in
/// all), the superblocks and tables well under 1 MiB.
pub fn burn_in_volume_size(bytes: u64) -> u64 {
    (bytes + bytes / 256 + 2 * MIB).div_ceil(MIB) * MIB
}

/// Builds `stackctl` in release mode into the same target directory (or takes
/// `$STACKCTL`), and returns its path or why there is none.
fn build_stackctl() -> std::result::Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("STACKCTL") {
        return Ok(PathBuf::from(path));
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("  e2e: building stackctl (cargo build --release -p stackctl --bin stackctl)");
    let out = Command::new(cargo)
        .args(["build", "--release", "-p", "stackctl", "--bin", "stackctl"])
        .current_dir(workspace_root())
        .output()
        .map_err(|e| format!("running cargo: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let first_error = err
            .lines()
            .find(|l| l.starts_with("error"))
            .unwrap_or("cargo build failed");
        return Err(format!("stackctl does not build yet ({first_error})"));
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    let bin = target.join("release").join("stackctl");
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!("{} missing after the build", bin.display()))
    }
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// `apt-get install -y fio f3`, once; says what happened.
fn apt_install() -> String {
    if which("apt-get").is_none() {
        return "apt-get not available".to_owned();
    }
    eprintln!("  e2e: installing peers: apt-get install -y fio f3");
    match Command::new("apt-get")
        .args(["install", "-y", "fio", "f3"])
        .output()
    {
        Ok(o) if o.status.success() => "installed with apt-get".to_owned(),
        Ok(o) => format!(
            "apt-get install -y fio f3 failed: {}",
            proc::tail(&String::from_utf8_lossy(&o.stderr), 1)
        ),
        Err(e) => format!("apt-get install -y fio f3 could not run: {e}"),
    }
}

/// Writes `bytes` of incompressible, deterministic data to `path`.
pub fn make_input(path: &Path, bytes: u64) -> Result<()> {
    let mut f = std::io::BufWriter::with_capacity(
        MIB as usize,
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
    );
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let mut chunk = vec![0u8; MIB as usize];
    let mut left = bytes;
    while left > 0 {
        for word in chunk.chunks_exact_mut(8) {
            // xorshift64*: cheap, incompressible, reproducible.
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            word.copy_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
        }
        let n = left.min(MIB) as usize;
        f.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    f.into_inner()?.sync_all()?;
    Ok(())
}

/// Reads `path` through once so its pages are in the page cache.
pub fn preread(path: &Path) -> Result<()> {
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut buf = vec![0u8; MIB as usize];
    while f.read(&mut buf)? > 0 {}
    Ok(())
}

/// Removes a file or directory if it exists.
pub fn fresh(path: &Path) -> Result<()> {
    let res = if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    match res {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_size_leaves_room_and_is_mib_aligned() {
        for bytes in [MIB, 256 * MIB, GIB, 4 * GIB] {
            let v = volume_size(bytes);
            assert!(v >= bytes + bytes / 16);
            assert_eq!(v % MIB, 0);
        }
    }

    #[test]
    fn input_is_the_asked_length_and_not_constant() {
        let path = std::env::temp_dir().join(format!("e2e-input-{}", std::process::id()));
        make_input(&path, MIB + 5).unwrap();
        let data = std::fs::read(&path).unwrap();
        assert_eq!(data.len() as u64, MIB + 5);
        assert_ne!(data[..8], data[8..16]);
        preread(&path).unwrap();
        fresh(&path).unwrap();
        fresh(&path).unwrap();
        assert!(!path.exists());
    }
}
