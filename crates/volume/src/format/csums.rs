//! The payload of a checksum stream: one stored checksum per data block of a run, in
//! its algorithm's width (4 or 8 bytes), little-endian (`docs/FORMAT.md`).

/// Appends `sums`, each in `width_bytes`, to `out`.
pub fn encode_csums(sums: &[u64], width_bytes: usize, out: &mut Vec<u8>) {
    assert!(width_bytes == 4 || width_bytes == 8);
    out.reserve(sums.len() * width_bytes);
    for s in sums {
        out.extend_from_slice(&s.to_le_bytes()[..width_bytes]);
    }
}

/// The checksums in `payload` (whole `width_bytes` entries; a partial tail is ignored,
/// the stream decoder having checked the length already).
pub fn decode_csums(payload: &[u8], width_bytes: usize) -> Vec<u64> {
    assert!(width_bytes == 4 || width_bytes == 8);
    payload
        .chunks_exact(width_bytes)
        .map(|c| {
            let mut b = [0u8; 8];
            b[..width_bytes].copy_from_slice(c);
            u64::from_le_bytes(b)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_in_both_widths_little_endian() {
        let mut out = Vec::new();
        encode_csums(&[0x0102_0304, 0xdead_beef], 4, &mut out);
        assert_eq!(out, [4, 3, 2, 1, 0xef, 0xbe, 0xad, 0xde]);
        assert_eq!(decode_csums(&out, 4), vec![0x0102_0304, 0xdead_beef]);
        let mut out = Vec::new();
        encode_csums(&[u64::MAX - 1], 8, &mut out);
        assert_eq!(decode_csums(&out, 8), vec![u64::MAX - 1]);
    }
}
