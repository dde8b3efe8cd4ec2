//! Whole-process measurement: spawn, wait with `wait4` for the child's rusage, time out.
//!
//! The figures are the child's own: wall time from just before `spawn` to the reap, user +
//! system CPU time and peak resident set (`ru_maxrss`, KiB) as the kernel accounts them
//! for the child and every descendant it reaped itself (fio's forked job processes
//! included).

use anyhow::{bail, Context, Result};
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// What one run of a process cost.
#[derive(Debug, Clone, Copy, Default)]
pub struct Measured {
    /// Wall time, seconds.
    pub wall_s: f64,
    /// User + system CPU time, seconds.
    pub cpu_s: f64,
    /// Peak resident set, KiB.
    pub maxrss_kib: u64,
    /// This process's own resident set when the child was spawned, KiB: the kernel
    /// counts the spawning process's resident set into the child's `ru_maxrss` at `exec`
    /// (`exec_mmap` → `setmax_mm_hiwater_rss`), so `maxrss_kib` is never below it.
    pub rss_floor_kib: u64,
}

impl Measured {
    /// Two processes run one after the other (f3write then f3read): times add up, the
    /// peak is the larger one.
    pub fn then(self, next: Measured) -> Measured {
        Measured {
            wall_s: self.wall_s + next.wall_s,
            cpu_s: self.cpu_s + next.cpu_s,
            maxrss_kib: self.maxrss_kib.max(next.maxrss_kib),
            rss_floor_kib: self.rss_floor_kib.max(next.rss_floor_kib),
        }
    }
}

/// The end of a process: its status, its cost and what it printed.
#[derive(Debug)]
pub struct Outcome {
    pub status: ExitStatus,
    pub measured: Measured,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
}

impl Outcome {
    /// The measurement of a run that exited 0, or an error that quotes the command's
    /// status and the end of its stderr.
    pub fn ok(self, what: &str) -> Result<Measured> {
        if self.timed_out {
            bail!("{what}: killed after the time limit");
        }
        if !self.status.success() {
            let said = if self.stderr.trim().is_empty() {
                &self.stdout
            } else {
                &self.stderr
            };
            bail!("{what}: {}: {}", describe(self.status), tail(said, 3));
        }
        Ok(self.measured)
    }
}

/// `exit status N` or `killed by signal N`.
pub fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        (None, None) => "unknown status".to_owned(),
    }
}

/// The last `lines` non-empty lines of `text`, joined with ` / `.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let from = all.len().saturating_sub(lines);
    all[from..].join(" / ")
}

/// Runs `cmd` to its end (stdin closed, stdout and stderr captured into files under
/// `scratch` so a chatty child never blocks on a pipe), killing it after `limit`.
pub fn run(cmd: &mut Command, scratch: &Path, limit: Duration) -> Result<Outcome> {
    let out_path = scratch.join("child.stdout");
    let err_path = scratch.join("child.stderr");
    let out = std::fs::File::create(&out_path)
        .with_context(|| format!("creating {}", out_path.display()))?;
    let err = std::fs::File::create(&err_path)
        .with_context(|| format!("creating {}", err_path.display()))?;
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    // The child inherits our high-water RSS at exec; reset it to our current RSS so the
    // floor under its ru_maxrss is what we hold now, not the most we ever held.
    let rss_floor_kib = sys::reset_peak_rss();
    let start = Instant::now();
    let child = cmd
        .spawn()
        .with_context(|| format!("spawning {:?}", cmd.get_program()))?;
    let pid = child.id() as libc::pid_t;
    // The child is reaped below with wait4, never through `Child`.
    drop(child);

    // A watchdog kills the child after `limit`; `exited` (under the mutex) tells it the
    // child is a zombie we have not reaped yet, so its pid cannot have been reused.
    let state = Arc::new((Mutex::new(false), Condvar::new()));
    let timed_out = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watchdog = {
        let state = Arc::clone(&state);
        let timed_out = Arc::clone(&timed_out);
        std::thread::spawn(move || {
            let (lock, cvar) = &*state;
            let guard = lock.lock().unwrap_or_else(|e| e.into_inner());
            let (guard, res) = cvar
                .wait_timeout_while(guard, limit, |exited| !*exited)
                .unwrap_or_else(|e| e.into_inner());
            if res.timed_out() && !*guard {
                timed_out.store(true, std::sync::atomic::Ordering::SeqCst);
                sys::kill(pid);
            }
        })
    };
    sys::wait_exited(pid)?;
    let wall = start.elapsed();
    {
        let (lock, cvar) = &*state;
        *lock.lock().unwrap_or_else(|e| e.into_inner()) = true;
        cvar.notify_all();
    }
    watchdog
        .join()
        .map_err(|_| anyhow::anyhow!("watchdog panicked"))?;
    let (raw_status, usage) = sys::reap(pid)?;
    let measured = Measured {
        wall_s: wall.as_secs_f64(),
        cpu_s: usage.cpu_s,
        maxrss_kib: usage.maxrss_kib,
        rss_floor_kib,
    };
    let stdout = read_lossy(&out_path);
    let stderr = read_lossy(&err_path);
    let _ = std::fs::remove_file(&out_path);
    let _ = std::fs::remove_file(&err_path);
    Ok(Outcome {
        status: ExitStatus::from_raw(raw_status),
        measured,
        stdout,
        stderr,
        timed_out: timed_out.load(std::sync::atomic::Ordering::SeqCst),
    })
}

fn read_lossy(path: &Path) -> String {
    let mut bytes = Vec::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let _ = f.read_to_end(&mut bytes);
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The system calls, in one place.
pub mod sys {
    use anyhow::{bail, Result};
    use std::path::Path;

    /// CPU time and peak memory of a reaped child.
    #[derive(Debug, Clone, Copy)]
    pub struct Usage {
        pub cpu_s: f64,
        pub maxrss_kib: u64,
    }

    /// Blocks until `pid` has exited, leaving it a zombie (`WNOWAIT`).
    pub fn wait_exited(pid: libc::pid_t) -> Result<()> {
        loop {
            // SAFETY: siginfo_t is plain old data; zeroed is a valid value to pass in.
            let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
            // SAFETY: `info` is a valid, writable siginfo_t; pid is our own child.
            let rc = unsafe {
                libc::waitid(
                    libc::P_PID,
                    pid as libc::id_t,
                    &mut info,
                    libc::WEXITED | libc::WNOWAIT,
                )
            };
            if rc == 0 {
                return Ok(());
            }
            let err = std::io::Error::last_os_error();
            if err.kind() != std::io::ErrorKind::Interrupted {
                bail!("waitid({pid}): {err}");
            }
        }
    }

    /// Reaps `pid` with `wait4`: its raw wait status and its rusage.
    pub fn reap(pid: libc::pid_t) -> Result<(i32, Usage)> {
        loop {
            let mut status: libc::c_int = 0;
            // SAFETY: rusage is plain old data; zeroed is a valid value.
            let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
            // SAFETY: both out-pointers are valid and writable; pid is our own child.
            let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
            if rc == pid {
                let secs = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 * 1e-6;
                let cpu_s = secs(usage.ru_utime) + secs(usage.ru_stime);
                let maxrss_kib = u64::try_from(usage.ru_maxrss).unwrap_or(0);
                return Ok((status, Usage { cpu_s, maxrss_kib }));
            }
            let err = std::io::Error::last_os_error();
            if err.kind() != std::io::ErrorKind::Interrupted {
                bail!("wait4({pid}): {err}");
            }
        }
    }

    /// Resets this process's peak RSS to its current RSS (`/proc/self/clear_refs`, 5) and
    /// returns the current RSS in KiB (0 when /proc cannot say).
    pub fn reset_peak_rss() -> u64 {
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// SIGKILL to `pid` (a child not yet reaped).
    pub fn kill(pid: libc::pid_t) {
        // SAFETY: kill has no memory effects; the pid is an unreaped child of ours.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }

    /// Bytes available to an unprivileged user on the filesystem holding `path`.
    pub fn free_bytes(path: &Path) -> Result<u64> {
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(path.as_os_str().as_bytes())?;
        // SAFETY: statvfs is plain old data; zeroed is a valid value.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: `c` is a NUL-terminated path and `st` a valid, writable statvfs.
        let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
        if rc != 0 {
            bail!(
                "statvfs({}): {}",
                path.display(),
                std::io::Error::last_os_error()
            );
        }
        Ok(st.f_bavail as u64 * st.f_frsize as u64)
    }

    /// Drops `path`'s pages from the page cache (`POSIX_FADV_DONTNEED` after `fsync`).
    pub fn drop_cache(path: &Path) -> Result<()> {
        use std::os::unix::io::AsRawFd;
        let f = std::fs::File::open(path)?;
        f.sync_all()?;
        // SAFETY: the fd is open for the duration of the call; advice has no memory effects.
        let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        if rc != 0 {
            bail!(
                "posix_fadvise({}): {}",
                path.display(),
                std::io::Error::from_raw_os_error(rc)
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_a_child_and_reports_its_status() {
        let dir = std::env::temp_dir().join(format!("e2e-proc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ok = run(
            Command::new("sh").args(["-c", "echo hi; echo oops >&2"]),
            &dir,
            Duration::from_secs(30),
        )
        .unwrap();
        assert!(ok.status.success());
        assert_eq!(ok.stdout.trim(), "hi");
        assert_eq!(ok.stderr.trim(), "oops");
        assert!(ok.measured.wall_s > 0.0);
        assert!(ok.measured.maxrss_kib > 0);
        assert!(ok.measured.rss_floor_kib > 0);
        let bad = run(
            Command::new("sh").args(["-c", "exit 3"]),
            &dir,
            Duration::from_secs(30),
        )
        .unwrap();
        assert_eq!(bad.status.code(), Some(3));
        assert!(bad.ok("sh").is_err());
        let hung = run(
            Command::new("sleep").arg("30"),
            &dir,
            Duration::from_millis(200),
        )
        .unwrap();
        assert!(hung.timed_out);
        assert!(hung.measured.wall_s < 10.0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn then_adds_times_and_keeps_the_peak() {
        let a = Measured {
            wall_s: 1.0,
            cpu_s: 0.5,
            maxrss_kib: 10,
            rss_floor_kib: 3,
        };
        let b = Measured {
            wall_s: 2.0,
            cpu_s: 1.5,
            maxrss_kib: 7,
            rss_floor_kib: 4,
        };
        let c = a.then(b);
        assert_eq!(c.wall_s, 3.0);
        assert_eq!(c.cpu_s, 2.0);
        assert_eq!(c.maxrss_kib, 10);
        assert_eq!(c.rss_floor_kib, 4);
    }

    #[test]
    fn a_small_child_is_not_charged_our_peak() {
        let dir = std::env::temp_dir().join(format!("e2e-rss-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // Touch 96 MiB, free it: our high-water mark is now far above a `true`.
        let big = vec![1u8; 96 << 20];
        assert_eq!(
            big.iter().step_by(4096).map(|&b| b as u64).sum::<u64>(),
            96 << 8
        );
        drop(big);
        let out = run(&mut Command::new("true"), &dir, Duration::from_secs(30)).unwrap();
        assert!(out.status.success());
        assert!(
            out.measured.maxrss_kib < 64 << 10,
            "maxrss {} KiB",
            out.measured.maxrss_kib
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
