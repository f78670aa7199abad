//! The product of a data and a template half spectrum and its inverse real
//! FFT, with the product folded into the inverse's preprocessing.
//!
//! An inverse real FFT of even length `L` is a complex inverse FFT of
//! length `L/2` (RustFFT's) of a preprocessed spectrum: bins `k` and
//! `L/2 − k` are combined with the twiddle `e^{2πik/L}`, and the complex
//! output holds the real samples in pairs. realfft does that preprocessing
//! in a separate scalar loop, after which we would also have written the
//! product to memory; here one pass, in AVX2 and FMA where the CPU has
//! them, forms both products of a pair of bins and preprocesses them (on
//! the benchmark machine realfft's loop alone took as long as the complex
//! FFT). The result equals realfft's `ComplexToReal` of the product, and is
//! unnormalized as it is (`L ×` the inverse).

use std::sync::Arc;

use realfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};

use crate::timing::{self, Stage};

/// The fused product and inverse real FFT of one length.
pub struct ProductInverse {
    l: usize,
    /// `e^{2πik/L}` for `k = 1 .. L/4`.
    twiddles: Vec<Complex<f32>>,
    fft: Arc<dyn Fft<f32>>,
    avx2: bool,
}

/// Buffers of one worker.
pub struct InverseScratch {
    z: Vec<Complex<f32>>,
    out: Vec<Complex<f32>>,
    fft: Vec<Complex<f32>>,
}

impl ProductInverse {
    /// `l` must be a multiple of 4: the pairs of bins `k`, `L/2 − k` then
    /// meet at a centre bin `L/4`. AVX2 and FMA are used where the CPU has
    /// them.
    pub fn new(l: usize) -> ProductInverse {
        ProductInverse::with_avx2(l, super::Simd::detect().avx2)
    }

    /// `avx2` only where the CPU has AVX2 and FMA.
    pub(super) fn with_avx2(l: usize, avx2: bool) -> ProductInverse {
        assert!(
            l % 4 == 0 && l > 0,
            "length {l} is not a positive multiple of 4"
        );
        let twiddles = (1..l / 4)
            .map(|k| Complex::from_polar(1.0, std::f64::consts::TAU * k as f64 / l as f64))
            .map(|c: Complex<f64>| Complex::new(c.re as f32, c.im as f32))
            .collect();
        ProductInverse {
            l,
            twiddles,
            fft: FftPlanner::new().plan_fft_inverse(l / 2),
            avx2,
        }
    }

    pub fn scratch(&self) -> InverseScratch {
        let h = self.l / 2;
        InverseScratch {
            z: vec![Complex::default(); h],
            out: vec![Complex::default(); h],
            fft: vec![Complex::default(); self.fft.get_outofplace_scratch_len()],
        }
    }

    /// The `L` real samples whose spectrum is `x · t` (bins `0 ..= L/2`;
    /// the imaginary parts of the first and last product are taken as 0),
    /// times `L`.
    pub fn process<'w>(
        &self,
        x: &[Complex<f32>],
        t: &[Complex<f32>],
        w: &'w mut InverseScratch,
    ) -> &'w [f32] {
        let h = self.l / 2;
        assert!(x.len() == h + 1 && t.len() == h + 1);
        let timer = timing::start(Stage::Multiply);
        #[cfg(target_arch = "x86_64")]
        if self.avx2 {
            // SAFETY: `avx2` is set only where the CPU has AVX2 and FMA.
            unsafe { avx2::preprocess(&mut w.z, x, t, &self.twiddles) }
        } else {
            preprocess(&mut w.z, x, t, &self.twiddles, 1);
        }
        #[cfg(not(target_arch = "x86_64"))]
        preprocess(&mut w.z, x, t, &self.twiddles, 1);
        drop(timer);
        let _t = timing::start(Stage::Inverse);
        self.fft
            .process_outofplace_with_scratch(&mut w.z, &mut w.out, &mut w.fft);
        // SAFETY: `Complex<f32>` is `repr(C)`, two f32 with no padding, so
        // `h` of them are `2h = L` f32 in order re, im: sample 2m is
        // out[m].re and sample 2m + 1 is out[m].im.
        unsafe { std::slice::from_raw_parts(w.out.as_ptr().cast::<f32>(), self.l) }
    }
}

/// The preprocessed spectrum `z` (`L/2` bins) of the product `x · t`, pairs
/// `k`, `L/2 − k` from `k = first` (the pairs before it done elsewhere);
/// the first and centre bins are always done here.
#[inline(always)]
fn preprocess(
    z: &mut [Complex<f32>],
    x: &[Complex<f32>],
    t: &[Complex<f32>],
    twiddles: &[Complex<f32>],
    first: usize,
) {
    let h = z.len();
    let (dc, nyquist) = ((x[0] * t[0]).re, (x[h] * t[h]).re);
    z[0] = Complex::new(dc + nyquist, dc - nyquist);
    let q = h / 2;
    let c = x[q] * t[q];
    z[q] = (c + c).conj();
    for k in first..q {
        let j = h - k;
        let (p, r) = (x[k] * t[k], x[j] * t[j]);
        let (sum, diff, w) = (p + r, p - r, twiddles[k - 1]);
        let re = sum.im * w.re + diff.re * w.im;
        let im = sum.im * w.im - diff.re * w.re;
        z[k] = Complex::new(sum.re - re, diff.im - im);
        z[j] = Complex::new(sum.re + re, -im - diff.im);
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use realfft::num_complex::Complex;

    /// Four complex values from `v[i..i + 4]`.
    #[inline(always)]
    unsafe fn load(v: &[Complex<f32>], i: usize) -> __m256 {
        assert!(i + 4 <= v.len());
        _mm256_loadu_ps(v.as_ptr().add(i).cast())
    }

    #[inline(always)]
    unsafe fn store(v: &mut [Complex<f32>], i: usize, a: __m256) {
        assert!(i + 4 <= v.len());
        _mm256_storeu_ps(v.as_mut_ptr().add(i).cast(), a)
    }

    /// Four complex products, lane by lane.
    #[inline(always)]
    unsafe fn mul(a: __m256, b: __m256) -> __m256 {
        let swapped = _mm256_permute_ps(a, 0b1011_0001);
        let cross = _mm256_mul_ps(swapped, _mm256_movehdup_ps(b));
        _mm256_fmaddsub_ps(a, _mm256_moveldup_ps(b), cross)
    }

    /// The four complex values in reverse order.
    #[inline(always)]
    unsafe fn reverse(a: __m256) -> __m256 {
        _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(a), 0b0001_1011))
    }

    /// [`super::preprocess`], four pairs of bins at a time.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn preprocess(
        z: &mut [Complex<f32>],
        x: &[Complex<f32>],
        t: &[Complex<f32>],
        twiddles: &[Complex<f32>],
    ) {
        let h = z.len();
        let q = h / 2;
        let negate_im = _mm256_castsi256_ps(_mm256_set_epi32(
            i32::MIN,
            0,
            i32::MIN,
            0,
            i32::MIN,
            0,
            i32::MIN,
            0,
        ));
        let mut k = 1;
        // Bins k .. k + 4 and, reversed into the same lanes, h − k − 3 ..= h − k.
        while k + 4 <= q {
            let j = h - k - 3;
            let p = mul(load(x, k), load(t, k));
            let r = reverse(mul(load(x, j), load(t, j)));
            let w = load(twiddles, k - 1);
            let (sum, diff) = (_mm256_add_ps(p, r), _mm256_sub_ps(p, r));
            // (sum.im·w.re + diff.re·w.im, sum.im·w.im − diff.re·w.re)
            let cross = _mm256_mul_ps(_mm256_moveldup_ps(diff), _mm256_permute_ps(w, 0b1011_0001));
            let o = _mm256_fmsubadd_ps(_mm256_movehdup_ps(sum), w, cross);
            // (sum.re, diff.im)
            let s = _mm256_blend_ps(sum, diff, 0b1010_1010);
            store(z, k, _mm256_sub_ps(s, o));
            let mirrored = _mm256_xor_ps(_mm256_add_ps(s, o), negate_im);
            store(z, j, reverse(mirrored));
            k += 4;
        }
        super::preprocess(z, x, t, twiddles, k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use realfft::RealFftPlanner;

    /// Both paths give realfft's inverse of the product, for lengths whose
    /// pair loops end at every remainder of four.
    #[test]
    fn the_fused_inverse_is_realffts() {
        for l in [4, 8, 12, 16, 20, 28, 64, 100, 1028, 8192] {
            let h = l / 2;
            let c =
                |i: usize, a: f32| Complex::new((i as f32 * a).sin(), (i as f32 * a * 0.7).cos());
            let x: Vec<Complex<f32>> = (0..=h).map(|i| c(i, 0.37)).collect();
            let t: Vec<Complex<f32>> = (0..=h).map(|i| c(i + 5, 1.13)).collect();
            let c2r = RealFftPlanner::<f32>::new().plan_fft_inverse(l);
            let mut product: Vec<Complex<f32>> = x.iter().zip(&t).map(|(a, b)| a * b).collect();
            product[0].im = 0.0;
            product[h].im = 0.0;
            let mut want = vec![0.0f32; l];
            c2r.process(&mut product, &mut want).unwrap();
            let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            for avx2 in [false, super::super::Simd::detect().avx2] {
                let inv = ProductInverse::with_avx2(l, avx2);
                let mut w = inv.scratch();
                let got = inv.process(&x, &t, &mut w);
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (g - w).abs() <= 1e-5 * scale,
                        "L {l} avx2 {avx2} sample {i}: {g} against {w}"
                    );
                }
            }
        }
    }
}
