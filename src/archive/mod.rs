//! Reading continuous data: an SDS tree read by path, or any other folder of
//! miniSEED files through a cached index of record headers. Records are
//! merged onto one sample grid per channel; where no record has data the
//! channel is masked, never zero-filled into "data".

pub mod index;
pub mod mseed;

use std::fs;
use std::path::{Path, PathBuf};

use crate::epoch::{self, Nanos};
use crate::error::{Error, Result, WithPath};

/// A file that could not be used, with the reason (kept in the day's status).
pub use index::Unreadable;

#[derive(Debug)]
pub enum Archive {
    /// `ROOT/YEAR/NET/STA/CHA.D/NET.STA.LOC.CHA.D.YEAR.DOY`
    Sds(PathBuf),
    /// Any other folder, indexed by record headers.
    Folder {
        root: PathBuf,
        index: index::Index,
        unreadable: Vec<Unreadable>,
    },
}

/// One channel's samples on a regular grid, with a mask of where data exists.
#[derive(Debug, Clone)]
pub struct RawTrace {
    pub id: String,
    /// Time of sample 0.
    pub start: Nanos,
    pub rate: f64,
    pub data: Vec<f64>,
    /// `true` where a record supplied the sample.
    pub mask: Vec<bool>,
    /// Problems met while reading (bad files, conflicting overlaps, other
    /// sampling rates), each naming its file. The samples that could be
    /// read are still used.
    pub problems: Vec<String>,
}

fn is_year_dir(p: &Path) -> bool {
    p.is_dir()
        && p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.len() == 4 && n.bytes().all(|b| b.is_ascii_digit()))
}

impl Archive {
    /// Open an archive folder: SDS when its top level holds year folders,
    /// otherwise an indexed folder.
    pub fn open(root: &Path) -> Result<Archive> {
        if !root.is_dir() {
            return Err(Error::file(root, "archive is not a folder"));
        }
        let entries = fs::read_dir(root).at(root)?;
        let sds = entries
            .filter_map(|e| e.ok())
            .any(|e| is_year_dir(&e.path()));
        if sds {
            Ok(Archive::Sds(root.to_path_buf()))
        } else {
            let (index, unreadable) = index::Index::open(root)?;
            Ok(Archive::Folder {
                root: root.to_path_buf(),
                index,
                unreadable,
            })
        }
    }

    /// Files that may hold data of channel `id` in `[t0, t1)`.
    fn files_for(&self, id: &str, t0: Nanos, t1: Nanos) -> Vec<PathBuf> {
        match self {
            Archive::Sds(root) => {
                let parts: Vec<&str> = id.split('.').collect();
                let [net, sta, _loc, cha] = parts.as_slice() else {
                    return Vec::new();
                };
                // A day file may run past midnight: look one day back too.
                (epoch::day_of(t0) - 1..=epoch::day_of(t1 - 1))
                    .filter_map(|day| {
                        let name = epoch::format_day(day);
                        let year = &name[..4];
                        let doy = epoch::day_of_year(day);
                        let p = root
                            .join(year)
                            .join(net)
                            .join(sta)
                            .join(format!("{cha}.D"))
                            .join(format!("{id}.D.{year}.{doy:03}"));
                        p.is_file().then_some(p)
                    })
                    .collect()
            }
            Archive::Folder { root, index, .. } => index.files_for(root, id, t0, t1),
        }
    }

    /// Every channel id the archive holds (for wildcard channel picks).
    pub fn channel_ids(&self) -> Vec<String> {
        match self {
            Archive::Sds(root) => {
                let mut ids = Vec::new();
                let walk = |p: &Path| -> Vec<PathBuf> {
                    fs::read_dir(p)
                        .map(|r| r.filter_map(|e| e.ok()).map(|e| e.path()).collect())
                        .unwrap_or_default()
                };
                for year in walk(root).into_iter().filter(|p| is_year_dir(p)) {
                    for net in walk(&year) {
                        for sta in walk(&net) {
                            for cha in walk(&sta) {
                                for f in walk(&cha) {
                                    let name = f.file_name().unwrap_or_default().to_string_lossy();
                                    // NET.STA.LOC.CHA.D.YEAR.DOY
                                    let parts: Vec<&str> = name.split('.').collect();
                                    if parts.len() == 7 {
                                        ids.push(parts[..4].join("."));
                                    }
                                }
                            }
                        }
                    }
                }
                ids.sort();
                ids.dedup();
                ids
            }
            Archive::Folder { index, .. } => index.channel_ids(),
        }
    }

    /// Files of an indexed folder that could not be read at all.
    pub fn unreadable(&self) -> &[Unreadable] {
        match self {
            Archive::Sds(_) => &[],
            Archive::Folder { unreadable, .. } => unreadable,
        }
    }

    /// Channel `id` within `[t0, t1)` on the grid `t0 + i / rate`, where
    /// `rate` is the channel's own sampling rate; the trace covers the part
    /// of the window the records span. `None` if no record overlaps.
    pub fn read(&self, id: &str, t0: Nanos, t1: Nanos) -> Result<Option<RawTrace>> {
        let mut problems = Vec::new();
        let records = self.records(id, t0, t1, &mut problems);
        if records.is_empty() {
            if problems.is_empty() {
                return Ok(None);
            }
            return Err(Error::Unreadable {
                channel: id.to_string(),
                problems,
            });
        }
        Ok(Some(merge(id, t0, t1, records, problems)))
    }

    /// The records of channel `id` that overlap `[t0, t1)`, each with its
    /// file, sorted by start. Damaged files give the records before the
    /// damage; what was wrong goes into `problems`.
    fn records(
        &self,
        id: &str,
        t0: Nanos,
        t1: Nanos,
        problems: &mut Vec<String>,
    ) -> Vec<(PathBuf, mseed::Record)> {
        let mut records = Vec::new();
        for path in self.files_for(id, t0, t1) {
            let (recs, damage, warnings) = mseed::read_good_records(&path);
            if !warnings.is_empty() {
                problems.push(format!(
                    "{}: libmseed: {}",
                    path.display(),
                    warnings.join("; ")
                ));
            }
            if let Some(e) = damage {
                problems.push(match recs.len() {
                    0 => e.to_string(),
                    n => format!("{e}; the {n} records before it are used"),
                });
            }
            let mut foreign = std::collections::BTreeSet::new();
            for r in recs {
                if r.id != id {
                    foreign.insert(r.id);
                    continue;
                }
                let end = epoch::sample_time(r.start, r.samples.len() as i64, r.rate);
                if end > t0 && r.start < t1 {
                    records.push((path.clone(), r));
                }
            }
            // SDS names promise a channel; say when they lie.
            if matches!(self, Archive::Sds(_)) && !foreign.is_empty() {
                problems.push(format!(
                    "{}: holds records of {} (not {id}); ignored",
                    path.display(),
                    foreign.into_iter().collect::<Vec<_>>().join(", ")
                ));
            }
        }
        records.sort_by_key(|(_, r)| r.start);
        records
    }
}

/// Records of one channel (sorted by start, at least one) merged onto the
/// grid of the first one's rate, over the part of `[t0, t1)` they cover.
/// Records at other rates are left out, and the first value read of a
/// sample is kept where overlapping records disagree; both are said in the
/// trace's problems.
fn merge(
    id: &str,
    t0: Nanos,
    t1: Nanos,
    records: Vec<(PathBuf, mseed::Record)>,
    mut problems: Vec<String>,
) -> RawTrace {
    // The first record's rate is the channel's; others are reported.
    let rate = records[0].1.rate;
    let same_rate = |r: &mseed::Record| ((r.rate - rate) / rate).abs() <= 1e-4;
    let index = |t: Nanos| ((t - t0) as f64 * rate / 1e9).round() as i64;
    // The grid spans the window's samples that the records cover.
    let n_window = ((t1 - t0) as f64 * rate / 1e9).ceil() as i64;
    let lo = records
        .iter()
        .filter(|(_, r)| same_rate(r))
        .map(|(_, r)| index(r.start))
        .min()
        .unwrap_or(0);
    let hi = records
        .iter()
        .filter(|(_, r)| same_rate(r))
        .map(|(_, r)| index(r.start) + r.samples.len() as i64)
        .max()
        .unwrap_or(0);
    let (lo, hi) = (lo.clamp(0, n_window), hi.clamp(0, n_window));
    let n = (hi - lo).max(0) as usize;
    let mut data = vec![0.0; n];
    let mut mask = vec![false; n];
    let mut conflicts = 0usize;
    let mut conflict_file = None;
    for (path, r) in &records {
        if !same_rate(r) {
            problems.push(format!(
                "{}: {id} record at {} has sampling rate {} Hz, the channel has {rate} Hz; \
                 record ignored",
                path.display(),
                epoch::format_time(r.start),
                r.rate
            ));
            continue;
        }
        let offset = index(r.start) - lo;
        for (i, &v) in r.samples.iter().enumerate() {
            let j = offset + i as i64;
            if j < 0 || j >= n as i64 {
                continue;
            }
            let j = j as usize;
            if mask[j] {
                if data[j] != v {
                    conflicts += 1;
                    conflict_file.get_or_insert_with(|| path.clone());
                }
            } else {
                data[j] = v;
                mask[j] = true;
            }
        }
    }
    if let Some(path) = conflict_file {
        problems.push(format!(
            "{}: {id}: {conflicts} overlapping samples disagree with earlier records; \
             the earlier values are kept",
            path.display()
        ));
    }
    RawTrace {
        id: id.to_string(),
        start: epoch::sample_time(t0, lo, rate),
        rate,
        data,
        mask,
        problems,
    }
}
