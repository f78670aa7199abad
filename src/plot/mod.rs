//! Plots of a run, drawn as PNG or SVG (the output's extension chooses):
//! one detection with its channels and stacked trace ([`detection`]), a
//! template's stacked trace over a day ([`day`]), detections per template
//! and day or hour with their cc_sum / threshold ([`run`]), and a template
//! set's waveforms ([`templates`]).
//!
//! Text is set in DejaVu Sans compiled into the binary: release binaries
//! run on cluster nodes that have no fonts installed, and no font is looked
//! up at run time.

mod day;
mod detection;
mod run;
mod templates;

pub use day::{day, DayRequest};
pub use detection::{detection, DetectionRequest, Which};
pub use run::run;
pub use templates::templates;

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::archive::Archive;
use crate::correlate::cpu::CpuBackend;
use crate::detect::DetectParams;
use crate::epoch::{self, Day};
use crate::error::{Error, Result};
use crate::output::{Reader, RunParams};
use crate::pipeline::{self, TemplateDay};
use crate::preprocess;
use crate::templates::{self as template_file, TemplateSet};

/// Where a plot goes, and its size in pixels.
#[derive(Debug, Clone)]
pub struct Image {
    pub path: PathBuf,
    pub width: u32,
    pub height: u32,
}

/// What an [`Image`]'s extension asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Png,
    Svg,
}

impl Image {
    /// Smaller plots cannot hold their labels and axes.
    const MIN_SIDE: u32 = 200;

    /// An image at `path`, which must end in `.png` or `.svg`.
    pub fn new(path: &Path, width: u32, height: u32) -> Result<Image> {
        if width < Self::MIN_SIDE || height < Self::MIN_SIDE {
            return Err(Error::Input(format!(
                "plot size {width}×{height}: at least {0}×{0} pixels",
                Self::MIN_SIDE
            )));
        }
        let image = Image {
            path: path.to_path_buf(),
            width,
            height,
        };
        image.format()?;
        Ok(image)
    }

    fn format(&self) -> Result<Format> {
        let ext = self.path.extension().and_then(|e| e.to_str());
        match ext.map(str::to_ascii_lowercase).as_deref() {
            Some("png") => Ok(Format::Png),
            Some("svg") => Ok(Format::Svg),
            _ => Err(Error::file(
                &self.path,
                "a plot is written as .png or .svg: give one of those extensions",
            )),
        }
    }
}

/// What drawing on any backend returns.
type DrawResult<DB> =
    std::result::Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// A plot, drawn the same way on the bitmap and the SVG backends.
trait Figure {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB>;
}

/// Draw `figure` into `image`: a white page, the figure, the file written.
fn render(image: &Image, figure: &impl Figure) -> Result<()> {
    register_font();
    let size = (image.width, image.height);
    let drawn = match image.format()? {
        Format::Png => on_page(
            BitMapBackend::new(&image.path, size).into_drawing_area(),
            figure,
        )
        .map_err(boxed),
        Format::Svg => on_page(
            SVGBackend::new(&image.path, size).into_drawing_area(),
            figure,
        )
        .map_err(boxed),
    };
    drawn.map_err(|source| Error::Plot {
        path: image.path.clone(),
        source,
    })
}

fn boxed<E: std::error::Error + Send + Sync + 'static>(
    e: DrawingAreaErrorKind<E>,
) -> Box<dyn std::error::Error + Send + Sync> {
    Box::new(e)
}

fn on_page<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    figure: &impl Figure,
) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    figure.draw(&root)?;
    root.present()
}

/// The family name the plots' text asks for.
const FONT: &str = "sans-serif";

/// Register the embedded DejaVu Sans under [`FONT`], once per process.
fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let fonts = [
            (FontStyle::Normal, dejavu::sans::regular()),
            (FontStyle::Bold, dejavu::sans::bold()),
        ];
        for (style, bytes) in fonts {
            let ok = plotters::style::register_font(FONT, style, bytes).is_ok();
            assert!(ok, "the DejaVu Sans compiled into tmatch is a valid font");
        }
    });
}

/// Text of `size` pixels.
fn text(size: u32) -> TextStyle<'static> {
    (FONT, size).into_font().into()
}

/// Bold text of `size` pixels, for titles.
fn title(size: u32) -> TextStyle<'static> {
    (FONT, size, FontStyle::Bold).into_font().into()
}

// Colours shared by the plots.
const DATA: RGBColor = RGBColor(60, 60, 60);
const TEMPLATE: RGBColor = RGBColor(214, 39, 40);
const STACK: RGBColor = RGBColor(31, 119, 180);
const THRESHOLD: RGBColor = RGBColor(255, 127, 14);
const DETECTION: RGBColor = RGBColor(214, 39, 40);

/// The detection settings a detections file was made with (those the file
/// lacks at their defaults), to recompute its stacks and thresholds.
fn run_params(reader: &Reader) -> (RunParams, DetectParams) {
    let run = RunParams::from_json(&reader.run.parameters).unwrap_or_default();
    let params = DetectParams {
        threshold: run.threshold,
        threshold_type: run.threshold_type,
        trig_int: run.trig_int,
        min_channels: run.min_channels,
        shift_len: run.shift_len,
        ..DetectParams::default()
    };
    (run, params)
}

/// A detections file with the templates and archive it was made from.
struct Run {
    reader: Reader,
    set: TemplateSet,
    archive: Archive,
    params: DetectParams,
}

impl Run {
    /// Open `detections` with `templates` and `archive`, by default those
    /// the file records, and check that the templates are the file's.
    fn open(detections: &Path, templates: Option<&Path>, archive: Option<&Path>) -> Result<Run> {
        let reader = Reader::open(detections)?;
        let (recorded, params) = run_params(&reader);
        let templates = templates.unwrap_or(&recorded.templates);
        let set = template_file::read(templates)?;
        pipeline::check_templates(detections, &reader, templates, &set)?;
        let archive = Archive::open(archive.unwrap_or(&recorded.archive))?;
        Ok(Run {
            reader,
            set,
            archive,
            params,
        })
    }

    /// Template `template` on `day` as detection computed it (on the CPU:
    /// one template's stack does not need a GPU).
    fn template_day(&self, template: usize, day: Day) -> Result<TemplateDay> {
        let backend = CpuBackend::new();
        pipeline::template_day(
            &self.set,
            &self.archive,
            day,
            &self.params,
            template,
            &backend,
        )?
        .ok_or_else(|| {
            Error::Input(format!(
                "template {}: no data on {}",
                self.set.templates[template].event.id,
                epoch::format_day(day)
            ))
        })
    }

    /// The index of the template named `name`.
    fn template_index(&self, name: &str) -> Result<usize> {
        let ids = &self.reader.templates.ids;
        ids.iter().position(|t| t == name).ok_or_else(|| {
            Error::Input(format!(
                "no template '{name}' (the file has {} templates, e.g. {})",
                ids.len(),
                ids.iter().take(3).cloned().collect::<Vec<_>>().join(", ")
            ))
        })
    }
}

/// Per column of `columns` equal runs of `values`: its first index, least
/// and greatest value. Drawn as a line from least to greatest per pixel
/// column, a trace of a million samples keeps every peak that a plain
/// decimation would drop.
fn envelope(values: &[f32], columns: usize) -> Vec<(usize, f32, f32)> {
    let n = values.len();
    let columns = columns.clamp(1, n.max(1));
    (0..columns)
        .filter_map(|c| {
            let (a, b) = (c * n / columns, (c + 1) * n / columns);
            let part = values.get(a..b).filter(|p| !p.is_empty())?;
            let lo = part.iter().copied().fold(f32::INFINITY, f32::min);
            let hi = part.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            Some((a, lo, hi))
        })
        .collect()
}

/// The runs of `true` in `mask[range]`, as ranges of indices into `mask`:
/// traces are drawn run by run, so gaps stay empty.
fn runs(mask: &[bool], range: Range<usize>) -> Vec<Range<usize>> {
    let b = range.end.min(mask.len());
    let a = range.start.min(b);
    preprocess::runs(&mask[a..b])
        .into_iter()
        .map(|(s, e)| a + s..a + e)
        .collect()
}

/// A symmetric axis range that holds `values` and `±floor`, with room.
fn symmetric_range(values: impl Iterator<Item = f32>, floor: f32) -> Range<f64> {
    let m = values.fold(
        floor.abs(),
        |m, v| if v.is_finite() { m.max(v.abs()) } else { m },
    );
    let m = if m > 0.0 { m as f64 * 1.15 } else { 1.0 };
    -m..m
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A spike of one sample among a million survives decimation to a few
    /// hundred columns, and every sample is in exactly one column.
    #[test]
    fn the_envelope_keeps_single_sample_peaks() {
        let mut x = vec![0.0f32; 1_000_003];
        x[654_321] = 9.0;
        x[17] = -4.0;
        let e = envelope(&x, 700);
        assert_eq!(e.len(), 700);
        assert_eq!(e.iter().map(|c| c.2).fold(0.0, f32::max), 9.0);
        assert_eq!(e.iter().map(|c| c.1).fold(0.0, f32::min), -4.0);
        assert_eq!(e[0].0, 0);
        assert!(e.windows(2).all(|w| w[0].0 < w[1].0));
        // Fewer samples than columns: one column per sample.
        assert_eq!(
            envelope(&[1.0, 2.0], 700),
            vec![(0, 1.0, 1.0), (1, 2.0, 2.0)]
        );
        assert!(envelope(&[], 10).is_empty());
    }

    #[test]
    fn runs_split_at_gaps() {
        let m = [true, true, false, false, true, false, true, true];
        assert_eq!(runs(&m, 0..8), vec![0..2, 4..5, 6..8]);
        assert_eq!(runs(&m, 1..7), vec![1..2, 4..5, 6..7]);
        assert!(runs(&m, 2..4).is_empty());
    }

    #[test]
    fn images_are_png_or_svg() {
        let ok = |p: &str| Image::new(Path::new(p), 800, 600).map(|i| i.format().unwrap());
        assert_eq!(ok("a/b.png").unwrap(), Format::Png);
        assert_eq!(ok("b.SVG").unwrap(), Format::Svg);
        let e = ok("b.pdf").unwrap_err().to_string();
        assert!(
            e.starts_with("b.pdf: ") && e.contains(".png or .svg"),
            "{e}"
        );
        assert!(Image::new(Path::new("x.png"), 50, 600).is_err());
    }
}
