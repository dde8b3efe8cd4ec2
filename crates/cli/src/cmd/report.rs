//! `--report FILE.html`: the surface map and findings of a verify or burn-in, and the
//! page `stack_volume::html` draws of them.

use std::path::Path;

use anyhow::Context as _;
use stack_volume::findings::{find, FindingOptions};
use stack_volume::html::{render, DriveReport};
use stack_volume::map::SurfaceMap;
use stack_volume::{VerifyReport, Volume};

use super::doc::VerifyDoc;

/// Puts `map` and the findings it shows into a verify document.
pub fn set_map(doc: &mut VerifyDoc, map: SurfaceMap) {
    doc.findings = find(&map, &FindingOptions::default());
    doc.map = Some(map);
}

/// One drive of the page, from a verify on `volume` and its document.
pub fn drive(
    target: &Path,
    volume: &Volume,
    report: &VerifyReport,
    doc: &VerifyDoc,
) -> DriveReport {
    let mut drive = DriveReport::from_verify(
        &target.display().to_string(),
        &volume.info(),
        report,
        doc.verdict.as_ref(),
    );
    drive.map = doc.map.clone();
    drive.findings = doc.findings.clone();
    drive
}

/// Writes the page for `drives` to `path`.
pub fn write_html(path: &Path, drives: &[DriveReport]) -> anyhow::Result<()> {
    std::fs::write(path, render(drives))
        .with_context(|| format!("writing the report {}", path.display()))
}
