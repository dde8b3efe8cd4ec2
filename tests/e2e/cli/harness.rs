//! Running the `stackctl` binary from the tests: where it is, a scratch directory, and
//! what a run printed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// The binary: `target/<profile>/stackctl`, next to this test's `deps/` directory.
///
/// Cargo does not build another package's binaries for a test (not even with
/// `--workspace`: only a package's own integration tests trigger that), so the first
/// call runs `cargo build -p stackctl --bin stackctl` for the same profile and target
/// directory. Cargo has released its build lock by the time tests run, and the build is
/// a no-op when the binary is fresh; it also guarantees the tests never run a stale one.
pub fn bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let binary =
            cargo_build("stackctl", &["-p", "stackctl", "--bin", "stackctl"]).join("stackctl");
        assert!(
            binary.exists(),
            "{} missing: cargo build -p stackctl first",
            binary.display()
        );
        binary
    })
}

/// Runs `cargo build -q ARGS` for the profile and target directory this test binary
/// was built with, and returns `target/<profile>`. Without cargo (the test binary run
/// by hand) it builds nothing: what is there is used.
pub fn cargo_build(what: &str, args: &[&str]) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary knows its path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("tests run from target/<profile>/deps");
    let target_dir = profile_dir.parent().expect("target/<profile> has a parent");
    let profile = profile_dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("debug");
    if let Ok(cargo) = std::env::var("CARGO") {
        let mut build = Command::new(cargo);
        build.args(["build", "-q"]).args(args).arg("--target-dir");
        build.arg(target_dir);
        if profile != "debug" {
            build.args(["--profile", profile]);
        }
        let status = build
            .status()
            .unwrap_or_else(|e| panic!("running cargo to build {what}: {e}"));
        assert!(status.success(), "building {what} failed");
    }
    profile_dir.to_path_buf()
}

/// What one run of the binary did.
#[derive(Debug)]
pub struct Run {
    /// Exit status (a signal death is reported as 128 + signal).
    pub code: i32,
    /// Standard output (lossy UTF-8).
    pub stdout: String,
    /// Standard output as bytes.
    pub stdout_bytes: Vec<u8>,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// From a finished process; checks the rules every run obeys.
    pub fn from_output(output: Output, args: &[String]) -> Run {
        use std::os::unix::process::ExitStatusExt;
        let code = output
            .status
            .code()
            .unwrap_or_else(|| 128 + output.status.signal().unwrap_or(0));
        let run = Run {
            code,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            stdout_bytes: output.stdout,
        };
        // Never a panic or a backtrace, and errors in one or two lines.
        assert!(
            !run.stderr.contains("panicked"),
            "{args:?} panicked: {}",
            run.stderr
        );
        assert!(
            !run.stderr.contains("RUST_BACKTRACE"),
            "{args:?}: {}",
            run.stderr
        );
        assert!(
            !run.stderr.contains("internal error"),
            "{args:?}: {}",
            run.stderr
        );
        if code == 3 || code == 1 && run.stdout.is_empty() {
            let lines = run
                .stderr
                .lines()
                .filter(|l| l.starts_with("stackctl"))
                .count();
            assert!(
                (1..=2).contains(&lines),
                "{args:?}: error in {lines} lines: {}",
                run.stderr
            );
        }
        run
    }

    /// Stdout as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

/// A scratch directory the binary runs in.
#[derive(Debug)]
pub struct Scratch {
    /// Keeps the directory alive.
    pub dir: tempfile::TempDir,
}

impl Scratch {
    /// A new empty directory.
    pub fn new() -> Scratch {
        Scratch {
            dir: tempfile::tempdir().expect("a scratch directory"),
        }
    }

    /// A path inside it.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A command for the binary, running in the scratch directory, stdin closed.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(bin());
        command
            .args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        command
    }

    /// Runs the binary with `args` and no stdin.
    pub fn run(&self, args: &[&str]) -> Run {
        let output = self.command(args).output().expect("running stackctl");
        Run::from_output(
            output,
            &args.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )
    }

    /// Runs the binary with `stdin` as its input. A process may stop reading early (a
    /// refusal, a write that ran out of space): the broken pipe is fine then, but not
    /// an exit status 0 without having read everything.
    pub fn run_with_stdin(&self, args: &[&str], stdin: &[u8]) -> Run {
        use std::io::Write;
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning stackctl");
        let mut input = child.stdin.take().expect("piped stdin");
        let fed = input.write_all(stdin);
        drop(input);
        let output = child.wait_with_output().expect("waiting for stackctl");
        let run = Run::from_output(
            output,
            &args.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        );
        if let Err(e) = fed {
            assert_eq!(
                e.kind(),
                std::io::ErrorKind::BrokenPipe,
                "feeding stdin: {e}"
            );
            assert_ne!(run.code, 0, "{args:?} exited 0 without reading its input");
        }
        run
    }

    /// Runs and asserts the exit status, showing stderr when it differs.
    pub fn expect(&self, code: i32, args: &[&str]) -> Run {
        let run = self.run(args);
        assert_eq!(
            run.code, code,
            "{args:?}\nstdout: {}\nstderr: {}",
            run.stdout, run.stderr
        );
        run
    }

    /// Runs with `--json`, asserts the exit status and parses the document.
    pub fn json(&self, code: i32, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let doc = self.expect(code, &all).json();
        assert_eq!(doc["exit_status"], code, "{doc}");
        doc
    }

    /// Formats `name` as a volume of `size` (e.g. "4MiB").
    pub fn volume(&self, name: &str, size: &str) -> String {
        self.expect(0, &["format", name, "--size", size]);
        name.to_string()
    }
}

/// Deterministic bytes for input files.
pub fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// Byte offsets of every pattern block header (`STKPATT\0`) in a volume image.
pub fn pattern_blocks(image: &[u8], block_bytes: usize) -> Vec<usize> {
    (0..image.len() / block_bytes)
        .map(|i| i * block_bytes)
        .filter(|&offset| image[offset..].starts_with(b"STKPATT\0"))
        .collect()
}

/// Overwrites `data` at `offset` of file `path`.
pub fn patch(path: &Path, offset: u64, data: &[u8]) {
    use std::io::{Seek, SeekFrom, Write};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("opening the image");
    file.seek(SeekFrom::Start(offset)).expect("seeking");
    file.write_all(data).expect("patching the image");
}
