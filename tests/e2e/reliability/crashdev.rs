//! placeholder being written: crashdev.
