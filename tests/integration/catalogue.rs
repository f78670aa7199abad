//! `tmatch catalog` against EQcorrscan's own declustering and lag_calc on
//! the Hi-net day (references in tests/reference/hinet-catalog, made by
//! scripts/peer_catalog.py), and its relative magnitudes on generated data
//! with planted amplitudes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use tmatch::epoch::{self, Nanos};
use tmatch::synth;

use crate::util::{s, shared, skip, tmatch_ok, Detect};

fn reference(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/reference/hinet-catalog")
        .join(name)
}

/// Rows of a CSV file as maps of column to text.
fn csv_rows(path: &Path) -> Vec<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines();
    let header: Vec<String> = lines.next().unwrap().split(',').map(String::from).collect();
    lines
        .map(|l| {
            header
                .iter()
                .cloned()
                .zip(l.split(',').map(String::from))
                .collect()
        })
        .collect()
}

/// Templates and detections of the hinet-s4 run through the command line
/// (S waves, 1 s before the pick, 4 s; MAD 12, trig_int 6 s).
fn hinet_detections(shared: &Path, dir: &Path) -> (String, String) {
    let data = shared.join("data/hinet-2012-09-02");
    let p = |n: &str| data.join(n).to_str().unwrap().to_string();
    let (t, d) = (dir.join("t.h5"), dir.join("d.h5"));
    tmatch_ok(&[
        "templates",
        "build",
        "--picks",
        &p("catalog/picks.csv"),
        "--events",
        &p("catalog/events.csv"),
        "--archive",
        &p("continuous"),
        "--phase",
        "S",
        "--pre",
        "1",
        "--length",
        "4",
        "-o",
        s(&t),
    ]);
    Detect::new(s(&t), &p("continuous"), "2012-09-02", s(&d))
        .args(&["--threshold", "12", "--trig-int", "6"])
        .run_ok();
    (s(&t).to_string(), s(&d).to_string())
}

fn catalog(t: &str, d: &str, out: &Path, args: &[&str]) {
    let mut all = vec!["catalog", d, "--templates", t, "-o", s(out)];
    all.extend_from_slice(args);
    tmatch_ok(&all);
}

#[test]
fn declustering_and_picks_match_eqcorrscan_on_hinet() {
    let test = "declustering_and_picks_match_eqcorrscan_on_hinet";
    let Some(shared) = shared() else {
        return skip(test, "../shared is not there");
    };
    let dir = tempfile::tempdir().unwrap();
    let (t, d) = hinet_detections(&shared, dir.path());
    let settings: [(&str, &[&str]); 8] = [
        ("decluster_detect_avg_cor_t1.csv", &["--decluster", "1"]),
        (
            "decluster_detect_cor_sum_t1.csv",
            &["--decluster", "1", "--decluster-metric", "cor-sum"],
        ),
        ("decluster_detect_avg_cor_t3.csv", &["--decluster", "3"]),
        (
            "decluster_detect_cor_sum_t3.csv",
            &["--decluster", "3", "--decluster-metric", "cor-sum"],
        ),
        ("decluster_detect_avg_cor_t10.csv", &["--decluster", "10"]),
        (
            "decluster_detect_cor_sum_t10.csv",
            &["--decluster", "10", "--decluster-metric", "cor-sum"],
        ),
        (
            "decluster_origin_avg_cor_t10.csv",
            &["--decluster", "10", "--decluster-timing", "origin"],
        ),
        (
            "decluster_detect_avg_cor_t10_hyp1km.csv",
            &["--decluster", "10", "--hypocentral-separation", "1"],
        ),
    ];
    let key = |r: &BTreeMap<String, String>| (r["template"].clone(), r["detect_time"].clone());
    for (file, args) in settings {
        let out = dir.path().join("events.csv");
        catalog(&t, &d, &out, args);
        let ours: BTreeSet<_> = csv_rows(&out).iter().map(key).collect();
        let want: BTreeSet<_> = csv_rows(&reference(file)).iter().map(key).collect();
        assert_eq!(ours, want, "{file}");
        eprintln!("{file}: {} kept detections, as EQcorrscan", ours.len());
    }
    check_picks(&t, &d, dir.path());
}

/// lag_calc (shift_len 0.2 s, min_cc 0.4) on the party declustered at 3 s.
/// EQcorrscan cuts its window inclusively, so its lags reach one sample
/// past +shift_len (and past −shift_len where float rounding moves the
/// cut); tmatch searches ±shift_len. Every reference pick within ±shift_len
/// must be ours at the same sample with the same CC; the others are
/// counted, and ours there lie within ±shift_len.
fn check_picks(t: &str, d: &str, dir: &Path) {
    let out = dir.join("picks.csv");
    catalog(
        t,
        d,
        &dir.join("events.csv"),
        &["--decluster", "3", "--picks-csv", s(&out)],
    );
    let ours: BTreeMap<(String, String, String), (Nanos, f64)> = csv_rows(&out)
        .iter()
        .map(|r| {
            let (template, time) = r["event_id"].rsplit_once('_').unwrap();
            let detect = epoch::parse_time(&format!(
                "{}-{}-{}T{}:{}:{}Z",
                &time[..4],
                &time[4..6],
                &time[6..8],
                &time[9..11],
                &time[11..13],
                &time[13..]
            ))
            .unwrap();
            let station = r["seed_id"]
                .split('.')
                .skip(1)
                .step_by(2)
                .collect::<Vec<_>>()
                .join(".");
            let pick = epoch::parse_time(&r["time"]).unwrap();
            let key = (template.to_string(), epoch::format_time(detect), station);
            (key, (pick, r["cc"].parse().unwrap()))
        })
        .collect();
    let (mut matched, mut edge, mut max_dt, mut max_dcc) = (0, 0, 0i64, 0f64);
    let reference = csv_rows(&reference("lagcalc_picks_interp0.csv"));
    for r in &reference {
        let detect = epoch::format_time(epoch::parse_time(&r["detect_time"]).unwrap());
        let key = (
            r["template"].clone(),
            detect,
            format!("{}.{}", r["station"], r["channel"]),
        );
        let (pick, cc) = (
            epoch::parse_time(&r["pick_time"]).unwrap(),
            r["cc"].parse::<f64>().unwrap(),
        );
        let lag: f64 = r["lag_s"].parse().unwrap();
        if lag.abs() > 0.2 + 1e-6 {
            edge += 1;
            if let Some(&(p, _)) = ours.get(&key) {
                let at_zero = pick - (lag * 1e9).round() as i64;
                assert!((p - at_zero).abs() <= 200_000_000, "{key:?}");
            }
            continue;
        }
        let &(p, c) = ours.get(&key).unwrap_or_else(|| panic!("no pick {key:?}"));
        assert_eq!(p, pick, "{key:?}");
        assert!((c - cc).abs() < 1e-3, "{key:?}: cc {c} vs {cc}");
        (matched, max_dt, max_dcc) = (
            matched + 1,
            max_dt.max((p - pick).abs()),
            max_dcc.max((c - cc).abs()),
        );
    }
    // Picks EQcorrscan did not make are picks it could not have made:
    // ours are those of its events, within its windows.
    let extra = ours.len() - matched - edge.min(ours.len() - matched);
    eprintln!(
        "lag_calc picks: {matched} of {} matched (max |dt| {max_dt} ns, max |dcc| {max_dcc:.1e}), \
         {edge} of EQcorrscan's past ±shift_len, {extra} of ours not in its list",
        reference.len()
    );
    assert!(
        edge * 100 <= reference.len(),
        "{edge} picks at the window's edge"
    );
    assert_eq!(extra, 0);
}

/// Repeats planted at known amplitude scales of their catalogued first
/// occurrence (magnitude 2.5, scale 1): the magnitudes recover 2.5 +
/// log10(scale).
#[test]
fn relative_magnitudes_recover_planted_amplitudes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let w = dir.join("w");
    let mut spec = synth::Spec::workload("2024-01-01", 1, 3.0, 5, 12, 11);
    // Loud enough for every repeat to pass the SNR of 5 on P channels
    // (the data are integer counts: a quieter noise is rounded away).
    spec.noise = 2.0;
    for e in &mut spec.events {
        e.scale *= 20.0;
    }
    synth::generate(&spec, &w).unwrap();
    let p = |n: &str| w.join(n).to_str().unwrap().to_string();
    let (t, d) = (dir.join("t.h5"), dir.join("d.h5"));
    tmatch_ok(&[
        "templates",
        "build",
        "--picks",
        &p("picks.csv"),
        "--events",
        &p("events.csv"),
        "--archive",
        &p("archive"),
        "--lowcut",
        "2",
        "--highcut",
        "8",
        "-o",
        s(&t),
    ]);
    Detect::new(s(&t), &p("archive"), "2024-01-01", s(&d)).run_ok();
    let out = dir.join("events.csv");
    catalog(s(&t), s(&d), &out, &[]);
    // Each repeat's scale relative to its source's first (catalogued)
    // occurrence.
    let mut first = BTreeMap::new();
    let truth: Vec<(Nanos, f64)> = csv_rows(&w.join("truth.csv"))
        .iter()
        .map(|r| {
            let scale: f64 = r["scale"].parse().unwrap();
            let base = *first.entry(r["source"].clone()).or_insert(scale);
            (epoch::parse_time(&r["origin_time"]).unwrap(), scale / base)
        })
        .collect();
    // Overlapping events spoil some noise windows: those get no magnitude
    // (too few channels with SNR 5), which is counted.
    let (mut n, mut without, mut worst) = (0, 0, 0f64);
    for e in csv_rows(&out) {
        let origin = epoch::parse_time(&e["origin_time"]).unwrap();
        let Some(&(_, scale)) = truth.iter().find(|(o, _)| (o - origin).abs() < 20_000_000) else {
            continue; // a template detecting another source's event
        };
        let Ok(m) = e["magnitude"].parse::<f64>() else {
            without += 1;
            continue;
        };
        let want = e["template_magnitude"].parse::<f64>().unwrap() + scale.log10();
        worst = worst.max((m - want).abs());
        n += 1;
    }
    eprintln!(
        "relative magnitudes: {n} planted events with a magnitude, max |error| {worst:.3}; \
         {without} without (too few channels with SNR 5)"
    );
    assert!(n >= 4 * without && n >= 30, "{n} with, {without} without");
    assert!(worst < 0.1, "max |error| {worst}");
}

/// A detections file of format 2 (before the catalogue's measurements) is
/// refused by name, saying an older tmatch wrote it; templates other than
/// the detections' are refused too.
#[test]
fn older_detections_files_and_other_templates_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let t = crate::util::build_templates(dir.path(), &[]);
    let archive = crate::util::samples().join("archive");
    let d = dir.path().join("d.h5");
    Detect::new(&t, s(&archive), "2024-02-29..2024-03-01", s(&d)).run_ok();
    let out = dir.path().join("events.csv");
    catalog(&t, s(&d), &out, &[]);
    assert!(csv_rows(&out).len() >= 14);

    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    let t2 = crate::util::build_templates(&other, &["--pre", "0.7"]);
    let err = crate::util::tmatch_fails(&["catalog", s(&d), "--templates", &t2, "-o", s(&out)]);
    assert!(
        err.contains(&t2) && err.contains("not the templates"),
        "{err}"
    );

    {
        let f = hdf5::File::open_rw(&d).unwrap();
        f.attr("format_version")
            .unwrap()
            .write_scalar(&2u32)
            .unwrap();
    }
    for args in [
        vec!["catalog", s(&d), "--templates", &t, "-o", s(&out)],
        vec!["export", s(&d)],
    ] {
        let err = crate::util::tmatch_fails(&args);
        assert!(
            err.contains(s(&d)) && err.contains("version 2") && err.contains("older tmatch"),
            "{err}"
        );
    }
}
