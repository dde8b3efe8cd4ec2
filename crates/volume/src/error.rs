//! The library's error type: every variant names the target, object, field or offset involved.

use std::path::PathBuf;

use crate::format::FormatError;

/// Everything that can go wrong in the volume and its pipelines.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Neither superblock slot carries the volume magic: this is not a stackctl volume.
    #[error("{path}: not a stackctl volume (no superblock magic in either slot)")]
    NotAVolume {
        /// The target that was opened.
        path: PathBuf,
    },
    /// Both superblock copies are damaged or point to metadata that does not verify.
    #[error("{path}: both superblocks are unusable: slot 0: {slot0}; slot 1: {slot1}")]
    BothSuperblocksBad {
        /// The target that was opened.
        path: PathBuf,
        /// Why slot 0 was rejected.
        slot0: String,
        /// Why slot 1 was rejected.
        slot1: String,
    },
    /// No object with this name.
    #[error("no object named {name:?}")]
    ObjectNotFound {
        /// The name asked for.
        name: String,
    },
    /// An object with this name exists and `replace` was not asked for.
    #[error("an object named {name:?} already exists (use replace)")]
    ObjectExists {
        /// The name asked for.
        name: String,
    },
    /// The object name is empty, too long or contains a byte the format does not allow.
    #[error("invalid object name {name:?}: {reason}")]
    InvalidName {
        /// The name asked for.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The object cannot be resumed (it is complete, or it holds user data that cannot be
    /// regenerated).
    #[error("object {name:?} cannot be resumed: {reason}")]
    NotResumable {
        /// The object.
        name: String,
        /// Why not.
        reason: &'static str,
    },
    /// The volume has no room for what was asked. A write whose size is known is
    /// refused before it writes anything; one that runs out on the way (input of unknown
    /// size, or free space too fragmented for the estimate) says in `outcome` what became
    /// of its partial object.
    #[error("no space: {} needed, {} free{}", bytes_and_human(*.needed_bytes), bytes_and_human(*.free_bytes), .outcome)]
    NoSpace {
        /// Bytes the operation needed (a refused write: its whole estimate, see
        /// `Volume::space_needed`; a write that ran out: the allocation that failed).
        needed_bytes: u64,
        /// Bytes free in the volume.
        free_bytes: u64,
        /// What the write left behind.
        outcome: NoSpaceOutcome,
    },
    /// The object table would exceed its largest size (too many objects or extents).
    #[error("the object table would take {table_bytes} bytes for {objects} objects, more than the format allows")]
    TableFull {
        /// Objects in the table.
        objects: u64,
        /// Bytes it would take.
        table_bytes: u64,
    },
    /// The target is too small to hold a volume.
    #[error("{path}: {size_bytes} bytes is too small for a volume (at least {min_bytes} bytes)")]
    TooSmall {
        /// The target.
        path: PathBuf,
        /// Its size.
        size_bytes: u64,
        /// The smallest size a volume may have.
        min_bytes: u64,
    },
    /// `O_DIRECT` was insisted on and cannot serve this target.
    #[error("{path}: cannot use O_DIRECT: {reason}")]
    DirectImpossible {
        /// The target.
        path: PathBuf,
        /// Why: the filesystem refused it, or the volume's blocks do not fit its alignment.
        reason: String,
    },
    /// A format option is out of range.
    #[error("invalid option {option}: {reason}")]
    InvalidOption {
        /// The option.
        option: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// Another process is using the volume (a writer, or readers while a change was
    /// asked for): nothing was read or written.
    #[error("{}", locked_message(path, holder.as_ref(), *claimed, *waited))]
    Locked {
        /// The volume's file or device.
        path: PathBuf,
        /// The process holding it, where the system tells.
        holder: Option<crate::volume::Holder>,
        /// The kernel refused the exclusive open of the block device (it is mounted or
        /// held by another program), rather than another process holding the lock.
        claimed: bool,
        /// How long this process waited for it (`None`: it did not wait).
        waited: Option<std::time::Duration>,
    },
    /// The device is too small for a probe: its write budget (1% of it, or what was
    /// asked) holds fewer probe blocks than a probe needs.
    #[error("{device}: cannot probe {size_bytes} bytes with a write budget of {budget_bytes} bytes (a probe needs at least {min_bytes}; the budget is at most 1% of the device)")]
    ProbeBudget {
        /// The device.
        device: String,
        /// Its size.
        size_bytes: u64,
        /// The write budget.
        budget_bytes: u64,
        /// The smallest budget a probe can work with.
        min_bytes: u64,
    },
    /// The volume was opened read-only and a change was asked for.
    #[error("the volume is open read-only")]
    ReadOnly,
    /// The operation was cancelled; everything committed before stays valid.
    #[error("interrupted; the committed part stays on the volume")]
    Interrupted,
    /// A data block read back does not match what was written.
    #[error("object {object:?} damaged at logical offset {logical_offset} (physical {physical_offset}): {cause}")]
    Damaged {
        /// The object.
        object: String,
        /// Byte offset inside the object.
        logical_offset: u64,
        /// Byte offset on the device.
        physical_offset: u64,
        /// What kind of damage.
        cause: crate::report::Cause,
    },
    /// The checksum blocks of an object's run are damaged or unreadable, so its data
    /// cannot be checked: damage, like a damaged data block.
    #[error("object {object:?}: the checksums of logical bytes {logical_offset}..{logical_end} (checksum blocks at physical {physical_offset}) are damaged: {detail}")]
    DamagedChecksums {
        /// The object.
        object: String,
        /// First byte inside the object the checksums cover.
        logical_offset: u64,
        /// End (exclusive) of the bytes they cover.
        logical_end: u64,
        /// Byte offset of the checksum blocks on the device.
        physical_offset: u64,
        /// What is wrong with them.
        detail: String,
    },
    /// Bytes read from the volume do not decode.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// The metadata decodes but is inconsistent.
    #[error("corrupt {what} at byte {offset}: {detail}")]
    Corrupt {
        /// The structure.
        what: &'static str,
        /// Byte offset on the device.
        offset: u64,
        /// What is inconsistent.
        detail: String,
    },
    /// Reading the input of a write failed.
    #[error("reading the input of object {name:?} at offset {offset}: {source}")]
    Input {
        /// The object being written.
        name: String,
        /// Input offset where the read failed.
        offset: u64,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Writing the output of a read failed.
    #[error("writing the output of object {name:?} at offset {offset}: {source}")]
    Output {
        /// The object being read.
        name: String,
        /// Object offset of the write that failed.
        offset: u64,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A worker pool failed (a panicking work item, a pool shut down, a thread not started).
    #[error(transparent)]
    Workers(#[from] stack_async_thread::Error),
    /// A thread the pipelines need could not be started (a device queue's submitter, a
    /// verify reader): the system is out of threads or memory, not a fault of the volume.
    #[error("cannot start {what}: {source}")]
    Spawn {
        /// What the thread was for.
        what: &'static str,
        /// The error from the system.
        source: std::io::Error,
    },
    /// A pipeline work item was lost before it finished (it panicked); nothing it wrote
    /// is committed.
    #[error("a {stage} work item was lost (it panicked)")]
    WorkLost {
        /// The pipeline stage.
        stage: &'static str,
    },
    /// The device failed.
    #[error(transparent)]
    Device(#[from] stack_bio::Error),
    /// The allocator failed.
    #[error(transparent)]
    Alloc(#[from] stack_alloc::Error),
    /// Acknowledged commits (`check_acked`) name another volume than the one checked.
    #[error(
        "the acknowledged commits are of volume {acked_uuid}, not of this volume {volume_uuid}"
    )]
    AckedOtherVolume {
        /// The UUID the records name.
        acked_uuid: String,
        /// The UUID of the volume checked.
        volume_uuid: String,
    },
    /// `check_acked` was given no acknowledged commit to check.
    #[error("no acknowledged commit to check (the log is empty)")]
    NoAckedCommits,
    /// The checksum engine refused its parameters.
    #[error(transparent)]
    Csum(#[from] stack_csum::Error),
}

impl Error {
    /// Whether this error reports damage found on the volume (exit status 1 in
    /// `stackctl`), as opposed to a command that could not run.
    pub fn is_damage(&self) -> bool {
        matches!(self, Error::Damaged { .. } | Error::DamagedChecksums { .. })
    }

    /// Whether this error is a request the caller must change (an invalid name or
    /// option), not a fault of the volume or the device.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            Error::InvalidName { .. } | Error::InvalidOption { .. }
        )
    }
}

fn locked_message(
    path: &std::path::Path,
    holder: Option<&crate::volume::Holder>,
    claimed: bool,
    waited: Option<std::time::Duration>,
) -> String {
    let who = match (holder, claimed) {
        (Some(h), _) => format!("in use by {h}"),
        (None, true) => {
            "in use: the kernel refused an exclusive open (mounted, or opened exclusively by another program)".to_string()
        }
        (None, false) => "in use by another process".to_string(),
    };
    match waited {
        Some(d) => format!(
            "{}: still {who} after waiting {:.1} s",
            path.display(),
            d.as_secs_f64()
        ),
        None => format!(
            "{}: {who}; try again when it is done, or wait for it with --wait[=DURATION]",
            path.display()
        ),
    }
}

/// What a write that found no space left behind (part of [`Error::NoSpace`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoSpaceOutcome {
    /// Nothing was written and nothing on the volume changed (a refusal up front, or an
    /// operation other than a write).
    NothingWritten,
    /// The write ran out of space: its partial object was removed and the removal
    /// committed, so its space is free again.
    Removed {
        /// The object.
        name: String,
        /// Bytes the write had stored before it ran out.
        written_bytes: u64,
    },
    /// The write ran out and `keep_partial` was asked: the object is committed
    /// incomplete with what was stored.
    Kept {
        /// The object.
        name: String,
        /// Its committed size.
        size_bytes: u64,
    },
    /// A replacement ran out: nothing was committed, the old object stays as it was, and
    /// what the new one had stored was given back.
    ReplaceAbandoned {
        /// The object.
        name: String,
        /// Bytes the new object had stored before the space ran out.
        written_bytes: u64,
    },
    /// A resume ran out: the object is back to the state it had before the resume (its
    /// committed size then), and what the resume stored was given back.
    ResumeUndone {
        /// The object.
        name: String,
        /// Its committed size, as before the resume.
        size_bytes: u64,
        /// Bytes the resume had stored before it ran out.
        written_bytes: u64,
    },
}

impl std::fmt::Display for NoSpaceOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NoSpaceOutcome::NothingWritten => f.write_str("; nothing was written"),
            NoSpaceOutcome::Removed {
                name,
                written_bytes,
            } => write!(
                f,
                "; removed the partial object {name:?} ({written_bytes} bytes written); nothing kept"
            ),
            NoSpaceOutcome::Kept { name, size_bytes } => write!(
                f,
                "; kept partial object {name:?}, {size_bytes} bytes, incomplete"
            ),
            NoSpaceOutcome::ReplaceAbandoned {
                name,
                written_bytes,
            } => write!(
                f,
                "; the replacement of {name:?} was abandoned ({written_bytes} bytes written and \
                 given back); the old object stays"
            ),
            NoSpaceOutcome::ResumeUndone {
                name,
                size_bytes,
                written_bytes,
            } => write!(
                f,
                "; the resume of {name:?} was undone ({written_bytes} bytes written and given back); \
                 it stays incomplete at {size_bytes} bytes"
            ),
        }
    }
}

/// `"67108864 bytes (64.0 MiB)"`: exact bytes, then binary units for people.
pub(crate) fn bytes_and_human(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{bytes} bytes ({value:.1} {})", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_space_names_needed_and_free_in_bytes_and_units_and_the_outcome() {
        let e = Error::NoSpace {
            needed_bytes: 64 << 20,
            free_bytes: 30_703_616,
            outcome: NoSpaceOutcome::NothingWritten,
        };
        assert_eq!(
            e.to_string(),
            "no space: 67108864 bytes (64.0 MiB) needed, 30703616 bytes (29.3 MiB) free; \
             nothing was written"
        );
        let e = Error::NoSpace {
            needed_bytes: 4096,
            free_bytes: 0,
            outcome: NoSpaceOutcome::Removed {
                name: "x".into(),
                written_bytes: 12,
            },
        };
        assert_eq!(
            e.to_string(),
            "no space: 4096 bytes (4.0 KiB) needed, 0 bytes free; \
             removed the partial object \"x\" (12 bytes written); nothing kept"
        );
        let kept = NoSpaceOutcome::Kept {
            name: "x".into(),
            size_bytes: 8192,
        };
        assert_eq!(
            kept.to_string(),
            "; kept partial object \"x\", 8192 bytes, incomplete"
        );
    }
}
