//! Building a template set from a catalog and the continuous archive.
//!
//! Data are processed a whole day at a time with the same loader and recipe
//! that `detect` uses, then each pick's window is cut on the day's sample
//! grid, so a template is sample for sample the data it was cut from.

use std::collections::BTreeMap;
use std::str::FromStr;

use super::{Template, TemplateChannel, TemplateSet};
use crate::archive::Archive;
use crate::catalog::{Catalog, Event, Phase, Pick};
use crate::epoch::{self, sample_time, samples_between, Nanos, NS_PER_S};
use crate::error::{Error, Result};
use crate::preprocess::Recipe;
use crate::stretch::{self, Channel};

/// The phases whose picks make template windows (`--phase`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phases {
    P,
    S,
    /// P and S.
    All,
}

impl Phases {
    fn contains(self, phase: Phase) -> bool {
        match self {
            Phases::All => true,
            Phases::P => phase == Phase::P,
            Phases::S => phase == Phase::S,
        }
    }
}

impl FromStr for Phases {
    type Err = String;
    fn from_str(s: &str) -> Result<Phases, String> {
        match s.to_ascii_uppercase().as_str() {
            "P" => Ok(Phases::P),
            "S" => Ok(Phases::S),
            "ALL" => Ok(Phases::All),
            _ => Err(format!("unknown phase '{s}' (P, S or all)")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub phase: Phases,
    /// Seconds before the pick where the window starts.
    pub pre: f64,
    /// Window length in seconds.
    pub length: f64,
    pub recipe: Recipe,
    /// Only channels whose SEED id matches one of these globs.
    pub channels: Vec<glob::Pattern>,
    /// Channels whose max |signal| / RMS(noise before the window) is lower
    /// are left out.
    pub min_snr: Option<f64>,
    /// Which sample a window starts at when pick − pre falls between two.
    pub window_start: WindowStart,
}

/// The sample a window starts at when pick − pre falls between two.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WindowStart {
    /// The first sample at or after it, as EQcorrscan's `Tribe.construct`
    /// cuts (ObsPy's `slice(..., nearest_sample=False)`, the position
    /// rounded to 7 decimals first).
    #[default]
    AtOrAfter,
    /// The nearest sample, half to even (Python's `round`).
    Nearest,
}

impl std::str::FromStr for WindowStart {
    type Err = String;
    fn from_str(s: &str) -> Result<WindowStart, String> {
        match s {
            "at-or-after" => Ok(WindowStart::AtOrAfter),
            "nearest" => Ok(WindowStart::Nearest),
            _ => Err(format!(
                "unknown window start '{s}' (at-or-after or nearest)"
            )),
        }
    }
}

/// Round half to even, as Python's `round`.
fn round_half_even(x: f64) -> i64 {
    let r = x.round();
    if (x - x.trunc()).abs() == 0.5 && (r as i64) % 2 != 0 {
        (r - x.signum()) as i64
    } else {
        r as i64
    }
}

/// Index of the first sample of a window starting at `start`, on a channel
/// whose samples are `grid + i / rate`. Counted from the channel's first
/// sample with data, from `(start − first) · rate` with the time
/// difference in seconds as a double, as ObsPy computes it: a window
/// between two samples then starts where EQcorrscan's would.
fn window_index(grid: Nanos, mask: &[bool], start: Nanos, rate: f64, rule: WindowStart) -> i64 {
    let first = mask.iter().position(|&m| m).unwrap_or(0) as i64;
    let t_first = sample_time(grid, first, rate);
    let x = (start - t_first) as f64 / 1e9 * rate;
    first
        + match rule {
            WindowStart::AtOrAfter => ((x * 1e7).round() / 1e7).ceil() as i64,
            WindowStart::Nearest => round_half_even(x),
        }
}

/// Channel ids a pick applies to: its own, or every archive channel its
/// wildcard channel code matches.
fn pick_ids(p: &Pick, archive_ids: &[String]) -> Vec<String> {
    let id = p.seed_id();
    if !p.channel.contains(['*', '?']) && !p.channel.is_empty() {
        return vec![id];
    }
    let chan = if p.channel.is_empty() {
        "*".to_string()
    } else {
        p.channel.clone()
    };
    let pat = glob::Pattern::new(&format!(
        "{}.{}.{}.{}",
        p.network, p.station, p.location, chan
    ));
    match pat {
        Ok(pat) => archive_ids
            .iter()
            .filter(|i| pat.matches(i))
            .cloned()
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// A pick's window on one channel.
struct Window {
    channel: String,
    phase: Phase,
    /// Time of the window's start (the pick less `--pre`).
    start: Nanos,
}

/// The windows of each event, by event id.
type Windows = BTreeMap<String, Vec<Window>>;

/// A window cut from the processed data: the time of its first sample on
/// the data's grid, and its samples.
struct Cut {
    start: Nanos,
    data: Vec<f32>,
    /// RMS of the window's length of data before it, where whole.
    noise_rms: Option<f32>,
}

/// Cuts by event id and index among the event's windows.
type Cuts = BTreeMap<(String, usize), Cut>;

/// Build templates. Returns the set and warnings (channels or templates
/// left out, and why).
pub fn build(
    catalog: &Catalog,
    archive: &Archive,
    opts: &BuildOptions,
) -> Result<(TemplateSet, Vec<String>)> {
    // NaN lengths are refused too.
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    if !(opts.length > 0.0) || !opts.pre.is_finite() {
        return Err(Error::Input(
            "--length must be positive and --pre finite".into(),
        ));
    }
    let windows = pick_windows(catalog, archive, opts);
    if windows.is_empty() {
        return Err(Error::Input(format!(
            "no picks of phase {:?} on the selected channels in the catalog",
            opts.phase
        )));
    }

    // The templates' rate: the recipe's, or the data's own.
    let rate = match opts.recipe.resample {
        Some(r) => r,
        None => native_rate(archive, &windows)?,
    };
    opts.recipe.validate(rate)?;
    let m = (opts.length * rate).round() as usize;
    if m < 2 {
        return Err(Error::Input(format!(
            "--length {} s is under two samples at {rate} Hz",
            opts.length
        )));
    }

    let mut warnings = Vec::new();
    let cutting = Cutting {
        archive,
        opts,
        rate,
        m,
    };
    let cuts = cutting.all(&windows, &mut warnings);
    let pre = (opts.pre * 1e9).round() as Nanos;
    let templates = assemble(catalog, &windows, &cuts, rate, pre, &mut warnings);
    if templates.is_empty() {
        return Err(Error::Input(format!(
            "no template could be built:\n  {}",
            warnings.join("\n  ")
        )));
    }
    Ok((
        TemplateSet {
            recipe: opts.recipe.clone(),
            rate,
            len: m,
            templates,
        },
        warnings,
    ))
}

/// The windows of the picks of the chosen phases on the chosen channels,
/// one per event, channel and phase.
fn pick_windows(catalog: &Catalog, archive: &Archive, opts: &BuildOptions) -> Windows {
    let needs_listing = catalog
        .picks
        .iter()
        .any(|p| p.channel.is_empty() || p.channel.contains(['*', '?']));
    let archive_ids = if needs_listing {
        archive.channel_ids()
    } else {
        Vec::new()
    };
    let mut windows = Windows::new();
    for p in catalog.picks.iter() {
        let Some(phase) = p.phase.filter(|&ph| opts.phase.contains(ph)) else {
            continue;
        };
        for id in pick_ids(p, &archive_ids) {
            if !opts.channels.is_empty() && !opts.channels.iter().any(|g| g.matches(&id)) {
                continue;
            }
            let start = p.time - (opts.pre * 1e9).round() as i64;
            let w = windows.entry(p.event_id.clone()).or_default();
            if !w.iter().any(|w| w.channel == id && w.phase == phase) {
                w.push(Window {
                    channel: id,
                    phase,
                    start,
                });
            }
        }
    }
    windows
}

/// Cutting windows from the processed data, each day processed once with
/// the loader `detect` uses.
struct Cutting<'a> {
    archive: &'a Archive,
    opts: &'a BuildOptions,
    rate: f64,
    /// Samples per window, and of noise before it for the SNR.
    m: usize,
}

impl Cutting<'_> {
    /// Every window that can be cut; the others are said in `warnings`.
    fn all(&self, windows: &Windows, warnings: &mut Vec<String>) -> Cuts {
        let mut by_day: BTreeMap<epoch::Day, Vec<(&str, usize)>> = BTreeMap::new();
        for (ev, ws) in windows {
            for (i, w) in ws.iter().enumerate() {
                by_day
                    .entry(epoch::day_of(w.start))
                    .or_default()
                    .push((ev, i));
            }
        }
        let mut cuts = Cuts::new();
        for (day, items) in &by_day {
            self.day(*day, items, windows, warnings, &mut cuts);
        }
        cuts
    }

    /// The windows `items` (event id, index) that start on `day`.
    fn day(
        &self,
        day: epoch::Day,
        items: &[(&str, usize)],
        windows: &Windows,
        warnings: &mut Vec<String>,
        cuts: &mut Cuts,
    ) {
        let (rate, m) = (self.rate, self.m);
        let mut ids: Vec<String> = items
            .iter()
            .map(|&(ev, i)| windows[ev][i].channel.clone())
            .collect();
        ids.sort();
        ids.dedup();
        // The day from `m` samples of noise before midnight to past the
        // next midnight by a window and a second.
        let noise = m;
        let tail = ((self.opts.length.max(0.0) + 1.0) * rate).ceil() as usize + m;
        let n_day = (epoch::NS_PER_DAY as f64 * rate / 1e9).round() as usize;
        let grid = sample_time(epoch::day_start(day), -(noise as i64), rate);
        let stretch = stretch::load(
            self.archive,
            &ids,
            &self.opts.recipe,
            rate,
            grid,
            noise + n_day + tail,
        );
        warnings.extend(stretch.problems.iter().map(ToString::to_string));
        for &(ev, i) in items {
            let w = &windows[ev][i];
            let cut = match stretch.channel_index(&w.channel) {
                Some(ci) => self.window(&stretch.channels[ci], stretch.start, w.start),
                None => Err("no data; channel left out".to_string()),
            };
            match cut {
                Ok(cut) => {
                    cuts.insert((ev.to_string(), i), cut);
                }
                Err(why) => {
                    warnings.push(format!("template {ev}: {} {}: {why}", w.channel, w.phase))
                }
            }
        }
    }

    /// The window starting at `start` on a channel whose samples are
    /// `grid + i / rate`, or why it is left out.
    fn window(&self, ch: &Channel, grid: Nanos, start: Nanos) -> Result<Cut, String> {
        let (rate, m) = (self.rate, self.m);
        let i0 = window_index(grid, &ch.mask, start, rate, self.opts.window_start);
        if i0 < 0 || i0 as usize + m > ch.data.len() {
            return Err("window outside the data read".into());
        }
        let i0 = i0 as usize;
        if ch.mask[i0..i0 + m].iter().any(|&p| !p) {
            return Err("gap in the window; channel left out".into());
        }
        let data = ch.data[i0..i0 + m].to_vec();
        if crate::correlate::normalize_template(&data).is_none() {
            return Err("flat waveform; channel left out".into());
        }
        let a = i0.saturating_sub(m);
        let noise_rms = (a + m == i0 && ch.mask[a..i0].iter().all(|&p| p))
            .then(|| crate::preprocess::rms(&ch.data[a..i0]));
        // Without a whole noise window the SNR is not known: the channel
        // is kept.
        if let (Some(min), Some(noise_rms)) = (self.opts.min_snr, noise_rms) {
            let peak = data.iter().map(|v| v.abs() as f64).fold(0.0, f64::max);
            let snr = peak / noise_rms;
            // A NaN SNR (silent noise and a flat window) is below any minimum.
            #[allow(clippy::neg_cmp_op_on_partial_ord)]
            if !(snr >= min) {
                return Err(format!(
                    "SNR {snr:.1} below --min-snr {min}; channel left out"
                ));
            }
        }
        Ok(Cut {
            start: sample_time(grid, i0 as i64, rate),
            data,
            noise_rms: noise_rms.map(|v| v as f32),
        })
    }
}

/// One template per event with a cut window, its channels sorted and their
/// moveouts counted from the earliest.
fn assemble(
    catalog: &Catalog,
    windows: &Windows,
    cuts: &Cuts,
    rate: f64,
    pre: Nanos,
    warnings: &mut Vec<String>,
) -> Vec<Template> {
    let mut templates = Vec::new();
    for (ev, ws) in windows {
        let mut channels: Vec<TemplateChannel> = ws
            .iter()
            .enumerate()
            .filter_map(|(i, w)| {
                cuts.get(&(ev.clone(), i)).map(|cut| TemplateChannel {
                    id: w.channel.clone(),
                    phase: w.phase,
                    start: cut.start,
                    pad: 0,
                    weight: 1.0,
                    data: cut.data.clone(),
                    pick_offset: pre,
                    noise_rms: cut.noise_rms,
                })
            })
            .collect();
        if channels.is_empty() {
            warnings.push(format!(
                "template {ev}: no usable channel; template left out"
            ));
            continue;
        }
        channels.sort_by(|a, b| a.id.cmp(&b.id).then(a.phase.cmp(&b.phase)));
        let t0 = channels.iter().map(|c| c.start).min().unwrap();
        for c in &mut channels {
            c.pad = samples_between(t0, c.start, rate) as usize;
        }
        let event = match catalog.events.get(ev) {
            Some(e) => Event {
                id: ev.clone(),
                ..e.clone()
            },
            None => Event {
                id: ev.clone(),
                origin: t0,
                latitude: f64::NAN,
                longitude: f64::NAN,
                depth_km: f64::NAN,
                magnitude: f64::NAN,
            },
        };
        templates.push(Template { event, channels });
    }
    templates
}

/// Sampling rate of the data of the first window that has data.
fn native_rate(archive: &Archive, windows: &Windows) -> Result<f64> {
    let mut problems = Vec::new();
    for w in windows.values().flatten() {
        match archive.read(&w.channel, w.start, w.start + 10 * NS_PER_S) {
            Ok(Some(raw)) => return Ok(raw.rate),
            Ok(None) => {}
            Err(e) => {
                let e = e.to_string();
                if !problems.contains(&e) {
                    problems.push(e);
                }
            }
        }
    }
    Err(Error::Input(format!(
        "no data in the archive for any pick window{}",
        if problems.is_empty() {
            String::new()
        } else {
            format!(": {}", problems.join("; "))
        }
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_is_half_even() {
        assert_eq!(round_half_even(2.5), 2);
        assert_eq!(round_half_even(3.5), 4);
        assert_eq!(round_half_even(-2.5), -2);
        assert_eq!(round_half_even(2.4), 2);
        assert_eq!(round_half_even(2.6), 3);
    }
}
