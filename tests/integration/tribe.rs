//! EQcorrscan template sets, imported as they are and built the way
//! `Tribe.construct` builds them, against EQcorrscan 0.5.2's own results on
//! the real Hi-net day (tests/reference/hinet-tribe: the cut of every
//! trace and `Tribe.detect`'s detections, from `scripts/peer_tribe.py`).
//!
//! The tribe files themselves hold waveform cuts of the shared data, so
//! they are never in the repository: they are taken from `TMATCH_TRIBES`
//! or `../shared/reference/hinet-tribe` where present, else made once into
//! `target/peer-tribes` by `scripts/peer_tribe.py` with EQcorrscan's
//! Python (`TMATCH_EQCORRSCAN_PYTHON`, or the venv `~/.venvs/eqc` that
//! ../shared/peers describes). Without ../shared or EQcorrscan the tests
//! skip, saying so.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use tmatch::epoch;
use tmatch::templates;

use crate::util::{s, shared, skip, tmatch_ok};

/// The folder holding `<setting>/tribe.tgz` for settings A–D, or why
/// there is none.
fn tribes(shared: &Path) -> Result<PathBuf, String> {
    static MADE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    MADE.get_or_init(|| {
        let have = |d: &Path| {
            ["A", "B", "C"]
                .iter()
                .all(|s| d.join(s).join("tribe.tgz").exists())
        };
        let given = std::env::var_os("TMATCH_TRIBES").map(PathBuf::from);
        for d in given
            .iter()
            .cloned()
            .chain([shared.join("reference/hinet-tribe")])
        {
            if have(&d) {
                return Ok(d);
            }
        }
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        let cache = repo.join("target/peer-tribes");
        if have(&cache) {
            return Ok(cache);
        }
        let python = std::env::var_os("TMATCH_EQCORRSCAN_PYTHON")
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME").map(|h| Path::new(&h).join(".venvs/eqc/bin/python"))
            })
            .filter(|p| p.exists())
            .ok_or(
                "the tribe files are missing and no EQcorrscan Python to make them \
                    (TMATCH_EQCORRSCAN_PYTHON or ~/.venvs/eqc, see ../shared/peers)",
            )?;
        let scratch = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = Command::new(&python)
            .arg(repo.join("scripts/peer_tribe.py"))
            .arg(scratch.path())
            .env("TRIBES_ONLY", "1")
            .env("TRIBE_DIR", &cache)
            .env("SEIS_DATA", shared.join("data/hinet-2012-09-02"))
            .output()
            .map_err(|e| format!("{}: {e}", python.display()))?;
        if !out.status.success() || !have(&cache) {
            // A Python that is there but cannot make them is a failure, not a skip.
            panic!(
                "scripts/peer_tribe.py with {} failed:\n{}",
                python.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        eprintln!("made the EQcorrscan tribes in {}", cache.display());
        Ok(cache)
    })
    .clone()
}

/// The shared folder and the tribes' folder, or `None` after a SKIPPED
/// line for `test` saying which is missing.
fn tribes_or_skip(test: &str) -> Option<(PathBuf, PathBuf)> {
    let Some(shared) = shared() else {
        skip(test, "../shared is not there");
        return None;
    };
    match tribes(&shared) {
        Ok(t) => Some((shared, t)),
        Err(why) => {
            skip(test, &why);
            None
        }
    }
}

fn references() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/hinet-tribe")
}

#[test]
fn imported_tribes_keep_eqcorrscan_names_cuts_and_phases() {
    let Some((_, tribes)) = tribes_or_skip("imported_tribes_keep_eqcorrscan_names_cuts_and_phases")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let refs = references();
    for (setting, rate, len) in [("A", 40.0, 160), ("B", 50.0, 200), ("C", 25.0, 100)] {
        let tgz = tribes.join(setting).join("tribe.tgz");
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
    let text = std::fs::read_to_string(references().join("A_templates.csv")).unwrap();
    // (catalogue event id, SEED id) → EQcorrscan's window start.
    let want: BTreeMap<(String, String), i64> = text
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

/// EQcorrscan's settings A–C (tests/reference/hinet-tribe/README.md): band,
/// rate and the `templates build` options that cut its `swin` windows
/// (`S` takes horizontals only, as EQcorrscan's S windows do).
const SETTINGS: [(&str, &[&str]); 3] = [
    (
        "A",
        &[
            "--phase",
            "S",
            "--channels",
            "*[!Z]",
            "--lowcut",
            "3",
            "--highcut",
            "12",
            "--sampling-rate",
            "40",
        ],
    ),
    (
        "B",
        &[
            "--phase",
            "P",
            "--lowcut",
            "3",
            "--highcut",
            "12",
            "--sampling-rate",
            "50",
        ],
    ),
    (
        "C",
        &[
            "--phase",
            "all",
            "--lowcut",
            "2",
            "--highcut",
            "8",
            "--sampling-rate",
            "25",
        ],
    ),
];

/// One detection: (template, detect time) → (cc_sum, threshold).
type Detections = BTreeMap<(String, String), (f64, f64)>;

/// `Tribe.detect`'s detections of a setting.
fn eqcorrscan_detections(setting: &str) -> Detections {
    let text =
        std::fs::read_to_string(references().join(format!("{setting}_detections.csv"))).unwrap();
    text.lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (
                (f[0].into(), f[1].into()),
                (f[2].parse().unwrap(), f[4].parse().unwrap()),
            )
        })
        .collect()
}

/// `tmatch detect` (MAD 8, trig_int 6, as `Tribe.detect` ran) with
/// `templates` on the Hi-net day, exported; templates renamed by `names`.
fn tmatch_detections(
    data: &Path,
    templates: &Path,
    names: &BTreeMap<String, String>,
) -> Detections {
    let dir = templates.parent().unwrap();
    let stem = templates.file_stem().unwrap().to_str().unwrap();
    let det = dir.join(format!("{stem}-detections.h5"));
    let csv = dir.join(format!("{stem}.csv"));
    let archive = data.join("continuous");
    tmatch_ok(&[
        "detect",
        "--templates",
        s(templates),
        "--archive",
        s(&archive),
        "--days",
        "2012-09-02",
        "--threshold",
        "8",
        "--threshold-type",
        "mad",
        "--trig-int",
        "6",
        "-o",
        s(&det),
    ]);
    tmatch_ok(&["export", s(&det), "--format", "csv", "-o", s(&csv)]);
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let name = f[col("template")];
            let name = names.get(name).map_or(name, |n| n.as_str());
            (
                (name.to_string(), f[col("detect_time")].to_string()),
                (
                    f[col("cc_sum")].parse().unwrap(),
                    f[col("threshold")].parse().unwrap(),
                ),
            )
        })
        .collect()
}

/// Every EQcorrscan detection found at its sample, with cc_sum and
/// threshold within 1e-3, and nothing else.
fn assert_same_detections(what: &str, want: &Detections, got: &Detections) {
    let same = want.keys().filter(|k| got.contains_key(*k)).count();
    let (mut dcc, mut dthr) = (0f64, 0f64);
    for (k, (cc, thr)) in want {
        if let Some((c, t)) = got.get(k) {
            dcc = dcc.max((cc - c).abs());
            dthr = dthr.max((thr - t).abs());
        }
    }
    eprintln!(
        "{what}: {same} of {} EQcorrscan detections at the same sample, {} extra, \
         max |Δcc_sum| {dcc:.2e}, max |Δthreshold| {dthr:.2e}",
        want.len(),
        got.len() - same
    );
    let missing: Vec<_> = want
        .keys()
        .filter(|k| !got.contains_key(*k))
        .take(5)
        .collect();
    assert!(missing.is_empty(), "{what}: missing {missing:?}");
    assert_eq!(got.len(), want.len(), "{what}: extra detections");
    assert!(dcc < 1e-3 && dthr < 1e-3, "{what}: cc_sum or threshold off");
}

/// Imported tribes detect what `Tribe.detect` found with them: resampled
/// stretches keep their true time base (whole output samples, as
/// EQcorrscan's chunks), filtered from rest at the record's edges.
#[test]
fn imported_tribes_detect_as_eqcorrscan() {
    let Some((shared, tribes)) = tribes_or_skip("imported_tribes_detect_as_eqcorrscan") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for (setting, _) in SETTINGS {
        let h5 = dir.path().join(format!("{setting}.h5"));
        let tgz = tribes.join(setting).join("tribe.tgz");
        tmatch_ok(&["templates", "import", s(&tgz), "-o", s(&h5)]);
        let got = tmatch_detections(&shared.join("data/hinet-2012-09-02"), &h5, &BTreeMap::new());
        assert_same_detections(
            &format!("imported tribe {setting}"),
            &eqcorrscan_detections(setting),
            &got,
        );
    }
}

/// Templates built by `templates build` with EQcorrscan's settings detect
/// what `Tribe.construct` + `Tribe.detect` found.
#[test]
fn templates_built_as_eqcorrscan_detect_as_eqcorrscan() {
    let test = "templates_built_as_eqcorrscan_detect_as_eqcorrscan";
    let Some(shared) = shared() else {
        return skip(test, "../shared is not there");
    };
    let data = shared.join("data/hinet-2012-09-02");
    let dir = tempfile::tempdir().unwrap();
    for (setting, options) in SETTINGS {
        let h5 = dir.path().join(format!("{setting}.h5"));
        let quakeml = data.join("catalog/templates_quakeml.xml");
        let archive = data.join("continuous");
        let mut args = vec![
            "templates",
            "build",
            "--quakeml",
            s(&quakeml),
            "--archive",
            s(&archive),
        ];
        args.extend([
            "--pre",
            "0.5",
            "--length",
            "4",
            "--filter-order",
            "4",
            "-o",
            s(&h5),
        ]);
        args.extend(options);
        tmatch_ok(&args);
        // tmatch names templates by event; EQcorrscan by the earliest start.
        let text =
            std::fs::read_to_string(references().join(format!("{setting}_templates.csv"))).unwrap();
        let names: BTreeMap<String, String> = text
            .lines()
            .skip(1)
            .map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                (f[1].to_string(), f[0].to_string())
            })
            .collect();
        let got = tmatch_detections(&data, &h5, &names);
        assert_same_detections(
            &format!("built {setting}"),
            &eqcorrscan_detections(setting),
            &got,
        );
    }
}
