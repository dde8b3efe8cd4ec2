//! The crate's only `unsafe` code: XXH3's long-input accumulate loop in AVX2.
//!
//! [`Avx2`] is a zero-sized token that exists only after `is_x86_feature_detected!`
//! confirmed AVX2, so holding one is the proof the `#[target_feature]` functions need.
//! Every load reads from a fixed-size array reference, so it is in bounds by type.

#![allow(unsafe_code)]

use super::long::{BLOCK_LEN, SECRET_CONSUME_RATE, SECRET_LASTACC_START, SECRET_LEN, STRIPE_LEN};
use std::arch::x86_64::{
    __m256i, _mm256_add_epi64, _mm256_loadu_si256, _mm256_mul_epu32, _mm256_set1_epi32,
    _mm256_shuffle_epi32, _mm256_slli_epi64, _mm256_srli_epi64, _mm256_storeu_si256,
    _mm256_xor_si256,
};

/// Proof that this CPU has AVX2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Avx2 {
    _proof: (),
}

impl Avx2 {
    /// `Some` if and only if the CPU supports AVX2.
    pub(crate) fn detect() -> Option<Avx2> {
        if std::arch::is_x86_feature_detected!("avx2") {
            Some(Avx2 { _proof: () })
        } else {
            None
        }
    }

    /// The accumulate loop of XXH3's long path (see `long::hash_long`).
    pub(crate) fn accumulate(self, acc: &mut [u64; 8], input: &[u8], secret: &[u8; SECRET_LEN]) {
        assert!(
            input.len() > STRIPE_LEN,
            "XXH3 long path needs more than one stripe"
        );
        // SAFETY: `self` exists only if `detect` saw AVX2 on this CPU, which is all
        // `accumulate_long` requires beyond its safe arguments.
        unsafe { accumulate_long(acc, input, secret) }
    }
}

/// A 64-byte array view of `bytes[at..at + 64]`.
#[inline(always)]
fn stripe_at(bytes: &[u8], at: usize) -> &[u8; STRIPE_LEN] {
    let stripe: &[u8; STRIPE_LEN] = bytes[at..at + STRIPE_LEN]
        .try_into()
        .expect("a 64-byte range is a 64-byte array");
    stripe
}

/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
unsafe fn accumulate_long(acc: &mut [u64; 8], input: &[u8], secret: &[u8; SECRET_LEN]) {
    // SAFETY: AVX2 is enabled (this function's contract); the loads read 32 bytes at
    // u64 offsets 0 and 4 of the 64-byte array `acc`.
    let mut lanes = unsafe {
        [
            _mm256_loadu_si256(acc.as_ptr().cast::<__m256i>()),
            _mm256_loadu_si256(acc.as_ptr().add(4).cast::<__m256i>()),
        ]
    };
    let scramble_key = stripe_at(secret, SECRET_LEN - STRIPE_LEN);
    let nb_blocks = (input.len() - 1) / BLOCK_LEN;
    for block in input.chunks_exact(BLOCK_LEN).take(nb_blocks) {
        for (s, stripe) in block.chunks_exact(STRIPE_LEN).enumerate() {
            let key = stripe_at(secret, s * SECRET_CONSUME_RATE);
            // SAFETY: AVX2 is enabled (this function's contract).
            unsafe { accumulate_512(&mut lanes, stripe_at(stripe, 0), key) };
        }
        // SAFETY: AVX2 is enabled (this function's contract).
        unsafe { scramble(&mut lanes, scramble_key) };
    }
    // The last, partial block: up to 15 whole stripes, then the input's last 64 bytes
    // (which may overlap them) with a key of their own.
    let tail = &input[nb_blocks * BLOCK_LEN..];
    let nb_stripes = (tail.len() - 1) / STRIPE_LEN;
    for (s, stripe) in tail.chunks_exact(STRIPE_LEN).take(nb_stripes).enumerate() {
        let key = stripe_at(secret, s * SECRET_CONSUME_RATE);
        // SAFETY: AVX2 is enabled (this function's contract).
        unsafe { accumulate_512(&mut lanes, stripe_at(stripe, 0), key) };
    }
    let last = stripe_at(input, input.len() - STRIPE_LEN);
    let last_key = stripe_at(secret, SECRET_LEN - STRIPE_LEN - SECRET_LASTACC_START);
    // SAFETY: AVX2 is enabled (this function's contract); the stores write 32 bytes at
    // u64 offsets 0 and 4 of the 64-byte array `acc`.
    unsafe {
        accumulate_512(&mut lanes, last, last_key);
        _mm256_storeu_si256(acc.as_mut_ptr().cast::<__m256i>(), lanes[0]);
        _mm256_storeu_si256(acc.as_mut_ptr().add(4).cast::<__m256i>(), lanes[1]);
    }
}

/// `XXH3_accumulate_512`: for each 64-bit lane `i`, `acc[i ^ 1] += data[i]` and
/// `acc[i] += lo32(data[i] ^ key[i]) * hi32(data[i] ^ key[i])`.
///
/// # Safety
/// The CPU must support AVX2.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn accumulate_512(
    lanes: &mut [__m256i; 2],
    data: &[u8; STRIPE_LEN],
    key: &[u8; STRIPE_LEN],
) {
    for (half, lane) in lanes.iter_mut().enumerate() {
        // SAFETY: AVX2 is enabled (this function's contract); each load reads 32 bytes
        // at offset 0 or 32 of a 64-byte array.
        let (data_vec, key_vec) = unsafe {
            (
                _mm256_loadu_si256(data.as_ptr().add(32 * half).cast::<__m256i>()),
                _mm256_loadu_si256(key.as_ptr().add(32 * half).cast::<__m256i>()),
            )
        };
        let data_key = _mm256_xor_si256(data_vec, key_vec);
        let data_key_hi = _mm256_srli_epi64::<32>(data_key);
        let product = _mm256_mul_epu32(data_key, data_key_hi);
        // Swap the two 64-bit words of each 128-bit half: _MM_SHUFFLE(1, 0, 3, 2).
        let data_swap = _mm256_shuffle_epi32::<0b01_00_11_10>(data_vec);
        let sum = _mm256_add_epi64(*lane, data_swap);
        *lane = _mm256_add_epi64(product, sum);
    }
}

/// `XXH3_scrambleAcc`: `acc = (acc ^ (acc >> 47) ^ key) * PRIME32_1` per 64-bit lane.
///
/// # Safety
/// The CPU must support AVX2.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn scramble(lanes: &mut [__m256i; 2], key: &[u8; STRIPE_LEN]) {
    let prime32 = _mm256_set1_epi32(0x9E37_79B1_u32 as i32);
    for (half, lane) in lanes.iter_mut().enumerate() {
        // SAFETY: AVX2 is enabled (this function's contract); the load reads 32 bytes at
        // offset 0 or 32 of a 64-byte array.
        let key_vec = unsafe { _mm256_loadu_si256(key.as_ptr().add(32 * half).cast::<__m256i>()) };
        let acc = *lane;
        let data_key =
            _mm256_xor_si256(_mm256_xor_si256(acc, _mm256_srli_epi64::<47>(acc)), key_vec);
        let data_key_hi = _mm256_srli_epi64::<32>(data_key);
        let product_lo = _mm256_mul_epu32(data_key, prime32);
        let product_hi = _mm256_mul_epu32(data_key_hi, prime32);
        *lane = _mm256_add_epi64(product_lo, _mm256_slli_epi64::<32>(product_hi));
    }
}

#[cfg(test)]
mod tests {
    use super::super::long::{accumulate_scalar, seeded_secret, DEFAULT_SECRET, INITIAL_ACC};
    use super::*;

    fn pseudo_random(len: usize, mut state: u64) -> Vec<u8> {
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    }

    #[test]
    fn accumulators_match_the_scalar_model() {
        let Some(token) = Avx2::detect() else {
            eprintln!("no AVX2 on this CPU: nothing to compare");
            return;
        };
        let data = pseudo_random(3 * 1024 + 200, 0x1234_5678);
        for len in (STRIPE_LEN + 1..=data.len()).step_by(7) {
            for secret in [DEFAULT_SECRET, seeded_secret(0xdead_beef_0bad_f00d)] {
                let mut want = INITIAL_ACC;
                accumulate_scalar(&mut want, &data[..len], &secret);
                let mut got = INITIAL_ACC;
                token.accumulate(&mut got, &data[..len], &secret);
                assert_eq!(got, want, "len {len}");
            }
        }
    }
}
