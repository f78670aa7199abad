//! Writing detections files: made new, or resumed, one day at a time.

use std::path::{Path, PathBuf};

use hdf5::{Dataset, File};

use super::reader::{check_format, committed_rows, completed_days, days_to_do, read_run_info};
use super::schema::{
    ascii, ChannelRow, DayRow, DayStatus, DetectionRow, RunInfo, TemplateInfo, TemplateRow, FORMAT,
    FORMAT_VERSION,
};
use crate::detect::Detection;
use crate::epoch::{self, Day};
use crate::error::{Error, Result, WithPath};
use crate::h5::{self, InFile};
use crate::shard::Shard;

/// What to do with an output file that exists already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Refuse it.
    Create,
    /// Replace it.
    Overwrite,
    /// Go on with it (made by the same run); without it, start it.
    Resume,
}

/// Make way for a new output file at `path`: an existing file is removed
/// when `overwrite` is set, and an error otherwise.
pub fn remove_existing(path: &Path, overwrite: bool) -> Result<()> {
    if !path.exists() {
        return Ok(());
    }
    if !overwrite {
        return Err(Error::file(
            path,
            "output file exists; remove it or pass --overwrite",
        ));
    }
    std::fs::remove_file(path).at(path)
}

/// How a `shard` reads in messages.
fn shard_name(s: Option<Shard>) -> String {
    s.map_or("all days".to_string(), |s| format!("shard {s}"))
}

/// How a `template_shard` reads in messages.
pub(super) fn template_shard_name(s: Option<Shard>) -> String {
    s.map_or("all templates".to_string(), |s| {
        format!("template shard {s}")
    })
}

/// A detections file open for appending days.
pub struct Writer {
    path: PathBuf,
    file: File,
    detections: Dataset,
    channels: Dataset,
    days: Dataset,
    problems: Dataset,
}

/// A file opened by [`Writer::open`].
pub struct Opened {
    pub writer: Writer,
    /// The days of the run left to do.
    pub todo: Vec<Day>,
    /// Whether an existing file was resumed.
    pub resumed: bool,
}

impl Writer {
    /// Open the output of a run over `days` as `mode` says: a new file for
    /// `run` with `command_line` and `templates`, or the existing one
    /// resumed, with the days it has yet to do.
    pub fn open(
        path: &Path,
        templates: &TemplateInfo,
        run: &RunInfo,
        command_line: &str,
        mode: Mode,
        days: &[Day],
    ) -> Result<Opened> {
        if mode == Mode::Resume && path.exists() {
            let (writer, done) = Writer::resume(path, run)?;
            let todo = days_to_do(&done, days);
            return Ok(Opened {
                writer,
                todo,
                resumed: true,
            });
        }
        remove_existing(path, mode == Mode::Overwrite)?;
        Ok(Opened {
            writer: Writer::create(path, templates, run, command_line)?,
            todo: days.to_vec(),
            resumed: false,
        })
    }

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
        let file = File::create(&partial)
            .map_err(|e| Error::hdf5(path, "cannot create the output file", e))?;
        write_header(&file, templates, run, command_line).in_file(path)?;
        let writer = Writer {
            path: path.to_path_buf(),
            detections: h5::create_table::<DetectionRow>(&file, "detections", 4096)
                .in_file(path)?,
            channels: h5::create_table::<ChannelRow>(&file, "detection_channels", 16384)
                .in_file(path)?,
            days: h5::create_table::<DayRow>(&file, "days", 64).in_file(path)?,
            problems: h5::create_table::<u8>(&file, "day_problems", 1 << 16).in_file(path)?,
            file,
        };
        writer.file.flush().in_file(path)?;
        // The open file follows the rename.
        std::fs::rename(&partial, path).at(path)?;
        Ok(writer)
    }

    /// Reopen a file of the same run (template checksum, parameters and
    /// shard must agree) to go on with it. Rows of a day that was in flight
    /// when the last run stopped are dropped; the days completed are
    /// returned.
    pub fn resume(path: &Path, run: &RunInfo) -> Result<(Writer, Vec<DayStatus>)> {
        let file =
            File::open_rw(path).map_err(|e| Error::hdf5(path, "cannot open to resume", e))?;
        check_format(path, &file)?;
        check_same_run(path, &read_run_info(path, &file)?, run)?;
        let dataset = |name: &str| file.dataset(name).in_file(path);
        let (detections, channels) = (dataset("detections")?, dataset("detection_channels")?);
        let (days, problems) = (dataset("days")?, dataset("day_problems")?);
        let writer = Writer {
            path: path.to_path_buf(),
            file,
            detections,
            channels,
            days,
            problems,
        };
        let done = writer.drop_uncommitted()?;
        Ok((writer, done))
    }

    /// Cut the tables back to the rows of the completed days, which are
    /// returned.
    fn drop_uncommitted(&self) -> Result<Vec<DayStatus>> {
        let path = &self.path;
        let done = completed_days(
            &self.days.read_raw::<DayRow>().in_file(path)?,
            &self.problems.read_raw::<u8>().in_file(path)?,
        );
        let n_problem_bytes: usize = done.iter().map(|d| d.problems.len()).sum();
        let (n_det, n_ch) = committed_rows(
            path,
            &done,
            self.detections.size(),
            self.channels.size(),
            |i| {
                let rows = self.detections.read_slice_1d::<DetectionRow, _>(i..i + 1);
                Ok(rows.in_file(path)?[0].clone())
            },
        )?;
        self.days.resize(done.len()).in_file(path)?;
        self.detections.resize(n_det).in_file(path)?;
        self.channels.resize(n_ch).in_file(path)?;
        self.problems.resize(n_problem_bytes).in_file(path)?;
        self.file.flush().in_file(path)?;
        Ok(done)
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
                    lag: c.lag,
                    amplitude: c.amplitude,
                    peak: c.peak,
                    noise_rms: c.noise_rms.unwrap_or(f32::NAN),
                });
            }
        }
        self.write_rows(status, det_rows, ch_rows)
    }

    /// Append one day's rows, numbered from 0 within the day (detection
    /// indices and channel row offsets are moved to the end of the file).
    pub(super) fn write_rows(
        &mut self,
        status: &DayStatus,
        mut det_rows: Vec<DetectionRow>,
        mut ch_rows: Vec<ChannelRow>,
    ) -> Result<()> {
        let path = &self.path;
        let first_det = self.detections.size() as u64;
        let first_ch = self.channels.size() as u64;
        for r in &mut det_rows {
            r.first_channel_row += first_ch;
        }
        for c in &mut ch_rows {
            c.detection += first_det;
        }
        let problems_start = self.problems.size() as u64;
        h5::append(&self.detections, &det_rows).in_file(path)?;
        h5::append(&self.channels, &ch_rows).in_file(path)?;
        h5::append(&self.problems, status.problems.as_bytes()).in_file(path)?;
        // The rows are on disk before the /days row that commits them: a
        // kill during the second flush leaves the day either committed
        // with all its rows or not committed.
        self.file.flush().in_file(path)?;
        let row = DayRow {
            day: ascii(&epoch::format_day(status.day)),
            status: ascii(status.status.as_str()),
            n_detections: det_rows.len() as u64,
            wall_s: status.wall_s,
            device: ascii(&status.device),
            problems_start,
            problems_len: status.problems.len() as u64,
        };
        h5::append(&self.days, &[row]).in_file(path)?;
        self.file.flush().in_file(path)
    }
}

/// The root attributes and the template table of a new file.
fn write_header(
    file: &File,
    templates: &TemplateInfo,
    run: &RunInfo,
    command_line: &str,
) -> hdf5::Result<()> {
    let shard_text = |s: Option<Shard>| s.map(|s| s.to_string()).unwrap_or_default();
    h5::write_str_attr(file, "format", FORMAT)?;
    h5::write_str_attr(file, "tmatch_version", env!("CARGO_PKG_VERSION"))?;
    h5::write_str_attr(file, "command_line", command_line)?;
    h5::write_str_attr(file, "parameters", &run.parameters)?;
    h5::write_str_attr(file, "shard", &shard_text(run.shard))?;
    h5::write_str_attr(file, "template_shard", &shard_text(run.template_shard))?;
    h5::write_attr(file, "format_version", &FORMAT_VERSION)?;
    h5::write_attr(file, "template_checksum", &run.template_checksum)?;
    let rows: Vec<TemplateRow> = (0..templates.ids.len())
        .map(|i| TemplateRow {
            id: h5::text(&templates.ids[i]),
            origin_offset_ns: templates.origin_offsets[i],
            channels: h5::text(&templates.channels[i]),
        })
        .collect();
    file.new_dataset_builder()
        .with_data(&rows)
        .create("templates")?;
    Ok(())
}

/// Refuse to resume a file that `found` says another run made.
fn check_same_run(path: &Path, found: &RunInfo, run: &RunInfo) -> Result<()> {
    let refuse = |why: String| Err(Error::file(path, format!("{why}; cannot resume it")));
    if found.template_checksum != run.template_checksum {
        return refuse(format!(
            "made with another template set (checksum {:016x}, this one {:016x})",
            found.template_checksum, run.template_checksum
        ));
    }
    if found.shard != run.shard {
        return refuse(format!(
            "made for {}, this run is for {}",
            shard_name(found.shard),
            shard_name(run.shard)
        ));
    }
    if found.template_shard != run.template_shard {
        return refuse(format!(
            "made for {}, this run is for {}",
            template_shard_name(found.template_shard),
            template_shard_name(run.template_shard)
        ));
    }
    if found.parameters != run.parameters {
        return refuse(format!(
            "made with other parameters ({}; this run: {})",
            found.parameters, run.parameters
        ));
    }
    Ok(())
}
