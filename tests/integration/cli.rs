//! The `tmatch` binary: the quick-start flow, exit codes, and bad input
//! that must fail clearly (naming the file) or be recorded and survived.

use std::fs;
use std::path::Path;

use crate::util::{build_templates, copy_dir, s, samples, tmatch, tmatch_ok, Detect};

const DAYS: &str = "2024-02-29..2024-03-01";

/// `tmatch detect` over the two sample days.
fn detect(templates: &str, archive: &str, out: &str) -> Detect {
    Detect::new(templates, archive, DAYS, out)
}

#[test]
fn quick_start_flow() {
    let dir = tempfile::tempdir().unwrap();
    let gen = dir.path().join("gen");
    tmatch_ok(&["synth", "-o", s(&gen)]);
    assert!(gen
        .join("archive/2024/XX/ALFA/EHZ.D/XX.ALFA..EHZ.D.2024.060")
        .is_file());
    let t = build_templates(dir.path(), &[]);
    let info = tmatch(&["templates", "info", &t]);
    let info = String::from_utf8_lossy(&info.stdout);
    assert!(
        info.contains("templates        3") && info.contains("lowcut 2 Hz"),
        "{info}"
    );
    // Piped into a reader that has already gone: quiet, no panic.
    let piped = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "'{}' templates info '{t}' | true",
            s(&crate::util::tmatch_bin())
        ))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&piped.stderr);
    assert!(piped.status.success() && stderr.is_empty(), "{stderr}");
    let out = dir.path().join("d.h5");
    let archive = samples().join("archive");
    let log = detect(&t, s(&archive), s(&out))
        .args(&["--threshold", "10"])
        .run_ok();
    assert!(log.contains("2024-02-29: done"), "{log}");
    let csv = dir.path().join("d.csv");
    tmatch_ok(&["export", s(&out), "-o", s(&csv)]);
    let csv = fs::read_to_string(csv).unwrap();
    assert_eq!(csv.lines().count(), 1 + 14, "{csv}");
    assert!(csv.starts_with("template,detect_time,origin_time,cc_sum"));
    // The output is not overwritten without being asked.
    let again = detect(&t, s(&archive), s(&out)).run();
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--overwrite"));
}

#[test]
fn usage_errors_exit_2_and_device_errors_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let t = build_templates(dir.path(), &[]);
    let a = s(&samples().join("archive")).to_string();
    let out = s(&dir.path().join("d.h5")).to_string();
    let bad_days = Detect::new(&t, &a, "2024-13-01", &out).run();
    assert_eq!(bad_days.status.code(), Some(2));
    let bad_device = detect(&t, &a, &out).args(&["--device", "cuda:x"]).run();
    assert_eq!(bad_device.status.code(), Some(1));
    if matches!(tmatch::correlate::cuda_devices(), Ok(n) if n > 0) {
        eprintln!("SKIPPED --device cuda without a GPU: a CUDA device is present");
    } else {
        let cuda = detect(&t, &a, &out).args(&["--device", "cuda"]).run();
        assert_eq!(cuda.status.code(), Some(1));
        let err = String::from_utf8_lossy(&cuda.stderr);
        assert!(err.contains("--device cuda: no CUDA"), "{err}");
    }
    assert!(
        !Path::new(&out).exists(),
        "nothing written for a refused run"
    );
}

/// `--device auto` runs on every visible GPU, or on the CPU and says why in
/// one line; `--device cpu` says nothing about GPUs.
#[test]
fn device_auto_falls_back_to_the_cpu_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let t = build_templates(dir.path(), &[]);
    let a = s(&samples().join("archive")).to_string();
    let run = |device: &str| {
        let out = dir.path().join(format!("{device}.h5"));
        detect(&t, &a, s(&out)).args(&["--device", device]).run_ok()
    };
    let auto = run("auto");
    let fallback: Vec<&str> = auto
        .lines()
        .filter(|l| l.contains("running on the CPU"))
        .collect();
    match tmatch::correlate::cuda_devices() {
        Ok(n) if n > 0 => {
            assert!(fallback.is_empty(), "{auto}");
            assert!(auto.contains("device cuda:0"), "{auto}");
        }
        _ => {
            assert_eq!(fallback.len(), 1, "{auto}");
            assert!(auto.contains("device cpu"), "{auto}");
        }
    }
    let cpu = run("cpu");
    assert!(!cpu.contains("CUDA") && cpu.contains("device cpu"), "{cpu}");
}

#[test]
fn unwritable_output_and_foreign_template_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let t = build_templates(dir.path(), &[]);
    let a = s(&samples().join("archive")).to_string();
    // A parent that is a file cannot hold the output (whoever runs this).
    let blocker = dir.path().join("not-a-folder");
    fs::write(&blocker, "x").unwrap();
    let out = blocker.join("d.h5");
    let r = detect(&t, &a, s(&out)).run();
    assert_eq!(r.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&r.stderr).contains(s(&out)),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );

    {
        let f = hdf5::File::open_rw(&t).unwrap();
        f.attr("format_version")
            .unwrap()
            .write_scalar(&7u32)
            .unwrap();
    }
    let out = dir.path().join("d.h5");
    let r = detect(&t, &a, s(&out)).run();
    let err = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(1));
    assert!(err.contains("t.h5") && err.contains("version 7"), "{err}");
}

#[test]
fn missing_channels_are_used_around_and_min_channels_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let t = build_templates(dir.path(), &[]);
    let archive = dir.path().join("archive");
    copy_dir(&samples().join("archive"), &archive);
    fs::remove_dir_all(archive.join("2024/XX/CHRL")).unwrap();
    let out = dir.path().join("d.h5");
    let log = detect(&t, s(&archive), s(&out)).run_ok();
    assert!(log.contains("3 channels without data"), "{log}");
    let d = tmatch::output::read(&out).unwrap();
    assert_eq!(d.rows.len(), 14);
    assert!(d.rows.iter().all(|r| r.n_channels == 6));
    assert!(d.days[0].problems.contains("XX.CHRL..EHZ: no data"));

    let strict = dir.path().join("strict.h5");
    detect(&t, s(&archive), s(&strict))
        .args(&["--min-channels", "7"])
        .run_ok();
    assert!(tmatch::output::read(&strict).unwrap().rows.is_empty());
}

#[test]
fn other_sampling_rates_need_a_resampling_recipe() {
    let dir = tempfile::tempdir().unwrap();
    let slow = dir.path().join("slow");
    let spec = tmatch::synth::Spec {
        rate: 20.0,
        ..tmatch::synth::Spec::samples()
    };
    tmatch::synth::generate(&spec, &slow).unwrap();
    let archive = s(&slow.join("archive")).to_string();
    // 40 Hz templates against 20 Hz data: every channel is refused, by name.
    let t = build_templates(dir.path(), &[]);
    let out = dir.path().join("d.h5");
    let r = detect(&t, &archive, s(&out)).run();
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        err.contains("sampled at 20 Hz, templates at 40 Hz"),
        "{err}"
    );
    // Templates resampled to 20 Hz find the events in the 40 Hz data, which
    // the recipe resamples the same way.
    let t20 = dir.path().join("t20.h5");
    let d = samples();
    tmatch_ok(&[
        "templates",
        "build",
        "--picks",
        s(&d.join("picks.csv")),
        "--archive",
        s(&d.join("archive")),
        "-o",
        s(&t20),
        "--lowcut",
        "2",
        "--highcut",
        "8",
        "--sampling-rate",
        "20",
    ]);
    let out20 = dir.path().join("d20.h5");
    let archive40 = samples().join("archive");
    detect(s(&t20), s(&archive40), s(&out20))
        .args(&["--threshold", "10"])
        .run_ok();
    let rows = tmatch::output::read(&out20).unwrap().rows;
    assert_eq!(rows.len(), 14, "{rows:?}");
}

#[test]
fn flat_data_is_reported_and_low_snr_channels_are_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let t = build_templates(dir.path(), &[]);
    let archive = dir.path().join("archive");
    copy_dir(&samples().join("archive"), &archive);
    let f = archive.join("2024/XX/ALFA/EHZ.D/XX.ALFA..EHZ.D.2024.061");
    fs::remove_file(&f).unwrap();
    let day = tmatch::epoch::parse_time("2024-03-01T00:00:00Z").unwrap();
    tmatch::archive::mseed::write_steim2(&f, "XX.ALFA..EHZ", day, 40.0, &vec![120; 40 * 3600])
        .unwrap();
    let out = dir.path().join("d.h5");
    let log = detect(&t, s(&archive), s(&out)).run_ok();
    assert!(log.contains("XX.ALFA..EHZ: flat"), "{log}");

    let d = samples();
    let (picks, arch) = (d.join("picks.csv"), d.join("archive"));
    let strict = dir.path().join("strict.h5");
    let r = tmatch(&[
        "templates",
        "build",
        "--picks",
        s(&picks),
        "--archive",
        s(&arch),
        "-o",
        s(&strict),
        "--min-snr",
        "1000",
    ]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(1));
    assert!(
        err.contains("below --min-snr 1000") && err.contains("no template could be built"),
        "{err}"
    );
    assert!(!strict.exists());
}

/// `--version` names the commit and the embedded kernels; `-V` is short.
#[test]
fn version_names_the_commit_and_the_kernels() {
    let long = crate::util::tmatch(&["--version"]);
    let text = String::from_utf8_lossy(&long.stdout);
    assert!(long.status.success(), "{text}");
    assert!(
        text.starts_with(&format!("tmatch {} (commit ", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    let ptx = include_str!("../../kernels/ptx/stack.ptx");
    let isa = ptx
        .lines()
        .find_map(|l| l.strip_prefix(".version "))
        .unwrap();
    assert!(text.contains(&format!("PTX ISA {isa} for sm_")), "{text}");
    let short = crate::util::tmatch(&["-V"]);
    assert_eq!(
        String::from_utf8_lossy(&short.stdout).trim(),
        format!("tmatch {}", env!("CARGO_PKG_VERSION"))
    );
}

/// `--precision mixed` needs a GPU: on the CPU it is refused, not ignored;
/// an unknown precision is refused by name.
#[test]
fn mixed_precision_on_the_cpu_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let t = build_templates(dir.path(), &[]);
    let archive = samples().join("archive");
    let out = dir.path().join("d.h5");
    let err = detect(&t, s(&archive), s(&out))
        .args(&["--device", "cpu", "--precision", "mixed"])
        .run_fails();
    assert!(err.contains("--precision mixed needs a CUDA GPU"), "{err}");
    let bad = detect(&t, s(&archive), s(&out))
        .args(&["--precision", "fp8"])
        .run();
    let err = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2), "a usage error: {err}");
    assert!(err.contains("--precision fp8"), "{err}");
    assert!(!out.exists(), "nothing written");
}
