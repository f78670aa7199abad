//! The correctness bar: EQcorrscan 0.5.2's results on real Hi-net data
//! (../shared/reference/hinet-s4), reproduced detection for detection.
//! Skipped, visibly, where ../shared is absent (a fresh clone).

use std::collections::HashMap;
use std::path::Path;

use ndarray::Array2;
use tmatch::archive::Archive;
use tmatch::correlate::cpu::CpuBackend;
use tmatch::detect::DetectParams;
use tmatch::detect::ThresholdType;
use tmatch::pipeline::{detect_day, detect_day_with_stacks};
use tmatch::preprocess::Recipe;
use tmatch::templates::{build, BuildOptions, Phases, TemplateSet};
use tmatch::{catalog, epoch};

use crate::util::{shared, skip};

struct RefDetection {
    template: String,
    time: String,
    cc_sum: f64,
}

fn reference(dir: &Path) -> Vec<RefDetection> {
    let text = std::fs::read_to_string(dir.join("detections.csv")).unwrap();
    text.lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            RefDetection {
                template: f[0].into(),
                time: f[1].into(),
                cc_sum: f[2].parse().unwrap(),
            }
        })
        .collect()
}

/// The hinet-s4 configuration: S-wave templates of 4 s from 1 s before the
/// pick, unfiltered, all 21 channels; MAD 12, trig_int 6 s. The day is
/// 2012-09-02.
pub fn setup(shared: &Path) -> (TemplateSet, Archive, DetectParams) {
    let data = shared.join("data/hinet-2012-09-02");
    let cat = catalog::read_csv(
        &data.join("catalog/picks.csv"),
        Some(&data.join("catalog/events.csv")),
    )
    .unwrap();
    let archive = Archive::open(&data.join("continuous")).unwrap();
    let opts = BuildOptions {
        phase: Phases::S,
        pre: 1.0,
        length: 4.0,
        recipe: Recipe::default(),
        channels: Vec::new(),
        min_snr: None,
        window_start: Default::default(),
    };
    let (set, warnings) = build(&cat, &archive, &opts).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    // The QuakeML form of the same catalog gives the same templates.
    let qml = catalog::read_quakeml(&data.join("catalog/templates_quakeml.xml")).unwrap();
    assert_eq!(build(&qml, &archive, &opts).unwrap().0, set);
    assert_eq!(set.templates.len(), 14);
    assert!(set.templates.iter().all(|t| t.channels.len() == 21));

    let params = DetectParams {
        threshold: 12.0,
        threshold_type: ThresholdType::Mad,
        trig_int: 6.0,
        ..Default::default()
    };
    (set, archive, params)
}

#[test]
fn hinet_s4_matches_eqcorrscan() {
    let Some(shared) = shared() else {
        return skip(
            "hinet_s4_matches_eqcorrscan",
            "../shared (real data and reference) not found",
        );
    };
    let (set, archive, params) = setup(&shared);
    let refdir = shared.join("reference/hinet-s4");
    let day = epoch::parse_day("2012-09-02").unwrap();
    let data_start = epoch::parse_time("2012-09-02T03:20:00Z").unwrap();
    let mut stacks: HashMap<usize, (i64, Vec<f32>)> = HashMap::new();
    let result = detect_day_with_stacks(
        &set,
        &archive,
        day,
        &params,
        &CpuBackend::new(),
        &mut |t, t0, s| {
            stacks.insert(t, (t0, s.to_vec()));
        },
    )
    .unwrap();

    // Without the stacks the backend finds the peaks itself: the same.
    let plain = detect_day(&set, &archive, day, &params, &CpuBackend::new()).unwrap();
    assert_eq!(plain.detections, result.detections);

    // Detections: the same template at the same sample, cc_sum within 1e-3.
    let want = reference(&refdir);
    assert_eq!(want.len(), 429);
    let got: HashMap<(String, String), f64> = result
        .detections
        .iter()
        .map(|d| {
            (
                (
                    set.templates[d.template].event.id.clone(),
                    epoch::format_time(d.time),
                ),
                d.cc_sum as f64,
            )
        })
        .collect();
    let mut max_dcc = 0f64;
    let mut missing = Vec::new();
    for r in &want {
        match got.get(&(r.template.clone(), r.time.clone())) {
            Some(v) => max_dcc = max_dcc.max((v - r.cc_sum).abs()),
            None => missing.push(format!("{} {}", r.template, r.time)),
        }
    }
    let extra = result.detections.len() - (want.len() - missing.len());
    eprintln!(
        "hinet-s4: {} of {} detections matched, {extra} extra, max |d cc_sum| {max_dcc:.2e}",
        want.len() - missing.len(),
        want.len()
    );
    assert!(missing.is_empty(), "missing: {missing:?}");
    assert_eq!(extra, 0);
    assert!(max_dcc < 1e-3);

    // Stacked traces: EQcorrscan's start at the first data sample.
    let cccsums: Array2<f32> = ndarray_npy::read_npy(refdir.join("cccsums_fftw.npy")).unwrap();
    let mut max_dstack = 0f64;
    for (ti, t) in set.templates.iter().enumerate() {
        let (t0, stack) = &stacks[&ti];
        assert_eq!(*t0, data_start, "template {}", t.event.id);
        let row = cccsums.row(ti);
        assert_eq!(stack.len(), row.len(), "template {}", t.event.id);
        for (a, b) in stack.iter().zip(row.iter()) {
            max_dstack = max_dstack.max((*a as f64 - *b as f64).abs());
        }
    }
    eprintln!("hinet-s4: max |d stacked trace| {max_dstack:.2e}");
    assert!(max_dstack < 1e-3);
}
