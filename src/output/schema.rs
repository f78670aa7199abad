//! What a detections file holds: its row types, the `/days` statuses and
//! the run's identity.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use hdf5::types::{FixedAscii, VarLenUnicode};
use hdf5::H5Type;
use serde::{Deserialize, Serialize};

use crate::detect::DetectParams;
use crate::detect::ThresholdType;
use crate::epoch::{Day, Nanos};
use crate::error::{Error, Result};
use crate::shard::Shard;
use crate::templates::TemplateSet;

pub const FORMAT: &str = "tmatch-detections";
pub const FORMAT_VERSION: u32 = 3;

#[derive(H5Type, Clone, Debug, PartialEq)]
#[repr(C)]
pub struct DetectionRow {
    pub template: u32,
    pub time_ns: i64,
    pub cc_sum: f32,
    pub mean_cc: f32,
    pub threshold: f32,
    pub mad: f32,
    pub n_channels: u32,
    pub first_channel_row: u64,
    pub n_channel_rows: u32,
}

#[derive(H5Type, Clone, Debug, PartialEq)]
#[repr(C)]
pub struct ChannelRow {
    pub detection: u64,
    pub channel: u32,
    pub cc: f32,
    pub best_cc: f32,
    pub best_lag: i32,
    pub lag: f32,
    pub amplitude: f32,
    pub peak: f32,
    pub noise_rms: f32,
}

#[derive(H5Type, Clone, Debug)]
#[repr(C)]
pub struct TemplateRow {
    pub id: VarLenUnicode,
    pub origin_offset_ns: i64,
    pub channels: VarLenUnicode,
}

/// Fixed-size, so that rewriting a chunk of rows rewrites the rows before
/// the new one byte for byte (see the module notes).
#[derive(H5Type, Clone, Debug)]
#[repr(C)]
pub struct DayRow {
    /// `YYYY-MM-DD`.
    pub day: FixedAscii<10>,
    /// `done`, `no-data` or `failed`.
    pub status: FixedAscii<8>,
    pub n_detections: u64,
    pub wall_s: f64,
    pub device: FixedAscii<64>,
    /// The day's problems: bytes `[problems_start, + problems_len)` of
    /// `/day_problems` (UTF-8, one per line).
    pub problems_start: u64,
    pub problems_len: u64,
}
/// ASCII, at most `N` bytes: other characters become `?`.
pub(super) fn ascii<const N: usize>(s: &str) -> FixedAscii<N> {
    let b: Vec<u8> = s
        .chars()
        .map(|c| {
            if c.is_ascii() && c != '\0' {
                c as u8
            } else {
                b'?'
            }
        })
        .take(N)
        .collect();
    FixedAscii::from_ascii(&b).expect("ASCII within capacity")
}

/// How a day ended, as the `/days` table spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DayState {
    /// Searched, with data for some template channel.
    Done,
    /// No data for any template channel.
    NoData,
    /// An error stopped it; a resumed run redoes it.
    Failed,
}

impl DayState {
    pub fn as_str(self) -> &'static str {
        match self {
            DayState::Done => "done",
            DayState::NoData => "no-data",
            DayState::Failed => "failed",
        }
    }
}

impl fmt::Display for DayState {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DayState {
    type Err = String;
    fn from_str(s: &str) -> Result<DayState, String> {
        [DayState::Done, DayState::NoData, DayState::Failed]
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| format!("unknown day status '{s}'"))
    }
}

/// Compares with the text in the file.
impl PartialEq<&str> for DayState {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// What the `/days` table says of one day.
#[derive(Debug, Clone, PartialEq)]
pub struct DayStatus {
    pub day: Day,
    pub status: DayState,
    pub n_detections: u64,
    pub wall_s: f64,
    pub device: String,
    /// One problem a line, as the file holds them.
    pub problems: String,
}

/// What identifies a run: a file is resumed, and files are merged, only
/// when these agree.
#[derive(Debug, Clone, PartialEq)]
pub struct RunInfo {
    pub template_checksum: u64,
    /// The [`RunParams`] as JSON. Compared as text, so that a file is
    /// resumed only by the very run that made it.
    pub parameters: String,
    /// One shard of the requested days, or `None` for all of them (an empty
    /// `shard` attribute).
    pub shard: Option<Shard>,
    /// One shard of the templates, or `None` for all of them (an empty or
    /// absent `template_shard` attribute).
    pub template_shard: Option<Shard>,
}

/// The detection parameters of a run, the requested days included, as
/// the `parameters` attribute holds them.
///
/// The fields are in alphabetical order, as are the keys of the files
/// written before this type existed (a JSON map sorts them): the same run
/// gives the same text, and such files still resume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunParams {
    /// Absolute, so that a resumed run or a shard on another node started
    /// from another folder is recognised as the same run.
    pub archive: PathBuf,
    /// The `--days` argument as given.
    pub days: String,
    pub min_channels: usize,
    pub shift_len: f64,
    /// Absolute, as `archive`.
    pub templates: PathBuf,
    pub threshold: f64,
    #[serde(with = "as_text")]
    pub threshold_type: ThresholdType,
    pub trig_int: f64,
}

impl RunParams {
    /// The parameters of a run over `days` (the `--days` text) with `params`.
    pub fn new(templates: PathBuf, archive: PathBuf, days: &str, params: &DetectParams) -> Self {
        RunParams {
            archive,
            days: days.to_string(),
            min_channels: params.min_channels,
            shift_len: params.shift_len,
            templates,
            threshold: params.threshold,
            threshold_type: params.threshold_type,
            trig_int: params.trig_int,
        }
    }

    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string(self).map_err(|e| Error::Input(format!("run parameters: {e}")))
    }

    /// The parameters of a `parameters` attribute, those it lacks at their
    /// defaults; `None` when it is not a JSON object of them.
    pub fn from_json(json: &str) -> Option<RunParams> {
        serde_json::from_str(json).ok()
    }
}

/// What a `parameters` attribute without them means: no paths or days, the
/// detection defaults.
impl Default for RunParams {
    fn default() -> Self {
        RunParams::new(PathBuf::new(), PathBuf::new(), "", &DetectParams::default())
    }
}

/// A field stored as its `Display` text and read back with `FromStr`.
mod as_text {
    use std::fmt::Display;
    use std::str::FromStr;

    use serde::{de, Deserialize, Deserializer, Serializer};

    pub fn serialize<T: Display, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    pub fn deserialize<'de, T, D>(d: D) -> Result<T, D::Error>
    where
        T: FromStr<Err: Display>,
        D: Deserializer<'de>,
    {
        String::deserialize(d)?.parse().map_err(de::Error::custom)
    }
}

/// The template table of a detections file.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateInfo {
    pub ids: Vec<String>,
    /// Detection time − offset = origin time.
    pub origin_offsets: Vec<Nanos>,
    /// Each template's channel ids, comma-separated.
    pub channels: Vec<String>,
}

impl TemplateInfo {
    pub fn of(set: &TemplateSet) -> TemplateInfo {
        TemplateInfo {
            ids: set.templates.iter().map(|t| t.event.id.clone()).collect(),
            origin_offsets: set.templates.iter().map(|t| t.origin_offset()).collect(),
            channels: set
                .templates
                .iter()
                .map(|t| {
                    t.channels
                        .iter()
                        .map(|c| c.id.as_str())
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same run gives the text that files written before [`RunParams`]
    /// hold (a `serde_json::json!` map), so that they still resume.
    #[test]
    fn run_params_json_is_that_of_older_files() {
        let params = DetectParams {
            threshold: 8.0,
            threshold_type: ThresholdType::AvChanCorr,
            trig_int: 6.0,
            min_channels: 3,
            shift_len: 0.25,
            ..Default::default()
        };
        let p = RunParams::new(
            "/data/t.h5".into(),
            "/data/archive".into(),
            "2024-02-29..2024-03-01",
            &params,
        );
        let json = p.to_json().unwrap();
        assert_eq!(
            json,
            r#"{"archive":"/data/archive","days":"2024-02-29..2024-03-01","min_channels":3,"shift_len":0.25,"templates":"/data/t.h5","threshold":8.0,"threshold_type":"av-chan-corr","trig_int":6.0}"#
        );
        assert_eq!(RunParams::from_json(&json), Some(p));
        let days = RunParams::from_json(r#"{"days":"2021-06-01"}"#)
            .unwrap()
            .days;
        assert_eq!(days, "2021-06-01");
    }
}
