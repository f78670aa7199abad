//! The day loop: for each requested day, detect and append to the output.

mod day;
pub mod load;

pub use day::{
    detect_day, detect_day_with_stacks, ChannelPick, DayResult, DetectParams, Detection,
};

use std::io::IsTerminal;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::archive::Archive;
use crate::correlate::Backend;
use crate::epoch::{self, Day};
use crate::error::Result;
use crate::output::{DayStatus, Writer};
use crate::templates::TemplateSet;

/// Totals of a run.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    pub days_done: usize,
    pub days_without_data: usize,
    pub days_failed: usize,
    pub detections: usize,
    pub wall: Duration,
}

/// Progress on a terminal is a bar; elsewhere (Slurm logs) one plain line
/// per day.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    fn new(n: usize) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = indicatif::ProgressBar::new(n as u64);
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{elapsed_precise} [{bar:40}] {pos}/{len} days ({eta} left) {msg}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            b
        });
        Progress { bar }
    }

    fn log(&self, line: &str) {
        match &self.bar {
            Some(b) => b.println(line),
            None => eprintln!("{line}"),
        }
    }

    fn day_done(&self, line: String) {
        match &self.bar {
            Some(b) => {
                b.set_message(line);
                b.inc(1);
            }
            None => eprintln!("{line}"),
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// Detect over `days` and write every day (with or without detections) to
/// `writer`. A day that fails is recorded as failed and the run goes on.
pub fn run(
    set: &TemplateSet,
    archive: &Archive,
    days: &[Day],
    params: &DetectParams,
    backend: &dyn Backend,
    writer: &mut Writer,
) -> Result<Summary> {
    let t0 = Instant::now();
    let progress = Progress::new(days.len());
    for bad in archive.unreadable() {
        progress.log(&format!("warning: {}: {}", bad.path.display(), bad.reason));
    }
    let mut summary = Summary::default();
    for &day in days {
        let td = Instant::now();
        let name = epoch::format_day(day);
        let (status, detections, problems) = match detect_day(set, archive, day, params, backend) {
            Ok(r) if !r.had_data => ("no-data", Vec::new(), r.problems),
            Ok(r) => ("done", r.detections, r.problems),
            Err(e) => ("failed", Vec::new(), vec![e.to_string()]),
        };
        let wall = td.elapsed().as_secs_f64();
        writer.write_day(
            &DayStatus {
                day,
                status: status.to_string(),
                n_detections: detections.len() as u64,
                wall_s: wall,
                device: backend.name(),
                problems: problems.join("\n"),
            },
            &detections,
        )?;
        match status {
            "done" => summary.days_done += 1,
            "no-data" => summary.days_without_data += 1,
            _ => summary.days_failed += 1,
        }
        summary.detections += detections.len();
        // Missing channels are routine on long runs: say them in a short form.
        for p in problems.iter().filter(|p| !p.ends_with(": no data")) {
            progress.log(&format!("{name}: {p}"));
        }
        let missing = problems.iter().filter(|p| p.ends_with(": no data")).count();
        let missing = if missing > 0 && status == "done" {
            format!(", {missing} channels without data")
        } else {
            String::new()
        };
        progress.day_done(format!(
            "{name}: {status}, {} detections in {wall:.1} s{missing}",
            detections.len()
        ));
    }
    progress.finish();
    summary.wall = t0.elapsed();
    Ok(summary)
}

/// Refuse to overwrite an existing output unless asked to.
pub fn check_output(path: &Path, overwrite: bool) -> Result<()> {
    if path.exists() && !overwrite {
        return Err(crate::Error::file(
            path,
            "output file exists; remove it or pass --overwrite",
        ));
    }
    if path.exists() {
        std::fs::remove_file(path).map_err(|e| crate::Error::file(path, e))?;
    }
    Ok(())
}
