//! XXH3-64 for inputs above 240 bytes, around a pluggable accumulate loop.
//!
//! This is the part of XXH3 (v0.8, `XXH3_hashLong_64b`) that runs on long inputs:
//! 8 accumulators are fed 64-byte stripes, scrambled after every 1 KiB block, and merged
//! into the result. The accumulate loop is the hot part and comes from the caller (the
//! AVX2 module); secret derivation from the seed and the merge are here, in safe code.

#![forbid(unsafe_code)]

/// Inputs up to this length use XXH3's short and mid-size paths (no stripe loop).
pub(crate) const MID_SIZE_MAX: usize = 240;
/// Bytes per stripe: one accumulate step.
pub(crate) const STRIPE_LEN: usize = 64;
/// Bytes of the default (and of every seed-derived) secret.
pub(crate) const SECRET_LEN: usize = 192;
/// How far the secret advances per stripe.
pub(crate) const SECRET_CONSUME_RATE: usize = 8;
/// Stripes per block; the accumulators are scrambled after each block.
pub(crate) const STRIPES_PER_BLOCK: usize = (SECRET_LEN - STRIPE_LEN) / SECRET_CONSUME_RATE;
/// Bytes per block.
pub(crate) const BLOCK_LEN: usize = STRIPE_LEN * STRIPES_PER_BLOCK;
/// Secret offset of the key for the last stripe, counted back from its end.
pub(crate) const SECRET_LASTACC_START: usize = 7;
/// Secret offset of the merge keys.
const SECRET_MERGEACCS_START: usize = 11;

const _: () = assert!(STRIPES_PER_BLOCK == 16);
const _: () = assert!(BLOCK_LEN == 1024);
const _: () = assert!(MID_SIZE_MAX > STRIPE_LEN);

const PRIME32_1: u64 = 0x9E37_79B1;
const PRIME32_2: u64 = 0x85EB_CA77;
const PRIME32_3: u64 = 0xC2B2_AE3D;
const PRIME64_1: u64 = 0x9E37_79B1_85EB_CA87;
const PRIME64_2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const PRIME64_3: u64 = 0x1656_67B1_9E37_79F9;
const PRIME64_4: u64 = 0x85EB_CA77_C2B2_AE63;
const PRIME64_5: u64 = 0x27D4_EB2F_1656_67C5;

/// Starting values of the 8 accumulators.
pub(crate) const INITIAL_ACC: [u64; 8] = [
    PRIME32_3, PRIME64_1, PRIME64_2, PRIME64_3, PRIME64_4, PRIME32_2, PRIME64_5, PRIME32_1,
];

/// `XXH3_kSecret`, the default secret of the reference implementation.
pub(crate) const DEFAULT_SECRET: [u8; SECRET_LEN] = [
    0xb8, 0xfe, 0x6c, 0x39, 0x23, 0xa4, 0x4b, 0xbe, 0x7c, 0x01, 0x81, 0x2c, 0xf7, 0x21, 0xad, 0x1c,
    0xde, 0xd4, 0x6d, 0xe9, 0x83, 0x90, 0x97, 0xdb, 0x72, 0x40, 0xa4, 0xa4, 0xb7, 0xb3, 0x67, 0x1f,
    0xcb, 0x79, 0xe6, 0x4e, 0xcc, 0xc0, 0xe5, 0x78, 0x82, 0x5a, 0xd0, 0x7d, 0xcc, 0xff, 0x72, 0x21,
    0xb8, 0x08, 0x46, 0x74, 0xf7, 0x43, 0x24, 0x8e, 0xe0, 0x35, 0x90, 0xe6, 0x81, 0x3a, 0x26, 0x4c,
    0x3c, 0x28, 0x52, 0xbb, 0x91, 0xc3, 0x00, 0xcb, 0x88, 0xd0, 0x65, 0x8b, 0x1b, 0x53, 0x2e, 0xa3,
    0x71, 0x64, 0x48, 0x97, 0xa2, 0x0d, 0xf9, 0x4e, 0x38, 0x19, 0xef, 0x46, 0xa9, 0xde, 0xac, 0xd8,
    0xa8, 0xfa, 0x76, 0x3f, 0xe3, 0x9c, 0x34, 0x3f, 0xf9, 0xdc, 0xbb, 0xc7, 0xc7, 0x0b, 0x4f, 0x1d,
    0x8a, 0x51, 0xe0, 0x4b, 0xcd, 0xb4, 0x59, 0x31, 0xc8, 0x9f, 0x7e, 0xc9, 0xd9, 0x78, 0x73, 0x64,
    0xea, 0xc5, 0xac, 0x83, 0x34, 0xd3, 0xeb, 0xc3, 0xc5, 0x81, 0xa0, 0xff, 0xfa, 0x13, 0x63, 0xeb,
    0x17, 0x0d, 0xdd, 0x51, 0xb7, 0xf0, 0xda, 0x49, 0xd3, 0x16, 0x55, 0x26, 0x29, 0xd4, 0x68, 0x9e,
    0x2b, 0x16, 0xbe, 0x58, 0x7d, 0x47, 0xa1, 0xfc, 0x8f, 0xf8, 0xb8, 0xd1, 0x7a, 0xd0, 0x31, 0xce,
    0x45, 0xcb, 0x3a, 0x8f, 0x95, 0x16, 0x04, 0x28, 0xaf, 0xd7, 0xfb, 0xca, 0xbb, 0x4b, 0x40, 0x7e,
];

/// XXH3-64 of `input` (longer than [`MID_SIZE_MAX`]) with `seed`, using `accumulate`
/// for the stripe loop: it feeds every stripe of its input into the accumulators with
/// the secret, scrambling after each block.
#[inline]
pub(crate) fn hash_long(
    input: &[u8],
    seed: u64,
    accumulate: impl FnOnce(&mut [u64; 8], &[u8], &[u8; SECRET_LEN]),
) -> u64 {
    assert!(
        input.len() > MID_SIZE_MAX,
        "XXH3 long path takes > 240 bytes"
    );
    let custom;
    let secret = if seed == 0 {
        &DEFAULT_SECRET
    } else {
        custom = seeded_secret(seed);
        &custom
    };
    let mut acc = INITIAL_ACC;
    accumulate(&mut acc, input, secret);
    merge(&acc, secret, input.len())
}

/// `XXH3_initCustomSecret`: the default secret with `seed` added to the first and
/// subtracted from the second word of every 16-byte pair.
pub(crate) fn seeded_secret(seed: u64) -> [u8; SECRET_LEN] {
    let mut secret = [0u8; SECRET_LEN];
    for (out, default) in secret
        .chunks_exact_mut(16)
        .zip(DEFAULT_SECRET.chunks_exact(16))
    {
        let lo = read64(default, 0).wrapping_add(seed);
        let hi = read64(default, 8).wrapping_sub(seed);
        out[..8].copy_from_slice(&lo.to_le_bytes());
        out[8..].copy_from_slice(&hi.to_le_bytes());
    }
    secret
}

/// `XXH3_mergeAccs` followed by `XXH3_avalanche`.
fn merge(acc: &[u64; 8], secret: &[u8; SECRET_LEN], len_bytes: usize) -> u64 {
    let mut result = (len_bytes as u64).wrapping_mul(PRIME64_1);
    for (i, pair) in acc.chunks_exact(2).enumerate() {
        let at = SECRET_MERGEACCS_START + 16 * i;
        result = result.wrapping_add(mul128_fold64(
            pair[0] ^ read64(secret, at),
            pair[1] ^ read64(secret, at + 8),
        ));
    }
    avalanche(result)
}

fn mul128_fold64(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

fn avalanche(mut h: u64) -> u64 {
    h ^= h >> 37;
    h = h.wrapping_mul(0x1656_6791_9E37_79F9);
    h ^ (h >> 32)
}

/// Little-endian `u64` at `at`; the callers' offsets are constants within the secret.
#[inline(always)]
pub(crate) fn read64(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

/// The reference scalar accumulate loop (`XXH3_accumulate_512_scalar` and
/// `XXH3_scrambleAcc_scalar`), used to test the merge here on any CPU and as the model
/// the AVX2 loop is checked against.
#[cfg(test)]
pub(crate) fn accumulate_scalar(acc: &mut [u64; 8], input: &[u8], secret: &[u8; SECRET_LEN]) {
    fn stripe(acc: &mut [u64; 8], data: &[u8], key: &[u8]) {
        for i in 0..8 {
            let value = read64(data, 8 * i);
            let keyed = value ^ read64(key, 8 * i);
            acc[i ^ 1] = acc[i ^ 1].wrapping_add(value);
            acc[i] = acc[i].wrapping_add((keyed & 0xffff_ffff) * (keyed >> 32));
        }
    }
    fn scramble(acc: &mut [u64; 8], key: &[u8]) {
        for (i, a) in acc.iter_mut().enumerate() {
            let x = (*a ^ (*a >> 47)) ^ read64(key, 8 * i);
            *a = x.wrapping_mul(PRIME32_1);
        }
    }
    let nb_blocks = (input.len() - 1) / BLOCK_LEN;
    for b in 0..nb_blocks {
        for s in 0..STRIPES_PER_BLOCK {
            let at = b * BLOCK_LEN + s * STRIPE_LEN;
            stripe(acc, &input[at..], &secret[s * SECRET_CONSUME_RATE..]);
        }
        scramble(acc, &secret[SECRET_LEN - STRIPE_LEN..]);
    }
    let nb_stripes = ((input.len() - 1) - BLOCK_LEN * nb_blocks) / STRIPE_LEN;
    for s in 0..nb_stripes {
        let at = nb_blocks * BLOCK_LEN + s * STRIPE_LEN;
        stripe(acc, &input[at..], &secret[s * SECRET_CONSUME_RATE..]);
    }
    let last_key = SECRET_LEN - STRIPE_LEN - SECRET_LASTACC_START;
    stripe(acc, &input[input.len() - STRIPE_LEN..], &secret[last_key..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use xxhash_rust::xxh3::xxh3_64_with_seed;

    #[test]
    fn scalar_long_path_matches_xxhash_rust() {
        let data: Vec<u8> = (0..70_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for len in [
            241, 255, 256, 1023, 1024, 1025, 1088, 4096, 4097, 65_536, 70_000,
        ] {
            for seed in [0, 1, u64::MAX, 0x5eed_5a17_dead_beef] {
                let want = xxh3_64_with_seed(&data[..len], seed);
                let got = hash_long(&data[..len], seed, accumulate_scalar);
                assert_eq!(got, want, "len {len} seed {seed:#x}");
            }
        }
    }

    #[test]
    fn seed_zero_secret_is_the_default() {
        assert_eq!(seeded_secret(0), DEFAULT_SECRET);
        assert_ne!(seeded_secret(1), DEFAULT_SECRET);
    }
}
