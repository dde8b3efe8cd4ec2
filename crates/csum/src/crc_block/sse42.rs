//! The three interleaved `crc32` streams, in SSE4.2.
//!
//! [`Sse42`] is a zero-sized token that exists only after `is_x86_feature_detected!`
//! confirmed SSE4.2, so holding one is the proof the `#[target_feature]` function needs.
//! Every load goes through `chunks_exact(8)`, so it is in bounds by construction.

#![allow(unsafe_code)]

use super::Shift;
use std::arch::x86_64::_mm_crc32_u64;
use std::sync::OnceLock;

/// Proof that this CPU has SSE4.2.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sse42 {
    _proof: (),
}

impl Sse42 {
    /// `Some` if and only if the CPU supports SSE4.2 (detected once).
    pub(crate) fn get() -> Option<Sse42> {
        static HAS: OnceLock<bool> = OnceLock::new();
        HAS.get_or_init(|| std::arch::is_x86_feature_detected!("sse4.2"))
            .then_some(Sse42 { _proof: () })
    }

    /// CRC-32C of `data` as rounds of three segments of `seg` bytes hashed at once,
    /// joined with `shift` (which must move a state past exactly `seg` bytes), then the
    /// tail.
    #[inline]
    pub(crate) fn crc_three_way(self, data: &[u8], seg: usize, shift: &Shift) -> u32 {
        assert!(seg > 0 && seg % 8 == 0 && 3 * seg <= data.len());
        // SAFETY: `self` exists only if the CPU has SSE4.2 (see `get`), which is all
        // `three_way` enables; it reads `data` through safe slices only.
        unsafe { three_way(data, seg, shift) }
    }
}

fn word(bytes: &[u8]) -> u64 {
    u64::from_le_bytes(bytes.try_into().expect("8-byte chunk"))
}

#[target_feature(enable = "sse4.2")]
fn three_way(data: &[u8], seg: usize, shift: &Shift) -> u32 {
    let rounds = data.len() / (3 * seg);
    let (body, tail) = data.split_at(rounds * 3 * seg);
    // Raw states: the block starts from CRC-32C's initial state (all ones); in each round
    // stream A continues it and B and C start from zero. Moving a state past a segment is
    // linear, so joining the three is shift-and-XOR.
    let mut state = u32::MAX;
    for round in body.chunks_exact(3 * seg) {
        let (a, rest) = round.split_at(seg);
        let (b, c) = rest.split_at(seg);
        let (mut sa, mut sb, mut sc) = (u64::from(state), 0u64, 0u64);
        for ((xa, xb), xc) in a
            .chunks_exact(8)
            .zip(b.chunks_exact(8))
            .zip(c.chunks_exact(8))
        {
            sa = _mm_crc32_u64(sa, word(xa));
            sb = _mm_crc32_u64(sb, word(xb));
            sc = _mm_crc32_u64(sc, word(xc));
        }
        // `_mm_crc32_u64` keeps the state in the low 32 bits.
        state = shift.apply(shift.apply(sa as u32) ^ sb as u32) ^ sc as u32;
    }
    let mut state = u64::from(state);
    let mut words = tail.chunks_exact(8);
    for w in &mut words {
        state = _mm_crc32_u64(state, word(w));
    }
    let mut state = state as u32;
    for &byte in words.remainder() {
        state = std::arch::x86_64::_mm_crc32_u8(state, byte);
    }
    !state
}
