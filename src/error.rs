//! The library's error type: every error that comes from a file names it,
//! and one that comes from a library (the OS, HDF5, libmseed, the CUDA
//! driver) keeps that library's error as its source.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or folder the operating system could not read or write.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An HDF5 operation on a file that failed; `what` says which.
    #[error("{}: {what}: {source}", path.display())]
    Hdf5 {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: hdf5::Error,
    },
    /// A miniSEED file or record that libmseed refused; `said` holds what
    /// libmseed logged meanwhile, when that adds to its error.
    #[error("{}: {what}: {source}{}", path.display(), libmseed_said(said))]
    Mseed {
        path: PathBuf,
        what: String,
        #[source]
        source: mseed::MSError,
        said: Vec<String>,
    },
    /// A plot that could not be drawn or written; the drawing library's
    /// error is its source.
    #[error("{}: cannot draw the plot: {source}", path.display())]
    Plot {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A file whose content is wrong: malformed, damaged, or of the wrong
    /// kind.
    #[error("{}: {msg}", path.display())]
    File { path: PathBuf, msg: String },
    /// A channel none of whose files in a window could be read: what was
    /// wrong with each, each naming its file.
    #[error("{}", problems.join("; "))]
    Unreadable {
        channel: String,
        problems: Vec<String>,
    },
    /// Bad arguments or inconsistent inputs not tied to one file.
    #[error("{0}")]
    Input(String),
    /// A compute device that is missing or refused.
    #[error("{0}")]
    Device(String),
    /// An operation of the CUDA driver on a GPU that failed.
    #[error("CUDA device {ordinal}: {}{source}", what.as_ref().map(|w| format!("{w}: ")).unwrap_or_default())]
    Cuda {
        ordinal: usize,
        what: Option<String>,
        #[source]
        source: cudarc::driver::DriverError,
    },
    /// A compute device that failed while working (an illegal address, a
    /// lost GPU): its state can no longer be trusted, so it takes no more
    /// work and the day it had goes to another device or a later run.
    #[error(transparent)]
    DeviceFault(Box<Error>),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn file(path: impl AsRef<Path>, msg: impl std::fmt::Display) -> Self {
        Error::File {
            path: path.as_ref().to_path_buf(),
            msg: msg.to_string(),
        }
    }

    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    pub fn hdf5(path: impl AsRef<Path>, what: &'static str, source: hdf5::Error) -> Self {
        Error::Hdf5 {
            path: path.as_ref().to_path_buf(),
            what,
            source,
        }
    }

    pub fn mseed(path: impl AsRef<Path>, what: impl Into<String>, source: mseed::MSError) -> Self {
        Error::Mseed {
            path: path.as_ref().to_path_buf(),
            what: what.into(),
            source,
            said: Vec::new(),
        }
    }
}

fn libmseed_said(said: &[String]) -> String {
    if said.is_empty() {
        String::new()
    } else {
        format!(" (libmseed: {})", said.join("; "))
    }
}

/// Attach a file name to errors of the OS and of libmseed.
pub trait WithPath<T> {
    fn at(self, path: impl AsRef<Path>) -> Result<T>;
}

impl<T> WithPath<T> for std::result::Result<T, std::io::Error> {
    fn at(self, path: impl AsRef<Path>) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }
}

impl<T> WithPath<T> for std::result::Result<T, mseed::MSError> {
    fn at(self, path: impl AsRef<Path>) -> Result<T> {
        self.map_err(|e| Error::mseed(path, "miniSEED", e))
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    /// A library's error stays reachable as the source, for callers that
    /// act on its kind (a missing file, a full disk), and the text still
    /// names the file.
    #[test]
    fn library_errors_keep_their_source_and_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.mseed");
        let e = crate::archive::mseed::read_records(&missing).unwrap_err();
        assert!(matches!(e, Error::Io { .. }), "{e:?}");
        let io = e.source().and_then(|s| s.downcast_ref::<std::io::Error>());
        assert_eq!(io.map(|e| e.kind()), Some(std::io::ErrorKind::NotFound));
        assert!(e.to_string().starts_with(&missing.display().to_string()));

        let not_h5 = dir.path().join("templates.h5");
        std::fs::write(&not_h5, "not HDF5").unwrap();
        let e = crate::templates::read(&not_h5).unwrap_err();
        assert!(matches!(e, Error::Hdf5 { .. }), "{e:?}");
        assert!(e.source().is_some_and(|s| s.is::<hdf5::Error>()));
        let text = e.to_string();
        assert!(
            text.contains("templates.h5: cannot open as HDF5: "),
            "{text}"
        );

        let not_mseed = dir.path().join("day.mseed");
        std::fs::write(&not_mseed, vec![b'x'; 4096]).unwrap();
        let e = crate::archive::mseed::read_records(&not_mseed).unwrap_err();
        let text = e.to_string();
        assert!(text.starts_with(&not_mseed.display().to_string()), "{text}");
    }
}
