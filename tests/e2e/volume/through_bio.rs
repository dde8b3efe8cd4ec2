//! Metadata, superblocks and checksum streams go through `stack-bio`'s `Device` like the
//! data: faults a `FaultyDevice` injects on exactly those blocks reach the product.
//! (Before, only the data bios were known to go through bio; these prove the rest does,
//! on the write side and on the read side.)

use std::sync::Arc;

use stack_bio::{Device, FaultyDevice, MemDevice};
use stack_volume::format::SB_SLOT_OFFSETS;
use stack_volume::{Error, FormatOptions, OpenOptions, VerifyOptions, Volume, WriteOptions};

use super::accounting::{superblock, table};
use super::data;

const SIZE: u64 = 16 << 20;
const BS: u64 = 4096;

/// A formatted volume on a `FaultyDevice` over memory, holding object `a`.
fn volume() -> (Arc<MemDevice>, Arc<FaultyDevice>, Volume) {
    let mem = Arc::new(MemDevice::new(SIZE));
    let faulty = Arc::new(FaultyDevice::new(mem.clone()));
    let mut vol = Volume::format_device(faulty.clone(), &FormatOptions::default()).unwrap();
    vol.write("a", &mut &data(300 << 10, 7)[..], &WriteOptions::default())
        .unwrap();
    (mem, faulty, vol)
}

fn reopen(mem: &Arc<MemDevice>) -> Volume {
    Volume::open_device(mem.clone(), &OpenOptions::default()).unwrap()
}

/// The commit's superblock write fails on the slot it goes to: the command fails naming
/// that offset, and the volume stays as it was.
#[test]
fn a_failing_superblock_write_reaches_the_commit() {
    let (mem, faulty, mut vol) = volume();
    let generation = vol.generation();
    let next = SB_SLOT_OFFSETS[1 - usize::from(vol.info().superblock_slot)];
    faulty.fail_writes(next..next + 1);
    let err = vol.remove("a").unwrap_err();
    assert!(
        matches!(&err, Error::Device(stack_bio::Error::Io { offset, op: stack_bio::Op::Write, .. }) if *offset == next),
        "{err}"
    );
    let vol = reopen(&mem);
    assert_eq!(vol.generation(), generation);
    assert!(vol.object("a").is_some());
}

/// The commit's object-table write fails (every block but the superblocks refuses
/// writes): the command fails before any superblock names the new table.
#[test]
fn a_failing_table_write_reaches_the_commit() {
    let (mem, faulty, mut vol) = volume();
    let generation = vol.generation();
    faulty.fail_writes(BS..SB_SLOT_OFFSETS[1]);
    faulty.fail_writes(SB_SLOT_OFFSETS[1] + BS..SIZE);
    let err = vol.remove("a").unwrap_err();
    let Error::Device(stack_bio::Error::Io { offset, op, .. }) = &err else {
        panic!("{err}")
    };
    assert_eq!(*op, stack_bio::Op::Write);
    assert!(!SB_SLOT_OFFSETS.contains(offset), "{err}");
    let sb = superblock(&*faulty, vol.info().superblock_slot, BS).unwrap();
    assert_eq!(sb.generation, generation, "no superblock was written");
    assert!(reopen(&mem).object("a").is_some());
}

/// A superblock copy that cannot be read is judged unusable: open falls back to the
/// other copy and says so.
#[test]
fn a_failing_superblock_read_reaches_open() {
    let (_mem, faulty, vol) = volume();
    let slot = vol.info().superblock_slot;
    let generation = vol.generation();
    drop(vol);
    let at = SB_SLOT_OFFSETS[usize::from(slot)];
    faulty.fail_reads(at..at + 1);
    let vol = Volume::open_device(faulty.clone(), &OpenOptions::default()).unwrap();
    assert_eq!(vol.info().superblock_slot, 1 - slot);
    assert_eq!(vol.generation(), generation - 1);
    assert!(vol.info().fallback_warning.is_some());
}

/// Reads of the object table and of a run's checksum stream that fail are metadata
/// damage in verify, named at their offsets; a failing table read at open falls back.
#[test]
fn failing_table_and_checksum_reads_reach_verify() {
    let (_mem, faulty, vol) = volume();
    let sb = superblock(&*faulty, vol.info().superblock_slot, BS).unwrap();
    let run = table(&*faulty, &sb).unwrap().objects[0].runs[0];
    let table_at = sb.meta_start_block * BS;
    let csum_at = run.csum_start_block * BS;
    faulty.fail_reads(table_at..table_at + 1);
    faulty.fail_reads(csum_at..csum_at + 1);
    let report = vol.verify(&VerifyOptions::default()).unwrap();
    let at: Vec<(&str, u64)> = report
        .metadata_damage
        .iter()
        .map(|d| (d.what.as_str(), d.physical_offset))
        .collect();
    assert!(at.contains(&("object table", table_at)), "{at:?}");
    assert!(at.contains(&("checksum block", csum_at)), "{at:?}");
    assert!(!report.metadata_ok);
    drop(vol);
    let vol = Volume::open_device(faulty.clone(), &OpenOptions::default()).unwrap();
    assert!(
        vol.info().fallback_warning.is_some(),
        "the table read failed at open"
    );
}

/// A device that records which thread read each range.
#[derive(Debug)]
struct Traced {
    inner: MemDevice,
    reads: std::sync::Mutex<Vec<(u64, u64, String)>>,
}

impl Device for Traced {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<(), stack_bio::Error> {
        let thread = std::thread::current().name().unwrap_or("").to_string();
        let mut reads = self.reads.lock().unwrap();
        reads.push((offset, buf.len() as u64, thread));
        drop(reads);
        self.inner.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> Result<(), stack_bio::Error> {
        self.inner.write_at(buf, offset)
    }
    fn flush(&self) -> Result<(), stack_bio::Error> {
        self.inner.flush()
    }
    fn size_bytes(&self) -> u64 {
        self.inner.size_bytes()
    }
    fn logical_block_size(&self) -> u32 {
        self.inner.logical_block_size()
    }
    fn info(&self) -> stack_bio::DeviceInfo {
        self.inner.info()
    }
}

/// Verify and `read` read the data through the device's bio queue (its submitter
/// threads issue every data read) and check it on the end-I/O pool as each read
/// completes (or on the submitter, when that pool is saturated). Before, verify read
/// with threads of its own and `pread`, and `read` on the caller's thread: the queue
/// and the end-I/O pool never saw a read.
#[test]
fn verify_and_read_read_data_through_the_queue_and_check_after_the_io() {
    let traced = Arc::new(Traced {
        inner: MemDevice::new(SIZE),
        reads: Default::default(),
    });
    let mut vol = Volume::format_device(traced.clone(), &FormatOptions::default()).unwrap();
    let bytes = data(5 << 20, 3);
    vol.write("a", &mut &bytes[..], &WriteOptions::default())
        .unwrap();
    let sb = superblock(&*traced, vol.info().superblock_slot, BS).unwrap();
    let runs = table(&*traced, &sb).unwrap().objects[0].runs.clone();
    let is_data = |offset: u64| {
        runs.iter().any(|r| {
            (r.data_start_block * BS..(r.data_start_block + r.data_blocks) * BS).contains(&offset)
        })
    };
    let pools = stack_volume::pipeline::Pools::new().unwrap();
    let vol = vol.with_pools(pools.clone());
    for pass in ["verify", "read"] {
        traced.reads.lock().unwrap().clear();
        let before = pools.end_io.stats().run;
        if pass == "verify" {
            assert!(vol.verify(&VerifyOptions::default()).unwrap().clean());
        } else {
            let mut out = Vec::new();
            vol.read("a", &mut out).unwrap();
            assert!(out == bytes);
        }
        let reads = traced.reads.lock().unwrap().clone();
        let data_reads: Vec<_> = reads.iter().filter(|(o, _, _)| is_data(*o)).collect();
        let data_bytes: u64 = data_reads.iter().map(|(_, len, _)| len).sum();
        assert_eq!(
            data_bytes,
            bytes.len() as u64,
            "{pass}: every data byte read once"
        );
        for (offset, _, thread) in &data_reads {
            assert!(
                thread.starts_with("bio-submit"),
                "{pass}: data at {offset} read on {thread:?}, not by the queue"
            );
        }
        pools.end_io.flush();
        let checks = pools.end_io.stats().run - before;
        assert!(
            checks >= data_reads.len() as u64,
            "{pass}: {checks} checks on the end-I/O pool (or caller-run) for {} reads",
            data_reads.len()
        );
    }
}
