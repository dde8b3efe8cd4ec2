//! The charts of one drive, drawn with plotters' SVG backend: speed across the capacity
//! (writes and reads, damaged ranges and findings shaded behind), and below it on the
//! same axis the latency strips (p50/p99 per region, coloured by their ratio to the
//! drive's median) and lanes marking findings and damage.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::DriveReport;
use crate::findings::Finding;
use crate::map::{MapSeries, SurfaceMap};

/// Pixel width of a drive's chart (it scales with the page).
pub(super) const WIDTH: u32 = 1100;
const SPEED_HEIGHT: u32 = 230;
const ROW: u32 = 16;
const LABEL_AREA: u32 = 118;

pub(super) const WRITE: RGBColor = RGBColor(0xe8, 0x59, 0x0c);
pub(super) const READ: RGBColor = RGBColor(0x19, 0x71, 0xc2);
pub(super) const DAMAGE: RGBColor = RGBColor(0xe0, 0x31, 0x31);
pub(super) const FINDING: RGBColor = RGBColor(0xf0, 0x8c, 0x00);
const GRID: RGBColor = RGBColor(0xe9, 0xec, 0xef);
const EMPTY: RGBColor = RGBColor(0xf1, 0xf3, 0xf5);
const INK: RGBColor = RGBColor(0x34, 0x3a, 0x40);

/// The heat scale of a latency ratio to the median: 1× green to 30×+ red.
pub(super) const HEAT: [(f64, RGBColor); 5] = [
    (1.0, RGBColor(0x2f, 0x9e, 0x44)),
    (2.0, RGBColor(0x94, 0xd8, 0x2d)),
    (4.0, RGBColor(0xfc, 0xc4, 0x19)),
    (10.0, RGBColor(0xf7, 0x67, 0x07)),
    (30.0, RGBColor(0xc9, 0x2a, 0x2a)),
];

/// The colour of a latency `ratio` to the median (log-interpolated along [`HEAT`]).
pub(super) fn heat(ratio: f64) -> RGBColor {
    let r = ratio.max(HEAT[0].0);
    for w in HEAT.windows(2) {
        let ((a, ca), (b, cb)) = (w[0], w[1]);
        if r <= b {
            let t = (r.ln() - a.ln()) / (b.ln() - a.ln());
            let mix =
                |x: u8, y: u8| (f64::from(x) + (f64::from(y) - f64::from(x)) * t).round() as u8;
            return RGBColor(mix(ca.0, cb.0), mix(ca.1, cb.1), mix(ca.2, cb.2));
        }
    }
    HEAT[HEAT.len() - 1].1
}

fn pct(bytes: u64, capacity: u64) -> f64 {
    if capacity == 0 {
        0.0
    } else {
        (bytes as f64 * 100.0 / capacity as f64).min(100.0)
    }
}

/// A range as a percentage span, at least `min_width` wide so a 4 KiB range shows.
fn span(offset: u64, len: u64, capacity: u64, min_width: f64) -> (f64, f64) {
    let a = pct(offset, capacity);
    let b = pct(offset.saturating_add(len), capacity).max(a + min_width);
    (a.min(100.0 - min_width).max(0.0), b.min(100.0))
}

/// The speed points of a series, split where regions saw no I/O (so lines break there).
fn runs(series: &MapSeries, map: &SurfaceMap) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut last: Option<u32> = None;
    for r in &series.regions {
        if last.is_none_or(|l| l + 1 != r.index) {
            out.push(Vec::new());
        }
        let mid = r.offset_bytes + map.region_bytes / 2;
        if let Some(run) = out.last_mut() {
            run.push((
                pct(mid.min(map.capacity_bytes), map.capacity_bytes),
                r.mib_per_s,
            ));
        }
        last = Some(r.index);
    }
    out
}

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
type DrawResult = Result<(), Box<dyn std::error::Error>>;

fn speed_chart(area: &Area<'_>, drive: &DriveReport, y_max: f64) -> DrawResult {
    let capacity = drive.capacity_bytes.max(1);
    let mut chart = ChartBuilder::on(area)
        .margin_top(12)
        .margin_right(16)
        .x_label_area_size(0)
        .y_label_area_size(LABEL_AREA)
        .build_cartesian_2d(0f64..100f64, 0f64..y_max)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_labels(5)
        .y_desc("MiB/s")
        .y_label_formatter(&|v| format!("{v:.0}"))
        .bold_line_style(GRID)
        .light_line_style(WHITE)
        .axis_style(INK.mix(0.5))
        .label_style(("sans-serif", 13).into_font().color(&INK))
        .axis_desc_style(("sans-serif", 13).into_font().color(&INK))
        .draw()?;
    // Behind the lines: damaged ranges and findings, on the same axis.
    for f in &drive.findings {
        let (off, len) = f.range(capacity);
        let (a, b) = span(off, len, capacity, 0.4);
        let alpha = if matches!(f, Finding::WriteCliff { .. }) {
            0.08
        } else {
            0.22
        };
        chart.draw_series(std::iter::once(Rectangle::new(
            [(a, 0.0), (b, y_max)],
            FINDING.mix(alpha).filled(),
        )))?;
        if let Finding::WriteCliff { .. } = f {
            chart.draw_series(DashedLineSeries::new(
                [(a, 0.0), (a, y_max)],
                6,
                4,
                FINDING.stroke_width(2),
            ))?;
        }
    }
    for d in &drive.damaged {
        let (a, b) = span(d.offset_bytes, d.len_bytes, capacity, 0.3);
        chart.draw_series(std::iter::once(Rectangle::new(
            [(a, 0.0), (b, y_max)],
            DAMAGE.mix(0.25).filled(),
        )))?;
    }
    if let Some(map) = &drive.map {
        for (series, color) in [(&map.write, WRITE), (&map.read, READ)] {
            let Some(series) = series else { continue };
            for run in runs(series, map) {
                let clipped: Vec<(f64, f64)> =
                    run.iter().map(|&(x, y)| (x, y.min(y_max))).collect();
                chart.draw_series(AreaSeries::new(clipped.clone(), 0.0, color.mix(0.10)))?;
                chart.draw_series(LineSeries::new(clipped.clone(), color.stroke_width(2)))?;
                if clipped.len() == 1 {
                    chart
                        .draw_series(clipped.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
                }
            }
        }
    }
    Ok(())
}

/// Rows of the strip: (label, what is drawn in it).
enum Row<'a> {
    Latency(&'a MapSeries, bool),
    Findings,
    Damage,
}

fn strips(area: &Area<'_>, drive: &DriveReport) -> DrawResult {
    let capacity = drive.capacity_bytes.max(1);
    let mut rows: Vec<(&str, Row<'_>)> = Vec::new();
    if let Some(map) = &drive.map {
        if let Some(w) = &map.write {
            rows.push(("write p50", Row::Latency(w, false)));
            rows.push(("write p99", Row::Latency(w, true)));
        }
        if let Some(r) = &map.read {
            rows.push(("read p50", Row::Latency(r, false)));
            rows.push(("read p99", Row::Latency(r, true)));
        }
    }
    rows.push(("findings", Row::Findings));
    rows.push(("damage", Row::Damage));
    let n = rows.len() as f64;
    let mut chart = ChartBuilder::on(area)
        .margin_right(16)
        .margin_top(4)
        .x_label_area_size(34)
        .y_label_area_size(LABEL_AREA)
        .build_cartesian_2d(0f64..100f64, 0f64..n)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .y_labels(0)
        .x_labels(11)
        .x_label_formatter(&|v| format!("{v:.0}%"))
        .x_desc("position on the drive (% of its capacity)")
        .axis_style(INK.mix(0.5))
        .label_style(("sans-serif", 13).into_font().color(&INK))
        .axis_desc_style(("sans-serif", 13).into_font().color(&INK))
        .draw()?;
    let label = ("sans-serif", 12)
        .into_font()
        .color(&INK)
        .pos(Pos::new(HPos::Right, VPos::Center));
    for (i, (name, row)) in rows.iter().enumerate() {
        // Row 0 at the top.
        let y0 = n - i as f64 - 1.0;
        let (y_lo, y_hi) = (y0 + 0.08, y0 + 0.92);
        chart.draw_series(std::iter::once(Rectangle::new(
            [(0.0, y_lo), (100.0, y_hi)],
            EMPTY.filled(),
        )))?;
        let (px, py) = chart.backend_coord(&(0.0, y0 + 0.5));
        area.draw(&Text::new(
            name.to_string(),
            (
                px - 8 - area.get_base_pixel().0,
                py - area.get_base_pixel().1,
            ),
            label.clone(),
        ))?;
        match row {
            Row::Latency(series, p99) => {
                let Some(map) = &drive.map else { continue };
                let mut p50s: Vec<u64> = series.regions.iter().map(|r| r.latency_us_p50).collect();
                p50s.sort_unstable();
                let median = p50s.get(p50s.len() / 2).copied().unwrap_or(1).max(1) as f64;
                chart.draw_series(series.regions.iter().map(|r| {
                    let v = if *p99 {
                        r.latency_us_p99
                    } else {
                        r.latency_us_p50
                    };
                    let (a, b) = span(r.offset_bytes, map.region_bytes, capacity, 0.0);
                    Rectangle::new([(a, y_lo), (b, y_hi)], heat(v as f64 / median).filled())
                }))?;
            }
            Row::Findings => {
                chart.draw_series(drive.findings.iter().map(|f| {
                    let (off, len) = f.range(capacity);
                    let (a, b) = span(off, len, capacity, 0.4);
                    Rectangle::new([(a, y_lo), (b, y_hi)], FINDING.filled())
                }))?;
            }
            Row::Damage => {
                chart.draw_series(drive.damaged.iter().map(|d| {
                    let (a, b) = span(d.offset_bytes, d.len_bytes, capacity, 0.3);
                    Rectangle::new([(a, y_lo), (b, y_hi)], DAMAGE.filled())
                }))?;
            }
        }
    }
    Ok(())
}

/// The strip area's height for a drive: a row per latency series and op, two lanes,
/// and the axis.
fn strip_height(drive: &DriveReport) -> u32 {
    let series = drive.map.as_ref().map_or(0, |m| {
        u32::from(m.write.is_some()) + u32::from(m.read.is_some())
    });
    (series * 2 + 2) * ROW + 38 + 4
}

/// One SVG with the drive's charts; `y_max` is shared by every drive on the page.
pub(super) fn drive_svg(drive: &DriveReport, y_max: f64) -> Result<String, String> {
    let height = SPEED_HEIGHT + strip_height(drive);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        let draw = || -> DrawResult {
            root.fill(&WHITE)?;
            let (top, bottom) = root.split_vertically(SPEED_HEIGHT);
            speed_chart(&top, drive, y_max)?;
            strips(&bottom, drive)?;
            root.present()?;
            Ok(())
        };
        draw().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// The speed axis's top for every drive on a page: the 98th percentile of the regions'
/// speeds (one freak region must not flatten every line), with some room, rounded to a
/// round number. A faster region is drawn at the top edge.
pub(super) fn shared_y_max(drives: &[DriveReport]) -> f64 {
    let mut speeds: Vec<f64> = drives
        .iter()
        .filter_map(|d| d.map.as_ref())
        .flat_map(|m| m.write.iter().chain(m.read.iter()))
        .flat_map(|s| s.regions.iter().filter(|r| r.ios >= 2).map(|r| r.mib_per_s))
        .collect();
    speeds.sort_by(f64::total_cmp);
    let top = speeds
        .get((speeds.len() * 98 / 100).min(speeds.len().saturating_sub(1)))
        .copied()
        .unwrap_or(0.0);
    let want = (top * 1.1).max(1.0);
    let step = 10f64.powf(want.log10().floor());
    let nice = [1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0]
        .iter()
        .map(|m| m * step)
        .find(|v| *v >= want)
        .unwrap_or(10.0 * step);
    nice
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heat_runs_from_green_to_red() {
        assert_eq!(heat(0.5), HEAT[0].1);
        assert_eq!(heat(1.0), HEAT[0].1);
        assert_eq!(heat(4.0), HEAT[2].1);
        assert_eq!(heat(1000.0), HEAT[4].1);
        let mid = heat(3.0);
        assert!(mid.0 > HEAT[1].1 .0 && mid.0 <= HEAT[2].1 .0, "{mid:?}");
    }

    #[test]
    fn spans_stay_on_the_axis_and_are_visible() {
        assert_eq!(span(0, 50, 100, 0.0), (0.0, 50.0));
        let (a, b) = span(100, 1, 100, 0.5);
        assert!(a >= 0.0 && b <= 100.0 && b - a >= 0.5 - 1e-9, "{a} {b}");
        assert_eq!(span(0, 10, 0, 0.0), (0.0, 0.0));
    }
}
