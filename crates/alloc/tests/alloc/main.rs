//! Integration tests of `stack-alloc`: one binary, one module per area.

mod busy;
mod concurrent;
mod model;
mod persist;
mod queue;
mod rng;
mod stream;
