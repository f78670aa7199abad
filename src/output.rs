//! detections.h5: append-only, chunked and compressed, one day at a time.
//!
//! * `/detections`: one row per detection (template index, time in ns since
//!   the epoch, cc_sum, mean_cc, threshold, mad, n_channels, and the range of
//!   its rows in `/detection_channels`);
//! * `/detection_channels`: per detection and template channel, the CC at
//!   the detection, and the best |CC| within ±shift_len with its lag;
//! * `/templates`: template ids, origin offsets (detection time − offset =
//!   origin time) and channel ids, with the template file's checksum;
//! * `/days`: day, status, n_detections, wall time, device, problems;
//! * root attributes: `format`, `format_version`, `tmatch_version`,
//!   `command_line`, `parameters` (JSON), `template_checksum`.
//!
//! A day's detection rows are written first and its `/days` row last, then
//! the file is flushed: rows past the last day row belong to a day in
//! flight and are not part of the result.

use std::path::{Path, PathBuf};

use hdf5::types::VarLenUnicode;
use hdf5::{Dataset, Extent, H5Type};

use crate::epoch::{self, Day, Nanos};
use crate::error::{Error, Result};
use crate::pipeline::Detection;
use crate::templates::TemplateSet;

pub const FORMAT: &str = "tmatch-detections";
pub const FORMAT_VERSION: u32 = 1;

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
}

#[derive(H5Type, Clone, Debug)]
#[repr(C)]
pub struct TemplateRow {
    pub id: VarLenUnicode,
    pub origin_offset_ns: i64,
    pub channels: VarLenUnicode,
}

#[derive(H5Type, Clone, Debug)]
#[repr(C)]
pub struct DayRow {
    pub day: VarLenUnicode,
    /// `done`, `no-data` or `failed`.
    pub status: VarLenUnicode,
    pub n_detections: u64,
    pub wall_s: f64,
    pub device: VarLenUnicode,
    pub problems: VarLenUnicode,
}

/// What the `/days` table says of one day.
#[derive(Debug, Clone, PartialEq)]
pub struct DayStatus {
    pub day: Day,
    pub status: String,
    pub n_detections: u64,
    pub wall_s: f64,
    pub device: String,
    pub problems: String,
}

pub struct Writer {
    path: PathBuf,
    file: hdf5::File,
    detections: Dataset,
    channels: Dataset,
    days: Dataset,
}

fn vlu(s: &str) -> VarLenUnicode {
    // Strings with NUL cannot be stored; replace them rather than fail a day.
    s.replace('\0', " ").parse().expect("no NUL")
}

fn append<T: H5Type>(ds: &Dataset, rows: &[T]) -> hdf5::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let n = ds.size();
    ds.resize(n + rows.len())?;
    ds.write_slice(rows, n..n + rows.len())
}

impl Writer {
    /// Create a new detections file. `parameters` is a JSON object.
    pub fn create(
        path: &Path,
        set: &TemplateSet,
        command_line: &str,
        parameters: &str,
    ) -> Result<Writer> {
        let h5 = |e: hdf5::Error| Error::file(path, format!("HDF5: {e}"));
        let file = hdf5::File::create(path)
            .map_err(|e| Error::file(path, format!("cannot create the output file: {e}")))?;
        let str_attr = |name: &str, v: &str| -> Result<()> {
            file.new_attr::<VarLenUnicode>()
                .create(name)
                .and_then(|a| a.write_scalar(&vlu(v)))
                .map_err(h5)
        };
        str_attr("format", FORMAT)?;
        str_attr("tmatch_version", env!("CARGO_PKG_VERSION"))?;
        str_attr("command_line", command_line)?;
        str_attr("parameters", parameters)?;
        file.new_attr::<u32>()
            .create("format_version")
            .and_then(|a| a.write_scalar(&FORMAT_VERSION))
            .map_err(h5)?;
        file.new_attr::<u64>()
            .create("template_checksum")
            .and_then(|a| a.write_scalar(&set.checksum()))
            .map_err(h5)?;
        let rows: Vec<TemplateRow> = set
            .templates
            .iter()
            .map(|t| TemplateRow {
                id: vlu(&t.id),
                origin_offset_ns: t.origin_offset(),
                channels: vlu(&t
                    .channels
                    .iter()
                    .map(|c| c.id.as_str())
                    .collect::<Vec<_>>()
                    .join(",")),
            })
            .collect();
        file.new_dataset_builder()
            .with_data(&rows)
            .create("templates")
            .map_err(h5)?;
        let table = |name: &str, chunk: usize| -> Result<Dataset> {
            let b = file.new_dataset_builder().chunk(chunk).deflate(4);
            match name {
                "detections" => b
                    .empty::<DetectionRow>()
                    .shape(Extent::resizable(0))
                    .create(name),
                "detection_channels" => b
                    .empty::<ChannelRow>()
                    .shape(Extent::resizable(0))
                    .create(name),
                _ => b.empty::<DayRow>().shape(Extent::resizable(0)).create(name),
            }
            .map_err(h5)
        };
        let detections = table("detections", 4096)?;
        let channels = table("detection_channels", 16384)?;
        let days = table("days", 64)?;
        file.flush().map_err(h5)?;
        Ok(Writer {
            path: path.to_path_buf(),
            file,
            detections,
            channels,
            days,
        })
    }

    /// Append one day: its detections, then its status row; then flush.
    pub fn write_day(&mut self, status: &DayStatus, detections: &[Detection]) -> Result<()> {
        let path = self.path.clone();
        let h5 = |e: hdf5::Error| Error::file(&path, format!("HDF5: {e}"));
        let mut det_rows = Vec::with_capacity(detections.len());
        let mut ch_rows = Vec::new();
        let first_det = self.detections.size() as u64;
        let mut ch_next = self.channels.size() as u64;
        for (i, d) in detections.iter().enumerate() {
            det_rows.push(DetectionRow {
                template: d.template as u32,
                time_ns: d.time,
                cc_sum: d.cc_sum,
                mean_cc: d.mean_cc,
                threshold: d.threshold,
                mad: d.mad,
                n_channels: d.n_channels as u32,
                first_channel_row: ch_next,
                n_channel_rows: d.channels.len() as u32,
            });
            ch_next += d.channels.len() as u64;
            for c in &d.channels {
                ch_rows.push(ChannelRow {
                    detection: first_det + i as u64,
                    channel: c.channel as u32,
                    cc: c.cc,
                    best_cc: c.best_cc,
                    best_lag: c.best_lag,
                });
            }
        }
        append(&self.detections, &det_rows).map_err(h5)?;
        append(&self.channels, &ch_rows).map_err(h5)?;
        let row = DayRow {
            day: vlu(&epoch::format_day(status.day)),
            status: vlu(&status.status),
            n_detections: status.n_detections,
            wall_s: status.wall_s,
            device: vlu(&status.device),
            problems: vlu(&status.problems),
        };
        append(&self.days, &[row]).map_err(h5)?;
        self.file.flush().map_err(h5)
    }
}

/// A detections file read back: what `export` and tests use.
#[derive(Debug, Clone)]
pub struct Detections {
    pub template_ids: Vec<String>,
    pub origin_offsets: Vec<Nanos>,
    pub rows: Vec<DetectionRow>,
    pub channels: Vec<ChannelRow>,
    pub days: Vec<DayStatus>,
}

pub fn read(path: &Path) -> Result<Detections> {
    let h5 = |e: hdf5::Error| Error::file(path, format!("HDF5: {e}"));
    let file = hdf5::File::open(path)
        .map_err(|e| Error::file(path, format!("cannot open as HDF5: {e}")))?;
    let format = file
        .attr("format")
        .and_then(|a| a.read_scalar::<VarLenUnicode>())
        .map(|s| s.to_string())
        .unwrap_or_default();
    if format != FORMAT {
        return Err(Error::file(path, "not a tmatch detections file"));
    }
    let version: u32 = file
        .attr("format_version")
        .and_then(|a| a.read_scalar())
        .map_err(h5)?;
    if version != FORMAT_VERSION {
        return Err(Error::file(
            path,
            format!("detections format version {version}, expected {FORMAT_VERSION}"),
        ));
    }
    let templates: Vec<TemplateRow> = file
        .dataset("templates")
        .and_then(|d| d.read_raw())
        .map_err(h5)?;
    let days: Vec<DayRow> = file
        .dataset("days")
        .and_then(|d| d.read_raw())
        .map_err(h5)?;
    let mut rows: Vec<DetectionRow> = file
        .dataset("detections")
        .and_then(|d| d.read_raw())
        .map_err(h5)?;
    let mut channels: Vec<ChannelRow> = file
        .dataset("detection_channels")
        .and_then(|d| d.read_raw())
        .map_err(h5)?;
    // Only rows of completed days count (see the module notes).
    let n_done: u64 = days.iter().map(|d| d.n_detections).sum();
    rows.truncate(n_done as usize);
    let n_ch = rows
        .last()
        .map_or(0, |r| r.first_channel_row + r.n_channel_rows as u64);
    channels.truncate(n_ch as usize);
    let days = days
        .into_iter()
        .map(|d| -> Result<DayStatus> {
            Ok(DayStatus {
                day: epoch::parse_day(d.day.as_str()).map_err(|e| Error::file(path, e))?,
                status: d.status.to_string(),
                n_detections: d.n_detections,
                wall_s: d.wall_s,
                device: d.device.to_string(),
                problems: d.problems.to_string(),
            })
        })
        .collect::<Result<_>>()?;
    Ok(Detections {
        template_ids: templates.iter().map(|t| t.id.to_string()).collect(),
        origin_offsets: templates.iter().map(|t| t.origin_offset_ns).collect(),
        rows,
        channels,
        days,
    })
}

/// Detections as CSV, one line each, in file order.
pub fn to_csv(d: &Detections) -> String {
    let mut out =
        String::from("template,detect_time,origin_time,cc_sum,mean_cc,threshold,mad,n_channels\n");
    for r in &d.rows {
        let t = r.template as usize;
        out.push_str(&format!(
            "{},{},{},{:.6},{:.6},{:.6},{:.6},{}\n",
            d.template_ids[t],
            epoch::format_time(r.time_ns),
            epoch::format_time(r.time_ns - d.origin_offsets[t]),
            r.cc_sum,
            r.mean_cc,
            r.threshold,
            r.mad,
            r.n_channels
        ));
    }
    out
}
