//! Preprocessing: the one recipe applied to template data and continuous
//! data alike (so a template matches its own waveform exactly).
//!
//! Each contiguous stretch of data (between gaps) is processed on its own —
//! filters never ring across a gap and filled samples never become data —
//! and then placed on the output grid with a mask. Steps per stretch, as
//! EQcorrscan orders them: demean and linear detrend; resample (Fourier
//! method) when the recipe asks for another rate; Butterworth filter of the
//! recipe's order designed as second-order sections and run forward and
//! backward from rest (zero phase, ObsPy's `zerophase=True`).

use realfft::RealFftPlanner;
use sci_rs::signal::filter::design::{
    butter_dyn, DigitalFilter, FilterBandType, FilterOutputType, Sos,
};
use sci_rs::signal::filter::sosfilt_dyn;

use crate::archive::RawTrace;
use crate::epoch::Nanos;
use crate::error::{Error, Result};

/// How data are processed before correlation. Stored in templates.h5.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Recipe {
    /// High-pass corner (Hz).
    pub lowcut: Option<f64>,
    /// Low-pass corner (Hz).
    pub highcut: Option<f64>,
    /// Butterworth order (each of the two passes).
    pub order: usize,
    /// Resample to this rate (Hz); `None` keeps the data's rate.
    pub resample: Option<f64>,
}

impl Recipe {
    /// Whether the recipe filters (has a corner).
    pub fn filters(&self) -> bool {
        self.lowcut.is_some() || self.highcut.is_some()
    }

    /// Check the recipe against the rate the filter will run at.
    pub fn validate(&self, rate: f64) -> Result<()> {
        let nyq = rate / 2.0;
        for (name, f) in [("lowcut", self.lowcut), ("highcut", self.highcut)] {
            if let Some(f) = f {
                if !(f > 0.0 && f < nyq) {
                    return Err(Error::Input(format!(
                        "{name} {f} Hz must lie between 0 and the Nyquist frequency {nyq} Hz"
                    )));
                }
            }
        }
        if let (Some(lo), Some(hi)) = (self.lowcut, self.highcut) {
            if lo >= hi {
                return Err(Error::Input(format!(
                    "lowcut {lo} Hz is not below highcut {hi} Hz"
                )));
            }
        }
        if self.filters() && !(1..=12).contains(&self.order) {
            return Err(Error::Input(format!(
                "filter order {} is not in 1..=12",
                self.order
            )));
        }
        if let Some(r) = self.resample {
            if !(r > 0.0 && r.is_finite()) {
                return Err(Error::Input(format!(
                    "sampling rate {r} Hz is not positive"
                )));
            }
        }
        Ok(())
    }

    /// Second-order sections of the Butterworth filter at `rate`; `None`
    /// when the recipe does not filter.
    pub(crate) fn design(&self, rate: f64) -> Option<Vec<Sos<f64>>> {
        let (band, wn) = match (self.lowcut, self.highcut) {
            (Some(lo), Some(hi)) => (FilterBandType::Bandpass, vec![lo, hi]),
            (Some(lo), None) => (FilterBandType::Highpass, vec![lo]),
            (None, Some(hi)) => (FilterBandType::Lowpass, vec![hi]),
            (None, None) => return None,
        };
        match butter_dyn(
            self.order,
            wn,
            Some(band),
            Some(false),
            Some(FilterOutputType::Sos),
            Some(rate),
        ) {
            DigitalFilter::Sos(s) => Some(s.sos),
            _ => unreachable!("butter_dyn returns the requested SOS form"),
        }
    }
}

/// A processed channel on the output grid.
#[derive(Debug, Clone)]
pub struct Processed {
    pub data: Vec<f32>,
    pub mask: Vec<bool>,
}

/// Zero-phase filtering: forward, then backward over the reversed output,
/// each pass starting from rest.
fn filtfilt(sos: &[Sos<f64>], x: &[f64]) -> Vec<f64> {
    let mut s = sos.to_vec();
    let fwd = sosfilt_dyn(x.iter(), &mut s);
    let mut s = sos.to_vec();
    let mut back = sosfilt_dyn(fwd.iter().rev(), &mut s);
    back.reverse();
    back
}

/// "Simple" detrend: remove the line through the first and last samples
/// (EQcorrscan's and ObsPy's default), then the mean that remains.
fn detrend(x: &mut [f64]) {
    let n = x.len();
    if n < 2 {
        x.iter_mut().for_each(|v| *v = 0.0);
        return;
    }
    let (x0, slope) = (x[0], (x[n - 1] - x[0]) / (n - 1) as f64);
    for (i, v) in x.iter_mut().enumerate() {
        *v -= x0 + slope * i as f64;
    }
}

/// Fourier resampling from `rate_in` to `rate_out` with ObsPy's
/// `Trace.resample` algorithm (what EQcorrscan uses): the spectrum is
/// tapered with a periodic Hann window (an anti-alias roll-off towards the
/// old Nyquist frequency), linearly interpolated onto the frequencies of
/// the new length `int(n / (rate_in / rate_out))`, and transformed back.
/// When `n` is a multiple of the rate ratio the new frequencies fall on old
/// ones and nothing is interpolated.
fn resample(x: &[f64], rate_in: f64, rate_out: f64) -> Vec<f64> {
    let n = x.len();
    let n_out = (n as f64 / (rate_in / rate_out)) as usize;
    if n == 0 || n_out == 0 {
        return vec![0.0; n_out];
    }
    let mut planner = RealFftPlanner::<f64>::new();
    let fwd = planner.plan_fft_forward(n);
    let inv = planner.plan_fft_inverse(n_out);
    let mut input = x.to_vec();
    let mut spec = fwd.make_output_vec();
    fwd.process(&mut input, &mut spec)
        .expect("buffer sizes from the plan");
    let two_pi = 2.0 * std::f64::consts::PI;
    for (k, s) in spec.iter_mut().enumerate() {
        // ifftshift of the periodic Hann window, first half.
        let j = (k + n / 2) % n;
        *s *= 0.5 - 0.5 * (two_pi * j as f64 / n as f64).cos();
    }
    let df = 1.0 / (n as f64 * (1.0 / rate_in));
    let df_out = 1.0 / n_out as f64 * rate_out;
    let last = spec.len() - 1;
    let mut out_spec = inv.make_input_vec();
    for (k, o) in out_spec.iter_mut().enumerate() {
        let f = df_out * k as f64;
        let mut j = ((f / df) as usize).min(last);
        while j > 0 && df * j as f64 > f {
            j -= 1;
        }
        while j < last && df * (j + 1) as f64 <= f {
            j += 1;
        }
        *o = if j >= last {
            spec[last]
        } else {
            let t = (f - df * j as f64) / df;
            spec[j] + (spec[j + 1] - spec[j]) * t
        };
    }
    // The inverse of a real signal has real DC and Nyquist bins.
    out_spec[0].im = 0.0;
    if n_out % 2 == 0 {
        out_spec[n_out / 2].im = 0.0;
    }
    let mut out = inv.make_output_vec();
    inv.process(&mut out_spec, &mut out)
        .expect("buffer sizes from the plan");
    let scale = 1.0 / n as f64;
    out.iter().map(|v| v * scale).collect()
}

/// The part of the run `[a, b)` of `raw` that is resampled to `rate`: it
/// starts on an input sample that falls on the output grid `start + i /
/// rate`, and holds a whole number of output samples. Fourier resampling
/// of n samples gives `int(n × rate / raw.rate)` samples spread over the n
/// input samples' span, so a run whose length is not a multiple of the rate
/// ratio's denominator comes out stretched in time (by up to an output
/// sample over the run), and one starting between grid points would be
/// rounded onto the grid. Dropping at most a ratio's worth of input samples
/// at each end (< 0.1 s at the usual rates) keeps every output sample at
/// its true time; EQcorrscan likewise cuts its chunks to
/// `int(process_length × rate)` samples from a start on its grid. Rates
/// that are not whole numbers of hertz keep the run as it is.
fn on_output_grid(raw: &RawTrace, a: usize, b: usize, rate: f64, start: Nanos) -> (usize, usize) {
    let (r_in, r_out) = (raw.rate, rate);
    if r_in.fract() != 0.0 || r_out.fract() != 0.0 || r_in < 1.0 || r_out < 1.0 {
        return (a, b);
    }
    let (mut x, mut y) = (r_in as u64, r_out as u64);
    while y != 0 {
        (x, y) = (y, x % y);
    }
    // q input samples make p output samples exactly.
    let q = (r_in as u64 / x) as usize;
    let t0 = raw.start as f64 + a as f64 * 1e9 / r_in - start as f64;
    let skip = (0..q)
        .find(|k| {
            let pos = (t0 + *k as f64 * 1e9 / r_in) * r_out / 1e9;
            (pos - pos.round()).abs() < 1e-6
        })
        .unwrap_or(0);
    let a = (a + skip).min(b);
    (a, b - (b - a) % q)
}

/// Runs of `true` in a mask, as `(start, end)` half-open ranges.
pub fn runs(mask: &[bool]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < mask.len() {
        if !mask[i] {
            i += 1;
            continue;
        }
        let s = i;
        while i < mask.len() && mask[i] {
            i += 1;
        }
        out.push((s, i));
    }
    out
}

/// Process a raw trace with `recipe` onto the grid `start + i / rate`,
/// `len` samples, where `rate` is the recipe's rate (or the trace's own).
/// Non-finite samples count as gaps.
pub fn process(raw: &RawTrace, recipe: &Recipe, start: Nanos, len: usize) -> Processed {
    let rate = recipe.resample.unwrap_or(raw.rate);
    let sos = recipe.design(rate);
    let mut mask = raw.mask.clone();
    for (m, v) in mask.iter_mut().zip(&raw.data) {
        *m &= v.is_finite();
    }
    let mut data = vec![0f32; len];
    let mut out_mask = vec![false; len];
    let ratio = rate / raw.rate;
    for (a, b) in runs(&mask) {
        let (a, b) = if (ratio - 1.0).abs() > 1e-9 {
            on_output_grid(raw, a, b, rate, start)
        } else {
            (a, b)
        };
        if a >= b {
            continue;
        }
        let mut seg = raw.data[a..b].to_vec();
        if recipe.filters() || recipe.resample.is_some() {
            detrend(&mut seg);
        } else {
            // Unprocessed data keep their shape (a detrend would tilt every
            // window); only the mean goes, so that f32 keeps the precision.
            let mean = seg.iter().sum::<f64>() / seg.len() as f64;
            seg.iter_mut().for_each(|v| *v -= mean);
        }
        // Time of the stretch's first sample, and its place on the output grid.
        let t_seg = raw.start as f64 + a as f64 * 1e9 / raw.rate;
        let first = ((t_seg - start as f64) * rate / 1e9).round() as i64;
        if (ratio - 1.0).abs() > 1e-9 {
            seg = resample(&seg, raw.rate, rate);
            detrend(&mut seg);
        }
        if let Some(sos) = &sos {
            seg = filtfilt(sos, &seg);
        }
        for (i, v) in seg.into_iter().enumerate() {
            let j = first + i as i64;
            if j >= 0 && (j as usize) < len {
                data[j as usize] = v as f32;
                out_mask[j as usize] = true;
            }
        }
    }
    Processed {
        data,
        mask: out_mask,
    }
}

/// Root mean square of processed samples (the noise measure of relative
/// magnitudes), in f64.
pub fn rms(x: &[f32]) -> f64 {
    (x.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / x.len().max(1) as f64).sqrt()
}

/// Standard deviation of processed samples (the amplitude measure of
/// relative magnitudes), in f64.
pub fn std_dev(x: &[f32]) -> f64 {
    let n = x.len().max(1) as f64;
    let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n;
    (x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `sin(a·i) + b·cos(c·i) + d·i`: the inputs the scipy and ObsPy
    /// reference values below were computed from.
    fn test_signal(n: usize, [a, b, c, d]: [f64; 4]) -> Vec<f64> {
        (0..n)
            .map(|i| i as f64)
            .map(|i| (a * i).sin() + b * (c * i).cos() + d * i)
            .collect()
    }

    #[test]
    fn detrend_removes_a_line() {
        let mut x: Vec<f64> = (0..100).map(|i| 3.0 + 0.5 * i as f64).collect();
        detrend(&mut x);
        assert!(x.iter().all(|v| v.abs() < 1e-9));
    }

    #[test]
    fn resample_keeps_a_band_limited_sine() {
        // 2 Hz sine, 10 s at 100 Hz (bin 20 of 1000), to 50 Hz and 200 Hz:
        // the same sine, scaled by the Hann taper at bin 20.
        let f = |t: f64| (2.0 * std::f64::consts::PI * 2.0 * t).sin();
        let x: Vec<f64> = (0..1000).map(|i| f(i as f64 / 100.0)).collect();
        let w = 0.5 * (1.0 + (2.0 * std::f64::consts::PI * 20.0 / 1000.0).cos());
        for (rate, n) in [(50.0, 500), (200.0, 2000)] {
            let y = resample(&x, 100.0, rate);
            assert_eq!(y.len(), n);
            for (i, v) in y.iter().enumerate() {
                assert!(
                    (v - w * f(i as f64 / rate)).abs() < 1e-9,
                    "{rate} Hz sample {i}"
                );
            }
        }
    }

    fn raw(start: Nanos, data: Vec<f64>) -> RawTrace {
        RawTrace {
            id: "N.STA..HHZ".into(),
            start,
            rate: 100.0,
            mask: vec![true; data.len()],
            data,
            problems: Vec::new(),
        }
    }

    /// 100 Hz to 40 Hz: 5 input samples make 2 output samples, and input
    /// samples 0.01 s after a 40 Hz grid point reach the grid after 4.
    #[test]
    fn resampled_runs_start_on_the_grid_with_whole_output_samples() {
        let r = raw(10_000_000, vec![0.0; 1003]);
        assert_eq!(on_output_grid(&r, 0, 1003, 40.0, 0), (4, 999));
        assert_eq!(on_output_grid(&r, 1, 1003, 40.0, 0), (4, 999));
        assert_eq!(on_output_grid(&r, 0, 1003, 50.0, 0), (1, 1003));
        // Not on any grid point (a quarter-sample offset): kept as it is
        // at the start, still whole output samples.
        let r = raw(2_500_000, vec![0.0; 1003]);
        assert_eq!(on_output_grid(&r, 0, 1003, 40.0, 0), (0, 1000));
    }

    /// A run one sample longer than whole output samples is resampled
    /// without its last sample (so not stretched), and one starting between
    /// grid points from its first sample on the grid.
    #[test]
    fn resampling_drops_the_samples_that_would_stretch_time() {
        let x = test_signal(2003, [0.05, 0.4, 0.013, 0.001]);
        let recipe = Recipe {
            resample: Some(40.0),
            ..Recipe::default()
        };
        let whole = process(&raw(0, x[..2000].to_vec()), &recipe, 0, 802);
        let longer = process(&raw(0, x[..2001].to_vec()), &recipe, 0, 802);
        assert_eq!(whole.data, longer.data);
        assert_eq!(whole.mask.iter().filter(|&&m| m).count(), 800);
        // Starting 0.02 s after the grid: samples 0..3 are dropped.
        let late = process(&raw(20_000_000, x[..2003].to_vec()), &recipe, 0, 802);
        let on_grid = process(&raw(50_000_000, x[3..2003].to_vec()), &recipe, 0, 802);
        assert_eq!(late.data, on_grid.data);
        assert_eq!(late.mask, on_grid.mask);
        assert!(!late.mask[1] && late.mask[2]);
    }

    /// Zero-phase Butterworth output against scipy 1.x: `iirfilter(...,
    /// output='zpk')`, `zpk2sos`, then `sosfilt` forward and on the reversed
    /// output (values printed by scipy, every 8th sample).
    #[test]
    fn filter_matches_scipy() {
        let x = test_signal(64, [0.7, 0.3, 2.1, 0.01]);
        let cases: [(Recipe, f64, [f64; 8]); 3] = [
            (
                Recipe {
                    lowcut: Some(2.0),
                    highcut: Some(8.0),
                    order: 4,
                    resample: None,
                },
                100.0,
                [
                    0.24192966496734936,
                    -0.13959960037635327,
                    -0.009901312985027902,
                    -0.01639698815841455,
                    0.0028139346350945626,
                    0.009347514324488538,
                    0.01683718995922488,
                    0.0068101642593993515,
                ],
            ),
            (
                Recipe {
                    lowcut: Some(1.5),
                    highcut: None,
                    order: 3,
                    resample: None,
                },
                20.0,
                [
                    -0.014947504770322306,
                    -0.6845968957969167,
                    -1.085132581182467,
                    -0.522805111508668,
                    -0.4689067114109018,
                    0.044945508600584994,
                    1.0552181860607903,
                    0.8120818233568993,
                ],
            ),
            (
                Recipe {
                    lowcut: None,
                    highcut: Some(5.0),
                    order: 2,
                    resample: None,
                },
                50.0,
                [
                    0.3842787714159574,
                    -0.17337344657234488,
                    -0.21771305679990868,
                    -0.10193898662940964,
                    0.1665565112176429,
                    0.5042359533735147,
                    0.7950805546367189,
                    0.9751807063763316,
                ],
            ),
        ];
        for (recipe, rate, want) in cases {
            let y = filtfilt(&recipe.design(rate).unwrap(), &x);
            for (i, w) in want.iter().enumerate() {
                assert!(
                    (y[8 * i] - w).abs() < 1e-9,
                    "{recipe:?}: sample {}: {} vs {w}",
                    8 * i,
                    y[8 * i]
                );
            }
        }
    }

    /// Against ObsPy 1.4's `Trace.resample` (its defaults: Hann window, no
    /// prefilter) on 101 samples, whose length is not a multiple of the
    /// rate ratio (values printed by ObsPy).
    #[test]
    fn resample_matches_obspy() {
        let x = test_signal(101, [0.3, 0.5, 1.1, 0.02]);
        let cases: [(f64, usize, usize, &[f64]); 2] = [
            (
                50.0,
                50,
                7,
                &[
                    0.5162970740661457,
                    -0.8852441772678121,
                    1.598174315464049,
                    0.7635651005316969,
                    0.4847143107567969,
                    1.790110857003593,
                    2.26979125199845,
                    0.8350380837572294,
                ],
            ),
            (
                40.0,
                40,
                6,
                &[
                    0.48813851774501765,
                    -0.8915199950773608,
                    0.8938321490377128,
                    1.9199371594336914,
                    0.4939462390893848,
                    0.7806452018282272,
                    2.9477597518571366,
                ],
            ),
        ];
        for (rate, n, step, want) in cases {
            let y = resample(&x, 100.0, rate);
            assert_eq!(y.len(), n);
            for (i, w) in want.iter().enumerate() {
                assert!(
                    (y[step * i] - w).abs() < 1e-9,
                    "{rate} Hz sample {}: {} vs {w}",
                    step * i,
                    y[step * i]
                );
            }
        }
    }
}
