//! `tmatch plot` and `templates info --plot` on generated data: every
//! plot is drawn, decoded and looked at where its traces must be.

use std::ops::Range;
use std::path::Path;
use std::sync::OnceLock;

use crate::util::{build_templates, s, samples, tmatch_fails, tmatch_ok, Detect};

/// Templates and detections of the sample archive, made once.
struct Run {
    _dir: tempfile::TempDir,
    templates: String,
    detections: String,
    archive: String,
}

fn run() -> &'static Run {
    static RUN: OnceLock<Run> = OnceLock::new();
    RUN.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let templates = build_templates(dir.path(), &[]);
        let archive = s(&samples().join("archive")).to_string();
        let detections = s(&dir.path().join("d.h5")).to_string();
        Detect::new(&templates, &archive, "2024-02-29..2024-03-01", &detections)
            .args(&["--threshold", "10"])
            .run_ok();
        Run {
            _dir: dir,
            templates,
            detections,
            archive,
        }
    })
}

/// A decoded PNG: width, height and RGB pixels by row.
struct Picture {
    width: u32,
    height: u32,
    rgb: Vec<[u8; 3]>,
}

fn decode(path: &Path) -> Picture {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut decoder = png::Decoder::new(file);
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    assert!(channels >= 3, "{:?}", info.color_type);
    let rgb = buf[..info.buffer_size()]
        .chunks(channels)
        .map(|p| [p[0], p[1], p[2]])
        .collect();
    Picture {
        width: info.width,
        height: info.height,
        rgb,
    }
}

impl Picture {
    /// The share of pixels in the region (fractions of the width and
    /// height) for which `test` holds.
    fn share(&self, x: Range<f64>, y: Range<f64>, test: impl Fn([u8; 3]) -> bool) -> f64 {
        let (w, h) = (self.width as f64, self.height as f64);
        let xs = (x.start * w) as usize..(x.end * w) as usize;
        let ys = (y.start * h) as usize..(y.end * h) as usize;
        let n = xs.len() * ys.len();
        let hits = ys
            .flat_map(|r| xs.clone().map(move |c| (r, c)))
            .filter(|&(r, c)| test(self.rgb[r * self.width as usize + c]))
            .count();
        hits as f64 / n.max(1) as f64
    }

    fn inked(&self, x: Range<f64>, y: Range<f64>) -> f64 {
        self.share(x, y, ink)
    }
}

/// Anything but the white page.
fn ink(p: [u8; 3]) -> bool {
    p.iter().map(|&v| v as u32).sum::<u32>() < 3 * 235
}

/// The stacked trace's blue.
fn blue(p: [u8; 3]) -> bool {
    p[2] > 120 && p[2] as i32 > p[0] as i32 + 60
}

/// The templates' and detections' red.
fn red(p: [u8; 3]) -> bool {
    p[0] > 150 && p[1] < 110 && p[2] < 110
}

/// A saturated colour (the heat map's, the histogram's).
fn coloured(p: [u8; 3]) -> bool {
    let (lo, hi) = (p.iter().min().unwrap(), p.iter().max().unwrap());
    hi - lo > 60
}

#[test]
fn a_detection_is_drawn_with_its_channels_and_stacked_trace() {
    let r = run();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("detection.png");
    tmatch_ok(&[
        "plot",
        "detection",
        &r.detections,
        "--templates",
        &r.templates,
        "--archive",
        &r.archive,
        "--index",
        "1",
        "--width",
        "1000",
        "--height",
        "800",
        "-o",
        s(&out),
    ]);
    let p = decode(&out);
    assert_eq!((p.width, p.height), (1000, 800));
    let all = p.inked(0.0..1.0, 0.0..1.0);
    assert!(all > 0.03 && all < 0.6, "{all} of the page inked");
    // Channel labels left of the traces, traces and templates right of them.
    assert!(p.inked(0.0..0.25, 0.1..0.6) > 0.01, "no channel labels");
    assert!(p.inked(0.3..1.0, 0.1..0.6) > 0.02, "no data traces");
    assert!(p.share(0.3..1.0, 0.05..0.62, red) > 0.002, "no templates");
    // The stacked trace below, with the detection marked.
    assert!(p.share(0.1..1.0, 0.72..0.95, blue) > 0.005, "no stack");
    assert!(p.share(0.5..0.6, 0.68..0.85, red) > 0.001, "no marker");
}

#[test]
fn a_detection_is_found_by_template_and_time_and_drawn_as_svg() {
    let r = run();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("detection.svg");
    // The recorded templates and archive are found without --templates
    // and --archive.
    tmatch_ok(&[
        "plot",
        "detection",
        &r.detections,
        "--template",
        "B1",
        "--time",
        "2024-03-01T00:09:30Z",
        "--window",
        "10",
        "-o",
        s(&out),
    ]);
    let svg = std::fs::read_to_string(&out).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("width=\"1200\""),
        "{}",
        &svg[..200]
    );
    assert!(
        svg.contains("B1: detection at 2024-03-01T00:09:3"),
        "no title"
    );
    assert!(svg.matches("<polyline").count() > 10, "too few lines");
    assert!(svg.contains("cc 0."), "no channel CC labels");
    let far = tmatch_fails(&[
        "plot",
        "detection",
        &r.detections,
        "--template",
        "B1",
        "--time",
        "2024-03-01T12:00:00Z",
        "-o",
        s(&out),
    ]);
    assert!(far.contains("B1: no detection within"), "{far}");
}

#[test]
fn a_templates_day_is_drawn_with_thresholds_and_detections() {
    let r = run();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("day.png");
    tmatch_ok(&[
        "plot",
        "day",
        &r.detections,
        "--templates",
        &r.templates,
        "--archive",
        &r.archive,
        "--template",
        "A1",
        "--day",
        "2024-02-29",
        "-o",
        s(&out),
    ]);
    let p = decode(&out);
    assert_eq!((p.width, p.height), (1200, 900));
    // The sample day has data from about 23:00 on: the stack is there
    // and the hours before are empty.
    assert!(p.share(0.9..1.0, 0.05..0.9, blue) > 0.02, "no stack");
    assert!(
        p.share(0.1..0.85, 0.05..0.9, blue) < 0.001,
        "stack before the data"
    );
    assert!(p.share(0.9..1.0, 0.05..0.5, red) > 0.001, "no detections");
    // Threshold lines (orange) across the whole day.
    let orange = |p: [u8; 3]| p[0] > 200 && (90..170).contains(&p[1]) && p[2] < 80;
    assert!(
        p.share(0.1..0.85, 0.05..0.95, orange) > 0.001,
        "no threshold"
    );
}

#[test]
fn a_run_is_drawn_as_a_heat_map_and_histogram() {
    let r = run();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run.png");
    tmatch_ok(&["plot", "run", &r.detections, "-o", s(&out)]);
    let p = decode(&out);
    assert_eq!((p.width, p.height), (1200, 900));
    // The two sample days are binned by hour: the detections are from
    // 23:00 to 01:30, a little left of the middle.
    assert!(p.share(0.45..0.6, 0.05..0.58, coloured) > 0.1, "no cells");
    assert!(
        p.share(0.15..0.4, 0.05..0.58, coloured) < 0.001,
        "cells where none"
    );
    assert!(
        p.share(0.92..1.0, 0.05..0.58, coloured) > 0.2,
        "no colour bar"
    );
    assert!(p.share(0.05..1.0, 0.66..0.95, blue) > 0.01, "no histogram");
    assert!(p.inked(0.0..0.15, 0.05..0.58) > 0.002, "no template labels");
}

#[test]
fn templates_info_draws_each_template() {
    let r = run();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("templates.png");
    let info = tmatch_ok(&["templates", "info", &r.templates, "--plot", s(&out)]);
    assert!(info.contains("wrote"), "{info}");
    let p = decode(&out);
    assert_eq!((p.width, p.height), (1200, 900));
    // Three templates in a 2 × 2 grid: three panels drawn, the fourth empty.
    for (x, y) in [
        (0.12..0.5, 0.06..0.5),
        (0.62..1.0, 0.06..0.5),
        (0.12..0.5, 0.56..1.0),
    ] {
        let inked = p.inked(x.clone(), y.clone());
        assert!(inked > 0.02, "panel at {x:?} {y:?}: {inked}");
    }
    assert!(p.inked(0.55..1.0, 0.56..1.0) < 0.001, "a fourth panel");
    // --max-templates 1: one panel over the whole page.
    tmatch_ok(&[
        "templates",
        "info",
        &r.templates,
        "--plot",
        s(&out),
        "--max-templates",
        "1",
    ]);
    assert!(decode(&out).inked(0.6..1.0, 0.5..0.95) > 0.02);
}

#[test]
fn plots_refuse_what_they_cannot_draw() {
    let r = run();
    let dir = tempfile::tempdir().unwrap();
    let pdf = dir.path().join("run.pdf");
    let e = tmatch_fails(&["plot", "run", &r.detections, "-o", s(&pdf)]);
    assert!(e.contains("run.pdf") && e.contains(".png or .svg"), "{e}");
    let png = dir.path().join("d.png");
    let e = tmatch_fails(&[
        "plot",
        "detection",
        &r.detections,
        "--index",
        "999",
        "-o",
        s(&png),
    ]);
    assert!(
        e.contains("--index 999: the file holds 14 detections"),
        "{e}"
    );
    let e = tmatch_fails(&[
        "plot",
        "day",
        &r.detections,
        "--template",
        "Z9",
        "--day",
        "2024-02-29",
        "-o",
        s(&png),
    ]);
    assert!(e.contains("no template 'Z9'"), "{e}");
    // A folder that does not exist: the error names the file.
    let missing = dir.path().join("no/such/run.png");
    let e = tmatch_fails(&["plot", "run", &r.detections, "-o", s(&missing)]);
    assert!(e.contains("no/such/run.png"), "{e}");
}

/// The stack a plot draws is the one detection searched: its threshold
/// is the detections' and it peaks at each detection with its cc_sum.
#[test]
fn the_plotted_stack_is_the_one_detection_searched() {
    use tmatch::{archive::Archive, correlate::cpu::CpuBackend, epoch, output, pipeline};
    let r = run();
    let set = tmatch::templates::read(Path::new(&r.templates)).unwrap();
    let archive = Archive::open(Path::new(&r.archive)).unwrap();
    let d = output::read(Path::new(&r.detections)).unwrap();
    let params = tmatch::detect::DetectParams {
        threshold: 10.0,
        ..Default::default()
    };
    let mut checked = 0;
    for (ti, _) in set.templates.iter().enumerate() {
        let day = epoch::parse_day("2024-03-01").unwrap();
        let td = pipeline::template_day(&set, &archive, day, &params, ti, &CpuBackend::new())
            .unwrap()
            .expect("data on the day");
        for det in d.rows.iter().filter(|x| x.template as usize == ti) {
            if epoch::day_of(det.time_ns) != day {
                continue;
            }
            assert_eq!(td.threshold, det.threshold, "template {ti}");
            let k = epoch::samples_between(td.start, det.time_ns, set.rate) as usize;
            assert!(td.day.contains(&k), "{k} outside {:?}", td.day);
            assert!(
                (td.stack[k] - det.cc_sum).abs() < 1e-5,
                "{} {}",
                td.stack[k],
                det.cc_sum
            );
            checked += 1;
        }
        assert_eq!(td.channels.len(), set.templates[ti].channels.len());
        assert!(td
            .channels
            .iter()
            .all(|c| c.as_ref().is_some_and(|c| c.data.len() == c.mask.len())));
    }
    assert!(checked >= 5, "{checked} detections checked");
}
