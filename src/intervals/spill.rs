//! A full recompute holds the received rows of one batch of cables at a time (memory bounded by
//! the batch, not the cooperative). Reading them per batch would read every received file once
//! per batch: a year of 1,000 connections in batches of 100 is the whole year read ten times.
//! Instead the received tables are read once, a range of days at a time, and each batch's rows
//! are set aside in files of its own (uncompressed Parquet in the change's staging folder, gone
//! with it whatever happens); a batch then reads only its own rows back, and deletes them. The
//! disk this takes at most is an uncompressed copy of the received columns the stage reads
//! (several times their zstd size).

use std::collections::BTreeMap;
use std::fs::File;
use std::path::PathBuf;

use polars::prelude::*;

use crate::error::{Error, Result};
use crate::lake::read::rows_by_group;
use crate::lake::schema::{GRID_DAYS, GRID_READINGS, INSTALLATION_READINGS};
use crate::lake::{Lake, TableSpec, Txn};

/// The received tables a batch holds: the table, its key column, and the columns the
/// intervals stage and the cable balance read (`compute`, `day_registers`, `voltages`).
pub const RECEIVED_READS: [(&TableSpec, &str, &[&str]); 3] = [
    (
        &GRID_READINGS,
        "ean",
        &[
            "ean",
            "meter_id",
            "t",
            "delivery_seq",
            "import_wh",
            "export_wh",
            "quality",
        ],
    ),
    (
        &GRID_DAYS,
        "ean",
        &[
            "ean",
            "meter_id",
            "delivery_seq",
            "import_t1_wh",
            "import_t2_wh",
            "export_t1_wh",
            "export_t2_wh",
        ],
    ),
    (
        &INSTALLATION_READINGS,
        "installation_id",
        &[
            "installation_id",
            "p_meter",
            "t",
            "seq",
            "p_wh",
            "battery_charge_wh",
            "battery_discharge_wh",
            "voltage_avg_v",
            "voltage_min_v",
            "voltage_max_v",
        ],
    ),
];

/// Rows of a received table read at once while setting rows aside (with the parts of two
/// batches gathered from them at a time, and the next range being read): some 2 million rows
/// of a couple of hundred MB, whatever the cooperative's size. A month at most.
const ROWS_AT_ONCE: usize = 2_000_000;

/// Per batch, per received table: the files holding that batch's rows, in the order read.
pub struct Spilled {
    files: Vec<BTreeMap<&'static str, Vec<PathBuf>>>,
}

/// Keys of one batch per received table: (group name, its keys) as [`Lake::prefetch`] takes
/// them, one entry per table of [`RECEIVED_READS`].
pub type BatchKeys = Vec<Vec<(String, Vec<String>)>>;

/// Reads each received table once and sets each batch's rows aside. `batches[b][i]` are batch
/// `b`'s groups for table `RECEIVED_READS[i]`. `None` when a received file lies outside a day
/// partition (a hand-made lake): the batches then read the files themselves.
pub fn spill(lake: &Lake, txn: &mut Txn, batches: &[BatchKeys]) -> Result<Option<Spilled>> {
    // Each table's days, from one listing (sorted: day folders sort as dates do).
    let mut days_of: Vec<Vec<chrono::NaiveDate>> = Vec::new();
    for (spec, _, _) in RECEIVED_READS {
        let mut days = Vec::new();
        for f in lake.files(spec, None)? {
            match super::plan::partition_date(&lake.rel(&f)) {
                Some(d) => days.push(d),
                None => return Ok(None),
            }
        }
        days.dedup();
        days_of.push(days);
    }
    // `VATEN_SPILL_ROWS` (tests only) makes the ranges smaller: a day each at 1.
    let rows_at_once = std::env::var("VATEN_SPILL_ROWS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(ROWS_AT_ONCE);
    let dir = txn.staging_path("spill");
    std::fs::create_dir_all(&dir).map_err(|e| Error::lake(&dir, e))?;
    // Per table, every batch's keys as one group each: a row goes to the batch that holds its
    // key.
    let by_batch: Vec<Vec<(String, Vec<String>)>> = (0..RECEIVED_READS.len())
        .map(|i| {
            batches
                .iter()
                .enumerate()
                .map(|(b, keys)| {
                    let all = keys[i]
                        .iter()
                        .flat_map(|(_, k)| k.iter().cloned())
                        .collect();
                    (b.to_string(), all)
                })
                .collect()
        })
        .collect();
    let mut files: Vec<BTreeMap<&'static str, Vec<PathBuf>>> = vec![BTreeMap::new(); batches.len()];
    // Where the time goes, for `VATEN_LOG=vaten=debug`: waiting for the reader; gathering and
    // writing.
    let mut spent = [std::time::Duration::ZERO; 2];
    // A range is read on a thread of its own while the one before it is set aside: reading
    // (Polars) and setting aside (two threads) each left part of the two cores idle. A
    // rendezvous: at most the range being read and the one being set aside are held.
    std::thread::scope(|scope| -> Result<()> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Range>>(0);
        let by_batch = &by_batch;
        let days_of = &days_of;
        let reader = scope.spawn(move || {
            let ranges = read_ranges(lake, days_of, by_batch, rows_at_once, &tx);
            if let Err(e) = ranges {
                // The receiver may be gone already (it failed first): nothing to tell then.
                let _ = tx.send(Err(e));
            }
        });
        let mut set_aside_all = || -> Result<()> {
            loop {
                let waited = std::time::Instant::now();
                let Ok(range) = rx.recv() else {
                    return Ok(());
                };
                let Range { table, n, days, df } = range?;
                spent[0] += waited.elapsed();
                let started = std::time::Instant::now();
                let (spec, key, _) = RECEIVED_READS[table];
                let (df, rows) = rows_by_group(&df, key, &by_batch[table])?;
                // An empty first part too: a batch without rows of a table holds an empty
                // frame of it, as a prefetch does (its scans then read no file).
                let wanted: Vec<(usize, &IdxCa)> = rows
                    .iter()
                    .enumerate()
                    .filter(|(b, rows)| !rows.is_empty() || !files[*b].contains_key(spec.name))
                    .collect();
                let name = |b: usize| dir.join(format!("{}-{b}-{n}.parquet", spec.name));
                set_aside(&df, &wanted, &name)?;
                for (b, _) in wanted {
                    files[b].entry(spec.name).or_default().push(name(b));
                }
                spent[1] += started.elapsed();
                tracing::debug!("{} of {days} set aside", spec.name);
            }
        };
        let done = set_aside_all();
        // On an error here the reader's next send fails and it stops.
        drop(rx);
        let read = reader
            .join()
            .map_err(|_| Error::Internal("the thread reading received rows panicked".into()));
        done.and(read)
    })?;
    tracing::debug!(
        "received tables set aside: waited for reading {:.2} s, gathered and written {:.2} s",
        spent[0].as_secs_f64(),
        spent[1].as_secs_f64(),
    );
    give_back_freed_memory();
    Ok(Some(Spilled { files }))
}

/// Returns the pages of memory freed while setting rows aside to the system. The ranges were
/// allocated on the reading thread and freed on others, which leaves glibc's arenas holding
/// freed pages among used ones: without this, the batches of a year of 3 cables that follow
/// started from about 790 MiB resident instead of 600 MiB.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn give_back_freed_memory() {
    // SAFETY: malloc_trim only releases free memory of the allocator's own arenas.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn give_back_freed_memory() {}

/// One range of days of one received table, as read for setting aside.
struct Range {
    /// Index into [`RECEIVED_READS`].
    table: usize,
    /// The range's number within its table (names its files).
    n: usize,
    /// Its days, for the log.
    days: String,
    df: DataFrame,
}

/// Reads each received table once, a range of days at a time, and hands each range to `tx`
/// (stopping when nobody receives any more).
fn read_ranges(
    lake: &Lake,
    days_of: &[Vec<chrono::NaiveDate>],
    by_batch: &[Vec<(String, Vec<String>)>],
    rows_at_once: usize,
    tx: &std::sync::mpsc::SyncSender<Result<Range>>,
) -> Result<()> {
    for (i, (spec, key, columns)) in RECEIVED_READS.iter().enumerate() {
        // One scan of the whole table, its days chosen by the partition filter below: handing
        // each range the files from its first day on (`Lake::scan_from`) measured slower
        // (a year's full recompute set its received tables aside in 29-32 s, not 19-25 s).
        // A Polars error says nothing of where: the table is named (a lake error names its path).
        let Some(lf) = lake.scan(spec).map_err(|e| match e {
            Error::Polars(e) => Error::Lake {
                path: lake.root().join(spec.name),
                message: format!("could not be read: {e}"),
            },
            other => other,
        })?
        else {
            continue;
        };
        // A day of a table holds about 96 rows per key (fewer for the day registers).
        let keys: usize = by_batch[i].iter().map(|(_, k)| k.len()).sum();
        let days_at_once = (rows_at_once / (96 * keys.max(1))).clamp(1, 31);
        let part = spec.partitioning.key();
        let mut cols: Vec<Expr> = columns.iter().map(|c| col(*c)).collect();
        cols.push(col(part));
        let held: Vec<&str> = by_batch[i]
            .iter()
            .flat_map(|(_, k)| k.iter().map(String::as_str))
            .collect();
        let held = lit(Series::new("held".into(), held)).implode(false);
        for (n, range) in days_of[i].chunks(days_at_once).enumerate() {
            let (Some(first), Some(last)) = (range.first(), range.last()) else {
                continue;
            };
            // On the partition key: the scan opens only these days' files.
            let date = col(part).cast(DataType::Date);
            let df = lf
                .clone()
                .filter(date.clone().gt_eq(lit(*first)).and(date.lt_eq(lit(*last))))
                .filter(col(*key).is_in(held.clone(), false))
                .select(cols.clone())
                .collect()
                .map_err(|e| Error::Lake {
                    path: lake.root().join(spec.name),
                    message: format!("the days {first} to {last} could not be read: {e}"),
                })?;
            let days = format!("{first} to {last}");
            if tx
                .send(Ok(Range {
                    table: i,
                    n,
                    days,
                    df,
                }))
                .is_err()
            {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Gathers each wanted batch's rows of `df` and writes them to `name(batch)`, on two threads:
/// gathering and encoding are single-threaded work that left the second core idle (a year of
/// 40 cables spent 14 s here on one core).
fn set_aside(
    df: &DataFrame,
    wanted: &[(usize, &IdxCa)],
    name: &(dyn Fn(usize) -> PathBuf + Sync),
) -> Result<()> {
    const THREADS: usize = 2;
    let write = |(b, rows): &(usize, &IdxCa)| -> Result<()> {
        let mut part = df.take(rows)?;
        let path = name(*b);
        let file = File::create(&path).map_err(|e| Error::lake(&path, e))?;
        // Read back whole, once: no statistics to skip by.
        ParquetWriter::new(file)
            .with_compression(ParquetCompression::Uncompressed)
            .with_statistics(StatisticsOptions::empty())
            .finish(&mut part)?;
        Ok(())
    };
    std::thread::scope(|scope| {
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let write = &write;
                scope.spawn(move || wanted.iter().skip(t).step_by(THREADS).try_for_each(write))
            })
            .collect();
        // Every thread joined (a panic in one is an error here, not the process's), then
        // the first error.
        let done: Vec<Result<()>> = threads
            .into_iter()
            .map(|thread| {
                thread.join().unwrap_or_else(|_| {
                    Err(Error::Internal(
                        "a thread setting rows aside panicked".into(),
                    ))
                })
            })
            .collect();
        done.into_iter().collect::<Result<()>>()
    })
}

impl Spilled {
    /// Holds batch `b`'s received rows as [`Lake::prefetch`] would have read them.
    pub fn hold(&self, lake: &Lake, b: usize, keys: &BatchKeys) -> Result<()> {
        for (i, (spec, key, _)) in RECEIVED_READS.iter().enumerate() {
            let Some(paths) = self.files.get(b).and_then(|f| f.get(spec.name)) else {
                continue;
            };
            let mut df: Option<DataFrame> = None;
            for p in paths {
                let file = File::open(p).map_err(|e| Error::lake(p, e))?;
                let part = ParquetReader::new(file).finish()?;
                // Read once: the disk it took goes back now, not at the commit.
                std::fs::remove_file(p).map_err(|e| Error::lake(p, e))?;
                match &mut df {
                    Some(df) => {
                        df.vstack_mut(&part)?;
                    }
                    None => df = Some(part),
                }
            }
            if let Some(df) = df {
                lake.hold(spec, key, &keys[i], &df)?;
            }
        }
        Ok(())
    }
}
