//! Reports, the last stage: read the lake (marts and runs), never write it.
//!
//! - [`nightly`]: the board's morning page for one day (HTML and Markdown);
//! - [`yearly`]: the public energy report of a year, and with it
//! - [`statements`]: one private page per participant.
//!
//! Paths follow `docs/configuration.md`. Figures are computed with Polars from the
//! lake tables; each carries its raw value in the HTML (see [`doc`]).

pub mod charts;
pub mod doc;
pub mod nightly;
pub mod restated;
pub mod statements;
pub mod yearly;

use std::path::{Path, PathBuf};

use polars::prelude::*;

use crate::error::{Error, Result};
use crate::lake::{Lake, TableSpec};

/// A table's rows matching `filter`, or an empty frame when the table has no files.
fn rows(lake: &Lake, spec: &TableSpec, filter: Expr, select: &[Expr]) -> Result<DataFrame> {
    match lake.scan(spec)? {
        Some(lf) => Ok(lf.filter(filter).select(select).collect()?),
        None => Ok(DataFrame::empty()),
    }
}

/// Column `name` of `df` as `i64` values (nulls as `None`); empty when the column is absent.
fn ints(df: &DataFrame, name: &str) -> Result<Vec<Option<i64>>> {
    if df.height() == 0 {
        return Ok(Vec::new());
    }
    Ok(df
        .column(name)?
        .cast(&DataType::Int64)?
        .i64()?
        .iter()
        .collect())
}

fn floats(df: &DataFrame, name: &str) -> Result<Vec<Option<f64>>> {
    if df.height() == 0 {
        return Ok(Vec::new());
    }
    Ok(df
        .column(name)?
        .cast(&DataType::Float64)?
        .f64()?
        .iter()
        .collect())
}

fn strings(df: &DataFrame, name: &str) -> Result<Vec<String>> {
    if df.height() == 0 {
        return Ok(Vec::new());
    }
    Ok(df
        .column(name)?
        .cast(&DataType::String)?
        .str()?
        .iter()
        .map(|s| s.unwrap_or("").to_string())
        .collect())
}

/// Writes `text` to `path` atomically (temporary file, then rename): a reader never sees half
/// a report.
fn write_file(path: &Path, text: &str) -> Result<()> {
    let dir = path.parent().expect("report path has a folder");
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::Usage(format!("{}: cannot create: {e}", dir.display())))?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)
        .map_err(|e| Error::Usage(format!("{}: cannot write: {e}", tmp.display())))?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// What a report command wrote.
#[derive(Debug, Default, Clone)]
pub struct Written {
    pub files: Vec<PathBuf>,
}
