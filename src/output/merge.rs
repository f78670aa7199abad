//! Merging the detections files of one run's shards into one.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use super::reader::{read, Detections};
use super::schema::{ChannelRow, DayState, DayStatus, DetectionRow, RunInfo, RunParams};
use super::writer::{template_shard_name, Writer};
use crate::epoch::{self, Day};
use crate::error::{Error, Result};
use crate::shard::Shard;

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
    let all = |s: DayState| parts.iter().all(|(_, p)| p.status == s);
    let mut seen = HashSet::new();
    let mut problems: Vec<String> = parts
        .iter()
        .flat_map(|(_, p)| p.problems.split('\n'))
        .filter(|l| !l.is_empty() && seen.insert(*l))
        .map(str::to_string)
        .collect();
    let status = if parts.iter().any(|(_, p)| p.status == DayState::Failed) {
        DayState::Failed
    } else if all(DayState::Done) {
        DayState::Done
    } else if all(DayState::NoData) {
        DayState::NoData
    } else {
        let none: Vec<String> = parts
            .iter()
            .filter(|(_, p)| p.status == DayState::NoData)
            .map(|(s, _)| s.to_string())
            .collect();
        problems.push(format!(
            "template shards {} found no data where the others found some",
            none.join(", ")
        ));
        DayState::Failed
    };
    let mut devices: Vec<&str> = Vec::new();
    for (_, p) in parts {
        if !devices.contains(&p.device.as_str()) {
            devices.push(&p.device);
        }
    }
    DayStatus {
        day: parts[0].1.day,
        status,
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
    if inputs.is_empty() {
        return Err(Error::Input("merge: no input files".into()));
    }
    let files: Vec<Detections> = inputs.iter().map(|p| read(p)).collect::<Result<_>>()?;
    check_one_run(inputs, &files)?;
    let shards = template_shards(inputs, &files)?;
    let days = day_parts(inputs, &files, &shards)?;
    let first = &files[0];
    let run = RunInfo {
        shard: None,
        template_shard: None,
        ..first.run.clone()
    };
    let mut w = Writer::create(output, &first.templates, &run, command_line)?;
    let mut report = write_days(&mut w, &files, &shards, &days)?;
    // Parameters of files from elsewhere may not name the days.
    let requested = RunParams::from_json(&first.run.parameters)
        .and_then(|p| epoch::parse_days(&p.days).ok())
        .unwrap_or_default();
    report.missing = requested
        .into_iter()
        .filter(|d| !days.contains_key(d))
        .collect();
    Ok(report)
}

/// Refuse files of another template set or other parameters than the first.
fn check_one_run(inputs: &[PathBuf], files: &[Detections]) -> Result<()> {
    let first = &files[0];
    for (p, f) in inputs.iter().zip(files).skip(1) {
        let other = |what: &str| {
            Error::file(
                p,
                format!("{what} than {} ; not merged", inputs[0].display()),
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
    Ok(())
}

/// Each file's template shard (`0/1` for all templates); an error unless
/// all are of one count.
fn template_shards(inputs: &[PathBuf], files: &[Detections]) -> Result<Vec<Shard>> {
    let shards: Vec<Shard> = files
        .iter()
        .map(|f| f.run.template_shard.unwrap_or(Shard { index: 0, count: 1 }))
        .collect();
    match shards.iter().position(|s| s.count != shards[0].count) {
        None => Ok(shards),
        Some(i) => Err(Error::file(
            &inputs[i],
            format!(
                "made for {}, {} for {}: template shards of different counts are not merged",
                template_shard_name(files[i].run.template_shard),
                inputs[0].display(),
                template_shard_name(files[0].run.template_shard)
            ),
        )),
    }
}

/// Where one day is in the files: (template shard index, file, row in its
/// `/days`).
type Part = (usize, usize, usize);

/// Each day's parts, in template shard order; an error when a day is twice
/// in one template shard.
fn day_parts(
    inputs: &[PathBuf],
    files: &[Detections],
    shards: &[Shard],
) -> Result<BTreeMap<Day, Vec<Part>>> {
    let mut days: BTreeMap<Day, Vec<Part>> = BTreeMap::new();
    for (fi, f) in files.iter().enumerate() {
        for (di, d) in f.days.iter().enumerate() {
            days.entry(d.day)
                .or_default()
                .push((shards[fi].index, fi, di));
        }
    }
    let k = shards[0].count;
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
    Ok(days)
}

/// Write each day that every template shard holds; report the others.
fn write_days(
    w: &mut Writer,
    files: &[Detections],
    shards: &[Shard],
    days: &BTreeMap<Day, Vec<Part>>,
) -> Result<MergeReport> {
    let k = shards[0].count;
    let ranges: Vec<_> = files.iter().map(|f| f.day_rows()).collect();
    let mut report = MergeReport::default();
    for (&day, parts) in days {
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
        if status.status == DayState::Failed {
            report.failed.push(day);
        }
        let (det_rows, ch_rows) = numbered(dets);
        report.detections += det_rows.len();
        report.days += 1;
        w.write_rows(&status, det_rows, ch_rows)?;
    }
    Ok(report)
}
