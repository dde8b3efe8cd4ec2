//! Structure-aware mutation shared by the fuzz targets: the fuzzer's bytes pick one field
//! of a valid structure and a value for it (a boundary probe or raw bytes); the caller
//! then recomputes the structure's checksum, so the decoder's field checks are reached.

use stack_volume::format::fields::{get, probe_values, set, Field};

/// Sets one of `fields` in `bytes` as `choice` says (at least 10 bytes of it are used:
/// field index, how to pick the value, 8 value bytes); returns whether it did.
pub fn mutate_field(bytes: &mut [u8], fields: &[Field], choice: &[u8]) -> bool {
    if fields.is_empty() || choice.len() < 10 {
        return false;
    }
    let field = fields[usize::from(choice[0]) % fields.len()];
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&choice[2..10]);
    let raw = u64::from_le_bytes(raw);
    let value = if choice[1] & 1 == 0 {
        let probes = probe_values(get(bytes, field), field.width);
        probes[raw as usize % probes.len()]
    } else {
        raw
    };
    set(bytes, field, value);
    true
}
