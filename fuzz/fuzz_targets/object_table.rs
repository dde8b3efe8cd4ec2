//! Fuzz target: the object table decoder (names, counts, runs, extents, generations).
#![no_main]

use libfuzzer_sys::fuzz_target;
use stackctl::format::ObjectTable;

fuzz_target!(|data: &[u8]| {
    if let Ok(table) = ObjectTable::decode(data, 9, 4096, 512, 4, 20) {
        // Whatever decodes re-encodes to the same bytes.
        assert_eq!(table.encode(), data);
    }
});
