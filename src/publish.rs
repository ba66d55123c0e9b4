//! `vaten publish`: what a cooperative shares with its federation. Aggregates only, as hive
//! Parquet under `<out>/coop=<coop_id>/`:
//!
//! - `quarter_hours/date=…/`: per quarter-hour and scope (each cable group, and `cooperative`);
//! - `days/date=…/`: per day and scope, with completeness and the quarter-hours beyond the
//!   agreed voltage limits;
//! - `months/`: the sums of the published days (rewritten as days are added).
//!
//! **Write once.** A day is published once it has settled (`[federation] settle_days` after
//! it) and never again: a later correction, late delivery or erasure in the lake does not
//! change what was shared, so no one can learn it by comparing two publications. Each day's
//! files appear by one rename of their folder.
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

fn shareable(n: &str) -> Expr {
    col(n)
        .eq(lit(0))
        .or(col(n).gt_eq(lit(MIN_CONNECTIONS as i64)))
}

/// Days already published: the `date=` folders of `quarter_hours`.
fn published_days(folder: &Path) -> Result<BTreeSet<NaiveDate>> {
    let dir = folder.join(FED_QUARTER_HOURS.name);
    let mut out = BTreeSet::new();
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e.into()),
    };
    for entry in entries {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if let Some(d) = name.strip_prefix("date=").and_then(|d| d.parse().ok()) {
            out.insert(d);
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
    let done = published_days(&folder)?;
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
        already: with_data.len() - todo.len(),
        ..Default::default()
    };
    // A month of days at a time: the first publication of a long history stays in bounded
    // memory (each chunk's days are complete and final when written).
    let groups = group_frame(registry)?;
    for chunk in todo.chunks(31) {
        let (first, end) = (chunk[0], chunk[chunk.len() - 1]);
        let window = col("date")
            .gt_eq(lit(first))
            .and(col("date").lt_eq(lit(end)));
        let quarters = quarter_rows(
            intervals.clone().filter(window.clone()),
            groups.clone(),
            region,
        )?;
        let days = day_rows(lake, &quarters, groups.clone(), region, window)?;
        report.withheld += ENERGIES
            .iter()
            .map(|c| days.column(c).map_or(0, |s| s.null_count()))
            .sum::<usize>();
        for day in chunk {
            write_day(&folder, *day, &quarters, &days)?;
        }
    }
    report.days = todo;
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

/// The quarter-hour rows of every scope, with the day-level decisions applied.
fn quarter_rows(intervals: LazyFrame, groups: LazyFrame, region: &str) -> Result<DataFrame> {
    let rows = with_scope(intervals, groups);
    // Per group and day: who had data, who drew, fed back, produced.
    let decided = rows
        .clone()
        .group_by([col("scope"), col("date")])
        .agg([
            col("ean").n_unique().cast(DataType::Int64).alias("n"),
            active("l_wh").alias("n_l"),
            active("t_wh").alias("n_t"),
            active("p_wh").alias("n_p"),
        ])
        .with_columns([
            col("n")
                .gt_eq(lit(MIN_CONNECTIONS as i64))
                .and(shareable("n_l"))
                .alias("ok_l"),
            col("n")
                .gt_eq(lit(MIN_CONNECTIONS as i64))
                .and(shareable("n_t"))
                .alias("ok_t"),
            col("n")
                .gt_eq(lit(MIN_CONNECTIONS as i64))
                .and(shareable("n_p"))
                .alias("ok_p"),
        ]);
    let sum0 = |c: &str| col(c).sum().fill_null(lit(0i64));
    let cells = rows
        .group_by([col("scope"), col("date"), col("interval_start")])
        .agg([
            sum0("l_wh").alias("l"),
            sum0("t_wh").alias("t"),
            sum0("p_wh").alias("p"),
        ])
        .join(
            decided,
            [col("scope"), col("date")],
            [col("scope"), col("date")],
            JoinArgs::new(JoinType::Inner),
        )
        .with_columns([
            when(col("ok_l"))
                .then(col("l"))
                .otherwise(null_int())
                .alias("l_wh"),
            when(col("ok_t"))
                .then(col("t"))
                .otherwise(null_int())
                .alias("t_wh"),
            when(col("ok_p"))
                .then(col("p"))
                .otherwise(null_int())
                .alias("p_wh"),
        ])
        .with_columns([
            (col("l_wh") + col("p_wh") - col("t_wh")).alias("v_wh"),
            // Both parts or nothing: beside a withheld one it would tell about it.
            when(col("l_wh").is_null().or(col("t_wh").is_null()))
                .then(null_int())
                .when(col("l_wh").lt(col("t_wh")))
                .then(col("l_wh"))
                .otherwise(col("t_wh"))
                .alias("matched_wh"),
        ])
        .select([
            col("scope"),
            col("date"),
            col("interval_start"),
            col("l_wh"),
            col("t_wh"),
            col("p_wh"),
            col("v_wh"),
            col("matched_wh"),
        ]);
    // The cooperative: the sum over its groups, withheld when any group withheld it.
    let coop = cells
        .clone()
        .group_by([col("date"), col("interval_start")])
        .agg(
            ENERGIES
                .iter()
                .map(|c| {
                    when(col(*c).null_count().eq(lit(0)))
                        .then(col(*c).sum())
                        .otherwise(null_int())
                        .alias(*c)
                })
                .collect::<Vec<_>>(),
        )
        .with_column(lit(COOPERATIVE).alias("scope"))
        .select([
            col("scope"),
            col("date"),
            col("interval_start"),
            col("l_wh"),
            col("t_wh"),
            col("p_wh"),
            col("v_wh"),
            col("matched_wh"),
        ]);
    Ok(concat([cells, coop], UnionArgs::default())?
        .with_column(lit(region.to_string()).alias("region"))
        .sort(["scope", "interval_start"], SortMultipleOptions::default())
        .collect()?)
}

/// The day rows: sums of the day's quarter-hours (null when withheld), completeness, and
/// the quarter-hours beyond the limits.
fn day_rows(
    lake: &Lake,
    quarters: &DataFrame,
    groups: LazyFrame,
    region: &str,
    window: Expr,
) -> Result<DataFrame> {
    let all_or_nothing = |c: &str| {
        when(col(c).null_count().eq(lit(0)))
            .then(col(c).sum())
            .otherwise(null_int())
            .alias(c)
    };
    let sums = quarters
        .clone()
        .lazy()
        .group_by([col("scope"), col("date")])
        .agg(
            ENERGIES
                .iter()
                .map(|c| all_or_nothing(c))
                .collect::<Vec<_>>(),
        );
    // Completeness from the lake's rows: the share of connection-quarter-hours with an L.
    let Some(intervals) = lake.scan(&INTERVALS)? else {
        return Err(Error::Usage("the lake has no intervals".into()));
    };
    let intervals = intervals.filter(window.clone());
    let per_group = with_scope(intervals, groups.clone())
        .group_by([col("scope"), col("date")])
        .agg([
            len().cast(DataType::Int64).alias("rows"),
            col("l_quality")
                .neq(lit("missing"))
                .cast(DataType::Int64)
                .sum()
                .alias("reporting"),
            col("ean").n_unique().cast(DataType::Int64).alias("n"),
        ]);
    let coop_rows = per_group
        .clone()
        .group_by([col("date")])
        .agg([
            col("rows").sum(),
            col("reporting").sum(),
            col("n").sum().alias("n"),
        ])
        .with_column(lit(COOPERATIVE).alias("scope"))
        .select([
            col("scope"),
            col("date"),
            col("rows"),
            col("reporting"),
            col("n"),
        ]);
    let completeness = concat([per_group, coop_rows], UnionArgs::default())?.with_column(
        when(col("n").gt_eq(lit(MIN_CONNECTIONS as i64)))
            .then((col("reporting") * lit(100i64) / col("rows")).cast(DataType::Int64))
            .otherwise(null_int())
            .alias("completeness_pct"),
    );
    let mut days = sums
        .join(
            completeness.select([col("scope"), col("date"), col("completeness_pct")]),
            [col("scope"), col("date")],
            [col("scope"), col("date")],
            JoinArgs::new(JoinType::Left),
        )
        .with_column(lit(region.to_string()).alias("region"));
    days = match lake.scan(&CABLE_BALANCE_DAILY)? {
        Some(cbd) => {
            let per_cable = with_scope(cbd.filter(window), groups).with_column(
                (col("quarters_below_v_low").fill_null(lit(0))
                    + col("quarters_above_v_high").fill_null(lit(0)))
                .cast(DataType::Int64)
                .alias("beyond"),
            );
            let per_group = per_cable
                .clone()
                .group_by([col("scope"), col("date")])
                .agg([col("beyond").sum()]);
            // None for the cooperative: it would be the sum over groups of which some may
            // share nothing that day, and give theirs away by subtraction.
            days.join(
                per_group,
                [col("scope"), col("date")],
                [col("scope"), col("date")],
                JoinArgs::new(JoinType::Left),
            )
            // Not for a group that shares nothing that day (its completeness is null).
            .with_column(
                when(
                    col("completeness_pct")
                        .is_null()
                        .or(col("scope").eq(lit(COOPERATIVE))),
                )
                .then(null_int())
                .otherwise(col("beyond").fill_null(lit(0i64)))
                .alias("quarter_hours_beyond_limits"),
            )
        }
        None => days.with_column(null_int().alias("quarter_hours_beyond_limits")),
    };
    Ok(days.collect()?)
}

/// Writes one day's quarter-hours and day rows, each folder appearing by one rename.
fn write_day(folder: &Path, day: NaiveDate, quarters: &DataFrame, days: &DataFrame) -> Result<()> {
    for (spec, df) in [(&FED_DAYS, days), (&FED_QUARTER_HOURS, quarters)] {
        let part = df
            .clone()
            .lazy()
            .filter(col("date").eq(lit(day)))
            .collect()?;
        let dir = folder.join(spec.name);
        let fresh = dir.join(format!(".date={day}.new"));
        let _ = std::fs::remove_dir_all(&fresh);
        std::fs::create_dir_all(&fresh)?;
        write_sorted(&fresh.join("part-0.parquet"), spec, &to_batch(&part, spec)?)?;
        // A day whose `days` folder a killed run left without its quarter-hours (those are
        // what marks a day published) is written again.
        let target = dir.join(format!("date={day}"));
        if target.exists() {
            std::fs::remove_dir_all(&target)?;
        }
        std::fs::rename(&fresh, target)?;
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
