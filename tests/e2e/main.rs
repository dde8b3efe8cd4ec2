//! End-to-end tests across the stack crates: one test binary, one module per area.

mod cli;
mod examples;
mod reliability;
mod tidy;
mod volume;
