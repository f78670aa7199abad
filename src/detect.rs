//! Detection on a stacked trace: threshold, peaks, and declustering with
//! `trig_int`, with EQcorrscan's definitions so that its detections are
//! reproduced exactly.
//!
//! * `mad`: `k · median(|stack|)` over the day's lags (EQcorrscan's "MAD":
//!   a median of absolute values, not a median absolute deviation, taken
//!   over the whole trace including lags with no valid correlation);
//! * `abs`: `k`;
//! * `av-chan-corr`: `k · n_channels` (the template's channels with data).
//!
//! Candidates are strict local extrema of the signed stack whose absolute
//! value exceeds the threshold; the largest |value| wins, and every other
//! candidate within `trig_int` samples + 1 of a kept one is dropped. The
//! sign is kept: a negative detection is a polarity-flipped repeat.

use crate::shard::Shard;
use std::fmt;
use std::str::FromStr;

use crate::epoch::Nanos;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThresholdType {
    Mad,
    Abs,
    AvChanCorr,
}

impl FromStr for ThresholdType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "mad" => Ok(ThresholdType::Mad),
            "abs" | "absolute" => Ok(ThresholdType::Abs),
            "av-chan-corr" => Ok(ThresholdType::AvChanCorr),
            _ => Err(format!(
                "unknown threshold type '{s}' (mad, abs or av-chan-corr)"
            )),
        }
    }
}

impl fmt::Display for ThresholdType {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            ThresholdType::Mad => "mad",
            ThresholdType::Abs => "abs",
            ThresholdType::AvChanCorr => "av-chan-corr",
        })
    }
}

/// One channel's correlation at a detection, and what the catalogue needs
/// of it (picks, relative magnitudes), measured while the day is in memory.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelPick {
    /// Index into the template's channels.
    pub channel: usize,
    /// CC at the detection's lag.
    pub cc: f32,
    /// Largest CC within ±shift_len, and its lag in samples. Signed, as
    /// EQcorrscan's `lag_calc` takes it: a waveform of flipped polarity is
    /// not this template's arrival.
    pub best_cc: f32,
    pub best_lag: i32,
    /// `best_lag` refined by the parabola through the CC there and at its
    /// two neighbours (within half a sample of it; `best_lag` itself where
    /// the three do not make a maximum).
    pub lag: f32,
    /// Standard deviation of the data over the template's window at
    /// `best_lag`, in the processed data's units.
    pub amplitude: f32,
    /// Largest |value| in that window.
    pub peak: f32,
    /// RMS of the data over the template's length just before that window;
    /// none where that stretch is not whole.
    pub noise_rms: Option<f32>,
}

/// A peak of a template's stack above its threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    /// Index into the template set.
    pub template: usize,
    /// Start of the template's earliest channel at the peak.
    pub time: Nanos,
    pub cc_sum: f32,
    /// `cc_sum / n_channels`.
    pub mean_cc: f32,
    pub threshold: f32,
    /// Median of |stack| over the day (EQcorrscan's "MAD").
    pub mad: f32,
    /// Channels with valid data at the peak.
    pub n_channels: usize,
    pub channels: Vec<ChannelPick>,
}

/// Median of |x| in f32, the mean of the two middle values for an even
/// count (as numpy computes it). Empty input gives 0.
pub fn median_abs(x: &[f32]) -> f32 {
    median_abs_with(x, &mut Vec::new())
}

/// [`median_abs`] with a caller-owned buffer (a day of lags is large).
///
/// Selection on the bits: for non-negative floats (NaN included, as
/// `f32::total_cmp` orders them) the bit patterns sort as the values do. One
/// pass counts the top 13 bits of every |x| (exponent and 5 mantissa bits),
/// which finds the one or two bins the middle ranks fall in; a second
/// copies only those bins' values (a small share of a day) for an exact
/// selection. Two passes over the day, in cache-sized tables and without
/// branches on the data, instead of a copy and a selection over all of it.
pub fn median_abs_with(x: &[f32], buf: &mut Vec<f32>) -> f32 {
    const TOP: u32 = 18;
    let abs_bits = |v: &f32| v.to_bits() & 0x7fff_ffff;
    let n = x.len();
    if n == 0 {
        return 0.0;
    }
    // Four tables, for positions modulo 4: a smooth trace puts neighbours
    // in the same bin, and one table would wait on its own last increment.
    let mut hist = vec![[0u32; 4]; 1 << (31 - TOP)];
    let mut quads = x.chunks_exact(4);
    for p in &mut quads {
        for (i, v) in p.iter().enumerate() {
            hist[(abs_bits(v) >> TOP) as usize][i] += 1;
        }
    }
    for v in quads.remainder() {
        hist[(abs_bits(v) >> TOP) as usize][0] += 1;
    }
    // The bins of ranks (n − 1) / 2 and n / 2, and how many values lie
    // below the first.
    let (lo_rank, hi_rank) = ((n - 1) / 2, n / 2);
    let (mut below, mut lo_bin, mut hi_bin) = (0usize, None, 0);
    let mut seen = 0usize;
    for (bin, h) in hist.iter().enumerate() {
        let count = h.iter().sum::<u32>() as usize;
        if lo_bin.is_none() && seen + count > lo_rank {
            lo_bin = Some(bin);
            below = seen;
        }
        if seen + count > hi_rank {
            hi_bin = bin;
            break;
        }
        seen += count;
    }
    let lo_bin = lo_bin.expect("the rank is below n") as u32;
    let span = hi_bin as u32 - lo_bin;
    let count: u32 = hist[lo_bin as usize..=hi_bin].iter().flatten().sum();
    // Copied without a branch: every value is written at the end, which
    // moves on only for those in the bins (one spare slot for the last
    // write).
    buf.clear();
    buf.resize(count as usize + 1, 0.0);
    let mut len = 0;
    for v in x {
        let a = abs_bits(v);
        buf[len] = f32::from_bits(a);
        len += usize::from((a >> TOP).wrapping_sub(lo_bin) <= span);
    }
    buf.truncate(len);
    let (lower, &mut hi, _) = buf.select_nth_unstable_by(hi_rank - below, f32::total_cmp);
    if n % 2 == 1 {
        return hi;
    }
    // The value at rank n/2 − 1: the largest of those ranked below n/2.
    let lo = lower.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    (lo + hi) / 2.0
}

/// The detection threshold for a template on one day.
pub fn threshold(kind: ThresholdType, k: f64, median_abs: f32, n_channels: usize) -> f32 {
    match kind {
        ThresholdType::Mad => (k * median_abs as f64) as f32,
        ThresholdType::Abs => k as f32,
        ThresholdType::AvChanCorr => (k * n_channels as f64) as f32,
    }
}

/// `trig_int` seconds as samples, truncated (EQcorrscan's conversion).
pub fn trig_int_samples(trig_int_s: f64, rate: f64) -> usize {
    (trig_int_s * rate) as usize
}

/// Peaks of `stack` above `thresh`, declustered: `(index, value)` in index
/// order. `allowed(i)` can veto a candidate (e.g. too few channels) before
/// it takes part in declustering.
pub fn find_peaks(
    stack: &[f32],
    thresh: f32,
    trig_int: usize,
    allowed: impl Fn(usize) -> bool,
) -> Vec<(usize, f32)> {
    // Nearly every lag of a day is below the threshold: a count over a
    // chunk (a branch-free loop the compiler vectorizes) skips the chunks
    // with none, and only the rest go through the peak rule lag by lag.
    const CHUNK: usize = 64;
    let n = stack.len();
    let mut cand: Vec<(usize, f32)> = Vec::new();
    for (c, chunk) in stack.chunks(CHUNK).enumerate() {
        let above: u32 = chunk.iter().map(|v| (v.abs() > thresh) as u32).sum();
        if above == 0 {
            continue;
        }
        for (j, &v) in chunk.iter().enumerate() {
            let i = c * CHUNK + j;
            // Outside the trace counts as 0.
            let prev = if i > 0 { stack[i - 1] } else { 0.0 };
            let next = if i + 1 < n { stack[i + 1] } else { 0.0 };
            if v.abs() > thresh && (next - v) * (prev - v) > 0.0 && allowed(i) {
                cand.push((i, v));
            }
        }
    }
    decluster(cand, trig_int)
}

/// Declustering of peak candidates `(index, value)` given in any order: the
/// largest |value| wins, and every candidate within `trig_int` + 1 samples
/// of a kept one is dropped. The kept peaks come back in index order.
pub fn decluster(mut cand: Vec<(usize, f32)>, trig_int: usize) -> Vec<(usize, f32)> {
    // Largest |value| first; among equal values the later index first.
    cand.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()).then(b.0.cmp(&a.0)));
    let reach = trig_int + 1;
    let mut kept: Vec<(usize, f32)> = Vec::new();
    for (i, v) in cand {
        if kept.iter().all(|&(j, _)| i.abs_diff(j) > reach) {
            kept.push((i, v));
        }
    }
    kept.sort_by_key(|p| p.0);
    kept
}

/// Detection settings.
#[derive(Debug, Clone)]
pub struct DetectParams {
    pub threshold: f64,
    pub threshold_type: ThresholdType,
    /// Seconds; within it only the largest peak of a template is kept.
    pub trig_int: f64,
    /// Peaks supported by fewer channels with data are refused.
    pub min_channels: usize,
    /// Seconds searched either side of a detection for each channel's best
    /// lag.
    pub shift_len: f64,
    /// Bytes of host memory allowed for the stacked traces of one template
    /// batch (backends that stack on the host).
    pub memory_budget: usize,
    /// Correlate only this shard of the templates (`None`: all of them).
    /// Detections keep their index in the whole set, and the day's data
    /// are read for every template's channels as without it, so that each
    /// template's detections are exactly those of a run over all of them.
    pub template_shard: Option<Shard>,
}

/// The stack memory of a run without `--memory`: a quarter of what this
/// process may still use ([`crate::memory::available`]), between 256 MiB and
/// 1 GiB (1 GiB where that is unknown). The rest of a day — its samples,
/// masks and moving normalization, about 85 MB per channel at 100 Hz — does
/// not shrink with the batch; a smaller batch costs one more forward
/// transform of the day's blocks per batch, about 3 % of the day's work at
/// 1 GiB against 2 GiB, which the second GiB's first touch and the memory
/// pressure it adds cost as much or more (benches/RESULTS.md).
pub fn auto_memory_budget(available: Option<u64>) -> usize {
    const LEAST: u64 = 256 << 20;
    const MOST: u64 = 1 << 30;
    available.map_or(MOST, |a| (a / 4).clamp(LEAST, MOST)) as usize
}

impl Default for DetectParams {
    fn default() -> Self {
        DetectParams {
            threshold: 8.0,
            threshold_type: ThresholdType::Mad,
            trig_int: 6.0,
            min_channels: 1,
            shift_len: 0.2,
            memory_budget: 1 << 30,
            template_shard: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_absolute_values() {
        assert_eq!(median_abs(&[-3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median_abs(&[-4.0, 1.0, 2.0, 0.0]), 1.5);
        assert_eq!(median_abs(&[]), 0.0);
    }

    /// The selection on bits is the median of a sorted copy, whatever the
    /// values: smooth or rough, ties, zeros of both signs, spikes, NaN,
    /// values in one bin or in two far apart, odd and even counts.
    #[test]
    fn the_bit_selection_is_the_sorted_median() {
        use rand::{Rng, SeedableRng};
        let sorted_median = |x: &[f32]| {
            let mut a: Vec<f32> = x.iter().map(|v| v.abs()).collect();
            a.sort_by(f32::total_cmp);
            let n = a.len();
            if n % 2 == 1 {
                a[n / 2]
            } else {
                (a[n / 2 - 1] + a[n / 2]) / 2.0
            }
        };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for case in 0..400 {
            let n = rng.gen_range(1..5000);
            let mut x: Vec<f32> = match case % 4 {
                0 => (0..n).map(|_| rng.gen_range(-2.0f32..2.0)).collect(),
                // A smooth trace: neighbours share bins.
                1 => (0..n).map(|i| (i as f32 * 0.01).sin() * 1e-3).collect(),
                // Values in one bin of the first pass.
                2 => (0..n)
                    .map(|_| 1.0 + rng.gen_range(0..50) as f32 * 1e-6)
                    .collect(),
                // Two clusters far apart: the middle ranks in different bins.
                _ => (0..n)
                    .map(|i| if i % 2 == 0 { 1e-20 } else { -3e5 } * rng.gen_range(1.0f32..1.1))
                    .collect(),
            };
            for _ in 0..rng.gen_range(0..4) {
                let k = rng.gen_range(0..n);
                x[k] = [0.0, -0.0, f32::NAN, f32::INFINITY, -1e30, x[0]][rng.gen_range(0..6)];
            }
            let (want, got) = (sorted_median(&x), median_abs(&x));
            assert!(
                want.to_bits() == got.to_bits() || (want.is_nan() && got.is_nan()),
                "case {case}: n {n}, {want} against {got}"
            );
        }
    }

    #[test]
    fn the_automatic_memory_is_a_quarter_within_bounds() {
        assert_eq!(auto_memory_budget(None), 1 << 30);
        assert_eq!(auto_memory_budget(Some(2 << 30)), 512 << 20);
        assert_eq!(auto_memory_budget(Some(64 << 30)), 1 << 30);
        assert_eq!(auto_memory_budget(Some(100 << 20)), 256 << 20);
    }

    #[test]
    fn thresholds() {
        assert_eq!(threshold(ThresholdType::Mad, 8.0, 0.5, 3), 4.0);
        assert_eq!(threshold(ThresholdType::Abs, 8.0, 0.5, 3), 8.0);
        assert_eq!(threshold(ThresholdType::AvChanCorr, 0.5, 0.5, 3), 1.5);
        assert_eq!(trig_int_samples(6.0, 100.0), 600);
        assert_eq!(trig_int_samples(0.029, 100.0), 2);
        assert_eq!(
            "av_chan_corr".parse::<ThresholdType>().unwrap(),
            ThresholdType::AvChanCorr
        );
        assert!("median".parse::<ThresholdType>().is_err());
    }

    #[test]
    fn largest_peak_wins_within_trig_int() {
        let mut s = vec![0f32; 100];
        s[10] = 5.0;
        s[14] = 6.0; // 4 samples later: suppresses 10 with trig_int 3 (reach 4)
        s[19] = 5.5; // 5 from 14: survives with reach 4
        s[50] = -7.0; // negative peaks count, sign kept
        s[60] = 2.0; // below threshold
        let p = find_peaks(&s, 3.0, 3, |_| true);
        assert_eq!(p, vec![(14, 6.0), (19, 5.5), (50, -7.0)]);
        // trig_int 4 (reach 5) also removes 19.
        assert_eq!(
            find_peaks(&s, 3.0, 4, |_| true),
            vec![(14, 6.0), (50, -7.0)]
        );
        // A vetoed candidate does not suppress its neighbours.
        assert_eq!(
            find_peaks(&s, 3.0, 3, |i| i != 14),
            vec![(10, 5.0), (19, 5.5), (50, -7.0)]
        );
    }

    #[test]
    fn plateaus_and_threshold_equality_are_not_peaks() {
        let s = [0.0, 4.0, 4.0, 0.0, 3.0, 0.0];
        assert!(find_peaks(&s, 3.0, 0, |_| true).is_empty());
        // Edges compare against 0 outside the trace.
        assert_eq!(find_peaks(&[5.0, 1.0], 3.0, 0, |_| true), vec![(0, 5.0)]);
    }

    /// The peak rule of [`find_peaks`], lag by lag, without chunks.
    fn peaks_lag_by_lag(s: &[f32], thresh: f32, trig_int: usize) -> Vec<(usize, f32)> {
        let at = |i: usize| s.get(i).copied().unwrap_or(0.0);
        let cand = (0..s.len())
            .filter(|&i| {
                let (v, prev) = (s[i], if i > 0 { at(i - 1) } else { 0.0 });
                v.abs() > thresh && (at(i + 1) - v) * (prev - v) > 0.0
            })
            .map(|i| (i, s[i]))
            .collect();
        decluster(cand, trig_int)
    }

    proptest::proptest! {
        /// Peaks at chunk edges, in sparse and dense chunks, NaN and ±∞.
        #[test]
        fn chunked_peaks_are_the_rule_lag_by_lag(
            s in proptest::collection::vec(
                proptest::prop_oneof![
                    8 => -1.0f32..1.0,
                    2 => -6.0f32..6.0,
                    1 => proptest::sample::select(vec![f32::NAN, f32::INFINITY, -f32::INFINITY, 0.0]),
                ],
                0..400,
            ),
            // Mostly quiet stacks with rare spikes: whole chunks skipped
            // next to chunks with peaks, as on a real day.
            sparse in proptest::collection::vec(
                proptest::prop_oneof![
                    200 => -1.0f32..1.0,
                    1 => -9.0f32..9.0,
                    1 => proptest::sample::select(vec![f32::NAN, f32::INFINITY, -f32::INFINITY]),
                ],
                0..1000,
            ),
            thresh in 0.5f32..4.0,
            trig_int in 0usize..8,
        ) {
            for s in [&s, &sparse] {
                proptest::prop_assert_eq!(
                    find_peaks(s, thresh, trig_int, |_| true),
                    peaks_lag_by_lag(s, thresh, trig_int)
                );
            }
        }
    }

    /// Peaks on the last lag of a chunk and the first of the next, each
    /// beside a chunk with nothing above the threshold.
    #[test]
    fn peaks_on_chunk_edges() {
        let mut s = vec![0.1f32; 256];
        s[63] = 5.0;
        s[128] = -6.0;
        s[191] = 7.0;
        s[192] = 6.5;
        let want = peaks_lag_by_lag(&s, 3.0, 0);
        assert_eq!(want, vec![(63, 5.0), (128, -6.0), (191, 7.0)]);
        assert_eq!(find_peaks(&s, 3.0, 0, |_| true), want);
    }

    #[test]
    fn declustering_does_not_depend_on_candidate_order() {
        let cand = vec![(10, 5.0), (14, -6.0), (19, 5.5), (50, 7.0), (53, 7.0)];
        let want = vec![(14, -6.0), (19, 5.5), (53, 7.0)];
        assert_eq!(decluster(cand.clone(), 3), want);
        let mut rev = cand;
        rev.reverse();
        assert_eq!(decluster(rev, 3), want);
    }
}
