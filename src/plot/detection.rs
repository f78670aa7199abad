//! One detection: each template channel laid over the data it matched, at
//! the channel's moveout and measured lag, and the template's stacked
//! trace around the detection with its threshold.

use std::ops::Range;
use std::path::PathBuf;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{
    render, runs, symmetric_range, text, title, DrawResult, Figure, Image, Run, DATA, DETECTION,
    STACK, TEMPLATE, THRESHOLD,
};
use crate::epoch::{self, Nanos, NS_PER_S};
use crate::error::{Error, Result};
use crate::output::{ChannelRow, DetectionRow};
use crate::pipeline::TemplateDay;
use crate::templates::Template;

/// Which detection to draw.
#[derive(Debug, Clone)]
pub enum Which {
    /// Row `N` of the file's detections (as `tmatch export` lists them).
    Index(usize),
    /// The detection of template `template` nearest to `time`.
    Nearest { template: String, time: Nanos },
}

/// What `tmatch plot detection` draws.
#[derive(Debug, Clone)]
pub struct DetectionRequest {
    pub detections: PathBuf,
    /// The templates and archive of the run; by default those it records.
    pub templates: Option<PathBuf>,
    pub archive: Option<PathBuf>,
    pub which: Which,
    /// Seconds of stacked trace shown either side of the detection.
    pub window: f64,
    pub image: Image,
}

/// Draw one detection.
pub fn detection(req: &DetectionRequest) -> Result<()> {
    if !(req.window > 0.0 && req.window.is_finite()) {
        return Err(Error::Input(format!(
            "--window {}: a positive number of seconds",
            req.window
        )));
    }
    let run = Run::open(
        &req.detections,
        req.templates.as_deref(),
        req.archive.as_deref(),
    )?;
    let row = select(&run, &req.which)?;
    let det = run.reader.rows[row].clone();
    let picks = run.reader.channels(run.reader.channel_range(row))?;
    let td = run.template_day(det.template as usize, epoch::day_of(det.time_ns))?;
    let figure = DetectionFigure::new(&run, &det, &picks, &td, req.window);
    render(&req.image, &figure)
}

/// The row of the detection `which` names.
fn select(run: &Run, which: &Which) -> Result<usize> {
    let rows = &run.reader.rows;
    match which {
        Which::Index(i) if *i < rows.len() => Ok(*i),
        Which::Index(i) => Err(Error::Input(format!(
            "--index {i}: the file holds {} detections (0 to {})",
            rows.len(),
            rows.len() as i64 - 1
        ))),
        Which::Nearest { template, time } => {
            let ti = run.template_index(template)?;
            // Detections of one template are at least trig_int apart, so
            // within that of the time asked for there is at most one or two.
            let tolerance = (run.params.trig_int.max(1.0) * NS_PER_S as f64) as Nanos;
            rows.iter()
                .enumerate()
                .filter(|(_, r)| r.template as usize == ti)
                .min_by_key(|(_, r)| (r.time_ns - time).abs())
                .filter(|(_, r)| (r.time_ns - time).abs() <= tolerance)
                .map(|(i, _)| i)
                .ok_or_else(|| {
                    Error::Input(format!(
                        "template {template}: no detection within {} s of {}",
                        tolerance as f64 / 1e9,
                        epoch::format_time(*time)
                    ))
                })
        }
    }
}

/// One template channel's row: the data and the template, in row units
/// (±0.5 is the row's height), against seconds from the detection.
struct ChannelTrace {
    label: String,
    /// Runs of data between gaps.
    data: Vec<Vec<(f64, f64)>>,
    template: Vec<(f64, f64)>,
}

/// What the figure draws, made ready from the run.
struct DetectionFigure {
    title: String,
    /// Seconds from the detection shown for the channels.
    span: Range<f64>,
    /// Top to bottom, in order of moveout.
    traces: Vec<ChannelTrace>,
    window: f64,
    stack: Vec<(f64, f64)>,
    threshold: f64,
    /// This detection, and the template's others in the window.
    this: (f64, f64),
    others: Vec<(f64, f64)>,
}

impl DetectionFigure {
    fn new(run: &Run, det: &DetectionRow, picks: &[ChannelRow], td: &TemplateDay, w: f64) -> Self {
        let (set, ti) = (&run.set, det.template as usize);
        let t = &set.templates[ti];
        let rate = set.rate;
        let k = epoch::samples_between(td.start, det.time_ns, rate);
        let len_s = set.len as f64 / rate;
        let margin = (0.5 * len_s).max(1.0);
        let span = -margin..t.max_pad() as f64 / rate + len_s + margin;
        let mut order: Vec<usize> = (0..t.channels.len()).collect();
        order.sort_by_key(|&c| (t.channels[c].pad, t.channels[c].id.clone()));
        let traces = order
            .iter()
            .map(|&c| {
                let pick = picks.iter().find(|p| p.channel as usize == c);
                channel_trace(t, c, td, k, pick, rate, &span)
            })
            .collect();
        let at = |time: Nanos| (time - det.time_ns) as f64 / 1e9;
        let others = run
            .reader
            .rows
            .iter()
            .filter(|r| r.template == det.template && r.time_ns != det.time_ns)
            .filter(|r| at(r.time_ns).abs() <= w)
            .map(|r| (at(r.time_ns), r.cc_sum as f64))
            .collect();
        DetectionFigure {
            title: format!(
                "{}: detection at {}, cc_sum {:.2}, threshold {:.2}, {} channels",
                t.event.id,
                epoch::format_time(det.time_ns),
                det.cc_sum,
                det.threshold,
                det.n_channels
            ),
            span,
            traces,
            window: w,
            stack: stack_around(td, k, w, rate),
            threshold: det.threshold as f64,
            this: (0.0, det.cc_sum as f64),
            others,
        }
    }
}

/// The stacked trace within `w` seconds of lag `k`, against seconds from it.
fn stack_around(td: &TemplateDay, k: i64, w: f64, rate: f64) -> Vec<(f64, f64)> {
    let half = (w * rate).ceil() as i64;
    let a = (k - half).clamp(0, td.stack.len() as i64) as usize;
    let b = (k + half + 1).clamp(0, td.stack.len() as i64) as usize;
    (a..b)
        .map(|j| ((j as i64 - k) as f64 / rate, td.stack[j] as f64))
        .collect()
}

/// Channel `c` of template `t` at a detection at lag `k`: the data over
/// `span`, scaled so that the window the template matched fills the row,
/// and the template at its moveout plus the lag measured at the detection.
fn channel_trace(
    t: &Template,
    c: usize,
    td: &TemplateDay,
    k: i64,
    pick: Option<&ChannelRow>,
    rate: f64,
    span: &Range<f64>,
) -> ChannelTrace {
    let tc = &t.channels[c];
    let lag = pick.map_or(0.0, |p| {
        if p.lag.is_finite() {
            p.lag as f64
        } else {
            p.best_lag as f64
        }
    });
    let label = match pick {
        Some(p) => format!(
            "{} {}  cc {:.2}  lag {:+} ms",
            tc.id,
            tc.phase,
            p.cc,
            // Rounded first, so that a lag under half a millisecond is +0.
            (lag / rate * 1e3).round() as i64
        ),
        None => format!("{} {}  no data", tc.id, tc.phase),
    };
    let peak = |x: &mut dyn Iterator<Item = f32>| x.fold(0.0f32, |m, v| m.max(v.abs()));
    let t_peak = peak(&mut tc.data.iter().copied()).max(f32::MIN_POSITIVE);
    let template = tc
        .data
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            (
                (tc.pad as f64 + lag + i as f64) / rate,
                0.45 * (v / t_peak) as f64,
            )
        })
        .collect();
    let Some(ch) = td.channels[c].as_ref().filter(|_| pick.is_some()) else {
        return ChannelTrace {
            label,
            data: Vec::new(),
            template,
        };
    };
    let n = ch.data.len() as i64;
    let index = |s: f64| (k + (s * rate).round() as i64).clamp(0, n) as usize;
    let w0 = (k + tc.pad as i64 + lag.round() as i64).clamp(0, n) as usize;
    let w1 = (w0 + tc.data.len()).min(ch.data.len());
    let window = ch.data[w0..w1].iter().zip(&ch.mask[w0..w1]);
    let d_peak = peak(&mut window.filter(|(_, &m)| m).map(|(&v, _)| v)).max(f32::MIN_POSITIVE);
    let data = runs(&ch.mask, index(span.start)..index(span.end))
        .into_iter()
        .map(|r| {
            r.map(|j| {
                let y = (ch.data[j] / d_peak).clamp(-1.1, 1.1);
                ((j as i64 - k) as f64 / rate, 0.45 * y as f64)
            })
            .collect()
        })
        .collect();
    ChannelTrace {
        label,
        data,
        template,
    }
}

impl Figure for DetectionFigure {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let area = root.titled(&self.title, title(18))?;
        let h = area.dim_in_pixel().1;
        let (upper, lower) = area.split_vertically(h * 68 / 100);
        self.draw_channels(root, &upper)?;
        self.draw_stack(&lower)
    }
}

/// Pixels left of the channels for their labels.
const LABEL_WIDTH: u32 = 270;

impl DetectionFigure {
    fn draw_channels<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        area: &DrawingArea<DB, Shift>,
    ) -> DrawResult<DB> {
        let n = self.traces.len();
        let mut chart = ChartBuilder::on(area)
            .margin(8)
            .x_label_area_size(36)
            .y_label_area_size(LABEL_WIDTH)
            // Room above the first channel for the legend.
            .build_cartesian_2d(self.span.clone(), -0.6..(n as f64 + 0.3))?;
        chart
            .configure_mesh()
            .light_line_style(TRANSPARENT)
            .disable_y_mesh()
            .y_labels(0)
            .x_desc("seconds from the detection (template at its moveout + measured lag)")
            .label_style(text(13))
            .axis_desc_style(text(14))
            .draw()?;
        for (r, trace) in self.traces.iter().enumerate() {
            let y0 = (n - 1 - r) as f64;
            for run in &trace.data {
                let line = LineSeries::new(run.iter().map(|&(x, y)| (x, y + y0)), DATA);
                let s = chart.draw_series(line)?;
                if r == 0 && run.as_ptr() == trace.data[0].as_ptr() {
                    s.label("data (processed as for detection)")
                        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], DATA));
                }
            }
            let style = TEMPLATE.mix(0.85).stroke_width(2);
            let line = LineSeries::new(trace.template.iter().map(|&(x, y)| (x, y + y0)), style);
            let s = chart.draw_series(line)?;
            if r == 0 {
                s.label("template")
                    .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], style));
            }
            let (px, py) = chart.backend_coord(&(self.span.start, y0));
            let anchor = Pos::new(HPos::Right, VPos::Center);
            root.draw(&Text::new(
                trace.label.clone(),
                (px - 8, py),
                text(12).pos(anchor),
            ))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(text(12))
            .draw()
    }

    fn draw_stack<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let values = self.stack.iter().map(|p| p.1 as f32);
        let y = symmetric_range(values, self.threshold as f32);
        let w = self.window;
        let mut chart = ChartBuilder::on(area)
            .margin(8)
            .x_label_area_size(36)
            .y_label_area_size(70)
            .build_cartesian_2d(-w..w, y)?;
        chart
            .configure_mesh()
            .light_line_style(TRANSPARENT)
            .x_desc("seconds from the detection")
            .y_desc("cc_sum")
            .label_style(text(13))
            .axis_desc_style(text(14))
            .draw()?;
        chart
            .draw_series(LineSeries::new(self.stack.iter().copied(), STACK))?
            .label("stacked trace")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], STACK));
        let thr = self.threshold;
        for (i, level) in [thr, -thr].into_iter().enumerate() {
            let style = THRESHOLD.stroke_width(2);
            let line = DashedLineSeries::new([(-w, level), (w, level)], 8, 5, style);
            let s = chart.draw_series(line)?;
            if i == 0 {
                s.label(format!("threshold ±{thr:.2}"))
                    .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], style));
            }
        }
        let others = self
            .others
            .iter()
            .map(|&p| Circle::new(p, 5, DETECTION.stroke_width(2)));
        chart.draw_series(others)?;
        chart
            .draw_series([Circle::new(self.this, 6, DETECTION.filled())])?
            .label("this detection (open: others)")
            .legend(|p| Circle::new(p, 5, DETECTION.filled()));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(text(12))
            .draw()
    }
}
