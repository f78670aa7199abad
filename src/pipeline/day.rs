//! One day of detection: load, correlate and stack every template, detect.
//!
//! The day's data are read with a lead of `trig_int` before midnight (so
//! peaks just before the day can suppress weaker ones just after it, as in
//! one continuous run) and an overlap after the next midnight of the
//! longest template span (so every lag of the day has its full windows). A
//! detection belongs to the day its time falls in.

use std::sync::Arc;

use rayon::prelude::*;

use crate::archive::Archive;
use crate::correlate::{
    self, Backend, ChannelNorm, DayChannel, DayView, PeakSpec, StackChannel, StackTemplate,
};
use crate::detect::{self, ChannelPick, DetectParams, Detection};
use crate::epoch::{self, sample_time, Day, Nanos};
use crate::error::Result;
use crate::preprocess::{rms, std_dev};
use crate::problem::Problem;
use crate::shard::Shard;
use crate::stretch::{self, Stretch};
use crate::templates::TemplateSet;
use crate::timing::{self, Stage};

#[derive(Debug, Clone, Default)]
pub struct DayResult {
    pub detections: Vec<Detection>,
    pub problems: Vec<Problem>,
    /// False when the day had no data for any template channel.
    pub had_data: bool,
}

/// Samples of lead before midnight.
fn lead_samples(params: &DetectParams, rate: f64) -> usize {
    detect::trig_int_samples(params.trig_int, rate) + 2
}

/// Samples read past the next midnight: the longest template span.
fn tail_samples(set: &TemplateSet) -> usize {
    set.max_pad() + set.len
}

/// Every template channel normalized (`t̂`, see [`correlate`]) once per
/// run and shared by the days in flight: at 50,000 templates × 30 channels
/// × 800 samples a copy is 4.8 GB, too much to make per day.
pub struct NormalizedTemplates {
    /// Per template and channel; `None` for a flat channel (it cannot
    /// correlate).
    waveforms: Vec<Vec<Option<Arc<[f32]>>>>,
}

impl NormalizedTemplates {
    /// The templates of `shard` (all without one); the others are left
    /// out, as they are not correlated.
    pub fn new(set: &TemplateSet, shard: Option<Shard>) -> NormalizedTemplates {
        NormalizedTemplates {
            waveforms: set
                .templates
                .par_iter()
                .enumerate()
                .map(|(ti, t)| {
                    if shard.is_some_and(|s| !s.contains(ti)) {
                        return Vec::new();
                    }
                    t.channels
                        .iter()
                        .map(|c| correlate::normalize_template(&c.data).map(Arc::from))
                        .collect()
                })
                .collect(),
        }
    }
}

/// A template's channels present in the stretch, normalized.
struct Prepared {
    stack: StackTemplate,
    /// Template channel index of each stack channel.
    template_channel: Vec<usize>,
}

/// One entry per template of the set; `None` for templates outside
/// `shard` and for those with no channel in the stretch.
fn prepare(
    set: &TemplateSet,
    normalized: &NormalizedTemplates,
    stretch: &Stretch,
    shard: Option<Shard>,
    problems: &mut Vec<Problem>,
) -> Vec<Option<Prepared>> {
    set.templates
        .iter()
        .zip(&normalized.waveforms)
        .enumerate()
        .map(|(ti, (t, waves))| {
            if shard.is_some_and(|s| !s.contains(ti)) {
                return None;
            }
            let mut stack = StackTemplate {
                channels: Vec::new(),
            };
            let mut template_channel = Vec::new();
            for (ci, (c, wave)) in t.channels.iter().zip(waves).enumerate() {
                let Some(idx) = stretch.channel_index(&c.id) else {
                    continue;
                };
                let Some(waveform) = wave else {
                    problems.push(Problem::FlatTemplate {
                        template: t.event.id.clone(),
                        channel: c.id.clone(),
                    });
                    continue;
                };
                stack.channels.push(StackChannel {
                    channel: idx,
                    pad: c.pad,
                    weight: c.weight,
                    waveform: waveform.clone(),
                });
                template_channel.push(ci);
            }
            (!stack.channels.is_empty()).then_some(Prepared {
                stack,
                template_channel,
            })
        })
        .collect()
}

/// A day read and processed, ready to correlate: the stretch of data
/// around it and each channel's moving normalization. Loading is apart from
/// correlating so that the next day can be loaded (and copied to a device)
/// while this one is correlated.
pub struct LoadedDay {
    pub day: Day,
    stretch: Stretch,
    /// The span of the stretch that is correlated; `None`: the day has no
    /// data.
    extent: Option<(usize, usize)>,
    norms: Vec<ChannelNorm>,
    /// The id of [`LoadedDay::view`], the same every time.
    view_id: u64,
    template_len: usize,
    lead: usize,
    n_day: usize,
}

impl LoadedDay {
    /// What the backends correlate; `None` without data.
    pub fn view(&self) -> Option<DayView<'_>> {
        let (first, end) = self.extent?;
        Some(DayView {
            id: self.view_id,
            channels: self
                .stretch
                .channels
                .iter()
                .zip(&self.norms)
                .map(|(c, norm)| DayChannel {
                    data: &c.data[first..end],
                    norm,
                })
                .collect(),
            len: end - first,
            template_len: self.template_len,
        })
    }
}

/// Read and process one day's data; with `window_means` the normalization
/// keeps each window's mean ([`Backend::needs_window_means`]).
pub fn load_day(
    set: &TemplateSet,
    archive: &Archive,
    day: Day,
    params: &DetectParams,
    window_means: bool,
) -> LoadedDay {
    let rate = set.rate;
    let m = set.len;
    let lead = lead_samples(params, rate);
    let n_day = (epoch::NS_PER_DAY as f64 * rate / 1e9).round() as usize;
    let start = sample_time(epoch::day_start(day), -(lead as i64), rate);
    let len = lead + n_day + tail_samples(set);
    let stretch = stretch::load(archive, &set.channel_ids(), &set.recipe, rate, start, len);
    // The day proper in stretch coordinates.
    let own = |i: usize| (lead + i).saturating_sub(stretch.offset);
    let extent = stretch.data_extent(own(0), own(n_day));
    // Lag `k` of the stacks is sample `first + k` of the stretch.
    let norms = match extent {
        Some((first, end)) => stretch
            .channels
            .par_iter()
            .map(|c| {
                let _t = timing::start(Stage::Normalize);
                let (data, mask) = (&c.data[first..end], &c.mask[first..end]);
                if window_means {
                    ChannelNorm::with_mean(data, mask, m)
                } else {
                    ChannelNorm::new(data, mask, m)
                }
            })
            .collect(),
        None => Vec::new(),
    };
    LoadedDay {
        day,
        stretch,
        extent,
        norms,
        view_id: correlate::new_day_id(),
        template_len: m,
        lead,
        n_day,
    }
}

/// Run detection for one day.
pub fn detect_day(
    set: &TemplateSet,
    archive: &Archive,
    day: Day,
    params: &DetectParams,
    backend: &dyn Backend,
) -> Result<DayResult> {
    detect_loaded(
        set,
        &NormalizedTemplates::new(set, params.template_shard),
        &load_day(set, archive, day, params, backend.needs_window_means()),
        params,
        backend,
        None,
    )
}

/// [`detect_day`], also handing each template's stacked trace to `inspect`
/// as `(template index, time of lag 0, stack)`, after its invalid tail is
/// zeroed (for checks against other tools and for debugging). The stacks
/// are made with [`Backend::stack`] and searched on the host.
pub fn detect_day_with_stacks(
    set: &TemplateSet,
    archive: &Archive,
    day: Day,
    params: &DetectParams,
    backend: &dyn Backend,
    inspect: &mut dyn FnMut(usize, Nanos, &[f32]),
) -> Result<DayResult> {
    // The stacks come from Backend::stack, in fp32.
    let loaded = load_day(set, archive, day, params, false);
    let normalized = NormalizedTemplates::new(set, params.template_shard);
    detect_loaded(set, &normalized, &loaded, params, backend, Some(inspect))
}

/// What sees each template's stacked trace: `(template index, time of
/// lag 0, stack)`.
pub type Inspect<'a> = &'a mut dyn FnMut(usize, Nanos, &[f32]);

/// Correlate, stack and detect on a loaded day.
pub fn detect_loaded(
    set: &TemplateSet,
    normalized: &NormalizedTemplates,
    loaded: &LoadedDay,
    params: &DetectParams,
    backend: &dyn Backend,
    inspect: Option<Inspect>,
) -> Result<DayResult> {
    let rate = set.rate;
    let (stretch, lead, n_day) = (&loaded.stretch, loaded.lead, loaded.n_day);
    let mut result = DayResult {
        problems: stretch.problems.clone(),
        ..Default::default()
    };
    let (Some((first, _)), Some(view)) = (loaded.extent, loaded.view()) else {
        return Ok(result);
    };
    result.had_data = true;
    let batch = Batch::prepare(set, normalized, stretch, params, &mut result.problems);
    let spec = peak_spec(
        params,
        rate,
        view.n_lags(),
        lead,
        n_day,
        stretch.offset + first,
    );
    let t0 = sample_time(stretch.start, first as i64, rate);
    // Stacks are only seen on the host when asked for; otherwise the
    // backend finds the peaks where it computes.
    let peaks = match inspect {
        Some(inspect) => {
            correlate::host_peaks(backend, &view, &batch.templates, &spec, &mut |i, stack| {
                inspect(batch.active[i], t0, stack)
            })?
        }
        None => backend.peaks(&view, &batch.templates, &spec)?,
    };
    let shift = (params.shift_len * rate).round() as usize;
    let found: Vec<Vec<Detection>> = (0..batch.active.len())
        .into_par_iter()
        .map(|i| {
            let (t, tp) = (&batch.templates[i], &peaks[i]);
            tp.peaks
                .par_iter()
                .map(|&(k, v)| {
                    let n_used = correlate::channels_used(&view, t, k);
                    Detection {
                        template: batch.active[i],
                        time: sample_time(stretch.start, (first + k) as i64, rate),
                        cc_sum: v,
                        mean_cc: v / n_used.max(1) as f32,
                        threshold: tp.threshold,
                        mad: tp.mad,
                        n_channels: n_used,
                        channels: channel_picks(t, &batch.channels[i], &view, k, shift),
                    }
                })
                .collect()
        })
        .collect();
    result.detections.extend(found.into_iter().flatten());
    result.detections.sort_by_key(|d| (d.time, d.template));
    Ok(result)
}

/// One template on one day as detection sees it, for plots: its stacked
/// trace with the day's median and threshold, and its channels' processed
/// data, all on one sample grid (lag `k` of the stack is sample `k` of
/// each channel's data; a channel's window at lag `k` starts at `k + pad`).
#[derive(Debug, Clone)]
pub struct TemplateDay {
    /// Time of lag 0.
    pub start: Nanos,
    pub stack: Vec<f32>,
    /// The day's own lags, over which the median is taken.
    pub day: std::ops::Range<usize>,
    pub mad: f32,
    pub threshold: f32,
    /// Per template channel, its processed data; `None` where the day has
    /// none.
    pub channels: Vec<Option<stretch::Channel>>,
}

/// Template `template` of `set` on `day`, correlated as `detect` does it:
/// the day is read for every channel of the set (so the grid, the span and
/// the median are those of the detection run) and only this template is
/// stacked. `None` when the day has no data for the template.
pub fn template_day(
    set: &TemplateSet,
    archive: &Archive,
    day: Day,
    params: &DetectParams,
    template: usize,
    backend: &dyn Backend,
) -> Result<Option<TemplateDay>> {
    // A shard of as many parts as templates holds exactly this one.
    let only = Shard {
        index: template,
        count: set.templates.len(),
    };
    let params = DetectParams {
        template_shard: Some(only),
        ..params.clone()
    };
    let loaded = load_day(set, archive, day, &params, false);
    let (Some((first, end)), Some(view)) = (loaded.extent, loaded.view()) else {
        return Ok(None);
    };
    let normalized = NormalizedTemplates::new(set, params.template_shard);
    let batch = Batch::prepare(set, &normalized, &loaded.stretch, &params, &mut Vec::new());
    if batch.active.is_empty() {
        return Ok(None);
    }
    let (data, rate) = (&loaded.stretch, set.rate);
    let spec = peak_spec(
        &params,
        rate,
        view.n_lags(),
        loaded.lead,
        loaded.n_day,
        data.offset + first,
    );
    let mut stack = Vec::new();
    let peaks = correlate::host_peaks(backend, &view, &batch.templates, &spec, &mut |_, s| {
        stack = s.to_vec()
    })?;
    let channels = set.templates[template]
        .channels
        .iter()
        .map(|c| {
            let ch = &data.channels[data.channel_index(&c.id)?];
            Some(stretch::Channel {
                id: ch.id.clone(),
                data: ch.data[first..end].to_vec(),
                mask: ch.mask[first..end].to_vec(),
            })
        })
        .collect();
    Ok(Some(TemplateDay {
        start: sample_time(data.start, first as i64, rate),
        stack,
        day: spec.day,
        mad: peaks[0].mad,
        threshold: peaks[0].threshold,
        channels,
    }))
}

/// The templates (of the template shard) with channels in a stretch: their
/// indices in the set, and what is correlated (moved out, not copied: a
/// large set is gigabytes).
struct Batch {
    active: Vec<usize>,
    templates: Vec<StackTemplate>,
    channels: Vec<Vec<usize>>,
}

impl Batch {
    fn prepare(
        set: &TemplateSet,
        normalized: &NormalizedTemplates,
        stretch: &Stretch,
        params: &DetectParams,
        problems: &mut Vec<Problem>,
    ) -> Batch {
        let mut batch = Batch {
            active: Vec::new(),
            templates: Vec::new(),
            channels: Vec::new(),
        };
        let prepared = prepare(set, normalized, stretch, params.template_shard, problems);
        for (i, p) in prepared.into_iter().enumerate() {
            if let Some(p) = p {
                batch.active.push(i);
                batch.templates.push(p.stack);
                batch.channels.push(p.template_channel);
            }
        }
        batch
    }
}

/// Where and how peaks are found in stacks of `n_lags` lags that start
/// `origin` samples into a stretch whose day starts `lead` samples in and
/// is `n_day` samples long: only the day's own lags are searched.
fn peak_spec(
    params: &DetectParams,
    rate: f64,
    n_lags: usize,
    lead: usize,
    n_day: usize,
    origin: usize,
) -> PeakSpec {
    let day_a = lead.saturating_sub(origin).min(n_lags);
    let day_b = (lead + n_day).saturating_sub(origin).min(n_lags);
    PeakSpec {
        threshold_type: params.threshold_type,
        threshold: params.threshold,
        trig_int: detect::trig_int_samples(params.trig_int, rate),
        day: day_a..day_b,
        min_channels: params.min_channels,
        host_memory: params.memory_budget,
    }
}

/// Each channel's measurements at a detection at stack lag `k`: its CC
/// there and its best lag within ±`shift` samples, from direct f64 dot
/// products with the channel's data (exact, whatever the backend), with
/// the amplitudes relative magnitudes need.
fn channel_picks(
    t: &StackTemplate,
    template_channel: &[usize],
    view: &DayView,
    k: usize,
    shift: usize,
) -> Vec<ChannelPick> {
    let _t = timing::start(Stage::ChannelCc);
    t.channels
        .iter()
        .zip(template_channel)
        .map(|(c, &ci)| measure(&view.channels[c.channel], &c.waveform, k + c.pad, shift, ci))
        .collect()
}

/// One channel at window start `j`; `waveform` is the normalized template
/// channel.
fn measure(
    ch: &DayChannel,
    waveform: &[f32],
    j: usize,
    shift: usize,
    channel: usize,
) -> ChannelPick {
    let m = waveform.len();
    let cc_at = |j: usize| -> f64 {
        let inv = ch.norm.inv_std.get(j).copied().unwrap_or(0.0) as f64;
        if inv == 0.0 {
            return 0.0;
        }
        let w = &ch.data[j..j + m];
        let dot: f64 = waveform
            .iter()
            .zip(w)
            .map(|(&t, &x)| t as f64 * x as f64)
            .sum();
        (dot * inv).clamp(-1.0, 1.0)
    };
    let at = cc_at(j);
    let last = ch.norm.inv_std.len().saturating_sub(1);
    let (mut best_j, mut best) = (j, at);
    for l in j.saturating_sub(shift)..=(j + shift).min(last) {
        let v = cc_at(l);
        if v > best {
            (best_j, best) = (l, v);
        }
    }
    let best_lag = best_j as i32 - j as i32;
    let window = ch.data.get(best_j..best_j + m).unwrap_or_default();
    let noise = best_j
        .checked_sub(m)
        .filter(|&a| ch.norm.inv_std.get(a).is_some_and(|&v| v > 0.0))
        .map(|a| rms(&ch.data[a..best_j]) as f32);
    ChannelPick {
        channel,
        cc: at as f32,
        best_cc: best as f32,
        best_lag,
        lag: best_lag as f32 + vertex(cc_at, best_j, last) as f32,
        amplitude: std_dev(window) as f32,
        peak: window.iter().fold(0.0f32, |p, v| p.max(v.abs())),
        noise_rms: noise,
    }
}

/// Offset of the vertex of the parabola through `cc` at `j - 1`, `j` and
/// `j + 1`, within ±0.5; 0 at the ends or where they do not make a maximum.
fn vertex(cc: impl Fn(usize) -> f64, j: usize, last: usize) -> f64 {
    if j == 0 || j >= last {
        return 0.0;
    }
    let (a, b, c) = (cc(j - 1), cc(j), cc(j + 1));
    let curvature = a - 2.0 * b + c;
    if curvature >= 0.0 {
        return 0.0;
    }
    (0.5 * (a - c) / curvature).clamp(-0.5, 0.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A repeat at 3 × the template's amplitude, 5 samples late and a
    /// quarter sample further (a band-limited template moved by
    /// interpolation), after a stretch of known noise: the measurements
    /// recover each of these.
    #[test]
    fn channel_measurements_recover_lag_amplitude_and_noise() {
        let m = 64;
        let tmpl = |t: f64| (t / 5.0).sin() * (-((t - 32.0) / 14.0).powi(2)).exp();
        let template: Vec<f32> = (0..m).map(|i| tmpl(i as f64) as f32).collect();
        let (j0, late, frac) = (400usize, 5usize, 0.25);
        let mut data = vec![0.0f32; 1000];
        // Noise of RMS 0.01 (a ±0.01 square wave) in the stretch before.
        for (i, v) in data.iter_mut().enumerate() {
            *v = if i % 2 == 0 { 0.01 } else { -0.01 };
        }
        for i in 0..m + 20 {
            let t = i as f64 - frac;
            data[j0 + late + i] = 3.0 * tmpl(t) as f32;
        }
        let mask = vec![true; data.len()];
        let norm = ChannelNorm::new(&data, &mask, m);
        let ch = DayChannel {
            data: &data,
            norm: &norm,
        };
        let waveform = correlate::normalize_template(&template).unwrap();
        let p = measure(&ch, &waveform, j0, 8, 2);
        assert_eq!((p.channel, p.best_lag), (2, late as i32));
        assert!(p.best_cc > 0.99 && p.best_cc >= p.cc, "{p:?}");
        assert!((p.lag - (late as f32 + frac as f32)).abs() < 0.1, "{p:?}");
        let ratio = p.amplitude as f64 / std_dev(&template);
        assert!((ratio - 3.0).abs() < 0.05, "amplitude ratio {ratio}");
        let peak = template.iter().fold(0.0f32, |a, v| a.max(v.abs()));
        assert!((p.peak / peak - 3.0).abs() < 0.05, "{p:?}");
        assert!((p.noise_rms.unwrap() - 0.01).abs() < 1e-4, "{p:?}");
        // No whole stretch before the window: the noise is not known.
        assert_eq!(measure(&ch, &waveform, 10, 8, 0).noise_rms, None);
    }

    /// Negative correlations do not make picks: the best CC is the largest
    /// signed one, as in EQcorrscan's lag_calc.
    #[test]
    fn the_best_lag_is_the_largest_signed_cc() {
        let m = 32;
        let template: Vec<f32> = (0..m).map(|i| ((i as f32) / 3.0).sin()).collect();
        let mut data = vec![0.0f32; 300];
        for (i, v) in data.iter_mut().enumerate() {
            *v = 1e-3 * ((i * 7919) % 13) as f32;
        }
        for i in 0..m {
            data[100 + i] -= 2.0 * template[i]; // flipped, at lag 0
            data[103 + i] += 0.5 * template[i]; // upright, 3 later
        }
        let mask = vec![true; data.len()];
        let norm = ChannelNorm::new(&data, &mask, m);
        let ch = DayChannel {
            data: &data,
            norm: &norm,
        };
        let waveform = correlate::normalize_template(&template).unwrap();
        let p = measure(&ch, &waveform, 100, 5, 0);
        assert!(p.cc < -0.5, "{p:?}");
        assert!(p.best_cc > 0.0 && p.best_lag > 0, "{p:?}");
    }
    use crate::templates::{BuildOptions, Phases};

    /// The days in flight correlate the run's one normalized copy of each
    /// template channel, not a copy each (4.8 GB at 50,000 templates).
    #[test]
    fn days_share_the_runs_normalized_templates() {
        let dir = tempfile::tempdir().unwrap();
        crate::synth::generate(&crate::synth::Spec::samples(), dir.path()).unwrap();
        let p = |n: &str| dir.path().join(n);
        let cat = crate::catalog::read_csv(&p("picks.csv"), Some(&p("events.csv"))).unwrap();
        let archive = Archive::open(&p("archive")).unwrap();
        let opts = BuildOptions {
            phase: Phases::All,
            pre: 0.5,
            length: 3.0,
            recipe: Default::default(),
            channels: Vec::new(),
            min_snr: None,
            window_start: Default::default(),
        };
        let (set, _) = crate::templates::build(&cat, &archive, &opts).unwrap();
        let normalized = NormalizedTemplates::new(&set, None);
        let params = DetectParams::default();
        let prepared = |day: &str| {
            let loaded = load_day(
                &set,
                &archive,
                epoch::parse_day(day).unwrap(),
                &params,
                false,
            );
            prepare(&set, &normalized, &loaded.stretch, None, &mut Vec::new())
        };
        let (a, b) = (prepared("2024-02-29"), prepared("2024-03-01"));
        let mut shared = 0;
        for (a, b) in a.iter().zip(&b) {
            let (Some(a), Some(b)) = (a, b) else { continue };
            for (x, y) in a.stack.channels.iter().zip(&b.stack.channels) {
                assert!(Arc::ptr_eq(&x.waveform, &y.waveform));
                shared += 1;
            }
        }
        assert!(shared > 10, "{shared} channels compared");
    }
}
