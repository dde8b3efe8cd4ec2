//! A deterministic mutation engine for hostile-bytes tests: bit flips, byte overwrites,
//! truncation, extension, length-field inflation, zeroed and random ranges.
//!
//! Deterministic on purpose: a failing case is named by `(seed, iteration)` and replays
//! exactly, so it can be kept as a regression test.

/// splitmix64: small, fast, good enough to pick mutations.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0);
        self.next_u64() % n
    }

    /// An index in `0..n` (`n > 0`).
    pub fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }

    /// True one time in `n`.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// Values that break length and count fields: zero, one, powers of two at the edges,
/// all ones.
const INTERESTING: [u64; 12] = [
    0,
    1,
    0x7f,
    0xff,
    0xffff,
    0x1_0000,
    0x7fff_ffff,
    0xffff_ffff,
    0x1_0000_0000,
    0x7fff_ffff_ffff_ffff,
    0xffff_ffff_ffff_fff0,
    u64::MAX,
];

/// One mutation of `bytes`, in place; `max_len` bounds growth.
pub fn mutate_once(rng: &mut Rng, bytes: &mut Vec<u8>, max_len: usize) {
    if bytes.is_empty() {
        let len = rng.index(64) + 1;
        bytes.resize(len, 0);
        rng.fill(bytes);
        return;
    }
    let len = bytes.len();
    match rng.below(10) {
        // Flip one to eight bits.
        0 | 1 => {
            for _ in 0..=rng.below(8) {
                let at = rng.index(len);
                bytes[at] ^= 1 << rng.below(8);
            }
        }
        // Overwrite a byte with a random or boundary value.
        2 => {
            let at = rng.index(len);
            bytes[at] = match rng.below(4) {
                0 => 0,
                1 => 0xff,
                2 => 0x80,
                _ => rng.next_u64() as u8,
            };
        }
        // Truncate.
        3 => {
            let keep = rng.index(len);
            bytes.truncate(keep);
        }
        // Inflate (or zero) an aligned length or count field.
        4 | 5 => {
            let width = if rng.one_in(2) { 8 } else { 4 };
            if len >= width {
                let at = rng.index(len - width + 1) / width * width;
                let v = INTERESTING[rng.index(INTERESTING.len())];
                let v = if rng.one_in(4) {
                    v.wrapping_add(rng.below(4)).wrapping_sub(2)
                } else {
                    v
                };
                bytes[at..at + width].copy_from_slice(&v.to_le_bytes()[..width]);
            }
        }
        // Zero a range.
        6 => {
            let at = rng.index(len);
            let n = (rng.index(64) + 1).min(len - at);
            bytes[at..at + n].fill(0);
        }
        // Random bytes over a range.
        7 => {
            let at = rng.index(len);
            let n = (rng.index(256) + 1).min(len - at);
            rng.fill(&mut bytes[at..at + n]);
        }
        // Extend with garbage.
        8 => {
            let extra = (rng.index(128) + 1).min(max_len.saturating_sub(len));
            let mut tail = vec![0u8; extra];
            rng.fill(&mut tail);
            bytes.extend_from_slice(&tail);
        }
        // Copy one range over another (duplicated records, shifted fields).
        _ => {
            let n = rng.index(len.min(64)) + 1;
            let from = rng.index(len - n + 1);
            let to = rng.index(len - n + 1);
            bytes.copy_within(from..from + n, to);
        }
    }
}

/// A mutated copy of `seed`: one to four stacked mutations, or (one time in 16) bytes
/// that are random from the start.
pub fn mutated(rng: &mut Rng, seed: &[u8], max_len: usize) -> Vec<u8> {
    if rng.one_in(16) {
        let mut out = vec![0u8; rng.index(max_len.max(1)) + 1];
        rng.fill(&mut out);
        return out;
    }
    let mut out = seed.to_vec();
    for _ in 0..=rng.below(4) {
        mutate_once(rng, &mut out, max_len);
    }
    out
}

#[test]
fn mutations_are_deterministic_and_change_the_input() {
    let seed: Vec<u8> = (0..200u8).collect();
    let mut a = Rng::new(9);
    let mut b = Rng::new(9);
    let mut changed = 0;
    for _ in 0..1000 {
        let x = mutated(&mut a, &seed, 512);
        let y = mutated(&mut b, &seed, 512);
        assert_eq!(x, y);
        assert!(x.len() <= 512);
        changed += usize::from(x != seed);
    }
    // Almost every mutation changes something (a copy onto itself may not).
    assert!(
        changed > 950,
        "only {changed} of 1000 mutations changed the input"
    );
}
