//! Signatures of filesystems, swap, partition tables and containers at the head of a
//! target, and any other non-zero content we did not write.
//!
//! The offsets follow each format's own documentation (and what `wipefs`/`blkid` look
//! for): ext2/3/4 `0xEF53` at 1080, XFS `XFSB` at 0, btrfs `_BHRfS_M` at 65600, swap at
//! page size − 10, MBR `55 AA` at 510, GPT `EFI PART` at 512 or 4096, LUKS at 0, ISO 9660
//! `CD001` at 32769, FAT/exFAT/NTFS boot sectors, LVM `LABELONE` in sectors 0-3, ZFS
//! uberblocks, squashfs `hsqs`, md RAID, f2fs, bcache.

/// How many bytes at the head of a target the signature scan looks at.
pub const HEAD_BYTES: usize = 1 << 20;

/// One thing found on the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// What it is: "an ext2/3/4 filesystem", "non-zero data", ...
    pub what: String,
    /// Byte offset on the target where it was seen.
    pub offset: u64,
}

/// Whether `head` holds `magic` at `offset` (false when `head` is too short).
fn has(head: &[u8], offset: usize, magic: &[u8]) -> bool {
    head.get(offset..offset + magic.len()) == Some(magic)
}

/// A little-endian u32 at `offset`, when `head` holds it.
fn le_u32(head: &[u8], offset: usize) -> Option<u32> {
    let bytes = head.get(offset..offset + 4)?;
    Some(u32::from_le_bytes(bytes.try_into().ok()?))
}

/// A little-endian u64 at `offset`, when `head` holds it.
fn le_u64(head: &[u8], offset: usize) -> Option<u64> {
    let bytes = head.get(offset..offset + 8)?;
    Some(u64::from_le_bytes(bytes.try_into().ok()?))
}

/// Fixed magics: (offset, bytes, what).
const MAGICS: &[(usize, &[u8], &str)] = &[
    (0, b"XFSB", "an XFS filesystem"),
    (65600, b"_BHRfS_M", "a btrfs filesystem"),
    (0, b"LUKS\xba\xbe", "a LUKS encrypted volume header"),
    (0, b"SKUL\xba\xbe", "a LUKS2 secondary header"),
    (32769, b"CD001", "an ISO 9660 filesystem"),
    (0, b"hsqs", "a squashfs filesystem"),
    (0, b"sqsh", "a squashfs filesystem (big-endian)"),
    (3, b"NTFS    ", "an NTFS filesystem"),
    (3, b"EXFAT   ", "an exFAT filesystem"),
    (54, b"FAT12   ", "a FAT12 filesystem"),
    (54, b"FAT16   ", "a FAT16 filesystem"),
    (82, b"FAT32   ", "a FAT32 filesystem"),
    (512, b"EFI PART", "a GPT partition table"),
    (4096, b"EFI PART", "a GPT partition table (4 KiB sectors)"),
    (
        1024 + 24,
        &[0xc6, 0x85, 0x73, 0xf6, 0x4e, 0x1a, 0x45, 0xca],
        "a bcache superblock",
    ),
    (
        4096 + 24,
        &[0xc6, 0x85, 0x73, 0xf6, 0x4e, 0x1a, 0x45, 0xca],
        "a bcache superblock",
    ),
];

/// Page sizes whose swap signature (at page size − 10) is checked.
const SWAP_PAGE_SIZES: [usize; 4] = [4096, 8192, 16384, 65536];

/// ZFS uberblock magic, stored in the pool's byte order.
const ZFS_UBERBLOCK_MAGIC: u64 = 0x00ba_b10c;

/// Every known signature in `head` (the first bytes of the target), in offset order.
pub fn known_signatures(head: &[u8]) -> Vec<Finding> {
    let mut found = Vec::new();
    fn push_to(found: &mut Vec<Finding>, what: &str, offset: usize) {
        found.push(Finding {
            what: what.to_string(),
            offset: offset as u64,
        });
    }
    for &(offset, magic, what) in MAGICS {
        if has(head, offset, magic) {
            push_to(&mut found, what, offset);
        }
    }
    // ext2/3/4: s_magic 0xEF53 at byte 56 of the superblock at 1024; also check the
    // revision level is sane so a random 53 EF pair is less likely to be taken for it.
    if has(head, 1080, &[0x53, 0xef]) && le_u32(head, 1024 + 76).is_some_and(|rev| rev <= 1) {
        push_to(&mut found, "an ext2/3/4 filesystem", 1080);
    }
    for page in SWAP_PAGE_SIZES {
        for magic in [&b"SWAPSPACE2"[..], &b"SWAP-SPACE"[..]] {
            if has(head, page - 10, magic) {
                push_to(&mut found, "a swap area", page - 10);
            }
        }
    }
    // LVM2 physical volume label: "LABELONE" in one of the first four sectors.
    for sector in 0..4 {
        if has(head, sector * 512, b"LABELONE") {
            push_to(&mut found, "an LVM physical volume label", sector * 512);
        }
    }
    // md RAID superblock v1.1 (at 0) and v1.2 (at 4096).
    for offset in [0, 4096] {
        if le_u32(head, offset) == Some(0xa92b_4efc) {
            push_to(&mut found, "an md RAID member", offset);
        }
    }
    if le_u32(head, 1024) == Some(0xf2f5_2010) {
        push_to(&mut found, "an f2fs filesystem", 1024);
    }
    // ZFS: label 0 at 0, its uberblock ring at 128 KiB, 1 KiB slots at least.
    for offset in (128 * 1024..256 * 1024).step_by(1024) {
        if let Some(value) = le_u64(head, offset) {
            if value == ZFS_UBERBLOCK_MAGIC || value.swap_bytes() == ZFS_UBERBLOCK_MAGIC {
                push_to(&mut found, "a ZFS pool member", offset);
                break;
            }
        }
    }
    // Boot signature 55 AA at 510: a FAT/NTFS/exFAT boot sector (reported above) or an
    // MBR. Only call it a partition table when no boot-sector filesystem explained it.
    let boot_fs = found
        .iter()
        .any(|f| f.offset == 3 || f.offset == 54 || f.offset == 82);
    if has(head, 510, &[0x55, 0xaa]) && !boot_fs {
        let protective = head.get(450) == Some(&0xee);
        push_to(
            &mut found,
            if protective {
                "a protective MBR (GPT disk)"
            } else {
                "an MBR partition table"
            },
            510,
        );
    }
    found.sort_by_key(|f| f.offset);
    found
}

/// The first non-zero byte of `bytes`, as an offset from `base`.
pub fn first_non_zero(bytes: &[u8], base: u64) -> Option<u64> {
    bytes
        .iter()
        .position(|&b| b != 0)
        .map(|index| base + index as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head_with(offset: usize, bytes: &[u8]) -> Vec<u8> {
        let mut head = vec![0u8; HEAD_BYTES];
        head[offset..offset + bytes.len()].copy_from_slice(bytes);
        head
    }

    #[test]
    fn each_signature_is_found_at_its_offset() {
        let cases: &[(usize, &[u8], &str)] = &[
            (1080, &[0x53, 0xef], "ext2/3/4"),
            (0, b"XFSB", "XFS"),
            (65600, b"_BHRfS_M", "btrfs"),
            (4086, b"SWAPSPACE2", "swap"),
            (4086, b"SWAP-SPACE", "swap"),
            (65526, b"SWAPSPACE2", "swap"),
            (510, &[0x55, 0xaa], "MBR"),
            (512, b"EFI PART", "GPT"),
            (4096, b"EFI PART", "GPT"),
            (0, b"LUKS\xba\xbe", "LUKS"),
            (32769, b"CD001", "ISO 9660"),
            (512, b"LABELONE", "LVM"),
            (1536, b"LABELONE", "LVM"),
            (0, b"hsqs", "squashfs"),
            (4096, &0xa92b_4efcu32.to_le_bytes(), "md RAID"),
            (1024, &0xf2f5_2010u32.to_le_bytes(), "f2fs"),
            (128 * 1024 + 5 * 1024, &0x00ba_b10cu64.to_le_bytes(), "ZFS"),
            (128 * 1024, &0x00ba_b10cu64.to_be_bytes(), "ZFS"),
        ];
        for &(offset, magic, name) in cases {
            let found = known_signatures(&head_with(offset, magic));
            assert_eq!(found.len(), 1, "{name}: {found:?}");
            assert!(found[0].what.contains(name), "{name}: {found:?}");
            assert_eq!(found[0].offset, offset as u64, "{name}");
        }
    }

    #[test]
    fn boot_sector_filesystems_are_not_reported_as_mbr() {
        for (offset, magic, name) in [
            (82, &b"FAT32   "[..], "FAT32"),
            (54, &b"FAT16   "[..], "FAT16"),
            (3, &b"NTFS    "[..], "NTFS"),
            (3, &b"EXFAT   "[..], "exFAT"),
        ] {
            let mut head = head_with(offset, magic);
            head[510] = 0x55;
            head[511] = 0xaa;
            let found = known_signatures(&head);
            assert_eq!(found.len(), 1, "{name}: {found:?}");
            assert!(found[0].what.contains(name));
        }
    }

    #[test]
    fn protective_mbr_and_gpt_are_both_reported() {
        let mut head = head_with(512, b"EFI PART");
        head[510] = 0x55;
        head[511] = 0xaa;
        head[450] = 0xee;
        let found = known_signatures(&head);
        assert_eq!(found.len(), 2);
        assert!(found[0].what.contains("protective MBR"));
        assert!(found[1].what.contains("GPT"));
    }

    #[test]
    fn zeros_short_heads_and_our_own_magic_carry_no_signature() {
        assert!(known_signatures(&vec![0u8; HEAD_BYTES]).is_empty());
        assert!(known_signatures(&[]).is_empty());
        assert!(known_signatures(b"XFS").is_empty());
        assert!(known_signatures(&head_with(0, b"STACKVOL")).is_empty());
        assert!(known_signatures(&head_with(65536, b"STACKVOL")).is_empty());
        // An ext magic with a nonsense revision level is not taken for ext.
        let mut head = head_with(1080, &[0x53, 0xef]);
        head[1100] = 7;
        assert!(known_signatures(&head).is_empty());
    }

    #[test]
    fn first_non_zero_offsets() {
        assert_eq!(first_non_zero(&[0, 0, 0], 10), None);
        assert_eq!(first_non_zero(&[0, 0, 9], 10), Some(12));
        assert_eq!(first_non_zero(&[], 0), None);
    }
}
