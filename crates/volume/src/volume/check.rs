//! Verify's metadata half: both superblock slots judged again by the rule open used, and
//! the committed object table read again and compared with the one in use. The data
//! half (checksum streams, data blocks) is the verify pipeline's.

use super::{judge_slots, load_table, Rejected, Volume};
use crate::format::SB_SLOT_OFFSETS;
use crate::report::{MetadataDamage, SuperblockState, VerifyReport};
use crate::Error;

impl Volume {
    /// Checks the superblocks and the object table, recording every problem in `report`.
    pub(crate) fn verify_metadata(&self, report: &mut VerifyReport) {
        self.verify_superblocks(report);
        let table_at = self.sb.meta_start_block * u64::from(self.sb.block_size_bytes);
        let reread = load_table(&*self.device, &self.sb).and_then(|t| {
            if t == self.table {
                Ok(())
            } else {
                Err(Error::Corrupt {
                    what: "object table",
                    offset: table_at,
                    detail: "differs from the table read at open".into(),
                })
            }
        });
        if let Err(e) = reread {
            report.metadata_ok = false;
            report.metadata_damage.push(MetadataDamage {
                what: "object table".into(),
                object: None,
                physical_offset: table_at,
                detail: e.to_string(),
            });
        }
    }

    /// Judges both slots again by the rule open used (`judge_slots`), so verify, `ls`
    /// and `info` agree on which slot is usable; every unusable slot is metadata damage.
    fn verify_superblocks(&self, report: &mut VerifyReport) {
        let slots = judge_slots(&*self.device);
        let mut states = slots.states();
        for (slot, state) in states.iter_mut().enumerate() {
            let SuperblockState::Ok { generation } = *state else {
                continue;
            };
            let Some(sb) = slots
                .chosen
                .iter()
                .chain(&slots.others)
                .map(|(sb, _)| sb)
                .find(|sb| usize::from(sb.slot) == slot)
            else {
                continue;
            };
            // The disk changed since open: a copy the volume in use does not account for.
            let reason = if slot == usize::from(self.sb.slot) && *sb != self.sb {
                Some("differs from the copy in use".to_string())
            } else if generation > self.sb.generation {
                Some(format!(
                    "generation {generation} is newer than the state in use; its metadata verifies now but did not when the volume was opened"
                ))
            } else if sb.uuid != self.sb.uuid
                || sb.block_size_bytes != self.sb.block_size_bytes
                || sb.total_blocks != self.sb.total_blocks
            {
                Some("describes another volume than the copy in use".to_string())
            } else {
                None
            };
            if let Some(reason) = reason {
                report.metadata_ok = false;
                report.metadata_damage.push(MetadataDamage {
                    what: format!("superblock slot {slot} (generation {generation})"),
                    object: None,
                    physical_offset: SB_SLOT_OFFSETS[slot],
                    detail: reason.clone(),
                });
                *state = SuperblockState::Damaged { reason };
            }
        }
        for (slot, rejected) in slots.rejected.iter().enumerate() {
            let Some(rejected) = rejected else { continue };
            report.metadata_ok = false;
            report.metadata_damage.push(match rejected {
                // Say where the table breaks, as exactly as `info` does.
                Rejected::Metadata { sb, error } => MetadataDamage {
                    what: format!(
                        "object table of generation {} (superblock slot {slot})",
                        sb.generation
                    ),
                    object: None,
                    physical_offset: sb
                        .meta_start_block
                        .saturating_mul(u64::from(sb.block_size_bytes)),
                    detail: error.clone(),
                },
                other => MetadataDamage {
                    what: format!("superblock slot {slot}"),
                    object: None,
                    physical_offset: SB_SLOT_OFFSETS[slot],
                    detail: other.reason(),
                },
            });
        }
        for (slot, state) in states.into_iter().enumerate() {
            report.superblocks[slot] = Some(state);
        }
    }
}
