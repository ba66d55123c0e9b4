//! Publishing the derived tables (`intervals`, `consumption_daily`, `tax_base_yearly` and the
//! two cable tables) in one change, together with the rejections the register arithmetic
//! found. Every file is tagged with its cable: a recompute of some days of one cable replaces
//! that cable's files of those days (and merges its daily and yearly rows), nothing else.
//! `cable_balance_15m` is the exception: one file per day for all cables (see `shared`).

use std::sync::Arc;

use arrow::array::{
    ArrayRef, AsArray, BooleanArray, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use chrono_tz::Tz;
use serde_json::json;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use chrono::NaiveDate;

use super::compute::{compute, IntervalRow, Problem};
use super::plan::{
    anchors, current_inputs, fingerprint, plan, Plan, Scope, TransformState, Window,
};
use super::series::StepProblem;
use super::shared::DayPool;
use super::spill::{spill, BatchKeys, RECEIVED_READS};
use super::units::{batch_keys, batches, held_within_budget, side_by_side, workers, Unit};
use crate::clock::Clock;
use crate::domain::time::{from_micros, local_date, micros};
use crate::error::Result;
use crate::lake::convert::to_batch;
use crate::lake::parquet_io::read_all;
use crate::lake::schema::ColType;
use crate::lake::schema::{
    CABLE_BALANCE_15M, CABLE_BALANCE_DAILY, CONSUMPTION_DAILY, GRID_READINGS, INTERVALS,
    TAX_BASE_YEARLY,
};
use crate::lake::{file_months, Lake};
use crate::lake::{TableSpec, TaggedFiles};
use crate::marts::cable::{balance_part, cable_balance, BalancePart};
use crate::marts::daily::{consumption_daily, intervals_frame, Ids};
use crate::marts::rates::Rates;
use crate::marts::yearly::tax_base_yearly;
use crate::received::erased::Erased;
use crate::received::{Received, ReceivedIndex, Rejected};
use crate::registry::Registry;
use polars::prelude::*;

fn batch(rows: &[&IntervalRow], registry: &Registry) -> RecordBatch {
    let opt = |f: fn(&IntervalRow) -> Option<i64>| -> ArrayRef {
        Arc::new(Int64Array::from(
            rows.iter().map(|r| f(r)).collect::<Vec<_>>(),
        ))
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
    txn: &SharedTxn,
    df: &DataFrame,
    spec: &crate::lake::TableSpec,
    cable: &str,
    left: &BTreeSet<i32>,
) -> Result<()> {
    for (year, part) in split_by(df, col("year"))? {
        // A year whose file stays as it is keeps it: rows of it here came from a file of
        // another year (a hand-edited lake), derived rows the kept file already answers for.
        if left.contains(&year) {
            continue;
        }
        let batch = to_batch(&part, spec)?;
        lake.stage_tagged(
            &mut locked(txn),
            spec,
            Some(&year.to_string()),
            Some(cable),
            &batch,
        )?;
    }
    Ok(())
}

/// Stages a cable's `consumption_daily` rows by the calendar months they fall in (see
/// [`Lake::stage_tagged_months`]), grouped as [`month_files`] says, so that a nightly run
/// rewrites this month's file, not the year's. Years in `left_years` and months in `kept`
/// stay as they are (their files were not replaced; rows of them here were read from those
/// files, for the year's tax base).
fn stage_by_months(
    lake: &Lake,
    txn: &SharedTxn,
    df: &DataFrame,
    cable: &str,
    left_years: &BTreeSet<i32>,
    kept: &Months,
    window: Option<Window>,
) -> Result<()> {
    // Each row's month; rows keep their order (by connection and day) in each file.
    let keys = row_months(df)?;
    let mut by_year: BTreeMap<i32, BTreeSet<u32>> = BTreeMap::new();
    for (year, month) in keys.iter().flatten() {
        if !left_years.contains(year) && !kept.contains(&(*year, *month)) {
            by_year.entry(*year).or_default().insert(*month);
        }
    }
    let latest = by_year.keys().last().copied();
    for (year, months) in by_year {
        let files = month_files(year, &months, window, Some(year) == latest);
        for (first, last) in files {
            let mask: BooleanChunked = keys
                .iter()
                .map(|k| {
                    Some(k.is_some_and(|(y, m)| {
                        y == year && (first..=last).contains(&m) && !kept.contains(&(y, m))
                    }))
                })
                .collect();
            let batch = to_batch(&df.filter(&mask)?, &CONSUMPTION_DAILY)?;
            lake.stage_tagged_months(
                &mut locked(txn),
                &CONSUMPTION_DAILY,
                (year, first, last),
                cable,
                &batch,
            )?;
        }
    }
    Ok(())
}

/// How [`stage_by_months`] groups a cable's `months` (1–12) of `year` into files, each as
/// (first, last) month: from the window's first month to its last, a file each; the months
/// before as one file and those after (a range) as one. Without a window, a year before the
/// `latest` is one file, the latest its last month apart (the month a nightly run will reach).
fn month_files(
    year: i32,
    months: &BTreeSet<u32>,
    window: Option<Window>,
    latest: bool,
) -> Vec<(u32, u32)> {
    use chrono::Datelike;
    let last = months.last().copied().unwrap_or(12);
    let (split, end) = match window {
        Some(w) => (
            match w.from.year() {
                y if y == year => w.from.month().min(last),
                y if y < year => 1,
                _ => 13,
            },
            match w.to {
                Some(t) if t.year() == year => t.month(),
                Some(t) if t.year() < year => 0,
                _ => 12,
            },
        ),
        None if latest => (last, 12),
        None => (13, 12),
    };
    let mut files: Vec<(u32, u32)> = Vec::new();
    for group in [
        months.range(..split).copied().collect::<Vec<u32>>(),
        months.range(end + 1..).copied().collect(),
    ] {
        if let (Some(first), Some(last)) = (group.first(), group.last()) {
            files.push((*first, *last));
        }
    }
    files.extend(
        months
            .iter()
            .filter(|m| (split..=end).contains(*m))
            .map(|m| (*m, *m)),
    );
    files
}

/// Stages `batches` of a table without partitions, all in its columns (computed, or carried
/// over through `conform`), as the cable's one file.
fn stage_as_one(
    lake: &Lake,
    txn: &SharedTxn,
    spec: &crate::lake::TableSpec,
    cable: &str,
    batches: Vec<RecordBatch>,
) -> Result<()> {
    if batches.is_empty() {
        return Ok(());
    }
    let batch = arrow::compute::concat_batches(&spec.arrow_schema(), &batches)?;
    lake.stage_tagged(&mut locked(txn), spec, None, Some(cable), &batch)?;
    Ok(())
}

/// The change the workers computing cables side by side share: each holds it only to hand
/// over a finished file (encoded and written by the change's writer threads) or to name an
/// old one to remove.
type SharedTxn<'a> = std::sync::Mutex<&'a mut crate::lake::Txn>;

fn locked<'a, 'b>(txn: &'b SharedTxn<'a>) -> std::sync::MutexGuard<'b, &'a mut crate::lake::Txn> {
    // A worker that panicked holding it fails the transform (`side_by_side` raises the panic
    // again, or the error of an earlier cable); the lock itself is never the reason to fail.
    txn.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The rows of `df` per value of `key` (an integer or date expression), in key order; rows
/// where it is null belong to no partition. The frame is sorted once and sliced, not filtered
/// once per value (a year of days is 365 filters over the whole frame).
fn split_by(df: &DataFrame, key: Expr) -> Result<Vec<(i32, DataFrame)>> {
    const KEY: &str = "__partition";
    let sorted = df
        .clone()
        .lazy()
        .with_column(key.cast(DataType::Int32).alias(KEY))
        .sort(
            [KEY],
            SortMultipleOptions::default().with_maintain_order(true),
        )
        .collect()?;
    let keys: Vec<Option<i32>> = sorted.column(KEY)?.i32()?.iter().collect();
    let sorted = sorted.drop(KEY)?;
    let mut out = Vec::new();
    let mut start = 0;
    while start < keys.len() {
        let mut end = start + 1;
        while end < keys.len() && keys[end] == keys[start] {
            end += 1;
        }
        if let Some(k) = keys[start] {
            out.push((k, sorted.slice(start as i64, end - start)));
        }
        start = end;
    }
    Ok(out)
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
    let started = std::time::Instant::now();
    let lap =
        |what: &str| tracing::debug!("transform {what}: {:.2} s", started.elapsed().as_secs_f64());
    let mut report = TransformReport::default();
    let inputs = current_inputs(lake)?;
    lap("inputs listed");
    let fingerprint = fingerprint(registry, rates);
    let state: Option<TransformState> = lake.read_state(STATE)?;
    lap("state read");
    let plan = plan(
        lake,
        registry,
        tz,
        scope,
        state.as_ref(),
        (&fingerprint, &inputs),
    )?;
    lap("planned");
    let mut txn = lake.begin()?;
    // Files are encoded and written on another core while the next cable is computed.
    txn.write_in_background()?;
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
    // Unit by unit (two side by side, see `units`): every derived table of a cable depends only
    // on its connections, and a large cable is computed a group of its connections at a time,
    // so memory is bounded by a unit's connections, not the cable or the cooperative.
    let mut problems = Vec::new();
    let carried = Carried {
        erased: Erased::load(lake)?,
        sealed_year: state
            .as_ref()
            .and_then(|s| s.sealed_before)
            .map(|d| i64::from(chrono::Datelike::year(&d))),
        // Only the days some cable recomputes are replaced: the earliest window's start
        // (none for a full recompute, which removes everything).
        files: DerivedFiles::list(
            lake,
            windows.values().map(|w| w.map(|w| w.from)).min().flatten(),
        )?,
    };
    // The cables' `cable_balance_15m` rows, one file per day for all of them (see `shared`).
    // Those files of the days some cable recomputes are taken apart first (a full recompute
    // has none left: it removed every file).
    let pool = DayPool::new(&CABLE_BALANCE_15M);
    let redone: BTreeMap<String, Window> = windows
        .iter()
        .filter_map(|(c, w)| w.map(|w| (c.clone(), w)))
        .collect();
    let shared_files = carried.files.of(&CABLE_BALANCE_15M).shared();
    let due = pool.take_apart(lake, &mut txn, shared_files, &redone)?;
    for due in due {
        due.write(lake, &std::sync::Mutex::new(&mut txn))?;
    }
    let today = local_date(now, tz);
    let batches = batches(windows, registry, today);
    // A full recompute of several batches reads the received tables once, not once per batch.
    // A unit alone in its batch (the last one, say) still reads its own files, a day range
    // at a time through its scans: it gets no keys, so nothing of it is set aside.
    let whole = |batch: &Vec<Unit>| batch.iter().all(|u| u.window.is_none());
    let held = |batch: &Vec<Unit>| batch.len() > 1 && whole(batch);
    let spilled = if batches.iter().all(whole)
        && batches.iter().filter(|b| held(b)).count() > 1
        && std::env::var_os("VATEN_NO_SPILL").is_none()
    {
        let keys: Vec<BatchKeys> = batches
            .iter()
            .map(|b| {
                let units: Vec<&Unit> = if held(b) {
                    b.iter().collect()
                } else {
                    Vec::new()
                };
                batch_keys(&units)
            })
            .collect();
        let keys_n = keys
            .iter()
            .filter(|k| k.iter().any(|g| !g.is_empty()))
            .count();
        let spilled = spill(lake, &mut txn, &keys)?.map(|s| (s, keys));
        if spilled.is_some() {
            tracing::debug!(
                "received tables read once, set aside for {} batches",
                keys_n
            );
        }
        lap("received tables read");
        spilled
    } else {
        None
    };
    let groups = batches.iter().flatten().filter(|u| u.part.1 > 1);
    let (large, groups) = (groups.clone().filter(|u| u.last()).count(), groups.count());
    if groups > 0 {
        tracing::debug!("{large} large cables computed in {groups} groups of connections");
    }
    // Per windowed cable: where its readings start. A cable in groups is anchored once.
    let mut anchored: BTreeMap<String, (i64, Window)> = BTreeMap::new();
    // The groups of a cable done so far, until its last one is.
    let mut parts: Vec<UnitOut> = Vec::new();
    for (b, batch) in batches.into_iter().enumerate() {
        // The received tables are read once for a batch, not once per unit (each such read
        // goes through every file, or every recent one). Whatever happens, the held rows go
        // with the batch.
        let _held = Held(lake);
        // The recomputed days' anchors first, while nothing is held: an anchor may look
        // through the whole history.
        let mut todo: Vec<(String, Option<Window>)> = Vec::new();
        for u in &batch {
            let new = u.window.is_some() && !anchored.contains_key(&u.cable);
            if new && todo.last().is_none_or(|(c, _)| *c != u.cable) {
                todo.push((u.cable.clone(), u.window));
            }
        }
        anchored.extend(batch_anchors(lake, registry, tz, &todo)?);
        lap("anchored");
        if let (Some((spilled, keys)), true) = (&spilled, held(&batch)) {
            spilled.hold(lake, b, &keys[b])?;
        } else if held(&batch) {
            prefetch_received(lake, &batch.iter().collect::<Vec<_>>(), None)?;
        } else if batch.len() > 1 && batch.iter().all(|u| u.window.is_some()) {
            // Every reader of a held table filters on its own days; a unit whose reads go
            // back further than the others' is left to read its files.
            let (names, from) = held_within_budget(&batch, &anchored, today, tz);
            if names.len() > 1 {
                let units: Vec<&Unit> = batch
                    .iter()
                    .filter(|u| names.contains(u.name.as_str()))
                    .collect();
                prefetch_received(lake, &units, Some(from))?;
            }
        }
        lap("read");
        let shared = std::sync::Mutex::new(&mut txn);
        // A cable's marts from its units' outs (one for a cable computed whole).
        let finish = |unit: &Unit, outs: Vec<UnitOut>| {
            let cable = registry.on_cables(|c| c == unit.cable);
            finish_cable(
                lake,
                &shared,
                &cable,
                &unit.cable,
                unit.window,
                rates,
                &carried,
                &pool,
                outs,
            )
        };
        let done = side_by_side(&batch, workers(), |unit| {
            lake.focus(Some(&unit.name));
            let since = anchored.get(&unit.cable).copied();
            let out = compute_unit(lake, &shared, unit, since, tz);
            lake.focus(None);
            // A cable computed whole is finished here, beside the other worker's.
            match out? {
                out if unit.part.1 == 1 => Ok(Done::Finished(finish(unit, vec![out])?)),
                out => Ok(Done::Part(out)),
            }
        });
        let mut outs = Vec::new();
        for done in done {
            outs.push(done?);
        }
        for (unit, done) in batch.iter().zip(outs) {
            let finished = match done {
                Done::Finished(f) => f,
                Done::Part(out) => {
                    parts.push(out);
                    if !unit.last() {
                        continue;
                    }
                    // The cable's last group: its marts from all of them.
                    finish(unit, std::mem::take(&mut parts))?
                }
            };
            let (found, counts) = finished;
            problems.extend(found);
            report.intervals += counts.intervals;
            report.days += counts.days;
            report.missing += counts.missing;
        }
    }
    pool.rest().write(lake, &std::sync::Mutex::new(&mut txn))?;
    lap("cable quarter-hours staged");
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
    lap("staged");
    txn.commit()?;
    lap("committed");
    Ok(report)
}

use super::plan::TRANSFORM_STATE as STATE;

/// Per windowed cable of `batch`: where its readings start (see [`anchors`]) and its window.
/// Cables sharing a window are anchored together (one scan per table, not one per cable).
fn batch_anchors(
    lake: &Lake,
    registry: &Registry,
    tz: Tz,
    batch: &[(String, Option<Window>)],
) -> Result<BTreeMap<String, (i64, Window)>> {
    let mut by_window: BTreeMap<Window, BTreeSet<&str>> = BTreeMap::new();
    for (cable, w) in batch {
        if let Some(w) = w {
            by_window.entry(*w).or_default().insert(cable);
        }
    }
    let mut out = BTreeMap::new();
    for (w, cables) in by_window {
        let sub = registry.on_cables(|c| cables.contains(c));
        for (cable, a) in anchors(lake, &sub, tz, w.from)? {
            out.insert(cable, (a, w));
        }
    }
    // A cable without connections has nothing to read before its window (as `anchor` says).
    for (cable, w) in batch {
        if let (Some(w), false) = (w, out.contains_key(cable)) {
            let start = micros(crate::domain::time::local_midnight_utc(w.from, tz));
            out.insert(cable.clone(), (start, *w));
        }
    }
    Ok(out)
}

/// Clears what [`prefetch_received`] held when dropped (after the batch, an error or a panic).
struct Held<'a>(&'a Lake);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.forget_prefetched();
    }
}

/// Holds in memory the received rows of `units`' connections: the columns the intervals stage
/// and the cable balance read. With `from`, only the partitions from that day on.
fn prefetch_received(lake: &Lake, units: &[&Unit], from: Option<NaiveDate>) -> Result<()> {
    let keys = batch_keys(units);
    for ((spec, key, columns), groups) in RECEIVED_READS.iter().zip(&keys) {
        lake.prefetch(spec, key, groups, columns, from)?;
    }
    Ok(())
}

/// The tables this stage writes.
const DERIVED: [&TableSpec; 5] = [
    &INTERVALS,
    &CONSUMPTION_DAILY,
    &TAX_BASE_YEARLY,
    &CABLE_BALANCE_15M,
    &CABLE_BALANCE_DAILY,
];

/// What a worker hands back for a unit: a whole cable finished, or a group's part.
enum Done {
    Finished((Vec<Problem>, TransformReport)),
    Part(UnitOut),
}

/// What computing a unit gives besides its `intervals` files: its rejections and counts, and
/// for its cable's marts its daily rows (none without rows) and its part of the cable balance.
struct UnitOut {
    problems: Vec<Problem>,
    counts: TransformReport,
    daily: Option<DataFrame>,
    balance: BalancePart,
}

/// Computes a unit's quarter-hours over `since`'s window (all days when `None`) and stages its
/// `intervals` files; the marts it hands back.
fn compute_unit(
    lake: &Lake,
    txn: &SharedTxn,
    unit: &Unit,
    since: Option<(i64, Window)>,
    tz: Tz,
) -> Result<UnitOut> {
    let clock = std::time::Instant::now();
    let name = unit.name.as_str();
    let lap = |what: &str| tracing::debug!(name, "{what}: {:.2} s", clock.elapsed().as_secs_f64());
    let registry = &unit.registry;
    let (rows, problems) = compute(lake, registry, tz, since)?;
    lap("computed");
    let mut counts = TransformReport {
        intervals: rows.len(),
        ..Default::default()
    };
    counts.missing = rows
        .iter()
        .filter(|r| r.l_wh.is_none() || (r.p_quality.is_some() && r.p_wh.is_none()))
        .count();
    // Its grid readings are not read again (the day registers, for the daily reconciliation,
    // and the installations' voltages are): their memory goes back before the frames are built.
    lake.release(&GRID_READINGS);
    let frame = if rows.is_empty() {
        None
    } else {
        Some(intervals_frame(&rows)?)
    };
    // Day by day without moving the rows (a copy by day held them twice, and more while its
    // vectors grew): their places in day order, each day's in EAN order as computed.
    let order = places_by_day(&rows);
    for day in order.chunk_by(|a, b| rows[*a].date == rows[*b].date) {
        let part: Vec<&IntervalRow> = day.iter().map(|&i| &rows[i]).collect();
        let Some(date) = part.first().map(|r| r.date) else {
            continue;
        };
        lake.stage_tagged(
            &mut locked(txn),
            &INTERVALS,
            Some(&date.to_string()),
            Some(&unit.cable),
            &batch(&part, registry),
        )?;
    }
    // The frame holds what the marts need: the rows go before their group-bys run.
    drop((rows, order));
    lap("intervals staged");
    // The voltages of the window's days (every day's in a full recompute), also for a group
    // without rows: another group's connections may have quarter-hours its installations
    // reported.
    let from = since.map(|(_, w)| micros(crate::domain::time::local_midnight_utc(w.from, tz)));
    let daily = match &frame {
        Some(frame) => {
            let daily = consumption_daily(lake, frame, &Ids::of(registry))?;
            counts.days = daily.height();
            Some(daily)
        }
        None => None,
    };
    lap("daily");
    let balance = balance_part(lake, frame.as_ref(), registry, &unit.cable, from, tz)?;
    lap("cable balance");
    Ok(UnitOut {
        problems,
        counts,
        daily,
        balance,
    })
}

/// The places of `rows` ordered by day, in their own order within a day: a stable counting
/// sort on the day (a comparison sort of a unit's places by day, each comparison two random
/// reads of the rows, was 2 % of a full recompute's CPU).
fn places_by_day(rows: &[IntervalRow]) -> Vec<usize> {
    let Some(first) = rows.iter().map(|r| r.date).min() else {
        return Vec::new();
    };
    let day = |r: &IntervalRow| (r.date - first).num_days() as usize;
    let days = rows.iter().map(day).max().unwrap_or(0) + 1;
    // Where each day's places start, then filled in the rows' order.
    let mut start = vec![0usize; days + 1];
    for r in rows {
        start[day(r) + 1] += 1;
    }
    for d in 0..days {
        start[d + 1] += start[d];
    }
    let mut order = vec![0usize; rows.len()];
    for (i, r) in rows.iter().enumerate() {
        let next = &mut start[day(r)];
        order[*next] = i;
        *next += 1;
    }
    order
}

/// Finishes a cable from its units' outs (one for a cable computed whole): replaces its old
/// files of the recomputed days (of `window`; all when `None`, the caller then removed every
/// old file) and stages its daily, yearly and `cable_balance_daily` tables; its
/// `cable_balance_15m` rows go to `pool`. `registry` holds the cable's connections.
#[allow(clippy::too_many_arguments)]
fn finish_cable(
    lake: &Lake,
    txn: &SharedTxn,
    registry: &Registry,
    cable: &str,
    window: Option<Window>,
    rates: &Rates,
    carried: &Carried,
    pool: &DayPool,
    outs: Vec<UnitOut>,
) -> Result<(Vec<Problem>, TransformReport)> {
    let clock = std::time::Instant::now();
    let lap = |what: &str| tracing::debug!(cable, "{what}: {:.2} s", clock.elapsed().as_secs_f64());
    // Read before the old files are replaced (a full recompute has already staged their removal,
    // but they are still there until the commit).
    // The years of the daily tables the window does not reach stay as they are (a nightly run
    // in November leaves last year's files alone); `consumption_daily`'s only with their
    // yearly rows carried over (a tax file lost or unreadable: its years are computed again).
    let candidates = years_left(carried.files.of(&CONSUMPTION_DAILY).of(cable), window);
    let (kept_tax, carried_years) = carried_tax_rows(cable, carried, window)?;
    let left_daily: BTreeSet<i32> = candidates.intersection(&carried_years).copied().collect();
    let left_cable_daily = years_left(carried.files.of(&CABLE_BALANCE_DAILY).of(cable), window);
    // The days recomputed: replace the cable's files of those days.
    let mut old_daily = Vec::new();
    let mut old_cable_daily = Vec::new();
    // `consumption_daily`'s files of months the window does not reach stay (see
    // [`months_left`]): read for the year's tax base, not written again.
    let mut kept_months = Months::new();
    if let Some(w) = window {
        // `cable_balance_15m` files of one cable are left only by versions before its shared
        // files (the shared ones were taken apart before the cables ran).
        for spec in [&INTERVALS, &CABLE_BALANCE_15M] {
            for (f, part) in carried.files.of(spec).of(cable) {
                let day = part.as_ref().and_then(|p| p.parse::<NaiveDate>().ok());
                if day.is_none_or(|d| w.contains(d)) {
                    locked(txn).remove(lake.rel(f));
                }
            }
        }
        let files = carried.files.of(&CONSUMPTION_DAILY).of(cable);
        (old_daily, kept_months) = old_daily_rows(lake, txn, files, &left_daily, w)?;
        for (f, part) in carried.files.of(&CABLE_BALANCE_DAILY).of(cable) {
            if partition_year(part).is_some_and(|y| left_cable_daily.contains(&y)) {
                continue;
            }
            old_cable_daily.push(read_outside(&[f.as_path()], &CABLE_BALANCE_DAILY, w)?);
            locked(txn).remove(lake.rel(f));
        }
        for (f, _) in carried.files.of(&TAX_BASE_YEARLY).of(cable) {
            locked(txn).remove(lake.rel(f));
        }
    }
    let (mut problems, mut counts) = (Vec::new(), TransformReport::default());
    let (mut daily, mut balance): (Option<DataFrame>, Vec<BalancePart>) = (None, Vec::new());
    for out in outs {
        problems.extend(out.problems);
        counts.intervals += out.counts.intervals;
        counts.days += out.counts.days;
        counts.missing += out.counts.missing;
        match (&mut daily, out.daily) {
            (Some(all), Some(d)) => {
                all.vstack_mut(&d)?;
            }
            (None, d) => daily = d,
            (Some(_), None) => {}
        }
        balance.push(out.balance);
    }
    let (cable_15m, cable_daily) = match cable_balance(balance, registry, cable)? {
        Some((q, d)) => (Some(q), Some(d)),
        None => (None, None),
    };
    lap("cable balance");
    let daily = merged(old_daily, daily, &CONSUMPTION_DAILY)?;
    let cable_daily = merged(old_cable_daily, cable_daily, &CABLE_BALANCE_DAILY)?;
    // The cable's yearly rows, computed and carried over.
    let mut tax = Vec::new();
    if let Some(daily) = &daily {
        stage_by_months(lake, txn, daily, cable, &left_daily, &kept_months, window)?;
        let mut yearly = tax_base_yearly(daily, registry, rates)?;
        // Years before the seal and years the window does not reach: their rows were carried
        // over (computed here too only when their daily file could not be told apart).
        let sealed = carried.sealed_year;
        let computed: BooleanChunked = yearly
            .column("year")?
            .cast(&DataType::Int64)?
            .i64()?
            .iter()
            .map(|y| {
                Some(match y {
                    Some(y) => {
                        let left = i32::try_from(y).is_ok_and(|y| carried_years.contains(&y));
                        sealed.is_none_or(|s| y >= s) && !left
                    }
                    None => sealed.is_none(),
                })
            })
            .collect();
        yearly = yearly.filter(&computed)?;
        if yearly.height() > 0 {
            tax.push(to_batch(&yearly, &TAX_BASE_YEARLY)?);
        }
    }
    tax.extend(kept_tax);
    stage_as_one(lake, txn, &TAX_BASE_YEARLY, cable, tax)?;
    if let Some(cable_daily) = &cable_daily {
        stage_by_year(
            lake,
            txn,
            cable_daily,
            &CABLE_BALANCE_DAILY,
            cable,
            &left_cable_daily,
        )?;
    }
    if let Some(cable_15m) = cable_15m {
        for due in pool.add_frame(&cable_15m)? {
            due.write(lake, txn)?;
        }
    }
    lap("marts staged");
    Ok((problems, counts))
}

/// What a recompute carries over instead of computing (read once per transform).
struct Carried {
    /// Erased participants: their yearly tax rows are kept by law.
    erased: Erased,
    /// Years before this one lie wholly before the seal: their yearly rows are final (rates
    /// or registry may have changed since).
    sealed_year: Option<i64>,
    /// The derived tables' files by cable as the transform began: listed once, not once per
    /// cable (a year of 40 cables is tens of thousands of files). Nothing is published
    /// before the commit, so the listing holds throughout. Partial: of the tables
    /// partitioned by day, only the days from the earliest window's start on (see
    /// [`DerivedFiles::list`]).
    files: DerivedFiles,
}

/// The files of each derived table, by cable.
struct DerivedFiles(Vec<(&'static str, TaggedFiles)>);

impl DerivedFiles {
    /// With `from`, the days before it of the tables partitioned by day are left out (a
    /// nightly run replaces a few days; a year of them is tens of thousands of files).
    fn list(lake: &Lake, from: Option<NaiveDate>) -> Result<Self> {
        let mut out = Vec::new();
        for spec in DERIVED {
            out.push((spec.name, lake.files_by_tag(spec, from)?));
        }
        Ok(DerivedFiles(out))
    }

    fn of(&self, spec: &TableSpec) -> &TaggedFiles {
        &self
            .0
            .iter()
            .find(|(name, _)| *name == spec.name)
            .expect("a derived table")
            .1
    }
}

/// The year of a file of a table partitioned by year, from its `year=` partition.
fn partition_year(part: &Option<String>) -> Option<i32> {
    part.as_ref().and_then(|p| p.parse().ok())
}

/// The years of a cable's files of a table partitioned by year (`files`) that `window` does
/// not reach; none without a window, or when a file's year cannot be told from its partition
/// (then every file is read and rewritten).
fn years_left(files: &[(PathBuf, Option<String>)], window: Option<Window>) -> BTreeSet<i32> {
    let Some(w) = window else {
        return BTreeSet::new();
    };
    let mut out = BTreeSet::new();
    for (_, part) in files {
        match partition_year(part) {
            Some(y) if !w.touches_year(y) => {
                out.insert(y);
            }
            Some(_) => {}
            None => return BTreeSet::new(),
        }
    }
    out
}

/// The cable's `tax_base_yearly` rows a recompute carries over instead of computing: those of
/// erased participants (kept by law, see `vaten erase`, while their received data is gone),
/// those of years wholly before the seal, and those of years `window` does not reach (their
/// daily rows stay as they are, so their yearly rows would come out the same). Also the years
/// of the last kind it found rows of.
fn carried_tax_rows(
    cable: &str,
    carried: &Carried,
    window: Option<Window>,
) -> Result<(Option<RecordBatch>, BTreeSet<i32>)> {
    let Carried {
        erased,
        sealed_year,
        files,
    } = carried;
    let mut found = BTreeSet::new();
    if erased.is_empty() && sealed_year.is_none() && window.is_none() {
        return Ok((None, found));
    }
    let mut kept = Vec::new();
    for (f, _) in files.of(&TAX_BASE_YEARLY).of(cable) {
        // In today's columns, taken by name (a file of an older layout, or a damaged one, is
        // not stacked column by column onto another).
        let batch = match read_all(f) {
            Ok(None) => continue,
            Ok(Some(batch)) => crate::lake::migrate::conform(&TAX_BASE_YEARLY, &batch),
            Err(e) => Err(e.to_string()),
        };
        let batch = match batch {
            Ok(batch) => batch,
            // Only the years a window does not reach want its rows: computed again instead.
            // Erased participants' and sealed years' rows nothing else holds: stop there.
            Err(why) if erased.is_empty() && sealed_year.is_none() => {
                tracing::warn!("{}: {why}; its years are computed again", f.display());
                continue;
            }
            Err(why) => return Err(crate::error::Error::lake(f, why)),
        };
        let (Some(eans), Some(years)) = (
            batch
                .column_by_name("ean")
                .and_then(|c| c.as_string_opt::<i32>()),
            batch
                .column_by_name("year")
                .and_then(|c| c.as_primitive_opt::<arrow::datatypes::Int64Type>()),
        ) else {
            // Not after `conform`: both are required columns of these types.
            continue;
        };
        let mask: BooleanArray = eans
            .iter()
            .zip(years.iter())
            .map(|(e, y)| {
                let erased = e.is_some_and(|e| erased.contains(e));
                let sealed = matches!((y, *sealed_year), (Some(y), Some(s)) if y < s);
                let left = match (y.and_then(|y| i32::try_from(y).ok()), window) {
                    (Some(y), Some(w)) if !w.touches_year(y) => Some(y),
                    _ => None,
                };
                if let Some(y) = left {
                    found.insert(y);
                }
                Some(erased || sealed || left.is_some())
            })
            .collect();
        let rows = arrow::compute::filter_record_batch(&batch, &mask)?;
        if rows.num_rows() > 0 {
            kept.push(rows);
        }
    }
    let batch = match kept.first() {
        None => None,
        Some(first) => Some(arrow::compute::concat_batches(&first.schema(), &kept)?),
    };
    Ok((batch, found))
}

/// The columns of `spec` in the types the lake writer takes, plus `year` from `date`: frames
/// read back from files and freshly computed ones stack.
fn normalized(df: &DataFrame, spec: &TableSpec) -> Result<DataFrame> {
    Ok(normalize(df.clone().lazy(), spec).collect()?)
}

/// The table's columns, in its order and types, and `year` (as [`normalized`], lazily).
fn normalize(lf: LazyFrame, spec: &TableSpec) -> LazyFrame {
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
    lf.select(cols)
        .with_column(col("date").dt().year().alias("year"))
}

/// The rows of a cable's files of a daily table outside the recomputed days, in the table's
/// columns (and `year`).
fn read_outside(files: &[&Path], spec: &TableSpec, w: Window) -> Result<DataFrame> {
    outside(read_files(files, spec)?, spec, w)
}

/// Files of a daily table read whole by the eager reader on this thread (a year of one cable's
/// days is small): a lazy scan's planning cost more than the reading. A file that cannot be
/// read, or lacks a column of the table, is an error naming it.
fn read_files(files: &[&Path], spec: &TableSpec) -> Result<Vec<DataFrame>> {
    let mut frames = Vec::with_capacity(files.len());
    for file in files {
        let lake_error = |e: &dyn std::fmt::Display| crate::error::Error::lake(file, e.to_string());
        let f = std::fs::File::open(file).map_err(|e| lake_error(&e))?;
        let frame = ParquetReader::new(f)
            .read_parallel(ParallelStrategy::None)
            .finish()
            .map_err(|e| lake_error(&e))?;
        if let Some(c) = spec.columns.iter().find(|c| frame.column(c.name).is_err()) {
            return Err(lake_error(&format!("no column {}", c.name)));
        }
        frames.push(frame);
    }
    Ok(frames)
}

/// The rows of `frames` (read by [`read_files`]) outside the days `w` recomputes, stacked
/// after [`normalize`]: files of older layouts stack too.
fn outside(frames: Vec<DataFrame>, spec: &TableSpec, w: Window) -> Result<DataFrame> {
    let mut frames: Vec<LazyFrame> = frames
        .into_iter()
        .map(|f| normalize(f.lazy(), spec))
        .collect();
    let scan = match frames.pop() {
        Some(last) if frames.is_empty() => last,
        Some(last) => {
            frames.push(last);
            concat(frames, UnionArgs::default())?
        }
        None => return Ok(DataFrame::empty()),
    };
    let inside = col("date").gt_eq(lit(w.from));
    let inside = match w.to {
        Some(to) => inside.and(col("date").lt_eq(lit(to))),
        None => inside,
    };
    Ok(scan.filter(inside.not()).collect()?)
}

/// Calendar months, as (year, month 1–12).
type Months = BTreeSet<(i32, u32)>;

/// A cable's `consumption_daily` file of some months of a year: its path and its first and
/// last month (from its name, see [`file_months`]).
type MonthsFile<'a> = (&'a Path, (u32, u32));

/// How many files of months a window does not reach a cable's year keeps at most: each month
/// a nightly run starts in leaves one more behind, read every night for the year's tax base
/// (a small file costs about as much to read as a large one); past this many they are
/// written again as one.
const KEPT_FILES: usize = 2;

/// A cable's old `consumption_daily` rows outside the window `w` in the years it reaches
/// (`left` are the years it leaves alone), from its `files`, and the months whose files stay as
/// they are (see [`months_left`]); every other file of those years is staged for removal
/// (its rows are written again). When a removed file holds rows of a month whose files would
/// stay (a file put there by hand), that year's files do not stay either: its rows there
/// would be dropped from the table, or counted twice in the tax base.
fn old_daily_rows(
    lake: &Lake,
    txn: &SharedTxn,
    files: &[(PathBuf, Option<String>)],
    left: &BTreeSet<i32>,
    w: Window,
) -> Result<(Vec<DataFrame>, Months)> {
    let mut rows = Vec::new();
    let mut candidates: BTreeMap<i32, Vec<MonthsFile>> = BTreeMap::new();
    let mut removed_months = Months::new();
    for (f, part) in files {
        let year = partition_year(part);
        if year.is_some_and(|y| left.contains(&y)) {
            continue;
        }
        match (year, file_months(f)) {
            (Some(y), Some((fy, a, b))) if fy == y && !w.touches_months(y, a, b) => {
                candidates.entry(y).or_default().push((f.as_path(), (a, b)));
            }
            _ => {
                let r = read_outside(&[f.as_path()], &CONSUMPTION_DAILY, w)?;
                removed_months.extend(months_of(&r)?);
                rows.push(r);
                locked(txn).remove(lake.rel(f));
            }
        }
    }
    // Each year's files of months the window does not reach, read and judged; then, until
    // nothing changes, a year whose months some file not kept also holds rows of is not kept
    // either (whose rows are then not kept in their turn).
    let mut judged: Vec<(i32, Vec<MonthsFile>, DataFrame, BTreeSet<u32>)> = Vec::new();
    for (year, files) in candidates {
        let (r, months) = months_left(year, &files, w)?;
        if months.is_empty() {
            removed_months.extend(months_of(&r)?);
        }
        judged.push((year, files, r, months));
    }
    loop {
        let mut changed = false;
        for (year, files, r, months) in &mut judged {
            if !months.is_empty() && months.iter().any(|m| removed_months.contains(&(*year, *m))) {
                tracing::warn!(
                    "{} and another file of {year} hold rows of the same month; they are written again",
                    files[0].0.display()
                );
                months.clear();
                removed_months.extend(months_of(r)?);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let mut kept = Months::new();
    for (year, files, r, months) in judged {
        if months.is_empty() {
            for (f, _) in &files {
                locked(txn).remove(lake.rel(f));
            }
        }
        kept.extend(months.into_iter().map(|m| (year, m)));
        rows.push(r);
    }
    Ok((rows, kept))
}

/// The (year, month) of every row of a daily frame (its `date` column).
fn months_of(df: &DataFrame) -> Result<Months> {
    Ok(row_months(df)?.into_iter().flatten().collect())
}

/// Each row's (year, month) of a daily frame, from its `date` column (`None` for no date).
fn row_months(df: &DataFrame) -> Result<Vec<Option<(i32, u32)>>> {
    use chrono::Datelike;
    let epoch = crate::domain::time::EPOCH_DAY;
    let dates = df.column("date")?.cast(&DataType::Int32)?;
    Ok(dates
        .i32()?
        .iter()
        .map(|d| {
            let day = epoch.checked_add_signed(chrono::Duration::days(i64::from(d?)))?;
            Some((day.year(), day.month()))
        })
        .collect())
}

/// The rows outside `w` of a cable's `consumption_daily` files of `year` whose months `w` does
/// not reach (`files`, each with the months its name gives), and the months that stay as they
/// are: the files' own, or none when there are more than [`KEPT_FILES`] of them or a file
/// holds a row of a month not its own (a file put there by hand; inside the window, that row
/// would stand beside the day computed again). With none, their rows outside `w` are written
/// again into the files of their months.
fn months_left(year: i32, files: &[MonthsFile], w: Window) -> Result<(DataFrame, BTreeSet<u32>)> {
    let paths: Vec<&Path> = files.iter().map(|(f, _)| *f).collect();
    let frames = read_files(&paths, &CONSUMPTION_DAILY)?;
    // Every row of each file, before any is left out, within that file's own months.
    let epoch = crate::domain::time::EPOCH_DAY;
    let days = |d: Option<NaiveDate>| d.map(|d| (d - epoch).num_days());
    let stray = frames
        .iter()
        .zip(files)
        .find(|(frame, (_, (first, last)))| {
            let start = days(NaiveDate::from_ymd_opt(year, *first, 1));
            let end = NaiveDate::from_ymd_opt(year, *last, 1)
                .and_then(|d| d.checked_add_months(chrono::Months::new(1)));
            let (Some(start), Some(end)) = (start, days(end)) else {
                return true;
            };
            let Ok(dates) = frame.column("date").and_then(|c| c.cast(&DataType::Int32)) else {
                return true;
            };
            !dates.i32().is_ok_and(|d| {
                d.iter()
                    .all(|d| d.is_some_and(|d| (start..end).contains(&i64::from(d))))
            })
        });
    let rows = outside(frames.clone(), &CONSUMPTION_DAILY, w)?;
    if files.len() > KEPT_FILES {
        return Ok((rows, BTreeSet::new()));
    }
    if let Some((_, (file, _))) = stray {
        tracing::warn!(
            "{}: holds rows of months not in its name; the files of those months are written again",
            file.display()
        );
        return Ok((rows, BTreeSet::new()));
    }
    Ok((rows, files.iter().flat_map(|(_, (a, b))| *a..=*b).collect()))
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
    // Sorted here, not left to the lake's writer: its general sort of the Arrow columns took
    // several times the instructions of Polars' (measured with callgrind on a nightly run).
    let key: Vec<&str> = spec.sort_by.to_vec();
    Ok(Some(
        all.lazy()
            .sort(key, SortMultipleOptions::default())
            .collect()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A window's months a file each, those before and after it one file each; without a
    /// window a past year one file, the latest its last month apart.
    #[test]
    fn a_cables_year_is_grouped_into_files_of_months() {
        let day = |s: &str| s.parse::<NaiveDate>().unwrap();
        let months = |m: &[u32]| m.iter().copied().collect::<BTreeSet<u32>>();
        let window = |from: &str, to: Option<&str>| {
            Some(Window {
                from: day(from),
                to: to.map(day),
            })
        };
        let all = months(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        let to_nov = months(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
        // Full recompute: the latest year's last month apart; a past year whole.
        assert_eq!(month_files(2026, &to_nov, None, true), [(1, 10), (11, 11)]);
        assert_eq!(month_files(2025, &all, None, false), [(1, 12)]);
        assert_eq!(month_files(2026, &months(&[3]), None, true), [(3, 3)]);
        // A nightly run from the 30th of October: October on, a file a month.
        let nightly = window("2026-10-30", None);
        assert_eq!(
            month_files(2026, &to_nov, nightly, true),
            [(1, 9), (10, 10), (11, 11)]
        );
        // Its rows only to September (a cable without October yet): September apart.
        assert_eq!(
            month_files(2026, &months(&[8, 9]), nightly, true),
            [(8, 8), (9, 9)]
        );
        // A range in March of a full year: before, March, after.
        let march = window("2026-03-10", Some("2026-03-12"));
        assert_eq!(
            month_files(2026, &all, march, true),
            [(1, 2), (4, 12), (3, 3)]
        );
        // A range over the turn of the year: December of the one, January of the other.
        let turn = window("2025-12-30", Some("2026-01-02"));
        assert_eq!(month_files(2025, &all, turn, false), [(1, 11), (12, 12)]);
        assert_eq!(month_files(2026, &all, turn, true), [(2, 12), (1, 1)]);
        // Months with gaps keep their own first and last.
        assert_eq!(
            month_files(2026, &months(&[2, 5, 11]), window("2026-11-01", None), true),
            [(2, 5), (11, 11)]
        );
    }
    use crate::intervals::series::Quality;

    #[test]
    fn places_by_day_are_a_stable_sort_by_day() {
        // Days out of order, repeated, with gaps (a unit's rows: connection by connection,
        // each connection's days ascending); compared with the standard library's stable sort.
        let days = [3, 1, 1, 7, 3, 0, 7, 7, 2, 0, 3, 1];
        let rows: Vec<IntervalRow> = days
            .iter()
            .enumerate()
            .map(|(i, &d)| IntervalRow {
                conn: i as u32,
                start_us: 0,
                l_wh: None,
                t_wh: None,
                p_wh: None,
                v_wh: None,
                l_quality: Quality::Missing,
                p_quality: None,
                battery_net_wh: None,
                date: NaiveDate::from_ymd_opt(2026, 3, 1).unwrap() + chrono::Days::new(d),
            })
            .collect();
        let mut want: Vec<usize> = (0..rows.len()).collect();
        want.sort_by_key(|&i| rows[i].date);
        assert_eq!(places_by_day(&rows), want);
        assert_eq!(places_by_day(&[]), Vec::<usize>::new());
    }
}
