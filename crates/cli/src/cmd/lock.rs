//! Taking the volume's lock for a command: refuse at once (exit status 3, naming the
//! holder), or with `--wait[=DURATION]` say who holds it and wait.

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use stack_volume::{LockMode, LockWait, OpenOptions, Volume, VolumeLock};

use super::{shown, Ctx};

/// Parses a `--wait` value: `forever` (bare `--wait`), or a duration such as `30s`,
/// `5m`, `1h`, `500ms`, `1.5s` (a bare number is seconds).
pub fn wait_arg(text: &str) -> Result<LockWait, String> {
    let text = text.trim();
    if text == "forever" {
        return Ok(LockWait::Forever);
    }
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (e.g. 30s, 5m, 1h, 500ms)"))?;
    let scale = match unit {
        "" | "s" => 1.0,
        "ms" => 1e-3,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {unit:?} (use ms, s, m or h)"
            ))
        }
    };
    Duration::try_from_secs_f64(value * scale)
        .map(LockWait::For)
        .map_err(|_| format!("{text:?} is not a duration (e.g. 30s, 5m, 1h, 500ms)"))
}

/// Locks `path` for a command (creating a missing file when `create`).
pub fn lock(ctx: &Ctx, path: &Path, mode: LockMode, create: bool) -> anyhow::Result<VolumeLock> {
    let attempt = |wait| {
        if create {
            VolumeLock::acquire_creating(path, mode, wait, Some(&ctx.cancel))
        } else {
            VolumeLock::acquire(path, mode, wait, Some(&ctx.cancel))
        }
    };
    let first = match attempt(LockWait::NoWait) {
        Err(stack_volume::Error::Locked {
            holder, claimed, ..
        }) if ctx.wait != LockWait::NoWait => {
            let who = match (holder, claimed) {
                (Some(h), _) => format!("in use by {h}"),
                (None, true) => "in use (held by the kernel or another program)".to_string(),
                (None, false) => "in use by another process".to_string(),
            };
            let how_long = match ctx.wait {
                LockWait::For(d) => format!("up to {:.1} s", d.as_secs_f64()),
                _ => "until it is free".to_string(),
            };
            eprintln!("stackctl: {} is {who}; waiting {how_long}", shown(path));
            attempt(ctx.wait)
        }
        other => other,
    };
    first.with_context(|| format!("opening {}", shown(path)))
}

/// Opens the volume at `path` under a lock: shared when `read_only`, else exclusive.
pub fn open(
    ctx: &Ctx,
    path: &Path,
    direct: bool,
    cached: bool,
    read_only: bool,
) -> anyhow::Result<Volume> {
    let mode = if read_only {
        LockMode::Shared
    } else {
        LockMode::Exclusive
    };
    let held = lock(ctx, path, mode, false)?;
    let opts = OpenOptions {
        direct,
        cached,
        read_only,
        wait: LockWait::NoWait,
    };
    Volume::open_locked(path, &opts, held).with_context(|| format!("opening {}", shown(path)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(wait_arg("forever"), Ok(LockWait::Forever));
        assert_eq!(wait_arg("30s"), Ok(LockWait::For(Duration::from_secs(30))));
        assert_eq!(wait_arg("30"), Ok(LockWait::For(Duration::from_secs(30))));
        assert_eq!(wait_arg("5m"), Ok(LockWait::For(Duration::from_secs(300))));
        assert_eq!(wait_arg("1h"), Ok(LockWait::For(Duration::from_secs(3600))));
        assert_eq!(
            wait_arg("500ms"),
            Ok(LockWait::For(Duration::from_millis(500)))
        );
        assert_eq!(
            wait_arg("1.5s"),
            Ok(LockWait::For(Duration::from_millis(1500)))
        );
        for bad in ["", "s", "5x", "-1s", "1e400", "five"] {
            assert!(wait_arg(bad).is_err(), "{bad}");
        }
    }
}
