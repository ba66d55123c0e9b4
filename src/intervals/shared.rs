//! `cable_balance_15m` as one file per day for all cables. A cable's day is 96 rows: a file
//! per cable and day (14,640 for a year of 40 cables) cost a full recompute more in creating
//! and encoding files than in writing its rows. The cables' rows are gathered by day over the
//! transform and written at its end, one file per day (or, should the rows held pass
//! [`MAX_ROWS`], whenever they do: a day then has a file per such flush). A later run that
//! recomputes some cables' days first takes apart the shared files of those days: the rows
//! of the cables it does not recompute there are gathered again, the file goes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Mutex;

use arrow::array::{AsArray, BooleanArray, RecordBatch};
use arrow::compute::{concat_batches, filter_record_batch};
use chrono::NaiveDate;
use polars::prelude::{DataFrame, DataType};

use super::plan::Window;
use crate::domain::time::EPOCH_DAY;
use crate::error::{Error, Result};
use crate::lake::convert::to_batch;
use crate::lake::migrate::conform;
use crate::lake::parquet_io::read_all;
use crate::lake::{Lake, TableSpec, Txn};

/// Rows held before they are written (some 150 bytes each in memory: a year of 40 cables is
/// 1.4 million, written once at the end).
const MAX_ROWS: usize = 2_000_000;

/// The rows of a cable table partitioned by day (with `cable_id` and a local `date`), gathered
/// from every cable to be written as one file per day.
pub struct DayPool {
    spec: &'static TableSpec,
    held: Mutex<Due>,
    max_rows: usize,
}

/// Rows gathered by day that are due to be written, one file per day (see [`Due::write`]).
pub struct Due {
    spec: &'static TableSpec,
    days: BTreeMap<NaiveDate, Vec<RecordBatch>>,
    rows: usize,
}

impl DayPool {
    pub fn new(spec: &'static TableSpec) -> Self {
        Self::with_max_rows(spec, MAX_ROWS)
    }

    fn with_max_rows(spec: &'static TableSpec, max_rows: usize) -> Self {
        DayPool {
            spec,
            held: Mutex::new(Due::empty(spec)),
            max_rows,
        }
    }

    /// Adds the rows of a frame with the table's columns and a `date` column (the local day
    /// each row belongs to). Returns what the caller must write now that the rows held passed
    /// the bound (none, one or several hand-overs).
    pub fn add_frame(&self, df: &DataFrame) -> Result<Vec<Due>> {
        let days: Vec<Option<i32>> = df
            .column("date")?
            .cast(&DataType::Int32)?
            .i32()?
            .iter()
            .collect();
        let batch = to_batch(df, self.spec)?;
        let mut due = Vec::new();
        // Runs of one day (the rows come in time order, so a day is one run; were they not,
        // a day would get several slices, still all of its rows).
        let mut start = 0;
        while start < days.len() {
            let end = start
                + days[start..]
                    .iter()
                    .take_while(|d| **d == days[start])
                    .count();
            let day = days[start]
                .map(|d| EPOCH_DAY + chrono::Duration::days(i64::from(d)))
                .ok_or_else(|| Error::Internal(format!("{} row without a day", self.spec.name)))?;
            due.extend(self.add(day, batch.slice(start, end - start)));
            start = end;
        }
        Ok(due)
    }

    fn add(&self, day: NaiveDate, batch: RecordBatch) -> Option<Due> {
        // A worker that panicked holding it fails the transform; the lock itself never does.
        let mut held = self
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        held.rows += batch.num_rows();
        held.days.entry(day).or_default().push(batch);
        (held.rows >= self.max_rows).then(|| std::mem::replace(&mut *held, Due::empty(self.spec)))
    }

    /// What is still held, to be written.
    pub fn rest(self) -> Due {
        self.held
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes apart, before the cables of `windows` recompute their days, the shared files
    /// (`files`, with their partition values) of each day some of them recompute: the file is
    /// removed in `txn`, and the rows in it of the cables that do not recompute that day are
    /// gathered again (as a cable's own files of other tables stay: also those of a cable
    /// that left the registry after the seal, see `docs/architecture.md`).
    pub fn take_apart(
        &self,
        lake: &Lake,
        txn: &mut Txn,
        files: &[(PathBuf, Option<String>)],
        windows: &BTreeMap<String, Window>,
    ) -> Result<Vec<Due>> {
        let mut due = Vec::new();
        for (file, part) in files {
            let Some(day) = part.as_deref().and_then(|p| p.parse::<NaiveDate>().ok()) else {
                continue;
            };
            let redone: BTreeSet<&str> = windows
                .iter()
                .filter(|(_, w)| w.contains(day))
                .map(|(c, _)| c.as_str())
                .collect();
            if redone.is_empty() {
                continue;
            }
            txn.remove(lake.rel(file));
            let Some(batch) = read_all(file)? else {
                continue;
            };
            let batch = conform(self.spec, &batch).map_err(|e| Error::lake(file, e))?;
            let cables = batch
                .column(self.spec.column_index("cable_id"))
                .as_string::<i32>();
            let keep: BooleanArray = cables
                .iter()
                .map(|c| Some(c.is_some_and(|c| !redone.contains(c))))
                .collect();
            let kept = filter_record_batch(&batch, &keep)?;
            if kept.num_rows() > 0 {
                due.extend(self.add(day, kept));
            }
        }
        Ok(due)
    }
}

impl Due {
    fn empty(spec: &'static TableSpec) -> Self {
        Due {
            spec,
            days: BTreeMap::new(),
            rows: 0,
        }
    }

    /// Stages one shared file per day (the writer sorts its rows by the table's key). The
    /// change is locked only to hand over each file, not while its rows are joined.
    pub fn write(self, lake: &Lake, txn: &Mutex<&mut Txn>) -> Result<()> {
        let schema = self.spec.arrow_schema();
        for (day, batches) in self.days {
            let all = concat_batches(&schema, &batches)?;
            let mut txn = txn
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            lake.stage_shared(&mut txn, self.spec, Some(&day.to_string()), &all)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lake::schema::CABLE_BALANCE_15M;
    use polars::prelude::*;

    /// A cable's quarter-hours over `days` days from 1 March 2026, in time order.
    fn cable_rows(cable: &str, days: i64) -> DataFrame {
        let n = (days * 96) as usize;
        let start_us = 1_772_319_600_000_000i64; // 2026-03-01T00:00 in Amsterdam (23:00 UTC)
        let ints = |name: &str| Column::new(name.into(), vec![1i64; n]);
        let floats = |name: &str| Column::new(name.into(), vec![Some(230.0f64); n]);
        DataFrame::new_infer_height(vec![
            Column::new("cable_id".into(), vec![cable; n]),
            Column::new(
                "interval_start".into(),
                (0..n as i64)
                    .map(|i| start_us + i * 900_000_000)
                    .collect::<Vec<_>>(),
            ),
            ints("connections"),
            ints("connections_reporting"),
            ints("connections_derived"),
            ints("l_wh"),
            ints("t_wh"),
            ints("p_wh"),
            ints("v_wh"),
            ints("matched_wh"),
            ints("net_wh"),
            floats("voltage_avg_v"),
            floats("voltage_min_v"),
            floats("voltage_max_v"),
            Column::new("battery_net_wh".into(), vec![None::<i64>; n]),
            Column::new(
                "date".into(),
                // 20,513 is 1 March 2026 in days since 1970-01-01.
                (0..n as i32).map(|i| 20_513 + i / 96).collect::<Vec<_>>(),
            ),
        ])
        .unwrap()
    }

    #[test]
    fn rows_are_gathered_by_day_and_handed_back_past_the_bound() {
        let pool = DayPool::with_max_rows(&CABLE_BALANCE_15M, 5 * 96);
        // Two days of K2, then three of K1: the fifth day's rows pass the bound.
        assert!(pool.add_frame(&cable_rows("K2", 2)).unwrap().is_empty());
        let mut due = pool.add_frame(&cable_rows("K1", 3)).unwrap();
        assert_eq!(due.len(), 1, "past the bound once");
        let full = due.remove(0);
        assert_eq!(full.rows, 5 * 96);
        let first = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
        let days: Vec<(NaiveDate, usize)> = full
            .days
            .iter()
            .map(|(d, b)| (*d, b.iter().map(RecordBatch::num_rows).sum()))
            .collect();
        assert_eq!(
            days,
            vec![
                (first, 2 * 96),
                (first.succ_opt().unwrap(), 2 * 96),
                (first + chrono::Days::new(2), 96)
            ]
        );
        assert_eq!(pool.rest().rows, 0, "nothing left after the hand-over");
    }

    #[test]
    fn every_hand_over_of_one_frame_is_returned() {
        // Seven days past a bound of two days' rows: three hand-overs (days 1-2, 3-4, 5-6),
        // the seventh day left held. None may be dropped.
        let pool = DayPool::with_max_rows(&CABLE_BALANCE_15M, 2 * 96);
        let due = pool.add_frame(&cable_rows("K1", 7)).unwrap();
        assert_eq!(
            due.iter()
                .map(|d| (d.days.len(), d.rows))
                .collect::<Vec<_>>(),
            vec![(2, 2 * 96), (2, 2 * 96), (2, 2 * 96)]
        );
        let rest = pool.rest();
        assert_eq!((rest.days.len(), rest.rows), (1, 96));
    }

    #[test]
    fn taking_apart_keeps_the_other_cables_rows_of_the_recomputed_days() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open_for_write(dir.path(), "test", std::time::Duration::ZERO).unwrap();
        // 1-3 March for K1 and K2, one shared file per day.
        let mut txn = lake.begin().unwrap();
        let pool = DayPool::new(&CABLE_BALANCE_15M);
        for cable in ["K1", "K2"] {
            assert!(pool.add_frame(&cable_rows(cable, 3)).unwrap().is_empty());
        }
        pool.rest().write(&lake, &Mutex::new(&mut txn)).unwrap();
        txn.commit().unwrap();
        let files = lake.files_by_tag(&CABLE_BALANCE_15M, None).unwrap();
        assert_eq!(files.shared().len(), 3);

        // K1 recomputes from 2 March on: those days' files go, K2's rows of them come back.
        let mut txn = lake.begin().unwrap();
        let pool = DayPool::new(&CABLE_BALANCE_15M);
        let second = NaiveDate::from_ymd_opt(2026, 3, 2).unwrap();
        let windows = BTreeMap::from([(
            "K1".to_string(),
            super::Window {
                from: second,
                to: None,
            },
        )]);
        let due = pool
            .take_apart(&lake, &mut txn, files.shared(), &windows)
            .unwrap();
        assert!(due.is_empty());
        let kept = pool.rest();
        assert_eq!(
            kept.days.keys().copied().collect::<Vec<_>>(),
            vec![second, second.succ_opt().unwrap()]
        );
        assert_eq!(kept.rows, 2 * 96);
        for batch in kept.days.values().flatten() {
            let cables = batch.column(0).as_string::<i32>();
            assert!(cables.iter().all(|c| c == Some("K2")));
        }
        txn.commit().unwrap();
        let left = lake.files_by_tag(&CABLE_BALANCE_15M, None).unwrap();
        let days: Vec<_> = left.shared().iter().map(|(_, d)| d.clone()).collect();
        assert_eq!(days, vec![Some("2026-03-01".to_string())]);
    }
}
