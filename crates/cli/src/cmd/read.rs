//! `read`: copy an object out, checking every block, without writing outside the place
//! asked for.
//!
//! The output goes to a temporary file created next to it (`O_CREAT|O_EXCL|O_NOFOLLOW`,
//! so a symlink planted there is never followed), and is moved into place only when
//! every block verified: a damaged object never leaves a half-written file. A name
//! derived from the object (no `-o`, or `-o DIR`) must be a plain file name and never
//! replaces an existing file; an explicit `-o FILE` replaces a regular file (rename
//! replaces a symlink itself, not its target).
//!
//! No output may be the volume itself (same device and inode, or the same block
//! device), by any path: a hard link, a symlink, a derived name, or stdout redirected
//! into it. That is a usage error (exit status 2), checked before the volume is opened
//! and again under its lock. A derived name longer than the filesystem's `NAME_MAX` is
//! shortened to a prefix plus a hash of the whole name (still never replacing a file),
//! and the temporary name is shortened to fit too.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context as _};
use serde::Serialize;
use stack_volume::FileId;

use super::args::ReadArgs;
use super::doc::rate;
use super::exit::{usage, Status};
use super::human::{self, amount};
use super::{shown, Ctx, Outcome};

/// What `read` did, as JSON.
#[derive(Debug, Clone, Serialize)]
pub struct ReadDoc {
    /// The object.
    pub object: String,
    /// Bytes copied out (all verified).
    pub bytes: u64,
    /// Where they went (`-` for stdout).
    pub output: String,
    /// Wall time in seconds.
    pub elapsed_secs: f64,
    /// Bytes per second.
    pub bytes_per_sec: u64,
    /// The object's name was too long for a file name there, so `output` is a
    /// shortened form of it.
    pub name_shortened: bool,
    /// Where the blocks were read ("direct", "evicted", "memory" or "page-cache", as
    /// `verify` says).
    pub source: &'static str,
    /// Why the source is the page cache although the drive was asked for.
    pub source_warning: Option<String>,
}

/// Where the bytes go.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Dest {
    Stdout,
    File { path: PathBuf, replace: bool },
}

/// `name` as a file name, or why it cannot be one.
fn plain_file_name(name: &str) -> Result<&str, &'static str> {
    if name.is_empty() || name == "." || name == ".." {
        return Err("is not a file name");
    }
    if name.contains('/') || name.contains('\0') {
        return Err("contains '/'");
    }
    if name.chars().any(char::is_control) {
        return Err("contains a control character");
    }
    Ok(name)
}

/// The longest file name the filesystem of `dir` takes, in bytes.
fn name_max(dir: &Path) -> usize {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    rustix::fs::statvfs(dir)
        .ok()
        .and_then(|s| usize::try_from(s.f_namemax).ok())
        .filter(|&n| n >= 32)
        .unwrap_or(255)
}

/// FNV-1a, 64 bits: a short, stable tag of a long name.
fn name_hash(name: &[u8]) -> u64 {
    name.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `name` cut to at most `max_bytes` (at a character boundary), followed by `~` and a
/// hash of all of it when it had to be cut; `None` when it fits.
fn shortened(name: &str, max_bytes: usize) -> Option<String> {
    if name.len() <= max_bytes {
        return None;
    }
    let tag = format!("~{:016x}", name_hash(name.as_bytes()));
    let mut keep = max_bytes.saturating_sub(tag.len());
    while !name.is_char_boundary(keep) {
        keep -= 1;
    }
    Some(format!("{}{tag}", &name[..keep]))
}

/// The default file name of object `name` in `dir`, shortened when the filesystem's
/// names are shorter; `true` when shortened.
fn derived_name(dir: &Path, name: &str) -> (PathBuf, bool) {
    match shortened(name, name_max(dir)) {
        Some(short) => (dir.join(short), true),
        None => (dir.join(name), false),
    }
}

fn resolve(output: Option<&Path>, name: &str, json: bool) -> anyhow::Result<Dest> {
    let derived = |dir: &Path| -> anyhow::Result<Dest> {
        let file = plain_file_name(name).map_err(|why| {
            usage(format!(
                "object name {name:?} {why}, so it cannot name a file; pick the output with -o FILE"
            ))
        })?;
        Ok(Dest::File {
            path: derived_name(dir, file).0,
            replace: false,
        })
    };
    match output {
        None => derived(Path::new(".")),
        Some(p) if p == Path::new("-") => {
            if json {
                return Err(usage(
                    "-o - writes the data to stdout, where --json goes too; pick one",
                ));
            }
            Ok(Dest::Stdout)
        }
        Some(p) if p.is_dir() => derived(p),
        Some(p) => {
            if let Ok(meta) = fs::symlink_metadata(p) {
                if meta.file_type().is_symlink() {
                    bail!(
                        "{}: is a symbolic link; refusing to write through it",
                        p.display()
                    );
                }
                if !meta.is_file() {
                    bail!("{}: exists and is not a regular file", p.display());
                }
            }
            Ok(Dest::File {
                path: p.to_path_buf(),
                replace: true,
            })
        }
    }
}

/// Creates the temporary file beside `path`.
fn create_temp(path: &Path) -> anyhow::Result<(File, PathBuf)> {
    let file_name = path
        .file_name()
        .ok_or_else(|| usage(format!("{}: not a file path", path.display())))?;
    let suffix = format!(".stackctl-{}.tmp", std::process::id());
    let stem = file_name.to_string_lossy();
    let room = name_max(path.parent().unwrap_or(Path::new("."))).saturating_sub(1 + suffix.len());
    let stem = shortened(&stem, room).unwrap_or_else(|| stem.into_owned());
    let temp = path.with_file_name(format!(".{stem}{suffix}"));
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&temp)
        .with_context(|| format!("creating {}", temp.display()))?;
    Ok((file, temp))
}

/// Moves the finished temporary file to `path`.
fn install(temp: &Path, path: &Path, replace: bool) -> anyhow::Result<()> {
    if replace {
        return fs::rename(temp, path)
            .with_context(|| format!("renaming {} to {}", temp.display(), path.display()));
    }
    // link(2) never replaces: an existing file (or a symlink planted meanwhile) stays.
    match fs::hard_link(temp, path) {
        Ok(()) => fs::remove_file(temp).with_context(|| format!("removing {}", temp.display())),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            bail!(
                "{}: already exists; remove it or pick the output with -o FILE",
                path.display()
            )
        }
        Err(_) if fs::symlink_metadata(path).is_err() => {
            // A filesystem without hard links: nothing is there, so rename is safe.
            fs::rename(temp, path)
                .with_context(|| format!("renaming {} to {}", temp.display(), path.display()))
        }
        Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
    }
}

/// The identity of what stdout is connected to.
fn stdout_id() -> Option<FileId> {
    let fd = std::io::stdout().as_fd().try_clone_to_owned().ok()?;
    File::from(fd).metadata().ok().map(|m| FileId::of(&m))
}

/// Refuses (usage error, exit 2) an output that is the volume `volume` (at `target`).
fn refuse_volume_output(
    output: Option<&Path>,
    dest: Option<&Dest>,
    volume: &FileId,
    target: &Path,
) -> anyhow::Result<()> {
    let refuse = |what: String| {
        Err(usage(format!(
            "{what} is the volume {} itself; refusing to write the object over it (pick another output with -o FILE)",
            shown(target)
        )))
    };
    // An explicit -o PATH: checked before the symlink and file-type refusals, so every
    // path to the volume gets the same answer.
    if let Some(p) = output.filter(|p| *p != Path::new("-")) {
        if FileId::of_path(p).is_ok_and(|id| id.same_as(volume)) {
            return refuse(format!("-o {}", p.display()));
        }
    }
    match dest {
        Some(Dest::Stdout) if stdout_id().is_some_and(|id| id.same_as(volume)) => {
            refuse("-o -: stdout".to_string())
        }
        Some(Dest::File { path, .. })
            if FileId::of_path(path).is_ok_and(|id| id.same_as(volume)) =>
        {
            refuse(format!("the output {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// `stackctl read`.
pub fn run(ctx: &Ctx, args: &ReadArgs) -> anyhow::Result<Outcome> {
    let output = args.output.as_deref();
    // Checked before and after opening: the path may change until the lock is held,
    // and the lock names the file actually opened.
    if let Ok(id) = FileId::of_path(&args.target) {
        refuse_volume_output(output, None, &id, &args.target)?;
    }
    let dest = resolve(output, &args.name, ctx.json)?;
    if let Ok(id) = FileId::of_path(&args.target) {
        refuse_volume_output(output, Some(&dest), &id, &args.target)?;
    }
    let volume = super::lock::open(ctx, &args.target, args.direct, args.cached, true)?;
    if let Some(id) = volume.file_id() {
        refuse_volume_output(output, Some(&dest), &id, &args.target)?;
    }
    let fallback = volume.info().fallback_warning;
    if volume.object(&args.name).is_none() {
        bail!("{}: no object named {:?}", shown(&args.target), args.name);
    }
    let name_shortened = matches!(&dest, Dest::File { path, replace: false }
        if path.file_name() != Some(std::ffi::OsStr::new(&args.name)));
    if let Dest::File {
        path,
        replace: false,
    } = &dest
    {
        if fs::symlink_metadata(path).is_ok() {
            bail!(
                "{}: already exists; remove it or pick the output with -o FILE",
                path.display()
            );
        }
    }
    let start = Instant::now();
    let context = || {
        format!(
            "reading object {:?} from {}",
            args.name,
            shown(&args.target)
        )
    };
    let (bytes, output) = match &dest {
        Dest::Stdout => {
            let mut out = std::io::stdout().lock();
            let bytes = volume.read(&args.name, &mut out).with_context(context)?;
            out.flush().context("flushing stdout")?;
            (bytes, "-".to_string())
        }
        Dest::File { path, replace } => {
            let (file, temp) = create_temp(path)?;
            let mut out = BufWriter::new(file);
            let copied = volume
                .read(&args.name, &mut out)
                .with_context(context)
                .and_then(|bytes| {
                    let file = out.into_inner().map_err(|e| e.into_error())?;
                    file.sync_all()?;
                    Ok(bytes)
                })
                .and_then(|bytes| install(&temp, path, *replace).map(|()| bytes));
            if copied.is_err() {
                let _ = fs::remove_file(&temp);
            }
            (copied?, shown(path))
        }
    };
    let elapsed_secs = start.elapsed().as_secs_f64();
    let (source, source_warning) = volume.read_source();
    let doc = ReadDoc {
        object: args.name.clone(),
        bytes,
        output: output.clone(),
        elapsed_secs,
        bytes_per_sec: rate(bytes, elapsed_secs),
        name_shortened,
        source: source.name(),
        source_warning: source_warning.clone(),
    };
    let mut line = format!(
        "read {:?} to {output}: {}, every block verified, {}\n",
        args.name,
        amount(bytes, elapsed_secs),
        human::source_text(source.name())
    );
    if name_shortened {
        line.push_str(&format!(
            "  (the object's name is longer than a file name may be there; the file is named {output})\n"
        ));
    }
    if let Some(warning) = &source_warning {
        line = format!("WARNING: {warning}\n{line}");
    }
    let human = if dest == Dest::Stdout {
        // The data is on stdout; the summary goes to stderr.
        eprint!("{line}");
        String::new()
    } else {
        line
    };
    Ok(Outcome::new(Status::Clean, "read", &doc, human)?.with_fallback(fallback))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_become_files() {
        for bad in ["", ".", "..", "a/b", "../x", "/etc/passwd", "a\nb", "a\0b"] {
            assert!(plain_file_name(bad).is_err(), "{bad:?}");
        }
        for good in ["a", "..a", "a..", "name with spaces", "ünï"] {
            assert_eq!(plain_file_name(good), Ok(good));
        }
    }

    /// A 255-byte object name could not be read to its default name: the temporary
    /// name added a prefix and a suffix past NAME_MAX.
    #[test]
    fn long_names_are_shortened_to_distinct_plain_names() {
        assert_eq!(shortened("short", 255), None);
        let long = "é".repeat(127) + "x"; // 255 bytes
        let a = shortened(&long, 100).unwrap();
        assert!(a.len() <= 100 && plain_file_name(&a).is_ok(), "{a}");
        assert!(a.starts_with("éé") && a.contains('~'));
        let other = "é".repeat(127) + "y";
        assert_ne!(a, shortened(&other, 100).unwrap());
        // The temporary file of a 255-byte name fits.
        let dir = tempfile::tempdir().unwrap();
        let name = "n".repeat(255);
        let (path, cut) = derived_name(dir.path(), &name);
        assert!(!cut, "255 bytes fit this filesystem");
        let (mut file, temp) = create_temp(&path).unwrap();
        file.write_all(b"x").unwrap();
        assert!(temp.file_name().unwrap().len() <= 255);
        install(&temp, &path, false).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"x");
    }

    #[test]
    fn destinations() {
        let dir = tempfile::tempdir().unwrap();
        let d = resolve(Some(dir.path()), "obj", false).unwrap();
        assert_eq!(
            d,
            Dest::File {
                path: dir.path().join("obj"),
                replace: false
            }
        );
        assert!(resolve(Some(dir.path()), "../obj", false).is_err());
        assert_eq!(
            resolve(Some(Path::new("-")), "x", false).unwrap(),
            Dest::Stdout
        );
        assert!(resolve(Some(Path::new("-")), "x", true).is_err());
        let link = dir.path().join("link");
        std::os::unix::fs::symlink("/tmp/elsewhere", &link).unwrap();
        assert!(resolve(Some(&link), "x", false)
            .unwrap_err()
            .to_string()
            .contains("symbolic link"));
        let out = dir.path().join("out");
        assert_eq!(
            resolve(Some(&out), "x", false).unwrap(),
            Dest::File {
                path: out,
                replace: true
            }
        );
    }

    #[test]
    fn install_never_replaces_a_derived_name() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("obj");
        let (mut file, temp) = create_temp(&dest).unwrap();
        file.write_all(b"new").unwrap();
        fs::write(&dest, b"old").unwrap();
        assert!(install(&temp, &dest, false).is_err());
        assert_eq!(fs::read(&dest).unwrap(), b"old");
        install(&temp, &dest, true).unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"new");
        // The temporary name is never followed through a planted symlink.
        let planted = dir.path().join("victim");
        std::os::unix::fs::symlink(
            &planted,
            dir.path()
                .join(format!(".obj2.stackctl-{}.tmp", std::process::id())),
        )
        .unwrap();
        assert!(create_temp(&dir.path().join("obj2")).is_err());
        assert!(!planted.exists());
    }
}
