//! The `stack-bio` integration tests: one binary, one module per area.

mod api;
mod concurrent;
mod faults;
mod faulty_direct;
mod loopdev;
mod queue;
mod stamped;
mod uring;
mod verified_reads;
