//! The public operations the pipelines run (write, pattern, fill, resume, verify, space
//! estimates): here, on the volume, each handing itself to `crate::pipeline`, which
//! reaches it only through `seam.rs`.

use std::io::Read;

use super::Volume;
use crate::format::ObjectKind;
use crate::options::{VerifyOptions, WriteOptions, WriteReport};
use crate::pipeline::{self, PlannedWrite, Source};
use crate::report::VerifyReport;
use crate::Error;

impl Volume {
    /// Stores everything `input` yields as object `name` (user data).
    pub fn write(
        &mut self,
        name: &str,
        input: &mut dyn Read,
        opts: &WriteOptions,
    ) -> Result<WriteReport, Error> {
        pipeline::run_write(
            self,
            name,
            Source::Reader(input),
            ObjectKind::File,
            None,
            false,
            opts,
        )
    }

    /// Writes `size_bytes` of the pattern stream of `seed` as object `name`.
    pub fn write_pattern(
        &mut self,
        name: &str,
        size_bytes: u64,
        seed: u64,
        opts: &WriteOptions,
    ) -> Result<WriteReport, Error> {
        pipeline::run_write(
            self,
            name,
            Source::Pattern,
            ObjectKind::Pattern { seed },
            Some(size_bytes),
            false,
            opts,
        )
    }

    /// Writes the pattern stream of `seed` as object `name` until the volume is full.
    pub fn fill(
        &mut self,
        name: &str,
        seed: u64,
        opts: &WriteOptions,
    ) -> Result<WriteReport, Error> {
        pipeline::run_write(
            self,
            name,
            Source::Pattern,
            ObjectKind::Pattern { seed },
            None,
            true,
            opts,
        )
    }

    /// Continues an incomplete pattern object (an interrupted `write_pattern` or `fill`)
    /// from its committed size.
    pub fn resume(&mut self, name: &str, opts: &WriteOptions) -> Result<WriteReport, Error> {
        let record = self.find(name).ok_or_else(|| Error::ObjectNotFound {
            name: name.to_string(),
        })?;
        if record.complete {
            return Err(Error::NotResumable {
                name: name.to_string(),
                reason: "it is complete",
            });
        }
        let ObjectKind::Pattern { .. } = record.kind else {
            return Err(Error::NotResumable {
                name: name.to_string(),
                reason: "user data cannot be regenerated; remove it and write it again",
            });
        };
        let (kind, target) = (record.kind, record.target_size_bytes);
        pipeline::run_write(
            self,
            name,
            Source::Pattern,
            kind,
            target,
            target.is_none(),
            opts,
        )
    }

    /// Re-reads and checks the superblocks, the object table, every checksum block and
    /// every data block of every object (or of `opts.object`), and reports all damage in
    /// order. Free space is not read.
    pub fn verify(&self, opts: &VerifyOptions) -> Result<VerifyReport, Error> {
        pipeline::verify(self, opts)
    }

    /// Bytes the `writes` (run one after another, with `opts`) need at most, by the
    /// estimate in this module's docs. A write naming an incomplete pattern object that
    /// `opts` does not replace counts as its resume: only what is left of its size.
    /// A record for each new object is counted; a replaced one is not subtracted.
    pub fn space_needed(&self, writes: &[PlannedWrite], opts: &WriteOptions) -> u64 {
        pipeline::space_needed(self, writes, opts)
    }

    /// Refuses the `writes` with [`Error::NoSpace`] (nothing written) when
    /// [`Volume::space_needed`] exceeds the free space.
    pub fn check_space(&self, writes: &[PlannedWrite], opts: &WriteOptions) -> Result<(), Error> {
        pipeline::check_space(self, writes, opts)
    }
}
