//! Little-endian field readers and writers that know where they are on the device.

use super::FormatError;

/// Reads little-endian fields from untrusted bytes; every error names the field and its
/// device offset.
#[derive(Debug)]
pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    base_offset: u64,
    what: &'static str,
}

impl<'a> Cursor<'a> {
    /// A cursor over `buf`, which sits at `base_offset` on the device.
    pub(crate) fn new(what: &'static str, buf: &'a [u8], base_offset: u64) -> Self {
        Cursor {
            buf,
            pos: 0,
            base_offset,
            what,
        }
    }

    /// Device offset of the next byte.
    pub(crate) fn offset(&self) -> u64 {
        self.base_offset + self.pos as u64
    }

    /// Bytes not read yet.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The next `len` bytes.
    pub(crate) fn bytes(
        &mut self,
        field: &'static str,
        len: usize,
    ) -> Result<&'a [u8], FormatError> {
        if self.remaining() < len {
            return Err(FormatError::Truncated {
                what: self.what,
                field,
                offset: self.offset(),
                available: self.remaining(),
            });
        }
        let out = &self.buf[self.pos..self.pos + len];
        self.pos += len;
        Ok(out)
    }

    /// A fixed-size array.
    pub(crate) fn array<const N: usize>(
        &mut self,
        field: &'static str,
    ) -> Result<[u8; N], FormatError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(field, N)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, FormatError> {
        Ok(self.array::<1>(field)?[0])
    }

    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16, FormatError> {
        Ok(u16::from_le_bytes(self.array(field)?))
    }

    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, FormatError> {
        Ok(u32::from_le_bytes(self.array(field)?))
    }

    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, FormatError> {
        Ok(u64::from_le_bytes(self.array(field)?))
    }

    /// An error for the field that ends at the current position (just read).
    pub(crate) fn bad_value(
        &self,
        field: &'static str,
        field_len: usize,
        value: u64,
        expected: impl Into<String>,
    ) -> FormatError {
        FormatError::BadValue {
            what: self.what,
            field,
            offset: self.offset() - field_len as u64,
            value,
            expected: expected.into(),
        }
    }

    /// Checks that `field` (just read, `field_len` bytes) is zero.
    pub(crate) fn expect_zero(
        &self,
        field: &'static str,
        field_len: usize,
        value: u64,
    ) -> Result<(), FormatError> {
        if value == 0 {
            Ok(())
        } else {
            Err(self.bad_value(field, field_len, value, "0 (reserved)"))
        }
    }
}

/// Appends little-endian fields to a byte vector.
#[derive(Debug, Default)]
pub(crate) struct Writer {
    pub(crate) buf: Vec<u8>,
}

impl Writer {
    pub(crate) fn with_capacity(capacity_bytes: usize) -> Self {
        Writer {
            buf: Vec::with_capacity(capacity_bytes),
        }
    }
    pub(crate) fn bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }
    pub(crate) fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub(crate) fn u16(&mut self, v: u16) {
        self.bytes(&v.to_le_bytes());
    }
    pub(crate) fn u32(&mut self, v: u32) {
        self.bytes(&v.to_le_bytes());
    }
    pub(crate) fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_field_names_field_and_offset() {
        let bytes = [1u8, 2, 3];
        let mut c = Cursor::new("thing", &bytes, 100);
        assert_eq!(c.u16("a").unwrap(), 0x0201);
        let err = c.u32("b").unwrap_err();
        assert_eq!(
            err,
            FormatError::Truncated {
                what: "thing",
                field: "b",
                offset: 102,
                available: 1
            }
        );
    }

    #[test]
    fn writer_and_cursor_agree() {
        let mut w = Writer::default();
        w.u8(7);
        w.u16(0x1234);
        w.u32(0xdead_beef);
        w.u64(u64::MAX - 5);
        let mut c = Cursor::new("t", &w.buf, 0);
        assert_eq!(c.u8("a").unwrap(), 7);
        assert_eq!(c.u16("b").unwrap(), 0x1234);
        assert_eq!(c.u32("c").unwrap(), 0xdead_beef);
        assert_eq!(c.u64("d").unwrap(), u64::MAX - 5);
        assert_eq!(c.remaining(), 0);
    }
}
