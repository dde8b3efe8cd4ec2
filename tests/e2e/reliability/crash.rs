//! placeholder being written: crash.
