//! Events and picks as CSV, streamed one event at a time.
//!
//! CSV is what spreadsheets, pandas and shell tools read without a
//! seismology library. Two files: one row per event, and one row per pick
//! that names its event by `event_id` (the same id as the QuakeML event's
//! resource id after `smi:local/`, see [`CatalogEvent::id`]).
//!
//! Times are ISO 8601 UTC with microseconds (`2012-09-02T03:20:05.860000Z`);
//! numbers are the shortest text that reads back to the same value (f32
//! values as f32); empty fields are missing values. Fields holding a comma,
//! a quote or a line break are quoted, quotes doubled (RFC 4180); lines end
//! in `\n`.

use std::io::{self, Write};

use super::{iso_time, py_f32, py_f64, CatalogEvent};

/// Columns of the events CSV, one row per event:
/// - `event_id`: `<template>_<detect time %Y%m%dT%H%M%S.%f>`;
/// - `template`: the template's id;
/// - `detect_time`: start of the template's earliest channel at the peak;
/// - `origin_time`, `latitude`, `longitude`, `depth_km`: the template's
///   hypocentre at the detection's origin time (degrees, km down);
/// - `detect_val`: the stacked correlation sum;
/// - `threshold`: the threshold it passed, in units of `detect_val`;
/// - `threshold_type`: `MAD`, `absolute` or `av_chan_corr`;
/// - `threshold_input`: the threshold as given;
/// - `n_channels`: channels in the stack;
/// - `template_magnitude`: the template's magnitude (empty if unknown);
/// - `magnitude_type`: its type (empty if unknown);
/// - `magnitude`: the relative magnitude (empty if none);
/// - `magnitude_n_channels`: channels that gave a Δm (empty if none);
/// - `magnitude_spread`: spread of the channel Δm (empty if none);
/// - `n_picks`: picks of the event (rows of the picks CSV).
pub const EVENT_COLUMNS: &[&str] = &[
    "event_id",
    "template",
    "detect_time",
    "origin_time",
    "latitude",
    "longitude",
    "depth_km",
    "detect_val",
    "threshold",
    "threshold_type",
    "threshold_input",
    "n_channels",
    "template_magnitude",
    "magnitude_type",
    "magnitude",
    "magnitude_n_channels",
    "magnitude_spread",
    "n_picks",
];

/// Columns of the picks CSV, one row per pick:
/// - `event_id`: the event's id, as in the events CSV;
/// - `seed_id`: `NET.STA.LOC.CHA`;
/// - `phase`: the phase hint;
/// - `time`: the pick time;
/// - `cc`: the correlation that placed the pick.
pub const PICK_COLUMNS: &[&str] = &["event_id", "seed_id", "phase", "time", "cc"];

/// Writes the events CSV: header at [`EventsCsvWriter::new`], one row per
/// [`EventsCsvWriter::write`]; columns [`EVENT_COLUMNS`].
pub struct EventsCsvWriter<W: Write> {
    w: W,
}

impl<W: Write> EventsCsvWriter<W> {
    pub fn new(mut w: W) -> io::Result<Self> {
        write_row(&mut w, EVENT_COLUMNS.iter().map(|s| s.to_string()))?;
        Ok(EventsCsvWriter { w })
    }

    pub fn write(&mut self, e: &CatalogEvent) -> io::Result<()> {
        self.write_rendered(&event_line(e))
    }

    /// Writes rows rendered by [`event_line`] (events can be rendered in
    /// parallel and written in order).
    pub fn write_rendered(&mut self, rows: &str) -> io::Result<()> {
        self.w.write_all(rows.as_bytes())
    }

    /// Flushes and gives the writer back.
    pub fn finish(mut self) -> io::Result<W> {
        self.w.flush()?;
        Ok(self.w)
    }
}

/// Writes the picks CSV: header at [`PicksCsvWriter::new`], one row per
/// pick of each event given to [`PicksCsvWriter::write`]; columns
/// [`PICK_COLUMNS`].
pub struct PicksCsvWriter<W: Write> {
    w: W,
}

impl<W: Write> PicksCsvWriter<W> {
    pub fn new(mut w: W) -> io::Result<Self> {
        write_row(&mut w, PICK_COLUMNS.iter().map(|s| s.to_string()))?;
        Ok(PicksCsvWriter { w })
    }

    pub fn write(&mut self, e: &CatalogEvent) -> io::Result<()> {
        self.write_rendered(&pick_lines(e))
    }

    /// Writes rows rendered by [`pick_lines`].
    pub fn write_rendered(&mut self, rows: &str) -> io::Result<()> {
        self.w.write_all(rows.as_bytes())
    }

    /// Flushes and gives the writer back.
    pub fn finish(mut self) -> io::Result<W> {
        self.w.flush()?;
        Ok(self.w)
    }
}

/// An event's row of the events CSV, with its line break.
pub fn event_line(e: &CatalogEvent) -> String {
    let mut out = Vec::new();
    write_row(&mut out, event_row(e)).expect("writing to memory");
    String::from_utf8(out).expect("UTF-8 fields")
}

/// An event's rows of the picks CSV, each with its line break.
pub fn pick_lines(e: &CatalogEvent) -> String {
    let id = e.id();
    let mut out = Vec::new();
    for p in &e.picks {
        let row = [
            id.clone(),
            p.seed_id.clone(),
            p.phase.clone(),
            iso_time(p.time),
            py_f32(p.cc),
        ];
        write_row(&mut out, row.into_iter()).expect("writing to memory");
    }
    String::from_utf8(out).expect("UTF-8 fields")
}

fn event_row(e: &CatalogEvent) -> impl Iterator<Item = String> {
    let m = e.magnitude.as_ref();
    [
        e.id(),
        e.template.clone(),
        iso_time(e.detect_time),
        iso_time(e.origin_time),
        py_f64(e.latitude),
        py_f64(e.longitude),
        py_f64(e.depth_km),
        py_f32(e.detect_val),
        py_f32(e.threshold),
        e.threshold_type.clone(),
        py_f64(e.threshold_input),
        e.n_channels.to_string(),
        e.template_magnitude.map(py_f64).unwrap_or_default(),
        e.magnitude_type.clone().unwrap_or_default(),
        m.map(|m| py_f64(m.value)).unwrap_or_default(),
        m.map(|m| m.n_channels.to_string()).unwrap_or_default(),
        m.map(|m| py_f64(m.spread)).unwrap_or_default(),
        e.picks.len().to_string(),
    ]
    .into_iter()
}

fn write_row<W: Write>(w: &mut W, fields: impl Iterator<Item = String>) -> io::Result<()> {
    let line: Vec<String> = fields.map(|f| quote(&f)).collect();
    writeln!(w, "{}", line.join(","))
}

/// RFC 4180 quoting, only where needed.
fn quote(f: &str) -> String {
    if f.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", f.replace('"', "\"\""))
    } else {
        f.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::quakeml::tests::sample_event;

    #[test]
    fn golden_events_csv() {
        let mut w = EventsCsvWriter::new(Vec::new()).unwrap();
        w.write(&sample_event()).unwrap();
        let mut e = sample_event();
        e.template = "odd,\"name\"".into();
        e.magnitude = None;
        e.template_magnitude = None;
        e.magnitude_type = None;
        w.write(&e).unwrap();
        let out = String::from_utf8(w.finish().unwrap()).unwrap();
        let want = "event_id,template,detect_time,origin_time,latitude,longitude,depth_km,\
detect_val,threshold,threshold_type,threshold_input,n_channels,template_magnitude,\
magnitude_type,magnitude,magnitude_n_channels,magnitude_spread,n_picks\n\
20120902032225.53_20120902T032005.860000,20120902032225.53,2012-09-02T03:20:05.860000Z,\
2012-09-02T03:20:02.620000Z,37.8,139.992,7.8,1.216141,0.62624,MAD,12.0,2,2.6,M,1.95,2,0.125,2\n\
\"odd,\"\"name\"\"_20120902T032005.860000\",\"odd,\"\"name\"\"\",2012-09-02T03:20:05.860000Z,\
2012-09-02T03:20:02.620000Z,37.8,139.992,7.8,1.216141,0.62624,MAD,12.0,2,,,,,,2\n";
        assert_eq!(out, want);
    }

    #[test]
    fn golden_picks_csv() {
        let mut w = PicksCsvWriter::new(Vec::new()).unwrap();
        w.write(&sample_event()).unwrap();
        let out = String::from_utf8(w.finish().unwrap()).unwrap();
        let want = "event_id,seed_id,phase,time,cc\n\
20120902032225.53_20120902T032005.860000,N.ATKH..EHE,S,2012-09-02T03:20:06.860000Z,0.75\n\
20120902032225.53_20120902T032005.860000,N.INWH..EHN,S,2012-09-02T03:20:10.035000Z,0.5123\n";
        assert_eq!(out, want);
    }
}
