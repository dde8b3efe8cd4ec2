//! Exit statuses, and which one an error maps to.

use std::fmt;

/// What the process reports to its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// 0: done, no damage found.
    Clean,
    /// 1: damage found.
    Damage,
    /// 2: the command line was wrong.
    Usage,
    /// 3: could not run (target missing or unreadable, not a volume, refused, no space).
    CouldNotRun,
    /// 130: interrupted by Ctrl-C (128 + SIGINT).
    Interrupted,
}

impl Status {
    /// The numeric exit status.
    pub fn code(self) -> u8 {
        match self {
            Status::Clean => 0,
            Status::Damage => 1,
            Status::Usage => 2,
            Status::CouldNotRun => 3,
            Status::Interrupted => 130,
        }
    }
}

/// A mistake on the command line that clap cannot see (exit status 2).
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Returns a usage error (exit status 2) with this message.
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(message.into()))
}

/// The exit status an error stands for.
pub fn classify(error: &anyhow::Error) -> Status {
    for cause in error.chain() {
        if cause.is::<UsageError>() {
            return Status::Usage;
        }
        if let Some(lib) = cause.downcast_ref::<stack_volume::Error>() {
            return match lib {
                stack_volume::Error::Interrupted => Status::Interrupted,
                e if e.is_damage() => Status::Damage,
                e if e.is_usage() => Status::Usage,
                _ => Status::CouldNotRun,
            };
        }
    }
    Status::CouldNotRun
}

/// Prints `error` in one or two lines: the outermost context, then its causes joined.
pub fn describe(error: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in error.chain() {
        let text = cause.to_string();
        // Transparent wrappers repeat their source's text; show it once.
        if parts.last().is_some_and(|last| last.contains(&text)) {
            continue;
        }
        // "opening v.img" + "v.img: not a volume" reads "opening v.img: not a volume".
        let repeated = text
            .split_once(": ")
            .filter(|(head, _)| parts.last().is_some_and(|last| last.ends_with(head)));
        match repeated {
            Some((_, rest)) => parts.push(rest.to_string()),
            None => parts.push(text),
        }
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn errors_map_to_statuses() {
        assert_eq!(classify(&usage("bad")), Status::Usage);
        let interrupted = anyhow::Error::new(stack_volume::Error::Interrupted).context("writing x");
        assert_eq!(classify(&interrupted), Status::Interrupted);
        let missing = anyhow::Error::new(stack_volume::Error::ObjectNotFound { name: "a".into() });
        assert_eq!(classify(&missing), Status::CouldNotRun);
        let io: anyhow::Result<()> = Err(std::io::Error::other("disk on fire")).context("vol");
        assert_eq!(classify(&io.unwrap_err()), Status::CouldNotRun);
        assert_eq!(Status::Interrupted.code(), 130);
    }

    #[test]
    fn descriptions_name_every_layer_once() {
        let io: anyhow::Result<()> =
            Err(std::io::Error::other("disk on fire")).context("opening vol.img");
        assert_eq!(describe(&io.unwrap_err()), "opening vol.img: disk on fire");
        let lib = anyhow::Error::new(stack_volume::Error::NotAVolume {
            path: "v.img".into(),
        })
        .context("opening v.img");
        assert_eq!(
            describe(&lib),
            "opening v.img: not a stackctl volume (no superblock magic in either slot)"
        );
    }
}
