//! Running at scale on the generated 30-midnight archive: many days in one
//! run, shards and their merge, runs killed or stopped by a signal and
//! resumed, templates that cannot fit the day overlap, and memory that does
//! not grow with the number of days.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rand::Rng;
use tmatch::epoch::{self, Day, Nanos};
use tmatch::output;

use crate::util::{rng, s, tmatch_fails, tmatch_ok, Detect};

const DAYS: &str = "2023-12-31..2024-01-29";
const N_DAYS: usize = 30;

/// The month archive (`crate::month::spec`) and its templates, made once.
fn month() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = tempfile::tempdir().unwrap();
        tmatch::synth::generate(&crate::month::spec(), d.path()).unwrap();
        let p = |n: &str| d.path().join(n).to_str().unwrap().to_string();
        tmatch_ok(&[
            "templates",
            "build",
            "--picks",
            &p("picks.csv"),
            "--events",
            &p("events.csv"),
            "--archive",
            &p("archive"),
            "--phase",
            "all",
            "--pre",
            "0.5",
            "--length",
            "3",
            "--lowcut",
            "2",
            "--highcut",
            "8",
            "-o",
            &p("templates.h5"),
        ]);
        d
    })
    .path()
}

fn detect_args(out: &Path, days: &str, extra: &[&str]) -> Vec<String> {
    detect_args_with(&month().join("templates.h5"), out, days, extra)
}

/// `tmatch detect` of `templates` over the month archive.
fn detect_args_with(templates: &Path, out: &Path, days: &str, extra: &[&str]) -> Vec<String> {
    let archive = month().join("archive");
    Detect::new(s(templates), s(&archive), days, s(out))
        .args(&["--threshold", "10", "--trig-int", "6"])
        .args(extra)
        .into_args()
}

fn detect(out: &Path, days: &str, extra: &[&str]) -> String {
    tmatch_ok(&detect_args(out, days, extra))
}

/// One detection as compared between runs: its row without file offsets,
/// and its channels.
type Found = (u32, Nanos, u32, u32, Vec<(u32, u32, u32, i32)>);

/// Days of a detections file: status, problems and detections.
type ByDay = BTreeMap<Day, (String, String, Vec<Found>)>;

/// A detections file by day, whatever order the file holds them in.
fn by_day(path: &Path) -> ByDay {
    let d = output::read(path).unwrap_or_else(|e| panic!("{e}"));
    let mut out = BTreeMap::new();
    for (status, rows) in d.days.iter().zip(d.day_rows()) {
        let found = d.rows[rows]
            .iter()
            .map(|r| {
                let a = r.first_channel_row as usize;
                let ch = d.channels[a..a + r.n_channel_rows as usize]
                    .iter()
                    .map(|c| (c.channel, c.cc.to_bits(), c.best_cc.to_bits(), c.best_lag))
                    .collect();
                (
                    r.template,
                    r.time_ns,
                    r.cc_sum.to_bits(),
                    r.mad.to_bits(),
                    ch,
                )
            })
            .collect();
        let old = out.insert(
            status.day,
            (status.status.to_string(), status.problems.clone(), found),
        );
        assert!(old.is_none(), "{}: day twice", path.display());
    }
    out
}

/// The uninterrupted run over every day, made once.
fn full_run() -> &'static ByDay {
    static FULL: OnceLock<(tempfile::TempDir, ByDay)> = OnceLock::new();
    &FULL
        .get_or_init(|| {
            let d = tempfile::tempdir().unwrap();
            let out = d.path().join("full.h5");
            detect(&out, DAYS, &[]);
            let days = by_day(&out);
            (d, days)
        })
        .1
}

fn truth() -> Vec<(usize, Nanos)> {
    std::fs::read_to_string(month().join("truth.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[1].parse().unwrap(), epoch::parse_time(f[2]).unwrap())
        })
        .collect()
}

#[test]
fn thirty_days_in_one_run_equal_the_days_run_apart() {
    let full = full_run();
    assert_eq!(full.len(), N_DAYS);
    assert!(full.values().all(|(status, _, _)| status == "done"));
    let dir = tempfile::tempdir().unwrap();
    for &day in full.keys() {
        let out = dir.path().join(format!("{day}.h5"));
        detect(&out, &epoch::format_day(day), &[]);
        let one = by_day(&out);
        assert_eq!(one.len(), 1);
        assert_eq!(one.get(&day), full.get(&day), "{}", epoch::format_day(day));
    }

    // Every planted event, the ones three seconds before a midnight whose
    // waves cross it included, is found once by its source's template at
    // its origin time, and nothing else is found.
    let d = output::read(
        &dir.path()
            .join(format!("{}.h5", full.keys().next().unwrap())),
    )
    .unwrap();
    let offsets = d.templates.origin_offsets.clone();
    let ids = d.templates.ids.clone();
    let mut found: Vec<(usize, Nanos)> = full
        .values()
        .flat_map(|(_, _, f)| f.iter())
        .map(|f| (f.0 as usize, f.1 - offsets[f.0 as usize]))
        .collect();
    found.sort();
    let source_of = |id: &str| (id.as_bytes()[0] - b'A') as usize;
    let truth = truth();
    let mut matched = vec![0; truth.len()];
    for &(t, origin) in &found {
        // Within a sample (50 ms): origins are off the grid and picks are
        // rounded to 10 ms.
        let hits: Vec<usize> = (0..truth.len())
            .filter(|&i| {
                truth[i].0 == source_of(&ids[t]) && (truth[i].1 - origin).abs() <= 50_000_000
            })
            .collect();
        let near: Vec<String> = truth
            .iter()
            .filter(|(_, t)| (t - origin).abs() < 300 * epoch::NS_PER_S)
            .map(|(src, t)| format!("{src}@{}", epoch::format_time(*t)))
            .collect();
        assert_eq!(
            hits.len(),
            1,
            "detection of {} at {}; planted near it: {near:?}",
            ids[t],
            epoch::format_time(origin)
        );
        matched[hits[0]] += 1;
    }
    let midnight = truth
        .iter()
        .filter(|(_, t)| {
            (t.rem_euclid(epoch::NS_PER_DAY) - epoch::NS_PER_DAY).abs() < 10 * epoch::NS_PER_S
        })
        .count();
    assert_eq!(midnight, 15);
    assert!(
        matched.iter().all(|&n| n == 1),
        "found per planted event: {matched:?}"
    );
}

#[test]
fn merged_shards_equal_the_unsharded_run() {
    let dir = tempfile::tempdir().unwrap();
    let shard = |i: usize| dir.path().join(format!("shard-{i}.h5"));
    detect(&shard(0), DAYS, &["--shard", "0/3"]);
    detect(&shard(1), DAYS, &["--shard", "1/3"]);
    // The third from a Slurm array task's variables (--array=1-3, task 3).
    let args = detect_args(&shard(2), DAYS, &[]);
    let out = Command::new(env!("CARGO_BIN_EXE_tmatch"))
        .args(&args)
        .env("SLURM_ARRAY_TASK_ID", "3")
        .env("SLURM_ARRAY_TASK_MIN", "1")
        .env("SLURM_ARRAY_TASK_COUNT", "3")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && err.contains("shard 2/3"), "{err}");
    let third = by_day(&shard(2));
    assert_eq!(third.len(), 10);
    assert!(third
        .keys()
        .all(|&d| (d - full_run().keys().next().unwrap()) % 3 == 2));

    let merged = dir.path().join("merged.h5");
    tmatch_ok(&[
        "merge",
        s(&shard(2)),
        s(&shard(0)),
        s(&shard(1)),
        "-o",
        s(&merged),
    ]);
    assert_eq!(&by_day(&merged), full_run());

    // Two shards of three: the missing days are reported.
    let part = dir.path().join("part.h5");
    let err = tmatch_ok(&["merge", s(&shard(0)), s(&shard(1)), "-o", s(&part)]);
    assert!(
        err.contains("10 requested days are in none of the files"),
        "{err}"
    );
    // A shard twice, or a file of another run, is refused.
    let err = tmatch_fails(&[
        "merge",
        s(&shard(0)),
        s(&merged),
        "-o",
        s(&dir.path().join("x.h5")),
    ]);
    assert!(err.contains("days present twice"), "{err}");
    let other = dir.path().join("other.h5");
    detect(&other, "2024-01-02", &["--min-channels", "2"]);
    let err = tmatch_fails(&[
        "merge",
        s(&shard(0)),
        s(&other),
        "-o",
        s(&dir.path().join("y.h5")),
    ]);
    assert!(
        err.contains("other.h5") && err.contains("other parameters"),
        "{err}"
    );
    // A shard's file is not resumed as another shard.
    let err = tmatch_fails(&detect_args(
        &shard(0),
        DAYS,
        &["--shard", "1/3", "--resume"],
    ));
    assert!(err.contains("made for shard 0/3"), "{err}");
}

/// Twelve templates, each of the month's three four times over (copies
/// adjacent, so each template shard holds some of every source's): equal
/// detections of different templates at the same times.
fn twelve_templates() -> &'static Path {
    static FILE: OnceLock<(tempfile::TempDir, std::path::PathBuf)> = OnceLock::new();
    &FILE
        .get_or_init(|| {
            let d = tempfile::tempdir().unwrap();
            let mut set = tmatch::templates::read(&month().join("templates.h5")).unwrap();
            set.templates = set
                .templates
                .iter()
                .flat_map(|t| {
                    (0..4).map(move |k| tmatch::templates::Template {
                        event: tmatch::catalog::Event {
                            id: format!("{}-{k}", t.event.id),
                            ..t.event.clone()
                        },
                        ..t.clone()
                    })
                })
                .collect();
            let file = d.path().join("twelve.h5");
            tmatch::templates::write(&set, &file).unwrap();
            (d, file)
        })
        .1
}

fn detect12(out: &Path, extra: &[&str]) -> String {
    tmatch_ok(&detect_args_with(twelve_templates(), out, DAYS, extra))
}

/// With the twelve templates: the unsharded run, and the month in 2 day
/// shards × 3 template shards, one file each (`d{I}-t{J}.h5`), made once.
fn template_sharded() -> &'static (tempfile::TempDir, ByDay) {
    static DIR: OnceLock<(tempfile::TempDir, ByDay)> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = tempfile::tempdir().unwrap();
        let full = d.path().join("full.h5");
        detect12(&full, &[]);
        for i in 0..2 {
            for j in 0..3 {
                let out = d.path().join(format!("d{i}-t{j}.h5"));
                let (shard, tshard) = (format!("{i}/2"), format!("{j}/3"));
                let err = detect12(&out, &["--shard", &shard, "--template-shard", &tshard]);
                assert!(
                    err.contains(&format!("4 of 12 templates (template shard {j}/3)")),
                    "{err}"
                );
            }
        }
        let full = by_day(&full);
        (d, full)
    })
}

fn template_shard_file(i: usize, j: usize) -> std::path::PathBuf {
    template_sharded().0.path().join(format!("d{i}-t{j}.h5"))
}

#[test]
fn merged_day_and_template_shards_equal_the_unsharded_run() {
    let full = &template_sharded().1;
    assert_eq!(full.len(), N_DAYS);
    // Copies of a template detect at the same times.
    let (_, _, found) = full.values().find(|v| !v.2.is_empty()).unwrap();
    assert!(found.windows(2).any(|w| w[0].1 == w[1].1), "{found:?}");
    let n_templates = 12;
    for i in 0..2 {
        for j in 0..3 {
            let f = output::read(&template_shard_file(i, j)).unwrap();
            // The whole template table, the shard recorded, and only the
            // shard's templates correlated, under their own indices.
            assert_eq!(f.templates.ids.len(), n_templates);
            assert_eq!(f.run.shard, format!("{i}/2").parse().ok());
            assert_eq!(f.run.template_shard, format!("{j}/3").parse().ok());
            assert_eq!(f.days.len(), N_DAYS / 2);
            assert!(f.rows.iter().all(|r| r.template as usize % 3 == j));
            assert!(!f.rows.is_empty());
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let merged = dir.path().join("merged.h5");
    let mut args = vec!["merge".to_string()];
    // In any order.
    for (i, j) in [(1, 2), (0, 0), (1, 0), (0, 2), (1, 1), (0, 1)] {
        args.push(s(&template_shard_file(i, j)).to_string());
    }
    args.extend(["-o".to_string(), s(&merged).to_string()]);
    let err = tmatch_ok(&args);
    assert!(!err.contains("warning"), "{err}");
    assert_eq!(&by_day(&merged), full);
    // A merged day's row: the parts' wall times add up; their devices once.
    let m = output::read(&merged).unwrap();
    assert_eq!(m.run.template_shard, None);
    assert_eq!(m.run.shard, None);
    let part = output::read(&template_shard_file(0, 0)).unwrap();
    assert_eq!(m.days[0].device, part.days[0].device);
    let wall: f64 = (0..3)
        .map(|j| output::read(&template_shard_file(0, j)).unwrap().days[0].wall_s)
        .sum();
    assert!((m.days[0].wall_s - wall).abs() < 1e-9);
}

#[test]
fn a_template_shard_resumes_and_refuses_another() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t1.h5");
    let args = detect_args_with(
        twelve_templates(),
        &out,
        DAYS,
        &["--shard", "1/2", "--template-shard", "1/3"],
    );
    let (mut child, rx) = spawn(&args);
    wait_days(&rx, 2).unwrap();
    signal(&child, "-TERM");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(143));
    let kept = by_day(&out).len();
    assert!((2..N_DAYS / 2).contains(&kept), "{kept} days kept");
    // Another template shard, or all templates, is refused.
    let resume = |extra: &[&str]| {
        let mut a = vec!["--shard", "1/2", "--resume"];
        a.extend_from_slice(extra);
        detect_args_with(twelve_templates(), &out, DAYS, &a)
    };
    let err = tmatch_fails(&resume(&["--template-shard", "2/3"]));
    assert!(
        err.contains("made for template shard 1/3, this run is for template shard 2/3"),
        "{err}"
    );
    let err = tmatch_fails(&resume(&[]));
    assert!(
        err.contains("made for template shard 1/3, this run is for all templates"),
        "{err}"
    );
    // The same one goes on to what the uninterrupted run wrote.
    let err = tmatch_ok(&resume(&["--template-shard", "1/3"]));
    assert!(
        err.contains(&format!("{kept} of {} days done", N_DAYS / 2)),
        "{err}"
    );
    assert_eq!(by_day(&out), by_day(&template_shard_file(1, 1)));
    // A template shard with no template is a mistake.
    let err = tmatch_fails(&detect_args_with(
        twelve_templates(),
        &dir.path().join("none.h5"),
        DAYS,
        &["--template-shard", "12/13"],
    ));
    assert!(err.contains("has 12 templates"), "{err}");
    // And a file of all templates is not resumed as a template shard.
    let one = dir.path().join("one.h5");
    detect12(&one, &["--shard", "0/30"]);
    let err = tmatch_fails(&detect_args_with(
        twelve_templates(),
        &one,
        DAYS,
        &["--shard", "0/30", "--template-shard", "0/3", "--resume"],
    ));
    assert!(
        err.contains("made for all templates, this run is for template shard 0/3"),
        "{err}"
    );
}

#[test]
fn merge_refuses_mixed_or_overlapping_template_shards_and_reports_missing_ones() {
    let dir = tempfile::tempdir().unwrap();
    let all = |extra: &[&Path]| {
        let mut a: Vec<String> = vec!["merge".into()];
        for i in 0..2 {
            for j in 0..3 {
                a.push(s(&template_shard_file(i, j)).into());
            }
        }
        a.extend(extra.iter().map(|p| s(p).to_string()));
        a
    };
    let with_out = |mut a: Vec<String>, name: &str| {
        a.extend(["-o".into(), s(&dir.path().join(name)).to_string()]);
        a
    };
    // One day (the first) in 2 template shards, or in all templates.
    let halves = dir.path().join("halves.h5");
    detect12(&halves, &["--shard", "0/30", "--template-shard", "0/2"]);
    let err = tmatch_fails(&with_out(all(&[&halves]), "a.h5"));
    assert!(
        err.contains("halves.h5")
            && err.contains("d0-t0.h5")
            && err.contains("template shards of different counts"),
        "{err}"
    );
    let whole = dir.path().join("whole.h5");
    detect12(&whole, &["--shard", "0/30"]);
    let err = tmatch_fails(&with_out(all(&[&whole]), "b.h5"));
    assert!(
        err.contains("whole.h5")
            && err.contains("made for all templates")
            && err.contains("different counts"),
        "{err}"
    );
    // The first day again in template shard 1/3: present twice.
    let again = dir.path().join("again.h5");
    detect12(&again, &["--shard", "0/30", "--template-shard", "1/3"]);
    let err = tmatch_fails(&with_out(all(&[&again]), "c.h5"));
    assert!(
        err.contains("days present twice in one template shard")
            && err.contains("2023-12-31 (")
            && err.contains("d0-t1.h5 and")
            && err.contains("again.h5, template shard 1/3)"),
        "{err}"
    );
    for name in ["a.h5", "b.h5", "c.h5"] {
        assert!(!dir.path().join(name).exists(), "{name}");
    }
    // Template shard 2/3 of the second day shard missing: its days are
    // reported and left out, the others merged.
    let mut a: Vec<String> = all(&[]);
    a.retain(|f| !f.ends_with("d1-t2.h5"));
    let part = dir.path().join("part.h5");
    let err = tmatch_ok(&with_out(a, "part.h5"));
    assert!(
        err.contains("15 days lack some of their template shards and are not merged")
            && err.contains("2024-01-01 (missing template shard 2/3)"),
        "{err}"
    );
    let got = by_day(&part);
    assert_eq!(got.len(), N_DAYS / 2);
    let full = &template_sharded().1;
    let first = *full.keys().next().unwrap();
    for (day, v) in &got {
        assert_eq!((day - first) % 2, 0);
        assert_eq!(Some(v), full.get(day));
    }
}

/// Start tmatch; the receiver gets each line it logs.
fn spawn(args: &[String]) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tmatch"))
        .args(args)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (child, rx)
}

/// Wait for `n` per-day lines; the lines seen, or what the run said if
/// it ended first.
fn wait_days(rx: &mpsc::Receiver<String>, n: usize) -> Result<Vec<String>, String> {
    let mut seen = Vec::new();
    while seen
        .iter()
        .filter(|l: &&String| l.contains(" detections in "))
        .count()
        < n
    {
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(l) => seen.push(l),
            Err(e) => return Err(format!("{e}: {}", seen.join("\n"))),
        }
    }
    Ok(seen)
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig}");
}

/// What an interrupted file must be: readable, and each of its days as in
/// the uninterrupted run.
fn check_partial(out: &Path) -> usize {
    let partial = by_day(out);
    for (day, v) in &partial {
        assert_eq!(Some(v), full_run().get(day), "{}", epoch::format_day(*day));
    }
    partial.len()
}

#[test]
fn killed_runs_resume_to_the_uninterrupted_result() {
    let full = full_run();
    let dir = tempfile::tempdir().unwrap();
    let mut r = rng(4);
    let trials = 10;
    for trial in 0..trials {
        let out = dir.path().join(format!("kill-{trial}.h5"));
        let (mut child, rx) = spawn(&detect_args(&out, DAYS, &[]));
        // Random points: after 0..30 days written, 0..40 ms into the next.
        let after = r.gen_range(0..N_DAYS);
        wait_days(&rx, after).unwrap();
        std::thread::sleep(Duration::from_millis(r.gen_range(0..40)));
        signal(&child, "-KILL");
        child.wait().unwrap();
        let kept = if out.exists() { check_partial(&out) } else { 0 };
        eprintln!("kill trial {trial}: after {after} day lines, {kept} days in the file");
        detect(&out, DAYS, &["--resume"]);
        assert_eq!(&by_day(&out), full, "trial {trial}");
    }
}

#[test]
fn sigterm_stops_between_days_and_resume_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("term.h5");
    let (mut child, rx) = spawn(&detect_args(&out, DAYS, &[]));
    wait_days(&rx, 2).unwrap();
    signal(&child, "-TERM");
    let status = child.wait().unwrap();
    let log = rx.try_iter().collect::<Vec<_>>().join("\n");
    // Interrupted: non-zero (128 + SIGTERM) so that Slurm can requeue.
    assert_eq!(status.code(), Some(143), "{log}");
    assert!(log.contains("run again with --resume"), "{log}");
    let kept = check_partial(&out);
    assert!((2..N_DAYS).contains(&kept), "{kept} days kept\n{log}");
    let err = detect(&out, DAYS, &["--resume"]);
    assert!(
        err.contains(&format!("{kept} of {N_DAYS} days done")),
        "{err}"
    );
    assert_eq!(&by_day(&out), full_run());
}

#[test]
fn a_second_sigterm_stops_at_once() {
    // Days long enough to be caught in flight: each template 200 times.
    let dir = tempfile::tempdir().unwrap();
    let mut set = tmatch::templates::read(&month().join("templates.h5")).unwrap();
    set.templates = (0..200)
        .flat_map(|k| {
            set.templates
                .iter()
                .map(move |t| tmatch::templates::Template {
                    event: tmatch::catalog::Event {
                        id: format!("{}-{k}", t.event.id),
                        ..t.event.clone()
                    },
                    ..t.clone()
                })
        })
        .collect();
    let many = dir.path().join("many.h5");
    tmatch::templates::write(&set, &many).unwrap();
    let out = dir.path().join("twice.h5");
    let (mut child, rx) = spawn(&detect_args_with(&many, &out, DAYS, &[]));
    wait_days(&rx, 1).unwrap();
    signal(&child, "-TERM");
    // The first is taken: the day in flight would now be finished.
    let mut log = Vec::new();
    while !log
        .iter()
        .any(|l: &String| l.contains("finishing the day in flight"))
    {
        log.push(rx.recv_timeout(Duration::from_secs(60)).unwrap());
    }
    let t = Instant::now();
    signal(&child, "-TERM");
    let status = child.wait().unwrap();
    let stopped = t.elapsed();
    log.extend(rx.try_iter());
    let log = log.join("\n");
    assert_eq!(status.code(), Some(143), "{log}");
    assert!(log.contains("stopping now"), "{log}");
    let d = output::read(&out).unwrap();
    let day_s = d.days[0].wall_s;
    assert!(
        stopped.as_secs_f64() < day_s / 2.0,
        "stopped {stopped:?} after the second signal; a day takes {day_s} s"
    );
    assert!((1..N_DAYS).contains(&d.days.len()), "{log}");
}

#[test]
fn a_template_longer_than_the_day_overlap_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut set = tmatch::templates::read(&month().join("templates.h5")).unwrap();
    // Picks a day and more apart: a mistake, not a moveout.
    let day = (86_400.0 * set.rate) as usize;
    set.templates[1].channels[2].pad = day + 7;
    let bad = dir.path().join("bad.h5");
    tmatch::templates::write(&set, &bad).unwrap();
    let (archive, out) = (month().join("archive"), dir.path().join("d.h5"));
    let err = Detect::new(s(&bad), s(&archive), "2024-01-02", s(&out)).run_fails();
    assert!(
        err.contains(&format!("template {} spans", set.templates[1].event.id)),
        "{err}"
    );
    assert!(!dir.path().join("d.h5").exists());
}

fn peak_memory_mib(log: &str) -> u64 {
    let at = log.find("peak memory ").expect("peak memory reported") + 12;
    log[at..].split(' ').next().unwrap().parse().unwrap()
}

#[test]
fn memory_does_not_grow_with_the_number_of_days() {
    // A leak grows with every day; the allocator's own warm-up is over
    // after the first few.
    let dir = tempfile::tempdir().unwrap();
    let few = peak_memory_mib(&detect(
        &dir.path().join("few.h5"),
        "2024-01-01..2024-01-03",
        &[],
    ));
    let all = peak_memory_mib(&detect(&dir.path().join("all.h5"), DAYS, &[]));
    eprintln!("peak memory: 3 days {few} MiB, {N_DAYS} days {all} MiB");
    assert!(
        all <= few + few / 10 + 8,
        "3 days {few} MiB, {N_DAYS} days {all} MiB"
    );
}

#[test]
fn several_backends_share_the_days() {
    // One thread per backend (per GPU on a GPU node) takes days from one
    // queue; the file holds each day once, as one backend would write it.
    use std::sync::atomic::AtomicBool;
    use std::sync::Mutex;
    use tmatch::correlate::{cpu::CpuBackend, Backend};
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("two.h5");
    let reference = dir.path().join("one.h5");
    detect(&reference, DAYS, &[]);
    let set = tmatch::templates::read(&month().join("templates.h5")).unwrap();
    let archive = tmatch::archive::Archive::open(&month().join("archive")).unwrap();
    let days = epoch::parse_days(DAYS).unwrap();
    let r = output::read(&reference).unwrap();
    let writer = output::Writer::create(&out, &r.templates, &r.run, "test").unwrap();
    let writer = Mutex::new(writer);
    let backends: Vec<Box<dyn Backend>> =
        vec![Box::new(CpuBackend::new()), Box::new(CpuBackend::new())];
    let params = tmatch::detect::DetectParams {
        threshold: 10.0,
        trig_int: 6.0,
        ..Default::default()
    };
    let stop = AtomicBool::new(false);
    let s =
        tmatch::pipeline::run(&set, &archive, &days, &params, &backends, &writer, &stop).unwrap();
    drop(writer);
    assert_eq!(s.days_done, N_DAYS);
    assert_eq!(by_day(&out), by_day(&reference));
}

#[test]
fn the_slurm_example_scripts_run_a_sharded_job_and_merge_it() {
    // The batch scripts as Slurm would run them, `srun` being a plain exec:
    // an array of three tasks numbered from 1, then the merge; then with
    // TEMPLATE_SHARDS=2, an array of six: 3 day shards × 2 template shards.
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let srun = bin.join("srun");
    std::fs::write(&srun, "#!/bin/sh\nexec \"$@\"\n").unwrap();
    std::fs::set_permissions(&srun, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/slurm");
    let run = |script: &str, out: &Path, task: Option<(usize, usize)>, env: &[(&str, &str)]| {
        let mut c = Command::new("bash");
        c.arg(scripts.join(script))
            .env(
                "PATH",
                format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
            )
            .env("TMATCH", env!("CARGO_BIN_EXE_tmatch"))
            .env("TEMPLATES", month().join("templates.h5"))
            .env("ARCHIVE", month().join("archive"))
            .env("DAYS", DAYS)
            .env("OUT", out)
            .env("TMATCH_ARGS", "--threshold 10 --trig-int 6")
            .envs(env.iter().copied());
        if let Some((t, count)) = task {
            c.env("SLURM_ARRAY_JOB_ID", "77")
                .env("SLURM_ARRAY_TASK_ID", t.to_string())
                .env("SLURM_ARRAY_TASK_MIN", "1")
                .env("SLURM_ARRAY_TASK_COUNT", count.to_string());
        }
        let o = c.output().unwrap();
        assert!(
            o.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    let out = dir.path().join("run");
    for task in 1..=3 {
        run("detect-cpu.sbatch", &out, Some((task, 3)), &[]);
    }
    run("merge.sbatch", &out, None, &[]);
    assert_eq!(&by_day(&out.join("detections.h5")), full_run());

    let out = dir.path().join("run-t");
    let env = [("TEMPLATE_SHARDS", "2")];
    for task in 1..=6 {
        run("detect-cpu.sbatch", &out, Some((task, 6)), &env);
    }
    for (i, j) in [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1)] {
        let f = output::read(&out.join(format!("shard-{i}-t{j}.h5"))).unwrap();
        assert_eq!(
            (f.run.shard, f.run.template_shard),
            (format!("{i}/3").parse().ok(), format!("{j}/2").parse().ok())
        );
    }
    run("merge.sbatch", &out, None, &env);
    assert_eq!(&by_day(&out.join("detections.h5")), full_run());
}

#[test]
fn the_submit_script_sizes_the_array_for_template_shards() {
    // `sbatch` records its arguments and answers a job id.
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let log = dir.path().join("sbatch.log");
    std::fs::write(
        bin.join("sbatch"),
        format!("#!/bin/sh\necho \"$*\" >> '{}'\necho 41\n", log.display()),
    )
    .unwrap();
    std::fs::set_permissions(
        bin.join("sbatch"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let submit = |args: &[&str], env: &[(&str, &str)]| {
        let _ = std::fs::remove_file(&log);
        let o = Command::new("bash")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/slurm/submit"))
            .args(args)
            .env(
                "PATH",
                format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
            )
            .envs(env.iter().copied())
            .output()
            .unwrap();
        let calls = std::fs::read_to_string(&log).unwrap_or_default();
        (
            o.status.success(),
            calls,
            String::from_utf8_lossy(&o.stderr).to_string(),
        )
    };
    let (ok, calls, _) = submit(&["--cpu"], &[("TEMPLATE_SHARDS", "3"), ("DAY_SHARDS", "5")]);
    let calls: Vec<&str> = calls.lines().collect();
    assert!(ok && calls.len() == 2, "{calls:?}");
    assert!(
        calls[0].contains("--array=0-14") && calls[0].ends_with("detect-cpu.sbatch"),
        "{calls:?}"
    );
    assert!(
        calls[1].contains("--dependency=afterok:41") && calls[1].ends_with("merge.sbatch"),
        "{calls:?}"
    );
    // 32 day shards unless told; without TEMPLATE_SHARDS the array is the
    // script's or the caller's.
    let (_, calls, _) = submit(&[], &[("TEMPLATE_SHARDS", "2")]);
    assert!(
        calls.lines().next().unwrap().contains("--array=0-63"),
        "{calls}"
    );
    let (_, calls, _) = submit(&["--array=0-7"], &[]);
    assert_eq!(
        calls.lines().next().unwrap().matches("--array").count(),
        1,
        "{calls}"
    );
    let (ok, calls, err) = submit(&["--array=0-7"], &[("TEMPLATE_SHARDS", "2")]);
    assert!(
        !ok && calls.is_empty() && err.contains("DAY_SHARDS"),
        "{err}"
    );
}
