//! From detections to catalogue events: declustering across templates and
//! the writers of the event catalogue (QuakeML, CSV, EQcorrscan's detection
//! file, hypoDD `dt.cc`).
//!
//! Detection finds peaks per template; one earthquake is usually detected by
//! several similar templates at nearly the same time, so a catalogue needs
//! [`decluster::decluster`] across templates first. The kept detections
//! become [`CatalogEvent`]s (origin = the template's hypocentre moved by the
//! detection, picks from lag-calc or predicted) that the writers stream one
//! at a time, so a catalogue of millions of events never sits in memory.
//!
//! Everything here is a pure function over in-memory types: reading
//! detections files and cutting waveforms belong to the layers above. By
//! default the definitions are EQcorrscan 0.5.2's (see
//! `tests/reference/hinet-catalog/README.md`), so that results can be
//! compared with EQcorrscan's detection for detection.
//!
//! Floor 1: uses only [`crate::epoch`] and [`crate::error`].

pub mod csv;
pub mod decluster;
pub mod eqcorrscan;
pub mod hypodd;
pub mod measure;
pub mod quakeml;

use crate::epoch::{format_time, Nanos};

pub use decluster::{decluster, distance_km};

/// A detection as the catalogue sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Row of the detection in its source (file or table), for the caller.
    pub row: usize,
    /// Index of the template into the caller's template list (and into the
    /// `places` given to [`decluster()`]).
    pub template: usize,
    /// Start of the template's earliest channel at the peak: EQcorrscan's
    /// `detect_time`.
    pub time: Nanos,
    /// The stacked correlation sum at the peak (EQcorrscan's `detect_val`).
    pub cc_sum: f32,
    /// Channels that contributed to the stack (EQcorrscan's `no_chans`).
    pub n_channels: u32,
    /// The detection threshold the peak passed (in units of `cc_sum`);
    /// used by [`Metric::ThreshExc`]. Added to the brief's fields.
    pub threshold: f32,
}

/// A template's hypocentre and where its origin lies relative to its
/// earliest channel start.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplatePlace {
    /// Degrees north.
    pub latitude: f64,
    /// Degrees east.
    pub longitude: f64,
    /// Kilometres below sea level (positive down).
    pub depth_km: f64,
    /// Origin time − start of the template's earliest channel (usually
    /// negative): a detection's origin is its `time` + this.
    pub origin_offset: Nanos,
}

/// What declustering ranks detections by (EQcorrscan's `metric`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// `cc_sum / n_channels`: the mean channel correlation (`avg_cor`).
    AvgCor,
    /// `cc_sum` (`cor_sum`).
    CorSum,
    /// `cc_sum / threshold`: the factor by which the detection exceeded its
    /// threshold (`thresh_exc`, as EQcorrscan 0.5.2 computes it — a ratio,
    /// not a difference).
    ThreshExc,
}

/// Which time declustering compares (EQcorrscan's `timing`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timing {
    /// The detection time (start of the earliest template channel).
    Detect,
    /// The detection's origin time: detection time + the template's
    /// [`TemplatePlace::origin_offset`].
    Origin,
}

impl std::str::FromStr for Metric {
    type Err = String;
    fn from_str(s: &str) -> Result<Metric, String> {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "avg-cor" => Ok(Metric::AvgCor),
            "cor-sum" => Ok(Metric::CorSum),
            "thresh-exc" => Ok(Metric::ThreshExc),
            _ => Err(format!(
                "unknown metric '{s}' (avg-cor, cor-sum or thresh-exc)"
            )),
        }
    }
}

impl std::str::FromStr for Timing {
    type Err = String;
    fn from_str(s: &str) -> Result<Timing, String> {
        match s.to_ascii_lowercase().as_str() {
            "detect" => Ok(Timing::Detect),
            "origin" => Ok(Timing::Origin),
            _ => Err(format!("unknown timing '{s}' (detect or origin)")),
        }
    }
}

/// Options of [`decluster()`], named after EQcorrscan's `Party.decluster`.
#[derive(Debug, Clone, PartialEq)]
pub struct Decluster {
    /// Detections within this many seconds of a stronger kept one are
    /// dropped (inclusive).
    pub trig_int: f64,
    pub metric: Metric,
    pub timing: Timing,
    /// When set (km), only detections whose hypocentres (their templates')
    /// are closer than this suppress each other.
    pub hypocentral_separation: Option<f64>,
    /// Store |metric| (ranking is by |metric| in any case, as EQcorrscan's).
    pub absolute_values: bool,
}

/// One pick of a catalogue event.
#[derive(Debug, Clone, PartialEq)]
pub struct EventPick {
    /// `NET.STA.LOC.CHA` (LOC may be empty: `N.ATKH..EHE`).
    pub seed_id: String,
    /// Phase hint, e.g. `P` or `S`.
    pub phase: String,
    pub time: Nanos,
    /// The correlation that placed the pick (lag-calc's `cc_max`).
    pub cc: f32,
}

/// A magnitude relative to the template's.
#[derive(Debug, Clone, PartialEq)]
pub struct RelMag {
    /// The magnitude: template magnitude + the median channel Δm.
    pub value: f64,
    /// Channels that gave a Δm.
    pub n_channels: usize,
    /// Median absolute deviation of the channel Δm; written as the
    /// magnitude's uncertainty.
    pub spread: f64,
}

/// A detection as a catalogue event.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogEvent {
    /// The template's id (catalogue id, dots allowed).
    pub template: String,
    /// EQcorrscan's detect_time: start of the earliest template channel.
    pub detect_time: Nanos,
    /// The stacked correlation sum.
    pub detect_val: f32,
    /// The threshold in units of `detect_val`.
    pub threshold: f32,
    /// `MAD`, `absolute` or `av_chan_corr`, as EQcorrscan names them.
    pub threshold_type: String,
    /// The threshold as given (e.g. 8 for 8 × MAD).
    pub threshold_input: f64,
    pub n_channels: u32,
    /// (station, channel) of the channels used.
    pub channels: Vec<(String, String)>,
    pub origin_time: Nanos,
    pub latitude: f64,
    pub longitude: f64,
    pub depth_km: f64,
    pub template_magnitude: Option<f64>,
    /// The template magnitude's type (e.g. `ML`), given to the relative
    /// magnitude; `None` writes none. Added to the brief's fields.
    pub magnitude_type: Option<String>,
    pub magnitude: Option<RelMag>,
    pub picks: Vec<EventPick>,
}

impl CatalogEvent {
    /// `<template>_<detect time %Y%m%dT%H%M%S.%f>`, EQcorrscan's event id
    /// (the QuakeML resource id is `smi:local/` + this, with characters a
    /// QuakeML URI does not allow replaced by `_`).
    pub fn id(&self) -> String {
        format!("{}_{}", self.template, compact_time(self.detect_time))
    }
}

/// Rounds to whole microseconds, half to even, as ObsPy's
/// `UTCDateTime.datetime` does.
pub fn round_micros(t: Nanos) -> i64 {
    let (q, r) = (t.div_euclid(1000), t.rem_euclid(1000));
    if r > 500 || (r == 500 && q % 2 != 0) {
        q + 1
    } else {
        q
    }
}

/// `2012-09-02T03:20:05.860000Z` after rounding to microseconds: ObsPy's
/// `str(UTCDateTime)`.
pub fn iso_time(t: Nanos) -> String {
    format_time(round_micros(t) * 1000)
}

/// `20120902T032005.860000`: `strftime('%Y%m%dT%H%M%S.%f')`.
pub fn compact_time(t: Nanos) -> String {
    let s = iso_time(t);
    let digits: String = s[..19].chars().filter(|c| *c != '-' && *c != ':').collect();
    format!("{digits}{}", &s[19..26])
}

/// A float as Python's `repr` (and NumPy's `str` of a float32) writes it,
/// from Rust's shortest round-trip digits in `{:e}` form (`1.5e1`).
fn python_float(sci: &str) -> String {
    match sci {
        "NaN" => return "nan".into(),
        "inf" => return "inf".into(),
        "-inf" => return "-inf".into(),
        _ => {}
    }
    let (mant, exp) = sci.split_once('e').expect("{:e} form");
    let exp: i32 = exp.parse().expect("{:e} exponent");
    let (sign, mant) = mant.strip_prefix('-').map_or(("", mant), |m| ("-", m));
    let digits: String = mant.chars().filter(|c| *c != '.').collect();
    if (-4..16).contains(&exp) {
        format!("{sign}{}", positional(&digits, exp))
    } else {
        let (head, tail) = digits.split_at(1);
        let frac = if tail.is_empty() {
            String::new()
        } else {
            format!(".{tail}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{head}{frac}e{esign}{:02}", exp.abs())
    }
}

/// Digits `d1 d2 …` times 10^(exp) with the point after d1, positionally,
/// with at least one digit after the point.
fn positional(digits: &str, exp: i32) -> String {
    if exp < 0 {
        return format!("0.{}{digits}", "0".repeat((-exp - 1) as usize));
    }
    let int_len = exp as usize + 1;
    if digits.len() <= int_len {
        format!("{digits}{}.0", "0".repeat(int_len - digits.len()))
    } else {
        format!("{}.{}", &digits[..int_len], &digits[int_len..])
    }
}

/// `str(np.float32(x))`: shortest digits that round-trip the float32.
pub fn py_f32(x: f32) -> String {
    python_float(&format!("{x:e}"))
}

/// The text EQcorrscan writes for a float32 value (`detect_val`,
/// `threshold`, `cc_max`): `"{0}".format(np.float32(x))`, which NumPy
/// formats as the Python float of the same value (`1.2161409854888916`,
/// not `str`'s `1.216141`).
pub fn eqc_f32(x: f32) -> String {
    py_f64(x as f64)
}

/// `repr(x)` of a Python float.
pub fn py_f64(x: f64) -> String {
    python_float(&format!("{x:e}"))
}

/// Python's `repr` of a str (single quotes unless the text has a single
/// quote and no double quote), enough for station and channel codes.
pub fn py_str(s: &str) -> String {
    let q = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(q);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c == q => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push(q);
    out
}

/// `('ATKH', 'EHE')`: Python's `str` of a (station, channel) tuple.
pub fn py_pair(pair: &(String, String)) -> String {
    format!("({}, {})", py_str(&pair.0), py_str(&pair.1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::epoch::parse_time;

    #[test]
    fn python_float_forms() {
        assert_eq!(py_f32(21.0), "21.0");
        assert_eq!(py_f32(11.216141), "11.216141");
        assert_eq!(py_f32(1e-5), "1e-05");
        assert_eq!(py_f32(1e16), "1e+16");
        assert_eq!(py_f32(-0.0), "-0.0");
        assert_eq!(py_f32(0.0001), "0.0001");
        assert_eq!(py_f64(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(py_f64(12.0), "12.0");
        assert_eq!(py_f64(1.5e-7), "1.5e-07");
        assert_eq!(py_f64(123456.5), "123456.5");
        assert_eq!(py_f64(f64::NAN), "nan");
        assert_eq!(eqc_f32(1.216141), "1.2161409854888916");
        assert_eq!(eqc_f32(0.75), "0.75");
        assert_eq!(eqc_f32(1e-5), "9.999999747378752e-06");
    }

    #[test]
    fn times_as_obspy() {
        let t = parse_time("2012-09-02T03:20:05.86Z").unwrap();
        assert_eq!(iso_time(t), "2012-09-02T03:20:05.860000Z");
        assert_eq!(compact_time(t), "20120902T032005.860000");
        assert_eq!(round_micros(1500), 2);
        assert_eq!(round_micros(2500), 2);
        assert_eq!(round_micros(2501), 3);
        assert_eq!(round_micros(-500), 0);
        assert_eq!(round_micros(-1500), -2);
    }

    #[test]
    fn python_strings() {
        assert_eq!(py_pair(&("ATKH".into(), "EHE".into())), "('ATKH', 'EHE')");
        assert_eq!(py_str("a'b"), "\"a'b\"");
        assert_eq!(py_str("a\\b"), "'a\\\\b'");
    }
}
