//! Space accounting of an opened volume, computed from its bytes apart from the volume's
//! own allocator: every block is a superblock, a block of a usable slot's object table,
//! a data or checksum block of an object of the state opened, or free. So
//! `free_bytes + referenced == size`, with nothing referenced twice. Used after every
//! crash point (`crash.rs`) and after every kill of the soak (`reliability/killed.rs`).

use stack_bio::{AlignedBuf, Device};
use stack_volume::format::{
    decode_meta_stream, uuid_salt, MetaKind, ObjectTable, Superblock, SB_SLOT_OFFSETS,
};
use stack_volume::{SuperblockState, Volume};

/// Reads and decodes the superblock in `slot` (a whole block of `bs` bytes).
pub(crate) fn superblock(device: &dyn Device, slot: u8, bs: u64) -> Result<Superblock, String> {
    // Aligned, so the check also reads a device opened with O_DIRECT.
    let mut buf = AlignedBuf::new(bs as usize, 4096);
    let at = SB_SLOT_OFFSETS[usize::from(slot)];
    device
        .read_at(&mut buf, at)
        .map_err(|e| format!("reading slot {slot}: {e}"))?;
    Superblock::decode(&buf, slot).map_err(|e| format!("slot {slot}: {e}"))
}

/// The object table `sb` points to.
pub(crate) fn table(device: &dyn Device, sb: &Superblock) -> Result<ObjectTable, String> {
    let bs = u64::from(sb.block_size_bytes);
    let mut bytes = AlignedBuf::new((sb.meta_blocks * bs) as usize, 4096);
    device
        .read_at(&mut bytes, sb.meta_start_block * bs)
        .map_err(|e| format!("reading the table: {e}"))?;
    let mut payload = Vec::new();
    decode_meta_stream(
        &bytes,
        sb.meta_start_block,
        MetaKind::ObjectTable,
        sb.generation,
        sb.meta_len_bytes,
        sb.algorithm,
        uuid_salt(&sb.uuid),
        sb.block_size_bytes,
        &mut payload,
    )
    .map_err(|e| format!("table stream: {e}"))?;
    ObjectTable::decode(
        &payload,
        sb.generation,
        sb.total_blocks,
        sb.block_size_bytes,
        sb.algorithm.width_bytes(),
        sb.meta_start_block,
    )
    .map_err(|e| format!("table: {e}"))
}

/// Marks `len` blocks from `start` as used by `what`; a block used twice is an error.
fn mark(used: &mut [Option<String>], start: u64, len: u64, what: &str) -> Result<(), String> {
    for b in start..start + len {
        let slot = used
            .get_mut(b as usize)
            .ok_or_else(|| format!("{what}: block {b} is past the volume's end"))?;
        if let Some(other) = slot {
            return Err(format!("block {b} is used by {other} and by {what}"));
        }
        *slot = Some(what.to_string());
    }
    Ok(())
}

/// Checks that `vol` (opened on `device`) accounts for every block: see the module docs.
pub fn check(vol: &Volume, device: &dyn Device) -> Result<(), String> {
    let info = vol.info();
    let bs = u64::from(info.block_size_bytes);
    let total = info.size_bytes / bs;
    let mut used: Vec<Option<String>> = vec![None; total as usize];
    let chosen = superblock(device, info.superblock_slot, bs)?;
    if chosen.generation != info.generation {
        return Err(format!(
            "slot {} holds generation {}, the volume opened {}",
            info.superblock_slot, chosen.generation, info.generation
        ));
    }
    for (slot, &offset) in SB_SLOT_OFFSETS.iter().enumerate() {
        mark(&mut used, offset / bs, 1, &format!("superblock {slot}"))?;
    }
    let objects = table(device, &chosen)?;
    mark(
        &mut used,
        chosen.meta_start_block,
        chosen.meta_blocks,
        "the object table",
    )?;
    let width = chosen.algorithm.width_bytes();
    for o in &objects.objects {
        for r in &o.runs {
            mark(
                &mut used,
                r.data_start_block,
                r.data_blocks,
                &format!("data of {}", o.name),
            )?;
            mark(
                &mut used,
                r.csum_start_block,
                r.csum_blocks(chosen.block_size_bytes, width),
                &format!("checksums of {}", o.name),
            )?;
        }
    }
    // The older slot, when usable, is the fallback: its table stays until the next commit.
    let other = 1 - info.superblock_slot;
    if let SuperblockState::Ok { .. } = info.superblocks[usize::from(other)] {
        let older = superblock(device, other, bs)?;
        mark(
            &mut used,
            older.meta_start_block,
            older.meta_blocks,
            "the older slot's object table",
        )?;
    }
    let listed: Vec<String> = vol.objects().into_iter().map(|o| o.name).collect();
    let on_disk: Vec<String> = objects.objects.iter().map(|o| o.name.clone()).collect();
    if listed != on_disk {
        return Err(format!("listed {listed:?}, the table holds {on_disk:?}"));
    }
    let referenced = used.iter().filter(|u| u.is_some()).count() as u64;
    let free = info.free_bytes / bs;
    if free + referenced != total {
        return Err(format!(
            "{free} blocks free + {referenced} referenced != {total} blocks \
             ({} blocks unaccounted for; generation {}, objects {on_disk:?})",
            total as i64 - free as i64 - referenced as i64,
            info.generation
        ));
    }
    Ok(())
}
