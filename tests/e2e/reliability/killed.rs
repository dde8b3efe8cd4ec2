//! placeholder being written: killed.
