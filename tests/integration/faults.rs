//! Failures during a run: a device that faults hands its days to the
//! others and none of them is lost; a failed day is recorded and redone by
//! `--resume`; `merge` reports failed days.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use tmatch::correlate::cpu::CpuBackend;
use tmatch::correlate::{Backend, DayView, PeakSpec, StackTemplate, TemplatePeaks};
use tmatch::detect::DetectParams;
use tmatch::epoch::{self, Day};
use tmatch::error::{Error, Result};
use tmatch::output::{self, RunInfo, TemplateInfo, Writer};
use tmatch::pipeline::{self, Summary};

use crate::util::{build_templates, samples};

/// The CPU backend, failing its `fail_on`-th call of [`Backend::peaks`]
/// (0-based) and, after a device fault, every later one, as a GPU does.
struct Failing {
    cpu: CpuBackend,
    calls: AtomicUsize,
    fail_on: usize,
    fault: bool,
}

impl Failing {
    fn new(fail_on: usize, fault: bool) -> Failing {
        Failing {
            cpu: CpuBackend::new(),
            calls: AtomicUsize::new(0),
            fail_on,
            fault,
        }
    }
}

impl Backend for Failing {
    fn name(&self) -> String {
        "failing".into()
    }

    fn stack(&self, day: &DayView, t: &[StackTemplate], stacks: &mut [Vec<f32>]) -> Result<()> {
        self.cpu.stack(day, t, stacks)
    }

    fn peaks(
        &self,
        day: &DayView,
        t: &[StackTemplate],
        spec: &PeakSpec,
    ) -> Result<Vec<TemplatePeaks>> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        match (call >= self.fail_on, self.fault) {
            (true, true) => Err(Error::DeviceFault(Box::new(Error::Device(
                "illegal address (injected)".into(),
            )))),
            (true, false) if call == self.fail_on => Err(Error::Input("injected failure".into())),
            _ => self.cpu.peaks(day, t, spec),
        }
    }
}

const DAYS: &str = "2024-02-29..2024-03-02";

fn params() -> DetectParams {
    DetectParams {
        threshold: 10.0,
        ..Default::default()
    }
}

fn run_info() -> RunInfo {
    RunInfo {
        template_checksum: 1,
        parameters: format!("{{\"days\":\"{DAYS}\"}}"),
        shard: None,
        template_shard: None,
    }
}

/// Run `days` on `backends` into `out` (created, or resumed when `resume`).
fn run(out: &Path, days: &[Day], backends: Vec<Box<dyn Backend>>, resume: bool) -> Summary {
    let (set, archive) = crate::days::setup();
    let (writer, days) = if resume {
        let (w, done) = Writer::resume(out, &run_info()).unwrap();
        (w, output::days_to_do(&done, days))
    } else {
        let w = Writer::create(out, &TemplateInfo::of(&set), &run_info(), "test").unwrap();
        (w, days.to_vec())
    };
    let writer = Mutex::new(writer);
    let stop = AtomicBool::new(false);
    pipeline::run(&set, &archive, &days, &params(), &backends, &writer, &stop).unwrap()
}

/// A day's status and detections (template, time, cc_sum).
type DayRows = (Day, String, Vec<(u32, i64, f32)>);

/// Each day's status and detections.
fn by_day(path: &Path) -> Vec<DayRows> {
    let d = output::read(path).unwrap();
    let mut days: Vec<_> = d
        .days
        .iter()
        .zip(d.day_rows())
        .map(|(s, r)| {
            let rows = d.rows[r]
                .iter()
                .map(|r| (r.template, r.time_ns, r.cc_sum))
                .collect();
            (s.day, s.status.to_string(), rows)
        })
        .collect();
    days.sort_by_key(|d| d.0);
    days
}

fn reference(dir: &Path, days: &[Day]) -> Vec<DayRows> {
    let out = dir.join("reference.h5");
    run(&out, days, vec![Box::new(CpuBackend::new())], false);
    let r = by_day(&out);
    assert_eq!(r.len(), days.len());
    // Two sample days with planted events, then one without data.
    let status: Vec<&str> = r.iter().map(|d| d.1.as_str()).collect();
    assert_eq!(status, ["done", "done", "no-data"]);
    assert!(r.iter().all(|d| d.1 != "done" || !d.2.is_empty()));
    r
}

#[test]
fn a_device_that_faults_hands_its_days_to_the_other_devices() {
    let dir = tempfile::tempdir().unwrap();
    let days = epoch::parse_days(DAYS).unwrap();
    let want = reference(dir.path(), &days);
    // Faults on its first day, whichever that is, and on every day after.
    let out = dir.path().join("two.h5");
    let s = run(
        &out,
        &days,
        vec![Box::new(Failing::new(0, true)), Box::new(CpuBackend::new())],
        false,
    );
    assert_eq!((s.days_done, s.days_failed, s.not_started), (2, 0, 0));
    assert!(s.device_faults.len() <= 1, "{:?}", s.device_faults);
    assert_eq!(by_day(&out), want);
}

#[test]
fn when_every_device_faults_its_days_are_left_undone_for_resume() {
    let dir = tempfile::tempdir().unwrap();
    let days = epoch::parse_days(DAYS).unwrap();
    let want = reference(dir.path(), &days);
    let out = dir.path().join("faulted.h5");
    // Day one is done; the fault on day two leaves days two and three
    // unwritten (not failed: the data were fine, the device was not).
    let s = run(&out, &days, vec![Box::new(Failing::new(1, true))], false);
    assert_eq!((s.days_done, s.days_failed, s.not_started), (1, 0, 2));
    assert_eq!(s.device_faults.len(), 1);
    assert!(s.device_faults[0].contains("illegal address"));
    assert_eq!(by_day(&out), want[..1]);
    let s = run(&out, &days, vec![Box::new(CpuBackend::new())], true);
    assert_eq!((s.days_done, s.days_without_data, s.not_started), (1, 1, 0));
    assert_eq!(by_day(&out), want);
}

#[test]
fn failed_days_are_recorded_reported_by_merge_and_redone_by_resume() {
    let dir = tempfile::tempdir().unwrap();
    let days = epoch::parse_days(DAYS).unwrap();
    let want = reference(dir.path(), &days);
    let out = dir.path().join("failed.h5");
    // One backend takes the days in order: the first one fails.
    let s = run(&out, &days, vec![Box::new(Failing::new(0, false))], false);
    assert_eq!((s.days_done, s.days_failed, s.not_started), (1, 1, 0));
    let got = by_day(&out);
    assert_eq!((got[0].0, got[0].1.as_str()), (days[0], "failed"));
    assert_eq!(got[1..], want[1..]);

    let merged = dir.path().join("merged.h5");
    let r = output::merge(std::slice::from_ref(&out), &merged, "test").unwrap();
    assert_eq!(r.failed, vec![days[0]]);

    let (_, done) = Writer::resume(&out, &run_info()).unwrap();
    assert_eq!(output::days_to_do(&done, &days), vec![days[0]]);
    let s = run(&out, &days, vec![Box::new(CpuBackend::new())], true);
    assert_eq!((s.days_done, s.days_failed), (1, 0));
    // The failed row is superseded: each day once, as an uninterrupted run.
    assert_eq!(by_day(&out), want);
    let r = output::merge(&[out], &dir.path().join("merged2.h5"), "test").unwrap();
    assert!(r.failed.is_empty());
}

#[test]
fn the_gpu_batch_script_fails_where_there_is_no_gpu() {
    // `--device cuda`: a node that cannot run the kernels fails the task at
    // once rather than running for days on its CPU.
    if tmatch::correlate::cuda_devices().is_ok_and(|n| n > 0) {
        return crate::util::skip(
            "the_gpu_batch_script_fails_where_there_is_no_gpu",
            "a CUDA device is present",
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::fs::write(bin.join("srun"), "#!/bin/sh\nexec \"$@\"\n").unwrap();
    std::fs::set_permissions(
        bin.join("srun"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let templates = build_templates(dir.path(), &[]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/slurm/detect-gpu.sbatch");
    let o = Command::new("bash")
        .arg(script)
        .env(
            "PATH",
            format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
        )
        .env("TMATCH", crate::util::tmatch_bin())
        .env("TEMPLATES", &templates)
        .env("ARCHIVE", samples().join("archive"))
        .env("DAYS", DAYS)
        .env("OUT", dir.path().join("run"))
        .env("SLURM_ARRAY_JOB_ID", "5")
        .env("SLURM_ARRAY_TASK_ID", "0")
        .env("SLURM_ARRAY_TASK_MIN", "0")
        .env("SLURM_ARRAY_TASK_COUNT", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("--device cuda") && err.contains("CUDA"),
        "{err}"
    );
    assert!(!dir.path().join("run/shard-0.h5").exists());
}
