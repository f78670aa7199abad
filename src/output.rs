//! detections.h5: append-only, chunked and compressed, one day at a time.
//!
//! * `/detections`: one row per detection (template index, time in ns since
//!   the epoch, cc_sum, mean_cc, threshold, mad, n_channels, and the range of
//!   its rows in `/detection_channels`);
//! * `/detection_channels`: per detection and template channel, the CC at
//!   the detection, and the best |CC| within ±shift_len with its lag;
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

use std::path::{Path, PathBuf};

use hdf5::types::{FixedAscii, VarLenUnicode};
use hdf5::{Dataset, Extent, H5Type};

use crate::detect::Detection;
use crate::epoch::{self, Day, Nanos};
use crate::error::{Error, Result};
use crate::shard::Shard;
use crate::templates::TemplateSet;

pub const FORMAT: &str = "tmatch-detections";
pub const FORMAT_VERSION: u32 = 2;

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
fn ascii<const N: usize>(s: &str) -> FixedAscii<N> {
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

/// What identifies a run: a file is resumed, and files are merged, only
/// when these agree.
#[derive(Debug, Clone, PartialEq)]
pub struct RunInfo {
    pub template_checksum: u64,
    /// Detection parameters as a JSON object (the days requested included).
    pub parameters: String,
    /// `I/N` for one shard of the requested days, empty for all of them.
    pub shard: String,
    /// `J/K` for one shard of the templates, empty for all of them.
    pub template_shard: String,
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

pub struct Writer {
    path: PathBuf,
    file: hdf5::File,
    detections: Dataset,
    channels: Dataset,
    days: Dataset,
    problems: Dataset,
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

fn str_attr(file: &hdf5::File, name: &str) -> hdf5::Result<String> {
    Ok(file.attr(name)?.read_scalar::<VarLenUnicode>()?.to_string())
}

/// Check that `file` is a detections file of this format version.
fn check_format(path: &Path, file: &hdf5::File) -> Result<()> {
    if str_attr(file, "format").unwrap_or_default() != FORMAT {
        return Err(Error::file(path, "not a tmatch detections file"));
    }
    let version: u32 = file
        .attr("format_version")
        .and_then(|a| a.read_scalar())
        .map_err(|e| Error::file(path, format!("HDF5: {e}")))?;
    if version != FORMAT_VERSION {
        return Err(Error::file(
            path,
            format!("detections format version {version}, expected {FORMAT_VERSION}"),
        ));
    }
    Ok(())
}

fn read_run_info(path: &Path, file: &hdf5::File) -> Result<RunInfo> {
    let h5 = |e: hdf5::Error| Error::file(path, format!("HDF5: {e}"));
    Ok(RunInfo {
        template_checksum: file
            .attr("template_checksum")
            .and_then(|a| a.read_scalar())
            .map_err(h5)?,
        parameters: str_attr(file, "parameters").map_err(h5)?,
        shard: str_attr(file, "shard").map_err(h5)?,
        // Files made before template shards have no such attribute.
        template_shard: if file
            .attr_names()
            .map_err(h5)?
            .iter()
            .any(|n| n == "template_shard")
        {
            str_attr(file, "template_shard").map_err(h5)?
        } else {
            String::new()
        },
    })
}

/// How a `template_shard` attribute reads in messages.
fn template_shard_name(s: &str) -> String {
    if s.is_empty() {
        "all templates".to_string()
    } else {
        format!("template shard {s}")
    }
}

/// The `/days` rows that were written whole, with their problems: a row
/// that a crash left unwritten or half written has no valid day, status or
/// problems and ends the list.
fn completed_days(rows: &[DayRow], problems: &[u8]) -> Vec<DayStatus> {
    rows.iter()
        .map_while(|d| {
            let day = epoch::parse_day(d.day.as_str()).ok()?;
            let status = d.status.as_str();
            if !["done", "no-data", "failed"].contains(&status) {
                return None;
            }
            let (a, n) = (d.problems_start as usize, d.problems_len as usize);
            let text = problems.get(a..a.checked_add(n)?)?;
            Some(DayStatus {
                day,
                status: status.to_string(),
                n_detections: d.n_detections,
                wall_s: d.wall_s,
                device: d.device.as_str().to_string(),
                problems: String::from_utf8_lossy(text).into_owned(),
            })
        })
        .collect()
}

/// The days without failed rows that a later row of the same day (written
/// by `--resume`) replaces. A failed day has no detection rows, so the
/// detection rows of the days kept are unchanged.
fn without_redone_failures(days: Vec<DayStatus>) -> Vec<DayStatus> {
    let last: std::collections::HashMap<Day, usize> =
        days.iter().enumerate().map(|(i, d)| (d.day, i)).collect();
    days.into_iter()
        .enumerate()
        .filter(|(i, d)| d.status != "failed" || last[&d.day] == *i)
        .map(|(_, d)| d)
        .collect()
}

/// The days of `days` that a resumed run still has to do: those without a
/// row in `done`, and those whose row says they failed.
pub fn days_to_do(done: &[DayStatus], days: &[Day]) -> Vec<Day> {
    let done: std::collections::HashSet<Day> = done
        .iter()
        .filter(|d| d.status != "failed")
        .map(|d| d.day)
        .collect();
    days.iter().copied().filter(|d| !done.contains(d)).collect()
}

/// How many detection and channel rows the completed days `done` own,
/// given how many the file holds and a way to read detection row `i`; an
/// error when the file holds fewer than `/days` counts.
fn committed_rows(
    path: &Path,
    done: &[DayStatus],
    n_rows: usize,
    n_channel_rows: usize,
    row: impl FnOnce(usize) -> Result<DetectionRow>,
) -> Result<(usize, usize)> {
    let damaged = || {
        Error::file(
            path,
            "damaged: /days counts more detections than the file holds",
        )
    };
    let n_det: usize = done.iter().map(|d| d.n_detections as usize).sum();
    if n_rows < n_det {
        return Err(damaged());
    }
    let n_ch = match n_det {
        0 => 0,
        n => {
            let last = row(n - 1)?;
            (last.first_channel_row + last.n_channel_rows as u64) as usize
        }
    };
    if n_channel_rows < n_ch {
        return Err(damaged());
    }
    Ok((n_det, n_ch))
}

impl Writer {
    /// Create a new detections file for a run with `command_line`. It is
    /// made under a temporary name and renamed once complete, so a process
    /// killed while creating it leaves no half-made file under `path`.
    pub fn create(
        path: &Path,
        templates: &TemplateInfo,
        run: &RunInfo,
        command_line: &str,
    ) -> Result<Writer> {
        let mut partial = path.as_os_str().to_owned();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        let h5 = |e: hdf5::Error| Error::file(path, format!("HDF5: {e}"));
        let file = hdf5::File::create(&partial)
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
        str_attr("parameters", &run.parameters)?;
        str_attr("shard", &run.shard)?;
        str_attr("template_shard", &run.template_shard)?;
        file.new_attr::<u32>()
            .create("format_version")
            .and_then(|a| a.write_scalar(&FORMAT_VERSION))
            .map_err(h5)?;
        file.new_attr::<u64>()
            .create("template_checksum")
            .and_then(|a| a.write_scalar(&run.template_checksum))
            .map_err(h5)?;
        let rows: Vec<TemplateRow> = (0..templates.ids.len())
            .map(|i| TemplateRow {
                id: vlu(&templates.ids[i]),
                origin_offset_ns: templates.origin_offsets[i],
                channels: vlu(&templates.channels[i]),
            })
            .collect();
        file.new_dataset_builder()
            .with_data(&rows)
            .create("templates")
            .map_err(h5)?;
        // Not compressed: a compressed chunk that is rewritten in place and
        // cut short by a kill would take the rows of completed days with it.
        let table = |name: &str, chunk: usize| -> Result<Dataset> {
            let b = file.new_dataset_builder().chunk(chunk);
            match name {
                "detections" => b
                    .empty::<DetectionRow>()
                    .shape(Extent::resizable(0))
                    .create(name),
                "detection_channels" => b
                    .empty::<ChannelRow>()
                    .shape(Extent::resizable(0))
                    .create(name),
                "day_problems" => b.empty::<u8>().shape(Extent::resizable(0)).create(name),
                _ => b.empty::<DayRow>().shape(Extent::resizable(0)).create(name),
            }
            .map_err(h5)
        };
        let detections = table("detections", 4096)?;
        let channels = table("detection_channels", 16384)?;
        let days = table("days", 64)?;
        let problems = table("day_problems", 1 << 16)?;
        file.flush().map_err(h5)?;
        // The open file follows the rename.
        std::fs::rename(&partial, path).map_err(|e| Error::file(path, e))?;
        Ok(Writer {
            path: path.to_path_buf(),
            file,
            detections,
            channels,
            days,
            problems,
        })
    }

    /// Reopen a file of the same run (template checksum, parameters and
    /// shard must agree) to go on with it. Rows of a day that was in flight
    /// when the last run stopped are dropped; the days completed are
    /// returned.
    pub fn resume(path: &Path, run: &RunInfo) -> Result<(Writer, Vec<DayStatus>)> {
        let h5 = |e: hdf5::Error| Error::file(path, format!("HDF5: {e}"));
        let file = hdf5::File::open_rw(path)
            .map_err(|e| Error::file(path, format!("cannot open to resume: {e}")))?;
        check_format(path, &file)?;
        let found = read_run_info(path, &file)?;
        if found.template_checksum != run.template_checksum {
            return Err(Error::file(
                path,
                format!(
                    "made with another template set (checksum {:016x}, this one {:016x}); \
                     cannot resume it",
                    found.template_checksum, run.template_checksum
                ),
            ));
        }
        if found.shard != run.shard {
            let name = |s: &str| {
                if s.is_empty() {
                    "all days".to_string()
                } else {
                    format!("shard {s}")
                }
            };
            return Err(Error::file(
                path,
                format!(
                    "made for {}, this run is for {}; cannot resume it",
                    name(&found.shard),
                    name(&run.shard)
                ),
            ));
        }
        if found.template_shard != run.template_shard {
            return Err(Error::file(
                path,
                format!(
                    "made for {}, this run is for {}; cannot resume it",
                    template_shard_name(&found.template_shard),
                    template_shard_name(&run.template_shard)
                ),
            ));
        }
        if found.parameters != run.parameters {
            return Err(Error::file(
                path,
                format!(
                    "made with other parameters ({}; this run: {}); cannot resume it",
                    found.parameters, run.parameters
                ),
            ));
        }
        let detections = file.dataset("detections").map_err(h5)?;
        let channels = file.dataset("detection_channels").map_err(h5)?;
        let days = file.dataset("days").map_err(h5)?;
        let problems = file.dataset("day_problems").map_err(h5)?;
        let done = completed_days(
            &days.read_raw::<DayRow>().map_err(h5)?,
            &problems.read_raw::<u8>().map_err(h5)?,
        );
        let n_problem_bytes: u64 = done.iter().map(|d| d.problems.len() as u64).sum();
        let (n_det, n_ch) = committed_rows(path, &done, detections.size(), channels.size(), |i| {
            Ok(detections
                .read_slice_1d::<DetectionRow, _>(i..i + 1)
                .map_err(h5)?[0]
                .clone())
        })?;
        days.resize(done.len()).map_err(h5)?;
        detections.resize(n_det).map_err(h5)?;
        channels.resize(n_ch).map_err(h5)?;
        problems.resize(n_problem_bytes as usize).map_err(h5)?;
        file.flush().map_err(h5)?;
        Ok((
            Writer {
                path: path.to_path_buf(),
                file,
                detections,
                channels,
                days,
                problems,
            },
            done,
        ))
    }

    /// Append one day: its detections, then its status row; then flush.
    pub fn write_day(&mut self, status: &DayStatus, detections: &[Detection]) -> Result<()> {
        let mut det_rows = Vec::with_capacity(detections.len());
        let mut ch_rows = Vec::new();
        for d in detections {
            det_rows.push(DetectionRow {
                template: d.template as u32,
                time_ns: d.time,
                cc_sum: d.cc_sum,
                mean_cc: d.mean_cc,
                threshold: d.threshold,
                mad: d.mad,
                n_channels: d.n_channels as u32,
                first_channel_row: ch_rows.len() as u64,
                n_channel_rows: d.channels.len() as u32,
            });
            for c in &d.channels {
                ch_rows.push(ChannelRow {
                    detection: det_rows.len() as u64 - 1,
                    channel: c.channel as u32,
                    cc: c.cc,
                    best_cc: c.best_cc,
                    best_lag: c.best_lag,
                });
            }
        }
        self.write_rows(status, det_rows, ch_rows)
    }

    /// Append one day's rows, numbered from 0 within the day (detection
    /// indices and channel row offsets are moved to the end of the file).
    fn write_rows(
        &mut self,
        status: &DayStatus,
        mut det_rows: Vec<DetectionRow>,
        mut ch_rows: Vec<ChannelRow>,
    ) -> Result<()> {
        let path = self.path.clone();
        let h5 = |e: hdf5::Error| Error::file(&path, format!("HDF5: {e}"));
        let first_det = self.detections.size() as u64;
        let first_ch = self.channels.size() as u64;
        for r in &mut det_rows {
            r.first_channel_row += first_ch;
        }
        for c in &mut ch_rows {
            c.detection += first_det;
        }
        let problems_start = self.problems.size() as u64;
        append(&self.detections, &det_rows).map_err(h5)?;
        append(&self.channels, &ch_rows).map_err(h5)?;
        append(&self.problems, status.problems.as_bytes()).map_err(h5)?;
        // The rows are on disk before the /days row that commits them: a
        // kill during the second flush leaves the day either committed
        // with all its rows or not committed.
        self.file.flush().map_err(h5)?;
        let row = DayRow {
            day: ascii(&epoch::format_day(status.day)),
            status: ascii(&status.status),
            n_detections: det_rows.len() as u64,
            wall_s: status.wall_s,
            device: ascii(&status.device),
            problems_start,
            problems_len: status.problems.len() as u64,
        };
        append(&self.days, &[row]).map_err(h5)?;
        self.file.flush().map_err(h5)
    }
}

/// A detections file read back: what `export`, `merge` and tests use.
/// Only completed days are read.
#[derive(Debug, Clone)]
pub struct Detections {
    pub templates: TemplateInfo,
    pub run: RunInfo,
    pub rows: Vec<DetectionRow>,
    pub channels: Vec<ChannelRow>,
    /// In the order they were written; a day's detection rows follow those
    /// of the days before it.
    pub days: Vec<DayStatus>,
}

impl Detections {
    /// Detection rows of each day, in `days` order.
    pub fn day_rows(&self) -> Vec<std::ops::Range<usize>> {
        let mut at = 0;
        self.days
            .iter()
            .map(|d| {
                let r = at..at + d.n_detections as usize;
                at = r.end;
                r
            })
            .collect()
    }
}

pub fn read(path: &Path) -> Result<Detections> {
    let h5 = |e: hdf5::Error| Error::file(path, format!("HDF5: {e}"));
    let file = hdf5::File::open(path)
        .map_err(|e| Error::file(path, format!("cannot open as HDF5: {e}")))?;
    check_format(path, &file)?;
    let run = read_run_info(path, &file)?;
    let templates: Vec<TemplateRow> = file
        .dataset("templates")
        .and_then(|d| d.read_raw())
        .map_err(h5)?;
    let days: Vec<DayRow> = file
        .dataset("days")
        .and_then(|d| d.read_raw())
        .map_err(h5)?;
    let problems: Vec<u8> = file
        .dataset("day_problems")
        .and_then(|d| d.read_raw())
        .map_err(h5)?;
    let days = completed_days(&days, &problems);
    let mut rows: Vec<DetectionRow> = file
        .dataset("detections")
        .and_then(|d| d.read_raw())
        .map_err(h5)?;
    let mut channels: Vec<ChannelRow> = file
        .dataset("detection_channels")
        .and_then(|d| d.read_raw())
        .map_err(h5)?;
    // Only rows of completed days count (see the module notes).
    let (n_det, n_ch) = committed_rows(path, &days, rows.len(), channels.len(), |i| {
        Ok(rows[i].clone())
    })?;
    rows.truncate(n_det);
    channels.truncate(n_ch);
    let days = without_redone_failures(days);
    Ok(Detections {
        templates: TemplateInfo {
            ids: templates.iter().map(|t| t.id.to_string()).collect(),
            origin_offsets: templates.iter().map(|t| t.origin_offset_ns).collect(),
            channels: templates.iter().map(|t| t.channels.to_string()).collect(),
        },
        run,
        rows,
        channels,
        days,
    })
}

/// What a merge found besides the merged days.
#[derive(Debug, Default)]
pub struct MergeReport {
    pub days: usize,
    pub detections: usize,
    /// Requested days (the runs' `days` parameter) that no file holds.
    pub missing: Vec<Day>,
    /// Days whose detection failed (written as failed; `--resume` on the
    /// shard that holds them redoes them).
    pub failed: Vec<Day>,
    /// Days that some of the template shards hold but not all, with the
    /// template shards they lack: not merged.
    pub incomplete: Vec<(Day, Vec<Shard>)>,
}

/// One day's detection rows of a file, each with its channel rows.
fn day_detections(
    f: &Detections,
    rows: std::ops::Range<usize>,
) -> impl Iterator<Item = (&DetectionRow, &[ChannelRow])> {
    f.rows[rows].iter().map(|d| {
        let a = d.first_channel_row as usize;
        (d, &f.channels[a..a + d.n_channel_rows as usize])
    })
}

/// Rows of one day numbered from 0, as [`Writer::write_rows`] takes them.
fn numbered(dets: Vec<(&DetectionRow, &[ChannelRow])>) -> (Vec<DetectionRow>, Vec<ChannelRow>) {
    let mut det_rows = Vec::with_capacity(dets.len());
    let mut ch_rows = Vec::new();
    for (i, (d, ch)) in dets.into_iter().enumerate() {
        det_rows.push(DetectionRow {
            first_channel_row: ch_rows.len() as u64,
            ..d.clone()
        });
        ch_rows.extend(ch.iter().map(|c| ChannelRow {
            detection: i as u64,
            ..c.clone()
        }));
    }
    (det_rows, ch_rows)
}

/// The `/days` row of a day made of every template shard's row, `parts`
/// in template shard order: done if every part is, no-data if every part
/// is, failed otherwise (a part that failed, or parts that disagree on
/// whether the day has data); detections and wall times add up, devices
/// and problem lines are each listed once.
fn combined_status(parts: &[(Shard, &DayStatus)]) -> DayStatus {
    let all = |s: &str| parts.iter().all(|(_, p)| p.status == s);
    let mut seen = std::collections::HashSet::new();
    let mut problems: Vec<String> = parts
        .iter()
        .flat_map(|(_, p)| p.problems.split('\n'))
        .filter(|l| !l.is_empty() && seen.insert(*l))
        .map(str::to_string)
        .collect();
    let status = if parts.iter().any(|(_, p)| p.status == "failed") {
        "failed"
    } else if all("done") {
        "done"
    } else if all("no-data") {
        "no-data"
    } else {
        let none: Vec<String> = parts
            .iter()
            .filter(|(_, p)| p.status == "no-data")
            .map(|(s, _)| s.to_string())
            .collect();
        problems.push(format!(
            "template shards {} found no data where the others found some",
            none.join(", ")
        ));
        "failed"
    };
    let mut devices: Vec<&str> = Vec::new();
    for (_, p) in parts {
        if !devices.contains(&p.device.as_str()) {
            devices.push(&p.device);
        }
    }
    DayStatus {
        day: parts[0].1.day,
        status: status.to_string(),
        n_detections: parts.iter().map(|(_, p)| p.n_detections).sum(),
        wall_s: parts.iter().map(|(_, p)| p.wall_s).sum(),
        device: devices.join(", "),
        problems: problems.join("\n"),
    }
}

/// Combine detections files of one run (its shards, say) into `output`,
/// days in order. Files of other template sets or parameters are refused,
/// and so is a day present in two files of the same template shard.
///
/// Files of template shards (`J/K`, all of the same `K`) may hold the same
/// days: a day is merged once all `K` hold it, its detections the union in
/// the order one run writes them (by time, then template), and is left out
/// and reported in [`MergeReport::incomplete`] otherwise.
pub fn merge(inputs: &[PathBuf], output: &Path, command_line: &str) -> Result<MergeReport> {
    let Some(first_path) = inputs.first() else {
        return Err(Error::Input("merge: no input files".into()));
    };
    let files: Vec<Detections> = inputs.iter().map(|p| read(p)).collect::<Result<_>>()?;
    let first = &files[0];
    for (p, f) in inputs.iter().zip(&files).skip(1) {
        let other = |what: &str| {
            Error::file(
                p,
                format!("{what} than {} ; not merged", first_path.display()),
            )
        };
        if f.run.template_checksum != first.run.template_checksum || f.templates != first.templates
        {
            return Err(other("made with another template set"));
        }
        if f.run.parameters != first.run.parameters {
            return Err(other(&format!(
                "made with other parameters ({} vs {})",
                f.run.parameters, first.run.parameters
            )));
        }
    }
    // Each file's template shard; all of one count.
    let shards: Vec<Shard> = inputs
        .iter()
        .zip(&files)
        .map(|(p, f)| match f.run.template_shard.as_str() {
            "" => Ok(Shard { index: 0, count: 1 }),
            s => s
                .parse()
                .map_err(|e| Error::file(p, format!("template_shard attribute: {e}; not merged"))),
        })
        .collect::<Result<_>>()?;
    let k = shards[0].count;
    if let Some(i) = shards.iter().position(|s| s.count != k) {
        return Err(Error::file(
            &inputs[i],
            format!(
                "made for {}, {} for {}: template shards of different counts are not merged",
                template_shard_name(&files[i].run.template_shard),
                first_path.display(),
                template_shard_name(&first.run.template_shard)
            ),
        ));
    }
    // Each day's parts (template shard, file, row in its /days), in order;
    // a day once per template shard.
    let mut days: std::collections::BTreeMap<Day, Vec<(usize, usize, usize)>> = Default::default();
    for (fi, f) in files.iter().enumerate() {
        for (di, d) in f.days.iter().enumerate() {
            days.entry(d.day)
                .or_default()
                .push((shards[fi].index, fi, di));
        }
    }
    let mut twice = Vec::new();
    for (&day, parts) in &mut days {
        parts.sort();
        for w in parts.windows(2).filter(|w| w[0].0 == w[1].0) {
            let of_shard = if k > 1 {
                format!(", template shard {}", shards[w[0].1])
            } else {
                String::new()
            };
            twice.push(format!(
                "{} ({} and {}{of_shard})",
                epoch::format_day(day),
                inputs[w[0].1].display(),
                inputs[w[1].1].display()
            ));
        }
    }
    if !twice.is_empty() {
        return Err(Error::Input(format!(
            "merge: days present twice{}: {}",
            if k > 1 { " in one template shard" } else { "" },
            twice.join(", ")
        )));
    }
    let requested: Vec<Day> = serde_json::from_str::<serde_json::Value>(&first.run.parameters)
        .ok()
        .and_then(|v| v.get("days")?.as_str().map(str::to_string))
        .and_then(|s| epoch::parse_days(&s).ok())
        .unwrap_or_default();
    let run = RunInfo {
        shard: String::new(),
        template_shard: String::new(),
        ..first.run.clone()
    };
    let mut w = Writer::create(output, &first.templates, &run, command_line)?;
    let ranges: Vec<_> = files.iter().map(|f| f.day_rows()).collect();
    let mut report = MergeReport::default();
    for (&day, parts) in &days {
        if parts.len() < k {
            let lacking = (0..k)
                .filter(|&j| !parts.iter().any(|p| p.0 == j))
                .map(|index| Shard { index, count: k })
                .collect();
            report.incomplete.push((day, lacking));
            continue;
        }
        let mut dets: Vec<(&DetectionRow, &[ChannelRow])> = parts
            .iter()
            .flat_map(|&(_, fi, di)| day_detections(&files[fi], ranges[fi][di].clone()))
            .collect();
        let status = match parts[..] {
            [(_, fi, di)] => files[fi].days[di].clone(),
            _ => {
                // Each template's detections are in one part.
                dets.sort_by_key(|(d, _)| (d.time_ns, d.template));
                let of: Vec<(Shard, &DayStatus)> = parts
                    .iter()
                    .map(|&(_, fi, di)| (shards[fi], &files[fi].days[di]))
                    .collect();
                combined_status(&of)
            }
        };
        if status.status == "failed" {
            report.failed.push(day);
        }
        let (det_rows, ch_rows) = numbered(dets);
        report.detections += det_rows.len();
        report.days += 1;
        w.write_rows(&status, det_rows, ch_rows)?;
    }
    report.missing = requested
        .into_iter()
        .filter(|d| !days.contains_key(d))
        .collect();
    Ok(report)
}

/// Detections as CSV, one line each, in file order.
pub fn to_csv(d: &Detections) -> String {
    let mut out =
        String::from("template,detect_time,origin_time,cc_sum,mean_cc,threshold,mad,n_channels\n");
    for r in &d.rows {
        let t = r.template as usize;
        out.push_str(&format!(
            "{},{},{},{:.6},{:.6},{:.6},{:.6},{}\n",
            d.templates.ids[t],
            epoch::format_time(r.time_ns),
            epoch::format_time(r.time_ns - d.templates.origin_offsets[t]),
            r.cc_sum,
            r.mean_cc,
            r.threshold,
            r.mad,
            r.n_channels
        ));
    }
    out
}
