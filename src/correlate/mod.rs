//! Normalized cross-correlation of every template channel with the day's
//! data, shifted by each channel's moveout and stacked.
//!
//! The seam between backends is [`Backend`]: it receives a preprocessed day
//! ([`DayView`]) and templates ([`StackTemplate`]) and returns each
//! template's peaks ([`Backend::peaks`]; by default from stacked traces on
//! the host, [`Backend::stack`]). Definitions (EQcorrscan's):
//!
//! * template channel `t̂ = (t − mean t) / (M · std t)` (population std);
//! * `cc_c[j] = Σ_i t̂_i x[j+i] / std(x[j..j+M])`, 0 where that window is
//!   flat or touches a gap, clipped to ±1;
//! * `stack[k] = Σ_c w_c · cc_c[k + pad_c]` for `k + pad_c + M ≤ N`.

pub mod cpu;
pub mod cuda;
mod device;
#[cfg(test)]
mod kernel_model;
pub mod mixed;
#[cfg(test)]
mod mixed_model;
pub mod naive;
pub mod norm;
pub mod screen;
#[cfg(test)]
mod test_support;

pub use device::{cuda_devices, open_backends, DeviceSpec};
pub use mixed::{MixedKernel, Precision};
pub use norm::ChannelNorm;

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rayon::prelude::*;

use crate::detect::{self, ThresholdType};
use crate::error::Result;
use crate::timing::{self, Stage};

/// One preprocessed channel of the day: samples with gaps zeroed, and the
/// moving normalization for windows of the template length.
pub struct DayChannel<'a> {
    pub data: &'a [f32],
    pub norm: &'a ChannelNorm,
}

/// The day as the correlator sees it: all channels share one sample grid.
pub struct DayView<'a> {
    /// Distinct for every day loaded in this process: a device backend keeps
    /// a day in device memory under it from one call to the next.
    pub id: u64,
    pub channels: Vec<DayChannel<'a>>,
    /// Samples per channel (N).
    pub len: usize,
    /// Template length (M).
    pub template_len: usize,
}

/// A fresh [`DayView::id`].
pub fn new_day_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl<'a> DayView<'a> {
    /// A view with a fresh id.
    pub fn new(channels: Vec<DayChannel<'a>>, len: usize, template_len: usize) -> DayView<'a> {
        DayView {
            id: new_day_id(),
            channels,
            len,
            template_len,
        }
    }
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
    /// `t̂`: zero mean, scaled by `1 / (M · std)`; shared by every day
    /// that correlates it.
    pub waveform: Arc<[f32]>,
}

#[derive(Debug, Clone)]
pub struct StackTemplate {
    pub channels: Vec<StackChannel>,
}

impl StackTemplate {
    /// The largest moveout: the last `max_pad` lags of the stack miss a
    /// channel's window.
    pub fn max_pad(&self) -> usize {
        self.channels.iter().map(|c| c.pad).max().unwrap_or(0)
    }
}

/// Normalize a template channel as `(t − mean) / (M · std)`; `None` when
/// the waveform is flat (it cannot correlate).
pub fn normalize_template(t: &[f32]) -> Option<Vec<f32>> {
    let m = t.len() as f64;
    let mean = t.iter().map(|&v| v as f64).sum::<f64>() / m;
    let var = t.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / m;
    let std = var.sqrt();
    // Written so that NaN (an empty or non-finite waveform) is flat too.
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    if !(std > 0.0) || !std.is_finite() || var <= 1e-12 * (mean * mean) {
        return None;
    }
    Some(
        t.iter()
            .map(|&v| ((v as f64 - mean) / (m * std)) as f32)
            .collect(),
    )
}

/// How a template's stacked trace becomes peaks, with the rules of
/// [`crate::detect`].
#[derive(Debug, Clone)]
pub struct PeakSpec {
    pub threshold_type: ThresholdType,
    pub threshold: f64,
    /// `trig_int` in samples.
    pub trig_int: usize,
    /// The day's own lags: the median is taken over them (the zeroed tail
    /// included) and only peaks among them are kept, while peaks around
    /// them still suppress weaker ones inside.
    pub day: Range<usize>,
    /// Peaks where fewer channels have a valid window are refused before
    /// declustering.
    pub min_channels: usize,
    /// Bytes of host memory for stacked traces: backends that stack on the
    /// host work through the templates in batches that fit.
    pub host_memory: usize,
}

impl PeakSpec {
    /// The threshold of a template with `n_channels` channels whose stack
    /// has median |stack| `mad` over the day.
    pub fn threshold_for(&self, mad: f32, n_channels: usize) -> f32 {
        detect::threshold(self.threshold_type, self.threshold, mad, n_channels)
    }
}

/// A template's result on one day.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplatePeaks {
    /// Median of |stack| over the day's lags (EQcorrscan's "MAD").
    pub mad: f32,
    pub threshold: f32,
    /// Declustered peaks `(lag, value)` within the day, in lag order.
    pub peaks: Vec<(usize, f32)>,
}

/// A correlation backend.
pub trait Backend: Send + Sync {
    fn name(&self) -> String;

    /// `stacks[i]` (length [`DayView::n_lags`]) receives the stacked trace
    /// of `templates[i]`; it is overwritten, not added to.
    fn stack(
        &self,
        day: &DayView,
        templates: &[StackTemplate],
        stacks: &mut [Vec<f32>],
    ) -> Result<()>;

    /// The peaks of every template on the day, in template order. By
    /// default the stacks are made with [`Backend::stack`] and searched on
    /// the host ([`host_peaks`]); a device backend searches them where it
    /// made them and returns only the candidates.
    fn peaks(
        &self,
        day: &DayView,
        templates: &[StackTemplate],
        spec: &PeakSpec,
    ) -> Result<Vec<TemplatePeaks>> {
        host_peaks(self, day, templates, spec, &mut |_, _| {})
    }

    /// Start copying a day to where the backend computes, so that the copy
    /// overlaps the work on the day before; [`Backend::peaks`] and
    /// [`Backend::stack`] of that day then find it there. Backends that
    /// read the day in place (the CPU) have nothing to do.
    fn prefetch(&self, _day: &DayView) -> Result<()> {
        Ok(())
    }

    /// Whether the day's normalization must carry each window's mean
    /// ([`ChannelNorm::with_mean`]): the mixed-precision kernel's error
    /// bound needs it.
    fn needs_window_means(&self) -> bool {
        false
    }
}

/// The start of every [`Backend::stack`]: each of `stacks` made `n_lags`
/// long (one per template), its contents left for the backend to overwrite
/// (clearing a batch of day-long traces first would cost a pass over
/// gigabytes); false when there is nothing to correlate.
pub fn sized_stacks(day: &DayView, templates: &[StackTemplate], stacks: &mut [Vec<f32>]) -> bool {
    assert_eq!(templates.len(), stacks.len());
    let n_lags = day.n_lags();
    for s in stacks.iter_mut() {
        if s.capacity() < n_lags {
            // Zeroed allocation: fresh pages from the system, not a pass
            // that writes gigabytes of zeros on one thread (the backend's
            // workers fault them in as they write).
            *s = vec![0.0; n_lags];
        } else {
            s.resize(n_lags, 0.0);
        }
    }
    n_lags > 0 && !templates.is_empty()
}

/// [`Backend::peaks`] on the host: stacks in batches that fit
/// `spec.host_memory`, each template's invalid tail zeroed and handed to
/// `inspect(template index, stack)`, then its median, threshold and peaks.
pub fn host_peaks<B: Backend + ?Sized>(
    backend: &B,
    day: &DayView,
    templates: &[StackTemplate],
    spec: &PeakSpec,
    inspect: &mut dyn FnMut(usize, &[f32]),
) -> Result<Vec<TemplatePeaks>> {
    let n_lags = day.n_lags();
    let batch = (spec.host_memory / (n_lags.max(1) * 4)).max(1);
    // Stacked traces are reused from batch to batch.
    let mut stacks = vec![Vec::new(); batch.min(templates.len())];
    let mut out = Vec::with_capacity(templates.len());
    for (b, chunk) in templates.chunks(batch).enumerate() {
        let stacks = &mut stacks[..chunk.len()];
        backend.stack(day, chunk, stacks)?;
        for (i, (t, stack)) in chunk.iter().zip(stacks.iter_mut()).enumerate() {
            // Only lags where every channel's window fits before the end of
            // the data are valid; the rest is zero (as EQcorrscan zeroes
            // its tail) and still counts in the median.
            stack[n_lags.saturating_sub(t.max_pad())..].fill(0.0);
            inspect(b * batch + i, stack);
        }
        out.par_extend(chunk.par_iter().zip(stacks.par_iter()).map_init(
            Vec::new,
            |buf, (t, stack)| {
                let median = timing::start(Stage::Median);
                let mad = if spec.day.start < spec.day.end {
                    detect::median_abs_with(&stack[spec.day.clone()], buf)
                } else {
                    0.0
                };
                drop(median);
                let _t = timing::start(Stage::Peaks);
                let threshold = spec.threshold_for(mad, t.channels.len());
                let peaks = detect::find_peaks(stack, threshold, spec.trig_int, |k| {
                    channels_used(day, t, k) >= spec.min_channels
                })
                .into_iter()
                .filter(|(k, _)| spec.day.contains(k))
                .collect();
                TemplatePeaks {
                    mad,
                    threshold,
                    peaks,
                }
            },
        ));
    }
    Ok(out)
}

/// The peaks among candidates found elsewhere (strict local extrema above
/// the threshold, in any order), by the rules [`host_peaks`] applies:
/// refuse those with too few channels, decluster, keep the day's.
pub fn peaks_from_candidates(
    day: &DayView,
    template: &StackTemplate,
    spec: &PeakSpec,
    mut candidates: Vec<(usize, f32)>,
) -> Vec<(usize, f32)> {
    candidates.retain(|&(k, _)| channels_used(day, template, k) >= spec.min_channels);
    detect::decluster(candidates, spec.trig_int)
        .into_iter()
        .filter(|(k, _)| spec.day.contains(k))
        .collect()
}

/// Channels of `template` with a valid window at stack lag `k` (data, not
/// flat, no gap).
pub fn channels_used(day: &DayView, template: &StackTemplate, k: usize) -> usize {
    template
        .channels
        .iter()
        .filter(|c| day.channels[c.channel].norm.is_valid(k + c.pad))
        .count()
}
