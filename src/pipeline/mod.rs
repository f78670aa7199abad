//! The day loop: for each requested day, detect and append to the output.

mod catalogue;
mod day;
mod setup;

pub use catalogue::{catalogue, check_templates, CatalogueReport, CatalogueRequest, Format};
pub use day::{
    detect_day, detect_day_with_stacks, detect_loaded, load_day, template_day, DayResult,
    LoadedDay, NormalizedTemplates, TemplateDay,
};
pub use setup::{setup, Request, Setup};

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::archive::Archive;
use crate::correlate::Backend;
use crate::detect::{DetectParams, Detection};
use crate::epoch::{self, Day};
use crate::error::{Error, Result};
use crate::output::{DayState, DayStatus, Writer};
use crate::problem::{self, Problem};
use crate::templates::TemplateSet;
use crate::timing::{self, Stage};

/// Totals of a run.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    pub days_done: usize,
    pub days_without_data: usize,
    pub days_failed: usize,
    /// Days left for a later run after a stop was asked for, or because
    /// every device failed.
    pub not_started: usize,
    /// Devices that failed and took no more days, each with its error.
    pub device_faults: Vec<String>,
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
    fn report_day(&self, status: &DayStatus, problems: &[Problem]) {
        let name = epoch::format_day(status.day);
        for p in problems.iter().filter(|p| !p.is_missing_channel()) {
            self.log(&format!("{name}: {p}"));
        }
        let missing = problems.iter().filter(|p| p.is_missing_channel()).count();
        let missing = if missing > 0 && status.status == DayState::Done {
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

/// A day's work, written as one `/days` row with its detections; or the
/// device's fault, in which case nothing is written and the day goes to
/// another device.
fn process_day(
    set: &TemplateSet,
    normalized: &NormalizedTemplates,
    loaded: &LoadedDay,
    load_time: Duration,
    params: &DetectParams,
    backend: &dyn Backend,
) -> std::result::Result<(DayStatus, Vec<Detection>, Vec<Problem>), Error> {
    let td = Instant::now();
    let (status, detections, problems) =
        match detect_loaded(set, normalized, loaded, params, backend, None) {
            Ok(r) if !r.had_data => (DayState::NoData, Vec::new(), r.problems),
            Ok(r) => (DayState::Done, r.detections, r.problems),
            Err(e @ Error::DeviceFault(_)) => return Err(e),
            Err(e) => (
                DayState::Failed,
                Vec::new(),
                vec![Problem::Failed(e.to_string())],
            ),
        };
    let status = DayStatus {
        day: loaded.day,
        status,
        n_detections: detections.len() as u64,
        wall_s: (load_time + td.elapsed()).as_secs_f64(),
        device: backend.name(),
        problems: problem::lines(&problems),
    };
    Ok((status, detections, problems))
}

/// The days of a round, handed out one at a time to the backends'
/// threads; a device that fails gives its days back for the next round.
struct DayQueue<'a> {
    days: &'a [Day],
    next: AtomicUsize,
    returned: Mutex<Vec<Day>>,
}

impl Summary {
    fn count(&mut self, status: &DayStatus, detections: usize) {
        match status.status {
            DayState::Done => self.days_done += 1,
            DayState::NoData => self.days_without_data += 1,
            DayState::Failed => self.days_failed += 1,
        }
        self.detections += detections;
    }
}

impl DayQueue<'_> {
    fn take(&self) -> Option<Day> {
        self.days
            .get(self.next.fetch_add(1, Ordering::SeqCst))
            .copied()
    }

    fn give_back(&self, day: Day) {
        self.returned.lock().unwrap().push(day);
    }
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
            .map_or(String::new(), |t| t.event.id.clone());
        return Err(crate::Error::Input(format!(
            "template {worst} spans {span:.0} s (moveout + length), more than the one-day \
             overlap read past each midnight allows; check its picks"
        )));
    }
    Ok(())
}

/// Detect over `days` and write every day (with or without detections) to
/// `writer`. A day that fails is recorded as failed and the run goes on.
/// The set is one that [`check_span`] accepts, as [`setup`] makes sure.
///
/// Each backend (one per device) runs on its own thread, taking the next
/// day from a shared queue and reading the day after while it correlates
/// one; days are written as they complete. A device that faults takes no
/// more days: the days it held go back to the queue for the other devices,
/// and when none is left they stay undone (counted in
/// [`Summary::not_started`], the fault in [`Summary::device_faults`]). Once
/// `stop` is set no new day is started: the days in flight are finished
/// and written, and the rest are counted in [`Summary::not_started`].
pub fn run(
    set: &TemplateSet,
    archive: &Archive,
    days: &[Day],
    params: &DetectParams,
    backends: &[Box<dyn Backend>],
    writer: &Mutex<Writer>,
    stop: &AtomicBool,
) -> Result<Summary> {
    let t0 = Instant::now();
    let run = Shared {
        set,
        archive,
        params,
        normalized: NormalizedTemplates::new(set, params.template_shard),
        writer,
        stop,
        progress: Progress::new(days.len()),
        summary: Mutex::new(Summary::default()),
        write_error: Mutex::new(None),
        failed: AtomicBool::new(false),
    };
    for bad in archive.unreadable() {
        run.progress
            .log(&format!("warning: {}: {}", bad.path.display(), bad.reason));
    }
    // Rounds: the days a failed device gave back go to the devices left.
    let mut healthy: Vec<&dyn Backend> = backends.iter().map(|b| b.as_ref()).collect();
    let mut todo = days.to_vec();
    while !todo.is_empty() && !healthy.is_empty() && !run.halted() {
        let queue = DayQueue {
            days: &todo,
            next: AtomicUsize::new(0),
            returned: Mutex::new(Vec::new()),
        };
        let faulted: Vec<bool> = std::thread::scope(|s| {
            let workers: Vec<_> = healthy
                .iter()
                .map(|&backend| s.spawn(|| run.worker(backend, &queue)))
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().expect("a day worker"))
                .collect()
        });
        healthy = healthy
            .into_iter()
            .zip(faulted)
            .filter_map(|(b, faulted)| (!faulted).then_some(b))
            .collect();
        todo = queue.returned.into_inner().unwrap();
        todo.sort();
    }
    run.progress.finish();
    if let Some(e) = run.write_error.into_inner().unwrap() {
        return Err(e);
    }
    let mut summary = run.summary.into_inner().unwrap();
    let written = summary.days_done + summary.days_without_data + summary.days_failed;
    summary.not_started = days.len() - written;
    summary.wall = t0.elapsed();
    Ok(summary)
}

/// What the backends' threads of a run share.
struct Shared<'a> {
    set: &'a TemplateSet,
    archive: &'a Archive,
    params: &'a DetectParams,
    normalized: NormalizedTemplates,
    writer: &'a Mutex<Writer>,
    stop: &'a AtomicBool,
    progress: Progress,
    summary: Mutex<Summary>,
    /// The first failed write; it ends the run.
    write_error: Mutex<Option<Error>>,
    failed: AtomicBool,
}

impl Shared<'_> {
    fn halted(&self) -> bool {
        self.stop.load(Ordering::SeqCst) || self.failed.load(Ordering::SeqCst)
    }

    fn take(&self, queue: &DayQueue) -> Option<Day> {
        (!self.halted()).then(|| queue.take()).flatten()
    }

    /// Read a day, and start copying it to the device while the day before
    /// is correlated. A failed copy is not lost: the day's correlation
    /// copies it again (and fails the day or the device if it fails again);
    /// it is said, so that an error reported later has its first
    /// occurrence in the log.
    fn load(&self, backend: &dyn Backend, day: Day) -> (LoadedDay, Duration) {
        let t = Instant::now();
        let loaded = load_day(
            self.set,
            self.archive,
            day,
            self.params,
            backend.needs_window_means(),
        );
        if let Some(view) = loaded.view() {
            if let Err(e) = backend.prefetch(&view) {
                self.progress.log(&format!(
                    "{}: copying ahead to {}: {e}",
                    epoch::format_day(day),
                    backend.name()
                ));
            }
        }
        (loaded, t.elapsed())
    }

    /// One backend's thread: days from the queue until it is empty or the
    /// run halts, the next day read while one is correlated. True if the
    /// device faulted (its days went back to the queue).
    fn worker(&self, backend: &dyn Backend, queue: &DayQueue) -> bool {
        let mut ahead = self.take(queue).map(|day| self.load(backend, day));
        while let Some((loaded, load_time)) = ahead.take() {
            // A stop asked for while this day was loaded ahead: it is
            // left, like the days not started.
            if self.halted() {
                return false;
            }
            let done = std::thread::scope(|s| {
                let reading = self
                    .take(queue)
                    .map(|day| s.spawn(move || self.load(backend, day)));
                let r = process_day(
                    self.set,
                    &self.normalized,
                    &loaded,
                    load_time,
                    self.params,
                    backend,
                );
                ahead = reading.map(|h| h.join().expect("loading a day"));
                r
            });
            let (status, detections, problems) = match done {
                Ok(r) => r,
                Err(fault) => {
                    // The device's state is not trusted with another day:
                    // its days go to the others.
                    queue.give_back(loaded.day);
                    if let Some((next, _)) = &ahead {
                        queue.give_back(next.day);
                    }
                    self.progress.log(&format!(
                        "{}: {fault}; no more days on {}",
                        epoch::format_day(loaded.day),
                        backend.name()
                    ));
                    (self.summary.lock().unwrap())
                        .device_faults
                        .push(fault.to_string());
                    return true;
                }
            };
            drop(loaded);
            if let Err(e) = self.write(&status, &detections) {
                self.failed.store(true, Ordering::SeqCst);
                self.write_error.lock().unwrap().get_or_insert(e);
                return false;
            }
            (self.summary.lock().unwrap()).count(&status, detections.len());
            self.progress.report_day(&status, &problems);
        }
        false
    }

    fn write(&self, status: &DayStatus, detections: &[Detection]) -> Result<()> {
        let _t = timing::start(Stage::Write);
        self.writer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .write_day(status, detections)
    }
}
