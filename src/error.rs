//! The library's error type: every error that comes from a file names it.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A problem with one file: unreadable, malformed, or of the wrong kind.
    #[error("{}: {msg}", path.display())]
    File { path: PathBuf, msg: String },
    /// Bad arguments or inconsistent inputs not tied to one file.
    #[error("{0}")]
    Input(String),
    /// A compute device that is missing or refused.
    #[error("{0}")]
    Device(String),
    /// A compute device that failed while working (an illegal address, a
    /// lost GPU): its state can no longer be trusted, so it takes no more
    /// work and the day it had goes to another device or a later run.
    #[error("{0}")]
    DeviceFault(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn file(path: impl AsRef<Path>, msg: impl std::fmt::Display) -> Self {
        Error::File {
            path: path.as_ref().to_path_buf(),
            msg: msg.to_string(),
        }
    }
}

/// Attach a file name to errors from I/O and format libraries.
pub trait WithPath<T> {
    fn at(self, path: impl AsRef<Path>) -> Result<T>;
}

impl<T, E: std::fmt::Display> WithPath<T> for std::result::Result<T, E> {
    fn at(self, path: impl AsRef<Path>) -> Result<T> {
        self.map_err(|e| Error::file(path, e))
    }
}
