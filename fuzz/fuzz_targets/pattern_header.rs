//! Fuzz target: the pattern block header and the damage classifiers that read it, on
//! raw bytes and with one header field of a valid block set to a boundary or raw value.
#![no_main]

#[path = "fields.rs"]
mod fields;

use libfuzzer_sys::fuzz_target;
use stack_csum::Algorithm;
use stack_volume::format::fields::{reseal_pattern_header, PATTERN_HEADER_FIELDS};
use stack_volume::pattern::{classify_file, classify_pattern, PatternHeader};

const BS: usize = 512;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, bytes)) = data.split_first() else {
        return;
    };
    let mut block = bytes.to_vec();
    if mode & 0x80 != 0 {
        block = vec![0u8; BS];
        PatternHeader {
            phys_block: 5,
            object_id: 1,
            logical_offset: 0,
            generation: 2,
            seed: 3,
        }
        .fill(7, &mut block);
        for choice in bytes.chunks(10) {
            if !fields::mutate_field(&mut block, &PATTERN_HEADER_FIELDS, choice) {
                break;
            }
        }
        reseal_pattern_header(&mut block);
    } else if mode & 1 == 1 && block.len() >= 64 {
        reseal_pattern_header(&mut block);
    }
    if let Some(h) = PatternHeader::parse(&block) {
        let mut again = vec![0u8; BS];
        h.fill(7, &mut again);
        assert_eq!(PatternHeader::parse(&again), Some(h));
    }
    block.resize(BS, 0);
    let algorithm = Algorithm::ALL[usize::from((mode >> 1) & 0x3f) % 3];
    let mut expected = vec![0u8; BS];
    PatternHeader {
        phys_block: 5,
        object_id: 1,
        logical_offset: 0,
        generation: 2,
        seed: 3,
    }
    .fill(7, &mut expected);
    let _ = classify_pattern(&block, &expected, 5, algorithm, 7);
    let _ = classify_file(&block, 5, algorithm, 7);
});
