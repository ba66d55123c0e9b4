//! Publishing `intervals`, `consumption_daily` and `tax_base_yearly`: a full recompute
//! replaces every file of these tables in one change, together with the rejections the
//! register arithmetic found.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use chrono_tz::Tz;
use serde_json::json;

use super::compute::{compute, IntervalRow, Problem};
use super::series::StepProblem;
use crate::clock::Clock;
use crate::domain::time::{from_micros, local_date};
use crate::error::Result;
use crate::lake::convert::to_batch;
use crate::lake::schema::{
    CABLE_BALANCE_15M, CABLE_BALANCE_DAILY, CONSUMPTION_DAILY, INTERVALS, TAX_BASE_YEARLY,
};
use crate::lake::Lake;
use crate::marts::cable::cable_balance;
use crate::marts::daily::{consumption_daily, intervals_frame};
use crate::marts::rates::Rates;
use crate::marts::yearly::tax_base_yearly;
use crate::received::rows::by_date;
use crate::received::{Received, ReceivedIndex, Rejected};
use crate::registry::Registry;
use polars::prelude::{col, lit, DataFrame, DataType, IntoLazy};

fn batch(rows: &[IntervalRow]) -> RecordBatch {
    let opt = |f: fn(&IntervalRow) -> Option<i64>| -> ArrayRef {
        Arc::new(Int64Array::from(rows.iter().map(f).collect::<Vec<_>>()))
    };
    RecordBatch::try_new(
        INTERVALS.arrow_schema(),
        vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &*r.ean))),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| &*r.cable_id),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| &*r.participant_id),
            )),
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| r.start_us))
                    .with_timezone("UTC"),
            ),
            opt(|r| r.l_wh),
            opt(|r| r.t_wh),
            opt(|r| r.p_wh),
            opt(|r| r.v_wh),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.l_quality.as_str()),
            )),
            Arc::new(StringArray::from(
                rows.iter()
                    .map(|r| r.p_quality.map(|q| q.as_str()))
                    .collect::<Vec<_>>(),
            )),
        ],
    )
    .expect("intervals batch matches its schema")
}

fn rejection(p: &Problem, now: chrono::DateTime<chrono::Utc>, tz: Tz) -> Rejected {
    let t = |us: i64| from_micros(us).format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let (reason, detail, payload) = match p.step {
        StepProblem::Backwards { from_t_us, to_t_us, from_wh, to_wh } => (
            "register_backwards",
            format!("{} register of {} went from {from_wh} to {to_wh} Wh without a meter exchange", p.register, p.key),
            json!({"key": p.key, "register": p.register, "from_t": t(from_t_us), "to_t": t(to_t_us), "from_wh": from_wh, "to_wh": to_wh}),
        ),
        StepProblem::OverCapacity { from_t_us, to_t_us, step_wh, max_wh } => (
            "over_capacity",
            format!("{} register of {} rose {step_wh} Wh where the connection carries at most {max_wh} Wh", p.register, p.key),
            json!({"key": p.key, "register": p.register, "from_t": t(from_t_us), "to_t": t(to_t_us), "step_wh": step_wh, "max_wh": max_wh}),
        ),
    };
    Rejected {
        source: "intervals".into(),
        received_at_us: now.timestamp_micros(),
        key: p.key.clone(),
        reason: reason.into(),
        detail,
        payload: payload.to_string(),
        delivery_seq: None,
        cursor: None,
        date: local_date(now, tz),
    }
}

/// Stages a frame with a `year` column as one file per year partition.
fn stage_by_year(
    lake: &Lake,
    txn: &mut crate::lake::Txn,
    df: &DataFrame,
    spec: &crate::lake::TableSpec,
) -> Result<()> {
    let years: std::collections::BTreeSet<i32> =
        df.column("year")?.i32()?.iter().flatten().collect();
    for year in years {
        let part = df
            .clone()
            .lazy()
            .filter(col("year").eq(lit(year)))
            .collect()?;
        lake.stage_batch(txn, spec, Some(&year.to_string()), &to_batch(&part, spec)?)?;
    }
    Ok(())
}

/// What a transform did.
#[derive(Debug, Default, Clone)]
pub struct TransformReport {
    pub intervals: usize,
    /// Rows of `consumption_daily`.
    pub days: usize,
    pub missing: usize,
    pub rejected: usize,
}

/// Recomputes `intervals` from everything received and replaces the table.
pub fn transform(
    lake: &Lake,
    registry: &Registry,
    rates: &Rates,
    clock: Clock,
    tz: Tz,
) -> Result<TransformReport> {
    let now = clock.now();
    let mut report = TransformReport::default();
    let mut txn = lake.begin()?;
    for spec in [
        &INTERVALS,
        &CONSUMPTION_DAILY,
        &TAX_BASE_YEARLY,
        &CABLE_BALANCE_15M,
        &CABLE_BALANCE_DAILY,
    ] {
        for old in lake.files(spec, None)? {
            let rel = old.strip_prefix(lake.root()).expect("file in lake");
            txn.remove(rel.to_string_lossy().into_owned());
        }
    }
    // One cable at a time: every derived table of a cable depends only on its connections,
    // so memory is bounded by the largest cable, not the cooperative.
    let mut problems = Vec::new();
    let cables: std::collections::BTreeSet<&str> = registry
        .connections
        .iter()
        .map(|c| c.cable_id.as_str())
        .collect();
    for cable in cables {
        let on_cable = registry
            .connections
            .iter()
            .filter(|c| c.cable_id == cable)
            .cloned()
            .collect();
        let sub = Registry::new(on_cable, registry.cables.clone());
        problems.extend(transform_cable(
            lake,
            &mut txn,
            &sub,
            rates,
            tz,
            &mut report,
        )?);
    }
    let received = Received {
        rejected: problems.iter().map(|p| rejection(p, now, tz)).collect(),
        ..Default::default()
    };
    report.rejected = ReceivedIndex::default()
        .stage(lake, &mut txn, received)?
        .rejected;
    txn.commit()?;
    Ok(report)
}

/// Computes and stages every derived table for the connections of `registry` (one cable).
fn transform_cable(
    lake: &Lake,
    txn: &mut crate::lake::Txn,
    registry: &Registry,
    rates: &Rates,
    tz: Tz,
    report: &mut TransformReport,
) -> Result<Vec<Problem>> {
    let (rows, problems) = compute(lake, registry, tz)?;
    report.intervals += rows.len();
    report.missing += rows
        .iter()
        .filter(|r| r.l_wh.is_none() || (r.p_quality.is_some() && r.p_wh.is_none()))
        .count();
    if rows.is_empty() {
        return Ok(problems);
    }
    let frame = intervals_frame(&rows)?;
    let daily = consumption_daily(lake, &frame)?;
    report.days += daily.height();
    let yearly = tax_base_yearly(&daily, registry, rates)?;
    let (cable_15m, cable_daily) = cable_balance(lake, &frame, registry)?;
    drop(frame);
    for (date, part) in by_date(rows, |r| r.date) {
        lake.stage_batch(txn, &INTERVALS, Some(&date.to_string()), &batch(&part))?;
    }
    stage_by_year(lake, txn, &daily, &CONSUMPTION_DAILY)?;
    stage_by_year(lake, txn, &cable_daily, &CABLE_BALANCE_DAILY)?;
    let dates: std::collections::BTreeSet<i32> = cable_15m
        .column("date")?
        .cast(&DataType::Int32)?
        .i32()?
        .iter()
        .flatten()
        .collect();
    for d in dates {
        let part = cable_15m
            .clone()
            .lazy()
            .filter(col("date").cast(DataType::Int32).eq(lit(d)))
            .collect()?;
        let day = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date")
            + chrono::Duration::days(i64::from(d));
        lake.stage_batch(
            txn,
            &CABLE_BALANCE_15M,
            Some(&day.to_string()),
            &to_batch(&part, &CABLE_BALANCE_15M)?,
        )?;
    }
    if yearly.height() > 0 {
        lake.stage_batch(
            txn,
            &TAX_BASE_YEARLY,
            None,
            &to_batch(&yearly, &TAX_BASE_YEARLY)?,
        )?;
    }
    Ok(problems)
}
