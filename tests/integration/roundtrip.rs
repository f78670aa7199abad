//! miniSEED, templates.h5 and detections.h5 written and read back; the
//! archive's handling of gaps, overlaps, other rates and bad files.

use std::fs;

use tmatch::archive::{mseed, Archive};
use tmatch::catalog::{Event, Phase};
use tmatch::detect::{ChannelPick, Detection};
use tmatch::epoch::{self, NS_PER_S};
use tmatch::output::{self, DayState, DayStatus, RunInfo, TemplateInfo, Writer};
use tmatch::preprocess::Recipe;
use tmatch::templates::{self, Template, TemplateChannel, TemplateSet};

const ID: &str = "XX.TEST.00.HHZ";

fn t0() -> i64 {
    epoch::parse_time("2021-06-01T12:00:00Z").unwrap()
}

#[test]
fn miniseed_steim2_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("a.mseed");
    let samples: Vec<i32> = (0..5000)
        .map(|i| ((i * 7919) % 2001) - 1000 + i / 3)
        .collect();
    mseed::write_steim2(&f, ID, t0() + 5_000_000, 100.0, &samples).unwrap();
    let recs = mseed::read_records(&f).unwrap();
    let got: Vec<f64> = recs
        .iter()
        .flat_map(|r| r.samples.iter().copied())
        .collect();
    assert_eq!(got, samples.iter().map(|&v| v as f64).collect::<Vec<_>>());
    assert_eq!(recs[0].id, ID);
    assert_eq!(recs[0].start, t0() + 5_000_000);
    assert_eq!(recs[0].rate, 100.0);
    // A relative path that starts with `..` reads the same.
    let cwd = std::env::current_dir().unwrap();
    let mut rel = std::path::PathBuf::new();
    for _ in 1..cwd.components().count() {
        rel.push("..");
    }
    rel.push(f.strip_prefix("/").unwrap());
    assert!(rel.starts_with(".."));
    assert_eq!(mseed::read_records(&rel).unwrap().len(), recs.len());
    let h = mseed::read_headers(&f).unwrap();
    assert_eq!(h.len(), recs.len());
    assert_eq!(h.last().unwrap().end, t0() + 5_000_000 + 50 * NS_PER_S);
}

#[test]
fn archive_masks_gaps_and_reports_conflicts_and_rates() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("one.mseed");
    let b = dir.path().join("two.mseed");
    let ones = vec![1i32; 1000];
    mseed::write_steim2(&a, ID, t0(), 100.0, &ones).unwrap(); // 0–10 s
    mseed::write_steim2(&b, ID, t0() + 15 * NS_PER_S, 100.0, &ones).unwrap(); // 15–25 s: gap 10–15 s
                                                                              // Overlaps 20–25 s with other values, and a record at another rate.
    mseed::write_steim2(&b, ID, t0() + 20 * NS_PER_S, 100.0, &vec![7i32; 500]).unwrap();
    mseed::write_steim2(&b, ID, t0() + 30 * NS_PER_S, 50.0, &vec![3i32; 100]).unwrap();
    let archive = Archive::open(dir.path()).unwrap();
    assert!(matches!(archive, Archive::Folder { .. }));
    let raw = archive
        .read(ID, t0(), t0() + 40 * NS_PER_S)
        .unwrap()
        .unwrap();
    assert_eq!(raw.rate, 100.0);
    // The trace spans what the 100 Hz records cover: 0–25 s.
    assert_eq!(raw.start, t0());
    assert_eq!(raw.data.len(), 2500);
    assert!(raw.mask[..1000].iter().all(|&m| m));
    assert!(
        raw.mask[1000..1500].iter().all(|&m| !m),
        "the gap is masked"
    );
    assert!(raw.mask[1500..2500].iter().all(|&m| m));
    assert!(raw.data[2000..2500].iter().all(|&v| v == 1.0 || v == 7.0));
    assert_eq!(raw.data[1999], 1.0);
    let problems = raw.problems.join("\n");
    assert!(problems.contains("disagree"), "{problems}");
    assert!(problems.contains("50 Hz"), "{problems}");
    assert!(problems.contains("two.mseed"), "{problems}");
    // A channel the archive does not have.
    assert!(archive
        .read("XX.NONE..HHZ", t0(), t0() + NS_PER_S)
        .unwrap()
        .is_none());
    // The index is cached beside the data and reused.
    assert!(dir.path().join(".tmatch-index.json").is_file());
}

#[test]
fn bad_miniseed_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.mseed");
    mseed::write_steim2(&good, ID, t0(), 100.0, &vec![5i32; 3000]).unwrap();
    let bytes = fs::read(&good).unwrap();
    let cases: [(&str, Vec<u8>); 3] = [
        ("empty.mseed", Vec::new()),
        ("truncated.mseed", bytes[..bytes.len() - 300].to_vec()),
        (
            "text.mseed",
            b"this is not miniSEED at all, just some text".repeat(20),
        ),
    ];
    for (name, content) in cases {
        let p = dir.path().join(name);
        fs::write(&p, content).unwrap();
        let err = match mseed::read_records(&p) {
            Ok(r) => panic!("{name}: read {} records", r.len()),
            Err(e) => e.to_string(),
        };
        assert!(err.contains(name), "{err}");
    }
    // In an indexed folder, bad files are listed and the good one is read.
    let archive = Archive::open(dir.path()).unwrap();
    let bad: Vec<String> = archive
        .unreadable()
        .iter()
        .map(|u| u.path.display().to_string())
        .collect();
    assert!(bad.iter().any(|p| p.ends_with("empty.mseed")), "{bad:?}");
    assert!(bad.iter().any(|p| p.ends_with("text.mseed")), "{bad:?}");
    let raw = archive
        .read(ID, t0(), t0() + 30 * NS_PER_S)
        .unwrap()
        .unwrap();
    assert_eq!(raw.mask.iter().filter(|&&m| m).count(), 3000);
}

fn small_set() -> TemplateSet {
    let chan = |id: &str, pad: usize, k: f32| TemplateChannel {
        id: id.into(),
        phase: Phase::S,
        start: t0() + pad as i64 * 10_000_000,
        pad,
        weight: 1.0,
        data: (0..50).map(|i| (i as f32 * k).sin()).collect(),
        pick_offset: 100_000_000,
        noise_rms: Some(0.25 * k),
    };
    TemplateSet {
        recipe: Recipe {
            lowcut: Some(2.0),
            highcut: Some(8.0),
            order: 4,
            resample: Some(50.0),
        },
        rate: 50.0,
        len: 50,
        templates: vec![
            Template {
                event: Event {
                    id: "ev1".into(),
                    origin: t0() - 3 * NS_PER_S,
                    latitude: 46.0,
                    longitude: 8.0,
                    depth_km: 5.0,
                    magnitude: 2.1,
                },
                channels: vec![chan("XX.A..EHZ", 0, 0.3), chan("XX.B..EHZ", 12, 0.5)],
            },
            Template {
                event: Event {
                    id: "ev2".into(),
                    origin: t0(),
                    latitude: -1.0,
                    longitude: 2.0,
                    depth_km: 10.0,
                    magnitude: 0.5,
                },
                channels: vec![chan("XX.A..EHN", 0, 0.7)],
            },
        ],
    }
}

#[test]
fn templates_file_round_trip_and_version_check() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.h5");
    let set = small_set();
    templates::write(&set, &p).unwrap();
    let back = templates::read(&p).unwrap();
    assert_eq!(back, set);
    assert_eq!(back.checksum(), set.checksum());

    // A file of another format version is refused with a clear message.
    {
        let f = hdf5::File::open_rw(&p).unwrap();
        f.attr("format_version")
            .unwrap()
            .write_scalar(&99u32)
            .unwrap();
    }
    let err = templates::read(&p).unwrap_err().to_string();
    assert!(err.contains("t.h5") && err.contains("version 99"), "{err}");
    // And a file that is not a template file at all.
    let not = dir.path().join("not.h5");
    fs::write(&not, b"plain text").unwrap();
    let err = templates::read(&not).unwrap_err().to_string();
    assert!(err.contains("not.h5"), "{err}");
}

#[test]
fn detections_file_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("d.h5");
    let set = small_set();
    let det = |t: usize, s: i64, n: usize| Detection {
        template: t,
        time: t0() + s * NS_PER_S,
        cc_sum: 1.5,
        mean_cc: 0.75,
        threshold: 1.0,
        mad: 0.1,
        n_channels: n,
        channels: (0..n)
            .map(|c| ChannelPick {
                channel: c,
                cc: 0.7,
                best_cc: 0.8,
                best_lag: -1,
                lag: -0.75,
                amplitude: 3.5,
                peak: 9.0,
                noise_rms: Some(0.125),
            })
            .collect(),
    };
    let run = RunInfo {
        template_checksum: set.checksum(),
        parameters: r#"{"days":"2021-06-01..2021-06-04"}"#.into(),
        shard: None,
        template_shard: None,
    };
    let info = TemplateInfo::of(&set);
    let mut w = Writer::create(&p, &info, &run, "tmatch detect ...").unwrap();
    let day = epoch::day_of(t0());
    let status = |day, n| DayStatus {
        day,
        status: DayState::Done,
        n_detections: n,
        wall_s: 0.5,
        device: "cpu".into(),
        problems: String::new(),
    };
    w.write_day(&status(day, 2), &[det(0, 10, 2), det(1, 20, 1)])
        .unwrap();
    w.write_day(&status(day + 1, 0), &[]).unwrap();
    w.write_day(&status(day + 2, 1), &[det(0, 86400 * 2 + 5, 2)])
        .unwrap();
    drop(w);
    let d = output::read(&p).unwrap();
    assert_eq!(d.templates.ids, vec!["ev1", "ev2"]);
    assert_eq!(d.templates.origin_offsets, vec![3 * NS_PER_S, 0]);
    assert_eq!(d.run, run);
    assert_eq!(d.rows.len(), 3);
    assert_eq!(d.channels.len(), 5);
    assert_eq!(d.rows[2].first_channel_row, 3);
    assert_eq!(d.rows[1].time_ns, t0() + 20 * NS_PER_S);
    assert_eq!(d.days.len(), 3);
    assert_eq!(d.days[2].day, day + 2);
    let csv = output::to_csv(&d);
    assert_eq!(csv.lines().count(), 4);
    assert!(
        csv.contains("ev1,2021-06-01T12:00:10.000000Z,2021-06-01T12:00:07.000000Z,1.500000"),
        "{csv}"
    );

    // A day in flight when the process died: its detection rows are in the
    // file, its /days row is not. Reading ignores them; resuming drops them.
    {
        let f = hdf5::File::open_rw(&p).unwrap();
        let ds = f.dataset("detections").unwrap();
        let mut torn = d.rows[0].clone();
        torn.first_channel_row = 5;
        ds.resize(4).unwrap();
        ds.write_slice(&[torn], 3..4).unwrap();
        let days = f.dataset("days").unwrap();
        days.resize(4).unwrap(); // a /days row never written
    }
    assert_eq!(output::read(&p).unwrap().rows, d.rows);
    let other = RunInfo {
        parameters: r#"{"days":"2021-06-01"}"#.into(),
        ..run.clone()
    };
    let err = Writer::resume(&p, &other).err().unwrap().to_string();
    assert!(
        err.contains("other parameters") && err.contains("d.h5"),
        "{err}"
    );
    let (mut w, done) = Writer::resume(&p, &run).unwrap();
    assert_eq!(done, d.days);
    w.write_day(&status(day + 3, 1), &[det(1, 86400 * 3 + 7, 1)])
        .unwrap();
    drop(w);
    let resumed = output::read(&p).unwrap();
    assert_eq!(resumed.rows.len(), 4);
    assert_eq!(resumed.rows[3].first_channel_row, 5);
    assert_eq!(resumed.channels[5].detection, 3);
    assert_eq!(resumed.days.len(), 4);

    // Merging files of one run, days in any order, equals one file.
    let (a, b) = (dir.path().join("a.h5"), dir.path().join("b.h5"));
    let mut wa = Writer::create(&a, &info, &run, "a").unwrap();
    wa.write_day(&status(day + 1, 0), &[]).unwrap();
    wa.write_day(&status(day + 3, 1), &[det(1, 86400 * 3 + 7, 1)])
        .unwrap();
    drop(wa);
    let mut wb = Writer::create(&b, &info, &run, "b").unwrap();
    wb.write_day(&status(day, 2), &[det(0, 10, 2), det(1, 20, 1)])
        .unwrap();
    wb.write_day(&status(day + 2, 1), &[det(0, 86400 * 2 + 5, 2)])
        .unwrap();
    drop(wb);
    let m = dir.path().join("m.h5");
    let report = output::merge(&[a.clone(), b.clone()], &m, "merge").unwrap();
    assert_eq!((report.days, report.detections), (4, 4));
    assert!(report.missing.is_empty(), "{:?}", report.missing);
    let merged = output::read(&m).unwrap();
    assert_eq!(merged.rows, resumed.rows);
    assert_eq!(merged.channels, resumed.channels);
    let days = |d: &output::Detections| d.days.iter().map(|s| s.day).collect::<Vec<_>>();
    assert_eq!(days(&merged), days(&resumed));
    // A missing requested day is reported; a day twice and files of
    // another run are refused.
    let report =
        output::merge(std::slice::from_ref(&b), &dir.path().join("m2.h5"), "merge").unwrap();
    assert_eq!(report.missing, vec![day + 1, day + 3]);
    let err = output::merge(&[a.clone(), p.clone()], &dir.path().join("m3.h5"), "merge")
        .unwrap_err()
        .to_string();
    assert!(err.contains("twice") && err.contains("2021-06-02"), "{err}");
    let c = dir.path().join("c.h5");
    let foreign = RunInfo {
        template_checksum: run.template_checksum ^ 1,
        ..run.clone()
    };
    Writer::create(&c, &info, &foreign, "c").unwrap();
    let err = output::merge(&[a, c], &dir.path().join("m4.h5"), "merge")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("c.h5") && err.contains("another template set"),
        "{err}"
    );
}

#[test]
fn template_shard_files_merge_day_by_day_and_older_files_hold_all_templates() {
    let dir = tempfile::tempdir().unwrap();
    let set = small_set();
    let info = TemplateInfo::of(&set);
    let day = epoch::day_of(t0());
    let run = |template_shard: &str| RunInfo {
        template_checksum: set.checksum(),
        parameters: r#"{"days":"2021-06-01..2021-06-02"}"#.into(),
        shard: None,
        template_shard: (!template_shard.is_empty()).then(|| template_shard.parse().unwrap()),
    };
    // Channel picks numbered by the detection's own time, to follow them.
    let det = |t: usize, s: i64, n: usize| Detection {
        template: t,
        time: t0() + s * NS_PER_S,
        cc_sum: s as f32,
        mean_cc: 0.5,
        threshold: 1.0,
        mad: 0.1,
        n_channels: n,
        channels: (0..n)
            .map(|c| ChannelPick {
                channel: c,
                cc: s as f32,
                best_cc: 0.8,
                best_lag: c as i32,
                lag: c as f32 + 0.25,
                amplitude: 1.5 * s as f32,
                peak: 4.0,
                noise_rms: Some(0.5),
            })
            .collect(),
    };
    let status = |day, status: &str, wall_s, device: &str, problems: &str| DayStatus {
        day,
        status: status.parse().unwrap(),
        n_detections: 0,
        wall_s,
        device: device.into(),
        problems: problems.into(),
    };
    // Template 0 is shard 0/2's, template 1 shard 1/2's.
    let (a, b) = (dir.path().join("t0.h5"), dir.path().join("t1.h5"));
    let mut wa = Writer::create(&a, &info, &run("0/2"), "a").unwrap();
    wa.write_day(
        &status(
            day,
            "done",
            1.0,
            "cpu",
            "XX.A..HHZ: no data\ntemplate ev1: flat",
        ),
        &[det(0, 10, 2), det(0, 30, 1)],
    )
    .unwrap();
    wa.write_day(&status(day + 1, "failed", 0.5, "cpu", "boom"), &[])
        .unwrap();
    drop(wa);
    let mut wb = Writer::create(&b, &info, &run("1/2"), "b").unwrap();
    wb.write_day(
        &status(day, "done", 2.0, "cuda:0", "XX.A..HHZ: no data"),
        &[det(1, 10, 1), det(1, 20, 2)],
    )
    .unwrap();
    wb.write_day(
        &status(day + 1, "done", 0.25, "cpu", ""),
        &[det(1, 86400 + 4, 1)],
    )
    .unwrap();
    drop(wb);
    let m = dir.path().join("m.h5");
    let report = output::merge(&[b.clone(), a.clone()], &m, "merge").unwrap();
    assert_eq!((report.days, report.detections), (2, 5));
    assert!(report.missing.is_empty() && report.incomplete.is_empty());
    let merged = output::read(&m).unwrap();
    assert_eq!(merged.run, run(""));
    let by_time: Vec<(u32, i64)> = merged
        .rows
        .iter()
        .map(|r| (r.template, (r.time_ns - t0()) / NS_PER_S))
        .collect();
    assert_eq!(by_time, [(0, 10), (1, 10), (1, 20), (0, 30), (1, 86404)]);
    // Each row's channel rows follow it, renumbered.
    let mut at = 0;
    for (i, r) in merged.rows.iter().enumerate() {
        assert_eq!(r.first_channel_row, at);
        for c in &merged.channels[at as usize..(at + r.n_channel_rows as u64) as usize] {
            assert_eq!((c.detection, c.cc), (i as u64, r.cc_sum));
        }
        at += r.n_channel_rows as u64;
    }
    assert_eq!(at as usize, merged.channels.len());
    let d0 = &merged.days[0];
    assert_eq!(
        (
            d0.status.as_str(),
            d0.n_detections,
            d0.wall_s,
            d0.device.as_str()
        ),
        ("done", 4, 3.0, "cpu, cuda:0")
    );
    assert_eq!(d0.problems, "XX.A..HHZ: no data\ntemplate ev1: flat");
    let d1 = &merged.days[1];
    assert_eq!(
        (d1.status.as_str(), d1.n_detections, d1.problems.as_str()),
        ("failed", 1, "boom")
    );

    // A day with data in one template shard and none in the other: failed,
    // saying so.
    let (c, e) = (dir.path().join("c.h5"), dir.path().join("e.h5"));
    let mut wc = Writer::create(&c, &info, &run("0/2"), "c").unwrap();
    wc.write_day(&status(day, "no-data", 0.1, "cpu", ""), &[])
        .unwrap();
    drop(wc);
    let mut we = Writer::create(&e, &info, &run("1/2"), "e").unwrap();
    we.write_day(&status(day, "done", 0.1, "cpu", ""), &[det(1, 10, 1)])
        .unwrap();
    drop(we);
    let m2 = dir.path().join("m2.h5");
    output::merge(&[c.clone(), e.clone()], &m2, "merge").unwrap();
    let d = &output::read(&m2).unwrap().days[0];
    assert_eq!(d.status, "failed");
    assert!(
        d.problems.contains("template shards 0/2 found no data"),
        "{}",
        d.problems
    );
    // Only one of them: the day is reported, not written.
    let m3 = dir.path().join("m3.h5");
    let report = output::merge(std::slice::from_ref(&e), &m3, "merge").unwrap();
    assert_eq!(report.days, 0);
    assert_eq!(
        report.incomplete,
        vec![(day, vec!["0/2".parse::<tmatch::shard::Shard>().unwrap()])]
    );
    assert!(output::read(&m3).unwrap().days.is_empty());

    // A file from before template shards (no such attribute) holds all
    // templates: read, resumed and merged as such.
    let old = dir.path().join("old.h5");
    let mut w = Writer::create(&old, &info, &run(""), "old").unwrap();
    w.write_day(&status(day, "done", 0.1, "cpu", ""), &[det(0, 10, 2)])
        .unwrap();
    drop(w);
    hdf5::File::open_rw(&old)
        .unwrap()
        .delete_attr("template_shard")
        .unwrap();
    assert_eq!(output::read(&old).unwrap().run, run(""));
    let err = Writer::resume(&old, &run("0/2")).err().unwrap().to_string();
    assert!(
        err.contains("made for all templates, this run is for template shard 0/2"),
        "{err}"
    );
    let (_, done) = Writer::resume(&old, &run("")).unwrap();
    assert_eq!(done.len(), 1);
    let err = output::merge(
        &[old.clone(), a.clone()],
        &dir.path().join("m4.h5"),
        "merge",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("t0.h5") && err.contains("different counts"),
        "{err}"
    );
}

/// A finite recording is resampled over whole output samples from its
/// first sample: 1003 samples at 100 Hz give 400 at 40 Hz from 1000 (the
/// last 3 would stretch the time base), the first at the recording's start.
#[test]
fn a_recording_that_ends_in_the_window_keeps_its_time_base() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("x.mseed");
    let samples: Vec<i32> = (0..1003).map(|i| ((i * 7919) % 2001) - 1000).collect();
    mseed::write_steim2(&f, ID, t0(), 100.0, &samples).unwrap();
    let archive = Archive::open(dir.path()).unwrap();
    let recipe = Recipe {
        lowcut: None,
        highcut: None,
        order: 4,
        resample: Some(40.0),
    };
    let s = tmatch::stretch::load(
        &archive,
        &[ID.to_string()],
        &recipe,
        40.0,
        t0() - 10 * NS_PER_S,
        2000,
    );
    let c = &s.channels[0];
    assert_eq!(c.mask.iter().filter(|&&m| m).count(), 400);
    assert_eq!(
        s.start + s.channels[0].mask.iter().position(|&m| m).unwrap() as i64 * 25_000_000,
        t0()
    );
}
