//! `read`: copy an object out, checking every block, without writing outside the place
//! asked for.
//!
//! The output goes to a temporary file created next to it (`O_CREAT|O_EXCL|O_NOFOLLOW`,
//! so a symlink planted there is never followed), and is moved into place only when
//! every block verified: a damaged object never leaves a half-written file. A name
//! derived from the object (no `-o`, or `-o DIR`) must be a plain file name and never
//! replaces an existing file; an explicit `-o FILE` replaces a regular file (rename
//! replaces a symlink itself, not its target).

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context as _};
use serde::Serialize;
use stackctl::Volume;

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

fn resolve(output: Option<&Path>, name: &str, json: bool) -> anyhow::Result<Dest> {
    let derived = |dir: &Path| -> anyhow::Result<Dest> {
        let file = plain_file_name(name).map_err(|why| {
            usage(format!(
                "object name {name:?} {why}, so it cannot name a file; pick the output with -o FILE"
            ))
        })?;
        Ok(Dest::File {
            path: dir.join(file),
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
    let temp = path.with_file_name(format!(
        ".{}.stackctl-{}.tmp",
        file_name.to_string_lossy(),
        std::process::id()
    ));
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

/// `stackctl read`.
pub fn run(ctx: &Ctx, args: &ReadArgs) -> anyhow::Result<Outcome> {
    let dest = resolve(args.output.as_deref(), &args.name, ctx.json)?;
    let volume = Volume::open(
        &args.target,
        &stackctl::OpenOptions {
            direct: args.direct,
            cached: args.cached,
            read_only: true,
        },
    )
    .with_context(|| format!("opening {}", shown(&args.target)))?;
    let fallback = volume.info().fallback_warning;
    if volume.object(&args.name).is_none() {
        bail!("{}: no object named {:?}", shown(&args.target), args.name);
    }
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
        source: source.name(),
        source_warning: source_warning.clone(),
    };
    let mut line = format!(
        "read {:?} to {output}: {}, every block verified, {}\n",
        args.name,
        amount(bytes, elapsed_secs),
        human::source_text(source.name())
    );
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
