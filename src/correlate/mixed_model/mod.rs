//! A CPU model of the mixed-precision kernel ([`super::mixed`]), for tests
//! where there is no GPU: block by block over the grid (tiles of
//! [`TILE`] stack lags × groups), each group's channel entries in turn,
//! with the kernel's staging — the per-tile offset (the fp32 kernel's
//! probe median), a power-of-two scale, [`SHIFTS`] shifted fp16 copies of
//! the data and the fp16 templates, [`CHUNK`] samples at a time — its
//! fragments `(q, r)` holding lags `q + 16r`, fp32 accumulation of each
//! 16-deep product, and its epilogue (moveout shift, 1/σ, clip, weight,
//! stack). fp16 rounding is the `half` crate's (round to nearest even,
//! subnormals kept). The sum of the 16 products of one fragment step is
//! formed exactly and rounded to fp32 once: the hardware's order of adds
//! is not specified, and the error bound allows any order.
//!
//! The tests check the model, with fp16 rounding and without, against the
//! direct f64 oracle ([`super::naive`]) and the error bound
//! ([`super::mixed::channel_error_coefficient`]) lag by lag.

mod sm90;

use half::f16;

use super::cuda::recompute::data_offset;
use super::mixed::{scale_for, Group, CHUNK, DATA_LAGS, FRAG, SHIFTS, TILE};
use super::StackTemplate;

/// Whether inputs are rounded to fp16 (the kernel) or kept in f32 (to
/// check the index arithmetic alone).
#[derive(Clone, Copy, PartialEq)]
enum Rounding {
    Fp16,
    None,
}

/// The kernel's inputs, device buffers as slices.
struct Args<'a> {
    /// Channels × n samples (gaps hold zeros).
    x: &'a [f32],
    /// Channels × n_lags moving 1/σ (0 where invalid).
    inv: &'a [f32],
    /// Channels × n_lags moving window mean (for the error bound).
    mean: &'a [f32],
    n: usize,
    n_lags: usize,
    m: usize,
    templates: &'a [StackTemplate],
    groups: &'a [Group],
    zero_tail: bool,
}

/// Stacks of every template, and per template and lag the bound on their
/// error.
struct Output {
    stacks: Vec<Vec<f32>>,
    bounds: Vec<Vec<f32>>,
}

fn round(v: f32, r: Rounding) -> f32 {
    match r {
        Rounding::Fp16 => f16::from_f32(v).to_f32(),
        Rounding::None => v,
    }
}

fn correlate_stack_mixed(a: &Args, rounding: Rounding) -> Output {
    let nt = a.templates.len();
    let mut out = Output {
        stacks: vec![vec![f32::NAN; a.n_lags]; nt],
        bounds: vec![vec![0.0; a.n_lags]; nt],
    };
    let coefficient = super::mixed::channel_error_coefficient(a.m) as f32;
    for g in a.groups {
        for bx in 0..a.n_lags.div_ceil(TILE) {
            block(a, g, bx, rounding, coefficient, &mut out);
        }
    }
    out
}

/// One block: stack lags `bx · TILE ..` of the members of `g`.
fn block(a: &Args, g: &Group, bx: usize, rounding: Rounding, coefficient: f32, out: &mut Output) {
    let (n, m, n_lags) = (a.n, a.m, a.n_lags);
    let k0 = bx * TILE;
    let members = g.members.len();
    let mut sum = vec![[0f32; TILE]; members];
    let mut bound = vec![[0f32; TILE]; members];
    for e in &g.channels {
        let ch = e.channel;
        let xc = &a.x[ch * n..(ch + 1) * n];
        let j0 = k0 + e.min_pad;
        let end = (j0 + DATA_LAGS + m - 1).min(n);
        let o = data_offset(xc, j0, end);
        let data_max = (j0.min(end)..end)
            .map(|i| (xc[i] - o).abs())
            .fold(0f32, f32::max);
        let sd = scale_for(data_max);
        // The members' windows here, normalized, scaled and rounded.
        let waves: Vec<Option<&[f32]>> = e
            .slots
            .iter()
            .enumerate()
            .map(|(s, w)| w.map(|(ci, _, _)| &*a.templates[g.members[s]].channels[ci].waveform))
            .collect();
        let wave_max = waves
            .iter()
            .flatten()
            .flat_map(|w| w.iter())
            .map(|v| v.abs())
            .fold(0f32, f32::max);
        let st = scale_for(wave_max);
        let c = products(xc, j0, &waves, m, o, sd, st, rounding);
        // Epilogue: each member's lags, shifted by its moveout.
        for (s, slot) in e.slots.iter().enumerate() {
            let Some((_, pad, w)) = *slot else { continue };
            for k in 0..TILE {
                let (kk, jj) = (k0 + k, k0 + k + pad);
                if kk >= n_lags || jj >= n_lags {
                    break;
                }
                let inv = a.inv[ch * n_lags + jj];
                let v = c[s][k + pad - e.min_pad] / (sd * st) * inv;
                // fmaxf, fminf: not clamp, which differs on NaN.
                #[allow(clippy::manual_clamp)]
                let cc = v.max(-1.0).min(1.0);
                sum[s][k] = w.mul_add(cc, sum[s][k]);
                if inv > 0.0 {
                    let r = (a.mean[ch * n_lags + jj] - o) * inv;
                    bound[s][k] += w.abs() * coefficient * (1.0 + r * r).sqrt();
                }
            }
        }
    }
    for (s, &t) in g.members.iter().enumerate() {
        let max_pad = a.templates[t].max_pad();
        for k in 0..TILE.min(n_lags.saturating_sub(k0)) {
            let kk = k0 + k;
            let zero = a.zero_tail && kk + max_pad >= n_lags;
            out.stacks[t][kk] = if zero { 0.0 } else { sum[s][k] };
            out.bounds[t][kk] = bound[s][k];
        }
    }
}

/// The block's products for one channel entry: `c[slot][j]` for data lags
/// `j0 + j`, `j < DATA_LAGS`, scaled by `sd · st`, from shifted copies of
/// the data staged chunk by chunk and fragments of 16 lags 16 apart.
#[allow(clippy::too_many_arguments)]
fn products(
    xc: &[f32],
    j0: usize,
    waves: &[Option<&[f32]>],
    m: usize,
    o: f32,
    sd: f32,
    st: f32,
    rounding: Rounding,
) -> Vec<Vec<f32>> {
    let n = xc.len();
    let slots = waves.len();
    // Samples of each shifted copy a chunk's fragments read.
    let copy = DATA_LAGS - FRAG + CHUNK;
    let rows = DATA_LAGS / SHIFTS;
    let mut c = vec![vec![0f32; DATA_LAGS]; slots];
    for i0 in (0..m).step_by(CHUNK) {
        // xs[q][s] = x[j0 + i0 + q + s] − o, scaled and rounded.
        let xs: Vec<Vec<f32>> = (0..SHIFTS)
            .map(|q| {
                (0..copy)
                    .map(|s| {
                        let g = j0 + i0 + q + s;
                        if g < n {
                            round((xc[g] - o) * sd, rounding)
                        } else {
                            0.0
                        }
                    })
                    .collect()
            })
            .collect();
        // ts[slot][i]: the chunk's template samples, zero past M or for a
        // slot without a window here.
        let ts: Vec<Vec<f32>> = waves
            .iter()
            .map(|w| {
                (0..CHUNK)
                    .map(|i| match w {
                        Some(w) if i0 + i < m => round(w[i0 + i] * st, rounding),
                        _ => 0.0,
                    })
                    .collect()
            })
            .collect();
        for (q, xq) in xs.iter().enumerate() {
            for r in 0..rows {
                // Fragment row r of shift q: lag q + 16 r, row-major with
                // leading dimension 16 in xs[q].
                let j = q + SHIFTS * r;
                for (s, t) in ts.iter().enumerate() {
                    for kk in 0..CHUNK / FRAG {
                        let step: f64 = (0..FRAG)
                            .map(|i| {
                                let a = xq[FRAG * r + FRAG * kk + i];
                                f64::from(a) * f64::from(t[FRAG * kk + i])
                            })
                            .sum();
                        c[s][j] += step as f32;
                    }
                }
            }
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::correlate::cuda::recompute::stack_at;
    use crate::correlate::mixed::{group_templates, Layout, MixedKernel};
    use crate::correlate::test_support::{day_view, noise, norms, stack_template, TemplateChannel};
    use crate::correlate::{naive, normalize_template, screen, ChannelNorm};
    use crate::detect::{decluster, find_peaks, median_abs_with};

    /// A day of `channels` channels of noise at `scale` on an offset of
    /// `offset` σ, with a gap and a flat stretch on odd channels, and
    /// `templates` templates: windows cut from the data (so that some
    /// correlations are high) on 3 channels each with moveouts up to
    /// `max_pad`, the last with two windows on channel 0.
    struct Case {
        data: Vec<Vec<f32>>,
        masks: Vec<Vec<bool>>,
        m: usize,
        raw: Vec<Vec<TemplateChannel>>,
    }

    fn case(
        seed: u64,
        n: usize,
        m: usize,
        scale: f32,
        offset: f32,
        count: usize,
        max_pad: usize,
    ) -> Case {
        let mut r = ChaCha8Rng::seed_from_u64(seed);
        let channels = 4;
        let mut data = Vec::new();
        let mut masks = Vec::new();
        for c in 0..channels {
            let mut x: Vec<f32> = noise(&mut r, n)
                .iter()
                .map(|v| (v + offset) * scale)
                .collect();
            let mut mask = vec![true; n];
            if c % 2 == 1 {
                let g = r.gen_range(0..n - m);
                for i in g..(g + m / 2 + 3).min(n) {
                    x[i] = 0.0;
                    mask[i] = false;
                }
                let f = r.gen_range(0..n - 2 * m);
                x[f..f + m + 5].fill((offset + 3.0) * scale);
            }
            data.push(x);
            masks.push(mask);
        }
        let mut raw = Vec::new();
        for t in 0..count {
            let at = r.gen_range(0..n - m - max_pad);
            let mut chans = Vec::new();
            for c in 0..3 {
                let ch = (t + c) % channels;
                let pad = if c == 0 { 0 } else { r.gen_range(0..=max_pad) };
                let mut w: Vec<f32> = data[ch][at + pad..at + pad + m].to_vec();
                if normalize_template(&w).is_none() {
                    // Cut from a gap or a flat stretch.
                    w = noise(&mut r, m);
                }
                chans.push((ch, pad, if c == 1 { 0.5 } else { 1.0 }, w));
            }
            if t + 1 == count {
                let w = noise(&mut r, m);
                chans.push((chans[0].0, max_pad / 2 + 1, 0.75, w));
            }
            raw.push(chans);
        }
        Case {
            data,
            masks,
            m,
            raw,
        }
    }

    impl Case {
        fn n(&self) -> usize {
            self.data[0].len()
        }

        fn n_lags(&self) -> usize {
            self.n() + 1 - self.m
        }

        fn templates(&self) -> Vec<StackTemplate> {
            self.raw.iter().map(|t| stack_template(t)).collect()
        }

        /// Moving window mean of each channel, as f32 (the bound's input).
        fn means(&self) -> Vec<f32> {
            let m = self.m;
            self.data
                .iter()
                .flat_map(|x| {
                    (0..self.n_lags()).map(move |j| {
                        (x[j..j + m].iter().map(|&v| f64::from(v)).sum::<f64>() / m as f64) as f32
                    })
                })
                .collect()
        }

        /// The stacks and bounds of `kernel`'s model.
        fn model(&self, rounding: Rounding, kernel: MixedKernel) -> Output {
            let templates = self.templates();
            let x: Vec<f32> = self.data.concat();
            let inv: Vec<f32> = self
                .data
                .iter()
                .zip(&self.masks)
                .flat_map(|(x, k)| ChannelNorm::new(x, k, self.m).inv_std)
                .collect();
            let mean = self.means();
            let out = match kernel {
                MixedKernel::Wmma => {
                    let groups = group_templates(&templates, kernel.shape());
                    let args = Args {
                        x: &x,
                        inv: &inv,
                        mean: &mean,
                        n: self.n(),
                        n_lags: self.n_lags(),
                        m: self.m,
                        templates: &templates,
                        groups: &groups,
                        zero_tail: true,
                    };
                    correlate_stack_mixed(&args, rounding)
                }
                MixedKernel::Wgmma => {
                    let round = rounding == Rounding::Fp16;
                    let layout = Layout::with_rounding(&templates, self.m, kernel, round);
                    let day = sm90::Day {
                        x: &x,
                        inv: &inv,
                        mean: &mean,
                        n: self.n(),
                        n_lags: self.n_lags(),
                    };
                    let coefficient = crate::correlate::mixed::channel_error_coefficient(self.m);
                    sm90::correlate_stack_wgmma(&day, &layout, rounding, coefficient as f32)
                }
            };
            for s in &out.stacks {
                assert!(s.iter().all(|v| !v.is_nan()), "a lag was not written");
            }
            out
        }

        /// The direct f64 stacks, the lags some channel cannot reach 0.
        fn oracle(&self) -> Vec<Vec<f64>> {
            let data: Vec<&[f32]> = self.data.iter().map(|x| x.as_slice()).collect();
            let masks: Vec<&[bool]> = self.masks.iter().map(|x| x.as_slice()).collect();
            self.raw
                .iter()
                .map(|t| {
                    let chans: Vec<naive::Channel> = t
                        .iter()
                        .map(|(c, p, w, raw)| naive::Channel {
                            waveform: raw,
                            channel: *c,
                            pad: *p,
                            weight: f64::from(*w),
                        })
                        .collect();
                    let mut s = naive::stack(&chans, &data, &masks);
                    let max_pad = t.iter().map(|c| c.1).max().unwrap();
                    let keep = s.len().saturating_sub(max_pad);
                    s[keep..].fill(0.0);
                    s
                })
                .collect()
        }
    }

    /// Largest |model − oracle|, and largest excess over the bound (+ the
    /// slack for what both paths share: f32 data and 1/σ).
    fn errors(case: &Case, rounding: Rounding, kernel: MixedKernel) -> (f64, f64) {
        let out = case.model(rounding, kernel);
        let want = case.oracle();
        let (mut max_err, mut excess) = (0f64, f64::NEG_INFINITY);
        for (t, w) in want.iter().enumerate() {
            for (k, &w) in w.iter().enumerate() {
                let err = (f64::from(out.stacks[t][k]) - w).abs();
                max_err = max_err.max(err);
                excess = excess.max(err - f64::from(out.bounds[t][k]) - 1e-5);
            }
        }
        (max_err, excess)
    }

    /// Without fp16 rounding the model is the f64 stack: every index of the
    /// staging, fragments and shifts is right, over template lengths below,
    /// at and above a chunk, partial last tiles, moveouts up to the spread,
    /// gaps, two windows on one channel and more than one group; for both
    /// kernels (the sm_90 one on the host's very layout).
    #[test]
    fn the_model_without_rounding_is_the_oracle() {
        for (seed, n, m, count, max_pad) in [
            (1, 3000, 40, 5, 30),
            (2, 2500, 128, 18, 256),
            (3, 4100, 200, 20, 250),
            (4, 700, 300, 3, 100),
            (10, 1400, 24, 70, 60),
        ] {
            let c = case(seed, n, m, 1.0, 0.0, count, max_pad);
            for kernel in [MixedKernel::Wmma, MixedKernel::Wgmma] {
                if count > 64 {
                    let groups = Layout::new(&c.templates(), m, kernel).groups;
                    assert!(groups > 1, "seed {seed} {kernel:?}: one group");
                }
                let (err, _) = errors(&c, Rounding::None, kernel);
                assert!(err < 2e-5, "seed {seed} {kernel:?}: {err}");
            }
        }
    }

    /// With fp16 rounding every lag stays within the bound, on data of any
    /// scale and on large offsets; and the rounding is really there (the
    /// error is well above fp32's).
    #[test]
    fn the_fp16_error_stays_within_the_bound() {
        for (seed, scale, offset) in [
            (5, 1.0, 0.0),
            (6, 1e-9, 0.0),
            (7, 3e5, 0.0),
            (8, 1.0, 300.0),
            (9, 1e-6, 5000.0),
        ] {
            let c = case(seed, 2600, 150, scale, offset, 17, 200);
            for kernel in [MixedKernel::Wmma, MixedKernel::Wgmma] {
                let (err, excess) = errors(&c, Rounding::Fp16, kernel);
                eprintln!("{kernel:?}, scale {scale:e}, offset {offset} σ: max |error| {err:.2e}, bound minus error ≥ {:.2e}", -excess);
                assert!(
                    excess <= 0.0,
                    "seed {seed} {kernel:?}: error over the bound by {excess}"
                );
                assert!(
                    err > 1e-5,
                    "seed {seed} {kernel:?}: no fp16 rounding seen ({err})"
                );
            }
        }
    }

    /// The whole screen on the model: screened stacks and margins from the
    /// model, the lags within the margin of the threshold recomputed as the
    /// fp32 kernel computes them, and the peak rule on those: the peaks are
    /// the fp32 stack's at that threshold.
    #[test]
    fn screening_the_model_gives_the_fp32_peaks() {
        for (seed, scale, offset, kernel) in [
            (21, 1.0, 0.0, MixedKernel::Wmma),
            (22, 1e-7, 200.0, MixedKernel::Wmma),
            (23, 1.0, 0.0, MixedKernel::Wgmma),
            (24, 1e-7, 200.0, MixedKernel::Wgmma),
        ] {
            let c = case(seed, 3000, 120, scale, offset, 17, 200);
            let out = c.model(Rounding::Fp16, kernel);
            let templates: Vec<StackTemplate> = c.templates();
            let norms = norms(&c.data, &c.masks, c.m);
            let day = day_view(&c.data, &norms, c.m);
            let n_lags = day.n_lags();
            let (mut peaks, mut recomputed) = (0, 0);
            for (t, tpl) in templates.iter().enumerate() {
                let screened = &out.stacks[t];
                let margin = out.bounds[t].iter().fold(0f32, |a, &b| a.max(b));
                // A low threshold, so that there are peaks and near misses.
                let threshold = 4.0 * median_abs_with(screened, &mut Vec::new());
                let low = screen::lowered_threshold(threshold, margin);
                let above: Vec<usize> = (0..n_lags).filter(|&k| screened[k].abs() > low).collect();
                let lags = screen::with_neighbours(above, n_lags);
                let values: Vec<f32> = lags.iter().map(|&k| stack_at(&day, tpl, k)).collect();
                let got = decluster(
                    screen::exact_candidates(&lags, &values, n_lags, threshold, |_| true),
                    20,
                );
                let fp32: Vec<f32> = (0..n_lags).map(|k| stack_at(&day, tpl, k)).collect();
                let want = find_peaks(&fp32, threshold, 20, |_| true);
                assert_eq!(got, want, "seed {seed} template {t}");
                peaks += want.len();
                recomputed += lags.len();
            }
            eprintln!(
                "seed {seed}: {peaks} peaks, the fp32 stack's, from {recomputed} of {} lags recomputed",
                n_lags * templates.len()
            );
            assert!(peaks > 0);
        }
    }
}
