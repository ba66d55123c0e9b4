//! Reading tables with Polars: the same view an analyst gets (hive partition keys become
//! columns). Polars work is blocking; call it off the async runtime.

use polars::prelude::*;

use super::{Lake, TableSpec};
use crate::error::Result;

impl Lake {
    /// A lazy scan over every file of a table, partition keys included as columns; `None`
    /// when the table has no files yet.
    pub fn scan(&self, spec: &TableSpec) -> Result<Option<LazyFrame>> {
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

    /// A whole table as a DataFrame (empty frame with no columns when there are no files).
    pub fn read_table(&self, spec: &TableSpec) -> Result<DataFrame> {
        match self.scan(spec)? {
            Some(lf) => Ok(lf.collect()?),
            None => Ok(DataFrame::empty()),
        }
    }
}
