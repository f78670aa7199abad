//! Correlation throughput of the backends on day-sized work:
//! `cargo bench --bench throughput -- [--device cpu|cuda] [--hours H]
//! [--templates N] [--scale N]`.
//!
//! For M = 200, 400 and 800, one day (24 h) at 100 Hz on 30 channels, and
//! templates of all 30 channels: the whole of [`Backend::peaks`] (stacks,
//! median, peaks) is timed after a warm-up that loads the kernels and
//! copies the day in. Reported in template-channel-samples per second (one
//! template channel correlated at one lag), in fp32 TFLOP/s (2·M FLOP per
//! template-channel-sample, what a direct correlation does) and, on a GPU,
//! as a fraction of its fp32 peak; on a GPU with tensor cores also with
//! each mixed kernel it runs (wmma; on sm_90 wgmma too), as a fraction of
//! its dense fp16 tensor peak. Then
//! the scale check: `--scale` templates (5,000 by default on a GPU) over
//! one hour at M = 400.
//! Without `--device` every backend present is measured, the CPU with
//! fewer templates (its rate does not depend on their number).

use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use tmatch::correlate::cpu::CpuBackend;
use tmatch::correlate::cuda::CudaBackend;
use tmatch::correlate::{
    cuda_devices, normalize_template, Backend, ChannelNorm, DayChannel, DayView, MixedKernel,
    PeakSpec, StackChannel, StackTemplate,
};
use tmatch::detect::ThresholdType;

const CHANNELS: usize = 30;
const RATE: f64 = 100.0;

struct Args {
    device: Option<String>,
    hours: f64,
    templates: Option<usize>,
    scale: Option<usize>,
}

fn args() -> Args {
    let mut a = Args {
        device: None,
        hours: 24.0,
        templates: None,
        scale: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--device" => a.device = Some(v()),
            "--hours" => a.hours = v().parse().expect("--hours H"),
            "--templates" => a.templates = Some(v().parse().expect("--templates N")),
            "--scale" => a.scale = Some(v().parse().expect("--scale N")),
            // cargo bench passes --bench.
            _ => {}
        }
    }
    a
}

/// Band-limited noise on an offset, as seismic data after a high-pass are not.
fn data(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    let white: Vec<f32> = (0..n + 4).map(|_| rng.gen_range(-1.0..1.0)).collect();
    (0..n)
        .map(|i| white[i..i + 4].iter().sum::<f32>())
        .collect()
}

fn templates(rng: &mut ChaCha8Rng, n: usize, m: usize) -> Vec<StackTemplate> {
    (0..n)
        .map(|_| StackTemplate {
            channels: (0..CHANNELS)
                .map(|ch| StackChannel {
                    channel: ch,
                    pad: rng.gen_range(0..500),
                    weight: 1.0,
                    waveform: normalize_template(&data(rng, m)).unwrap().into(),
                })
                .collect(),
        })
        .collect()
}

/// Seconds for `backend.peaks` on `n_tmpl` templates of length `m` over
/// `hours` of data, after a warm-up; and the template-channel-samples done.
fn measure(backend: &dyn Backend, hours: f64, m: usize, n_tmpl: usize) -> (f64, f64) {
    let mut rng = ChaCha8Rng::seed_from_u64(m as u64);
    let n = (hours * 3600.0 * RATE) as usize;
    let x: Vec<Vec<f32>> = (0..CHANNELS).map(|_| data(&mut rng, n)).collect();
    let mask = vec![true; n];
    let norms: Vec<ChannelNorm> = x
        .par_iter()
        .map(|x| {
            if backend.needs_window_means() {
                ChannelNorm::with_mean(x, &mask, m)
            } else {
                ChannelNorm::new(x, &mask, m)
            }
        })
        .collect();
    let view = DayView::new(
        x.iter()
            .zip(&norms)
            .map(|(x, norm)| DayChannel { data: x, norm })
            .collect(),
        n,
        m,
    );
    let spec = PeakSpec {
        threshold_type: ThresholdType::Mad,
        threshold: 8.0,
        trig_int: 600,
        day: 0..view.n_lags(),
        min_channels: 1,
        host_memory: 2 << 30,
    };
    let t = templates(&mut rng, n_tmpl, m);
    backend.peaks(&view, &t[..1], &spec).unwrap();
    let t0 = Instant::now();
    backend.peaks(&view, &t, &spec).unwrap();
    let secs = t0.elapsed().as_secs_f64();
    (secs, (view.n_lags() * CHANNELS * n_tmpl) as f64)
}

/// A peak to compare with: its FLOP/s and what it is.
type Peak = Option<(f64, &'static str)>;

fn report(name: &str, what: &str, m: usize, secs: f64, work: f64, peak: Peak) {
    let flops = 2.0 * m as f64 * work / secs;
    let of_peak = peak.map_or(String::new(), |(p, kind)| {
        format!("  {:5.1} % of {kind} peak", 100.0 * flops / p)
    });
    println!(
        "{name:<28} {what:<22} M={m:<4} {secs:8.2} s  {:8.3} G tcs/s  {:7.2} TFLOP/s{of_peak}",
        work / secs / 1e9,
        flops / 1e12
    );
}

fn main() {
    let a = args();
    let want = |d: &str| a.device.as_deref().map_or(true, |w| w == d);
    // Each backend with its fp32 peak and its numbers of templates for the
    // day and for the scale check.
    type Measured = (Box<dyn Backend>, Peak, usize, usize);
    let mut backends: Vec<Measured> = Vec::new();
    if want("cpu") {
        backends.push((Box::new(CpuBackend::new()), None, 8, 50));
    }
    if want("cuda") {
        match cuda_devices() {
            Ok(n) if n > 0 => {
                let b = CudaBackend::new(0).expect("open CUDA device 0");
                let peak = b.fp32_peak();
                if let Some(p) = peak {
                    println!("{}: fp32 peak {:.1} TFLOP/s", b.name(), p / 1e12);
                }
                let tensor = b.tensor_peak();
                if let Some(p) = tensor {
                    println!(
                        "{}: dense fp16 tensor peak {:.1} TFLOP/s",
                        b.name(),
                        p / 1e12
                    );
                }
                backends.push((Box::new(b), peak.map(|p| (p, "fp32")), 100, 5000));
                // Both mixed kernels where the GPU runs both (sm_90: wgmma,
                // which --precision mixed chooses there, and wmma).
                for kernel in [MixedKernel::Wgmma, MixedKernel::Wmma] {
                    match CudaBackend::new(0).and_then(|b| b.with_mixed_kernel(kernel)) {
                        Ok(b) => backends.push((
                            Box::new(b),
                            tensor.map(|p| (p, "fp16 tensor")),
                            100,
                            5000,
                        )),
                        Err(e) => println!("no {kernel:?} kernel measured ({e})"),
                    }
                }
            }
            r => println!("no CUDA device measured ({r:?})"),
        }
    }
    for (b, peak, n_tmpl, n_scale) in &backends {
        let n_tmpl = a.templates.unwrap_or(*n_tmpl);
        let name = b.name();
        for m in [200, 400, 800] {
            let (secs, work) = measure(b.as_ref(), a.hours, m, n_tmpl);
            let what = format!("{n_tmpl} x {CHANNELS} ch, {} h", a.hours);
            report(&name, &what, m, secs, work, *peak);
        }
        let n_scale = a.scale.unwrap_or(*n_scale);
        let (secs, work) = measure(b.as_ref(), 1.0, 400, n_scale);
        report(
            &name,
            &format!("{n_scale} x {CHANNELS} ch, 1 h"),
            400,
            secs,
            work,
            *peak,
        );
    }
}
