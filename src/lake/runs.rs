//! The `_runs` table: one record per command that changed the lake.

use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use chrono::{DateTime, Utc};

use super::schema::RUNS;
use super::Lake;
use crate::error::Result;

/// The id of this command's run: the one `vaten schedule` gave the job it started (to tell
/// whether it was recorded), else a new one. Taken from `VATEN_RUN_ID` only when it has the
/// form of a run id (no stray variable names two runs alike).
pub fn this_run_id() -> String {
    std::env::var("VATEN_RUN_ID")
        .ok()
        .filter(|id| {
            id.len() <= 64
                && id.len() >= 16
                && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        .unwrap_or_else(super::txn::new_txid)
}

#[derive(Debug, Clone)]
pub struct RunRecord {
    pub run_id: String,
    pub job: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// `ok`, `warning` or `failed`.
    pub status: String,
    pub rows_in: i64,
    pub rows_out: i64,
    pub message: String,
}

impl RunRecord {
    fn batch(&self) -> RecordBatch {
        let ts = |t: DateTime<Utc>| {
            Arc::new(
                TimestampMicrosecondArray::from(vec![t.timestamp_micros()]).with_timezone("UTC"),
            )
        };
        RecordBatch::try_new(
            RUNS.arrow_schema(),
            vec![
                Arc::new(StringArray::from(vec![self.run_id.as_str()])),
                Arc::new(StringArray::from(vec![self.job.as_str()])),
                ts(self.started_at),
                ts(self.finished_at),
                Arc::new(StringArray::from(vec![self.status.as_str()])),
                Arc::new(Int64Array::from(vec![self.rows_in])),
                Arc::new(Int64Array::from(vec![self.rows_out])),
                Arc::new(StringArray::from(vec![self.message.as_str()])),
            ],
        )
        .expect("runs batch matches its schema")
    }
}

impl Lake {
    /// Appends one run record in a change of its own.
    pub fn record_run(&self, run: &RunRecord) -> Result<()> {
        let mut txn = self.begin()?;
        self.stage_batch(&mut txn, &RUNS, None, &run.batch())?;
        txn.commit()
    }
}
