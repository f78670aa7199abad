//! What went wrong with part of a day without stopping it: each problem
//! names its channel, file or template, and reads as one line of the
//! day's problems in the output.

use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum Problem {
    /// A channel with no data in the stretch read.
    NoData { channel: String },
    /// What the archive said of a file it could not read, or read only in
    /// part, naming the file.
    Archive(String),
    /// A channel recorded at another rate than the templates', left out.
    OtherRate {
        channel: String,
        data_rate: f64,
        rate: f64,
    },
    /// Constant data, where nothing can be correlated.
    FlatData { channel: String, seconds: f64 },
    /// NaN or infinite samples, treated as gaps.
    NonFinite { channel: String, samples: usize },
    /// A template channel without variance, left out.
    FlatTemplate { template: String, channel: String },
    /// The error that failed the day.
    Failed(String),
}

impl Problem {
    pub fn no_data(channel: &str) -> Problem {
        Problem::NoData {
            channel: channel.to_string(),
        }
    }

    /// Missing channels are routine on long runs: counted rather than
    /// each said.
    pub fn is_missing_channel(&self) -> bool {
        matches!(self, Problem::NoData { .. })
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Problem::NoData { channel } => write!(f, "{channel}: no data"),
            Problem::Archive(what) | Problem::Failed(what) => f.write_str(what),
            Problem::OtherRate {
                channel,
                data_rate,
                rate,
            } => write!(
                f,
                "{channel}: data sampled at {data_rate} Hz, templates at {rate} Hz \
                 (build templates with --sampling-rate to resample); channel not used"
            ),
            Problem::FlatData { channel, seconds } => write!(
                f,
                "{channel}: flat (constant) data for {seconds:.0} s; no correlation there"
            ),
            Problem::NonFinite { channel, samples } => write!(
                f,
                "{channel}: {samples} NaN or infinite samples treated as gaps"
            ),
            Problem::FlatTemplate { template, channel } => {
                write!(
                    f,
                    "template {template}: channel {channel} is flat; not used"
                )
            }
        }
    }
}

/// A day's problems as the output holds them: one a line.
pub fn lines(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}
