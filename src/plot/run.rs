//! A run at a glance: detections per template and day (or hour, for runs
//! of up to three days) as a heat map with a colour bar, and the
//! distribution of |cc_sum| / threshold over all detections.

use std::ops::Range;
use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::colors::colormaps::{ColorMap, ViridisRGB};
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{render, run_params, text, title, DrawResult, Figure, Image, STACK, THRESHOLD};
use crate::epoch::{self, Day, Nanos, NS_PER_DAY};
use crate::error::{Error, Result};
use crate::output::{DayState, Reader};

/// Pixels left of the heat map for the template ids.
const LABEL_WIDTH: u32 = 170;

/// Runs of at most this many days are binned by hour.
const HOURLY_UP_TO_DAYS: i64 = 3;

/// Draw the run of the detections file at `detections`.
pub fn run(detections: &Path, image: &Image) -> Result<()> {
    let reader = Reader::open(detections)?;
    let Some(days) = span(&reader) else {
        return Err(Error::file(detections, "no completed day to plot"));
    };
    let (params, _) = run_params(&reader);
    let bins = Bins::new(days.clone());
    let mut counts = vec![vec![0u32; bins.n]; reader.templates.ids.len()];
    for r in &reader.rows {
        if let Some(b) = bins.of(r.time_ns) {
            counts[r.template as usize][b] += 1;
        }
    }
    let rows: Vec<(String, Vec<u32>)> = reader
        .templates
        .ids
        .iter()
        .cloned()
        .zip(counts)
        .filter(|(_, c)| c.iter().any(|&v| v > 0))
        .collect();
    let ratios = reader
        .rows
        .iter()
        .filter(|r| r.threshold > 0.0)
        .map(|r| (r.cc_sum / r.threshold).abs() as f64)
        .collect();
    let figure = RunFigure {
        title: format!(
            "{}: {} detections of {} templates over {} days (threshold {} {})",
            detections.file_name().unwrap_or_default().to_string_lossy(),
            reader.rows.len(),
            rows.len(),
            days.end - days.start,
            params.threshold_type,
            params.threshold
        ),
        bins,
        rows,
        ratios,
    };
    render(image, &figure)
}

/// The days the file covers: from its first completed day to its last.
fn span(reader: &Reader) -> Option<Range<Day>> {
    let days = reader.days.iter().filter(|d| d.status != DayState::Failed);
    let first = days.clone().map(|d| d.day).min()?;
    let last = days.map(|d| d.day).max()?;
    Some(first..last + 1)
}

/// Equal bins of time from midnight of the first day.
struct Bins {
    start: Nanos,
    width: Nanos,
    n: usize,
    hourly: bool,
}

impl Bins {
    fn new(days: Range<Day>) -> Bins {
        let n_days = (days.end - days.start) as usize;
        let hourly = days.end - days.start <= HOURLY_UP_TO_DAYS;
        Bins {
            start: epoch::day_start(days.start),
            width: if hourly { NS_PER_DAY / 24 } else { NS_PER_DAY },
            n: if hourly { n_days * 24 } else { n_days },
            hourly,
        }
    }

    fn of(&self, t: Nanos) -> Option<usize> {
        let b = (t - self.start).div_euclid(self.width);
        (0..self.n as i64).contains(&b).then_some(b as usize)
    }

    /// The label of the bin at `x` (bins from the start).
    fn label(&self, x: f64) -> String {
        let t = self.start + (x * self.width as f64).round() as Nanos;
        let day = epoch::format_day(epoch::day_of(t));
        if self.hourly {
            format!(
                "{} {:02}h",
                &day[5..],
                (t - epoch::day_start(epoch::day_of(t))) / 3_600_000_000_000
            )
        } else {
            day
        }
    }
}

struct RunFigure {
    title: String,
    bins: Bins,
    /// Templates with detections: id and count per bin.
    rows: Vec<(String, Vec<u32>)>,
    /// |cc_sum| / threshold of every detection.
    ratios: Vec<f64>,
}

impl RunFigure {
    fn max_count(&self) -> u32 {
        self.rows
            .iter()
            .flat_map(|r| r.1.iter().copied())
            .max()
            .unwrap_or(0)
            .max(1)
    }
}

/// The colour of a count of `v` of at most `max`; no detections are white.
fn colour(v: u32, max: u32) -> RGBColor {
    if v == 0 {
        return WHITE;
    }
    ViridisRGB.get_color_normalized(v as f32, 0.0, max as f32)
}

impl Figure for RunFigure {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let area = root.titled(&self.title, title(16))?;
        let h = area.dim_in_pixel().1;
        let (upper, lower) = area.split_vertically(h * 64 / 100);
        let w = upper.dim_in_pixel().0;
        let (map, bar) = upper.split_horizontally(w.saturating_sub(110));
        self.draw_map(root, &map)?;
        self.draw_colour_bar(&bar)?;
        self.draw_histogram(&lower)
    }
}

impl RunFigure {
    fn draw_map<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        area: &DrawingArea<DB, Shift>,
    ) -> DrawResult<DB> {
        let n = self.rows.len();
        let mut chart = ChartBuilder::on(area)
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(LABEL_WIDTH)
            .build_cartesian_2d(0.0..self.bins.n as f64, 0.0..n.max(1) as f64)?;
        chart
            .configure_mesh()
            .light_line_style(TRANSPARENT)
            .disable_y_mesh()
            .y_labels(0)
            .x_labels(self.bins.n.clamp(2, 9))
            .x_label_formatter(&|x| self.bins.label(*x))
            .x_desc(if self.bins.hourly {
                "hour (UTC)"
            } else {
                "day (UTC)"
            })
            .label_style(text(12))
            .axis_desc_style(text(14))
            .draw()?;
        let max = self.max_count();
        // Row r (top to bottom) spans y from n - 1 - r to n - r.
        let cells = self.rows.iter().enumerate().flat_map(|(r, (_, counts))| {
            let y = (n - 1 - r) as f64;
            counts
                .iter()
                .enumerate()
                .filter(|(_, &c)| c > 0)
                .map(move |(b, &c)| {
                    let corners = [(b as f64, y), (b as f64 + 1.0, y + 1.0)];
                    Rectangle::new(corners, colour(c, max).filled())
                })
        });
        chart.draw_series(cells)?;
        // Only as many labels as fit one above the other.
        let row_px = chart.plotting_area().dim_in_pixel().1 as usize / n.max(1);
        let every = 14usize.div_ceil(row_px.max(1));
        let anchor = Pos::new(HPos::Right, VPos::Center);
        for (r, (id, _)) in self.rows.iter().enumerate().step_by(every) {
            let (px, py) = chart.backend_coord(&(0.0, (n - r) as f64 - 0.5));
            root.draw(&Text::new(id.clone(), (px - 6, py), text(12).pos(anchor)))?;
        }
        Ok(())
    }

    fn draw_colour_bar<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let max = self.max_count();
        let mut chart = ChartBuilder::on(area)
            .margin_top(10)
            .margin_bottom(10)
            .margin_right(10)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..1.0, 0.5..max as f64 + 0.5)?;
        chart
            .configure_mesh()
            .light_line_style(TRANSPARENT)
            .disable_mesh()
            .x_labels(0)
            .y_labels((max as usize).min(8))
            .y_label_formatter(&|v| format!("{v:.0}"))
            .x_desc("count")
            .label_style(text(12))
            .axis_desc_style(text(13))
            .draw()?;
        let steps = (1..=max).map(|c| {
            let y = c as f64;
            Rectangle::new([(0.0, y - 0.5), (1.0, y + 0.5)], colour(c, max).filled())
        });
        chart.draw_series(steps)?;
        Ok(())
    }

    fn draw_histogram<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let hi = self.ratios.iter().copied().fold(1.5, f64::max) * 1.05;
        let lo = self.ratios.iter().copied().fold(1.0, f64::min).min(1.0) - 0.05;
        let n_bins = 40;
        let width = (hi - lo) / n_bins as f64;
        let mut counts = vec![0u32; n_bins];
        for r in &self.ratios {
            counts[(((r - lo) / width) as usize).min(n_bins - 1)] += 1;
        }
        let top = counts.iter().copied().max().unwrap_or(0).max(1) * 11 / 10 + 1;
        let mut chart = ChartBuilder::on(area)
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(lo..hi, 0..top)?;
        chart
            .configure_mesh()
            .light_line_style(TRANSPARENT)
            .x_desc("|cc_sum| / threshold")
            .y_desc("detections")
            .y_labels(top.min(10) as usize)
            .label_style(text(12))
            .axis_desc_style(text(14))
            .draw()?;
        let bars = counts.iter().enumerate().map(|(i, &c)| {
            let x0 = lo + i as f64 * width;
            Rectangle::new([(x0, 0), (x0 + width, c)], STACK.mix(0.8).filled())
        });
        chart.draw_series(bars)?;
        let style = THRESHOLD.stroke_width(2);
        chart
            .draw_series(DashedLineSeries::new([(1.0, 0), (1.0, top)], 8, 5, style))?
            .label("threshold")
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], style));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(text(12))
            .draw()
    }
}
