//! End-to-end tests of the volume and its pipelines across all four crates.
