//! Reliability proof: killed writes, crash points against a model, the fault matrix, hostile bytes, bad requests.
//!
//! Every test here can fail: each one drives real code with damage, crashes or bad input
//! and checks an exact expectation (an error, a report naming the damage, or the
//! committed state byte for byte). The modules:
//!
//! - [`mutate`]: a deterministic mutation engine (bit flips, truncation, length-field
//!   inflation, random bytes) and its random-number generator;
//! - [`decoders`]: every on-disk decoder over a seed corpus plus thousands of mutations;
//! - [`fields`]: one field of a superblock, metadata header, object table or pattern
//!   header set to a boundary value behind a recomputed checksum, then every read-only
//!   command run through the binary: no crash, no hang, one verdict;
//! - [`ioerr`]: I/O errors and out-of-space during writes (memory and loop device);
//! - [`requests`]: bad requests at the library level (oversized metadata, read-only);
//! - [`volumes`]: thousands of mutated small volumes opened and verified under a time
//!   bound;
//! - [`crash`]: the crash-point property test on `FaultyDevice`'s power-loss model
//!   against a model of the committed state;
//! - [`killed`]: the `stackctl` binary SIGKILLed mid-write, checked against a model;

#[path = "reliability/alloc_track.rs"]
mod alloc_track;
#[path = "reliability/crash.rs"]
mod crash;
#[path = "reliability/decoders.rs"]
mod decoders;
#[path = "reliability/fields.rs"]
mod fields;
#[path = "reliability/ioerr.rs"]
mod ioerr;
#[path = "reliability/killed.rs"]
mod killed;
#[path = "reliability/mutate.rs"]
mod mutate;
#[path = "reliability/requests.rs"]
mod requests;
#[path = "reliability/volumes.rs"]
mod volumes;
