//! Building a template set from a catalog and the continuous archive.
//!
//! Data are processed a whole day at a time with the same loader and recipe
//! that `detect` uses, then each pick's window is cut on the day's sample
//! grid, so a template is sample for sample the data it was cut from.

use std::collections::BTreeMap;
use std::str::FromStr;

use super::{Template, TemplateChannel, TemplateSet};
use crate::archive::Archive;
use crate::catalog::{Catalog, Pick};
use crate::epoch::{self, Nanos, NS_PER_S};
use crate::error::{Error, Result};
use crate::pipeline::load;
use crate::preprocess::Recipe;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    P,
    S,
    All,
}

impl FromStr for Phase {
    type Err = String;
    fn from_str(s: &str) -> Result<Phase, String> {
        match s.to_ascii_uppercase().as_str() {
            "P" => Ok(Phase::P),
            "S" => Ok(Phase::S),
            "ALL" => Ok(Phase::All),
            _ => Err(format!("unknown phase '{s}' (P, S or all)")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub phase: Phase,
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
}

/// Round half to even, as Python's `round` (used to cut EQcorrscan
/// references), so windows between two samples fall the same way.
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
/// sample with data, as `round((start − first) · rate)` with the time
/// difference in seconds as a double: a window that falls exactly between
/// two samples then goes the way EQcorrscan's references are cut.
fn window_index(grid: Nanos, mask: &[bool], start: Nanos, rate: f64) -> i64 {
    let first = mask.iter().position(|&m| m).unwrap_or(0) as i64;
    let t_first = load::sample_time(grid, first, rate);
    first + round_half_even((start - t_first) as f64 / 1e9 * rate)
}

fn phase_matches(phase: Phase, p: &Pick) -> bool {
    match phase {
        Phase::All => p.phase == "P" || p.phase == "S",
        Phase::P => p.phase == "P",
        Phase::S => p.phase == "S",
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
    let needs_listing = catalog
        .picks
        .iter()
        .any(|p| p.channel.is_empty() || p.channel.contains(['*', '?']));
    let archive_ids = if needs_listing {
        archive.channel_ids()
    } else {
        Vec::new()
    };

    // (event, channel id, phase) -> window start.
    let mut windows: BTreeMap<String, Vec<(String, String, Nanos)>> = BTreeMap::new();
    for p in catalog
        .picks
        .iter()
        .filter(|p| phase_matches(opts.phase, p))
    {
        for id in pick_ids(p, &archive_ids) {
            if !opts.channels.is_empty() && !opts.channels.iter().any(|g| g.matches(&id)) {
                continue;
            }
            let start = p.time - (opts.pre * 1e9).round() as i64;
            let w = windows.entry(p.event_id.clone()).or_default();
            if !w.iter().any(|(i, ph, _)| *i == id && *ph == p.phase) {
                w.push((id, p.phase.clone(), start));
            }
        }
    }
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

    // Cut every window from its day, processing each day once.
    let mut by_day: BTreeMap<i64, Vec<(String, usize, Nanos)>> = BTreeMap::new();
    for (ev, ws) in &windows {
        for (i, (_, _, start)) in ws.iter().enumerate() {
            by_day
                .entry(epoch::day_of(*start))
                .or_default()
                .push((ev.clone(), i, *start));
        }
    }
    let mut warnings = Vec::new();
    let mut cuts: BTreeMap<(String, usize), (Nanos, Vec<f32>)> = BTreeMap::new();
    let noise = m; // samples of noise before the window for the SNR
    let tail = ((opts.length.max(0.0) + 1.0) * rate).ceil() as usize + m;
    for (day, items) in &by_day {
        let ids: Vec<String> = {
            let mut v: Vec<String> = items
                .iter()
                .map(|(ev, i, _)| windows[ev][*i].0.clone())
                .collect();
            v.sort();
            v.dedup();
            v
        };
        let n_day = (epoch::NS_PER_DAY as f64 * rate / 1e9).round() as usize;
        let grid = load::sample_time(epoch::day_start(*day), -(noise as i64), rate);
        let stretch = load::load(
            archive,
            &ids,
            &opts.recipe,
            rate,
            grid,
            noise + n_day + tail,
        );
        warnings.extend(stretch.problems.iter().map(ToString::to_string));
        for (ev, i, start) in items {
            let (id, phase, _) = &windows[ev][*i];
            let Some(ci) = stretch.channel_index(id) else {
                warnings.push(format!(
                    "template {ev}: {id} {phase}: no data; channel left out"
                ));
                continue;
            };
            let ch = &stretch.channels[ci];
            let i0 = window_index(stretch.start, &ch.mask, *start, rate);
            if i0 < 0 || i0 as usize + m > ch.data.len() {
                warnings.push(format!(
                    "template {ev}: {id} {phase}: window outside the data read"
                ));
                continue;
            }
            let i0 = i0 as usize;
            if ch.mask[i0..i0 + m].iter().any(|&p| !p) {
                warnings.push(format!(
                    "template {ev}: {id} {phase}: gap in the window; channel left out"
                ));
                continue;
            }
            let data = ch.data[i0..i0 + m].to_vec();
            if crate::correlate::normalize_template(&data).is_none() {
                warnings.push(format!(
                    "template {ev}: {id} {phase}: flat waveform; channel left out"
                ));
                continue;
            }
            if let Some(min) = opts.min_snr {
                let a = i0.saturating_sub(noise);
                let nw = &ch.data[a..i0];
                if nw.len() == noise && ch.mask[a..i0].iter().all(|&p| p) {
                    let rms = (nw.iter().map(|&v| (v as f64).powi(2)).sum::<f64>()
                        / nw.len() as f64)
                        .sqrt();
                    let peak = data.iter().map(|v| v.abs() as f64).fold(0.0, f64::max);
                    let snr = peak / rms;
                    // A NaN SNR (no noise window) is below any minimum.
                    #[allow(clippy::neg_cmp_op_on_partial_ord)]
                    if !(snr >= min) {
                        warnings.push(format!(
                            "template {ev}: {id} {phase}: SNR {snr:.1} below --min-snr {min}; channel left out"
                        ));
                        continue;
                    }
                }
            }
            let t_start = load::sample_time(stretch.start, i0 as i64, rate);
            cuts.insert((ev.clone(), *i), (t_start, data));
        }
    }

    let mut templates = Vec::new();
    for (ev, ws) in &windows {
        let mut channels: Vec<TemplateChannel> = ws
            .iter()
            .enumerate()
            .filter_map(|(i, (id, phase, _))| {
                cuts.get(&(ev.clone(), i))
                    .map(|(start, data)| TemplateChannel {
                        id: id.clone(),
                        phase: phase.clone(),
                        start: *start,
                        pad: 0,
                        weight: 1.0,
                        data: data.clone(),
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
            c.pad = load::samples_between(t0, c.start, rate) as usize;
        }
        let e = catalog.events.get(ev);
        templates.push(Template {
            id: ev.clone(),
            origin: e.map_or(t0, |e| e.origin),
            latitude: e.map_or(f64::NAN, |e| e.latitude),
            longitude: e.map_or(f64::NAN, |e| e.longitude),
            depth_km: e.map_or(f64::NAN, |e| e.depth_km),
            magnitude: e.map_or(f64::NAN, |e| e.magnitude),
            channels,
        });
    }
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

/// Sampling rate of the data of the first window that has data.
fn native_rate(
    archive: &Archive,
    windows: &BTreeMap<String, Vec<(String, String, Nanos)>>,
) -> Result<f64> {
    let mut problems = Vec::new();
    for (id, _, start) in windows.values().flatten() {
        match archive.read(id, *start, start + 10 * NS_PER_S) {
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
