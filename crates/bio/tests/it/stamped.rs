//! The stamped-overwrite workload the ordering tests share: `threads` writers, each its
//! own stream, cyclically overwrite `slots` 4 KiB blocks of their own; every block
//! carries its writer and its sequence number, so a reordering leaves an older stamp
//! where a newer one belongs.

use stack_bio::{Bio, BioResult, SubmitQueue};

/// Bytes of one stamped block.
pub const BLOCK_BYTES: usize = 4096;

/// The shape of one run of the workload.
#[derive(Debug, Clone, Copy)]
pub struct Stamped {
    pub threads: u64,
    pub per_thread: u32,
    pub slots: u64,
}

impl Stamped {
    /// Device bytes the workload needs.
    pub fn device_bytes(&self) -> u64 {
        self.threads * self.slots * BLOCK_BYTES as u64
    }

    /// Runs the writers to the end (every bio queued); `end_io` is each bio's callback.
    pub fn submit(&self, q: &SubmitQueue, end_io: fn(BioResult)) {
        std::thread::scope(|s| {
            for t in 0..self.threads {
                s.spawn(move || {
                    for i in 0..self.per_thread {
                        let slot = u64::from(i) % self.slots;
                        let mut data = vec![0u8; BLOCK_BYTES];
                        data[..8].copy_from_slice(&t.to_le_bytes());
                        data[8..12].copy_from_slice(&i.to_le_bytes());
                        let offset = (t * self.slots + slot) * BLOCK_BYTES as u64;
                        q.submit(Bio::write(offset, data, end_io).with_stream(t));
                    }
                });
            }
        });
    }

    /// Checks that every slot of `image` holds its writer's newest version of it.
    pub fn assert_newest(&self, image: &[u8]) {
        for t in 0..self.threads {
            for slot in 0..self.slots {
                let at = ((t * self.slots + slot) * BLOCK_BYTES as u64) as usize;
                let (writer, i) = stamp(&image[at..at + BLOCK_BYTES]);
                assert_eq!(
                    writer, t,
                    "slot {slot} of writer {t} holds writer {writer}'s data"
                );
                assert_eq!(u64::from(i) % self.slots, slot, "slot {slot} holds bio {i}");
                assert!(
                    i >= self.per_thread - self.slots as u32,
                    "slot {slot} of writer {t} holds bio {i}, not the newest"
                );
            }
        }
    }
}

/// (writer, sequence number) of a stamped block.
pub fn stamp(block: &[u8]) -> (u64, u32) {
    let writer = u64::from_le_bytes(block[..8].try_into().expect("8 bytes"));
    let i = u32::from_le_bytes(block[8..12].try_into().expect("4 bytes"));
    (writer, i)
}
