//! placeholder being written: ioerr.
