//! `CrashDevice`: an in-memory device with a volatile write cache, a crash at a chosen
//! write number, and injected write errors (EIO on a byte range, ENOSPC past a budget).
//!
//! It separates bytes *written* (what reads see) from bytes *durable* (what survives a
//! crash): a flush makes everything written durable. When write number `crash_at`
//! arrives the device "loses power": that write and everything after fail, and the crash
//! image is the durable bytes plus an arbitrary (seeded) subset of the writes since the
//! last flush, the last of them possibly torn at a sector boundary — what a real disk
//! with a write cache may keep. `stack-bio` promises a `FaultyDevice` with such a model;
//! until it lands this file is the test's own.

use std::ops::Range;
use std::sync::Mutex;

use stack_bio::{Device, DeviceInfo, DeviceKind, Error};

use super::mutate::Rng;

const SECTOR_BYTES: usize = 512;

#[derive(Debug)]
struct State {
    written: Vec<u8>,
    durable: Vec<u8>,
    /// Writes since the last flush: (offset, bytes).
    pending: Vec<(u64, Vec<u8>)>,
    writes: u64,
    crashed: bool,
    crash_image: Option<Vec<u8>>,
    rng: Rng,
    /// Bytes of data writes allowed before ENOSPC.
    space_left_bytes: Option<u64>,
}

/// See the module documentation.
#[derive(Debug)]
pub struct CrashDevice {
    state: Mutex<State>,
    crash_at: Option<u64>,
    eio_range: Option<Range<u64>>,
}

impl CrashDevice {
    /// A device over `image`; crashes at write number `crash_at` (counting from 0)
    /// if given, with `seed` choosing which unflushed writes survive.
    pub fn new(image: Vec<u8>, crash_at: Option<u64>, seed: u64) -> CrashDevice {
        CrashDevice {
            state: Mutex::new(State {
                durable: image.clone(),
                written: image,
                pending: Vec::new(),
                writes: 0,
                crashed: false,
                crash_image: None,
                rng: Rng::new(seed),
                space_left_bytes: None,
            }),
            crash_at,
            eio_range: None,
        }
    }

    /// Fails every write that touches `range` with EIO.
    pub fn with_eio(mut self, range: Range<u64>) -> CrashDevice {
        self.eio_range = Some(range);
        self
    }

    /// Fails writes with ENOSPC once `bytes` more have been written.
    pub fn with_space(self, bytes: u64) -> CrashDevice {
        self.lock().space_left_bytes = Some(bytes);
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes seen so far (including the failed ones).
    pub fn writes(&self) -> u64 {
        self.lock().writes
    }

    /// Whether the crash happened.
    pub fn crashed(&self) -> bool {
        self.lock().crashed
    }

    /// What a reboot finds: the crash image if the device crashed, else what was written
    /// (a clean shutdown flushes).
    pub fn image_after_power_loss(&self) -> Vec<u8> {
        let s = self.lock();
        s.crash_image.clone().unwrap_or_else(|| s.written.clone())
    }

    fn fail(op: &'static str, offset: u64, len: usize, errno: i32) -> Error {
        Error::Io {
            device: "crash-device".into(),
            offset,
            len,
            op,
            source: std::io::Error::from_raw_os_error(errno),
        }
    }
}

fn crash(s: &mut State) {
    s.crashed = true;
    let mut image = s.durable.clone();
    let pending = std::mem::take(&mut s.pending);
    let count = pending.len();
    for (i, (offset, data)) in pending.into_iter().enumerate() {
        if s.rng.one_in(2) {
            continue; // never reached the platter
        }
        let keep = if i + 1 == count && s.rng.one_in(2) {
            // The last one may be torn at a sector boundary.
            (s.rng.index(data.len() / SECTOR_BYTES + 1) * SECTOR_BYTES).min(data.len())
        } else {
            data.len()
        };
        let at = offset as usize;
        image[at..at + keep].copy_from_slice(&data[..keep]);
    }
    s.crash_image = Some(image);
}

impl Device for CrashDevice {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<(), Error> {
        let s = self.lock();
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|&e| e <= s.written.len() as u64);
        let Some(end) = end else {
            return Err(Error::OutOfRange {
                device: "crash-device".into(),
                offset,
                len: buf.len(),
                size: s.written.len() as u64,
            });
        };
        buf.copy_from_slice(&s.written[offset as usize..end as usize]);
        Ok(())
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> Result<(), Error> {
        let mut s = self.lock();
        let n = s.writes;
        s.writes += 1;
        if s.crashed {
            return Err(Self::fail("write", offset, buf.len(), libc::EIO));
        }
        if self.crash_at == Some(n) {
            crash(&mut s);
            return Err(Self::fail("write", offset, buf.len(), libc::EIO));
        }
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|&e| e <= s.written.len() as u64);
        let Some(end) = end else {
            return Err(Error::OutOfRange {
                device: "crash-device".into(),
                offset,
                len: buf.len(),
                size: s.written.len() as u64,
            });
        };
        if let Some(r) = &self.eio_range {
            if offset < r.end && end > r.start {
                return Err(Self::fail("write", offset, buf.len(), libc::EIO));
            }
        }
        if let Some(left) = s.space_left_bytes {
            if left < buf.len() as u64 {
                return Err(Self::fail("write", offset, buf.len(), libc::ENOSPC));
            }
            s.space_left_bytes = Some(left - buf.len() as u64);
        }
        s.written[offset as usize..end as usize].copy_from_slice(buf);
        s.pending.push((offset, buf.to_vec()));
        Ok(())
    }

    fn flush(&self) -> Result<(), Error> {
        let mut s = self.lock();
        if s.crashed {
            return Err(Self::fail("flush", 0, 0, libc::EIO));
        }
        s.durable = s.written.clone();
        s.pending.clear();
        Ok(())
    }

    fn size_bytes(&self) -> u64 {
        self.lock().written.len() as u64
    }

    fn logical_block_size(&self) -> u32 {
        SECTOR_BYTES as u32
    }

    fn info(&self) -> DeviceInfo {
        DeviceInfo {
            path: "crash-device".into(),
            kind: DeviceKind::Memory,
            size_bytes: self.size_bytes(),
            logical_block_size: SECTOR_BYTES as u32,
            model: None,
            serial: None,
            direct: false,
            read_only: false,
        }
    }
}
