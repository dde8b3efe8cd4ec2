//! The library side of `stackctl`: the volume format and the write/verify pipelines.
//!
//! Filled by the volume issue.
