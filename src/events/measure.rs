//! Picks and relative magnitudes of one detection, from what detection
//! measured on each template channel while the day was in memory.
//!
//! Picks follow EQcorrscan's `lag_calc`: a template channel whose best CC
//! within ±shift_len reaches `min_cc` gives a pick at its template pick
//! moved by the detection and that lag. Its phase is the template
//! channel's own (`lag_calc` takes the template's pick on that channel as
//! well, and guesses from the component letter, Z → P else S, only where
//! there is none).
//!
//! A channel's magnitude difference is `log10` of the ratio of its
//! amplitude (standard deviation over the template's window, or largest
//! |value|) to the template's; by default with the correction of Schaff &
//! Richards (2014) for noise and dissimilarity, as EQcorrscan's
//! `relative_magnitude` applies it:
//! `Δm = log10(A_d / A_t) + log10(sqrt((1 + 1/snr_d²) / (1 + 1/snr_t²)) · cc)`,
//! where `snr` is the window's RMS over the RMS of the template's length of
//! data before it. The event's magnitude is the template's plus the median
//! over the channels whose best CC reaches `min_cc` and whose SNR, on the
//! detection and on the template, reaches `min_snr`.

use super::{EventPick, RelMag};
use crate::epoch::Nanos;

/// One template channel at a detection.
#[derive(Debug, Clone)]
pub struct ChannelAt<'a> {
    pub seed_id: &'a str,
    pub phase: &'a str,
    /// Where the pick would be at lag 0: the detection time plus the
    /// channel's offset from the template's earliest channel plus its pick
    /// offset.
    pub at_zero_lag: Nanos,
    pub rate: f64,
    /// Largest CC within ±shift_len, its lag in samples, and that lag to a
    /// fraction of a sample.
    pub best_cc: f32,
    pub best_lag: i32,
    pub lag: f32,
    /// The detected window's standard deviation and largest |value|, and
    /// the RMS of the data before it.
    pub amplitude: f32,
    pub peak: f32,
    pub noise_rms: Option<f32>,
    /// The same of the template channel.
    pub template_amplitude: f32,
    pub template_peak: f32,
    pub template_noise_rms: Option<f32>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PickOptions {
    pub min_cc: f32,
    /// Picks at the sub-sample lag instead of the sample's.
    pub interpolate: bool,
}

/// The amplitude that magnitudes compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Amplitude {
    /// Standard deviation over the template's window.
    Std,
    /// Largest |value| in it.
    Peak,
}

impl std::str::FromStr for Amplitude {
    type Err = String;
    fn from_str(s: &str) -> Result<Amplitude, String> {
        match s.to_ascii_lowercase().as_str() {
            "std" => Ok(Amplitude::Std),
            "peak" => Ok(Amplitude::Peak),
            _ => Err(format!("unknown amplitude '{s}' (std or peak)")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MagnitudeOptions {
    pub min_cc: f32,
    pub min_snr: f32,
    /// Fewer qualifying channels give no magnitude.
    pub min_channels: usize,
    pub amplitude: Amplitude,
    /// The Schaff & Richards correction; plain amplitude ratios without.
    pub correct: bool,
}

/// Picks of the channels whose best CC reaches `min_cc`, in channel order.
pub fn picks(channels: &[ChannelAt], opts: &PickOptions) -> Vec<EventPick> {
    channels
        .iter()
        .filter(|c| c.best_cc >= opts.min_cc)
        .map(|c| {
            let lag = if opts.interpolate {
                c.lag as f64
            } else {
                c.best_lag as f64
            };
            EventPick {
                seed_id: c.seed_id.to_string(),
                phase: c.phase.to_string(),
                time: c.at_zero_lag + (lag * 1e9 / c.rate).round() as Nanos,
                cc: c.best_cc,
            }
        })
        .collect()
}

/// A channel's magnitude difference to the template, if it qualifies.
pub fn channel_delta(c: &ChannelAt, opts: &MagnitudeOptions) -> Option<f64> {
    let (d, t) = match opts.amplitude {
        Amplitude::Std => (c.amplitude, c.template_amplitude),
        Amplitude::Peak => (c.peak, c.template_peak),
    };
    let snr_d = c.amplitude as f64 / c.noise_rms? as f64;
    let snr_t = c.template_amplitude as f64 / c.template_noise_rms? as f64;
    let min_snr = opts.min_snr as f64;
    let qualifies = c.best_cc >= opts.min_cc && snr_d >= min_snr && snr_t >= min_snr;
    if !(qualifies && d > 0.0 && t > 0.0) {
        return None;
    }
    let ratio = (d as f64 / t as f64).log10();
    if !opts.correct {
        return Some(ratio);
    }
    let noise = ((1.0 + snr_d.powi(-2)) / (1.0 + snr_t.powi(-2))).sqrt();
    Some(ratio + (noise * c.best_cc as f64).log10())
}

/// The event's magnitude: the template's plus the median of its channels'
/// differences, with their number and median absolute deviation; none when
/// the template has no magnitude or too few channels qualify.
pub fn relative_magnitude(
    template_magnitude: Option<f64>,
    channels: &[ChannelAt],
    opts: &MagnitudeOptions,
) -> Option<RelMag> {
    let base = template_magnitude.filter(|m| m.is_finite())?;
    let mut deltas: Vec<f64> = channels
        .iter()
        .filter_map(|c| channel_delta(c, opts))
        .collect();
    if deltas.len() < opts.min_channels.max(1) {
        return None;
    }
    let mid = median(&mut deltas);
    let mut dev: Vec<f64> = deltas.iter().map(|d| (d - mid).abs()).collect();
    Some(RelMag {
        value: base + mid,
        n_channels: deltas.len(),
        spread: median(&mut dev),
    })
}

/// The median (the mean of the middle two of an even count).
fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel(best_cc: f32, scale: f32, snr: f32) -> ChannelAt<'static> {
        ChannelAt {
            seed_id: "XX.ST01..EHZ",
            phase: "P",
            at_zero_lag: 1_000_000_000,
            rate: 100.0,
            best_cc,
            best_lag: -3,
            lag: -2.5,
            amplitude: 2.0 * scale,
            peak: 6.0 * scale,
            noise_rms: Some(2.0 * scale / snr),
            template_amplitude: 2.0,
            template_peak: 6.0,
            template_noise_rms: Some(0.02),
        }
    }

    #[test]
    fn picks_keep_channels_at_min_cc_and_move_by_the_lag() {
        let cs = [channel(0.4, 1.0, 50.0), channel(0.39, 1.0, 50.0)];
        let opts = PickOptions {
            min_cc: 0.4,
            interpolate: false,
        };
        let p = picks(&cs, &opts);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].time, 1_000_000_000 - 30_000_000);
        let p = picks(
            &cs,
            &PickOptions {
                interpolate: true,
                ..opts
            },
        );
        assert_eq!(p[0].time, 1_000_000_000 - 25_000_000);
    }

    #[test]
    fn magnitudes_recover_the_amplitude_ratio() {
        let opts = MagnitudeOptions {
            min_cc: 0.5,
            min_snr: 5.0,
            min_channels: 2,
            amplitude: Amplitude::Std,
            correct: false,
        };
        // Ten times the template's amplitude: one magnitude unit more.
        let cs = [channel(0.9, 10.0, 100.0), channel(0.9, 10.0, 100.0)];
        let m = relative_magnitude(Some(2.0), &cs, &opts).unwrap();
        assert!((m.value - 3.0).abs() < 1e-9 && m.n_channels == 2, "{m:?}");
        // The correction: log10(cc) and the noise terms.
        let c = channel(0.5, 10.0, 10.0);
        let corrected = channel_delta(
            &c,
            &MagnitudeOptions {
                correct: true,
                ..opts
            },
        )
        .unwrap();
        let (snr_d, snr_t) = (10.0f64, 100.0f64);
        let want = 1.0 + (((1.0 + snr_d.powi(-2)) / (1.0 + snr_t.powi(-2))).sqrt() * 0.5).log10();
        assert!((corrected - want).abs() < 1e-6, "{corrected} {want}");
        // Too few channels, low CC or low SNR: no magnitude.
        assert!(relative_magnitude(Some(2.0), &cs[..1], &opts).is_none());
        let weak = [channel(0.49, 10.0, 100.0), channel(0.9, 10.0, 4.0)];
        assert!(relative_magnitude(Some(2.0), &weak, &opts).is_none());
        assert!(relative_magnitude(None, &cs, &opts).is_none());
    }
}
