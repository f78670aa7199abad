//! The CUDA backend against the CPU backend and the direct f64 oracle: the
//! same detections, cc within 1e-4; its median and candidates bit for bit
//! the host's on its own stacks. Runs where a CUDA device is present and
//! says SKIPPED elsewhere; with `TMATCH_REQUIRE_GPU=1` (the GPU check kit)
//! a missing device or missing data fails instead.

use std::sync::atomic::AtomicBool;
use std::sync::Mutex;

use tmatch::correlate::cpu::CpuBackend;
use tmatch::correlate::cuda::CudaBackend;
use tmatch::correlate::{cuda_devices, host_peaks, Backend, MixedKernel, PeakSpec, TemplatePeaks};
use tmatch::detect::DetectParams;
use tmatch::detect::{Detection, ThresholdType};
use tmatch::epoch;
use tmatch::output::{self, RunInfo, TemplateInfo, Writer};
use tmatch::pipeline::{self, detect_day};

use crate::correlate::{case, oracle, stacks, with_view};
use crate::util::{build_templates, s, samples, shared, skip_gpu_test, tmatch_ok, Detect};

/// Whether the CPU backend stands in for the GPU (`TMATCH_TEST_DEVICE=cpu`):
/// the GPU check kit's CPU mode runs these tests so to prove the kit itself.
fn cpu_stands_in() -> bool {
    std::env::var("TMATCH_TEST_DEVICE").is_ok_and(|v| v == "cpu")
}

/// The device under test, GPU 0 (at most `max_batch` templates per batch),
/// or a SKIPPED line saying why there is none.
fn gpu(test: &str, max_batch: Option<usize>) -> Option<Box<dyn Backend>> {
    if cpu_stands_in() {
        return Some(Box::new(CpuBackend::new()));
    }
    match cuda_devices() {
        Ok(n) if n > 0 => {
            let b = CudaBackend::new(0).unwrap();
            Some(Box::new(match max_batch {
                Some(n) => b.with_max_batch(n),
                None => b,
            }))
        }
        Ok(_) => {
            skip_gpu_test(test, "no CUDA device");
            None
        }
        Err(why) => {
            skip_gpu_test(test, &format!("no CUDA device ({why})"));
            None
        }
    }
}

/// `--device` of the device under test.
fn device_arg() -> &'static str {
    if cpu_stands_in() {
        "cpu"
    } else {
        "cuda"
    }
}

#[test]
fn cuda_stack_matches_direct_f64_ncc() {
    let Some(gpu) = gpu("cuda_stack_matches_direct_f64_ncc", None) else {
        return;
    };
    // Lengths around the kernel's tile (3072 lags), pass (16 samples) and
    // chunk (256 samples): one whole tile, one lag past it, whole and
    // partial chunks; data on an offset of 100 (the noise has σ ≈ 1.15).
    for (seed, (m, n)) in (100..).zip([
        (16, 40),
        (128, 3199),
        (129, 3201),
        (200, 5000),
        (256, 6400),
        (400, 20011),
        (800, 9001),
        (800, 70_001),
    ]) {
        let c = case(seed, n, m, 4, 3);
        let want = oracle(&c);
        let got = stacks(&c, m, gpu.as_ref());
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

/// Threshold settings that cover each type, `min_channels`, days cut
/// inside the lags, an empty day, and a threshold of 0 (every local
/// extremum a candidate: far more than the first scan's room).
fn specs(n_lags: usize) -> Vec<PeakSpec> {
    [
        (ThresholdType::Mad, 6.0, 1, 1000..n_lags - 2000),
        (ThresholdType::Mad, 4.0, 4, 0..n_lags),
        (ThresholdType::Abs, 0.3, 1, 3..n_lags - 1),
        (ThresholdType::AvChanCorr, 0.05, 2, 500..9000),
        (ThresholdType::Mad, 5.0, 1, 10..10),
        (ThresholdType::Abs, 0.0, 1, 0..n_lags),
    ]
    .into_iter()
    .map(|(kind, k, min_channels, day)| PeakSpec {
        threshold_type: kind,
        threshold: k,
        trig_int: 37,
        day,
        min_channels,
        host_memory: 1 << 20,
    })
    .collect()
}

#[test]
fn cuda_peaks_match_the_host() {
    let Some(gpu) = gpu("cuda_peaks_match_the_host", None) else {
        return;
    };
    let (m, n) = (150, 30_000);
    let c = case(7, n, m, 5, 40);
    with_view(&c, m, |view, templates| {
        for spec in specs(view.n_lags()) {
            let want = CpuBackend::new().peaks(view, templates, &spec).unwrap();
            let got = gpu.peaks(view, templates, &spec).unwrap();
            assert!(
                want.iter().any(|p| !p.peaks.is_empty()) || spec.day.is_empty(),
                "{spec:?}"
            );
            assert_same_peaks(&want, &got, &format!("{spec:?}"));
        }
    });
}

/// The device's median and candidates are exactly what the host computes
/// from the device's own stacked traces: the same bits, not just close.
#[test]
fn cuda_median_and_candidates_are_the_hosts_on_the_gpus_own_stacks() {
    let Some(gpu) = gpu(
        "cuda_median_and_candidates_are_the_hosts_on_the_gpus_own_stacks",
        None,
    ) else {
        return;
    };
    let (m, n) = (150, 30_000);
    let c = case(8, n, m, 5, 40);
    with_view(&c, m, |view, templates| {
        for spec in specs(view.n_lags()) {
            let host = host_peaks(gpu.as_ref(), view, templates, &spec, &mut |_, _| {}).unwrap();
            let device = gpu.peaks(view, templates, &spec).unwrap();
            for (t, (h, d)) in host.iter().zip(&device).enumerate() {
                assert_eq!(h.mad.to_bits(), d.mad.to_bits(), "{spec:?} template {t}");
                assert_eq!(h, d, "{spec:?} template {t}");
            }
        }
    });
}

/// Many small batches: both stream pairs, batch offsets and the candidate
/// rescan give what one batch gives.
#[test]
fn cuda_many_batches_give_what_one_batch_gives() {
    let test = "cuda_many_batches_give_what_one_batch_gives";
    let Some(one) = gpu(test, None) else {
        return;
    };
    let small = gpu(test, Some(3)).expect("the device opened once");
    let (m, n) = (200, 50_000);
    let c = case(9, n, m, 6, 17);
    with_view(&c, m, |view, templates| {
        for spec in specs(view.n_lags()) {
            let one = one.peaks(view, templates, &spec).unwrap();
            let many = small.peaks(view, templates, &spec).unwrap();
            assert_eq!(one, many, "{spec:?}");
        }
        let mut a = vec![Vec::new(); templates.len()];
        let mut b = a.clone();
        one.stack(view, templates, &mut a).unwrap();
        small.stack(view, templates, &mut b).unwrap();
        assert_eq!(a, b);
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
    let Some(gpu) = gpu("cuda_detects_what_the_cpu_detects_on_the_samples", None) else {
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
        let got = detect_day(&set, &archive, d, &params, gpu.as_ref()).unwrap();
        assert_same_detections(&cpu.detections, &got.detections, day);
    }
}

/// The day loop with the device: the next day copied in while one is
/// computed, in batches of two templates.
#[test]
fn cuda_day_loop_over_several_days_matches_the_cpu() {
    let Some(gpu) = gpu("cuda_day_loop_over_several_days_matches_the_cpu", Some(2)) else {
        return;
    };
    let (set, archive) = crate::days::setup();
    let days = epoch::parse_days("2024-02-28..2024-03-02").unwrap();
    let params = DetectParams {
        threshold: 10.0,
        ..Default::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, backend: Box<dyn Backend>| {
        let out = dir.path().join(name);
        let info = RunInfo {
            template_checksum: set.checksum(),
            parameters: "{}".into(),
            shard: None,
            template_shard: None,
        };
        let w = Writer::create(&out, &TemplateInfo::of(&set), &info, "test").unwrap();
        let w = Mutex::new(w);
        let stop = AtomicBool::new(false);
        let s = pipeline::run(&set, &archive, &days, &params, &[backend], &w, &stop).unwrap();
        assert_eq!((s.days_done, s.days_without_data, s.days_failed), (2, 2, 0));
        drop(w);
        output::read(&out).unwrap()
    };
    let cpu = run("cpu.h5", Box::new(CpuBackend::new()));
    let got = run("gpu.h5", gpu);
    assert_eq!(cpu.days.len(), got.days.len());
    assert_same_rows(&cpu, &got, "four days, batches of two");
}

/// Detection rows of two files: the same (template, time), cc within 1e-4.
fn assert_same_rows(cpu: &output::Detections, gpu: &output::Detections, what: &str) {
    let key = |r: &output::DetectionRow| (r.template, r.time_ns);
    assert_eq!(
        cpu.rows.iter().map(key).collect::<Vec<_>>(),
        gpu.rows.iter().map(key).collect::<Vec<_>>(),
        "{what}: detections differ"
    );
    let mut worst = 0f32;
    for (c, g) in cpu.rows.iter().zip(&gpu.rows) {
        worst = worst
            .max((c.cc_sum - g.cc_sum).abs())
            .max((c.mad - g.mad).abs());
    }
    for (c, g) in cpu.channels.iter().zip(&gpu.channels) {
        worst = worst.max((c.cc - g.cc).abs());
    }
    eprintln!(
        "{what}: {} detections on both devices, max |d cc| {worst:.1e}",
        cpu.rows.len()
    );
    assert!(worst < 1e-4, "{what}: cc differs by {worst}");
}

/// `tmatch detect --device cuda` and `--device cpu` on a generated archive
/// of several days, with small batches on both (`--memory`, and
/// `TMATCH_CUDA_MAX_BATCH` on the device).
#[test]
fn cuda_command_line_matches_the_cpu_over_several_generated_days() {
    let test = "cuda_command_line_matches_the_cpu_over_several_generated_days";
    if gpu(test, None).is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let w = dir.path().join("w");
    let run = |args: &[&str]| eprint!("{}", tmatch_ok(args));
    run(&[
        "synth",
        "--day",
        "2024-01-01",
        "--days",
        "3",
        "--hours",
        "2",
        "--stations",
        "5",
        "--sources",
        "60",
        "-o",
        s(&w),
    ]);
    let t = dir.path().join("t.h5");
    let p = |n: &str| w.join(n).to_str().unwrap().to_string();
    run(&[
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
    let detect = |device: &str, batch: Option<&str>, precision: &str| {
        let out = dir
            .path()
            .join(format!("{device}-{}-{precision}.h5", batch.is_some()));
        let mut d = Detect::new(s(&t), &p("archive"), "2024-01-01..2024-01-03", s(&out)).args(&[
            "--memory",
            "0.02",
            "--device",
            device,
            "--precision",
            precision,
        ]);
        if let Some(b) = batch {
            d = d.env(tmatch::correlate::cuda::MAX_BATCH_VAR, b);
        }
        eprint!("{}", d.run_ok());
        output::read(&out).unwrap()
    };
    let cpu = detect("cpu", None, "auto");
    let gpu = detect(device_arg(), Some("7"), "auto");
    assert!(cpu.rows.len() > 100, "{} detections", cpu.rows.len());
    assert!(gpu.days.iter().all(|d| d.device.starts_with(device_arg())));
    assert_same_rows(&cpu, &gpu, "3 generated days");
    if !cpu_stands_in() {
        // Tensor cores screen: the fp32 path's detections, cc_sum bit for bit.
        let fp32 = detect("cuda", Some("7"), "fp32");
        let mixed = detect("cuda", Some("7"), "mixed");
        let key = |r: &output::DetectionRow| (r.template, r.time_ns, r.cc_sum.to_bits());
        assert_eq!(
            fp32.rows.iter().map(key).collect::<Vec<_>>(),
            mixed.rows.iter().map(key).collect::<Vec<_>>(),
            "3 generated days: --precision mixed differs from fp32"
        );
        assert!(mixed
            .days
            .iter()
            .all(|d| d.device.contains("mixed precision")));
        eprintln!(
            "3 generated days: {} detections with --precision mixed, as fp32's",
            mixed.rows.len()
        );
    }
}

/// The same on the sample set, through the command line.
#[test]
fn cuda_command_line_matches_the_cpu_on_the_samples() {
    if gpu("cuda_command_line_matches_the_cpu_on_the_samples", None).is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let t = build_templates(dir.path(), &[]);
    let archive = samples().join("archive");
    let detect = |name: &str, device: &str| {
        let out = dir.path().join(format!("{name}.h5"));
        Detect::new(&t, s(&archive), "2024-02-29..2024-03-01", s(&out))
            .args(&["--threshold", "10", "--device", device])
            .run_ok();
        output::read(&out).unwrap()
    };
    let (cpu, gpu) = (detect("cpu", "cpu"), detect("tested", device_arg()));
    assert!(!cpu.rows.is_empty());
    assert_same_rows(&cpu, &gpu, "samples");
}

#[test]
fn cuda_detects_what_the_cpu_detects_on_hinet() {
    let test = "cuda_detects_what_the_cpu_detects_on_hinet";
    let Some(shared) = shared() else {
        return skip_gpu_test(test, "../shared (real data and reference) not found");
    };
    let Some(gpu) = gpu(test, None) else {
        return;
    };
    let (set, archive, params) = crate::hinet::setup(&shared);
    let day = epoch::parse_day("2012-09-02").unwrap();
    let cpu = detect_day(&set, &archive, day, &params, &CpuBackend::new()).unwrap();
    let got = detect_day(&set, &archive, day, &params, gpu.as_ref()).unwrap();
    // The CPU run meets EQcorrscan's 429 detections (hinet.rs); so must this.
    assert_eq!(cpu.detections.len(), 429);
    assert_same_detections(&cpu.detections, &got.detections, "hinet-s4");
}

/// `--precision mixed`: tensor cores screen, the lags near the threshold
/// are recomputed as the fp32 kernel computes them, so the detections and
/// their cc_sum are the fp32 path's bit for bit (the threshold comes from
/// the screened stack, within its margin of fp32's). On the samples, in
/// batches of 3 templates (groups across batches), and on the hinet day;
/// with every mixed kernel the GPU runs (on compute capability 9.0 the
/// wgmma kernel, which `--precision mixed` chooses there, and the wmma one).
#[test]
fn cuda_mixed_precision_detects_what_fp32_detects() {
    let test = "cuda_mixed_precision_detects_what_fp32_detects";
    if cpu_stands_in() {
        return skip_gpu_test(test, "the CPU has no mixed-precision kernel");
    }
    let Some(_) = gpu(test, None) else {
        return;
    };
    let fp32: Box<dyn Backend> = Box::new(CudaBackend::new(0).unwrap());
    let mixed = |kernel, batch| {
        let b = CudaBackend::new(0)
            .unwrap()
            .with_mixed_kernel(kernel)
            .unwrap();
        Box::new(match batch {
            Some(n) => b.with_max_batch(n),
            None => b,
        }) as Box<dyn Backend>
    };
    let compare = |what: &str, fp32: &[Detection], mixed: &[Detection]| {
        let key = |d: &Detection| (d.template, d.time, d.cc_sum.to_bits());
        assert_eq!(
            fp32.iter().map(key).collect::<Vec<_>>(),
            mixed.iter().map(key).collect::<Vec<_>>(),
            "{what}: mixed precision detections differ from fp32's"
        );
        let dthr = fp32
            .iter()
            .zip(mixed)
            .map(|(a, b)| (a.threshold - b.threshold).abs())
            .fold(0f32, f32::max);
        eprintln!(
            "{what}: {} detections, identical; max |d threshold| {dthr:.1e}",
            fp32.len()
        );
    };
    let cc = cudarc::driver::CudaContext::new(0)
        .unwrap()
        .compute_capability()
        .unwrap();
    let kernels: Vec<MixedKernel> = [MixedKernel::Wmma, MixedKernel::Wgmma]
        .into_iter()
        .filter(|&k| k == MixedKernel::Wmma || MixedKernel::for_gpu(cc.0, cc.1) == Some(k))
        .collect();
    let (set, archive) = crate::days::setup();
    let params = DetectParams {
        threshold: 10.0,
        ..Default::default()
    };
    for &kernel in &kernels {
        let screened = mixed(kernel, Some(3));
        for day in ["2024-02-29", "2024-03-01", "2024-03-02"] {
            let d = epoch::parse_day(day).unwrap();
            let a = detect_day(&set, &archive, d, &params, fp32.as_ref()).unwrap();
            let b = detect_day(&set, &archive, d, &params, screened.as_ref()).unwrap();
            compare(&format!("{kernel:?} {day}"), &a.detections, &b.detections);
        }
    }
    let Some(shared) = shared() else {
        return skip_gpu_test(test, "../shared (real data and reference) not found");
    };
    let (set, archive, params) = crate::hinet::setup(&shared);
    let day = epoch::parse_day("2012-09-02").unwrap();
    let a = detect_day(&set, &archive, day, &params, fp32.as_ref()).unwrap();
    assert_eq!(a.detections.len(), 429);
    for &kernel in &kernels {
        let b = detect_day(&set, &archive, day, &params, mixed(kernel, None).as_ref()).unwrap();
        compare(
            &format!("{kernel:?} hinet-s4"),
            &a.detections,
            &b.detections,
        );
    }
}

/// The probe of the sm_90 kernel's layouts (tests/integration/wgmma.rs): one
/// `wgmma` reads the Hankel view of a shifted copy of the data through a
/// descriptor whose core matrices overlap, and lays out its accumulators as
/// the model says. Each shift is tried, and the descriptors with the two
/// byte offsets exchanged, so that a failure says which reading the
/// hardware has; then A from registers, loaded as mixed_sm90.cu loads its
/// fragments. Runs on compute capability 9.0 only (wgmma is sm_90a's);
/// with the CPU standing in, the model.
#[test]
fn cuda_wgmma_reads_the_hankel_view_through_a_descriptor() {
    use crate::wgmma::{self, Offsets, A_OFFSETS, B_OFFSETS};
    use cudarc::driver::{CudaContext, LaunchConfig, PushKernelArg};
    use cudarc::nvrtc::Ptx;
    let test = "cuda_wgmma_reads_the_hankel_view_through_a_descriptor";
    if cpu_stands_in() {
        return wgmma::assert_the_model_reads_the_hankel_view();
    }
    let (t, x) = wgmma::inputs();
    let a = wgmma::a_image(&t);
    if gpu(test, None).is_none() {
        return;
    }
    let ctx = CudaContext::new(0).unwrap();
    let (major, minor) = ctx.compute_capability().unwrap();
    if (major, minor) != (9, 0) {
        let why = format!("wgmma needs compute capability 9.0, the device has {major}.{minor}");
        return crate::util::skip(test, &why);
    }
    let module = ctx
        .load_module(Ptx::from_src(include_str!(
            "../../kernels/ptx/wgmma_probe.ptx"
        )))
        .unwrap();
    let probe = module.load_function("wgmma_probe").unwrap();
    let s = ctx.default_stream();
    let swap = |o: Offsets| Offsets {
        leading: o.stride,
        stride: o.leading,
    };
    let run = |b: &[u8], ao: Offsets, bo: Offsets| -> Vec<f32> {
        let (a_dev, b_dev) = (s.clone_htod(&a).unwrap(), s.clone_htod(b).unwrap());
        let mut out = s.alloc_zeros::<f32>(128 * 32).unwrap();
        let offsets = [ao.leading, ao.stride, bo.leading, bo.stride].map(|v| v as u32);
        let cfg = LaunchConfig {
            grid_dim: (1, 1, 1),
            block_dim: (128, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut launch = s.launch_builder(&probe);
        launch.arg(&a_dev).arg(&b_dev);
        for o in &offsets {
            launch.arg(o);
        }
        launch.arg(&mut out);
        // SAFETY: the arguments are wgmma_probe's; the images have the
        // sizes it copies, every descriptor tried reads inside its shared
        // memory, and `out` holds its 128 × 32 accumulators.
        unsafe { launch.launch(cfg) }.unwrap();
        s.clone_dtoh(&out).unwrap()
    };
    let mut report = Vec::new();
    for q in 0..8 {
        let b = wgmma::b_image(&x, q);
        let want = wgmma::hankel_product(&t, &x, q);
        let got = run(&b, A_OFFSETS, B_OFFSETS);
        if wgmma::as_matrix(&got) == want {
            continue;
        }
        // Which reading, if any, the hardware has.
        for (name, ao, bo) in [
            ("A offsets exchanged", swap(A_OFFSETS), B_OFFSETS),
            ("B offsets exchanged", A_OFFSETS, swap(B_OFFSETS)),
            ("both exchanged", swap(A_OFFSETS), swap(B_OFFSETS)),
        ] {
            if wgmma::as_matrix(&run(&b, ao, bo)) == want {
                report.push(format!("shift {q}: matches with {name}"));
            }
        }
        let mut sorted = got.clone();
        let mut expected: Vec<f32> = want.concat();
        sorted.sort_by(f32::total_cmp);
        expected.sort_by(f32::total_cmp);
        report.push(format!(
            "shift {q}: wrong; the values {} the product's (accumulator layout {}); \
             first accumulators {:?}, model {:?}",
            if sorted == expected { "are" } else { "are not" },
            if sorted == expected {
                "differs"
            } else {
                "unknown"
            },
            &got[..8],
            &wgmma::model(&a, &b)[..8]
        ));
    }
    // A from registers, as mixed_sm90.cu loads its fragments.
    let registers = module.load_function("wgmma_probe_registers").unwrap();
    for q in 0..8 {
        let b = wgmma::b_image(&x, q);
        let b_dev = s.clone_htod(&b).unwrap();
        let a_dev = s.clone_htod(&a).unwrap();
        let mut out = s.alloc_zeros::<f32>(128 * 32).unwrap();
        let (bl, bs) = (B_OFFSETS.leading as u32, B_OFFSETS.stride as u32);
        let cfg = LaunchConfig {
            grid_dim: (1, 1, 1),
            block_dim: (128, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut launch = s.launch_builder(&registers);
        launch
            .arg(&a_dev)
            .arg(&b_dev)
            .arg(&bl)
            .arg(&bs)
            .arg(&mut out);
        // SAFETY: the arguments are wgmma_probe_registers'; the images have
        // the sizes it copies and `out` holds its 128 × 32 accumulators.
        unsafe { launch.launch(cfg) }.unwrap();
        let got = s.clone_dtoh(&out).unwrap();
        if wgmma::as_matrix(&got) != wgmma::hankel_product(&t, &x, q) {
            report.push(format!(
                "shift {q}: A from registers (mixed_sm90.cu's fragment loads) is wrong; \
                 first accumulators {:?}",
                &got[..8]
            ));
        }
    }
    assert!(report.is_empty(), "{}", report.join("\n"));
}
