//! Moving normalization of one channel: `1 / std(x[j..j+M])` for every lag,
//! computed once per channel and day (not per template), in f64.

/// Windows whose variance is below this fraction of their mean square are
/// flat (a constant offset plus rounding noise): they do not correlate.
const FLAT_VARIANCE: f64 = 1e-12;

/// `inv_std[j]` is `1 / std` of the window starting at sample `j`, or 0 when
/// the window touches a gap or is flat.
#[derive(Debug, Clone, Default)]
pub struct ChannelNorm {
    pub inv_std: Vec<f32>,
    /// The window's mean, where asked for ([`ChannelNorm::with_mean`]): the
    /// mixed-precision kernel bounds its error with it. Empty otherwise.
    pub mean: Vec<f32>,
}

impl ChannelNorm {
    /// `mask[i]` is `true` where sample `i` holds data.
    pub fn new(data: &[f32], mask: &[bool], m: usize) -> ChannelNorm {
        Self::build(data, mask, m, false)
    }

    /// As [`ChannelNorm::new`], keeping each window's mean too.
    pub fn with_mean(data: &[f32], mask: &[bool], m: usize) -> ChannelNorm {
        Self::build(data, mask, m, true)
    }

    fn build(data: &[f32], mask: &[bool], m: usize, keep_mean: bool) -> ChannelNorm {
        let n = data.len();
        assert_eq!(n, mask.len());
        if m == 0 || n < m {
            return ChannelNorm::default();
        }
        let n_lags = n - m + 1;
        let mut inv_std = vec![0f32; n_lags];
        let mut means = if keep_mean {
            vec![0f32; n_lags]
        } else {
            Vec::new()
        };
        // Counters over the window: samples missing, and neighbours equal
        // to their predecessor (M − 1 of them means the window is constant).
        let missing = |i: usize| usize::from(!mask[i]);
        let same = |i: usize| usize::from(i > 0 && data[i] == data[i - 1]);
        let mut n_missing: usize = (0..m).map(missing).sum();
        let mut n_same: usize = (1..m).map(same).sum();
        // Running sums drift by rounding; they are re-anchored exactly at
        // the first lag of every run of M, which costs one extra pass over
        // the data in total (runs instead of `j % m`: a division per lag
        // took more time than the rest of the loop).
        let mf = m as f64;
        for run in (0..n_lags).step_by(m) {
            let (mut sum, mut sumsq) =
                data[run..run + m].iter().fold((0f64, 0f64), |(s, q), &v| {
                    let v = v as f64;
                    (s + v, q + v * v)
                });
            for j in run..n_lags.min(run + m) {
                if j > run {
                    let (a, b) = (data[j - 1] as f64, data[j + m - 1] as f64);
                    sum += b - a;
                    sumsq += b * b - a * a;
                }
                if j > 0 {
                    n_missing = n_missing + missing(j + m - 1) - missing(j - 1);
                    n_same = n_same + same(j + m - 1) - same(j);
                }
                if keep_mean {
                    means[j] = (sum / mf) as f32;
                }
                if n_missing > 0 || n_same == m - 1 {
                    continue;
                }
                // M² × the variance, and 1 / std = M / sqrt of it: one
                // square root and one division per lag (and the mean's,
                // where kept), as the divider is what bounds this loop.
                let (scaled_sq, scaled_var) = (mf * sumsq, mf * sumsq - sum * sum);
                if scaled_var > FLAT_VARIANCE * scaled_sq && scaled_var.is_finite() {
                    inv_std[j] = (mf / scaled_var.sqrt()) as f32;
                }
            }
        }
        ChannelNorm {
            inv_std,
            mean: means,
        }
    }

    pub fn is_valid(&self, j: usize) -> bool {
        self.inv_std.get(j).is_some_and(|&v| v > 0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_and_flat_windows_are_zero() {
        let m = 4;
        let mut data: Vec<f32> = (0..20).map(|i| ((i * 7919) % 13) as f32).collect();
        let mut mask = vec![true; 20];
        mask[10] = false;
        data[10] = 0.0;
        for v in &mut data[14..20] {
            *v = 5.0;
        }
        let n = ChannelNorm::new(&data, &mask, m);
        assert_eq!(n.inv_std.len(), 17);
        for j in 7..=10 {
            assert_eq!(n.inv_std[j], 0.0, "window {j} touches the gap");
        }
        assert_eq!(n.inv_std[14], 0.0, "flat window");
        assert_eq!(n.inv_std[16], 0.0, "flat window");
        assert!(n.inv_std[13] > 0.0, "window 13 is not flat");
        // Exact value against a direct computation.
        let w: Vec<f64> = data[2..6].iter().map(|&v| v as f64).collect();
        let mean = w.iter().sum::<f64>() / 4.0;
        let var = w.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 4.0;
        assert!(((n.inv_std[2] as f64) - 1.0 / var.sqrt()).abs() < 1e-6);
    }
}
