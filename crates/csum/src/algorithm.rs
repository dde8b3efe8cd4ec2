//! Which checksum function a volume uses: names, stable on-disk ids, stored widths.

#![forbid(unsafe_code)]

use crate::Error;
use std::fmt;
use std::str::FromStr;

/// A checksum algorithm.
///
/// The name (`crc32c`, `xxh3`, `xxh64`) is what users type and what tools print; the
/// [`id`](Algorithm::id) is what a volume stores on disk and never changes meaning; the
/// [`width_bytes`](Algorithm::width_bytes) is how many bytes one stored checksum takes
/// (little-endian, see [`Algorithm::encode`]).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Algorithm {
    /// CRC-32C (Castagnoli) through the `crc32c` crate, which uses the SSE4.2 / ARMv8
    /// CRC instructions when present. The default: fast everywhere and a good detector
    /// of burst errors. Stored in 4 bytes.
    #[default]
    Crc32c,
    /// XXH3-64 (`xxhash-rust`, with a runtime-dispatched AVX2 path for inputs of 257
    /// bytes and more, see [`crate::xxh3_64_with_seed`]). Stored in 8 bytes.
    Xxh3,
    /// xxHash64 (`xxhash-rust`). Stored in 8 bytes.
    Xxh64,
}

/// The known names, as listed in [`Error::UnknownAlgorithm`].
const KNOWN_NAMES: &str = "crc32c, xxh3, xxh64";
/// The known ids, as listed in [`Error::UnknownAlgorithmId`].
const KNOWN_IDS: &str = "1 = crc32c, 2 = xxh3, 3 = xxh64";

impl Algorithm {
    /// Every algorithm, in id order.
    pub const ALL: [Algorithm; 3] = [Algorithm::Crc32c, Algorithm::Xxh3, Algorithm::Xxh64];

    /// The name users type and tools print: `crc32c`, `xxh3` or `xxh64`.
    pub const fn name(self) -> &'static str {
        match self {
            Algorithm::Crc32c => "crc32c",
            Algorithm::Xxh3 => "xxh3",
            Algorithm::Xxh64 => "xxh64",
        }
    }

    /// Bytes one stored checksum takes: 4 for CRC32C, 8 for the xxHash family.
    pub const fn width_bytes(self) -> usize {
        match self {
            Algorithm::Crc32c => 4,
            Algorithm::Xxh3 | Algorithm::Xxh64 => 8,
        }
    }

    /// The stable on-disk id: 1 = crc32c, 2 = xxh3, 3 = xxh64. Zero is never an id, so
    /// a zeroed field does not decode as an algorithm.
    pub const fn id(self) -> u8 {
        match self {
            Algorithm::Crc32c => 1,
            Algorithm::Xxh3 => 2,
            Algorithm::Xxh64 => 3,
        }
    }

    /// The algorithm with on-disk id `id`.
    pub fn from_id(id: u8) -> Result<Self, Error> {
        Algorithm::ALL
            .into_iter()
            .find(|a| a.id() == id)
            .ok_or(Error::UnknownAlgorithmId {
                id,
                known: KNOWN_IDS,
            })
    }

    /// The bits a checksum of this algorithm can have set: `0xffff_ffff` for CRC32C,
    /// all 64 for the others.
    pub const fn mask(self) -> u64 {
        match self.width_bytes() {
            4 => u32::MAX as u64,
            _ => u64::MAX,
        }
    }

    /// Writes `value` little-endian into `out`, which must be exactly
    /// [`width_bytes`](Algorithm::width_bytes) long.
    pub fn encode(self, value: u64, out: &mut [u8]) -> Result<(), Error> {
        let width_bytes = self.width_bytes();
        if out.len() != width_bytes {
            return Err(Error::WidthMismatch {
                algorithm: self,
                len_bytes: out.len(),
                width_bytes,
            });
        }
        if value & !self.mask() != 0 {
            return Err(Error::ValueTooWide {
                algorithm: self,
                value,
                width_bytes,
            });
        }
        out.copy_from_slice(&value.to_le_bytes()[..width_bytes]);
        Ok(())
    }

    /// Reads a little-endian checksum of exactly [`width_bytes`](Algorithm::width_bytes).
    pub fn decode(self, bytes: &[u8]) -> Result<u64, Error> {
        let width_bytes = self.width_bytes();
        if bytes.len() != width_bytes {
            return Err(Error::WidthMismatch {
                algorithm: self,
                len_bytes: bytes.len(),
                width_bytes,
            });
        }
        let mut le = [0u8; 8];
        le[..width_bytes].copy_from_slice(bytes);
        Ok(u64::from_le_bytes(le))
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Algorithm {
    type Err = Error;

    /// Parses a name as printed by [`Algorithm::name`]; ASCII case is ignored.
    fn from_str(s: &str) -> Result<Self, Error> {
        Algorithm::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| Error::UnknownAlgorithm {
                name: s.to_owned(),
                known: KNOWN_NAMES,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for a in Algorithm::ALL {
            assert_eq!(a.name().parse::<Algorithm>(), Ok(a));
            assert_eq!(a.to_string(), a.name());
            assert_eq!(a.name().to_uppercase().parse::<Algorithm>(), Ok(a));
        }
        assert_eq!(Algorithm::default(), Algorithm::Crc32c);
    }

    #[test]
    fn unknown_name_lists_known_ones() {
        let err = "md5".parse::<Algorithm>().unwrap_err();
        assert_eq!(
            err,
            Error::UnknownAlgorithm {
                name: "md5".into(),
                known: KNOWN_NAMES
            }
        );
        let msg = err.to_string();
        for a in Algorithm::ALL {
            assert!(msg.contains(a.name()), "{msg}");
        }
        assert!("".parse::<Algorithm>().is_err());
        assert!("crc32".parse::<Algorithm>().is_err());
    }

    #[test]
    fn ids_are_stable() {
        // These are on-disk values: changing one breaks every existing volume.
        assert_eq!(Algorithm::Crc32c.id(), 1);
        assert_eq!(Algorithm::Xxh3.id(), 2);
        assert_eq!(Algorithm::Xxh64.id(), 3);
        for a in Algorithm::ALL {
            assert_eq!(Algorithm::from_id(a.id()), Ok(a));
        }
        for id in [0u8, 4, 255] {
            assert!(matches!(
                Algorithm::from_id(id),
                Err(Error::UnknownAlgorithmId { id: got, .. }) if got == id
            ));
        }
    }

    #[test]
    fn widths_and_encoding() {
        assert_eq!(Algorithm::Crc32c.width_bytes(), 4);
        assert_eq!(Algorithm::Xxh3.width_bytes(), 8);
        assert_eq!(Algorithm::Xxh64.width_bytes(), 8);
        let mut four = [0u8; 4];
        Algorithm::Crc32c.encode(0xE306_9283, &mut four).unwrap();
        assert_eq!(four, [0x83, 0x92, 0x06, 0xE3]);
        assert_eq!(Algorithm::Crc32c.decode(&four), Ok(0xE306_9283));
        assert!(matches!(
            Algorithm::Crc32c.encode(1 << 32, &mut four),
            Err(Error::ValueTooWide { .. })
        ));
        let mut eight = [0u8; 8];
        Algorithm::Xxh64.encode(u64::MAX - 5, &mut eight).unwrap();
        assert_eq!(Algorithm::Xxh64.decode(&eight), Ok(u64::MAX - 5));
        assert!(matches!(
            Algorithm::Xxh3.encode(1, &mut four),
            Err(Error::WidthMismatch {
                len_bytes: 4,
                width_bytes: 8,
                ..
            })
        ));
        assert!(Algorithm::Crc32c.decode(&eight).is_err());
    }
}
