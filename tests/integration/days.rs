//! Day-by-day streaming on the generated archive: every planted event is
//! found once, at its time, also across midnight and across a gap.

use std::collections::BTreeMap;

use tmatch::archive::Archive;
use tmatch::catalog;
use tmatch::correlate::cpu::CpuBackend;
use tmatch::detect::DetectParams;
use tmatch::detect::Detection;
use tmatch::epoch::{self, Nanos};
use tmatch::pipeline::detect_day;
use tmatch::preprocess::Recipe;
use tmatch::templates::{build, BuildOptions, Phases, TemplateSet};

use crate::util::samples;

/// The sample set's templates (all phases, 2–8 Hz) and archive.
pub fn setup() -> (TemplateSet, Archive) {
    let dir = samples();
    let cat = catalog::read_csv(&dir.join("picks.csv"), Some(&dir.join("events.csv"))).unwrap();
    let archive = Archive::open(&dir.join("archive")).unwrap();
    let opts = BuildOptions {
        phase: Phases::All,
        pre: 0.5,
        length: 3.0,
        recipe: Recipe {
            lowcut: Some(2.0),
            highcut: Some(8.0),
            order: 4,
            resample: None,
        },
        channels: Vec::new(),
        min_snr: None,
        window_start: Default::default(),
    };
    let (set, warnings) = build(&cat, &archive, &opts).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    // Each channel keeps where its pick lies and the noise before it,
    // below the signal it holds.
    for c in set.templates.iter().flat_map(|t| &t.channels) {
        assert_eq!(c.pick_offset, 500_000_000, "{}", c.id);
        let rms = (c.data.iter().map(|v| v * v).sum::<f32>() / c.data.len() as f32).sqrt();
        let noise = c.noise_rms.unwrap_or_else(|| panic!("{}: no noise", c.id));
        assert!(noise > 0.0 && noise < rms, "{}: {noise} {rms}", c.id);
    }
    (set, archive)
}

/// (source letter, origin time) of every planted occurrence.
fn truth() -> Vec<(char, Nanos)> {
    let text = std::fs::read_to_string(samples().join("truth.csv")).unwrap();
    text.lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (
                f[0].chars().next().unwrap(),
                epoch::parse_time(f[2]).unwrap(),
            )
        })
        .collect()
}

fn run(set: &TemplateSet, archive: &Archive, days: &[i64]) -> Vec<Detection> {
    let params = DetectParams {
        threshold: 10.0,
        ..Default::default()
    };
    days.iter()
        .flat_map(|&d| {
            detect_day(set, archive, d, &params, &CpuBackend::new())
                .unwrap()
                .detections
        })
        .collect()
}

#[test]
fn planted_events_are_found_once_across_midnight() {
    let (set, archive) = setup();
    let d0 = epoch::parse_day("2024-02-29").unwrap();
    let dets = run(&set, &archive, &[d0, d0 + 1]);
    let origin = |d: &Detection| d.time - set.templates[d.template].origin_offset();
    let sample = (1e9 / set.rate) as i64;
    // Every planted occurrence: exactly one detection by its own source's
    // template, at its origin time.
    for (src, t) in truth() {
        let hits: Vec<&Detection> = dets
            .iter()
            .filter(|d| {
                set.templates[d.template].event.id.starts_with(src)
                    && (origin(d) - t).abs() <= sample
            })
            .collect();
        assert_eq!(
            hits.len(),
            1,
            "{src} at {}: {hits:?}",
            epoch::format_time(t)
        );
        assert!(
            hits[0].mean_cc > 0.4,
            "{src} at {}: mean cc {}",
            epoch::format_time(t),
            hits[0].mean_cc
        );
    }
    assert_eq!(dets.len(), truth().len(), "no false detections at 10 x MAD");
    // The per-channel CCs, recomputed directly, add up to the stack.
    for d in &dets {
        let sum: f32 = d.channels.iter().map(|c| c.cc).sum();
        assert!((sum - d.cc_sum).abs() < 1e-4, "{d:?}");
        assert!(d
            .channels
            .iter()
            .all(|c| c.best_cc >= c.cc && c.best_lag.abs() <= 8));
    }

    // The occurrence 2.5 s before midnight, whose windows run into the next
    // day, belongs to the first day only.
    let midnight = epoch::day_start(d0 + 1);
    let near: Vec<&Detection> = dets
        .iter()
        .filter(|d| (d.time - midnight).abs() < 20 * epoch::NS_PER_S)
        .collect();
    assert_eq!(near.len(), 1);
    assert_eq!(epoch::day_of(near[0].time), d0);

    // The occurrence during the ten-minute gap of CHRL..EHZ is found with
    // the channels that have data.
    let gap_event = epoch::parse_time("2024-03-01T00:44:18.45Z").unwrap();
    let in_gap = dets
        .iter()
        .find(|d| (origin(d) - gap_event).abs() <= sample)
        .unwrap();
    assert_eq!(
        in_gap.n_channels,
        set.templates[in_gap.template].channels.len() - 1
    );
}

#[test]
fn days_run_apart_equal_days_run_together() {
    let (set, archive) = setup();
    let d0 = epoch::parse_day("2024-02-29").unwrap();
    let together = run(&set, &archive, &[d0 - 1, d0, d0 + 1, d0 + 2]);
    let mut apart = Vec::new();
    for d in [d0 + 2, d0, d0 - 1, d0 + 1] {
        apart.extend(run(&set, &archive, &[d]));
    }
    let key = |v: &[Detection]| -> BTreeMap<(usize, i64), Detection> {
        v.iter()
            .map(|d| ((d.template, d.time), d.clone()))
            .collect()
    };
    assert_eq!(key(&together), key(&apart));
    // Days without data give nothing and no error.
    let empty = detect_day(
        &set,
        &archive,
        d0 + 5,
        &DetectParams::default(),
        &CpuBackend::new(),
    )
    .unwrap();
    assert!(!empty.had_data && empty.detections.is_empty());
}
