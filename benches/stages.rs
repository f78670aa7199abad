//! Throughput of the pipeline stages on synthetic data:
//! `cargo bench --bench stages`. Correlation is reported in
//! template-channel-samples per second (one template channel correlated
//! with one data sample), next to its floor: the multiply and inverse real
//! FFT of one overlap-save block, per valid lag, on one thread and on every
//! thread at once — with realfft after a product loop (`mul_irfft`), and
//! fused as the CPU backend does it (`fused_all`); and an alternative to
//! the latter, two templates in one complex FFT (`paired_all`).

use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion, Throughput,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use realfft::num_complex::Complex;
use realfft::RealFftPlanner;
use rustfft::FftPlanner;
use tmatch::correlate::cpu::inverse::ProductInverse;
use tmatch::correlate::cpu::{fft_len, CpuBackend, Method};
use tmatch::correlate::{
    normalize_template, Backend, ChannelNorm, DayChannel, DayView, StackChannel, StackTemplate,
};

fn random(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect()
}

/// The block lengths compared: the planner's ([`fft_len`]: the power of
/// two at or above 8 × M), half and twice that.
fn block_lengths(m: usize) -> [usize; 3] {
    [fft_len(m) / 2, fft_len(m), 2 * fft_len(m)]
}

/// One hour at 100 Hz on 8 channels, 32 templates of 8 channels, all
/// threads. The data's forward transforms are shared by the templates of a
/// batch: with 32 they are about 3 % of the work (real batches hold
/// hundreds).
fn correlate(c: &mut Criterion) {
    let mut g = c.benchmark_group("correlate");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    for m in [200, 400, 800] {
        let methods = block_lengths(m).map(|l| (format!("fft/M{m}_L{l}"), Method::Fft(l)));
        correlate_with(&mut g, m, 32, &methods);
    }
    g.finish();
}

/// The crossover of the two methods: short templates (8 of them, 8
/// channels, one hour) by the planner's FFT and directly.
fn method(c: &mut Criterion) {
    let mut g = c.benchmark_group("method");
    g.sample_size(10).measurement_time(Duration::from_secs(3));
    for m in [8, 16, 24, 32, 48, 64, 96] {
        let methods = [
            (format!("fft/M{m}"), Method::Fft(fft_len(m))),
            (format!("direct/M{m}"), Method::Direct),
        ];
        correlate_with(&mut g, m, 8, &methods);
    }
    g.finish();
}

/// One hour at 100 Hz on 8 channels and `n_tmpl` templates of 8 channels
/// of `m` samples, correlated by each of `methods` (named).
fn correlate_with(
    g: &mut BenchmarkGroup<WallTime>,
    m: usize,
    n_tmpl: usize,
    methods: &[(String, Method)],
) {
    let (n, n_chan) = (360_000, 8);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let data: Vec<Vec<f32>> = (0..n_chan).map(|_| random(&mut rng, n)).collect();
    let mask = vec![true; n];
    let norms: Vec<ChannelNorm> = data.iter().map(|x| ChannelNorm::new(x, &mask, m)).collect();
    let view = DayView::new(
        data.iter()
            .zip(&norms)
            .map(|(x, norm)| DayChannel { data: x, norm })
            .collect(),
        n,
        m,
    );
    let templates: Vec<StackTemplate> = (0..n_tmpl)
        .map(|_| StackTemplate {
            channels: (0..n_chan)
                .map(|ch| StackChannel {
                    channel: ch,
                    pad: ch * 10,
                    weight: 1.0,
                    waveform: normalize_template(&random(&mut rng, m)).unwrap().into(),
                })
                .collect(),
        })
        .collect();
    let mut stacks = vec![Vec::new(); n_tmpl];
    g.throughput(Throughput::Elements(
        (n_tmpl * n_chan * view.n_lags()) as u64,
    ));
    for (name, method) in methods {
        let backend = CpuBackend::with_method(*method);
        g.bench_function(name.as_str(), |b| {
            b.iter(|| backend.stack(&view, &templates, &mut stacks).unwrap())
        });
    }
}

/// The floor: multiply by a template spectrum and inverse real FFT of one
/// block; throughput in valid lags per second. `mul_irfft` on one thread;
/// `mul_irfft_all` the same on every thread at once (each its own blocks),
/// which is what the machine's cores can do together (cores that share a
/// physical core or memory do less than their number times one);
/// `fused_all` the product folded into the inverse
/// ([`ProductInverse`]), on every thread, as the CPU backend runs it.
fn floor(c: &mut Criterion) {
    use rayon::prelude::*;
    let mut g = c.benchmark_group("floor");
    for m in [200, 400, 800] {
        for l in block_lengths(m) {
            let threads = rayon::current_num_threads();
            // Enough blocks per task that waking the threads and their
            // scratch buffers are a small part: at 64 they were a third.
            let per_thread = 512;
            // The spectrum both floors multiply by itself.
            let x: Vec<Complex<f32>> = (0..l / 2 + 1)
                .map(|i| Complex::new((i as f32).sin(), (i as f32).cos()))
                .collect();
            g.throughput(Throughput::Elements(
                ((l - m + 1) * per_thread * threads) as u64,
            ));
            g.bench_function(
                BenchmarkId::new("mul_irfft_all", format!("M{m}_L{l}")),
                |b| {
                    let mut planner = RealFftPlanner::<f32>::new();
                    let c2r = planner.plan_fft_inverse(l);
                    b.iter(|| {
                        (0..threads).into_par_iter().for_each(|_| {
                            let mut prod = c2r.make_input_vec();
                            let mut out = c2r.make_output_vec();
                            let mut scratch = c2r.make_scratch_vec();
                            for _ in 0..per_thread {
                                for ((p, a), b) in prod.iter_mut().zip(&x).zip(&x) {
                                    *p = a * b;
                                }
                                prod[0].im = 0.0;
                                prod[l / 2].im = 0.0;
                                c2r.process_with_scratch(&mut prod, &mut out, &mut scratch)
                                    .unwrap();
                            }
                        })
                    })
                },
            );
            g.bench_function(BenchmarkId::new("fused_all", format!("M{m}_L{l}")), |b| {
                let inverse = ProductInverse::new(l);
                b.iter(|| {
                    (0..threads).into_par_iter().for_each(|_| {
                        let mut w = inverse.scratch();
                        for _ in 0..per_thread {
                            std::hint::black_box(inverse.process(&x, &x, &mut w));
                        }
                    })
                })
            });
            // A candidate for a faster floor, measured (benches/RESULTS.md):
            // two templates in one complex inverse FFT of length L. The
            // data's full spectrum (its half spectrum, mirrored) times the
            // spectrum of t₁ + i·t₂ is the spectrum of cc₁ + i·cc₂; no
            // real-FFT pre-processing, but a transform twice as long.
            g.bench_function(BenchmarkId::new("paired_all", format!("M{m}_L{l}")), |b| {
                let h = l / 2;
                let fft = FftPlanner::<f32>::new().plan_fft_inverse(l);
                let u: Vec<Complex<f32>> = (0..l)
                    .map(|i| Complex::new((i as f32).cos(), (i as f32 * 0.7).sin()))
                    .collect();
                b.iter(|| {
                    (0..threads).into_par_iter().for_each(|_| {
                        let mut z = vec![Complex::<f32>::default(); l];
                        let mut out = z.clone();
                        let mut scratch = vec![z[0]; fft.get_outofplace_scratch_len()];
                        for _ in 0..per_thread / 2 {
                            let (lower, upper) = z.split_at_mut(h + 1);
                            for ((z, x), u) in lower.iter_mut().zip(&x).zip(&u) {
                                *z = x * u;
                            }
                            let mirrored = x[1..h].iter().rev();
                            for ((z, x), u) in upper.iter_mut().zip(mirrored).zip(&u[h + 1..]) {
                                *z = x.conj() * u;
                            }
                            fft.process_outofplace_with_scratch(&mut z, &mut out, &mut scratch);
                            std::hint::black_box(&out);
                        }
                    })
                })
            });
            let mut planner = RealFftPlanner::<f32>::new();
            let c2r = planner.plan_fft_inverse(l);
            let mut rng = ChaCha8Rng::seed_from_u64(2);
            let x: Vec<Complex<f32>> = (0..l / 2 + 1)
                .map(|_| Complex::new(rng.gen(), rng.gen()))
                .collect();
            let t = x.clone();
            let mut prod = c2r.make_input_vec();
            let mut out = c2r.make_output_vec();
            let mut scratch = c2r.make_scratch_vec();
            g.throughput(Throughput::Elements((l - m + 1) as u64));
            g.bench_function(BenchmarkId::new("mul_irfft", format!("M{m}_L{l}")), |b| {
                b.iter(|| {
                    for ((p, a), b) in prod.iter_mut().zip(&x).zip(&t) {
                        *p = a * b;
                    }
                    prod[0].im = 0.0;
                    prod[l / 2].im = 0.0;
                    c2r.process_with_scratch(&mut prod, &mut out, &mut scratch)
                        .unwrap();
                })
            });
        }
    }
    g.finish();
}

/// Moving normalization, median of |stack| and peak finding over one day at
/// 100 Hz (per channel-day or template-day).
fn per_day(c: &mut Criterion) {
    let n = 8_640_000;
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let x = random(&mut rng, n);
    let mask = vec![true; n];
    let mut g = c.benchmark_group("per_day");
    g.sample_size(10).throughput(Throughput::Elements(n as u64));
    g.bench_function("norm_M400", |b| b.iter(|| ChannelNorm::new(&x, &mask, 400)));
    g.bench_function("median_abs", |b| b.iter(|| tmatch::detect::median_abs(&x)));
    g.bench_function("find_peaks", |b| {
        b.iter(|| tmatch::detect::find_peaks(&x, 0.999, 600, |_| true))
    });
    g.finish();
}

/// Preprocessing of one hour of one channel at 100 Hz: detrend and 2–8 Hz
/// zero-phase Butterworth, and the same with resampling to 50 Hz.
fn preprocess(c: &mut Criterion) {
    use tmatch::archive::RawTrace;
    use tmatch::preprocess::{process, Recipe};
    let n = 360_000;
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let raw = RawTrace {
        id: "XX.STA..HHZ".into(),
        start: 0,
        rate: 100.0,
        data: (0..n).map(|_| rng.gen_range(-1000.0..1000.0)).collect(),
        mask: vec![true; n],
        problems: Vec::new(),
    };
    let mut g = c.benchmark_group("preprocess");
    g.sample_size(10).throughput(Throughput::Elements(n as u64));
    let filter = Recipe {
        lowcut: Some(2.0),
        highcut: Some(8.0),
        order: 4,
        resample: None,
    };
    g.bench_function("bandpass", |b| b.iter(|| process(&raw, &filter, 0, n)));
    let resample = Recipe {
        resample: Some(50.0),
        ..filter.clone()
    };
    g.bench_function("bandpass_resample_50Hz", |b| {
        b.iter(|| process(&raw, &resample, 0, n / 2))
    });
    g.finish();
}

/// miniSEED decoding (Steim2 through libmseed), samples per second.
fn mseed_decode(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.mseed");
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let n = 1_000_000;
    let samples: Vec<i32> = (0..n).map(|_| rng.gen_range(-2000..2000)).collect();
    tmatch::archive::mseed::write_steim2(&path, "XX.STA..HHZ", 0, 100.0, &samples).unwrap();
    let mut g = c.benchmark_group("mseed");
    g.sample_size(10).throughput(Throughput::Elements(n as u64));
    g.bench_function("read_steim2", |b| {
        b.iter(|| tmatch::archive::mseed::read_records(&path).unwrap())
    });
    g.finish();
}

criterion_group!(
    benches,
    correlate,
    method,
    floor,
    per_day,
    preprocess,
    mseed_decode
);
criterion_main!(benches);
