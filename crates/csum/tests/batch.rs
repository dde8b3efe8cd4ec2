//! The batch API against single calls, and its argument checks.

use stack_csum::{Algorithm, BlockCsum, Error, Mismatch};

fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
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
fn batch_equals_single_calls_for_every_algorithm() {
    for algorithm in Algorithm::ALL {
        for block_size_bytes in [1usize, 240, 241, 512, 4096, 65_536] {
            let blocks = 9;
            let buf = data(blocks * block_size_bytes, block_size_bytes as u64);
            let csum = BlockCsum::new(algorithm, 0xfeed_f00d, block_size_bytes).unwrap();
            let first_addr = 1_000_000;
            let mut sums = vec![0; blocks];
            csum.compute(first_addr, &buf, &mut sums).unwrap();
            for (i, (block, &sum)) in buf.chunks(block_size_bytes).zip(&sums).enumerate() {
                assert_eq!(
                    sum,
                    csum.block(first_addr + i as u64, block),
                    "{algorithm} block {i}"
                );
                assert_eq!(sum & !algorithm.mask(), 0, "{algorithm} fits its width");
            }
            #[cfg(feature = "parallel")]
            {
                let mut par = vec![0; blocks];
                csum.compute_par(first_addr, &buf, &mut par).unwrap();
                assert_eq!(par, sums, "{algorithm}: compute_par == compute");
            }
            let mut mismatches = Vec::new();
            assert_eq!(csum.verify(first_addr, &buf, &sums, &mut mismatches), Ok(0));
            // Nothing pushed, nothing allocated when all blocks match.
            assert_eq!(mismatches.capacity(), 0);
        }
    }
}

#[cfg(feature = "parallel")]
#[test]
fn compute_par_matches_on_a_large_buffer() {
    for algorithm in Algorithm::ALL {
        let csum = BlockCsum::new(algorithm, 3, 4096).unwrap();
        let buf = data(4 << 20, 11);
        let mut serial = vec![0; buf.len() / 4096];
        let mut par = vec![0; buf.len() / 4096];
        csum.compute(5, &buf, &mut serial).unwrap();
        csum.compute_par(5, &buf, &mut par).unwrap();
        assert_eq!(serial, par, "{algorithm}");
    }
}

#[test]
fn verify_appends_to_existing_mismatches() {
    let csum = BlockCsum::new(Algorithm::Crc32c, 1, 64).unwrap();
    let buf = data(64 * 3, 2);
    let sums = [0, 0, 0];
    // A mismatch from an earlier call (`Mismatch` is non_exhaustive: only verify makes one).
    let mut mismatches: Vec<Mismatch> = Vec::new();
    assert_eq!(csum.verify(9, &buf[..64], &[1], &mut mismatches), Ok(1));
    let earlier = mismatches[0];
    assert_eq!(csum.verify(40, &buf, &sums, &mut mismatches), Ok(3));
    assert_eq!(mismatches.len(), 4);
    assert_eq!(mismatches[0], earlier);
    assert_eq!(mismatches[3].addr, 42);
    assert_eq!(mismatches[3].expected, 0);
    assert!(mismatches[3].to_string().contains("block 42"));
}

#[test]
fn argument_errors_are_reported() {
    assert!(matches!(
        BlockCsum::new(Algorithm::Xxh3, 0, 0),
        Err(Error::InvalidBlockSize {
            block_size_bytes: 0,
            ..
        })
    ));
    assert!(BlockCsum::new(Algorithm::Xxh3, 0, stack_csum::MAX_BLOCK_SIZE_BYTES + 1).is_err());
    let csum = BlockCsum::new(Algorithm::Xxh64, 0, 512).unwrap();
    let mut out = [0u64; 2];
    assert_eq!(
        csum.compute(0, &[0u8; 1000], &mut out),
        Err(Error::PartialBlock {
            len_bytes: 1000,
            block_size_bytes: 512
        })
    );
    assert_eq!(
        csum.compute(0, &[0u8; 512], &mut out),
        Err(Error::CountMismatch {
            blocks: 1,
            checksums: 2
        })
    );
    assert_eq!(
        csum.verify(0, &[0u8; 1536], &out, &mut Vec::new()),
        Err(Error::CountMismatch {
            blocks: 3,
            checksums: 2
        })
    );
    // The last address is u64::MAX: fine. One more block would overflow.
    assert!(csum.compute(u64::MAX - 1, &[0u8; 1024], &mut out).is_ok());
    assert_eq!(
        csum.compute(u64::MAX, &[0u8; 1024], &mut out),
        Err(Error::AddressOverflow {
            first_addr: u64::MAX,
            blocks: 2
        })
    );
    // An empty buffer is zero blocks: nothing to do, not an error.
    assert_eq!(csum.compute(u64::MAX, &[], &mut []), Ok(()));
}

#[test]
fn check_reports_the_mismatch() {
    let csum = BlockCsum::new(Algorithm::Crc32c, 77, 4096).unwrap();
    let block = data(4096, 5);
    let stored = csum.block(10, &block);
    assert_eq!(csum.check(10, &block, stored), Ok(()));
    let err = csum.check(11, &block, stored).unwrap_err();
    assert_eq!(
        err,
        Error::Mismatch {
            addr: 11,
            expected: stored,
            found: csum.block(11, &block)
        }
    );
}

#[test]
fn binding_is_pinned() {
    // The stored values are on-disk data: a change to the binding breaks every volume.
    // salt 0x5a17, block 42, 4096 bytes of 0xab.
    let block = vec![0xabu8; 4096];
    let got: Vec<u64> = Algorithm::ALL
        .iter()
        .map(|&a| BlockCsum::new(a, 0x5a17, 4096).unwrap().block(42, &block))
        .collect();
    let raw = [
        u64::from(crc32c::crc32c(&block)),
        xxhash_rust::xxh3::xxh3_64(&block),
        xxhash_rust::xxh64::xxh64(&block, 0),
    ];
    // key = fmix64(0x5a17 ^ "stackcsm") ^ 42, written out by hand from the crate docs.
    let mut k = 0x5a17u64 ^ u64::from_be_bytes(*b"stackcsm");
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    let key = k ^ 42;
    let fold = u64::from((key as u32) ^ ((key >> 32) as u32));
    assert_eq!(got, vec![raw[0] ^ fold, raw[1] ^ key, raw[2] ^ key]);
}

#[test]
#[should_panic(expected = "exactly one block")]
fn block_rejects_a_wrong_length() {
    let csum = BlockCsum::new(Algorithm::Crc32c, 0, 4096).unwrap();
    csum.block(0, &[0u8; 100]);
}

/// The getters give back what `new` was given (callers store them in superblocks).
#[test]
fn getters_return_what_new_was_given() {
    for algorithm in Algorithm::ALL {
        for (salt, block_size_bytes) in [(0x5eed_f00d_dead_beef_u64, 4096), (7, 512)] {
            let c = BlockCsum::new(algorithm, salt, block_size_bytes).unwrap();
            assert_eq!(c.algorithm(), algorithm);
            assert_eq!(c.salt(), salt);
            assert_eq!(c.block_size_bytes(), block_size_bytes);
        }
    }
}
