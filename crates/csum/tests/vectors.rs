//! Known-answer tests: published CRC-32C and xxHash reference vectors, through our API.
//!
//! The XXH3 and XXH64 vectors are those of xxHash's own self-test (`xsum_sanity_check.c`,
//! xxHash v0.8): hashes of prefixes of a fixed pseudo-random buffer. The XXH3 lengths
//! above 240 bytes go through the runtime-dispatched AVX2 loop on AVX2 machines.

use stack_csum::{checksum, xxh3_64_with_seed, Algorithm};

const PRIME32: u64 = 2_654_435_761;
const PRIME64: u64 = 11_400_714_785_074_694_797;

/// xxHash's sanity buffer: `byte[i] = gen >> 56`, `gen` starting at PRIME32 and
/// multiplied by PRIME64 after each byte.
fn sanity_buffer() -> Vec<u8> {
    let mut generator = PRIME32;
    (0..4096 + 64 + 1)
        .map(|_| {
            let byte = (generator >> 56) as u8;
            generator = generator.wrapping_mul(PRIME64);
            byte
        })
        .collect()
}

#[test]
fn crc32c_check_value_and_rfc3720_vectors() {
    assert_eq!(checksum(Algorithm::Crc32c, 0, b"123456789"), 0xE306_9283);
    // RFC 3720 (iSCSI) appendix B.4, read as little-endian 32-bit values.
    assert_eq!(checksum(Algorithm::Crc32c, 0, &[0u8; 32]), 0x8A91_36AA);
    assert_eq!(checksum(Algorithm::Crc32c, 0, &[0xffu8; 32]), 0x62A8_AB43);
    let ascending: Vec<u8> = (0..32).collect();
    assert_eq!(checksum(Algorithm::Crc32c, 0, &ascending), 0x46DD_794E);
    let descending: Vec<u8> = (0..32).rev().collect();
    assert_eq!(checksum(Algorithm::Crc32c, 0, &descending), 0x113F_DB5C);
    assert_eq!(checksum(Algorithm::Crc32c, 0, b""), 0);
}

#[test]
fn xxh64_reference_vectors() {
    let buf = sanity_buffer();
    let vectors: [(usize, u64, u64); 9] = [
        (0, 0, 0xEF46_DB37_51D8_E999),
        (0, PRIME32, 0xAC75_FDA2_929B_17EF),
        (1, 0, 0xE934_A84A_DB05_2768),
        (1, PRIME32, 0x5014_6076_43A9_B4C3),
        (4, 0, 0x9136_A0DC_A574_57EE),
        (14, 0, 0x8282_DCC4_994E_35C8),
        (14, PRIME32, 0xC3BD_6BF6_3DEB_6DF0),
        (222, 0, 0xB641_AE8C_B691_C174),
        (222, PRIME32, 0x20CB_8AB7_AE10_C14A),
    ];
    for (len, seed, want) in vectors {
        assert_eq!(
            checksum(Algorithm::Xxh64, seed, &buf[..len]),
            want,
            "XXH64 len {len} seed {seed:#x}"
        );
    }
}

#[test]
fn xxh3_reference_vectors() {
    let buf = sanity_buffer();
    let vectors: [(usize, u64, u64); 26] = [
        (0, 0, 0x2D06_8005_38D3_94C2),
        (0, PRIME64, 0xA8A6_B918_B2F0_364A),
        (1, 0, 0xC44B_DFF4_074E_ECDB),
        (1, PRIME64, 0x032B_E332_DD76_6EF8),
        (6, 0, 0x27B5_6A84_CD2D_7325),
        (6, PRIME64, 0x8458_9C11_6AB5_9AB9),
        (12, 0, 0xA713_DAF0_DFBB_77E7),
        (12, PRIME64, 0xE730_3E1B_2336_DE0E),
        (24, 0, 0xA3FE_70BF_9D35_10EB),
        (24, PRIME64, 0x850E_80FC_35BD_D690),
        (48, 0, 0x397D_A259_ECBA_1F11),
        (48, PRIME64, 0xADC2_CBAA_44AC_C616),
        (80, 0, 0xBCDE_FBBB_2C47_C90A),
        (80, PRIME64, 0xC6DD_0CB6_9953_2E73),
        (195, 0, 0xCD94_217E_E362_EC3A),
        (195, PRIME64, 0xBA68_003D_370C_B3D9),
        // Long inputs: the stripe loop, scrambles and the overlapping last stripe.
        (403, 0, 0xCDEB_804D_65C6_DEA4),
        (403, PRIME64, 0x6259_F6EC_FD64_43FD),
        (512, 0, 0x617E_4959_9013_CB6B),
        (512, PRIME64, 0x3CE4_57DE_14C2_7708),
        (2048, 0, 0xDD59_E2C3_A5F0_38E0),
        (2048, PRIME64, 0x66F8_1670_669A_BABC),
        (2240, 0, 0x6E73_A905_39CF_2948),
        (2240, PRIME64, 0x757B_A848_7D1B_5247),
        (2367, 0, 0xCB37_AEB9_E5D3_61ED),
        (2367, PRIME64, 0xD2DB_3415_B942_B42A),
    ];
    for (len, seed, want) in vectors {
        assert_eq!(
            xxh3_64_with_seed(&buf[..len], seed),
            want,
            "XXH3 len {len} seed {seed:#x}"
        );
        assert_eq!(checksum(Algorithm::Xxh3, seed, &buf[..len]), want);
    }
}

#[test]
fn xxhash_rust_agrees_with_the_published_vectors_we_rely_on() {
    // The raw hashes under `BlockCsum` are xxhash-rust's; pin a few of its answers too.
    let buf = sanity_buffer();
    assert_eq!(
        xxhash_rust::xxh3::xxh3_64(&buf[..2367]),
        0xCB37_AEB9_E5D3_61ED
    );
    assert_eq!(
        xxhash_rust::xxh64::xxh64(&buf[..222], 0),
        0xB641_AE8C_B691_C174
    );
}
