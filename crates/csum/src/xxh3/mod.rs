//! XXH3-64 with a runtime-dispatched AVX2 path for long inputs.
//!
//! `xxhash-rust` picks its SIMD width when it is compiled: a normal x86-64 build has
//! only SSE2 enabled, so it runs the SSE2 accumulate loop even on AVX2 machines. Here
//! inputs of 257 bytes and more (XXH3's stripe loop starts above 240) take an AVX2 loop
//! when the CPU has AVX2, detected once; everything else goes to `xxhash-rust`. Both
//! give the same bits (tested against `xxhash_rust::xxh3::xxh3_64_with_seed`).

// `deny`, not `forbid`: the `avx2` module below must be able to allow `unsafe`; this
// file and every other module of the crate forbid it.
#![deny(unsafe_code)]

#[cfg(target_arch = "x86_64")]
mod avx2;
mod dispatch;
mod long;

pub(crate) use dispatch::Backend;
pub use dispatch::{xxh3_64_with_seed, xxh3_backend};
