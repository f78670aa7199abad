//! tmatch: find earthquakes in continuous seismograms by template matching.
//!
//! The modules stand on floors; each uses only those on floors below it
//! (and its neighbours on the same floor):
//!
//! 1. [`epoch`], [`error`], [`checksum`], [`h5`], [`problem`], [`timing`],
//!    [`memory`]: time, errors, hashing, HDF5 helpers, the problems a day
//!    can have, stage timers, memory limits; [`events`]: declustering and
//!    the catalogue writers;
//! 2. [`archive`], [`preprocess`], [`catalog`]: the inputs read and the one
//!    processing recipe;
//! 3. [`stretch`], [`shard`], [`synth`]: continuous data loaded onto one
//!    grid, the split of work among jobs, and the test-archive generator;
//! 4. [`templates`], [`correlate`], [`detect`]: template sets, correlation
//!    and stacking, thresholds and peaks;
//! 5. [`output`]: detections.h5 and its export;
//! 6. [`pipeline`]: the day loop that ties them together; [`plot`]: plots
//!    of detections, stacked traces and template sets;
//! 7. the `tmatch` binary, the command line.

// Reading and indexing miniSEED archives (SDS or any folder).
pub mod archive;
// Event catalogs: picks and events from CSV or QuakeML.
pub mod catalog;
// The FNV-1a hash behind template and path checksums.
pub mod checksum;
// Normalized cross-correlation and moveout stacking behind the
// `correlate::Backend` seam (CPU FFT and CUDA backends).
pub mod correlate;
// Detections: thresholds, peaks and declustering.
pub mod detect;
// From detections to catalogue events: declustering and the event writers
// (QuakeML, CSV, EQcorrscan detections, hypoDD dt.cc).
pub mod events;
// Time as integer nanoseconds, days and sample grids.
pub mod epoch;
// The library's error type.
pub mod error;
// Small HDF5 helpers shared by templates.h5 and detections.h5.
pub mod h5;
// What memory this process may use and has used.
pub mod memory;
// detections.h5: writing, reading, merging and export.
pub mod output;
// The day loop: load, detect and write each day on every device.
pub mod pipeline;
// Plots (PNG or SVG) of a detection, a template's day, a run and a
// template set.
pub mod plot;
// Preprocessing: detrend, resample and filter by a `preprocess::Recipe`.
pub mod preprocess;
// The problems of a day: missing channels, bad files, flat templates.
pub mod problem;
// Splitting days or templates among the tasks of an array job.
pub mod shard;
// Continuous data of many channels processed onto one sample grid.
pub mod stretch;
// The generator of synthetic test archives (`tmatch synth`).
pub mod synth;
// Template sets: built from a catalog, read and written as templates.h5.
pub mod templates;
// Thread-seconds per pipeline stage (`tmatch detect --timing`).
pub mod timing;

pub use error::{Error, Result};
