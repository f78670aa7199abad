//! Index of a folder of miniSEED files that is not an SDS tree: which file
//! holds which channel over which time span, read from record headers once
//! and cached. A file whose size or modification time changed is read again.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};

use super::mseed;
use crate::epoch::Nanos;
use crate::error::{Result, WithPath};

const INDEX_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Span {
    pub id: String,
    pub start: Nanos,
    pub end: Nanos,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct FileEntry {
    size: u64,
    mtime_ns: i128,
    /// One span per channel: first sample to end of the last record.
    spans: Vec<Span>,
    /// Why the file could not be indexed, if it could not.
    error: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Index {
    version: u32,
    files: BTreeMap<PathBuf, FileEntry>,
}

/// A file the index could not read, with the reason.
#[derive(Debug, Clone)]
pub struct Unreadable {
    pub path: PathBuf,
    pub reason: String,
}

impl Index {
    /// Load the cached index of `root` (if any) and bring it up to date.
    /// Returns the index and the files that could not be read.
    pub fn open(root: &Path) -> Result<(Index, Vec<Unreadable>)> {
        let cache = cache_path(root);
        let mut index: Index = fs::read(&cache)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .filter(|i: &Index| i.version == INDEX_VERSION)
            .unwrap_or_default();
        index.version = INDEX_VERSION;
        let mut files = Vec::new();
        list_files(root, &mut files)?;
        let mut changed = files.len() != index.files.len();
        let mut fresh = BTreeMap::new();
        for path in files {
            let meta = fs::metadata(&path).at(&path)?;
            let size = meta.len();
            let mtime_ns = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos() as i128);
            let rel = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
            match index.files.remove(&rel) {
                Some(e) if e.size == size && e.mtime_ns == mtime_ns => {
                    fresh.insert(rel, e);
                }
                _ => {
                    changed = true;
                    let (spans, error) = match mseed::read_headers(&path) {
                        Ok(h) => (merge_spans(h), None),
                        Err(e) => (Vec::new(), Some(e.to_string())),
                    };
                    fresh.insert(
                        rel,
                        FileEntry {
                            size,
                            mtime_ns,
                            spans,
                            error,
                        },
                    );
                }
            }
        }
        index.files = fresh;
        if changed {
            // The cache is an optimisation: a read-only archive still works.
            if let Some(dir) = cache.parent() {
                let _ = fs::create_dir_all(dir);
            }
            if let Ok(json) = serde_json::to_vec(&index) {
                let tmp = cache.with_extension("tmp");
                if fs::write(&tmp, json).is_ok() {
                    let _ = fs::rename(&tmp, &cache);
                }
            }
        }
        let bad = index
            .files
            .iter()
            .filter_map(|(p, e)| {
                e.error.as_ref().map(|r| Unreadable {
                    path: root.join(p),
                    reason: r.clone(),
                })
            })
            .collect();
        Ok((index, bad))
    }

    /// Files holding channel `id` data that overlaps `[t0, t1)`.
    pub fn files_for(&self, root: &Path, id: &str, t0: Nanos, t1: Nanos) -> Vec<PathBuf> {
        self.files
            .iter()
            .filter(|(_, e)| {
                e.spans
                    .iter()
                    .any(|s| s.id == id && s.start < t1 && s.end > t0)
            })
            .map(|(p, _)| root.join(p))
            .collect()
    }

    pub fn channel_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .files
            .values()
            .flat_map(|e| e.spans.iter().map(|s| s.id.clone()))
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }
}

fn merge_spans(headers: Vec<mseed::Header>) -> Vec<Span> {
    let mut by_id: BTreeMap<String, Span> = BTreeMap::new();
    for h in headers {
        by_id
            .entry(h.id.clone())
            .and_modify(|s| {
                s.start = s.start.min(h.start);
                s.end = s.end.max(h.end);
            })
            .or_insert(Span {
                id: h.id,
                start: h.start,
                end: h.end,
            });
    }
    by_id.into_values().collect()
}

fn list_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = fs::read_dir(dir).at(dir)?;
    for entry in entries {
        let entry = entry.at(dir)?;
        let path = entry.path();
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let ft = entry.file_type().at(&path)?;
        if ft.is_dir() {
            list_files(&path, out)?;
        } else if ft.is_file() {
            out.push(path);
        }
    }
    Ok(())
}

/// The cache sits in the archive (`.tmatch-index.json`) when it is writable,
/// else under the user's cache folder, named after the archive's path.
fn cache_path(root: &Path) -> PathBuf {
    let local = root.join(".tmatch-index.json");
    let writable = fs::metadata(root)
        .map(|m| !m.permissions().readonly())
        .unwrap_or(false)
        && fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&local)
            .is_ok();
    if writable {
        return local;
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    let abs = fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    let hash = crate::checksum::fnv1a(abs.to_string_lossy().as_bytes());
    base.join("tmatch").join(format!("index-{hash:016x}.json"))
}
