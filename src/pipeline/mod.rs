//! The day loop: for each requested day, detect and append to the output.

mod day;
pub mod load;
mod shard;

pub use day::{
    detect_day, detect_day_with_stacks, detect_loaded, load_day, ChannelPick, DayResult,
    DetectParams, Detection, LoadedDay,
};
pub use shard::Shard;

use std::io::IsTerminal;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
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
    /// Days left for a later run after a stop was asked for.
    pub not_started: usize,
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

    /// One line per day; problems other than missing channels (routine on
    /// long runs, so only counted) each on their own line.
    fn report_day(&self, status: &DayStatus, problems: &[String]) {
        let name = epoch::format_day(status.day);
        for p in problems.iter().filter(|p| !p.ends_with(": no data")) {
            self.log(&format!("{name}: {p}"));
        }
        let missing = problems.iter().filter(|p| p.ends_with(": no data")).count();
        let missing = if missing > 0 && status.status == "done" {
            format!(", {missing} channels without data")
        } else {
            String::new()
        };
        self.day_done(format!(
            "{name}: {}, {} detections in {:.1} s on {}{missing}",
            status.status, status.n_detections, status.wall_s, status.device
        ));
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// A day's work, written as one `/days` row with its detections.
fn process_day(
    set: &TemplateSet,
    loaded: &LoadedDay,
    load_time: Duration,
    params: &DetectParams,
    backend: &dyn Backend,
) -> (DayStatus, Vec<Detection>, Vec<String>) {
    let td = Instant::now();
    let (status, detections, problems) = match detect_loaded(set, loaded, params, backend, None) {
        Ok(r) if !r.had_data => ("no-data", Vec::new(), r.problems),
        Ok(r) => ("done", r.detections, r.problems),
        Err(e) => ("failed", Vec::new(), vec![e.to_string()]),
    };
    let status = DayStatus {
        day: loaded.day,
        status: status.to_string(),
        n_detections: detections.len() as u64,
        wall_s: (load_time + td.elapsed()).as_secs_f64(),
        device: backend.name(),
        problems: problems.join("\n"),
    };
    (status, detections, problems)
}

/// The longest template span (moveout + length) is read past each
/// midnight; more than a day is not a template but a mistake in its picks.
pub fn check_span(set: &TemplateSet) -> Result<()> {
    let span = (set.max_pad() + set.len) as f64 / set.rate;
    if span >= 86_400.0 {
        let worst = set
            .templates
            .iter()
            .max_by_key(|t| t.max_pad())
            .map_or(String::new(), |t| t.id.clone());
        return Err(crate::Error::Input(format!(
            "template {worst} spans {span:.0} s (moveout + length), more than the one-day \
             overlap read past each midnight allows; check its picks"
        )));
    }
    Ok(())
}

/// Detect over `days` and write every day (with or without detections) to
/// `writer`. A day that fails is recorded as failed and the run goes on.
///
/// Each backend (one per device) runs on its own thread, taking the next
/// day from a shared queue and reading the day after while it correlates
/// one; days are written as they complete. Once `stop` is set no new day
/// is started: the days in flight are finished and written, and the rest
/// are counted in [`Summary::not_started`].
pub fn run(
    set: &TemplateSet,
    archive: &Archive,
    days: &[Day],
    params: &DetectParams,
    backends: &[Box<dyn Backend>],
    writer: &Mutex<Writer>,
    stop: &AtomicBool,
) -> Result<Summary> {
    check_span(set)?;
    let t0 = Instant::now();
    let progress = Progress::new(days.len());
    for bad in archive.unreadable() {
        progress.log(&format!("warning: {}: {}", bad.path.display(), bad.reason));
    }
    let next = AtomicUsize::new(0);
    let summary = Mutex::new(Summary::default());
    let write_error = Mutex::new(None);
    let failed = AtomicBool::new(false);
    std::thread::scope(|s| {
        for backend in backends {
            s.spawn(|| {
                let backend = backend.as_ref();
                let take = || -> Option<Day> {
                    if stop.load(Ordering::SeqCst) || failed.load(Ordering::SeqCst) {
                        return None;
                    }
                    days.get(next.fetch_add(1, Ordering::SeqCst)).copied()
                };
                let load = |day: Day| {
                    let t = Instant::now();
                    let loaded = load_day(set, archive, day, params);
                    // Start copying the day to the device while the day
                    // before is correlated. A failed copy is not lost: the
                    // day's correlation copies it again and reports why.
                    if let Some(view) = loaded.view() {
                        let _ = backend.prefetch(&view);
                    }
                    (loaded, t.elapsed())
                };
                let mut ahead = take().map(load);
                while let Some((loaded, load_time)) = ahead.take() {
                    // A stop asked for while this day was loaded ahead:
                    // it is left, like the days not started.
                    if stop.load(Ordering::SeqCst) || failed.load(Ordering::SeqCst) {
                        return;
                    }
                    // The next day is read and processed meanwhile.
                    let (status, detections, problems) = std::thread::scope(|s| {
                        let reading = take().map(|day| s.spawn(move || load(day)));
                        let r = process_day(set, &loaded, load_time, params, backend);
                        ahead = reading.map(|h| h.join().expect("loading a day"));
                        r
                    });
                    drop(loaded);
                    let written = writer
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .write_day(&status, &detections);
                    if let Err(e) = written {
                        failed.store(true, Ordering::SeqCst);
                        write_error.lock().unwrap().get_or_insert(e);
                        return;
                    }
                    let mut sum = summary.lock().unwrap();
                    match status.status.as_str() {
                        "done" => sum.days_done += 1,
                        "no-data" => sum.days_without_data += 1,
                        _ => sum.days_failed += 1,
                    }
                    sum.detections += detections.len();
                    drop(sum);
                    progress.report_day(&status, &problems);
                }
            });
        }
    });
    progress.finish();
    if let Some(e) = write_error.into_inner().unwrap() {
        return Err(e);
    }
    let mut summary = summary.into_inner().unwrap();
    let written = summary.days_done + summary.days_without_data + summary.days_failed;
    summary.not_started = days.len() - written;
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
