//! What the tests of the kernels' CPU models share: band-limited noise,
//! template channels as the cases write them, and days made from samples
//! and masks.

use std::sync::Arc;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::{normalize_template, ChannelNorm, DayChannel, DayView, StackChannel, StackTemplate};

/// Band-limited noise: a moving sum of 4 uniform samples in [−1, 1).
pub fn noise(r: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    let white: Vec<f32> = (0..n + 3).map(|_| r.gen_range(-1.0..1.0)).collect();
    (0..n).map(|i| white[i..i + 4].iter().sum()).collect()
}

/// (channel, pad, weight, raw waveform).
pub type TemplateChannel = (usize, usize, f32, Vec<f32>);

/// A template of raw channels, normalized as detection does.
pub fn stack_template(channels: &[TemplateChannel]) -> StackTemplate {
    StackTemplate {
        channels: channels
            .iter()
            .map(|(c, p, w, raw)| StackChannel {
                channel: *c,
                pad: *p,
                weight: *w,
                waveform: Arc::from(normalize_template(raw).unwrap()),
            })
            .collect(),
    }
}

/// Each channel's moving normalization for templates of `m` samples.
pub fn norms(data: &[Vec<f32>], masks: &[Vec<bool>], m: usize) -> Vec<ChannelNorm> {
    data.iter()
        .zip(masks)
        .map(|(x, k)| ChannelNorm::new(x, k, m))
        .collect()
}

/// The day of `data` with its `norms`, for templates of `m` samples.
pub fn day_view<'a>(data: &'a [Vec<f32>], norms: &'a [ChannelNorm], m: usize) -> DayView<'a> {
    DayView::new(
        data.iter()
            .zip(norms)
            .map(|(data, norm)| DayChannel { data, norm })
            .collect(),
        data[0].len(),
        m,
    )
}
