//! The command line, as clap derives it: every command, option and the exit statuses.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use super::lock::wait_arg;
use super::size::size_arg;

/// Shown at the end of `--help`.
const AFTER_HELP: &str = "\
Exit status:
  0    clean: the command did what was asked and found no damage
  1    damage found: damaged data, checksums or metadata, or a damaged newest
       superblock copy (any command that meets it; it still does what it can), or
       lost flushes (verify --acked)
  2    usage error (unknown option, bad size, bad checksum name, invalid object name)
  3    could not run (target missing or unreadable, not a volume, refused, out of space)
  130  interrupted (Ctrl-C); everything committed before stays on the volume
With several targets (burn-in, verify, probe), the worst over the drives:
1 before 2 before 3 (a drive that could not run or was lost) before 130 before 0.

A command that changes a volume (write, rm, format, burn-in, probe) holds it exclusively;
reading commands (verify, read, ls, info) share it. A volume in use is refused with
status 3 naming the process holding it, unless --wait[=DURATION] is given.

Sizes take units: 4096, 4K, 64MiB, 1.5G, 1GB (K/M/G/T/P and KiB..PiB are powers of 1024,
KB/MB/GB/TB/PB powers of 1000).";

/// stackctl: write data to a file or raw block device and prove it reads back intact.
#[derive(Debug, Parser)]
#[command(name = "stackctl", version, about, after_help = AFTER_HELP)]
#[command(propagate_version = true)]
pub struct Cli {
    /// Print one JSON document on stdout instead of the human summary.
    #[arg(long, global = true)]
    pub json: bool,
    /// Progress on stderr: a bar on a terminal (auto), JSON lines (json), or nothing.
    #[arg(long, global = true, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
    /// Wait while another process uses the volume: up to DURATION (30s, 5m, 1h,
    /// 500ms), or until it is free when no DURATION is given. Default: refuse at once
    /// (exit status 3).
    #[arg(
        long,
        global = true,
        value_name = "DURATION",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "forever",
        value_parser = wait_arg
    )]
    pub wait: Option<stack_volume::LockWait>,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProgressMode {
    /// A progress bar when stderr is a terminal, nothing otherwise.
    Auto,
    /// One JSON object per line on stderr.
    Json,
    /// Nothing.
    None,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a volume on TARGET (a file, created when missing, or a block device).
    #[command(after_help = AFTER_HELP)]
    Format(FormatArgs),
    /// Store files (or stdin, `-`) as objects, or write synthetic pattern data.
    #[command(after_help = AFTER_HELP)]
    Write(WriteArgs),
    /// Re-read every object (or one) and check every block; list each damaged range.
    #[command(after_help = AFTER_HELP)]
    Verify(VerifyArgs),
    /// Copy an object out, checking every block.
    #[command(after_help = AFTER_HELP)]
    Read(ReadArgs),
    /// List the objects.
    #[command(after_help = AFTER_HELP)]
    Ls(TargetArgs),
    /// Remove an object.
    #[command(after_help = AFTER_HELP)]
    Rm(RmArgs),
    /// Show the volume and the device.
    #[command(after_help = AFTER_HELP)]
    Info(TargetArgs),
    /// Test a drive or file: format, fill with pattern data, verify, report.
    #[command(name = "burn-in", after_help = AFTER_HELP)]
    BurnIn(BurnInArgs),
    /// Screen a drive for fake capacity in seconds: write a few spread blocks (at most
    /// 1% of it or 256 MiB), read them back from the drive, report the usable size.
    /// It overwrites those blocks. A remapping fake can pass it; burn-in is the proof.
    #[command(after_help = AFTER_HELP)]
    Probe(ProbeArgs),
    /// Print a shell completion script.
    Completions(CompletionsArgs),
}

/// The checksum algorithms a volume can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CsumName {
    /// CRC-32C (hardware-accelerated).
    Crc32c,
    /// XXH3-64.
    Xxh3,
    /// xxHash64.
    Xxh64,
}

impl CsumName {
    /// The checksum engine's algorithm.
    pub fn algorithm(self) -> stack_csum::Algorithm {
        match self {
            CsumName::Crc32c => stack_csum::Algorithm::Crc32c,
            CsumName::Xxh3 => stack_csum::Algorithm::Xxh3,
            CsumName::Xxh64 => stack_csum::Algorithm::Xxh64,
        }
    }
}

/// `format`.
#[derive(Debug, Args)]
pub struct FormatArgs {
    /// The file or block device.
    pub target: PathBuf,
    /// Size of the file to create when TARGET does not exist (or to grow it to).
    #[arg(long, value_parser = size_arg)]
    pub size: Option<u64>,
    /// Volume block size (a power of two from 512 to 64K).
    #[arg(long, value_parser = size_arg, default_value = "4K")]
    pub block_size: u64,
    /// Checksum algorithm.
    #[arg(long, value_enum, default_value_t = CsumName::Crc32c)]
    pub csum: CsumName,
    /// Overwrite content that is not a stackctl volume (never a mounted device).
    #[arg(long)]
    pub force: bool,
    /// Insist on O_DIRECT; fail (exit 3) where it cannot serve. By default O_DIRECT is
    /// used wherever it can serve anyway.
    #[arg(long)]
    pub direct: bool,
}

/// `write`.
#[derive(Debug, Args)]
pub struct WriteArgs {
    /// The volume.
    pub target: PathBuf,
    /// Files to store (`-` reads stdin and needs --name).
    #[arg(conflicts_with_all = ["pattern", "fill", "resume"])]
    pub inputs: Vec<PathBuf>,
    /// Object name (only with one input, a pattern, a fill or a resume).
    #[arg(long)]
    pub name: Option<String>,
    /// Write SIZE bytes of deterministic pattern data.
    #[arg(long, requires = "size", conflicts_with_all = ["fill", "resume"])]
    pub pattern: bool,
    /// Bytes of pattern data.
    #[arg(long, value_parser = size_arg, requires = "pattern")]
    pub size: Option<u64>,
    /// Seed of the pattern (default: random, printed in the summary).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Write pattern data until the volume is full.
    #[arg(long, conflicts_with = "resume")]
    pub fill: bool,
    /// Continue an interrupted pattern write or fill from its last commit.
    #[arg(long)]
    pub resume: bool,
    /// Replace an object of the same name (default: refuse). The old object stays
    /// until the new one is complete: no intermediate commit, and an interrupted or
    /// failed replacement keeps it.
    #[arg(long)]
    pub replace: bool,
    /// When the volume runs out of space during the write, keep what was written as an
    /// incomplete object (default: remove it and give its space back).
    #[arg(long, conflicts_with = "fill")]
    pub keep_partial: bool,
    /// After each commit's flush returned, append one JSON line naming what is now
    /// durable (volume UUID, generation, time, objects and sizes, pattern seeds) to PATH,
    /// `-` for stdout (then the summary goes to stderr; not with --json). Send it off
    /// the machine and check it after a power cut with `verify --acked`.
    #[arg(long, value_name = "PATH")]
    pub ack_log: Option<PathBuf>,
    /// Commit at least every SIZE bytes (and every 5 s): a crash or Ctrl-C keeps the
    /// data up to the last commit, and `--resume` continues from there. Larger is
    /// faster (each commit drains the pipeline and flushes the device twice).
    /// Default 1G.
    #[arg(long, value_name = "SIZE", value_parser = commit_every_arg)]
    pub commit_every: Option<u64>,
    /// Insist on O_DIRECT; fail (exit 3) where it cannot serve. By default O_DIRECT is
    /// used wherever it can serve anyway.
    #[arg(long)]
    pub direct: bool,
    /// Go through the page cache (reports name the source "page-cache"). By default
    /// the drive is used: O_DIRECT, else each range evicted from the cache first.
    #[arg(long, conflicts_with = "direct")]
    pub cached: bool,
}

/// A `--commit-every` size: at least 64 KiB (a shorter interval still commits only
/// after each 64 KiB run).
fn commit_every_arg(text: &str) -> Result<u64, String> {
    let bytes = size_arg(text)?;
    if bytes < MIN_COMMIT_EVERY_BYTES {
        return Err(format!(
            "{bytes} bytes is below the smallest commit interval, {MIN_COMMIT_EVERY_BYTES} (64K)"
        ));
    }
    Ok(bytes)
}

/// Smallest `--commit-every`.
pub const MIN_COMMIT_EVERY_BYTES: u64 = 64 << 10;

/// `verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The volumes: one or more, each checked on its own thread.
    #[arg(required = true, value_name = "TARGET")]
    pub targets: Vec<PathBuf>,
    /// Read SMART health with `smartctl -j -a` (smartmontools 7 or later) before and
    /// after, show what changed, and call a worsening a finding (a FAILED health is
    /// status 1). Without smartctl, or on a device without SMART, a note says so.
    #[arg(long)]
    pub smart: bool,
    /// Only this object (the superblocks and the object table are always checked).
    #[arg(long)]
    pub object: Option<String>,
    /// Check an ack log (`write`/`burn-in --ack-log`; `-` reads stdin) after a power cut:
    /// every acknowledged commit must be on the drive and intact, else the verdict is
    /// lost-flushes (exit status 1).
    #[arg(long, value_name = "PATH", conflicts_with = "object")]
    pub acked: Option<PathBuf>,
    /// Write an HTML report (read speed and latency across the drive, findings, damage).
    #[arg(long, value_name = "FILE.html")]
    pub report: Option<PathBuf>,
    /// Insist on O_DIRECT; fail (exit 3) where it cannot serve. By default O_DIRECT is
    /// used wherever it can serve anyway.
    #[arg(long)]
    pub direct: bool,
    /// Go through the page cache (reports name the source "page-cache"). By default
    /// the drive is used: O_DIRECT, else each range evicted from the cache first.
    #[arg(long, conflicts_with = "direct")]
    pub cached: bool,
}

/// `read`.
#[derive(Debug, Args)]
pub struct ReadArgs {
    /// The volume.
    pub target: PathBuf,
    /// The object.
    pub name: String,
    /// Output file, an existing directory (the object's name inside it), or `-` for
    /// stdout. Default: a file named after the object in the current directory.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Insist on O_DIRECT; fail (exit 3) where it cannot serve. By default O_DIRECT is
    /// used wherever it can serve anyway.
    #[arg(long)]
    pub direct: bool,
    /// Go through the page cache (reports name the source "page-cache"). By default
    /// the drive is used: O_DIRECT, else each range evicted from the cache first.
    #[arg(long, conflicts_with = "direct")]
    pub cached: bool,
}

/// Commands that take only the volume.
#[derive(Debug, Args)]
pub struct TargetArgs {
    /// The volume.
    pub target: PathBuf,
}

/// `rm`.
#[derive(Debug, Args)]
pub struct RmArgs {
    /// The volume.
    pub target: PathBuf,
    /// The object.
    pub name: String,
}

/// `burn-in`.
#[derive(Debug, Args)]
pub struct BurnInArgs {
    /// The files (created when missing) or block devices: one or more, each tested on
    /// its own thread.
    #[arg(required = true, value_name = "TARGET")]
    pub targets: Vec<PathBuf>,
    /// Read SMART health with `smartctl -j -a` (smartmontools 7 or later) before and
    /// after, show what changed, and call a worsening a finding (a FAILED health is
    /// status 1). Without smartctl, or on a device without SMART, a note says so.
    #[arg(long)]
    pub smart: bool,
    /// Size of each file to create (needed when a TARGET does not exist).
    #[arg(long, value_parser = size_arg)]
    pub size: Option<u64>,
    /// Volume block size.
    #[arg(long, value_parser = size_arg, default_value = "4K")]
    pub block_size: u64,
    /// Checksum algorithm.
    #[arg(long, value_enum, default_value_t = CsumName::Crc32c)]
    pub csum: CsumName,
    /// Seed of the pattern (default: random, printed in the report).
    #[arg(long)]
    pub seed: Option<u64>,
    /// After each commit's flush returned, append one JSON line naming what is now
    /// durable (volume UUID, generation, time, objects and sizes, pattern seeds) to PATH,
    /// `-` for stdout (then the summary goes to stderr; not with --json). Send it off
    /// the machine and check it after a power cut with `verify --acked`.
    #[arg(long, value_name = "PATH")]
    pub ack_log: Option<PathBuf>,
    /// Overwrite content that is not a stackctl volume (never a mounted device).
    #[arg(long)]
    pub force: bool,
    /// Insist on O_DIRECT; fail (exit 3) where it cannot serve. By default O_DIRECT is
    /// used wherever it can serve anyway.
    #[arg(long)]
    pub direct: bool,
    /// Go through the page cache (reports name the source "page-cache"). By default
    /// the drive is used: O_DIRECT, else each range evicted from the cache first.
    #[arg(long, conflicts_with = "direct")]
    pub cached: bool,
    /// Keep filling after a canary reads back data written elsewhere (fake capacity),
    /// to list every damaged range; by default the fill stops there.
    #[arg(long)]
    pub no_stop: bool,
    /// Do not re-read canaries during the fill (for comparison in benchmarks).
    #[arg(long, hide = true)]
    pub no_canaries: bool,
    /// Write an HTML report (speed and latency across the drive, findings, damage).
    #[arg(long, value_name = "FILE.html")]
    pub report: Option<PathBuf>,
}

/// `probe`.
#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// The files or block devices (they must exist): one or more, each probed on its
    /// own thread.
    #[arg(required = true, value_name = "TARGET")]
    pub targets: Vec<PathBuf>,
    /// Read SMART health with `smartctl -j -a` (smartmontools 7 or later) before and
    /// after, show what changed, and call a worsening a finding (a FAILED health is
    /// status 1). Without smartctl, or on a device without SMART, a note says so.
    #[arg(long)]
    pub smart: bool,
    /// Overwrite content that is not a stackctl volume without objects (never a
    /// mounted device).
    #[arg(long)]
    pub force: bool,
    /// Write at most SIZE bytes of probes (default and upper limit: 1% of the target or
    /// 256 MiB, whichever is smaller). A smaller budget costs precision.
    #[arg(long, value_name = "SIZE", value_parser = size_arg)]
    pub budget: Option<u64>,
    /// Read SIZE bytes from elsewhere on the drive between writing probes and reading
    /// them back, so its cache cannot answer for it (default 64M).
    #[arg(long, value_name = "SIZE", value_parser = size_arg)]
    pub cache: Option<u64>,
    /// Insist on O_DIRECT; fail (exit 3) where it cannot serve. By default O_DIRECT is
    /// used wherever it can serve anyway.
    #[arg(long)]
    pub direct: bool,
    /// Go through the page cache (reports name the source "page-cache"; a fake then
    /// goes unseen). By default the drive is used.
    #[arg(long, conflicts_with = "direct")]
    pub cached: bool,
}

/// `completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("stackctl").chain(args.iter().copied()))
    }

    #[test]
    fn sizes_and_checksums_parse() {
        let cli = parse(&[
            "format",
            "v",
            "--size",
            "64MiB",
            "--block-size",
            "8K",
            "--csum",
            "xxh3",
        ])
        .unwrap();
        let Command::Format(f) = cli.command else {
            panic!("format")
        };
        assert_eq!(f.size, Some(64 << 20));
        assert_eq!(f.block_size, 8192);
        assert_eq!(f.csum, CsumName::Xxh3);
        let err = parse(&["format", "v", "--size", "12XB"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("64MiB"), "{err}");
        assert!(parse(&["format", "v", "--csum", "md5"]).is_err());
    }

    #[test]
    fn write_modes_exclude_each_other() {
        assert!(parse(&["write", "v", "--pattern", "--size", "1M"]).is_ok());
        assert!(parse(&["write", "v", "--pattern"]).is_err());
        assert!(parse(&["write", "v", "--size", "1M"]).is_err());
        assert!(parse(&["write", "v", "--fill", "--resume"]).is_err());
        assert!(parse(&["write", "v", "file", "--fill"]).is_err());
        let cli = parse(&[
            "--json",
            "write",
            "v",
            "a",
            "b",
            "--replace",
            "--progress",
            "json",
        ])
        .unwrap();
        assert!(cli.json);
        assert_eq!(cli.progress, ProgressMode::Json);
        let Command::Write(w) = cli.command else {
            panic!("write")
        };
        assert_eq!(w.inputs.len(), 2);
        assert!(w.replace);
    }

    #[test]
    fn wait_takes_an_optional_duration_anywhere() {
        use stack_volume::LockWait;
        let cli = parse(&["write", "--wait", "v", "--pattern", "--size", "1M"]).unwrap();
        assert_eq!(cli.wait, Some(LockWait::Forever));
        let Command::Write(w) = cli.command else {
            panic!("write")
        };
        assert_eq!(w.target, PathBuf::from("v"));
        let cli = parse(&["--wait=5m", "ls", "v"]).unwrap();
        assert_eq!(
            cli.wait,
            Some(LockWait::For(std::time::Duration::from_secs(300)))
        );
        assert_eq!(parse(&["ls", "v"]).unwrap().wait, None);
        let err = parse(&["--wait=soon", "ls", "v"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn burn_in_verify_and_probe_take_many_targets() {
        let cli = parse(&["burn-in", "a", "b", "c", "--smart"]).unwrap();
        let Command::BurnIn(b) = cli.command else {
            panic!("burn-in")
        };
        assert_eq!(b.targets.len(), 3);
        assert!(b.smart);
        let Command::Verify(v) = parse(&["verify", "a", "b"]).unwrap().command else {
            panic!("verify")
        };
        assert_eq!(v.targets.len(), 2);
        let Command::Probe(p) = parse(&["probe", "a"]).unwrap().command else {
            panic!("probe")
        };
        assert_eq!(p.targets, [PathBuf::from("a")]);
        assert!(parse(&["probe"]).is_err());
    }

    #[test]
    fn help_documents_exit_statuses() {
        let help = Cli::command().render_long_help().to_string();
        for status in ["130", "could not run", "damage found", "usage error"] {
            assert!(help.contains(status), "{status}");
        }
    }
}
