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
/// Writes a report through a temporary file, fsynced, renamed into place and the folder
/// fsynced. What lies under `<reports>/private/` is the owner's only: folders `0700`, files
/// `0600` (whatever the umask); nothing outside the reports folder is touched.
fn write_file(reports: &Path, path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    let dir = path.parent().expect("report path has a folder");
    let private_root = reports.join("private");
    let private = path.starts_with(&private_root);
    let cannot = |what: &Path, e: std::io::Error| {
        Error::Usage(format!("{}: cannot write: {e}", what.display()))
    };
    std::fs::create_dir_all(reports).map_err(|e| cannot(reports, e))?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(if private { 0o700 } else { 0o755 })
        .create(dir)
        .map_err(|e| cannot(dir, e))?;
    if private {
        // Folders made before (by an older version, or by hand) are closed too, from
        // `private` down to the file's folder.
        for d in dir.ancestors().take_while(|d| d.starts_with(&private_root)) {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| cannot(d, e))?;
        }
    }
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if private { 0o600 } else { 0o644 })
        .open(&tmp)
        .map_err(|e| cannot(&tmp, e))?;
    if private {
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| cannot(&tmp, e))?;
    }
    file.write_all(text.as_bytes())
        .map_err(|e| cannot(&tmp, e))?;
    file.sync_all().map_err(|e| cannot(&tmp, e))?;
    drop(file);
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// What a report command wrote.
#[derive(Debug, Default, Clone)]
pub struct Written {
    pub files: Vec<PathBuf>,
}
