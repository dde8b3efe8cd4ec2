//! Open: pick the newest superblock whose checksum holds and whose metadata verifies,
//! fall back to the other copy (and say so), rebuild the allocator from the used extents.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use stack_alloc::{Allocator, Extent};
use stack_bio::Device;
use stack_csum::BlockCsum;

use super::{group_blocks, read_blocks, superblock_extents, table_refs, Volume, IO_ALIGN_BYTES};
use crate::format::{
    decode_meta_stream, uuid_salt, MetaKind, ObjectTable, Superblock, SB_BYTES, SB_SLOT_OFFSETS,
};
use crate::pattern::PatternHeader;
use crate::report::SuperblockState;
use crate::Error;

/// What one slot holds.
pub(crate) enum SlotRead {
    /// No superblock magic.
    Empty(String),
    /// The magic is there but the copy does not decode.
    Bad(String),
    /// A superblock whose checksum holds.
    Valid(Superblock),
}

/// Reads and decodes superblock slot `slot`: its first sector, then (once the block size
/// is known) its whole block, whose bytes after the 128 encoded ones must be zero.
pub(crate) fn read_slot(device: &dyn Device, slot: u8) -> SlotRead {
    let at = SB_SLOT_OFFSETS[usize::from(slot)];
    let len = (device.logical_block_size() as usize)
        .max(SB_BYTES)
        .next_multiple_of(512);
    if device.size_bytes() < at + len as u64 {
        return SlotRead::Empty(format!(
            "the device ({} bytes) ends before slot {slot}",
            device.size_bytes()
        ));
    }
    let mut buf = stack_bio::AlignedBuf::new(len, IO_ALIGN_BYTES);
    if let Err(e) = device.read_at(&mut buf, at) {
        return SlotRead::Bad(format!("unreadable: {e}"));
    }
    if !Superblock::has_magic(&buf) {
        // A data block here says more than "no magic": a device that wraps around a
        // fake capacity overwrites the superblocks with blocks written far beyond.
        return SlotRead::Empty(match PatternHeader::parse(&buf) {
            Some(_) if crate::probe::is_probe_block(&buf) => {
                "holds a `stackctl probe` block: the target was probed, and is no volume since"
                    .to_string()
            }
            Some(h) => format!(
                "holds the data block written for volume block {} (the device wraps around: \
                 fake capacity?)",
                h.phys_block
            ),
            None => "no superblock magic".to_string(),
        });
    }
    // The block size is known only once the first sector decodes (it is at most 64 KiB,
    // checked by the decoder); then the whole block is read and decoded again.
    let sb = match Superblock::decode(&buf, slot) {
        Ok(sb) => sb,
        Err(e) => return SlotRead::Bad(e.to_string()),
    };
    let block = sb.block_size_bytes as usize;
    if block <= len {
        return SlotRead::Valid(sb);
    }
    if device.size_bytes() < at + block as u64 {
        return SlotRead::Bad(format!(
            "the device ({} bytes) ends inside the superblock's block of {block} bytes",
            device.size_bytes()
        ));
    }
    let mut whole = stack_bio::AlignedBuf::new(block, IO_ALIGN_BYTES);
    if let Err(e) = device.read_at(&mut whole, at) {
        return SlotRead::Bad(format!("unreadable: {e}"));
    }
    match Superblock::decode(&whole, slot) {
        Ok(sb) => SlotRead::Valid(sb),
        Err(e) => SlotRead::Bad(e.to_string()),
    }
}

/// Why a slot cannot be used.
#[derive(Debug, Clone)]
pub(crate) enum Rejected {
    /// No superblock, an unreadable one, or one that does not decode (its checksum, a
    /// field outside the format's limits, a non-zero tail).
    Unreadable(String),
    /// A superblock that decodes but cannot describe this volume: its geometry does not
    /// fit the device or differs from the copy in use, or it repeats the generation of
    /// the copy in use (a forged, foreign or duplicated copy).
    Inconsistent {
        /// The copy.
        sb: Superblock,
        /// What is wrong with it.
        why: String,
    },
    /// A superblock whose object table does not verify.
    Metadata {
        /// The copy.
        sb: Superblock,
        /// Where the metadata breaks.
        error: String,
    },
}

impl Rejected {
    /// The reason shown for the slot.
    pub(crate) fn reason(&self) -> String {
        match self {
            Rejected::Unreadable(why) => why.clone(),
            Rejected::Inconsistent { sb, why } => format!("generation {}: {why}", sb.generation),
            Rejected::Metadata { sb, error } => format!(
                "generation {}: metadata does not verify: {error}",
                sb.generation
            ),
        }
    }
}

/// Both slots judged by the one rule every command shares (open, and verify again).
pub(crate) struct Slots {
    /// The state in use: the newest usable copy and its table.
    pub chosen: Option<(Superblock, ObjectTable)>,
    /// The other copy, when it is usable too.
    pub others: Vec<(Superblock, ObjectTable)>,
    /// Why each unusable slot is not used.
    pub rejected: [Option<Rejected>; 2],
    /// Highest generation a slot that decodes carries.
    pub max_seen_generation: u64,
    /// Neither slot holds a superblock magic: not a volume at all.
    pub no_magic: bool,
}

impl Slots {
    /// Each slot's state as commands report it.
    pub(crate) fn states(&self) -> [SuperblockState; 2] {
        let mut states = [0u8, 1].map(|_| SuperblockState::Damaged {
            reason: String::new(),
        });
        for (sb, _) in self.chosen.iter().chain(&self.others) {
            states[usize::from(sb.slot)] = SuperblockState::Ok {
                generation: sb.generation,
            };
        }
        for (slot, r) in self.rejected.iter().enumerate() {
            if let Some(r) = r {
                states[slot] = SuperblockState::Damaged { reason: r.reason() };
            }
        }
        states
    }
}

/// Whether `sb`'s geometry can describe the volume on a device of `device_bytes`: its
/// size in bytes must not overflow and must fit the device, and it must be the same
/// volume (UUID, block size, block count) as `in_use`, the copy already chosen.
pub(crate) fn geometry_problem(
    sb: &Superblock,
    device_bytes: u64,
    in_use: Option<&Superblock>,
) -> Option<String> {
    let bs = u64::from(sb.block_size_bytes);
    let fits = sb
        .total_blocks
        .checked_mul(bs)
        .is_some_and(|bytes| bytes <= device_bytes);
    if !fits {
        return Some(format!(
            "total_blocks {} of {bs} bytes does not fit the device of {device_bytes} bytes",
            sb.total_blocks
        ));
    }
    let u = in_use?;
    if sb.uuid != u.uuid {
        return Some(format!(
            "belongs to another volume (UUID {}, the copy in use in slot {} has {})",
            crate::options::uuid_string(&sb.uuid),
            u.slot,
            crate::options::uuid_string(&u.uuid)
        ));
    }
    if sb.block_size_bytes != u.block_size_bytes || sb.total_blocks != u.total_blocks {
        return Some(format!(
            "geometry ({} blocks of {} bytes) differs from the copy in use in slot {} ({} blocks of {} bytes)",
            sb.total_blocks, sb.block_size_bytes, u.slot, u.total_blocks, u.block_size_bytes
        ));
    }
    None
}

/// Reads both slots and decides which copy is in use and which are usable: the newest
/// copy that decodes, fits the device and whose metadata verifies is chosen; the other
/// is usable when it also describes the same volume and its metadata verifies. Every
/// command takes its verdict from here, so all agree on which slot is usable.
pub(crate) fn judge_slots(device: &dyn Device) -> Slots {
    let reads = [read_slot(device, 0), read_slot(device, 1)];
    let no_magic = reads
        .iter()
        .all(|r| matches!(r, SlotRead::Empty(why) if why == "no superblock magic"));
    let mut rejected: [Option<Rejected>; 2] = [None, None];
    let mut candidates: Vec<Superblock> = Vec::new();
    for (slot, r) in reads.into_iter().enumerate() {
        match r {
            SlotRead::Empty(why) | SlotRead::Bad(why) => {
                rejected[slot] = Some(Rejected::Unreadable(why))
            }
            SlotRead::Valid(sb) => candidates.push(sb),
        }
    }
    candidates.sort_by_key(|s| std::cmp::Reverse(s.generation));
    let max_seen_generation = candidates.first().map_or(0, |s| s.generation);
    let mut chosen: Option<(Superblock, ObjectTable)> = None;
    let mut others = Vec::new();
    for sb in candidates {
        let slot = usize::from(sb.slot);
        let in_use = chosen.as_ref().map(|(c, _)| c);
        if let Some(why) = geometry_problem(&sb, device.size_bytes(), in_use) {
            rejected[slot] = Some(Rejected::Inconsistent { sb, why });
            continue;
        }
        // Commits alternate slots with rising generations, so two copies of one
        // generation are never both real: keep the one chosen.
        if let Some(c) = in_use.filter(|c| c.generation == sb.generation) {
            let why = format!("repeats generation {} of slot {}", c.generation, c.slot);
            rejected[slot] = Some(Rejected::Inconsistent { sb, why });
            continue;
        }
        match load_table(device, &sb) {
            Ok(table) if chosen.is_none() => chosen = Some((sb, table)),
            Ok(table) => others.push((sb, table)),
            Err(e) => {
                rejected[slot] = Some(Rejected::Metadata {
                    sb,
                    error: e.to_string(),
                })
            }
        }
    }
    Slots {
        chosen,
        others,
        rejected,
        max_seen_generation,
        no_magic,
    }
}

/// Reads and decodes the object table a superblock points to.
pub(crate) fn load_table(device: &dyn Device, sb: &Superblock) -> Result<ObjectTable, Error> {
    let bs = sb.block_size_bytes;
    let bytes = read_blocks(device, sb.meta_start_block, sb.meta_blocks, bs)?;
    let mut payload = Vec::new();
    let salt = uuid_salt(&sb.uuid);
    decode_meta_stream(
        &bytes,
        sb.meta_start_block,
        MetaKind::ObjectTable,
        sb.generation,
        sb.meta_len_bytes,
        sb.algorithm,
        salt,
        bs,
        &mut payload,
    )?;
    let table = ObjectTable::decode(
        &payload,
        sb.generation,
        sb.total_blocks,
        bs,
        sb.algorithm.width_bytes(),
        sb.meta_start_block,
    )?;
    // Extents must not overlap each other or the superblocks: rebuilding an allocator
    // from them checks exactly that.
    let refs = table_refs(
        &table,
        Extent::new(sb.meta_start_block, sb.meta_blocks),
        bs,
        sb.algorithm.width_bytes(),
    );
    Allocator::from_used(
        sb.total_blocks,
        group_blocks(sb.total_blocks),
        refs.into_iter().chain(superblock_extents(bs)),
    )
    .map_err(|e| Error::Corrupt {
        what: "object table",
        offset: sb.meta_start_block * u64::from(bs),
        detail: match e {
            stack_alloc::Error::InvalidGeometry { .. } => format!("unusable geometry: {e}"),
            e => format!("extents overlap: {e}"),
        },
    })?;
    Ok(table)
}

pub(crate) fn open(device: Arc<dyn Device>, read_only: bool) -> Result<Volume, Error> {
    let timed = crate::map::timed(device, crate::map::DEFAULT_REGIONS);
    let device: Arc<dyn Device> = timed.clone();
    let path = std::path::PathBuf::from(device.info().path);
    let slots = judge_slots(&*device);
    if slots.no_magic {
        return Err(Error::NotAVolume { path });
    }
    let slot_states = slots.states();
    let reasons = slots.rejected.clone().map(|r| r.map(|r| r.reason()));
    let Slots {
        chosen,
        others,
        max_seen_generation,
        ..
    } = slots;
    let Some((sb, table)) = chosen else {
        let why = |i: usize| reasons[i].clone().unwrap_or_default();
        return Err(Error::BothSuperblocksBad {
            path,
            slot0: why(0),
            slot1: why(1),
        });
    };
    let bs = sb.block_size_bytes;
    let width = sb.algorithm.width_bytes();
    let meta = Extent::new(sb.meta_start_block, sb.meta_blocks);
    let refs = table_refs(&table, meta, bs, width);
    let alloc = Allocator::from_used(
        sb.total_blocks,
        group_blocks(sb.total_blocks),
        refs.iter().copied().chain(superblock_extents(bs)),
    )?;
    // The older copy stays a valid fallback until the next commit overwrites it: keep
    // what only it references busy until then.
    // Data it alone references (a removal cut short between its two commits) counts
    // as free all the same: see `Volume::reclaimable_blocks`.
    let mine: HashSet<Extent> = refs.into_iter().collect();
    let mut reclaimable_blocks = 0;
    for (osb, other) in &others {
        let other_meta = Extent::new(osb.meta_start_block, osb.meta_blocks);
        for e in table_refs(other, other_meta, bs, width) {
            if !mine.contains(&e) && alloc.mark_used(e).is_ok() {
                alloc.free(e, sb.generation)?;
                if e != other_meta {
                    reclaimable_blocks += e.len;
                }
            }
        }
    }
    let fallback_warning = reasons.iter().enumerate().find_map(|(slot, r)| {
        r.as_ref().map(|r| {
            format!(
                "superblock slot {slot} is unusable ({r}); using slot {} (generation {})",
                sb.slot, sb.generation
            )
        })
    });
    let salt = uuid_salt(&sb.uuid);
    Ok(Volume {
        path,
        device,
        timed,
        read_only,
        csum: BlockCsum::new(sb.algorithm, salt, bs as usize)?,
        salt,
        sb,
        table,
        meta_extent: Some(meta),
        max_seen_generation,
        slot_states,
        fallback_warning,
        alloc_queue: OnceLock::new(),
        alloc,
        pools: OnceLock::new(),
        meta_reserve: None,
        broken: None,
        reclaimable_blocks,
        lock: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use stack_bio::MemDevice;
    use stack_csum::Algorithm;

    fn sb(bs: u32, total_blocks: u64) -> Superblock {
        Superblock {
            uuid: [3; 16],
            block_size_bytes: bs,
            algorithm: Algorithm::Crc32c,
            slot: 0,
            generation: 4,
            total_blocks,
            meta_start_block: 20,
            meta_blocks: 1,
            meta_len_bytes: 1,
            created_unix_secs: 0,
        }
    }

    /// A volume fits when `total_blocks * block_size` does not overflow and is at most
    /// the device: one block below, at and one above the device's size.
    #[test]
    fn geometry_fits_the_device_boundaries() {
        let device = 2048 * 4096;
        assert_eq!(geometry_problem(&sb(4096, 2047), device, None), None);
        assert_eq!(geometry_problem(&sb(4096, 2048), device, None), None);
        assert!(geometry_problem(&sb(4096, 2049), device, None).is_some());
        // Byte by byte: a device one byte short of the volume does not hold it.
        assert_eq!(geometry_problem(&sb(512, 100), 51_200, None), None);
        assert!(geometry_problem(&sb(512, 100), 51_199, None).is_some());
        for total in [u64::MAX, u64::MAX - 1, u64::MAX / 4096 + 1, 1 << 52] {
            let why = geometry_problem(&sb(4096, total), u64::MAX, None).expect("overflow");
            assert!(why.contains(&total.to_string()), "{why}");
        }
        assert_eq!(
            geometry_problem(&sb(4096, u64::MAX / 4096), u64::MAX, None),
            None
        );
    }

    #[test]
    fn geometry_must_match_the_copy_in_use() {
        let device = 1 << 30;
        let in_use = Superblock {
            slot: 1,
            ..sb(4096, 2048)
        };
        assert_eq!(
            geometry_problem(&sb(4096, 2048), device, Some(&in_use)),
            None
        );
        for other in [
            sb(4096, 2047),
            sb(4096, 2049),
            sb(2048, 2048),
            Superblock {
                uuid: [4; 16],
                ..sb(4096, 2048)
            },
        ] {
            let why = geometry_problem(&other, device, Some(&in_use)).expect("refused");
            assert!(why.contains("slot 1"), "{why}");
        }
    }

    /// A device of `size` bytes with 512-byte logical blocks holding, at slot 1, a
    /// superblock of 4096-byte blocks (so the first read is shorter than the block).
    fn slot1_device(size: usize, tail_byte: Option<usize>) -> MemDevice {
        let mut image = vec![0u8; size];
        let at = SB_SLOT_OFFSETS[1] as usize;
        let sb = Superblock {
            slot: 1,
            ..sb(4096, 64)
        };
        image[at..at + SB_BYTES].copy_from_slice(&sb.encode());
        if let Some(i) = tail_byte {
            image[at + i] = 1;
        }
        MemDevice::from_bytes(image, 512)
    }

    fn read(dev: &MemDevice) -> Result<Superblock, String> {
        match read_slot(dev, 1) {
            SlotRead::Valid(sb) => Ok(sb),
            SlotRead::Empty(why) => Err(format!("empty: {why}")),
            SlotRead::Bad(why) => Err(format!("bad: {why}")),
        }
    }

    /// The slot is read as its whole block even where the first read (one logical
    /// block) is shorter: a non-zero byte after the first 512 bytes is found too.
    #[test]
    fn read_slot_checks_the_whole_block_past_the_first_sector() {
        let at = SB_SLOT_OFFSETS[1] as usize;
        assert!(read(&slot1_device(at + 4096, None)).is_ok());
        for i in [200, 511, 512, 4095] {
            let why = read(&slot1_device(at + 4096, Some(i))).unwrap_err();
            assert!(
                why.starts_with("bad:") && why.contains("tail"),
                "byte {i}: {why}"
            );
        }
    }

    /// The device's end, one byte below, at and above what each read needs.
    #[test]
    fn read_slot_device_end_boundaries() {
        let at = SB_SLOT_OFFSETS[1] as usize;
        // The first read needs one logical block (512 bytes).
        let why = read(&slot1_device(at + 511, None)).unwrap_err();
        assert!(
            why.starts_with("empty:") && why.contains("ends before slot 1"),
            "{why}"
        );
        let why = read(&slot1_device(at + 512, None)).unwrap_err();
        assert!(why.contains("ends inside the superblock's block"), "{why}");
        // The whole block needs 4096.
        let why = read(&slot1_device(at + 4095, None)).unwrap_err();
        assert!(
            why.starts_with("bad:") && why.contains("ends inside the superblock's block of 4096"),
            "{why}"
        );
        assert!(read(&slot1_device(at + 4096, None)).is_ok());
        assert!(read(&slot1_device(at + 4097, None)).is_ok());
    }

    /// A table whose extents overlap is refused by `load_table`, which names the table's
    /// place on the device.
    #[test]
    fn overlapping_extents_are_corrupt_at_the_table() {
        use crate::format::{encode_meta_stream, ObjectKind, ObjectRecord, ObjectTable, Run};
        let run = |start| Run {
            data_start_block: start,
            data_blocks: 4,
            csum_start_block: 60,
            write_generation: 1,
        };
        let object = |id, name: &str, start| ObjectRecord {
            id,
            name: name.into(),
            size_bytes: 4 * 4096,
            created_unix_secs: 0,
            kind: ObjectKind::File,
            complete: true,
            target_size_bytes: None,
            runs: vec![run(start)],
        };
        let table = ObjectTable {
            next_object_id: 2,
            objects: vec![object(0, "a", 40), object(1, "b", 42)],
        };
        let payload = table.encode();
        let salt = crate::format::uuid_salt(&[3; 16]);
        let stream = encode_meta_stream(
            MetaKind::ObjectTable,
            4,
            20,
            &payload,
            4096,
            Algorithm::Crc32c,
            salt,
        );
        let dev = MemDevice::new(128 * 4096);
        dev.write_at(&stream, 20 * 4096).unwrap();
        let sb = Superblock {
            meta_len_bytes: payload.len() as u64,
            ..sb(4096, 128)
        };
        match load_table(&dev, &sb) {
            Err(Error::Corrupt {
                what,
                offset,
                detail,
            }) => {
                assert_eq!((what, offset), ("object table", 20 * 4096), "{detail}");
                assert!(detail.contains("extents overlap"), "{detail}");
            }
            other => panic!("{other:?}"),
        }
    }

    /// Rewrites the superblock of `slot` on `dev` as `edit` says, checksum resealed.
    fn forge_slot(dev: &MemDevice, slot: u8, edit: impl Fn(&mut Superblock)) -> Superblock {
        let at = SB_SLOT_OFFSETS[usize::from(slot)];
        let mut block = vec![0u8; 4096];
        dev.read_at(&mut block, at).unwrap();
        let mut sb = Superblock::decode(&block, slot).unwrap();
        edit(&mut sb);
        block[..SB_BYTES].copy_from_slice(&sb.encode());
        dev.write_at(&block, at).unwrap();
        sb
    }

    /// Two slots carrying one generation (one copied over the other, slot byte fixed):
    /// open called both usable while verify called one damaged. A commit never writes
    /// one generation twice, so the second copy is rejected, for every command.
    #[test]
    fn a_repeated_generation_is_rejected_by_the_one_rule() {
        let dev = Arc::new(MemDevice::new(1 << 20));
        let vol = Volume::format_device(dev.clone(), &crate::FormatOptions::default()).unwrap();
        let newest = vol.sb;
        drop(vol);
        let older = 1 - newest.slot;
        forge_slot(&dev, older, |sb| {
            *sb = Superblock {
                slot: older,
                ..newest
            }
        });
        let slots = judge_slots(&*dev);
        assert_eq!(
            slots.chosen.as_ref().unwrap().0.generation,
            newest.generation
        );
        let rejected = slots.rejected.iter().flatten().collect::<Vec<_>>();
        assert_eq!(rejected.len(), 1);
        assert!(
            rejected[0].reason().contains("repeats generation"),
            "{}",
            rejected[0].reason()
        );
        let vol = Volume::open_device(dev, &crate::OpenOptions::default()).unwrap();
        let report = vol.verify(&crate::VerifyOptions::default()).unwrap();
        assert_eq!(
            report.superblocks.clone().map(Option::unwrap),
            vol.slot_states
        );
        assert!(!report.metadata_ok);
    }

    /// Every slot verdict comes from `judge_slots`: a well-checksummed copy claiming more
    /// blocks than the device is rejected for its geometry, the other is chosen.
    #[test]
    fn judge_slots_rejects_a_forged_geometry_and_keeps_the_other() {
        let dev = Arc::new(MemDevice::new(1 << 20));
        let vol = Volume::format_device(dev.clone(), &crate::FormatOptions::default()).unwrap();
        let newest = vol.sb;
        drop(vol);
        let older = 1 - newest.slot;
        let at = SB_SLOT_OFFSETS[usize::from(older)];
        let mut block = vec![0u8; 4096];
        dev.read_at(&mut block, at).unwrap();
        let mut forged = Superblock::decode(&block, older).unwrap();
        forged.total_blocks += 1;
        block[..SB_BYTES].copy_from_slice(&forged.encode());
        dev.write_at(&block, at).unwrap();
        let slots = judge_slots(&*dev);
        assert_eq!(slots.chosen.as_ref().unwrap().0, newest);
        assert!(slots.others.is_empty());
        assert!(matches!(
            &slots.rejected[usize::from(older)],
            Some(Rejected::Inconsistent { sb, .. }) if *sb == forged
        ));
        assert!(slots.rejected[usize::from(newest.slot)].is_none());
        let states = slots.states();
        assert!(states[usize::from(newest.slot)].is_ok());
        assert!(!states[usize::from(older)].is_ok());
        // The same bytes opened: the same verdict.
        let vol = Volume::open_device(dev, &crate::OpenOptions::default()).unwrap();
        assert_eq!(vol.slot_states, states);
        assert!(vol.info().fallback_warning.is_some());
    }
}
