//! Direct (time-domain) correlation for short templates: each lag's dot
//! product of M samples, 32 lags at a time in registers. Its cost grows
//! with M and the FFT's only with log M, so the planner
//! ([`super::Method::for_len`]) takes it below a measured template length.

use rayon::prelude::*;

use super::super::{DayView, StackTemplate};
use super::{landing, Simd};
use crate::timing::{self, Stage};

/// Lags per block: the block's correlations (16 KiB) and data stay in L1.
const BLOCK: usize = 4096;

/// Lags computed together in registers.
const LANES: usize = 32;

/// `out[j] = Σ_i t[i] · x[j + i]`; `x` holds `out.len() + t.len() − 1`
/// samples or more.
#[inline(always)]
fn dot_loop(out: &mut [f32], x: &[f32], t: &[f32]) {
    let n = out.len();
    let whole = n - n % LANES;
    for (j, o) in (0..whole).step_by(LANES).zip(out.chunks_exact_mut(LANES)) {
        let mut acc = [0.0f32; LANES];
        for (i, &ti) in t.iter().enumerate() {
            let xs: &[f32; LANES] = x[j + i..j + i + LANES].try_into().unwrap();
            for (a, &v) in acc.iter_mut().zip(xs) {
                *a += ti * v;
            }
        }
        o.copy_from_slice(&acc);
    }
    for (j, o) in out.iter_mut().enumerate().skip(whole) {
        *o = t.iter().zip(&x[j..]).map(|(a, b)| a * b).sum();
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_avx2(out: &mut [f32], x: &[f32], t: &[f32]) {
    dot_loop(out, x, t)
}

impl Simd {
    fn dot(self, out: &mut [f32], x: &[f32], t: &[f32]) {
        #[cfg(target_arch = "x86_64")]
        if self.avx2 {
            // SAFETY: the CPU has AVX2 and FMA (checked in `detect`).
            return unsafe { dot_avx2(out, x, t) };
        }
        dot_loop(out, x, t)
    }
}

/// Every template's stacked trace (`stacks` sized to the day's lags),
/// template by template in parallel.
pub fn stack(day: &DayView, templates: &[StackTemplate], stacks: &mut [Vec<f32>]) {
    let (m, n_lags, simd) = (day.template_len, day.n_lags(), Simd::detect());
    templates
        .par_iter()
        .zip(stacks.par_iter_mut())
        .for_each_init(
            || vec![0.0f32; BLOCK],
            |cc, (t, stack)| {
                for j0 in (0..n_lags).step_by(BLOCK) {
                    let valid = BLOCK.min(n_lags - j0);
                    // As in the FFT path: this block is the first to touch
                    // lags j0.. of the stack.
                    let clear = timing::start(Stage::Stack);
                    stack[j0..j0 + valid].fill(0.0);
                    drop(clear);
                    for c in &t.channels {
                        let (skip, k0) = landing(j0, c.pad);
                        if skip >= valid {
                            continue;
                        }
                        let channel = &day.channels[c.channel];
                        let timer = timing::start(Stage::Direct);
                        let x = &channel.data[j0 + skip..j0 + valid + m - 1];
                        simd.dot(&mut cc[skip..valid], x, &c.waveform);
                        drop(timer);
                        let _t = timing::start(Stage::Stack);
                        let inv = &channel.norm.inv_std[j0 + skip..j0 + valid];
                        let dst = &mut stack[k0..k0 + valid - skip];
                        simd.accumulate(dst, &cc[skip..valid], inv, c.weight);
                    }
                }
            },
        );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whole groups of lags and the rest, both paths, against f64 sums.
    #[test]
    fn dot_products_are_the_sums() {
        let x: Vec<f32> = (0..200).map(|i| (i as f32 * 0.37).sin()).collect();
        let t: Vec<f32> = (0..13).map(|i| (i as f32 * 1.1).cos()).collect();
        for n in [1, 31, 32, 33, 100, 188] {
            for avx2 in [false, Simd::detect().avx2] {
                let mut out = vec![f32::NAN; n];
                Simd { avx2 }.dot(&mut out, &x, &t);
                for (j, o) in out.iter().enumerate() {
                    let want: f64 = (0..t.len()).map(|i| t[i] as f64 * x[j + i] as f64).sum();
                    assert!(
                        (*o as f64 - want).abs() < 1e-5,
                        "n {n} lag {j}: {o} against {want}"
                    );
                }
            }
        }
    }
}
