//! Reading detections files back: their run, and the days completed.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use hdf5::File;

use super::schema::{
    ChannelRow, DayRow, DayState, DayStatus, DetectionRow, RunInfo, TemplateInfo, TemplateRow,
    FORMAT, FORMAT_VERSION,
};
use crate::epoch::{self, Day};
use crate::error::{Error, Result};
use crate::h5::{self, InFile};
use crate::shard::Shard;

/// Check that `file` is a detections file of this format version.
pub(super) fn check_format(path: &Path, file: &File) -> Result<()> {
    if h5::read_str_attr(file, "format").unwrap_or_default() != FORMAT {
        return Err(Error::file(path, "not a tmatch detections file"));
    }
    let version: u32 = h5::read_attr(file, "format_version").in_file(path)?;
    if version != FORMAT_VERSION {
        return Err(Error::file(
            path,
            format!(
                "detections format version {version}, expected {FORMAT_VERSION}{}",
                if version < FORMAT_VERSION {
                    " (an older tmatch wrote it: read it with that version, or detect \
                     again with this one; --resume cannot continue it)"
                } else {
                    " (a newer tmatch wrote it)"
                }
            ),
        ));
    }
    Ok(())
}

pub(super) fn read_run_info(path: &Path, file: &File) -> Result<RunInfo> {
    let shard = |name: &str| -> Result<Option<Shard>> {
        // Absent, as `template_shard` is from files made before template
        // shards, or empty: the file covers all.
        if !h5::has_attr(file, name).in_file(path)? {
            return Ok(None);
        }
        match h5::read_str_attr(file, name).in_file(path)?.as_str() {
            "" => Ok(None),
            s => s
                .parse()
                .map(Some)
                .map_err(|e| Error::file(path, format!("{name} attribute: {e}"))),
        }
    };
    Ok(RunInfo {
        template_checksum: h5::read_attr(file, "template_checksum").in_file(path)?,
        parameters: h5::read_str_attr(file, "parameters").in_file(path)?,
        shard: shard("shard")?,
        template_shard: shard("template_shard")?,
    })
}

/// The `/days` rows that were written whole, with their problems: a row
/// that a crash left unwritten or half written has no valid day, status or
/// problems and ends the list.
pub(super) fn completed_days(rows: &[DayRow], problems: &[u8]) -> Vec<DayStatus> {
    rows.iter()
        .map_while(|d| {
            let day = epoch::parse_day(d.day.as_str()).ok()?;
            let status = d.status.as_str().parse().ok()?;
            let (a, n) = (d.problems_start as usize, d.problems_len as usize);
            let text = problems.get(a..a.checked_add(n)?)?;
            Some(DayStatus {
                day,
                status,
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
    let last: HashMap<Day, usize> = days.iter().enumerate().map(|(i, d)| (d.day, i)).collect();
    days.into_iter()
        .enumerate()
        .filter(|(i, d)| d.status != DayState::Failed || last[&d.day] == *i)
        .map(|(_, d)| d)
        .collect()
}

/// The days of `days` that a resumed run still has to do: those without a
/// row in `done`, and those whose row says they failed.
pub fn days_to_do(done: &[DayStatus], days: &[Day]) -> Vec<Day> {
    let done: HashSet<Day> = done
        .iter()
        .filter(|d| d.status != DayState::Failed)
        .map(|d| d.day)
        .collect();
    days.iter().copied().filter(|d| !done.contains(d)).collect()
}

/// How many detection and channel rows the completed days `done` own,
/// given how many the file holds and a way to read detection row `i`; an
/// error when the file holds fewer than `/days` counts.
pub(super) fn committed_rows(
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
        day_rows(&self.days)
    }
}

/// Read a detections file: its completed days and their rows.
pub fn read(path: &Path) -> Result<Detections> {
    let reader = Reader::open(path)?;
    let channels = reader.channels(0..reader.n_channel_rows)?;
    Ok(Detections {
        templates: reader.templates,
        run: reader.run,
        rows: reader.rows,
        channels,
        days: reader.days,
    })
}

/// A detections file read in pieces: its detection rows whole (48 bytes
/// each), its channel rows (one per detection and template channel, the
/// bulk of the file) by range, so that a file of 10^7 detections is read
/// in bounded memory. Only completed days are read.
pub struct Reader {
    path: std::path::PathBuf,
    channel_table: hdf5::Dataset,
    n_channel_rows: usize,
    pub templates: TemplateInfo,
    pub run: RunInfo,
    pub rows: Vec<DetectionRow>,
    /// In the order they were written; a day's detection rows follow those
    /// of the days before it.
    pub days: Vec<DayStatus>,
}

impl Reader {
    pub fn open(path: &Path) -> Result<Reader> {
        let file = File::open(path).map_err(|e| Error::hdf5(path, "cannot open as HDF5", e))?;
        check_format(path, &file)?;
        let run = read_run_info(path, &file)?;
        let templates: Vec<TemplateRow> = h5::read_table(&file, "templates").in_file(path)?;
        let days: Vec<DayRow> = h5::read_table(&file, "days").in_file(path)?;
        let problems: Vec<u8> = h5::read_table(&file, "day_problems").in_file(path)?;
        let days = completed_days(&days, &problems);
        let mut rows: Vec<DetectionRow> = h5::read_table(&file, "detections").in_file(path)?;
        let channel_table = file.dataset("detection_channels").in_file(path)?;
        // Only rows of completed days count (see the module notes).
        let (n_det, n_ch) = committed_rows(path, &days, rows.len(), channel_table.size(), |i| {
            Ok(rows[i].clone())
        })?;
        rows.truncate(n_det);
        Ok(Reader {
            path: path.to_path_buf(),
            channel_table,
            n_channel_rows: n_ch,
            templates: TemplateInfo {
                ids: templates.iter().map(|t| t.id.to_string()).collect(),
                origin_offsets: templates.iter().map(|t| t.origin_offset_ns).collect(),
                channels: templates.iter().map(|t| t.channels.to_string()).collect(),
            },
            run,
            rows,
            days: without_redone_failures(days),
        })
    }

    /// Channel rows `range` (of the committed ones).
    pub fn channels(&self, range: std::ops::Range<usize>) -> Result<Vec<ChannelRow>> {
        assert!(range.end <= self.n_channel_rows, "{range:?}");
        if range.is_empty() {
            return Ok(Vec::new());
        }
        self.channel_table
            .read_slice_1d(range)
            .map(|a| a.to_vec())
            .in_file(&self.path)
    }

    /// The channel rows of detection row `i`, as a range for [`channels`].
    ///
    /// [`channels`]: Reader::channels
    pub fn channel_range(&self, i: usize) -> std::ops::Range<usize> {
        let r = &self.rows[i];
        let a = r.first_channel_row as usize;
        a..a + r.n_channel_rows as usize
    }

    /// Detection rows of each day, in `days` order.
    pub fn day_rows(&self) -> Vec<std::ops::Range<usize>> {
        day_rows(&self.days)
    }
}

fn day_rows(days: &[DayStatus]) -> Vec<std::ops::Range<usize>> {
    let mut at = 0;
    days.iter()
        .map(|d| {
            let r = at..at + d.n_detections as usize;
            at = r.end;
            r
        })
        .collect()
}
