//! Publishing the derived tables (`intervals`, `consumption_daily`, `tax_base_yearly` and the
//! two cable tables) in one change, together with the rejections the register arithmetic
//! found. Every file is tagged with its cable: a recompute of some days of one cable replaces
//! that cable's files of those days (and merges its daily and yearly rows), nothing else.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, AsArray, BooleanArray, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use chrono_tz::Tz;
use serde_json::json;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use chrono::NaiveDate;

use super::compute::{compute, IntervalRow, Problem};
use super::plan::{anchor, current_inputs, fingerprint, plan, Plan, Scope, TransformState, Window};
use super::series::StepProblem;
use crate::clock::Clock;
use crate::domain::time::{from_micros, local_date};
use crate::error::Result;
use crate::lake::convert::to_batch;
use crate::lake::parquet_io::read_all;
use crate::lake::schema::ColType;
use crate::lake::schema::{
    CABLE_BALANCE_15M, CABLE_BALANCE_DAILY, CONSUMPTION_DAILY, GRID_DAYS, GRID_READINGS,
    INSTALLATION_READINGS, INTERVALS, TAX_BASE_YEARLY,
};
use crate::lake::Lake;
use crate::lake::TableSpec;
use crate::marts::cable::cable_balance;
use crate::marts::daily::{consumption_daily, intervals_frame, Ids};
use crate::marts::rates::Rates;
use crate::marts::yearly::tax_base_yearly;
use crate::received::erased::Erased;
use crate::received::rows::by_date;
use crate::received::{Received, ReceivedIndex, Rejected};
use crate::registry::Registry;
use polars::prelude::*;

fn batch(rows: &[IntervalRow], registry: &Registry) -> RecordBatch {
    let opt = |f: fn(&IntervalRow) -> Option<i64>| -> ArrayRef {
        Arc::new(Int64Array::from(rows.iter().map(f).collect::<Vec<_>>()))
    };
    let conn = |r: &IntervalRow| &registry.connections[r.conn as usize];
    RecordBatch::try_new(
        INTERVALS.arrow_schema(),
        vec![
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| conn(r).ean.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| conn(r).cable_id.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| conn(r).participant_id.as_str()),
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

/// Stages a frame with a `year` column as one file per year partition, tagged with `cable`.
fn stage_by_year(
    lake: &Lake,
    txn: &mut crate::lake::Txn,
    df: &DataFrame,
    spec: &crate::lake::TableSpec,
    cable: &str,
) -> Result<()> {
    let years: std::collections::BTreeSet<i32> =
        df.column("year")?.i32()?.iter().flatten().collect();
    for year in years {
        let part = df
            .clone()
            .lazy()
            .filter(col("year").eq(lit(year)))
            .collect()?;
        lake.stage_tagged(
            txn,
            spec,
            Some(&year.to_string()),
            Some(cable),
            &to_batch(&part, spec)?,
        )?;
    }
    Ok(())
}

/// What a transform did.
#[derive(Debug, Default, Clone)]
pub struct TransformReport {
    /// Interval rows written (the recomputed days only).
    pub intervals: usize,
    /// Rows of `consumption_daily` written.
    pub days: usize,
    pub missing: usize,
    pub rejected: usize,
    /// `full`, `incremental` or `range`, and the cables recomputed.
    pub mode: &'static str,
    pub cables: usize,
}

/// Recomputes the derived tables: all of them, the days `scope` names, or (incremental) the
/// days newly received data touches. The result equals a full recompute in every case.
pub fn transform(
    lake: &Lake,
    registry: &Registry,
    rates: &Rates,
    clock: Clock,
    tz: Tz,
    scope: Scope,
) -> Result<TransformReport> {
    let now = clock.now();
    let mut report = TransformReport::default();
    let inputs = current_inputs(lake)?;
    let fingerprint = fingerprint(registry, rates);
    let state: Option<TransformState> = lake.read_state(STATE)?;
    let plan = plan(
        lake,
        registry,
        tz,
        scope,
        state.as_ref(),
        (&fingerprint, &inputs),
    )?;
    let mut txn = lake.begin()?;
    let windows: BTreeMap<String, Option<Window>> = match plan {
        Plan::Full => {
            report.mode = "full";
            for spec in DERIVED {
                for old in lake.files(spec, None)? {
                    txn.remove(lake.rel(&old));
                }
            }
            registry
                .cables_in_use()
                .into_iter()
                .map(|c| (c, None))
                .collect()
        }
        Plan::Cables(w) => {
            report.mode = if matches!(scope, Scope::Range { .. }) {
                "range"
            } else {
                "incremental"
            };
            w.into_iter().map(|(c, w)| (c, Some(w))).collect()
        }
    };
    report.cables = windows.len();
    // One cable at a time: every derived table of a cable depends only on its connections,
    // so memory is bounded by the largest cable (or a group of small ones), not the
    // cooperative.
    let mut problems = Vec::new();
    let carried = Carried {
        erased: Erased::load(lake)?,
        sealed_year: state
            .as_ref()
            .and_then(|s| s.sealed_before)
            .map(|d| i64::from(chrono::Datelike::year(&d))),
    };
    for batch in batches(windows, registry) {
        // A full recompute reads the received tables once for a group of small cables, not
        // once per cable (each such read goes through every file). Whatever happens, the held
        // rows go with the batch.
        let _held = Held(lake);
        if batch.len() > 1 && batch.iter().all(|(_, w)| w.is_none()) {
            let cables: BTreeSet<&str> = batch.iter().map(|(c, _)| c.as_str()).collect();
            prefetch_received(lake, registry, &cables)?;
        }
        for (cable, window) in batch {
            let on_cable = registry
                .connections
                .iter()
                .filter(|c| c.cable_id == cable)
                .cloned()
                .collect();
            let sub = Registry::new(on_cable, registry.cables.clone());
            let done = transform_cable(
                lake,
                &mut txn,
                &sub,
                &cable,
                window,
                rates,
                tz,
                &carried,
                &mut report,
            );
            problems.extend(done?);
        }
    }
    let received = Received {
        rejected: problems.iter().map(|p| rejection(p, now, tz)).collect(),
        ..Default::default()
    };
    report.rejected = ReceivedIndex::default()
        .stage(lake, &mut txn, received)?
        .rejected;
    // A range recompute leaves newly received files for the next incremental run.
    if !matches!(scope, Scope::Range { .. }) {
        lake.stage_state(
            &mut txn,
            STATE,
            &TransformState {
                fingerprint,
                inputs,
                sealed_before: state.as_ref().and_then(|s| s.sealed_before),
            },
        )?;
    }
    txn.commit()?;
    Ok(report)
}

use super::plan::TRANSFORM_STATE as STATE;

/// The connections whose received rows a full recompute holds in memory at once: a year of
/// 100 connections is a few hundred MB.
const PREFETCH_CONNECTIONS: usize = 100;

/// The cables in groups of at most [`PREFETCH_CONNECTIONS`] connections (a larger cable alone),
/// in order.
fn batches(
    windows: BTreeMap<String, Option<Window>>,
    registry: &Registry,
) -> Vec<Vec<(String, Option<Window>)>> {
    let mut size: BTreeMap<&str, usize> = BTreeMap::new();
    for c in &registry.connections {
        *size.entry(c.cable_id.as_str()).or_default() += 1;
    }
    let mut out: Vec<Vec<(String, Option<Window>)>> = Vec::new();
    let mut held = 0;
    for (cable, window) in windows {
        let n = size.get(cable.as_str()).copied().unwrap_or(0);
        if out.is_empty() || held + n > PREFETCH_CONNECTIONS {
            out.push(Vec::new());
            held = 0;
        }
        held += n;
        out.last_mut().expect("pushed").push((cable, window));
    }
    out
}

/// Clears what [`prefetch_received`] held when dropped (after the batch, an error or a panic).
struct Held<'a>(&'a Lake);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.forget_prefetched();
    }
}

/// Holds in memory the received rows of the connections on `cables`: the columns the
/// intervals stage and the cable balance read (`compute`, `day_registers`, `voltages`).
fn prefetch_received(lake: &Lake, registry: &Registry, cables: &BTreeSet<&str>) -> Result<()> {
    let on: Vec<&crate::registry::Connection> = registry
        .connections
        .iter()
        .filter(|c| cables.contains(c.cable_id.as_str()))
        .collect();
    let eans: Vec<String> = on.iter().map(|c| c.ean.as_str().to_string()).collect();
    let installations: Vec<String> = on
        .iter()
        .filter_map(|c| c.installation.as_ref().map(|i| i.id.clone()))
        .collect();
    lake.prefetch(
        &GRID_READINGS,
        "ean",
        &eans,
        &[
            "ean",
            "meter_id",
            "t",
            "delivery_seq",
            "import_wh",
            "export_wh",
            "quality",
        ],
    )?;
    lake.prefetch(
        &GRID_DAYS,
        "ean",
        &eans,
        &[
            "ean",
            "meter_id",
            "delivery_seq",
            "import_t1_wh",
            "import_t2_wh",
            "export_t1_wh",
            "export_t2_wh",
        ],
    )?;
    lake.prefetch(
        &INSTALLATION_READINGS,
        "installation_id",
        &installations,
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
    )
}

/// The tables this stage writes.
const DERIVED: [&TableSpec; 5] = [
    &INTERVALS,
    &CONSUMPTION_DAILY,
    &TAX_BASE_YEARLY,
    &CABLE_BALANCE_15M,
    &CABLE_BALANCE_DAILY,
];

/// Computes and stages every derived table for the connections of `registry` (one cable), for
/// the days of `window` (all when `None`; the caller then removed every old file).
#[allow(clippy::too_many_arguments)]
fn transform_cable(
    lake: &Lake,
    txn: &mut crate::lake::Txn,
    registry: &Registry,
    cable: &str,
    window: Option<Window>,
    rates: &Rates,
    tz: Tz,
    carried: &Carried,
    report: &mut TransformReport,
) -> Result<Vec<Problem>> {
    let since = match window {
        Some(w) => Some((anchor(lake, registry, tz, w.from)?, w)),
        None => None,
    };
    let clock = std::time::Instant::now();
    let lap = |what: &str| tracing::debug!(cable, "{what}: {:.2} s", clock.elapsed().as_secs_f64());
    // Read before the old files are replaced (a full recompute has already staged their removal,
    // but they are still there until the commit).
    let kept_tax = carried_tax_rows(lake, cable, carried)?;
    let (rows, problems) = compute(lake, registry, tz, since)?;
    lap("computed");
    report.intervals += rows.len();
    report.missing += rows
        .iter()
        .filter(|r| r.l_wh.is_none() || (r.p_quality.is_some() && r.p_wh.is_none()))
        .count();
    // The days recomputed: replace the cable's files of those days.
    let mut old_daily = Vec::new();
    let mut old_cable_daily = Vec::new();
    if let Some(w) = window {
        for spec in [&INTERVALS, &CABLE_BALANCE_15M] {
            for (f, part) in lake.tagged_files(spec, cable)? {
                let day = part.and_then(|p| p.parse::<NaiveDate>().ok());
                if day.is_none_or(|d| w.contains(d)) {
                    txn.remove(lake.rel(&f));
                }
            }
        }
        for (spec, keep) in [
            (&CONSUMPTION_DAILY, &mut old_daily),
            (&CABLE_BALANCE_DAILY, &mut old_cable_daily),
        ] {
            for (f, _) in lake.tagged_files(spec, cable)? {
                keep.push(read_outside(&f, spec, w)?);
                txn.remove(lake.rel(&f));
            }
        }
        for (f, _) in lake.tagged_files(&TAX_BASE_YEARLY, cable)? {
            txn.remove(lake.rel(&f));
        }
    }
    let (daily, cable_daily, cable_15m) = if rows.is_empty() {
        (None, None, None)
    } else {
        let frame = intervals_frame(&rows)?;
        let ids = Ids::of(registry);
        lap("frame");
        let daily = consumption_daily(lake, &frame, &ids)?;
        lap("daily");
        report.days += daily.height();
        let (cable_15m, cable_daily) = cable_balance(lake, &frame, registry, cable)?;
        lap("cable balance");
        (Some(daily), Some(cable_daily), Some(cable_15m))
    };
    for (date, part) in by_date(rows, |r| r.date) {
        lake.stage_tagged(
            txn,
            &INTERVALS,
            Some(&date.to_string()),
            Some(cable),
            &batch(&part, registry),
        )?;
    }
    lap("intervals staged");
    let daily = merged(old_daily, daily, &CONSUMPTION_DAILY)?;
    let cable_daily = merged(old_cable_daily, cable_daily, &CABLE_BALANCE_DAILY)?;
    if let Some(daily) = &daily {
        stage_by_year(lake, txn, daily, &CONSUMPTION_DAILY, cable)?;
        let mut yearly = tax_base_yearly(daily, registry, rates)?;
        if let Some(y) = carried.sealed_year {
            yearly = yearly
                .lazy()
                .filter(col("year").cast(DataType::Int64).gt_eq(lit(y)))
                .collect()?;
        }
        if yearly.height() > 0 {
            lake.stage_tagged(
                txn,
                &TAX_BASE_YEARLY,
                None,
                Some(cable),
                &to_batch(&yearly, &TAX_BASE_YEARLY)?,
            )?;
        }
    }
    if let Some(kept) = kept_tax {
        lake.stage_tagged(txn, &TAX_BASE_YEARLY, None, Some(cable), &kept)?;
    }
    if let Some(cable_daily) = &cable_daily {
        stage_by_year(lake, txn, cable_daily, &CABLE_BALANCE_DAILY, cable)?;
    }
    if let Some(cable_15m) = cable_15m {
        stage_15m(lake, txn, &cable_15m, cable)?;
    }
    lap("marts staged");
    Ok(problems)
}

/// What a recompute carries over instead of computing (read once per transform).
struct Carried {
    /// Erased participants: their yearly tax rows are kept by law.
    erased: Erased,
    /// Years before this one lie wholly before the seal: their yearly rows are final (rates
    /// or registry may have changed since).
    sealed_year: Option<i64>,
}

/// The cable's `tax_base_yearly` rows a recompute carries over instead of computing: those of
/// erased participants (kept by law, see `vaten erase`, while their received data is gone)
/// and those of years wholly before the seal.
fn carried_tax_rows(lake: &Lake, cable: &str, carried: &Carried) -> Result<Option<RecordBatch>> {
    let Carried {
        erased,
        sealed_year,
    } = carried;
    if erased.is_empty() && sealed_year.is_none() {
        return Ok(None);
    }
    let mut kept = Vec::new();
    for (f, _) in lake.tagged_files(&TAX_BASE_YEARLY, cable)? {
        let Some(batch) = read_all(&f)? else { continue };
        let (Some(eans), Some(years)) = (
            batch
                .column_by_name("ean")
                .and_then(|c| c.as_string_opt::<i32>()),
            batch
                .column_by_name("year")
                .and_then(|c| c.as_primitive_opt::<arrow::datatypes::Int64Type>()),
        ) else {
            continue;
        };
        let mask: BooleanArray = eans
            .iter()
            .zip(years.iter())
            .map(|(e, y)| {
                let erased = e.is_some_and(|e| erased.contains(e));
                let sealed = matches!((y, *sealed_year), (Some(y), Some(s)) if y < s);
                Some(erased || sealed)
            })
            .collect();
        let rows = arrow::compute::filter_record_batch(&batch, &mask)?;
        if rows.num_rows() > 0 {
            kept.push(rows);
        }
    }
    match kept.first() {
        None => Ok(None),
        Some(first) => Ok(Some(arrow::compute::concat_batches(
            &first.schema(),
            &kept,
        )?)),
    }
}

/// The columns of `spec` in the types the lake writer takes, plus `year` from `date`: frames
/// read back from files and freshly computed ones stack.
fn normalized(df: &DataFrame, spec: &TableSpec) -> Result<DataFrame> {
    let cols: Vec<Expr> = spec
        .columns
        .iter()
        .map(|c| {
            let ty = match c.ty {
                ColType::Utf8 => DataType::String,
                ColType::Int64 | ColType::TimestampUtc => DataType::Int64,
                ColType::Float64 => DataType::Float64,
                ColType::Bool => DataType::Boolean,
                ColType::Date => DataType::Date,
            };
            col(c.name).cast(ty)
        })
        .collect();
    Ok(df
        .clone()
        .lazy()
        .select(cols)
        .with_column(col("date").dt().year().alias("year"))
        .collect()?)
}

/// The rows of a daily file (one cable, one year) outside the recomputed days.
fn read_outside(file: &Path, spec: &TableSpec, w: Window) -> Result<DataFrame> {
    let df = LazyFrame::scan_parquet(
        PlRefPath::new(file.display().to_string()),
        ScanArgsParquet::default(),
    )?
    .collect()?;
    let df = normalized(&df, spec)?;
    let inside = col("date").gt_eq(lit(w.from));
    let inside = match w.to {
        Some(to) => inside.and(col("date").lt_eq(lit(to))),
        None => inside,
    };
    Ok(df.lazy().filter(inside.not()).collect()?)
}

/// Kept old rows and new rows of a daily table, sorted; `None` when there are none.
fn merged(
    old: Vec<DataFrame>,
    new: Option<DataFrame>,
    spec: &TableSpec,
) -> Result<Option<DataFrame>> {
    let mut frames: Vec<DataFrame> = old;
    if let Some(new) = new {
        frames.push(normalized(&new, spec)?);
    }
    frames.retain(|f| f.height() > 0);
    let Some(mut all) = frames.pop() else {
        return Ok(None);
    };
    for f in frames {
        all.vstack_mut(&f)?;
    }
    let key: Vec<&str> = spec.sort_by.to_vec();
    Ok(Some(
        all.lazy()
            .sort(key, SortMultipleOptions::default())
            .collect()?,
    ))
}

fn stage_15m(
    lake: &Lake,
    txn: &mut crate::lake::Txn,
    cable_15m: &DataFrame,
    cable: &str,
) -> Result<()> {
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
        lake.stage_tagged(
            txn,
            &CABLE_BALANCE_15M,
            Some(&day.to_string()),
            Some(cable),
            &to_batch(&part, &CABLE_BALANCE_15M)?,
        )?;
    }
    Ok(())
}
