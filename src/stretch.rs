//! Loading a stretch of continuous data for every channel a template set
//! uses, processed with the set's recipe onto one sample grid: the data
//! that templates are cut from and that days are correlated with.

use rayon::prelude::*;

use crate::archive::{Archive, RawTrace};
use crate::epoch::{sample_time, Nanos, NS_PER_S};
use crate::preprocess::{self, Recipe};
use crate::problem::Problem;
use crate::timing::{self, Stage};

/// Extra data read on each side when filtering or resampling, so that the
/// edge transients of the processing stay outside the stretch that is used.
const PROCESSING_MARGIN_NS: Nanos = 60 * NS_PER_S;

/// One processed channel: samples (0 in gaps) and where data exist.
#[derive(Debug, Clone)]
pub struct Channel {
    pub id: String,
    pub data: Vec<f32>,
    pub mask: Vec<bool>,
}

/// Processed channels on the grid `start + i / rate`, `len` samples each:
/// the part of the requested grid that holds data, beginning `offset`
/// samples into it.
#[derive(Debug, Clone)]
pub struct Stretch {
    pub start: Nanos,
    pub offset: usize,
    pub channels: Vec<Channel>,
    /// Problems met (bad files, missing channels, other rates), each naming
    /// its file or channel.
    pub problems: Vec<Problem>,
}

impl Stretch {
    /// The span of the runs of data that overlap samples `[a, b)`: first
    /// and one-past-last sample, over every channel. Data before `a` or
    /// after `b` count only when they run on without a gap from inside
    /// (a day's lead and overlap, when the recording is continuous), so
    /// that the next day's first minutes do not stretch a day that holds
    /// only a morning of data.
    pub fn data_extent(&self, a: usize, b: usize) -> Option<(usize, usize)> {
        let mut ext: Option<(usize, usize)> = None;
        for c in &self.channels {
            let m = &c.mask;
            let b = b.min(m.len());
            let (Some(first), Some(last)) = (
                m[a.min(b)..b].iter().position(|&v| v).map(|i| i + a),
                m[a.min(b)..b].iter().rposition(|&v| v).map(|i| i + a),
            ) else {
                continue;
            };
            let start = m[..first].iter().rposition(|&v| !v).map_or(0, |i| i + 1);
            let end = m[last..]
                .iter()
                .position(|&v| !v)
                .map_or(m.len(), |i| i + last);
            ext = Some(match ext {
                Some((x, y)) => (x.min(start), y.max(end)),
                None => (start, end),
            });
        }
        ext
    }

    pub fn channel_index(&self, id: &str) -> Option<usize> {
        self.channels.iter().position(|c| c.id == id)
    }
}

/// Seconds of data in runs of identical samples at least ten seconds long
/// (a dead or clipped sensor, or a digitizer filling with a constant).
fn flat_seconds(raw: &RawTrace) -> f64 {
    let min_run = ((10.0 * raw.rate) as usize).max(2);
    let (mut total, mut run) = (0usize, 1usize);
    for i in 1..=raw.data.len() {
        let same =
            i < raw.data.len() && raw.mask[i] && raw.mask[i - 1] && raw.data[i] == raw.data[i - 1];
        if same {
            run += 1;
        } else {
            if run >= min_run {
                total += run;
            }
            run = 1;
        }
    }
    total as f64 / raw.rate
}

/// Read and process channels `ids` onto `start + i / rate`, `len` samples.
/// Channels without data are left out (and said in `problems`); channels
/// at another sampling rate than `rate`, when the recipe does not resample,
/// are left out with the reason.
pub fn load(
    archive: &Archive,
    ids: &[String],
    recipe: &Recipe,
    rate: f64,
    start: Nanos,
    len: usize,
) -> Stretch {
    let grid = Grid { start, rate, len };
    let margin = if recipe.filters() || recipe.resample.is_some() {
        PROCESSING_MARGIN_NS
    } else {
        0
    };
    // Each channel is processed onto the part of the grid its data cover.
    let loaded: Vec<Loaded> = ids
        .par_iter()
        .map(|id| load_channel(archive, id, recipe, &grid, margin))
        .collect();
    widen_to_union(loaded, &grid)
}

/// The requested sample grid `start + i / rate`, `len` samples.
struct Grid {
    start: Nanos,
    rate: f64,
    len: usize,
}

/// One channel processed onto the grid from sample `first` on (`None`
/// when it was not used), with the problems met.
struct Loaded {
    part: Option<(usize, Channel)>,
    problems: Vec<Problem>,
}

/// Read channel `id` with `margin` on each side of the grid and process it
/// onto the part of the grid its data cover.
fn load_channel(
    archive: &Archive,
    id: &str,
    recipe: &Recipe,
    grid: &Grid,
    margin: Nanos,
) -> Loaded {
    let (start, rate, len) = (grid.start, grid.rate, grid.len);
    let end = sample_time(start, len as i64, rate);
    let unused = |problems| Loaded {
        part: None,
        problems,
    };
    let reading = timing::start(Stage::Read);
    let read = archive.read(id, start - margin, end + margin);
    drop(reading);
    let raw = match read {
        Ok(Some(raw)) => raw,
        Ok(None) => return unused(vec![Problem::no_data(id)]),
        Err(e) => return unused(vec![Problem::Archive(e.to_string())]),
    };
    let mut problems: Vec<Problem> = raw.problems.iter().cloned().map(Problem::Archive).collect();
    if recipe.resample.is_none() && ((raw.rate - rate) / rate).abs() > 1e-4 {
        problems.push(Problem::OtherRate {
            channel: id.to_string(),
            data_rate: raw.rate,
            rate,
        });
        return unused(problems);
    }
    problems.extend(sample_problems(id, &raw));
    let a = ((raw.start - start) as f64 * rate / 1e9).floor().max(0.0) as usize;
    let b = (((raw.start - start) as f64 + raw.data.len() as f64 * 1e9 / raw.rate) * rate / 1e9)
        .ceil()
        .clamp(0.0, len as f64) as usize;
    if a >= b {
        problems.push(Problem::no_data(id));
        return unused(problems);
    }
    let processing = timing::start(Stage::Preprocess);
    let p = preprocess::process(&raw, recipe, sample_time(start, a as i64, rate), b - a);
    drop(processing);
    if !p.mask.iter().any(|&m| m) {
        problems.push(Problem::no_data(id));
        return unused(problems);
    }
    Loaded {
        part: Some((
            a,
            Channel {
                id: id.to_string(),
                data: p.data,
                mask: p.mask,
            },
        )),
        problems,
    }
}

/// What is wrong with a channel's samples that are still used: flat
/// stretches, and NaN or infinite values (treated as gaps).
fn sample_problems(id: &str, raw: &RawTrace) -> Vec<Problem> {
    let mut problems = Vec::new();
    let flat = flat_seconds(raw);
    if flat > 0.0 {
        problems.push(Problem::FlatData {
            channel: id.to_string(),
            seconds: flat,
        });
    }
    let non_finite = raw
        .data
        .iter()
        .zip(&raw.mask)
        .filter(|(v, &m)| m && !v.is_finite())
        .count();
    if non_finite > 0 {
        problems.push(Problem::NonFinite {
            channel: id.to_string(),
            samples: non_finite,
        });
    }
    problems
}

/// The stretch spanning the union of the channels' parts, each channel
/// padded (masked) to it.
fn widen_to_union(loaded: Vec<Loaded>, grid: &Grid) -> Stretch {
    let lo = loaded
        .iter()
        .filter_map(|l| l.part.as_ref().map(|(a, _)| *a))
        .min()
        .unwrap_or(0);
    let hi = loaded
        .iter()
        .filter_map(|l| l.part.as_ref().map(|(a, ch)| a + ch.data.len()))
        .max()
        .unwrap_or(0);
    let width = hi.saturating_sub(lo);
    let mut channels = Vec::new();
    let mut problems = Vec::new();
    for l in loaded {
        if let Some((a, mut ch)) = l.part {
            let (before, after) = (a - lo, hi - a - ch.data.len());
            if before + after > 0 {
                let mut data = vec![0f32; width];
                let mut mask = vec![false; width];
                data[before..before + ch.data.len()].copy_from_slice(&ch.data);
                mask[before..before + ch.mask.len()].copy_from_slice(&ch.mask);
                (ch.data, ch.mask) = (data, mask);
            }
            channels.push(ch);
        }
        problems.extend(l.problems);
    }
    Stretch {
        start: sample_time(grid.start, lo as i64, grid.rate),
        offset: lo,
        channels,
        problems,
    }
}
