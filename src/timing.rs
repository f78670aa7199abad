//! Where the time goes: thread-seconds per pipeline stage, summed over the
//! threads that ran it, when asked (`tmatch detect --timing`). Off, a timer
//! is one relaxed atomic load, so the hot loops keep theirs.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The stages of a day of detection, in pipeline order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Reading and decoding miniSEED.
    Read,
    /// Detrend, resampling, filtering.
    Preprocess,
    /// The moving 1/σ of every channel.
    Normalize,
    /// Template spectra (once per batch).
    TemplateSpectra,
    /// Forward transforms of the data blocks.
    Forward,
    /// Spectrum products, with the inverse transforms' preprocessing.
    Multiply,
    /// Inverse transforms (the complex FFT of half length).
    Inverse,
    /// Direct dot products (short templates, instead of transforms).
    Direct,
    /// Normalize, clip, weight and add to the stack.
    Stack,
    /// Median of |stack| (the MAD threshold).
    Median,
    /// Peaks above the threshold, declustered.
    Peaks,
    /// Per-channel CC, lags and amplitudes at the detections.
    ChannelCc,
    /// Writing detections and day status.
    Write,
}

impl Stage {
    pub const ALL: [Stage; 13] = [
        Stage::Read,
        Stage::Preprocess,
        Stage::Normalize,
        Stage::TemplateSpectra,
        Stage::Forward,
        Stage::Multiply,
        Stage::Inverse,
        Stage::Direct,
        Stage::Stack,
        Stage::Median,
        Stage::Peaks,
        Stage::ChannelCc,
        Stage::Write,
    ];

    fn label(self) -> &'static str {
        match self {
            Stage::Read => "read and decode miniSEED",
            Stage::Preprocess => "preprocess (detrend, resample, filter)",
            Stage::Normalize => "moving normalization",
            Stage::TemplateSpectra => "template spectra",
            Stage::Forward => "forward transforms (data)",
            Stage::Multiply => "spectrum products + inverse prep",
            Stage::Inverse => "inverse transforms",
            Stage::Direct => "direct dot products",
            Stage::Stack => "normalize, clip and stack",
            Stage::Median => "median |stack|",
            Stage::Peaks => "peaks and declustering",
            Stage::ChannelCc => "per-channel CC at detections",
            Stage::Write => "writing",
        }
    }
}

static ON: AtomicBool = AtomicBool::new(false);

/// Nanoseconds per stage, one array per thread: threads never write the
/// same cache line (a shared counter, bounced between cores millions of
/// times a day, cost more than the timers themselves).
type Counters = [AtomicU64; Stage::ALL.len()];

/// Every thread's counters, for the table.
static THREADS: Mutex<Vec<Arc<Counters>>> = Mutex::new(Vec::new());

thread_local! {
    static MINE: Arc<Counters> = {
        let c = Arc::new([const { AtomicU64::new(0) }; Stage::ALL.len()]);
        THREADS.lock().unwrap_or_else(|e| e.into_inner()).push(c.clone());
        c
    };
}

fn total(stage: Stage) -> u64 {
    THREADS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|c| c[stage as usize].load(Ordering::Relaxed))
        .sum()
}

/// Start counting (for the rest of the process).
pub fn enable() {
    ON.store(true, Ordering::Relaxed);
}

/// Counts the time from [`start`] to its drop against its stage.
#[must_use = "the time is counted when the timer is dropped"]
pub struct Timer(Option<(Stage, Instant)>);

/// A timer for `stage`; a no-op unless [`enable`]d.
#[inline]
pub fn start(stage: Stage) -> Timer {
    Timer(ON.load(Ordering::Relaxed).then(|| (stage, Instant::now())))
}

impl Drop for Timer {
    fn drop(&mut self) {
        if let Some((stage, t0)) = self.0 {
            let ns = t0.elapsed().as_nanos() as u64;
            MINE.with(|c| c[stage as usize].fetch_add(ns, Ordering::Relaxed));
        }
    }
}

/// Thread-seconds per stage so far, and the process's wall time and
/// threads to compare them with.
pub struct Table {
    pub stages: Vec<(Stage, Duration)>,
    pub wall: Duration,
    pub threads: usize,
}

/// The table so far.
pub fn table(wall: Duration, threads: usize) -> Table {
    Table {
        stages: Stage::ALL
            .iter()
            .map(|&s| (s, Duration::from_nanos(total(s))))
            .collect(),
        wall,
        threads,
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let avail = self.wall.as_secs_f64() * self.threads as f64;
        let pct = |d: f64| if avail > 0.0 { 100.0 * d / avail } else { 0.0 };
        writeln!(f, "{:<40} {:>12} {:>8}", "stage", "thread-s", "% of all")?;
        let mut counted = 0.0;
        for (s, d) in &self.stages {
            let d = d.as_secs_f64();
            counted += d;
            writeln!(f, "{:<40} {:>12.2} {:>7.1} %", s.label(), d, pct(d))?;
        }
        writeln!(
            f,
            "{:<40} {:>12.2} {:>7.1} %",
            "other and idle",
            (avail - counted).max(0.0),
            pct((avail - counted).max(0.0))
        )?;
        write!(
            f,
            "{:<40} {:>12.2} {:>7.1} %  ({:.2} s wall × {} threads)",
            "all",
            avail,
            100.0,
            self.wall.as_secs_f64(),
            self.threads
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_count_only_when_enabled() {
        // Off: nothing counted.
        drop(start(Stage::Write));
        assert_eq!(total(Stage::Write), 0);
        enable();
        {
            let _t = start(Stage::Write);
            std::thread::sleep(Duration::from_millis(5));
        }
        let t = table(Duration::from_millis(10), 1);
        let (_, w) = t.stages.iter().find(|(s, _)| *s == Stage::Write).unwrap();
        assert!(*w >= Duration::from_millis(5), "{w:?}");
        let text = t.to_string();
        assert!(
            text.contains("writing") && text.contains("other and idle"),
            "{text}"
        );
    }
}
