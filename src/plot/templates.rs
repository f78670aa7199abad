//! A template set: each template's channels at their moveouts after the
//! origin, labelled.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{render, text, title, DrawResult, Figure, Image, DATA};
use crate::epoch;
use crate::error::{Error, Result};
use crate::templates::{self as template_file, Template, TemplateChannel};

/// Draw the first `max_templates` templates of the file at `path`.
pub fn templates(path: &Path, max_templates: usize, image: &Image) -> Result<()> {
    if max_templates == 0 {
        return Err(Error::Input("--max-templates: at least 1".into()));
    }
    let set = template_file::read(path)?;
    let shown = &set.templates[..max_templates.min(set.templates.len())];
    let figure = TemplatesFigure {
        title: format!(
            "{}: {} templates of {} s at {} Hz{}",
            path.file_name().unwrap_or_default().to_string_lossy(),
            set.templates.len(),
            set.len as f64 / set.rate,
            set.rate,
            if shown.len() < set.templates.len() {
                format!(", the first {} shown", shown.len())
            } else {
                String::new()
            }
        ),
        panels: shown.iter().map(|t| panel(t, set.rate)).collect(),
    };
    render(image, &figure)
}

/// One template: its channels in order of moveout, each normalized to its
/// largest |value|, against seconds after the origin.
struct Panel {
    caption: String,
    /// Label and points, top to bottom.
    traces: Vec<(String, Vec<(f64, f64)>)>,
    span: std::ops::Range<f64>,
}

fn panel(t: &Template, rate: f64) -> Panel {
    let mut channels: Vec<_> = t.channels.iter().collect();
    channels.sort_by_key(|c| (c.pad, c.id.clone()));
    let after_origin = |c: &TemplateChannel| (c.start - t.event.origin) as f64 / 1e9;
    let traces: Vec<(String, Vec<(f64, f64)>)> = channels
        .iter()
        .map(|c| {
            let peak = c.data.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let peak = peak.max(f32::MIN_POSITIVE);
            let t0 = after_origin(c);
            let points = c
                .data
                .iter()
                .enumerate()
                .map(|(i, &v)| (t0 + i as f64 / rate, 0.45 * (v / peak) as f64))
                .collect();
            (format!("{} {}", c.id, c.phase), points)
        })
        .collect();
    let (lo, hi) = traces
        .iter()
        .flat_map(|(_, p)| [p.first(), p.last()])
        .flatten()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
            (a.min(p.0), b.max(p.0))
        });
    let pad = ((hi - lo) * 0.03).max(0.1);
    Panel {
        caption: format!(
            "{}  {}  M {:.1}",
            t.event.id,
            epoch::format_time(t.event.origin),
            t.event.magnitude
        ),
        traces,
        span: if lo < hi {
            lo - pad..hi + pad
        } else {
            0.0..1.0
        },
    }
}

struct TemplatesFigure {
    title: String,
    panels: Vec<Panel>,
}

/// Pixels left of each panel for the channel labels.
const LABEL_WIDTH: u32 = 130;

impl Figure for TemplatesFigure {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let area = root.titled(&self.title, title(16))?;
        let n = self.panels.len();
        let cols = (n as f64).sqrt().ceil().max(1.0) as usize;
        let rows = n.div_ceil(cols);
        let cells = area.split_evenly((rows, cols));
        for (p, cell) in self.panels.iter().zip(&cells) {
            draw_panel(root, cell, p)?;
        }
        Ok(())
    }
}

fn draw_panel<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    cell: &DrawingArea<DB, Shift>,
    p: &Panel,
) -> DrawResult<DB> {
    let n = p.traces.len();
    let mut chart = ChartBuilder::on(cell)
        .caption(&p.caption, text(13))
        .margin(6)
        .x_label_area_size(32)
        .y_label_area_size(LABEL_WIDTH)
        .build_cartesian_2d(p.span.clone(), -0.6..(n as f64 - 0.4))?;
    chart
        .configure_mesh()
        .light_line_style(TRANSPARENT)
        .disable_y_mesh()
        .y_labels(0)
        .x_labels(6)
        .x_desc("seconds after the origin")
        .label_style(text(11))
        .axis_desc_style(text(11))
        .draw()?;
    // Labels get smaller as channels crowd the panel.
    let row_px = chart.plotting_area().dim_in_pixel().1 / n.max(1) as u32;
    let size = row_px.clamp(7, 12);
    for (r, (label, points)) in p.traces.iter().enumerate() {
        let y0 = (n - 1 - r) as f64;
        chart.draw_series(LineSeries::new(
            points.iter().map(|&(x, y)| (x, y + y0)),
            DATA,
        ))?;
        let (px, py) = chart.backend_coord(&(p.span.start, y0));
        let anchor = Pos::new(HPos::Right, VPos::Center);
        root.draw(&Text::new(
            label.clone(),
            (px - 6, py),
            text(size).pos(anchor),
        ))?;
    }
    Ok(())
}
