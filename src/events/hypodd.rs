//! hypoDD's cross-correlation differential times (`dt.cc`), the input of
//! double-difference relocation (hypoDD, GrowClust) for detections.
//!
//! A detection is a repeat of its template's earthquake, so each pick of
//! the detection against the same channel and phase of the template gives a
//! differential travel time. The file is a list of event pairs, each a
//! header line and one line per observation:
//!
//! ```text
//! #  ID1  ID2  OTC
//! STA  DT  WGHT  PHA
//! ```
//!
//! - `ID1`, `ID2`: integer ids of event 1 (here the detection) and event 2
//!   (the template), as in the event list given to hypoDD (`event.dat`)
//!   or GrowClust (`evlist`);
//! - `OTC`: origin-time correction, `0.0` here (the times below are
//!   already relative to each event's own origin);
//! - `STA`: station code (hypoDD reads up to 7 characters);
//! - `DT`: differential travel time in s, `(t1 − o1) − (t2 − o2)`: the
//!   detection's pick minus its origin time, minus the template's pick
//!   minus its origin time;
//! - `WGHT`: weight, the pick's correlation squared (EQcorrscan's
//!   `write_correlations` default, `weight_by_square`);
//! - `PHA`: `P` or `S` (the first letter of the phase hint).
//!
//! Both programs read the lines free-format. As EQcorrscan's writer, one
//! line per channel (a station with three picked components gives three
//! lines); times are written to 0.1 ms (EQcorrscan: 1 ms).

use std::io::{self, Write};

use super::{CatalogEvent, EventPick};
use crate::epoch::Nanos;

/// Writes the `dt.cc` lines of one detection–template pair and returns the
/// number of observations. A detection pick counts when the template has a
/// pick on the same seed id with the same phase (the earliest such one);
/// a pair without any observation writes nothing.
pub fn write_dt_cc<W: Write>(
    w: &mut W,
    detection_id: u64,
    template_id: u64,
    detection: &CatalogEvent,
    template_picks: &[EventPick],
    template_origin: Nanos,
) -> io::Result<usize> {
    let lines: Vec<String> = detection
        .picks
        .iter()
        .filter_map(|p| {
            let tp = template_pick(template_picks, p)?;
            let dt = (p.time - detection.origin_time) - (tp.time - template_origin);
            Some(observation(p, dt))
        })
        .collect();
    if lines.is_empty() {
        return Ok(0);
    }
    writeln!(w, "# {detection_id:>9} {template_id:>9} 0.0")?;
    for l in &lines {
        writeln!(w, "{l}")?;
    }
    Ok(lines.len())
}

/// The template's earliest pick on the same seed id and phase.
fn template_pick<'a>(picks: &'a [EventPick], p: &EventPick) -> Option<&'a EventPick> {
    picks
        .iter()
        .filter(|t| t.seed_id == p.seed_id && t.phase == p.phase)
        .min_by_key(|t| t.time)
}

/// `STA DT WGHT PHA` for a pick and its differential time in ns.
fn observation(p: &EventPick, dt: Nanos) -> String {
    let station = p.seed_id.split('.').nth(1).unwrap_or(&p.seed_id);
    let phase = p.phase.chars().next().unwrap_or('?');
    let weight = p.cc as f64 * p.cc as f64;
    format!("{station:<7} {:8.4} {weight:6.4} {phase}", dt as f64 / 1e9)
}

/// A line of hypoDD's `event.dat` (as `ph2dt` writes it): date
/// `YYYYMMDD`, time `HHMMSSss` (hundredths of a second), latitude,
/// longitude, depth (km), magnitude (0.0 when unknown), horizontal and
/// vertical errors and RMS residual (0.0: not known here), and the id.
pub fn event_line(
    id: u64,
    origin: Nanos,
    latitude: f64,
    longitude: f64,
    depth_km: f64,
    magnitude: f64,
) -> String {
    let t = crate::epoch::format_time(origin.div_euclid(10_000_000) * 10_000_000);
    // 2012-09-02T03:22:25.530000Z
    let date: String = t[..10].chars().filter(|c| *c != '-').collect();
    let time: String = t[11..22]
        .chars()
        .filter(|c| *c != ':' && *c != '.')
        .collect();
    let time = match time.trim_start_matches('0') {
        "" => "0",
        t => t,
    };
    let magnitude = if magnitude.is_finite() {
        magnitude
    } else {
        0.0
    };
    format!(
        "{date}  {time:>8}{latitude:10.4}{longitude:11.4}{depth_km:9.3}{magnitude:5.1}{:7.2}{:7.2}{:7.2}{id:11}",
        0.0, 0.0, 0.0
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::epoch::parse_time;
    use crate::events::quakeml::tests::sample_event;

    #[test]
    fn golden_dt_cc() {
        let t = |s: &str| parse_time(s).unwrap();
        let det = sample_event();
        let pick = |seed: &str, phase: &str, time: &str| EventPick {
            seed_id: seed.into(),
            phase: phase.into(),
            time: t(time),
            cc: 1.0,
        };
        // Template origin 03:22:25.53; its S picks 4.55 s and 7.71 s after.
        let template = vec![
            pick("N.ATKH..EHE", "S", "2012-09-02T03:22:30.08Z"),
            pick("N.ATKH..EHE", "P", "2012-09-02T03:22:28.00Z"),
            pick("N.INWH..EHN", "S", "2012-09-02T03:22:33.24Z"),
        ];
        let mut out = Vec::new();
        let n = write_dt_cc(
            &mut out,
            1000001,
            7,
            &det,
            &template,
            t("2012-09-02T03:22:25.53Z"),
        );
        assert_eq!(n.unwrap(), 2);
        // Detection origin 03:20:02.62: ATKH 4.24 s − 4.55 s, INWH 7.415 − 7.71.
        let want = "#   1000001         7 0.0\n\
ATKH     -0.3100 0.5625 S\n\
INWH     -0.2950 0.2625 S\n";
        assert_eq!(String::from_utf8(out).unwrap(), want);
        let mut out = Vec::new();
        let n = write_dt_cc(&mut out, 1, 2, &det, &template[1..2], 0).unwrap();
        assert_eq!((n, out.len()), (0, 0));
    }

    #[test]
    fn event_dat_lines_as_ph2dt_writes_them() {
        let t = crate::epoch::parse_time("2012-09-02T03:22:25.537Z").unwrap();
        assert_eq!(
            event_line(7, t, 37.8, 139.992, 7.8, 2.6),
            "20120902   3222553   37.8000   139.9920    7.800  2.6   0.00   0.00   0.00          7"
        );
        let midnight = crate::epoch::parse_time("2012-09-03T00:00:00Z").unwrap();
        let line = event_line(8, midnight, -1.0, -70.5, 0.0, f64::NAN);
        assert!(
            line.starts_with("20120903         0   -1.0000   -70.5000"),
            "{line}"
        );
        assert!(line.contains("  0.0   0.00"), "{line}");
    }
}
