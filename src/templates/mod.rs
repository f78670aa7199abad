//! Template sets: known earthquakes cut from processed continuous data, one
//! waveform per channel and phase, with the moveouts that align them.

pub mod build;
mod file;
mod import;

pub use build::{build, BuildOptions, Phases};
pub use file::{read, write, FORMAT_VERSION};
pub use import::import_tribe;

use crate::catalog::{Event, Phase};
use crate::epoch::Nanos;
use crate::preprocess::Recipe;

#[derive(Debug, Clone, PartialEq)]
pub struct TemplateChannel {
    /// SEED id `NET.STA.LOC.CHA`.
    pub id: String,
    pub phase: Phase,
    /// Time of the first sample.
    pub start: Nanos,
    /// Offset in samples from the template's earliest channel.
    pub pad: usize,
    pub weight: f32,
    /// Processed amplitudes (not normalized), `TemplateSet::len` samples.
    pub data: Vec<f32>,
    /// From the first sample to the phase pick the window was cut around
    /// (the window's `--pre`): a detection's pick on this channel is its
    /// start at the detection plus this, as EQcorrscan's `lag_calc` has it.
    pub pick_offset: Nanos,
    /// RMS of the processed data over the template's length just before
    /// the window: the noise that relative magnitudes weigh the template's
    /// amplitude against; none where that stretch was not whole.
    pub noise_rms: Option<f32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    /// The earthquake the template was cut from; its id names the
    /// template. Without a catalogued origin, the origin is the start of
    /// the earliest channel and the location and magnitude are NaN.
    pub event: Event,
    pub channels: Vec<TemplateChannel>,
}

impl Template {
    /// Start of the earliest channel, which is the time a detection reports.
    pub fn start(&self) -> Nanos {
        self.channels
            .iter()
            .map(|c| c.start)
            .min()
            .unwrap_or(self.event.origin)
    }

    /// Detection time minus this offset is the origin time.
    pub fn origin_offset(&self) -> Nanos {
        self.start() - self.event.origin
    }

    pub fn max_pad(&self) -> usize {
        self.channels.iter().map(|c| c.pad).max().unwrap_or(0)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TemplateSet {
    /// How the continuous data must be processed to match the templates.
    pub recipe: Recipe,
    /// Sampling rate of every template (Hz).
    pub rate: f64,
    /// Samples per template channel (M).
    pub len: usize,
    pub templates: Vec<Template>,
}

impl TemplateSet {
    /// SEED ids of every channel any template uses, sorted.
    pub fn channel_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .templates
            .iter()
            .flat_map(|t| t.channels.iter().map(|c| c.id.clone()))
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }

    pub fn max_pad(&self) -> usize {
        self.templates
            .iter()
            .map(Template::max_pad)
            .max()
            .unwrap_or(0)
    }

    /// Checksum of everything that affects detections: recipe, rate,
    /// channels, moveouts, weights and waveforms.
    pub fn checksum(&self) -> u64 {
        let mut h = crate::checksum::Fnv1a::default();
        h.write(format!("{:?}|{}|{}", self.recipe, self.rate, self.len).as_bytes());
        for t in &self.templates {
            h.write(t.event.id.as_bytes());
            for c in &t.channels {
                h.write(
                    format!("|{}|{}|{}|{}|{}", c.id, c.phase, c.start, c.pad, c.weight).as_bytes(),
                );
                for v in &c.data {
                    h.write(&v.to_le_bytes());
                }
            }
        }
        h.finish()
    }
}
