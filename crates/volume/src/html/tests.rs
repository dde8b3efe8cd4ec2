//! The page's structure: self-contained, one chart per drive, text escaped, every mark.

use super::*;
use crate::map::{MapRegion, MapSeries};

fn series(n: u32, region: u64, speed: impl Fn(u32) -> f64) -> MapSeries {
    MapSeries {
        bytes: region * u64::from(n),
        busy_secs: 1.0,
        mib_per_s: 300.0,
        regions: (0..n)
            .map(|i| MapRegion {
                index: i,
                offset_bytes: u64::from(i) * region,
                bytes: region,
                ios: 8,
                busy_us: 1000,
                mib_per_s: speed(i),
                latency_us_p50: 2000,
                latency_us_p99: if i == 5 { 90_000 } else { 4000 },
                latency_us_max: 100_000,
            })
            .collect(),
    }
}

fn drive(name: &str) -> DriveReport {
    let region = 1 << 20;
    DriveReport {
        target: name.to_owned(),
        capacity_bytes: 64 * region,
        verdict: "damaged".to_owned(),
        identity: vec![("model".into(), "Acme <SSD> & co".into())],
        map: Some(SurfaceMap {
            capacity_bytes: 64 * region,
            region_bytes: region,
            regions: 64,
            write: Some(series(60, region, |i| if i < 30 { 500.0 } else { 120.0 })),
            read: Some(series(60, region, |_| 800.0)),
            slow_ios: Vec::new(),
            slow_ios_total: 0,
        }),
        findings: vec![Finding::WriteCliff {
            offset_bytes: 30 * region,
            before_mib_per_s: 500.0,
            after_mib_per_s: 120.0,
        }],
        damaged: vec![DamageMark {
            offset_bytes: 10 * region,
            len_bytes: 4096,
            cause: "flipped-bits".into(),
        }],
        damaged_bytes: 4096,
        ..DriveReport::default()
    }
}

#[test]
fn a_page_holds_a_chart_per_drive_and_nothing_from_outside() {
    let page = render(&[drive("/dev/sdb"), drive("/dev/<sdc>")]);
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert_eq!(page.matches("<svg").count(), 2, "one chart per drive");
    assert_eq!(page.matches("<section class=\"card drive\"").count(), 2);
    for outside in ["http://", "https://", "src=", "<script", "<link", "url("] {
        // The SVG namespace is the one URL allowed: it names, it is not fetched.
        let fetched = page
            .match_indices(outside)
            .filter(|(i, _)| !page[i.saturating_sub(7)..].starts_with("xmlns=\"http"))
            .count();
        assert_eq!(fetched, 0, "{outside} in the page");
    }
    assert!(page.contains("/dev/&lt;sdc&gt;"), "targets are escaped");
    assert!(page.contains("Acme &lt;SSD&gt; &amp; co"));
    assert!(!page.contains("<SSD>"));
    assert!(page.contains("write cliff at 30.0 MiB"));
    assert!(page.contains("flipped-bits"));
    assert!(page.contains("1 finding"));
}

#[test]
fn drives_share_one_speed_scale() {
    let mut fast = drive("fast");
    if let Some(m) = fast.map.as_mut() {
        m.read = Some(series(60, 1 << 20, |_| 2300.0));
    }
    let y = chart::shared_y_max(&[drive("slow"), fast]);
    assert_eq!(y, 3000.0);
    assert_eq!(chart::shared_y_max(&[drive("slow")]), 1000.0);
    assert_eq!(chart::shared_y_max(&[DriveReport::default()]), 1.0);
}

#[test]
fn a_drive_without_a_map_still_gets_its_card() {
    let d = DriveReport {
        target: "lost".into(),
        verdict: "lost".into(),
        verdict_detail: vec!["removed after 3.0 GiB were verified".into()],
        ..DriveReport::default()
    };
    let page = render(&[d]);
    assert_eq!(page.matches("<svg").count(), 1);
    assert!(page.contains("removed after 3.0 GiB were verified"));
    assert!(page.contains("badge bad"));
}
