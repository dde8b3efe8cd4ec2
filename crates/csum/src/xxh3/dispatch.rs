//! Picks the XXH3 backend once per process and routes each call to it.

#![forbid(unsafe_code)]

#[cfg(target_arch = "x86_64")]
use super::avx2;
use super::long;
use std::sync::OnceLock;

/// Shortest input the AVX2 loop takes. XXH3's stripe loop starts above 240 bytes, but
/// up to 256 bytes (four stripes) entering and leaving the AVX2 function costs more
/// than it saves: measured on an AMD EPYC, 20.9 ns against xxhash-rust's 19.6 ns at
/// 256 bytes, 22.9 ns against 29.3 ns at 320.
const AVX2_MIN_BYTES: usize = 257;
const _: () = assert!(AVX2_MIN_BYTES > long::MID_SIZE_MAX);

/// Which implementation [`xxh3_64_with_seed`] uses on this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    /// `xxhash-rust` as compiled (SSE2 on a default x86-64 build).
    Portable,
    /// Our AVX2 stripe loop for inputs of 257 bytes and more, `xxhash-rust` below.
    #[cfg(target_arch = "x86_64")]
    Avx2(avx2::Avx2),
}

impl Backend {
    /// The backend for this CPU, detected on first use.
    #[inline]
    pub(crate) fn get() -> Backend {
        static BACKEND: OnceLock<Backend> = OnceLock::new();
        *BACKEND.get_or_init(Backend::detect)
    }

    fn detect() -> Backend {
        // A build with AVX2 enabled at compile time already runs xxhash-rust's AVX2 loop.
        #[cfg(all(target_arch = "x86_64", not(target_feature = "avx2")))]
        if let Some(token) = avx2::Avx2::detect() {
            return Backend::Avx2(token);
        }
        Backend::Portable
    }

    /// XXH3-64 of `data` with `seed`.
    #[inline]
    pub(crate) fn hash(self, data: &[u8], seed: u64) -> u64 {
        match self {
            #[cfg(target_arch = "x86_64")]
            Backend::Avx2(token) if data.len() >= AVX2_MIN_BYTES => {
                long::hash_long(data, seed, |acc, input, secret| {
                    token.accumulate(acc, input, secret)
                })
            }
            _ => xxhash_rust::xxh3::xxh3_64_with_seed(data, seed),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Backend::Portable => "xxhash-rust",
            #[cfg(target_arch = "x86_64")]
            Backend::Avx2(_) => "avx2",
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
#[inline]
pub fn xxh3_64_with_seed(data: &[u8], seed: u64) -> u64 {
    Backend::get().hash(data, seed)
}

/// The name of the XXH3 backend in use: `"avx2"` or `"xxhash-rust"`.
pub fn xxh3_backend() -> &'static str {
    Backend::get().name()
}

#[cfg(test)]
mod tests {
    use super::*;
    use xxhash_rust::xxh3::xxh3_64_with_seed as reference;

    fn pseudo_random(len: usize, mut state: u64) -> Vec<u8> {
        (0..len)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1);
                (state >> 56) as u8
            })
            .collect()
    }

    /// Seeds that exercise the default secret, carries in the seeded secret and a
    /// spread of random values.
    fn seeds() -> Vec<u64> {
        let mut seeds = vec![0, 1, u64::MAX, 0x8000_0000_0000_0000];
        let mut s = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..6 {
            s = s.wrapping_mul(0xff51_afd7_ed55_8ccd).rotate_left(29) ^ 0x5eed;
            seeds.push(s);
        }
        seeds
    }

    #[test]
    fn every_length_up_to_2_kib_matches_xxhash_rust() {
        let data = pseudo_random(2100, 7);
        let seeds = seeds();
        for len in 0..=data.len() {
            for &seed in &seeds[..if len <= 256 { seeds.len() } else { 3 }] {
                assert_eq!(
                    xxh3_64_with_seed(&data[..len], seed),
                    reference(&data[..len], seed),
                    "len {len} seed {seed:#x} backend {}",
                    xxh3_backend()
                );
            }
        }
    }

    #[test]
    fn large_buffers_match_xxhash_rust() {
        let data = pseudo_random(1 << 20, 99);
        for len in [4096, 4097, 8191, 65_536, 65_536 + 63, 1 << 20] {
            for seed in seeds() {
                assert_eq!(
                    xxh3_64_with_seed(&data[..len], seed),
                    reference(&data[..len], seed),
                    "len {len} seed {seed:#x}"
                );
            }
        }
    }

    #[test]
    fn avx2_is_used_when_the_cpu_has_it() {
        #[cfg(all(target_arch = "x86_64", not(target_feature = "avx2")))]
        assert_eq!(
            xxh3_backend() == "avx2",
            std::arch::is_x86_feature_detected!("avx2")
        );
        assert!(["avx2", "xxhash-rust"].contains(&xxh3_backend()));
    }
}
