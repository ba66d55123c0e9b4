//! `vaten query "SQL"`: SQL over the lake's tables through Polars, each table registered under
//! its name (hive partition keys as columns), printed as a table or written as CSV, JSON lines
//! or Parquet. A reader: it takes no lock and changes nothing.

use std::io::Write;
use std::path::Path;

use polars::prelude::*;
use polars::sql::SQLContext;

use crate::error::{Error, Result};
use crate::lake::schema::ALL_TABLES;
use crate::lake::Lake;

mod cable_files;
mod partition_groups;
#[cfg(test)]
mod test_rows;
mod top_files;
mod top_n;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A table for people (all rows).
    Table,
    Csv,
    /// One JSON object per line.
    Json,
    /// Parquet (needs --output).
    Parquet,
}

/// Runs `sql` over every table the lake has.
pub fn run(lake: &Lake, sql: &str) -> Result<DataFrame> {
    let mut ctx = SQLContext::new();
    for spec in ALL_TABLES {
        if let Some(lf) = lake.scan(spec)? {
            ctx.register(spec.name, lf);
        }
    }
    let one_line = |e: PolarsError| {
        Error::Query(
            e.to_string()
                .lines()
                .next()
                .unwrap_or("invalid SQL")
                .to_string(),
        )
    };
    answer(Some(lake), &mut ctx, sql).map_err(one_line)
}

/// Sets what Polars reads from the environment, for a `vaten query` process. Call it first,
/// before the configuration is read or the lake opened: changing the environment is only sound
/// while no other thread can read it, and a lake on object storage starts a runtime's threads.
pub fn set_polars_environment(format: Format) {
    // SAFETY of set_var (below): the process has no thread besides this one yet.
    // Polars reads files on a runtime of its own with as many threads as it computes on, as
    // it chooses: one reading thread (`POLARS_ASYNC_THREAD_COUNT=1`, once 6 % faster for a
    // year's daily sums when Polars read and summed them; vaten now sums them file by file)
    // left a cable's month read from the disk 0.25-0.31 s against 0.22-0.27 s
    // (`docs/benchmarks.md`, "Fifteenth session: the files asked for ahead of their readers").
    if format == Format::Table {
        // Polars' table printer reads its limits from the environment; a negative limit
        // shows every row and every column, as `Format::Table` promises.
        std::env::set_var("POLARS_FMT_MAX_ROWS", "-1");
        std::env::set_var("POLARS_FMT_MAX_COLS", "-1");
    }
}

/// Runs `sql` in `ctx`: a query keeping named cables' rows on their files alone
/// (`cable_files`, then answered as below without the lake); sums grouped by keys that
/// include the partition key file by file (`partition_groups`); a top N narrowed first to
/// the files that can hold the answer (`top_files`, from the lake's footers), or else by a
/// first pass over the key (`top_n`).
/// Should one of these ways fail, the next is tried, and last the query as written.
fn answer(lake: Option<&Lake>, ctx: &mut SQLContext, sql: &str) -> PolarsResult<DataFrame> {
    if let Some(narrowed) = lake.and_then(|lake| cable_files::narrowed(lake, sql)) {
        tracing::debug!(
            "{} narrowed to its cables' {} files",
            narrowed.table,
            narrowed.files
        );
        let mut on_files = SQLContext::new();
        on_files.register(narrowed.table, narrowed.scan);
        // A panic on a file is an answer here too: the query then runs as written.
        match unprinted(|| answer(None, &mut on_files, sql)) {
            Ok(Ok(df)) => return Ok(df),
            Ok(Err(e)) => tracing::debug!("the query on its cables' files failed ({e})"),
            Err(_) => tracing::debug!("the query on its cables' files panicked"),
        }
    }
    if let Some(plan) = lake.and_then(|lake| partition_groups::planned(lake, ctx, sql)) {
        tracing::debug!(
            "sums grouped by partition, file by file: {} of {} files",
            plan.files(),
            plan.all_files
        );
        match partition_groups::run(plan) {
            Ok(df) => return Ok(df),
            Err(partition_groups::Failed::Overflow(what)) => {
                polars_bail!(ComputeError: "{what}")
            }
            Err(partition_groups::Failed::Other(e)) => {
                tracing::debug!("summing file by file failed ({e}); running it as written")
            }
        }
    }
    if let Some(found) = lake.and_then(|lake| top_files::narrowed(lake, ctx, sql)) {
        let (read, of) = found.files;
        tracing::debug!("top N from {read} of {of} files: {}", found.sql);
        match top_files::run(found) {
            Ok(df) => return Ok(df),
            Err(e) => {
                tracing::debug!("the query on the files that can hold its answer failed ({e})")
            }
        }
    }
    if let Some(narrowed) = top_n::narrowed(ctx, sql) {
        tracing::debug!("top N narrowed to: {narrowed}");
        match ctx.execute(&narrowed).and_then(collect) {
            Ok(df) => return Ok(df),
            Err(e) => tracing::debug!("the narrowed query failed ({e}); running it as written"),
        }
    }
    collect(ctx.execute(sql)?)
}

/// Runs `f`, catching a panic on this thread without printing it: a hostile file may make a
/// Parquet reader panic, and that is an answer (the query then runs another way), not a
/// defect to report. The process's panic hook is wrapped once, never swapped per call, so
/// other threads' panics are printed as before.
fn unprinted<T>(f: impl FnOnce() -> T) -> std::thread::Result<T> {
    wrap_panic_hook();
    let before = QUIET.with(|q| q.replace(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    QUIET.with(|q| q.set(before));
    result
}

thread_local! {
    /// Whether a panic on this thread goes unprinted (see [`unprinted`]).
    static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Wraps the process's panic hook once so that it prints nothing on a [`QUIET`] thread. Called
/// before `collect` swaps the hook too, so the wrap never happens inside that swap.
fn wrap_panic_hook() {
    static WRAPPED: std::sync::Once = std::sync::Once::new();
    WRAPPED.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(std::cell::Cell::get) {
                previous(info)
            }
        }));
    });
}

/// Runs a query on Polars' streaming engine (a year's top 10 then never holds the year in
/// memory), or, where that engine gives up on it (an error, or a panic on what it does not run
/// yet), on the in-memory engine.
fn collect(lf: LazyFrame) -> PolarsResult<DataFrame> {
    let streaming = lf.clone();
    // The engine's panic is an answer here, not a defect: nothing of it is printed.
    wrap_panic_hook();
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let streamed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        // One SQL statement has one result (never several sinks).
        streaming
            .collect_with_engine(Engine::Streaming)
            .map(|r| r.unwrap_single())
    }));
    std::panic::set_hook(hook);
    match streamed {
        Ok(Ok(df)) => Ok(df),
        // Whatever the streaming engine could not do, the in-memory engine runs or refuses
        // with its own error, as every query was answered before.
        Ok(Err(e)) => {
            tracing::debug!("the streaming engine refused the query ({e}); running it in memory");
            lf.collect()
        }
        Err(_) => {
            tracing::debug!("the streaming engine cannot run the query yet; running it in memory");
            lf.collect()
        }
    }
}

/// A query's output never goes into the lake: a file there would be read as part of a table,
/// or overwrite one (exit 2). Paths are compared after resolving links and `..`.
pub fn refuse_inside_lake(out: &Path, lake: &Path) -> Result<()> {
    let Ok(lake) = lake.canonicalize() else {
        return Ok(()); // no lake yet: nothing to overwrite
    };
    // The deepest part of the path that exists, resolved, with the rest appended.
    let absolute = if out.is_absolute() {
        out.to_path_buf()
    } else {
        std::env::current_dir()?.join(out)
    };
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    let resolved = loop {
        match existing.canonicalize() {
            Ok(p) => {
                break rest
                    .iter()
                    .rev()
                    .fold(p, |acc: std::path::PathBuf, part| acc.join(part))
            }
            Err(_) => match (existing.parent(), existing.file_name()) {
                (Some(parent), Some(name)) => {
                    rest.push(name.to_os_string());
                    existing = parent;
                }
                _ => {
                    return Err(Error::Usage(format!(
                        "{}: not a usable path",
                        out.display()
                    )))
                }
            },
        }
    };
    if resolved.starts_with(&lake) {
        return Err(Error::Usage(format!(
            "--output {} lies inside the lake ({}); write it somewhere else",
            out.display(),
            lake.display()
        )));
    }
    Ok(())
}

/// Writes the result in `format` to `out` (standard output when `None`). A table shows every
/// row and column only after `set_polars_environment(Format::Table)` (Polars' printer reads
/// its limits from the environment).
pub fn write(df: &mut DataFrame, format: Format, out: Option<&Path>) -> Result<()> {
    let mut sink: Box<dyn Write> = match out {
        Some(p) => Box::new(
            std::fs::File::create(p).map_err(|e| Error::Usage(format!("{}: {e}", p.display())))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    match format {
        Format::Table => {
            // Every row and column: `set_polars_environment` lifted the printer's limits.
            writeln!(sink, "{df}")?;
        }
        Format::Csv => CsvWriter::new(&mut sink).finish(df)?,
        Format::Json => JsonWriter::new(&mut sink)
            .with_json_format(JsonFormat::JsonLines)
            .finish(df)?,
        Format::Parquet => {
            if out.is_none() {
                return Err(Error::Usage("--format parquet needs --output FILE".into()));
            }
            ParquetWriter::new(&mut sink).finish(df)?;
        }
    }
    sink.flush()?;
    Ok(())
}
