//! Declustering across templates, as EQcorrscan 0.5.2's `Party.decluster`.
//!
//! Similar templates detect the same earthquake at nearly the same time;
//! a catalogue wants it once. Detections are ranked by a metric and taken
//! greedily, strongest first: one is kept unless an already kept one lies
//! within `trig_int` of it (and, with a hypocentral separation, closer than
//! that in space). Suppressed detections suppress nothing (no chaining).
//!
//! EQcorrscan compares every candidate with every kept one (quadratic); here
//! the kept ones sit in a set ordered by time, so each candidate looks only
//! at those within ±`trig_int`: O(n log n) time and O(n) memory, 10^7
//! candidates in seconds.

use std::collections::BTreeSet;

use super::{round_micros, Candidate, Decluster, Metric, TemplatePlace, Timing};

/// EQcorrscan's Earth radius for hypocentral distances (km).
const EARTH_RADIUS_KM: f64 = 6371.009;

/// Indices into `c` of the detections kept, sorted by (time, template,
/// index).
///
/// EQcorrscan's semantics (`tests/reference/hinet-catalog/README.md`):
/// - the metric ([`Metric`]) is computed in float32 (`cc_sum / n_channels`
///   and `cc_sum / threshold` as float32 divisions, as NumPy 2 does them);
///   candidates are ranked by descending |metric| whatever
///   `absolute_values` says (that flag changes only the values EQcorrscan
///   stores, so it does not change what is kept here);
/// - times ([`Timing`]; `Origin` adds the template's `origin_offset`) are
///   rounded to whole microseconds (half to even, as ObsPy's `datetime`),
///   and `trig_int` becomes `trunc(trig_int × 10^6)` µs;
/// - a candidate is dropped when a kept one has `|Δt| <= trig_int`
///   (inclusive) and, with `hypocentral_separation`, also
///   `distance < separation` (strict; [`distance_km`] in float32, the
///   separation as float32).
///
/// Ties, which EQcorrscan leaves to NumPy's unstable argsort: equal
/// |metric| → earlier time (the one compared) first, then lower template
/// index, then lower index into `c`. A NaN metric ranks first, as in
/// NumPy's reversed argsort. `places` is indexed by `Candidate::template`
/// and is needed only for `Timing::Origin` and the separation.
pub fn decluster(c: &[Candidate], places: &[TemplatePlace], opts: &Decluster) -> Vec<usize> {
    let times: Vec<i64> = c
        .iter()
        .map(|d| compared_time(d, places, opts.timing))
        .collect();
    let order = ranking(c, &times, opts.metric);
    let trig_us = (opts.trig_int * 1e6) as i64;
    let geo: Vec<Geo> = places.iter().map(Geo::of).collect();
    let sep = opts.hypocentral_separation.map(|s| s as f32);
    // (time, template, index): the template in the key spares a random
    // access into `c` for each neighbour looked at.
    let mut kept: BTreeSet<(i64, usize, usize)> = BTreeSet::new();
    for i in order {
        let (t, ti) = (times[i], c[i].template);
        let suppressed = trig_us >= 0
            && kept
                .range(
                    (t.saturating_sub(trig_us), 0, 0)
                        ..=(t.saturating_add(trig_us), usize::MAX, usize::MAX),
                )
                .any(|&(_, tj, _)| match sep {
                    None => true,
                    Some(s) => geo[ti].closer(&geo[tj], s),
                });
        if !suppressed {
            kept.insert((t, ti, i));
        }
    }
    let mut out: Vec<usize> = kept.into_iter().map(|(_, _, i)| i).collect();
    out.sort_by_key(|&i| (c[i].time, c[i].template, i));
    out
}

/// The time compared, in whole microseconds.
fn compared_time(d: &Candidate, places: &[TemplatePlace], timing: Timing) -> i64 {
    let t = match timing {
        Timing::Detect => d.time,
        Timing::Origin => d.time + places[d.template].origin_offset,
    };
    round_micros(t)
}

/// The float32 metric EQcorrscan ranks by.
fn metric(d: &Candidate, m: Metric) -> f32 {
    match m {
        Metric::AvgCor => d.cc_sum / d.n_channels as f32,
        Metric::CorSum => d.cc_sum,
        Metric::ThreshExc => d.cc_sum / d.threshold,
    }
}

/// Indices by descending |metric|, ties as [`decluster`] documents.
/// |metric| is non-negative, so its bits order as the float does (a NaN
/// above infinity); sorting plain tuples keeps the sort cache-friendly.
fn ranking(c: &[Candidate], times: &[i64], m: Metric) -> Vec<usize> {
    let mut keys: Vec<(u32, i64, usize, usize)> = c
        .iter()
        .enumerate()
        .map(|(i, d)| {
            (
                u32::MAX - metric(d, m).abs().to_bits(),
                times[i],
                d.template,
                i,
            )
        })
        .collect();
    keys.sort_unstable();
    keys.into_iter().map(|k| k.3).collect()
}

/// A hypocentre as EQcorrscan's `dist_mat_km` holds it: float32 radians
/// and kilometres.
#[derive(Clone, Copy)]
struct Geo {
    lat: f32,
    lon: f32,
    depth: f32,
    cos_lat: f64,
}

impl Geo {
    fn of(p: &TemplatePlace) -> Geo {
        let lat = p.latitude.to_radians() as f32;
        Geo {
            lat,
            lon: p.longitude.to_radians() as f32,
            depth: p.depth_km as f32,
            cos_lat: (lat as f64).cos(),
        }
    }

    /// Whether `km(o) < sep`. Pairs surely farther apart in depth or
    /// latitude alone (the central angle is at least |Δlat|) are answered
    /// without trigonometry; the margin keeps rounding on the safe side.
    fn closer(&self, o: &Geo, sep: f32) -> bool {
        let (dd, dlat) = (
            (self.depth - o.depth).abs(),
            (self.lat - o.lat).abs() as f64,
        );
        if dd >= sep || EARTH_RADIUS_KM * dlat > sep as f64 * 1.001 + 1e-3 {
            return false;
        }
        self.km(o) < sep
    }

    /// Haversine surface distance (float32 differences, double
    /// trigonometry, float32 result) combined with the depth difference.
    fn km(&self, o: &Geo) -> f32 {
        let (dlat, dlon, ddepth) = (self.lat - o.lat, self.lon - o.lon, self.depth - o.depth);
        let s_lat = ((dlat / 2.0) as f64).sin();
        let s_lon = ((dlon / 2.0) as f64).sin();
        let h = s_lat * s_lat + self.cos_lat * o.cos_lat * s_lon * s_lon;
        let surface = (EARTH_RADIUS_KM * 2.0 * h.sqrt().asin()) as f32 as f64;
        let dd = ddepth as f64;
        (surface * surface + dd * dd).sqrt() as f32
    }
}

/// Hypocentral distance in km between two templates as EQcorrscan's
/// `dist_mat_km` computes it (float32 inputs, R = 6371.009 km,
/// `sqrt(surface² + Δdepth²)`), returned as f64.
pub fn distance_km(a: &TemplatePlace, b: &TemplatePlace) -> f64 {
    Geo::of(a).km(&Geo::of(b)) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::epoch::{parse_time, NS_PER_S};
    use crate::events::iso_time;
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::{Path, PathBuf};

    fn cand(template: usize, t_s: f64, cc_sum: f32) -> Candidate {
        Candidate {
            row: 0,
            template,
            time: (t_s * 1e9).round() as i64,
            cc_sum,
            n_channels: 10,
            threshold: 5.0,
        }
    }

    fn place(lat: f64, lon: f64, depth_km: f64) -> TemplatePlace {
        TemplatePlace {
            latitude: lat,
            longitude: lon,
            depth_km,
            origin_offset: 0,
        }
    }

    fn opts(trig_int: f64, metric: Metric) -> Decluster {
        Decluster {
            trig_int,
            metric,
            timing: Timing::Detect,
            hypocentral_separation: None,
            absolute_values: false,
        }
    }

    #[test]
    fn window_is_inclusive_to_the_microsecond() {
        let places = vec![place(0.0, 0.0, 0.0); 2];
        let o = opts(1.0, Metric::CorSum);
        let c = vec![cand(0, 10.0, 5.0), cand(1, 11.0, 6.0)];
        assert_eq!(decluster(&c, &places, &o), vec![1]);
        let c = vec![cand(0, 10.0, 5.0), cand(1, 11.000001, 6.0)];
        assert_eq!(decluster(&c, &places, &o), vec![0, 1]);
        // 0.4 µs rounds away: still within.
        let c = vec![cand(0, 10.0, 5.0), cand(1, 11.0000004, 6.0)];
        assert_eq!(decluster(&c, &places, &o), vec![1]);
    }

    #[test]
    fn suppressed_ones_do_not_suppress() {
        let places = vec![place(0.0, 0.0, 0.0)];
        let c = vec![cand(0, 0.0, 3.0), cand(0, 1.0, 2.0), cand(0, 2.0, 1.0)];
        assert_eq!(
            decluster(&c, &places, &opts(1.0, Metric::CorSum)),
            vec![0, 2]
        );
        // A negative interval suppresses nothing.
        assert_eq!(
            decluster(&c, &places, &opts(-1.0, Metric::CorSum)),
            vec![0, 1, 2]
        );
        assert!(decluster(&[], &places, &opts(1.0, Metric::CorSum)).is_empty());
    }

    #[test]
    fn ties_go_to_the_earlier_then_the_lower_template() {
        let places = vec![place(0.0, 0.0, 0.0); 2];
        let o = opts(1.0, Metric::CorSum);
        let c = vec![cand(0, 10.5, 5.0), cand(1, 10.0, 5.0)];
        assert_eq!(decluster(&c, &places, &o), vec![1]);
        let c = vec![cand(1, 10.0, 5.0), cand(0, 10.0, 5.0)];
        assert_eq!(decluster(&c, &places, &o), vec![1]);
    }

    #[test]
    fn ranking_is_by_absolute_value() {
        let places = vec![place(0.0, 0.0, 0.0); 2];
        let c = vec![cand(0, 10.0, 3.0), cand(1, 10.5, -5.0)];
        for abs in [false, true] {
            let o = Decluster {
                absolute_values: abs,
                ..opts(1.0, Metric::CorSum)
            };
            assert_eq!(decluster(&c, &places, &o), vec![1]);
        }
    }

    #[test]
    fn metrics_rank_differently() {
        let places = vec![place(0.0, 0.0, 0.0); 2];
        let mut a = cand(0, 10.0, 10.0);
        a.n_channels = 20; // avg 0.5, exceeds 10/8 = 1.25
        a.threshold = 8.0;
        let mut b = cand(1, 10.5, 8.0);
        b.n_channels = 10; // avg 0.8, exceeds 8/6 = 1.33
        b.threshold = 6.0;
        let c = vec![a, b];
        assert_eq!(decluster(&c, &places, &opts(1.0, Metric::CorSum)), vec![0]);
        assert_eq!(decluster(&c, &places, &opts(1.0, Metric::AvgCor)), vec![1]);
        assert_eq!(
            decluster(&c, &places, &opts(1.0, Metric::ThreshExc)),
            vec![1]
        );
    }

    #[test]
    fn origin_timing_moves_by_the_offset() {
        let mut places = vec![place(0.0, 0.0, 0.0); 2];
        places[0].origin_offset = -3 * NS_PER_S;
        let c = vec![cand(0, 13.0, 5.0), cand(1, 10.5, 6.0)];
        let o = opts(1.0, Metric::CorSum);
        assert_eq!(decluster(&c, &places, &o), vec![1, 0]);
        let o = Decluster {
            timing: Timing::Origin,
            ..o
        };
        assert_eq!(decluster(&c, &places, &o), vec![1]);
    }

    #[test]
    fn separation_is_strict() {
        let places = vec![place(37.80, 139.99, 7.8), place(37.81, 139.99, 8.8)];
        let d = distance_km(&places[0], &places[1]);
        assert!((d - 1.4876).abs() < 0.01, "{d}");
        let c = vec![cand(0, 10.0, 5.0), cand(1, 10.5, 6.0)];
        let with = |s: f64| Decluster {
            hypocentral_separation: Some(s),
            ..opts(1.0, Metric::CorSum)
        };
        assert_eq!(decluster(&c, &places, &with(d)), vec![0, 1]);
        assert_eq!(decluster(&c, &places, &with(d + 1e-4)), vec![1]);
        // Same template: 0 km apart, always declustered.
        let c = vec![cand(0, 10.0, 5.0), cand(0, 10.5, 6.0)];
        assert_eq!(decluster(&c, &places, &with(1e-3)), vec![1]);
        assert_eq!(distance_km(&places[0], &places[0]), 0.0);
    }

    // ---- EQcorrscan reference (tests/reference/hinet-catalog) -------------

    fn manifest() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }

    fn rows(path: &Path) -> Vec<BTreeMap<String, String>> {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        let mut lines = text.lines();
        let head: Vec<String> = lines.next().unwrap().split(',').map(String::from).collect();
        lines
            .map(|l| {
                head.iter()
                    .cloned()
                    .zip(l.split(',').map(String::from))
                    .collect()
            })
            .collect()
    }

    /// Template ids (sorted) and places from the Hi-net catalogue: origin
    /// offset = origin − (earliest S pick − 1.0 s), as the templates were
    /// cut (scripts/peer_catalog.py).
    fn templates(catalog: &Path) -> (Vec<String>, Vec<TemplatePlace>) {
        let mut first_s: BTreeMap<String, i64> = BTreeMap::new();
        for r in rows(&catalog.join("picks.csv"))
            .iter()
            .filter(|r| r["phase"] == "S")
        {
            let t = parse_time(&r["time"]).unwrap();
            let e = first_s.entry(r["event_id"].clone()).or_insert(t);
            *e = (*e).min(t);
        }
        let mut out: Vec<(String, TemplatePlace)> = rows(&catalog.join("events.csv"))
            .iter()
            .filter(|r| first_s.contains_key(&r["event_id"]))
            .map(|r| {
                let origin = parse_time(&r["origin_time"]).unwrap();
                let start = first_s[&r["event_id"]] - NS_PER_S;
                let p = TemplatePlace {
                    latitude: r["latitude"].parse().unwrap(),
                    longitude: r["longitude"].parse().unwrap(),
                    depth_km: r["depth_km"].parse().unwrap(),
                    origin_offset: origin - start,
                };
                (r["event_id"].clone(), p)
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out.into_iter().unzip()
    }

    fn shared() -> Option<PathBuf> {
        let s = manifest().join("../shared");
        let need = [
            "reference/hinet-s4/detections.csv",
            "data/hinet-2012-09-02/catalog/events.csv",
        ];
        if need.iter().all(|p| s.join(p).exists()) {
            Some(s)
        } else {
            eprintln!(
                "skipped: {} lacks the Hi-net data and reference detections",
                s.display()
            );
            None
        }
    }

    fn candidates(path: &Path, ids: &[String]) -> Vec<Candidate> {
        rows(path)
            .iter()
            .enumerate()
            .map(|(row, r)| Candidate {
                row,
                template: ids.iter().position(|i| *i == r["template"]).unwrap(),
                time: parse_time(&r["detect_time"]).unwrap(),
                cc_sum: r["detect_val_cccsum"].parse().unwrap(),
                n_channels: r["no_chans"].parse().unwrap(),
                threshold: r["threshold"].parse().unwrap(),
            })
            .collect()
    }

    #[test]
    fn matches_eqcorrscan_decluster() {
        let Some(s) = shared() else { return };
        let (ids, places) = templates(&s.join("data/hinet-2012-09-02/catalog"));
        assert_eq!(ids.len(), 14);
        let c = candidates(&s.join("reference/hinet-s4/detections.csv"), &ids);
        assert_eq!(c.len(), 429);
        let cases = [
            (
                "detect_avg_cor_t1",
                1.0,
                Metric::AvgCor,
                Timing::Detect,
                None,
                144,
            ),
            (
                "detect_cor_sum_t1",
                1.0,
                Metric::CorSum,
                Timing::Detect,
                None,
                144,
            ),
            (
                "detect_avg_cor_t3",
                3.0,
                Metric::AvgCor,
                Timing::Detect,
                None,
                135,
            ),
            (
                "detect_cor_sum_t3",
                3.0,
                Metric::CorSum,
                Timing::Detect,
                None,
                135,
            ),
            (
                "detect_avg_cor_t10",
                10.0,
                Metric::AvgCor,
                Timing::Detect,
                None,
                93,
            ),
            (
                "detect_cor_sum_t10",
                10.0,
                Metric::CorSum,
                Timing::Detect,
                None,
                93,
            ),
            (
                "origin_avg_cor_t10",
                10.0,
                Metric::AvgCor,
                Timing::Origin,
                None,
                92,
            ),
            (
                "detect_avg_cor_t10_hyp1km",
                10.0,
                Metric::AvgCor,
                Timing::Detect,
                Some(1.0),
                138,
            ),
        ];
        let dir = manifest().join("tests/reference/hinet-catalog");
        for (name, trig_int, metric, timing, hyp, n) in cases {
            let o = Decluster {
                trig_int,
                metric,
                timing,
                hypocentral_separation: hyp,
                absolute_values: false,
            };
            let kept = decluster(&c, &places, &o);
            let got: BTreeSet<(String, String)> = kept
                .iter()
                .map(|&i| (ids[c[i].template].clone(), iso_time(c[i].time)))
                .collect();
            let want: BTreeSet<(String, String)> = rows(&dir.join(format!("decluster_{name}.csv")))
                .iter()
                .map(|r| (r["template"].clone(), r["detect_time"].clone()))
                .collect();
            assert_eq!(want.len(), n, "{name}");
            assert_eq!(got, want, "{name}");
            eprintln!("{name}: kept {} of 429 (EQcorrscan {n})", kept.len());
        }
    }

    #[test]
    fn matches_eqcorrscan_distances() {
        let Some(s) = shared() else { return };
        let (ids, places) = templates(&s.join("data/hinet-2012-09-02/catalog"));
        let dir = manifest().join("tests/reference/hinet-catalog");
        let refs = rows(&dir.join("template_distances_km.csv"));
        assert_eq!(refs.len(), 91);
        for r in refs {
            let a = ids.iter().position(|i| *i == r["template_a"]).unwrap();
            let b = ids.iter().position(|i| *i == r["template_b"]).unwrap();
            let want: f64 = r["km"].parse().unwrap();
            let got = distance_km(&places[a], &places[b]);
            assert!(
                (got - want).abs() < 1e-3,
                "{} {}: {got} vs {want}",
                ids[a],
                ids[b]
            );
        }
    }
}
