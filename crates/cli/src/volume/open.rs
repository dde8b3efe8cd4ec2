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

/// Reads and decodes superblock slot `slot`.
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
            Some(h) => format!(
                "holds a data block written for byte {} (the device wraps around: fake capacity?)",
                h.phys_block.saturating_mul(len as u64)
            ),
            None => "no superblock magic".to_string(),
        });
    }
    match Superblock::decode(&buf, slot) {
        Ok(sb) => SlotRead::Valid(sb),
        Err(e) => SlotRead::Bad(e.to_string()),
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
        detail: format!("extents overlap: {e}"),
    })?;
    Ok(table)
}

pub(crate) fn open(device: Arc<dyn Device>, read_only: bool) -> Result<Volume, Error> {
    let path = std::path::PathBuf::from(device.info().path);
    let reads = [read_slot(&*device, 0), read_slot(&*device, 1)];
    if reads.iter().all(|r| matches!(r, SlotRead::Empty(_))) {
        if let [SlotRead::Empty(a), SlotRead::Empty(b)] = &reads {
            if a != "no superblock magic" || b != "no superblock magic" {
                return Err(Error::BothSuperblocksBad {
                    path,
                    slot0: a.clone(),
                    slot1: b.clone(),
                });
            }
        }
        return Err(Error::NotAVolume { path });
    }
    let mut reasons: [Option<String>; 2] = [None, None];
    let mut candidates: Vec<Superblock> = Vec::new();
    for (slot, r) in reads.iter().enumerate() {
        match r {
            SlotRead::Empty(why) | SlotRead::Bad(why) => reasons[slot] = Some(why.clone()),
            SlotRead::Valid(sb) => candidates.push(*sb),
        }
    }
    candidates.sort_by_key(|s| std::cmp::Reverse(s.generation));
    let max_seen_generation = candidates.first().map_or(0, |s| s.generation);
    let mut chosen: Option<(Superblock, ObjectTable)> = None;
    let mut others: Vec<(Superblock, ObjectTable)> = Vec::new();
    for sb in candidates {
        if let Some((c, _)) = &chosen {
            if sb.uuid != c.uuid
                || sb.block_size_bytes != c.block_size_bytes
                || sb.total_blocks != c.total_blocks
            {
                reasons[usize::from(sb.slot)] =
                    Some("belongs to another volume (different UUID or geometry)".into());
                continue;
            }
        }
        let volume_bytes = sb
            .total_blocks
            .saturating_mul(u64::from(sb.block_size_bytes));
        if volume_bytes > device.size_bytes() {
            reasons[usize::from(sb.slot)] = Some(format!(
                "generation {}: describes a volume of {volume_bytes} bytes on a device of {} bytes",
                sb.generation,
                device.size_bytes()
            ));
            continue;
        }
        match load_table(&*device, &sb) {
            Ok(table) if chosen.is_none() => chosen = Some((sb, table)),
            Ok(table) => others.push((sb, table)),
            Err(e) => {
                reasons[usize::from(sb.slot)] = Some(format!(
                    "generation {}: metadata does not verify: {e}",
                    sb.generation
                ))
            }
        }
    }
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
    let mut slot_states = [
        SuperblockState::Damaged {
            reason: String::new(),
        },
        SuperblockState::Damaged {
            reason: String::new(),
        },
    ];
    slot_states[usize::from(sb.slot)] = SuperblockState::Ok {
        generation: sb.generation,
    };
    for (o, _) in &others {
        slot_states[usize::from(o.slot)] = SuperblockState::Ok {
            generation: o.generation,
        };
    }
    for (slot, reason) in reasons.iter().enumerate() {
        if let Some(r) = reason {
            slot_states[slot] = SuperblockState::Damaged { reason: r.clone() };
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
