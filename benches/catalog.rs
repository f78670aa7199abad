//! `tmatch catalog` at the mission's scale:
//! `cargo bench --bench catalog -- [--detections N] [--templates T]
//! [--channels C] [--days D] [--dir DIR]`.
//!
//! Generates a template set (T templates of C channels, short waveforms)
//! and a detections file of N detections spread over D days (random
//! templates, times and channel measurements, CCs such that about a third
//! of the channels give picks), then runs the `tmatch` binary's
//! `catalog` on it (decluster 2 s, events and picks CSV) and reports its
//! wall time, its peak memory (as it prints it) and the files' sizes.
//! Defaults: 10^7 detections of 1,000 templates of 10 channels over 3,650
//! days; the files go to a temporary folder under `target/` unless
//! `--dir` says otherwise (the detections file is about 4.5 GB).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tmatch::catalog::{Event, Phase};
use tmatch::detect::{ChannelPick, Detection};
use tmatch::epoch;
use tmatch::output::{DayState, DayStatus, RunInfo, TemplateInfo, Writer};
use tmatch::preprocess::Recipe;
use tmatch::templates::{Template, TemplateChannel, TemplateSet};

struct Args {
    detections: usize,
    templates: usize,
    channels: usize,
    days: usize,
    dir: Option<PathBuf>,
}

fn args() -> Args {
    let mut a = Args {
        detections: 10_000_000,
        templates: 1000,
        channels: 10,
        days: 3650,
        dir: None,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut it = argv.iter();
    while let Some(k) = it.next() {
        let mut v = || it.next().expect("a value").clone();
        match k.as_str() {
            "--detections" => a.detections = v().parse().expect("a count"),
            "--templates" => a.templates = v().parse().expect("a count"),
            "--channels" => a.channels = v().parse().expect("a count"),
            "--days" => a.days = v().parse().expect("a count"),
            "--dir" => a.dir = Some(v().into()),
            _ => {} // cargo bench's own flags
        }
    }
    a
}

const RATE: f64 = 100.0;
const LEN: usize = 200;

fn template_set(a: &Args, rng: &mut ChaCha8Rng) -> TemplateSet {
    let t0 = epoch::parse_time("2010-01-01T00:00:00Z").unwrap();
    let templates = (0..a.templates)
        .map(|i| {
            let origin = t0 + i as i64 * 3_600_000_000_000;
            let channels = (0..a.channels)
                .map(|c| TemplateChannel {
                    id: format!("XX.S{:03}..EH{}", c / 3, ['Z', 'N', 'E'][c % 3]),
                    phase: if c % 3 == 0 { Phase::P } else { Phase::S },
                    start: origin + 2_000_000_000 + c as i64 * 100_000_000,
                    pad: c * 10,
                    weight: 1.0,
                    data: (0..LEN).map(|_| rng.gen_range(-100.0..100.0)).collect(),
                    pick_offset: 1_000_000_000,
                    noise_rms: Some(5.0),
                })
                .collect();
            Template {
                event: Event {
                    id: format!("T{i:05}"),
                    origin,
                    latitude: 46.0 + rng.gen_range(-0.2..0.2),
                    longitude: 8.0 + rng.gen_range(-0.2..0.2),
                    depth_km: rng.gen_range(2.0..15.0),
                    magnitude: rng.gen_range(1.0..3.0),
                },
                channels,
            }
        })
        .collect();
    TemplateSet {
        recipe: Recipe::default(),
        rate: RATE,
        len: LEN,
        templates,
    }
}

fn day_detections(a: &Args, day_start: i64, n: usize, rng: &mut ChaCha8Rng) -> Vec<Detection> {
    let mut v: Vec<Detection> = (0..n)
        .map(|_| {
            let channels = (0..a.channels)
                .map(|channel| {
                    let best_lag = rng.gen_range(-20..=20);
                    ChannelPick {
                        channel,
                        cc: rng.gen_range(0.0..0.6),
                        best_cc: rng.gen_range(0.1..0.7),
                        best_lag,
                        lag: best_lag as f32 + rng.gen_range(-0.5..0.5),
                        amplitude: rng.gen_range(10.0..100.0),
                        peak: rng.gen_range(30.0..300.0),
                        noise_rms: Some(rng.gen_range(0.5..5.0)),
                    }
                })
                .collect();
            let cc_sum = rng.gen_range(2.0..(a.channels as f32));
            Detection {
                template: rng.gen_range(0..a.templates),
                time: day_start
                    + (rng.gen_range(0.0f64..86_399.0) * 100.0).round() as i64 * 10_000_000,
                cc_sum,
                mean_cc: cc_sum / a.channels as f32,
                threshold: 2.0,
                mad: 0.2,
                n_channels: a.channels,
                channels,
            }
        })
        .collect();
    v.sort_by_key(|d| (d.time, d.template));
    v
}

fn size_mib(p: &Path) -> f64 {
    std::fs::metadata(p).map_or(0.0, |m| m.len() as f64 / (1 << 20) as f64)
}

fn main() {
    let a = args();
    let tmp;
    let dir = match &a.dir {
        Some(d) => d.clone(),
        None => {
            let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
            tmp = tempfile::tempdir_in(target).expect("a temporary folder");
            tmp.path().to_path_buf()
        }
    };
    std::fs::create_dir_all(&dir).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let set = template_set(&a, &mut rng);
    let (t, d) = (dir.join("templates.h5"), dir.join("detections.h5"));
    tmatch::templates::write(&set, &t).unwrap();
    let run = RunInfo {
        template_checksum: set.checksum(),
        parameters: r#"{"threshold":8.0,"threshold_type":"mad"}"#.into(),
        shard: None,
        template_shard: None,
    };
    let tic = Instant::now();
    let mut w = Writer::create(&d, &TemplateInfo::of(&set), &run, "catalog bench").unwrap();
    let first = epoch::parse_day("2010-01-01").unwrap();
    for i in 0..a.days {
        let n = a.detections * (i + 1) / a.days - a.detections * i / a.days;
        let dets = day_detections(&a, epoch::day_start(first + i as i64), n, &mut rng);
        let status = DayStatus {
            day: first + i as i64,
            status: DayState::Done,
            n_detections: n as u64,
            wall_s: 1.0,
            device: "bench".into(),
            problems: String::new(),
        };
        w.write_day(&status, &dets).unwrap();
    }
    drop(w);
    println!(
        "generated {} detections of {} templates x {} channels over {} days: {:.0} MiB in {:.0} s",
        a.detections,
        a.templates,
        a.channels,
        a.days,
        size_mib(&d),
        tic.elapsed().as_secs_f64()
    );
    let out = dir.join("events.csv");
    let tic = Instant::now();
    let o = Command::new(env!("CARGO_BIN_EXE_tmatch"))
        .args([
            "catalog",
            d.to_str().unwrap(),
            "--templates",
            t.to_str().unwrap(),
        ])
        .args(["-o", out.to_str().unwrap(), "--decluster", "2"])
        .output()
        .expect("run tmatch");
    let wall = tic.elapsed().as_secs_f64();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    print!("{err}");
    println!(
        "catalog: {wall:.1} s for {} detections ({:.2e} detections/s); events CSV {:.0} MiB, \
         picks CSV {:.0} MiB; detections file {:.0} MiB",
        a.detections,
        a.detections as f64 / wall,
        size_mib(&out),
        size_mib(&dir.join("events_picks.csv")),
        size_mib(&d)
    );
}
