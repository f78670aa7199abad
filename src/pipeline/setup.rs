//! A detection run made ready: its templates, archive and output file,
//! each checked before any day is read.

use std::path::{Path, PathBuf};

use super::check_span;
use crate::archive::Archive;
use crate::detect::DetectParams;
use crate::epoch::Day;
use crate::error::{Error, Result};
use crate::output::{Mode, RunInfo, RunParams, TemplateInfo, Writer};
use crate::shard::Shard;
use crate::templates::{self, TemplateSet};

/// What a run is asked to do.
pub struct Request<'a> {
    pub templates: &'a Path,
    pub archive: &'a Path,
    /// The requested days as given (`--days`), which the output records.
    pub days_text: &'a str,
    /// The days of this run: its shard of the requested ones.
    pub days: &'a [Day],
    pub shard: Option<Shard>,
    pub params: &'a DetectParams,
    pub output: &'a Path,
    pub mode: Mode,
    pub command_line: &'a str,
}

/// A run ready for [`run`](super::run).
pub struct Setup {
    pub set: TemplateSet,
    pub archive: Archive,
    pub writer: Writer,
    /// The days left to do: all of the run's, or those a resumed output
    /// lacks.
    pub todo: Vec<Day>,
    /// Whether an existing output was resumed.
    pub resumed: bool,
}

/// Read the templates, open the archive and the output (new, replaced or
/// resumed, as `r.mode` says); nothing is written when a check fails.
pub fn setup(r: &Request) -> Result<Setup> {
    let set = templates::read(r.templates)?;
    check_span(&set)?;
    check_template_shard(r.templates, &set, r.params.template_shard)?;
    let archive = Archive::open(r.archive)?;
    let run = RunInfo {
        template_checksum: set.checksum(),
        parameters: RunParams::new(
            absolute(r.templates),
            absolute(r.archive),
            r.days_text,
            r.params,
        )
        .to_json()?,
        shard: r.shard,
        template_shard: r.params.template_shard,
    };
    let info = TemplateInfo::of(&set);
    let opened = Writer::open(r.output, &info, &run, r.command_line, r.mode, r.days)?;
    Ok(Setup {
        set,
        archive,
        writer: opened.writer,
        todo: opened.todo,
        resumed: opened.resumed,
    })
}

/// Absolute, so that a resumed run or a shard on another node started from
/// another folder is recognised as the same run.
fn absolute(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

/// A template shard must hold a template.
fn check_template_shard(path: &Path, set: &TemplateSet, shard: Option<Shard>) -> Result<()> {
    match shard {
        Some(t) if t.index >= set.templates.len() => Err(Error::Input(format!(
            "--template-shard {t}: {} has {} templates, so this shard would have none",
            path.display(),
            set.templates.len()
        ))),
        _ => Ok(()),
    }
}
