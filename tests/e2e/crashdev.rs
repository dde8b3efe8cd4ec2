//! `CrashDevice`: an in-memory device with a volatile write cache that loses power at a
//! chosen I/O event, plus injected write errors (EIO on a byte range, ENOSPC past a
//! budget). Shared by the crash-point tests of `volume` and `reliability`.
//!
//! It keeps the bytes *written* (what reads see) apart from the bytes *durable* (what
//! survives a power loss): a flush makes everything written durable. When event number
//! `crash_at` arrives (writes only, or writes and flushes with
//! [`CrashDevice::counting_flushes`]: power can fail while the cache drains) that I/O and
//! every later one fail, and the image a reboot finds is the durable bytes plus what
//! [`Keep`] says survived of the writes since the last flush — what a disk with a write
//! cache may keep. It is stricter than `stack_bio::FaultyDevice`'s crash model, which
//! cuts only at writes and never tears the write in progress: this one is what catches a
//! missing flush between the object table and the superblock.

use std::ops::Range;
use std::sync::Mutex;

use stack_bio::{Device, DeviceInfo, DeviceKind, Error};

const SECTOR_BYTES: usize = 512;

/// What survives the power loss among the writes since the last flush.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// None of them.
    Nothing,
    /// All of them.
    All,
    /// All of them, and the first half of the sectors of the write that was cut.
    AllAndTornCut,
    /// The even-numbered ones (a cache that reorders).
    Even,
    /// The odd-numbered ones.
    Odd,
    /// The newest one only (the cache wrote it first).
    Newest,
    /// Each one with probability one half, the last one kept possibly torn at a sector
    /// boundary; `seed` makes the choice repeatable.
    Random { seed: u64 },
}

/// Every `Keep` but `Random`, for tests that try each one at every crash point.
pub const KEEPS: [Keep; 6] = [
    Keep::Nothing,
    Keep::All,
    Keep::AllAndTornCut,
    Keep::Even,
    Keep::Odd,
    Keep::Newest,
];

#[derive(Debug)]
struct State {
    written: Vec<u8>,
    durable: Vec<u8>,
    /// Writes since the last flush: (offset, bytes); after the crash, also the torn part
    /// of the cut write when `Keep::AllAndTornCut` asks for it.
    pending: Vec<(u64, Vec<u8>)>,
    events: u64,
    crashed: bool,
    /// Bytes of writes allowed before ENOSPC.
    space_left_bytes: Option<u64>,
}

/// See the module documentation.
#[derive(Debug)]
pub struct CrashDevice {
    state: Mutex<State>,
    crash_at: Option<u64>,
    count_flushes: bool,
    keep: Keep,
    eio_range: Option<Range<u64>>,
}

impl CrashDevice {
    /// A device over `image` that loses power at write number `crash_at` (counting from
    /// 0), if given, keeping what `keep` says of the unflushed writes.
    pub fn new(image: Vec<u8>, crash_at: Option<u64>, keep: Keep) -> CrashDevice {
        CrashDevice {
            state: Mutex::new(State {
                durable: image.clone(),
                written: image,
                pending: Vec::new(),
                events: 0,
                crashed: false,
                space_left_bytes: None,
            }),
            crash_at,
            count_flushes: false,
            keep,
            eio_range: None,
        }
    }

    /// Counts flushes as events too, so the power can fail at a flush.
    pub fn counting_flushes(mut self) -> CrashDevice {
        self.count_flushes = true;
        self
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

    /// Events seen so far (writes, and flushes when counted), failed ones included.
    pub fn events(&self) -> u64 {
        self.lock().events
    }

    /// Whether the power failed.
    pub fn crashed(&self) -> bool {
        self.lock().crashed
    }

    /// What a reboot finds: after a crash, the durable bytes plus what `keep` kept of
    /// the unflushed writes; without one, what was written (a clean shutdown flushes).
    pub fn image_after_power_loss(&self) -> Vec<u8> {
        let s = self.lock();
        if !s.crashed {
            return s.written.clone();
        }
        let mut image = s.durable.clone();
        let count = s.pending.len();
        let mut rng = match self.keep {
            Keep::Random { seed } => Some(SplitMix(seed)),
            _ => None,
        };
        for (i, (offset, data)) in s.pending.iter().enumerate() {
            let keep_bytes = match self.keep {
                Keep::Nothing => 0,
                Keep::All | Keep::AllAndTornCut => data.len(),
                Keep::Even => usize::from(i % 2 == 0) * data.len(),
                Keep::Odd => usize::from(i % 2 == 1) * data.len(),
                Keep::Newest => usize::from(i + 1 == count) * data.len(),
                Keep::Random { .. } => {
                    let rng = rng.as_mut().expect("set for Random");
                    if rng.below(2) == 0 {
                        0 // never reached the platter
                    } else if i + 1 == count && rng.below(2) == 0 {
                        let sectors = (data.len() / SECTOR_BYTES + 1) as u64;
                        (rng.below(sectors) as usize * SECTOR_BYTES).min(data.len())
                    } else {
                        data.len()
                    }
                }
            };
            let at = *offset as usize;
            image[at..at + keep_bytes].copy_from_slice(&data[..keep_bytes]);
        }
        image
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

    fn out_of_range(s: &State, offset: u64, len: usize) -> Option<Error> {
        let fits = offset
            .checked_add(len as u64)
            .is_some_and(|end| end <= s.written.len() as u64);
        (!fits).then(|| Error::OutOfRange {
            device: "crash-device".into(),
            offset,
            len,
            size: s.written.len() as u64,
        })
    }

    /// Counts an event; true when it is the one the power fails at (or after).
    fn power_fails(&self, s: &mut State) -> bool {
        if s.crashed {
            return true;
        }
        let n = s.events;
        s.events += 1;
        if self.crash_at == Some(n) {
            s.crashed = true;
        }
        s.crashed
    }
}

impl Device for CrashDevice {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<(), Error> {
        let s = self.lock();
        if s.crashed {
            return Err(Self::fail("read", offset, buf.len(), libc::EIO));
        }
        if let Some(e) = Self::out_of_range(&s, offset, buf.len()) {
            return Err(e);
        }
        let at = offset as usize;
        buf.copy_from_slice(&s.written[at..at + buf.len()]);
        Ok(())
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> Result<(), Error> {
        let mut s = self.lock();
        let was_up = !s.crashed;
        if self.power_fails(&mut s) {
            if was_up && self.keep == Keep::AllAndTornCut && buf.len() > SECTOR_BYTES {
                let torn = (buf.len() / SECTOR_BYTES / 2).max(1) * SECTOR_BYTES;
                s.pending.push((offset, buf[..torn].to_vec()));
            }
            return Err(Self::fail("write", offset, buf.len(), libc::EIO));
        }
        if let Some(e) = Self::out_of_range(&s, offset, buf.len()) {
            return Err(e);
        }
        let end = offset + buf.len() as u64;
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
        let fails = if self.count_flushes {
            self.power_fails(&mut s)
        } else {
            s.crashed
        };
        if fails {
            return Err(Self::fail("flush", 0, 0, libc::EIO));
        }
        let s = &mut *s;
        s.durable.clone_from(&s.written);
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

/// SplitMix64: the few random choices of `Keep::Random`, repeatable from a seed.
struct SplitMix(u64);

impl SplitMix {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(crash_at: u64, keep: Keep) -> CrashDevice {
        let d = CrashDevice::new(vec![0; 8 * SECTOR_BYTES], Some(crash_at), keep);
        d.write_at(&[1; SECTOR_BYTES], 0).unwrap();
        d.flush().unwrap();
        d.write_at(&[2; SECTOR_BYTES], 512).unwrap();
        d.write_at(&[3; SECTOR_BYTES], 1024).unwrap();
        d.write_at(&[4; 4 * SECTOR_BYTES], 2048).unwrap_err();
        assert!(d.crashed());
        d
    }

    fn sectors(image: &[u8]) -> Vec<u8> {
        image.chunks(SECTOR_BYTES).map(|c| c[0]).collect()
    }

    #[test]
    fn keeps_what_each_policy_says() {
        let cases = [
            (Keep::Nothing, [1, 0, 0, 0, 0, 0, 0, 0]),
            (Keep::All, [1, 2, 3, 0, 0, 0, 0, 0]),
            (Keep::AllAndTornCut, [1, 2, 3, 0, 4, 4, 0, 0]),
            (Keep::Even, [1, 2, 0, 0, 0, 0, 0, 0]),
            (Keep::Odd, [1, 0, 3, 0, 0, 0, 0, 0]),
            (Keep::Newest, [1, 0, 3, 0, 0, 0, 0, 0]),
        ];
        for (keep, want) in cases {
            assert_eq!(
                sectors(&dev(3, keep).image_after_power_loss()),
                want,
                "{keep:?}"
            );
        }
    }

    #[test]
    fn a_crashed_device_fails_everything_and_flushes_can_be_crash_points() {
        let d = dev(3, Keep::All);
        assert!(d.read_at(&mut [0; 512], 0).is_err());
        assert!(d.flush().is_err());
        let f = CrashDevice::new(vec![0; 4096], Some(1), Keep::Nothing).counting_flushes();
        f.write_at(&[7; 512], 0).unwrap();
        f.flush().unwrap_err();
        assert_eq!(f.events(), 2);
        assert_eq!(
            sectors(&f.image_after_power_loss())[0],
            0,
            "unflushed write lost"
        );
    }

    #[test]
    fn random_keep_is_repeatable_and_varies_with_the_seed() {
        let images: Vec<Vec<u8>> = (0..16)
            .map(|seed| dev(3, Keep::Random { seed }).image_after_power_loss())
            .collect();
        assert_eq!(
            images[5],
            dev(3, Keep::Random { seed: 5 }).image_after_power_loss()
        );
        assert!(
            images.iter().any(|i| i != &images[0]),
            "the seed changes nothing"
        );
        for image in &images {
            assert_eq!(image[0], 1, "a flushed write was lost");
        }
    }
}
