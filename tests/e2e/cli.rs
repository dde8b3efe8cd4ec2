//! End-to-end tests of the `stackctl` binary: every command, option and exit status.
