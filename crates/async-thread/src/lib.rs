//! Worker pools after btrfs's async threads, and workqueues with a rescuer.
//!
//! Filled by the worker-pool issue.
