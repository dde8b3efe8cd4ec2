//! Fuzz target: the object table decoder (names, counts, runs, extents, generations),
//! on raw bytes and with one field of a valid table set to a boundary or raw value.
#![no_main]

#[path = "fields.rs"]
mod fields;

use libfuzzer_sys::fuzz_target;
use stack_volume::format::fields::table_fields;
use stack_volume::format::{ObjectKind, ObjectRecord, ObjectTable, Run};

fn check(bytes: &[u8]) {
    if let Ok(table) = ObjectTable::decode(bytes, 9, 4096, 512, 4, 20) {
        // Whatever decodes re-encodes to the same bytes.
        assert_eq!(table.encode(), bytes);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        check(data);
        return;
    }
    let record = |id: u64, name: &str, start: u64, kind| ObjectRecord {
        id,
        name: name.into(),
        size_bytes: 1000,
        created_unix_secs: 3,
        kind,
        complete: id % 2 == 0,
        target_size_bytes: None,
        runs: vec![Run {
            data_start_block: start,
            data_blocks: 2,
            csum_start_block: start + 2,
            write_generation: 8,
        }],
    };
    let table = ObjectTable {
        next_object_id: 5,
        objects: vec![
            record(1, "a", 100, ObjectKind::File),
            record(4, "pattern", 300, ObjectKind::Pattern { seed: 6 }),
        ],
    };
    let mut bytes = table.encode();
    let fields = table_fields(&bytes);
    for choice in rest.chunks(10) {
        if !fields::mutate_field(&mut bytes, &fields, choice) {
            break;
        }
    }
    check(&bytes);
});
