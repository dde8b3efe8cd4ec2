//! `--report FILE.html`: burn-in and verify write the page (and the map and findings go
//! into their JSON), and the page renders in headless Chromium with every chart drawn
//! (screenshot pixels inside each chart's box) and no console error.
//!
//! Chromium is found as `chromium`, `chromium-browser` or `google-chrome`; where none is
//! installed, or it cannot start, the browser part prints why and is skipped. With
//! `STACK_REPORT_EXAMPLE_DIR` set, the example page and its screenshot are kept there
//! (`docs/report-example.png` is made that way).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use stack_bio::{FaultyDevice, MemDevice, Slowdown};
use stack_volume::html::render;

use super::harness::Scratch;
use crate::volume::findings::burn_in;

const MIB: u64 = 1 << 20;
const WIDTH: u32 = 1280;

#[test]
fn burn_in_and_verify_write_the_report_and_the_map() {
    let s = Scratch::new();
    let doc = s.json(
        0,
        &[
            "burn-in",
            "d.img",
            "--size",
            "48MiB",
            "--report",
            "burn.html",
        ],
    );
    let map = &doc["map"];
    assert_eq!(map["capacity_bytes"], 48 * MIB, "{map}");
    for op in ["write", "read"] {
        let regions = map[op]["regions"].as_array().expect("regions");
        assert!(regions.len() > 10, "{op}: {} regions", regions.len());
        for key in [
            "offset_bytes",
            "mib_per_s",
            "latency_us_p50",
            "latency_us_p99",
            "latency_us_max",
        ] {
            assert!(regions[0][key].is_number(), "{op}.{key}: {}", regions[0]);
        }
    }
    assert!(doc["findings"].is_array());
    assert!(
        doc["verify"].get("map").is_none(),
        "burn-in's map is at the top only"
    );
    let page = std::fs::read_to_string(s.path("burn.html")).expect("the report");
    assert_eq!(page.matches("<svg").count(), 1);
    assert!(page.contains("d.img"));

    let doc = s.json(0, &["verify", "d.img", "--report", "verify.html"]);
    assert!(doc["map"]["read"]["regions"]
        .as_array()
        .is_some_and(|r| !r.is_empty()));
    assert!(
        doc["findings"].as_array().is_some_and(Vec::is_empty),
        "{}",
        doc["findings"]
    );
    let page = std::fs::read_to_string(s.path("verify.html")).expect("the report");
    assert!(page.contains("<svg"));
    // An unwritable report path is an error that names it, after the verify ran.
    let run = s.run(&["verify", "d.img", "--report", "no/such/dir/r.html"]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.contains("no/such/dir/r.html"), "{}", run.stderr);
}

/// A page of three drives: a clean one, one with a slow region, a write cliff and a
/// stall, and one whose reads flip bits (damage).
fn example_page() -> String {
    const SIZE: u64 = 256 * MIB;
    // Memory paced like a drive (its media speed), so the lines look like one's.
    let drive = |media_bytes_per_sec: u64| {
        let d = FaultyDevice::new(Arc::new(MemDevice::new(SIZE)));
        d.slow_region(0..SIZE, Slowdown::BytesPerSec(media_bytes_per_sec));
        Arc::new(d)
    };
    let clean = burn_in("/dev/sdb", &drive(900 * MIB), 32, |_| {}, |_| {});
    let slow = burn_in(
        "/dev/sdc",
        &drive(700 * MIB),
        32,
        |d| {
            d.slow_region(64 * MIB..80 * MIB, Slowdown::BytesPerSec(8 * MIB));
            d.cliff_after(150 * MIB, Slowdown::BytesPerSec(30 * MIB));
        },
        |d| d.stall_at(200 * MIB + 4096, Duration::from_millis(700)),
    );
    let bad = burn_in(
        "/dev/sdd",
        &drive(800 * MIB),
        32,
        |_| {},
        |d| {
            for at in [40 * MIB + 100, 40 * MIB + 9000, 90 * MIB + 7] {
                d.flip_on_read(at, 0x10);
            }
        },
    );
    let mut drives = [clean.drive, slow.drive, bad.drive];
    for (d, (model, serial)) in drives.iter_mut().zip([
        ("Example SSD 128", "S3X0001"),
        ("Example SSD 128", "S3X0002"),
        ("Example SSD 128", "S3X0003"),
    ]) {
        d.identity.insert(0, ("model".into(), model.into()));
        d.identity.insert(1, ("serial".into(), serial.into()));
        d.health = vec![("SMART".into(), "not asked (--smart)".into())];
    }
    assert!(!drives[2].damaged.is_empty(), "{:?}", drives[2].verdict);
    let kinds: Vec<&str> = drives[1].findings.iter().map(|f| f.kind()).collect();
    for kind in ["write-cliff", "slow-region", "stall"] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
    render(&drives)
}

/// The browser, or why there is none.
fn chromium() -> Result<PathBuf, String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    Err("no chromium, chromium-browser or google-chrome on PATH".into())
}

/// Runs the browser headless on `page` with `args`, within two minutes.
fn browse(
    browser: &Path,
    profile: &Path,
    height: u32,
    args: &[&str],
    page: &Path,
) -> Result<(String, String), String> {
    let mut cmd = Command::new(browser);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--no-first-run",
        "--force-device-scale-factor=1",
        "--virtual-time-budget=5000",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .arg(format!("--window-size={WIDTH},{height}"))
    .args(args)
    .arg(format!("file://{}", page.display()))
    .stdin(Stdio::null());
    let dir = profile.parent().unwrap_or(profile);
    let (out_path, err_path) = (dir.join("browser.out"), dir.join("browser.err"));
    let file = |p: &Path| std::fs::File::create(p).map_err(|e| format!("{}: {e}", p.display()));
    cmd.stdout(file(&out_path)?).stderr(file(&err_path)?);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("{} cannot start: {e}", browser.display()))?;
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err("the browser did not finish within 2 minutes".into());
            }
            Err(e) => return Err(format!("waiting for the browser: {e}")),
        }
    };
    let read =
        |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned();
    let (stdout, stderr) = (read(&out_path), read(&err_path));
    if !status.success() {
        return Err(format!(
            "the browser failed ({status}): {}",
            stderr.lines().last().unwrap_or("")
        ));
    }
    Ok((stdout, stderr))
}

/// Collects script errors and `console.error` calls, and after load writes them with
/// each chart's box and the page height into the title, for `--dump-dom` to show.
const PROBE: &str = r#"<script>
window.__errs = [];
window.addEventListener('error', e => window.__errs.push(String(e.message)));
const __ce = console.error; console.error = (...a) => { window.__errs.push(a.join(' ')); __ce(...a); };
window.addEventListener('load', () => {
  const boxes = [...document.querySelectorAll('.chart svg')].map(s => {
    const b = s.getBoundingClientRect();
    return [b.left, b.top + window.scrollY, b.width, b.height].map(Math.round);
  });
  document.title = 'PROBE' + JSON.stringify({errs: window.__errs, charts: boxes,
    height: document.documentElement.scrollHeight});
});
</script>"#;

struct Probe {
    errs: Vec<String>,
    charts: Vec<[u32; 4]>,
    height: u32,
}

fn probe(browser: &Path, profile: &Path, html: &str, dir: &Path) -> Result<Probe, String> {
    let probed = dir.join("probe.html");
    let page = html.replacen("<head>", &format!("<head>{PROBE}"), 1);
    std::fs::write(&probed, page).map_err(|e| e.to_string())?;
    let (dom, _) = browse(browser, profile, 900, &["--dump-dom"], &probed)?;
    let start = dom
        .find("<title>PROBE")
        .ok_or_else(|| format!("no probe title in the DOM: {}", &dom[..dom.len().min(300)]))?
        + "<title>PROBE".len();
    let end = dom[start..]
        .find("</title>")
        .ok_or("an unterminated title")?
        + start;
    let json = dom[start..end]
        .replace("&quot;", "\"")
        .replace("&amp;", "&");
    let v: serde_json::Value = serde_json::from_str(&json).map_err(|e| format!("{e}: {json}"))?;
    let errs = v["errs"]
        .as_array()
        .ok_or("errs")?
        .iter()
        .map(|e| e.to_string())
        .collect();
    let charts = v["charts"]
        .as_array()
        .ok_or("charts")?
        .iter()
        .map(|b| {
            let n = |i: usize| b[i].as_f64().unwrap_or(0.0).max(0.0) as u32;
            [n(0), n(1), n(2), n(3)]
        })
        .collect();
    Ok(Probe {
        errs,
        charts,
        height: v["height"].as_u64().unwrap_or(2000) as u32,
    })
}

/// Pixels of a chart's box that are not its white background, and those near `color`.
fn inked(img: &png::OutputInfo, data: &[u8], b: [u32; 4], color: [u8; 3]) -> (f64, usize) {
    let channels = img.color_type.samples();
    let (mut ink, mut near, mut all) = (0usize, 0usize, 0usize);
    for y in b[1]..(b[1] + b[3]).min(img.height) {
        for x in b[0]..(b[0] + b[2]).min(img.width) {
            let i = (y as usize * img.width as usize + x as usize) * channels;
            let px = [data[i], data[i + 1], data[i + 2]];
            all += 1;
            if px.iter().any(|&c| c < 235) {
                ink += 1;
            }
            if px.iter().zip(color).all(|(&a, b)| a.abs_diff(b) < 40) {
                near += 1;
            }
        }
    }
    (ink as f64 / all.max(1) as f64, near)
}

#[test]
fn the_report_renders_in_chromium_with_every_chart_drawn_and_no_console_error() {
    let browser = match chromium() {
        Ok(b) => b,
        Err(why) => return eprintln!("skipping the browser check: {why}"),
    };
    let dir = tempfile::tempdir().expect("a scratch directory");
    let profile = dir.path().join("profile");
    // The probe can fail: a page with a script error must be caught.
    let broken = "<!DOCTYPE html><html><head><title>x</title></head><body><script>notAFunction()</script></body></html>";
    let caught = match probe(&browser, &profile, broken, dir.path()) {
        Ok(p) => p,
        Err(why) => {
            return eprintln!(
                "skipping the browser check: {} cannot run: {why}",
                browser.display()
            )
        }
    };
    assert_eq!(caught.errs.len(), 1, "the probe catches a script error");

    let started = Instant::now();
    let html = example_page();
    eprintln!("example page built in {:?}", started.elapsed());
    let page = dir.path().join("report.html");
    std::fs::write(&page, &html).expect("writing the page");
    let p = probe(&browser, &profile, &html, dir.path()).expect("probing the page");
    assert_eq!(p.errs, Vec::<String>::new(), "console errors");
    assert_eq!(p.charts.len(), 3, "a chart per drive");
    let shot = dir.path().join("report.png");
    let height = p.height.clamp(600, 12_000);
    let (_, stderr) = browse(
        &browser,
        &profile,
        height,
        &[
            "--enable-logging=stderr",
            "--v=0",
            &format!("--screenshot={}", shot.display()),
        ],
        &page,
    )
    .expect("the screenshot");
    let console: Vec<&str> = stderr.lines().filter(|l| l.contains("CONSOLE")).collect();
    assert!(console.is_empty(), "console output: {console:#?}");
    let decoder = png::Decoder::new(std::fs::File::open(&shot).expect("the screenshot"));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut data = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut data).expect("the PNG's pixels");
    assert_eq!(info.width, WIDTH);
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    for (i, b) in p.charts.iter().enumerate() {
        assert!(b[2] > 600 && b[3] > 200, "chart {i} box {b:?}");
        let (share, _) = inked(&info, &data, *b, [255, 255, 255]);
        assert!(
            share > 0.05,
            "chart {i} is blank: {share:.3} of its pixels inked"
        );
        let (_, write) = inked(&info, &data, *b, [0xe8, 0x59, 0x0c]);
        let (_, read) = inked(&info, &data, *b, [0x19, 0x71, 0xc2]);
        assert!(
            write > 200 && read > 200,
            "chart {i}: write line {write} px, read line {read} px"
        );
    }
    // The damaged drive's marks are drawn (red), the others have none.
    let red = inked(&info, &data, p.charts[2], [0xe0, 0x31, 0x31]).1;
    assert!(red > 20, "damage marks: {red} px");
    if let Some(keep) = std::env::var_os("STACK_REPORT_EXAMPLE_DIR") {
        let keep = PathBuf::from(keep);
        std::fs::copy(&page, keep.join("report-example.html")).expect("keeping the page");
        std::fs::copy(&shot, keep.join("report-example.png")).expect("keeping the screenshot");
    }
}
