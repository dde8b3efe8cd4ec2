//! The HTML report: one self-contained page (inline CSS, inline SVG, no script, nothing
//! fetched) with a row per drive in a summary table and, per drive, its verdict, key
//! figures, speed and latency across the capacity with damage and findings on the same
//! axis, and its identity and health.
//!
//! Every drive's charts share one x axis (% of its capacity) and one speed scale, so the
//! drives on a page compare at a glance. The charts are drawn by `chart.rs` with
//! plotters' SVG backend.

mod chart;

use std::fmt::Write as _;

use crate::findings::{human_bytes, Finding};
use crate::map::SurfaceMap;
use crate::options::VolumeInfo;
use crate::report::VerifyReport;
use crate::verdict::Verdict;

/// A damaged range to mark on a drive's axis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DamageMark {
    /// Where on the device.
    pub offset_bytes: u64,
    /// How long.
    pub len_bytes: u64,
    /// What happened (`"flipped-bits"`, `"unreadable"`, ...).
    pub cause: String,
}

/// Everything the page shows of one drive. Fill what is known; the rest stays empty.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DriveReport {
    /// The target as the user named it.
    pub target: String,
    /// The device's size: the x axis runs from 0 to it.
    pub capacity_bytes: u64,
    /// The verdict's name: `"clean"`, `"damaged"`, `"fake-capacity"`, `"unreadable"`,
    /// `"interrupted"`, `"lost"`, ...
    pub verdict: String,
    /// Sentences under the verdict (evidence, what was checked before a drive was lost).
    pub verdict_detail: Vec<String>,
    /// Key figures in the order shown (`("written", "64.0 GiB")`, ...); speeds and the
    /// numbers of findings and damaged bytes are added from the map.
    pub facts: Vec<(String, String)>,
    /// Identity: model, serial, firmware, transport, backing file... in the order shown.
    pub identity: Vec<(String, String)>,
    /// Health (SMART attributes, before → after) in the order shown.
    pub health: Vec<(String, String)>,
    /// The surface map, when one was recorded.
    pub map: Option<SurfaceMap>,
    /// What the map shows (not damage).
    pub findings: Vec<Finding>,
    /// Damaged ranges on the device.
    pub damaged: Vec<DamageMark>,
    /// Damaged bytes (the ranges may be a bounded list).
    pub damaged_bytes: u64,
}

/// Most damaged ranges listed in a drive's table (all are marked on its axis).
const LISTED_RANGES: usize = 12;

impl DriveReport {
    /// A drive's report from a verify pass on its volume: the verdict, the damaged
    /// ranges, identity from the device, and the figures verify knows.
    pub fn from_verify(
        target: &str,
        info: &VolumeInfo,
        report: &VerifyReport,
        verdict: Option<&Verdict>,
    ) -> DriveReport {
        let verdict_name = match verdict {
            _ if report.interrupted => "interrupted".to_owned(),
            Some(v) => v.name().to_owned(),
            None if report.clean() => "clean".to_owned(),
            None => "damaged".to_owned(),
        };
        let mut detail = Vec::new();
        if let Some(Verdict::FakeCapacity {
            usable_bytes,
            evidence,
            ..
        }) = verdict
        {
            detail.push(format!(
                "holds only {} of what it reports",
                human_bytes(*usable_bytes)
            ));
            detail.extend(evidence.iter().cloned());
        }
        if !report.metadata_ok {
            detail.push(format!(
                "{} damaged metadata blocks",
                report.metadata_damage.len()
            ));
        }
        let d = &info.device;
        let mut identity = vec![
            ("path".to_owned(), d.path.clone()),
            ("kind".to_owned(), d.kind.clone()),
        ];
        for (k, v) in [("model", &d.model), ("serial", &d.serial)] {
            if let Some(v) = v {
                identity.push((k.to_owned(), v.clone()));
            }
        }
        identity.push((
            "logical block".to_owned(),
            format!("{} B", d.logical_block_size),
        ));
        identity.push(("volume".to_owned(), info.uuid.clone()));
        let damaged: Vec<DamageMark> = report
            .damaged
            .iter()
            .map(|r| DamageMark {
                offset_bytes: r.physical_offset,
                len_bytes: r.length,
                cause: r.cause.name().to_owned(),
            })
            .collect();
        DriveReport {
            target: target.to_owned(),
            capacity_bytes: d.size_bytes,
            verdict: verdict_name,
            verdict_detail: detail,
            facts: vec![
                ("verified".to_owned(), human_bytes(report.bytes_verified)),
                (
                    "verify time".to_owned(),
                    format!("{:.1} s", report.elapsed.as_secs_f64()),
                ),
                ("read from".to_owned(), report.source.name().to_owned()),
            ],
            identity,
            health: Vec::new(),
            map: None,
            findings: Vec::new(),
            damaged_bytes: report.damaged.iter().map(|r| r.length).sum(),
            damaged,
        }
    }

    /// Whether the verdict is clean.
    pub fn is_clean(&self) -> bool {
        self.verdict == "clean"
    }

    fn speed(&self, read: bool) -> String {
        self.map
            .as_ref()
            .and_then(|m| {
                if read {
                    m.read.as_ref()
                } else {
                    m.write.as_ref()
                }
            })
            .map_or_else(|| "—".to_owned(), |s| format!("{:.0} MiB/s", s.mib_per_s))
    }
}

/// Escapes text for HTML.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn badge_class(verdict: &str) -> &'static str {
    match verdict {
        "clean" => "ok",
        "interrupted" => "muted",
        _ => "bad",
    }
}

fn hex(c: plotters::style::RGBColor) -> String {
    format!("#{:02x}{:02x}{:02x}", c.0, c.1, c.2)
}

const CSS: &str = r#"
:root { --ink:#212529; --muted:#6c757d; --line:#dee2e6; --ok:#2b8a3e; --bad:#c92a2a; --warn:#e67700; }
* { box-sizing: border-box; }
body { margin: 0; padding: 28px 36px 48px; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: var(--ink); background: #f4f5f7; }
h1 { font-size: 22px; margin: 0 0 2px; }
h2 { font-size: 18px; margin: 0; font-family: ui-monospace, "DejaVu Sans Mono", monospace; word-break: break-all; }
h3 { font-size: 13px; text-transform: uppercase; letter-spacing: .06em; color: var(--muted); margin: 18px 0 6px; }
.sub { color: var(--muted); margin-bottom: 18px; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 10px; padding: 18px 22px; margin: 0 0 22px; box-shadow: 0 1px 2px rgba(0,0,0,.04); }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-weight: 600; color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.badge { display: inline-block; padding: 2px 10px; border-radius: 999px; font-weight: 700; font-size: 12px; text-transform: uppercase; letter-spacing: .05em; color: #fff; }
.badge.ok { background: var(--ok); } .badge.bad { background: var(--bad); } .badge.muted { background: var(--muted); }
.badge.warn { background: #fff3bf; color: #8a5a00; border: 1px solid #ffd43b; }
.head { display: flex; align-items: center; gap: 12px; flex-wrap: wrap; }
.head .model { color: var(--muted); }
.facts { display: flex; flex-wrap: wrap; gap: 10px 28px; margin: 14px 0 6px; }
.fact .k { font-size: 11px; text-transform: uppercase; letter-spacing: .05em; color: var(--muted); }
.fact .v { font-size: 18px; font-weight: 600; font-variant-numeric: tabular-nums; }
.detail { margin: 8px 0 0; padding-left: 18px; color: var(--bad); }
.chart { margin-top: 8px; }
.chart svg { width: 100%; height: auto; display: block; }
.legend { display: flex; flex-wrap: wrap; gap: 6px 18px; font-size: 12px; color: var(--muted); margin: 10px 0 0; align-items: center; }
.sw { display: inline-block; width: 14px; height: 10px; border-radius: 2px; vertical-align: middle; margin-right: 5px; }
.heat { display: inline-block; width: 120px; height: 10px; border-radius: 2px; vertical-align: middle; margin: 0 5px; }
.cols { display: grid; grid-template-columns: 3fr 2fr; gap: 28px; }
@media (max-width: 900px) { .cols { grid-template-columns: 1fr; } }
ul.findings { margin: 0; padding-left: 18px; } ul.findings li { margin: 3px 0; }
.none { color: var(--muted); }
.kv td:first-child { color: var(--muted); width: 38%; }
footer { color: var(--muted); font-size: 12px; margin-top: 28px; }
"#;

/// The verdict cell: the badge, and a findings badge beside a clean one.
fn verdict_badges(d: &DriveReport) -> String {
    let mut s = format!(
        "<span class=\"badge {}\">{}</span>",
        badge_class(&d.verdict),
        esc(&d.verdict.replace('-', " "))
    );
    if !d.findings.is_empty() {
        let n = d.findings.len();
        let _ = write!(
            s,
            " <span class=\"badge warn\">{n} finding{}</span>",
            if n == 1 { "" } else { "s" }
        );
    }
    s
}

fn model_of(d: &DriveReport) -> String {
    let get = |k: &str| {
        d.identity
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    [get("model"), get("serial")]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" · ")
}

fn summary_table(drives: &[DriveReport], out: &mut String) {
    out.push_str(
        "<div class=\"card\"><table><thead><tr><th>Drive</th><th>Model · serial</th>\
         <th class=\"num\">Size</th><th>Verdict</th><th class=\"num\">Device write</th>\
         <th class=\"num\">Device read</th><th class=\"num\">Damaged</th></tr></thead><tbody>",
    );
    for (i, d) in drives.iter().enumerate() {
        let _ = write!(
            out,
            "<tr><td><a href=\"#drive-{i}\"><code>{}</code></a></td><td>{}</td>\
             <td class=\"num\">{}</td><td>{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            esc(&d.target),
            esc(&model_of(d)),
            human_bytes(d.capacity_bytes),
            verdict_badges(d),
            d.speed(false),
            d.speed(true),
            if d.damaged_bytes == 0 {
                "0".to_owned()
            } else {
                human_bytes(d.damaged_bytes)
            },
        );
    }
    out.push_str("</tbody></table></div>");
}

fn kv_table(rows: &[(String, String)], out: &mut String) {
    if rows.is_empty() {
        out.push_str("<p class=\"none\">not known</p>");
        return;
    }
    out.push_str("<table class=\"kv\"><tbody>");
    for (k, v) in rows {
        let _ = write!(out, "<tr><td>{}</td><td>{}</td></tr>", esc(k), esc(v));
    }
    out.push_str("</tbody></table>");
}

fn legend(out: &mut String) {
    let sw = |c, label: &str| {
        format!(
            "<span><span class=\"sw\" style=\"background:{}\"></span>{label}</span>",
            hex(c)
        )
    };
    let stops: Vec<String> = chart::HEAT.iter().map(|(_, c)| hex(*c)).collect();
    let _ = write!(
        out,
        "<div class=\"legend\">{}{}{}{}<span>latency vs the drive's median: \
         1×<span class=\"heat\" style=\"background:linear-gradient(90deg,{})\"></span>30×+</span></div>",
        sw(chart::WRITE, "write speed"),
        sw(chart::READ, "read speed"),
        sw(chart::FINDING, "finding (slow region, cliff, stall)"),
        sw(chart::DAMAGE, "damaged data"),
        stops.join(",")
    );
}

fn drive_card(i: usize, d: &DriveReport, y_max: f64, out: &mut String) {
    let _ = write!(
        out,
        "<section class=\"card drive\" id=\"drive-{i}\"><div class=\"head\"><h2>{}</h2>{}<span class=\"model\">{}</span></div>",
        esc(&d.target),
        verdict_badges(d),
        esc(&model_of(d))
    );
    if !d.verdict_detail.is_empty() {
        out.push_str("<ul class=\"detail\">");
        for line in &d.verdict_detail {
            let _ = write!(out, "<li>{}</li>", esc(line));
        }
        out.push_str("</ul>");
    }
    let mut facts = vec![
        ("capacity".to_owned(), human_bytes(d.capacity_bytes)),
        ("device write speed".to_owned(), d.speed(false)),
        ("device read speed".to_owned(), d.speed(true)),
        (
            "damaged".to_owned(),
            if d.damaged_bytes == 0 {
                "none".to_owned()
            } else {
                human_bytes(d.damaged_bytes)
            },
        ),
        ("findings".to_owned(), d.findings.len().to_string()),
    ];
    facts.extend(d.facts.iter().cloned());
    out.push_str("<div class=\"facts\">");
    for (k, v) in &facts {
        let _ = write!(
            out,
            "<div class=\"fact\"><div class=\"k\">{}</div><div class=\"v\">{}</div></div>",
            esc(k),
            esc(v)
        );
    }
    out.push_str("</div>");
    match chart::drive_svg(d, y_max) {
        Ok(svg) => {
            let _ = write!(out, "<div class=\"chart\">{svg}</div>");
        }
        Err(e) => {
            let _ = write!(
                out,
                "<p class=\"none\">the chart could not be drawn: {}</p>",
                esc(&e)
            );
        }
    }
    legend(out);
    out.push_str("<div class=\"cols\"><div><h3>Findings (not damage)</h3>");
    if d.findings.is_empty() {
        out.push_str("<p class=\"none\">none: no slow region, write cliff or stall</p>");
    } else {
        out.push_str("<ul class=\"findings\">");
        for f in &d.findings {
            let _ = write!(out, "<li>{}</li>", esc(&f.to_string()));
        }
        out.push_str("</ul>");
    }
    out.push_str("<h3>Damaged ranges</h3>");
    if d.damaged.is_empty() {
        out.push_str("<p class=\"none\">none</p>");
    } else {
        out.push_str("<table><thead><tr><th class=\"num\">Offset</th><th class=\"num\">Length</th><th>Cause</th></tr></thead><tbody>");
        for r in d.damaged.iter().take(LISTED_RANGES) {
            let _ = write!(
                out,
                "<tr><td class=\"num\">{} <span class=\"none\">({})</span></td><td class=\"num\">{}</td><td>{}</td></tr>",
                human_bytes(r.offset_bytes),
                r.offset_bytes,
                human_bytes(r.len_bytes),
                esc(&r.cause)
            );
        }
        if d.damaged.len() > LISTED_RANGES {
            let _ = write!(
                out,
                "<tr><td colspan=\"3\" class=\"none\">and {} more ranges (all are marked on the axis)</td></tr>",
                d.damaged.len() - LISTED_RANGES
            );
        }
        out.push_str("</tbody></table>");
    }
    out.push_str("</div><div><h3>Identity</h3>");
    kv_table(&d.identity, out);
    out.push_str("<h3>Health</h3>");
    kv_table(&d.health, out);
    out.push_str("</div></div></section>");
}

/// The report page for `drives` (one or many; each gets a summary row and a card).
pub fn render(drives: &[DriveReport]) -> String {
    let y_max = chart::shared_y_max(drives);
    let bad = drives.iter().filter(|d| !d.is_clean()).count();
    let with_findings = drives.iter().filter(|d| !d.findings.is_empty()).count();
    let mut out = String::with_capacity(64 << 10);
    let _ = write!(
        out,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>stack drive report</title><style>{CSS}</style></head><body>\
         <h1>Drive report</h1><div class=\"sub\">{} drive{} · {} not clean · {} with findings · \
         speeds are the drive's own (bytes over the time it spent on them; the run's wall-clock speeds, commits included, are in the text and JSON summary) and share one scale (0–{y_max:.0} MiB/s); positions are % of each drive's capacity</div>",
        drives.len(),
        if drives.len() == 1 { "" } else { "s" },
        bad,
        with_findings,
    );
    summary_table(drives, &mut out);
    for (i, d) in drives.iter().enumerate() {
        drive_card(i, d, y_max, &mut out);
    }
    out.push_str(
        "<footer>Written by stackctl. Findings are not damage: every byte of a drive with \
         findings may still read back as written. Latency strips colour each region's p50 and \
         p99 I/O latency by its ratio to the drive's median.</footer></body></html>\n",
    );
    out
}

#[cfg(test)]
mod tests;
