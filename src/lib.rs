//! tmatch: find earthquakes in continuous seismograms by template matching.
//!
//! Pipeline stages, one module each: [`archive`] (read and index miniSEED),
//! [`preprocess`] (detrend, resample, filter), [`templates`] (build, read and
//! write template sets), [`correlate`] (normalized cross-correlation and
//! moveout stack behind the [`correlate::Backend`] seam), [`detect`]
//! (thresholds and peaks), [`output`] (detections.h5 and export), tied
//! together day by day in [`pipeline`].

pub mod archive;
pub mod catalog;
pub mod checksum;
pub mod correlate;
pub mod detect;
pub mod epoch;
pub mod error;
pub mod h5;
pub mod output;
pub mod pipeline;
pub mod preprocess;
pub mod problem;
pub mod synth;
pub mod templates;

pub use error::{Error, Result};
