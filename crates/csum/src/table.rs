//! Checksum tables: many stored checksums packed back to back, encoded and decoded in bulk.
//!
//! A table is what a volume keeps next to its data: entry `i` is the checksum of block
//! `first_addr + i`, each [`Algorithm::width_bytes`] long, little-endian, no padding, no
//! header. Encoding and decoding are exact inverses for values that fit the width.

#![forbid(unsafe_code)]

use crate::{Algorithm, BlockCsum, Error, Mismatch};

/// Blocks verified per round in [`BlockCsum::verify_table`]: the decoded checksums live
/// in a stack array this long, so verifying a table allocates nothing.
const VERIFY_CHUNK: usize = 64;

impl Algorithm {
    /// Bytes a table of `entries` checksums takes (`entries * width_bytes`), or `None`
    /// if that does not fit in a `usize`.
    ///
    /// ```
    /// use stack_csum::Algorithm;
    /// assert_eq!(Algorithm::Crc32c.table_len_bytes(1000), Some(4000));
    /// assert_eq!(Algorithm::Xxh3.table_len_bytes(1000), Some(8000));
    /// assert_eq!(Algorithm::Xxh3.table_len_bytes(usize::MAX), None);
    /// ```
    pub const fn table_len_bytes(self, entries: usize) -> Option<usize> {
        entries.checked_mul(self.width_bytes())
    }

    /// Writes `values` into `out` as a table: value `i` little-endian at byte offset
    /// `i * width_bytes`. `out` must be exactly
    /// [`table_len_bytes(values.len())`](Algorithm::table_len_bytes) long.
    ///
    /// # Errors
    /// [`Error::TableSize`] if `out` has the wrong length (nothing is written);
    /// [`Error::TableValueTooWide`] naming the first value with bits above the width,
    /// its index and its byte offset (the entries before it are written).
    ///
    /// ```
    /// use stack_csum::{Algorithm, Error};
    /// let mut table = [0u8; 8];
    /// Algorithm::Crc32c.encode_table(&[0xE306_9283, 7], &mut table)?;
    /// assert_eq!(table, [0x83, 0x92, 0x06, 0xE3, 7, 0, 0, 0]);
    ///
    /// let err = Algorithm::Crc32c.encode_table(&[1, 1 << 32], &mut table).unwrap_err();
    /// assert!(matches!(err, Error::TableValueTooWide { index: 1, offset_bytes: 4, .. }));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn encode_table(self, values: &[u64], out: &mut [u8]) -> Result<(), Error> {
        let width_bytes = self.width_bytes();
        self.check_table_size(values.len(), out.len())?;
        let mask = self.mask();
        for (index, (&value, slot)) in values
            .iter()
            .zip(out.chunks_exact_mut(width_bytes))
            .enumerate()
        {
            if value & !mask != 0 {
                return Err(Error::TableValueTooWide {
                    algorithm: self,
                    index,
                    offset_bytes: index * width_bytes,
                    value,
                    width_bytes,
                });
            }
            slot.copy_from_slice(&value.to_le_bytes()[..width_bytes]);
        }
        Ok(())
    }

    /// Reads a table into `out`, one value per entry. `bytes` must be a whole number of
    /// entries, exactly `out.len()` of them.
    ///
    /// # Errors
    /// [`Error::TablePartialEntry`] naming the byte offset where a cut-off last entry
    /// starts; [`Error::TableSize`] if the table holds another number of entries than
    /// `out` has slots. Nothing is written to `out` on an error.
    ///
    /// ```
    /// use stack_csum::{Algorithm, Error};
    /// let table = [0x83, 0x92, 0x06, 0xE3, 7, 0, 0, 0];
    /// let mut values = [0u64; 2];
    /// Algorithm::Crc32c.decode_table(&table, &mut values)?;
    /// assert_eq!(values, [0xE306_9283, 7]);
    ///
    /// let err = Algorithm::Crc32c.decode_table(&table[..6], &mut values[..1]).unwrap_err();
    /// assert!(matches!(err, Error::TablePartialEntry { offset_bytes: 4, .. }));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn decode_table(self, bytes: &[u8], out: &mut [u64]) -> Result<(), Error> {
        let width_bytes = self.width_bytes();
        self.check_whole_entries(bytes.len())?;
        self.check_table_size(out.len(), bytes.len())?;
        for (entry, slot) in bytes.chunks_exact(width_bytes).zip(out.iter_mut()) {
            let mut le = [0u8; 8];
            le[..width_bytes].copy_from_slice(entry);
            *slot = u64::from_le_bytes(le);
        }
        Ok(())
    }

    /// Reads a whole table into a new `Vec`, one value per entry.
    ///
    /// # Errors
    /// [`Error::TablePartialEntry`] if `bytes` is not a whole number of entries.
    ///
    /// ```
    /// use stack_csum::Algorithm;
    /// let values = Algorithm::Xxh64.decode_table_vec(&[1, 0, 0, 0, 0, 0, 0, 0])?;
    /// assert_eq!(values, [1]);
    /// # Ok::<(), stack_csum::Error>(())
    /// ```
    pub fn decode_table_vec(self, bytes: &[u8]) -> Result<Vec<u64>, Error> {
        self.check_whole_entries(bytes.len())?;
        let mut out = vec![0; bytes.len() / self.width_bytes()];
        self.decode_table(bytes, &mut out)?;
        Ok(out)
    }

    /// `len_bytes` is a whole number of entries, or the error naming where the cut-off
    /// entry starts.
    fn check_whole_entries(self, len_bytes: usize) -> Result<(), Error> {
        let width_bytes = self.width_bytes();
        let rest_bytes = len_bytes % width_bytes;
        if rest_bytes != 0 {
            return Err(Error::TablePartialEntry {
                algorithm: self,
                offset_bytes: len_bytes - rest_bytes,
                len_bytes,
                width_bytes,
            });
        }
        Ok(())
    }

    /// A table of `entries` checksums is `len_bytes` long, or the error saying how long
    /// it should be.
    fn check_table_size(self, entries: usize, len_bytes: usize) -> Result<(), Error> {
        match self.table_len_bytes(entries) {
            Some(expected) if expected == len_bytes => Ok(()),
            expected => Err(Error::TableSize {
                algorithm: self,
                entries,
                len_bytes,
                expected_bytes: expected,
            }),
        }
    }
}

impl BlockCsum {
    /// Like [`compute`](BlockCsum::compute), but writes the checksums straight into an
    /// encoded table (`table` holds one [`Algorithm::width_bytes`] entry per block of
    /// `buf`): what a volume stores, with no `u64` slice in between.
    ///
    /// # Errors
    /// Those of [`compute`](BlockCsum::compute) (checked against the table's entry
    /// count), and [`Error::TablePartialEntry`] if `table` is not whole entries.
    ///
    /// ```
    /// use stack_csum::{Algorithm, BlockCsum};
    /// let csum = BlockCsum::new(Algorithm::Crc32c, 42, 512)?;
    /// let data = vec![3u8; 4 * 512];
    /// let mut table = vec![0u8; 4 * 4];
    /// csum.compute_table(10, &data, &mut table)?;
    /// assert_eq!(csum.verify_table(10, &data, &table, &mut Vec::new())?, 0);
    /// # Ok::<(), stack_csum::Error>(())
    /// ```
    pub fn compute_table(
        &self,
        first_addr: u64,
        buf: &[u8],
        table: &mut [u8],
    ) -> Result<(), Error> {
        let algorithm = self.algorithm();
        let width_bytes = algorithm.width_bytes();
        algorithm.check_whole_entries(table.len())?;
        let entries = table.len() / width_bytes;
        self.check_shape(first_addr, buf, entries)?;
        let chunk_bytes = VERIFY_CHUNK * self.block_size_bytes();
        let mut sums = [0u64; VERIFY_CHUNK];
        let mut addr = first_addr;
        for (data, out) in buf
            .chunks(chunk_bytes)
            .zip(table.chunks_mut(VERIFY_CHUNK * width_bytes))
        {
            let sums = &mut sums[..out.len() / width_bytes];
            self.compute(addr, data, sums)?;
            algorithm.encode_table(sums, out)?;
            addr = addr.wrapping_add(sums.len() as u64);
        }
        Ok(())
    }

    /// Like [`verify`](BlockCsum::verify), against an encoded table as stored: pushes a
    /// [`Mismatch`] for every block of `buf` whose checksum differs from its entry in
    /// `table`, in block order, and returns how many did. Allocates nothing unless a
    /// block mismatches.
    ///
    /// # Errors
    /// Those of [`verify`](BlockCsum::verify) (checked against the table's entry count),
    /// and [`Error::TablePartialEntry`] if `table` is not whole entries.
    pub fn verify_table(
        &self,
        first_addr: u64,
        buf: &[u8],
        table: &[u8],
        mismatches: &mut Vec<Mismatch>,
    ) -> Result<usize, Error> {
        let algorithm = self.algorithm();
        let width_bytes = algorithm.width_bytes();
        algorithm.check_whole_entries(table.len())?;
        self.check_shape(first_addr, buf, table.len() / width_bytes)?;
        let chunk_bytes = VERIFY_CHUNK * self.block_size_bytes();
        let mut sums = [0u64; VERIFY_CHUNK];
        let mut bad = 0;
        let mut first_index = 0;
        for (data, entries) in buf
            .chunks(chunk_bytes)
            .zip(table.chunks(VERIFY_CHUNK * width_bytes))
        {
            let sums = &mut sums[..entries.len() / width_bytes];
            algorithm.decode_table(entries, sums)?;
            let before = mismatches.len();
            bad += self.verify(
                first_addr.wrapping_add(first_index as u64),
                data,
                sums,
                mismatches,
            )?;
            // `verify` numbers blocks within its own buffer; make them table indexes.
            for m in &mut mismatches[before..] {
                m.index += first_index;
            }
            first_index += sums.len();
        }
        Ok(bad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn encode_writes_little_endian_entries_back_to_back() {
        let mut four = [0u8; 12];
        Algorithm::Crc32c
            .encode_table(&[0x0403_0201, 0, 0xffff_ffff], &mut four)
            .unwrap();
        assert_eq!(four, [1, 2, 3, 4, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]);
        let mut eight = [0u8; 16];
        Algorithm::Xxh3
            .encode_table(&[0x0807_0605_0403_0201, u64::MAX], &mut eight)
            .unwrap();
        assert_eq!(eight[..8], [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(eight[8..], [0xff; 8]);
        // The empty table.
        Algorithm::Xxh64.encode_table(&[], &mut []).unwrap();
        assert_eq!(Algorithm::Xxh64.decode_table_vec(&[]), Ok(vec![]));
    }

    #[test]
    fn table_len_bytes_is_entries_times_width() {
        assert_eq!(Algorithm::Crc32c.table_len_bytes(0), Some(0));
        assert_eq!(Algorithm::Crc32c.table_len_bytes(3), Some(12));
        assert_eq!(Algorithm::Xxh64.table_len_bytes(3), Some(24));
        assert_eq!(Algorithm::Crc32c.table_len_bytes(usize::MAX / 4 + 1), None);
    }

    #[test]
    fn encode_errors_name_the_size_and_the_offending_entry() {
        let mut out = [0u8; 7];
        assert_eq!(
            Algorithm::Crc32c.encode_table(&[1, 2], &mut out),
            Err(Error::TableSize {
                algorithm: Algorithm::Crc32c,
                entries: 2,
                len_bytes: 7,
                expected_bytes: Some(8),
            })
        );
        // Nothing written on a size error.
        assert_eq!(out, [0; 7]);
        let mut out = [0u8; 12];
        let err = Algorithm::Crc32c
            .encode_table(&[5, 6, 1 << 40], &mut out)
            .unwrap_err();
        assert_eq!(
            err,
            Error::TableValueTooWide {
                algorithm: Algorithm::Crc32c,
                index: 2,
                offset_bytes: 8,
                value: 1 << 40,
                width_bytes: 4,
            }
        );
        assert!(err.to_string().contains("offset 8"), "{err}");
        // The entries before the bad one are written.
        assert_eq!(out[..8], [5, 0, 0, 0, 6, 0, 0, 0]);
        // A value exactly at the width fits; the xxHash family takes every u64.
        Algorithm::Crc32c
            .encode_table(&[0, 0, u64::from(u32::MAX)], &mut out)
            .unwrap();
        let mut eight = [0u8; 8];
        Algorithm::Xxh3
            .encode_table(&[u64::MAX], &mut eight)
            .unwrap();
    }

    #[test]
    fn decode_errors_name_the_cut_off_entry_and_the_size() {
        let bytes = [9u8; 22];
        let mut out = [0u64; 3];
        let err = Algorithm::Xxh64.decode_table(&bytes, &mut out).unwrap_err();
        assert_eq!(
            err,
            Error::TablePartialEntry {
                algorithm: Algorithm::Xxh64,
                offset_bytes: 16,
                len_bytes: 22,
                width_bytes: 8,
            }
        );
        assert!(err.to_string().contains("offset 16"), "{err}");
        assert_eq!(out, [0; 3], "nothing decoded on an error");
        assert_eq!(
            Algorithm::Xxh64.decode_table(&bytes[..16], &mut out),
            Err(Error::TableSize {
                algorithm: Algorithm::Xxh64,
                entries: 3,
                len_bytes: 16,
                expected_bytes: Some(24),
            })
        );
        assert_eq!(out, [0; 3]);
        assert!(matches!(
            Algorithm::Crc32c.decode_table_vec(&[1, 2, 3]),
            Err(Error::TablePartialEntry {
                offset_bytes: 0,
                len_bytes: 3,
                ..
            })
        ));
        assert_eq!(
            Algorithm::Crc32c.decode_table_vec(&[1, 0, 0, 0, 2, 0, 0, 0]),
            Ok(vec![1, 2])
        );
    }

    #[test]
    fn compute_table_and_verify_table_match_the_slice_calls_across_chunks() {
        // 150 blocks: more than two rounds of VERIFY_CHUNK, the last one partial.
        let blocks = 2 * VERIFY_CHUNK + 22;
        for algorithm in Algorithm::ALL {
            let csum = BlockCsum::new(algorithm, 0xabc, 64).unwrap();
            let mut buf: Vec<u8> = (0..blocks * 64).map(|i| (i * 7 + i / 64) as u8).collect();
            let mut sums = vec![0u64; blocks];
            csum.compute(1000, &buf, &mut sums).unwrap();
            let mut table = vec![0u8; algorithm.table_len_bytes(blocks).unwrap()];
            csum.compute_table(1000, &buf, &mut table).unwrap();
            assert_eq!(
                algorithm.decode_table_vec(&table).unwrap(),
                sums,
                "{algorithm}"
            );

            let mut bad = Vec::new();
            assert_eq!(csum.verify_table(1000, &buf, &table, &mut bad), Ok(0));
            assert!(bad.is_empty());
            // Damage blocks 3 and 140 (the third round): both reported with their
            // index in the whole table, not in the round.
            buf[3 * 64] ^= 1;
            buf[140 * 64 + 5] ^= 0x80;
            assert_eq!(csum.verify_table(1000, &buf, &table, &mut bad), Ok(2));
            assert_eq!(
                bad.iter().map(|m| (m.index, m.addr)).collect::<Vec<_>>(),
                [(3, 1003), (140, 1140)]
            );
            assert_eq!(bad[1].expected, sums[140]);
            assert_eq!(bad[1].found, csum.block(1140, &buf[140 * 64..141 * 64]));
            // Read from the wrong place: every block fails.
            bad.clear();
            assert_eq!(csum.verify_table(5000, &buf, &table, &mut bad), Ok(blocks));
        }
    }

    #[test]
    fn table_calls_check_their_shapes() {
        let csum = BlockCsum::new(Algorithm::Crc32c, 1, 64).unwrap();
        let buf = [0u8; 128];
        assert!(matches!(
            csum.compute_table(0, &buf, &mut [0u8; 9]),
            Err(Error::TablePartialEntry {
                offset_bytes: 8,
                ..
            })
        ));
        assert_eq!(
            csum.compute_table(0, &buf, &mut [0u8; 12]),
            Err(Error::CountMismatch {
                blocks: 2,
                checksums: 3
            })
        );
        assert!(matches!(
            csum.verify_table(0, &buf, &[0u8; 7], &mut Vec::new()),
            Err(Error::TablePartialEntry {
                offset_bytes: 4,
                ..
            })
        ));
        assert_eq!(
            csum.verify_table(0, &buf, &[0u8; 4], &mut Vec::new()),
            Err(Error::CountMismatch {
                blocks: 2,
                checksums: 1
            })
        );
        assert!(matches!(
            csum.verify_table(u64::MAX, &buf, &[0u8; 8], &mut Vec::new()),
            Err(Error::AddressOverflow { .. })
        ));
    }

    proptest! {
        /// Decoding an encoded table gives the values back, for every algorithm and
        /// every value that fits its width; the bytes are the per-value `encode`.
        #[test]
        fn encode_then_decode_is_identity(
            values in prop::collection::vec(any::<u64>(), 0..200),
            pick in 0usize..3,
        ) {
            let algorithm = Algorithm::ALL[pick];
            let values: Vec<u64> = values.iter().map(|v| v & algorithm.mask()).collect();
            let w = algorithm.width_bytes();
            let mut table = vec![0u8; algorithm.table_len_bytes(values.len()).unwrap()];
            algorithm.encode_table(&values, &mut table).unwrap();
            for (i, &v) in values.iter().enumerate() {
                let mut one = vec![0u8; w];
                algorithm.encode(v, &mut one).unwrap();
                prop_assert_eq!(&table[i * w..(i + 1) * w], &one[..]);
            }
            prop_assert_eq!(algorithm.decode_table_vec(&table).unwrap(), values);
        }

        /// Any bytes of whole entries decode, and encode back to the same bytes.
        #[test]
        fn decode_then_encode_is_identity(
            bytes in prop::collection::vec(any::<u8>(), 0..400),
            pick in 0usize..3,
        ) {
            let algorithm = Algorithm::ALL[pick];
            let whole = bytes.len() - bytes.len() % algorithm.width_bytes();
            let values = algorithm.decode_table_vec(&bytes[..whole]).unwrap();
            let mut again = vec![0u8; whole];
            algorithm.encode_table(&values, &mut again).unwrap();
            prop_assert_eq!(&again[..], &bytes[..whole]);
        }
    }
}
