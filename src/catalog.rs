//! Event catalogs: picks and events as CSV, or QuakeML.
//!
//! picks: `event_id,network,station,[location,]channel,phase,time`
//! events: `event_id,origin_time,latitude,longitude,depth_km,magnitude`
//! Columns are found by name; extra columns are ignored.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::path::Path;
use std::str::FromStr;

use crate::epoch::{self, Nanos};
use crate::error::{Error, Result, WithPath};

/// A seismic phase, as picks and template channels name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    P,
    S,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::P => "P",
            Phase::S => "S",
        }
    }

    /// The phase of a phase name by its first letter (`Pg`, `Sn`, `p`);
    /// `None` for other phases, which no template uses.
    pub fn of_name(name: &str) -> Option<Phase> {
        match name.trim().chars().next()?.to_ascii_uppercase() {
            'P' => Some(Phase::P),
            'S' => Some(Phase::S),
            _ => None,
        }
    }
}

impl FromStr for Phase {
    type Err = String;
    fn from_str(s: &str) -> Result<Phase, String> {
        match s {
            "P" => Ok(Phase::P),
            "S" => Ok(Phase::S),
            _ => Err(format!("unknown phase '{s}' (P or S)")),
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            Phase::P => "P",
            Phase::S => "S",
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Pick {
    pub event_id: String,
    pub network: String,
    pub station: String,
    pub location: String,
    /// SEED channel code; may hold `?` / `*` wildcards.
    pub channel: String,
    /// From the first letter of the phase name; `None` for phases other
    /// than P and S.
    pub phase: Option<Phase>,
    pub time: Nanos,
}

impl Pick {
    pub fn seed_id(&self) -> String {
        format!(
            "{}.{}.{}.{}",
            self.network, self.station, self.location, self.channel
        )
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: String,
    pub origin: Nanos,
    pub latitude: f64,
    pub longitude: f64,
    pub depth_km: f64,
    pub magnitude: f64,
}

#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub events: BTreeMap<String, Event>,
    pub picks: Vec<Pick>,
}

struct Csv {
    header: Vec<String>,
    rows: Vec<(usize, Vec<String>)>,
}

impl Csv {
    fn read(path: &Path) -> Result<Csv> {
        let text = fs::read_to_string(path).at(path)?;
        let mut lines = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty());
        let (_, head) = lines
            .next()
            .ok_or_else(|| Error::file(path, "empty CSV file"))?;
        let header = head
            .split(',')
            .map(|h| h.trim().to_ascii_lowercase())
            .collect();
        let rows = lines
            .map(|(i, l)| (i + 1, l.split(',').map(|f| f.trim().to_string()).collect()))
            .collect();
        Ok(Csv { header, rows })
    }

    fn col(&self, path: &Path, name: &str) -> Result<usize> {
        self.header.iter().position(|h| h == name).ok_or_else(|| {
            Error::file(
                path,
                format!("no '{name}' column (columns: {})", self.header.join(",")),
            )
        })
    }

    fn opt_col(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name)
    }
}

fn field<'a>(path: &Path, line: usize, row: &'a [String], i: usize) -> Result<&'a str> {
    row.get(i)
        .map(String::as_str)
        .ok_or_else(|| Error::file(path, format!("line {line}: too few columns")))
}

fn time_field(path: &Path, line: usize, s: &str) -> Result<Nanos> {
    epoch::parse_time(s).map_err(|e| Error::file(path, format!("line {line}: {e}")))
}

fn num_field(path: &Path, line: usize, s: &str, what: &str) -> Result<f64> {
    if s.is_empty() {
        return Ok(f64::NAN);
    }
    s.parse()
        .map_err(|_| Error::file(path, format!("line {line}: bad {what} '{s}'")))
}

pub fn read_picks_csv(path: &Path) -> Result<Vec<Pick>> {
    let csv = Csv::read(path)?;
    let ev = csv.col(path, "event_id")?;
    let net = csv.col(path, "network")?;
    let sta = csv.col(path, "station")?;
    let loc = csv.opt_col("location");
    let cha = csv.col(path, "channel")?;
    let ph = csv.col(path, "phase")?;
    let tm = csv.col(path, "time")?;
    let mut picks = Vec::new();
    for (line, row) in &csv.rows {
        let f = |i| field(path, *line, row, i);
        picks.push(Pick {
            event_id: f(ev)?.to_string(),
            network: f(net)?.to_string(),
            station: f(sta)?.to_string(),
            location: loc.map(f).transpose()?.unwrap_or("").replace("--", ""),
            channel: f(cha)?.to_string(),
            phase: Phase::of_name(f(ph)?),
            time: time_field(path, *line, f(tm)?)?,
        });
    }
    if picks.is_empty() {
        return Err(Error::file(path, "no picks"));
    }
    Ok(picks)
}

pub fn read_events_csv(path: &Path) -> Result<BTreeMap<String, Event>> {
    let csv = Csv::read(path)?;
    let id = csv.col(path, "event_id")?;
    let ot = csv.col(path, "origin_time")?;
    let lat = csv.opt_col("latitude");
    let lon = csv.opt_col("longitude");
    let dep = csv.opt_col("depth_km");
    let mag = csv.opt_col("magnitude");
    let mut events = BTreeMap::new();
    for (line, row) in &csv.rows {
        let f = |i| field(path, *line, row, i);
        let num = |i: Option<usize>, what| -> Result<f64> {
            i.map_or(Ok(f64::NAN), |i| num_field(path, *line, f(i)?, what))
        };
        let e = Event {
            id: f(id)?.to_string(),
            origin: time_field(path, *line, f(ot)?)?,
            latitude: num(lat, "latitude")?,
            longitude: num(lon, "longitude")?,
            depth_km: num(dep, "depth")?,
            magnitude: num(mag, "magnitude")?,
        };
        events.insert(e.id.clone(), e);
    }
    Ok(events)
}

/// Read a CSV catalog; events without a row in the events file get their
/// earliest pick as origin time and unknown location and magnitude.
pub fn read_csv(picks: &Path, events: Option<&Path>) -> Result<Catalog> {
    let picks = read_picks_csv(picks)?;
    let mut events = match events {
        Some(p) => read_events_csv(p)?,
        None => BTreeMap::new(),
    };
    for p in &picks {
        let e = events.entry(p.event_id.clone()).or_insert_with(|| Event {
            id: p.event_id.clone(),
            origin: p.time,
            latitude: f64::NAN,
            longitude: f64::NAN,
            depth_km: f64::NAN,
            magnitude: f64::NAN,
        });
        if e.latitude.is_nan() {
            e.origin = e.origin.min(p.time);
        }
    }
    Ok(Catalog { events, picks })
}

/// Read events, their preferred origin and magnitude, and picks from QuakeML.
pub fn read_quakeml(path: &Path) -> Result<Catalog> {
    let text = fs::read_to_string(path).at(path)?;
    let doc = roxmltree::Document::parse(&text)
        .map_err(|e| Error::file(path, format!("not XML: {e}")))?;
    let mut cat = Catalog::default();
    for ev in doc.descendants().filter(|n| is(n, "event")) {
        let event = event_of(path, ev)?;
        for p in ev.children().filter(|c| is(c, "pick")) {
            cat.picks.push(pick_of(path, &event.id, p)?);
        }
        cat.events.insert(event.id.clone(), event);
    }
    if cat.picks.is_empty() {
        return Err(Error::file(path, "no picks in the QuakeML file"));
    }
    Ok(cat)
}

type Node<'a, 'i> = roxmltree::Node<'a, 'i>;

fn is(n: &Node, name: &str) -> bool {
    n.is_element() && n.tag_name().name() == name
}

fn child<'a, 'i>(n: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    n.children().find(|c| is(c, name))
}

/// The text of `name` under `n`, or of its `value` where QuakeML wraps
/// quantities in one.
fn value(n: Option<Node>, name: &str) -> Option<String> {
    n.and_then(|n| child(n, name))
        .and_then(|v| child(v, "value").or(Some(v)))
        .and_then(|v| v.text())
        .map(|s| s.trim().to_string())
}

/// An event's id: the last part of its resource id.
pub fn event_id(public_id: &str) -> String {
    public_id.rsplit('/').next().unwrap_or("").to_string()
}

/// An event's id (the last part of its resource id), preferred origin and
/// magnitude (else the first).
fn event_of(path: &Path, ev: Node) -> Result<Event> {
    let id = event_id(ev.attribute("publicID").unwrap_or(""));
    let preferred = |kind: &str| {
        let preferred = child(ev, &format!("preferred{kind}ID")).and_then(|n| n.text());
        let all: Vec<_> = ev
            .children()
            .filter(|c| is(c, &kind.to_ascii_lowercase()))
            .collect();
        preferred
            .and_then(|p| {
                all.iter()
                    .copied()
                    .find(|n| n.attribute("publicID") == Some(p.trim()))
            })
            .or_else(|| all.first().copied())
    };
    let origin = preferred("Origin");
    let magnitude = preferred("Magnitude");
    let num = |s: Option<String>| s.and_then(|s| s.parse::<f64>().ok()).unwrap_or(f64::NAN);
    let otime = value(origin, "time")
        .ok_or_else(|| Error::file(path, format!("event '{id}' has no origin time")))?;
    Ok(Event {
        origin: epoch::parse_time(&otime).map_err(|e| Error::file(path, e))?,
        latitude: num(value(origin, "latitude")),
        longitude: num(value(origin, "longitude")),
        // QuakeML depths are in metres.
        depth_km: num(value(origin, "depth")) / 1000.0,
        magnitude: num(value(magnitude, "mag")),
        id,
    })
}

fn pick_of(path: &Path, event: &str, p: Node) -> Result<Pick> {
    let wid = child(p, "waveformID")
        .ok_or_else(|| Error::file(path, format!("event '{event}': pick without waveformID")))?;
    let t = value(Some(p), "time")
        .ok_or_else(|| Error::file(path, format!("event '{event}': pick without time")))?;
    let phase = child(p, "phaseHint").and_then(|n| n.text()).unwrap_or("");
    let attr = |name| wid.attribute(name).unwrap_or("").to_string();
    Ok(Pick {
        event_id: event.to_string(),
        network: attr("networkCode"),
        station: attr("stationCode"),
        location: attr("locationCode").replace("--", ""),
        channel: attr("channelCode"),
        phase: Phase::of_name(phase),
        time: epoch::parse_time(&t).map_err(|e| Error::file(path, e))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quakeml_events_origins_and_picks() {
        let xml = r#"<?xml version="1.0"?>
<q:quakeml xmlns="http://quakeml.org/xmlns/bed/1.2" xmlns:q="http://quakeml.org/xmlns/quakeml/1.2">
 <eventParameters publicID="smi:local/x">
  <event publicID="smi:local/event/ev7">
   <preferredOriginID>smi:local/o2</preferredOriginID>
   <origin publicID="smi:local/o1"><time><value>2020-01-01T00:00:00Z</value></time></origin>
   <origin publicID="smi:local/o2">
    <time><value>2020-01-01T00:00:01.5Z</value></time>
    <latitude><value>46.1</value></latitude><longitude><value>8.2</value></longitude>
    <depth><value>7500</value></depth>
   </origin>
   <magnitude publicID="smi:local/m"><mag><value>2.4</value></mag></magnitude>
   <pick publicID="smi:local/p1">
    <time><value>2020-01-01T00:00:03.25Z</value></time>
    <waveformID networkCode="XX" stationCode="AB" locationCode="00" channelCode="HHZ"/>
    <phaseHint>Pg</phaseHint>
   </pick>
  </event>
 </eventParameters>
</q:quakeml>"#;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.xml");
        fs::write(&p, xml).unwrap();
        let cat = read_quakeml(&p).unwrap();
        let e = &cat.events["ev7"];
        assert_eq!(
            e.origin,
            epoch::parse_time("2020-01-01T00:00:01.5Z").unwrap()
        );
        assert_eq!(
            (e.latitude, e.longitude, e.depth_km, e.magnitude),
            (46.1, 8.2, 7.5, 2.4)
        );
        assert_eq!(cat.picks.len(), 1);
        assert_eq!(cat.picks[0].seed_id(), "XX.AB.00.HHZ");
        assert_eq!(cat.picks[0].phase, Some(Phase::P));
        assert_eq!(
            cat.picks[0].time,
            epoch::parse_time("2020-01-01T00:00:03.25Z").unwrap()
        );
    }

    #[test]
    fn csv_errors_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("picks.csv");
        fs::write(
            &p,
            "event_id,network,station,channel,phase,time\ne1,XX,AB,HHZ,P,2020-13-01T00:00:00Z\n",
        )
        .unwrap();
        let err = read_picks_csv(&p).unwrap_err().to_string();
        assert!(err.contains("picks.csv") && err.contains("line 2"), "{err}");
        fs::write(&p, "event_id,station,channel,phase,time\n").unwrap();
        let err = read_picks_csv(&p).unwrap_err().to_string();
        assert!(err.contains("no 'network' column"), "{err}");
    }
}
