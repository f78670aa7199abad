//! detections.h5: append-only, chunked and compressed, one day at a time.
//!
//! * `/detections`: one row per detection (template index, time in ns since
//!   the epoch, cc_sum, mean_cc, threshold, mad, n_channels, and the range of
//!   its rows in `/detection_channels`);
//! * `/detection_channels`: per detection and template channel, the CC at
//!   the detection; the largest CC within ±shift_len, its lag in samples
//!   and that lag refined to a fraction of a sample (`lag`); and at that
//!   lag the window's standard deviation (`amplitude`) and largest |value|
//!   (`peak`), and the RMS of the template's length of data before it
//!   (`noise_rms`, NaN where not whole), for relative magnitudes;
//! * `/templates`: template ids, origin offsets (detection time − offset =
//!   origin time) and channel ids, with the template file's checksum;
//! * `/days`: day, status, n_detections, wall time, device, and where the
//!   day's problems are in `/day_problems` (UTF-8 bytes);
//! * root attributes: `format`, `format_version`, `tmatch_version`,
//!   `command_line`, `parameters` (JSON), `template_checksum`, `shard`
//!   (`I/N`, empty when the file covers all requested days) and
//!   `template_shard` (`J/K`, empty when it covers all templates; a file
//!   without it, from before it was added, covers them all).
//!
//! Written so that a process killed at any moment leaves a file that
//! opens and holds every completed day. A day's detection, channel and
//! problem rows are appended and flushed first; then its `/days` row,
//! which commits them, and a second flush. Rows past the committed ones
//! belong to a day in flight: reading ignores them and resuming drops
//! them. The tables are fixed-size rows without compression, so a chunk
//! rewritten to add rows rewrites the rows before them byte for byte and a
//! write cut short cannot damage them. A new file is made under a
//! temporary name and renamed once complete.

mod export;
mod merge;
mod reader;
mod schema;
mod writer;

pub use export::to_csv;
pub use merge::{merge, MergeReport};
pub use reader::{days_to_do, read, Detections, Reader};
pub use schema::{
    ChannelRow, DayRow, DayState, DayStatus, DetectionRow, RunInfo, RunParams, TemplateInfo,
    TemplateRow, FORMAT, FORMAT_VERSION,
};
pub use writer::{remove_existing, Mode, Opened, Writer};
