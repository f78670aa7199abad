//! A template's stacked trace over one day, with its thresholds and
//! detections.

use std::path::PathBuf;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{
    envelope, render, symmetric_range, text, title, DrawResult, Figure, Image, Run, DETECTION,
    STACK, THRESHOLD,
};
use crate::epoch::{self, Day};
use crate::error::Result;

/// What `tmatch plot day` draws.
#[derive(Debug, Clone)]
pub struct DayRequest {
    pub detections: PathBuf,
    /// The templates and archive of the run; by default those it records.
    pub templates: Option<PathBuf>,
    pub archive: Option<PathBuf>,
    /// The template's id.
    pub template: String,
    pub day: Day,
    pub image: Image,
}

/// Draw a template's day.
pub fn day(req: &DayRequest) -> Result<()> {
    let run = Run::open(
        &req.detections,
        req.templates.as_deref(),
        req.archive.as_deref(),
    )?;
    let ti = run.template_index(&req.template)?;
    let td = run.template_day(ti, req.day)?;
    let rate = run.set.rate;
    let midnight = epoch::day_start(req.day);
    let hours = |t: i64| (t - midnight) as f64 / 3.6e12;
    let detections: Vec<(f64, f64)> = run
        .reader
        .rows
        .iter()
        .filter(|r| r.template as usize == ti && epoch::day_of(r.time_ns) == req.day)
        .map(|r| (hours(r.time_ns), r.cc_sum as f64))
        .collect();
    let p = &run.params;
    let figure = DayFigure {
        title: format!(
            "{}: stacked trace on {}, {} detections; threshold ±{:.3} ({} {}, median |cc_sum| {:.4})",
            req.template,
            epoch::format_day(req.day),
            detections.len(),
            td.threshold,
            p.threshold_type,
            p.threshold,
            td.mad
        ),
        first_hour: hours(td.start) + td.day.start as f64 / rate / 3600.0,
        hours_per_sample: 1.0 / rate / 3600.0,
        stack: td.stack[td.day.clone()].to_vec(),
        threshold: td.threshold as f64,
        detections,
    };
    render(&req.image, &figure)
}

struct DayFigure {
    title: String,
    /// Hours from midnight of the first sample of `stack`.
    first_hour: f64,
    hours_per_sample: f64,
    /// The day's own lags.
    stack: Vec<f32>,
    threshold: f64,
    /// Hours from midnight and cc_sum.
    detections: Vec<(f64, f64)>,
}

impl Figure for DayFigure {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let area = root.titled(&self.title, title(16))?;
        let y = symmetric_range(self.stack.iter().copied(), self.threshold as f32);
        let mut chart = ChartBuilder::on(&area)
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..24.0, y)?;
        chart
            .configure_mesh()
            .light_line_style(TRANSPARENT)
            .x_labels(13)
            .x_label_formatter(&|h| format!("{h:.0}"))
            .x_desc("hours (UTC)")
            .y_desc("cc_sum")
            .label_style(text(13))
            .axis_desc_style(text(14))
            .draw()?;
        // One column of the envelope per pixel: every peak stays visible.
        let columns = chart.plotting_area().dim_in_pixel().0 as usize;
        let x = |i: usize| self.first_hour + i as f64 * self.hours_per_sample;
        let zigzag = envelope(&self.stack, columns)
            .into_iter()
            .flat_map(|(i, lo, hi)| [(x(i), lo as f64), (x(i), hi as f64)]);
        chart
            .draw_series(LineSeries::new(zigzag, STACK))?
            .label("stacked trace (min/max per pixel)")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], STACK));
        let thr = self.threshold;
        for (i, level) in [thr, -thr].into_iter().enumerate() {
            let style = THRESHOLD.stroke_width(2);
            let line = DashedLineSeries::new([(0.0, level), (24.0, level)], 8, 5, style);
            let s = chart.draw_series(line)?;
            if i == 0 {
                s.label(format!("threshold ±{thr:.3}"))
                    .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], style));
            }
        }
        let marks = self
            .detections
            .iter()
            .map(|&p| TriangleMarker::new(p, 7, DETECTION.filled()));
        chart
            .draw_series(marks)?
            .label("detections")
            .legend(|p| TriangleMarker::new(p, 6, DETECTION.filled()));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(text(12))
            .draw()
    }
}
