//! Hostile input: files that are damaged, empty, mislabelled, unreadable,
//! or mix sampling rates and conflicting samples are recorded in the day's
//! status with their reason and the run goes on; and miniSEED ingestion
//! survives corrupted, truncated and bit-flipped records without a panic, a
//! hang or an allocation a damaged header asks for.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use tmatch::archive::mseed;
use tmatch::epoch;

use crate::util::{build_templates, copy_dir, s, samples, skip};

const DAYS: &str = "2024-02-29..2024-03-01";

fn day_file(archive: &Path, id: &str, doy: u32) -> std::path::PathBuf {
    let p: Vec<&str> = id.split('.').collect();
    archive.join(format!(
        "2024/{}/{}/{}.D/{id}.D.2024.{doy:03}",
        p[0], p[1], p[3]
    ))
}

/// Run detect over the sample days as `user` (None: this process's user).
fn detect_as(
    user: Option<u32>,
    templates: &str,
    archive: &Path,
    out: &Path,
) -> std::process::Output {
    let bin = env!("CARGO_BIN_EXE_tmatch");
    let args = [
        "detect",
        "--templates",
        templates,
        "--archive",
        s(archive),
        "--days",
        DAYS,
        "-o",
        s(out),
    ];
    match user {
        None => Command::new(bin).args(args).output().unwrap(),
        Some(uid) => Command::new("setpriv")
            .args([
                &format!("--reuid={uid}"),
                &format!("--regid={uid}"),
                "--clear-groups",
                bin,
            ])
            .args(args)
            .output()
            .unwrap(),
    }
}

#[test]
fn bad_files_are_recorded_in_the_days_status_and_the_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let t = build_templates(dir.path(), &[]);
    let clean = samples().join("archive");
    let day2 = epoch::parse_time("2024-03-01T00:00:00Z").unwrap();
    let at = move |min: i64| day2 + min * 60 * epoch::NS_PER_S;

    // (what, the file it is in, damage, what its day's status must say)
    type Damage = Box<dyn Fn(&Path)>;
    let cases: Vec<(&str, &str, Damage, &str)> = vec![
        (
            "truncated",
            "XX.BRVO..EHN",
            Box::new(|f| {
                let b = fs::read(f).unwrap();
                fs::write(f, &b[..b.len() / 2 + 100]).unwrap();
            }),
            "truncated",
        ),
        (
            "damaged samples in a record",
            "XX.BRVO..EHZ",
            Box::new(|f| {
                let mut b = fs::read(f).unwrap();
                for i in (3000..3400).step_by(7) {
                    b[i] ^= 0x5a;
                }
                fs::write(f, b).unwrap();
            }),
            "Data integrity check for Steim2 failed",
        ),
        (
            "zero-length",
            "XX.CHRL..EHE",
            Box::new(|f| fs::write(f, b"").unwrap()),
            "empty file",
        ),
        (
            "another sampling rate in the channel",
            "XX.ALFA..EHZ",
            Box::new(move |f| {
                mseed::write_steim2(f, "XX.ALFA..EHZ", at(30), 20.0, &[5; 1200]).unwrap()
            }),
            "has sampling rate 20 Hz",
        ),
        (
            "overlapping records with other samples",
            "XX.ALFA..EHN",
            Box::new(move |f| {
                mseed::write_steim2(f, "XX.ALFA..EHN", at(20), 40.0, &[12345; 1200]).unwrap()
            }),
            "overlapping samples disagree",
        ),
        (
            "records of another channel",
            "XX.BRVO..EHE",
            Box::new(|f| {
                let other = f.to_str().unwrap().replace("EHE", "EHZ");
                fs::copy(other, f).unwrap();
            }),
            "holds records of XX.BRVO..EHZ (not XX.BRVO..EHE)",
        ),
        (
            "not miniSEED",
            "XX.CHRL..EHN",
            Box::new(|f| fs::write(f, "station,time\nCHRL,2024-03-01\n".repeat(40)).unwrap()),
            "XX.CHRL..EHN.D.2024.061",
        ),
    ];
    for (what, id, damage, reason) in &cases {
        let archive = dir.path().join("archive");
        let _ = fs::remove_dir_all(&archive);
        copy_dir(&clean, &archive);
        let bad = day_file(&archive, id, 61);
        damage(&bad);
        let out = dir.path().join("d.h5");
        let _ = fs::remove_file(&out);
        let r = detect_as(None, &t, &archive, &out);
        let log = String::from_utf8_lossy(&r.stderr);
        assert!(r.status.success(), "{what}: {log}");
        let d = tmatch::output::read(&out).unwrap();
        assert_eq!(d.days.len(), 2, "{what}");
        let status = &d.days[1];
        assert_eq!(status.status, "done", "{what}");
        let file = bad.file_name().unwrap().to_str().unwrap();
        assert!(
            status.problems.contains(file) && status.problems.contains(reason),
            "{what}: {status:?}"
        );
        // The day is still searched with the other channels.
        let found = d.rows.iter().filter(|r| r.time_ns >= day2).count();
        assert!(found >= 6, "{what}: {found} detections on the damaged day");
    }
}

#[test]
fn an_unreadable_file_is_recorded_and_the_run_goes_on() {
    // Permissions do not stop root: run as an ordinary user when root.
    let root = euid() == 0;
    if root && Command::new("setpriv").arg("--help").output().is_err() {
        return skip(
            "an_unreadable_file_is_recorded",
            "running as root without setpriv",
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let t = build_templates(dir.path(), &[]);
    let archive = dir.path().join("archive");
    copy_dir(&samples().join("archive"), &archive);
    for p in [Path::new(&t), dir.path()] {
        fs::set_permissions(p, fs::Permissions::from_mode(0o777)).unwrap();
    }
    let bad = day_file(&archive, "XX.ALFA..EHE", 60);
    fs::set_permissions(&bad, fs::Permissions::from_mode(0o000)).unwrap();
    let out = dir.path().join("d.h5");
    let r = detect_as(root.then_some(65534), &t, &archive, &out);
    let log = String::from_utf8_lossy(&r.stderr);
    if root && log.contains("setpriv") {
        return skip(
            "an_unreadable_file_is_recorded",
            &format!("setpriv failed: {log}"),
        );
    }
    assert!(r.status.success(), "{log}");
    let d = tmatch::output::read(&out).unwrap();
    assert!(
        d.days[0].problems.contains("XX.ALFA..EHE.D.2024.060")
            && d.days[0].problems.contains("ermission denied"),
        "{:?}",
        d.days[0]
    );
    assert_eq!(d.days[0].status, "done");
}

/// The effective user id, from /proc (no libc binding needed).
fn euid() -> u32 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
        })
        .and_then(|u| u.parse().ok())
        .unwrap_or(u32::MAX)
}

/// Valid miniSEED to damage: Steim2 records of two channels, in version 2
/// (512-byte records) and version 3.
fn seed_files() -> Vec<Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    let t0 = epoch::parse_time("2024-03-01T00:00:00Z").unwrap();
    let v2 = dir.path().join("v2.mseed");
    let ramp: Vec<i32> = (0..3000).map(|i| (i * 37 % 2001) - 1000).collect();
    mseed::write_steim2(&v2, "XX.FUZZ..HHZ", t0, 100.0, &ramp).unwrap();
    mseed::write_steim2(&v2, "XX.FUZZ..HHN", t0, 100.0, &ramp[..700]).unwrap();
    let mut v3 = Vec::new();
    let mut info = ::mseed::PackInfo::with_sample_rate("FDSN:XX_FUZZ__H_H_E", 100.0).unwrap();
    info.encoding = ::mseed::MSDataEncoding::Steim2;
    info.rec_len = 1024;
    ::mseed::pack_raw(
        &mut ramp.clone(),
        &epoch::to_offset_datetime(t0),
        |rec: &[u8]| v3.extend_from_slice(rec),
        &info,
        ::mseed::MSControlFlags::MSF_FLUSHDATA,
    )
    .unwrap();
    vec![fs::read(&v2).unwrap(), v3]
}

#[derive(Debug, Clone)]
enum Damage {
    /// Cut the file at this fraction of its length.
    Truncate(f64),
    /// Flip these bits (positions as fractions of the file's bits).
    Flip(Vec<f64>),
    /// Overwrite bytes from this fraction on with these.
    Overwrite(f64, Vec<u8>),
    /// Insert these bytes at this fraction.
    Insert(f64, Vec<u8>),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (0.0..1.0f64).prop_map(Damage::Truncate),
        prop::collection::vec(0.0..1.0f64, 1..16).prop_map(Damage::Flip),
        (0.0..1.0f64, prop::collection::vec(any::<u8>(), 1..64))
            .prop_map(|(at, b)| Damage::Overwrite(at, b)),
        (0.0..1.0f64, prop::collection::vec(any::<u8>(), 1..700))
            .prop_map(|(at, b)| Damage::Insert(at, b)),
    ]
}

fn apply(mut b: Vec<u8>, damages: &[Damage]) -> Vec<u8> {
    for d in damages {
        let at = |f: f64, n: usize| ((f * n as f64) as usize).min(n.saturating_sub(1));
        match d {
            Damage::Truncate(f) => b.truncate(at(*f, b.len())),
            Damage::Flip(bits) => {
                for &f in bits {
                    let i = at(f, b.len() * 8);
                    if let Some(byte) = b.get_mut(i / 8) {
                        *byte ^= 1 << (i % 8);
                    }
                }
            }
            Damage::Overwrite(f, bytes) => {
                let i = at(*f, b.len());
                for (k, &v) in bytes.iter().enumerate() {
                    if let Some(byte) = b.get_mut(i + k) {
                        *byte = v;
                    }
                }
            }
            Damage::Insert(f, bytes) => {
                let i = at(*f, b.len() + 1).min(b.len());
                b.splice(i..i, bytes.iter().copied());
            }
        }
    }
    b
}

proptest! {
    // 5,000 damaged files per run (each read both ways: about 2 s in a
    // release build); PROPTEST_CASES sets more for a longer fuzzing run.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(5000),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn damaged_miniseed_is_an_error_never_a_crash(
        which in 0..2usize,
        damages in prop::collection::vec(damage(), 1..4),
    ) {
        let seeds = seed_files_cached();
        let bytes = apply(seeds[which].clone(), &damages);
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("damaged.mseed");
        fs::write(&f, &bytes).unwrap();
        let t = Instant::now();
        let (records, err, _) = mseed::read_good_records(&f);
        let headers = mseed::read_headers(&f);
        // No hang: a few kilobytes take microseconds.
        prop_assert!(t.elapsed() < Duration::from_secs(5));
        // What is decoded is bounded by what the file holds: no encoding
        // gives more than two samples per byte.
        let samples: usize = records.iter().map(|r| r.samples.len()).sum();
        prop_assert!(samples <= 2 * bytes.len() + 64, "{} samples from {} bytes", samples, bytes.len());
        for r in &records {
            prop_assert!(r.rate.is_finite() && r.rate > 0.0);
        }
        if let Some(e) = err {
            prop_assert!(e.to_string().contains("damaged.mseed"), "{}", e);
        }
        if let Err(e) = headers {
            prop_assert!(e.to_string().contains("damaged.mseed"), "{}", e);
        }
    }
}

fn seed_files_cached() -> &'static Vec<Vec<u8>> {
    static SEEDS: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    SEEDS.get_or_init(seed_files)
}
