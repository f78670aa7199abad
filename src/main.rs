//! The `tmatch` command line: argument parsing and messages; the work is
//! done by the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};

use tmatch::archive::Archive;
use tmatch::detect::ThresholdType;
use tmatch::pipeline::{self, DetectParams};
use tmatch::preprocess::Recipe;
use tmatch::templates::{self, BuildOptions, Phase};
use tmatch::{catalog, epoch, output, synth};

#[derive(Parser)]
#[command(
    name = "tmatch",
    version,
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
    /// Write the detections of a detections.h5 file as CSV.
    Export(ExportArgs),
    /// Generate a synthetic SDS archive with a catalog: the small sample
    /// set (data-samples/), or with --day a day-long 21-channel workload.
    Synth {
        /// Output folder.
        #[arg(short, long, default_value = "data-samples")]
        output: PathBuf,
        /// Generate one day (YYYY-MM-DD) at 100 Hz on 7 stations instead.
        #[arg(long)]
        day: Option<String>,
        /// Sources in the day workload (each catalogued once, occurring three times).
        #[arg(long, default_value_t = 200, requires = "day")]
        sources: usize,
    },
}

#[derive(Subcommand)]
enum TemplatesCommand {
    /// Cut templates around catalogue picks from the archive.
    Build(BuildArgs),
    /// Print what a template file holds.
    Info {
        /// templates.h5
        file: PathBuf,
    },
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
    phase: Phase,
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
    /// Memory for one batch of stacked traces, in GiB (more templates per batch).
    #[arg(long, default_value_t = 2.0)]
    memory: f64,
    /// Compute device: auto (every visible GPU, or the CPU where there is none or no
    /// NVIDIA driver), cpu, cuda (every visible GPU; an error without one), or
    /// cuda:0,2 (those GPUs).
    #[arg(long, default_value = "auto")]
    device: String,
    /// Replace an existing output file.
    #[arg(long)]
    overwrite: bool,
}

#[derive(Args)]
struct ExportArgs {
    /// detections.h5
    file: PathBuf,
    /// Output format.
    #[arg(long, default_value = "csv", value_parser = ["csv"])]
    format: String,
    /// Output file (default: standard output).
    #[arg(short, long)]
    output: Option<PathBuf>,
}

/// The days of a `--days` argument, with the text as given.
#[derive(Clone)]
struct Days(String, Vec<epoch::Day>);

fn parse_days(s: &str) -> Result<Days, String> {
    Ok(Days(s.to_string(), epoch::parse_days(s)?))
}

fn build(a: BuildArgs) -> Result<()> {
    pipeline::check_output(&a.output, a.overwrite)?;
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

fn info(path: &Path) -> Result<()> {
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
            t.id,
            epoch::format_time(t.origin),
            t.magnitude,
            t.channels.len(),
            t.max_pad() as f64 / set.rate
        );
    }
    Ok(())
}

fn detect(a: DetectArgs) -> Result<()> {
    let (backends, fallback) = tmatch::correlate::open_backends(&a.device)?;
    if let Some(line) = fallback {
        eprintln!("tmatch: {line}");
    }
    let Days(days_arg, days) = a.days;
    if !(a.memory > 0.0) {
        bail!("--memory must be positive");
    }
    let set = templates::read(&a.templates)?;
    let archive = Archive::open(&a.archive)?;
    pipeline::check_output(&a.output, a.overwrite)?;
    let params = DetectParams {
        threshold: a.threshold,
        threshold_type: a.threshold_type,
        trig_int: a.trig_int,
        min_channels: a.min_channels,
        shift_len: a.shift_len,
        memory_budget: (a.memory * (1u64 << 30) as f64) as usize,
    };
    let command_line = std::env::args().collect::<Vec<_>>().join(" ");
    let parameters = serde_json::json!({
        "templates": a.templates, "archive": a.archive, "days": days_arg,
        "threshold": a.threshold, "threshold_type": a.threshold_type.to_string(),
        "trig_int": a.trig_int, "min_channels": a.min_channels, "shift_len": a.shift_len,
    })
    .to_string();
    let mut writer = output::Writer::create(&a.output, &set, &command_line, &parameters)?;
    let names: Vec<String> = backends.iter().map(|b| b.name()).collect();
    eprintln!(
        "tmatch: {} templates, {} days, device {}",
        set.templates.len(),
        days.len(),
        names.join(", ")
    );
    let s = pipeline::run(
        &set,
        &archive,
        &days,
        &params,
        backends[0].as_ref(),
        &mut writer,
    )?;
    eprintln!(
        "{}: {} detections; {} days done, {} without data, {} failed; {:.2} s",
        a.output.display(),
        s.detections,
        s.days_done,
        s.days_without_data,
        s.days_failed,
        s.wall.as_secs_f64()
    );
    if s.days_failed > 0 {
        bail!(
            "{} days failed (see /days in {})",
            s.days_failed,
            a.output.display()
        );
    }
    Ok(())
}

fn export(a: ExportArgs) -> Result<()> {
    let d = output::read(&a.file)?;
    let csv = output::to_csv(&d);
    match a.output {
        Some(p) => std::fs::write(&p, csv).with_context(|| format!("{}", p.display()))?,
        None => print!("{csv}"),
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.command {
        Command::Templates(TemplatesCommand::Build(a)) => build(a),
        Command::Templates(TemplatesCommand::Info { file }) => info(&file),
        Command::Detect(a) => detect(a),
        Command::Export(a) => export(a),
        Command::Synth {
            output,
            day,
            sources,
        } => {
            let spec = match day {
                Some(d) if epoch::parse_day(&d).is_err() => {
                    Err(anyhow::anyhow!("--day {d}: not a date (YYYY-MM-DD)"))
                }
                Some(d) => Ok(synth::Spec::day_workload(&d, sources, 7)),
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
