//! SMART health before and after a run: `smartctl -j -a DEV` (smartmontools 7 or later)
//! parsed into the counters that say a drive is wearing out or failing, and the change
//! between two readings turned into findings.
//!
//! Counters (each with the direction that is worse): ATA attributes 5 (reallocated
//! sectors), 196 (reallocation events), 197 (pending sectors), 198 (offline
//! uncorrectable), 187 (reported uncorrectable), 199 (UDMA CRC errors: a cable or
//! bridge), the normalized life-left value of the wear attributes 177, 231, 233, 202;
//! NVMe media errors, percentage used, available spare, critical warning (and the error
//! log count, shown but not judged: NVMe drives log harmless aborts there); SCSI's grown
//! defect list. The overall health (`smart_status.passed`) is read too. A reading is
//! untrusted input: a missing or mistyped field is skipped, never a panic.

use std::path::Path;
use std::process::Command;

use serde::Serialize;
use serde_json::Value;

/// Why no SMART reading was taken. Not an error of the run: the report shows it as a
/// note.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SmartError {
    /// `smartctl` is not on `PATH`.
    #[error("smartctl is not installed (install smartmontools 7 or later for --smart)")]
    NotInstalled,
    /// `smartctl` ran but gave no JSON: older than 7, or it failed.
    #[error(
        "smartctl gave no JSON reading for {device} (smartmontools 7 or later is needed): {detail}"
    )]
    NoJson {
        /// The device.
        device: String,
        /// The first line it printed, or why it could not run.
        detail: String,
    },
    /// `smartctl` is older than 7.
    #[error("smartctl {version} is too old for --smart (7 or later is needed)")]
    TooOld {
        /// Its version, `major.minor`.
        version: String,
    },
    /// The device gives no SMART data (a loop device, a USB bridge that does not pass
    /// it through, a card reader).
    #[error("{device} gives no SMART data: {detail}")]
    Unavailable {
        /// The device.
        device: String,
        /// What smartctl said.
        detail: String,
    },
}

/// Which way a counter is worse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Worse {
    /// A higher value is worse (error counts, wear used).
    Higher,
    /// A lower value is worse (life left, spare).
    Lower,
    /// Shown when it changes, never a finding.
    Neither,
}

/// One counter of a reading.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Counter {
    /// Stable key: `reallocated_sectors`, `pending_sectors`, `offline_uncorrectable`,
    /// `reported_uncorrectable`, `reallocation_events`, `udma_crc_errors`,
    /// `life_left_percent`, `media_errors`, `percentage_used`, `available_spare_percent`,
    /// `critical_warning`, `error_log_entries`, `grown_defects`.
    pub key: &'static str,
    /// What the drive calls it (the ATA attribute's name, or the NVMe log field).
    pub name: String,
    /// The value (an ATA attribute's raw value; its normalized value for life left).
    pub value: u64,
    /// Which way is worse.
    pub worse: Worse,
}

/// One `smartctl -j -a` reading.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    /// smartctl's device type (`sat`, `nvme`, `scsi`, `usbjmicron`, ...).
    pub device_type: Option<String>,
    /// `ATA`, `NVMe` or `SCSI`.
    pub protocol: Option<String>,
    /// Model as the drive reports it.
    pub model: Option<String>,
    /// Serial as the drive reports it.
    pub serial: Option<String>,
    /// Firmware.
    pub firmware: Option<String>,
    /// Overall health: `Some(false)` is FAILED; `None` when not reported.
    pub passed: Option<bool>,
    /// Power-on hours.
    pub power_on_hours: Option<u64>,
    /// Current temperature, °C.
    pub temperature_c: Option<u64>,
    /// The counters found.
    pub counters: Vec<Counter>,
    /// smartctl's exit status (a bit mask; bits 3 and up are health findings).
    pub exit_status: u64,
    /// smartctl's messages.
    pub messages: Vec<String>,
}

/// A counter that differs between two readings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// The counter's key.
    pub key: &'static str,
    /// Its name.
    pub name: String,
    /// Before the run (`None`: not in that reading).
    pub before: Option<u64>,
    /// After the run.
    pub after: Option<u64>,
    /// It moved the worse way.
    pub worse: bool,
}

/// What changed between two readings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Comparison {
    /// Counters that differ.
    pub changed: Vec<Change>,
    /// Overall health before.
    pub passed_before: Option<bool>,
    /// Overall health after.
    pub passed_after: Option<bool>,
    /// One sentence per worsening (and for a FAILED health).
    pub findings: Vec<String>,
}

impl Comparison {
    /// The drive reports its overall health FAILED after the run.
    pub fn failed(&self) -> bool {
        self.passed_after == Some(false)
    }
}

fn text(v: &Value, pointer: &str) -> Option<String> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn number(v: &Value, pointer: &str) -> Option<u64> {
    v.pointer(pointer).and_then(Value::as_u64)
}

/// ATA attributes read by raw value: (id, key, worse).
const ATA_RAW: &[(u64, &str, Worse)] = &[
    (5, "reallocated_sectors", Worse::Higher),
    (196, "reallocation_events", Worse::Higher),
    (197, "pending_sectors", Worse::Higher),
    (198, "offline_uncorrectable", Worse::Higher),
    (187, "reported_uncorrectable", Worse::Higher),
    (199, "udma_crc_errors", Worse::Higher),
];

/// ATA wear attributes whose normalized value is the life left in percent.
const ATA_LIFE: &[u64] = &[177, 231, 233, 202];

/// NVMe health log fields: (field, key, worse).
const NVME: &[(&str, &str, Worse)] = &[
    ("media_errors", "media_errors", Worse::Higher),
    ("percentage_used", "percentage_used", Worse::Higher),
    ("available_spare", "available_spare_percent", Worse::Lower),
    ("critical_warning", "critical_warning", Worse::Higher),
    ("num_err_log_entries", "error_log_entries", Worse::Neither),
];

/// Parses one `smartctl -j -a` document. `device` names it in errors. A document that
/// says the device gives no SMART data (unknown device type, an unsupported USB bridge,
/// SMART unavailable) is [`SmartError::Unavailable`].
pub fn parse(device: &str, json: &[u8]) -> Result<Snapshot, SmartError> {
    let v: Value = serde_json::from_slice(json).map_err(|e| SmartError::NoJson {
        device: device.to_string(),
        detail: String::from_utf8_lossy(json)
            .lines()
            .find(|l| !l.trim().is_empty())
            .map_or_else(|| e.to_string(), |l| l.trim().to_string()),
    })?;
    if let Some(major) = number(&v, "/smartctl/version/0") {
        if major < 7 {
            let minor = number(&v, "/smartctl/version/1").unwrap_or(0);
            return Err(SmartError::TooOld {
                version: format!("{major}.{minor}"),
            });
        }
    }
    let messages: Vec<String> = v
        .pointer("/smartctl/messages")
        .and_then(Value::as_array)
        .map(|all| {
            all.iter()
                .filter_map(|m| m.get("string").and_then(Value::as_str))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let exit_status = number(&v, "/smartctl/exit_status").unwrap_or(0);
    let mut snap = Snapshot {
        device_type: text(&v, "/device/type"),
        protocol: text(&v, "/device/protocol"),
        model: text(&v, "/model_name").or_else(|| text(&v, "/scsi_model_name")),
        serial: text(&v, "/serial_number"),
        firmware: text(&v, "/firmware_version").or_else(|| text(&v, "/scsi_revision")),
        passed: v.pointer("/smart_status/passed").and_then(Value::as_bool),
        power_on_hours: number(&v, "/power_on_time/hours"),
        temperature_c: number(&v, "/temperature/current"),
        counters: Vec::new(),
        exit_status,
        messages,
    };
    // Bits 0 and 1: the command line or the device open failed; no reading follows.
    let unavailable = exit_status & 0b11 != 0
        || v.pointer("/smart_support/available")
            .and_then(Value::as_bool)
            == Some(false)
        || (snap.device_type.is_none() && snap.passed.is_none());
    if let Some(table) = v
        .pointer("/ata_smart_attributes/table")
        .and_then(Value::as_array)
    {
        for attr in table {
            let Some(id) = attr.get("id").and_then(Value::as_u64) else {
                continue;
            };
            let name = attr
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            if let Some((_, key, worse)) = ATA_RAW.iter().find(|(i, _, _)| *i == id) {
                // Some drives pack more into the raw 48 bits (e.g. a max in the upper
                // words); the low 32 bits are the count.
                if let Some(raw) = attr.pointer("/raw/value").and_then(Value::as_u64) {
                    snap.counters.push(Counter {
                        key,
                        name,
                        value: raw & 0xffff_ffff,
                        worse: *worse,
                    });
                }
            } else if ATA_LIFE.contains(&id)
                && !snap.counters.iter().any(|c| c.key == "life_left_percent")
            {
                if let Some(value) = attr.get("value").and_then(Value::as_u64) {
                    snap.counters.push(Counter {
                        key: "life_left_percent",
                        name,
                        value,
                        worse: Worse::Lower,
                    });
                }
            }
        }
    }
    if let Some(log) = v.get("nvme_smart_health_information_log") {
        for (field, key, worse) in NVME {
            if let Some(value) = log.get(*field).and_then(Value::as_u64) {
                snap.counters.push(Counter {
                    key,
                    name: (*field).to_string(),
                    value,
                    worse: *worse,
                });
            }
        }
    }
    if let Some(value) = number(&v, "/scsi_grown_defect_list") {
        snap.counters.push(Counter {
            key: "grown_defects",
            name: "scsi_grown_defect_list".to_string(),
            value,
            worse: Worse::Higher,
        });
    }
    if unavailable && snap.counters.is_empty() && snap.passed.is_none() {
        let detail = if snap.messages.is_empty() {
            "smartctl reports no SMART support".to_string()
        } else {
            snap.messages.join("; ")
        };
        return Err(SmartError::Unavailable {
            device: device.to_string(),
            detail,
        });
    }
    Ok(snap)
}

/// Runs `smartctl -j -a device` (the program `smartctl` on `PATH`) and parses it.
pub fn read(device: &Path) -> Result<Snapshot, SmartError> {
    let shown = device.display().to_string();
    let output = Command::new("smartctl")
        .args(["-j", "-a"])
        .arg(device)
        .output();
    let output = match output {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(SmartError::NotInstalled),
        Err(e) => {
            return Err(SmartError::NoJson {
                device: shown,
                detail: e.to_string(),
            })
        }
    };
    // smartctl's exit status is a bit mask of findings, not success: the JSON decides.
    parse(&shown, &output.stdout)
}

/// What changed from `before` to `after`, and which changes are findings.
pub fn compare(before: &Snapshot, after: &Snapshot) -> Comparison {
    let mut changed = Vec::new();
    let mut keys: Vec<&'static str> = before.counters.iter().map(|c| c.key).collect();
    for c in &after.counters {
        if !keys.contains(&c.key) {
            keys.push(c.key);
        }
    }
    let mut findings = Vec::new();
    for key in keys {
        let b = before.counters.iter().find(|c| c.key == key);
        let a = after.counters.iter().find(|c| c.key == key);
        let (before_value, after_value) = (b.map(|c| c.value), a.map(|c| c.value));
        if before_value == after_value {
            continue;
        }
        let Some(counter) = a.or(b) else { continue };
        let worse = match (before_value, after_value, counter.worse) {
            (Some(x), Some(y), Worse::Higher) => y > x,
            (Some(x), Some(y), Worse::Lower) => y < x,
            _ => false,
        };
        if worse {
            findings.push(format!(
                "SMART {} ({}) went from {} to {} during the run",
                key.replace('_', " "),
                counter.name,
                before_value.unwrap_or(0),
                after_value.unwrap_or(0)
            ));
        }
        changed.push(Change {
            key,
            name: counter.name.clone(),
            before: before_value,
            after: after_value,
            worse,
        });
    }
    if after.passed == Some(false) {
        findings.insert(
            0,
            if before.passed == Some(false) {
                "SMART overall health: FAILED (before and after the run)".to_string()
            } else {
                "SMART overall health: FAILED after the run".to_string()
            },
        );
    }
    Comparison {
        changed,
        passed_before: before.passed,
        passed_after: after.passed,
        findings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recording(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/data/smart")
            .join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn value(snap: &Snapshot, key: &str) -> Option<u64> {
        snap.counters.iter().find(|c| c.key == key).map(|c| c.value)
    }

    #[test]
    fn a_sata_ssd_gives_its_attributes_and_health() {
        let snap = parse("/dev/sda", &recording("sata-ssd.json")).unwrap();
        assert_eq!(snap.device_type.as_deref(), Some("sat"));
        assert_eq!(snap.protocol.as_deref(), Some("ATA"));
        assert_eq!(snap.model.as_deref(), Some("Samsung SSD 860 EVO 500GB"));
        assert_eq!(snap.serial.as_deref(), Some("S3Z9NB0K123456A"));
        assert_eq!(snap.firmware.as_deref(), Some("RVT04B6Q"));
        assert_eq!(snap.passed, Some(true));
        assert_eq!(snap.power_on_hours, Some(12_345));
        assert_eq!(snap.temperature_c, Some(31));
        assert_eq!(value(&snap, "reallocated_sectors"), Some(0));
        assert_eq!(value(&snap, "udma_crc_errors"), Some(0));
        assert_eq!(value(&snap, "reported_uncorrectable"), Some(0));
        assert_eq!(
            value(&snap, "life_left_percent"),
            Some(97),
            "177's normalized value"
        );
        assert_eq!(value(&snap, "media_errors"), None);
    }

    #[test]
    fn an_nvme_drive_gives_its_health_log() {
        let snap = parse("/dev/nvme0n1", &recording("nvme.json")).unwrap();
        assert_eq!(snap.device_type.as_deref(), Some("nvme"));
        assert_eq!(snap.model.as_deref(), Some("WDC WDS500G2B0C-00PXH0"));
        assert_eq!(snap.passed, Some(true));
        assert_eq!(value(&snap, "media_errors"), Some(0));
        assert_eq!(value(&snap, "percentage_used"), Some(3));
        assert_eq!(value(&snap, "available_spare_percent"), Some(100));
        assert_eq!(value(&snap, "critical_warning"), Some(0));
        assert_eq!(value(&snap, "error_log_entries"), Some(12));
        assert_eq!(snap.power_on_hours, Some(3_456));
    }

    #[test]
    fn a_usb_bridge_passing_sat_is_read_and_an_unknown_one_is_unavailable() {
        let snap = parse("/dev/sdb", &recording("usb-sat-hdd.json")).unwrap();
        assert_eq!(snap.device_type.as_deref(), Some("sat"));
        assert_eq!(value(&snap, "pending_sectors"), Some(8));
        assert_eq!(value(&snap, "offline_uncorrectable"), Some(8));
        assert_eq!(value(&snap, "udma_crc_errors"), Some(2));
        assert_eq!(value(&snap, "reallocated_sectors"), Some(16));
        let err = parse("/dev/sdc", &recording("usb-bridge-unsupported.json")).unwrap_err();
        match &err {
            SmartError::Unavailable { device, detail } => {
                assert_eq!(device, "/dev/sdc");
                assert!(detail.contains("Unknown USB bridge"), "{detail}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_loop_device_and_a_stick_without_smart_are_unavailable() {
        // Recorded from smartctl 7.3 on this machine: `smartctl -j -a /dev/loop0`.
        let err = parse("/dev/loop0", &recording("loop-unknown-type.json")).unwrap_err();
        assert!(
            matches!(&err, SmartError::Unavailable { detail, .. } if detail.contains("Unable to detect device type")),
            "{err:?}"
        );
        let err = parse("/dev/sdd", &recording("usb-stick-no-smart.json")).unwrap_err();
        assert!(matches!(err, SmartError::Unavailable { .. }), "{err:?}");
    }

    #[test]
    fn worsening_counters_and_failed_health_are_findings() {
        let before = parse("/dev/sdb", &recording("usb-sat-hdd.json")).unwrap();
        let after = parse("/dev/sdb", &recording("usb-sat-hdd-after.json")).unwrap();
        let cmp = compare(&before, &after);
        let keys: Vec<&str> = cmp.changed.iter().map(|c| c.key).collect();
        assert_eq!(
            keys,
            ["reallocated_sectors", "pending_sectors", "udma_crc_errors"],
            "{cmp:?}"
        );
        assert!(cmp.changed.iter().take(2).all(|c| c.worse));
        assert!(
            !cmp.changed[2].worse,
            "a counter that went down (a reset bridge) is no finding"
        );
        assert_eq!(cmp.changed[1].before, Some(8));
        assert_eq!(cmp.changed[1].after, Some(24));
        assert!(cmp.failed());
        assert_eq!(
            cmp.findings[0],
            "SMART overall health: FAILED after the run"
        );
        assert_eq!(cmp.findings.len(), 3, "{:?}", cmp.findings);
        assert!(
            cmp.findings[2].contains("from 8 to 24"),
            "{:?}",
            cmp.findings
        );
    }

    #[test]
    fn unchanged_and_improving_readings_are_no_findings() {
        let snap = parse("/dev/nvme0n1", &recording("nvme.json")).unwrap();
        let cmp = compare(&snap, &snap);
        assert!(cmp.changed.is_empty());
        assert!(cmp.findings.is_empty());
        assert!(!cmp.failed());
        let mut after = snap.clone();
        for c in &mut after.counters {
            if c.key == "error_log_entries" || c.key == "available_spare_percent" {
                c.value += 1;
            }
        }
        let cmp = compare(&snap, &after);
        assert_eq!(cmp.changed.len(), 2);
        assert!(cmp.findings.is_empty(), "{:?}", cmp.findings);
    }

    #[test]
    fn hostile_documents_never_panic() {
        for doc in [
            &b""[..],
            b"not json",
            b"[]",
            b"{\"smartctl\":{\"version\":[6,6]}}",
            b"{\"ata_smart_attributes\":{\"table\":[{\"id\":\"5\"},{\"id\":5,\"raw\":{\"value\":-1}},7]}}",
            b"{\"nvme_smart_health_information_log\":{\"media_errors\":1e30}}",
        ] {
            let _ = parse("x", doc);
        }
        assert!(matches!(
            parse("x", b"{\"smartctl\":{\"version\":[6,6]}}"),
            Err(SmartError::TooOld { .. })
        ));
        assert!(matches!(
            parse("x", b"smartctl: invalid option -- 'j'"),
            Err(SmartError::NoJson { .. })
        ));
    }
}
