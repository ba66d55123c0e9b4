//! `vaten compact`: every partition's small files rewritten into one, in one journaled change.
//!
//! The nightly runs add a file per table and partition each night (and the transform one per
//! cable), so a year of them leaves hundreds of small files an analyst's query must open. A
//! group of files is one partition of one table, and for the derived tables one tag's files
//! in it (their names start with the cable, `<cable>~part-…`, so that one cable's days can be
//! replaced alone; `consumption_daily`'s with the cable and its months, `<cable>~YYYY-MM..MM~part-…`,
//! so that a nightly run rewrites a month's file alone;
//! `cable_balance_15m`'s with `+all~`, one file per day for all cables):
//! every group of two or more files becomes one file of the same rows, sorted
//! by the table's key. Rows are not merged or deduplicated: the tables are equal before and
//! after, as a reader sees them. Readers are held off only for the renames (the commit lock).
//!
//! Compaction is not new data: the transform's bookkeeping (`_state/transform.json`) gets the
//! new file in place of the ones it replaces when it reflected all of them, so the next
//! transform recomputes nothing. A group with a file the transform has not seen yet becomes a
//! file it has not seen either (recomputed from that file's earliest reading, as new data is).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use arrow::array::RecordBatch;

use crate::error::{Error, Result};
use crate::intervals::plan::{TransformState, TRANSFORM_STATE};
use crate::lake::parquet_io::{read_all, write_sorted};
use crate::lake::schema::ALL_TABLES;
use crate::lake::Lake;

/// What a compaction did.
#[derive(Debug, Default)]
pub struct Compaction {
    /// Groups of files rewritten as one.
    pub groups: usize,
    pub files_before: usize,
    pub files_after: usize,
    pub rows: usize,
    /// Groups left as they were, with why (files of different schemas).
    pub skipped: Vec<String>,
}

impl Compaction {
    pub fn message(&self) -> String {
        let mut m = format!(
            "{} partitions compacted: {} files into {}, {} rows",
            self.groups, self.files_before, self.files_after, self.rows
        );
        for s in &self.skipped {
            m += &format!("; skipped {s}");
        }
        m
    }
}

/// Compacts every table of `lake` (opened for writing) in one change.
pub fn compact(lake: &Lake) -> Result<Compaction> {
    let mut done = Compaction::default();
    let mut txn = lake.begin()?;
    // (old files, new file) per rewritten group, relative to the lake root.
    let mut replaced: Vec<(BTreeSet<String>, String)> = Vec::new();
    for spec in ALL_TABLES {
        let mut groups: BTreeMap<(PathBuf, String), Vec<PathBuf>> = BTreeMap::new();
        for file in lake.files(spec, None)? {
            let dir = file.parent().map(PathBuf::from).unwrap_or_default();
            groups
                .entry((dir, crate::lake::name_prefix(&file)))
                .or_default()
                .push(file);
        }
        for ((dir, prefix), files) in groups {
            if files.len() < 2 {
                continue;
            }
            let mut batches: Vec<RecordBatch> = Vec::new();
            for f in &files {
                if let Some(b) = read_all(f)? {
                    batches.push(b);
                }
            }
            let schema = match batches.first() {
                Some(b) => b.schema(),
                None => spec.arrow_schema(),
            };
            if batches.iter().any(|b| b.schema() != schema) {
                done.skipped
                    .push(format!("{}: files of different schemas", lake.rel(&dir)));
                continue;
            }
            let batch = arrow::compute::concat_batches(&schema, &batches)?;
            let rel_dir = lake.rel(&dir);
            let staged = txn.staging_path("parquet");
            write_sorted(&staged, spec, &batch)?;
            let name = format!("{prefix}part-{}-compacted.parquet", txn.txid());
            let new = format!("{rel_dir}/{name}");
            if files.iter().any(|f| lake.rel(f) == new) {
                return Err(Error::Internal(format!("{new} exists already")));
            }
            txn.publish(&staged, new.clone());
            let old: BTreeSet<String> = files.iter().map(|f| lake.rel(f)).collect();
            for f in &old {
                txn.remove(f.clone());
            }
            done.groups += 1;
            done.files_before += files.len();
            done.files_after += 1;
            done.rows += batch.num_rows();
            replaced.push((old, new));
        }
    }
    if txn.is_empty() {
        return Ok(done);
    }
    if let Some(mut state) = lake.read_state::<TransformState>(TRANSFORM_STATE)? {
        for inputs in state.inputs.values_mut() {
            for (old, new) in &replaced {
                let reflected = old.iter().filter(|f| inputs.contains(*f)).count();
                if reflected == 0 {
                    continue;
                }
                inputs.retain(|f| !old.contains(f));
                if reflected == old.len() {
                    inputs.insert(new.clone());
                }
            }
        }
        lake.stage_state(&mut txn, TRANSFORM_STATE, &state)?;
    }
    txn.commit()?;
    Ok(done)
}
