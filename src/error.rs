//! The library's error type. Each variant maps to one of the exit codes of `docs/configuration.md`:
//! `2` for what the user must fix in flags, configuration or registry; `1` for everything else.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A bad flag, configuration or registry: the user must fix the input (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The lake could not be read or written.
    #[error("lake {path}: {message}")]
    Lake { path: PathBuf, message: String },
    /// Another process holds the lake's write lock.
    #[error("the lake is locked by another writer ({holder}); try again when it has finished")]
    Locked { holder: String },
    /// The grid operator refused us or kept failing.
    #[error("grid operator: {0}")]
    Grid(String),
    /// An SQL statement the query engine refused (exit 1, as the reports issue asks: the
    /// command ran and the statement failed).
    #[error("query: {0}")]
    Query(String),
    /// A chart that could not be drawn.
    #[error("chart: {0}")]
    Chart(String),
    /// A P1 telegram that could not be decoded.
    #[error("P1 telegram {0}")]
    P1(String),
    /// A defect in vaten itself (a panic caught at a job's boundary).
    #[error("internal error: {0}")]
    Internal(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("polars: {0}")]
    Polars(#[from] polars::error::PolarsError),
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => 2,
            _ => 1,
        }
    }

    pub fn lake(path: impl Into<PathBuf>, message: impl std::fmt::Display) -> Self {
        Error::Lake {
            path: path.into(),
            message: message.to_string(),
        }
    }
}
