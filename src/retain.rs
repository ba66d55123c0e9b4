//! `vaten retain`: the lake keeps personal data no longer than it needs (`[retention]`).
//!
//! - Quarter-hour tables older than `quarter_hours_months`: the date partitions of
//!   `intervals` and `cable_balance_15m` before the horizon, and of `grid_readings` and
//!   `installation_readings` before the horizon less a week, or before the reading each series
//!   needs to start from at the horizon when that is earlier (what a recompute of the first
//!   day after the horizon starts its series from). The daily and yearly tables keep
//!   those days: the days before the horizon are *sealed* (`sealed_before` in
//!   `_state/transform.json`) and never recomputed. Only days the transform has summarised
//!   under today's registry and rates are removed: otherwise the command stops and says to run
//!   `vaten transform` first.
//! - `rejected` date partitions older than `rejected_months`.
//! - `_runs` records that started more than `runs_months` ago.
//!
//! Everything in one journaled change; `--dry-run` says what would go and changes nothing.

use std::collections::{BTreeMap, BTreeSet};

use arrow::array::{AsArray, BooleanArray};
use arrow::datatypes::TimestampMicrosecondType;
use chrono::{Duration, Months, NaiveDate};
use chrono_tz::Tz;

use crate::config::RetentionConfig;
use crate::domain::time::{from_micros, local_date, local_midnight_utc};
use crate::error::{Error, Result};
use crate::intervals::plan::{
    anchor, current_inputs, fingerprint, partition_date, TransformState, TRANSFORM_STATE,
};
use crate::lake::parquet_io::{read_all, write_sorted};
use crate::lake::schema::{
    CABLE_BALANCE_15M, GRID_READINGS, INSTALLATION_READINGS, INTERVALS, REJECTED, RUNS,
};
use crate::lake::{Lake, TableSpec};
use crate::marts::rates::Rates;
use crate::registry::Registry;

/// Days of received readings kept before the quarter-hour horizon.
const RECEIVED_MARGIN_DAYS: i64 = 7;

/// What a retention removes (or would).
#[derive(Debug, Default)]
pub struct Retention {
    /// Per table: the partitions removed (their dates), in order.
    pub partitions: BTreeMap<String, Vec<NaiveDate>>,
    pub files: usize,
    pub runs_removed: usize,
    /// The new seal, when quarter-hours were retained.
    pub sealed_before: Option<NaiveDate>,
    pub dry_run: bool,
}

impl Retention {
    pub fn message(&self) -> String {
        let mut parts: Vec<String> = self
            .partitions
            .iter()
            .filter(|(_, d)| !d.is_empty())
            .map(|(t, d)| {
                format!(
                    "{t}: {} days ({}..={})",
                    d.len(),
                    d.first().expect("not empty"),
                    d.last().expect("not empty")
                )
            })
            .collect();
        if self.runs_removed > 0 {
            parts.push(format!("_runs: {} records", self.runs_removed));
        }
        let what = if parts.is_empty() {
            "nothing".to_string()
        } else {
            parts.join("; ")
        };
        let seal = self
            .sealed_before
            .map(|d| format!("; days before {d} sealed"))
            .unwrap_or_default();
        let verb = if self.dry_run {
            "would remove"
        } else {
            "removed"
        };
        format!("retention {verb} {what}{seal}")
    }
}

fn months_before(today: NaiveDate, months: u32) -> NaiveDate {
    today
        .checked_sub_months(Months::new(months))
        .unwrap_or(NaiveDate::MIN)
}

pub struct Setting<'a> {
    pub config: &'a RetentionConfig,
    pub registry: &'a Registry,
    pub rates: &'a Rates,
    pub tz: Tz,
    pub today: NaiveDate,
    pub dry_run: bool,
}

/// Applies (or with `dry_run` only reports) the retention to `lake` (opened for writing).
pub fn retain(lake: &Lake, s: &Setting) -> Result<Retention> {
    let mut done = Retention {
        dry_run: s.dry_run,
        ..Default::default()
    };
    let mut txn = lake.begin()?;
    let mut state: Option<TransformState> = lake.read_state(TRANSFORM_STATE)?;
    let mut cut: Vec<(&TableSpec, NaiveDate)> = Vec::new();
    if let Some(months) = s.config.quarter_hours_months {
        let horizon = months_before(s.today, months);
        let Some(st) = state.as_mut() else {
            return Err(Error::Usage(
                "the derived tables were never computed: run `vaten transform` before `vaten retain`"
                    .into(),
            ));
        };
        if st.fingerprint != fingerprint(s.registry, s.rates) {
            return Err(Error::Usage(
                "the derived tables do not reflect today's registry and rates: run `vaten transform` before `vaten retain` (sealed days are never recomputed)".into(),
            ));
        }
        // Every input file of a day up to the horizon must be summarised: what it could still
        // change before the horizon would otherwise be sealed away unseen.
        for (table, files) in current_inputs(lake)? {
            let reflected = st.inputs.get(&table);
            for rel in files {
                if partition_date(&rel).is_some_and(|d| d <= horizon)
                    && !reflected.is_some_and(|r| r.contains(&rel))
                {
                    return Err(Error::Usage(format!(
                        "{rel} is not summarised yet: run `vaten transform` before `vaten retain`"
                    )));
                }
            }
        }
        // The readings a recompute of the first unsealed day starts its series from stay: a
        // week before the horizon, or further back where a series has a longer gap.
        let anchor = from_micros(anchor(lake, s.registry, s.tz, horizon)?);
        let received_cut =
            (horizon - Duration::days(RECEIVED_MARGIN_DAYS)).min(local_date(anchor, s.tz));
        cut.extend([
            (&GRID_READINGS, received_cut),
            (&INSTALLATION_READINGS, received_cut),
            (&INTERVALS, horizon),
            (&CABLE_BALANCE_15M, horizon),
        ]);
        let sealed = st.sealed_before.map_or(horizon, |d| d.max(horizon));
        st.sealed_before = Some(sealed);
        done.sealed_before = Some(sealed);
    }
    if let Some(months) = s.config.rejected_months {
        cut.push((&REJECTED, months_before(s.today, months)));
    }
    let mut removed = BTreeSet::new();
    for (spec, before) in cut {
        let mut days = Vec::new();
        for f in lake.files(spec, None)? {
            let rel = lake.rel(&f);
            let Some(day) = partition_date(&rel) else {
                continue;
            };
            if day < before {
                days.push(day);
                txn.remove(rel.clone());
                removed.insert(rel);
                done.files += 1;
            }
        }
        days.sort();
        days.dedup();
        done.partitions.insert(spec.name.to_string(), days);
    }
    if let Some(months) = s.config.runs_months {
        let before = local_midnight_utc(months_before(s.today, months), s.tz).timestamp_micros();
        for f in lake.files(&RUNS, None)? {
            let Some(batch) = read_all(&f)? else { continue };
            let started = batch
                .column_by_name("started_at")
                .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>())
                .ok_or_else(|| Error::lake(&f, "_runs without started_at"))?;
            let keep: BooleanArray = started.iter().map(|t| Some(t >= Some(before))).collect();
            let old = keep.false_count();
            if old == 0 {
                continue;
            }
            done.runs_removed += old;
            done.files += 1;
            let rel = lake.rel(&f);
            if old == batch.num_rows() {
                txn.remove(rel);
            } else {
                let staged = txn.staging_path("parquet");
                write_sorted(
                    &staged,
                    &RUNS,
                    &arrow::compute::filter_record_batch(&batch, &keep)?,
                )?;
                txn.publish(&staged, rel);
            }
        }
    }
    if s.dry_run || txn.is_empty() {
        // Dropping the change leaves nothing behind.
        return Ok(done);
    }
    if let Some(mut st) = state {
        st.forget(&removed);
        lake.stage_state(&mut txn, TRANSFORM_STATE, &st)?;
    }
    txn.commit()?;
    Ok(done)
}
