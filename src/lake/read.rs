//! Reading tables with Polars: the same view an analyst gets (hive partition keys become
//! columns). Polars work is blocking; call it off the async runtime.

use polars::prelude::*;

use super::{Lake, TableSpec};
use crate::error::Result;

/// Tables whose rows for some keys are held in memory: table name → those rows.
pub type Prefetched = std::sync::Mutex<std::collections::HashMap<&'static str, DataFrame>>;

impl Lake {
    /// A lazy scan over every file of a table, partition keys included as columns; `None`
    /// when the table has no files yet. While the table is prefetched, the rows held.
    pub fn scan(&self, spec: &TableSpec) -> Result<Option<LazyFrame>> {
        let held = self
            .prefetched
            .lock()
            .expect("prefetched")
            .get(spec.name)
            .cloned();
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

    /// Reads once the rows of `spec` whose `key` is one of `keys` (the `columns` named and the
    /// partition key), and answers [`Lake::scan`] of that table with them until
    /// [`Lake::forget_prefetched`]: the transform reads the received tables once for a group
    /// of cables instead of once per cable. Every scan while it holds must ask only for those
    /// keys and columns.
    pub fn prefetch(
        &self,
        spec: &'static TableSpec,
        key: &str,
        keys: &[String],
        columns: &[&str],
    ) -> Result<()> {
        let Some(lf) = self.scan(spec)? else {
            return Ok(());
        };
        let wanted = lit(Series::new("wanted".into(), keys)).implode(false);
        let mut cols: Vec<Expr> = columns.iter().map(|c| col(*c)).collect();
        cols.push(col(spec.partitioning.key()));
        let df = lf
            .filter(col(key).is_in(wanted, false))
            .select(cols)
            .collect()?;
        self.prefetched
            .lock()
            .expect("prefetched")
            .insert(spec.name, df);
        Ok(())
    }

    /// Scans read the files again.
    pub fn forget_prefetched(&self) {
        self.prefetched.lock().expect("prefetched").clear();
    }

    /// A whole table as a DataFrame (empty frame with no columns when there are no files).
    pub fn read_table(&self, spec: &TableSpec) -> Result<DataFrame> {
        match self.scan(spec)? {
            Some(lf) => Ok(lf.collect()?),
            None => Ok(DataFrame::empty()),
        }
    }
}
