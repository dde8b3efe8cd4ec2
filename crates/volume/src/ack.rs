//! Acknowledged commits: what a write reported durable, and the check that a drive that
//! lost power still holds all of it (the lost-flush test).
//!
//! A write calls [`WriteOptions::on_commit`](crate::WriteOptions::on_commit) with a
//! [`CommitRecord`] after each commit's second flush returned, never before: a record
//! exists only for a commit the device said was durable. After a power cut,
//! [`Volume::check_acked`] compares the newest record with what the drive holds. A
//! process killed between a commit and its record leaves the drive *newer* than the
//! records, which is fine; only a drive *older* than a record, or acknowledged data
//! missing, short or damaged, is a lost flush.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::format::ObjectKind;
use crate::options::VerifyOptions;
use crate::report::VerifyReport;
use crate::volume::Volume;
use crate::Error;

/// One object as a commit made it durable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckedObject {
    /// Name.
    pub name: String,
    /// Unique id (a replacement of the same name gets a new one).
    pub id: u64,
    /// Committed bytes.
    pub size_bytes: u64,
    /// Whether the object was complete.
    pub complete: bool,
    /// The pattern seed, for pattern data (`None` for user data).
    pub seed: Option<u64>,
}

/// What one durable commit holds: the whole object table at that generation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitRecord {
    /// The volume UUID (8-4-4-4-12 hex digits).
    pub uuid: String,
    /// The committed generation.
    pub generation: u64,
    /// When the commit's last flush returned (Unix milliseconds).
    pub time_unix_ms: u64,
    /// Every object of the committed table.
    pub objects: Vec<AckedObject>,
}

/// Called after each durable commit of a write (after the superblock's flush returned).
pub type CommitFn = Arc<dyn Fn(&CommitRecord) + Send + Sync>;

/// Why an acknowledged object does not hold on the drive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LostHow {
    /// Not in the drive's table at the acknowledged generation.
    Missing,
    /// Present with fewer bytes than acknowledged.
    Short,
    /// Its id names a different object (other name, kind or pattern seed): an older one.
    Stale,
    /// Present, but blocks below the acknowledged size fail verify.
    Damaged,
}

/// An acknowledged object the drive lost, and what the drive holds instead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LostObject {
    /// Name.
    pub name: String,
    /// Id.
    pub id: u64,
    /// What happened.
    pub how: LostHow,
    /// Bytes acknowledged.
    pub acked_size_bytes: u64,
    /// Bytes the drive's table holds (none when missing).
    pub drive_size_bytes: Option<u64>,
    /// Acknowledged bytes that fail verify (damaged ranges below the acked size).
    pub damaged_bytes: u64,
    /// First damaged offset inside the object below the acked size, when damaged.
    pub first_damaged_offset: Option<u64>,
}

/// Evidence that the drive dropped data it had acknowledged as flushed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LostFlushes {
    /// The newest acknowledged generation.
    pub acked_generation: u64,
    /// When it was acknowledged (Unix milliseconds).
    pub acked_time_unix_ms: u64,
    /// The generation the drive holds.
    pub drive_generation: u64,
    /// Acknowledged objects missing, short, stale or damaged.
    pub objects: Vec<LostObject>,
}

/// What [`Volume::check_acked`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AckedCheck {
    /// Records read.
    pub records: u64,
    /// The newest acknowledged generation.
    pub acked_generation: u64,
    /// When it was acknowledged (Unix milliseconds).
    pub acked_time_unix_ms: u64,
    /// The generation the drive holds (at least the acked one when nothing was lost;
    /// more when the process died between a commit and its record).
    pub drive_generation: u64,
    /// Acknowledged bytes checked (the newest record's objects, up to their sizes).
    pub acked_bytes: u64,
    /// Acknowledged objects a newer commit than the newest record removed, replaced or
    /// made shorter (a write or resume that ran out of space is undone); only a drive at
    /// a newer generation than acknowledged can show that, and it is no lost flush.
    pub changed_later: Vec<String>,
    /// Set when the drive lost flushed data.
    pub lost: Option<LostFlushes>,
}

impl CommitRecord {
    /// The record of the table `volume` holds now (called right after a commit).
    pub(crate) fn of(volume: &Volume) -> CommitRecord {
        let info = volume.info();
        let objects = volume
            .objects()
            .into_iter()
            .map(|o| AckedObject {
                seed: match o.kind {
                    ObjectKind::Pattern { seed } => Some(seed),
                    ObjectKind::File => None,
                },
                name: o.name,
                id: o.id,
                size_bytes: o.size_bytes,
                complete: o.complete,
            })
            .collect();
        let time_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        CommitRecord {
            uuid: info.uuid,
            generation: info.generation,
            time_unix_ms,
            objects,
        }
    }
}

impl Volume {
    /// Checks that every commit in `records` (acknowledged by earlier writes, see
    /// [`CommitFn`]) is on the drive and intact: the drive's generation is at least the
    /// newest record's, and each object of that record is present (same id) with at
    /// least its acknowledged size, the same pattern seed, and verifies clean over that
    /// size. `verify` carries progress and cancellation (its `object` is ignored).
    ///
    /// Fails with [`Error::AckedOtherVolume`] when a record names another volume, and
    /// [`Error::NoAckedCommits`] when `records` is empty.
    pub fn check_acked(
        &self,
        records: &[CommitRecord],
        verify: &VerifyOptions,
    ) -> Result<AckedCheck, Error> {
        self.acked_header(records)?;
        let report = self.verify(&VerifyOptions {
            object: None,
            ..verify.clone()
        })?;
        self.check_acked_against(records, &report)
    }

    /// [`Volume::check_acked`] with a whole-volume verify report already made (so a
    /// caller that reports the verify too reads the drive once).
    pub fn check_acked_against(
        &self,
        records: &[CommitRecord],
        report: &VerifyReport,
    ) -> Result<AckedCheck, Error> {
        let newest = self.acked_header(records)?;
        if report.interrupted {
            return Err(Error::Interrupted);
        }
        let drive_generation = self.info().generation;
        let mut check = AckedCheck {
            records: records.len() as u64,
            acked_generation: newest.generation,
            acked_time_unix_ms: newest.time_unix_ms,
            drive_generation,
            acked_bytes: newest.objects.iter().map(|o| o.size_bytes).sum(),
            changed_later: Vec::new(),
            lost: None,
        };
        let mut lost = Vec::new();
        // Objects are compared at any generation: on an older drive they show what it
        // holds instead of what was acknowledged. A newer drive may legitimately have
        // removed, replaced or shortened an object since (tables change only by commits);
        // only damage below the acknowledged size is a loss there.
        let newer = drive_generation > newest.generation;
        {
            let held = self.objects();
            for acked in &newest.objects {
                let now = held.iter().find(|o| o.id == acked.id);
                let seed_of = |kind: &ObjectKind| match kind {
                    ObjectKind::Pattern { seed } => Some(*seed),
                    ObjectKind::File => None,
                };
                let how = match now {
                    None => Some(LostHow::Missing),
                    Some(now) if seed_of(&now.kind) != acked.seed || now.name != acked.name => {
                        Some(LostHow::Stale)
                    }
                    Some(now) if now.size_bytes < acked.size_bytes => Some(LostHow::Short),
                    Some(_) => None,
                };
                let Some(now) = now.filter(|_| how.is_none()) else {
                    if newer {
                        check.changed_later.push(acked.name.clone());
                    } else if let Some(how) = how {
                        let size = now.map(|o| o.size_bytes);
                        lost.push(lost_object(acked, how, size, 0, None));
                    }
                    continue;
                };
                if acked.size_bytes == 0 {
                    continue;
                }
                let below: Vec<_> = report
                    .damaged
                    .iter()
                    // An unreadable block is a failing drive, not a dropped write.
                    .filter(|d| d.object == acked.name && d.logical_offset < acked.size_bytes)
                    .filter(|d| d.cause != crate::report::Cause::Unreadable)
                    .collect();
                if !below.is_empty() {
                    let bytes = below
                        .iter()
                        .map(|d| d.length.min(acked.size_bytes - d.logical_offset))
                        .sum();
                    let first = below.iter().map(|d| d.logical_offset).min();
                    lost.push(lost_object(
                        acked,
                        LostHow::Damaged,
                        Some(now.size_bytes),
                        bytes,
                        first,
                    ));
                }
            }
        }
        if drive_generation < newest.generation || !lost.is_empty() {
            check.lost = Some(LostFlushes {
                acked_generation: newest.generation,
                acked_time_unix_ms: newest.time_unix_ms,
                drive_generation,
                objects: lost,
            });
        }
        Ok(check)
    }

    /// The newest of `records`, once every record is known to be of this volume.
    fn acked_header<'r>(&self, records: &'r [CommitRecord]) -> Result<&'r CommitRecord, Error> {
        let uuid = self.info().uuid;
        if let Some(other) = records.iter().find(|r| r.uuid != uuid) {
            return Err(Error::AckedOtherVolume {
                acked_uuid: other.uuid.clone(),
                volume_uuid: uuid,
            });
        }
        records
            .iter()
            .max_by_key(|r| r.generation)
            .ok_or(Error::NoAckedCommits)
    }
}

fn lost_object(
    acked: &AckedObject,
    how: LostHow,
    drive_size_bytes: Option<u64>,
    damaged_bytes: u64,
    first_damaged_offset: Option<u64>,
) -> LostObject {
    LostObject {
        name: acked.name.clone(),
        id: acked.id,
        how,
        acked_size_bytes: acked.size_bytes,
        drive_size_bytes,
        damaged_bytes,
        first_damaged_offset,
    }
}
