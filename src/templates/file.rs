//! templates.h5: a self-describing, versioned HDF5 file.
//!
//! Root attributes: `format` = "tmatch-templates", `format_version`,
//! `sampling_rate`, `length` (samples per channel), and the processing recipe
//! (`lowcut`, `highcut` — NaN when absent —, `filter_order`,
//! `resample_rate` — NaN when the native rate is kept).
//! Datasets: `/templates` (one row per template), `/channels` (one row per
//! template channel, grouped by template in order), `/waveforms`
//! (channels × length, f32, processed amplitudes).

use std::path::Path;

use hdf5::types::VarLenUnicode;
use hdf5::H5Type;
use ndarray::Array2;

use super::{Template, TemplateChannel, TemplateSet};
use crate::catalog::Event;
use crate::error::{Error, Result, WithPath};
use crate::h5::{self, InFile};
use crate::preprocess::Recipe;

pub const FORMAT_VERSION: u32 = 2;
const FORMAT: &str = "tmatch-templates";

#[derive(H5Type, Clone, Debug)]
#[repr(C)]
struct TemplateRow {
    id: VarLenUnicode,
    origin_ns: i64,
    latitude: f64,
    longitude: f64,
    depth_km: f64,
    magnitude: f64,
    first_channel: u64,
    n_channels: u32,
}

#[derive(H5Type, Clone, Debug)]
#[repr(C)]
struct ChannelRow {
    template: u32,
    seed_id: VarLenUnicode,
    phase: VarLenUnicode,
    start_ns: i64,
    pad: u32,
    weight: f32,
    pick_offset_ns: i64,
    noise_rms: f32,
}

fn vlu(path: &Path, s: &str) -> Result<VarLenUnicode> {
    s.parse()
        .map_err(|e| Error::file(path, format!("bad string '{s}': {e}")))
}

fn opt(v: Option<f64>) -> f64 {
    v.unwrap_or(f64::NAN)
}

fn from_opt(v: f64) -> Option<f64> {
    (!v.is_nan()).then_some(v)
}

pub fn write(set: &TemplateSet, path: &Path) -> Result<()> {
    // Write beside the target and rename, so a failure never leaves a
    // half-written template file under the final name.
    let tmp = path.with_extension("h5.partial");
    let file = hdf5::File::create(&tmp).in_file(path)?;
    write_attrs(&file, set).in_file(path)?;

    let mut trows = Vec::new();
    let mut crows = Vec::new();
    let n_chan: usize = set.templates.iter().map(|t| t.channels.len()).sum();
    let mut wave = Array2::<f32>::zeros((n_chan, set.len));
    for (ti, t) in set.templates.iter().enumerate() {
        trows.push(TemplateRow {
            id: vlu(path, &t.event.id)?,
            origin_ns: t.event.origin,
            latitude: t.event.latitude,
            longitude: t.event.longitude,
            depth_km: t.event.depth_km,
            magnitude: t.event.magnitude,
            first_channel: crows.len() as u64,
            n_channels: t.channels.len() as u32,
        });
        for c in &t.channels {
            if c.data.len() != set.len {
                return Err(Error::Input(format!(
                    "template {} channel {} has {} samples, the set has {}",
                    t.event.id,
                    c.id,
                    c.data.len(),
                    set.len
                )));
            }
            wave.row_mut(crows.len())
                .assign(&ndarray::ArrayView1::from(&c.data));
            crows.push(ChannelRow {
                template: ti as u32,
                seed_id: vlu(path, &c.id)?,
                phase: vlu(path, &c.phase.to_string())?,
                start_ns: c.start,
                pad: c.pad as u32,
                weight: c.weight,
                pick_offset_ns: c.pick_offset,
                noise_rms: c.noise_rms.unwrap_or(f32::NAN),
            });
        }
    }
    file.new_dataset_builder()
        .with_data(&trows)
        .create("templates")
        .in_file(path)?;
    file.new_dataset_builder()
        .with_data(&crows)
        .create("channels")
        .in_file(path)?;
    let chunk_rows = n_chan.clamp(1, 256);
    file.new_dataset_builder()
        .with_data(&wave)
        .chunk((chunk_rows, set.len.max(1)))
        .deflate(4)
        .create("waveforms")
        .in_file(path)?;
    file.close().in_file(path)?;
    std::fs::rename(&tmp, path).at(path)
}

/// The root attributes: format, version, rate, length and recipe.
fn write_attrs(file: &hdf5::File, set: &TemplateSet) -> hdf5::Result<()> {
    h5::write_str_attr(file, "format", FORMAT)?;
    h5::write_attr(file, "format_version", &FORMAT_VERSION)?;
    h5::write_attr(file, "sampling_rate", &set.rate)?;
    h5::write_attr(file, "length", &(set.len as u64))?;
    h5::write_attr(file, "lowcut", &opt(set.recipe.lowcut))?;
    h5::write_attr(file, "highcut", &opt(set.recipe.highcut))?;
    h5::write_attr(file, "filter_order", &(set.recipe.order as u32))?;
    h5::write_attr(file, "resample_rate", &opt(set.recipe.resample))
}

pub fn read(path: &Path) -> Result<TemplateSet> {
    let file = open_checked(path)?;
    let f64_attr = |name: &str| h5::read_attr::<f64>(&file, name).in_file(path);
    let rate = f64_attr("sampling_rate")?;
    let len = h5::read_attr::<u64>(&file, "length").in_file(path)? as usize;
    let recipe = Recipe {
        lowcut: from_opt(f64_attr("lowcut")?),
        highcut: from_opt(f64_attr("highcut")?),
        order: h5::read_attr::<u32>(&file, "filter_order").in_file(path)? as usize,
        resample: from_opt(f64_attr("resample_rate")?),
    };
    let trows: Vec<TemplateRow> = h5::read_table(&file, "templates").in_file(path)?;
    let crows: Vec<ChannelRow> = h5::read_table(&file, "channels").in_file(path)?;
    let wave: Array2<f32> = file
        .dataset("waveforms")
        .and_then(|d| d.read_2d::<f32>())
        .in_file(path)?;
    if wave.nrows() != crows.len() || (wave.ncols() != len && !crows.is_empty()) {
        return Err(Error::file(
            path,
            "waveforms do not match the channel table",
        ));
    }
    let templates = trows
        .iter()
        .map(|r| template_of_rows(path, r, &crows, &wave))
        .collect::<Result<_>>()?;
    Ok(TemplateSet {
        recipe,
        rate,
        len,
        templates,
    })
}

/// Open a template file, refusing files that are not one or are of
/// another format version.
fn open_checked(path: &Path) -> Result<hdf5::File> {
    let file = hdf5::File::open(path).map_err(|e| Error::hdf5(path, "cannot open as HDF5", e))?;
    let format = h5::read_str_attr(&file, "format")
        .map_err(|_| Error::file(path, "not a tmatch template file (no 'format' attribute)"))?;
    if format != FORMAT {
        return Err(Error::file(
            path,
            format!("not a tmatch template file (format '{format}')"),
        ));
    }
    let version: u32 = h5::read_attr(&file, "format_version").in_file(path)?;
    if version != FORMAT_VERSION {
        return Err(Error::file(
            path,
            format!(
                "template file format version {version}; this tmatch reads version \
                 {FORMAT_VERSION}: rebuild the templates with this version"
            ),
        ));
    }
    Ok(file)
}

/// A template from its row, its channel rows and their waveforms.
fn template_of_rows(
    path: &Path,
    r: &TemplateRow,
    crows: &[ChannelRow],
    wave: &Array2<f32>,
) -> Result<Template> {
    let (a, n) = (r.first_channel as usize, r.n_channels as usize);
    let rows = crows.get(a..a + n).ok_or_else(|| {
        Error::file(
            path,
            format!("template {}: channel rows out of range", r.id),
        )
    })?;
    let channels = rows
        .iter()
        .enumerate()
        .map(|(i, c)| {
            Ok(TemplateChannel {
                id: c.seed_id.to_string(),
                phase: c.phase.parse().map_err(|e| {
                    Error::file(path, format!("template {}: {}: {e}", r.id, c.seed_id))
                })?,
                start: c.start_ns,
                pad: c.pad as usize,
                weight: c.weight,
                data: wave.row(a + i).to_vec(),
                pick_offset: c.pick_offset_ns,
                noise_rms: (!c.noise_rms.is_nan()).then_some(c.noise_rms),
            })
        })
        .collect::<Result<_>>()?;
    Ok(Template {
        event: Event {
            id: r.id.to_string(),
            origin: r.origin_ns,
            latitude: r.latitude,
            longitude: r.longitude,
            depth_km: r.depth_km,
            magnitude: r.magnitude,
        },
        channels,
    })
}
