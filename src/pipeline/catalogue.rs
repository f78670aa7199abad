//! From a detections file to a catalogue: declustering across templates,
//! picks and relative magnitudes from what detection measured, written as
//! QuakeML, CSV, EQcorrscan's detection file or hypoDD `dt.cc`.
//!
//! Memory stays bounded at any scale: only a small record per detection is
//! held (for declustering, which needs them all), channel rows are read
//! for the kept detections a chunk at a time, and events are streamed to
//! the writers in time order.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::detect::ThresholdType;
use crate::error::{Error, Result, WithPath};
use crate::events::measure::{self, ChannelAt, MagnitudeOptions, PickOptions};
use crate::events::{
    self, csv, eqcorrscan, hypodd, quakeml, Candidate, CatalogEvent, Decluster, EventPick,
    TemplatePlace,
};
use crate::output::{ChannelRow, Reader, RunParams};
use crate::preprocess::std_dev;
use crate::templates::{Template, TemplateSet};

/// The formats of a catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    QuakeMl,
    /// Events CSV, with a second file of picks.
    Csv,
    /// EQcorrscan's detection file (`read_detections` loads it).
    Eqcorrscan,
    /// hypoDD's `dt.cc`: differential times of each detection against its
    /// template's event.
    HypoDd,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Format, String> {
        match s.to_ascii_lowercase().as_str() {
            "quakeml" | "xml" | "qml" => Ok(Format::QuakeMl),
            "csv" => Ok(Format::Csv),
            "eqcorrscan" => Ok(Format::Eqcorrscan),
            "hypodd" | "dt.cc" => Ok(Format::HypoDd),
            _ => Err(format!(
                "unknown format '{s}' (quakeml, csv, eqcorrscan or hypodd)"
            )),
        }
    }
}

impl Format {
    /// The format a file name implies: `.xml`/`.qml`/`.quakeml`, `.csv`,
    /// `.cc` (as `dt.cc`); EQcorrscan's detection file has no extension of
    /// its own and is asked for with `--format`.
    pub fn of_path(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "xml" | "qml" | "quakeml" => Some(Format::QuakeMl),
            "csv" => Some(Format::Csv),
            "cc" => Some(Format::HypoDd),
            _ => None,
        }
    }
}

/// What `tmatch catalog` is asked for.
#[derive(Debug, Clone)]
pub struct CatalogueRequest {
    pub detections: PathBuf,
    pub templates: PathBuf,
    pub output: PathBuf,
    pub format: Format,
    /// Where the picks CSV goes (CSV only); by default next to the output,
    /// `<stem>_picks.csv`.
    pub picks_csv: Option<PathBuf>,
    pub decluster: Option<Decluster>,
    /// Detections with fewer channels are left out before declustering.
    pub min_channels: u32,
    pub picks: PickOptions,
    pub magnitudes: MagnitudeOptions,
}

/// What a catalogue run did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CatalogueReport {
    pub detections: usize,
    pub events: usize,
    pub picks: usize,
    pub magnitudes: usize,
    /// Files written.
    pub files: Vec<PathBuf>,
}

/// Kept detections whose channel rows are read together.
const CHUNK: usize = 1 << 14;

/// Make the catalogue.
pub fn catalogue(req: &CatalogueRequest) -> Result<CatalogueReport> {
    let reader = Reader::open(&req.detections)?;
    let set = crate::templates::read(&req.templates)?;
    check_templates(&req.detections, &reader, &req.templates, &set)?;
    let params = RunParams::from_json(&reader.run.parameters).unwrap_or_default();
    let places: Vec<TemplatePlace> = set.templates.iter().map(place).collect();
    let candidates: Vec<Candidate> = reader
        .rows
        .iter()
        .enumerate()
        .filter(|(_, r)| r.n_channels >= req.min_channels)
        .map(|(i, r)| Candidate {
            row: i,
            template: r.template as usize,
            time: r.time_ns,
            cc_sum: r.cc_sum,
            n_channels: r.n_channels,
            threshold: r.threshold,
        })
        .collect();
    let kept: Vec<usize> = match &req.decluster {
        Some(opts) => events::decluster(&candidates, &places, opts)
            .into_iter()
            .map(|i| candidates[i].row)
            .collect(),
        None => {
            let mut rows: Vec<usize> = candidates.iter().map(|c| c.row).collect();
            rows.sort_by_key(|&i| (reader.rows[i].time_ns, reader.rows[i].template, i));
            rows
        }
    };
    drop(candidates);
    let mut sink = Sink::create(req, &set)?;
    let mut report = CatalogueReport {
        detections: reader.rows.len(),
        ..Default::default()
    };
    let amplitudes = TemplateAmplitudes::of(&set);
    let context = Context {
        req,
        reader: &reader,
        set: &set,
        params: &params,
        amplitudes: &amplitudes,
    };
    for chunk in kept.chunks(CHUNK) {
        let channels = read_channels(&reader, chunk)?;
        // Events are made and rendered in parallel, written in order.
        let rendered: Vec<(Rendered, usize, bool)> = chunk
            .par_iter()
            .zip(&channels)
            .map(|(&row, rows)| {
                let event = context.event_of(row, rows);
                let ti = reader.rows[row].template as usize;
                let r = sink.render(&event, row, ti, &set.templates[ti]);
                (r, event.picks.len(), event.magnitude.is_some())
            })
            .collect();
        for (r, picks, magnitude) in rendered {
            (report.events, report.picks) = (report.events + 1, report.picks + picks);
            report.magnitudes += magnitude as usize;
            sink.write(&r).at(&req.output)?;
        }
    }
    report.files = sink.finish().at(&req.output)?;
    Ok(report)
}

/// The template file must be the one the detections were made with.
/// Check that `set`, read from `templates`, is the template set the
/// detections file at `detections` was made with.
pub fn check_templates(
    detections: &Path,
    reader: &Reader,
    templates: &Path,
    set: &TemplateSet,
) -> Result<()> {
    let ids: Vec<&str> = set.templates.iter().map(|t| t.event.id.as_str()).collect();
    if reader.run.template_checksum != set.checksum() || reader.templates.ids != ids {
        return Err(Error::file(
            templates,
            format!(
                "not the templates {} was detected with (checksum or template ids differ)",
                detections.display()
            ),
        ));
    }
    Ok(())
}

fn place(t: &Template) -> TemplatePlace {
    TemplatePlace {
        latitude: t.event.latitude,
        longitude: t.event.longitude,
        depth_km: t.event.depth_km,
        origin_offset: -t.origin_offset(),
    }
}

/// The channel rows of each of `rows` (detection rows): one read per run
/// of nearby rows, so that a chunk of a day's detections is one read.
fn read_channels(reader: &Reader, rows: &[usize]) -> Result<Vec<Vec<ChannelRow>>> {
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by_key(|&i| reader.channel_range(rows[i]).start);
    let mut out = vec![Vec::new(); rows.len()];
    let mut i = 0;
    while i < order.len() {
        // Join the ranges that follow with gaps of under CHUNK rows.
        let mut span: Range<usize> = reader.channel_range(rows[order[i]]);
        let mut j = i + 1;
        while j < order.len() {
            let r = reader.channel_range(rows[order[j]]);
            if r.start > span.end + CHUNK {
                break;
            }
            span.end = span.end.max(r.end);
            j += 1;
        }
        let read = reader.channels(span.clone())?;
        for &k in &order[i..j] {
            let r = reader.channel_range(rows[k]);
            out[k] = read[r.start - span.start..r.end - span.start].to_vec();
        }
        i = j;
    }
    Ok(out)
}

/// EQcorrscan's name of a threshold type.
fn eqcorrscan_threshold_type(t: ThresholdType) -> &'static str {
    match t {
        ThresholdType::Mad => "MAD",
        ThresholdType::Abs => "absolute",
        ThresholdType::AvChanCorr => "av_chan_corr",
    }
}

/// Each template channel's standard deviation and largest |value|,
/// which every detection's magnitudes compare with.
struct TemplateAmplitudes(Vec<Vec<(f32, f32)>>);

impl TemplateAmplitudes {
    fn of(set: &TemplateSet) -> TemplateAmplitudes {
        let of = |x: &[f32]| {
            let peak = x.iter().fold(0.0f32, |p, v| p.max(v.abs()));
            (std_dev(x) as f32, peak)
        };
        TemplateAmplitudes(
            set.templates
                .iter()
                .map(|t| t.channels.iter().map(|c| of(&c.data)).collect())
                .collect(),
        )
    }
}

/// What making an event of a detection row needs.
struct Context<'a> {
    req: &'a CatalogueRequest,
    reader: &'a Reader,
    set: &'a TemplateSet,
    params: &'a RunParams,
    amplitudes: &'a TemplateAmplitudes,
}

impl Context<'_> {
    /// Detection row `row` as an event, with its picks and magnitude.
    fn event_of(&self, row: usize, channels: &[ChannelRow]) -> CatalogEvent {
        let d = &self.reader.rows[row];
        let ti = d.template as usize;
        let t = &self.set.templates[ti];
        let at: Vec<ChannelAt> = channels
            .iter()
            .map(|c| self.channel_at(ti, d.time_ns, c))
            .collect();
        let magnitude = Some(t.event.magnitude).filter(|m| !m.is_nan());
        let (req, params) = (self.req, self.params);
        CatalogEvent {
            template: t.event.id.clone(),
            detect_time: d.time_ns,
            detect_val: d.cc_sum,
            threshold: d.threshold,
            threshold_type: eqcorrscan_threshold_type(params.threshold_type).to_string(),
            threshold_input: params.threshold,
            n_channels: d.n_channels,
            channels: channels
                .iter()
                .map(|c| station_channel(&t.channels[c.channel as usize].id))
                .collect(),
            origin_time: d.time_ns - t.origin_offset(),
            latitude: t.event.latitude,
            longitude: t.event.longitude,
            depth_km: t.event.depth_km,
            template_magnitude: magnitude,
            magnitude_type: None,
            magnitude: measure::relative_magnitude(magnitude, &at, &req.magnitudes),
            picks: measure::picks(&at, &req.picks),
        }
    }

    fn channel_at(&self, template: usize, time: i64, c: &ChannelRow) -> ChannelAt<'_> {
        let t = &self.set.templates[template];
        let tc = &t.channels[c.channel as usize];
        let (template_amplitude, template_peak) = self.amplitudes.0[template][c.channel as usize];
        ChannelAt {
            seed_id: &tc.id,
            phase: tc.phase.as_str(),
            at_zero_lag: time + (tc.start - t.start()) + tc.pick_offset,
            rate: self.set.rate,
            best_cc: c.best_cc,
            best_lag: c.best_lag,
            lag: c.lag,
            amplitude: c.amplitude,
            peak: c.peak,
            noise_rms: (!c.noise_rms.is_nan()).then_some(c.noise_rms),
            template_amplitude,
            template_peak,
            template_noise_rms: tc.noise_rms,
        }
    }
}

/// (station, channel) of a SEED id `NET.STA.LOC.CHA`.
fn station_channel(id: &str) -> (String, String) {
    let parts: Vec<&str> = id.split('.').collect();
    match parts.as_slice() {
        [_, sta, _, cha] => (sta.to_string(), cha.to_string()),
        _ => (id.to_string(), String::new()),
    }
}

/// The template's own picks: each channel's start plus its pick offset.
fn template_picks(t: &Template) -> Vec<EventPick> {
    t.channels
        .iter()
        .map(|c| EventPick {
            seed_id: c.id.clone(),
            phase: c.phase.as_str().to_string(),
            time: c.start + c.pick_offset,
            cc: 1.0,
        })
        .collect()
}

type Out = BufWriter<File>;

/// An event's text for the output file and, for CSV and hypoDD, the second
/// file (picks, `event.dat`).
type Rendered = [String; 2];

/// The writer of the chosen format.
enum Sink {
    QuakeMl(quakeml::QuakeMlWriter<Out>, PathBuf),
    Csv {
        events: csv::EventsCsvWriter<Out>,
        picks: csv::PicksCsvWriter<Out>,
        paths: [PathBuf; 2],
    },
    Eqcorrscan(eqcorrscan::DetectionsWriter<Out>, PathBuf),
    /// hypoDD ids: template `i` is `i + 1`, detection row `r` is
    /// `T + 1 + r` for `T` templates; `event.dat` beside it lists them.
    HypoDd {
        w: Out,
        events: Out,
        paths: [PathBuf; 2],
        n_templates: u64,
    },
}

fn create(path: &Path) -> Result<Out> {
    Ok(BufWriter::new(File::create(path).at(path)?))
}

impl Sink {
    fn create(req: &CatalogueRequest, set: &TemplateSet) -> Result<Sink> {
        let path = req.output.clone();
        let w = create(&path)?;
        Ok(match req.format {
            Format::QuakeMl => Sink::QuakeMl(quakeml::QuakeMlWriter::new(w).at(&path)?, path),
            Format::Csv => {
                let picks_path = req.picks_csv.clone().unwrap_or_else(|| picks_path(&path));
                let picks = csv::PicksCsvWriter::new(create(&picks_path)?).at(&picks_path)?;
                Sink::Csv {
                    events: csv::EventsCsvWriter::new(w).at(&path)?,
                    picks,
                    paths: [path, picks_path],
                }
            }
            Format::Eqcorrscan => {
                Sink::Eqcorrscan(eqcorrscan::DetectionsWriter::new(w).at(&path)?, path)
            }
            Format::HypoDd => {
                let events_path = path.with_file_name("event.dat");
                let mut events = create(&events_path)?;
                for (i, t) in set.templates.iter().enumerate() {
                    let e = &t.event;
                    let line = hypodd::event_line(
                        i as u64 + 1,
                        e.origin,
                        e.latitude,
                        e.longitude,
                        e.depth_km,
                        e.magnitude,
                    );
                    writeln!(events, "{line}").at(&events_path)?;
                }
                Sink::HypoDd {
                    w,
                    events,
                    paths: [path, events_path],
                    n_templates: set.templates.len() as u64,
                }
            }
        })
    }

    /// The text an event adds to the output file(s).
    fn render(&self, e: &CatalogEvent, row: usize, template: usize, t: &Template) -> Rendered {
        match self {
            Sink::QuakeMl(..) => [quakeml::event_xml(e), String::new()],
            Sink::Csv { .. } => [csv::event_line(e), csv::pick_lines(e)],
            Sink::Eqcorrscan(..) => [eqcorrscan::detection_line(e), String::new()],
            Sink::HypoDd { n_templates, .. } => {
                let id = n_templates + 1 + row as u64;
                let magnitude = e.magnitude.as_ref().map_or(f64::NAN, |m| m.value);
                let event = hypodd::event_line(
                    id,
                    e.origin_time,
                    e.latitude,
                    e.longitude,
                    e.depth_km,
                    magnitude,
                );
                let mut dt = Vec::new();
                let (tid, origin) = (template as u64 + 1, t.event.origin);
                hypodd::write_dt_cc(&mut dt, id, tid, e, &template_picks(t), origin)
                    .expect("writing to memory");
                [String::from_utf8(dt).expect("UTF-8"), format!("{event}\n")]
            }
        }
    }

    fn write(&mut self, r: &Rendered) -> std::io::Result<()> {
        match self {
            Sink::QuakeMl(w, _) => w.write_rendered(&r[0]),
            Sink::Csv { events, picks, .. } => {
                events.write_rendered(&r[0])?;
                picks.write_rendered(&r[1])
            }
            Sink::Eqcorrscan(w, _) => w.write_rendered(&r[0]),
            Sink::HypoDd { w, events, .. } => {
                w.write_all(r[0].as_bytes())?;
                events.write_all(r[1].as_bytes())
            }
        }
    }

    fn finish(self) -> std::io::Result<Vec<PathBuf>> {
        let flush = |w: Out| w.into_inner().map_err(|e| e.into_error())?.sync_all();
        match self {
            Sink::QuakeMl(w, p) => flush(w.finish()?).map(|_| vec![p]),
            Sink::Csv {
                events,
                picks,
                paths,
            } => {
                flush(events.finish()?)?;
                flush(picks.finish()?)?;
                Ok(paths.to_vec())
            }
            Sink::Eqcorrscan(w, p) => flush(w.finish()?).map(|_| vec![p]),
            Sink::HypoDd {
                w, events, paths, ..
            } => {
                flush(w)?;
                flush(events)?;
                Ok(paths.to_vec())
            }
        }
    }
}

/// `events.csv` → `events_picks.csv`.
fn picks_path(events: &Path) -> PathBuf {
    let stem = events
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("events");
    events.with_file_name(format!("{stem}_picks.csv"))
}
