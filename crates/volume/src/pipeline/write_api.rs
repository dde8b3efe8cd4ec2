//! The public write operations of a volume, all run by the write pipeline.

use std::io::Read;

use super::write::Source;
use crate::format::ObjectKind;
use crate::options::{WriteOptions, WriteReport};
use crate::volume::Volume;
use crate::Error;

impl Volume {
    /// Stores everything `input` yields as object `name` (user data).
    pub fn write(
        &mut self,
        name: &str,
        input: &mut dyn Read,
        opts: &WriteOptions,
    ) -> Result<WriteReport, Error> {
        self.run_write(
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
        self.run_write(
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
        self.run_write(
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
        self.run_write(name, Source::Pattern, kind, target, target.is_none(), opts)
    }
}
