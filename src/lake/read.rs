//! Reading tables with Polars: the same view an analyst gets (hive partition keys become
//! columns). Polars work is blocking; call it off the async runtime.

use polars::prelude::*;

use super::{Lake, TableSpec};
use crate::error::Result;

/// Tables whose rows for some keys are held in memory, split by group (a cable), and the group
/// scans answer for now.
#[derive(Default)]
pub struct Held {
    /// Table name → group → that group's rows (every group of the prefetch has a frame).
    tables: std::collections::HashMap<&'static str, std::collections::HashMap<String, DataFrame>>,
    focus: Option<String>,
}

pub type Prefetched = std::sync::Mutex<Held>;

impl Lake {
    /// A lazy scan over every file of a table, partition keys included as columns; `None`
    /// when the table has no files yet. While the table is prefetched, the rows held for the
    /// group in focus (see [`Lake::focus`]).
    pub fn scan(&self, spec: &TableSpec) -> Result<Option<LazyFrame>> {
        let held = {
            let held = self.prefetched.lock().expect("prefetched");
            match (held.tables.get(spec.name), &held.focus) {
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
        // Each row to its group in one pass (files sorted by key repeat the previous key).
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
        let mut split = std::collections::HashMap::new();
        for ((name, _), rows) in groups.iter().zip(rows) {
            let idx = IdxCa::from_vec("rows".into(), rows);
            split.insert(name.clone(), df.take(&idx)?);
        }
        self.prefetched
            .lock()
            .expect("prefetched")
            .tables
            .insert(spec.name, split);
        Ok(())
    }

    /// Scans of prefetched tables answer with `group`'s rows (none: they read the files).
    pub fn focus(&self, group: Option<&str>) {
        self.prefetched.lock().expect("prefetched").focus = group.map(str::to_string);
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
