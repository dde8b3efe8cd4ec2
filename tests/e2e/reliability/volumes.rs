//! placeholder being written: volumes.
