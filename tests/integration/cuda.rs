//! The CUDA backend against the CPU backend and the direct f64 oracle: the
//! same detections, cc within 1e-4. Runs where a CUDA device is present and
//! says SKIPPED elsewhere.

use tmatch::correlate::cpu::CpuBackend;
use tmatch::correlate::cuda::CudaBackend;
use tmatch::correlate::{cuda_devices, Backend, PeakSpec, TemplatePeaks};
use tmatch::detect::ThresholdType;
use tmatch::epoch;
use tmatch::pipeline::{detect_day, DetectParams, Detection};

use crate::correlate::{case, oracle, stacks, with_view};
use crate::util::{shared, skip};

/// Device 0, or a SKIPPED line saying why there is none.
fn gpu(test: &str) -> Option<CudaBackend> {
    match cuda_devices() {
        Ok(n) if n > 0 => Some(CudaBackend::new(0).unwrap()),
        Ok(_) => {
            skip(test, "no CUDA device");
            None
        }
        Err(why) => {
            skip(test, &format!("no CUDA device ({why})"));
            None
        }
    }
}

#[test]
fn cuda_stack_matches_direct_f64_ncc() {
    let Some(gpu) = gpu("cuda_stack_matches_direct_f64_ncc") else {
        return;
    };
    // Lengths around the kernel's tile (3072 lags), pass (16 samples) and
    // chunk (256 samples): one whole tile, one lag past it, whole and
    // partial chunks.
    for (seed, (m, n)) in (100..).zip([
        (16, 40),
        (128, 3199),
        (129, 3201),
        (200, 5000),
        (256, 6400),
        (400, 20011),
        (800, 9001),
    ]) {
        let c = case(seed, n, m, 4, 3);
        let want = oracle(&c);
        let got = stacks(&c, m, &gpu);
        for (t, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g.len(), w.len());
            let err = g
                .iter()
                .zip(w)
                .map(|(a, b)| (*a as f64 - b).abs())
                .fold(0.0, f64::max);
            assert!(err < 1e-4, "M={m} N={n} template {t}: off by {err}");
        }
    }
}

fn assert_same_peaks(cpu: &[TemplatePeaks], gpu: &[TemplatePeaks], what: &str) {
    assert_eq!(cpu.len(), gpu.len());
    for (t, (c, g)) in cpu.iter().zip(gpu).enumerate() {
        assert!(
            (c.mad - g.mad).abs() < 1e-4,
            "{what} template {t}: mad {c:?} {g:?}"
        );
        let lags = |p: &TemplatePeaks| p.peaks.iter().map(|x| x.0).collect::<Vec<_>>();
        assert_eq!(lags(c), lags(g), "{what} template {t}");
        for (a, b) in c.peaks.iter().zip(&g.peaks) {
            assert!((a.1 - b.1).abs() < 1e-4, "{what} template {t}: {a:?} {b:?}");
        }
    }
}

#[test]
fn cuda_peaks_match_the_host() {
    let Some(gpu) = gpu("cuda_peaks_match_the_host") else {
        return;
    };
    let (m, n) = (150, 30_000);
    let c = case(7, n, m, 5, 40);
    with_view(&c, m, |view, templates| {
        let n_lags = view.n_lags();
        for (kind, k, min_channels, day) in [
            (ThresholdType::Mad, 6.0, 1, 1000..n_lags - 2000),
            (ThresholdType::Mad, 8.0, 4, 0..n_lags),
            (ThresholdType::Abs, 0.3, 1, 3..n_lags - 1),
            (ThresholdType::AvChanCorr, 0.05, 2, 500..9000),
            (ThresholdType::Mad, 5.0, 1, 10..10),
        ] {
            let spec = PeakSpec {
                threshold_type: kind,
                threshold: k,
                trig_int: 37,
                day,
                min_channels,
                host_memory: 1 << 20,
            };
            let want = CpuBackend::new().peaks(view, templates, &spec).unwrap();
            let got = gpu.peaks(view, templates, &spec).unwrap();
            assert!(want.iter().any(|p| !p.peaks.is_empty()) || spec.day.is_empty());
            assert_same_peaks(&want, &got, &format!("{spec:?}"));
        }
    });
}

fn assert_same_detections(cpu: &[Detection], gpu: &[Detection], what: &str) {
    let key = |d: &Detection| (d.template, d.time);
    assert_eq!(
        cpu.iter().map(key).collect::<Vec<_>>(),
        gpu.iter().map(key).collect::<Vec<_>>(),
        "{what}: detections differ"
    );
    let mut worst = 0f32;
    for (c, g) in cpu.iter().zip(gpu) {
        worst = worst
            .max((c.cc_sum - g.cc_sum).abs())
            .max((c.mad - g.mad).abs());
        assert_eq!(c.n_channels, g.n_channels);
        for (a, b) in c.channels.iter().zip(&g.channels) {
            worst = worst.max((a.cc - b.cc).abs());
        }
    }
    eprintln!(
        "{what}: {} detections on both backends, max |d cc| {worst:.1e}",
        cpu.len()
    );
    assert!(worst < 1e-4, "{what}: cc differs by {worst}");
}

#[test]
fn cuda_detects_what_the_cpu_detects_on_the_samples() {
    let Some(gpu) = gpu("cuda_detects_what_the_cpu_detects_on_the_samples") else {
        return;
    };
    let (set, archive) = crate::days::setup();
    let params = DetectParams {
        threshold: 10.0,
        ..Default::default()
    };
    for day in ["2024-02-29", "2024-03-01", "2024-03-02"] {
        let d = epoch::parse_day(day).unwrap();
        let cpu = detect_day(&set, &archive, d, &params, &CpuBackend::new()).unwrap();
        let got = detect_day(&set, &archive, d, &params, &gpu).unwrap();
        assert_same_detections(&cpu.detections, &got.detections, day);
    }
}

#[test]
fn cuda_detects_what_the_cpu_detects_on_hinet() {
    let Some(shared) = shared() else {
        return skip(
            "cuda_detects_what_the_cpu_detects_on_hinet",
            "../shared (real data and reference) not found",
        );
    };
    let Some(gpu) = gpu("cuda_detects_what_the_cpu_detects_on_hinet") else {
        return;
    };
    let (set, archive, params) = crate::hinet::setup(&shared);
    let day = epoch::parse_day("2012-09-02").unwrap();
    let cpu = detect_day(&set, &archive, day, &params, &CpuBackend::new()).unwrap();
    let got = detect_day(&set, &archive, day, &params, &gpu).unwrap();
    // The CPU run meets EQcorrscan's 429 detections (hinet.rs); so must this.
    assert_eq!(cpu.detections.len(), 429);
    assert_same_detections(&cpu.detections, &got.detections, "hinet-s4");
}
