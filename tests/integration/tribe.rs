//! EQcorrscan template sets imported as they are: the tribes that
//! `scripts/peer_tribe.py` wrote with EQcorrscan 0.5.2 (outside the
//! repository, in ../shared/reference/hinet-tribe: they hold waveform cuts
//! of the shared data) against the cuts it listed
//! (tests/reference/hinet-tribe/<setting>_templates.csv).

use std::path::Path;

use tmatch::epoch;
use tmatch::templates;

use crate::util::{s, shared, skip, tmatch_ok};

#[test]
fn imported_tribes_keep_eqcorrscan_names_cuts_and_phases() {
    let test = "imported_tribes_keep_eqcorrscan_names_cuts_and_phases";
    let Some(shared) = shared() else {
        return skip(test, "../shared is not there");
    };
    let dir = tempfile::tempdir().unwrap();
    let refs = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/hinet-tribe");
    for (setting, rate, len) in [("A", 40.0, 160), ("B", 50.0, 200), ("C", 25.0, 100)] {
        let tgz = shared.join(format!("reference/hinet-tribe/{setting}/tribe.tgz"));
        if !tgz.exists() {
            // The tribes are made by scripts/peer_tribe.py next to the data.
            let why = format!(
                "{} is missing (scripts/peer_tribe.py makes it)",
                tgz.display()
            );
            return skip(test, &why);
        }
        let out = dir.path().join(format!("{setting}.h5"));
        tmatch_ok(&["templates", "import", s(&tgz), "-o", s(&out)]);
        let set = templates::read(&out).unwrap();
        assert_eq!((set.rate, set.len), (rate, len), "{setting}");
        assert_eq!(set.recipe.resample, Some(rate), "{setting}");
        let text = std::fs::read_to_string(refs.join(format!("{setting}_templates.csv"))).unwrap();
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
        let mut n = 0;
        for line in lines {
            let f: Vec<&str> = line.split(',').collect();
            let t = set
                .templates
                .iter()
                .find(|t| t.event.id == f[col("template")])
                .unwrap_or_else(|| panic!("{setting}: no template {}", f[col("template")]));
            let mut same_id: Vec<_> = t
                .channels
                .iter()
                .filter(|c| c.id == f[col("seed_id")])
                .collect();
            same_id.sort_by_key(|c| c.start);
            let c = same_id[f[col("index_in_seed_id")].parse::<usize>().unwrap()];
            let start = epoch::parse_time(f[col("starttime")]).unwrap();
            assert!((c.start - start).abs() < 1000, "{setting}: {line}");
            assert_eq!(
                c.data.len(),
                f[col("npts")].parse::<usize>().unwrap(),
                "{line}"
            );
            assert_eq!(c.phase.as_str(), f[col("phase")], "{setting}: {line}");
            assert_eq!(c.pick_offset, 500_000_000, "{line}");
            n += 1;
        }
        let total: usize = set.templates.iter().map(|t| t.channels.len()).sum();
        assert_eq!(n, total, "{setting}: every trace, once");
        eprintln!(
            "tribe {setting}: {} templates, {n} traces as EQcorrscan cut them",
            set.templates.len()
        );
    }
}

/// A set whose templates differ in processing is refused by name.
#[test]
fn tribes_of_mixed_processing_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let tgz = dir.path().join("tribe.tgz");
    let params = "name: a, lowcut: 2.0, highcut: 8.0, samp_rate: 50.0, filt_order: 4, \
                  process_length: 86400.0, prepick: 0.5, \n\
                  name: b, lowcut: 2.0, highcut: 8.0, samp_rate: 40.0, filt_order: 4, \
                  process_length: 86400.0, prepick: 0.5, \n";
    let file = std::fs::File::create(&tgz).unwrap();
    let gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    let mut header = tar::Header::new_gnu();
    header.set_size(params.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(
        &mut header,
        "tribe/template_parameters.csv",
        params.as_bytes(),
    )
    .unwrap();
    tar.into_inner().unwrap().finish().unwrap();
    let err = crate::util::tmatch_fails(&[
        "templates",
        "import",
        s(&tgz),
        "-o",
        s(&dir.path().join("t.h5")),
    ]);
    assert!(
        err.contains("tribe.tgz") && err.contains("differ in processing"),
        "{err}"
    );
    let not = dir.path().join("not.tgz");
    std::fs::write(&not, "plain text").unwrap();
    let err = crate::util::tmatch_fails(&[
        "templates",
        "import",
        s(&not),
        "-o",
        s(&dir.path().join("t.h5")),
    ]);
    assert!(err.contains("not.tgz"), "{err}");
}

/// `templates build` cuts where EQcorrscan's `Tribe.construct` does: at
/// 40 Hz, picks to 0.01 s less 0.5 s fall between samples, and each window
/// starts at the first sample at or after that time (setting A: 3–12 Hz,
/// S windows); `--window-start nearest` moves many of them a sample
/// earlier.
#[test]
fn built_windows_start_where_eqcorrscan_cuts() {
    let test = "built_windows_start_where_eqcorrscan_cuts";
    let Some(shared) = shared() else {
        return skip(test, "../shared is not there");
    };
    let data = shared.join("data/hinet-2012-09-02");
    let p = |n: &str| data.join(n).to_str().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let refs = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/hinet-tribe");
    let text = std::fs::read_to_string(refs.join("A_templates.csv")).unwrap();
    // (catalogue event id, SEED id) → EQcorrscan's window start.
    let want: std::collections::BTreeMap<(String, String), i64> = text
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let start = epoch::parse_time(f[4]).unwrap();
            ((f[1].to_string(), f[2].to_string()), start)
        })
        .collect();
    let starts = |rule: &str| {
        let out = dir.path().join(format!("{rule}.h5"));
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
            "0.5",
            "--length",
            "4",
            "--lowcut",
            "3",
            "--highcut",
            "12",
            "--sampling-rate",
            "40",
            "--window-start",
            rule,
            "-o",
            s(&out),
        ]);
        let set = templates::read(&out).unwrap();
        let mut same = 0;
        let mut compared = 0;
        for t in &set.templates {
            for c in &t.channels {
                if let Some(&w) = want.get(&(t.event.id.clone(), c.id.clone())) {
                    compared += 1;
                    same += ((c.start - w).abs() < 1000) as usize;
                }
            }
        }
        (same, compared)
    };
    let (same, compared) = starts("at-or-after");
    eprintln!("window starts: {same} of {compared} EQcorrscan-cut channels at the same sample");
    assert_eq!(compared, want.len());
    assert_eq!(same, compared);
    let (nearest, _) = starts("nearest");
    eprintln!("with --window-start nearest: {nearest} of {compared}");
    assert!(nearest < compared);
}
