//! The few HDF5 operations the file formats share: scalar attributes,
//! resizable tables, and errors that name the file.

use std::path::Path;

use hdf5::types::VarLenUnicode;
use hdf5::{Dataset, Extent, File, H5Type};

use crate::error::{Error, Result};

/// Name the file in an HDF5 error.
pub trait InFile<T> {
    fn in_file(self, path: &Path) -> Result<T>;
}

impl<T> InFile<T> for hdf5::Result<T> {
    fn in_file(self, path: &Path) -> Result<T> {
        self.map_err(|e| Error::hdf5(path, "HDF5", e))
    }
}

/// A string as HDF5 stores it; NUL, which it cannot hold, becomes a space
/// rather than fail a write.
pub fn text(s: &str) -> VarLenUnicode {
    s.replace('\0', " ").parse().expect("no NUL")
}

pub fn write_attr<T: H5Type>(file: &File, name: &str, value: &T) -> hdf5::Result<()> {
    file.new_attr::<T>().create(name)?.write_scalar(value)
}

pub fn write_str_attr(file: &File, name: &str, value: &str) -> hdf5::Result<()> {
    write_attr(file, name, &text(value))
}

pub fn read_attr<T: H5Type>(file: &File, name: &str) -> hdf5::Result<T> {
    file.attr(name)?.read_scalar()
}

pub fn read_str_attr(file: &File, name: &str) -> hdf5::Result<String> {
    Ok(read_attr::<VarLenUnicode>(file, name)?.to_string())
}

pub fn has_attr(file: &File, name: &str) -> hdf5::Result<bool> {
    Ok(file.attr_names()?.iter().any(|n| n == name))
}

/// An empty table of `T` rows that grows by [`append`], in chunks of
/// `chunk` rows. Not compressed: a compressed chunk that is rewritten in
/// place and cut short by a kill would take the rows before it with it.
pub fn create_table<T: H5Type>(file: &File, name: &str, chunk: usize) -> hdf5::Result<Dataset> {
    file.new_dataset_builder()
        .chunk(chunk)
        .empty::<T>()
        .shape(Extent::resizable(0))
        .create(name)
}

pub fn read_table<T: H5Type>(file: &File, name: &str) -> hdf5::Result<Vec<T>> {
    file.dataset(name)?.read_raw()
}

/// Add `rows` at the end of a table made by [`create_table`].
pub fn append<T: H5Type>(table: &Dataset, rows: &[T]) -> hdf5::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let n = table.size();
    table.resize(n + rows.len())?;
    table.write_slice(rows, n..n + rows.len())
}
