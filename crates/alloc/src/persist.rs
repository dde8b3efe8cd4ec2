//! Persisting the free space: a small self-checking image, and its careful decoder.
//!
//! Layout (all integers little-endian):
//!
//! | offset   | size | field          | meaning                                     |
//! |----------|------|----------------|---------------------------------------------|
//! | 0        | 8    | `magic`        | `STKALLOC`                                  |
//! | 8        | 4    | `version`      | [`FORMAT_VERSION`]                          |
//! | 12       | 4    | `flags`        | 0; anything else is refused                 |
//! | 16       | 8    | `total_blocks` | blocks in the volume                        |
//! | 24       | 8    | `group_blocks` | blocks per allocation group                 |
//! | 32       | 8    | `extent_count` | number of free extents that follow          |
//! | 40       | 16·n | `extent`       | `start` u64, `len` u64; sorted, disjoint    |
//! | 40+16·n  | 4    | `checksum`     | CRC32C of every byte before it              |
//!
//! Busy extents are written as in use: their frees are not durable yet. The decoder
//! checks the length against `extent_count` before reading any extent, so it never
//! allocates for a count it has not seen the bytes of, and it never panics.

use crate::{Allocator, Error, Extent};

/// The first eight bytes of every free-space image.
pub const MAGIC: [u8; 8] = *b"STKALLOC";
/// The image version this crate writes and reads.
pub const FORMAT_VERSION: u32 = 1;

const HEADER_BYTES: usize = 40;
const EXTENT_BYTES: usize = 16;
const CHECKSUM_BYTES: usize = 4;
const _: () = assert!(HEADER_BYTES == 8 + 4 + 4 + 8 + 8 + 8);
const _: () = assert!(EXTENT_BYTES == 2 * 8);

impl Allocator {
    /// The free space as a self-checking image; busy extents count as in use.
    pub fn encode(&self) -> Vec<u8> {
        self.encode_image(None)
    }

    /// The image as it will be once generation `gen` is durable: busy extents freed in
    /// generations `<= gen` are written as free. Write this with the metadata of `gen`.
    pub fn encode_for_commit(&self, gen: u64) -> Vec<u8> {
        self.encode_image(Some(gen))
    }

    fn encode_image(&self, committed: Option<u64>) -> Vec<u8> {
        // Lock every group (in index order) so the image is one consistent snapshot.
        let guards: Vec<_> = self.inner.groups.iter().map(|g| g.lock()).collect();
        let mut free: Vec<Extent> = Vec::new();
        for s in &guards {
            let mut mine: Vec<Extent> = s.free_extents().collect();
            if let Some(gen) = committed {
                mine.extend(s.busy_extents().filter(|&(_, g)| g <= gen).map(|(e, _)| e));
                mine.sort_unstable();
            }
            for e in mine {
                match free.last_mut() {
                    Some(last) if last.end() == e.start => last.len += e.len,
                    _ => free.push(e),
                }
            }
        }
        drop(guards);
        let mut out = Vec::with_capacity(HEADER_BYTES + free.len() * EXTENT_BYTES + CHECKSUM_BYTES);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&self.total_blocks().to_le_bytes());
        out.extend_from_slice(&self.group_blocks().to_le_bytes());
        out.extend_from_slice(&(free.len() as u64).to_le_bytes());
        assert_eq!(out.len(), HEADER_BYTES);
        for e in &free {
            out.extend_from_slice(&e.start.to_le_bytes());
            out.extend_from_slice(&e.len.to_le_bytes());
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Restores an allocator from an image made by [`encode`](Self::encode). Untrusted
    /// bytes give an error naming the offset and field, never a panic.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let corrupt = |offset, field, reason| Error::Corrupt {
            offset,
            field,
            reason,
        };
        if bytes.len() < HEADER_BYTES + CHECKSUM_BYTES {
            return Err(corrupt(
                bytes.len(),
                "header",
                "image shorter than its header",
            ));
        }
        if bytes[..8] != MAGIC {
            return Err(corrupt(0, "magic", "not a free-space image"));
        }
        if u32_at(bytes, 8) != FORMAT_VERSION {
            return Err(corrupt(8, "version", "unsupported version"));
        }
        if u32_at(bytes, 12) != 0 {
            return Err(corrupt(12, "flags", "unknown flags set"));
        }
        let count = u64_at(bytes, 32);
        let body = bytes.len() - HEADER_BYTES - CHECKSUM_BYTES;
        if body % EXTENT_BYTES != 0 || count != (body / EXTENT_BYTES) as u64 {
            return Err(corrupt(
                32,
                "extent_count",
                "does not match the image length",
            ));
        }
        let crc_at = bytes.len() - CHECKSUM_BYTES;
        let stored = u32_at(bytes, crc_at);
        let computed = crc32c::crc32c(&bytes[..crc_at]);
        if stored != computed {
            return Err(Error::Checksum { stored, computed });
        }
        let total = u64_at(bytes, 16);
        let group = u64_at(bytes, 24);
        let a = Allocator::with_nothing_free(total, group).map_err(|e| match e {
            Error::InvalidGeometry { reason, .. } => corrupt(16, "total_blocks", reason),
            other => other,
        })?;
        let mut prev_end = 0u64;
        for i in 0..body / EXTENT_BYTES {
            let at = HEADER_BYTES + i * EXTENT_BYTES;
            let e = Extent::new(u64_at(bytes, at), u64_at(bytes, at + 8));
            if e.len == 0 {
                return Err(corrupt(at + 8, "extent.len", "empty extent"));
            }
            if e.start >= total || e.len > total - e.start {
                return Err(corrupt(at, "extent.start", "extent outside the volume"));
            }
            if e.start < prev_end {
                return Err(corrupt(
                    at,
                    "extent.start",
                    "extents unsorted or overlapping",
                ));
            }
            prev_end = e.end();
            a.insert_free_unchecked(e);
        }
        if cfg!(debug_assertions) {
            if let Err(e) = a.check() {
                panic!("decoded image fails its own check: {e}");
            }
        }
        Ok(a)
    }

    /// Adds a free extent known to be disjoint from all free space (decoder only).
    fn insert_free_unchecked(&self, e: Extent) {
        let first = self.group_index(e.start);
        let last = self.group_index(e.end() - 1);
        for g in &self.inner.groups[first..=last] {
            let mut s = g.lock();
            let start = e.start.max(s.base);
            let end = e.end().min(s.end);
            s.insert_free(start, end - start);
            g.publish(&s);
        }
    }
}

/// The little-endian u32 at `at`; the caller has checked the length.
fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(b)
}

/// The little-endian u64 at `at`; the caller has checked the length.
fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(b)
}
