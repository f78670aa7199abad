//! Exact peaks from a screened stack.
//!
//! A reduced-precision correlation (the mixed-precision kernel: fp16
//! products, fp32 sums) gives every lag of a template's stacked trace to
//! within a known bound `margin` of the fp32 value. It only screens: the
//! lags whose fp32 value could pass the peak rule of
//! [`crate::detect::find_peaks`] — `|v| > threshold` and a strict local
//! extremum — are those whose screened `|v|` is above `threshold − margin`;
//! with each one's two neighbours (which decide whether it is an extremum)
//! they are recomputed in fp32, and the rule is applied to the recomputed
//! values only. Every lag that is a peak in the fp32 stack is among them, so
//! the peaks, and after declustering the detections, are the fp32 path's
//! whatever the screened values were, as long as the bound holds.

/// The screen's threshold on a device that compares `|v| > threshold`: the
/// largest f32 not above `threshold − margin`, so that no lag within the
/// bound is cut by rounding.
pub fn lowered_threshold(threshold: f32, margin: f32) -> f32 {
    let want = f64::from(threshold) - f64::from(margin);
    let mut v = want as f32;
    while f64::from(v) > want {
        // One f32 step down (want is finite).
        v = if v > 0.0 {
            f32::from_bits(v.to_bits() - 1)
        } else if v == 0.0 {
            -f32::from_bits(1)
        } else {
            f32::from_bits(v.to_bits() + 1)
        };
    }
    v
}

/// Lags `lags` (any order, repeats allowed) of a stack of `n` and their
/// neighbours, sorted, each once.
pub fn with_neighbours(mut lags: Vec<usize>, n: usize) -> Vec<usize> {
    lags.sort_unstable();
    let mut out: Vec<usize> = Vec::with_capacity(3 * lags.len());
    for k in lags {
        for j in k.saturating_sub(1)..(k + 2).min(n) {
            if out.last().map_or(true, |&l| l < j) {
                out.push(j);
            }
        }
    }
    out
}

/// Peak candidates of the exact stack, by [`crate::detect::find_peaks`]'s
/// rule (before declustering), from its values `exact` at `lags` (the
/// screened lags [`with_neighbours`]; `n` lags in all, outside which the
/// stack counts as 0). `allowed(k)` vetoes a lag as `find_peaks`' does.
pub fn exact_candidates(
    lags: &[usize],
    exact: &[f32],
    n: usize,
    threshold: f32,
    allowed: impl Fn(usize) -> bool,
) -> Vec<(usize, f32)> {
    assert_eq!(lags.len(), exact.len());
    let at = |k: usize| match lags.binary_search(&k) {
        Ok(i) => Some(exact[i]),
        Err(_) => None,
    };
    let mut out = Vec::new();
    for (&k, &v) in lags.iter().zip(exact) {
        if v.abs() <= threshold {
            continue;
        }
        // A lag above the threshold came with both neighbours; the first
        // and last lag's outer neighbour counts as 0.
        let prev = if k == 0 { Some(0.0) } else { at(k - 1) };
        let next = if k + 1 == n { Some(0.0) } else { at(k + 1) };
        let (Some(prev), Some(next)) = (prev, next) else {
            continue;
        };
        if (next - v) * (prev - v) > 0.0 && allowed(k) {
            out.push((k, v));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::{decluster, find_peaks};
    use proptest::prelude::*;
    use rand::{Rng, SeedableRng};

    /// The lags to recompute, as the host would choose them from a whole
    /// screened stack: every lag whose exact value may pass the threshold,
    /// and its neighbours, sorted and each once. `screened` holds the
    /// stack's values within `margin` of the exact ones. (The device scans
    /// against [`lowered_threshold`] instead.)
    fn lags_to_recompute(screened: &[f32], threshold: f32, margin: f32) -> Vec<usize> {
        let above = (0..screened.len())
            // In f64: `threshold − margin` rounded in f32 could cut a lag that
            // lies just inside the bound.
            .filter(|&k| f64::from(screened[k].abs()) + f64::from(margin) > f64::from(threshold))
            .collect();
        with_neighbours(above, screened.len())
    }

    /// Whatever the screened values within the margin, the peaks are the
    /// exact stack's, and a lag is recomputed only where it could matter.
    fn check(n: usize, seed: u64, margin: f32, threshold: f32, trig_int: usize) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut exact: Vec<f32> = (0..n).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
        for _ in 0..n / 50 {
            let k = rng.gen_range(0..n);
            exact[k] = rng.gen_range(-4.0f32..4.0);
        }
        // Plateaus and values at the threshold: where ties decide.
        for _ in 0..n / 100 {
            let k = rng.gen_range(1..n);
            exact[k] = exact[k - 1];
            exact[rng.gen_range(0..n)] = threshold;
        }
        let screened: Vec<f32> = exact
            .iter()
            .map(|&v| {
                let s = v + rng.gen_range(-margin..=margin);
                s.clamp(v - margin, v + margin)
            })
            .collect();
        let allowed = |k: usize| k % 7 != 3;
        let want = find_peaks(&exact, threshold, trig_int, allowed);
        let lags = lags_to_recompute(&screened, threshold, margin);
        let values: Vec<f32> = lags.iter().map(|&k| exact[k]).collect();
        let got = decluster(
            exact_candidates(&lags, &values, n, threshold, allowed),
            trig_int,
        );
        assert_eq!(
            got, want,
            "n {n} seed {seed} margin {margin} threshold {threshold}"
        );
        for w in lags.windows(2) {
            assert!(w[0] < w[1]);
        }
        // Nothing far below the threshold is recomputed (by the same f64
        // rule as the choice: in f32, `|s| + margin` can round down onto the
        // threshold for a lag the choice rightly kept).
        for &k in &lags {
            let near = (k.saturating_sub(1)..(k + 2).min(n))
                .any(|j| f64::from(screened[j].abs()) + f64::from(margin) > f64::from(threshold));
            assert!(near, "lag {k} recomputed for nothing");
        }
    }

    proptest! {
        #[test]
        fn screened_stacks_give_the_exact_peaks(
            n in 1usize..3000,
            seed in any::<u64>(),
            margin in 0.0f32..0.3,
            threshold in 0.5f32..3.0,
            trig_int in 0usize..40,
        ) {
            check(n, seed, margin, threshold, trig_int);
        }
    }

    #[test]
    fn the_lowered_threshold_keeps_every_lag_within_the_margin() {
        for (t, m) in [(1.0f32, 0.1f32), (3.7, 0.0123), (0.05, 0.1), (2.0, 0.0)] {
            let v = lowered_threshold(t, m);
            assert!(f64::from(v) <= f64::from(t) - f64::from(m), "{t} {m}");
            assert!(f64::from(v) > f64::from(t) - f64::from(m) - 1e-6, "{t} {m}");
        }
        assert_eq!(
            with_neighbours(vec![5, 0, 5, 9], 10),
            vec![0, 1, 4, 5, 6, 8, 9]
        );
    }

    #[test]
    fn a_zero_margin_recomputes_only_lags_above_the_threshold() {
        let s = [0.0, 2.0, 0.5, 0.1, -3.0, 0.2];
        assert_eq!(lags_to_recompute(&s, 1.0, 0.0), vec![0, 1, 2, 3, 4, 5]);
        assert_eq!(lags_to_recompute(&s[..3], 1.0, 0.0), vec![0, 1, 2]);
        assert_eq!(
            lags_to_recompute(&[0.1, 0.2, 0.9, 0.1], 1.0, 0.05),
            Vec::<usize>::new()
        );
        assert_eq!(
            lags_to_recompute(&[0.1, 0.2, 0.96, 0.1], 1.0, 0.05),
            vec![1, 2, 3]
        );
        // 0.5 + (0.5 + 2⁻²⁴) rounds to 1.0 in f32, but is above it.
        let m = f32::from_bits(0.5f32.to_bits() + 1);
        assert_eq!(lags_to_recompute(&[0.0, 0.5, 0.0], 1.0, m), vec![0, 1, 2]);
    }
}
