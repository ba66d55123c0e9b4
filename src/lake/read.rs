//! Reading tables with Polars: the same view an analyst gets (hive partition keys become
//! columns). Polars work is blocking; call it off the async runtime.

use polars::prelude::*;

use super::{Lake, TableSpec};
use crate::error::Result;

/// Tables whose rows for some keys are held in memory, split by group (a cable), and per thread
/// the group its scans answer for now (the transform computes cables side by side).
#[derive(Default)]
pub struct Held {
    /// Table name → group → that group's rows (every group of the prefetch has a frame).
    tables: std::collections::HashMap<&'static str, std::collections::HashMap<String, DataFrame>>,
    focus: std::collections::HashMap<std::thread::ThreadId, String>,
}

pub type Prefetched = std::sync::Mutex<Held>;

impl Lake {
    /// A lazy scan over every file of a table, partition keys included as columns; `None`
    /// when the table has no files yet. While the table is prefetched, the rows held for the
    /// group in focus (see [`Lake::focus`]).
    pub fn scan(&self, spec: &TableSpec) -> Result<Option<LazyFrame>> {
        let held = {
            let held = self.prefetched.lock().expect("prefetched");
            match (
                held.tables.get(spec.name),
                held.focus.get(&std::thread::current().id()),
            ) {
                (Some(groups), Some(focus)) => groups.get(focus).cloned(),
                _ => None,
            }
        };
        if let Some(df) = held {
            return Ok(Some(df.lazy()));
        }
        if self.files(spec, None)?.is_empty() {
            return Ok(None);
        }
        let dir = self.table_dir(spec);
        let args = ScanArgsParquet {
            hive_options: HiveOptions::new_enabled(),
            ..Default::default()
        };
        let path = PlRefPath::new(format!("{}/", dir.display()));
        Ok(Some(LazyFrame::scan_parquet(path, args)?))
    }

    /// Reads once the rows of `spec` whose `key` is one of the groups' keys (the `columns`
    /// named and the partition key) and holds them split by group: while a group is in focus
    /// ([`Lake::focus`]), [`Lake::scan`] of that table answers with its rows, until
    /// [`Lake::forget_prefetched`]. The transform reads the received tables once for a batch
    /// of cables instead of once per cable. With `from`, only the partitions from that day on
    /// (a date-partitioned table). Every scan while it holds must ask only for the group's
    /// keys, those columns and those days.
    pub fn prefetch(
        &self,
        spec: &'static TableSpec,
        key: &str,
        groups: &[(String, Vec<String>)],
        columns: &[&str],
        from: Option<chrono::NaiveDate>,
    ) -> Result<()> {
        let Some(mut lf) = self.scan(spec)? else {
            return Ok(());
        };
        if let Some(from) = from {
            // On the partition key: the scan skips older files altogether.
            lf = lf.filter(
                col(spec.partitioning.key())
                    .cast(DataType::Date)
                    .gt_eq(lit(from)),
            );
        }
        let keys: Vec<&str> = groups
            .iter()
            .flat_map(|(_, k)| k.iter().map(String::as_str))
            .collect();
        let wanted = lit(Series::new("wanted".into(), keys)).implode(false);
        let mut cols: Vec<Expr> = columns.iter().map(|c| col(*c)).collect();
        cols.push(col(spec.partitioning.key()));
        let df = lf
            .filter(col(key).is_in(wanted, false))
            .select(cols)
            .collect()?;
        self.hold(spec, key, groups, &df)
    }

    /// Holds `df` (rows of `spec`, as [`Lake::prefetch`] reads them) split by group; rows of
    /// no group's keys are left out.
    pub fn hold(
        &self,
        spec: &'static TableSpec,
        key: &str,
        groups: &[(String, Vec<String>)],
        df: &DataFrame,
    ) -> Result<()> {
        let mut split = std::collections::HashMap::new();
        for ((name, _), part) in groups.iter().zip(split_by_group(df, key, groups)?) {
            split.insert(name.clone(), part);
        }
        self.prefetched
            .lock()
            .expect("prefetched")
            .tables
            .insert(spec.name, split);
        Ok(())
    }

    /// Scans of prefetched tables on this thread answer with `group`'s rows (none: they read
    /// the files). Other threads keep their own focus.
    pub fn focus(&self, group: Option<&str>) {
        let mut held = self.prefetched.lock().expect("prefetched");
        let me = std::thread::current().id();
        match group {
            Some(g) => held.focus.insert(me, g.to_string()),
            None => held.focus.remove(&me),
        };
    }

    /// Scans read the files again.
    pub fn forget_prefetched(&self) {
        *self.prefetched.lock().expect("prefetched") = Held::default();
    }

    /// A whole table as a DataFrame (empty frame with no columns when there are no files).
    pub fn read_table(&self, spec: &TableSpec) -> Result<DataFrame> {
        match self.scan(spec)? {
            Some(lf) => Ok(lf.collect()?),
            None => Ok(DataFrame::empty()),
        }
    }
}

/// The rows of `df` whose `key` is one of a group's keys, one frame per group (in the order
/// of `groups`), each in the order of `df`. One pass: files sorted by key repeat the previous
/// key, so most rows need no lookup.
pub fn split_by_group(
    df: &DataFrame,
    key: &str,
    groups: &[(String, Vec<String>)],
) -> Result<Vec<DataFrame>> {
    let group_of: std::collections::HashMap<&str, usize> = groups
        .iter()
        .enumerate()
        .flat_map(|(g, (_, k))| k.iter().map(move |k| (k.as_str(), g)))
        .collect();
    let mut rows: Vec<Vec<IdxSize>> = vec![Vec::new(); groups.len()];
    let mut last: Option<(&str, Option<usize>)> = None;
    for (i, k) in df.column(key)?.str()?.iter().enumerate() {
        let k = k.unwrap_or("");
        let g = match last {
            Some((l, g)) if l == k => g,
            _ => group_of.get(k).copied(),
        };
        last = Some((k, g));
        if let Some(g) = g {
            rows[g].push(i as IdxSize);
        }
    }
    rows.into_iter()
        .map(|rows| Ok(df.take(&IdxCa::from_vec("rows".into(), rows))?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lake::schema::GRID_READINGS;
    use crate::received::rows::{readings_batch, GridReading};

    fn reading(ean: &str, day: u32) -> GridReading {
        let date = chrono::NaiveDate::from_ymd_opt(2026, 10, day).unwrap();
        GridReading {
            ean: ean.into(),
            meter_id: "M".into(),
            t_us: i64::from(day) * 86_400_000_000,
            import_wh: i64::from(day),
            export_wh: 0,
            quality: "measured".into(),
            received_at_us: 0,
            delivery_seq: 1,
            cursor: "c".into(),
            date,
        }
    }

    fn eans_of(lake: &Lake) -> Vec<String> {
        let df = lake
            .scan(&GRID_READINGS)
            .unwrap()
            .unwrap()
            .sort(["ean", "t"], SortMultipleOptions::default())
            .collect()
            .unwrap();
        df.column("ean")
            .unwrap()
            .str()
            .unwrap()
            .iter()
            .map(|e| e.unwrap().to_string())
            .collect()
    }

    #[test]
    fn scans_answer_with_the_focused_group_and_a_group_not_held_reads_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open_for_write(dir.path(), "test", std::time::Duration::ZERO).unwrap();
        let mut txn = lake.begin().unwrap();
        for day in [1, 2, 3] {
            let rows: Vec<GridReading> = ["a", "b", "c"].iter().map(|e| reading(e, day)).collect();
            let date = rows[0].date.to_string();
            lake.stage_batch(
                &mut txn,
                &GRID_READINGS,
                Some(&date),
                &readings_batch(&rows, "r"),
            )
            .unwrap();
        }
        txn.commit().unwrap();
        let groups = vec![
            ("K1".to_string(), vec!["a".to_string()]),
            ("K2".to_string(), vec!["b".to_string()]),
        ];
        // From the 2nd on, as an incremental run holds only recent days.
        let from = chrono::NaiveDate::from_ymd_opt(2026, 10, 2);
        lake.prefetch(&GRID_READINGS, "ean", &groups, &["ean", "t"], from)
            .unwrap();
        lake.focus(Some("K1"));
        assert_eq!(eans_of(&lake), ["a", "a"], "K1's rows from the 2nd");
        lake.focus(Some("K2"));
        assert_eq!(eans_of(&lake), ["b", "b"]);
        // Each thread its own focus (the transform computes cables side by side); a thread
        // without one reads the files.
        lake.focus(Some("K1"));
        std::thread::scope(|s| {
            s.spawn(|| {
                assert_eq!(eans_of(&lake).len(), 9, "no focus on this thread yet");
                lake.focus(Some("K2"));
                assert_eq!(eans_of(&lake), ["b", "b"]);
            });
        });
        assert_eq!(
            eans_of(&lake),
            ["a", "a"],
            "this thread's focus is still K1"
        );
        // A cable of the batch left out of the prefetch reads the files: every row.
        lake.focus(Some("K3"));
        assert_eq!(eans_of(&lake).len(), 9);
        lake.forget_prefetched();
        lake.focus(Some("K1"));
        assert_eq!(eans_of(&lake).len(), 9, "nothing held any more");
    }
}
