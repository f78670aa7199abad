//! EQcorrscan template sets as they are: the gzipped tar that
//! `Tribe.write` makes.
//!
//! The archive holds, under one folder: `template_parameters.csv` (one line
//! per template of `key: value, ` pairs: name, lowcut, highcut, samp_rate,
//! filt_order, process_length, prepick), `tribe_cat.xml` (QuakeML; each
//! event's comment `eqcorrscan_template_<name>` ties it to its template)
//! and `<name>.ms` per template (miniSEED of the processed traces; a SEED
//! id may hold two traces, a P and an S window). Templates keep their
//! EQcorrscan names, each trace its start time (the moveouts), and the
//! processing is the set's recipe; a set whose templates differ in
//! processing, rate or length is refused.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use super::{Template, TemplateChannel, TemplateSet};
use crate::archive::mseed;
use crate::catalog::{self, Event, Phase};
use crate::epoch::Nanos;
use crate::error::{Error, Result, WithPath};
use crate::preprocess::Recipe;

/// One template's line of `template_parameters.csv`.
#[derive(Debug, Clone, PartialEq)]
struct Parameters {
    name: String,
    lowcut: Option<f64>,
    highcut: Option<f64>,
    samp_rate: f64,
    filt_order: usize,
    prepick: f64,
}

/// Read a `Tribe.write` archive as a template set.
pub fn import_tribe(path: &Path) -> Result<TemplateSet> {
    let files = unpack(path)?;
    let text = |name: &str| {
        files
            .iter()
            .find(|(n, _)| n.rsplit('/').next() == Some(name))
            .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
            .ok_or_else(|| Error::file(path, format!("no {name} in the archive")))
    };
    let params = parse_parameters(path, &text("template_parameters.csv")?)?;
    let common = check_common(path, &params)?;
    let work = tempfile::tempdir().at(std::env::temp_dir())?;
    let qml = work.path().join("tribe_cat.xml");
    std::fs::write(&qml, text("tribe_cat.xml")?).at(&qml)?;
    let cat = catalog::read_quakeml(&qml).map_err(|e| Error::file(path, e))?;
    let names = template_events(&qml)?;
    let mut templates = Vec::new();
    for p in &params {
        let ms = files
            .iter()
            .find(|(n, _)| n.rsplit('/').next() == Some(&format!("{}.ms", p.name)))
            .ok_or_else(|| Error::file(path, format!("no {}.ms in the archive", p.name)))?;
        let file = work.path().join(format!("{}.ms", p.name));
        std::fs::write(&file, &ms.1).at(&file)?;
        let event = names
            .get(&p.name)
            .and_then(|id| cat.events.get(id))
            .ok_or_else(|| {
                Error::file(
                    path,
                    format!("template {}: no event in tribe_cat.xml", p.name),
                )
            })?;
        let picks: Vec<&catalog::Pick> = cat
            .picks
            .iter()
            .filter(|k| k.event_id == event.id)
            .collect();
        let traces = mseed::read_records(&file).map_err(|e| Error::file(path, e))?;
        templates.push(template(path, p, event, &picks, traces)?);
    }
    let len = templates[0].channels[0].data.len();
    if let Some(t) = templates
        .iter()
        .find(|t| t.channels.iter().any(|c| c.data.len() != len))
    {
        return Err(Error::file(
            path,
            format!(
                "template {}: traces of other lengths than {len} samples; tmatch needs one length",
                t.event.id
            ),
        ));
    }
    Ok(TemplateSet {
        recipe: common.0,
        rate: common.1,
        len,
        templates,
    })
}

/// The archive's files, by name.
fn unpack(path: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let file = std::fs::File::open(path).at(path)?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut out = Vec::new();
    let bad =
        |e: std::io::Error| Error::file(path, format!("not a Tribe.write archive (.tgz): {e}"));
    for entry in tar.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = entry.path().map_err(bad)?.to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).map_err(bad)?;
        out.push((name, bytes));
    }
    Ok(out)
}

fn parse_parameters(path: &Path, text: &str) -> Result<Vec<Parameters>> {
    let mut out = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let fields: BTreeMap<&str, &str> = line
            .split(',')
            .filter_map(|kv| kv.split_once(':'))
            .map(|(k, v)| (k.trim(), v.trim()))
            .collect();
        let bad = |what: &str| {
            Error::file(
                path,
                format!("template_parameters.csv line {}: {what}", i + 1),
            )
        };
        let get = |k: &str| {
            fields
                .get(k)
                .copied()
                .ok_or_else(|| bad(&format!("no {k}")))
        };
        let num = |k: &str| -> Result<Option<f64>> {
            match get(k)? {
                "None" => Ok(None),
                v => v
                    .parse()
                    .map(Some)
                    .map_err(|_| bad(&format!("bad {k} '{v}'"))),
            }
        };
        out.push(Parameters {
            name: get("name")?.to_string(),
            lowcut: num("lowcut")?,
            highcut: num("highcut")?,
            samp_rate: num("samp_rate")?.ok_or_else(|| bad("no samp_rate"))?,
            filt_order: num("filt_order")?.unwrap_or(4.0) as usize,
            prepick: num("prepick")?.unwrap_or(0.0),
        });
    }
    if out.is_empty() {
        return Err(Error::file(path, "no templates in template_parameters.csv"));
    }
    Ok(out)
}

/// The processing and rate all templates share; a set that mixes them is
/// refused (tmatch correlates one recipe and rate per set).
fn check_common(path: &Path, params: &[Parameters]) -> Result<(Recipe, f64)> {
    let first = &params[0];
    let key = |p: &Parameters| (p.lowcut, p.highcut, p.filt_order, p.samp_rate);
    if let Some(p) = params.iter().find(|p| key(p) != key(first)) {
        return Err(Error::file(
            path,
            format!(
                "templates {} and {} differ in processing or sampling rate; split the set \
                 into one file per processing (EQcorrscan's Tribe.detect groups them the same way)",
                first.name, p.name
            ),
        ));
    }
    let recipe = Recipe {
        lowcut: first.lowcut,
        highcut: first.highcut,
        order: first.filt_order,
        resample: Some(first.samp_rate),
    };
    Ok((recipe, first.samp_rate))
}

/// Template name → event id, from the events' `eqcorrscan_template_<name>`
/// comments.
fn template_events(qml: &Path) -> Result<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(qml).at(qml)?;
    let doc =
        roxmltree::Document::parse(&text).map_err(|e| Error::file(qml, format!("not XML: {e}")))?;
    let mut out = BTreeMap::new();
    for ev in doc
        .descendants()
        .filter(|n| n.is_element() && n.tag_name().name() == "event")
    {
        let id = catalog::event_id(ev.attribute("publicID").unwrap_or(""));
        for text in ev
            .descendants()
            .filter(|n| n.is_element() && n.tag_name().name() == "text")
        {
            if let Some(name) = text
                .text()
                .and_then(|t| t.trim().strip_prefix("eqcorrscan_template_"))
            {
                out.insert(name.to_string(), id.clone());
            }
        }
    }
    Ok(out)
}

/// One template: its traces (records joined where contiguous) as channels,
/// each with the phase of the event's pick it was cut around.
fn template(
    path: &Path,
    p: &Parameters,
    event: &Event,
    picks: &[&catalog::Pick],
    records: Vec<mseed::Record>,
) -> Result<Template> {
    let prepick = (p.prepick * 1e9).round() as Nanos;
    let half = (0.5e9 / p.samp_rate) as Nanos;
    let mut traces: Vec<(String, Nanos, Vec<f32>)> = Vec::new();
    for r in records {
        if ((r.rate - p.samp_rate) / p.samp_rate).abs() > 1e-6 {
            return Err(Error::file(
                path,
                format!(
                    "template {}: {} at {} Hz, not {} Hz",
                    p.name, r.id, r.rate, p.samp_rate
                ),
            ));
        }
        let follows = traces.last().is_some_and(|(id, start, data)| {
            *id == r.id
                && (start + (data.len() as f64 * 1e9 / p.samp_rate) as Nanos - r.start).abs() < half
        });
        let data = r.samples.iter().map(|&v| v as f32);
        match traces.last_mut() {
            Some((_, _, d)) if follows => d.extend(data),
            _ => traces.push((r.id, r.start, data.collect())),
        }
    }
    let earliest = traces
        .iter()
        .map(|t| t.1)
        .min()
        .ok_or_else(|| Error::file(path, format!("template {}: no traces", p.name)))?;
    let channels = traces
        .into_iter()
        .map(|(id, start, data)| {
            let pick = start + prepick;
            // The pick the trace was cut around, else the component's
            // usual phase (as EQcorrscan's lag_calc guesses it).
            let phase = picks
                .iter()
                .filter(|k| k.seed_id() == id)
                .min_by_key(|k| (k.time - pick).abs())
                .filter(|k| (k.time - pick).abs() <= 2 * half)
                .and_then(|k| k.phase)
                .unwrap_or(if id.ends_with('Z') {
                    Phase::P
                } else {
                    Phase::S
                });
            TemplateChannel {
                pad: ((start - earliest) as f64 * p.samp_rate / 1e9).round() as usize,
                id,
                phase,
                start,
                weight: 1.0,
                data,
                pick_offset: prepick,
                noise_rms: None,
            }
        })
        .collect();
    Ok(Template {
        event: Event {
            id: p.name.clone(),
            ..event.clone()
        },
        channels,
    })
}
