//! A deterministic generator of small, realistic test archives: band-limited
//! noise on a few three-component stations, repeating earthquakes planted at
//! known times (P and S arrivals with travel times from the source-station
//! distance), one data gap, written as a Steim2 SDS archive with a catalog
//! of the first occurrence of each repeating source and a truth list of all
//! occurrences. `data-samples/` is made by it (`tmatch synth`).

use std::fs;
use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use sci_rs::signal::filter::design::Sos;
use sci_rs::signal::filter::sosfilt_dyn;

use crate::archive::mseed;
use crate::epoch::{self, Nanos, NS_PER_S};
use crate::error::{Result, WithPath};
use crate::preprocess::Recipe;

/// What to generate.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Stretches with data.
    pub windows: Vec<Window>,
    pub rate: f64,
    pub seed: u64,
    /// Noise standard deviation in counts.
    pub noise: f64,
    /// Planted occurrences. The first occurrence of each source is
    /// catalogued.
    pub events: Vec<Occurrence>,
    pub gaps: Vec<Gap>,
    pub stations: Vec<Station>,
    pub sources: Vec<Source>,
}

/// A stretch with data on every channel.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub start: Nanos,
    pub seconds: f64,
}

/// One occurrence of a source.
#[derive(Debug, Clone, Copy)]
pub struct Occurrence {
    /// Index into [`Spec::sources`].
    pub source: usize,
    pub origin: Nanos,
    /// Amplitude relative to the source's waveform.
    pub scale: f64,
}

/// Samples of one channel left out, `[start, end)`.
#[derive(Debug, Clone)]
pub struct Gap {
    pub channel: String,
    pub start: Nanos,
    pub end: Nanos,
}

/// A three-component station (components [`COMPONENTS`]).
#[derive(Debug, Clone)]
pub struct Station {
    pub code: String,
    pub east_km: f64,
    pub north_km: f64,
}

/// Where a repeating source lies.
#[derive(Debug, Clone, Copy)]
pub struct Source {
    pub east_km: f64,
    pub north_km: f64,
    pub depth_km: f64,
}

pub const NETWORK: &str = "XX";
pub const STATIONS: [(&str, f64, f64); 3] = [
    ("ALFA", 0.0, 0.0),
    ("BRVO", 18.0, 6.0),
    ("CHRL", 5.0, -16.0),
];
pub const COMPONENTS: [&str; 3] = ["EHZ", "EHN", "EHE"];
/// The sample sources: km east, km north, km depth.
const SOURCES: [(f64, f64, f64); 3] = [(6.0, 2.0, 8.0), (12.0, -6.0, 5.0), (-4.0, 9.0, 11.0)];
const VP: f64 = 6.0;
const VS: f64 = 3.5;

impl Spec {
    /// The sample archive: 2.5 hours at 40 Hz spanning the midnight of
    /// 2024-03-01, three sources repeating 14 times in all (one occurrence
    /// on the midnight itself), and a ten-minute gap on one channel.
    pub fn samples() -> Spec {
        let t = |s: &str| epoch::parse_time(s).expect("valid time");
        let occ = |source, origin, scale| Occurrence {
            source,
            origin: t(origin),
            scale,
        };
        Spec {
            windows: vec![Window {
                start: t("2024-02-29T23:00:00Z"),
                seconds: 2.5 * 3600.0,
            }],
            rate: 40.0,
            seed: 20240301,
            noise: 8.0,
            events: vec![
                occ(0, "2024-02-29T23:05:12.30Z", 1.0),
                occ(1, "2024-02-29T23:11:40.00Z", 1.0),
                occ(2, "2024-02-29T23:20:03.55Z", 1.0),
                occ(0, "2024-02-29T23:31:27.10Z", 0.6),
                occ(1, "2024-02-29T23:44:05.80Z", 0.35),
                occ(2, "2024-02-29T23:52:44.25Z", 0.8),
                occ(0, "2024-02-29T23:59:57.50Z", 0.7),
                occ(1, "2024-03-01T00:09:31.20Z", 1.4),
                occ(2, "2024-03-01T00:18:12.65Z", 0.5),
                occ(0, "2024-03-01T00:29:41.00Z", 0.3),
                occ(1, "2024-03-01T00:44:18.45Z", 0.9),
                occ(2, "2024-03-01T00:58:36.90Z", 0.45),
                occ(0, "2024-03-01T01:07:03.35Z", 1.2),
                occ(1, "2024-03-01T01:19:59.75Z", 0.55),
            ],
            gaps: vec![Gap {
                channel: format!("{NETWORK}.CHRL..EHZ"),
                start: t("2024-03-01T00:40:00Z"),
                end: t("2024-03-01T00:50:00Z"),
            }],
            stations: STATIONS
                .iter()
                .map(|&(code, east_km, north_km)| Station {
                    code: code.to_string(),
                    east_km,
                    north_km,
                })
                .collect(),
            sources: SOURCES
                .iter()
                .map(|&(east_km, north_km, depth_km)| Source {
                    east_km,
                    north_km,
                    depth_km,
                })
                .collect(),
        }
    }

    /// A benchmark workload at 100 Hz from `day` on: `n_days` days with
    /// data in their first `hours`, `n_stations` three-component stations on
    /// a circle, and `n_sources` sources at random places, each occurring
    /// three times with random amplitudes.
    pub fn workload(
        day: &str,
        n_days: usize,
        hours: f64,
        n_stations: usize,
        n_sources: usize,
        seed: u64,
    ) -> Spec {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let start = epoch::parse_time(&format!("{day}T00:00:00Z")).expect("valid day");
        let seconds = hours.clamp(0.1, 24.0) * 3600.0;
        let stations = (0..n_stations)
            .map(|i| {
                let a = i as f64 * std::f64::consts::TAU / n_stations as f64;
                Station {
                    code: format!("ST{i:02}"),
                    east_km: 25.0 * a.cos(),
                    north_km: 25.0 * a.sin(),
                }
            })
            .collect();
        let sources: Vec<Source> = (0..n_sources)
            .map(|_| Source {
                east_km: rng.gen_range(-15.0..15.0),
                north_km: rng.gen_range(-15.0..15.0),
                depth_km: rng.gen_range(3.0..15.0),
            })
            .collect();
        let mut events = Vec::new();
        for rep in 0..3 {
            for src in 0..n_sources {
                let day = if n_days > 1 {
                    rng.gen_range(0..n_days) as f64 * 86_400.0
                } else {
                    0.0
                };
                let t = day + rng.gen_range(60.0..seconds - 60.0);
                let scale = if rep == 0 {
                    1.0
                } else {
                    rng.gen_range(0.3..1.2)
                };
                events.push(Occurrence {
                    source: src,
                    origin: start + (t * 1e9) as i64,
                    scale,
                });
            }
        }
        Spec {
            windows: (0..n_days as i64)
                .map(|d| Window {
                    start: start + d * epoch::NS_PER_DAY,
                    seconds,
                })
                .collect(),
            rate: 100.0,
            seed,
            noise: 8.0,
            events,
            gaps: Vec::new(),
            stations,
            sources,
        }
    }
}

fn distance(spec: &Spec, src: usize, sta: usize) -> f64 {
    let (src, sta) = (&spec.sources[src], &spec.stations[sta]);
    ((src.east_km - sta.east_km).powi(2)
        + (src.north_km - sta.north_km).powi(2)
        + src.depth_km * src.depth_km)
        .sqrt()
}

/// P and S arrival times after the origin, in seconds.
pub fn travel_times(spec: &Spec, src: usize, sta: usize) -> (f64, f64) {
    let d = distance(spec, src, sta);
    (d / VP, d / VS)
}

/// A fourth-order Butterworth band-pass, designed as the recipes are.
fn bandpass(lo: f64, hi: f64, rate: f64) -> Vec<Sos<f64>> {
    Recipe {
        lowcut: Some(lo),
        highcut: Some(hi),
        order: 4,
        resample: None,
    }
    .design(rate)
    .expect("a band-pass recipe filters")
}

fn filtered_noise(rng: &mut ChaCha8Rng, n: usize, sos: &[Sos<f64>]) -> Vec<f64> {
    let normal = Normal::new(0.0, 1.0).expect("valid normal");
    let white: Vec<f64> = (0..n).map(|_| normal.sample(rng)).collect();
    let mut s = sos.to_vec();
    sosfilt_dyn(white.iter(), &mut s)
}

/// The waveform of a source at one channel: a P and an S wave train with a
/// fast rise and exponential coda, each a filtered noise burst fixed by the
/// seed (so every occurrence of a source looks the same).
fn source_waveform(spec: &Spec, src: usize, sta: usize, comp: usize) -> (f64, Vec<f64>) {
    let rate = spec.rate;
    let seed = spec.seed ^ ((src as u64) << 32) ^ ((sta as u64) << 16) ^ comp as u64;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (tp, ts) = travel_times(spec, src, sta);
    let dur = ts + 12.0;
    let n = (dur * rate) as usize;
    let sos = bandpass(2.0, 10.0_f64.min(rate * 0.45), rate);
    let p_burst = filtered_noise(&mut rng, n, &sos);
    let s_burst = filtered_noise(&mut rng, n, &sos);
    // P is strongest on the vertical, S on the horizontals.
    let (p_amp, s_amp) = if comp == 0 { (1.0, 0.6) } else { (0.4, 1.6) };
    let spread = 60.0 / distance(spec, src, sta).max(5.0);
    let env = |t: f64, onset: f64, decay: f64| {
        if t < onset {
            0.0
        } else {
            (1.0 - (-(t - onset) / 0.08).exp()) * (-(t - onset) / decay).exp()
        }
    };
    let w = (0..n)
        .map(|i| {
            let t = i as f64 / rate;
            spread
                * 10.0
                * (p_amp * env(t, tp, 1.2) * p_burst[i] + s_amp * env(t, ts, 2.5) * s_burst[i])
        })
        .collect();
    (dur, w)
}

/// Generate the archive under `out/archive` (SDS) with `out/picks.csv`,
/// `out/events.csv` and `out/truth.csv`.
pub fn generate(spec: &Spec, out: &Path) -> Result<()> {
    let archive = out.join("archive");
    if archive.exists() {
        fs::remove_dir_all(&archive).at(&archive)?;
    }
    let rate = spec.rate;
    let noise_sos = bandpass(0.5, (rate * 0.4).min(15.0), rate);
    let mut waveforms = std::collections::HashMap::new();
    for (si, sta) in spec.stations.iter().enumerate() {
        for (ci, cha) in COMPONENTS.iter().enumerate() {
            let id = format!("{NETWORK}.{}..{cha}", sta.code);
            for (wi, &Window { start, seconds }) in spec.windows.iter().enumerate() {
                let n = (seconds * rate).round() as usize;
                let seed = spec
                    .seed
                    .wrapping_add((si * 3 + ci) as u64 + 1 + 1000 * wi as u64);
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                // Filtered noise has a lower variance than its white input.
                let mut x = filtered_noise(&mut rng, n, &noise_sos);
                let rms = (x.iter().map(|v| v * v).sum::<f64>() / n as f64).sqrt();
                x.iter_mut().for_each(|v| *v *= spec.noise / rms);
                for &Occurrence {
                    source: src,
                    origin,
                    scale,
                } in &spec.events
                {
                    let w = waveforms
                        .entry((src, si, ci))
                        .or_insert_with(|| source_waveform(spec, src, si, ci).1);
                    let i0 = ((origin - start) as f64 * rate / 1e9).round() as i64;
                    for (i, v) in w.iter().enumerate() {
                        let j = i0 + i as i64;
                        if j >= 0 && (j as usize) < n {
                            x[j as usize] += scale * v;
                        }
                    }
                }
                // A slow drift and an offset, as real digitizers have.
                let offset = rng.gen_range(-500.0..500.0);
                let counts: Vec<i32> = x
                    .iter()
                    .enumerate()
                    .map(|(i, v)| {
                        (v + offset + 3.0 * (i as f64 / (600.0 * rate)).sin()).round() as i32
                    })
                    .collect();
                write_sds(spec, &archive, &id, start, &counts)?;
            }
        }
    }
    write_catalog(spec, out)
}

/// Write one stretch of a channel (its samples from `start` on) as SDS day
/// files, leaving out the spec's gaps.
fn write_sds(spec: &Spec, root: &Path, id: &str, start: Nanos, counts: &[i32]) -> Result<()> {
    let rate = spec.rate;
    let time = |i: usize| start + (i as f64 * 1e9 / rate).round() as i64;
    let index =
        |t: Nanos| (((t - start) as f64 * rate / 1e9).round().max(0.0) as usize).min(counts.len());
    // Pieces of contiguous data, cut at gaps and at midnights.
    let mut cuts = vec![0, counts.len()];
    for g in spec.gaps.iter().filter(|g| g.channel == id) {
        cuts.push(index(g.start));
        cuts.push(index(g.end));
    }
    let mut day = epoch::day_of(start) + 1;
    while epoch::day_start(day) < time(counts.len()) {
        cuts.push(index(epoch::day_start(day)));
        day += 1;
    }
    cuts.sort_unstable();
    cuts.dedup();
    let parts: Vec<&str> = id.split('.').collect();
    for w in cuts.windows(2) {
        let (a, b) = (w[0], w[1]);
        let t = time(a);
        let in_gap = spec
            .gaps
            .iter()
            .any(|g| g.channel == id && t >= g.start && t < g.end);
        if a == b || in_gap {
            continue;
        }
        let d = epoch::day_of(t);
        let name = epoch::format_day(d);
        let dir = root
            .join(&name[..4])
            .join(parts[0])
            .join(parts[1])
            .join(format!("{}.D", parts[3]));
        fs::create_dir_all(&dir).at(&dir)?;
        let file = dir.join(format!(
            "{id}.D.{}.{:03}",
            &name[..4],
            epoch::day_of_year(d)
        ));
        mseed::write_steim2(&file, id, t, rate, &counts[a..b])?;
    }
    Ok(())
}

fn write_catalog(spec: &Spec, out: &Path) -> Result<()> {
    let mut picks = String::from("event_id,network,station,location,channel,phase,time\n");
    let mut events = String::from("event_id,origin_time,latitude,longitude,depth_km,magnitude\n");
    let mut truth = String::from("event_id,source,origin_time,scale\n");
    let mut count = vec![0usize; spec.sources.len()];
    for &Occurrence {
        source: src,
        origin,
        scale,
    } in &spec.events
    {
        count[src] += 1;
        // A1, B1, … for up to 26 sources; S0001-1, … beyond.
        let ev = if spec.sources.len() <= 26 {
            format!("{}{}", (b'A' + src as u8) as char, count[src])
        } else {
            format!("S{src:04}-{}", count[src])
        };
        truth.push_str(&format!(
            "{ev},{src},{},{scale}\n",
            epoch::format_time(origin)
        ));
        if count[src] > 1 {
            continue;
        }
        let Source {
            east_km: x,
            north_km: y,
            depth_km: z,
        } = spec.sources[src];
        // Local flat-earth coordinates around 46.0 N, 8.0 E.
        let (lat, lon) = (
            46.0 + y / 111.19,
            8.0 + x / (111.19 * 46f64.to_radians().cos()),
        );
        events.push_str(&format!(
            "{ev},{},{lat:.4},{lon:.4},{z:.1},{:.1}\n",
            epoch::format_time(origin),
            1.5 + scale
        ));
        for (si, sta) in spec.stations.iter().enumerate() {
            let sta = &sta.code;
            let (tp, ts) = travel_times(spec, src, si);
            // Picks rounded to 0.01 s, as an analyst would give them.
            let at = |dt: f64| origin + ((dt * 100.0).round() as i64) * (NS_PER_S / 100);
            picks.push_str(&format!(
                "{ev},{NETWORK},{sta},,EHZ,P,{}\n",
                epoch::format_time(at(tp))
            ));
            for cha in ["EHN", "EHE"] {
                picks.push_str(&format!(
                    "{ev},{NETWORK},{sta},,{cha},S,{}\n",
                    epoch::format_time(at(ts))
                ));
            }
        }
    }
    for (name, text) in [
        ("picks.csv", picks),
        ("events.csv", events),
        ("truth.csv", truth),
    ] {
        let p = out.join(name);
        fs::write(&p, text).at(&p)?;
    }
    Ok(())
}
