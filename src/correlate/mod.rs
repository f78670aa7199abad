//! Normalized cross-correlation of every template channel with the day's
//! data, shifted by each channel's moveout and stacked.
//!
//! The seam between backends is [`Backend`]: it receives a preprocessed day
//! ([`DayView`]) and a batch of templates ([`StackTemplate`]) and fills one
//! stacked trace per template. Definitions (EQcorrscan's):
//!
//! * template channel `t̂ = (t − mean t) / (M · std t)` (population std);
//! * `cc_c[j] = Σ_i t̂_i x[j+i] / std(x[j..j+M])`, 0 where that window is
//!   flat or touches a gap, clipped to ±1;
//! * `stack[k] = Σ_c w_c · cc_c[k + pad_c]` for `k + pad_c + M ≤ N`.

pub mod cpu;
pub mod naive;
pub mod norm;

pub use norm::ChannelNorm;

use crate::error::Result;

/// One preprocessed channel of the day: samples with gaps zeroed, and the
/// moving normalization for windows of the template length.
pub struct DayChannel<'a> {
    pub data: &'a [f32],
    pub norm: &'a ChannelNorm,
}

/// The day as the correlator sees it: all channels share one sample grid.
pub struct DayView<'a> {
    pub channels: Vec<DayChannel<'a>>,
    /// Samples per channel (N).
    pub len: usize,
    /// Template length (M).
    pub template_len: usize,
}

impl DayView<'_> {
    /// Number of stacked lags: `N − M + 1`.
    pub fn n_lags(&self) -> usize {
        (self.len + 1).saturating_sub(self.template_len)
    }
}

/// One channel of a template, ready to correlate.
#[derive(Debug, Clone)]
pub struct StackChannel {
    /// Index into [`DayView::channels`].
    pub channel: usize,
    /// Moveout in samples from the template's earliest channel.
    pub pad: usize,
    pub weight: f32,
    /// `t̂`: zero mean, scaled by `1 / (M · std)`.
    pub waveform: Vec<f32>,
}

#[derive(Debug, Clone)]
pub struct StackTemplate {
    pub channels: Vec<StackChannel>,
}

/// Normalize a template channel as `(t − mean) / (M · std)`; `None` when
/// the waveform is flat (it cannot correlate).
pub fn normalize_template(t: &[f32]) -> Option<Vec<f32>> {
    let m = t.len() as f64;
    let mean = t.iter().map(|&v| v as f64).sum::<f64>() / m;
    let var = t.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / m;
    let std = var.sqrt();
    if !(std > 0.0) || !std.is_finite() || var <= 1e-12 * (mean * mean) {
        return None;
    }
    Some(
        t.iter()
            .map(|&v| ((v as f64 - mean) / (m * std)) as f32)
            .collect(),
    )
}

/// A correlation backend. `stacks[i]` (length [`DayView::n_lags`]) receives
/// the stacked trace of `templates[i]`; it is overwritten, not added to.
pub trait Backend: Send + Sync {
    fn name(&self) -> String;
    fn stack(
        &self,
        day: &DayView,
        templates: &[StackTemplate],
        stacks: &mut [Vec<f32>],
    ) -> Result<()>;
}
