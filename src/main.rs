//! The `tmatch` command line: argument parsing and messages; the work is
//! done by the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Args, Parser, Subcommand, ValueEnum};

use tmatch::archive::Archive;
use tmatch::correlate::{self, DeviceSpec, Precision};
use tmatch::detect::{self, DetectParams, ThresholdType};
use tmatch::pipeline;
use tmatch::preprocess::Recipe;
use tmatch::shard::Shard;
use tmatch::templates::{self, BuildOptions, Phases, TemplateSet};
use tmatch::timing;
use tmatch::{catalog, epoch, events, memory, output, plot, synth};

/// `tmatch --version`: the version, the commit it was built from, and
/// the CUDA kernels in the binary.
static LONG_VERSION: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let (isa, target) = correlate::cuda::embedded_kernels();
    format!(
        "{} (commit {})\nCUDA kernels embedded: PTX ISA {isa} for {target} and later \
         (NVIDIA driver r535 or later); GPUs are looked for at run time",
        env!("CARGO_PKG_VERSION"),
        env!("TMATCH_COMMIT")
    )
});

#[derive(Parser)]
#[command(
    name = "tmatch",
    version,
    long_version = LONG_VERSION.as_str(),
    about = "Find earthquakes in continuous seismograms by template matching"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build or inspect template sets.
    #[command(subcommand)]
    Templates(TemplatesCommand),
    /// Scan continuous data day by day and write detections to HDF5.
    Detect(DetectArgs),
    /// Combine the detections files of one run's shards into one file.
    Merge(MergeArgs),
    /// Write the detections of a detections.h5 file as CSV.
    Export(ExportArgs),
    /// Make a catalogue from a detections file: decluster across
    /// templates, pick by cross-correlation, relative magnitudes; write
    /// QuakeML, CSV, EQcorrscan's detection file or hypoDD dt.cc.
    Catalog(Box<CatalogArgs>),
    /// Draw a detection, a template's stacked trace over a day, or a run,
    /// as PNG or SVG.
    #[command(subcommand)]
    Plot(PlotCommand),
    /// Generate a synthetic SDS archive with a catalog: the small sample
    /// set (data-samples/), or with --day a benchmark workload at 100 Hz.
    Synth {
        /// Output folder.
        #[arg(short, long, default_value = "data-samples")]
        output: PathBuf,
        /// First day (YYYY-MM-DD) of a benchmark workload instead.
        #[arg(long)]
        day: Option<String>,
        /// Days in the workload.
        #[arg(long, default_value_t = 1, requires = "day")]
        days: usize,
        /// Hours of data at the start of each day.
        #[arg(long, default_value_t = 24.0, requires = "day")]
        hours: f64,
        /// Three-component stations.
        #[arg(long, default_value_t = 7, requires = "day")]
        stations: usize,
        /// Sources in the workload (each catalogued once, occurring three times).
        #[arg(long, default_value_t = 200, requires = "day")]
        sources: usize,
    },
}

#[derive(Subcommand)]
enum TemplatesCommand {
    /// Cut templates around catalogue picks from the archive.
    Build(Box<BuildArgs>),
    /// Read a template set written by EQcorrscan's Tribe.write (.tgz).
    Import {
        /// The Tribe.write archive.
        tribe: PathBuf,
        /// Output template file.
        #[arg(short, long)]
        output: PathBuf,
        /// Replace an existing output file.
        #[arg(long)]
        overwrite: bool,
    },
    /// Print what a template file holds; with --plot, draw its templates.
    Info(InfoArgs),
}

#[derive(Args)]
struct InfoArgs {
    /// templates.h5
    file: PathBuf,
    /// Also draw the templates' waveforms at their moveouts (.png or .svg).
    #[arg(long, value_name = "IMAGE")]
    plot: Option<PathBuf>,
    /// Draw at most this many templates (the first ones).
    #[arg(long, default_value_t = 9, requires = "plot")]
    max_templates: usize,
    #[command(flatten)]
    size: ImageSize,
}

#[derive(Subcommand)]
enum PlotCommand {
    /// One detection: each template channel laid over the data it matched
    /// (at its moveout and measured lag), labelled with its CC, and the
    /// stacked trace around it with the threshold.
    Detection(Box<PlotDetectionArgs>),
    /// A template's stacked trace over one day, with its thresholds and
    /// detections.
    Day(PlotDayArgs),
    /// Detections per template and day (per hour for up to 3 days) as a
    /// heat map, and the histogram of |cc_sum| / threshold.
    Run(PlotRunArgs),
}

/// The size of a plot.
#[derive(Args)]
struct ImageSize {
    /// Width of the plot in pixels.
    #[arg(long, default_value_t = 1200)]
    width: u32,
    /// Height of the plot in pixels.
    #[arg(long, default_value_t = 900)]
    height: u32,
}

impl ImageSize {
    fn image(&self, path: &Path) -> Result<plot::Image> {
        Ok(plot::Image::new(path, self.width, self.height)?)
    }
}

/// A detections file and what it was made from.
#[derive(Args)]
struct RunFiles {
    /// detections.h5
    detections: PathBuf,
    /// The templates the detections were made with (default: the file the
    /// run recorded).
    #[arg(long)]
    templates: Option<PathBuf>,
    /// The continuous data (default: the archive the run recorded).
    #[arg(long)]
    archive: Option<PathBuf>,
}

#[derive(Args)]
struct PlotDetectionArgs {
    #[command(flatten)]
    files: RunFiles,
    /// The detection's row in the file (0-based; the order of `tmatch export`).
    #[arg(
        long,
        required_unless_present = "template",
        conflicts_with = "template"
    )]
    index: Option<usize>,
    /// The detection's template, with --time.
    #[arg(long, requires = "time")]
    template: Option<String>,
    /// A time (ISO 8601 UTC) near the template's detection, with --template.
    #[arg(long, requires = "template", value_parser = epoch::parse_time)]
    time: Option<epoch::Nanos>,
    /// Seconds of stacked trace shown either side of the detection.
    #[arg(long, default_value_t = 30.0)]
    window: f64,
    /// Output image: .png or .svg.
    #[arg(short, long)]
    output: PathBuf,
    #[command(flatten)]
    size: ImageSize,
}

#[derive(Args)]
struct PlotDayArgs {
    #[command(flatten)]
    files: RunFiles,
    /// The template's id.
    #[arg(long)]
    template: String,
    /// The day (YYYY-MM-DD).
    #[arg(long, value_parser = epoch::parse_day)]
    day: epoch::Day,
    /// Output image: .png or .svg.
    #[arg(short, long)]
    output: PathBuf,
    #[command(flatten)]
    size: ImageSize,
}

#[derive(Args)]
struct PlotRunArgs {
    /// detections.h5
    detections: PathBuf,
    /// Output image: .png or .svg.
    #[arg(short, long)]
    output: PathBuf,
    #[command(flatten)]
    size: ImageSize,
}

#[derive(Args)]
struct BuildArgs {
    /// Picks CSV: event_id,network,station,[location,]channel,phase,time.
    #[arg(long, required_unless_present = "quakeml", conflicts_with = "quakeml")]
    picks: Option<PathBuf>,
    /// Events CSV: event_id,origin_time,latitude,longitude,depth_km,magnitude.
    #[arg(long, requires = "picks")]
    events: Option<PathBuf>,
    /// QuakeML catalog with events, origins, magnitudes and picks.
    #[arg(long)]
    quakeml: Option<PathBuf>,
    /// Continuous data: an SDS tree or any folder of miniSEED files.
    #[arg(long)]
    archive: PathBuf,
    /// Output template file.
    #[arg(short, long)]
    output: PathBuf,
    /// Phase whose picks define windows: P, S or all.
    #[arg(long, default_value = "all")]
    phase: Phases,
    /// Window start, seconds before the pick.
    #[arg(long, default_value_t = 1.0)]
    pre: f64,
    /// Window length in seconds.
    #[arg(long, default_value_t = 4.0)]
    length: f64,
    /// High-pass corner (Hz) of the Butterworth filter.
    #[arg(long)]
    lowcut: Option<f64>,
    /// Low-pass corner (Hz) of the Butterworth filter.
    #[arg(long)]
    highcut: Option<f64>,
    /// Butterworth order (applied forward and backward: zero phase).
    #[arg(long, default_value_t = 4)]
    filter_order: usize,
    /// Resample templates and data to this rate (Hz).
    #[arg(long)]
    sampling_rate: Option<f64>,
    /// Only channels whose SEED id matches this glob (repeatable), e.g. 'N.*..EH?'.
    #[arg(long)]
    channels: Vec<String>,
    /// Leave out channels whose max |signal| / RMS of the noise before the window is lower.
    #[arg(long)]
    min_snr: Option<f64>,
    /// Where a window starts when pick − pre falls between two samples:
    /// at-or-after (the first sample at or after it, as EQcorrscan's
    /// Tribe.construct cuts) or nearest (half to even).
    #[arg(long, default_value = "at-or-after")]
    window_start: templates::build::WindowStart,
    /// Replace an existing output file.
    #[arg(long)]
    overwrite: bool,
}

#[derive(Args)]
struct DetectArgs {
    /// Template file from `tmatch templates build`.
    #[arg(long)]
    templates: PathBuf,
    /// Continuous data: an SDS tree or any folder of miniSEED files.
    #[arg(long)]
    archive: PathBuf,
    /// Days (UTC): 2012 | 2010-2020 | 2012-09-02 | 2012-246 | FIRST..LAST.
    #[arg(long, value_parser = parse_days)]
    days: Days,
    /// Output detections file (HDF5).
    #[arg(short, long)]
    output: PathBuf,
    /// Threshold value; its meaning depends on --threshold-type.
    #[arg(long, default_value_t = 8.0)]
    threshold: f64,
    /// mad: threshold × median(|stack|) over the day (EQcorrscan's "MAD", a median of
    /// absolute values); abs: the threshold itself; av-chan-corr: threshold × the
    /// number of template channels with data.
    #[arg(long, default_value = "mad")]
    threshold_type: ThresholdType,
    /// Seconds within which only the largest peak of a template is kept.
    #[arg(long, default_value_t = 6.0)]
    trig_int: f64,
    /// Refuse peaks supported by fewer channels with data.
    #[arg(long, default_value_t = 1)]
    min_channels: usize,
    /// Seconds searched either side of a detection for each channel's best lag.
    #[arg(long, default_value_t = 0.2)]
    shift_len: f64,
    /// Memory for one batch of stacked traces, in GiB (more templates per batch), or
    /// auto: a quarter of the memory this process may use (a Slurm job's or
    /// container's limit, or the machine's available memory), between 0.25 and 2.
    #[arg(long, default_value = "auto")]
    memory: MemoryArg,
    /// Compute device: auto (every visible GPU, or the CPU where there is none or no
    /// NVIDIA driver), cpu, cuda (every visible GPU; an error without one), or
    /// cuda:0,2 (those GPUs).
    #[arg(long, default_value = "auto")]
    device: DeviceSpec,
    /// The GPU's stack kernel: fp32, mixed (tensor cores screen in fp16 with
    /// fp32 sums, and every lag near the threshold is recomputed in fp32, so
    /// detections are fp32's), or auto (fp32 until a GPU measurement shows
    /// mixed correct and faster on the hardware). mixed needs a CUDA GPU.
    #[arg(long, default_value = "auto")]
    precision: Precision,
    /// Process only shard I of N of the days (0 <= I < N: every N-th day from
    /// the I-th). Under a Slurm array job it defaults to the array task's
    /// shard (SLURM_ARRAY_TASK_ID − SLURM_ARRAY_TASK_MIN of SLURM_ARRAY_TASK_COUNT).
    #[arg(long)]
    shard: Option<Shard>,
    /// Process only shard J of K of the templates (0 <= J < K: every K-th
    /// template from the J-th). Detections keep their index in the whole
    /// set; `tmatch merge` joins the K template shards of each day.
    #[arg(long, value_name = "J/K")]
    template_shard: Option<Shard>,
    /// Go on with an existing output of the same run: skip the days it
    /// holds and redo the one that was in flight. Without the file, start it.
    #[arg(long, conflicts_with = "overwrite")]
    resume: bool,
    /// Replace an existing output file.
    #[arg(long)]
    overwrite: bool,
    /// Print at the end where the time went: thread-seconds per stage
    /// (reading, preprocessing, transforms, stacking, median, peaks, ...).
    #[arg(long)]
    timing: bool,
}

#[derive(Args)]
struct MergeArgs {
    /// Detections files of one run (its shards).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Merged output file.
    #[arg(short, long)]
    output: PathBuf,
    /// Replace an existing output file.
    #[arg(long)]
    overwrite: bool,
}

#[derive(Args)]
struct ExportArgs {
    /// detections.h5
    file: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Csv)]
    format: Format,
    /// Output file (default: standard output).
    #[arg(short, long)]
    output: Option<PathBuf>,
}

#[derive(Args)]
struct CatalogArgs {
    /// detections.h5
    detections: PathBuf,
    /// The templates the detections were made with.
    #[arg(long)]
    templates: PathBuf,
    /// Output file; its extension chooses the format (.xml/.qml QuakeML,
    /// .csv CSV, .cc hypoDD dt.cc, with event.dat beside it) unless
    /// --format does.
    #[arg(short, long)]
    output: PathBuf,
    /// quakeml, csv, eqcorrscan (EQcorrscan's detection file) or hypodd.
    #[arg(long)]
    format: Option<pipeline::Format>,
    /// Where the picks CSV goes (CSV); default <output stem>_picks.csv.
    #[arg(long)]
    picks_csv: Option<PathBuf>,
    /// Keep only the best detection within this many seconds (inclusive)
    /// across all templates; none by default.
    #[arg(long, value_name = "SECONDS")]
    decluster: Option<f64>,
    /// What ranks detections in declustering: avg-cor, cor-sum or
    /// thresh-exc (cc_sum / threshold).
    #[arg(long, default_value = "avg-cor", requires = "decluster")]
    decluster_metric: events::Metric,
    /// Compare detection times (detect) or origin times (origin).
    #[arg(long, default_value = "detect", requires = "decluster")]
    decluster_timing: events::Timing,
    /// Only detections whose templates' hypocentres are closer than this
    /// (km) suppress each other.
    #[arg(long, value_name = "KM", requires = "decluster")]
    hypocentral_separation: Option<f64>,
    /// Rank by |metric| (as EQcorrscan always does; kept for its users).
    #[arg(long, requires = "decluster")]
    absolute_values: bool,
    /// Detections with fewer channels are left out.
    #[arg(long, default_value_t = 0)]
    min_channels: u32,
    /// Channels whose best CC within the detection's --shift-len reaches
    /// this give picks (and magnitudes).
    #[arg(long, default_value_t = 0.4)]
    min_cc: f32,
    /// Picks at the lag refined to a fraction of a sample.
    #[arg(long)]
    interpolate: bool,
    /// Channels with a lower SNR (on the detection or the template) give
    /// no magnitude.
    #[arg(long, default_value_t = 5.0)]
    min_snr: f32,
    /// Fewer channels qualifying give no magnitude.
    #[arg(long, default_value_t = 2)]
    mag_min_channels: usize,
    /// The amplitude compared: std (over the template's window) or peak.
    #[arg(long, default_value = "std")]
    amplitude: events::measure::Amplitude,
    /// Plain amplitude ratios, without the Schaff & Richards correction.
    #[arg(long)]
    no_mag_correction: bool,
}

/// What `tmatch export` writes.
#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Csv,
}

/// The days of a `--days` argument, with the text as given.
#[derive(Clone)]
struct Days(String, Vec<epoch::Day>);

fn parse_days(s: &str) -> Result<Days, String> {
    Ok(Days(s.to_string(), epoch::parse_days(s)?))
}

fn build(a: BuildArgs) -> Result<()> {
    output::remove_existing(&a.output, a.overwrite)?;
    let cat = match (&a.quakeml, &a.picks) {
        (Some(q), _) => catalog::read_quakeml(q)?,
        (None, Some(p)) => catalog::read_csv(p, a.events.as_deref())?,
        (None, None) => bail!("give --picks or --quakeml"),
    };
    let archive = Archive::open(&a.archive)?;
    let channels = a
        .channels
        .iter()
        .map(|g| glob::Pattern::new(g).with_context(|| format!("bad --channels pattern '{g}'")))
        .collect::<Result<_>>()?;
    let opts = BuildOptions {
        phase: a.phase,
        pre: a.pre,
        length: a.length,
        recipe: Recipe {
            lowcut: a.lowcut,
            highcut: a.highcut,
            order: a.filter_order,
            resample: a.sampling_rate,
        },
        channels,
        min_snr: a.min_snr,
        window_start: a.window_start,
    };
    let (set, warnings) = templates::build(&cat, &archive, &opts)?;
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    templates::write(&set, &a.output)?;
    let n_ch: usize = set.templates.iter().map(|t| t.channels.len()).sum();
    eprintln!(
        "{}: {} templates, {n_ch} channels, {} samples at {} Hz",
        a.output.display(),
        set.templates.len(),
        set.len,
        set.rate
    );
    Ok(())
}

fn import(tribe: &Path, output: &Path, overwrite: bool) -> Result<()> {
    output::remove_existing(output, overwrite)?;
    let set = templates::import_tribe(tribe)?;
    templates::write(&set, output)?;
    eprintln!(
        "{}: {} templates, {} channels, {} samples at {} Hz (from {})",
        output.display(),
        set.templates.len(),
        set.templates
            .iter()
            .map(|t| t.channels.len())
            .sum::<usize>(),
        set.len,
        set.rate,
        tribe.display()
    );
    Ok(())
}

fn info(a: InfoArgs) -> Result<()> {
    let path = a.file.as_path();
    let set = templates::read(path)?;
    let r = &set.recipe;
    let opt = |v: Option<f64>| v.map_or("none".to_string(), |v| format!("{v} Hz"));
    println!("{}", path.display());
    println!("  format version   {}", templates::FORMAT_VERSION);
    println!("  templates        {}", set.templates.len());
    println!("  sampling rate    {} Hz", set.rate);
    println!(
        "  length           {} samples ({} s)",
        set.len,
        set.len as f64 / set.rate
    );
    println!(
        "  filter           lowcut {}, highcut {}, order {}",
        opt(r.lowcut),
        opt(r.highcut),
        r.order
    );
    println!("  resampled to     {}", opt(r.resample));
    println!("  channels used    {}", set.channel_ids().join(" "));
    println!("  checksum         {:016x}", set.checksum());
    println!("  id                       origin                       mag  chans  max moveout (s)");
    for t in &set.templates {
        println!(
            "  {:<24} {}  {:>4.1}  {:>5}  {:.2}",
            t.event.id,
            epoch::format_time(t.event.origin),
            t.event.magnitude,
            t.channels.len(),
            t.max_pad() as f64 / set.rate
        );
    }
    if let Some(out) = &a.plot {
        plot::templates(path, a.max_templates, &a.size.image(out)?)?;
        eprintln!("wrote {}", out.display());
    }
    Ok(())
}

fn plot(command: PlotCommand) -> Result<()> {
    let out = match command {
        PlotCommand::Detection(a) => {
            let which = match (a.index, a.template, a.time) {
                (Some(i), _, _) => plot::Which::Index(i),
                (None, Some(template), Some(time)) => plot::Which::Nearest { template, time },
                _ => bail!("give --index, or --template with --time"),
            };
            plot::detection(&plot::DetectionRequest {
                detections: a.files.detections,
                templates: a.files.templates,
                archive: a.files.archive,
                which,
                window: a.window,
                image: a.size.image(&a.output)?,
            })?;
            a.output
        }
        PlotCommand::Day(a) => {
            plot::day(&plot::DayRequest {
                detections: a.files.detections,
                templates: a.files.templates,
                archive: a.files.archive,
                template: a.template,
                day: a.day,
                image: a.size.image(&a.output)?,
            })?;
            a.output
        }
        PlotCommand::Run(a) => {
            plot::run(&a.detections, &a.size.image(&a.output)?)?;
            a.output
        }
    };
    eprintln!("wrote {}", out.display());
    Ok(())
}

/// Watch for SIGTERM and SIGINT (what Slurm and Ctrl-C send): the first
/// sets `stop`, so no new day starts and the days in flight are finished
/// and written; a second ends the process at once, between two writes of
/// `writer`, so the file holds every completed day. Returns the number of
/// the first signal received (0 while none).
fn watch_signals(
    stop: Arc<AtomicBool>,
    writer: std::sync::Weak<Mutex<output::Writer>>,
) -> Result<Arc<AtomicI32>> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let received = Arc::new(AtomicI32::new(0));
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])
        .context("cannot install signal handlers")?;
    let first = received.clone();
    std::thread::spawn(move || {
        for sig in signals.forever() {
            let name = if sig == SIGINT { "SIGINT" } else { "SIGTERM" };
            if first.load(Ordering::SeqCst) == 0 {
                first.store(sig, Ordering::SeqCst);
                stop.store(true, Ordering::SeqCst);
                eprintln!(
                    "tmatch: {name}: finishing the day in flight, then stopping \
                     (send it again to stop at once; --resume redoes that day)"
                );
            } else {
                // Holding the writer's lock, no day is half written.
                let writer = writer.upgrade();
                let _held = writer
                    .as_ref()
                    .map(|w| w.lock().unwrap_or_else(|e| e.into_inner()));
                eprintln!("tmatch: {name} again: stopping now; --resume redoes the day in flight");
                std::process::exit(128 + first.load(Ordering::SeqCst));
            }
        }
    });
    Ok(received)
}

/// Exit code of `detect` when every device failed before the days were
/// done (EX_TEMPFAIL: try again, on another node).
const EXIT_DEVICES_FAILED: u8 = 75;

/// Run detection; the exit code is 128 + the signal's number when a signal
/// stopped it before every day was done, [`EXIT_DEVICES_FAILED`] when the
/// devices failed.
fn detect(a: DetectArgs) -> Result<ExitCode> {
    let (backends, fallback) = correlate::open_backends(&a.device, a.precision)?;
    if let Some(line) = fallback {
        eprintln!("tmatch: {line}");
    }
    let shard = match a.shard {
        Some(s) => Some(s),
        None => Shard::from_slurm(|k| std::env::var(k).ok()).map_err(anyhow::Error::msg)?,
    };
    let Days(days_text, all_days) = &a.days;
    let days = shard.map_or_else(|| all_days.clone(), |s| s.select(all_days));
    let params = DetectParams {
        threshold: a.threshold,
        threshold_type: a.threshold_type,
        trig_int: a.trig_int,
        min_channels: a.min_channels,
        shift_len: a.shift_len,
        memory_budget: a.memory.bytes(),
        template_shard: a.template_shard,
    };
    let mode = match (a.resume, a.overwrite) {
        (true, _) => output::Mode::Resume,
        (false, true) => output::Mode::Overwrite,
        (false, false) => output::Mode::Create,
    };
    let run = pipeline::setup(&pipeline::Request {
        templates: &a.templates,
        archive: &a.archive,
        days_text,
        days: &days,
        shard,
        params: &params,
        output: &a.output,
        mode,
        command_line: &command_line(),
    })?;
    if run.resumed {
        eprintln!(
            "tmatch: resuming {}: {} of {} days done",
            a.output.display(),
            days.len() - run.todo.len(),
            days.len()
        );
    }
    let writer = Arc::new(Mutex::new(run.writer));
    let stop = Arc::new(AtomicBool::new(false));
    let signal = watch_signals(stop.clone(), Arc::downgrade(&writer))?;
    eprintln!(
        "tmatch: {}, {} days{}, device {}, stacks {:.2} GiB per batch",
        templates_note(&run.set, a.template_shard),
        run.todo.len(),
        shard.map_or(String::new(), |s| format!(
            " (shard {s}, of {} days requested)",
            all_days.len()
        )),
        backends
            .iter()
            .map(|b| b.name())
            .collect::<Vec<_>>()
            .join(", "),
        params.memory_budget as f64 / (1u64 << 30) as f64
    );
    if a.timing {
        timing::enable();
    }
    let t0 = std::time::Instant::now();
    let s = pipeline::run(
        &run.set,
        &run.archive,
        &run.todo,
        &params,
        &backends,
        &writer,
        &stop,
    )?;
    drop(writer);
    if a.timing {
        let threads = rayon::current_num_threads();
        eprintln!("{}", timing::table(t0.elapsed(), threads));
    }
    report_run(&a.output, &s, signal.load(Ordering::SeqCst))
}

/// How many templates a run uses.
fn templates_note(set: &TemplateSet, template_shard: Option<Shard>) -> String {
    let n = set.templates.len();
    match template_shard {
        Some(t) => format!(
            "{} of {n} templates (template shard {t})",
            (0..n).filter(|&i| t.contains(i)).count()
        ),
        None => format!("{n} templates"),
    }
}

/// Say how a run went, and choose its exit code (`signal`: the first
/// signal received, 0 for none).
fn report_run(output: &Path, s: &pipeline::Summary, signal: i32) -> Result<ExitCode> {
    eprintln!(
        "{}: {} detections; {} days done, {} without data, {} failed; {:.2} s{}",
        output.display(),
        s.detections,
        s.days_done,
        s.days_without_data,
        s.days_failed,
        s.wall.as_secs_f64(),
        memory::peak_mib().map_or(String::new(), |m| format!(", peak memory {m} MiB"))
    );
    for fault in &s.device_faults {
        eprintln!("tmatch: device failed: {fault}");
    }
    if signal == 0 && s.not_started > 0 {
        // Every device failed with days left: a distinct exit code, so that
        // a batch script can requeue the task (on another node).
        eprintln!(
            "tmatch: no working device left with {} days to do; run again with --resume",
            s.not_started
        );
        return Ok(ExitCode::from(EXIT_DEVICES_FAILED));
    }
    if signal != 0 && s.not_started > 0 {
        eprintln!(
            "tmatch: stopped by a signal with {} days left; run again with --resume to finish",
            s.not_started
        );
        return Ok(ExitCode::from((128 + signal) as u8));
    }
    if s.days_failed > 0 {
        bail!(
            "{} days failed (see /days in {})",
            s.days_failed,
            output.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The command line, as the output files record it.
fn command_line() -> String {
    std::env::args().collect::<Vec<_>>().join(" ")
}

/// `--memory`: GiB of stacked traces per batch, or chosen from the memory
/// this process may use.
#[derive(Debug, Clone, Copy)]
enum MemoryArg {
    Auto,
    GiB(f64),
}

impl MemoryArg {
    fn bytes(self) -> usize {
        match self {
            MemoryArg::Auto => detect::auto_memory_budget(memory::available()),
            MemoryArg::GiB(g) => (g * (1u64 << 30) as f64) as usize,
        }
    }
}

impl std::str::FromStr for MemoryArg {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<MemoryArg, String> {
        if s == "auto" {
            return Ok(MemoryArg::Auto);
        }
        match s.parse::<f64>() {
            // NaN is refused too.
            Ok(g) if g > 0.0 && g.is_finite() => Ok(MemoryArg::GiB(g)),
            _ => Err(format!("{s:?} is not auto or a positive number of GiB")),
        }
    }
}

fn merge(a: MergeArgs) -> Result<()> {
    output::remove_existing(&a.output, a.overwrite)?;
    let r = output::merge(&a.files, &a.output, &command_line())?;
    eprintln!(
        "{}: {} days, {} detections from {} files",
        a.output.display(),
        r.days,
        r.detections,
        a.files.len()
    );
    let warn = |days: Vec<String>, what: &str| {
        if days.is_empty() {
            return;
        }
        let shown: Vec<&str> = days.iter().take(10).map(String::as_str).collect();
        eprintln!(
            "warning: {} {what}: {}{}",
            days.len(),
            shown.join(", "),
            if days.len() > 10 { ", …" } else { "" }
        );
    };
    let names = |days: &[epoch::Day]| days.iter().map(|&d| epoch::format_day(d)).collect();
    warn(names(&r.missing), "requested days are in none of the files");
    warn(
        names(&r.failed),
        "days failed (rerun their shards with --resume, then merge again)",
    );
    let incomplete = r
        .incomplete
        .iter()
        .map(|(d, lacking)| {
            let lacking: Vec<String> = lacking.iter().map(|s| s.to_string()).collect();
            format!(
                "{} (missing template shard{} {})",
                epoch::format_day(*d),
                if lacking.len() > 1 { "s" } else { "" },
                lacking.join(", ")
            )
        })
        .collect();
    warn(
        incomplete,
        "days lack some of their template shards and are not merged",
    );
    Ok(())
}

fn export(a: ExportArgs) -> Result<()> {
    let d = output::read(&a.file)?;
    let text = match a.format {
        Format::Csv => output::to_csv(&d),
    };
    match a.output {
        Some(p) => std::fs::write(&p, text).with_context(|| format!("{}", p.display()))?,
        None => print!("{text}"),
    }
    Ok(())
}

fn catalog(a: CatalogArgs) -> Result<()> {
    let format = match a.format.or_else(|| pipeline::Format::of_path(&a.output)) {
        Some(f) => f,
        None => bail!(
            "{}: cannot tell the format from the extension; give --format",
            a.output.display()
        ),
    };
    let decluster = a.decluster.map(|trig_int| events::Decluster {
        trig_int,
        metric: a.decluster_metric,
        timing: a.decluster_timing,
        hypocentral_separation: a.hypocentral_separation,
        absolute_values: a.absolute_values,
    });
    let r = pipeline::catalogue(&pipeline::CatalogueRequest {
        detections: a.detections,
        templates: a.templates,
        output: a.output,
        format,
        picks_csv: a.picks_csv,
        decluster,
        min_channels: a.min_channels,
        picks: events::measure::PickOptions {
            min_cc: a.min_cc,
            interpolate: a.interpolate,
        },
        magnitudes: events::measure::MagnitudeOptions {
            min_cc: a.min_cc,
            min_snr: a.min_snr,
            min_channels: a.mag_min_channels,
            amplitude: a.amplitude,
            correct: !a.no_mag_correction,
        },
    })?;
    let files: Vec<String> = r.files.iter().map(|p| p.display().to_string()).collect();
    eprintln!(
        "tmatch: {} events from {} detections, {} picks, {} magnitudes; wrote {}{}",
        r.events,
        r.detections,
        r.picks,
        r.magnitudes,
        files.join(", "),
        memory::peak_mib().map_or(String::new(), |m| format!("; peak memory {m} MiB"))
    );
    Ok(())
}

/// The arguments; a `--device` that names no device is refused as one
/// that is missing is, with exit code 1 rather than clap's 2 for usage.
fn parse_args() -> Cli {
    Cli::try_parse().unwrap_or_else(|e| {
        let device = matches!(
            e.get(ContextKind::InvalidArg),
            Some(ContextValue::String(arg)) if arg.starts_with("--device")
        );
        if e.kind() == ErrorKind::ValueValidation && device {
            let _ = e.print();
            std::process::exit(1);
        }
        e.exit()
    })
}

/// Output piped into `head` and the like ends the process quietly, as it
/// does for Unix tools, instead of a panic in `println!` (Rust ignores
/// SIGPIPE by default).
fn die_on_closed_pipes() {
    // SAFETY: sets a signal disposition at start-up, before any thread.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() -> ExitCode {
    memory::reuse_freed_memory();
    die_on_closed_pipes();
    let cli = parse_args();
    let r = match cli.command {
        Command::Templates(TemplatesCommand::Build(a)) => build(*a),
        Command::Templates(TemplatesCommand::Info(a)) => info(a),
        Command::Templates(TemplatesCommand::Import {
            tribe,
            output,
            overwrite,
        }) => import(&tribe, &output, overwrite),
        Command::Detect(a) => match detect(a) {
            Ok(code) => return code,
            Err(e) => Err(e),
        },
        Command::Merge(a) => merge(a),
        Command::Export(a) => export(a),
        Command::Plot(c) => plot(c),
        Command::Catalog(a) => catalog(*a),
        Command::Synth {
            output,
            day,
            days,
            hours,
            stations,
            sources,
        } => {
            let spec = match day {
                Some(d) if epoch::parse_day(&d).is_err() => {
                    Err(anyhow::anyhow!("--day {d}: not a date (YYYY-MM-DD)"))
                }
                Some(d) => Ok(synth::Spec::workload(
                    &d,
                    days.max(1),
                    hours,
                    stations.max(1),
                    sources,
                    7,
                )),
                None => Ok(synth::Spec::samples()),
            };
            spec.and_then(|spec| {
                synth::generate(&spec, &output)
                    .map(|()| eprintln!("wrote {}", output.display()))
                    .map_err(Into::into)
            })
        }
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
