//! The FFT backend against the direct f64 oracle.

use rand::Rng;
use tmatch::correlate::cpu::{CpuBackend, Method};
use tmatch::correlate::{
    naive, normalize_template, Backend, ChannelNorm, DayChannel, DayView, StackChannel,
    StackTemplate,
};

use crate::util::{noise, rng};

/// A template channel of a case: (channel, pad, weight, raw waveform).
type CaseChannel = (usize, usize, f32, Vec<f32>);

pub struct Case {
    data: Vec<Vec<f32>>,
    masks: Vec<Vec<bool>>,
    templates: Vec<Vec<CaseChannel>>,
}

/// Random channels (odd ones with a gap and a flat stretch) and templates.
pub fn case(seed: u64, n: usize, m: usize, n_chan: usize, n_tmpl: usize) -> Case {
    let mut r = rng(seed);
    let mut data = Vec::new();
    let mut masks = Vec::new();
    for c in 0..n_chan {
        let mut x: Vec<f32> = noise(&mut r, n).iter().map(|v| v - 100.0).collect();
        let mut mask = vec![true; n];
        if c % 2 == 1 && n > 4 * m {
            // A gap (zeroed, masked) and a flat stretch (constant data).
            let g = r.gen_range(0..n - 2 * m);
            for i in g..g + m / 2 + 3 {
                x[i] = 0.0;
                mask[i] = false;
            }
            let f = r.gen_range(0..n - 2 * m);
            for v in &mut x[f..f + m + 5] {
                *v = 3.0;
            }
        }
        data.push(x);
        masks.push(mask);
    }
    let templates = (0..n_tmpl)
        .map(|_| {
            (0..n_chan)
                .map(|c| {
                    let pad = if c == 0 {
                        0
                    } else {
                        r.gen_range(0..m.min(n - m) / 2 + 1)
                    };
                    let w = if c == 2 { 0.5 } else { 1.0 };
                    let wave: Vec<f32> = noise(&mut r, m).iter().map(|v| v - 100.0).collect();
                    (c, pad, w, wave)
                })
                .collect()
        })
        .collect();
    Case {
        data,
        masks,
        templates,
    }
}

/// `f(view, templates)` on the case's day and normalized templates.
pub fn with_view<R>(c: &Case, m: usize, f: impl FnOnce(&DayView, &[StackTemplate]) -> R) -> R {
    let norms: Vec<ChannelNorm> = c
        .data
        .iter()
        .zip(&c.masks)
        .map(|(x, k)| ChannelNorm::new(x, k, m))
        .collect();
    let view = DayView::new(
        c.data
            .iter()
            .zip(&norms)
            .map(|(x, norm)| DayChannel { data: x, norm })
            .collect(),
        c.data[0].len(),
        m,
    );
    let templates: Vec<StackTemplate> = c
        .templates
        .iter()
        .map(|t| StackTemplate {
            channels: t
                .iter()
                .map(|(ch, pad, w, wave)| StackChannel {
                    channel: *ch,
                    pad: *pad,
                    weight: *w,
                    waveform: normalize_template(wave).unwrap().into(),
                })
                .collect(),
        })
        .collect();
    f(&view, &templates)
}

/// The stacked traces a backend makes of the case.
pub fn stacks(c: &Case, m: usize, backend: &dyn Backend) -> Vec<Vec<f32>> {
    with_view(c, m, |view, templates| {
        // Stacks reused from an earlier, longer day: every lag must be
        // overwritten, and the NaN left anywhere fails the comparison.
        let mut stacks = vec![vec![f32::NAN; view.len + 13]; templates.len()];
        backend.stack(view, templates, &mut stacks).unwrap();
        stacks
    })
}

/// The direct f64 stacks of the case.
pub fn oracle(c: &Case) -> Vec<Vec<f64>> {
    let data: Vec<&[f32]> = c.data.iter().map(|x| x.as_slice()).collect();
    let masks: Vec<&[bool]> = c.masks.iter().map(|x| x.as_slice()).collect();
    c.templates
        .iter()
        .map(|t| {
            let chans: Vec<naive::Channel> = t
                .iter()
                .map(|(ch, pad, w, wave)| naive::Channel {
                    waveform: wave,
                    channel: *ch,
                    pad: *pad,
                    weight: *w as f64,
                })
                .collect();
            naive::stack(&chans, &data, &masks)
        })
        .collect()
}

#[test]
fn fft_stack_matches_direct_f64_ncc() {
    for (seed, (m, n)) in (1..).zip([(16, 40), (16, 3000), (50, 1234), (200, 5000), (137, 20011)]) {
        let c = case(seed, n, m, 4, 3);
        let want = oracle(&c);
        // The planner's choice, the smallest block length possible (one lag
        // per block), an awkward non-power-of-two one, and direct dot
        // products.
        for backend in [
            CpuBackend::new(),
            CpuBackend::with_method(Method::Fft(m)),
            CpuBackend::with_method(Method::Fft(3 * m + 7)),
            CpuBackend::with_method(Method::Direct),
        ] {
            let got = stacks(&c, m, &backend);
            for (t, (g, w)) in got.iter().zip(&want).enumerate() {
                assert_eq!(g.len(), w.len());
                let (i, err) = g
                    .iter()
                    .zip(w)
                    .map(|(a, b)| (*a as f64 - b).abs())
                    .enumerate()
                    .fold(
                        (0, 0.0),
                        |acc, (i, e)| {
                            if e.is_nan() || e > acc.1 {
                                (i, e)
                            } else {
                                acc
                            }
                        },
                    );
                assert!(
                    err < 1e-4,
                    "M={m} N={n} {backend:?} template {t}: lag {i} off by {err}"
                );
            }
        }
    }
}

#[test]
fn a_planted_template_correlates_exactly() {
    let (n, m) = (6000, 120);
    let mut r = rng(42);
    let data: Vec<Vec<f32>> = (0..3)
        .map(|_| noise(&mut r, n).iter().map(|v| v - 100.0).collect())
        .collect();
    let masks = vec![vec![true; n]; 3];
    let (k0, pads) = (2345, [0usize, 17, 60]);
    let template: Vec<(usize, usize, f32, Vec<f32>)> = (0..3)
        .map(|c| {
            (
                c,
                pads[c],
                1.0,
                data[c][k0 + pads[c]..k0 + pads[c] + m].to_vec(),
            )
        })
        .collect();
    let c = Case {
        data,
        masks,
        templates: vec![template],
    };
    let stack = &stacks(&c, m, &CpuBackend::new())[0];
    assert!(
        (stack[k0] - 3.0).abs() < 1e-5,
        "stack at the plant: {}",
        stack[k0]
    );
    let (best, _) = stack
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .unwrap();
    assert_eq!(best, k0);
}
