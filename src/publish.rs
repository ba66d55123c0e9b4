//! `vaten publish`: what a cooperative shares with its federation. Aggregates only, as hive
//! Parquet under `<out>/coop=<coop_id>/`:
//!
//! - `quarter_hours/date=…/`: per quarter-hour and scope (each cable group, and `cooperative`);
//! - `days/date=…/`: per day and scope, with completeness and the quarter-hours beyond the
//!   agreed voltage limits;
//! - `months/`: the sums of the published days (rewritten as days are added).
//!
//! **Write once, whole months.** A month is published once its last day has settled
//! (`[federation] settle_days` after it), all its days at once, and never again: a later
//! correction, late delivery or erasure in the lake does not change what was shared, so no
//! one can learn it by comparing two publications. Each day's files appear by renames from a
//! staged copy. Every decision below also holds for the whole month (a group shares a figure
//! in a month only if it does every day of it), so that a month of the public yearly report,
//! minus the days shared here, leaves nothing or the whole month.
//!
//! **No figure describes fewer than [`MIN_CONNECTIONS`] connections**, not even by subtracting
//! one from another. Scopes are the yearly report's cable groups (a cable of at least five
//! connections by its id, smaller ones, and cables the registry no longer knows, together as
//! "other cables"). Per scope and day:
//! - a group with data from fewer than five connections that day shares nothing that day;
//! - L, T and P are each shared for the whole day, or withheld for the whole day (every
//!   quarter-hour null, zeros included): shared when the connections that drew, fed back or
//!   produced at any time that day number none or at least five (a withheld series says only
//!   that between one and four did, as the yearly report's rule does per year);
//! - V is L + P − T of the shared sums (not the sum of the connections' own V, which for a
//!   household without an installation is L alone and would give its feed-back away),
//!   matched energy min(L, T) of the group; both only when their parts are shared;
//! - the cooperative's figure is the sum over its groups, withheld when any group withheld it;
//! - no count of connections is shared: completeness as a whole percentage of the
//!   connection-quarter-hours with data.
//!
//! Quarter-hours beyond the agreed voltage limits come from the daily cable table, summed over
//! a group's cables (cable-quarter-hours: one with a house above and another below counts
//! twice).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use polars::prelude::*;

use crate::error::{Error, Result};
use crate::lake::convert::to_batch;
use crate::lake::parquet_io::write_sorted;
use crate::lake::schema::{col as column, ColType::*, Partitioning, TableSpec};
use crate::lake::schema::{CABLE_BALANCE_DAILY, INTERVALS};
use crate::lake::Lake;
use crate::registry::Registry;
use crate::reports::yearly::{cable_groups_of, MIN_CONNECTIONS, OTHER};

/// The scope of a cooperative's own totals.
pub const COOPERATIVE: &str = "cooperative";

const ENERGIES: [&str; 5] = ["l_wh", "t_wh", "p_wh", "v_wh", "matched_wh"];

pub const FED_QUARTER_HOURS: TableSpec = TableSpec {
    name: "quarter_hours",
    columns: &[
        column("scope", Utf8, false, ""),
        column("region", Utf8, false, ""),
        column("interval_start", TimestampUtc, false, "UTC"),
        column("l_wh", Int64, true, "Wh"),
        column("t_wh", Int64, true, "Wh"),
        column("p_wh", Int64, true, "Wh"),
        column("v_wh", Int64, true, "Wh"),
        column("matched_wh", Int64, true, "Wh"),
    ],
    sort_by: &["scope", "interval_start"],
    partitioning: Partitioning::Date,
};

pub const FED_DAYS: TableSpec = TableSpec {
    name: "days",
    columns: &[
        column("scope", Utf8, false, ""),
        column("region", Utf8, false, ""),
        column("date", Date, false, ""),
        column("l_wh", Int64, true, "Wh"),
        column("t_wh", Int64, true, "Wh"),
        column("p_wh", Int64, true, "Wh"),
        column("v_wh", Int64, true, "Wh"),
        column("matched_wh", Int64, true, "Wh"),
        column("completeness_pct", Int64, true, "%"),
        column("quarter_hours_beyond_limits", Int64, true, ""),
    ],
    sort_by: &["scope", "date"],
    partitioning: Partitioning::Date,
};

pub const FED_MONTHS: TableSpec = TableSpec {
    name: "months",
    columns: &[
        column("scope", Utf8, false, ""),
        column("region", Utf8, false, ""),
        column("month", Utf8, false, ""),
        column("days", Int64, false, ""),
        column("l_wh", Int64, false, "Wh"),
        column("t_wh", Int64, false, "Wh"),
        column("p_wh", Int64, false, "Wh"),
        column("v_wh", Int64, false, "Wh"),
        column("matched_wh", Int64, false, "Wh"),
        column("l_withheld_days", Int64, false, ""),
        column("t_withheld_days", Int64, false, ""),
        column("p_withheld_days", Int64, false, ""),
        column("v_withheld_days", Int64, false, ""),
        column("matched_withheld_days", Int64, false, ""),
        column("quarter_hours_beyond_limits", Int64, false, ""),
    ],
    sort_by: &["scope", "month"],
    partitioning: Partitioning::None,
};

/// What a publication wrote.
#[derive(Debug, Default)]
pub struct Published {
    pub folder: PathBuf,
    /// Days published by this run (earlier ones stay as they were).
    pub days: Vec<NaiveDate>,
    /// Settled days with data that were already published.
    pub already: usize,
    /// Shared figures (scope × day × quantity) withheld by this run.
    pub withheld: usize,
    /// For a federation bucket: what was uploaded where.
    pub uploaded: Option<String>,
}

/// `coop_id` as a hive partition value: letters, digits, `-`, `_`, at most 64.
pub fn valid_coop_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn null_int() -> Expr {
    lit(NULL).cast(DataType::Int64)
}

/// Connections whose `value` was above 0 at some quarter-hour (per group and day).
fn active(value: &str) -> Expr {
    col("ean")
        .filter(col(value).gt(lit(0)).fill_null(lit(false)))
        .n_unique()
        .cast(DataType::Int64)
}

/// `YYYY-MM` of a day: the name of its month's marker.
pub fn month_key(d: NaiveDate) -> String {
    d.format("%Y-%m").to_string()
}

/// The months marked complete: `<folder>/_complete/<YYYY-MM>`, written after a month's last
/// day (so a run killed between two days leaves its month unmarked).
fn complete_months(folder: &Path) -> Result<BTreeSet<String>> {
    let entries = match std::fs::read_dir(folder.join(COMPLETE)) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = BTreeSet::new();
    for entry in entries {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if NaiveDate::parse_from_str(&format!("{name}-01"), "%Y-%m-%d").is_ok() {
            out.insert(name);
        }
    }
    Ok(out)
}

/// The folder of the months' markers under `coop=<id>/`.
pub const COMPLETE: &str = "_complete";

/// A folder published by a version before the markers has days but no `_complete/`: its
/// months were published whole (that version wrote a month in one run), so each is marked
/// complete once. Every publication since creates `_complete/` before its first day, so a
/// first publication cut short is not mistaken for one.
fn adopt_earlier_folder(folder: &Path) -> Result<()> {
    if folder.join(COMPLETE).exists() {
        return Ok(());
    }
    let days = published_days(folder)?;
    let months: BTreeSet<String> = days.iter().map(|d| month_key(*d)).collect();
    for month in &months {
        mark_complete(folder, month)?;
    }
    if !months.is_empty() {
        tracing::info!(
            "{}: marked {} months published by an earlier version complete",
            folder.display(),
            months.len()
        );
    }
    std::fs::create_dir_all(folder.join(COMPLETE))?;
    Ok(())
}

/// A month that was never completed and can no longer be: what to do about it.
fn unfinished_month(path: &Path, day: NaiveDate, what: &str) -> Error {
    Error::Lake {
        path: path.to_path_buf(),
        message: format!(
            "published before with {what}; its month {m} was never completed (a run was cut short) and the lake now gives that day differently (a late delivery, a correction, an erasure or a registry change since): a month is never made of two computations. Move the `date={m}-…` folders of `days` and `quarter_hours` away (they were never a complete month) and publish again",
            m = month_key(day)
        ),
    }
}

fn mark_complete(folder: &Path, month: &str) -> Result<()> {
    let dir = folder.join(COMPLETE);
    std::fs::create_dir_all(&dir)?;
    let marker = std::fs::File::create(dir.join(month))?;
    marker.sync_all()?;
    Ok(())
}

/// Days already published: the `date=` folders of `quarter_hours` or `days`.
fn published_days(folder: &Path) -> Result<BTreeSet<NaiveDate>> {
    let mut out = BTreeSet::new();
    for table in [FED_QUARTER_HOURS.name, FED_DAYS.name] {
        let entries = match std::fs::read_dir(folder.join(table)) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e.into()),
        };
        for entry in entries {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if let Some(d) = name.strip_prefix("date=").and_then(|d| d.parse().ok()) {
                out.insert(d);
            }
        }
    }
    Ok(out)
}

fn date_of(days_since_epoch: i32) -> Option<NaiveDate> {
    NaiveDate::from_num_days_from_ce_opt(days_since_epoch + 719_163)
}

/// Publishes the settled days (up to `last`) not yet published under `out/coop=<coop_id>/`.
pub fn publish(
    lake: &Lake,
    registry: &Registry,
    coop_id: &str,
    region: &str,
    out: &Path,
    last: NaiveDate,
) -> Result<Published> {
    if !valid_coop_id(coop_id) {
        return Err(Error::Usage(format!(
            "coop id `{coop_id}`: 1 to 64 letters, digits, `-` or `_`"
        )));
    }
    if let Some(c) = registry
        .cables
        .keys()
        .find(|c| c.as_str() == COOPERATIVE || c.as_str() == OTHER)
    {
        return Err(Error::Usage(format!(
            "cable id `{c}` is a scope name of the shared tables; rename the cable to publish"
        )));
    }
    let folder = out.join(format!("coop={coop_id}"));
    // Published: the days of the months marked complete. A month with days but no marker was
    // cut short (a run killed between two days): it is computed again, and each day already
    // there must come out the same (`finish_staged`).
    adopt_earlier_folder(&folder)?;
    let complete = complete_months(&folder)?;
    finish_interrupted(out, coop_id, &complete)?;
    let done: BTreeSet<NaiveDate> = published_days(&folder)?
        .into_iter()
        .filter(|d| complete.contains(&month_key(*d)))
        .collect();
    let Some(intervals) = lake.scan(&INTERVALS)? else {
        return Err(Error::Usage(
            "the lake has no intervals yet: run `vaten transform` first".into(),
        ));
    };
    // The days with data, settled, not published yet.
    let dates = intervals.clone().select([col("date").unique()]).collect()?;
    let with_data: BTreeSet<NaiveDate> = dates
        .column("date")?
        .cast(&DataType::Int32)?
        .i32()?
        .iter()
        .flatten()
        .filter_map(date_of)
        .filter(|d| *d <= last)
        .collect();
    let todo: Vec<NaiveDate> = with_data.difference(&done).copied().collect();
    let mut report = Published {
        folder: folder.clone(),
        already: with_data.intersection(&done).count(),
        ..Default::default()
    };
    // A month at a time, and only whole months: a month is published once its last day has
    // settled, all its days at once, and never added to afterwards (its decisions are made
    // over the whole month). This also bounds memory on a first publication of a long history.
    let groups = group_frame(registry)?;
    let month_of = |d: &NaiveDate| (chrono::Datelike::year(d), chrono::Datelike::month(d));
    let started = |m: &(i32, u32)| complete.contains(&format!("{:04}-{:02}", m.0, m.1));
    let mut runs: Vec<Vec<NaiveDate>> = Vec::new();
    for day in &todo {
        let last_of_month = NaiveDate::from_ymd_opt(month_of(day).0, month_of(day).1, 1)
            .and_then(|first| first.checked_add_months(chrono::Months::new(1)))
            .and_then(|next| next.pred_opt());
        if started(&month_of(day)) || last_of_month.is_none_or(|l| l > last) {
            continue;
        }
        match runs.last_mut() {
            Some(run) if run.last().map(month_of) == Some(month_of(day)) => run.push(*day),
            _ => runs.push(vec![*day]),
        }
    }
    for run in runs {
        let (first, end) = (run[0], run[run.len() - 1]);
        let window = col("date")
            .gt_eq(lit(first))
            .and(col("date").lt_eq(lit(end)));
        let (quarters, days) = shared_rows(
            lake,
            intervals.clone().filter(window.clone()),
            groups.clone(),
            region,
            window,
        )?;
        report.withheld += ENERGIES
            .iter()
            .map(|c| days.column(c).map_or(0, |s| s.null_count()))
            .sum::<usize>();
        // A month cut short: every day it has must be among the days computed now.
        let month = month_key(first);
        let there: BTreeSet<NaiveDate> = published_days(&folder)?
            .into_iter()
            .filter(|d| month_key(*d) == month)
            .collect();
        if let Some(stray) = there.iter().find(|d| !run.contains(d)) {
            let path = folder.join(FED_DAYS.name).join(format!("date={stray}"));
            return Err(unfinished_month(
                &path,
                *stray,
                "a day the lake has no data for now",
            ));
        }
        for day in &run {
            write_day(out, coop_id, *day, &quarters, &days)?;
            if !there.contains(day) {
                report.days.push(*day);
            }
        }
        report.already += there.len();
        mark_complete(&folder, &month)?;
    }
    // The staging folder, now empty (kept only while a day is in flight).
    let _ = std::fs::remove_dir(out.join(format!(".staging-{coop_id}")));
    write_months(&folder, region)?;
    Ok(report)
}

/// Cable → scope (the yearly report's groups; a cable the registry does not know is in
/// "other cables" too, through the left join's fill).
fn group_frame(registry: &Registry) -> Result<LazyFrame> {
    let groups = cable_groups_of(
        registry
            .connections
            .iter()
            .map(|c| (c.cable_id.clone(), c.ean.to_string())),
    );
    let (cables, scopes): (Vec<String>, Vec<String>) =
        groups.into_iter().map(|(c, (g, _))| (c, g)).unzip();
    Ok(df!("cable_id" => cables, "scope" => scopes)?.lazy())
}

fn with_scope(lf: LazyFrame, groups: LazyFrame) -> LazyFrame {
    lf.join(
        groups,
        [col("cable_id")],
        [col("cable_id")],
        JoinArgs::new(JoinType::Left),
    )
    .with_column(col("scope").fill_null(lit(OTHER)))
}

fn ok(n: Expr) -> Expr {
    n.clone()
        .eq(lit(0))
        .or(n.gt_eq(lit(MIN_CONNECTIONS as i64)))
}

fn sum_when(flag: &str, value: Expr) -> Expr {
    when(col(flag)).then(value).otherwise(null_int())
}

/// The shared quarter-hour and day rows of the days in `window`, every decision applied.
///
/// Per group and day: `base` when at least five connections have an L that is not missing;
/// a group-day without it shares nothing (not even a row). For L, T and P: the day's sum is
/// shared when the connections with a value above 0 that day number none or at least five
/// (`day_x`); its quarter-hours only when moreover every quarter-hour of the day has none or
/// at least five (`qser_x`), else the day's whole series is withheld. The cooperative: a day
/// or quarter-hour figure only when every group with data that day had `base` and shared it.
fn shared_rows(
    lake: &Lake,
    intervals: LazyFrame,
    groups: LazyFrame,
    region: &str,
    window: Expr,
) -> Result<(DataFrame, DataFrame)> {
    let rows = with_scope(intervals, groups.clone());
    let cells = rows
        .clone()
        .group_by([col("scope"), col("date"), col("interval_start")])
        .agg([
            col("l_wh").sum().fill_null(lit(0i64)).alias("l"),
            col("t_wh").sum().fill_null(lit(0i64)).alias("t"),
            col("p_wh").sum().fill_null(lit(0i64)).alias("p"),
            col("l_wh")
                .gt(lit(0))
                .fill_null(lit(false))
                .sum()
                .cast(DataType::Int64)
                .alias("q_l"),
            col("t_wh")
                .gt(lit(0))
                .fill_null(lit(false))
                .sum()
                .cast(DataType::Int64)
                .alias("q_t"),
            col("p_wh")
                .gt(lit(0))
                .fill_null(lit(false))
                .sum()
                .cast(DataType::Int64)
                .alias("q_p"),
        ]);
    let series_ok = cells.clone().group_by([col("scope"), col("date")]).agg([
        ok(col("q_l")).all(true).alias("qs_l"),
        ok(col("q_t")).all(true).alias("qs_t"),
        ok(col("q_p")).all(true).alias("qs_p"),
    ]);
    let measured = col("l_quality").neq(lit("missing"));
    let decided = rows
        .group_by([col("scope"), col("date")])
        .agg([
            col("ean")
                .filter(measured.clone())
                .n_unique()
                .cast(DataType::Int64)
                .alias("n"),
            active("l_wh").alias("d_l"),
            active("t_wh").alias("d_t"),
            active("p_wh").alias("d_p"),
            col("ean")
                .filter(col("p_wh").is_not_null())
                .n_unique()
                .cast(DataType::Int64)
                .alias("n_inst"),
            len().cast(DataType::Int64).alias("rows"),
            measured.cast(DataType::Int64).sum().alias("reporting"),
        ])
        .join(
            series_ok,
            [col("scope"), col("date")],
            [col("scope"), col("date")],
            JoinArgs::new(JoinType::Left),
        )
        .with_column(col("n").gt_eq(lit(MIN_CONNECTIONS as i64)).alias("base"))
        .with_columns([
            col("base").and(ok(col("d_l"))).alias("day_l"),
            col("base").and(ok(col("d_t"))).alias("day_t"),
            col("base").and(ok(col("d_p"))).alias("day_p"),
        ])
        // A month is shared whole or not at all, per group and figure: the public yearly
        // report publishes months, and a month it shows minus the days shared here must
        // leave nothing or the whole month, never a few households' days.
        .with_column(col("date").dt().strftime("%Y-%m").alias("month"))
        .with_columns(
            ["base", "day_l", "day_t", "day_p"]
                .iter()
                .map(|c| {
                    Ok(col(*c)
                        .all(true)
                        .over([col("scope"), col("month")])?
                        .alias(*c))
                })
                .collect::<Result<Vec<_>>>()?,
        )
        .with_columns([
            col("day_l").and(col("qs_l")).alias("qser_l"),
            col("day_t").and(col("qs_t")).alias("qser_t"),
            col("day_p").and(col("qs_p")).alias("qser_p"),
        ])
        .collect()?;
    let flags = || decided.clone().lazy();
    // Groups' quarter-hours: only of group-days with `base`.
    let group_q = cells
        .join(
            flags(),
            [col("scope"), col("date")],
            [col("scope"), col("date")],
            JoinArgs::new(JoinType::Inner),
        )
        .filter(col("base"))
        .with_columns([
            sum_when("qser_l", col("l")).alias("l_wh"),
            sum_when("qser_t", col("t")).alias("t_wh"),
            sum_when("qser_p", col("p")).alias("p_wh"),
        ])
        .with_columns([
            (col("l_wh") + col("p_wh") - col("t_wh")).alias("v_wh"),
            when(col("l_wh").is_null().or(col("t_wh").is_null()))
                .then(null_int())
                .when(col("l_wh").lt(col("t_wh")))
                .then(col("l_wh"))
                .otherwise(col("t_wh"))
                .alias("matched_wh"),
        ])
        .collect()?;
    // Groups' days: the day sums where the day is shared (from every quarter, also when the
    // quarter series is withheld), matched only from shared quarter series.
    let group_d = group_q
        .clone()
        .lazy()
        .group_by([col("scope"), col("date")])
        .agg([
            col("l").sum().alias("l_all"),
            col("t").sum().alias("t_all"),
            col("p").sum().alias("p_all"),
            col("matched_wh").sum().alias("m_all"),
            col("day_l").first(),
            col("day_t").first(),
            col("day_p").first(),
            col("qser_l").first(),
            col("qser_t").first(),
            col("rows").first(),
            col("reporting").first(),
            col("n_inst").first(),
        ])
        .with_columns([
            sum_when("day_l", col("l_all")).alias("l_wh"),
            sum_when("day_t", col("t_all")).alias("t_wh"),
            sum_when("day_p", col("p_all")).alias("p_wh"),
            when(col("qser_l").and(col("qser_t")))
                .then(col("m_all"))
                .otherwise(null_int())
                .alias("matched_wh"),
            (col("reporting") * lit(100i64) / col("rows"))
                .cast(DataType::Int64)
                .alias("completeness_pct"),
        ])
        .with_column((col("l_wh") + col("p_wh") - col("t_wh")).alias("v_wh"));
    // The voltage counts, where the group's installations number none or at least five.
    let group_d = match lake.scan(&CABLE_BALANCE_DAILY)? {
        Some(cbd) => {
            let beyond = with_scope(cbd.filter(window), groups)
                .with_column(
                    (col("quarters_below_v_low").fill_null(lit(0))
                        + col("quarters_above_v_high").fill_null(lit(0)))
                    .cast(DataType::Int64)
                    .alias("beyond"),
                )
                .group_by([col("scope"), col("date")])
                .agg([col("beyond").sum()]);
            group_d
                .join(
                    beyond,
                    [col("scope"), col("date")],
                    [col("scope"), col("date")],
                    JoinArgs::new(JoinType::Left),
                )
                .with_column(
                    when(ok(col("n_inst")))
                        .then(col("beyond").fill_null(lit(0i64)))
                        .otherwise(null_int())
                        .alias("quarter_hours_beyond_limits"),
                )
        }
        None => group_d.with_column(null_int().alias("quarter_hours_beyond_limits")),
    }
    .collect()?;
    // The cooperative: per day, whether every group with data had `base` and shared each
    // figure (for its day, and for its quarter series).
    let coop_flags = flags()
        .group_by([col("date"), col("month")])
        .agg([
            col("rows").sum().alias("rows"),
            col("reporting").sum().alias("reporting"),
        ])
        .join(
            // Whole months here too: every group, every day of the month.
            flags().group_by([col("month")]).agg([
                col("base").all(true).alias("all_base"),
                col("day_l").all(true).alias("c_day_l"),
                col("day_t").all(true).alias("c_day_t"),
                col("day_p").all(true).alias("c_day_p"),
                col("qser_l").all(true).alias("c_q_l"),
                col("qser_t").all(true).alias("c_q_t"),
                col("qser_p").all(true).alias("c_q_p"),
            ]),
            [col("month")],
            [col("month")],
            JoinArgs::new(JoinType::Inner),
        );
    // Every `c_*` flag implies `all_base` (a group's `qser_x` and `day_x` imply its `base`),
    // and a group's matched energy is there whenever its L and T series are: the flags alone
    // decide the cooperative's figures.
    let coop_q = group_q
        .clone()
        .lazy()
        .group_by([col("date"), col("interval_start")])
        .agg([
            col("l").sum(),
            col("t").sum(),
            col("p").sum(),
            col("matched_wh").sum().alias("m_sum"),
        ])
        .join(
            coop_flags.clone(),
            [col("date")],
            [col("date")],
            JoinArgs::new(JoinType::Inner),
        )
        .with_columns([
            sum_when("c_q_l", col("l")).alias("l_wh"),
            sum_when("c_q_t", col("t")).alias("t_wh"),
            sum_when("c_q_p", col("p")).alias("p_wh"),
            when(col("c_q_l").and(col("c_q_t")))
                .then(col("m_sum"))
                .otherwise(null_int())
                .alias("matched_wh"),
            lit(COOPERATIVE).alias("scope"),
        ])
        .with_column((col("l_wh") + col("p_wh") - col("t_wh")).alias("v_wh"));
    let coop_d = group_d
        .clone()
        .lazy()
        .group_by([col("date")])
        .agg([
            col("l_all").sum(),
            col("t_all").sum(),
            col("p_all").sum(),
            col("matched_wh").sum().alias("m_sum"),
        ])
        .join(
            coop_flags,
            [col("date")],
            [col("date")],
            JoinArgs::new(JoinType::Inner),
        )
        .with_columns([
            sum_when("c_day_l", col("l_all")).alias("l_wh"),
            sum_when("c_day_t", col("t_all")).alias("t_wh"),
            sum_when("c_day_p", col("p_all")).alias("p_wh"),
            when(col("c_q_l").and(col("c_q_t")))
                .then(col("m_sum"))
                .otherwise(null_int())
                .alias("matched_wh"),
            when(col("all_base"))
                .then((col("reporting") * lit(100i64) / col("rows")).cast(DataType::Int64))
                .otherwise(null_int())
                .alias("completeness_pct"),
            null_int().alias("quarter_hours_beyond_limits"),
            lit(COOPERATIVE).alias("scope"),
        ])
        .with_column((col("l_wh") + col("p_wh") - col("t_wh")).alias("v_wh"));
    let q_cols = [
        col("scope"),
        col("date"),
        col("interval_start"),
        col("l_wh"),
        col("t_wh"),
        col("p_wh"),
        col("v_wh"),
        col("matched_wh"),
    ];
    let d_cols = [
        col("scope"),
        col("date"),
        col("l_wh"),
        col("t_wh"),
        col("p_wh"),
        col("v_wh"),
        col("matched_wh"),
        col("completeness_pct"),
        col("quarter_hours_beyond_limits"),
    ];
    let quarters = concat(
        [group_q.lazy().select(q_cols.clone()), coop_q.select(q_cols)],
        UnionArgs::default(),
    )?
    .with_column(lit(region.to_string()).alias("region"))
    .collect()?;
    let days = concat(
        [group_d.lazy().select(d_cols.clone()), coop_d.select(d_cols)],
        UnionArgs::default(),
    )?
    .with_column(lit(region.to_string()).alias("region"))
    .collect()?;
    Ok((quarters, days))
}

/// Writes one day's `days` and `quarter_hours` files: both staged first outside the shared
/// tables (`<out>/.staging-<coop_id>/`), then renamed into place. A day counts as published
/// when either folder exists, and one left half-published by a killed run is completed from
/// its staged copy, never computed again from a lake that may have changed since.
fn write_day(
    out: &Path,
    coop_id: &str,
    day: NaiveDate,
    quarters: &DataFrame,
    days: &DataFrame,
) -> Result<()> {
    let folder = out.join(format!("coop={coop_id}"));
    let staging = out
        .join(format!(".staging-{coop_id}"))
        .join(format!("date={day}"));
    let _ = std::fs::remove_dir_all(&staging);
    for (spec, df) in [(&FED_DAYS, days), (&FED_QUARTER_HOURS, quarters)] {
        let part = df
            .clone()
            .lazy()
            .filter(col("date").eq(lit(day)))
            .collect()?;
        let dir = staging.join(spec.name);
        std::fs::create_dir_all(&dir)?;
        write_sorted(&dir.join("part-0.parquet"), spec, &to_batch(&part, spec)?)?;
    }
    finish_staged(&folder, &staging, day)
}

/// Moves a staged day's folders into place (those not there yet) and drops the staging. A day
/// already there (its month was cut short and is computed again) must come out the same: a
/// month is never made of two computations, or the month-level rule would not hold.
fn finish_staged(folder: &Path, staging: &Path, day: NaiveDate) -> Result<()> {
    for spec in [&FED_DAYS, &FED_QUARTER_HOURS] {
        let target = folder.join(spec.name).join(format!("date={day}"));
        let staged = staging.join(spec.name);
        if target.exists() && staged.exists() {
            let file = |d: &Path| std::fs::read(d.join("part-0.parquet")).unwrap_or_default();
            if !crate::lake::parquet_io::same_rows(file(&target), file(&staged)) {
                let _ = std::fs::remove_dir_all(staging);
                return Err(unfinished_month(&target, day, "other figures"));
            }
        } else if staged.exists() {
            std::fs::create_dir_all(folder.join(spec.name))?;
            std::fs::rename(&staged, &target)?;
        }
    }
    let _ = std::fs::remove_dir_all(staging);
    Ok(())
}

/// Completes the days a killed run staged but did not move into place.
fn finish_interrupted(out: &Path, coop_id: &str, complete: &BTreeSet<String>) -> Result<()> {
    let root = out.join(format!(".staging-{coop_id}"));
    let Ok(entries) = std::fs::read_dir(&root) else {
        return Ok(());
    };
    let folder = out.join(format!("coop={coop_id}"));
    for entry in entries {
        let path = entry?.path();
        let day = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("date="))
            .and_then(|d| d.parse::<NaiveDate>().ok());
        match day {
            // Complete only when both files were staged (the staging was finished), and only
            // into a month still open: a complete month takes nothing more.
            Some(day)
                if !complete.contains(&month_key(day))
                    && path.join(FED_DAYS.name).join("part-0.parquet").exists()
                    && path
                        .join(FED_QUARTER_HOURS.name)
                        .join("part-0.parquet")
                        .exists() =>
            {
                finish_staged(&folder, &path, day)?
            }
            _ => {
                let _ = std::fs::remove_dir_all(&path);
            }
        }
    }
    Ok(())
}

/// `months/part-0.parquet` from the published days (and only from them).
fn write_months(folder: &Path, region: &str) -> Result<()> {
    let dir = folder.join(FED_DAYS.name);
    if !dir.exists() {
        return Ok(());
    }
    let args = ScanArgsParquet {
        hive_options: HiveOptions::new_enabled(),
        ..Default::default()
    };
    let days = LazyFrame::scan_parquet(PlRefPath::new(format!("{}/", dir.display())), args)?;
    let mut aggs = vec![len().cast(DataType::Int64).alias("days")];
    for c in ENERGIES {
        aggs.push(col(c).sum().fill_null(lit(0i64)).alias(c));
        let name = format!("{}_withheld_days", c.trim_end_matches("_wh"));
        aggs.push(col(c).null_count().cast(DataType::Int64).alias(&name));
    }
    aggs.push(
        col("quarter_hours_beyond_limits")
            .sum()
            .fill_null(lit(0i64))
            .cast(DataType::Int64),
    );
    let months = days
        .with_column(col("date").dt().strftime("%Y-%m").alias("month"))
        .group_by([col("scope"), col("month")])
        .agg(aggs)
        .with_column(lit(region.to_string()).alias("region"))
        .collect()?;
    let out = folder.join(FED_MONTHS.name);
    std::fs::create_dir_all(&out)?;
    let fresh = out.join(".part-0.parquet.new");
    write_sorted(&fresh, &FED_MONTHS, &to_batch(&months, &FED_MONTHS)?)?;
    std::fs::rename(&fresh, out.join("part-0.parquet"))?;
    Ok(())
}
