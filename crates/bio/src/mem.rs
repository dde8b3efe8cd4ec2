//! `MemDevice`: a device in memory, for tests and for reopening crash images.

use crate::device::check_range;
use crate::{Device, DeviceInfo, DeviceKind, Error};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Logical block size of a [`MemDevice`] made with [`MemDevice::new`].
pub const MEM_LOGICAL_BLOCK_SIZE: u32 = 512;

/// A fixed-size device held in memory. Flush does nothing: every write is "durable"
/// (wrap it in a [`crate::FaultyDevice`] to model a volatile cache).
#[derive(Debug)]
pub struct MemDevice {
    name: String,
    data: RwLock<Vec<u8>>,
    logical_block_size: u32,
}

impl MemDevice {
    /// A zeroed device of `size_bytes` with 512-byte logical blocks.
    pub fn new(size_bytes: u64) -> Self {
        let len = usize::try_from(size_bytes).expect("a memory device fits in the address space");
        Self::from_bytes(vec![0; len], MEM_LOGICAL_BLOCK_SIZE)
    }

    /// A device holding `bytes`, with the given logical block size.
    ///
    /// # Panics
    /// If `logical_block_size` is not a power of two.
    pub fn from_bytes(bytes: Vec<u8>, logical_block_size: u32) -> Self {
        assert!(logical_block_size.is_power_of_two());
        Self {
            name: "mem".to_owned(),
            data: RwLock::new(bytes),
            logical_block_size,
        }
    }

    /// The same device under another name (shown in errors and [`DeviceInfo::path`]).
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// A copy of the whole contents.
    pub fn snapshot(&self) -> Vec<u8> {
        self.read().clone()
    }

    fn read(&self) -> RwLockReadGuard<'_, Vec<u8>> {
        self.data.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Vec<u8>> {
        self.data.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl Device for MemDevice {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<(), Error> {
        let data = self.read();
        check_range(&self.name, offset, buf.len(), data.len() as u64)?;
        let at = offset as usize;
        buf.copy_from_slice(&data[at..at + buf.len()]);
        Ok(())
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> Result<(), Error> {
        let mut data = self.write();
        check_range(&self.name, offset, buf.len(), data.len() as u64)?;
        let at = offset as usize;
        data[at..at + buf.len()].copy_from_slice(buf);
        Ok(())
    }

    fn flush(&self) -> Result<(), Error> {
        Ok(())
    }

    fn size_bytes(&self) -> u64 {
        self.read().len() as u64
    }

    fn logical_block_size(&self) -> u32 {
        self.logical_block_size
    }

    fn info(&self) -> DeviceInfo {
        DeviceInfo {
            path: self.name.clone(),
            kind: DeviceKind::Memory,
            size_bytes: self.size_bytes(),
            logical_block_size: self.logical_block_size,
            model: None,
            serial: None,
            direct: false,
            read_only: false,
            backing: crate::Backing::Memory,
            reads: crate::ReadPath::Memory,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_back_writes_and_refuses_out_of_range() {
        let dev = MemDevice::new(4096);
        dev.writev_at(&[b"ab", b"cd"], 10).unwrap();
        let mut a = [0u8; 3];
        let mut b = [0u8; 1];
        dev.readv_at(&mut [&mut a, &mut b], 10).unwrap();
        assert_eq!(&a, b"abc");
        assert_eq!(&b, b"d");
        let err = dev.write_at(&[0; 2], 4095).unwrap_err();
        assert!(
            matches!(
                err,
                Error::OutOfRange {
                    offset: 4095,
                    len: 2,
                    size: 4096,
                    ..
                }
            ),
            "{err}"
        );
        assert!(matches!(
            dev.read_at(&mut [0; 1], u64::MAX).unwrap_err(),
            Error::OutOfRange { .. }
        ));
        assert_eq!(dev.snapshot()[10..14], *b"abcd");
    }
}
