//! Temporary: the public pipeline entry points while `stack-async-thread` (Workers) and
//! `stack-bio` (SubmitQueue) land. Replaced by `write.rs` and `verify.rs`.

use std::io::Read;

use crate::options::{VerifyOptions, WriteOptions, WriteReport};
use crate::report::VerifyReport;
use crate::volume::Volume;
use crate::Error;

fn not_yet() -> Error {
    Error::InvalidOption { option: "pipeline", reason: "the write/verify pipelines are not built yet".into() }
}

impl Volume {
    /// Stores everything `input` yields as object `name` (user data).
    pub fn write(&mut self, name: &str, input: &mut dyn Read, opts: &WriteOptions) -> Result<WriteReport, Error> {
        let _ = (name, input, opts);
        Err(not_yet())
    }
    /// Writes `size_bytes` of the pattern stream of `seed` as object `name`.
    pub fn write_pattern(&mut self, name: &str, size_bytes: u64, seed: u64, opts: &WriteOptions) -> Result<WriteReport, Error> {
        let _ = (name, size_bytes, seed, opts);
        Err(not_yet())
    }
    /// Writes the pattern stream of `seed` as object `name` until the volume is full.
    pub fn fill(&mut self, name: &str, seed: u64, opts: &WriteOptions) -> Result<WriteReport, Error> {
        let _ = (name, seed, opts);
        Err(not_yet())
    }
    /// Continues an incomplete pattern object from its committed size.
    pub fn resume(&mut self, name: &str, opts: &WriteOptions) -> Result<WriteReport, Error> {
        let _ = (name, opts);
        Err(not_yet())
    }
    /// Checks superblocks, metadata and every data block.
    pub fn verify(&self, opts: &VerifyOptions) -> Result<VerifyReport, Error> {
        let _ = opts;
        Err(not_yet())
    }
}
